"""The training panel of notebook 04 (:func:`reward_panel`, also in :mod:`drivekit.course.widgets`): weight
controls, the discount γ, the KL coefficient, learning rate and steps, and a button that trains a short run and
redraws (see :mod:`drivekit.course.widgets` for what it shows)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from drivekit.course.controls import RATIOS_NOTE, STYLE, WeightControls, bundle, esc, show_whole, whole
from drivekit.evaluation.metrics import sample_f1
from drivekit.evaluation.reports import score
from drivekit.text.formats import target_text


# ---------------------------------------------------------------------------------------------
# The training panel
# ---------------------------------------------------------------------------------------------
# The panel's default length: the shortest run that fixed more probe answers than it broke, in every seed, in
# notebook 04's panel (A2C with the experiment's chosen settings, from the 1/32 SFT, 256 validation clips;
# shorter runs changed answers too, mostly for the worse). Measured by benchmarks/bench_training_panel.py:
# benchmarks/results/training_panel.json ("shortest_gaining").
PANEL_STEPS = 80
SHOWN_CHANGES = 10  # rows of the changed-answers table shown after a run (panel.changed holds them all)
LEARNING_RATES = tuple(m * 10.0 ** e for e in range(-6, -1) for m in (1, 2, 3, 5))  # the lr slider's stops
KL_COEFS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # the KL slider's stops; 0: no KL term


def number(value: float) -> str:
    """A learning rate or coefficient as the panel writes it, the same in its slider and its run labels:
    ``3e-04``, ``2.5e-04``."""
    short = f"{value:.0e}"
    return short if float(short) == value else f"{value:.2g}" if 1e-3 <= value < 1e3 else f"{value:.1e}"


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


def drawn_log(log: pd.DataFrame, settings: Mapping, kl_coef: float | None = None) -> pd.DataFrame:
    """A run's log without the columns a plot would draw flat for nothing: ``reward_<term>`` of a term whose
    weight was 0 (the reward does not evaluate it), and ``kl`` when the KL coefficient (``settings["kl_coef"]``,
    else ``kl_coef``) was 0 (no reference forward: A2C logs 0)."""
    drop = [f"reward_{name}" for name, weight in settings.get("weights", {}).items() if weight == 0]
    kl = settings.get("kl_coef", kl_coef)
    if kl is not None and kl == 0:
        drop.append("kl")
    return log.drop(columns=[c for c in drop if c in log])


class RewardPanel:
    """The widgets of :func:`reward_panel`. ``logs`` keeps every run's log, ``last`` the latest; for runs
    scored on a probe, ``scores`` has a row per run (the start first) and ``changed`` the last run's
    changed answers."""

    def __init__(self, run: Callable[..., object], plot: Callable[[dict[str, pd.DataFrame]], object], *,
                 weights: Mapping[str, float] | None = None, discount: float | None = None, lr: float = 2e-4,
                 steps: int = PANEL_STEPS, max_steps: int = 100, kl_coef: float | None = None):
        import ipywidgets as w

        self.run, self.plot = run, plot
        self.controls = WeightControls(weights or {"r1": 1.0, "r2": 1.0})
        self.shares, self.scale = self.controls.shares, self.controls.scale
        self.discount = None if discount is None else w.FloatSlider(
            value=discount, min=0.5, max=1.0, step=0.01, description="γ (discount)", style=STYLE)
        rates, coefs = sorted({*LEARNING_RATES, lr}), sorted({*KL_COEFS, kl_coef or 0.0})
        # index=, not value=: a value at index 0 would leave the readout empty (ipywidgets 8.1)
        self.lr = w.SelectionSlider(options=[(number(v), v) for v in rates], index=rates.index(lr),
                                    description="learning rate", style=STYLE)
        self.kl = None if kl_coef is None else w.SelectionSlider(
            options=[("0 (off)" if v == 0 else f"{v:g}", v) for v in coefs], index=coefs.index(kl_coef),
            description="KL coef", style=STYLE)
        self.steps = w.IntSlider(value=steps, min=1, max=max(max_steps, steps), step=1, description="steps",
                                 style=STYLE)
        self.button = w.Button(description="Train and redraw", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self._clicked())
        left = [*self.controls.sliders, *([self.discount] if self.discount is not None else [])]
        right = [self.lr, *([self.kl] if self.kl is not None else []), self.steps, self.controls.formula, self.button]
        self.box = w.VBox([w.HTML(f"<p style='max-width:60em'>{RATIOS_NOTE}</p>"),
                           w.HBox([w.VBox(left), w.VBox(right)]), self.output])
        self.box.add_class("drivekit-training-panel")
        self.logs: dict[str, pd.DataFrame] = {}
        self.run_settings: dict[str, dict] = {}
        self.last: pd.DataFrame | None = None
        self.scores, self.changed, self.clips = pd.DataFrame(), pd.DataFrame(), 0

    def settings(self) -> dict:
        s = dict(weights=self.controls.values(), lr=self.lr.value, steps=int(self.steps.value))
        if self.discount is not None:
            s["discount"] = self.discount.value
        if self.kl is not None:
            s["kl_coef"] = self.kl.value
        return s

    def label(self, s: dict) -> str:
        weights = " ".join(f"{name}={value:g}" for name, value in s["weights"].items())
        discount = f" γ={s['discount']:g}" if "discount" in s else ""
        kl = f" kl={s['kl_coef']:g}" if "kl_coef" in s else ""
        return f"#{len(self.logs) + 1} {weights}{discount}{kl} lr={number(s['lr'])} steps={s['steps']}"

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
        """The score table (every run so far) and the last run's changed answers (the first :data:`SHOWN_CHANGES`),
        their texts whole."""
        show_whole(self.scores.round(3))
        n = len(self.changed)
        more = f"; the first {SHOWN_CHANGES} (all in panel.changed)" if n > SHOWN_CHANGES else ""
        print(f"{n} of {self.clips} probe answers changed in the last run{more}")
        if n:
            show_whole(self.changed.head(SHOWN_CHANGES).round(3))

    def drawn(self, label: str) -> pd.DataFrame:
        """Run ``label``'s log as the plot gets it (:func:`drawn_log`)."""
        kl = getattr(getattr(self.run, "settings", None), "kl_coef", None)
        return drawn_log(self.logs[label], self.run_settings.get(label, {}), kl)

    def train(self):
        """Train one short run with the current settings, after printing its estimated time; then show
        the probe's F1 table and changed answers (when the run scores a probe). Returns the figure of
        the last runs' curves."""
        s = self.settings()
        label = self.label(s)
        print(self.estimate(s["steps"]), flush=True)
        print(f"training {label}", flush=True)
        t0 = time.perf_counter()
        result = self.run(**s)
        seconds = time.perf_counter() - t0
        self.last = getattr(result, "log", result)
        self.logs[label], self.run_settings[label] = self.last, s
        if hasattr(result, "after"):
            print(f"took {seconds:.0f} s")
            self.record(label, result, seconds)
            self.show_probe()
        shown = {name: self.drawn(name) for name in list(self.logs)[-3:]}  # the latest runs side by side
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

    def settings_text(self) -> str:
        s = self.settings()
        parts = [self.controls.formula_text(), *([f"γ {s['discount']:g}"] if "discount" in s else []),
                 *([f"KL coef {s['kl_coef']:g}" + (" (off)" if not s["kl_coef"] else "")] if "kl_coef" in s else []),
                 f"learning rate {number(s['lr'])}", f"{s['steps']} steps"]
        return "Settings: " + ", ".join(parts) + "."

    def _repr_mimebundle_(self, include=None, exclude=None):
        note = "The sliders and the Train button need a running kernel (JupyterLab, Colab)."
        scores = whole(self.scores.round(3)) if not self.scores.empty else {"text/html": "<p>no run yet</p>",
                                                                            "text/plain": "no run yet"}
        page = (f"<p style='max-width:60em'>{RATIOS_NOTE}</p><p><i>{note}</i> {esc(self.settings_text())}</p>"
                f"<p>F1 on the probe after each run so far:</p>{scores['text/html']}")
        text = f"{note}\n{self.settings_text()}\nF1 on the probe after each run so far:\n{scores['text/plain']}"
        return bundle(self.box, **{"text/html": page, "text/plain": text})


