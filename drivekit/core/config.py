"""Run configuration: the ``tiny`` (offline, CPU) and ``paper`` (GPU, real weights) profiles.

The profile comes from the ``profile`` argument, else ``$DRIVEKIT_PROFILE``, else ``tiny``. What
the environment can change (:data:`ENVIRONMENT`), each over the profile's default:

- paths: ``$DRIVEKIT_DATA`` (dataset root), ``$DRIVEKIT_CACHE`` (built models, embedding caches),
  ``$DRIVEKIT_RUNS`` (training outputs); relative defaults live under the repository
  (``$DRIVEKIT_HOME``, default: the folder that holds the ``drivekit`` package);
- models: ``$DRIVEKIT_VLM`` (a model id such as ``HuggingFaceTB/SmolVLM-256M-Instruct``, or the
  folder of a saved model) and ``$DRIVEKIT_CLIP`` (``<arch>/<pretrained tag>``, an open_clip
  checkpoint file or a folder written by ``build-clip``);
- the VLM's image processing: ``$DRIVEKIT_IMAGE_EDGE`` (the longest edge a frame is resized to
  before it is cut into tiles; SmolVLM-256M's processor uses 2048, SmolVLM-Instruct's 1536, so a
  1280x720 frame is 13 tiles; 1024 gives 5) and ``$DRIVEKIT_IMAGE_SPLITTING`` (``0``: one tile per
  frame). Unset: the model's own processor settings.

A preset (``$DRIVEKIT_PRESET`` or ``load(preset=)``, :data:`PRESETS`) sizes a profile for one kind of
machine: its model choices sit between the profile's and the environment's, and its settings between
each settings class's profile defaults and the changes a caller passes (:func:`profile_defaults`).
``t4``: the paper profile on a 16 GB T4 (Colab), README "On Colab".

Keyword arguments of :func:`load` override all of them; :func:`add_model_arguments` and
:func:`model_overrides` give a command line the same model choices (``--vlm``, ``--clip``, ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

HOME = Path(os.environ.get("DRIVEKIT_HOME", Path(__file__).resolve().parents[2]))

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
        vlm="HuggingFaceTB/SmolVLM-Instruct",  # or SmolVLM-256M-Instruct / -500M-Instruct on a small GPU (README)
        clip="ViT-B-32/openai",
        quantize_4bit=True,
    ),
}

# Plain data: presets, a profile sized for one kind of machine. "config": Config fields over the profile's
# (the environment still overrides them); "settings": per settings class (by name), fields over its profile
# defaults. "compute_dtype" is what models.compute_dtype picks on that GPU (tests check it), not a switch.
# The t4 numbers and the memory and time they lead to: README, "On Colab" (memory measured at these batch
# sizes with 13 tiles a frame, benchmarks/results/paper_scale.json; 1024 px gives 5).
PRESETS: dict[str, dict] = {
    "t4": dict(
        profile="paper",
        config=dict(vlm="HuggingFaceTB/SmolVLM-256M-Instruct", image_edge=1024),
        # a T4 (compute capability 7.5) has no bf16 in hardware. fp16 is guarded: LoRA and value-head weights in
        # float32, the loss scaled (accelerate / GradScaler / trl fp16), an inf or NaN loss stops the run
        compute_dtype="float16",
        settings={
            # the paper's 6 epochs and 16 clips an optimiser step, as 2 micro-batches of 8 (SFT at batch 8:
            # 5.3 GiB allocated / 11.3 reserved measured at 13 tiles); a validation every 25 steps, not 10
            "SFTSettings": dict(epochs=6, batch_size=8, grad_accum=2, eval_every=25, eval_batch_size=8),
            # 200 steps of 4 completions, not 500: within a Colab session (README); A2C at batch 4: 3.2 / 4.5 GiB
            "A2CSettings": dict(steps=200, batch_size=4),
            "GRPOSettings": dict(steps=200),  # one clip's group of 4 a step, as the paper profile; 2.7 / 3.9 GiB
        },
    ),
}

# Config field -> the environment variable that sets it.
ENVIRONMENT = {
    "data_root": "DRIVEKIT_DATA", "cache_dir": "DRIVEKIT_CACHE", "runs_dir": "DRIVEKIT_RUNS",
    "vlm": "DRIVEKIT_VLM", "clip": "DRIVEKIT_CLIP",
    "image_edge": "DRIVEKIT_IMAGE_EDGE", "image_splitting": "DRIVEKIT_IMAGE_SPLITTING",
}
PATH_FIELDS = ("data_root", "cache_dir", "runs_dir")
MODEL_FIELDS = ("vlm", "clip")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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
    image_edge: int | None = None  # None: the processor's own longest edge
    image_splitting: bool | None = None  # None: the processor's own setting
    seed: int = 0
    preset: str | None = None  # a name in PRESETS, or None

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


def model_source(value: str | Path, what: str = "model") -> str:
    """A model choice as ``load`` keeps it: an existing file or folder becomes an absolute path (so
    a notebook that changes directory still finds it); anything else stays a name (a model id, or
    CLIP's ``<arch>/<tag>``). A value that can only be a path (``/``, ``~`` or ``.`` first) must exist."""
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what}={str(value)!r}: empty; give a model id, a file or a folder")
    if text == "tiny":  # drivekit's own model, whatever the current folder holds
        return text
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    if text.startswith(("/", "~", ".")):
        raise ValueError(f"{what}={text!r}: no such file or folder")
    return text


