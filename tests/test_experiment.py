"""The RL-vs-SFT harness's bookkeeping: per-seed runs to spread, paired counts, sign test, gap closed.

The training it drives is tested where it lives (SFT: test_vlm / test_sft_resume, A2C: test_rl,
GRPO: test_grpo); here the run folders are written by hand, with known answers.
"""
import json
import re
import shutil
from dataclasses import FrozenInstanceError, asdict, replace

import pandas as pd
import pytest

from drivekit.models import clip
from drivekit.core import config
from drivekit.core.files import Unfinished, write_json
from drivekit.core.settings import Settings
from drivekit import experiment
from drivekit.experiment import folders, runner
from drivekit.experiment import results as results_module
from drivekit.algorithms.sft import SFTSettings
from drivekit.evaluation import metrics, plots, stats
from drivekit.data import toy_split
from drivekit.algorithms.a2c import A2CSettings
from drivekit.algorithms.grpo import GRPOSettings
from drivekit.text.formats import target_text

N_ACT, N_RSN = 4, 21


def _row(name: str, right: bool) -> dict:
    truth_a, truth_r = [1, 0, 0, 0], [1] + [0] * (N_RSN - 1)
    pred_a, pred_r = (truth_a, truth_r) if right else ([0, 1, 0, 0], [0, 1] + [0] * (N_RSN - 2))
    return dict(file_name=name, text=target_text(pred_a, pred_r), actions_pred=pred_a, reasons_pred=pred_r,
                actions_true=truth_a, reasons_true=truth_r, ok=True, problems=[])


def _write(out, method, seed, right: list[bool], val: list[bool] | None = None, **summary):
    """A finished run: test answers right on ``right``, validation answers right on ``val`` (default: the same)."""
    folder = out / method / f"seed{seed}"
    folder.mkdir(parents=True)
    val = right if val is None else val
    for name, marks in (("predictions.jsonl", right), ("val_predictions.jsonl", val)):
        rows = [_row(f"c{i}.jpg", r) for i, r in enumerate(marks)]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    share, val_share = sum(right) / len(right), sum(val) / len(val)
    base = dict(f1_act=share, f1_rsn=share, pair_f1=share, R=share, n_train=8, commit="abc",
                val=dict(f1_act=val_share, f1_rsn=val_share, pair_f1=val_share))
    (folder / "summary.json").write_text(json.dumps({**base, **summary}))
    if method in experiment.METHODS:
        (folder / "log.csv").write_text("step,reward,skipped\n" + "".join(f"{s},{s / 10},False\n" for s in range(1, 6)))


@pytest.fixture
def finished(tmp_path):
    """3 seeds of 20 clips: SFT right on 10, SFT-all on 18, A2C-R2 right on 14 (fixes 5, breaks 1) each seed."""
    sft = [True] * 10 + [False] * 10
    rl = [True] * 9 + [False] + [True] * 5 + [False] * 5
    for seed in (0, 1, 2):
        _write(tmp_path, "SFT", seed, sft)
        _write(tmp_path, "SFT-all", seed, [True] * 18 + [False] * 2)
        _write(tmp_path, "A2C-R2", seed, rl, labels_used="pool", steps=5, samples_per_step=8, seconds_per_step=0.5)
    return tmp_path, experiment.ExperimentSettings(seeds=(0, 1, 2), fraction=1 / 32, methods=("A2C-R2",))


def test_summarize_pairs_each_seed_with_its_sft_and_tests_each_seed(finished):
    out, exp = finished
    results = experiment.summarize(out, exp)
    assert results["seeds"] == [0, 1, 2] and results["labeled_fraction"] == 1 / 32
    a2c = results["methods"]["A2C-R2"]
    assert a2c["f1_act"] == [0.7] * 3 and a2c["labels_used"] == "pool" and a2c["commits"] == ["abc"]
    assert a2c["paired"][0] == dict(fixed=5, broken=1, both_right=9, both_wrong=5, n=20, p=stats.sign_test(5, 1))
    assert (a2c["fixed"], a2c["broken"]) == (15, 3)  # summed, descriptively: the seeds share the test clips
    assert a2c["p_max"] == pytest.approx(stats.sign_test(5, 1)) and "p_vs_sft" not in a2c
    assert a2c["val"]["f1_act"] == [0.7] * 3 and a2c["val_summary"]["f1_act"]["mean"] == pytest.approx(0.7)
    assert a2c["paired_val"][0]["fixed"] == 5
    assert a2c["beats_sft_every_seed"]
    assert a2c["gap_closed"]["f1_act"] == pytest.approx((0.7 - 0.5) / (0.9 - 0.5))
    assert "p_max" not in results["methods"]["SFT"]
    assert results["methods"]["SFT-all"]["gap_closed"] == {"f1_act": 1.0, "f1_rsn": 1.0}
    assert results["methods"]["SFT"]["summary"]["f1_act"]["sd"] == 0.0


