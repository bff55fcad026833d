"""RL against SFT over seeds, clip by clip: the experiment behind every "RL vs SFT" sentence.

For each seed the harness trains, in ``<out>/<method>/seed<s>/``:

- ``SFT``: QLoRA SFT on the labelled ``fraction`` of the toy train part (``toy_split.toy_data``),
  for as many clip passes as the profile's SFT makes on the proposal's 1/8 (:func:`sft_epochs`);
- ``SFT-all``: SFT on every toy-train label but the validation clips', the reference of what the
  labels alone give;
- each RL method, from that seed's SFT adapter, on the *pool*: the toy-train clips SFT never saw.
  ``A2C-*`` is drivekit's own A2C (:mod:`drivekit.a2c_stage`, batches of 8 clips, one answer each),
  ``GRPO-*`` trl's GRPO (:mod:`drivekit.grpo_stage`, 2 clips × a group of 4 answers): the same number
  of sampled answers a step, the same steps, the same clips to draw from, through one interface
  (``train`` of either stage) and one reward object (:mod:`drivekit.weighted_reward`). The reward
  family is the suffix: ``-R2`` the label-F1 R2 on the pool's labels (label-grounded, to compare with SFT-all,
  which gets the same labels without RL); ``-R1`` R1 alone, from a tiny CLIP trained on a second
  synthetic dataset (label-free: :func:`unseen_clip` never saw a clip of this one, and no pool
  label is read).

Every method then answers the toy test split greedily. Per method and seed: F1_act, F1_rsn, pair
F1 and the mean test R under one yardstick for all (R1 + label-F1 R2), and, against the same
seed's SFT, the clips it fixed and broke (exactly right vs not). :func:`summarize` adds mean ± sd
and a 95 % interval over seeds (``stats.over_seeds``), the pooled exact sign test
(``stats.pooled``) and the share of the SFT → SFT-all gap each method closes. A finished run is
reused, so an interrupted experiment continues where it stopped.

With ``--report-to trackio|tensorboard`` (or ``$DRIVEKIT_REPORT_TO``) every run reports while it trains
(:mod:`drivekit.tracking`) to one dashboard project named after the output folder (``rl-vs-sft``),
as ``<method>-seed<s>`` (``A2C-R2-seed0``, ``SFT-all-seed1``) with its settings, method and seed as
its config, so the dashboard compares methods and seeds directly.

    python -m drivekit rl-vs-sft [--seeds 0 1 2] [--fraction 0.03125] [--methods A2C-R2 GRPO-R2 ...]
                                 [--steps 320] [--sft-epochs E] [--no-sft-all] [--out DIR] [--json FILE]
                                 [--report-to trackio|tensorboard|none]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from . import a2c_stage, grpo_stage, metrics, sft_stage, stats
from .a2c import A2CSettings
from .clip_reward import ClipReward
from .config import Config, dataclass_overrides, load, profile_defaults
from .evaluation import prediction_rewards, read_predictions, score, write_predictions
from .grpo import GRPOSettings
from .sft import SFTSettings, predict
from .toy_split import TRAIN_FRACTION, dataset_items, toy_data
from .tracking import BACKENDS, Report
from .weighted_reward import RewardSettings, make_reward

REFERENCES = ("SFT", "SFT-all")
STAGES = {"a2c": a2c_stage, "grpo": grpo_stage}  # algorithm -> its stage (one train() interface)
SETTINGS = {"a2c": A2CSettings, "grpo": GRPOSettings}  # algorithm -> its settings class
METHODS = {  # method -> (algorithm, reward family)
    "A2C-R2": ("a2c", "label"), "GRPO-R2": ("grpo", "label"),
    "A2C-R1": ("a2c", "free"), "GRPO-R1": ("grpo", "free"),
}
LABELS_USED = {"label": "pool", "free": "none"}  # which RL clips' labels a reward family reads
KEYS = ("f1_act", "f1_rsn", "pair_f1", "R")
# Both algorithms sample at temperature 0.7: at 1.0 the SFT policy of a 1/32 subset writes broken answers
# (mean label-F1 R2 0.47 against 0.72 greedy, on 64 pool clips), whose negative advantages spread
# probability mass instead of sharpening it (benchmarks/RESULTS.md, "RL against SFT on the unlabelled pool").
SAMPLING = {"temperature": 0.7}
# A2C learns at lr 3e-4 with KL 0.05 (the tiny profile's 1e-4 / 0.1 hold a policy near SFT's, the
# right thing on the clips SFT trained on, too tight on clips it never saw); GRPO keeps its tiny lr and
# KL, since lr 2e-4 lost F1 and lr ≥ 3e-4 collapsed (seed-0 probes, benchmarks/RESULTS.md). Both decay
# their lr linearly to 0: at a constant lr, A2C-R2's seed 2 swung late from F1_act 0.98 to 0.945
# (benchmarks/RESULTS.md, "Why seed 2 loses").
SCHEDULE = {"lr_schedule": "linear"}
A2C_SETTINGS = {**SAMPLING, **SCHEDULE, "lr": 3e-4, "kl_coef": 0.05}
GRPO_SETTINGS = {**SAMPLING, **SCHEDULE}


@dataclass
class ExperimentSettings:
    """One experiment (plain data): seeds, the labelled fraction, the RL methods and their budget.

    Every RL step samples 8 answers (A2C: 8 clips × 1; GRPO: 2 clips × 4), ``steps`` steps in all.
    ``a2c`` / ``grpo`` override the profile's ``A2CSettings`` / ``GRPOSettings`` (default:
    :data:`A2C_SETTINGS`, :data:`GRPO_SETTINGS`; both sample at :data:`SAMPLING`'s temperature).
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    fraction: float = 1 / 32
    methods: tuple[str, ...] = ("A2C-R2", "GRPO-R2", "A2C-R1", "GRPO-R1")
    steps: int = 320
    # SFT's epochs over the labelled fraction; None: as many clip passes as the profile's SFT makes on
    # the proposal's 1/8 (48 epochs at 1/32). The profile's 12 stop a 1/32 SFT short of training: its
    # validation loss still falls at the last of its 96 steps (benchmarks/RESULTS.md, "A longer SFT baseline").
    sft_epochs: float | None = None
    sft_all_epochs: float = 2.0  # about as many clip passes as SFT's epochs over the proposal's 1/8
    sft_all: bool = True  # train SFT-all, the reference of the gap (a short run may leave it out)
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
    """The reward RL trains on: ``"label"`` label-F1 R2; ``"free"`` R1 (CLIP) alone."""
    if family == "label":
        return make_reward(RewardSettings(r2="label_f1"))
    if family == "free":
        if clip_reward is None:
            raise ValueError("label-free RL needs a CLIP reward (label_free_clip)")
        return make_reward(RewardSettings(r2=None), clip_reward)
    raise ValueError(f"reward family must be 'label' or 'free', not {family!r}")


