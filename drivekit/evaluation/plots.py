"""The paper's figures and the notebooks' data plots; each function returns a matplotlib Figure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from drivekit.data.bddoia import Sample, frame_paths, load_image
from drivekit.evaluation.metrics import distribution
from drivekit.core.taxonomy import (ACTION_KEYS, ACTION_PHRASES, ACTIONS, GROUPS, REASON_KEYS, REASON_PHRASES)

GROUP_COLOURS = dict(zip(GROUPS, sns.color_palette("Set2", len(GROUPS))))


def dataset_table(labels: pd.DataFrame, reference: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """Fig. 2 as a table: positives per action and per reason, reasons grouped under their action.

    ``labels`` is :func:`drivekit.data.bddoia.label_frame` output; ``reference`` maps a name to
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


# Columns drawn in one panel: the training and validation loss share a unit and belong side by side.
SHARED_PANEL = {"train_loss": "loss", "val_loss": "loss"}


def plot_loss_curves(curves: Mapping[str, pd.DataFrame], title: str = "Training loss", cols: int = 4) -> plt.Figure:
    """Fig. 3: one small panel per measure (a column of the logs; ``train_loss`` and ``val_loss`` share the
    ``loss`` panel, :data:`SHARED_PANEL`), each run of ``curves`` (name -> DataFrame with a ``step``
    column) a line in it, the measure's name as the y-label and one legend outside the panels: a reward
    of about 1.5 and a KL of 0.01 never share an axis."""
    panels: dict[str, list[tuple[str, str]]] = {}  # panel -> [(run, column)]
    for name, log in curves.items():
        for column in log.columns.drop("step"):
            panels.setdefault(SHARED_PANEL.get(column, column), []).append((name, column))
    ncols = max(1, min(cols, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows + 0.6), squeeze=False)
    colours = dict(zip(curves, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    styles = {"train_loss": "-", "val_loss": "--"}
    handles = {}
    for ax, (panel, lines) in zip(axes.flat, panels.items()):
        for name, column in lines:
            points = curves[name][["step", column]].dropna()
            label = name if panel == column else f"{name} · {column}"
            handles[label], = ax.plot(points["step"], points[column], styles.get(column, "-"), color=colours[name],
                                      marker="o" if len(points) < 30 else None, ms=3, label=label)
        ax.set_ylabel(panel)
        ax.set_xlabel("step")
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1 if len(handles) > 1 else 0, 1, 1))
    if len(handles) > 1:  # below the panels, never over a curve
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 4), fontsize=8,
                   frameon=False)
    return fig


def trailing_mean(values: Sequence[float], window: int) -> np.ndarray:
    """The mean of each value and the ``window - 1`` before it (fewer at the start): a curve's smoothed line."""
    return pd.Series(np.asarray(values, dtype=float)).rolling(max(1, int(window)), min_periods=1).mean().to_numpy()


def plot_smoothed(log: pd.DataFrame, panels: Mapping[str, str], window: int = 10, title: str = "",
                  cols: int = 3) -> plt.Figure:
    """One panel per column of ``log`` named in ``panels`` (column -> the panel's y-label), against ``step``:
    each step's value as a light line and its trailing mean over ``window`` steps (:func:`trailing_mean`) as a
    dark one, so that noise and trend read apart. Columns the log lacks are skipped."""
    present = {c: label for c, label in panels.items() if c in log}
    ncols = max(1, min(cols, len(present)))
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.5 * nrows + 0.7), squeeze=False)
    for ax, (column, label) in zip(axes.flat, present.items()):
        points = log[["step", column]].dropna()
        raw, = ax.plot(points["step"], points[column], color="C0", alpha=0.3, lw=1)
        smooth, = ax.plot(points["step"], trailing_mean(points[column], window), color="C0", lw=2)
        ax.set_ylabel(label, fontsize=9)
        ax.set_xlabel("step")
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(present):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    if present:
        fig.legend([raw, smooth], ["each step", f"trailing mean of {window} steps"], loc="lower center", ncol=2,
                   fontsize=8, frameon=False)
    return fig