def test_table_and_curves(finished):
    out, exp = finished
    table = experiment.table(experiment.summarize(out, exp))
    assert list(table.index) == ["SFT", "SFT-all", "A2C-R2"]
    assert table.loc["A2C-R2", "fixed/broken"] == "15/3" and table.loc["A2C-R2", "f1_act"] == "0.700 ± 0.000"
    closed = f"{(0.7 - 0.5) / (0.9 - 0.5):.2f}"
    assert table.loc["A2C-R2", "gap closed (act, rsn)"] == f"{closed}, {closed}"
    assert table.loc["SFT", "p vs SFT (each seed ≤)"] == "" and table.loc["A2C-R2", "val (act+rsn)/2"] == "0.700 ± 0.000"
    results = experiment.summarize(out, exp)
    assert results["methods"]["A2C-R2"]["reward_curve"][0] == [0.1, 0.2, 0.3, 0.4, 0.5]
    curves = experiment.curves(results, window=2)
    assert list(curves.columns) == ["method", "seed", "step", "reward", "smoothed"] and len(curves) == 15
    assert curves["smoothed"].iloc[1] == pytest.approx((0.1 + 0.2) / 2)
    fig = plots.plot_seed_curves(curves, title="reward")
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "A2C-R2 (3 seeds)"


def test_fig5_over_seeds_averages_each_class_and_shows_the_spread(finished):
    out, exp = finished
    results = experiment.summarize(out, exp)
    forward = metrics.ACTION_KEYS[0]
    # SFT gets 10 of 20 clips right: forward TP 10, FN 10, FP 0; A2C-R2 14 of 20
    assert results["methods"]["SFT"]["per_class_f1"]["actions"][forward] == [pytest.approx(2 / 3)] * 3
    assert results["methods"]["A2C-R2"]["per_class_f1"]["actions"][forward] == [pytest.approx(28 / 34)] * 3
    per_class, mean, sd = experiment.f1_tables(results)
    assert per_class["actions"].shape == (3, N_ACT) and per_class["reasons"].shape == (3, N_RSN)
    assert per_class["actions"].loc["A2C-R2"].xs(forward, level=1).item() == pytest.approx(100 * 28 / 34)
    assert mean.loc["A2C-R2", "F1_act (sample)"] == pytest.approx(70)
    assert sd.loc["A2C-R2", "F1_act (sample)"] == pytest.approx(0, abs=1e-9)
    fig = plots.plot_f1_tables(per_class, mean, sd)
    shown = [t.get_text() for t in fig.axes[-1].texts]
    assert "70.0 ± 0.0" in shown and fig.axes[-1].get_title().endswith("mean ± sd over seeds")


def test_a_missing_or_unscored_run_is_named(finished):
    out, exp = finished
    (out / "A2C-R2" / "seed1" / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="A2C-R2/seed1"):
        experiment.summarize(out, exp)
    sft = out / "SFT" / "seed2" / "summary.json"  # SFT's own summary, before the harness scored the run
    sft.write_text(json.dumps({k: v for k, v in json.loads(sft.read_text()).items() if k not in ("R", "val")}))
    assert not folders.finished(sft.parent) and folders.finished(out / "SFT" / "seed1")
    with pytest.raises(FileNotFoundError, match="SFT/seed2"):
        experiment.summarize(out, experiment.ExperimentSettings(seeds=(1, 2), methods=()))