def yardstick(clip_reward: ClipReward):
    """The test reward every method is scored with: R = R1 + label-F1 R2."""
    return make_reward(RewardSettings(r2="label_f1"), clip_reward)


def _finish(folder: Path, rows: list[dict], clip_reward: ClipReward, **info) -> dict:
    """Write ``summary.json`` of a run from its test predictions ``rows``: F1s, pair F1, test R, ``info``."""
    s = score(rows)
    rewards = prediction_rewards(rows, yardstick(clip_reward))
    summary = dict(f1_act=s["actions"]["f1_all"], f1_rsn=s["reasons"]["f1_all"], pair_f1=s["pair_f1"],
                   R=rewards["R"], rewards=rewards, unparseable=s["unparseable"], n_test=len(rows), **info)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run_name(method: str, seed: int) -> str:
    """A run's name on a dashboard: ``A2C-R2-seed0``."""
    return f"{method}-seed{seed}"


def run_sft(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, folder: Path, clip_reward: ClipReward,
            progress: bool = False, report: Report | None = None) -> dict:
    """``SFT`` or ``SFT-all`` of ``seed`` for :func:`sft_epochs` (``sft_stage.run``, resumed when cut
    off), scored on the test split; ``report`` (a backend and project) gets the run's name and tags."""
    settings = profile_defaults(SFTSettings, cfg, seed=seed, epochs=sft_epochs(cfg, recipe, method))
    labels = "all" if method == "SFT-all" else "subset"
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, labels=labels,
                                         fraction=recipe.fraction)
    result = sft_stage.run(cfg, settings, folder, progress=progress, resume=True, labels=labels,
                           fraction=recipe.fraction, report=report)
    done = json.loads(result.summary.read_text())
    return _finish(folder, read_predictions(result.predictions), clip_reward, method=method, seed=seed,
                   labels=labels, fraction=recipe.fraction, epochs=settings.epochs, n_train=done["n_train"],
                   train_seconds=done["train_seconds"])


def rl_settings(cfg: Config, recipe: ExperimentSettings, method: str, seed: int):
    """The ``A2CSettings`` or ``GRPOSettings`` of an RL method of ``recipe`` at ``seed``."""
    algorithm = METHODS[method][0]
    overrides = recipe.a2c if algorithm == "a2c" else recipe.grpo
    return profile_defaults(SETTINGS[algorithm], cfg, **{"steps": recipe.steps, "seed": seed, **overrides})


