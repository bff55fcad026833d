"""The one settings pattern every ``*Settings`` class follows.

A settings class is a frozen dataclass deriving from :class:`Settings`. Its field defaults are the
values both profiles share; where a profile changes a default, the class says so in plain data::

    @dataclass(frozen=True)
    class SFTSettings(Settings):
        epochs: float = 3
        lr: float = 2e-4
        PROFILES: ClassVar[dict] = {"tiny": dict(epochs=48, lr=1e-3)}

``SFTSettings.tiny(**changes)`` and ``SFTSettings.paper(**changes)`` give the profile's defaults with
``changes`` on top (``config.profile_defaults`` adds a preset's values between the two), and
``s.replace(**changes)`` gives a changed copy; nothing changes a settings object in place.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, TypeVar

S = TypeVar("S", bound="Settings")

PROFILE_NAMES = ("tiny", "paper")


class Settings:
    """Base of drivekit's settings dataclasses (declare each subclass ``@dataclass(frozen=True)``)."""

    PROFILES: ClassVar[dict[str, dict]] = {}  # profile -> the fields whose default it changes

    @classmethod
    def for_profile(cls: type[S], profile: str, **changes) -> S:
        if profile not in PROFILE_NAMES:
            raise ValueError(f"{cls.__name__}: unknown profile {profile!r}; choose one of {list(PROFILE_NAMES)}")
        unknown = set(cls.PROFILES.get(profile, {})) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"{cls.__name__}.PROFILES[{profile!r}] names no field {sorted(unknown)}")
        return cls(**{**cls.PROFILES.get(profile, {}), **changes})

    @classmethod
    def tiny(cls: type[S], **changes) -> S:
        """The tiny profile's defaults (offline, CPU), with ``changes``."""
        return cls.for_profile("tiny", **changes)

    @classmethod
    def paper(cls: type[S], **changes) -> S:
        """The paper profile's defaults (GPU, real weights), with ``changes``."""
        return cls.for_profile("paper", **changes)

    def replace(self: S, **changes) -> S:
        """A copy with ``changes`` (the object itself is frozen)."""
        return dataclasses.replace(self, **changes)