def test_a_short_recipe_without_sft_all_needs_no_sft_all_run(finished):
    out, exp = finished
    short = experiment.ExperimentSettings(seeds=(0,), methods=("A2C-R2",), sft_all=False)
    assert short.references == ("SFT",) and exp.references == ("SFT", "SFT-all")
    shutil.rmtree(out / "SFT-all")
    results = experiment.summarize(out, short)
    assert list(results["methods"]) == ["SFT", "A2C-R2"] and "gap_closed" not in results["methods"]["A2C-R2"]
    assert results["methods"]["A2C-R2"]["paired"][0]["fixed"] == 5
    shown = experiment.table(results).loc["A2C-R2"]
    assert shown["gap closed (act, rsn)"] == "" and shown["f1_act"] == "0.700"  # one seed: no ± sd
    with pytest.raises(FileNotFoundError, match="SFT-all/seed0"):
        experiment.summarize(out, exp)


def test_a_finished_run_of_another_recipe_is_not_reused(finished):
    out, exp = finished
    cfg = config.load("tiny")
    folder = out / "A2C-R2" / "seed0"
    settings = experiment.rl_settings(cfg, exp, "A2C-R2", 0)
    assert settings.steps == 320 and settings.lr == A2CSettings.tiny().lr and settings.seed == 0
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": asdict(settings)}))
    folders.check_settings(folder, exp, settings)  # the same settings: reused
    older = {k: v for k, v in asdict(settings).items() if k != "lr_schedule"}  # made before the field existed
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": older}))
    folders.check_settings(folder, exp, replace(settings, lr_schedule="constant"))  # its default: what it did
    assert settings.lr_schedule == "linear"  # the experiment decays its lr: that older run is not this one's
    with pytest.raises(ValueError, match=r"lr_schedule 'constant' \(this experiment: 'linear'\)"):
        folders.check_settings(folder, exp, settings)
    renamed = {("gamma" if k == "discount" else k): v for k, v in asdict(settings).items()}  # the older name
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": {**renamed, "gamma": 0.9}}))
    with pytest.raises(ValueError, match=r"discount 0.9 \(this experiment: 1.0\)"):  # read under its new name
        folders.check_settings(folder, exp, settings)
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": renamed}))
    folders.check_settings(folder, exp, settings)
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": asdict(settings)}))
    short = experiment.rl_settings(cfg, experiment.ExperimentSettings(steps=40), "A2C-R2", 0)
    with pytest.raises(ValueError, match=r"A2C-R2/seed0/summary.json holds a finished run with steps 320 \(this experiment: 40\)"):
        folders.check_settings(folder, exp, short)
    sft = out / "SFT" / "seed0"
    sft_summary = json.loads((sft / "summary.json").read_text())
    (sft / "summary.json").write_text(json.dumps({**sft_summary, "fraction": 1 / 16}))
    with pytest.raises(ValueError, match="fraction 0.0625"):
        folders.check_settings(sft, exp, None)
    assert experiment.rl_settings(cfg, exp, "GRPO-R2", 2).num_generations == 4
    # An SFT of another length, or RL from one, is not reused either (the 12-epoch SFT of an older experiment).
    (sft / "summary.json").write_text(json.dumps({**sft_summary, "fraction": 1 / 32, "epochs": 12}))
    with pytest.raises(ValueError, match=r"epochs 12 \(this experiment: 48"):
        folders.check_settings(sft, exp, epochs=experiment.sft_epochs(cfg, exp))
    (folder / "summary.json").write_text(json.dumps({**summary, "settings": asdict(settings), "sft_epochs": 12}))
    with pytest.raises(ValueError, match=r"sft_epochs 12 \(this experiment: 48"):
        folders.check_settings(folder, exp, settings, sft_epochs=48.0)


def test_sft_trains_as_many_clip_passes_as_on_the_proposals_eighth():
    cfg = config.load("tiny")
    profile = config.profile_defaults(SFTSettings, cfg).epochs
    assert experiment.sft_epochs(cfg, experiment.ExperimentSettings(fraction=1 / 8)) == profile == 12
    assert experiment.sft_epochs(cfg, experiment.ExperimentSettings(fraction=1 / 32)) == 4 * profile
    assert experiment.sft_epochs(cfg, experiment.ExperimentSettings(sft_epochs=6)) == 6
    default = experiment.ExperimentSettings()
    assert experiment.sft_epochs(cfg, default, "SFT-all") == default.sft_all_epochs


