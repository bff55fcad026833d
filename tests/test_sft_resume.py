"""SFT resumes from its latest checkpoint to the very adapter and loss log of an uninterrupted run.

A run is cut off by an exception while its data loader fetches a clip (as a Colab disconnect
would), then a fresh model resumes it from the run directory; on the micro Idefics3 of
``conftest.py``, with LoRA dropout on, so the random state has to be restored too.
"""
import pandas as pd
import pytest
import torch
from peft import load_peft_weights

from drivekit.algorithms import checkpoints, sft
from drivekit.models.vlm import LoraSettings, load_vlm

from micro import items as _items


class Disconnected(Exception):
    pass


class Disconnecting(list):
    """The training items, until the ``after``-th fetch: then the session is gone."""

    def __init__(self, items, after):
        super().__init__(items)
        self.after, self.fetched = after, 0

    def __getitem__(self, index):
        self.fetched += 1
        if self.fetched > self.after:
            raise Disconnected(f"fetch {self.fetched}")
        return super().__getitem__(index)


# (items, batch size, gradient accumulation, eval_every, fetches before the cut, checkpoint resumed from)
CASES = {
    # 3 batches an epoch; the cut comes in epoch 2, so the resumed epoch's shuffle is drawn again and its
    # first batch skipped
    "mid-epoch": (6, 2, 1, 2, 10, 4),
    # 5 micro-batches, 3 optimiser steps an epoch (the last one of a single micro-batch); the checkpoint
    # closes epoch 1, so the resumed run starts epoch 2 from the data order at its end
    "epoch-end, accumulation": (5, 1, 2, 3, 7, 3),
}


def _settings(batch, accum, every, **changes):
    return sft.SFTSettings(**dict(dict(epochs=2, batch_size=batch, grad_accum=accum, lr=1e-2, lora=LoraSettings(r=4),
                                       gradient_checkpointing=False, eval_every=every, eval_batch_size=2,
                                       max_new_tokens=6), **changes))


def _train(saved, train_set, settings, out, resume=False):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=settings.lora, device="cpu", seed=settings.seed)
    log = sft.train(model, processor, train_set, _items(2, seed=1), settings, out, progress=False, resume=resume)
    return log, {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}


@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_run_resumes_to_the_same_adapter_and_log(saved, tmp_path, case):
    n, batch, accum, every, cut_after, resumed_from = CASES[case]
    settings = _settings(batch, accum, every)
    assert LoraSettings(r=4).dropout > 0  # dropout draws from the global random state, which must come back
    torch.manual_seed(7)
    whole_log, whole = _train(saved, _items(n), settings, tmp_path / "whole")
    whole_rng = torch.get_rng_state()

    torch.manual_seed(7)
    with pytest.raises(Disconnected):
        _train(saved, Disconnecting(_items(n), cut_after), settings, tmp_path / "cut")
    latest = checkpoints.latest(tmp_path / "cut", sft.TRAINER_STATE)
    assert latest is not None and latest.name == f"checkpoint-{resumed_from}"
    assert checkpoints.listed(tmp_path / "cut", sft.TRAINER_STATE) == [latest]  # older ones are plain adapters
    assert not (tmp_path / "cut" / "best").exists()

    torch.manual_seed(99)  # whatever the new session's random state, the checkpoint's comes back
    log, resumed = _train(saved, _items(n), settings, tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(log, whole_log, check_exact=True)
    assert log["step"].tolist() == list(range(1, len(whole_log) + 1))
    assert set(resumed) == set(whole) and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert torch.equal(torch.get_rng_state(), whole_rng)
    assert (tmp_path / "cut" / "loss_log.csv").read_text() == (tmp_path / "whole" / "loss_log.csv").read_text()
    best, whole_best = (load_peft_weights(str(tmp_path / d / "best")) for d in ("cut", "whole"))
    assert set(best) == set(whole_best) and all(torch.equal(best[k], whole_best[k]) for k in best)
    assert sorted(p.name for p in (tmp_path / "cut" / "best").iterdir()) == ["README.md", "adapter_config.json",
                                                                              "adapter_model.safetensors"]

    again, weights = _train(saved, _items(n), settings, tmp_path / "cut", resume=True)  # a finished run: no-op
    pd.testing.assert_frame_equal(again, whole_log, check_exact=True)
    assert all(torch.equal(weights[k], whole[k]) for k in whole)  # and the model ends with the best weights


def test_resume_refuses_other_settings_and_a_fresh_run_forgets_old_checkpoints(saved, tmp_path):
    settings = _settings(2, 1, 2, epochs=1)
    _train(saved, _items(4), settings, tmp_path)
    assert checkpoints.latest(tmp_path, sft.TRAINER_STATE).name == "checkpoint-2"
    with pytest.raises(ValueError, match=r"trainer_state.pt: written with lr=0.01, this run has 0.02"):
        _train(saved, _items(4), _settings(2, 1, 2, epochs=1, lr=2e-2), tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"written with n_batches=2, this run has 3"):
        _train(saved, _items(6), settings, tmp_path, resume=True)
    with pytest.raises(Disconnected):  # a fresh run in the same folder, cut before its first checkpoint
        _train(saved, Disconnecting(_items(4), 1), settings, tmp_path)
    assert checkpoints.latest(tmp_path, sft.TRAINER_STATE) is None  # nothing of the old run to resume
    assert (tmp_path / "checkpoint-2" / "adapter_model.safetensors").is_file()  # its adapters stay