def run_rl(cfg: Config, recipe: ExperimentSettings, method: str, seed: int, start: Path, pool: Sequence[Mapping], test,
           folder: Path, clip_reward: ClipReward, free_clip: ClipReward | None = None, progress: bool = False,
           sft_epochs: float | None = None, report: Report | None = None) -> dict:
    """One RL method from the adapter ``start`` (an SFT of ``sft_epochs``, recorded) on the ``pool``
    items; greedy answers on ``test``.

    Writes ``log.csv`` (one row per step, ``reward`` the mean sampled reward), ``policy/`` (the
    trained adapter), ``predictions.jsonl`` and ``summary.json`` (with seconds per step). A label-free
    method's R1 is ``free_clip`` (:func:`label_free_clip`); ``clip_reward`` scores the test answers.
    ``report`` (a backend and project) gets the run's name and tags.
    """
    algorithm, family = METHODS[method]
    reward = rl_reward(family, free_clip if family == "free" else None)
    settings = rl_settings(cfg, recipe, method, seed)
    report = (report or Report()).tagged(run_name(method, seed), method=method, seed=seed, algorithm=algorithm,
                                         reward=family, labels_used=LABELS_USED[family], fraction=recipe.fraction,
                                         sft_epochs=sft_epochs)
    trained = STAGES[algorithm].train(cfg, pool, reward, settings, start=start, out=folder, progress=progress,
                                      report=report)
    folder.mkdir(parents=True, exist_ok=True)
    trained.log.to_csv(folder / "log.csv", index=False)
    rows = predict(trained.model, trained.processor, test, profile_defaults(SFTSettings, cfg), progress=progress)
    write_predictions(rows, folder / "predictions.jsonl")
    steps = len(trained.log)
    return _finish(folder, rows, clip_reward, method=method, seed=seed, algorithm=algorithm,
                   labels_used=LABELS_USED[family], start=str(start), sft_epochs=sft_epochs, steps=steps,
                   samples_per_step=trained.samples_per_step, train_seconds=round(trained.seconds, 1),
                   seconds_per_step=round(trained.seconds / max(steps, 1), 3), settings=asdict(settings))


def unseen_clip(cfg: Config, progress: bool = False) -> Path:
    """A tiny CLIP that never saw a clip of ``cfg``'s dataset, for label-free RL (built when missing).

    The shipped tiny CLIP trained on every clip outside the toy test split, the RL pool included,
    with its labels and descriptions. This one trains the same way on a second synthetic dataset
    (same generator and size, seed ``cfg.seed + 1``, in ``<cache_dir>/synthetic-unseen``), so R1 on
    the toy split's clips reads none of their labels or descriptions. Folder:
    ``<cache_dir>/tiny-clip-unseen``.
    """
    from .clip import WEIGHTS_FILE, build_clip
    from .synthetic import generate

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


def label_free_clip(cfg: Config) -> ClipReward:
    """R1 for label-free RL: in the tiny profile a CLIP trained on other synthetic clips
    (:func:`unseen_clip`; the shipped one saw the pool's labels and descriptions), in the paper
    profile its pretrained CLIP."""
    return ClipReward.from_config(cfg.replace(clip=str(unseen_clip(cfg))) if cfg.synthetic else cfg)


def run(recipe: ExperimentSettings = ExperimentSettings(), out: str | Path | None = None, cfg: Config | None = None,
        progress: bool = False, echo=print, report_to: str | None = None) -> dict:
    """Every method of ``recipe`` over its seeds (finished runs reused), then :func:`summarize`.
    ``report_to`` (default ``$DRIVEKIT_REPORT_TO``): each run reports to that backend, in the project
    named after ``out``, as :func:`run_name`."""
    cfg = cfg or load()
    out = Path(out) if out else cfg.runs_dir / "rl-vs-sft"
    report = Report(to=report_to, project=out.resolve().name)  # checked before any training
    clip_reward = ClipReward.from_config(cfg)
    free_clip = label_free_clip(cfg) if any(METHODS[m][1] == "free" for m in recipe.methods) else None
    data = toy_data(cfg, profile_defaults(SFTSettings, cfg).val_size, fraction=recipe.fraction)
    pool = dataset_items(data.pool)
    epochs = sft_epochs(cfg, recipe)
    for seed in recipe.seeds:
        for method in (*recipe.references, *recipe.methods):
            folder = out / method / f"seed{seed}"
            if _finished(folder):
                if method in METHODS:
                    _same_recipe(folder, recipe, rl_settings(cfg, recipe, method, seed), sft_epochs=epochs)
                else:
                    _same_recipe(folder, recipe, epochs=sft_epochs(cfg, recipe, method))
                continue
            folder.mkdir(parents=True, exist_ok=True)
            if method in REFERENCES:
                s = run_sft(cfg, recipe, method, seed, folder, clip_reward, progress, report)
            else:
                s = run_rl(cfg, recipe, method, seed, out / "SFT" / f"seed{seed}" / "best", pool, data.test, folder,
                           clip_reward, free_clip, progress, sft_epochs=epochs, report=report)
            echo(f"{method} seed {seed}: F1_act {s['f1_act']:.4f}  F1_rsn {s['f1_rsn']:.4f}  pair F1 "
                 f"{s['pair_f1']:.4f}  R {s['R']:.4f}  train {s['train_seconds']} s")
    results = summarize(out, recipe)
    (out / "rl_vs_sft.json").write_text(json.dumps(results, indent=1))
    return results


