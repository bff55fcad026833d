"""``python -m drivekit``: an error is one line on stderr (the traceback with ``--debug``), no stray notices."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drivekit import __main__ as cli
from drivekit.data import check_data
from drivekit.data.bddoia import BDDOIAFormatError

REPO = Path(__file__).resolve().parents[1]
KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward"


def drivekit(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIVEKIT_")}
    return subprocess.run([sys.executable, "-m", "drivekit", *args], cwd=REPO, env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def test_a_configuration_error_is_one_line_and_the_traceback_needs_debug():
    done = drivekit("check-data", DRIVEKIT_PROFILE="bogus")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "drivekit check-data: $DRIVEKIT_PROFILE='bogus': unknown profile; choose one of ['paper', 'tiny'] "
        "(run with --debug for the traceback)"]
    done = drivekit("--debug", "check-data", DRIVEKIT_PROFILE="bogus")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1] == ("ValueError: $DRIVEKIT_PROFILE='bogus': unknown profile; "
                                            "choose one of ['paper', 'tiny']")


def test_a_broken_copy_is_a_report_not_a_traceback(tmp_path):
    done = drivekit("check-data", str(tmp_path / "nonexistent"))
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("NOT USABLE: ")


def test_usage_errors_exit_2():
    done = drivekit("no-such-command")
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == "drivekit: unknown command 'no-such-command'"
    done = drivekit("check-data", "--no-such-option")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-option" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_prints_no_kernels_notice():
    done = drivekit("--help")
    assert done.returncode == 0 and "commands:" in done.stdout and "--debug" in done.stdout
    assert KERNELS_NOTICE not in done.stdout + done.stderr
    done = drivekit("sft", "--help")  # imports peft, and so bitsandbytes
    assert done.returncode == 0, done.stderr
    assert KERNELS_NOTICE not in done.stdout + done.stderr


def test_importing_the_vlm_module_prints_no_kernels_notice():
    done = subprocess.run([sys.executable, "-c", "import drivekit.models.vlm"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert KERNELS_NOTICE not in done.stdout + done.stderr


@pytest.mark.parametrize("error,line", [
    (BDDOIAFormatError("/data/x_25k_images_actions.json", "images[0].id", "missing"),
     "drivekit check-data: /data/x_25k_images_actions.json: images[0].id: missing"),
    (KeyError("scene"), "drivekit check-data: KeyError: 'scene'"),
    (RuntimeError("first line\n  second line"), "drivekit check-data: RuntimeError: first line second line"),
])
def test_every_error_is_one_line_on_stderr(monkeypatch, capsys, error, line):
    def fail(argv):
        raise error

    monkeypatch.setattr(check_data, "main", fail)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["check-data"])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"{line} (run with --debug for the traceback)"]
    with pytest.raises(type(error)):
        cli.main(["check-data", "--debug"])  # --debug anywhere on the line: the error itself


def test_no_kernels_notice_whichever_module_a_notebook_imports_first():
    """peft imports bitsandbytes from algorithms.sft and stages.a2c_stage before models.vlm is imported:
    the filter sits in the package's __init__, which runs first."""
    for module in ("drivekit.algorithms.sft", "drivekit.stages.a2c_stage"):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "gemm_4bit_forward" not in done.stdout + done.stderr
