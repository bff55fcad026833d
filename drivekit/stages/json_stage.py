"""The JSON stage (notebook 05, proposal §2.4.3): SFT-JSON, RL-JSON and constrained decoding.

SFT on the Stage-3 JSON targets starts from the plain SFT adapter; A2C then trains it further
with R = w1·R1 + w2·R2 + w3·R3 on JSON outputs (:func:`drivekit.rewards.weighted_reward.make_reward`,
``target="json"``); and the SFT-JSON adapter also answers
under grammar-constrained decoding (:mod:`drivekit.models.constrained`). The run directory
(:class:`JsonArtifacts`, ``<runs>/json``) holds an SFT run, an A2C run, ``constrained.jsonl`` and
``summary.json`` (the comparison table).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

import pandas as pd

from drivekit.stages import runs
from drivekit.algorithms.a2c import A2CSettings
from drivekit.stages.a2c_stage import A2CArtifacts, build_trainer, predictions, write_artifacts
from drivekit.rewards.clip_reward import ClipReward
from drivekit.core.config import Config, load, profile_defaults
from drivekit.core.files import write_json
from drivekit.core.settings import Settings
from drivekit.models.constrained import JsonConstraint
from drivekit.evaluation.reports import compare, read_predictions, write_predictions
from drivekit.models.vlm import reference_policy
from drivekit.algorithms.sft import SFTSettings, predict
from drivekit.stages.sft_stage import SFTArtifacts, course_data, course_fraction
from drivekit.stages.sft_stage import artifacts as sft_artifacts
from drivekit.stages.sft_stage import ensure as ensure_sft
from drivekit.stages.sft_stage import run as run_sft
from drivekit.data.toy_split import TRAIN_FRACTION, items_of, toy_data
from drivekit.rewards.weighted_reward import RewardSettings, make_reward
from drivekit.text.json_output import load_object, parse_json


@dataclass(frozen=True)
class JsonSettings(Settings):
    """Stage-3 settings (plain data): JSON SFT starting from the plain SFT adapter, then A2C with
    R = w1·R1 + w2·R2 + w3·R3 (``reward``). ``JsonSettings.tiny()`` / ``.paper()`` give the profiles'
    defaults (``config.profile_defaults(JsonSettings, cfg)``): the paper profile's are the field
    defaults; the tiny profile's (``PROFILES``) are CPU-sized, so that notebook 05 runs within 5 min on
    2 cores (benchmarks/RESULTS.md, "Notebook 05 within its budget"):

    - SFT-JSON without LoRA dropout: on CPU, drawing the dropout masks took a quarter of each step;
    - the same 256 sampled answers (64 for the critic alone) in 16 steps of 16: decoding this
      small model costs about as much per token for 16 rows as for 8 (3.0 s a step against 2.6 s);
    - test answers in batches of 128 clips: the same text as in batches of 32, in half the time.
    """

    reward: RewardSettings = RewardSettings(r1_weight=1.0, r2_weight=1.0, r3_weight=1.0, r2="label_f1")
    # Fewer epochs leave the tiny VLM answering "Action: ..." first: its LM-head rows of " Action" and
    # ' {"' point the same way, and LoRA leaves the LM head frozen (benchmarks/RESULTS.md, "Why
    # SFT-JSON needs its 12 epochs"). Counted over the proposal's 1/8: on the course's labelled share
    # (``sft_stage.course_fraction``, 1/32 on synthetic clips) SFT-JSON makes as many clip passes (48 epochs).
    sft_epochs: float = 12.0
    sft_lora_dropout: float | None = None  # None: the profile's SFT LoRA dropout
    max_new_tokens: int = 160  # the longest JSON target of the synthetic data is about 130 tokens
    a2c_steps: int = 32  # the first critic_warmup of them train the value head alone
    a2c_batch: int | None = None  # completions per A2C step; None: the profile's ``A2CSettings``
    a2c_lr: float = 3e-5
    critic_warmup: int = 8
    value_lr: float = 1e-2
    eval_batch_size: int | None = None  # clips per batch of the test predictions; None: the profile's SFT one

    PROFILES: ClassVar[dict] = {
        "tiny": dict(sft_lora_dropout=0.0, a2c_steps=16, a2c_batch=16, critic_warmup=4, eval_batch_size=128),
    }

    def sft_settings(self, cfg: Config):
        """The SFT settings of SFT-JSON: the profile's, with the JSON target and this stage's changes."""
        epochs = self.sft_epochs * TRAIN_FRACTION / course_fraction(cfg)  # the clip passes of 1/8 at the course's share
        settings = profile_defaults(SFTSettings, cfg, target="json", epochs=epochs, max_new_tokens=self.max_new_tokens)
        if self.sft_lora_dropout is not None:
            settings = replace(settings, lora=replace(settings.lora, dropout=self.sft_lora_dropout))
        return replace(settings, eval_batch_size=self.eval_batch_size or settings.eval_batch_size)

    def a2c_settings(self, cfg: Config) -> A2CSettings:
        """A2C settings: the profile's defaults, terminal rewards (a JSON prefix is not yet an object
        R3 could grade), long enough completions, and a critic fitted before the policy moves: with
        terminal rewards of about 2 and a fresh value head (V ≈ 0), every well-scored sample's tokens
        would get a positive advantage and the policy would drift (F1 −0.03 without the warm-up,
        benchmarks/RESULTS.md)."""
        batch = {"batch_size": self.a2c_batch} if self.a2c_batch else {}
        return profile_defaults(A2CSettings, cfg, steps=self.a2c_steps, lr=self.a2c_lr, reward_mode="terminal",
                                max_new_tokens=self.max_new_tokens, critic_warmup=self.critic_warmup,
                                value_lr=self.value_lr, **batch)

    def make_reward(self, clip_reward=None):
        """R = w1·R1 + w2·R2 + w3·R3 on JSON outputs, with ``clip_reward`` as R1 (none: no R1 term)."""
        return make_reward(self.reward, clip_reward, target="json")


class JsonArtifacts(runs.RunDir):
    """Where the JSON stage keeps its outputs: ``sft/`` (an SFT run), ``rl/`` (an A2C run),
    ``constrained.jsonl`` (the SFT-JSON adapter with grammar-constrained decoding) and
    ``summary.json`` (the stage's settings and the comparison table; written last, atomically)."""

    NAME = "json"
    FILES = {"constrained": "constrained.jsonl", "summary": "summary.json"}
    PARTS = {"sft": SFTArtifacts, "rl": A2CArtifacts}


def artifacts(cfg: Config) -> JsonArtifacts:
    return JsonArtifacts.of(cfg)


def constrained_predictions(model, processor, dataset, settings, progress: bool = True) -> list[dict]:
    """Greedy JSON answers under the schema's grammar (``drivekit.models.constrained``), as prediction rows."""
    constraint = JsonConstraint(processor.tokenizer, model.get_output_embeddings().weight.shape[0])
    return predict(model, processor, dataset, settings, progress, constraint=constraint)


MODELS = ("SFT (plain)", "SFT-JSON", "RL-JSON", "SFT-JSON + constrained")  # the rows of the comparison


def make_trainer(cfg: Config, settings: JsonSettings, result: JsonArtifacts, clip_reward, progress: bool = True):
    """The A2C trainer of the JSON stage: policy = the SFT-JSON adapter (a frozen copy is π_ref),
    R = w1·R1 + w2·R2 + w3·R3 with ``clip_reward`` as R1, on the pool (``sft_stage.course_data``: the
    train-part clips SFT did not learn from, as notebooks 04 and 04b sample; R2 reads their labels)."""
    pool = items_of(cfg, course_data(cfg).pool)
    return build_trainer(cfg, pool, settings.make_reward(clip_reward), settings.a2c_settings(cfg),
                         start=result.sft.best, run_dir=result.rl.dir / "run", progress=progress)


SAMPLE_KINDS = ("valid JSON", "invalid JSON", "plain text")


def sample_kind(text: str) -> str:
    """What a sampled answer is: ``valid JSON`` (strict JSON valid against the schema), ``invalid JSON`` (a
    JSON object that breaks the schema, or text that starts like one, ``{``, and does not parse), or
    ``plain text`` (no JSON object at all: the Stage-2 ``Action: ...`` text, mostly). R1 and R2 read plain
    text as nothing (0), R3 gives it 0 on every level."""
    text = str(text).strip()
    if parse_json(text).ok:
        return "valid JSON"
    return "invalid JSON" if text.startswith("{") or load_object(text)[0] is not None else "plain text"


def train_recording(trainer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trainer.train()``, keeping every completion its reward scored: ``(log, samples)``, where ``samples``
    has one row per sampled answer: ``step``, ``text``, ``kind`` (:func:`sample_kind`) and each term's score
    (``r1``, ``r2``, ``r3``), the per-answer values whose batch means the log's ``reward_<term>`` columns are."""
    pending: list[tuple[list, object]] = []
    rows: list[dict] = []
    evaluate: Callable = trainer.reward.evaluate

    def recording(completions, **batch):
        result = evaluate(completions, **batch)
        pending.append((list(completions), result))
        return result

    def collect(_, row: Mapping) -> None:
        for texts, result in pending:
            for i, text in enumerate(texts):
                rows.append(dict(step=row["step"], text=str(text), kind=sample_kind(text),
                                 **{name: float(v[i]) for name, v in result.components.items()}))
        pending.clear()

    trainer.reward.evaluate = recording
    try:
        log = trainer.train(callback=collect)
    finally:
        del trainer.reward.evaluate  # the class's method again
    return log, pd.DataFrame(rows, columns=["step", "text", "kind", *trainer.reward.terms])


def evaluate(cfg: Config, settings: JsonSettings, result: JsonArtifacts, trainer, progress: bool = True) -> dict:
    """Toy-test predictions of every model of the comparison (:data:`MODELS`): the plain SFT's and
    SFT-JSON's (read from their runs), RL-JSON's (greedy, the trainer's policy), and SFT-JSON's
    under grammar-constrained decoding (written to ``result.constrained``)."""
    data, sft = toy_data(cfg), settings.sft_settings(cfg)
    rl_rows = predictions(trainer, items_of(cfg, data.test), batch_size=sft.eval_batch_size,
                          max_new_tokens=settings.max_new_tokens, target="json", progress=progress)
    with reference_policy(trainer.model, trainer.reference_adapter):  # the SFT-JSON adapter, frozen
        constrained = constrained_predictions(trainer.model, trainer.processor, data.test, sft, progress)
    write_predictions(constrained, result.constrained)
    return dict(zip(MODELS, (read_predictions(sft_artifacts(cfg).predictions),
                             read_predictions(result.sft.predictions), rl_rows, constrained)))


def save(result: JsonArtifacts, settings: JsonSettings, trainer, rows: Mapping[str, Sequence[Mapping]], **info):
    """Write the RL-JSON run (the A2C stage's layout) and, last and atomically, ``summary.json`` with the
    stage's ``settings`` and the comparison table (JSON validity, F1s, test rewards); returns the table."""
    table = compare(rows, trainer.reward, json_names=[n for n in rows if n != MODELS[0]])
    write_artifacts(result.rl, trainer, rows[MODELS[2]], table)
    write_json(result.summary, dict(settings=asdict(settings), table=table.to_dict(orient="index"), **info),
               indent=1, default=str)
    return table


def run(cfg: Config | None = None, settings: JsonSettings | None = None, out: str | Path | None = None,
        progress: bool = True) -> JsonArtifacts:
    """JSON SFT (from the plain SFT adapter), A2C with R = w1·R1 + w2·R2 + w3·R3, constrained decoding
    of the SFT-JSON adapter; every model's toy-test predictions and the comparison table. ``settings``
    default to the profile's ``JsonSettings``."""
    cfg = cfg or load()
    settings = settings or profile_defaults(JsonSettings, cfg)
    result = JsonArtifacts(Path(out)) if out else artifacts(cfg)
    t0 = time.perf_counter()
    run_sft(cfg, settings.sft_settings(cfg), result.sft.dir, progress, start=ensure_sft(cfg).best)
    t1 = time.perf_counter()
    trainer = make_trainer(cfg, settings, result, ClipReward.from_config(cfg), progress)
    trainer.train()
    t2 = time.perf_counter()
    rows = evaluate(cfg, settings, result, trainer, progress)
    save(result, settings, trainer, rows, sft_seconds=round(t1 - t0, 1), rl_seconds=round(t2 - t1, 1),
         eval_seconds=round(time.perf_counter() - t2, 1))
    return result


def ensure(cfg: Config | None = None, settings: JsonSettings | None = None) -> JsonArtifacts:
    """The JSON-stage artifacts of ``cfg`` with ``settings`` (default: the profile's), made by :func:`run`
    unless they are a finished run of those settings (:func:`drivekit.stages.runs.ensure`, which says why
    it runs)."""
    cfg = cfg or load()
    settings = settings or profile_defaults(JsonSettings, cfg)
    return runs.ensure(JsonArtifacts, partial(run, settings=settings), cfg, settings)
