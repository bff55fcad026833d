"""RL against SFT over seeds, clip by clip: the experiment behind every "RL vs SFT" sentence.

**Data.** Each experiment seed draws its own data from the toy train part (``toy_split.toy_data``
with ``draw=seed``): a labelled subset (``fraction``, stratified by action), a validation set
(:data:`VAL_SIZE` clips) and the *pool*, the rest, whose labels only the label-grounded reward
reads. The toy test split is the same for every seed, so the seeds' test scores are not
independent: every sign test is per seed, and sums over seeds are descriptive only.

**Runs**, per seed, in ``<out>/<method>/seed<s>/``:

- ``SFT``: QLoRA SFT on the labelled subset, for as many clip passes as the profile's SFT makes on
  the proposal's 1/8 (:func:`sft_epochs`); ``SFT-all``: SFT on every label of the train part but
  the validation clips', the reference of what the labels alone give;
- each RL method from that seed's SFT adapter on the pool (:data:`METHODS`; the algorithm is the
  prefix, the reward the suffix). ``A2C-*`` is drivekit's own A2C (:mod:`drivekit.stages.a2c_stage`),
  ``GRPO-*`` trl's GRPO (:mod:`drivekit.stages.grpo_stage`), through one interface (``train``) and one
  reward object (:mod:`drivekit.rewards.weighted_reward`), the same number of sampled answers a step and
  the same steps. ``-R2``: the label-F1 R2 on the pool's labels (label-grounded). Label-free, the
  pool's items reach training without their labels (:func:`unlabelled`), so no reward can read
  one: ``-R1`` R1 alone, from a tiny CLIP trained on a second synthetic dataset
  (:func:`unseen_clip`); ``-SC`` self-consistency (the answers sampled for a clip vote; each is
  rewarded for agreeing with the majority, ``action_reward.MajorityVoteReward``); and ``ST``,
  self-training (:mod:`drivekit.stages.self_training`): SFT continued on its own greedy answers for the
  pool, the same number of training examples as RL samples answers, the baseline label-free RL
  has to beat.

**Choice on validation, test once.** Every run answers its seed's validation clips
(``val_predictions.jsonl``); :func:`tune` chooses each algorithm's settings on the tuning seed's
validation set with the same budget for both (:data:`GRID` over lr and KL coefficient, then
:data:`VARIANTS`, four algorithm-specific alternatives each, at the grid's best), by
:func:`val_score`. The final runs (:func:`run`) use the chosen settings and answer the test split
once. Per method and seed: F1_act, F1_rsn, pair F1 and the mean test R under one yardstick (R1 +
label-F1 R2), the same on validation, and, against the same seed's SFT, the clips it fixed and
broke with their sign test. :func:`summarize` adds mean ± sd over seeds and the share of the
SFT → SFT-all gap closed. Finished runs are reused (with a check that their settings are the
recipe's), so an interrupted experiment continues where it stopped; ``jobs`` runs several at once.

With ``--report-to trackio|tensorboard`` (or ``$DRIVEKIT_REPORT_TO``) every run reports while it trains
(:mod:`drivekit.core.tracking`) to one dashboard project named after the output folder, as
``<method>-seed<s>``.

    python -m drivekit rl-vs-sft [--seeds 0 1 2] [--methods A2C-R2 GRPO-R2 ...] [--tune-seed 0]
                                 [--steps 320] [--jobs 2] [--out DIR] [--report-to ...]

(``benchmarks/bench_rl_vs_sft.py`` runs it and writes ``benchmarks/results/rl_vs_sft.json`` with
the commit, versions and machine.)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import MISSING, asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from drivekit.stages import a2c_stage, grpo_stage, self_training, sft_stage
from drivekit.evaluation import metrics, stats
from drivekit.algorithms.a2c import A2CSettings
from drivekit.rewards.clip_reward import ClipReward
from drivekit.core.config import HOME, Config, dataclass_overrides, load, profile_defaults
from drivekit.evaluation.reports import prediction_rewards, read_predictions, score, write_predictions
from drivekit.algorithms.grpo import GRPOSettings
from drivekit.models.vlm import load_vlm
from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.data.toy_split import TRAIN_FRACTION, items_of, toy_data
from drivekit.core.tracking import BACKENDS, Report
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

REFERENCES = ("SFT", "SFT-all")
STAGES = {"a2c": a2c_stage, "grpo": grpo_stage}  # algorithm -> its stage (one train() interface)
SETTINGS = {"a2c": A2CSettings, "grpo": GRPOSettings}  # algorithm -> its settings class
METHODS = {  # method -> (algorithm, reward family)
    "A2C-R2": ("a2c", "label"), "GRPO-R2": ("grpo", "label"),
    "A2C-R1": ("a2c", "clip"), "GRPO-R1": ("grpo", "clip"),
    "A2C-SC": ("a2c", "vote"), "GRPO-SC": ("grpo", "vote"),
    "ST": ("self", "pseudo"),
}
LABELS_USED = {"label": "pool", "clip": "none", "vote": "none", "pseudo": "none"}  # pool labels a family reads
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

# The validation set: large enough that a paired comparison of two settings at level 0.05 sees a
# 3-point difference in exactly-right clips with power 0.8 when they disagree on 6 % of the clips
# (stats.paired_size). 6 %: the committed 3-seed run before this protocol (A2C-R2 and GRPO-R2 each
# against SFT) disagreed on 1-9 % of the test clips per seed, 5 % on average; 3 points: the size of
# the differences between its RL methods.
VAL_DISCORDANT, VAL_DIFFERENCE = 0.06, 0.03
VAL_SIZE = stats.paired_size(VAL_DISCORDANT, VAL_DIFFERENCE)

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


@dataclass
class ExperimentSettings:
    """One experiment (plain data): seeds, the labelled fraction, the RL methods and their budget.

    Every RL step samples 8 answers (A2C: 8 clips × 1; GRPO: 2 clips × 4), ``steps`` steps in all.
    ``a2c`` / ``grpo`` override the profile's ``A2CSettings`` / ``GRPOSettings`` (default:
    :data:`A2C_SETTINGS`, :data:`GRPO_SETTINGS`; :func:`tune` chooses the rest on validation).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    fraction: float = 1 / 32
    methods: tuple[str, ...] = ("A2C-R2", "GRPO-R2", "A2C-R1", "GRPO-SC", "ST")
    steps: int = 320
    # SFT's epochs over the labelled fraction; None: as many clip passes as the profile's SFT makes on
    # the proposal's 1/8 (48 epochs at 1/32). The profile's 12 stop a 1/32 SFT short of training: its
    # validation loss still falls at the last of its 96 steps (benchmarks/RESULTS.md, "A longer SFT baseline").
    sft_epochs: float | None = None
    sft_all_epochs: float = 2.0  # about as many clip passes as SFT's epochs over the proposal's 1/8
    sft_all: bool = True  # train SFT-all, the reference of the gap (a short run may leave it out)
    val_size: int = VAL_SIZE
    a2c: dict = field(default_factory=lambda: dict(A2C_SETTINGS))
    grpo: dict = field(default_factory=lambda: dict(GRPO_SETTINGS))

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(METHODS)}")
        self.seeds, self.methods = tuple(self.seeds), tuple(self.methods)

    @property
    def references(self) -> tuple[str, ...]:
        return REFERENCES if self.sft_all else REFERENCES[:1]


