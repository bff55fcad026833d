"""ipywidgets for the notebooks: an instant reward explorer, and reward weights and A2C settings with a
train-and-redraw button.

:func:`reward_explorer` re-scores answers sampled once (``score_answers``: every reward term, every R2
variant, computed once) under the weights and the R2 variant the sliders choose: a move only re-adds
cached columns, so it answers at once, and shows each clip's answers ranked by R and the mean R.

:func:`reward_panel` shows a slider for the weight of each reward term (``weights``: R1, R2 and, in
the JSON stage, R3), one for the discount γ of the returns when ``discount`` is given, the learning
rate and the number of steps (default :data:`PANEL_STEPS`: a measured run that fixes more answers than
it breaks), and a button. A click
prints the run's estimated time, calls ``run(weights={name: w}, lr=, steps=[, discount=])`` (e.g.
:class:`drivekit.stages.a2c_stage.ShortRuns`), which trains a short run and answers a fixed probe of clips
before and after it, then shows F1_act / F1_rsn after every run so far against the start's, the
answers that changed, and the training curves. ``panel.train()`` does the same without a click, so a
notebook executed headless (nbval) runs the default configuration and shows it in the cell's output.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from drivekit.evaluation.reports import score
from drivekit.text.formats import target_text
from drivekit.evaluation.metrics import sample_f1
from drivekit.rewards.weighted_reward import RewardSettings, make_reward


# ---------------------------------------------------------------------------------------------
# The reward explorer: re-weight cached answers, no training
# ---------------------------------------------------------------------------------------------
EXPLORER_VARIANTS = ("label_f1", "bleu", "bleu_raw")  # the R2 variants that need no model


def score_answers(answers: pd.DataFrame, clip_reward=None, variants: Sequence[str] = EXPLORER_VARIANTS,
                  target: str = "plain") -> pd.DataFrame:
    """``answers`` (one row per sampled answer: ``file_name``, ``text``, ``actions``, ``reasons``) with a
    column per reward term, each computed once by the terms training uses (:func:`make_reward`): ``r1``
    (when ``clip_reward`` is given), ``r2:<variant>`` for each R2 variant and, for ``target="json"``,
    ``r3``; on JSON answers R1 and R2 read the JSON's views, as in the JSON stage."""
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
    answers ranked by R (``rank`` 1 = the answer this reward prefers). Nothing is recomputed."""
    out = scored[["file_name", "text"]].copy()
    total = np.zeros(len(scored))
    for name, weight in weights.items():
        column = f"r2:{variant}" if name == "r2" else name
        if column not in scored:
            raise KeyError(f"no cached scores for {column!r}; score_answers computed {list(scored.columns[4:])}")
        out[name] = scored[column].to_numpy()
        total = total + weight * out[name].to_numpy()
    out["R"] = total
    out["rank"] = out.groupby("file_name")["R"].rank(ascending=False, method="first").astype(int)
    return out.sort_values(["file_name", "rank"])


class RewardExplorer:
    """The widgets of :func:`reward_explorer`: a slider per weight, the R2 variant, and the ranked table."""

    def __init__(self, scored: pd.DataFrame, weights: Mapping[str, float], variants: Sequence[str], shown: int = 3):
        import ipywidgets as w

        self.scored, self.shown = scored, shown
        self.default = rescore(scored, weights, variants[0])
        style = {"description_width": "90px"}
        self.weights = {name: w.FloatSlider(value=value, min=0.0, max=2.0, step=0.1, description=f"{name} weight",
                                            style=style, continuous_update=True)
                        for name, value in weights.items()}
        self.variant = w.Dropdown(options=list(variants), value=variants[0], description="R2 variant", style=style)
        self.output = w.Output()
        for widget in (*self.weights.values(), self.variant):
            widget.observe(lambda _: self.redraw(), names="value")
        self.box = w.VBox([w.HBox([w.VBox(list(self.weights.values())), self.variant]), self.output])
        self.redraw()

    def table(self) -> tuple[pd.DataFrame, dict]:
        """The current ranking (the top ``shown`` answers of each clip, with their rank under the default
        weights) and a summary: mean R, and on how many clips the top answer changed from the default's."""
        now = rescore(self.scored, {k: s.value for k, s in self.weights.items()}, self.variant.value)
        now["default rank"] = self.default["rank"].loc[now.index].to_numpy()  # rows keep their index
        top_now = now[now["rank"] == 1]["text"].to_numpy()
        top_before = self.default[self.default["rank"] == 1]["text"].to_numpy()
        summary = dict(mean_R=float(now["R"].mean()), clips=int(now["file_name"].nunique()),
                       top_changed=int((top_now != top_before).sum()))
        return now[now["rank"] <= self.shown].round(3), summary

    def redraw(self) -> None:
        from IPython.display import display

        shown, summary = self.table()
        with self.output:
            self.output.clear_output(wait=True)
            print(f"mean R {summary['mean_R']:.3f} over {len(self.scored)} answers; the best answer changed on "
                  f"{summary['top_changed']} of {summary['clips']} clips (vs the first weights)")
            display(shown)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


