"""Run configuration: the ``tiny`` (offline, CPU) and ``paper`` (GPU, real weights) profiles.

The profile comes from the ``profile`` argument, else ``$DRIVEKIT_PROFILE``, else ``tiny``.
Paths are overridable with ``$DRIVEKIT_DATA`` (dataset root), ``$DRIVEKIT_CACHE`` (built models,
embedding caches) and ``$DRIVEKIT_RUNS`` (training outputs); relative defaults live under the
repository (``$DRIVEKIT_HOME``, default: the folder that holds the ``drivekit`` package).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

HOME = Path(os.environ.get("DRIVEKIT_HOME", Path(__file__).resolve().parent.parent))

# Plain data: what differs between the two profiles.
PROFILES: dict[str, dict] = {
    "tiny": dict(
        data_root=HOME / "data" / "synthetic",
        synthetic=True,
        vlm="tiny",  # built by `python -m drivekit build-vlm`
        clip="tiny",  # built by `python -m drivekit build-clip`
        quantize_4bit=True,
    ),
    "paper": dict(
        data_root=HOME / "data" / "bdd-oia",
        synthetic=False,
        vlm="HuggingFaceTB/SmolVLM-Instruct",
        clip="ViT-B-32/openai",
        quantize_4bit=True,
    ),
}


@dataclass(frozen=True)
class Config:
    profile: str
    data_root: Path
    cache_dir: Path
    runs_dir: Path
    synthetic: bool
    vlm: str
    clip: str
    quantize_4bit: bool
    seed: int = 0

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def load(profile: str | None = None, **overrides) -> Config:
    """The configuration of ``profile`` (argument > $DRIVEKIT_PROFILE > tiny), env paths applied."""
    profile = profile or os.environ.get("DRIVEKIT_PROFILE") or "tiny"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    values = dict(PROFILES[profile])
    values["cache_dir"] = HOME / "data" / "cache"
    values["runs_dir"] = HOME / "runs"
    for field, var in (("data_root", "DRIVEKIT_DATA"), ("cache_dir", "DRIVEKIT_CACHE"), ("runs_dir", "DRIVEKIT_RUNS")):
        if os.environ.get(var):
            values[field] = Path(os.environ[var]).expanduser()
    values.update(overrides)
    for field in ("data_root", "cache_dir", "runs_dir"):
        values[field] = Path(values[field])
    return Config(profile=profile, **values)
