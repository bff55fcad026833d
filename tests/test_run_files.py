"""Run files that cannot lie (issue 33, item 5): a stage's summary, an A2C checkpoint's trainer state and
an SFT trainer state, each truncated, make the run be redone or refused with the file named; an A2C run
killed and resumed ends bit-identical to an uninterrupted one; A2C refuses bad settings when it is built
and a resume with other settings."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import pandas as pd
import pytest
import torch

from drivekit.algorithms import a2c, checkpoints, sft
from drivekit.core import config
from drivekit.core.files import Unfinished, write_json
from drivekit.evaluation.reports import prediction_row
from drivekit.models.vlm import LoraSettings, load_vlm
from drivekit.rewards.weighted_reward import WeightedReward
from drivekit.stages import a2c_stage, runs, sft_stage

from micro import items as _items
from test_rl import low_tokens, tiny_policy, trainer

TIMINGS = ("seconds", "rollout_s")  # the only log columns a repeated run may change


def truncate(path, keep: float = 0.5) -> None:
    """Cut ``path`` to the first ``keep`` of its bytes, as a run killed while writing it in place would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def lora_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


# ---------------------------------------------------------------------------------------------
# Stage summaries: a run directory is finished only when its summary parses and its settings match
# ---------------------------------------------------------------------------------------------
def fake_sft_run(folder, settings, **extra) -> sft_stage.SFTArtifacts:
    """An SFT run directory with every file, its summary written as ``sft_stage.write_summary`` writes it
    (``extra``: more of the summary's fields, e.g. ``fraction``)."""
    result = sft_stage.SFTArtifacts(folder)
    result.best.mkdir(parents=True)
    result.predictions.write_text("")
    result.loss_log.write_text("step,epoch,lr,train_loss,val_loss\n1,1.0,0.1,1.0,1.0\n")
    log = pd.DataFrame([dict(step=1, epoch=1.0, lr=0.1, train_loss=1.0, val_loss=1.0)])
    rows = [prediction_row("a.jpg", "Action: Move forward; Reason: Road is clear", [1, 0, 0, 0], [1] + [0] * 20)]
    sft_stage.write_summary(result, config.load("tiny"), settings, log, rows, **extra)
    return result


def test_a_truncated_stage_summary_is_redone_with_the_file_named(tmp_path, monkeypatch, capsys):
    cfg = config.load("tiny", runs_dir=tmp_path)
    settings = sft_stage.course_settings(cfg)  # what ensure asks for: notebook 02's settings
    result = fake_sft_run(tmp_path / "sft", settings)
    assert result.read_summary()["settings"] == json.loads(json.dumps(asdict(settings)))
    calls = []
    monkeypatch.setattr(sft_stage, "run", lambda cfg, **kw: calls.append(kw) or result)

    assert result.unfinished(settings) is None and sft_stage.ensure(cfg) == result and not calls  # reused

    truncate(result.summary)
    problem = result.unfinished(settings)
    assert isinstance(problem, Unfinished) and problem.path == result.summary
    assert str(problem).startswith(f"{result.summary}: unfinished (not JSON: ")
    sft_stage.ensure(cfg)
    assert calls == [dict(settings=settings, resume=True)]  # redone, from the checkpoints it has
    assert f"{result.summary}: unfinished (not JSON: " in capsys.readouterr().out

    result.summary.unlink()
    assert str(result.unfinished()) == f"{result.summary}: unfinished (missing)"

    fake_sft_run(tmp_path / "other", settings.replace(lr=1.0))  # a finished run, but of other settings
    monkeypatch.setattr(sft_stage.SFTArtifacts, "NAME", "other")
    problem = sft_stage.artifacts(cfg).unfinished(settings)
    assert isinstance(problem, runs.OtherSettings)
    assert str(problem) == f"{tmp_path / 'other' / 'summary.json'}: unfinished (written with lr=1.0, asked for {settings.lr!r})"
    sft_stage.ensure(cfg)
    assert calls[-1] == dict(settings=settings, resume=False)  # trained afresh, not resumed from another run


