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
from drivekit.experiment import settings as settings_module
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


def _write(out, method, seed, right: list[bool], val: list[bool] | None = None, fresh: list[bool] | None = None,
           **summary):
    """A finished run: test answers right on ``right``, validation answers right on ``val`` and fresh test answers
    right on ``fresh`` (default: the same)."""
    folder = out / method / f"seed{seed}"
    folder.mkdir(parents=True)
    val = right if val is None else val
    fresh = right if fresh is None else fresh
    for name, marks in (("predictions.jsonl", right), ("val_predictions.jsonl", val),
                        ("fresh_predictions.jsonl", fresh)):
        rows = [_row(f"c{i}.jpg", r) for i, r in enumerate(marks)]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    share, val_share, fresh_share = sum(right) / len(right), sum(val) / len(val), sum(fresh) / len(fresh)
    base = dict(f1_act=share, f1_rsn=share, pair_f1=share, R=share, n_train=8, commit="abc",
                val=dict(f1_act=val_share, f1_rsn=val_share, pair_f1=val_share),
                fresh_test=dict(f1_act=fresh_share, f1_rsn=fresh_share, pair_f1=fresh_share, R=fresh_share))
    (folder / "summary.json").write_text(json.dumps({**base, **summary}))
    if method in experiment.METHODS:
        (folder / "log.csv").write_text("step,reward,skipped\n" + "".join(f"{s},{s / 10},False\n" for s in range(1, 6)))


@pytest.fixture
def finished(tmp_path):
    """3 seeds of 20 clips: SFT right on 10, SFT-all on 18, SFT+val on 16, A2C-R2 right on 14 (fixes 5, breaks 1)
    each seed; on the fresh test split A2C-R2 fixes 3 and breaks 2."""
    sft = [True] * 10 + [False] * 10
    rl = [True] * 9 + [False] + [True] * 5 + [False] * 5
    fresh = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    for seed in (0, 1, 2):
        _write(tmp_path, "SFT", seed, sft)
        _write(tmp_path, "SFT-all", seed, [True] * 18 + [False] * 2)
        _write(tmp_path, "SFT+val", seed, [True] * 16 + [False] * 4)
        _write(tmp_path, "A2C-R2", seed, rl, fresh=fresh, labels_used="pool", steps=5, samples_per_step=8,
               seconds_per_step=0.5)
    return tmp_path, experiment.ExperimentSettings(seeds=(0, 1, 2), fraction=1 / 32, methods=("A2C-R2",))


