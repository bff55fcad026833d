"""What the pretrained tiny VLM perceives: its greedy descriptions of the toy-test clips, element by element.

Loads the model (no adapter), lets it describe each toy-test clip from the frames alone (as in
pretraining), parses each description back into scene elements (``drivekit.models.perception``) and compares
them with the scene's own. Prints per-element accuracy and the lead car's confusion matrix and writes
``benchmarks/results/perception.json`` (``record.py``) or ``--out FILE``.

    python benchmarks/bench_perception.py [--model DIR] [--clips N] [--threads N] [--out FILE]
    python benchmarks/bench_perception.py --fresh N [--out FILE]   # N new scenes, turning lead cars too
"""
import argparse
import time

import torch

from drivekit.core import config
from drivekit.models import perception
from drivekit.models.vlm import load_vlm

import record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="model directory (default: the shipped tiny model)")
    p.add_argument("--clips", type=int, help="the first N toy-test clips (default: all)")
    p.add_argument("--fresh", type=int, help="instead of the toy test split: N newly sampled scenes")
    p.add_argument("--fresh-seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    record.add_out_option(p, "perception")
    a = p.parse_args()
    record.check("perception", a.out)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.load("tiny")
    t0 = time.perf_counter()
    if a.fresh:
        clips, scenes = perception.fresh_clips(a.fresh, a.fresh_seed)
    else:
        _, clips, scenes = perception.toy_test_clips(cfg, a.clips)
    model, processor = load_vlm(a.model, device=a.device)
    result = perception.measure(model, processor, clips, scenes, a.batch_size)
    seconds = time.perf_counter() - t0
    out = {"elements": result["elements"], "lead": result["lead"],
           "lead_recall": perception.lead_recall(result), "all_elements": result["all_elements"],
           "unparsed_sentences": result["unparsed_sentences"], "passes_targets": perception.passes(result),
           "model": str(a.model), "clips": f"fresh, seed {a.fresh_seed}" if a.fresh else "toy test split",
           "n_clips": result["n_clips"], "seconds": round(seconds, 1),
           "torch_threads": torch.get_num_threads(), "samples": result["samples"]}
    written = record.write("perception", out, a.out)
    print(perception.table(result))
    recall = "  ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in out["lead_recall"].items())
    print(f"\nlead recall: {recall}\nall elements right: {out['all_elements']:.3f}   unparsed sentences: "
          f"{out['unparsed_sentences']:.3f}   targets met: {out['passes_targets']}\n"
          f"{out['n_clips']} clips, {seconds:.0f} s, {torch.get_num_threads()} threads -> {written}")


if __name__ == "__main__":
    main()
