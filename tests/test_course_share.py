"""The course's labelled share (issue 35): notebook 02 trains SFT on 1/32 of the toy train part on synthetic clips,
for the clip passes the profile's epochs make on the proposal's 1/8, and the later notebooks find that adapter:
``sft_stage.ensure`` reuses a finished run of those settings and share, and retrains one of another share."""
import pytest

from drivekit.core import config
from drivekit.data.toy_split import TRAIN_FRACTION, load_or_make_toy_split
from drivekit.experiment import ExperimentSettings
from drivekit.experiment.settings import sft_epochs
from drivekit.stages import runs, sft_stage

from test_run_files import fake_sft_run


def test_the_course_labels_the_experiments_share_on_synthetic_clips_and_the_proposals_on_real_data():
    tiny = config.load("tiny")
    assert tiny.synthetic and sft_stage.course_fraction(tiny) == ExperimentSettings().fraction == 1 / 32
    assert sft_stage.course_fraction(config.load("tiny", synthetic=False)) == TRAIN_FRACTION


def test_the_course_trains_as_many_clip_passes_as_the_experiments_sft():
    cfg = config.load("tiny")
    settings = sft_stage.course_settings(cfg)
    assert settings.epochs == sft_epochs(cfg, ExperimentSettings()) == 48
    profile = config.profile_defaults(sft_stage.SFTSettings, cfg)
    assert settings.replace(epochs=profile.epochs) == profile  # only the epochs differ
    assert sft_stage.course_settings(cfg, lr=0.5).lr == 0.5


finished_run = fake_sft_run  # an SFT run directory with every file and its summary


@pytest.mark.parametrize("recorded, reused", [(1 / 32, True), (None, True), (1 / 8, False)])
def test_ensure_reuses_the_courses_run_and_retrains_one_of_another_share(tmp_path, monkeypatch, capsys, recorded, reused):
    cfg = config.load("tiny", runs_dir=tmp_path)
    settings = sft_stage.course_settings(cfg)
    extra = {} if recorded is None else dict(fraction=recorded)
    result = finished_run(tmp_path / "sft", settings, **extra)
    calls = []
    monkeypatch.setattr(sft_stage, "run", lambda cfg, **kw: calls.append(kw) or result)
    assert sft_stage.ensure(cfg) == result
    if reused:
        assert calls == []
    else:
        assert calls == [dict(settings=settings, resume=False)]  # afresh: its checkpoints are of the other share
        assert "written with fraction=0.125, asked for 0.03125" in capsys.readouterr().out


def test_a_run_of_the_proposals_settings_is_not_the_courses(tmp_path, monkeypatch):
    """notebook 02's run before issue 35 (12 epochs at 1/8, no share recorded) is retrained, not read as the 1/32 SFT."""
    cfg = config.load("tiny", runs_dir=tmp_path)
    old = config.profile_defaults(sft_stage.SFTSettings, cfg)
    finished_run(tmp_path / "sft", old)
    problem = sft_stage.artifacts(cfg).unfinished(sft_stage.course_settings(cfg))
    assert isinstance(problem, runs.OtherSettings) and "epochs=12" in str(problem)
    calls = []
    monkeypatch.setattr(sft_stage, "run", lambda cfg, **kw: calls.append(kw))
    sft_stage.ensure(cfg)
    assert calls == [dict(settings=sft_stage.course_settings(cfg), resume=False)]


def test_course_data_is_notebook_02s_split():
    cfg = config.load("tiny")
    data = sft_stage.course_data(cfg)
    names = {part: {s.name for s in getattr(data, part).samples} for part in ("train", "val", "test", "pool")}
    assert len(names["val"]) == sft_stage.course_settings(cfg).val_size
    assert not (names["train"] & names["pool"]) and not (names["val"] & names["pool"]) and not (names["test"] & names["pool"])
    split = load_or_make_toy_split(cfg, fraction=sft_stage.course_fraction(cfg))
    assert names["train"] == set(split.train) and names["test"] == set(split.test)
    assert names["train"] | names["val"] | names["pool"] == set(split.train_full)  # the train part, all of it
