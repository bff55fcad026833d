"""Bad configuration: every error names the variable (or argument) it came from, and says what is wrong.

The other bad inputs of issue 33 have their tests beside the code they exercise: the decompression bomb
(test_bddoia, test_clip_reward, test_check_data), the over-long JSON number (test_json_output,
test_structure_reward), check-data's file size, format, frame size and labels-only mode (test_check_data),
a model id neither a folder nor reachable (test_vlm, test_clip_reward), CLI errors in one line (test_cli).
"""
import pytest

from drivekit.core import config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for var in ("DRIVEKIT_PROFILE", "DRIVEKIT_PRESET", *config.ENVIRONMENT.values()):
        monkeypatch.delenv(var, raising=False)


BAD_ENVIRONMENT = [  # (variable, value, what the error says after "$VARIABLE=<value>: ")
    ("DRIVEKIT_PROFILE", "bogus", "unknown profile; choose one of ['paper', 'tiny']"),
    ("DRIVEKIT_PRESET", "bogus", "unknown preset; choose one of ['t4']"),
    ("DRIVEKIT_PRESET", "t4", "is for the 'paper' profile, not 'tiny'"),
    ("DRIVEKIT_VLM", "./no-such-model", "no such file or folder"),
    ("DRIVEKIT_CLIP", "/no/such/checkpoint.pt", "no such file or folder"),
    ("DRIVEKIT_IMAGE_EDGE", "big", "expected a number of pixels"),
    ("DRIVEKIT_IMAGE_EDGE", "-5", "expected a positive number of pixels"),
    ("DRIVEKIT_IMAGE_SPLITTING", "maybe", "expected one of"),
    ("DRIVEKIT_DATA", "~no-such-user-drivekit/data", "not a usable path"),
]


@pytest.mark.parametrize("var,value,problem", BAD_ENVIRONMENT, ids=[f"{v}={x}" for v, x, _ in BAD_ENVIRONMENT])
def test_each_configuration_error_names_its_variable(monkeypatch, var, value, problem):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError) as err:
        config.load()
    assert str(err.value).startswith(f"${var}={value!r}")
    assert problem in str(err.value)


def test_the_profile_error_names_the_variable_or_the_argument(monkeypatch):
    monkeypatch.setenv("DRIVEKIT_PROFILE", "bogus")
    with pytest.raises(ValueError, match=r"^\$DRIVEKIT_PROFILE='bogus': unknown profile; choose one of \['paper', 'tiny'\]$"):
        config.load()
    assert config.load("paper").profile == "paper"  # the argument wins over the environment
    with pytest.raises(ValueError, match=r"^profile='nope': unknown profile"):
        config.load("nope")
    monkeypatch.setenv("DRIVEKIT_PROFILE", " paper ")
    assert config.load().profile == "paper"


def test_arguments_are_named_too(tmp_path):
    with pytest.raises(ValueError, match=r"^image_edge='0': expected a positive number"):
        config.load("tiny", image_edge="0")
    with pytest.raises(ValueError, match=r"^vlm='\./nowhere': no such file or folder"):
        config.load("tiny", vlm="./nowhere")
    with pytest.raises(ValueError, match=r"^preset='t4' is for the 'paper' profile"):
        config.load("tiny", preset="t4")
    with pytest.raises(ValueError, match=r"^config.load\(data_dir=\.\.\.\): no such setting; the settings are \["):
        config.load("tiny", data_dir=tmp_path)
    assert config.load("tiny", data_root=tmp_path).data_root == tmp_path
