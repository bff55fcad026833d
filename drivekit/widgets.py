"""ipywidgets for the notebooks: reward weights and A2C settings with a train-and-redraw button.

:func:`reward_panel` shows a slider for the weight of each reward term (``weights``: R1, R2 and, in
the JSON stage, R3), one for the discount γ of the returns when ``discount`` is given, the learning
rate and the number of steps, and a button. A click calls ``run(weights={name: w}, lr=, steps=[,
discount=])`` (e.g. :class:`drivekit.a2c_stage.ShortRuns`), which trains a short run and returns
its log, and redraws the curves. ``panel.train()`` does the same without a click, so a notebook executed
headless (nbval) runs the default configuration and shows its curves in the cell's output.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd


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
