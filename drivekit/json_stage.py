"""Stage 3 (proposal §2.4.3): JSON targets for SFT and R = α·R1 + β·R2 + γ·R3 on JSON outputs.

- R1 (CLIP) scores the JSON's ``scene`` and ``justification`` text against the clip;
- R2 (any variant of :mod:`drivekit.action_reward`) scores the JSON's actions and reasons, written
  back as the plain ``Action: ...; Reason: ...`` text (nothing when the output is not valid JSON);
- R3 is :func:`drivekit.json_output.structure_score`, graded level by level.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .action_reward import RewardFn, WeightedReward, _take, action_reward
from .config import Config
from .formats import target_text
from .json_output import json_target, load_object, parse_json, structure_score
from .rewards import completion_text
from .taxonomy import REASON_PHRASES


def scene_texts(cfg: Config) -> dict[str, str]:
    """The ``scene`` text of each clip's JSON target: the synthetic description (``scenes.jsonl``).

    Real BDD-OIA has no descriptions; there :func:`label_scene` writes one from the labels.
    """
    from .synthetic import read_scenes

    path = cfg.data_root / "scenes.jsonl"
    return {r["file_name"]: r["description"] for r in read_scenes(cfg.data_root)} if path.exists() else {}


def label_scene(reasons) -> str:
    """A scene sentence from the reason labels, for data without descriptions."""
    seen = [REASON_PHRASES[i].lower() for i in np.flatnonzero(reasons)]
    return f"The scene shows: {', '.join(seen)}." if seen else "A road scene."


def json_target_for(item: Mapping, scenes: Mapping[str, str]) -> str:
    """The JSON target of a dataset item (``name``, ``actions``, ``reasons``)."""
    actions, reasons = np.asarray(item["actions"]), np.asarray(item["reasons"])
    return json_target(actions, reasons, scenes.get(item["name"]) or label_scene(reasons))


def structure_reward(completions: Sequence, **batch) -> list[float]:
    """R3: the graded structure score of each completion, in [0, 1]."""
    return [structure_score(completion_text(c)).total for c in completions]


def _field_text(completion) -> str:
    """``scene`` + ``justification`` of a JSON output ('' when it is not a JSON object of the schema)."""
    obj, _ = load_object(completion_text(completion))
    if obj is None:
        return ""
    return " ".join(str(obj.get(k, "")) for k in ("scene", "justification") if isinstance(obj.get(k), str)).strip()


def _plain_text(completion) -> str:
    """The JSON's labels as the plain Stage-2 text ('' when nothing could be read)."""
    parsed = parse_json(completion_text(completion))
    return target_text(parsed.actions, parsed.reasons) if parsed.actions.any() or parsed.reasons.any() else ""


class OnJson:
    """Apply a reward to a view of JSON outputs; an empty view scores 0 without asking the reward."""

    views = {"text": _field_text, "labels": _plain_text}

    def __init__(self, reward: RewardFn, view: str):
        self.reward, self.view = reward, self.views[view]

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [self.view(c) for c in completions]
        keep = [i for i, t in enumerate(texts) if t]
        scores = np.zeros(len(texts))
        if keep:
            sub = {k: _take(v, keep) for k, v in batch.items()}
            scores[keep] = self.reward([texts[i] for i in keep], **sub)
        return scores.tolist()


def json_reward(clip_reward: RewardFn | None, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                r2: str | RewardFn = "label_f1", **r2_kwargs) -> WeightedReward:
    """R = α·R1(scene + justification) + β·R2(actions, reasons) + γ·R3(structure) for JSON outputs."""
    r2_fn = action_reward(r2, **r2_kwargs) if isinstance(r2, str) else r2
    terms = {"r2": (beta, OnJson(r2_fn, "labels")), "r3": (gamma, structure_reward)}
    if clip_reward is not None:
        terms = {"r1": (alpha, OnJson(clip_reward, "text")), **terms}
    return WeightedReward(terms)


