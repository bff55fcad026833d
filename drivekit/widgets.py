"""ipywidgets for the notebooks: an instant reward explorer, and reward weights and A2C settings with a
train-and-redraw button.

:func:`reward_explorer` re-scores answers sampled once (``score_answers``: every reward term, every R2
variant, computed once) under the weights and the R2 variant the sliders choose: a move only re-adds
cached columns, so it answers at once, and shows each clip's answers ranked by R and the mean R.

:func:`reward_panel` shows a slider for the weight of each reward term (``weights``: R1, R2 and, in
the JSON stage, R3), one for the discount γ of the returns when ``discount`` is given, the learning
rate and the number of steps, and a button. A click calls ``run(weights={name: w}, lr=, steps=[,
discount=])`` (e.g. :class:`drivekit.a2c_stage.ShortRuns`), which trains a short run and returns
its log, and redraws the curves. ``panel.train()`` does the same without a click, so a notebook executed
headless (nbval) runs the default configuration and shows its curves in the cell's output.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .action_reward import action_reward
from .structure_reward import structure_reward


# ---------------------------------------------------------------------------------------------
# The reward explorer: re-weight cached answers, no training
# ---------------------------------------------------------------------------------------------
EXPLORER_VARIANTS = ("label_f1", "bleu", "bleu_raw")  # the R2 variants that need no model


def score_answers(answers: pd.DataFrame, clip_reward=None, variants: Sequence[str] = EXPLORER_VARIANTS,
                  structure: bool = False) -> pd.DataFrame:
    """``answers`` (one row per sampled answer: ``file_name``, ``text``, ``actions``, ``reasons``) with a
    column per reward term, each computed once: ``r1`` (when ``clip_reward`` is given), ``r2:<variant>``
    for each R2 variant and, with ``structure``, ``r3`` (:mod:`drivekit.structure_reward`)."""
    texts = answers["text"].tolist()
    batch = dict(file_name=answers["file_name"].tolist(), actions=answers["actions"].tolist(),
                 reasons=answers["reasons"].tolist())
    scored = answers.copy()
    if clip_reward is not None:
        scored["r1"] = clip_reward(texts, **batch)
    for variant in variants:
        scored[f"r2:{variant}"] = action_reward(variant)(texts, **batch)
    if structure:
        scored["r3"] = structure_reward(texts)
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


class RewardPanel:
    """The widgets of :func:`reward_panel`; ``logs`` keeps every run's log, ``last`` the latest."""

    def __init__(self, run: Callable[..., pd.DataFrame], plot: Callable[[dict[str, pd.DataFrame]], object], *,
                 weights: Mapping[str, float] | None = None, discount: float | None = None, lr: float = 2e-4,
                 steps: int = 10, max_steps: int = 100):
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
        self.steps = w.IntSlider(value=steps, min=1, max=max_steps, step=1, description="steps", style=style)
        self.button = w.Button(description="Train and redraw", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self._clicked())
        left = [*self.weights.values(), *([self.discount] if self.discount is not None else [])]
        self.box = w.VBox([w.HBox([w.VBox(left), w.VBox([self.lr, self.steps, self.button])]), self.output])
        self.logs: dict[str, pd.DataFrame] = {}
        self.last: pd.DataFrame | None = None

    def settings(self) -> dict:
        s = dict(weights={name: slider.value for name, slider in self.weights.items()}, lr=self.lr.value,
                 steps=int(self.steps.value))
        if self.discount is not None:
            s["discount"] = self.discount.value
        return s

    def label(self, s: dict) -> str:
        weights = " ".join(f"{name}={value:g}" for name, value in s["weights"].items())
        discount = f" γ={s['discount']:g}" if "discount" in s else ""
        return f"{weights}{discount} lr={s['lr']:.0e} steps={s['steps']}"

    def train(self):
        """Train one short run with the current settings; returns the figure of the last runs' curves."""
        s = self.settings()
        self.last = self.run(**s)
        self.logs[self.label(s)] = self.last
        shown = dict(list(self.logs.items())[-3:])  # the latest runs side by side
        return self.plot(shown)

    def _clicked(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.button.disabled = True
        with self.output:
            self.output.clear_output(wait=True)
            print("training ...", self.label(self.settings()))
            try:
                fig = self.train()
                self.output.clear_output(wait=True)
                display(fig)
                plt.close(fig)
            finally:
                self.button.disabled = False

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


def reward_panel(run: Callable[..., pd.DataFrame], plot: Callable[[dict[str, pd.DataFrame]], object] | None = None,
                 **defaults) -> RewardPanel:
    """Sliders for the reward weights (and the discount), learning rate and steps, and a button that
    trains ``run`` and redraws.

    ``plot`` maps ``{run label: log}`` to a figure (default: the Fig. 3-style curves of
    :func:`drivekit.a2c_stage.curves` through :func:`drivekit.plots.plot_loss_curves`).
    """
    if plot is None:
        from .a2c_stage import curves
        from .plots import plot_loss_curves

        def plot(logs):
            return plot_loss_curves({name: curves(log) for name, log in logs.items()}, title="A2C runs")

    return RewardPanel(run, plot, **defaults)
