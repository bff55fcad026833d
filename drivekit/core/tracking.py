"""Watch a run while it trains: one switch, ``DRIVEKIT_REPORT_TO``, for SFT, A2C and GRPO.

``DRIVEKIT_REPORT_TO=trackio|tensorboard|none`` (default ``none``: nothing is imported or written);
the training commands' ``--report-to`` takes the same values, over the variable. Every training loop
honours it, each through its library's own trackers:

- drivekit's SFT and A2C loops through accelerate's (``accelerate.tracking.TrackioTracker`` /
  ``TensorBoardTracker``), wrapped by :class:`Tracker` so that a tracker that fails is warned about
  and dropped while training goes on;
- GRPO through trl's ``report_to`` (transformers' ``TrackioCallback`` / ``TensorBoardCallback``),
  guarded the same way (:func:`guard_callbacks`).

Metric names follow transformers' convention (``transformers.integrations.rewrite_logs``):
``train/<name>`` and ``eval/<name>``; A2C logs what it shares with GRPO under trl's names
(``drivekit.algorithms.a2c.tracked_metrics``). Where the files go (:func:`folder`):

- trackio: ``$TRACKIO_DIR`` when set, else ``<runs>/trackio`` (``<runs>``: ``$DRIVEKIT_RUNS``, default
  ``runs/``), one SQLite file per project; ``trackio show --project drivekit`` serves the dashboard;
- TensorBoard: ``<runs>/tensorboard/<project>/<run name>-<time>/``; ``tensorboard --logdir runs/tensorboard``.

trackio reads ``$TRACKIO_DIR`` once, when it is first imported (trl imports it whenever it is
installed): :func:`point_trackio` sets it before that, and says so when it came too late.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from drivekit.core.config import load

ENVIRONMENT = "DRIVEKIT_REPORT_TO"
BACKENDS = ("trackio", "tensorboard", "none")
PROJECT = "drivekit"  # the dashboard's project when a run is given none
INSTALL = {  # what to install when the backend's library is missing (README, "Watch a run")
    "trackio": 'pip install -e ".[track]"',
    "tensorboard": 'pip install -e ".[track]"',
}


def report_to(value: str | None = None) -> str:
    """The backend: ``value`` (a ``--report-to`` or ``Report.to``), else ``$DRIVEKIT_REPORT_TO``, else
    ``none``; a clear error names the setting and the allowed values."""
    where, raw = ("report_to", value) if value is not None else (f"${ENVIRONMENT}", os.environ.get(ENVIRONMENT, ""))
    name = str(raw).strip().lower() or "none"
    if name not in BACKENDS:
        raise ValueError(f"{where}={raw!r}: expected one of {', '.join(BACKENDS)}")
    return name


def require(backend: str) -> None:
    """Raise a clear error, naming what to install, when ``backend``'s library is missing."""
    if backend != "none" and importlib.util.find_spec(backend) is None:
        raise ImportError(f"{ENVIRONMENT}={backend} needs the {backend} package, which is not installed: "
                          f"{INSTALL[backend]}")


def runs_dir() -> Path:
    return Path(load().runs_dir)


def folder(backend: str, project: str = PROJECT) -> Path | None:
    """Where ``backend`` writes: trackio's folder (every project, one SQLite file each: the one an
    imported trackio fixed, else ``$TRACKIO_DIR``, else ``<runs>/trackio``), TensorBoard's folder of
    ``project`` (``<runs>/tensorboard/<project>``); None for none."""
    if backend == "trackio":
        module = sys.modules.get("trackio")
        return Path(module.utils.TRACKIO_DIR if module else os.environ.get("TRACKIO_DIR") or runs_dir() / "trackio")
    if backend == "tensorboard":
        return runs_dir() / "tensorboard" / project
    return None


def point_trackio() -> Path:
    """Set ``$TRACKIO_DIR`` to ``<runs>/trackio`` unless it is set, before trackio is imported; when an
    import came first (its folder is then fixed) and the folder is another, a warning says where it is."""
    wanted = Path(os.environ.get("TRACKIO_DIR") or runs_dir() / "trackio")
    if "trackio" not in sys.modules:
        os.environ["TRACKIO_DIR"] = str(wanted)
    actual = folder("trackio")
    if actual.resolve() != wanted.resolve():
        warnings.warn(f"trackio was imported before drivekit chose its folder: it writes to {actual}, not {wanted} "
                      "(set TRACKIO_DIR before importing trl or trackio)", RuntimeWarning, stacklevel=2)
    return actual


