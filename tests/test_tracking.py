"""Watching a run (drivekit.core.tracking): one switch for SFT, A2C and GRPO, on a micro Idefics3 (micro.py).

With the tracker on, this file runs as a script in a fresh process (``worker`` below), because
trackio fixes its folder (``$TRACKIO_DIR``) once per process, when it is first imported, and trl
imports it whenever it is installed: the worker trains a micro SFT, A2C and GRPO reporting to
trackio in ``tmp_path``, and A2C and GRPO again reporting to TensorBoard. The tests read the
metrics back from the trackers' own files (trackio's SQLite file, TensorBoard's event files) and
check that A2C logs what it shares with GRPO under trl's names. With the switch off, a run
imports no tracker and writes no tracker folder; a tracker that fails mid-run is a warning.
"""
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from drivekit.algorithms import a2c, grpo, sft
from drivekit.core import tracking
from drivekit.rewards.action_reward import action_reward
from drivekit.models.vlm import LoraSettings, load_vlm
from drivekit.rewards.structure_reward import structure_reward
from drivekit.rewards.weighted_reward import WeightedReward

from micro import items as _items, save_micro

PROJECT = "micro"
# What trl's GRPOTrainer logs through transformers' trackio callback for drivekit's reward terms, and
# what A2C measures the same way (drivekit.algorithms.a2c.AS_TRL): the names both must log.
SHARED = ["train/reward", "train/kl", "train/entropy", "train/learning_rate", "train/loss", "train/grad_norm",
          "train/completions/mean_length", "train/completions/clipped_ratio", "train/step_time",
          "train/rewards/r2_label_f1/mean", "train/rewards/structure_reward/mean", "train/global_step"]
A2C_OWN = ["train/policy_loss", "train/value_loss", "train/samples_per_second"]
SFT_SETTINGS = sft.SFTSettings(epochs=2, batch_size=2, grad_accum=1, lr=1e-2, lora=LoraSettings(r=4),
                               gradient_checkpointing=False, eval_every=2, eval_batch_size=2, max_new_tokens=6)
A2C_SETTINGS = a2c.A2CSettings(steps=2, batch_size=4, max_new_tokens=6, kl_coef=0.1, temperature=1.0)
GRPO_SETTINGS = grpo.GRPOSettings(steps=2, clips_per_step=1, num_generations=4, max_completion_length=6)


def reward():
    return WeightedReward({"r2": (1.0, action_reward("label_f1")), "r3": (0.5, structure_reward)})


ADAPTER = LoraSettings(r=4)  # the 'SFT best' adapter RL starts from (micro.save_micro)


def run_sft(base: Path, out: Path, report: tracking.Report):
    model, processor = load_vlm(base, quantize_4bit=True, lora=SFT_SETTINGS.lora, device="cpu", seed=0)
    return sft.train(model, processor, _items(4), _items(2, seed=1), SFT_SETTINGS, out, progress=False, report=report)


def run_a2c(base: Path, adapter: Path, report: tracking.Report):
    from drivekit.stages import a2c_stage
    from drivekit.core import config

    model, processor = load_vlm(base, quantize_4bit=True, adapter=adapter, trainable=True, device="cpu")
    trainer = a2c_stage.build_trainer(config.load(), _items(4), reward(), A2C_SETTINGS, policy=(model, processor, None))
    return trainer.train(progress=False, report=report)


def run_grpo(base: Path, adapter: Path, out: Path, report: tracking.Report):
    model, processor = load_vlm(base, quantize_4bit=True, adapter=adapter, trainable=True, device="cpu")
    trainer = grpo.build_trainer(model, processor, _items(4), reward(), GRPO_SETTINGS, out, report=report)
    trainer.train()
    return grpo.log_frame(trainer)


def worker(out: Path) -> None:
    """The fresh process: micro SFT, A2C and GRPO reporting to trackio, then A2C and GRPO to TensorBoard;
    their own logs go to ``out/logs.json`` for the test to compare."""
    base, adapter, _ = save_micro(out / "micro", ADAPTER)
    on = tracking.Report(to="trackio", project=PROJECT)
    logs = dict(sft=run_sft(base, out / "sft", on.tagged("SFT-micro", method="SFT", seed=0)),
                a2c=run_a2c(base, adapter, on.tagged("A2C-micro", method="A2C", seed=0)),
                grpo=run_grpo(base, adapter, out / "grpo", on.tagged("GRPO-micro", method="GRPO", seed=0)))
    board = tracking.Report(to="tensorboard", project=PROJECT)
    logs["a2c_tb"] = run_a2c(base, adapter, board.tagged("A2C-micro"))
    logs["grpo_tb"] = run_grpo(base, adapter, out / "grpo_tb", board.tagged("GRPO-micro"))
    (out / "logs.json").write_text(json.dumps({k: v.to_dict(orient="records") for k, v in logs.items()}))


