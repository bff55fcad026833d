"""The paper's figures and the notebooks' data plots; each function returns a matplotlib Figure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .bddoia import Sample, frame_paths, load_image
from .metrics import distribution
from .taxonomy import (ACTION_KEYS, ACTION_PHRASES, ACTIONS, GROUPS, REASON_KEYS, REASON_PHRASES)

GROUP_COLOURS = dict(zip(GROUPS, sns.color_palette("Set2", len(GROUPS))))


def dataset_table(labels: pd.DataFrame, reference: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """Fig. 2 as a table: positives per action and per reason, reasons grouped under their action.

    ``labels`` is :func:`drivekit.bddoia.label_frame` output; ``reference`` maps a name to
    ``(action counts, reason counts)`` in index order, shown as extra columns (e.g. ``{"BDD-OIA":
    (taxonomy.BDDOIA_ACTION_COUNTS, taxonomy.BDDOIA_REASON_COUNTS)}``).
    """
    rows = []
    for a, (group, reasons) in enumerate(GROUPS.items()):
        for r in reasons:
            row = {"action": ACTION_PHRASES[a], "action count": int(labels[ACTION_KEYS[a]].sum()),
                   "reason": REASON_PHRASES[r], "reason index": r, "reason count": int(labels[REASON_KEYS[r]].sum())}
            for name, (action_ref, reason_ref) in (reference or {}).items():
                row[f"{name} action"] = action_ref[a]
                row[f"{name} reason"] = reason_ref[r]
            rows.append(row)
    return pd.DataFrame(rows).set_index(["action", "action count", "reason"])


def plot_dataset_table(table: pd.DataFrame, title: str = "Actions and explanations") -> plt.Figure:
    """Render :func:`dataset_table` as a figure in the style of the proposal's Fig. 2."""
    flat = table.reset_index()
    shown = flat.drop(columns=["reason index"]).astype(str)
    per_action = [c for c in shown.columns if c.startswith("action") or c.endswith(" action")]
    shown.loc[flat["action"].duplicated(), per_action] = ""
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * shown.shape[1], 0.32 * len(shown) + 1))
    ax.axis("off")
    t = ax.table(cellText=shown.values, colLabels=list(shown.columns), loc="center", cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1, 1.25)
    for (row, _), cell in t.get_celld().items():
        if row > 0:
            group = list(GROUPS)[ACTION_PHRASES.index(flat.loc[row - 1, "action"])]
            cell.set_facecolor((*GROUP_COLOURS[group], 0.25))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_distributions(rows: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> plt.Figure:
    """Fig. 4: action and reason counts per row (e.g. GT / SFT / A2C), grouped Forward/Stop/Left/Right.

    ``rows`` maps a row name to ``(action matrix (n, 4), reason matrix (n, 21))``.
    """
    fig, axes = plt.subplots(len(rows), 2, figsize=(15, 2.6 * len(rows)), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1, 4]))
    for (name, (actions, reasons)), (ax_a, ax_r) in zip(rows.items(), axes):
        for ax, counts in ((ax_a, distribution(actions)), (ax_r, distribution(reasons))):
            groups = counts.index.get_level_values("group")
            keys = counts.index.get_level_values(1)
            bars = ax.bar(range(len(counts)), counts.values, color=[GROUP_COLOURS[g] for g in groups])
            ax.bar_label(bars, fontsize=7)
            ax.set_xticks(range(len(counts)), keys, rotation=60, ha="right", fontsize=7)
            ax.set_ylim(0, max(1, counts.max()) * 1.18)
        ax_a.set_ylabel(name)
    axes[0, 0].set_title("actions")
    axes[0, 1].set_title("reasons (Left/Right: why possible, then why not)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in GROUP_COLOURS.values()]
    fig.legend(handles, list(GROUP_COLOURS), loc="upper right", ncol=4, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def label_lines(actions: Sequence[int], reasons: Sequence[int]) -> str:
    acts = ", ".join(p for p, on in zip(ACTION_PHRASES, actions) if on) or "-"
    rsns = "\n".join(p for p, on in zip(REASON_PHRASES, reasons) if on) or "-"
    return f"{acts}\n{rsns}"


def plot_clips(root: str | Path, samples: Sequence[Sample], n_frames: int | None = None) -> plt.Figure:
    """All frames of each clip in a row, labels beside them."""
    frames = [frame_paths(root, s.name, n_frames) for s in samples]
    cols = max(len(f) for f in frames)
    fig, axes = plt.subplots(len(samples), cols + 1, figsize=(2.1 * (cols + 1.6), 2.1 * len(samples)),
                             squeeze=False, gridspec_kw=dict(width_ratios=[1] * cols + [1.6]))
    for sample, paths, row in zip(samples, frames, axes):
        for i, ax in enumerate(row[:-1]):
            ax.axis("off")
            if i < len(paths):
                ax.imshow(load_image(paths[i]))
                ax.set_title(f"{sample.name} f{i}" if i == 0 else f"f{i}", fontsize=7)
        row[-1].axis("off")
        row[-1].text(0, 0.5, label_lines(sample.actions, sample.reasons), fontsize=8, va="center")
    fig.tight_layout()
    return fig


def plot_cooccurrence(labels: pd.DataFrame) -> plt.Figure:
    """Heatmap: how many clips carry each reason together with each action."""
    counts = labels[list(REASON_KEYS)].T.astype(int) @ labels[list(ACTION_KEYS)].astype(int)
    counts.index = [f"{i:2d} {p}" for i, p in enumerate(REASON_PHRASES)]
    counts.columns = [a.phrase for a in ACTIONS]
    fig, ax = plt.subplots(figsize=(6, 8))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_title("reason × action co-occurrence (clips)")
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


ARROWS = ("↑", "↓", "←", "→")  # move forward, stop/slow down, turn left, turn right


def _arrows(ax, y: float, tag: str, actions: Sequence[int]) -> None:
    ax.text(0.0, y, tag, fontsize=11, weight="bold", va="center")
    for i, (arrow, on) in enumerate(zip(ARROWS, actions)):
        ax.text(0.12 + 0.11 * i, y, arrow, fontsize=15, va="center", color="tab:green" if on else "0.8")


def plot_examples(root: str | Path, examples: Sequence[Mapping], n_frames: int = 1, cols: int = 3) -> plt.Figure:
    """Fig. 1: clips with ground truth G and prediction P as four arrows (executable ones green),
    reasons coloured TP green / FP red / FN grey.

    Each example is a predictions row: ``file_name``, ``actions_true``, ``actions_pred``,
    ``reasons_true``, ``reasons_pred``.
    """
    rows = -(-len(examples) // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(4.4 * cols, 2.3 * rows), squeeze=False,
                             gridspec_kw=dict(width_ratios=[1, 1.2] * cols))
    for ax in axes.flat:
        ax.axis("off")
    for k, ex in enumerate(examples):
        ax_img, ax_txt = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        frames = [load_image(p) for p in frame_paths(root, ex["file_name"], n_frames)]
        ax_img.imshow(np.concatenate([np.asarray(f) for f in frames], axis=1))
        ax_img.set_title(ex["file_name"], fontsize=7)
        _arrows(ax_txt, 0.9, "G", ex["actions_true"])
        _arrows(ax_txt, 0.72, "P", ex["actions_pred"])
        y = 0.55
        for r, phrase in enumerate(REASON_PHRASES):
            truth, pred = ex["reasons_true"][r], ex["reasons_pred"][r]
            if truth or pred:
                colour = "tab:green" if truth and pred else "tab:red" if pred else "0.55"
                ax_txt.text(0.0, y, phrase, fontsize=8, color=colour, va="center")
                y -= 0.12
    fig.tight_layout()
    return fig


def plot_loss_curves(curves: Mapping[str, pd.DataFrame], title: str = "Training loss") -> plt.Figure:
    """Fig. 3: one panel per run; each DataFrame has a ``step`` column and one column per curve."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.4), squeeze=False)
    for ax, (name, log) in zip(axes[0], curves.items()):
        for column in log.columns.drop("step"):
            points = log[["step", column]].dropna()
            ax.plot(points["step"], points[column], marker="o" if len(points) < 30 else None, ms=3, label=column)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_f1_tables(per_class: Mapping[str, pd.DataFrame], summary: pd.DataFrame) -> plt.Figure:
    """Fig. 5: per-class F1 (percent) of each model for actions and reasons, plus the sample-level F1s.

    ``per_class`` maps "actions"/"reasons" to :func:`drivekit.metrics.per_class_frame` output;
    ``summary`` is a model × metric frame in percent (e.g. F1_act / F1_rsn sample columns).
    """
    height = 0.9 + 0.45 * len(summary)
    fig = plt.figure(figsize=(16, 2 * height + 1.2))
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1], height_ratios=[1, 1.3])
    panels = {"actions": fig.add_subplot(grid[0, 0]), "reasons": fig.add_subplot(grid[1, :])}
    for kind, frame in per_class.items():
        ax = panels[kind]
        shown = frame.copy()
        shown.columns = [key for _, key in frame.columns]
        sns.heatmap(shown, annot=True, fmt=".0f", vmin=0, vmax=100, cmap="Greens", cbar=False, ax=ax)
        ax.set_title(f"{kind}: per-class F1 (%)")
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.tick_params(axis="y", labelrotation=0)
    ax = fig.add_subplot(grid[0, 1])
    sns.heatmap(summary, annot=True, fmt=".2f", vmin=0, vmax=100, cmap="Blues", cbar=False, ax=ax)
    ax.set_title("sample-level F1 (%)")
    ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig
