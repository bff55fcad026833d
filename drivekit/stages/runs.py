"""A stage's run directory: what one notebook's pipeline writes, when it is finished, and ``ensure``.

Each stage (SFT, A2C, GRPO, JSON) describes its outputs once, as a :class:`RunDir` subclass:

    class SFTArtifacts(RunDir):
        NAME = "sft"                                   # folder under cfg.runs_dir
        FILES = {"best": "best", "summary": "summary.json", ...}

``SFTArtifacts.of(cfg).best`` is then ``<runs>/sft/best``; ``PARTS`` nests the run directory of an
earlier stage (the JSON stage holds an SFT run and an A2C run). A run directory is finished when
every file and every part exists, its ``summary.json`` (written last, atomically, through
:func:`drivekit.core.files.write_json`) parses, and the settings it records (its ``settings`` key)
are those of the run asked for. :meth:`RunDir.unfinished` says why one is not, as
``<path>: unfinished (<reason>)``; :func:`ensure` reuses a finished run or (re)builds it, saying why:
the later notebooks call it so that each of them also runs alone.

:class:`Policy` is what an RL stage's ``load_policy`` returns and :class:`Trained` what its ``train``
returns (``a2c_stage``, ``grpo_stage``: one interface, so the experiment harness runs either
algorithm the same way).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, TypeVar

import pandas as pd

from drivekit.core.config import Config, load
from drivekit.core.files import Unfinished, read_json_object, write_json
from drivekit.evaluation.reports import score

R = TypeVar("R", bound="RunDir")


class OtherSettings(Unfinished):
    """A run directory whose summary records other settings than those of the run asked for."""


def plain_settings(settings) -> dict:
    """``settings`` (a settings dataclass or a mapping) as its ``summary.json`` holds them (JSON values)."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    return json.loads(json.dumps(dict(settings), default=str))


@dataclass(frozen=True)
class RunDir:
    """Outputs under ``dir``: ``FILES`` (attribute -> file or folder name) and ``PARTS`` (attribute ->
    the RunDir class of a nested run, in the sub-folder of that name). ``SUMMARY`` is the attribute of
    the file that marks the run finished (a JSON object whose ``settings`` are the run's; None: none)."""

    dir: Path
    NAME: ClassVar[str] = ""
    FILES: ClassVar[dict[str, str]] = {}
    PARTS: ClassVar[dict[str, type["RunDir"]]] = {}
    SUMMARY: ClassVar[str | None] = "summary"

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))
        for attr, name in self.FILES.items():
            object.__setattr__(self, attr, self.dir / name)
        for attr, kind in self.PARTS.items():
            object.__setattr__(self, attr, kind(self.dir / attr))

    @classmethod
    def of(cls: type[R], cfg: Config) -> R:
        """The default run directory of this stage: ``cfg.runs_dir / NAME``."""
        return cls(Path(cfg.runs_dir) / cls.NAME)

    def missing(self) -> list[Path]:
        """The outputs not written yet (those of nested runs included)."""
        own = [getattr(self, attr) for attr in self.FILES if not getattr(self, attr).exists()]
        return own + [p for attr in self.PARTS for p in getattr(self, attr).missing()]

    def read_summary(self) -> dict:
        """The summary's JSON object; :class:`drivekit.core.files.Unfinished` naming the file when it is
        missing, truncated or not an object."""
        return read_json_object(getattr(self, self.SUMMARY))

    def unfinished(self, settings=None) -> Unfinished | None:
        """Why this is not a finished run (of ``settings``, a settings dataclass or mapping, when given),
        or None when it is one. The answer is a :class:`drivekit.core.files.Unfinished` (an
        :class:`OtherSettings` when only the settings differ) whose message reads
        ``<path>: unfinished (<reason>)``: a missing output, a nested run's reason, a summary that does
        not parse, or the first setting that differs."""
        for path in self.missing():
            return Unfinished(path, "missing")
        for attr in self.PARTS:
            problem = getattr(self, attr).unfinished()
            if problem is not None:
                return problem
        if self.SUMMARY is None:
            return None
        try:
            summary = self.read_summary()
        except Unfinished as problem:
            return problem
        if settings is None:
            return None
        path = getattr(self, self.SUMMARY)
        then, now = summary.get("settings"), plain_settings(settings)
        if not isinstance(then, dict):
            return OtherSettings(path, "no settings recorded")
        for key, value in now.items():
            if then.get(key, "(none)") != value:
                return OtherSettings(path, f"written with {key}={then.get(key, '(none)')!r}, asked for {value!r}")
        return None

    def complete(self, settings=None) -> bool:
        """Whether this is a finished run (of ``settings``, when given): :meth:`unfinished` finds nothing."""
        return self.unfinished(settings) is None


def ensure(kind: type[R], run: Callable[[Config], R], cfg: Config | None = None, settings=None) -> R:
    """``kind``'s default run directory for ``cfg``: reused when it is a finished run of ``settings``
    (:meth:`RunDir.unfinished`), else made by ``run(cfg)``, after printing why
    (``<path>: unfinished (<reason>); running it again``) when the folder holds an earlier attempt."""
    cfg = cfg or load()
    result = kind.of(cfg)
    problem = result.unfinished(settings)
    if problem is None:
        return result
    if result.dir.exists():
        print(f"{problem}; running it again")
    return run(cfg)


def write_rl_summary(path: Path, settings, steps: int, rows, table: pd.DataFrame | None = None, **info) -> dict:
    """An RL stage's ``summary.json`` (A2C's and GRPO's alike), written last and atomically: the run's
    ``settings``, its steps, the F1s and report of its test ``rows``, the comparison ``table`` and ``info``."""
    s = score(list(rows))
    summary = dict(settings=dataclasses.asdict(settings), steps=steps, f1_act=s["actions"]["f1_all"],
                   f1_rsn=s["reasons"]["f1_all"], unparseable=s["unparseable"], report=s,
                   comparison=None if table is None else table.to_dict(orient="index"), **info)
    write_json(path, summary, indent=1, default=str)
    return summary


class Policy(NamedTuple):
    """What an RL stage's ``load_policy`` returns: the peft-wrapped VLM with a trainable adapter, its
    processor, and the name of the frozen adapter holding π_ref for the KL term (None: the base model
    with adapters disabled for A2C; GRPO's trl makes its own copy of the start adapter)."""

    model: object
    processor: object
    reference_adapter: str | None = None


class Trained(NamedTuple):
    """An RL run's result: the trained policy (peft-wrapped model and its processor), one log row per
    optimiser step (``reward`` the mean sampled reward), the training seconds, and the answers
    sampled per step."""

    model: object
    processor: object
    log: pd.DataFrame
    seconds: float
    samples_per_step: int