def _parse(field: str, value, what: str):
    """``value`` (from the environment, a command line or code) as the type of ``field``."""
    if value is None:
        return None
    if field in PATH_FIELDS:
        try:
            return Path(value).expanduser()
        except (TypeError, RuntimeError) as err:  # e.g. ~nobody/x: no such user
            raise ValueError(f"{what}={value!r}: not a usable path ({err})") from None
    if field in MODEL_FIELDS:
        return model_source(value, what)
    if field == "image_edge":
        try:
            edge = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what}={value!r}: expected a number of pixels, e.g. 1024") from None
        if edge <= 0:
            raise ValueError(f"{what}={value!r}: expected a positive number of pixels")
        return edge
    if field == "image_splitting":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in TRUE + FALSE:
            raise ValueError(f"{what}={value!r}: expected one of {TRUE + FALSE}")
        return text in TRUE
    return value


def check_preset(preset: str | None, profile: str, what: str = "preset") -> str | None:
    """``preset`` (a name in :data:`PRESETS`, or None/"" for none) if it fits ``profile``, else a clear error."""
    if not preset:
        return None
    if preset not in PRESETS:
        raise ValueError(f"{what}={preset!r}: unknown preset; choose one of {sorted(PRESETS)}")
    if PRESETS[preset]["profile"] != profile:
        raise ValueError(f"{what}={preset!r} is for the {PRESETS[preset]['profile']!r} profile, not {profile!r}: "
                         f"set DRIVEKIT_PROFILE={PRESETS[preset]['profile']} too")
    return preset


def load(profile: str | None = None, preset: str | None = None, **overrides) -> Config:
    """The configuration of ``profile`` (argument > $DRIVEKIT_PROFILE > tiny), its ``preset``'s model
    choices (argument > $DRIVEKIT_PRESET > none; :data:`PRESETS`), the environment's choices
    (:data:`ENVIRONMENT`) applied, then ``overrides``."""
    what = "profile"
    if not profile and os.environ.get("DRIVEKIT_PROFILE", "").strip():
        profile, what = os.environ["DRIVEKIT_PROFILE"].strip(), "$DRIVEKIT_PROFILE"
    profile = profile or "tiny"
    if profile not in PROFILES:
        raise ValueError(f"{what}={profile!r}: unknown profile; choose one of {sorted(PROFILES)}")
    fields = {f.name for f in dataclasses.fields(Config)} - {"profile", "preset"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"config.load({unknown[0]}=...): no such setting; the settings are {sorted(fields)}")
    preset = (check_preset(preset, profile) if preset is not None
              else check_preset(os.environ.get("DRIVEKIT_PRESET", "").strip(), profile, "$DRIVEKIT_PRESET"))
    values = dict(PROFILES[profile])
    values["cache_dir"] = HOME / "data" / "cache"
    values["runs_dir"] = HOME / "runs"
    for field, value in (PRESETS[preset]["config"] if preset else {}).items():
        values[field] = _parse(field, value, f"preset {preset}: {field}")
    for field, var in ENVIRONMENT.items():
        if os.environ.get(var, "").strip():
            values[field] = _parse(field, os.environ[var], f"${var}")
    for field, value in overrides.items():
        values[field] = _parse(field, value, field) if field in ENVIRONMENT else value
    for field in PATH_FIELDS:
        values[field] = Path(values[field])
    return Config(profile=profile, preset=preset, **values)


