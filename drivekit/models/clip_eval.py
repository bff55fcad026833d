"""How well R1 tells texts apart: candidate texts, top-1 labels, retrieval (notebook 03, benchmarks).

The candidates are the ``Action: <a>; Reason: <r>`` texts (``formats.target_text``) of all
4 x 21 (action, reason) phrase pairs, not only the 21 pairs whose reason belongs to the action:
the toy split has single-label clips such as (move forward, no lane on the left), and a reward
model must also rank an inconsistent pair below the right one. A clip's prediction is the
candidate with the highest R1; its action and reason are read off that candidate.

The functions take R1 matrices (clips x texts) on any device: a reward on the GPU leaves them there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from drivekit.data.bddoia import Sample, read_splits
from drivekit.core.config import Config
from drivekit.text.formats import target_text
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASONS_FOR_ACTION
from drivekit.data.toy_split import load_or_make_toy_split


@dataclass(frozen=True)
class Candidate:
    action: int
    reason: int
    text: str


def _one_hot(index: int, size: int) -> np.ndarray:
    return np.eye(size, dtype=int)[index]


def pair_candidates(consistent_only: bool = False) -> list[Candidate]:
    """The (action, reason) pair texts: all 84, or the 21 with the reason's own action."""
    return [Candidate(a, r, target_text(_one_hot(a, N_ACTIONS), _one_hot(r, N_REASONS)))
            for a in range(N_ACTIONS) for r in range(N_REASONS)
            if not consistent_only or r in REASONS_FOR_ACTION[a]]


def toy_test_samples(cfg: Config) -> list[Sample]:
    """The clips of the toy test split (one action, one reason each)."""
    samples = [s for labels in read_splits(cfg.data_root).values() for s in labels.samples]
    return load_or_make_toy_split(cfg, samples).subset(samples, "test")


def true_candidate(samples: list[Sample], candidates: list[Candidate]) -> np.ndarray:
    """Index of each single-label sample's own pair among ``candidates`` (-1 if absent)."""
    index = {(c.action, c.reason): i for i, c in enumerate(candidates)}
    return np.array([index.get((s.actions.index(1), s.reasons.index(1)), -1) for s in samples])


def top1_accuracy(matrix: torch.Tensor, samples: list[Sample], candidates: list[Candidate]) -> dict[str, float]:
    """Share of clips whose highest-R1 candidate has the true action, the true reason, both.

    ``matrix`` is clips x candidates.
    """
    best = [candidates[i] for i in matrix.argmax(1).tolist()]
    action = np.mean([s.actions[c.action] == 1 for s, c in zip(samples, best)])
    reason = np.mean([s.reasons[c.reason] == 1 for s, c in zip(samples, best)])
    pair = np.mean([s.actions[c.action] == 1 and s.reasons[c.reason] == 1 for s, c in zip(samples, best)])
    return dict(action=float(action), reason=float(reason), pair=float(pair))


def retrieval_accuracy(matrix: torch.Tensor, truth: np.ndarray) -> dict[str, float]:
    """Top-1 retrieval on a clips x texts matrix; ``truth[i]`` is clip i's text.

    clip -> text: the clip's highest-R1 text is its own. text -> clip: for each text that is some
    clip's own, its highest-R1 clip is one of those clips (averaged over those texts).
    """
    matrix, truth = matrix.cpu(), torch.as_tensor(truth)
    clip_to_text = (matrix.argmax(1) == truth).float().mean().item()
    texts = truth.unique()
    text_to_clip = (truth[matrix[:, texts].argmax(0)] == texts).float().mean().item()
    return dict(clip_to_text=clip_to_text, text_to_clip=text_to_clip)


def r1_by_text_group(matrix: torch.Tensor, samples: list[Sample], candidates: list[Candidate]) -> pd.DataFrame:
    """Per clip and group the mean R1: its true text, its action with other reasons, other actions.

    Long format (columns ``name``, ``action``, ``text``, ``R1``), for plots per action class.
    """
    cand_action = np.array([c.action for c in candidates])
    truth = true_candidate(samples, candidates)
    rows = []
    for s, values, own in zip(samples, matrix.cpu().numpy(), truth):
        action = s.actions.index(1)
        same = (cand_action == action) & (np.arange(len(candidates)) != own)
        for group, mask in (("true text", np.arange(len(candidates)) == own), ("same action, other reason", same),
                            ("other action", cand_action != action)):
            rows.append((s.name, ACTION_PHRASES[action], group, float(values[mask].mean())))
    return pd.DataFrame(rows, columns=["name", "action", "text", "R1"])


def reward_spread(matrix: torch.Tensor, truth: np.ndarray) -> dict[str, float]:
    """How far R1 separates a clip's true text from the other candidates (means over clips)."""
    matrix = matrix.cpu()
    own = matrix[torch.arange(len(matrix)), torch.as_tensor(truth)]
    others = matrix.clone()
    others[torch.arange(len(matrix)), torch.as_tensor(truth)] = float("-inf")
    return {
        "R1 of the true text": own.mean().item(),
        "R1 of all candidates": matrix.mean().item(),
        "true minus best other": (own - others.max(1).values).mean().item(),
        "std over candidates": matrix.std(1).mean().item(),
    }


def top_confusions(matrix: torch.Tensor, samples: list[Sample], candidates: list[Candidate],
                   n: int = 5) -> pd.DataFrame:
    """The ``n`` most frequent (true text -> highest-R1 text) mistakes."""
    truth = true_candidate(samples, candidates)
    mistakes = pd.DataFrame([(candidates[t].text, candidates[p].text) for t, p in zip(truth, matrix.argmax(1).tolist())
                             if t != p], columns=["true text", "highest-R1 text"])
    return mistakes.value_counts().rename("clips").head(n).reset_index()