def test_summarize_pairs_each_seed_with_its_sft_and_tests_each_seed(finished):
    out, exp = finished
    results = experiment.summarize(out, exp)
    assert results["seeds"] == [0, 1, 2] and results["labeled_fraction"] == 1 / 32
    a2c = results["methods"]["A2C-R2"]
    assert a2c["f1_act"] == [0.7] * 3 and a2c["labels_used"] == "pool" and a2c["commits"] == ["abc"]
    p_holm = a2c["paired"][0].pop("p_holm")  # (checked below)
    assert a2c["paired"][0] == dict(fixed=5, broken=1, both_right=9, both_wrong=5, n=20, p=stats.sign_test(5, 1))
    a2c["paired"][0]["p_holm"] = p_holm
    assert (a2c["fixed"], a2c["broken"]) == (15, 3)  # summed, descriptively: the seeds share the test clips
    assert a2c["p_max"] == pytest.approx(stats.sign_test(5, 1)) and "p_vs_sft" not in a2c
    assert a2c["val"]["f1_act"] == [0.7] * 3 and a2c["val_summary"]["f1_act"]["mean"] == pytest.approx(0.7)
    assert a2c["paired_val"][0]["fixed"] == 5
    assert a2c["beats_sft_every_seed"]
    assert a2c["gap_closed"]["f1_act"] == pytest.approx((0.7 - 0.5) / (0.9 - 0.5))
    assert "p_max" not in results["methods"]["SFT"]
    assert results["methods"]["SFT-all"]["gap_closed"] == {"f1_act": 1.0, "f1_rsn": 1.0}
    assert results["methods"]["SFT"]["summary"]["f1_act"]["sd"] == 0.0
    # SFT+val: what the validation labels are worth as training data, compared with SFT as every method is
    assert results["methods"]["SFT+val"]["paired"][0]["fixed"] == 6
    # the fresh test split: its own numbers, comparisons and gap, beside the toy test's top-level ones
    fresh = a2c["fresh_test"]
    assert fresh["f1_act"] == [0.55] * 3 and fresh["paired"][0]["fixed"] == 3 and fresh["paired"][0]["broken"] == 2
    assert fresh["gap_closed"]["f1_act"] == pytest.approx((0.55 - 0.5) / (0.9 - 0.5))
    assert set(results["splits"]) == {"val", "test", "fresh_test"} and "not independent" in results["pooling"]
    # Holm over every seed's tests of a split: 3 seeds x (SFT-all, SFT+val, A2C-R2) against SFT
    assert results["holm"]["test"]["family"] == results["holm"]["fresh_test"]["family"] == 9
    ps = [c["p"] for m in ("SFT-all", "SFT+val", "A2C-R2") for c in results["methods"][m]["paired"]]
    holm = stats.holm(ps)
    assert [c["p_holm"] for c in a2c["paired"]] == pytest.approx(holm[6:])
    assert a2c["p_holm_max"] == pytest.approx(max(holm[6:])) and a2c["p_holm_max"] >= a2c["p_max"]
    # the answers' form per split: every fixture answer names an action and a reason
    assert a2c["form"]["fresh_test"] == dict(no_action=[0] * 3, no_reason=[0] * 3, unparseable=[0] * 3, n=[20] * 3)


def test_table_and_curves(finished):
    out, exp = finished
    table = experiment.table(experiment.summarize(out, exp), "test")
    assert list(table.index) == ["SFT", "SFT-all", "SFT+val", "A2C-R2"] and table.index.name == "split: test"
    assert table.loc["A2C-R2", "fixed/broken"] == "15/3" and table.loc["A2C-R2", "f1_act"] == "0.700 ± 0.000"
    closed = f"{(0.7 - 0.5) / (0.9 - 0.5):.2f}"
    assert table.loc["A2C-R2", "gap closed (act, rsn)"] == f"{closed}, {closed}"
    assert table.loc["SFT", "p vs SFT (each seed ≤)"] == "" and table.loc["A2C-R2", "val (act+rsn)/2"] == "0.700 ± 0.000"
    assert table.loc["A2C-R2", "no action / no reason"] == "0 / 0 of 60"
    fresh = experiment.table(experiment.summarize(out, exp))  # the fresh test split unless told
    assert fresh.index.name == "split: fresh_test" and fresh.loc["A2C-R2", "fixed/broken"] == "9/6"
    assert float(fresh.loc["A2C-R2", "Holm p (each seed ≤)"]) >= float(fresh.loc["A2C-R2", "p vs SFT (each seed ≤)"])
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
    assert per_class["actions"].shape == (4, N_ACT) and per_class["reasons"].shape == (4, N_RSN)
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
    assert short.references == ("SFT",) and exp.references == ("SFT", "SFT-all", "SFT+val")
    shutil.rmtree(out / "SFT-all")
    results = experiment.summarize(out, short)
    assert list(results["methods"]) == ["SFT", "A2C-R2"] and "gap_closed" not in results["methods"]["A2C-R2"]
    assert results["methods"]["A2C-R2"]["paired"][0]["fixed"] == 5
    shown = experiment.table(results, "test").loc["A2C-R2"]
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
    assert list(label.terms) == ["r2", "no_action", "no_reason"] and label.weights["no_action"] == 0  # monitors
    right = target_text([1, 0, 0, 0], [1] + [0] * 20)
    scores = label([right, "garbage"], actions=[[1, 0, 0, 0]] * 2, reasons=[[1] + [0] * 20] * 2)
    assert scores[0] == 1.0 and scores[1] == 0.0
    for family in ("clip", "clip_gated", "clip_gated+vote"):
        with pytest.raises(ValueError, match="needs a CLIP"):
            experiment.rl_reward(family)
    vote = experiment.rl_reward("vote")
    assert list(vote.terms)[0] == "r2" and vote([right, right], file_name=["a", "a"]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="family"):
        experiment.rl_reward("both")