def plot_seed_curves(curves: pd.DataFrame, value: str = "smoothed", title: str = "") -> plt.Figure:
    """Fig. 3 over seeds: per method (``method`` column) the mean of ``value`` over its seeds (``seed``)
    at each ``step``, with a band of ± one standard deviation."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for method, runs in curves.groupby("method", sort=False):
        by_step = runs.groupby("step")[value]
        mean, sd = by_step.mean(), by_step.std().fillna(0.0)
        ax.plot(mean.index, mean, label=f"{method} ({runs['seed'].nunique()} seeds)")
        ax.fill_between(mean.index, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(value)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_seed_bands(curves: pd.DataFrame, value: str = "reward", window: int = 10, title: str = "",
                    cols: int = 3, ylabel: str | None = None) -> plt.Figure:
    """Curves over seeds, one panel per method (``method`` column) of a long frame with ``seed``, ``step`` and
    ``value`` (e.g. :func:`drivekit.experiment.curves`): each seed's value at every step as a light line, the
    mean over the seeds of their trailing means over ``window`` steps (:func:`trailing_mean`) as a dark one, and
    between the seeds' lowest and highest trailing mean a band."""
    methods = list(dict.fromkeys(curves["method"]))
    ncols = max(1, min(cols, len(methods)))
    nrows = max(1, -(-len(methods) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.7 * nrows + 0.8), squeeze=False)
    handles = []
    for ax, method in zip(axes.flat, methods):
        runs = curves[curves["method"] == method]
        smooth = {}
        for seed, run in runs.groupby("seed", sort=True):
            run = run.sort_values("step")
            raw, = ax.plot(run["step"], run[value], color="C0", alpha=0.18, lw=0.8)
            smooth[seed] = pd.Series(trailing_mean(run[value], window), index=run["step"].to_numpy())
        frame = pd.DataFrame(smooth)
        band = ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color="C0", alpha=0.25, lw=0)
        mean, = ax.plot(frame.index, frame.mean(axis=1), color="C0", lw=2)
        handles = [raw, mean, band]
        ax.set_title(f"{method} ({frame.shape[1]} seed{'s' * (frame.shape[1] != 1)})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel or value, fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(methods):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    if handles:
        fig.legend(handles, ["each seed, every step", f"mean over seeds of the trailing mean of {window} steps",
                             "lowest to highest seed (trailing mean)"], loc="lower center", ncol=3, fontsize=8,
                   frameon=False)
    return fig


def plot_f1_tables(per_class: Mapping[str, pd.DataFrame], summary: pd.DataFrame,
                   spread: pd.DataFrame | None = None) -> plt.Figure:
    """Fig. 5: per-class F1 (percent) of each model for actions and reasons, plus the sample-level F1s.

    ``per_class`` maps "actions"/"reasons" to :func:`drivekit.evaluation.metrics.per_class_frame` output;
    ``summary`` is a model × metric frame in percent (e.g. F1_act / F1_rsn sample columns), and
    ``spread`` the same frame's standard deviation over seeds, shown as "mean ± sd". A NaN per-class
    F1 (a class absent from the test split, :func:`drivekit.evaluation.metrics.absent_as_nan`) shows as "n/a".
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
        absent = shown.isna().to_numpy()  # classes absent from the test split (metrics.absent_as_nan)
        ax.set_facecolor("0.92")
        for i, j in zip(*np.nonzero(absent)):  # seaborn leaves NaN cells blank: say why
            ax.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center", color="0.45", fontsize=8)
        ax.set_title(f"{kind}: per-class F1 (%)" + (", n/a: absent from the test split" if absent.any() else ""))
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.tick_params(axis="y", labelrotation=0)
    ax = fig.add_subplot(grid[0, 1])
    if spread is None:
        sns.heatmap(summary, annot=True, fmt=".2f", vmin=0, vmax=100, cmap="Blues", cbar=False, ax=ax)
        ax.set_title("sample-level F1 (%)")
    else:
        labels = summary.combine(spread.reindex_like(summary),
                                 lambda m, s: m.map("{:.1f}".format) + " ± " + s.map("{:.1f}".format))
        sns.heatmap(summary, annot=labels.to_numpy(), fmt="", vmin=0, vmax=100, cmap="Blues", cbar=False, ax=ax)
        ax.set_title("sample-level F1 (%), mean ± sd over seeds")
    ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Comparing models on their prediction rows (notebook 06)
# ---------------------------------------------------------------------------------------------
_KIND_LABELS = {"actions": (ACTION_KEYS, ACTION_PHRASES), "reasons": (REASON_KEYS, REASON_PHRASES)}


def label_matrices(rows: Sequence[Mapping], side: str = "pred") -> tuple[np.ndarray, np.ndarray]:
    """``(actions (n, 4), reasons (n, 21))`` of prediction rows; ``side`` is ``"pred"`` or ``"true"``."""
    if side not in ("pred", "true"):
        raise ValueError(f"side must be 'pred' or 'true', not {side!r}")
    return (np.array([row[f"actions_{side}"] for row in rows], dtype=int).reshape(len(rows), len(ACTION_KEYS)),
            np.array([row[f"reasons_{side}"] for row in rows], dtype=int).reshape(len(rows), len(REASON_KEYS)))


def _same_clips(rows_by_model: Mapping[str, Sequence[Mapping]]) -> list[str]:
    """The clip names the models share, in the first model's order; raises when the models' clips differ."""
    if not rows_by_model:
        raise ValueError("no models given")
    names = {model: [row["file_name"] for row in rows] for model, rows in rows_by_model.items()}
    first, *others = names.items()
    for model, clips in others:
        if sorted(clips) != sorted(first[1]):
            raise ValueError(f"{model} and {first[0]} were evaluated on different clips")
    return first[1]


def plot_prediction_distributions(rows_by_model: Mapping[str, Sequence[Mapping]], title: str = "") -> plt.Figure:
    """Fig. 4 from prediction rows: the ground truth (row "GT") and then each model's predictions."""
    _same_clips(rows_by_model)
    first = next(iter(rows_by_model.values()))
    rows = {"GT": label_matrices(first, "true")}
    rows.update({name: label_matrices(model_rows) for name, model_rows in rows_by_model.items()})
    return plot_distributions(rows, title)


def confusion_matrices(rows: Sequence[Mapping], kind: str = "actions") -> np.ndarray:
    """Per-class 2x2 confusion matrices ``(classes, 2, 2)`` of prediction rows, classes in index order.

    Each is sklearn's ``multilabel_confusion_matrix`` layout: ``[[TN, FP], [FN, TP]]`` (rows: truth 0/1,
    columns: prediction 0/1). ``kind`` is ``"actions"`` or ``"reasons"``.
    """
    from sklearn.metrics import multilabel_confusion_matrix

    if kind not in _KIND_LABELS:
        raise ValueError(f"kind must be 'actions' or 'reasons', not {kind!r}")
    index = 0 if kind == "actions" else 1
    truth, pred = label_matrices(rows, "true")[index], label_matrices(rows, "pred")[index]
    return multilabel_confusion_matrix(truth, pred, labels=list(range(truth.shape[1])))


def plot_confusion(rows_by_model: Mapping[str, Sequence[Mapping]], kind: str = "actions",
                   classes: Sequence[int] | None = None, title: str | None = None) -> plt.Figure:
    """Per-class 2x2 confusion matrices (counts), one row of panels per model, one column per class.

    ``rows_by_model`` maps a model name to its prediction rows (e.g. ``{"SFT": rows, "A2C": rows}``);
    ``classes`` picks class indices (default: every action, or every reason in Forward/Stop/Left/Right
    group order). Each panel is titled with the class and its F1 = 2TP / (2TP + FP + FN).
    """
    keys, phrases = _KIND_LABELS.get(kind, (None, None))
    if keys is None:
        raise ValueError(f"kind must be 'actions' or 'reasons', not {kind!r}")
    if classes is None:
        classes = range(len(keys)) if kind == "actions" else [i for group in GROUPS.values() for i in group]
    classes = list(classes)
    _same_clips(rows_by_model)
    fig, axes = plt.subplots(len(rows_by_model), len(classes), squeeze=False,
                             figsize=(2.3 * len(classes) + 0.6, 2.2 * len(rows_by_model) + 0.5))
    for (model, rows), row_axes in zip(rows_by_model.items(), axes):
        matrices = confusion_matrices(rows, kind)
        for ax, c in zip(row_axes, classes):
            (tn, fp), (fn, tp) = matrices[c]
            f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
            sns.heatmap(pd.DataFrame(matrices[c], index=["no", "yes"], columns=["no", "yes"]), annot=True, fmt="d",
                        cmap="Blues", cbar=False, square=True, ax=ax, annot_kws=dict(fontsize=9))
            ax.set_title(f"{model} · {phrases[c]}\nF1 {f1:.2f}", fontsize=8)
            ax.set_xlabel("predicted", fontsize=8)
            ax.set_ylabel("true", fontsize=8)
            ax.tick_params(labelsize=8, labelrotation=0)
    fig.suptitle(f"per-{kind[:-1]} confusion matrices (counts)" if title is None else title)
    fig.tight_layout()
    return fig


def _labels_of(row: Mapping) -> tuple:
    return tuple(row["actions_pred"]), tuple(row["reasons_pred"])


def pick_examples(rows_by_model: Mapping[str, Sequence[Mapping]], n_differ: int = 4, n_agree: int = 2) -> list[str]:
    """Clip names for Fig. 1: ``n_differ`` clips whose predicted labels differ between the models, then
    ``n_agree`` where all models predict the same labels (right ones first, then wrong ones).

    Picks are deterministic and spread over the true actions; where a kind runs short, the other fills in.
    """
    clips = _same_clips(rows_by_model)
    by_name = {model: {row["file_name"]: row for row in rows} for model, rows in rows_by_model.items()}
    differ, right, wrong = [], [], []
    for clip in clips:
        rows = [by_name[model][clip] for model in by_name]
        labels = {_labels_of(row) for row in rows}
        if len(labels) > 1:
            differ.append(clip)
        else:
            truth = (tuple(rows[0]["actions_true"]), tuple(rows[0]["reasons_true"]))
            (right if labels == {truth} else wrong).append(clip)
    first = {row["file_name"]: row for row in next(iter(rows_by_model.values()))}

    def spread(names: list[str]) -> list[str]:
        """Round-robin over the true action sets, so that one common action does not fill the gallery."""
        buckets: dict[tuple, list[str]] = {}
        for name in names:
            buckets.setdefault(tuple(first[name]["actions_true"]), []).append(name)
        return [bucket[i] for i in range(max(map(len, buckets.values()), default=0))
                for bucket in buckets.values() if i < len(bucket)]

    differ, agree = spread(differ), spread(right)[:1] + spread(wrong)[:1] + spread(right)[1:] + spread(wrong)[1:]
    picked = differ[:n_differ] + agree[:n_agree]
    rest = differ[n_differ:] + agree[n_agree:]
    return picked + rest[:n_differ + n_agree - len(picked)]


def _arrow_line(ax, y: float, tag: str, actions: Sequence[int], x0: float = 0.36) -> None:
    ax.text(0.0, y, tag, fontsize=9, weight="bold", va="center")
    for i, (arrow, on) in enumerate(zip(ARROWS, actions)):
        ax.text(x0 + 0.1 * i, y, arrow, fontsize=13, va="center", color="tab:green" if on else "0.8")


def plot_examples_by_model(root: str | Path, rows_by_model: Mapping[str, Sequence[Mapping]],
                           file_names: Sequence[str], n_frames: int = 1, cols: int = 2) -> plt.Figure:
    """Fig. 1 for several models: each clip with the ground truth G and every model's prediction as four
    arrows (executable ones green); under each model, its reasons coloured TP green / FP red / FN grey.

    ``rows_by_model`` maps a model name to its prediction rows; ``file_names`` picks the clips (see
    :func:`pick_examples`).
    """
    by_name = {model: {row["file_name"]: row for row in rows} for model, rows in rows_by_model.items()}
    blocks = []  # per clip: the text lines (y order) as (kind, payload)
    for name in file_names:
        first = by_name[next(iter(by_name))][name]
        lines = [("arrows", ("G", first["actions_true"]))]
        for model, rows in by_name.items():
            row = rows[name]
            lines.append(("arrows", (model, row["actions_pred"])))
            for r, phrase in enumerate(REASON_PHRASES):
                truth, pred = row["reasons_true"][r], row["reasons_pred"][r]
                if truth or pred:
                    lines.append(("reason", (phrase, "tab:green" if truth and pred else "tab:red" if pred else "0.55")))
        blocks.append(lines)
    n_lines = max((len(lines) for lines in blocks), default=1)
    n_rows = max(1, -(-len(file_names) // cols))
    fig, axes = plt.subplots(n_rows, 2 * cols, squeeze=False,
                             figsize=(4.6 * cols, max(2.3, 0.24 * n_lines + 0.5) * n_rows),
                             gridspec_kw=dict(width_ratios=[1, 1.3] * cols))
    for ax in axes.flat:
        ax.axis("off")
    for k, (name, lines) in enumerate(zip(file_names, blocks)):
        ax_img, ax_txt = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        frames = [load_image(p) for p in frame_paths(root, name, n_frames)]
        ax_img.imshow(np.concatenate([np.asarray(f) for f in frames], axis=1))
        ax_img.set_title(name, fontsize=7)
        for i, (kind, payload) in enumerate(lines):
            y = 1 - (i + 0.5) / n_lines
            if kind == "arrows":
                _arrow_line(ax_txt, y, *payload)
            else:
                ax_txt.text(0.06, y, payload[0], fontsize=8, color=payload[1], va="center")
    fig.tight_layout()
    return fig
