"""benchmarks/record.py: what every results file records, the clean-tree rule for benchmarks/results/,
and that every benchmarks/bench_*.py writes through it."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import record  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
                          cwd=root, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A throwaway repository with one committed results file, standing in for this one."""
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "benchmarks" / "results" / "old.json").write_text("{}\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "start")
    monkeypatch.setattr(record, "ROOT", root)
    return root


def test_write_records_command_commit_versions_and_machine(repo, tmp_path):
    path = record.write("demo", {"f1": 0.5}, out=tmp_path / "elsewhere" / "demo.json")
    data = json.loads(path.read_text())
    assert path == tmp_path / "elsewhere" / "demo.json"
    assert list(data) == ["command", "commit", "clean", "changed", "date", "versions", "machine", "results"]
    assert data["results"] == {"f1": 0.5}
    assert data["command"].startswith("python ")
    assert data["commit"] == git(repo, "rev-parse", "HEAD")
    assert data["clean"] is True and data["changed"] == []
    assert {"python", "torch", "transformers"} <= set(data["versions"])
    assert {"platform", "processor", "cpus", "memory_gb", "torch_threads"} <= set(data["machine"])


def test_git_state_is_the_one_drivekit_records(repo, tmp_path):
    """record.git_state is drivekit.core.provenance.git_state of the repository (the experiment's summaries
    record its commit and clean); outside git it says why."""
    from drivekit.core import provenance

    (repo / "notes.txt").write_text("uncommitted")
    assert record.git_state() == provenance.git_state(repo) == dict(
        commit=git(repo, "rev-parse", "HEAD"), clean=False, changed=["notes.txt"])
    assert record.git_state(ignore=repo / "notes.txt")["clean"] is True
    elsewhere = tmp_path / "elsewhere"  # no repository
    elsewhere.mkdir()
    outside = provenance.git_state(elsewhere)
    assert outside["commit"] is None and outside["clean"] is False and outside["changed"][0].startswith("no git state")


def test_results_dir_from_a_clean_tree(repo):
    path = record.write("old", {"x": 1})
    assert path == repo / "benchmarks" / "results" / "old.json"
    assert json.loads(path.read_text())["results"] == {"x": 1}
    # the file it replaces is no change that counts: writing it again is allowed, and clean
    assert json.loads(record.write("old", {"x": 2}).read_text())["clean"] is True


def test_refuses_results_dir_from_a_dirty_tree(repo):
    (repo / "notes.txt").write_text("uncommitted")
    (repo / "benchmarks" / "results" / "old.json").write_text('{"edited": true}\n')
    with pytest.raises(record.DirtyTree, match="notes.txt") as refused:
        record.write("demo", {"x": 1})
    assert "benchmarks/results/old.json" in str(refused.value) and "--out" in str(refused.value)
    assert not (repo / "benchmarks" / "results" / "demo.json").exists()
    with pytest.raises(record.DirtyTree):  # any path under benchmarks/results/, not just <name>.json
        record.check("demo", out=repo / "benchmarks" / "results" / "other.json")


def test_dirty_tree_may_write_elsewhere(repo, tmp_path):
    (repo / "notes.txt").write_text("uncommitted")
    data = json.loads(record.write("demo", [1, 2], out=tmp_path / "demo.json").read_text())
    assert data["clean"] is False and data["changed"] == ["notes.txt"]
    assert data["results"] == [1, 2]


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("bench_*.py")), ids=lambda p: p.name)
def test_every_bench_script_writes_through_record(script):
    """Each script calls ``record.write("<its name without bench_>", ...)`` and has ``--out``."""
    calls = [node for node in ast.walk(ast.parse(script.read_text())) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
             and node.func.value.id == "record"]
    name = script.stem.removeprefix("bench_")
    writes = [c for c in calls if c.func.attr == "write"]
    assert writes, f"{script.name} does not call record.write"
    assert all(isinstance(c.args[0], ast.Constant) and c.args[0].value == name for c in writes)
    assert any(c.func.attr == "add_out_option" for c in calls), f"{script.name} has no --out (record.add_out_option)"