# ---------------------------------------------------------------------------------------------
# The trackers' own files, read back
# ---------------------------------------------------------------------------------------------
def trackio_rows(db: Path, run: str) -> list[tuple[int, dict]]:
    """``(step, metrics)`` of every row trackio stored for ``run`` (its SQLite file, read directly)."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT step, metrics FROM metrics WHERE run_name = ? ORDER BY id", (run,)).fetchall()
    return [(step, json.loads(metrics)) for step, metrics in rows]


def trackio_config(db: Path, run: str) -> dict:
    with sqlite3.connect(db) as con:
        (config,) = con.execute("SELECT config FROM configs WHERE run_name = ?", (run,)).fetchone()
    return json.loads(config)


def training_rows(rows: list[tuple[int, dict]]) -> dict[int, dict]:
    """Rows of per-step training metrics by step (trl also logs profiling times, and a closing row)."""
    return {step: m for step, m in rows if "train/loss" in m}


def tensorboard_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard's event files in the run folder ``run`` hold, as ``(step, value)``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Run :func:`worker` in a fresh process with trackio's folder and the runs folder in a tmp folder."""
    pytest.importorskip("trackio", reason=f"the trackio runs need trackio: {tracking.INSTALL['trackio']}")
    pytest.importorskip("tensorboard", reason=f"the TensorBoard runs need it: {tracking.INSTALL['tensorboard']}")
    out = tmp_path_factory.mktemp("tracked")
    env = {k: v for k, v in os.environ.items() if k not in (tracking.ENVIRONMENT, "TRACKIO_DIR")}
    env.update(TRACKIO_DIR=str(out / "trackio"), DRIVEKIT_RUNS=str(out / "runs"), HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    logs = json.loads((out / "logs.json").read_text())
    return out, logs, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# The switch
# ---------------------------------------------------------------------------------------------
def test_the_switch_is_off_by_default_and_refuses_an_unknown_value(monkeypatch):
    monkeypatch.delenv(tracking.ENVIRONMENT, raising=False)
    assert tracking.report_to() == "none" and not tracking.Report().on
    monkeypatch.setenv(tracking.ENVIRONMENT, " TensorBoard ")
    assert tracking.report_to() == "tensorboard"
    assert tracking.report_to("none") == "none"  # an argument (--report-to) wins over the variable
    monkeypatch.setenv(tracking.ENVIRONMENT, "wandb")
    with pytest.raises(ValueError, match=r"\$DRIVEKIT_REPORT_TO='wandb': expected one of trackio, tensorboard, none"):
        tracking.Report()
    with pytest.raises(ValueError, match=r"report_to='mlflow': expected one of trackio, tensorboard, none"):
        tracking.Report(to="mlflow")


def test_a_missing_library_says_which_extra_to_install(monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "trackio" else real(name))
    with pytest.raises(ImportError, match=r'DRIVEKIT_REPORT_TO=trackio needs the trackio package.*pip install -e '
                                          r'"\.\[track\]"'):
        tracking.Report(to="trackio")


def test_trackio_writes_under_the_runs_folder_unless_it_was_imported_first(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setenv("DRIVEKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setitem(sys.modules, "trackio", None)  # not imported yet (and never by this test)
    monkeypatch.delitem(sys.modules, "trackio")
    assert tracking.point_trackio() == tmp_path / "runs" / "trackio" == Path(os.environ["TRACKIO_DIR"])
    assert tracking.folder("tensorboard", "rl-vs-sft") == tmp_path / "runs" / "tensorboard" / "rl-vs-sft"
    imported = type(sys)("trackio")  # a trackio imported earlier, its folder fixed elsewhere
    imported.utils = type(sys)("trackio.utils")
    imported.utils.TRACKIO_DIR = tmp_path / "elsewhere"
    monkeypatch.setitem(sys.modules, "trackio", imported)
    with pytest.warns(RuntimeWarning, match="trackio was imported before drivekit chose its folder: it writes to"):
        assert tracking.point_trackio() == tmp_path / "elsewhere"


def test_the_training_commands_take_the_switch(monkeypatch):
    from drivekit import experiment
    from drivekit.stages import sft_stage

    for main in (sft_stage.main, experiment.main):
        with pytest.raises(SystemExit) as stop:
            main(["--report-to", "wandb"])
        assert stop.value.code == 2  # argparse: invalid choice, listed with the allowed ones


def test_a2c_names_its_shared_measures_as_trl_does():
    row = dict(step=3, lr=1e-4, reward=0.5, reward_r2=0.4, reward_r3=0.2, kl=0.01, entropy=2.0, loss=0.3,
               grad_norm=1.5, length=6.0, finished=0.25, seconds=2.0, policy_loss=0.1, value_loss=0.4, value=0.2,
               ret=0.5, value_grad_norm=0.3, logp_gap=0.0, skipped=False, spread_r2=0.1)
    names = a2c.reward_names(reward())
    assert names == {"r2": "r2_label_f1", "r3": "structure_reward"}
    metrics = a2c.tracked_metrics(row, names, samples=8)
    assert metrics == {"reward": 0.5, "rewards/r2_label_f1/mean": 0.4, "rewards/structure_reward/mean": 0.2,
                       "kl": 0.01, "entropy": 2.0, "learning_rate": 1e-4, "loss": 0.3, "grad_norm": 1.5,
                       "completions/mean_length": 6.0, "completions/clipped_ratio": 0.75, "step_time": 2.0,
                       "policy_loss": 0.1, "value_loss": 0.4, "value": 0.2, "ret": 0.5, "value_grad_norm": 0.3,
                       "logp_gap": 0.0, "skipped": 0.0, "samples_per_second": 4.0}


# ---------------------------------------------------------------------------------------------
# Off: nothing imported, nothing written; a failing tracker never stops a run
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def micro(micro_vlm):
    return micro_vlm(ADAPTER)[:2]


def test_with_the_switch_off_no_tracker_is_imported_or_written(micro, tmp_path, monkeypatch):
    monkeypatch.delenv(tracking.ENVIRONMENT, raising=False)
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setenv("DRIVEKIT_RUNS", str(tmp_path / "runs"))
    for name in ("trackio", "tensorboard"):  # an import of either would now raise
        monkeypatch.setitem(sys.modules, name, None)
    base, adapter = micro
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sft_log = run_sft(base, tmp_path / "sft", tracking.Report())
        a2c_log = run_a2c(base, adapter, tracking.Report())
    assert len(sft_log) == 4 and len(a2c_log) == A2C_SETTINGS.steps and not a2c_log["skipped"].any()
    assert not [w for w in caught if "tracker" in str(w.message)]
    assert not (tmp_path / "runs").exists() and "TRACKIO_DIR" not in os.environ
    assert sorted(p.name for p in (tmp_path / "sft").iterdir()) == ["best", "checkpoint-2", "checkpoint-4",
                                                                    "loss_log.csv"]
    args = grpo.config(GRPO_SETTINGS, tmp_path / "grpo")
    assert args.report_to == [] and args.project == "huggingface"  # trl's defaults: no integration callback


class Failing:
    """Stands in for accelerate's trackers: starts, then fails at its second log."""

    def __init__(self, *args, **kwargs):
        self.logged = []

    def start(self):
        pass

    def store_init_configuration(self, values):
        self.config = values

    def log(self, values, step=None):
        if self.logged:
            raise OSError("disk full")
        self.logged.append((step, values))

    def finish(self):
        raise AssertionError("a dropped tracker is not finished")


def test_a_tracker_that_fails_mid_run_is_a_warning_and_training_goes_on(micro, monkeypatch):
    import accelerate.tracking

    monkeypatch.setattr(tracking, "require", lambda backend: None)
    monkeypatch.setattr(accelerate.tracking, "TrackioTracker", Failing)
    monkeypatch.setattr(tracking, "point_trackio", lambda: None)
    base, adapter = micro
    with pytest.warns(RuntimeWarning, match=r"trackio tracker of run 'A2C' failed to log \(OSError: disk full\); "
                                            r"training goes on without it"):
        log = run_a2c(base, adapter, tracking.Report(to="trackio"))
    assert len(log) == A2C_SETTINGS.steps and not log["skipped"].any()


def test_a_failing_transformers_callback_is_dropped_with_a_warning():
    class Args:
        report_to = ["trackio"]

    class State:
        is_world_process_zero = True

    class Broken:
        calls = 0

        def on_log(self, args, state, control, **kwargs):
            Broken.calls += 1
            raise RuntimeError("no run")

    guarded, args = tracking.Guarded(Broken(), "trackio", {}), Args()
    with pytest.warns(RuntimeWarning, match="trackio callback failed in on_log"):
        guarded.on_log(args, State(), None, logs={"loss": 1.0})
    assert guarded.on_log(args, State(), None, logs={"loss": 1.0}) is None and Broken.calls == 1
    assert args.report_to == []  # trl's own trackio logging (profiling) stops too


# ---------------------------------------------------------------------------------------------
# On: SFT, A2C and GRPO in trackio and TensorBoard, read back from their files
# ---------------------------------------------------------------------------------------------
def test_sft_reports_its_losses_to_trackio(tracked):
    out, logs, _ = tracked
    db = out / "trackio" / f"{PROJECT}.db"
    rows = trackio_rows(db, "SFT-micro")
    log = logs["sft"]
    assert [step for step, _ in rows] == [row["step"] for row in log]
    for (step, metrics), row in zip(rows, log):
        assert metrics["train/loss"] == pytest.approx(row["train_loss"])
        assert metrics["train/learning_rate"] == pytest.approx(row["lr"])
        assert metrics["train/global_step"] == step
        assert ("eval/loss" in metrics) == (step % SFT_SETTINGS.eval_every == 0)
        if "eval/loss" in metrics:
            assert metrics["eval/loss"] == pytest.approx(row["val_loss"])
    config = trackio_config(db, "SFT-micro")
    assert config["lr"] == SFT_SETTINGS.lr and config["lora.r"] == 4 and config["method"] == "SFT"


def test_a2c_and_grpo_log_the_same_names_to_trackio(tracked):
    out, logs, _ = tracked
    db = out / "trackio" / f"{PROJECT}.db"
    a2c_rows = training_rows(trackio_rows(db, "A2C-micro"))
    grpo_rows = training_rows(trackio_rows(db, "GRPO-micro"))
    assert sorted(a2c_rows) == [1, 2] and sorted(grpo_rows) == [1, 2]
    grpo_names = set().union(*map(set, grpo_rows.values()))
    a2c_names = set().union(*map(set, a2c_rows.values()))
    assert set(SHARED) <= grpo_names, sorted(set(SHARED) - grpo_names)  # what trl logs ...
    assert set(SHARED) <= a2c_names, sorted(set(SHARED) - a2c_names)  # ... A2C logs under the same names
    assert set(A2C_OWN) <= a2c_names
    for row in logs["a2c"]:  # the values are A2C's own log's
        metrics = a2c_rows[row["step"]]
        assert metrics["train/reward"] == pytest.approx(row["reward"])
        assert metrics["train/rewards/r2_label_f1/mean"] == pytest.approx(row["reward_r2"])
        assert metrics["train/kl"] == pytest.approx(row["kl"])
        assert metrics["train/value_loss"] == pytest.approx(row["value_loss"])
    for row in logs["grpo"]:
        assert grpo_rows[row["step"]]["train/reward"] == pytest.approx(row["reward"])
    a2c_config, grpo_config = trackio_config(db, "A2C-micro"), trackio_config(db, "GRPO-micro")
    assert a2c_config["kl_coef"] == A2C_SETTINGS.kl_coef and a2c_config["reward_weights.r3"] == 0.5
    assert grpo_config["beta"] == GRPO_SETTINGS.kl_coef  # trl's GRPOConfig: the settings, under trl's names
    assert a2c_config["method"] == "A2C" and grpo_config["method"] == "GRPO" and grpo_config["seed"] == 0


def test_a2c_and_grpo_log_the_same_names_to_tensorboard(tracked):
    out, logs, _ = tracked
    board = out / "runs" / "tensorboard" / PROJECT  # <runs>/tensorboard/<project>/<run name>-<time>
    runs = {p.name.rsplit("-", 2)[0]: p for p in board.iterdir()}
    assert sorted(runs) == ["A2C-micro", "GRPO-micro"]
    a2c_scalars, grpo_scalars = tensorboard_scalars(runs["A2C-micro"]), tensorboard_scalars(runs["GRPO-micro"])
    shared = [name for name in SHARED if name != "train/global_step"]  # TensorBoard's own axis is the step
    assert set(shared) <= set(grpo_scalars), sorted(set(shared) - set(grpo_scalars))
    assert set(shared) <= set(a2c_scalars), sorted(set(shared) - set(a2c_scalars))
    assert [step for step, _ in a2c_scalars["train/reward"]] == [1, 2]
    assert [v for _, v in a2c_scalars["train/reward"]] == pytest.approx([row["reward"] for row in logs["a2c_tb"]])
    assert [step for step, _ in grpo_scalars["train/reward"]] == [1, 2]
    assert not (out / "grpo_tb" / "runs").exists()  # not transformers' default folder under the trainer's


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker(Path(sys.argv[1]))