def test_no_gap_to_close_is_reported_as_none():
    closed = results_module._closed
    assert closed(0.9, 0.9, 0.95) is None and closed(0.5, 0.7, 0.6) == pytest.approx(0.5)


def test_experiment_settings_and_overrides():
    with pytest.raises(ValueError, match="unknown methods"):
        experiment.ExperimentSettings(methods=("PPO",))
    exp = experiment.ExperimentSettings(seeds=[3, 4])
    assert isinstance(exp, Settings) and experiment.ExperimentSettings.PROFILES == {}  # no profile changes a default
    Exp = experiment.ExperimentSettings
    assert Exp.tiny() == Exp.paper() == Exp()
    with pytest.raises(FrozenInstanceError):
        exp.steps = 40
    assert exp.replace(steps=40).steps == 40 and exp.steps == 320 and exp.replace(seeds=[5]).seeds == (5,)
    assert exp.seeds == (3, 4) and exp.a2c == experiment.A2C_SETTINGS and exp.grpo == experiment.GRPO_SETTINGS
    assert exp.a2c is not experiment.A2C_SETTINGS and exp.a2c["temperature"] == exp.grpo["temperature"] == 0.7
    assert config.dataclass_overrides(["lr=2e-4", "discount=0.9", "samples_per_clip=4"], A2CSettings, "--a2c") == dict(
        lr=2e-4, discount=0.9, samples_per_clip=4)
    with pytest.raises(SystemExit, match="--a2c: 'r2=label_f1'"):  # reward settings are not A2C's
        config.dataclass_overrides(["r2=label_f1"], A2CSettings, "--a2c")
    assert config.dataclass_overrides(["critic_detach=True"], A2CSettings, "--a2c") == dict(critic_detach=True)
    assert config.dataclass_overrides(["critic_detach=false"], A2CSettings, "--a2c") == dict(critic_detach=False)
    with pytest.raises(SystemExit):
        config.dataclass_overrides(["lr"], A2CSettings, "--a2c")
    with pytest.raises(SystemExit, match="--grpo: 'group_size=8'"):  # a key the settings do not have
        config.dataclass_overrides(["group_size=8"], GRPOSettings, "--grpo")
    with pytest.raises(SystemExit, match="true or false"):
        config.dataclass_overrides(["critic_detach=no"], A2CSettings, "--a2c")


def test_reward_families():
    label = experiment.rl_reward("label")
    assert list(label.terms) == ["r2"]
    right = target_text([1, 0, 0, 0], [1] + [0] * 20)
    scores = label([right, "garbage"], actions=[[1, 0, 0, 0]] * 2, reasons=[[1] + [0] * 20] * 2)
    assert scores[0] == 1.0 and scores[1] == 0.0
    with pytest.raises(ValueError, match="needs a CLIP"):
        experiment.rl_reward("clip")
    vote = experiment.rl_reward("vote")
    assert list(vote.terms) == ["r2"] and vote([right, right], file_name=["a", "a"]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="family"):
        experiment.rl_reward("both")


def test_the_unseen_clip_trains_on_a_second_dataset_and_is_reused(tmp_path, monkeypatch):
    root = tmp_path / "synthetic"
    root.mkdir()
    (root / "generator.json").write_text(json.dumps(dict(n_clips=40, n_frames=2, size=[32, 32], seed=0)))
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache", seed=5)
    calls = []

    def fake_generate(out, n_clips, n_frames, size, seed, progress=False):
        calls.append(("generate", out, n_clips, n_frames, size, seed))
        out.mkdir(parents=True)
        (out / "test_25k_images_reasons.json").write_text("{}")
        return out

    def fake_build(other, out, progress=False):
        calls.append(("build", other.data_root, other.seed))
        out.mkdir(parents=True)
        (out / clip.WEIGHTS_FILE).write_bytes(b"w")
        return out

    from drivekit.data import synthetic

    monkeypatch.setattr(synthetic, "generate", fake_generate)
    monkeypatch.setattr(clip, "build_clip", fake_build)
    folder = experiment.unseen_clip(cfg)
    other = tmp_path / "cache" / "synthetic-unseen"
    assert folder == tmp_path / "cache" / "tiny-clip-unseen"
    assert calls == [("generate", other, 40, 2, (32, 32), 6), ("build", other, 6)]
    assert experiment.unseen_clip(cfg) == folder and len(calls) == 2  # reused
    with pytest.raises(ValueError, match="synthetic"):
        experiment.unseen_clip(config.load("paper", cache_dir=tmp_path / "other"))