def reward_explorer(scored: pd.DataFrame, weights: Mapping[str, float] | None = None,
                    variants: Sequence[str] = EXPLORER_VARIANTS, shown: int = 3) -> RewardExplorer:
    """Sliders for the reward weights and the R2 variant over answers scored once (:func:`score_answers`);
    each move re-ranks every clip's answers by the new R (:func:`rescore`) without sampling or training."""
    if weights is None:
        weights = {name: 1.0 for name in ("r1", "r2", "r3") if name == "r2" or name in scored}
    return RewardExplorer(scored, weights, variants, shown)


# ---------------------------------------------------------------------------------------------
# The training panel
# ---------------------------------------------------------------------------------------------
# The panel's default length: the shortest run that fixed more probe answers than it broke, in every seed, in
# notebook 04's panel (A2C with the experiment's chosen settings, from the 1/32 SFT, 256 validation clips;
# shorter runs changed answers too, mostly for the worse). Measured by benchmarks/bench_training_panel.py:
# benchmarks/results/training_panel.json ("shortest_gaining").
PANEL_STEPS = 80
SHOWN_CHANGES = 10  # rows of the changed-answers table shown after a run (panel.changed holds them all)


def probe_f1(rows: Sequence[Mapping]) -> dict:
    """F1_act and F1_rsn (the proposal's sample-level F1, :func:`drivekit.evaluation.reports.score`) of prediction rows."""
    s = score(list(rows))
    return {"F1_act": s["actions"]["f1_all"], "F1_rsn": s["reasons"]["f1_all"]}


def clip_f1(row: Mapping) -> float:
    """One clip's F1: the mean of its action and reason label-set F1s."""
    return float(np.mean([sample_f1([row[f"{kind}_true"]], [row[f"{kind}_pred"]]) for kind in ("actions", "reasons")]))


def shown_answer(row: Mapping, target: str = "plain") -> str:
    """An answer as the changed-answers table shows it: the text, or for a JSON answer its labels."""
    if target != "json":
        return row["text"]
    return target_text(row["actions_pred"], row["reasons_pred"]) + ("" if row["ok"] else " (invalid JSON)")


def changed_answers(before: Sequence[Mapping], after: Sequence[Mapping], target: str = "plain") -> pd.DataFrame:
    """The probe clips whose greedy answer changed: ``clip``, ``truth``, the answer ``before`` and ``after``,
    and ``ΔF1``, the change of the clip's F1 (:func:`clip_f1`; > 0: the run fixed something)."""
    rows = [dict(clip=a["file_name"], truth=target_text(a["actions_true"], a["reasons_true"]),
                 before=shown_answer(b, target), after=shown_answer(a, target), **{"ΔF1": clip_f1(a) - clip_f1(b)})
            for b, a in zip(before, after) if b["text"] != a["text"]]
    return pd.DataFrame(rows, columns=["clip", "truth", "before", "after", "ΔF1"])


def run_scores(before: Sequence[Mapping], after: Sequence[Mapping], steps: int, seconds: float,
               target: str = "plain") -> dict:
    """One row of the panel's score table: F1 after the run, its change from the start, how many answers
    changed (and on how many clips F1 rose or fell), the run's seconds."""
    start, now, changes = probe_f1(before), probe_f1(after), changed_answers(before, after, target)
    return dict(steps=steps, **now, **{f"Δ{k}": now[k] - start[k] for k in now}, changed=len(changes),
                better=int((changes["ΔF1"] > 0).sum()), worse=int((changes["ΔF1"] < 0).sum()), seconds=round(seconds, 1))


