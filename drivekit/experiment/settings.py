"""The experiment's settings: its methods, budget, validation size, tuning grids, the fresh test split's size,
how each setting was chosen, and the settings of each run.

:class:`ExperimentSettings` is one experiment (plain data, frozen: ``.replace`` gives a changed copy).
Everything a run trains with derives from it and the profile: :func:`sft_settings` (``SFT``,
``SFT-all``, ``SFT+val``, self-training) and :func:`rl_settings` (each RL method, with a tuning run's changes).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from drivekit.algorithms.a2c import A2CSettings
from drivekit.algorithms.grpo import GRPOSettings
from drivekit.algorithms.sft import SFTSettings
from drivekit.core.config import Config, profile_defaults
from drivekit.core.settings import Settings
from drivekit.data.toy_split import TRAIN_FRACTION, load_or_make_toy_split
from drivekit.evaluation import stats

# The references: SFT on the labelled subset; SFT-all on every label of the train part but the validation
# clips' (the other end of the gap); SFT+val on the labelled subset plus the validation clips, what the labels
# that choose the settings are worth as training data.
REFERENCES = ("SFT", "SFT-all", "SFT+val")
SFT_LABELS = {"SFT": "subset", "SFT-all": "all", "SFT+val": "subset+val"}  # reference -> toy_data's labels
SETTINGS = {"a2c": A2CSettings, "grpo": GRPOSettings}  # algorithm -> its settings class
METHODS = {  # method -> (algorithm, reward family)
    "A2C-R2": ("a2c", "label"), "GRPO-R2": ("grpo", "label"),
    "A2C-R1": ("a2c", "clip"), "GRPO-R1": ("grpo", "clip"),
    "A2C-SC": ("a2c", "vote"), "GRPO-SC": ("grpo", "vote"),
    "ST": ("self", "pseudo"),
    # issue 34: label-free rewards that breaking the answer's form cannot raise, each with a KL term to SFT, their
    # settings chosen on the 63-clip selection set (tuning.tune_label_free): R1 gated by the form, a vote that
    # speaks only where at least VOTE_MIN_AGREE of its 4 answers agree (gated too), and the two summed
    "A2C-R1G": ("a2c", "clip_gated"), "GRPO-R1G": ("grpo", "clip_gated"),
    "A2C-SC3": ("a2c", "vote_confident"), "GRPO-SC3": ("grpo", "vote_confident"),
    "A2C-R1G+SC3": ("a2c", "clip_gated+vote"), "GRPO-R1G+SC3": ("grpo", "clip_gated+vote"),
}
LABELS_USED = {"label": "pool", "clip": "none", "vote": "none", "pseudo": "none",  # pool labels a family reads
               "clip_gated": "none", "vote_confident": "none", "clip_gated+vote": "none"}
GUARDED = ("clip_gated", "vote_confident", "clip_gated+vote")  # families whose settings the selection set chooses
VOTING = ("vote", "vote_confident", "clip_gated+vote")  # families that vote: A2C samples a group per clip
CLIP_FAMILIES = ("clip", "clip_gated", "clip_gated+vote")  # families whose reward is R1 (the unseen CLIP)
BASELINE = "ST"  # the label-free baseline: every label-free method is compared with it clip by clip too
KEYS = ("f1_act", "f1_rsn", "pair_f1", "R")
VAL_KEYS = ("f1_act", "f1_rsn", "pair_f1")
# Both algorithms sample at temperature 0.7: at 1.0 the SFT policy of a 1/32 subset writes broken answers
# (mean label-F1 R2 0.47 against 0.72 greedy, on 64 pool clips; benchmarks/RESULTS.md, "RL against SFT on
# the unlabelled pool"). Both decay their lr linearly to 0, so that `steps` is the whole budget.
SAMPLING = {"temperature": 0.7}
SCHEDULE = {"lr_schedule": "linear"}
A2C_SETTINGS = {**SAMPLING, **SCHEDULE}
GRPO_SETTINGS = {**SAMPLING, **SCHEDULE}
# A group of answers per clip for self-consistency: A2C samples 4 per clip (2 clips × 4, as GRPO) and
# rewards whole answers (a vote needs them whole, not the prefixes the incremental mode scores).
VOTE_A2C = {"samples_per_clip": 4, "reward_mode": "terminal"}
# The confident vote: at least 3 of a clip's 4 answers agree, the smallest strict majority of 4 (two answers as
# frequent as each other can then never both reach it); elsewhere no signal. Gates: an answer that is not well
# formed scores the reward's minimum, -1 for R1 (a cosine), 0 for the vote (an F1).
VOTE_MIN_AGREE = 4 // 2 + 1
R1_FLOOR, VOTE_FLOOR = -1.0, 0.0
# The guarded label-free candidates' settings before their choice: the final runs' sampling and schedule and a
# KL term to the SFT policy (on for every candidate); LABEL_FREE_GRID is what the selection set chooses among,
# the first of equal scores in grid order (the lower lr, then the stronger KL: the run that moves least).
LABEL_FREE_SETTINGS = {**SAMPLING, **SCHEDULE, "kl_coef": 0.1}
LABEL_FREE_GRID = {"lr": (1e-4, 3e-4), "kl_coef": (0.2, 0.05)}
# The label-free selection set: at most as many labelled clips as SFT learns from at 1/32 (issue 34: 63).
SELECTION_SIZE = 63

# The fresh test split (tiny profile): large enough that a paired exact test at level 0.001 (about Holm's
# threshold half-way down the default family, 5 seeds x 21 comparisons: 0.05 / 53) sees, with power 0.8, a
# 4-point difference in exactly-right clips, 0.3 of the SFT -> SFT-all gap of the committed 3-seed run (SFT
# 0.861, SFT-all 0.993 pair F1: issue 34's bar for label-free RL), when two models disagree on 10 % of the
# clips (that run's A2C-R2 and SFT disagreed on 5.5-15 %).
FRESH_DISCORDANT, FRESH_DIFFERENCE, FRESH_ALPHA = 0.10, 0.04, 0.001
FRESH_TEST_SIZE = stats.paired_size(FRESH_DISCORDANT, FRESH_DIFFERENCE, FRESH_ALPHA)

# The validation set: large enough that a paired comparison of two settings at level 0.05 sees a
# 3-point difference in exactly-right clips with power 0.8 when they disagree on 6 % of the clips
# (stats.paired_size). 6 %: the committed 3-seed run before this protocol (A2C-R2 and GRPO-R2 each
# against SFT) disagreed on 1-9 % of the test clips per seed, 5 % on average; 3 points: the size of
# the differences between its RL methods.
VAL_DISCORDANT, VAL_DIFFERENCE = 0.06, 0.03
VAL_SIZE = stats.paired_size(VAL_DISCORDANT, VAL_DIFFERENCE)

# How each setting of the experiment was chosen (ExperimentSettings.chosen): every one is fixed before any run
# (with where its value comes from) until tune / tune_label_free choose it (tuning.tuned).
FIXED, ON_VALIDATION, ON_SELECTION = ("fixed before any run", "chosen on validation by tune",
                                      "chosen on the label-free selection set")
TOY_TEST_LOOK = "; it looked at the toy test split, which the fresh test split shares no clip with"
FIXED_BECAUSE = {
    "seeds": "each seed draws its own labelled subset, validation clips and pool",
    "fraction": "1/32 of the toy train part: 63 labelled clips",
    "steps": "320 steps of 8 sampled answers, from issue 14's seed-0 probes" + TOY_TEST_LOOK,
    "sft_epochs": "SFT makes as many clip passes as the profile's SFT on the proposal's 1/8 (48 epochs at 1/32)",
    "sft_all_epochs": "2 epochs: about SFT's clip passes",
    "sft_val_epochs": "as many clip passes as SFT's: 48 x 63 / (63 + 521) = 5.2 epochs at 1/32",
    "val_size": "stats.paired_size(0.06, 0.03)",
    "selection_size": "63: SFT's labelled subset at 1/32 (issue 34: at most 63 clips for label-free choices)",
    "fresh_test": f"stats.paired_size({FRESH_DISCORDANT}, {FRESH_DIFFERENCE}, alpha={FRESH_ALPHA})",
    "temperature": "0.7: at 1.0 the 1/32 SFT writes broken answers (measured on pool clips)",
    "lr_schedule": "linear decay to 0, chosen in issue 14 after seed 2's trajectory" + TOY_TEST_LOOK,
    "a2c": "the profile's A2CSettings for every field tune does not choose",
    "grpo": "the profile's GRPOSettings for every field tune does not choose",
    "grid": "GRID and VARIANTS as in issue 25 (the lr range from issue 14's seed-0 probes" + TOY_TEST_LOOK + ")",
    "label_free_grid": "lr as GRID's, KL 0.2 or 0.05: a KL term to SFT in every guarded candidate",
    "label_free": "KL 0.1 and the profile's lr for a guarded candidate made without the choice (--no-tune); "
                  "with it, label_free.<method>.lr / .kl_coef say how each was chosen",
    "vote_min_agree": f"{VOTE_MIN_AGREE} of 4: the smallest strict majority",
    "gate_floors": f"R1 {R1_FLOOR} (its minimum), the vote {VOTE_FLOOR} (its minimum)",
    "reward_weights": "1 each: R1 and the vote summed as the proposal sums R1 and R2",
    "checkpoints": "SFT and SFT-all: lowest loss on the seed's validation clips; SFT+val: on its own training "
                   "clips (none are held out); ST: on the 63-clip selection set",
}


def fixed_choices() -> dict[str, str]:
    """Every setting of the experiment, fixed before any run, with where its value comes from."""
    return {k: f"{FIXED}: {why}" for k, why in FIXED_BECAUSE.items()}


# Tuning: the same budget for both algorithms. First the grid over lr and KL coefficient (beta in
# trl; 0 is trl's default), then four alternatives each at the grid's best, trl's recommended
# choices for GRPO and their A2C counterparts (whole-answer rewards, a group per clip, whitened
# advantages, an entropy bonus).
GRID = {"lr": (1e-4, 3e-4), "kl_coef": (0.0, 0.05)}
VARIANTS = {
    "a2c": {"terminal": {"reward_mode": "terminal"}, "group-4": {"samples_per_clip": 4},
            "whitened": {"normalize_advantages": True}, "entropy": {"entropy_coef": 0.01}},
    "grpo": {"dr_grpo": {"loss_type": "dr_grpo"}, "dapo": {"loss_type": "dapo"},
             "unscaled": {"scale_rewards": "none"}, "group-8": {"clips_per_step": 1, "num_generations": 8}},
}
TUNED_METHOD = {"a2c": "A2C-R2", "grpo": "GRPO-R2"}  # the label-grounded method each algorithm is tuned with


def val_score(summary: Mapping) -> float:
    """What settings are chosen by: the mean of F1_act and F1_rsn on the validation clips."""
    return (summary["val"]["f1_act"] + summary["val"]["f1_rsn"]) / 2


@dataclass(frozen=True)
class ExperimentSettings(Settings):
    """One experiment (plain data): seeds, the labelled fraction, the RL methods and their budget.

    Every RL step samples 8 answers (A2C: 8 clips × 1; GRPO: 2 clips × 4), ``steps`` steps in all.
    ``a2c`` / ``grpo`` override the profile's ``A2CSettings`` / ``GRPOSettings`` (default:
    :data:`A2C_SETTINGS`, :data:`GRPO_SETTINGS`; :func:`~drivekit.experiment.tuning.tune` chooses the
    rest on validation) for the label-grounded methods and the label-free methods before issue 34 (``-R1``,
    ``-SC``); the guarded label-free candidates (:data:`GUARDED`) start from ``label_free`` instead, with
    ``label_free_chosen[method]`` on top (:func:`~drivekit.experiment.tuning.tune_label_free` chooses it on the
    selection set). ``chosen`` says, per setting, how it was chosen (:func:`fixed_choices`, updated by
    :func:`~drivekit.experiment.tuning.tuned`). Both profiles share every default (the profile reaches the runs
    through their own settings classes, and SFT's epochs through :func:`sft_epochs`), so ``PROFILES`` is empty
    and ``.tiny()`` / ``.paper()`` give the defaults.
    """

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    fraction: float = 1 / 32
    methods: tuple[str, ...] = ("A2C-R2", "GRPO-R2", "A2C-R1", "GRPO-SC", "ST", "A2C-R1G", "GRPO-R1G", "A2C-SC3",
                                "GRPO-SC3", "A2C-R1G+SC3", "GRPO-R1G+SC3")
    steps: int = 320
    # SFT's epochs over the labelled fraction; None: as many clip passes as the profile's SFT makes on
    # the proposal's 1/8 (48 epochs at 1/32). The profile's 12 stop a 1/32 SFT short of training: its
    # validation loss still falls at the last of its 96 steps (benchmarks/RESULTS.md, "A longer SFT baseline").
    sft_epochs: float | None = None
    sft_all_epochs: float = 2.0  # about as many clip passes as SFT's epochs over the proposal's 1/8
    sft_val_epochs: float | None = None  # SFT+val's epochs; None: as many clip passes as SFT's (sft_epochs)
    sft_all: bool = True  # train SFT-all and SFT+val, the label references (a short run may leave them out)
    val_size: int = VAL_SIZE
    selection_size: int = SELECTION_SIZE  # the label-free selection set: the first clips of each validation draw
    fresh_test: int = FRESH_TEST_SIZE  # clips of the fresh test split every final run answers once (0: none)
    a2c: dict = field(default_factory=lambda: dict(A2C_SETTINGS))
    grpo: dict = field(default_factory=lambda: dict(GRPO_SETTINGS))
    label_free: dict = field(default_factory=lambda: dict(LABEL_FREE_SETTINGS))  # the guarded candidates' base
    label_free_chosen: dict = field(default_factory=dict)  # guarded method -> the settings the selection set chose
    chosen: dict = field(default_factory=fixed_choices)  # setting -> how it was chosen (and from what)

    PROFILES: ClassVar[dict[str, dict]] = {}

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
        if not 0 < self.selection_size <= self.val_size:
            raise ValueError(f"selection_size ({self.selection_size}) must be in 1..val_size ({self.val_size}): "
                             "the selection set is the first clips of the validation draw")
        object.__setattr__(self, "seeds", tuple(self.seeds))  # a list from the command line or a JSON file
        object.__setattr__(self, "methods", tuple(self.methods))

    @property
    def references(self) -> tuple[str, ...]:
        return REFERENCES if self.sft_all else REFERENCES[:1]


def sft_epochs(cfg: Config, exp: ExperimentSettings, method: str = "SFT") -> float:
    """The epochs ``method`` (``SFT``, ``SFT-all`` or ``SFT+val``) of the experiment ``exp`` trains for."""
    if method == "SFT-all":
        return exp.sft_all_epochs
    if method == "SFT+val":
        if exp.sft_val_epochs is not None:
            return exp.sft_val_epochs
        labelled = len(load_or_make_toy_split(cfg, fraction=exp.fraction).train)  # every draw's subset has this size
        return sft_epochs(cfg, exp) * labelled / (labelled + exp.val_size)
    if exp.sft_epochs is not None:
        return exp.sft_epochs
    return profile_defaults(SFTSettings, cfg).epochs * TRAIN_FRACTION / exp.fraction


def sft_settings(cfg: Config, exp: ExperimentSettings, method: str, seed: int) -> SFTSettings:
    """The ``SFTSettings`` of ``SFT`` / ``SFT-all`` / ``SFT+val`` (and of self-training, which continues SFT)."""
    return profile_defaults(SFTSettings, cfg, seed=seed, epochs=sft_epochs(cfg, exp, method), val_size=exp.val_size)


def rl_settings(cfg: Config, exp: ExperimentSettings, method: str, seed: int, **changes):
    """The ``A2CSettings``, ``GRPOSettings`` or (self-training) ``SFTSettings`` of a method of ``exp``
    at ``seed``, with ``changes`` (a tuning run's) on top."""
    algorithm, family = METHODS[method]
    if algorithm == "self":
        return sft_settings(cfg, exp, "SFT", seed)
    if family in GUARDED:  # settings of their own, never those chosen on validation for the label-F1 reward
        overrides = {**exp.label_free, **exp.label_free_chosen.get(method, {})}
    else:
        overrides = exp.a2c if algorithm == "a2c" else exp.grpo
    vote = VOTE_A2C if (family in VOTING and algorithm == "a2c") else {}
    return profile_defaults(SETTINGS[algorithm], cfg, **{"steps": exp.steps, "seed": seed, **overrides,
                                                          **changes, **vote})


def budget(exp: ExperimentSettings) -> int:
    """The answers every RL method samples in all (8 a step), and self-training's training examples."""
    return exp.steps * 8


def run_name(method: str, seed: int) -> str:
    """A run's name on a dashboard: ``A2C-R2-seed0``."""
    return f"{method}-seed{seed}"