class _Clip:
    """A stand-in R1: 0.9 for a text that names no reason, 0.5 otherwise (the exploit R1 had)."""

    __name__ = "r1_clip"

    def __call__(self, completions, file_name=None, **_):
        return [0.9 if "Reason" not in c else 0.5 for c in completions]


def test_guarded_rewards_cannot_be_raised_by_breaking_the_form():
    right = target_text([1, 0, 0, 0], [1] + [0] * 20)
    other = target_text([0, 1, 0, 0], [0, 0, 0, 1] + [0] * 17)
    dropped = "Action: Move forward"
    before = experiment.rl_reward("clip", _Clip()).evaluate([right, dropped], file_name=["a", "a"])
    assert before.total[1] > before.total[0]  # R1 alone: dropping the reason pays
    gated = experiment.rl_reward("clip_gated", _Clip()).evaluate([right, dropped], file_name=["a", "a"])
    assert list(gated.total) == [0.5, -1.0] and list(gated.components["no_reason"]) == [0.0, 1.0]
    vote = experiment.rl_reward("vote_confident")
    clips = ["a"] * 4 + ["b"] * 4
    result = vote.evaluate([right, right, right, dropped, right, right, other, other], file_name=clips)
    # clip a: 3 of 4 agree (the broken answer scores the vote's minimum); clip b: 2 against 2, no signal
    assert list(result.total[:4]) == [1.0, 1.0, 1.0, 0.0] and list(result.abstained) == [False] * 4 + [True] * 4
    both = experiment.rl_reward("clip_gated+vote", _Clip()).evaluate(
        [right, right, right, dropped, right, right, other, other], file_name=clips)
    assert list(both.total) == pytest.approx([1.5, 1.5, 1.5, -1.0, 0.5, 0.5, 0.5, 0.5])  # R1 speaks where the vote is silent
    assert not both.abstained.any()


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
                   epochs=experiment.sft_epochs(cfg, exp, method), labels=settings_module.SFT_LABELS[method])
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
    for method in ("A2C-SC", "A2C-SC3", "A2C-R1G+SC3"):
        a2c = experiment.rl_settings(cfg, exp, method, 0)
        assert a2c.samples_per_clip == 4 and a2c.reward_mode == "terminal" and a2c.batch_size == 8
    assert experiment.rl_settings(cfg, exp, "A2C-R1G", 0).samples_per_clip == 1
    assert experiment.rl_settings(cfg, exp, "GRPO-SC", 0).num_generations == 4
    assert experiment.rl_settings(cfg, exp, "ST", 1).seed == 1 and experiment.budget(exp) == 320 * 8


def test_guarded_candidates_have_settings_of_their_own_with_a_kl_term():
    """The label-free candidates never take the settings chosen on validation for the label-F1 reward; they
    have a KL term, and what the selection set chose for each."""
    cfg = config.load("tiny")
    exp = experiment.ExperimentSettings(a2c={**experiment.A2C_SETTINGS, "lr": 3e-4, "kl_coef": 0.0})
    assert experiment.rl_settings(cfg, exp, "A2C-R1", 0).kl_coef == 0.0  # the "before" keeps issue 25's
    for method in ("A2C-R1G", "GRPO-R1G", "A2C-SC3", "GRPO-R1G+SC3"):
        s = experiment.rl_settings(cfg, exp, method, 0)
        assert s.kl_coef == experiment.LABEL_FREE_SETTINGS["kl_coef"] > 0 and s.temperature == 0.7
    chosen = exp.replace(label_free_chosen={"A2C-R1G": dict(lr=3e-4, kl_coef=0.2)})
    assert (experiment.rl_settings(cfg, chosen, "A2C-R1G", 0).kl_coef, experiment.rl_settings(cfg, chosen, "A2C-R1G", 0).lr) == (0.2, 3e-4)
    assert experiment.rl_settings(cfg, chosen, "GRPO-R1G", 0).kl_coef == 0.1
    assert all(experiment.LABELS_USED[experiment.METHODS[m][1]] == "none" for m in ("A2C-R1G", "GRPO-SC3", "A2C-R1G+SC3"))


