"""ipywidgets for the notebooks: R1 on a text you type (03), the reward explorers (04, 05) and the training
panel (04).

:func:`r1_explorer` (notebook 03) scores a typed text against a picked clip with the CLIP reward R1 and
shows the clip's frames.

:func:`reward_explorer` re-scores answers scored once (``score_answers``: every reward term, every R2
variant, computed once) under the weights and the R2 variant the controls choose: a move only re-adds
cached columns, so it answers at once. Its answers are the policy's samples beside answers built to differ
in one way each (:mod:`drivekit.course.candidates`: the true answer, the right action with a wrong reason,
the wrong action with the right reason, a malformed or verbose one, SFT's), so that every weight and every
R2 variant reorders something. One table shows every answer of every clip, whole, ranked by R; answers
with the same R share a rank (``2=``).

The weights are set as **shares plus a scale** (:class:`WeightControls`): ``w_i = scale · share_i / Σ share``.
Only the ratios of the weights decide a ranking, since multiplying every weight by one number multiplies
every R by it; the scale (Σ w) changes R's values, never a ranking. In A2C the scale multiplies every
reward, return and advantage, so it acts like a learning-rate multiplier (:data:`RATIOS_NOTE`).

:func:`reward_panel` shows the same weight controls, the discount γ of the returns when ``discount`` is
given, the KL coefficient when ``kl_coef`` is given, the learning rate and the number of steps (default
:data:`PANEL_STEPS`: a measured run that fixes more answers than it breaks), and a button. A click
prints the run's estimated time, calls ``run(weights={name: w}, lr=, steps=[, discount=][, kl_coef=])`` (e.g.
:class:`drivekit.stages.a2c_stage.ShortRuns`), which trains a short run and answers a fixed probe of clips
before and after it, then shows F1_act / F1_rsn after every run so far against the start's, the
answers that changed, and the training curves: no curve for a reward term of weight 0, and the KL only
when its coefficient is above 0. ``panel.train()`` does the same without a click, so a notebook executed
headless (nbval) runs the default configuration and shows it in the cell's output.

**Where ipywidgets' front end is missing** (GitHub, a static viewer, a notebook opened untrusted, before
its cells run) a widget's output shows what its first state shows: each object here displays as a bundle
of the widget view, an HTML table or PNG image of its current state, and a plain-text version
(``_repr_mimebundle_``), never the widget's ``VBox(children=...`` repr.
"""
from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from drivekit.course.controls import (ANSWER_CELL, CELL, CLIP_ROW, LEFT_CELL, RATIOS_NOTE, STYLE, TERM_LABELS,
                                      VARIANTS_NOTE, WeightControls, bundle, esc, show_whole, whole, wrap)
from drivekit.course.panel import (KL_COEFS, LEARNING_RATES, PANEL_STEPS, SHOWN_CHANGES, RewardPanel, changed_answers,
                                   clip_f1, drawn_log, number, probe_f1, reward_panel, run_scores, shown_answer)
from drivekit.text.formats import target_text
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

__all__ = ["RATIOS_NOTE", "WeightControls", "whole", "show_whole", "EXPLORER_VARIANTS", "EXPLORER_MIME", "score_answers",
           "rescore", "rank_label", "rankings", "changed_clips", "RewardExplorer", "reward_explorer", "stored_explorer",
           "explorer_answers", "R1Explorer", "r1_explorer", "PANEL_STEPS", "SHOWN_CHANGES", "LEARNING_RATES", "KL_COEFS",
           "number", "probe_f1", "clip_f1", "shown_answer", "changed_answers", "run_scores", "drawn_log", "RewardPanel",
           "reward_panel", "ANSWER_CELL", "CELL", "CLIP_ROW", "LEFT_CELL", "STYLE", "TERM_LABELS", "VARIANTS_NOTE", "bundle", "esc", "wrap"]


