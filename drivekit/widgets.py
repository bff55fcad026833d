"""ipywidgets for the notebooks: reward weights and A2C settings with a train-and-redraw button.

:func:`reward_panel` shows sliders for α (R1 weight), β (R2 weight), γ (the discount; in the
JSON stage the R3 weight, via ``gamma_label`` / ``gamma_range``), the learning rate and the number
of steps, and a button. A click calls ``run(alpha=, beta=, gamma=, lr=,
steps=)`` (e.g. :class:`drivekit.a2c_stage.ShortRuns`), which trains a short run and returns its log,
and redraws the curves. ``panel.train()`` does the same without a click, so a notebook executed
headless (nbval) runs the default configuration and shows its curves in the cell's output.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd


class RewardPanel:
    """The widgets of :func:`reward_panel`; ``logs`` keeps every run's log, ``last`` the latest."""

    def __init__(self, run: Callable[..., pd.DataFrame], plot: Callable[[dict[str, pd.DataFrame]], object], *,
                 alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, lr: float = 2e-4, steps: int = 10,
                 max_steps: int = 100, gamma_label: str = "γ (discount)", gamma_range: tuple[float, float] = (0.5, 1.0)):
        import ipywidgets as w

        self.run, self.plot = run, plot
        style = {"description_width": "90px"}
        self.alpha = w.FloatSlider(value=alpha, min=0.0, max=2.0, step=0.1, description="α (R1)", style=style)
        self.beta = w.FloatSlider(value=beta, min=0.0, max=2.0, step=0.1, description="β (R2)", style=style)
        self.gamma = w.FloatSlider(value=gamma, min=gamma_range[0], max=gamma_range[1], step=0.01,
                                   description=gamma_label, style=style)
        self.lr = w.FloatLogSlider(value=lr, base=10, min=-6, max=-1, step=0.1, description="learning rate",
                                   readout_format=".1e", style=style)
        self.steps = w.IntSlider(value=steps, min=1, max=max_steps, step=1, description="steps", style=style)
        self.button = w.Button(description="Train and redraw", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _: self._clicked())
        self.box = w.VBox([w.HBox([w.VBox([self.alpha, self.beta, self.gamma]), w.VBox([self.lr, self.steps,
                                                                                      self.button])]), self.output])
        self.logs: dict[str, pd.DataFrame] = {}
        self.last: pd.DataFrame | None = None

    def settings(self) -> dict:
        return dict(alpha=self.alpha.value, beta=self.beta.value, gamma=self.gamma.value, lr=self.lr.value,
                    steps=int(self.steps.value))

    def label(self, s: dict) -> str:
        return f"α={s['alpha']:g} β={s['beta']:g} γ={s['gamma']:g} lr={s['lr']:.0e} steps={s['steps']}"

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
    """Sliders for α, β, γ, learning rate and steps, and a button that trains ``run`` and redraws.

    ``plot`` maps ``{run label: log}`` to a figure (default: the Fig. 3-style curves of
    :func:`drivekit.a2c_stage.curves` through :func:`drivekit.plots.plot_loss_curves`).
    """
    if plot is None:
        from .a2c_stage import curves
        from .plots import plot_loss_curves

        def plot(logs):
            return plot_loss_curves({name: curves(log) for name, log in logs.items()}, title="A2C runs")

    return RewardPanel(run, plot, **defaults)