def test_the_command_is_registered():
    from drivekit.__main__ import COMMANDS

    assert COMMANDS["rl-vs-sft"][0] == "drivekit.experiment"
    assert isinstance(experiment.table({"methods": {}}), pd.DataFrame)


def _stand_in(calls: list):
    """A stand-in for one run (``runner._task``) whose validation score is known; ``calls`` gets
    ``(method, folder name, test)`` of each run made."""
    def fake_task(cfg, exp, method, seed, folder, out, test=True, changes=None, progress=False, report_to=None):
        calls.append((method, folder.name, test))
        changes = dict(changes or {})
        if method in experiment.REFERENCES:
            _write(folder.parents[1], method, seed, [True] * 10 + [False] * 10, draw=seed,
                   epochs=experiment.sft_epochs(cfg, exp, method))
            return json.loads((folder / "summary.json").read_text())
        good = 0.5 + (changes["lr"] == 3e-4) * 0.2 + (changes["kl_coef"] > 0) * 0.1  # grid best: lr 3e-4, KL 0.05
        good += 0.05 * (changes.get("loss_type") == "dapo") + 0.05 * (changes.get("reward_mode") == "terminal")
        settings = experiment.rl_settings(cfg, exp, method, seed, **changes)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "val_predictions.jsonl").write_text("")
        summary = dict(val=dict(f1_act=good, f1_rsn=good, pair_f1=good), settings=asdict(settings), changes=changes,
                       seconds_per_step=0.5, sft_epochs=experiment.sft_epochs(cfg, exp), draw=seed,
                       fraction=exp.fraction)
        write_json(folder / "summary.json", summary, indent=1)  # as the harness writes it
        return summary

    return fake_task


def test_tuning_chooses_on_validation_with_the_same_budget_for_both_algorithms(tmp_path, monkeypatch):
    """The grid, then the variants at the grid's best, chosen by the validation score; no run answers
    the test split. Training is replaced by a stand-in whose validation score is known."""
    calls = []
    monkeypatch.setattr(runner, "_task", _stand_in(calls))
    cfg = config.load("tiny")
    exp = experiment.ExperimentSettings(seeds=(0,), sft_all=False)
    result = experiment.tune(cfg, exp, 0, tmp_path, echo=lambda *a: None)
    runs = [c for c in calls if c[0] not in experiment.REFERENCES]
    assert all(test is False for _, _, test in runs)  # tuning never answers the test split
    per_algorithm = {a: [c for c in runs if c[0] == experiment.TUNED_METHOD[a]] for a in ("a2c", "grpo")}
    assert len(per_algorithm["a2c"]) == len(per_algorithm["grpo"]) == 4 + 4  # the same budget
    for a, variant in (("a2c", "terminal"), ("grpo", "dapo")):
        e = result["algorithms"][a]
        assert e["grid_best"] == "lr3e-04-kl0.05" and e["chosen"] == f"lr3e-04-kl0.05+{variant}"
        assert e["changes"]["lr"] == 3e-4 and e["changes"]["kl_coef"] == 0.05 and len(e["runs"]) == 8
    assert json.loads((tmp_path / "tuning.json").read_text()) == result
    chosen = experiment.tuned(exp, result)
    assert chosen.a2c["reward_mode"] == "terminal" and chosen.grpo["loss_type"] == "dapo" and chosen.a2c["lr"] == 3e-4
    assert chosen.a2c["temperature"] == 0.7  # the experiment's own settings stay
    table = experiment.tuning_table(result)
    assert len(table) == 16 and (table["chosen"] == "✓").sum() == 2
    calls.clear()
    experiment.tune(cfg, exp, 0, tmp_path, echo=lambda *a: None)
    assert calls == []  # finished runs are reused


