"""A stage's run directory: what one notebook's pipeline writes, when it is complete, and ``ensure``.

Each stage (SFT, A2C, JSON) describes its outputs once, as a :class:`RunDir` subclass:

    class SFTArtifacts(RunDir):
        NAME = "sft"                                   # folder under cfg.runs_dir
        FILES = {"best": "best", "summary": "summary.json", ...}

``SFTArtifacts.of(cfg).best`` is then ``<runs>/sft/best``; ``PARTS`` nests the run directory of an
earlier stage (the JSON stage holds an SFT run and an A2C run). A run directory is complete when
every file and every part exists, and :func:`ensure` reuses a complete one or builds it: the
later notebooks call it so that each of them also runs alone.

:class:`Trained` is what an RL stage's ``train`` returns (``a2c_stage.train``, ``grpo_stage.train``:
one interface, so the experiment harness runs either algorithm the same way).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple, TypeVar

import pandas as pd

from drivekit.core.config import Config, load

R = TypeVar("R", bound="RunDir")


@dataclass(frozen=True)
class RunDir:
    """Outputs under ``dir``: ``FILES`` (attribute -> file or folder name) and ``PARTS`` (attribute ->
    the RunDir class of a nested run, in the sub-folder of that name)."""

    dir: Path
    NAME: ClassVar[str] = ""
    FILES: ClassVar[dict[str, str]] = {}
    PARTS: ClassVar[dict[str, type["RunDir"]]] = {}

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

    def complete(self) -> bool:
        return not self.missing()


def ensure(kind: type[R], run: Callable[[Config], R], cfg: Config | None = None) -> R:
    """``kind``'s default run directory for ``cfg`` (default settings), made by ``run(cfg)`` unless complete."""
    cfg = cfg or load()
    result = kind.of(cfg)
    return result if result.complete() else run(cfg)


class Trained(NamedTuple):
    """An RL run's result: the trained policy (peft-wrapped model and its processor), one log row per
    optimiser step (``reward`` the mean sampled reward), the training seconds, and the answers
    sampled per step."""

    model: object
    processor: object
    log: pd.DataFrame
    seconds: float
    samples_per_step: int
