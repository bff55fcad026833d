"""Fixtures shared by several test modules (pytest finds this file itself; ``micro.py`` holds the
micro model's spec, builder and items that torchrun-started scripts import too)."""
import warnings

import pytest

from drivekit.data import synthetic

from micro import save_micro

# The slow tests (pyproject.toml's ``slow`` marker; ``pytest -m "not slow"`` is the quick set): those
# that took over ~8 s, their fixtures' setup included, in a full run on 2 shared cores. A file marks all
# its tests, a test name all its parameters; the notebooks (nbval) are all slow. Plain data, kept here
# so that marking a test never edits its file.
SLOW = [
    "tests/test_browser.py",  # JupyterLab in Chromium runs notebooks 03, 04 and 05 (Run All): minutes
    "tests/test_colab_rehearsal.py::test_notebook_00_runs_from_its_setup_cell_in_one_kernel",  # 40 s
    "tests/test_fp16_guard.py::test_a2c_skips_an_inf_loss_then_stops_naming_the_step_and_remedy",  # ~20 s
    "tests/test_fp16_guard.py::test_grpo_stops_on_an_inf_loss_naming_the_step",  # ~20 s
    "tests/test_grpo_resume.py",  # three GRPO runs: 19-28 s
    "tests/test_grpo_two_processes.py",  # torchrun: 21 s
    "tests/test_notebooks_on_real_layout.py::test_notebook_runs_on_official_layout",  # 11-15 s a notebook
    "tests/test_paper_rehearsal.py::test_grpo_from_the_sft_adapter_takes_paper_steps",  # 9 s
    "tests/test_tracking.py::test_sft_reports_its_losses_to_trackio",  # these three share a fresh
    "tests/test_tracking.py::test_a2c_and_grpo_log_the_same_names_to_trackio",  # process training
    "tests/test_tracking.py::test_a2c_and_grpo_log_the_same_names_to_tensorboard",  # SFT, A2C, GRPO: 16 s
    "tests/test_two_processes.py",  # torchrun: 23 s
    "tests/test_vlm.py::test_json_prediction_rows_and_constrained_decoding",  # 58 s
    "tests/test_vlm.py::test_same_seed_gives_the_same_sft_run",  # 8 s
]


# Tests that run after everything else, notebooks included: the browser test runs notebooks 03, 04 and 05 in
# JupyterLab and reuses the runs their nbval pass left in runs/ (SFT, SFT-JSON, the short run), as a learner who
# ran the notebooks in order does; first, it would train all of them inside its Run All limit.
LAST = ["tests/test_browser.py"]


def _is_slow(nodeid: str, entry: str) -> bool:
    return nodeid == entry or nodeid.startswith((entry + "::", entry + "["))


def pytest_collection_modifyitems(config, items):
    """Mark ``SLOW``'s tests and every notebook cell ``slow``; warn of an entry of a collected file
    that names no test (renamed or removed) unless the command line picked single tests."""
    used, files = set(), {item.nodeid.split("::")[0] for item in items}
    for item in items:
        entries = [e for e in SLOW if _is_slow(item.nodeid, e)]
        used.update(entries)
        if entries or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: any(_is_slow(item.nodeid, e) or item.nodeid.startswith(e) for e in LAST))  # stable
    stale = [e for e in SLOW if e not in used and e.split("::")[0] in files]
    if stale and not any("::" in str(arg) for arg in config.args):
        warnings.warn(f"tests/conftest.py SLOW names no collected test: {stale}", pytest.PytestWarning)


@pytest.fixture(scope="session")
def official_layout(tmp_path_factory):
    """A dataset in BDD-OIA's official layout only: one wide (16:9) JPEG per sample, no frames, no
    ``scenes.jsonl`` and no ``generator.json`` (what a real BDD-OIA copy has)."""
    root = synthetic.generate(tmp_path_factory.mktemp("bdd-oia"), n_clips=120, n_frames=2, size=(128, 72),
                              seed=3, workers=1, progress=False)
    for path in root.glob("data/*_f*.jpg"):
        path.unlink()
    (root / "scenes.jsonl").unlink()
    (root / "generator.json").unlink()
    return root


@pytest.fixture(scope="session")
def micro_vlm(tmp_path_factory):
    """``micro_vlm(adapter=None, lora_b_std=None) -> micro.Saved``: ``micro.save_micro`` into a fresh
    folder, each variant once a session (tests only read what it saved)."""
    made = {}

    def make(adapter=None, lora_b_std=None):
        key = (adapter, lora_b_std)
        if key not in made:
            made[key] = save_micro(tmp_path_factory.mktemp("micro-idefics3"), adapter, lora_b_std)
        return made[key]

    return make


@pytest.fixture(scope="session")
def saved(micro_vlm):
    """``(path, model)``: a micro Idefics3 and its processor saved with save_pretrained, as a
    downloaded model would be, and the model object that was saved."""
    micro = micro_vlm()
    return micro.model, micro.original