def flat(config: Mapping, prefix: str = "") -> dict:
    """``config`` with nested mappings as dotted keys and every value a bool, int, float or str (what
    TensorBoard's hparams take)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


@dataclass(frozen=True)
class Report:
    """Where a training loop reports (``to``: a backend, default from ``$DRIVEKIT_REPORT_TO``) and as
    what: the dashboard's ``project``, the run's ``name`` (None: the loop's own, e.g. ``A2C``) and
    ``config`` (tags added to the loop's settings, e.g. the method and seed)."""

    to: str | None = None
    project: str = PROJECT
    name: str | None = None
    config: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "to", report_to(self.to))
        require(self.to)

    @property
    def on(self) -> bool:
        return self.to != "none"

    def run_name(self, default: str) -> str:
        return self.name or default

    def tagged(self, name: str, **config) -> "Report":
        """The same backend and project for the run ``name``, with ``config`` added to its tags."""
        return dataclasses.replace(self, name=name, config={**self.config, **config})


class Tracker:
    """One run's accelerate tracker (``TrackioTracker`` or ``TensorBoardTracker``) that never stops
    training: a failure to start, log or finish is a warning, and the tracker is dropped. Inert
    when ``report`` is off (nothing imported, nothing written)."""

    def __init__(self, report: Report, name: str, config: Mapping, resume: bool = False):
        self.report, self.name, self.run = report, name, None
        if report.on:
            self._guard("start", self._start, {**config, **report.config}, resume)

    def _start(self, config: Mapping, resume: bool) -> None:
        from accelerate.tracking import TensorBoardTracker, TrackioTracker

        if self.report.to == "trackio":
            point_trackio()
            run = TrackioTracker(self.report.project, name=self.name, resume="allow" if resume else "never")
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run = TensorBoardTracker(f"{self.name}-{stamp}", folder("tensorboard", self.report.project))
        run.start()
        self.run = run
        run.store_init_configuration(flat(config))

    @property
    def active(self) -> bool:
        """Whether the tracker is on and has not failed."""
        return self.run is not None

    def log(self, values: Mapping, step: int) -> None:
        """``values`` at ``step`` under transformers' names (``train/<name>``, ``eval/<name>`` for ``eval_<name>``)."""
        if self.run is not None:
            self._guard("log", self._log, values, step)

    def _log(self, values: Mapping, step: int) -> None:
        from transformers.integrations.integration_utils import rewrite_logs

        values = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.report.to == "trackio":
            values["global_step"] = step  # as transformers' TrackioCallback logs it
        self.run.log(rewrite_logs(values), step=step)

    def finish(self) -> None:
        if self.run is not None:
            self._guard("finish", self.run.finish)
            self.run = None

    def _guard(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # a tracker must never stop a training run
            warnings.warn(f"{self.report.to} tracker of run {self.name!r} failed to {what} ({type(err).__name__}: "
                          f"{err}); training goes on without it", RuntimeWarning, stacklevel=3)
            self.run = None


class Guarded:
    """A transformers ``report_to`` callback whose failures are warnings: the first one drops it, and
    removes its backend from ``args.report_to``, which trl's own logging (profiling times) reads.
    ``config`` (a :class:`Report`'s tags) joins the run's config when training begins."""

    def __init__(self, inner, backend: str, config: Mapping):
        self.inner, self.backend, self.config = inner, backend, flat(config)

    def __getattr__(self, name: str):
        if not name.startswith("on_"):
            raise AttributeError(name)

        def event(args, state, control, **kwargs):
            if self.inner is None:
                return None
            try:
                result = getattr(self.inner, name)(args, state, control, **kwargs)
                if name == "on_train_begin" and self.config and state.is_world_process_zero:
                    self._tag()
                return result
            except Exception as err:  # a tracker must never stop a training run
                warnings.warn(f"{self.backend} callback failed in {name} ({type(err).__name__}: {err}); training "
                              "goes on without it", RuntimeWarning, stacklevel=2)
                self.inner = None
                if self.backend in args.report_to:
                    args.report_to.remove(self.backend)
        return event

    def _tag(self) -> None:
        if self.backend == "trackio":
            import trackio

            trackio.config.update(self.config, allow_val_change=True)
        else:
            self.inner.tb_writer.add_hparams(self.config, metric_dict={})


def guard_callbacks(trainer, report: Report, default_name: str) -> None:
    """Wrap the ``report_to`` callbacks of a transformers ``Trainer`` (trl's GRPOTrainer) in
    :class:`Guarded`; a TensorBoard callback writes to ``folder("tensorboard", project)/<run name>-<time>``
    (transformers' default is under the trainer's output folder)."""
    if not report.on:
        return
    from transformers.integrations import get_reporting_integration_callbacks

    kinds = tuple(get_reporting_integration_callbacks([report.to]))
    callbacks = trainer.callback_handler.callbacks
    for i, callback in enumerate(callbacks):
        if isinstance(callback, kinds):
            if report.to == "tensorboard":
                run = f"{report.run_name(default_name)}-{time.strftime('%Y%m%d-%H%M%S')}"
                callback.logging_dir = str(folder("tensorboard", report.project) / run)
            callbacks[i] = Guarded(callback, report.to, report.config)