def test_majority_accuracy_is_read_against_the_pool_after_training():
    reward = experiment.rl_reward("vote")
    right, wrong = target_text([0, 1, 0, 0], [0, 1] + [0] * 19), target_text([1, 0, 0, 0], [1] + [0] * 20)
    reward([right, right, wrong, wrong, wrong], file_name=["a", "a", "b", "b", "a"])
    truth = {"a": ([0, 1, 0, 0], [0, 1] + [0] * 19), "b": ([0, 1, 0, 0], [0, 1] + [0] * 19)}
    found = experiment.majority_accuracy(reward, truth)
    assert (found["right"], found["votes"], found["silent"]) == (0.5, 2, 0)
    assert found["per_step"] == dict(right=[1], votes=[2], silent=[0])
    assert found["windows"][0]["share"] == 0.5 and found["windows"][0]["low"] < 0.5 < found["windows"][0]["high"]


def test_the_majority_per_step_has_wilson_intervals_and_a_trend_test():
    """A confident vote (gated) inside the reward is found; 60 steps, the majority wrong early and right late:
    the windows show it, the trend test finds it, silent clips are counted and not scored."""
    reward = experiment.rl_reward("vote_confident")
    right, wrong = target_text([0, 1, 0, 0], [0, 1] + [0] * 19), target_text([1, 0, 0, 0], [1] + [0] * 20)
    for step in range(60):
        answer = wrong if step < 30 else right
        reward([answer] * 4 + [right, right, wrong, wrong], file_name=["a"] * 4 + ["b"] * 4)  # b: a 2-2 tie
    truth = {"a": ([0, 1, 0, 0], [0, 1] + [0] * 19), "b": ([0, 1, 0, 0], [0, 1] + [0] * 19)}
    found = experiment.majority_accuracy(reward, truth, window=20)
    assert found["votes"] == 60 and found["silent"] == 60 and found["right"] == 0.5
    shares = [w["share"] for w in found["windows"]]
    assert shares == [0.0, 0.5, 1.0] and [w["votes"] for w in found["windows"]] == [20] * 3
    low, high = stats.wilson(10, 20)
    assert (found["windows"][1]["low"], found["windows"][1]["high"]) == (low, high)
    assert found["trend"]["z"] > 0 and found["trend"]["p"] < 1e-6


def test_exported_answers_recompute_the_paired_counts(finished, tmp_path):
    out, exp = finished
    path = experiment.export_predictions(out, exp, tmp_path / "answers.jsonl.gz")
    results = experiment.summarize(out, exp)
    again = experiment.paired_from_predictions(path)
    unadjusted = [{k: v for k, v in c.items() if k != "p_holm"} for c in results["methods"]["A2C-R2"]["paired"]]
    assert again["A2C-R2"] == unadjusted
    assert experiment.paired_from_predictions(path, "val")["A2C-R2"][0]["fixed"] == 5
    assert path.stat().st_size < 8000
    fresh = [{k: v for k, v in c.items() if k != "p_holm"} for c in results["methods"]["A2C-R2"]["fresh_test"]["paired"]]
    assert experiment.paired_from_predictions(path, "fresh_test")["A2C-R2"] == fresh
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