def test_a_truncated_summary_is_unfinished_named_and_redone(tmp_path, monkeypatch):
    """A run killed while writing its summary (the first 22 bytes of a real one) is not finished: the
    reuse check names the file and why, says so, and the run alone is made again."""
    calls, said = [], []
    monkeypatch.setattr(runner, "_task", _stand_in(calls))
    cfg = config.load("tiny")
    exp = experiment.ExperimentSettings(seeds=(0,), sft_all=False)
    experiment.tune(cfg, exp, 0, tmp_path, algorithms=("a2c",), echo=lambda *a: None)
    folder = folders.tuning_dir(tmp_path, "A2C-R2", 0, "lr3e-04-kl0.05")
    summary = folder / "summary.json"
    summary.write_bytes(summary.read_bytes()[:22])
    why = folders.unfinished(folder, test=False)
    assert why.startswith(f"{summary}: unfinished (not JSON: ") and not folders.finished(folder, test=False)
    with pytest.raises(Unfinished, match=re.escape(f"{summary}: unfinished (not JSON: ")):  # not a bare JSONDecodeError
        folders.check_settings(folder, exp)
    task = runner.task(cfg, exp, "A2C-R2", 0, folder, tmp_path, test=False, changes=dict(lr=3e-4, kl_coef=0.05))
    assert folders.pending([task], echo=said.append) == [task] and said == [f"{why}: redoing A2C-R2 seed 0"]
    calls.clear()
    said.clear()
    experiment.tune(cfg, exp, 0, tmp_path, algorithms=("a2c",), echo=said.append)
    assert calls == [("A2C-R2", "lr3e-04-kl0.05", False)]  # that run alone is redone, the others reused
    assert said[0] == f"{why}: redoing A2C-R2 seed 0" and folders.finished(folder, test=False)


def test_summarize_names_a_truncated_summary_and_results_file(finished, tmp_path):
    out, exp = finished
    summary = out / "A2C-R2" / "seed1" / "summary.json"
    summary.write_bytes(summary.read_bytes()[:22])
    with pytest.raises(FileNotFoundError, match=re.escape(f"runs not finished: {summary}: unfinished (not JSON: ")):
        experiment.summarize(out, exp)
    summary.write_text(json.dumps({"val": {}}))  # whole, but never scored on the test split
    with pytest.raises(FileNotFoundError, match=re.escape(f"{summary}: unfinished (no R)")):
        experiment.summarize(out, exp)
    results = tmp_path / "rl_vs_sft.json"
    results.write_bytes((config.HOME / "benchmarks" / "results" / "rl_vs_sft.json").read_bytes()[:22])
    with pytest.raises(Unfinished, match=re.escape(f"{results}: unfinished (not JSON: ")):
        experiment.load_results(results)


def test_label_free_training_gets_no_label():
    from drivekit.algorithms.grpo import dataset

    items = [dict(name="a.jpg", images=["frame"], actions=[0, 1, 0, 0], reasons=[1] + [0] * 20)]
    free = experiment.unlabelled(items)
    assert free == [dict(name="a.jpg", images=["frame"])] and "actions" in items[0]
    streamed = experiment.unlabelled(toy_split.StreamedItems(items))  # items read from disk stay lazy
    assert not isinstance(streamed, list) and len(streamed) == 1
    assert streamed[0] == free[0] and streamed[0:1] == free
    assert experiment.LABELS_USED[experiment.METHODS["GRPO-SC"][1]] == "none"
    assert {experiment.METHODS[m][1] for m in ("A2C-R1", "GRPO-SC", "A2C-SC", "ST")} == {"clip", "vote", "pseudo"}
    pytest.importorskip("datasets")
    from PIL import Image

    frame = Image.new("RGB", (8, 8))
    rows = dataset([dict(name="a.jpg", images=[frame])])
    assert set(rows.column_names) == {"prompt", "images", "file_name"}
    assert set(dataset([dict(items[0], images=[frame])]).column_names) >= {"actions", "reasons"}


def test_self_consistency_runs_with_a_group_of_whole_answers():
    cfg = config.load("tiny")
    exp = experiment.ExperimentSettings()
    a2c = experiment.rl_settings(cfg, exp, "A2C-SC", 0)
    assert a2c.samples_per_clip == 4 and a2c.reward_mode == "terminal" and a2c.batch_size == 8
    assert experiment.rl_settings(cfg, exp, "GRPO-SC", 0).num_generations == 4
    assert experiment.rl_settings(cfg, exp, "ST", 1).seed == 1 and experiment.budget(exp) == 320 * 8


