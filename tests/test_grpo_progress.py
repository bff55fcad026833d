"""``grpo_stage.build_trainer(progress=False)`` drops transformers' progress display in a terminal and in Jupyter
(notebook 04b stored trl's per-step "Training Loss" table before: NotebookProgressCallback was left in)."""
from types import SimpleNamespace

from transformers import TrainerCallback

from drivekit.core import config
from drivekit.stages import grpo_stage


def test_progress_false_removes_both_progress_callbacks(monkeypatch):
    kinds = {name: type(name, (TrainerCallback,), {}) for name in ("ProgressCallback", "NotebookProgressCallback",
                                                                     "Checkpointed")}
    callbacks = [kind() for kind in kinds.values()]
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=callbacks), remove_callback=callbacks.remove)
    monkeypatch.setattr(grpo_stage, "grpo_trainer", lambda *args, **kwargs: trainer)
    policy = (object(), object(), None)
    assert grpo_stage.build_trainer(config.load("tiny"), [], None, policy=policy, progress=False) is trainer
    assert [type(c).__name__ for c in callbacks] == ["Checkpointed"]
    callbacks[:] = [kind() for kind in kinds.values()]
    grpo_stage.build_trainer(config.load("tiny"), [], None, policy=policy, progress=True)
    assert len(callbacks) == 3