# ---------------------------------------------------------------------------------------------
# The Stage-3 pipeline (notebook 05 writes these artifacts; notebook 06 reads them)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JsonStage:
    """Stage-3 settings (plain data): JSON SFT starting from the plain SFT adapter, then A2C with
    R = α·R1 + β·R2 + γ·R3. ``gamma`` weighs R3 here; the discount of the returns is ``a2c.gamma``."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    r2: str = "label_f1"
    sft_epochs: float = 12.0
    max_new_tokens: int = 160  # the longest JSON target of the synthetic data is about 130 tokens
    a2c_steps: int = 32  # the first critic_warmup of them train the value head alone
    a2c_lr: float = 3e-5
    critic_warmup: int = 8
    value_lr: float = 1e-2

    def sft_settings(self, cfg: Config):
        from . import sft

        return sft.settings_for(cfg, target="json", epochs=self.sft_epochs, max_new_tokens=self.max_new_tokens)

    def a2c_config(self, cfg: Config):
        """A2C settings: the profile's defaults, terminal rewards (a JSON prefix is not yet an object
        R3 could grade), long enough completions, and a critic fitted before the policy moves: with
        terminal rewards of about 2 and a fresh value head (V ≈ 0), every well-scored sample's tokens
        would get a positive advantage and the policy would drift (F1 −0.03 without the warm-up,
        benchmarks/RESULTS.md)."""
        from .rl import A2CConfig

        make = A2CConfig.paper if cfg.profile == "paper" else A2CConfig.tiny
        return make(steps=self.a2c_steps, lr=self.a2c_lr, reward_mode="terminal", max_new_tokens=self.max_new_tokens,
                    critic_warmup=self.critic_warmup, value_lr=self.value_lr, alpha=self.alpha, beta=self.beta,
                    r2=self.r2)


@dataclass(frozen=True)
class JsonArtifacts:
    """Where the JSON stage keeps its outputs: ``sft/`` (``drivekit.sft`` layout), ``rl/``
    (``drivekit.rl`` layout), ``constrained.jsonl`` (the SFT-JSON adapter with grammar-constrained
    decoding) and ``summary.json`` (the comparison table)."""

    dir: Path

    @property
    def sft(self):
        from .sft import SFTArtifacts

        return SFTArtifacts(Path(self.dir) / "sft")

    @property
    def rl(self):
        from .rl import A2CArtifacts

        return A2CArtifacts(Path(self.dir) / "rl")

    @property
    def constrained(self) -> Path:
        return Path(self.dir) / "constrained.jsonl"

    @property
    def summary(self) -> Path:
        return Path(self.dir) / "summary.json"

    def complete(self) -> bool:
        return self.sft.complete() and self.rl.complete() and self.constrained.exists() and self.summary.exists()


def artifacts(cfg: Config) -> JsonArtifacts:
    return JsonArtifacts(Path(cfg.runs_dir) / "json")


def validity(rows: Sequence[Mapping]) -> float:
    """Share of answers that are strict JSON objects valid against the schema (``ok`` of JSON rows)."""
    return float(np.mean([bool(r["ok"]) for r in rows])) if rows else 0.0


def compare(named_rows: Mapping[str, Sequence[Mapping]], reward=None, json_names: Sequence[str] = ()):
    """``drivekit.rl.compare`` plus the JSON validity rate of the models named in ``json_names``."""
    from .rl import compare as rl_compare

    table = rl_compare(named_rows, reward)
    table.insert(0, "json_valid", [validity(named_rows[n]) if n in json_names else np.nan for n in table.index])
    return table


def constrained_predictions(model, processor, dataset, settings, progress: bool = True) -> list[dict]:
    """Greedy JSON answers under the schema's grammar (``drivekit.constrained``), as prediction rows."""
    from .constrained import JsonConstraint
    from .sft import predict

    constraint = JsonConstraint(processor.tokenizer, model.get_output_embeddings().weight.shape[0])
    return predict(model, processor, dataset, settings, progress, constraint=constraint)


MODELS = ("SFT (plain)", "SFT-JSON", "RL-JSON", "SFT-JSON + constrained")  # the rows of the comparison


