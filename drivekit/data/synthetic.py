"""Synthetic BDD-OIA-format driving clips for the offline ``tiny`` profile: the dataset writer.

Each clip is a random scene (:mod:`drivekit.data.scene`: scene graph, rule table, description) drawn
as M frames (:mod:`drivekit.data.render`). ``generate`` writes the official layout
(``data/<name>.jpg``, ``{split}_25k_images_actions.json``, ``{split}_25k_images_reasons.json``),
plus ``data/<stem>_f{i}.jpg`` for each of the M frames and ``scenes.jsonl`` (scene graph and
natural-language description per clip).
"""
from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import asdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from drivekit.data.render import render_clip
from drivekit.data.scene import derive_labels, describe, sample_scene

SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.70, 0.10, 0.20)  # BDD-OIA: 16,082 / 2,270 / 4,572


# ---------------------------------------------------------------------------------------------
# Dataset writer
# ---------------------------------------------------------------------------------------------
def clip_name(index: int, prefix: str = "syn") -> str:
    return f"{prefix}{index:06d}.jpg"


def _make_clip(args: tuple[int, int, int, tuple[int, int], str]) -> dict:
    index, seed, n_frames, size, prefix = args
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)
    frames = render_clip(scene, n_frames, size, seed=int(rng.integers(2**31)))
    jpegs = []
    for frame in frames:
        buf = io.BytesIO()
        frame.save(buf, format="JPEG", quality=92)
        jpegs.append(buf.getvalue())
    actions, reasons = derive_labels(scene)
    return dict(file_name=clip_name(index, prefix), scene=asdict(scene), description=describe(scene),
                actions=actions, reasons=reasons, jpegs=jpegs)


def generate(root: str | Path, n_clips: int = 6000, n_frames: int = 4, size: tuple[int, int] = (96, 96),
             seed: int = 0, workers: int = 2, progress: bool = True, prefix: str = "syn") -> Path:
    """Write a synthetic dataset in the official BDD-OIA layout to ``root``; returns ``root``. Clip ``i`` is
    ``<prefix><i:06d>.jpg`` and depends on ``seed`` and ``i`` only (not on ``n_clips``)."""
    from tqdm.auto import tqdm

    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    split_of = np.random.default_rng(seed).choice(len(SPLITS), size=n_clips, p=SPLIT_SHARES)
    jobs = [(i, seed, n_frames, tuple(size), prefix) for i in range(n_clips)]
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    with Pool(workers) if workers > 1 else _Serial() as pool, open(root / "scenes.jsonl", "w") as scenes:
        clips = pool.imap(_make_clip, jobs, chunksize=64)
        for i, clip in enumerate(tqdm(clips, total=n_clips, disable=not progress, desc="synthetic clips")):
            split = SPLITS[split_of[i]]
            stem = clip["file_name"][:-4]
            jpegs = clip.pop("jpegs")
            for f, jpeg in enumerate(jpegs):
                (root / "data" / f"{stem}_f{f}.jpg").write_bytes(jpeg)
            (root / "data" / clip["file_name"]).write_bytes(jpegs[-1])  # the last frame, as in BDD-OIA
            by_split[split].append(clip)
            scenes.write(json.dumps(dict(file_name=clip["file_name"], split=split, frames=n_frames,
                                         scene=clip["scene"], description=clip["description"])) + "\n")
    for split, clips in by_split.items():
        actions = dict(
            images=[dict(file_name=c["file_name"], id=i) for i, c in enumerate(clips)],
            annotations=[dict(id=i, category=c["actions"]) for i, c in enumerate(clips)],
        )
        reasons = [dict(file_name=c["file_name"], reason=c["reasons"]) for c in clips]
        (root / f"{split}_25k_images_actions.json").write_text(json.dumps(actions))
        (root / f"{split}_25k_images_reasons.json").write_text(json.dumps(reasons))
    (root / "generator.json").write_text(json.dumps(dict(n_clips=n_clips, n_frames=n_frames, size=list(size),
                                                         seed=seed, **({} if prefix == "syn" else {"prefix": prefix}))))
    return root


class _Serial:
    """Stand-in for ``multiprocessing.Pool`` with one worker."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(fn, jobs, chunksize=1):
        return map(fn, jobs)


def read_scenes(root: str | Path) -> list[dict]:
    """The records of ``scenes.jsonl`` (scene graph as a dict, description, split)."""
    with open(Path(root) / "scenes.jsonl") as f:
        return [json.loads(line) for line in f]


def ensure_dataset(cfg, **kwargs) -> Path:
    """The synthetic dataset at ``cfg.data_root``, generated first when it is missing."""
    root = Path(cfg.data_root)
    if not (root / "test_25k_images_reasons.json").exists():
        generate(root, seed=cfg.seed, **kwargs)
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate synthetic BDD-OIA-format driving clips.")
    p.add_argument("--out", type=Path, help="dataset root (default: the tiny profile's data root)")
    p.add_argument("--clips", type=int, default=6000)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("W", "H"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    from drivekit.core.config import load

    out = a.out or load("tiny").data_root
    t0 = time.perf_counter()
    generate(out, a.clips, a.frames, tuple(a.size), a.seed, a.workers)
    print(f"wrote {a.clips} clips x {a.frames} frames to {out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