def sft_epochs(cfg: Config, recipe: ExperimentSettings, method: str = "SFT") -> float:
    """The epochs ``method`` (``SFT`` or ``SFT-all``) of ``recipe`` trains for."""
    if method == "SFT-all":
        return recipe.sft_all_epochs
    if recipe.sft_epochs is not None:
        return recipe.sft_epochs
    return profile_defaults(SFTSettings, cfg).epochs * TRAIN_FRACTION / recipe.fraction


def rl_reward(family: str, clip_reward: ClipReward | None = None):
    """The reward RL trains on: ``"label"`` label-F1 R2; ``"clip"`` R1 (CLIP) alone; ``"vote"`` the
    majority-vote R2 (self-consistency), which reads no label."""
    if family == "label":
        return make_reward(RewardSettings(r2="label_f1"))
    if family == "clip":
        if clip_reward is None:
            raise ValueError("label-free RL with R1 needs a CLIP reward (label_free_clip)")
        return make_reward(RewardSettings(r2=None), clip_reward)
    if family == "vote":
        return make_reward(RewardSettings(r2="majority"))
    raise ValueError(f"reward family must be 'label', 'clip' or 'vote', not {family!r}")


def yardstick(clip_reward: ClipReward):
    """The test reward every method is scored with: R = R1 + label-F1 R2."""
    return make_reward(RewardSettings(r2="label_f1"), clip_reward)


def unlabelled(items: Sequence[Mapping]) -> Sequence[dict]:
    """``items`` without ``actions`` and ``reasons``: what label-free training gets, so that no reward
    (nor anything else) can read a pool label. A list gives a list; items streamed from disk
    (``toy_split.StreamedItems``) stay streamed."""
    if isinstance(items, list):
        return [_without_labels(item) for item in items]
    return Unlabelled(items)


def _without_labels(item: Mapping) -> dict:
    return {k: v for k, v in item.items() if k not in ("actions", "reasons")}


class Unlabelled(Sequence):
    """:func:`unlabelled` of a sequence read lazily: each item loses its labels when indexed."""

    def __init__(self, items: Sequence[Mapping]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [_without_labels(item) for item in self.items[index]]
        return _without_labels(self.items[index])


def git_commit() -> dict:
    """``commit`` and ``clean`` of the repository drivekit runs from (None / False outside git)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=HOME, capture_output=True, text=True, check=True).stdout

    try:
        return dict(commit=git("rev-parse", "HEAD").strip(), clean=not git("status", "--porcelain").strip())
    except (OSError, subprocess.CalledProcessError):
        return dict(commit=None, clean=False)


def _scores(rows: list[dict]) -> dict:
    s = score(rows)
    return dict(f1_act=s["actions"]["f1_all"], f1_rsn=s["reasons"]["f1_all"], pair_f1=s["pair_f1"],
                unparseable=s["unparseable"], n=len(rows))


def _finish(folder: Path, val_rows: list[dict], test_rows: list[dict] | None, clip_reward: ClipReward | None,
            **info) -> dict:
    """Write ``summary.json`` of a run: its validation scores (``val``), its test F1s, pair F1 and R
    when it answered the test split, the code's commit, and ``info``."""
    summary = dict(val=_scores(val_rows))
    if test_rows is not None:
        t = _scores(test_rows)
        rewards = prediction_rewards(test_rows, yardstick(clip_reward))
        summary.update(f1_act=t["f1_act"], f1_rsn=t["f1_rsn"], pair_f1=t["pair_f1"], R=rewards["R"], rewards=rewards,
                       unparseable=t["unparseable"], n_test=t["n"])
    summary.update(**git_commit(), **info)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_name(method: str, seed: int) -> str:
    """A run's name on a dashboard: ``A2C-R2-seed0``."""
    return f"{method}-seed{seed}"


def sft_settings(cfg: Config, recipe: ExperimentSettings, method: str, seed: int) -> SFTSettings:
    """The ``SFTSettings`` of ``SFT`` / ``SFT-all`` (and of self-training, which continues SFT)."""
    return profile_defaults(SFTSettings, cfg, seed=seed, epochs=sft_epochs(cfg, recipe, method),
                            val_size=recipe.val_size)


def run_sft(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, folder: Path, clip_reward: ClipReward,
            progress: bool = False, report: Report | None = None) -> dict:
    """``SFT`` or ``SFT-all`` of ``seed`` on the seed's own data draw (``sft_stage.run``, resumed when
    cut off), scored on the validation clips and the test split; ``report`` gets the run's name and tags."""
    settings = sft_settings(cfg, recipe, method, seed)
    labels = "all" if method == "SFT-all" else "subset"
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, labels=labels,
                                         fraction=recipe.fraction)
    result = sft_stage.run(cfg, settings, folder, progress=progress, resume=True, labels=labels,
                           fraction=recipe.fraction, report=report, draw=seed, score_val=True)
    done = json.loads(result.summary.read_text())
    return _finish(folder, read_predictions(folder / sft_stage.VAL_PREDICTIONS), read_predictions(result.predictions),
                   clip_reward, method=method, seed=seed, draw=seed, labels=labels, fraction=recipe.fraction,
                   epochs=settings.epochs, n_train=done["n_train"], n_val=done["n_val"],
                   train_seconds=done["train_seconds"])


