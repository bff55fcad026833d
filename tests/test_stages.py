"""The stages are symmetric (issue 33, item 3): ``a2c_stage`` and ``grpo_stage`` take the same arguments
and return the same shapes, the settings argument is ``settings`` everywhere, and the GRPO stage has a run
directory like the A2C stage's."""
from __future__ import annotations

import inspect
import json
from dataclasses import asdict
from types import SimpleNamespace

import pandas as pd
import pytest

from drivekit.algorithms.grpo import GRPOSettings
from drivekit.core import config
from drivekit.evaluation.reports import prediction_row
from drivekit.stages import a2c_stage, grpo_stage, json_stage, runs, self_training, sft_stage

SHARED = ("load_policy", "build_trainer", "train", "artifacts", "run", "ensure", "write_artifacts")


def parameters(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


@pytest.mark.parametrize("name", SHARED)
def test_the_a2c_and_grpo_stages_take_the_same_arguments(name):
    a2c_fn, grpo_fn = getattr(a2c_stage, name), getattr(grpo_stage, name)
    if name == "write_artifacts":  # GRPO's trainer (trl's) does not carry drivekit's settings: they are passed
        assert parameters(grpo_fn) == ["out", "trainer", "settings", *parameters(a2c_fn)[2:]]
    else:
        assert parameters(a2c_fn) == parameters(grpo_fn), name


def test_the_settings_argument_is_called_settings_everywhere():
    for fn in (a2c_stage.build_trainer, a2c_stage.train, a2c_stage.run, a2c_stage.ensure, grpo_stage.build_trainer,
               grpo_stage.train, grpo_stage.run, grpo_stage.ensure, sft_stage.run, sft_stage.ensure, json_stage.run,
               json_stage.ensure, self_training.train):
        names = parameters(fn)
        assert "settings" in names and not {"a2c", "grpo", "stage", "sft_settings"} & set(names), fn.__qualname__
    assert "settings" in parameters(a2c_stage.ShortRuns)
    for stage in (a2c_stage, grpo_stage, self_training):  # the experiment harness's interface, in the same order
        assert parameters(stage.train)[:2] == ["cfg", "items"] and parameters(stage.train)[3] == "settings"
        assert parameters(stage.train)[-4:] == ["start", "out", "progress", "report"] or stage is self_training


def test_load_policy_returns_the_same_shape_in_both_stages(monkeypatch, tmp_path):
    loaded = []

    def fake_load_vlm(cfg, **kw):
        loaded.append(kw)
        return SimpleNamespace(active_adapter="default", load_adapter=lambda *a, **k: None,
                               set_adapter=lambda name: None), "processor"

    monkeypatch.setattr(a2c_stage, "load_vlm", fake_load_vlm)
    monkeypatch.setattr(grpo_stage, "load_vlm", fake_load_vlm)
    cfg = config.load("tiny")
    for policy, reference in ((a2c_stage.load_policy(cfg, tmp_path), a2c_stage.REFERENCE_ADAPTER),
                              (a2c_stage.load_policy(cfg, "base"), None),
                              (grpo_stage.load_policy(cfg, tmp_path), None)):
        assert isinstance(policy, runs.Policy) and len(policy) == 3
        model, processor, ref = policy  # one unpacking for both stages
        assert processor == "processor" and ref == policy.reference_adapter == reference
    assert [kw.get("adapter") for kw in loaded] == [tmp_path, None, tmp_path]


class FakeGRPOTrainer:
    """What ``grpo_stage.write_artifacts`` reads of a ``trl.GRPOTrainer``: the model and trl's log."""

    def __init__(self):
        self.model = SimpleNamespace(save_pretrained=lambda folder: (folder.mkdir(parents=True),
                                                                      (folder / "adapter_config.json").write_text("{}")))
        self.state = SimpleNamespace(log_history=[dict(step=1, loss=0.1, reward=0.5), dict(step=2, loss=0.2, reward=0.6),
                                                  dict(train_runtime=1.0)])


def test_the_grpo_stage_writes_the_a2c_stages_run_directory_and_ensure_reuses_it(tmp_path, monkeypatch, capsys):
    cfg = config.load("tiny", runs_dir=tmp_path)
    settings = config.profile_defaults(GRPOSettings, cfg)
    out = grpo_stage.artifacts(cfg)
    assert out.dir == tmp_path / "grpo" and grpo_stage.GRPOArtifacts.FILES == a2c_stage.A2CArtifacts.FILES
    rows = [prediction_row("a.jpg", "Action: Move forward; Reason: Road is clear", [1, 0, 0, 0], [1] + [0] * 20)]
    summary = grpo_stage.write_artifacts(out, FakeGRPOTrainer(), settings, rows, train_seconds=1.5)
    assert summary["steps"] == 2 and summary["f1_act"] == 1.0 and summary["train_seconds"] == 1.5
    assert json.loads(out.summary.read_text())["settings"] == asdict(settings)
    assert (out.policy / "adapter_config.json").is_file() and out.log.read_text().startswith("step,loss,reward")

    calls = []
    monkeypatch.setattr(grpo_stage, "run", lambda cfg, **kw: calls.append(kw) or out)
    assert grpo_stage.ensure(cfg) == out and not calls  # a finished run of the profile's settings: reused
    other = settings.replace(kl_coef=0.0)
    grpo_stage.ensure(cfg, other)
    assert calls == [dict(settings=other)]
    assert capsys.readouterr().out == f"{out.summary}: unfinished (written with kl_coef=0.1, asked for 0.0); running it again\n"


def test_the_json_stage_summary_records_its_settings(tmp_path, monkeypatch):
    cfg = config.load("tiny", runs_dir=tmp_path)
    settings = config.profile_defaults(json_stage.JsonSettings, cfg)
    assert settings == json_stage.JsonSettings.tiny() and settings.a2c_steps == 16
    assert json_stage.JsonSettings.paper() == json_stage.JsonSettings()
    monkeypatch.setattr(json_stage, "compare", lambda rows, reward, json_names: pd.DataFrame({"F1": [1.0]}, index=["x"]))
    monkeypatch.setattr(json_stage, "write_artifacts", lambda *a, **k: None)
    result = json_stage.artifacts(cfg)
    json_stage.save(result, settings, SimpleNamespace(reward=None), {m: [] for m in json_stage.MODELS})
    assert json.loads(result.summary.read_text())["settings"] == json.loads(json.dumps(asdict(settings)))
