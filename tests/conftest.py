"""Fixtures shared by several test modules (pytest finds this file itself; ``micro.py`` holds the
micro model's spec and items that torchrun-started scripts import too)."""
import pytest

from drivekit.data import scene, synthetic
from drivekit.models import zoo

from micro import MICRO, scenes


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
def saved(tmp_path_factory):
    """``(path, model)``: a micro Idefics3 and its processor saved with save_pretrained, as a
    downloaded model would be, and the model object that was saved."""
    model, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in scenes()]), MICRO)
    path = tmp_path_factory.mktemp("micro-idefics3")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model
