"""Curves drawn smoothed with the raw values light (issue 35): notebook 04b's GRPO diagnostics."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from drivekit.evaluation import plots  # noqa: E402


def test_trailing_mean_averages_each_value_with_the_ones_before_it():
    assert np.allclose(plots.trailing_mean([1, 2, 3, 4, 5], 3), [1, 1.5, 2, 3, 4])
    assert np.allclose(plots.trailing_mean([1, 2, 3], 1), [1, 2, 3])  # a window of 1: the raw values


def test_each_panel_draws_the_raw_steps_light_and_their_trailing_mean_dark():
    log = pd.DataFrame({"step": range(1, 21), "kl": np.linspace(0, 0.1, 20), "entropy": np.random.default_rng(0).random(20)})
    fig = plots.plot_smoothed(log, {"kl": "KL to SFT", "entropy": "entropy", "absent": "not logged"}, window=5)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in axes] == ["KL to SFT", "entropy"]  # a column the log lacks is skipped
    for ax, column in zip(axes, ("kl", "entropy")):
        raw, smooth = ax.get_lines()
        assert raw.get_alpha() < 1 and (smooth.get_alpha() is None or smooth.get_alpha() == 1)
        assert np.allclose(raw.get_ydata(), log[column]) and np.allclose(smooth.get_ydata(), plots.trailing_mean(log[column], 5))
