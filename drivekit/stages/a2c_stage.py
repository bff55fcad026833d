"""The A2C stage (notebook 04): policy, data, reward, trainer and evaluation for both profiles.

Starting from the SFT adapter (:mod:`drivekit.stages.sft_stage`), A2C (:mod:`drivekit.algorithms.a2c`) trains on
the toy train subset with R = w1·R1 + w2·R2 (:mod:`drivekit.rewards.weighted_reward`; R1 alone for
Stage 1), then answers the toy test split greedily. The run directory (:class:`A2CArtifacts`,
``<runs>/a2c``) holds ``policy/`` (adapter + value head), ``log.csv``, ``predictions.jsonl`` and
``summary.json`` (written last, atomically; it records the settings, so that :func:`ensure` reuses
only a finished run of the settings asked for).
:class:`ShortRuns` is the training panel's backend: short runs from one start adapter, each scored on
a fixed probe of validation clips before and after.

Symmetric with :mod:`drivekit.stages.grpo_stage`: the same functions with the same arguments and
results: ``load_policy`` (a :class:`drivekit.stages.runs.Policy`), ``build_trainer``, ``train`` (the
experiment harness's interface, a :class:`drivekit.stages.runs.Trained`), ``artifacts``, ``run`` and
``ensure``; the algorithm's settings are always the argument ``settings``.

Every default follows the profile (``config.profile_defaults``): the A2C settings
(``A2CSettings.tiny()`` or ``.paper()``), the reward (``RewardSettings``), gradient checkpointing
of the policy and the batch size of greedy predictions (the profile's ``SFTSettings``). Rollouts run
in eval mode, where transformers keeps the KV cache on under gradient checkpointing too.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from peft import get_peft_model_state_dict, set_peft_model_state_dict

from drivekit.models import prompts
from drivekit.stages import runs
from drivekit.algorithms.a2c import A2CSettings, A2CTrainer, generate
from drivekit.rewards.clip_reward import ClipReward
from drivekit.core.config import Config, load, profile_defaults
from drivekit.evaluation.reports import compare, prediction_row, write_predictions
from drivekit.models.vlm import load_adapter_weights, load_vlm
from drivekit.algorithms.sft import SFTSettings
from drivekit.stages.sft_stage import ensure as ensure_sft
from drivekit.data.toy_split import items_of, toy_data
from drivekit.core.tracking import Report
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

REFERENCE_ADAPTER = "reference"
CURVE_COLUMNS = ("reward", "value_loss", "policy_loss", "entropy", "kl")


# ---------------------------------------------------------------------------------------------
# Policy, reward, trainer
# ---------------------------------------------------------------------------------------------
def load_policy(cfg: Config, start: str | Path = "sft", device=None, sft: SFTSettings | None = None) -> runs.Policy:
    """``Policy(model, processor, reference_adapter)``: the VLM with a trainable LoRA adapter.

    ``start="sft"``: the SFT adapter of notebook 02 (``drivekit.stages.sft_stage.ensure`` trains it when
    missing), trained further; a frozen copy of it is loaded as adapter ``"reference"`` (π_ref for
    the KL term). ``"base"``: the pretrained model with a new LoRA adapter (Stage 1); π_ref is the
    base itself (adapter disabled), so ``reference_adapter`` is None. Otherwise a path to a
    saved adapter folder, treated like ``"sft"``. ``sft`` (default: the profile's SFT settings)
    gives the new adapter's shape and whether to checkpoint gradients, as SFT does.
    """
    sft = sft or profile_defaults(SFTSettings, cfg)
    memory = dict(gradient_checkpointing=sft.gradient_checkpointing, device=device)
    if str(start) == "base":
        model, processor = load_vlm(cfg, lora=sft.lora, seed=sft.seed, **memory)
        return runs.Policy(model, processor, None)
    adapter = ensure_sft(cfg).best if str(start) == "sft" else Path(start)
    model, processor = load_vlm(cfg, adapter=adapter, trainable=True, **memory)
    active = model.active_adapter
    model.load_adapter(str(adapter), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    model.set_adapter(active)
    return runs.Policy(model, processor, REFERENCE_ADAPTER)


def build_trainer(cfg: Config, items: Sequence[Mapping], reward, settings: A2CSettings | None = None, *,
                  policy=None, start: str | Path = "sft", run_dir: str | Path | None = None,
                  instruction: str | None = None, progress: bool = True, report: Report | None = None) -> A2CTrainer:
    """An :class:`A2CTrainer` on images-only prompts (``drivekit.models.prompts``) for ``items``.

    ``reward`` is a :class:`drivekit.rewards.weighted_reward.WeightedReward`; ``policy`` is a ``load_policy``
    result to reuse (else one is loaded from ``start``); ``settings`` default to the profile's
    ``A2CSettings``; checkpoints and ``log.jsonl`` go under ``run_dir`` (default: none);
    ``progress=False`` drops the progress bar; ``report``: where training reports (default
    ``$DRIVEKIT_REPORT_TO``). The processor is kept as ``trainer.processor``, the profile's prediction
    batch size as ``trainer.eval_batch_size``.
    """
    model, processor, reference = policy or load_policy(cfg, start)
    tokenizer = processor.tokenizer

    def make_inputs(batch):
        return prompts.encode(processor, [item["images"] for item in batch], instruction=instruction)

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    trainer = A2CTrainer(model, items, make_inputs, decode, reward, settings or profile_defaults(A2CSettings, cfg),
                         eos_ids=[prompts.end_of_utterance_id(processor)], pad_id=tokenizer.pad_token_id,
                         run_dir=run_dir, reference_adapter=reference, progress=progress, report=report)
    trainer.processor = processor
    trainer.eval_batch_size = profile_defaults(SFTSettings, cfg).eval_batch_size
    return trainer


def answers(trainer: A2CTrainer, items: Sequence[Mapping], batch_size: int | None = None,
            max_new_tokens: int = 32, progress: bool = True) -> list[str]:
    """Greedy answers of the current policy to ``items`` (a :func:`build_trainer` trainer), in
    batches of ``batch_size`` clips (default: the profile's, ``trainer.eval_batch_size``)."""
    return generate(trainer.model, items, trainer.make_inputs, trainer.decode, eos_ids=trainer.eos_ids,
                    pad_id=trainer.pad_id, max_new_tokens=max_new_tokens,
                    batch_size=batch_size or trainer.eval_batch_size, top_p=trainer.settings.top_p,
                    seed=trainer.settings.seed * 1_000_003 + 10**9, progress=progress)


def predictions(trainer: A2CTrainer, items: Sequence[Mapping], batch_size: int | None = None,
                max_new_tokens: int = 32, target: str = "plain", progress: bool = True) -> list[dict]:
    """Greedy answers of the current policy (:func:`answers`) as prediction rows
    (:mod:`drivekit.evaluation.reports`); ``target="json"`` parses them as Stage-3 JSON."""
    texts = answers(trainer, items, batch_size, max_new_tokens, progress)
    return [prediction_row(item["name"], text, item["actions"], item["reasons"], target)
            for item, text in zip(items, texts)]


def curves(log: pd.DataFrame, columns: Sequence[str] = CURVE_COLUMNS) -> pd.DataFrame:
    """The log columns plotted like the paper's Fig. 3 (``drivekit.evaluation.plots.plot_loss_curves``), with
    each reward component; skipped steps dropped."""
    if "skipped" in log:
        log = log[~log["skipped"].astype(bool)]
    extra = [c for c in log.columns if c.startswith("reward_")]
    keep = ["step", *[c for c in columns if c in log], *extra]
    return log[keep].reset_index(drop=True)


@dataclass
class ShortRun:
    """One run of :class:`ShortRuns`: its log, the probe's greedy prediction rows
    (:mod:`drivekit.evaluation.reports`) at the start adapter (``before``) and after the run, and its timings."""

    log: pd.DataFrame
    before: list[dict]
    after: list[dict]
    steps: int
    train_seconds: float  # the A2C steps
    probe_seconds: float  # greedy answers on the probe after the run (one pass)
    target: str = "plain"


@dataclass
class Estimate:
    """How long a short run should take: ``steps`` × ``per_step`` seconds of training and ``probe`` seconds
    of greedy answers on the ``clips`` probe clips afterwards; ``basis`` says where the seconds come from."""

    steps: int
    per_step: float
    probe: float
    clips: int
    basis: str

    @property
    def seconds(self) -> float:
        return self.steps * self.per_step + self.probe

    def __str__(self) -> str:
        return (f"estimated time: about {self.seconds:.0f} s = {self.steps} steps × {self.per_step:.2f} s + "
                f"{self.probe:.1f} s of greedy answers on {self.clips} probe clips ({self.basis})")


class ShortRuns:
    """Short A2C runs, each from the same start adapter (the training panel's backend).

    ``ShortRuns(cfg, policy, items, reward, probe, settings)(weights={"r1": w1, ...}, lr=, steps=, **changes)`` restores
    the start adapter (``start``: a saved adapter folder; default: the adapter as it is when the
    ShortRuns is made), sets the reward's term weights (:meth:`WeightedReward.set_weight`), trains
    ``steps`` steps on ``items`` with a fresh value head (``changes``: other ``A2CSettings`` fields, e.g.
    ``discount``, over ``settings``, default the profile's ``A2CSettings``), and answers the ``probe`` clips greedily before (once: always the same
    start) and after. Returns a :class:`ShortRun`; :meth:`estimate` says how long a run will take.

    ``probe``: clips the runs never train on, e.g. validation clips the start adapter gets partly wrong
    (notebook 04: the 1/32 SFT's); ``target`` (``"plain"`` or ``"json"``: how answers are parsed)
    defaults to ``"json"`` when the reward has a structure term ``r3``, else ``"plain"``; ``progress``:
    a tqdm bar over each run's steps; ``seconds_per_step`` and ``timing`` (where it comes from): the
    first estimate's speed, before a run of its own has been timed.
    """

    def __init__(self, cfg: Config, policy, items: Sequence[Mapping], reward, probe: Sequence[Mapping],
                 settings: A2CSettings | None = None, start: str | Path | None = None, target: str | None = None,
                 progress: bool = True, seconds_per_step: float | None = None,
                 timing: str = "seconds per step as timed before"):
        self.cfg, self.policy, self.items, self.reward = cfg, policy, list(items), reward
        self.settings = settings or profile_defaults(A2CSettings, cfg)
        self.probe = list(probe)
        self.target = target or ("json" if "r3" in getattr(reward, "weights", {}) else "plain")
        self.progress = progress
        self.seconds_per_step, self.timing = seconds_per_step, timing
        model = policy[0]
        self.adapter = model.active_adapter
        self.start_dir = Path(start) if start is not None else None
        self.start = None if start is not None else {
            k: v.detach().clone() for k, v in get_peft_model_state_dict(model, adapter_name=self.adapter).items()}
        self.trainer: A2CTrainer | None = None
        self.before: list[dict] | None = None  # the probe's answers at the start adapter, once computed
        self.start_seconds = 0.0  # ... and how long they took
        self.history: list[ShortRun] = []

    def restore(self) -> None:
        """Put the start adapter back: from ``start`` (a saved adapter folder) or the snapshot taken at creation."""
        if self.start_dir is not None:
            load_adapter_weights(self.policy[0], self.start_dir, self.adapter)
        else:
            set_peft_model_state_dict(self.policy[0], self.start, adapter_name=self.adapter)

    def estimate(self, steps: int) -> Estimate | None:
        """The expected seconds of a run of ``steps`` steps. Seconds per step: over the runs made so far,
        else ``seconds_per_step`` (e.g. timed by an earlier run on this machine); None when neither is
        known. The probe's seconds: the last run's pass, else the start's answers, computed (and timed)
        here when they are not yet."""
        if not self.history and self.seconds_per_step is None:
            return None
        self.start_answers()
        if self.history:
            per_step = sum(r.train_seconds for r in self.history) / sum(r.steps for r in self.history)
            n = len(self.history)
            probe, basis = self.history[-1].probe_seconds, f"timed on the {n} earlier run{'s' * (n > 1)}"
        else:
            per_step, probe, basis = self.seconds_per_step, self.start_seconds, self.timing
        return Estimate(steps, per_step, probe, len(self.probe), basis)

    def answers(self) -> list[dict]:
        """The current policy's greedy prediction rows on the probe clips."""
        return predictions(self.trainer, self.probe, max_new_tokens=self.trainer.settings.max_new_tokens,
                           target=self.target, progress=False)

    def start_answers(self) -> list[dict]:
        """The probe's greedy prediction rows at the start adapter, computed on first use."""
        if self.before is None:
            self.restore()
            self.trainer = build_trainer(self.cfg, self.items, self.reward, self.settings, policy=self.policy)
            t0 = time.perf_counter()
            self.before = self.answers()
            self.start_seconds = time.perf_counter() - t0
        return self.before

    def __call__(self, weights: Mapping[str, float] | None = None, lr: float | None = None, steps: int | None = None,
                 progress: bool | None = None, **changes) -> ShortRun:
        before = self.start_answers()
        self.restore()
        for name, weight in (weights or {}).items():
            self.reward.set_weight(name, weight)
        settings = self.settings.replace(lr=self.settings.lr if lr is None else lr,
                                         steps=self.settings.steps if steps is None else steps, **changes)
        self.trainer = build_trainer(self.cfg, self.items, self.reward, settings, policy=self.policy)
        t0 = time.perf_counter()
        log = self.trainer.train(progress=self.progress if progress is None else progress)
        t1 = time.perf_counter()
        after = self.answers()
        run = ShortRun(log, before, after, settings.steps, t1 - t0, time.perf_counter() - t1, self.target)
        self.history.append(run)
        return run


def train(cfg: Config, items: Sequence[Mapping], reward, settings: A2CSettings, start: str | Path = "sft",
          out: str | Path | None = None, progress: bool = False, report: Report | None = None) -> runs.Trained:
    """A2C from the adapter ``start`` on ``items`` with ``reward`` (the experiment harness's interface,
    shared with :func:`drivekit.stages.grpo_stage.train`). With ``out``, the trained policy (adapter and
    value head) goes to ``<out>/policy``; ``report``: where it reports (default ``$DRIVEKIT_REPORT_TO``)."""
    policy = load_policy(cfg, start)
    trainer = build_trainer(cfg, items, reward, settings, policy=policy)
    t0 = time.perf_counter()
    log = trainer.train(progress=progress, report=report)
    seconds = time.perf_counter() - t0
    if out is not None:
        trainer.save_policy(Path(out) / "policy")
    return runs.Trained(policy[0], policy[1], log, seconds, settings.batch_size)


# ---------------------------------------------------------------------------------------------
# The run directory of the default action-stage run (notebook 04 writes it; later notebooks read it)
# ---------------------------------------------------------------------------------------------
class A2CArtifacts(runs.RunDir):
    """Where an A2C run keeps its outputs: ``policy/`` (adapter + value head), ``log.csv``,
    ``predictions.jsonl`` (toy test split) and ``summary.json``."""

    NAME = "a2c"
    FILES = {"policy": "policy", "log": "log.csv", "predictions": "predictions.jsonl", "summary": "summary.json"}


def artifacts(cfg: Config) -> A2CArtifacts:
    return A2CArtifacts.of(cfg)


def write_artifacts(out: A2CArtifacts, trainer: A2CTrainer, rows: Sequence[Mapping], table: pd.DataFrame | None = None,
                    **info) -> dict:
    """Save the policy, the log, the predictions and, last and atomically, a summary (the trainer's
    ``settings``, steps, F1s, test rewards, the comparison ``table``, ``info``)."""
    trainer.save_policy(out.policy)
    trainer.log_frame().to_csv(out.log, index=False)
    write_predictions(list(rows), out.predictions)
    return runs.write_rl_summary(out.summary, trainer.settings, trainer.step_count, rows, table, **info)


def run(cfg: Config | None = None, settings: A2CSettings | None = None, out: str | Path | None = None,
        progress: bool = True, reward: RewardSettings | None = None) -> A2CArtifacts:
    """The default action stage: A2C (``settings``, default the profile's ``A2CSettings``) from the SFT
    adapter on the toy train subset with R = w1·R1 + w2·R2 (``reward``, default the profile's
    ``RewardSettings``), then greedy predictions on the toy test split, compared with SFT's."""
    cfg = cfg or load()
    settings = settings or profile_defaults(A2CSettings, cfg)
    result = A2CArtifacts(Path(out)) if out else artifacts(cfg)
    data = toy_data(cfg)
    reward = reward or profile_defaults(RewardSettings, cfg)
    weighted = make_reward(reward, ClipReward.from_config(cfg))
    trainer = build_trainer(cfg, items_of(cfg, data.train), weighted, settings, start="sft", run_dir=result.dir / "run",
                            progress=progress)
    test = items_of(cfg, data.test)
    sft_rows = predictions(trainer, test, progress=progress)
    t0 = time.perf_counter()
    trainer.train(progress=progress)
    seconds = time.perf_counter() - t0
    rows = predictions(trainer, test, progress=progress)
    table = compare({"SFT": sft_rows, "A2C": rows}, weighted)
    write_artifacts(result, trainer, rows, table, train_seconds=round(seconds, 1), reward=asdict(reward))
    return result


def ensure(cfg: Config | None = None, settings: A2CSettings | None = None) -> A2CArtifacts:
    """The A2C artifacts of ``cfg`` with ``settings`` (default: the profile's), made by :func:`run` unless
    they are a finished run of those settings (:func:`drivekit.stages.runs.ensure`, which says why it runs)."""
    cfg = cfg or load()
    settings = settings or profile_defaults(A2CSettings, cfg)
    return runs.ensure(A2CArtifacts, partial(run, settings=settings), cfg, settings)