def rl_settings(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, **changes):
    """The ``A2CSettings``, ``GRPOSettings`` or (self-training) ``SFTSettings`` of a method of ``recipe``
    at ``seed``, with ``changes`` (a tuning run's) on top."""
    algorithm, family = METHODS[method]
    if algorithm == "self":
        return sft_settings(cfg, recipe, "SFT", seed)
    overrides = recipe.a2c if algorithm == "a2c" else recipe.grpo
    vote = VOTE_A2C if (family == "vote" and algorithm == "a2c") else {}
    return profile_defaults(SETTINGS[algorithm], cfg, **{"steps": recipe.steps, "seed": seed, **overrides,
                                                          **changes, **vote})


def budget(recipe: ExperimentSettings) -> int:
    """The answers every RL method samples in all (8 a step), and self-training's training examples."""
    return recipe.steps * 8


def run_rl(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, folder: Path, out: Path, *,
           test: bool = True, changes: Mapping | None = None, progress: bool = False,
           report: Report | None = None) -> dict:
    """One RL method (or self-training) of ``recipe`` at ``seed`` from that seed's SFT adapter
    (``<out>/SFT/seed<s>/best``) on the seed's pool, in ``folder``.

    Writes ``log.csv`` (one row per step), ``policy/`` (the trained adapter), ``val_predictions.jsonl``,
    with ``test`` ``predictions.jsonl``, and ``summary.json`` (with seconds per step, and for the
    majority vote how often the majority was the pool clip's truth, read after training).
    ``changes``: settings of a tuning run on top of the recipe's.
    """
    algorithm, family = METHODS[method]
    start = Path(out) / "SFT" / f"seed{seed}" / "best"
    if not (start / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{method} seed {seed} starts from {start}, which holds no adapter: run SFT first")
    data = toy_data(cfg, recipe.val_size, fraction=recipe.fraction, draw=seed)
    pool = items_of(cfg, data.pool)
    items = pool if family == "label" else unlabelled(pool)
    settings = rl_settings(cfg, recipe, method, seed, **(changes or {}))
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, algorithm=algorithm,
                                         reward=family, labels_used=LABELS_USED[family], fraction=recipe.fraction)
    folder.mkdir(parents=True, exist_ok=True)
    info = {}
    if algorithm == "self":
        trained = self_training.train(cfg, items, data.val, settings, budget(recipe), start, folder / "sft",
                                      progress=progress, report=report)
        info.update(trained.log.attrs)
        shutil.rmtree(folder / "policy", ignore_errors=True)
        shutil.copytree(folder / "sft" / "best", folder / "policy")
    else:
        clip = label_free_clip(cfg) if family == "clip" else None
        reward = rl_reward(family, clip)
        trained = STAGES[algorithm].train(cfg, items, reward, settings, start=start, out=folder, progress=progress,
                                          report=report)
        if family == "vote":
            info["majority"] = majority_accuracy(reward, {s.name: (s.actions, s.reasons) for s in data.pool.samples})
    trained.log.to_csv(folder / "log.csv", index=False)
    sft = profile_defaults(SFTSettings, cfg)
    val_rows = predict(trained.model, trained.processor, data.val, sft, progress=progress)
    write_predictions(val_rows, folder / sft_stage.VAL_PREDICTIONS)
    test_rows = None
    if test:
        test_rows = predict(trained.model, trained.processor, data.test, sft, progress=progress)
        write_predictions(test_rows, folder / "predictions.jsonl")
    steps = len(trained.log)
    return _finish(folder, val_rows, test_rows, ClipReward.from_config(cfg) if test else None, method=method,
                   seed=seed, draw=seed, algorithm=algorithm, labels_used=LABELS_USED[family], start=str(start),
                   sft_epochs=sft_epochs(cfg, recipe), steps=steps, samples_per_step=trained.samples_per_step,
                   train_seconds=round(trained.seconds, 1), seconds_per_step=round(trained.seconds / max(steps, 1), 3),
                   settings=asdict(settings), changes=dict(changes or {}), **info)


def short_runs(cfg: Config, recipe: ExperimentSettings, seed: int, out: str | Path, reward, probe_size: int = 256,
               **options) -> a2c_stage.ShortRuns:
    """The training panel's backend on one seed of an experiment run in ``out`` (notebook 04): short A2C runs
    with ``reward`` and the recipe's A2C settings, from the seed's SFT adapter (``<out>/SFT/seed<s>/best``),
    on the seed's pool, each scored on ``probe_size`` of the seed's validation clips (drawn as
    ``toy_data(val_size=probe_size)`` draws them; the labelled subset SFT learnt from is the same for any size),
    where that SFT is partly wrong. ``options`` go to :class:`drivekit.stages.a2c_stage.ShortRuns` (e.g.
    ``seconds_per_step``)."""
    start = Path(out) / "SFT" / f"seed{seed}" / "best"
    data = toy_data(cfg, probe_size, fraction=recipe.fraction, draw=seed)
    return a2c_stage.ShortRuns(cfg, a2c_stage.load_policy(cfg, start), items_of(cfg, data.pool), reward,
                               items_of(cfg, data.val), a2c=rl_settings(cfg, recipe, "A2C-R2", seed), start=start,
                               **options)


def majority_accuracy(reward, truth: Mapping[str, tuple[Sequence[int], Sequence[int]]], window: int = 40) -> dict:
    """How often the self-consistency majority was the truth (``{clip: (actions, reasons)}``, the pool's
    labels, read by the harness after training; the reward never saw them): overall, in the first and
    in the last ``window`` steps, and how many votes there were."""
    vote = reward.terms["r2"][1]
    truth = {str(k): (tuple(int(v) for v in a), tuple(int(v) for v in r)) for k, (a, r) in truth.items()}
    per_call = [[majority == truth.get(clip) for clip, majority in votes.items()] for votes in vote.votes]
    share = lambda calls: float(np.mean([x for c in calls for x in c])) if any(calls) else None  # noqa: E731
    return dict(right=share(per_call), first=share(per_call[:window]), last=share(per_call[-window:]),
                votes=sum(len(c) for c in per_call))