# ---------------------------------------------------------------------------------------------
# The reward explorer: re-weight cached answers, no training
# ---------------------------------------------------------------------------------------------
EXPLORER_VARIANTS = ("label_f1", "bleu", "bleu_raw")  # the R2 variants that need no model
# The explorer's answers and their cached scores, stored in the cell's output for the tests of the committed
# notebooks (tests/test_stored_outputs.py); no front end renders this mimetype.
EXPLORER_MIME = "application/vnd.drivekit.reward-explorer+json"


def score_answers(answers: pd.DataFrame, clip_reward=None, variants: Sequence[str] = EXPLORER_VARIANTS,
                  target: str = "plain") -> pd.DataFrame:
    """``answers`` (one row per answer: ``file_name``, ``text``, ``actions``, ``reasons``, any other columns
    kept, e.g. ``source``) with a column per reward term, each computed once by the terms training uses
    (:func:`make_reward`): ``r1`` (when ``clip_reward`` is given), ``r2:<variant>`` for each R2 variant and,
    for ``target="json"``, ``r3``; on JSON answers R1 and R2 read the JSON's views, as in the JSON stage."""
    texts = answers["text"].tolist()
    batch = dict(file_name=answers["file_name"].tolist(), actions=answers["actions"].tolist(),
                 reasons=answers["reasons"].tolist())
    scored = answers.copy()
    for i, variant in enumerate(variants):  # R1 (and R3) with the first variant, once
        reward = make_reward(RewardSettings(r2=variant), clip_reward if i == 0 else None, target)
        for name, values in reward.evaluate(texts, **batch).components.items():
            if name == "r2" or i == 0:
                scored[f"r2:{variant}" if name == "r2" else name] = values
    return scored


def rescore(scored: pd.DataFrame, weights: Mapping[str, float], variant: str = "label_f1") -> pd.DataFrame:
    """R = Σ weight · term over ``scored``'s cached terms (``r2`` read from ``r2:<variant>``), each clip's
    answers ranked by R: ``rank`` 1 is the answer this reward prefers, and answers with the same R share the
    best rank among them (``tied``). Clips keep their order, and answers of one rank theirs. Nothing is
    recomputed."""
    out = scored[[c for c in ("file_name", "text", "source", "count") if c in scored]].copy()
    total = np.zeros(len(scored))
    for name, weight in weights.items():
        column = f"r2:{variant}" if name == "r2" else name
        if column not in scored:
            computed = [c for c in scored.columns if c == "r1" or c == "r3" or c.startswith("r2:")]
            raise KeyError(f"no cached scores for {column!r}; score_answers computed {computed}")
        out[name] = scored[column].to_numpy()
        total = total + weight * out[name].to_numpy()
    out["R"] = np.round(total, 9)  # equal terms give equal sums; rounding keeps float noise from splitting a tie
    out["rank"] = out.groupby("file_name", sort=False)["R"].rank(ascending=False, method="min").astype(int)
    out["tied"] = out.groupby(["file_name", "rank"], sort=False)["R"].transform("size") > 1
    clip = out["file_name"].map({f: i for i, f in enumerate(dict.fromkeys(out["file_name"]))})
    order = np.lexsort((np.arange(len(out)), out["rank"].to_numpy(), clip.to_numpy()))
    return out.iloc[order]


def rank_label(rank: int, tied: bool) -> str:
    """A rank as the table shows it: ``2=`` for a rank shared with another answer."""
    return f"{rank}=" if tied else str(rank)


