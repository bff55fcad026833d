"""SFT in two processes: ``torchrun --nproc_per_node 2`` on the CPU (gloo), on a micro Idefics3 (``micro_vlm``).

The test launches this file under torchrun; each process (``worker`` below) trains with
``sft.train`` and records what it fetched, the gradients at its first optimiser step (after DDP's
all-reduce, before clipping) and the adapters it saved. The test then checks that each process
saw half of every epoch's clips, that the gradients are the mean of the two processes' own ones,
that the logged validation loss is that of the whole validation set, and that the main process
alone wrote one ``best`` adapter and the checkpoints. The workers also run the same training cut
off in epoch 2 and resumed from its checkpoint, which must end where the whole run ended.
"""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from drivekit.algorithms import sft
from drivekit.models.vlm import LoraSettings, load_vlm

from micro import items as _items

N_TRAIN, N_VAL = 12, 3  # the validation set does not split evenly: 2 clips for one process, 1 for the other
# 3 batches an epoch per process, a checkpoint every 2 steps. No LoRA dropout, so that the test can
# recompute the first step's gradients without the random state.
SETTINGS = sft.SFTSettings(epochs=2, batch_size=2, grad_accum=1, lr=1e-2, lora=LoraSettings(r=4, dropout=0.0),
                           gradient_checkpointing=False, eval_every=2, eval_batch_size=2, max_new_tokens=6)
CUT_AFTER = 10  # fetches per process: the 11th (epoch 2's third batch) fails, after checkpoint-4


def _load(model_dir, **kwargs):
    return load_vlm(model_dir, quantize_4bit=True, device="cpu", **kwargs)


class Disconnected(Exception):
    pass


class Recording(list):
    """The training items; each fetch's index is appended to ``fetched``; the fetch after ``cut_after``
    raises ``Disconnected``."""

    def __init__(self, items, fetched, cut_after=None):
        super().__init__(items)
        self.fetched, self.cut_after = fetched, cut_after

    def __getitem__(self, index):
        if self.cut_after is not None and len(self.fetched) >= self.cut_after:
            raise Disconnected(f"fetch {len(self.fetched) + 1}")
        self.fetched.append(index)
        return super().__getitem__(index)


def worker(model_dir: Path, out: Path, records: Path) -> None:
    """One torchrun process: train (recording), then train again cut off and resumed; writes
    ``records/rank<r>.pt``."""
    import peft
    from accelerate import Accelerator, PartialState

    record = dict(fetched=[], grads=None, saved=[])
    clip = Accelerator.clip_grad_norm_

    def clip_and_record(self, parameters, *args, **kwargs):
        parameters = list(parameters)
        if record["grads"] is None:
            record["grads"] = [p.grad.detach().clone() for p in parameters]
        return clip(self, parameters, *args, **kwargs)

    save = peft.PeftModel.save_pretrained

    def save_and_record(self, directory, *args, **kwargs):
        record["saved"].append(str(Path(directory).relative_to(out)))
        return save(self, directory, *args, **kwargs)

    Accelerator.clip_grad_norm_ = clip_and_record
    peft.PeftModel.save_pretrained = save_and_record

    def run(name, train_set, resume=False):
        model, processor = _load(model_dir, lora=SETTINGS.lora, seed=SETTINGS.seed)
        log = sft.train(model, processor, train_set, _items(N_VAL, seed=1), SETTINGS, out / name, progress=False,
                        resume=resume)
        return log, {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}

    log, lora = run("whole", Recording(_items(N_TRAIN), record["fetched"]))
    state = PartialState()  # as sft.train set it up (a PartialState() made first would be a single process)
    try:
        run("cut", Recording(_items(N_TRAIN), [], cut_after=CUT_AFTER))
        raise AssertionError("the cut run went through")
    except Disconnected:
        pass
    torch.manual_seed(100 + state.process_index)  # a new session's random state: the checkpoint's comes back
    resumed_log, resumed_lora = run("cut", _items(N_TRAIN), resume=True)
    torch.save(dict(record, log=log, lora=lora, resumed_log=resumed_log, resumed_lora=resumed_lora,
                    processes=state.num_processes, backend=state.backend), records / f"rank{state.process_index}.pt")