def test_the_committed_results_from_before_issue_34_still_read():
    """Notebooks 04 and 06 read benchmarks/results/rl_vs_sft.json: until a new run replaces it, the readers
    take its old keys (the toy test split only, no Holm, no form counts)."""
    results = experiment.load_results(config.HOME / "benchmarks" / "results" / "rl_vs_sft.json")
    shown = experiment.table(results)
    assert shown.index.name == "split: test" and "SFT" in shown.index and "no action / no reason" not in shown
    assert not experiment.curves(results).empty and experiment.curves(results, key="no_reason").empty
    per_class, mean, _ = experiment.f1_tables(results)
    assert list(mean.index) == list(results["methods"])
    assert not experiment.tuning_table(results["tuning"]).empty
    exp = experiment.tuned(experiment.ExperimentSettings(), results["tuning"])
    chosen = results["tuning"]["algorithms"]["a2c"]["changes"]
    assert exp.a2c["lr"] == chosen["lr"] and exp.chosen["a2c.lr"].startswith("chosen on validation by tune")
    assert exp.chosen["steps"].startswith("fixed before any run") and "toy test split" in exp.chosen["steps"]


def test_every_setting_says_how_it_was_chosen_and_the_choices_record_theirs():
    exp = experiment.ExperimentSettings()
    assert all(how.startswith("fixed before any run: ") for how in exp.chosen.values())
    assert {"steps", "lr_schedule", "temperature", "val_size", "fresh_test", "selection_size"} <= set(exp.chosen)
    free = {"seed": 0, "n_selection": 63, "methods": {"A2C-R1G": {"chosen": "lr3e-04-kl0.2",
                                                                  "changes": {"lr": 3e-4, "kl_coef": 0.2}}}}
    chosen = experiment.tuned(exp, None, free)
    assert chosen.label_free_chosen == {"A2C-R1G": {"lr": 3e-4, "kl_coef": 0.2}}
    assert chosen.chosen["label_free.A2C-R1G.kl_coef"] == (
        "chosen on the label-free selection set (seed 0, 63 clips: lr3e-04-kl0.2)")
    assert chosen.a2c == exp.a2c and "a2c.lr" not in chosen.chosen  # nothing else changed
    assert experiment.ExperimentSettings(**json.loads(json.dumps(asdict(chosen)))) == chosen  # a results file's recipe


def test_the_label_free_choice_uses_the_selection_set_only(tmp_path, monkeypatch):
    """The guarded candidates' grid, each run answering the selection set only (no test split), the best by
    its score there, the first of equals in grid order (the run that moves least)."""
    calls = []

    def fake_task(cfg, exp, method, seed, folder, out, test=True, changes=None, progress=False, report_to=None,
                  selection=False):
        calls.append((method, folder.name, test, selection))
        if method in experiment.REFERENCES:
            return _stand_in([])(cfg, exp, method, seed, folder, out)
        good = 0.5 + 0.1 * (changes["lr"] == 3e-4) * (method == "A2C-R1G")  # GRPO-SC3: every run equal
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "val_predictions.jsonl").write_text("")
        summary = dict(val=dict(f1_act=good, f1_rsn=good, pair_f1=good, n=exp.selection_size), changes=changes,
                       settings=asdict(experiment.rl_settings(cfg, exp, method, seed, **changes)),
                       seconds_per_step=0.5, sft_epochs=experiment.sft_epochs(cfg, exp), draw=seed,
                       fraction=exp.fraction)
        write_json(folder / "summary.json", summary)
        return summary

    monkeypatch.setattr(runner, "_task", fake_task)
    cfg = config.load("tiny")
    exp = experiment.ExperimentSettings(seeds=(0,), sft_all=False)
    result = experiment.tune_label_free(cfg, exp, 0, tmp_path, ["A2C-R1G", "GRPO-SC3"], echo=lambda *a: None)
    runs = [c for c in calls if c[0] not in experiment.REFERENCES]
    assert len(runs) == 2 * 4 and all(test is False and selection is True for _, _, test, selection in runs)
    assert result["methods"]["A2C-R1G"]["chosen"] == "lr3e-04-kl0.2"  # the stronger KL of the two equals
    assert result["methods"]["GRPO-SC3"]["chosen"] == "lr1e-04-kl0.2"  # all equal: the first in grid order
    assert result["n_selection"] == 63 and json.loads((tmp_path / "tuning_label_free.json").read_text()) == result
    assert len(experiment.tuning_table(result)) == 8
    chosen = experiment.tuned(exp, None, result)
    assert experiment.rl_settings(cfg, chosen, "A2C-R1G", 0).lr == 3e-4
    assert experiment.rl_settings(cfg, chosen, "GRPO-SC3", 0).kl_coef == 0.2