def unseen_clip(cfg: Config, progress: bool = False) -> Path:
    """A tiny CLIP that never saw a clip of ``cfg``'s dataset, for label-free RL (built when missing).

    The shipped tiny CLIP trained on every clip outside the toy test split, the RL pool included,
    with its labels and descriptions. This one trains the same way on a second synthetic dataset
    (same generator and size, seed ``cfg.seed + 1``, in ``<cache_dir>/synthetic-unseen``): its
    captions are the action + reason texts of 5,490 other clips from the same generator, so R1 on
    the toy split's clips reads none of their labels or descriptions, but it did learn from labelled
    clips of the same kind. Folder: ``<cache_dir>/tiny-clip-unseen``.
    """
    from drivekit.models.clip import WEIGHTS_FILE, build_clip
    from drivekit.data.synthetic import generate

    out = Path(cfg.cache_dir) / "tiny-clip-unseen"
    if (out / WEIGHTS_FILE).is_file():
        return out
    if not cfg.synthetic:
        raise ValueError("an unseen-data CLIP is built for the synthetic (tiny) profile only; the paper "
                         "profile's pretrained CLIP never saw BDD-OIA's labels")
    settings = json.loads((Path(cfg.data_root) / "generator.json").read_text())
    other = cfg.replace(data_root=Path(cfg.cache_dir) / "synthetic-unseen", seed=cfg.seed + 1)
    if not (other.data_root / "test_25k_images_reasons.json").exists():
        generate(other.data_root, settings["n_clips"], settings["n_frames"], tuple(settings["size"]), other.seed,
                 progress=progress)
    return build_clip(other, out, progress=progress)


def judge_accuracy(sft_rows: Sequence[Mapping], clip_reward: ClipReward) -> dict:
    """How well R1 could teach: on the clips SFT answered wrong (``sft_rows``, prediction rows), the share
    where ``clip_reward`` scores the true answer's text above SFT's answer (ties count half), and how
    many such clips there were. A judge that often prefers the wrong answer cannot teach much."""
    from drivekit.text.formats import target_text

    wrong = [r for r in sft_rows if list(r["actions_pred"]) != list(r["actions_true"])
             or list(r["reasons_pred"]) != list(r["reasons_true"])]
    if not wrong:
        return dict(right=None, n=0)
    names = [r["file_name"] for r in wrong]
    truth = clip_reward([target_text(r["actions_true"], r["reasons_true"]) for r in wrong], file_name=names)
    answer = clip_reward([r["text"] for r in wrong], file_name=names)
    wins = [1.0 if t > a else 0.5 if t == a else 0.0 for t, a in zip(truth, answer)]
    return dict(right=float(np.mean(wins)), n=len(wrong))


def label_free_clip(cfg: Config) -> ClipReward:
    """R1 for label-free RL: in the tiny profile a CLIP trained on other synthetic clips
    (:func:`unseen_clip`; the shipped one saw the pool's labels and descriptions), in the paper
    profile its pretrained CLIP."""
    return ClipReward.from_config(cfg.replace(clip=str(unseen_clip(cfg))) if cfg.synthetic else cfg)


# ---------------------------------------------------------------------------------------------
# Running many runs: one task per run, in this process or in ``jobs`` worker processes
# ---------------------------------------------------------------------------------------------
def _task(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, folder: Path, out: Path,
          test: bool = True, changes: Mapping | None = None, progress: bool = False,
          report_to: str | None = None) -> dict:
    report = Report(to=report_to, project=Path(out).resolve().name)
    if method in REFERENCES:
        return run_sft(cfg, recipe, method, seed, folder, ClipReward.from_config(cfg), progress, report)
    return run_rl(cfg, recipe, method, seed, folder, out, test=test, changes=changes, progress=progress,
                  report=report)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run_all(tasks: Sequence[dict], jobs: int = 1, echo=print) -> list[dict]:
    """Run the :func:`_task` keyword sets ``tasks``; with ``jobs > 1`` in that many worker processes
    (spawned, the CPU's threads shared among them). Returns their summaries in order."""
    def say(t, s):
        where = "val" if "f1_act" not in s else "test"
        f1 = s["val"] if where == "val" else s
        echo(f"{t['method']} seed {t['seed']} {t['folder'].name}: {where} F1_act {f1['f1_act']:.4f}  "
             f"F1_rsn {f1['f1_rsn']:.4f}  (val {val_score(s):.4f})  train {s.get('train_seconds')} s")

    if jobs <= 1:
        done = []
        for t in tasks:
            done.append(_task(**t))
            say(t, done[-1])
        return done
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(_task, **t) for t in tasks]
        done = []
        for t, f in zip(tasks, futures):
            done.append(f.result())
            say(t, done[-1])
        return done


def _pending(tasks: Sequence[dict], check) -> list[dict]:
    """The tasks whose folder holds no finished run (a finished one is checked by ``check(task)``)."""
    todo = []
    for t in tasks:
        if _finished(t["folder"], t.get("test", True)):
            check(t)
        else:
            todo.append(t)
    return todo


def references(cfg: Config, recipe: ExperimentSettings, out: Path, jobs: int = 1, progress: bool = False,
               report_to: str | None = None, echo=print) -> None:
    """SFT (and SFT-all) of every seed of ``recipe`` under ``out``, finished runs reused."""
    tasks = [dict(cfg=cfg, recipe=recipe, method=m, seed=s, folder=out / m / f"seed{s}", out=out, progress=progress,
                  report_to=report_to) for s in recipe.seeds for m in recipe.references]
    check = lambda t: _same_recipe(t["folder"], recipe, epochs=sft_epochs(cfg, recipe, t["method"]), draw=t["seed"])  # noqa: E731
    run_all(_pending(tasks, check), jobs, echo)


# ---------------------------------------------------------------------------------------------
# Choosing the settings on validation
# ---------------------------------------------------------------------------------------------
def grid_changes() -> dict[str, dict]:
    """The :data:`GRID`'s settings by name (``lr1e-04-kl0``...)."""
    return {f"lr{lr:.0e}-kl{kl:g}": dict(lr=lr, kl_coef=kl) for lr in GRID["lr"] for kl in GRID["kl_coef"]}


def _tuning_runs(folder: Path, names: Sequence[str]) -> dict[str, dict]:
    return {n: json.loads((folder / n / "summary.json").read_text()) for n in names}