def test_majority_accuracy_is_read_against_the_pool_after_training():
    reward = experiment.rl_reward("vote")
    right, wrong = target_text([0, 1, 0, 0], [0, 1] + [0] * 19), target_text([1, 0, 0, 0], [1] + [0] * 20)
    reward([right, right, wrong, wrong, wrong], file_name=["a", "a", "b", "b", "a"])
    truth = {"a": ([0, 1, 0, 0], [0, 1] + [0] * 19), "b": ([0, 1, 0, 0], [0, 1] + [0] * 19)}
    found = experiment.majority_accuracy(reward, truth)
    assert found == dict(right=0.5, first=0.5, last=0.5, votes=2)


def test_exported_answers_recompute_the_paired_counts(finished, tmp_path):
    out, exp = finished
    path = experiment.export_predictions(out, exp, tmp_path / "answers.jsonl.gz")
    results = experiment.summarize(out, exp)
    again = experiment.paired_from_predictions(path)
    assert again["A2C-R2"] == results["methods"]["A2C-R2"]["paired"]
    assert experiment.paired_from_predictions(path, "val")["A2C-R2"][0]["fixed"] == 5
    assert path.stat().st_size < 5000
    wrapped = tmp_path / "rl_vs_sft.json"
    wrapped.write_text(json.dumps({"command": "python x", "commit": "abc", "results": results}))
    assert experiment.load_results(wrapped) == {**json.loads(json.dumps(results)), "command": "python x", "commit": "abc"}
    flat = tmp_path / "old.json"  # a file from before the provenance wrapper
    flat.write_text(json.dumps({**results, "command": "python y"}))
    assert experiment.load_results(flat)["command"] == "python y"


def test_label_free_methods_are_compared_with_self_training_clip_by_clip(finished):
    out, exp = finished
    st = [True] * 12 + [False] * 8  # self-training: right on 12 of the 20 clips
    sc = [True] * 10 + [False] * 2 + [True] * 4 + [False] * 4  # right on 14: fixes 4 of ST's, breaks 2
    for seed in exp.seeds:
        _write(out, "ST", seed, st, labels_used="none", steps=5, samples_per_step=8, seconds_per_step=0.4)
        _write(out, "GRPO-SC", seed, sc, labels_used="none", steps=5, samples_per_step=8, seconds_per_step=0.6)
    exp = exp.replace(methods=("A2C-R2", "GRPO-SC", "ST"))
    results = experiment.summarize(out, exp)
    vs = results["methods"]["GRPO-SC"]["vs_self_training"]
    assert [(c["fixed"], c["broken"]) for c in vs] == [(4, 2)] * 3
    assert vs[0]["p"] == pytest.approx(stats.sign_test(4, 2))
    assert "vs_self_training" not in results["methods"]["ST"]  # the baseline itself
    assert "vs_self_training" not in results["methods"]["A2C-R2"]  # label-grounded: compared with SFT only
    row = experiment.table(results).loc["GRPO-SC"]
    assert row["vs ST: fixed/broken (p ≤)"].startswith("12/6 ")


class _Judge:
    """A stand-in R1 that prefers the truth's text on the clips named in ``knows``."""

    def __init__(self, knows):
        self.knows = set(knows)

    def __call__(self, completions, file_name=None, **_):
        truth = target_text([1, 0, 0, 0], [1] + [0] * (N_RSN - 1))
        return [(1.0 if t == truth else 0.5) if n in self.knows else (0.0 if t == truth else 0.5)
                for t, n in zip(completions, file_name)]


def test_the_judge_is_scored_on_the_clips_sft_got_wrong():
    rows = [_row(f"c{i}.jpg", i < 6) for i in range(10)]  # SFT wrong on c6..c9
    result = experiment.judge_accuracy(rows, _Judge({"c6.jpg", "c7.jpg", "c8.jpg", "c0.jpg"}))
    assert result == dict(right=0.75, n=4)  # c0 is right for SFT: not counted
    assert experiment.judge_accuracy(rows[:6], _Judge(())) == dict(right=None, n=0)