@pytest.fixture(scope="module")
def two_processes(micro_vlm, tmp_path_factory):
    """Run ``worker`` under ``torchrun --nproc_per_node 2``; (model dir, run dir, the two ranks' records)."""
    model_dir = micro_vlm().model
    root = tmp_path_factory.mktemp("two-processes")
    (root / "records").mkdir()
    repo = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           str(model_dir), str(root / "run"), str(root / "records")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    records = [torch.load(root / "records" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return model_dir, root / "run" / "whole", records


def test_two_processes_each_train_on_half_of_every_epoch(two_processes):
    _, _, records = two_processes
    assert [r["processes"] for r in records] == [2, 2] and records[0]["backend"] == "gloo"
    half = N_TRAIN // 2
    for r in records:
        assert len(r["fetched"]) == SETTINGS.epochs * half  # 2 batches of 2 an epoch, not 4
    for epoch in range(int(SETTINGS.epochs)):
        mine, theirs = (set(r["fetched"][epoch * half:(epoch + 1) * half]) for r in records)
        assert len(mine) == len(theirs) == half and mine.isdisjoint(theirs) and mine | theirs == set(range(N_TRAIN))
    steps = int(SETTINGS.epochs) * N_TRAIN // (2 * SETTINGS.batch_size)
    for r in records:
        assert r["log"]["step"].tolist() == list(range(1, steps + 1))
    pd.testing.assert_frame_equal(records[0]["log"], records[1]["log"], check_exact=True)


def test_gradients_are_the_mean_of_the_two_processes(two_processes):
    model_dir, _, records = two_processes
    assert all(torch.equal(a, b) for a, b in zip(records[0]["grads"], records[1]["grads"]))
    own = []
    for r in records:  # each process's gradient on its own first batch, from the same initial adapter
        model, processor = _load(model_dir, lora=SETTINGS.lora, seed=SETTINGS.seed)
        model.train()
        items = _items(N_TRAIN)
        batch = sft.Collator(processor)([items[i] for i in r["fetched"][:SETTINGS.batch_size]])
        model(**batch).loss.backward()
        own.append([p.grad for p in model.parameters() if p.requires_grad])
    assert len(own[0]) == len(records[0]["grads"]) > 0
    for mine, theirs, reduced in zip(*own, records[0]["grads"]):
        torch.testing.assert_close(reduced, (mine + theirs) / 2, rtol=1e-4, atol=1e-7)
    assert not all(torch.allclose(mine, theirs) for mine, theirs in zip(*own))  # the two batches differ


def test_validation_loss_is_that_of_the_whole_validation_set(two_processes):
    model_dir, run, records = two_processes
    log = records[0]["log"].dropna(subset=["val_loss"])
    assert log["step"].tolist() == [2, 4, 6]
    val = _items(N_VAL, seed=1)
    for step, logged in zip(log["step"], log["val_loss"]):
        model, processor = _load(model_dir, adapter=run / f"checkpoint-{step}")
        with torch.no_grad():
            whole = model(**sft.Collator(processor)(val)).loss.item()  # the mean over every target token
        assert logged == pytest.approx(whole, rel=1e-4)


def test_the_main_process_alone_writes_one_adapter(two_processes):
    _, run, records = two_processes
    written = ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert records[0]["saved"][:3] == [f"whole/{name}" for name in written] and records[1]["saved"] == []
    assert sorted(p.name for p in run.iterdir()) == ["best", *written, "loss_log.csv"]
    assert sorted(p.name for p in (run / "checkpoint-6").iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "rng_state_0.pt", "rng_state_1.pt",
        sft.TRAINER_STATE]
    for name in written[:2]:  # no longer resumable
        assert sorted(p.name for p in (run / name).iterdir()) == [
            "README.md", "adapter_config.json", "adapter_model.safetensors"]
    pd.testing.assert_frame_equal(pd.read_csv(run / "loss_log.csv"), records[0]["log"], check_dtype=False)
    from peft import load_peft_weights

    best = load_peft_weights(str(run / "best"))
    for r in records:  # both processes end with the same weights: the best adapter
        lora = {k.replace(".default", ""): v for k, v in r["lora"].items()}
        assert set(lora) == set(best) and all(torch.equal(lora[k], best[k]) for k in best)


def test_a_run_cut_off_in_two_processes_resumes_to_the_same_end(two_processes):
    _, _, records = two_processes
    # the cut run saved checkpoints 2 and 4, then resumed from 4 (epoch 2, its second batch next) and saved 6
    assert records[0]["saved"][3:] == ["cut/checkpoint-2", "cut/checkpoint-4", "cut/checkpoint-6"]
    for r in records:
        pd.testing.assert_frame_equal(r["resumed_log"], r["log"], check_exact=True)
        assert set(r["resumed_lora"]) == set(r["lora"])
        assert all(torch.equal(r["resumed_lora"][k], r["lora"][k]) for k in r["lora"])


if __name__ == "__main__":
    worker(*(Path(arg) for arg in sys.argv[1:4]))