def tune(cfg: Config, recipe: ExperimentSettings, seed: int, out: Path, algorithms: Sequence[str] = ("a2c", "grpo"),
         jobs: int = 1, progress: bool = False, report_to: str | None = None, echo=print) -> dict:
    """Choose each algorithm's settings on ``seed``'s validation clips, with its label-grounded method
    (:data:`TUNED_METHOD`): the :data:`GRID`, then :data:`VARIANTS` at the grid's best, all by
    :func:`val_score`; no run answers the test split. Runs in ``<out>/tune/<method>/seed<s>/<name>``;
    returns (and writes to ``<out>/tuning.json``) every run's validation scores and seconds per step,
    and per algorithm the chosen run and its settings (``changes``, on top of the recipe's)."""
    references(cfg, dataclasses.replace(recipe, seeds=(seed,)), out, jobs, progress, report_to, echo)

    def tasks(named: Mapping[str, dict]) -> list[dict]:
        return [dict(cfg=cfg, recipe=recipe, method=TUNED_METHOD[a], seed=seed,
                     folder=out / "tune" / TUNED_METHOD[a] / f"seed{seed}" / n, out=out, test=False, changes=c,
                     progress=progress, report_to=report_to) for a in algorithms for n, c in named[a].items()]

    def check(t):
        _same_recipe(t["folder"], recipe, rl_settings(cfg, recipe, t["method"], seed, **t["changes"]),
                     sft_epochs=sft_epochs(cfg, recipe), draw=seed)

    grid = {a: grid_changes() for a in algorithms}
    run_all(_pending(tasks(grid), check), jobs, echo)
    result = {"seed": seed, "selected_by": "mean of F1_act and F1_rsn on the validation clips",
              "n_val": recipe.val_size, "algorithms": {}}
    best_grid = {}
    for a in algorithms:
        runs = _tuning_runs(out / "tune" / TUNED_METHOD[a] / f"seed{seed}", list(grid[a]))
        best_grid[a] = max(runs, key=lambda n: val_score(runs[n]))  # the first of equals: grid order
    variants = {a: {f"{best_grid[a]}+{v}": {**grid[a][best_grid[a]], **c} for v, c in VARIANTS[a].items()}
                for a in algorithms}
    run_all(_pending(tasks(variants), check), jobs, echo)
    for a in algorithms:
        names = [*grid[a], *variants[a]]
        runs = _tuning_runs(out / "tune" / TUNED_METHOD[a] / f"seed{seed}", names)
        chosen = max(names, key=lambda n: val_score(runs[n]))
        result["algorithms"][a] = dict(
            method=TUNED_METHOD[a], grid_best=best_grid[a], chosen=chosen, changes={**grid[a], **variants[a]}[chosen],
            runs={n: dict(changes=r["changes"], val=r["val"], score=val_score(r), seconds_per_step=r["seconds_per_step"])
                  for n, r in runs.items()})
    (out / "tuning.json").write_text(json.dumps(result, indent=1))
    return result


def tuned(recipe: ExperimentSettings, tuning: Mapping) -> ExperimentSettings:
    """``recipe`` with each tuned algorithm's chosen settings on top of its own."""
    chosen = {a: e["changes"] for a, e in tuning["algorithms"].items()}
    return dataclasses.replace(recipe, a2c={**recipe.a2c, **chosen.get("a2c", {})},
                               grpo={**recipe.grpo, **chosen.get("grpo", {})})


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------
def run(recipe: ExperimentSettings = ExperimentSettings(), out: str | Path | None = None, cfg: Config | None = None,
        progress: bool = False, echo=print, report_to: str | None = None, tune_seed: int | None = None,
        jobs: int = 1) -> dict:
    """Every method of ``recipe`` over its seeds (finished runs reused), then :func:`summarize`.

    ``tune_seed``: first choose A2C's and GRPO's settings on that seed's validation clips (:func:`tune`)
    and run every method with them; a final run whose tuning run exists (same seed, same settings) is
    that run, answering the test split once. ``report_to`` (default ``$DRIVEKIT_REPORT_TO``): each run
    reports to that backend, in the project named after ``out``, as :func:`run_name`."""
    cfg = cfg or load()
    out = Path(out) if out else cfg.runs_dir / "rl-vs-sft"
    Report(to=report_to, project=out.resolve().name)  # checked before any training
    references(cfg, recipe, out, jobs, progress, report_to, echo)
    tuning = None
    if tune_seed is not None:
        algorithms = sorted({METHODS[m][0] for m in recipe.methods} & set(TUNED_METHOD))
        tuning = tune(cfg, recipe, tune_seed, out, algorithms, jobs, progress, report_to, echo)
        recipe = tuned(recipe, tuning)
    if any(METHODS[m][1] == "clip" for m in recipe.methods):
        unseen_clip(cfg, progress)  # built once, before any worker needs it
    tasks = []
    for seed in recipe.seeds:
        for method in recipe.methods:
            folder = out / method / f"seed{seed}"
            if not _finished(folder) and tuning is not None:
                _from_tuning(cfg, recipe, method, seed, out, tuning, folder)
            tasks.append(dict(cfg=cfg, recipe=recipe, method=method, seed=seed, folder=folder, out=out, progress=progress,
                              report_to=report_to))

    def check(t):
        _same_recipe(t["folder"], recipe, rl_settings(cfg, recipe, t["method"], t["seed"]),
                     sft_epochs=sft_epochs(cfg, recipe), draw=t["seed"])

    run_all(_pending(tasks, check), jobs, echo)
    results = summarize(out, recipe)
    for method, entry in results["methods"].items():
        if METHODS.get(method, ("", ""))[1] == "clip":  # why R1 teaches what it does: its judgement of SFT's errors
            judge = label_free_clip(cfg)
            entry["judge"] = [judge_accuracy(read_predictions(out / "SFT" / f"seed{s}" / "predictions.jsonl"), judge)
                              for s in recipe.seeds]
    if tuning is not None:
        results["tuning"] = tuning
    (out / "rl_vs_sft.json").write_text(json.dumps(results, indent=1))
    return results


