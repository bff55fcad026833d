"""R1, the CLIP semantic-alignment reward (proposal §2.3.1).

Like every drivekit reward, a plain callable with trl's ``reward_funcs`` signature
``reward(completions: list[str], **batch) -> list[float]``: one float per completion, where
``batch`` holds the dataset columns of each completion's prompt (one value per completion, e.g.
``file_name``, the clip). A completion is a string or, in trl's conversational format, a list of
messages (:func:`drivekit.text.formats.completion_text` reads either and never raises).

- R1: ``v = mean_i normalize(CLIP_img(I_i))``,
  ``t = normalize(CLIP_txt(T))``, ``R1 = v·t`` in [-1, 1]. :func:`r1` computes it on
  embeddings; :class:`ClipReward` on clips and texts, with the clips' image embeddings cached.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from drivekit.data.bddoia import frame_paths, load_image
from drivekit.models.clip import default_device, encode_text
from drivekit.text.formats import completion_text

MAX_CHARS = 2000  # text kept for tokenising: far more than 77 tokens, and bounded work on garbage


# ---------------------------------------------------------------------------------------------
# R1: semantic alignment
# ---------------------------------------------------------------------------------------------
def video_embedding(frame_embeddings: torch.Tensor) -> torch.Tensor:
    """``v``: the mean over frames (dim -2) of the L2-normalised frame embeddings, ``(..., M, D) -> (..., D)``."""
    return F.normalize(frame_embeddings, dim=-1).mean(-2)


def r1(frame_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """R1 = ``v · normalize(t)`` for frame embeddings ``(..., M, D)`` and text embeddings ``(..., D)``.

    Batch dimensions broadcast: ``r1(frames[:, None], texts[None])`` is the clips x texts matrix.
    """
    return (video_embedding(frame_embeddings) * F.normalize(text_embeddings, dim=-1)).sum(-1)


class ClipReward:
    """R1 of texts for clips with a CLIP model, as a trl reward function.

    ``reward(completions, file_name=[...])`` scores completion k against clip ``file_name[k]``
    (a BDD-OIA file name under ``root``; the column may also be called ``name``). The frames'
    image embeddings are computed once per clip and kept in memory and, when ``cache_dir`` is
    given, on disk (``<cache_dir>/clip_embeddings/<fingerprint>/<clip>.pt``, the fingerprint
    hashing the weights, the preprocessing (resize mode included) and the root; each entry is
    checked against the frame files' sizes and times). Texts are encoded in batches of ``batch_size``,
    each distinct text once; empty or garbage completions score like the empty text, long ones
    are truncated to the model's context (77 tokens). ``n_frames`` uses the last M frames
    (default: all).

    The model runs on ``device`` (default: CUDA when available, else the CPU; the model is moved
    there), and the embeddings, in memory, and R1 stay there; the disk cache holds CPU copies.
    """

    def __init__(self, model: torch.nn.Module, preprocess, tokenizer, root: str | Path,
                 cache_dir: str | Path | None = None, n_frames: int | None = None, batch_size: int = 64,
                 device: str | torch.device | None = None):
        self.device = torch.device(device or default_device())
        self.model, self.preprocess, self.tokenizer = model.to(self.device).eval(), preprocess, tokenizer
        self.root, self.n_frames, self.batch_size = Path(root), n_frames, batch_size
        self.cache_dir = Path(cache_dir) / "clip_embeddings" / self._fingerprint() if cache_dir else None
        self._frames: dict[str, torch.Tensor] = {}
        self.__name__ = "r1_clip"  # trl logs a reward function under its __name__

    @classmethod
    def from_config(cls, cfg=None, device: str | torch.device | None = None, *, random_seed: int | None = None,
                    arch: str | None = None, **kwargs) -> "ClipReward":
        """The R1 reward of a profile: its CLIP (``cfg.clip``, any :func:`clip.load_clip` source), data
        root and embedding cache, on ``device`` (default: CUDA when available).

        ``random_seed``: the same CLIP architecture and preprocessing at random init with that
        seed instead, a chance baseline (no disk cache). ``arch``: a bare checkpoint file's architecture.
        """
        from drivekit.models.clip import load_clip
        from drivekit.core.config import load

        cfg = cfg or load()
        model, preprocess, tokenizer = load_clip(cfg.clip, arch=arch, cfg=cfg, device=device,
                                                 load_weights=random_seed is None, seed=random_seed or 0)
        cache_dir = cfg.cache_dir if random_seed is None else None
        return cls(model, preprocess, tokenizer, cfg.data_root, cache_dir=cache_dir, device=device, **kwargs)

    def _fingerprint(self) -> str:
        """A hash of the weights, the preprocessing and the data root: the disk cache's key.

        The preprocessing is its description (resize mode, sizes, normalisation) and any padding fill.
        """
        fills = [getattr(t, "fill", None) for t in getattr(self.preprocess, "transforms", ())]
        h = hashlib.sha256(f"{self.preprocess}|{fills}|{self.root.resolve()}".encode())
        for name, tensor in self.model.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- image side ------------------------------------------------------------------------------
    def _stamp(self, paths: list[Path]) -> list[tuple[str, int, int]]:
        return [(p.name, (s := os.stat(p)).st_size, s.st_mtime_ns) for p in paths]

    def _from_disk(self, name: str, paths: list[Path]) -> torch.Tensor | None:
        file = self.cache_dir / f"{Path(name).stem}.pt"
        if not file.is_file():
            return None
        try:
            saved = torch.load(file, weights_only=True, map_location=self.device)
            return saved["embeddings"] if saved["stamp"] == self._stamp(paths) else None
        except Exception:  # an unreadable cache entry is a miss: it is recomputed and rewritten
            return None

    def _to_disk(self, name: str, paths: list[Path], embeddings: torch.Tensor) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        file = self.cache_dir / f"{Path(name).stem}.pt"
        partial = file.with_suffix(f".{os.getpid()}.tmp")
        torch.save(dict(stamp=self._stamp(paths), embeddings=embeddings.cpu()), partial)
        os.replace(partial, file)  # atomic: readers never see half a file

    @torch.inference_mode()
    def _encode_images(self, names: list[str]) -> None:
        paths = {name: frame_paths(self.root, name) for name in names}
        missing = []
        for name in names:
            cached = self._from_disk(name, paths[name]) if self.cache_dir else None
            if cached is None:
                missing.append(name)
            else:
                self._frames[name] = cached
        if not missing:
            return
        frames = [p for name in missing for p in paths[name]]
        embeddings = []
        for start in range(0, len(frames), self.batch_size):
            images = torch.stack([self.preprocess(load_image(p)) for p in frames[start:start + self.batch_size]])
            embeddings.append(self.model.encode_image(images.to(self.device)).float())
        for name, e in zip(missing, torch.cat(embeddings).split([len(paths[n]) for n in missing])):
            self._frames[name] = F.normalize(e, dim=-1)
            if self.cache_dir:
                self._to_disk(name, paths[name], self._frames[name])

    def frame_embeddings(self, names: Sequence[str]) -> list[torch.Tensor]:
        """The normalised embeddings ``(M, D)`` of each clip's frames, computed once (cached)."""
        new = [n for n in dict.fromkeys(names) if n not in self._frames]
        if new:
            self._encode_images(new)
        return [self._frames[n] for n in names]

    def video_embeddings(self, names: Sequence[str], n_frames: int | None = None) -> torch.Tensor:
        """``v`` of each clip ``(N, D)``, from its last ``n_frames`` frames (default: the instance's)."""
        m = n_frames or self.n_frames
        return torch.stack([video_embedding(e[-m:] if m else e) for e in self.frame_embeddings(names)])

    # -- text side -------------------------------------------------------------------------------
    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence) -> torch.Tensor:
        """Normalised embeddings ``(K, D)`` of ``texts`` (any completions), each distinct text encoded once."""
        clean = [" ".join(completion_text(t).split())[:MAX_CHARS] for t in texts]
        distinct = list(dict.fromkeys(clean)) or [""]  # (one text encoded even for none: the width)
        tokens = self.tokenizer(distinct).to(self.device)
        table = F.normalize(encode_text(self.model, tokens, self.batch_size).float(), dim=-1)
        index = {text: i for i, text in enumerate(distinct)}
        return table[torch.tensor([index[t] for t in clean], dtype=torch.long, device=self.device)]

    # -- R1 --------------------------------------------------------------------------------------
    def matrix(self, names: Sequence[str], texts: Sequence, n_frames: int | None = None) -> torch.Tensor:
        """R1 of every clip with every text, ``(len(names), len(texts))``, on the reward's device."""
        return self.video_embeddings(names, n_frames) @ self.text_embeddings(texts).T

    def scores(self, names: Sequence[str], texts: Sequence, n_frames: int | None = None) -> torch.Tensor:
        """R1 of clip ``names[k]`` with text ``texts[k]``, ``(N,)``, on the reward's device."""
        if len(names) != len(texts):
            raise ValueError(f"{len(texts)} texts for {len(names)} clips")
        if not texts:
            return torch.zeros(0, device=self.device)
        return (self.video_embeddings(names, n_frames) * self.text_embeddings(texts)).sum(-1)

    def __call__(self, completions: Sequence, file_name: Sequence[str] | None = None, **batch) -> list[float]:
        names = file_name if file_name is not None else batch.get("name")
        if names is None:
            raise ValueError("ClipReward needs each completion's clip: pass the dataset column file_name=[...]")
        return self.scores(list(names), list(completions)).tolist()