def test_an_a2c_stage_summary_records_its_settings_and_a_truncated_one_is_redone(tmp_path, monkeypatch, capsys):
    cfg = config.load("tiny", runs_dir=tmp_path)
    t = trainer(steps=1, max_new_tokens=3)
    t.train(progress=False)
    out = a2c_stage.artifacts(cfg)
    rows = [prediction_row("a.jpg", "Action: Move forward; Reason: Road is clear", [1, 0, 0, 0], [1] + [0] * 20)]
    a2c_stage.write_artifacts(out, t, rows)
    assert out.complete(t.settings) and not out.complete(t.settings.replace(lr=0.5))
    assert out.read_summary()["settings"] == json.loads(json.dumps(asdict(t.settings)))
    assert not list(out.dir.glob(".*.tmp"))  # written through a temporary file, renamed

    truncate(out.summary, 0.3)
    calls = []
    monkeypatch.setattr(a2c_stage, "run", lambda cfg, **kw: calls.append(kw) or out)
    a2c_stage.ensure(cfg, t.settings)
    assert calls == [dict(settings=t.settings)]
    assert f"{out.summary}: unfinished (not JSON: " in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# A2C checkpoints: atomic, weights_only, settings checked, resumed bit-identical
# ---------------------------------------------------------------------------------------------
def test_a_killed_a2c_run_resumes_bit_identical_to_an_uninterrupted_one(tmp_path):
    reward = WeightedReward({"low": (1.0, low_tokens)})
    n = 2
    whole = trainer(model=tiny_policy(seed=5), reward=reward, run_dir=tmp_path / "whole", steps=2 * n,
                    checkpoint_every=n)
    whole.train(progress=False)

    first = trainer(model=tiny_policy(seed=5), reward=reward, run_dir=tmp_path / "cut", steps=2 * n,
                    checkpoint_every=n)
    first.train(steps=n, progress=False)  # then the session dies
    killed = checkpoints.folder(tmp_path / "cut", n + 1)  # killed while saving a later checkpoint: no state yet
    first.save_policy(killed)
    (killed / f".{a2c.TRAINER_STATE}.x.tmp").write_bytes(b"half")
    del first

    resumed = trainer(model=tiny_policy(seed=5), reward=reward, run_dir=tmp_path / "cut", steps=2 * n,
                      checkpoint_every=n)  # a fresh session: the checkpoint brings back the trained weights
    assert resumed.latest_checkpoint() == checkpoints.folder(tmp_path / "cut", n)
    assert resumed.resume() and resumed.step_count == n
    resumed.train(progress=False)

    a, b = lora_state(whole.model), lora_state(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    heads = whole.value_head.state_dict(), resumed.value_head.state_dict()
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    pd.testing.assert_frame_equal(whole.log_frame().drop(columns=list(TIMINGS)),
                                  resumed.log_frame().drop(columns=list(TIMINGS)), check_exact=True)

    def logged(run_dir):
        return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
                for line in (run_dir / a2c.LOG_FILE).read_text().splitlines()]

    assert logged(tmp_path / "cut") == logged(tmp_path / "whole") and len(logged(tmp_path / "cut")) == 2 * n
    state = torch.load(checkpoints.folder(tmp_path / "cut", 2 * n) / a2c.TRAINER_STATE, weights_only=True)
    assert state["settings"] == asdict(resumed.settings) and state["step"] == 2 * n


def test_a_truncated_a2c_trainer_state_is_refused_with_the_file_named(tmp_path):
    first = trainer(run_dir=tmp_path, steps=2, checkpoint_every=1)
    first.train(progress=False)
    state = first.latest_checkpoint() / a2c.TRAINER_STATE
    truncate(state)
    again = trainer(run_dir=tmp_path, steps=2, checkpoint_every=1)
    with pytest.raises(Unfinished, match=rf"^{state}: unfinished \(unreadable: "):
        again.resume()
    assert again.step_count == 0 and again.log == []


