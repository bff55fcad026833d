"""GRPO in two processes: ``torchrun --nproc_per_node 2`` on the CPU (gloo), on a micro Idefics3 (``micro_vlm``).

The test launches this file under torchrun; each process (``worker`` below) builds
``drivekit.algorithms.grpo``'s trainer from the same start adapter and trains 2 steps, with a reward that
records which clips it scored. The test then checks that each step's clips were split between the
processes (each scored its own half of the completions, whole groups), that both processes end
with the same adapter, moved from the start, and that the main process alone saved it.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from drivekit.algorithms import grpo
from drivekit.rewards.action_reward import action_reward
from drivekit.rewards.weighted_reward import WeightedReward
from drivekit.models.vlm import LoraSettings, load_vlm

from micro import items as _items

N_CLIPS = 4
# per process and step: 2 clips x a group of 4 = 8 completions; both processes: all 4 clips a step
SETTINGS = grpo.GRPOSettings(steps=2, clips_per_step=2, num_generations=4, lr=5e-2, kl_coef=0.1, max_completion_length=6)


def worker(model_dir: Path, adapter: Path, out: Path, records: Path) -> None:
    """One torchrun process: 2 GRPO steps, then save the adapter; writes ``records/rank<r>.pt``."""
    import peft
    from accelerate import PartialState

    scored, saved = [], []
    r2 = action_reward("label_f1")

    def recording_reward(completions, file_name, **batch):
        """R2 plus the answer's length: samples of one clip then score differently, so every group
        has a learning signal (a micro model's answers all score 0 on R2 alone)."""
        scored.append(list(file_name))
        lengths = [len(str(c[0]["content"] if isinstance(c, list) else c)) / 10 for c in completions]
        return [r + n for r, n in zip(r2(completions, file_name=file_name, **batch), lengths)]

    save = peft.PeftModel.save_pretrained

    def save_and_record(self, directory, *args, **kwargs):
        saved.append(str(Path(directory).relative_to(out)))
        return save(self, directory, *args, **kwargs)

    peft.PeftModel.save_pretrained = save_and_record
    model, processor = load_vlm(model_dir, quantize_4bit=True, adapter=adapter, trainable=True, device="cpu")
    trainer = grpo.build_trainer(model, processor, _items(N_CLIPS), WeightedReward({"r2": (1.0, recording_reward)}), SETTINGS,
                                 out / "trl")
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    state = PartialState()
    lora = {k: v.detach().clone() for k, v in trainer.model.state_dict().items() if "lora_" in k and ".default." in k}
    torch.save(dict(scored=scored, saved=saved, lora=lora, log=grpo.log_frame(trainer), processes=state.num_processes,
                    backend=state.backend), records / f"rank{state.process_index}.pt")


@pytest.fixture(scope="module")
def two_processes(micro_vlm, tmp_path_factory):
    """Run ``worker`` under ``torchrun --nproc_per_node 2``; (start adapter, run dir, the two ranks' records).
    The start adapter's lora_B is drawn at random: a start whose samples differ, so that groups have a signal."""
    micro = micro_vlm(LoraSettings(r=4, dropout=0.0), lora_b_std=0.5)
    root = tmp_path_factory.mktemp("grpo-two-processes")
    (root / "records").mkdir()
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           str(micro.model), str(micro.adapter), str(root / "run"), str(root / "records")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    records = [torch.load(root / "records" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return micro.adapter, root / "run", records


def test_each_process_scores_its_own_half_of_every_step(two_processes):
    _, _, records = two_processes
    assert [r["processes"] for r in records] == [2, 2] and records[0]["backend"] == "gloo"
    per_process = SETTINGS.clips_per_step * SETTINGS.num_generations
    for r in records:
        assert len(r["scored"]) == SETTINGS.steps and all(len(names) == per_process for names in r["scored"])
        for names in r["scored"]:  # whole groups: each clip's num_generations completions in one process
            assert all(names.count(n) == SETTINGS.num_generations for n in set(names))
    for mine, theirs in zip(records[0]["scored"], records[1]["scored"]):
        assert set(mine).isdisjoint(theirs) and len(set(mine) | set(theirs)) == N_CLIPS
    assert records[0]["log"]["step"].tolist() == [1, 2] == records[1]["log"]["step"].tolist()


def test_one_adapter_comes_out(two_processes):
    start, run, records = two_processes
    from peft import load_peft_weights

    assert records[0]["saved"] == ["adapter"] and records[1]["saved"] == []
    saved, begun = load_peft_weights(str(run / "adapter")), load_peft_weights(str(start))
    for r in records:  # both processes end with the same weights, the saved ones
        lora = {k.replace(".default", ""): v for k, v in r["lora"].items()}
        assert set(lora) == set(saved) and all(torch.equal(lora[k], saved[k]) for k in saved)
    assert any(not torch.equal(saved[k], begun[k]) for k in saved)  # and they moved


if __name__ == "__main__":
    worker(*map(Path, sys.argv[1:5]))