def _finished(folder: Path) -> bool:
    """Whether a run folder holds its predictions and the harness's summary (SFT's own
    ``summary.json`` comes first and lacks the test reward ``R``)."""
    summary = folder / "summary.json"
    return (folder / "predictions.jsonl").is_file() and summary.is_file() and "R" in json.loads(summary.read_text())


def _same_recipe(folder: Path, recipe: ExperimentSettings, settings=None, **expected) -> None:
    """Refuse to reuse a finished run made with another labelled fraction, other ``expected``
    summary values (an SFT's ``epochs``, the ``sft_epochs`` an RL run started from) or, for an RL
    run, other ``settings`` (:func:`rl_settings`), e.g. a short run's folder under a longer recipe:
    it would be reported as this recipe's. A setting the stored run lacks is its field's default:
    the run was made before the field existed, and so with the behaviour the default keeps; a
    setting stored under an older name (the settings class's ``RENAMED``) is read under its new one."""
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


def _runs(out: Path, method: str, seeds: Sequence[int]) -> list[tuple[dict, list[dict]]]:
    folders = [out / method / f"seed{seed}" for seed in seeds]
    missing = [str(f) for f in folders if not _finished(f)]
    if missing:
        raise FileNotFoundError(f"runs not finished: {missing}")
    return [(json.loads((f / "summary.json").read_text()), read_predictions(f / "predictions.jsonl")) for f in folders]


def summarize(out: str | Path, recipe: ExperimentSettings) -> dict:
    """``rl_vs_sft.json``'s content from the finished runs under ``out``: per method the per-seed
    F1_act, F1_rsn, pair F1 and R, their spread (``summary``), the per-class F1s per seed
    (``per_class_f1``, Fig. 5), and for every method but SFT the clip-by-clip comparison with the
    same seed's SFT (``paired`` per seed, ``p_vs_sft`` pooled), the share of the SFT → SFT-all gap
    closed on the means (``gap_closed``, when SFT-all ran) and whether it beat SFT's F1_act and
    F1_rsn on every seed."""
    out = Path(out)
    results = {"seeds": list(recipe.seeds), "labeled_fraction": recipe.fraction, "recipe": asdict(recipe),
               "methods": {}}
    runs = {m: _runs(out, m, recipe.seeds) for m in (*recipe.references, *recipe.methods)}
    means = {m: {k: float(np.mean([s[k] for s, _ in r])) for k in KEYS} for m, r in runs.items()}
    for method, per_seed in runs.items():
        entry = {k: [s[k] for s, _ in per_seed] for k in KEYS}
        entry["summary"] = {k: stats.over_seeds(entry[k]) for k in KEYS}
        reports = [score(rows) for _, rows in per_seed]
        entry["per_class_f1"] = {kind: {key: [r[kind]["f1"][key] for r in reports] for key in reports[0][kind]["f1"]}
                                 for kind in ("actions", "reasons")}
        entry["n_train"] = per_seed[0][0].get("n_train")
        if method != "SFT":
            comparisons = [stats.paired(ref_rows, rows) for (_, ref_rows), (_, rows) in zip(runs["SFT"], per_seed)]
            pooled = stats.pooled(comparisons)
            entry.update(p_vs_sft=pooled["p"], fixed=pooled["fixed"], broken=pooled["broken"], paired=comparisons)
            entry["beats_sft_every_seed"] = all(
                s["f1_act"] > ref["f1_act"] and s["f1_rsn"] > ref["f1_rsn"]
                for (ref, _), (s, _) in zip(runs["SFT"], per_seed))
            if "SFT-all" in means:
                entry["gap_closed"] = {k: _closed(means["SFT"][k], means["SFT-all"][k], means[method][k])
                                       for k in ("f1_act", "f1_rsn")}
        if method in METHODS:
            entry.update(labels_used=per_seed[0][0]["labels_used"], steps=per_seed[0][0]["steps"],
                         samples_per_step=per_seed[0][0]["samples_per_step"],
                         seconds_per_step=[s["seconds_per_step"] for s, _ in per_seed],
                         reward_curve=[a2c_stage.curves(pd.read_csv(out / method / f"seed{seed}" / "log.csv"),
                                                        ("reward",))["reward"].round(4).tolist()
                                       for seed in recipe.seeds])
        results["methods"][method] = entry
    return results