def test_the_selection_set_is_the_first_validation_clips_and_sft_val_makes_sfts_clip_passes(tmp_path):
    from drivekit.data import synthetic

    root = synthetic.generate(tmp_path / "data", n_clips=400, n_frames=1, size=(32, 32), seed=2, workers=1,
                              progress=False)
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache")
    exp = experiment.ExperimentSettings(fraction=1 / 8, val_size=16, selection_size=5)
    for seed in (0, 1):
        data = toy_split.toy_data(cfg, 16, fraction=1 / 8, draw=seed)
        selection = {s.name for s in experiment.selection_clips(cfg, exp, seed).samples}
        assert len(selection) == 5 and selection <= {s.name for s in data.val.samples}
        assert not selection & ({s.name for s in data.pool.samples} | {s.name for s in data.train.samples})
    with pytest.raises(ValueError, match="selection_size"):
        experiment.ExperimentSettings(val_size=16, selection_size=17)
    # SFT+val makes as many clip passes over the labelled subset and the validation clips as SFT over the subset
    labelled = len(toy_split.toy_data(cfg, 16, fraction=1 / 8, draw=0).train)
    assert experiment.sft_epochs(cfg, exp, "SFT+val") * (labelled + 16) == pytest.approx(
        experiment.sft_epochs(cfg, exp) * labelled)
    assert experiment.sft_epochs(cfg, exp.replace(sft_val_epochs=3.0), "SFT+val") == 3.0


def test_the_judges_two_directions_of_error_on_validation():
    """R1 prefers a wrong answer on c1 (of the clips SFT answers right), drops the reason happily on c2, and
    prefers the truth to SFT's wrong answer on c6 but not on c7."""
    right_text = target_text([1, 0, 0, 0], [1] + [0] * (N_RSN - 1))
    other = ([0, 1, 0, 0], [0, 1] + [0] * (N_RSN - 2))  # the answer _row writes when wrong
    third = ([0, 0, 1, 0], [0] * 9 + [1] + [0] * (N_RSN - 10))

    def judge(completions, file_name=None, **_):
        scores = []
        for text, clip in zip(completions, file_name):
            if clip == "c1.jpg":
                scores.append(0.9 if text == target_text(*other) else 0.5)
            elif clip == "c2.jpg":
                scores.append(0.9 if "Reason" not in text else 0.5)
            elif clip == "c7.jpg":
                scores.append(0.1 if text == right_text else 0.5)
            else:
                scores.append(0.8 if text == right_text else 0.5)
        return scores

    rows = [_row(f"c{i}.jpg", i < 6) for i in range(8)]  # SFT right on c0..c5, wrong on c6, c7
    answers = [([1, 0, 0, 0], [1] + [0] * (N_RSN - 1)), other, third]
    found = experiment.judge_errors(rows, answers, judge)
    assert (found["n_right"], found["n_wrong"], found["n_answers"]) == (6, 2, 3)
    # 6 right clips x 2 wrong answers: c1 prefers one (1) and ties the other (0.5); c2's two tie (0.5 each)
    assert found["wrong_over_right"] == pytest.approx((1 + 0.5 + 0.5 + 0.5) / 12)
    assert found["any_wrong_over_right"] == pytest.approx(1 / 6)
    assert found["no_reason_over_right"] == pytest.approx((1 + 0.5) / 6)  # c2 prefers it, c1 ties
    assert found["right_over_wrong"] == 0.5  # c6: the truth above SFT's answer; c7: below
    none = experiment.judge_errors(rows[6:], answers, judge)
    assert none["n_right"] == 0 and none["wrong_over_right"] is None and none["right_over_wrong"] == 0.5