def _from_tuning(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, out: Path, tuning: Mapping,
                 folder: Path) -> None:
    """Make ``folder`` the final run of ``method`` at ``seed`` from its tuning run, when one was made with
    the same settings: its policy answers the test split (once, here), and its files are copied."""
    algorithm = METHODS[method][0]
    entry = tuning["algorithms"].get(algorithm)
    if entry is None or entry["method"] != method or tuning["seed"] != seed:
        return
    source = out / "tune" / method / f"seed{seed}" / entry["chosen"]
    done = json.loads((source / "summary.json").read_text())
    if done["settings"] != json.loads(json.dumps(asdict(rl_settings(cfg, recipe, method, seed)))):
        return
    model, processor = load_vlm(cfg, adapter=source / "policy")
    data = toy_data(cfg, recipe.val_size, fraction=recipe.fraction, draw=seed)
    rows = predict(model, processor, data.test, profile_defaults(SFTSettings, cfg), progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("log.csv", sft_stage.VAL_PREDICTIONS):
        shutil.copy2(source / name, folder / name)
    write_predictions(rows, folder / "predictions.jsonl")
    val_rows = read_predictions(folder / sft_stage.VAL_PREDICTIONS)
    info = {k: v for k, v in done.items() if k not in ("val", "commit", "clean")}
    _finish(folder, val_rows, rows, ClipReward.from_config(cfg), **info, tuning_run=str(source))


def _finished(folder: Path, test: bool = True) -> bool:
    """Whether a run folder holds its validation answers and the harness's summary, and with ``test``
    its test answers and test reward ``R`` (SFT's own ``summary.json`` comes first and lacks both)."""
    summary = folder / "summary.json"
    if not (summary.is_file() and (folder / sft_stage.VAL_PREDICTIONS).is_file()):
        return False
    done = json.loads(summary.read_text())
    return "val" in done and (not test or ((folder / "predictions.jsonl").is_file() and "R" in done))


def _same_recipe(folder: Path, recipe: ExperimentSettings, settings=None, **expected) -> None:
    """Refuse to reuse a finished run made with another labelled fraction, other ``expected``
    summary values (an SFT's ``epochs``, the ``sft_epochs`` an RL run started from, the data ``draw``)
    or, for an RL run, other ``settings`` (:func:`rl_settings`), e.g. a short run's folder under a
    longer recipe: it would be reported as this recipe's. A setting the stored run lacks is its
    field's default: the run was made before the field existed, and so with the behaviour the default
    keeps; a setting stored under an older name (the settings class's ``RENAMED``) is read under its new one."""
    done = json.loads((folder / "summary.json").read_text())
    differ = []
    if "fraction" in done and done["fraction"] != recipe.fraction:
        differ.append(f"fraction {done['fraction']} (recipe: {recipe.fraction})")
    differ += [f"{k} {done.get(k)!r} (recipe: {v!r})" for k, v in expected.items() if done.get(k) != v]
    if settings is not None:
        defaults = {f.name: f.default for f in fields(settings) if f.default is not MISSING}
        renamed = getattr(type(settings), "RENAMED", {})  # fields stored under an older name: migrated here
        stored = {renamed.get(k, k): v for k, v in done.get("settings", {}).items()}
        stored = {**json.loads(json.dumps(defaults)), **stored}  # as summary.json holds them
        wanted = json.loads(json.dumps(asdict(settings)))
        differ += [f"{k} {stored.get(k)!r} (recipe: {v!r})" for k, v in wanted.items() if stored.get(k) != v]
    if differ:
        raise ValueError(f"{folder} holds a finished run with {', '.join(differ)}; delete it or choose another --out")


def _runs(out: Path, method: str, seeds: Sequence[int]) -> list[tuple[dict, list[dict], list[dict]]]:
    folders = [out / method / f"seed{seed}" for seed in seeds]
    missing = [str(f) for f in folders if not _finished(f)]
    if missing:
        raise FileNotFoundError(f"runs not finished: {missing}")
    return [(json.loads((f / "summary.json").read_text()), read_predictions(f / "predictions.jsonl"),
             read_predictions(f / sft_stage.VAL_PREDICTIONS)) for f in folders]


def _tested(reference: Sequence[Mapping], rows: Sequence[Mapping]) -> dict:
    """``stats.paired`` of ``rows`` against ``reference`` with its exact sign test ``p``."""
    c = stats.paired(reference, rows)
    return {**c, "p": stats.sign_test(c["fixed"], c["broken"])}


def summarize(out: str | Path, recipe: ExperimentSettings) -> dict:
    """``rl_vs_sft.json``'s content from the finished runs under ``out``: per method the per-seed
    F1_act, F1_rsn, pair F1 and R on the test split, their spread (``summary``), the same F1s on each
    seed's validation clips (``val``), the per-class F1s per seed (``per_class_f1``, Fig. 5), and for
    every method but SFT the clip-by-clip comparison with the same seed's SFT on the test split
    (``paired``, each seed with its sign test ``p``; ``p_max`` the largest) and on validation
    (``paired_val``), the share of the SFT → SFT-all gap closed on the means (``gap_closed``, when
    SFT-all ran) and whether it beat SFT's F1_act and F1_rsn on every seed. ``fixed`` / ``broken``
    sum the seeds, descriptively: the seeds share the test clips, so no pooled test is made."""
    out = Path(out)
    results = {"seeds": list(recipe.seeds), "labeled_fraction": recipe.fraction, "recipe": asdict(recipe),
               "n_val": recipe.val_size, "methods": {}}
    runs = {m: _runs(out, m, recipe.seeds) for m in (*recipe.references, *recipe.methods)}
    means = {m: {k: float(np.mean([s[k] for s, _, _ in r])) for k in KEYS} for m, r in runs.items()}
    for method, per_seed in runs.items():
        entry = {k: [s[k] for s, _, _ in per_seed] for k in KEYS}
        entry["summary"] = {k: stats.over_seeds(entry[k]) for k in KEYS}
        entry["val"] = {k: [s["val"][k] for s, _, _ in per_seed] for k in VAL_KEYS}
        entry["val_summary"] = {k: stats.over_seeds(v) for k, v in entry["val"].items()}
        reports = [score(rows) for _, rows, _ in per_seed]
        entry["per_class_f1"] = {kind: {key: [r[kind]["f1"][key] for r in reports] for key in reports[0][kind]["f1"]}
                                 for kind in ("actions", "reasons")}
        entry["n_train"] = per_seed[0][0].get("n_train")
        entry["commits"] = sorted({str(s.get("commit")) for s, _, _ in per_seed})
        if method != "SFT":
            paired = [_tested(ref, rows) for (_, ref, _), (_, rows, _) in zip(runs["SFT"], per_seed)]
            entry.update(paired=paired, p_max=max(c["p"] for c in paired), fixed=sum(c["fixed"] for c in paired),
                         broken=sum(c["broken"] for c in paired),
                         paired_val=[stats.paired(ref, rows) for (_, _, ref), (_, _, rows) in zip(runs["SFT"], per_seed)])
            entry["beats_sft_every_seed"] = all(
                s["f1_act"] > ref["f1_act"] and s["f1_rsn"] > ref["f1_rsn"]
                for (ref, _, _), (s, _, _) in zip(runs["SFT"], per_seed))
            if "SFT-all" in means:
                entry["gap_closed"] = {k: _closed(means["SFT"][k], means["SFT-all"][k], means[method][k])
                                       for k in ("f1_act", "f1_rsn")}
        if method in METHODS and LABELS_USED[METHODS[method][1]] == "none" and method != BASELINE and BASELINE in runs:
            # label-free RL has to beat SFT continued on its own answers
            entry["vs_self_training"] = [_tested(ref, rows) for (_, ref, _), (_, rows, _) in zip(runs[BASELINE], per_seed)]
        if method in METHODS:
            first = per_seed[0][0]
            entry.update(labels_used=first["labels_used"], steps=first["steps"], samples_per_step=first["samples_per_step"],
                         seconds_per_step=[s["seconds_per_step"] for s, _, _ in per_seed],
                         settings=first.get("settings"))
            if "majority" in first:
                entry["majority"] = [s["majority"] for s, _, _ in per_seed]
            logs = [pd.read_csv(out / method / f"seed{seed}" / "log.csv") for seed in recipe.seeds]
            if all("reward" in log for log in logs):
                entry["reward_curve"] = [a2c_stage.curves(log, ("reward",))["reward"].round(4).tolist() for log in logs]
        results["methods"][method] = entry
    return results


# ---------------------------------------------------------------------------------------------
# Provenance: every final run's answers, clip by clip, in one compressed file
# ---------------------------------------------------------------------------------------------
ANSWER_KEYS = ("actions_pred", "reasons_pred", "actions_true", "reasons_true")


def export_predictions(out: str | Path, recipe: ExperimentSettings, path: str | Path) -> Path:
    """Write every final run's answers (references and methods of ``recipe``, each seed, on the
    validation clips and the test split) to ``path`` (gzip-compressed JSON lines: ``method``, ``seed``,
    ``split``, ``file_name`` and the 0/1 label vectors as strings of digits)."""
    import gzip

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for method in (*recipe.references, *recipe.methods):
            for seed in recipe.seeds:
                folder = Path(out) / method / f"seed{seed}"
                for split, name in (("val", sft_stage.VAL_PREDICTIONS), ("test", "predictions.jsonl")):
                    for row in read_predictions(folder / name):
                        f.write(json.dumps(dict(method=method, seed=seed, split=split, file_name=row["file_name"],
                                                **{k: "".join(str(int(v)) for v in row[k]) for k in ANSWER_KEYS})) + "\n")
    return path


def read_exported(path: str | Path) -> dict[tuple[str, int, str], list[dict]]:
    """:func:`export_predictions`'s file as ``{(method, seed, split): prediction rows}``."""
    import gzip

    runs: dict[tuple[str, int, str], list[dict]] = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            row = dict(file_name=r["file_name"], **{k: [int(c) for c in r[k]] for k in ANSWER_KEYS})
            runs.setdefault((r["method"], r["seed"], r["split"]), []).append(row)
    return runs


def paired_from_predictions(path: str | Path, split: str = "test") -> dict[str, list[dict]]:
    """Per method, each seed's clip-by-clip comparison with that seed's SFT (``stats.paired`` with its
    sign test ``p``), recomputed from an exported answers file."""
    runs = read_exported(path)
    seeds = sorted({seed for (_, seed, sp) in runs if sp == split})
    methods = list(dict.fromkeys(m for (m, _, sp) in runs if sp == split and m != "SFT"))
    out = {}
    for m in methods:
        out[m] = [_tested(runs[("SFT", s, split)], runs[(m, s, split)]) for s in seeds]
    return out


def load_results(path: str | Path) -> dict:
    """A results file's content with the ``command`` (and ``commit``) that made it:
    ``benchmarks/results/rl_vs_sft.json`` holds it under ``results`` beside its provenance
    (``record.py``); an older file is the content itself."""
    data = json.loads(Path(path).read_text())
    if "methods" in data.get("results", {}):
        return {**data["results"], "command": data.get("command"), "commit": data.get("commit")}
    return data


def _closed(sft_mean: float, all_mean: float, value: float) -> float | None:
    gap = all_mean - sft_mean
    return None if gap <= 0 else float((value - sft_mean) / gap)


def table(results: Mapping) -> pd.DataFrame:
    """One row per method: mean ± sd over seeds (one seed: its value) of F1_act, F1_rsn, pair F1
    and R on the test split and of the validation score, fixed / broken clips against SFT summed over
    the seeds, the largest per-seed sign-test p, the share of the SFT → SFT-all gap closed, the
    labels RL read and seconds per step."""
    rows = {}
    for method, e in results["methods"].items():
        row = {k: _mean_sd(e["summary"][k]) for k in KEYS}
        if "val" in e:
            row["val (act+rsn)/2"] = _mean_sd(stats.over_seeds([(a + r) / 2 for a, r in
                                                                zip(e["val"]["f1_act"], e["val"]["f1_rsn"])]))
        row["fixed/broken"] = f"{e['fixed']}/{e['broken']}" if "fixed" in e else ""
        if "p_max" in e:
            row["p vs SFT (each seed ≤)"] = f"{e['p_max']:.2g}"
        elif "p_vs_sft" in e:  # a results file from before the per-seed tests: its pooled p
            row["p vs SFT (pooled)"] = f"{e['p_vs_sft']:.2g}"
        gap = e.get("gap_closed") or {}
        row["gap closed (act, rsn)"] = (", ".join("—" if gap[k] is None else f"{gap[k]:.2f}" for k in ("f1_act", "f1_rsn"))
                                        if gap else "")
        vs = e.get("vs_self_training")
        row["vs ST: fixed/broken (p ≤)"] = (f"{sum(c['fixed'] for c in vs)}/{sum(c['broken'] for c in vs)} "
                                           f"({max(c['p'] for c in vs):.2g})" if vs else "")
        row["labels RL read"] = e.get("labels_used", "")
        row["s/step"] = f"{np.mean(e['seconds_per_step']):.2f}" if "seconds_per_step" in e else ""
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def tuning_table(tuning: Mapping) -> pd.DataFrame:
    """One row per tuning run: algorithm, run name, validation F1_act / F1_rsn, the score settings are
    chosen by, seconds per step, and which run was chosen."""
    rows = []
    for algorithm, e in tuning["algorithms"].items():
        for name, r in e["runs"].items():
            rows.append({"algorithm": algorithm, "run": name, "val F1_act": round(r["val"]["f1_act"], 4),
                         "val F1_rsn": round(r["val"]["f1_rsn"], 4), "score": round(r["score"], 4),
                         "s/step": r["seconds_per_step"], "chosen": "✓" if name == e["chosen"] else ""})
    return pd.DataFrame(rows)


def f1_tables(results: Mapping) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Fig. 5 over seeds: ``(per_class, mean, sd)``. ``per_class`` maps "actions"/"reasons" to the
    per-class F1 (percent) of each method, the mean over seeds, in ``metrics.per_class_frame``'s
    layout; ``mean`` and ``sd`` are the sample-level F1_act, F1_rsn and pair F1 in percent."""
    methods = results["methods"]
    means = {m: {kind: {"f1": {k: float(np.mean(v)) for k, v in e["per_class_f1"][kind].items()}}
                 for kind in ("actions", "reasons")} for m, e in methods.items()}
    per_class = {kind: metrics.per_class_frame(means, kind) for kind in ("actions", "reasons")}
    columns = {"f1_act": "F1_act (sample)", "f1_rsn": "F1_rsn (sample)", "pair_f1": "F1_pair (sample)"}
    frame = {stat: pd.DataFrame({name: {m: 100 * e["summary"][k][stat] for m, e in methods.items()}
                                 for k, name in columns.items()}) for stat in ("mean", "sd")}
    return per_class, frame["mean"], frame["sd"]


def _mean_sd(summary: Mapping) -> str:
    """"mean ± sd" over seeds; the mean alone for one seed, which has no spread."""
    return f"{summary['mean']:.3f}" + (f" ± {summary['sd']:.3f}" if summary["n"] > 1 else "")


def curves(results: Mapping, window: int = 10) -> pd.DataFrame:
    """Long frame (``method``, ``seed``, ``step``, ``reward``, ``smoothed``) of the RL methods' mean
    sampled reward per step (``reward_curve`` of :func:`summarize`), smoothed by a trailing mean over
    ``window`` steps."""
    frames = []
    for method, entry in results["methods"].items():
        for seed, rewards in zip(results["seeds"], entry.get("reward_curve", [])):
            frame = pd.DataFrame({"step": range(1, len(rewards) + 1), "reward": rewards})
            frame["smoothed"] = frame["reward"].rolling(window, min_periods=1).mean()
            frames.append(frame.assign(method=method, seed=seed))
    columns = ["method", "seed", "step", "reward", "smoothed"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def parser(runs_flag: str = "--out") -> argparse.ArgumentParser:
    """The command line of ``python -m drivekit rl-vs-sft``; ``benchmarks/bench_rl_vs_sft.py`` names the
    run directory ``--runs`` (its ``--out`` is the results file)."""
    defaults = ExperimentSettings()
    p = argparse.ArgumentParser(prog="python -m drivekit rl-vs-sft", description=(
        "SFT, SFT-all and RL on the unlabelled pool over seeds, each seed with its own data draw; settings "
        "chosen on validation, the test split scored once; F1s, spread and per-seed sign tests against SFT."))
    p.add_argument("--profile", help="tiny (default) or paper")
    p.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    p.add_argument("--fraction", type=float, default=defaults.fraction, help="labelled share of the toy train part")
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(defaults.methods))
    p.add_argument("--steps", type=int, default=defaults.steps, help="RL steps of 8 sampled answers each")
    p.add_argument("--sft-epochs", type=float, help="SFT's epochs over the labelled clips (default: as many clip "
                   "passes as the profile's SFT on the proposal's 1/8, 48 at 1/32)")
    p.add_argument("--val-size", type=int, default=defaults.val_size, help="validation clips per seed")
    p.add_argument("--tune-seed", type=int, default=0, help="choose A2C's and GRPO's settings on this seed's "
                   "validation clips first (default 0)")
    p.add_argument("--no-tune", dest="tune_seed", action="store_const", const=None,
                   help="run with the settings given (--a2c, --grpo), choosing none")
    p.add_argument("--a2c", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"A2CSettings overrides on top of {A2C_SETTINGS}, e.g. lr=2e-4")
    p.add_argument("--grpo", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"GRPOSettings overrides on top of {GRPO_SETTINGS}, e.g. kl_coef=0")
    p.add_argument("--no-sft-all", dest="sft_all", action="store_false",
                   help="leave out SFT-all, the reference of the gap (a short run)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (the CPU's threads "
                   "shared among them)")
    p.add_argument(runs_flag, dest="runs", type=Path, help="run directory (default <runs>/rl-vs-sft)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--report-to", choices=BACKENDS, help="watch every run in trackio or TensorBoard (default: "
                   "$DRIVEKIT_REPORT_TO, else none; README, 'Watch a run')")
    return p


def from_arguments(a: argparse.Namespace, echo=print) -> dict:
    """Run the experiment the parsed command line ``a`` asks for; its results."""
    recipe = ExperimentSettings(seeds=a.seeds, fraction=a.fraction, methods=a.methods, steps=a.steps,
                                sft_all=a.sft_all, sft_epochs=a.sft_epochs, val_size=a.val_size,
                                a2c={**A2C_SETTINGS, **dataclass_overrides(a.a2c, A2CSettings, "--a2c")},
                                grpo={**GRPO_SETTINGS, **dataclass_overrides(a.grpo, GRPOSettings, "--grpo")})
    return run(recipe, a.runs, load(a.profile), progress=a.progress, echo=echo, report_to=a.report_to,
               tune_seed=a.tune_seed, jobs=a.jobs)


def main(argv: list[str] | None = None) -> None:
    results = from_arguments(parser().parse_args(argv))
    if "tuning" in results:
        print(tuning_table(results["tuning"]).to_markdown(index=False))
    print(table(results).to_markdown())


if __name__ == "__main__":
    main()