def test_resuming_an_a2c_run_with_other_settings_is_refused(tmp_path):
    trainer(run_dir=tmp_path, steps=2, checkpoint_every=1).train(progress=False)
    state = checkpoints.folder(tmp_path, 2) / a2c.TRAINER_STATE
    other = trainer(run_dir=tmp_path, steps=2, checkpoint_every=1, lr=5e-3)
    with pytest.raises(ValueError, match=rf"^{state}: written with lr=0.01, this run has 0.005"):
        other.resume()
    assert other.step_count == 0


@pytest.mark.parametrize("changes, field", [
    (dict(single_pass=True, critic_warmup=2), "critic_warmup"),
    (dict(reward_mode="final"), "reward_mode"),
    (dict(reward_mode="incremental", prefix_every="line"), "prefix_every"),
    (dict(lr_schedule="cosine"), "lr_schedule"),
    (dict(batch_size=0), "batch_size"),
    (dict(top_p=0.0), "top_p"),
])
def test_a2c_settings_errors_come_when_the_trainer_is_built_before_any_step(changes, field):
    calls = []

    def counted(completions, **batch):
        calls.append(len(completions))
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match=field):
        trainer(reward=WeightedReward({"r": (1.0, counted)}), max_failures=3, **changes)
    assert calls == []  # no step ran, none was skipped
    with pytest.raises(ValueError, match=field):
        a2c.A2CSettings(**changes)
    with pytest.raises(dataclasses.FrozenInstanceError):  # and no settings object changes in place
        a2c.A2CSettings().lr = 1.0


# ---------------------------------------------------------------------------------------------
# SFT: a truncated trainer state is refused with the file named
# ---------------------------------------------------------------------------------------------
def test_a_truncated_sft_trainer_state_is_refused_with_the_file_named(saved, tmp_path):
    settings = sft.SFTSettings(epochs=1, batch_size=2, grad_accum=1, lr=1e-2, lora=LoraSettings(r=4),
                               gradient_checkpointing=False, eval_every=2, eval_batch_size=2, max_new_tokens=6)

    def train(resume):
        model, processor = load_vlm(saved[0], quantize_4bit=True, lora=settings.lora, device="cpu", seed=0)
        return sft.train(model, processor, _items(4), _items(2, seed=1), settings, tmp_path, progress=False,
                         resume=resume)

    train(resume=False)
    state = checkpoints.latest(tmp_path, sft.TRAINER_STATE) / sft.TRAINER_STATE
    assert not list(state.parent.glob(".*.tmp"))
    truncate(state)
    with pytest.raises(Unfinished, match=rf"^{state}: unfinished \(unreadable: "):
        train(resume=True)
    state.write_bytes(b"")
    with pytest.raises(Unfinished, match=rf"^{state}: unfinished"):
        train(resume=True)


class Foreign:
    """Not plain data: ``torch.load(..., weights_only=True)`` refuses to build it."""


def test_a_trainer_state_holding_more_than_plain_data_is_not_loaded(tmp_path):
    path = tmp_path / "trainer_state.pt"
    torch.save({"step": 1, "thing": Foreign()}, path)  # what weights_only=True refuses to unpickle
    with pytest.raises(Unfinished, match=rf"^{path}: unfinished \(unreadable: "):
        checkpoints.read_state(path)
    checkpoints.write_state({"step": 1, "settings": {"lr": 0.1}, "rng": torch.get_rng_state()}, path)
    assert checkpoints.read_state(path, ("step", "rng"))["settings"] == {"lr": 0.1}
    with pytest.raises(Unfinished, match=rf"^{path}: unfinished \(no optimizer\)"):
        checkpoints.read_state(path, ("step", "optimizer"))
    write_json(tmp_path / "x.json", {"a": 1})  # the shared atomic writer leaves no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer_state.pt", "x.json"]