# ---------------------------------------------------------------------------------------------
# The same choices on a command line
# ---------------------------------------------------------------------------------------------
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--vlm``, ``--clip``, ``--image-edge`` and ``--(no-)image-splitting`` (default: the
    environment's choice, else the profile's); read them back with :func:`model_overrides`."""
    group = parser.add_argument_group("models (default: $DRIVEKIT_VLM / $DRIVEKIT_CLIP / ..., else the profile's)")
    group.add_argument("--vlm", help="a model id (e.g. HuggingFaceTB/SmolVLM-256M-Instruct) or a saved model's folder")
    group.add_argument("--clip", help="<arch>/<pretrained tag> (e.g. ViT-B-32/openai), a checkpoint file or a folder")
    group.add_argument("--image-edge", type=int, help="longest edge (px) a frame is resized to before tiling")
    group.add_argument("--image-splitting", action=argparse.BooleanOptionalAction,
                       help="cut each frame into tiles (the processor's default) or not")


def model_overrides(args: argparse.Namespace) -> dict:
    """The ``load`` overrides given on the command line by :func:`add_model_arguments`' options."""
    return {field: getattr(args, field) for field in ("vlm", "clip", "image_edge", "image_splitting")
            if getattr(args, field, None) is not None}


LR_SCHEDULES = ("constant", "linear")  # what A2C implements; trl's lr_scheduler_type has both names


def profile_defaults(cls, cfg: Config, **changes):
    """The defaults of ``cfg``'s profile for a settings class ``cls`` (one deriving
    :class:`drivekit.core.settings.Settings`: ``SFTSettings``, ``A2CSettings``, ``GRPOSettings``,
    ``RewardSettings``, ``JsonSettings``...): ``cls.for_profile(cfg.profile, ...)``, i.e. the class's
    field defaults, then its ``PROFILES[cfg.profile]`` changes, then ``cfg.preset``'s settings for
    ``cls``, then ``changes``."""
    if cfg.profile not in PROFILES or not callable(getattr(cls, "for_profile", None)):
        raise ValueError(f"{cls.__name__} has no defaults for profile {cfg.profile!r}; known: {sorted(PROFILES)}")
    preset = PRESETS[cfg.preset]["settings"].get(cls.__name__, {}) if getattr(cfg, "preset", None) else {}
    return cls.for_profile(cfg.profile, **{**preset, **changes})


def check_lr_schedule(name: str) -> str:
    """``name`` if it is one of :data:`LR_SCHEDULES` (A2C's and GRPO's ``lr_schedule``), else a clear error."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be 'constant' or 'linear', not {name!r}")
    return name


def dataclass_overrides(pairs: list[str], cls, where: str) -> dict:
    """``key=value`` pairs from a command line as typed fields of dataclass ``cls`` (each value converted
    to its field default's type; ``None`` for None; ``true``/``false`` for a bool); a clear error names
    a bad pair and the option ``where`` it came from."""
    fields = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields or not value:
            raise SystemExit(f"{where}: {pair!r} is not KEY=VALUE with KEY one of {', '.join(fields)}")
        default = getattr(cls, key)
        if value == "None":
            values[key] = None
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise SystemExit(f"{where}: {pair!r}: {key} is true or false")
            values[key] = value.lower() == "true"
        else:
            values[key] = type(default)(value) if default is not None else int(value)
    return values