def _closed(sft_mean: float, all_mean: float, value: float) -> float | None:
    gap = all_mean - sft_mean
    return None if gap <= 0 else float((value - sft_mean) / gap)


def table(results: Mapping) -> pd.DataFrame:
    """One row per method: mean ± sd over seeds (one seed: its value) of F1_act, F1_rsn, pair F1
    and R, fixed / broken clips against SFT pooled over the seeds, the sign test's p, the share of
    the SFT → SFT-all gap closed, the labels RL read and seconds per step."""
    rows = {}
    for method, e in results["methods"].items():
        row = {k: _mean_sd(e["summary"][k]) for k in KEYS}
        row["fixed/broken"] = f"{e['fixed']}/{e['broken']}" if "fixed" in e else ""
        row["p vs SFT"] = f"{e['p_vs_sft']:.2g}" if "p_vs_sft" in e else ""
        gap = e.get("gap_closed") or {}
        row["gap closed (act, rsn)"] = (", ".join("—" if gap[k] is None else f"{gap[k]:.2f}" for k in ("f1_act", "f1_rsn"))
                                        if gap else "")
        row["labels RL read"] = e.get("labels_used", "")
        row["s/step"] = f"{np.mean(e['seconds_per_step']):.2f}" if "seconds_per_step" in e else ""
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index")


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


def main(argv: list[str] | None = None) -> None:
    defaults = ExperimentSettings()
    p = argparse.ArgumentParser(prog="python -m drivekit rl-vs-sft", description=(
        "SFT, SFT-all and RL on the unlabelled pool over seeds; F1s, spread and a pooled sign test against SFT."))
    p.add_argument("--profile", help="tiny (default) or paper")
    p.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    p.add_argument("--fraction", type=float, default=defaults.fraction, help="labelled share of the toy train part")
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(defaults.methods))
    p.add_argument("--steps", type=int, default=defaults.steps, help="RL steps of 8 sampled answers each")
    p.add_argument("--sft-epochs", type=float, help="SFT's epochs over the labelled clips (default: as many clip "
                   "passes as the profile's SFT on the proposal's 1/8, 48 at 1/32)")
    p.add_argument("--a2c", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"A2CSettings overrides on top of {A2C_SETTINGS}, e.g. lr=2e-4")
    p.add_argument("--grpo", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"GRPOSettings overrides on top of {GRPO_SETTINGS}, e.g. kl_coef=0")
    p.add_argument("--no-sft-all", dest="sft_all", action="store_false",
                   help="leave out SFT-all, the reference of the gap (a short run)")
    p.add_argument("--out", type=Path, help="run directory (default <runs>/rl-vs-sft)")
    p.add_argument("--json", type=Path, help="also write the results here (e.g. benchmarks/results/rl_vs_sft.json)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--report-to", choices=BACKENDS, help="watch every run in trackio or TensorBoard (default: "
                   "$DRIVEKIT_REPORT_TO, else none; README, 'Watch a run')")
    a = p.parse_args(argv)
    recipe = ExperimentSettings(seeds=a.seeds, fraction=a.fraction, methods=a.methods, steps=a.steps, sft_all=a.sft_all,
                    sft_epochs=a.sft_epochs,
                    a2c={**A2C_SETTINGS, **dataclass_overrides(a.a2c, A2CSettings, "--a2c")},
                    grpo={**GRPO_SETTINGS, **dataclass_overrides(a.grpo, GRPOSettings, "--grpo")})
    results = run(recipe, a.out, load(a.profile), progress=a.progress, report_to=a.report_to)
    results["command"] = " ".join(["python -m drivekit rl-vs-sft", *(argv if argv is not None else sys.argv[1:])])
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1))
    print(table(results).to_markdown())


if __name__ == "__main__":
    main()