def reward_panel(run: Callable[..., object], plot: Callable[[dict[str, pd.DataFrame]], object] | None = None,
                 **defaults) -> RewardPanel:
    """Weight controls (shares and a scale), the discount and the KL coefficient (when ``discount`` and
    ``kl_coef`` are given), learning rate and steps (default :data:`PANEL_STEPS`), and a button that trains
    ``run`` and redraws.

    ``run(weights=, lr=, steps=[, discount=][, kl_coef=])`` returns a log, or a run scored on a probe (e.g. a
    :class:`drivekit.stages.a2c_stage.ShortRun`: ``log``, ``before``, ``after``, ``steps``, ``target``), whose
    F1 and changed answers the panel then shows; a ``run.estimate(steps)`` is printed before each run.
    ``plot`` maps ``{run label: log}`` to a figure (default: the Fig. 3-style curves of
    :func:`drivekit.stages.a2c_stage.curves` through :func:`drivekit.evaluation.plots.plot_loss_curves`); the
    logs it gets have no column for a term of weight 0, nor ``kl`` when the KL coefficient is 0 (:func:`drawn_log`).
    """
    if plot is None:
        from drivekit.stages.a2c_stage import curves
        from drivekit.evaluation.plots import plot_loss_curves

        def plot(logs):
            return plot_loss_curves({name: curves(log) for name, log in logs.items()}, title="A2C runs")

    return RewardPanel(run, plot, **defaults)