def make_trainer(cfg: Config, stage: JsonStage, result: JsonArtifacts, clip_reward):
    """The A2C trainer of the JSON stage: policy = the SFT-JSON adapter (a frozen copy is π_ref),
    R = α·R1 + β·R2 + γ·R3 with ``clip_reward`` as R1, on the toy train subset."""
    from . import rl, sft

    reward = json_reward(clip_reward, stage.alpha, stage.beta, stage.gamma, stage.r2)
    train = rl.dataset_items(sft.toy_data(cfg).train)
    return rl.build_trainer(cfg, train, reward, stage.a2c_config(cfg), start=result.sft.best,
                            run_dir=result.rl.dir / "run")


def evaluate(cfg: Config, stage: JsonStage, result: JsonArtifacts, trainer, progress: bool = True) -> dict:
    """Toy-test predictions of every model of the comparison (:data:`MODELS`): the plain SFT's and
    SFT-JSON's (read from their runs), RL-JSON's (greedy, the trainer's policy), and SFT-JSON's
    under grammar-constrained decoding (written to ``result.constrained``)."""
    from . import rl, sft

    data = sft.toy_data(cfg)
    rl_rows = rl.predictions(trainer, rl.dataset_items(data.test), max_new_tokens=stage.max_new_tokens, target="json")
    with rl.reference_policy(trainer.model, trainer.reference_adapter):  # the SFT-JSON adapter, frozen
        constrained = constrained_predictions(trainer.model, trainer.processor, data.test, stage.sft_settings(cfg),
                                              progress)
    sft.write_predictions(constrained, result.constrained)
    return dict(zip(MODELS, (sft.read_predictions(sft.artifacts(cfg).predictions),
                             sft.read_predictions(result.sft.predictions), rl_rows, constrained)))


def save(result: JsonArtifacts, stage: JsonStage, trainer, rows: Mapping[str, Sequence[Mapping]], **info):
    """Write the RL-JSON run (``drivekit.rl`` layout) and ``summary.json`` with the comparison
    table (JSON validity, F1s, test rewards); returns the table."""
    import json
    from dataclasses import asdict

    from .rl import write_artifacts

    table = compare(rows, trainer.reward, json_names=[n for n in rows if n != MODELS[0]])
    write_artifacts(result.rl, trainer, rows[MODELS[2]], table)
    result.summary.write_text(json.dumps(dict(stage=asdict(stage), table=table.to_dict(orient="index"), **info),
                                         indent=1, default=str))
    return table


def run(cfg: Config | None = None, stage: JsonStage = JsonStage(), out: str | Path | None = None,
        progress: bool = True) -> JsonArtifacts:
    """JSON SFT (from the plain SFT adapter), A2C with R = α·R1 + β·R2 + γ·R3, constrained decoding
    of the SFT-JSON adapter; every model's toy-test predictions and the comparison table."""
    import time

    from . import sft
    from .config import load
    from .rewards import ClipReward

    cfg = cfg or load()
    result = JsonArtifacts(Path(out)) if out else artifacts(cfg)
    t0 = time.perf_counter()
    sft.run(cfg, stage.sft_settings(cfg), result.sft.dir, progress, start=sft.ensure(cfg).best)
    t1 = time.perf_counter()
    trainer = make_trainer(cfg, stage, result, ClipReward.from_config(cfg))
    trainer.train(progress=progress)
    t2 = time.perf_counter()
    rows = evaluate(cfg, stage, result, trainer, progress)
    save(result, stage, trainer, rows, sft_seconds=round(t1 - t0, 1), rl_seconds=round(t2 - t1, 1),
         eval_seconds=round(time.perf_counter() - t2, 1))
    return result


def ensure(cfg: Config | None = None) -> JsonArtifacts:
    """The JSON-stage artifacts of ``cfg`` (default settings), made by :func:`run` when missing."""
    from .config import load

    cfg = cfg or load()
    result = artifacts(cfg)
    return result if result.complete() else run(cfg)