class RewardPanel:
    """The widgets of :func:`reward_panel`. ``logs`` keeps every run's log, ``last`` the latest; for runs
    scored on a probe, ``scores`` has a row per run (the start first) and ``changed`` the last run's
    changed answers."""

    def __init__(self, run: Callable[..., object], plot: Callable[[dict[str, pd.DataFrame]], object], *,
                 weights: Mapping[str, float] | None = None, discount: float | None = None, lr: float = 2e-4,
                 steps: int = PANEL_STEPS, max_steps: int = 100):
        import ipywidgets as w

        self.run, self.plot = run, plot
        style = {"description_width": "90px"}
        self.weights = {name: w.FloatSlider(value=value, min=0.0, max=2.0, step=0.1, description=f"{name} weight",
                                            style=style)
                        for name, value in (weights or {"r1": 1.0, "r2": 1.0}).items()}
        self.discount = None if discount is None else w.FloatSlider(
            value=discount, min=0.5, max=1.0, step=0.01, description="γ (discount)", style=style)
        self.lr = w.FloatLogSlider(value=lr, base=10, min=-6, max=-1, step=0.1, description="learning rate",
                                   readout_format=".1e", style=style)
        self.steps = w.IntSlider(value=steps, min=1, max=max(max_steps, steps), step=1, description="steps",
                                 style=style)
        self.button = w.Button(description="Train and redraw", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self._clicked())
        left = [*self.weights.values(), *([self.discount] if self.discount is not None else [])]
        self.box = w.VBox([w.HBox([w.VBox(left), w.VBox([self.lr, self.steps, self.button])]), self.output])
        self.logs: dict[str, pd.DataFrame] = {}
        self.last: pd.DataFrame | None = None
        self.scores, self.changed, self.clips = pd.DataFrame(), pd.DataFrame(), 0

    def settings(self) -> dict:
        s = dict(weights={name: slider.value for name, slider in self.weights.items()}, lr=self.lr.value,
                 steps=int(self.steps.value))
        if self.discount is not None:
            s["discount"] = self.discount.value
        return s

    def label(self, s: dict) -> str:
        weights = " ".join(f"{name}={value:g}" for name, value in s["weights"].items())
        discount = f" γ={s['discount']:g}" if "discount" in s else ""
        return f"#{len(self.logs) + 1} {weights}{discount} lr={s['lr']:.0e} steps={s['steps']}"

    def estimate(self, steps: int) -> str:
        """What the run of ``steps`` steps should take, from ``run.estimate`` (e.g. ShortRuns.estimate)."""
        estimate = getattr(self.run, "estimate", None)
        found = estimate(steps) if callable(estimate) else None
        return str(found) if found is not None else "estimated time: not known before a first run has been timed"

    def record(self, label: str, result, seconds: float) -> None:
        """Add a probe-scored run's row to ``scores`` (the start's row first) and its changes to ``changed``."""
        target = getattr(result, "target", "plain")
        if self.scores.empty:
            start = run_scores(result.before, result.before, 0, 0.0, target)
            self.scores = pd.DataFrame([start], index=["start (before any run)"])
        row = pd.DataFrame([run_scores(result.before, result.after, result.steps, seconds, target)], index=[label])
        self.scores = pd.concat([self.scores, row])
        self.changed, self.clips = changed_answers(result.before, result.after, target), len(result.after)

    def show_probe(self) -> None:
        """The score table (every run so far) and the last run's changed answers (the first :data:`SHOWN_CHANGES`)."""
        from IPython.display import display

        display(self.scores.round(3))
        n = len(self.changed)
        more = f"; the first {SHOWN_CHANGES} (all in panel.changed)" if n > SHOWN_CHANGES else ""
        print(f"{n} of {self.clips} probe answers changed in the last run{more}")
        if n:
            display(self.changed.head(SHOWN_CHANGES).round(3))

    def train(self):
        """Train one short run with the current settings, after printing its estimated time; then show
        the probe's F1 table and changed answers (when the run scores a probe). Returns the figure of
        the last runs' curves."""
        s = self.settings()
        label = self.label(s)
        print(self.estimate(s["steps"]), flush=True)
        print(f"training {label} ...", flush=True)
        t0 = time.perf_counter()
        result = self.run(**s)
        seconds = time.perf_counter() - t0
        self.last = getattr(result, "log", result)
        self.logs[label] = self.last
        if hasattr(result, "after"):
            print(f"took {seconds:.0f} s")
            self.record(label, result, seconds)
            self.show_probe()
        shown = dict(list(self.logs.items())[-3:])  # the latest runs side by side
        return self.plot(shown)

    def _clicked(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.button.disabled = True
        with self.output:
            self.output.clear_output(wait=True)
            try:
                fig = self.train()
                display(fig)
                plt.close(fig)
            finally:
                self.button.disabled = False

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


def reward_panel(run: Callable[..., object], plot: Callable[[dict[str, pd.DataFrame]], object] | None = None,
                 **defaults) -> RewardPanel:
    """Sliders for the reward weights (and the discount), learning rate and steps (default
    :data:`PANEL_STEPS`), and a button that trains ``run`` and redraws.

    ``run(weights=, lr=, steps=[, discount=])`` returns a log, or a run scored on a probe (e.g. a
    :class:`drivekit.stages.a2c_stage.ShortRun`: ``log``, ``before``, ``after``, ``steps``, ``target``), whose
    F1 and changed answers the panel then shows; a ``run.estimate(steps)`` is printed before each run.
    ``plot`` maps ``{run label: log}`` to a figure (default: the Fig. 3-style curves of
    :func:`drivekit.stages.a2c_stage.curves` through :func:`drivekit.evaluation.plots.plot_loss_curves`).
    """
    if plot is None:
        from drivekit.stages.a2c_stage import curves
        from drivekit.evaluation.plots import plot_loss_curves

        def plot(logs):
            return plot_loss_curves({name: curves(log) for name, log in logs.items()}, title="A2C runs")

    return RewardPanel(run, plot, **defaults)