def rankings(ranked: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{clip: {answer text: rank}}`` of a :func:`rescore` table."""
    return {clip: dict(zip(group["text"], group["rank"])) for clip, group in ranked.groupby("file_name", sort=False)}


def changed_clips(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    """The clips whose answers are ranked differently in two :func:`rescore` tables of the same answers."""
    a, b = rankings(before), rankings(after)
    return [clip for clip in a if a[clip] != b.get(clip)]


class RewardExplorer:
    """The widgets of :func:`reward_explorer`: the weight controls (``shares``, ``scale``), the R2 variant,
    and the one ranked table (``view``) of every answer."""

    def __init__(self, scored: pd.DataFrame, weights: Mapping[str, float], variants: Sequence[str]):
        import ipywidgets as w

        self.scored, self.variants, self.first_weights = scored, tuple(variants), dict(weights)
        self.first = rescore(scored, weights, self.variants[0])
        self.truth = {row.file_name: target_text(row.actions, row.reasons)
                      for row in scored[["file_name", "actions", "reasons"]].itertuples()}
        self.controls = WeightControls(weights)
        self.shares, self.scale = self.controls.shares, self.controls.scale
        self.variant = w.Dropdown(options=list(self.variants), value=self.variants[0], description="R2 variant",
                                  style=STYLE)
        self.view = w.HTML()
        for widget in (*self.controls.sliders, self.variant):
            widget.observe(lambda _: self.redraw(), names="value")
        self.box = w.VBox([w.HTML(f"<p style='max-width:60em'>{RATIOS_NOTE}</p>"),
                           w.HBox([self.controls.box, w.VBox([self.variant, w.HTML(f"<small>{VARIANTS_NOTE}</small>",
                                                                                    layout=w.Layout(max_width="34em")),
                                                               self.controls.formula])]), self.view])
        self.box.add_class("drivekit-reward-explorer")
        self.redraw()

    def weights(self) -> dict[str, float]:
        return self.controls.values()

    def table(self) -> tuple[pd.DataFrame, dict]:
        """Every answer ranked under the current weights and variant, with its rank under the first ones
        (``first rank``), and a summary: mean R, the clips, on how many the ranking changed from the first
        weights' (``changed``) and the best answer (``top_changed``), and how many have a tie."""
        now = rescore(self.scored, self.weights(), self.variant.value)
        first = {(r.file_name, r.text): (r.rank, r.tied) for r in self.first.itertuples()}
        now["first rank"] = [rank_label(*first[(f, t)]) for f, t in zip(now["file_name"], now["text"])]
        top_now = {f: set(g.loc[g["rank"] == 1, "text"]) for f, g in now.groupby("file_name", sort=False)}
        top_first = {f: set(g.loc[g["rank"] == 1, "text"]) for f, g in self.first.groupby("file_name", sort=False)}
        summary = dict(mean_R=float(now["R"].mean()), clips=len(top_now), changed=len(changed_clips(self.first, now)),
                       top_changed=sum(top_now[f] != top_first[f] for f in top_now),
                       ties=int(now.groupby("file_name")["tied"].any().sum()))
        return now, summary

    def summary_text(self, summary: Mapping) -> str:
        return (f"mean R {summary['mean_R']:.3f} over {len(self.scored)} answers; against the first weights "
                f"({self._first_text()}) the ranking changed on {summary['changed']} of {summary['clips']} clips, "
                f"the best answer on {summary['top_changed']}; {summary['ties']} clips have answers with the same R "
                f"(their shared rank is marked =)")

    def _first_text(self) -> str:
        return " + ".join(f"{v:g}·{TERM_LABELS.get(k, k)}" for k, v in self.first_weights.items()) + \
            f", R2 {self.variants[0]}"

    def html(self) -> str:
        """The summary and the table of every answer, as HTML (whole texts, wrapped)."""
        now, summary = self.table()
        terms = list(self.first_weights)
        heads = ["rank", "answer", "from", *[f"{TERM_LABELS.get(t, t)}" + (f" ({self.variant.value})" if t == "r2" else "")
                                             for t in terms], "R", "rank at the first weights"]
        rows = []
        for clip, group in now.groupby("file_name", sort=False):
            rows.append(f"<tr><th colspan='{len(heads)}' style='{CLIP_ROW}'>clip {esc(clip)} · truth: "
                        f"{esc(self.truth[clip])}</th></tr>")
            for r in group.to_dict("records"):
                cells = [f"<td style='{CELL}'>{rank_label(r['rank'], r['tied'])}</td>",
                         f"<td style='{ANSWER_CELL}'>{esc(r['text'])}</td>",
                         f"<td style='{LEFT_CELL}'>{esc(r.get('source', ''))}</td>",
                         *[f"<td style='{CELL}'>{r[t]:.3f}</td>" for t in terms],
                         f"<td style='{CELL}'><b>{r['R']:.3f}</b></td>", f"<td style='{CELL}'>{esc(r['first rank'])}</td>"]
                rows.append(f"<tr class='answer' data-clip='{esc(clip)}'>{''.join(cells)}</tr>")
        head = "".join(f"<th style='{LEFT_CELL if h in ('answer', 'from') else CELL}'>{esc(h)}</th>" for h in heads)
        return (f"<p class='summary' style='max-width:60em'>{esc(self.controls.formula_text())}, R2 "
                f"{esc(self.variant.value)}: {esc(self.summary_text(summary))}</p>"
                f"<table class='drivekit-ranking' style='border-collapse:collapse'><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")

    def text(self) -> str:
        """The summary and every answer, ranked, as plain text (whole texts, wrapped)."""
        now, summary = self.table()
        terms = list(self.first_weights)
        lines = [f"{self.controls.formula_text()}, R2 {self.variant.value}", self.summary_text(summary)]
        for clip, group in now.groupby("file_name", sort=False):
            lines += ["", f"clip {clip} · truth: {self.truth[clip]}"]
            for r in group.to_dict("records"):
                values = "  ".join(f"{TERM_LABELS.get(t, t)} {r[t]:.3f}" for t in terms)
                lines.append(f"  rank {rank_label(r['rank'], r['tied']):<3} R {r['R']:.3f}  ({values})  "
                             f"first rank {r['first rank']}  from: {r.get('source', '')}")
                lines.append(wrap(r["text"]))
        return "\n".join(lines)

    def state(self) -> dict:
        """What the table shows now, as plain data: the weights, the variant and per answer its clip,
        text, rank label and R (3 decimals), in the table's order."""
        now, summary = self.table()
        return dict(weights=self.weights(), variant=self.variant.value, summary=summary,
                    rows=[[r.file_name, r.text, rank_label(r.rank, r.tied), f"{r.R:.3f}"] for r in now.itertuples()])

    def payload(self) -> dict:
        """The answers and every cached term, for :data:`EXPLORER_MIME`."""
        answers = self.scored.assign(actions=[list(map(int, v)) for v in self.scored["actions"]],
                                     reasons=[list(map(int, v)) for v in self.scored["reasons"]])
        return dict(weights=self.first_weights, variants=list(self.variants), answers=answers.to_dict("records"))

    def redraw(self) -> None:
        self.view.value = self.html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        static = (f"<p style='max-width:60em'>{RATIOS_NOTE}</p><p style='max-width:60em'>{VARIANTS_NOTE}</p><p><i>The "
                  f"sliders and the R2 menu need a running kernel (JupyterLab, Colab); this is the table as the cell "
                  f"showed it.</i></p>{self.html()}")
        return bundle(self.box, **{"text/html": static, "text/plain": self.text(), EXPLORER_MIME: self.payload()})


def reward_explorer(scored: pd.DataFrame, weights: Mapping[str, float] | None = None,
                    variants: Sequence[str] = EXPLORER_VARIANTS) -> RewardExplorer:
    """Share sliders and a scale for the reward weights, and the R2 variant, over answers scored once
    (:func:`score_answers`); each move re-ranks every clip's answers by the new R (:func:`rescore`) without
    sampling or training."""
    if weights is None:
        weights = {name: 1.0 for name in ("r1", "r2", "r3") if name == "r2" or name in scored}
    return RewardExplorer(scored, weights, variants)


def stored_explorer(payload: Mapping) -> RewardExplorer:
    """The explorer a stored output was drawn by (its :data:`EXPLORER_MIME` data), rebuilt from its answers and
    cached scores, at its first weights."""
    return RewardExplorer(pd.DataFrame(payload["answers"]), payload["weights"], payload["variants"])


def explorer_answers(clips: Sequence[Mapping], sampled: Sequence[str], sft=None, target: str = "plain",
                     scenes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The explorer's answers: the constructed answers of each clip (SFT's from ``sft``, prediction rows or
    ``{clip: text}``) and the ``sampled`` texts (the same number per clip, in the order of ``clips``), identical
    answers of a clip merged (:mod:`drivekit.course.candidates`)."""
    from drivekit.course import candidates

    return candidates.gather(candidates.constructed_answers(clips, sft, target, scenes),
                             candidates.sampled_answers(clips, sampled))


# ---------------------------------------------------------------------------------------------
# Notebook 03: R1 of a typed text on a picked clip
# ---------------------------------------------------------------------------------------------
class R1Explorer:
    """A clip menu, a text box and R1 of the text on the clip (``readout``), over the clip's frames (``image``)."""

    def __init__(self, reward, frames: Callable[[str], Sequence], clips: Sequence[tuple[str, str]], text: str):
        import ipywidgets as w

        self.reward, self.frames = reward, frames
        self.picker = w.Dropdown(options=list(clips), description="clip", layout=w.Layout(width="95%"))
        self.text = w.Text(value=text, description="text", continuous_update=False, layout=w.Layout(width="95%"))
        self.readout = w.HTML()
        self.image = w.Image(format="png")
        for widget in (self.picker, self.text):
            widget.observe(lambda _: self.redraw(), names="value")
        self.box = w.VBox([self.picker, self.text, self.readout, self.image])
        self.box.add_class("drivekit-r1-explorer")
        self.redraw()

    def score(self) -> float:
        return float(self.reward([self.text.value], file_name=[self.picker.value])[0])

    def png(self, value: float) -> bytes:
        """The clip's frames in a row, R1 and the text in the title, as PNG bytes."""
        import matplotlib.pyplot as plt

        frames = list(self.frames(self.picker.value))
        fig, axes = plt.subplots(1, len(frames), figsize=(2 * len(frames), 2.4), squeeze=False)
        for ax, frame in zip(axes[0], frames):
            ax.imshow(frame)
            ax.axis("off")
        fig.suptitle("\n".join(textwrap.wrap(f"R1 = {value:+.3f}   {self.text.value!r}", 90)), fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        return buffer.getvalue()

    def redraw(self) -> None:
        value = self.score()
        self.value = value
        self.readout.value = f"<b class='r1'>R1 = {value:+.3f}</b> for this text on clip {esc(self.picker.value)}"
        self.image.value = self.png(value)

    def _repr_mimebundle_(self, include=None, exclude=None):
        return bundle(self.box, **{"image/png": base64.b64encode(self.image.value).decode("ascii"),
                                    "text/plain": f"R1 = {self.value:+.3f} for {self.text.value!r} on clip "
                                                  f"{self.picker.value} (the text box and clip menu need a running kernel)"})


def r1_explorer(reward, data_root, clips: Sequence[tuple[str, str]],
                text: str = "Action: Stop/Slow down; Reason: Obstacle: car") -> R1Explorer:
    """R1 (``reward``, a :class:`drivekit.rewards.clip_reward.ClipReward`) of a typed ``text`` on a clip picked
    from ``clips`` (``(label, file_name)`` pairs), whose frames are read from ``data_root``; updated when the
    text box is left or Enter is pressed, or another clip is picked."""
    from drivekit.data.bddoia import frame_paths, load_image

    return R1Explorer(reward, lambda name: [load_image(p) for p in frame_paths(data_root, name)], clips, text)
