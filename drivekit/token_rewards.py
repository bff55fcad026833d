"""Per-token rewards of sampled completions (proposal §2.4.1): terminal, or incremental.

``terminal``: R(T) on the completion's last token. ``incremental``: r_{k+1} = R(T_{k+1}) − R(T_k),
with R(T_0) = R("") = 0, so the rewards telescope to R(T). To bound the cost, prefixes are scored
at word boundaries only (``every="word"``: after a token followed by whitespace, and at the end),
all prefixes of the batch in one reward call; the reward of a word then lands on its last token.
``every="token"`` scores every prefix.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .action_reward import RewardResult, _take

REWARD_MODES = ("terminal", "incremental")


def prefix_ends(ids: Sequence[int], decode: Callable[[list[int]], str], every: str = "word") -> list[int]:
    """Prefix lengths k (1..n) at which R(T_k) is evaluated; always includes n.

    ``every="token"``: all of them. ``"word"``: k where the next token's text starts with
    whitespace (a word has just ended), and n.
    """
    n = len(ids)
    if n == 0:
        return []
    if every == "token":
        return list(range(1, n + 1))
    if every != "word":
        raise ValueError(f"prefix_every must be 'word' or 'token', not {every!r}")
    texts = [decode(list(ids[:k])) for k in range(1, n + 1)]
    ends = []
    for k in range(1, n):
        before, after = texts[k - 1], texts[k]
        grew = after[len(before):] if after.startswith(before) else after[len(before.rstrip()):]
        if grew[:1].isspace() and before.strip():
            ends.append(k)
    ends.append(n)
    return ends


def incremental_rewards(values_at_ends: Sequence[float], ends: Sequence[int], length: int) -> np.ndarray:
    """r of each token: r[k-1] = R(T_k) − R(T_{previous end}) at each evaluated prefix length k,
    0 elsewhere, with R(T_0) = 0. They sum to R(T_n)."""
    r = np.zeros(length)
    previous = 0.0
    for k, value in zip(ends, values_at_ends):
        r[k - 1] = value - previous
        previous = value
    return r


def token_rewards(reward, tokens: torch.Tensor, mask: torch.Tensor, decode: Callable[[list[int]], str],
                  columns: Mapping, mode: str = "incremental", every: str = "word") -> tuple[np.ndarray, RewardResult]:
    """Per-token rewards ``(B, T)`` of the completions ``tokens`` (valid where ``mask``), and the
    :class:`RewardResult` of their full texts. ``reward.evaluate(texts, **columns)`` scores texts
    (a :class:`drivekit.action_reward.WeightedReward`)."""
    tokens, mask = tokens.cpu(), mask.cpu()
    rows = [row[m].tolist() for row, m in zip(tokens, mask)]
    texts = [decode(r).strip() for r in rows]
    r = np.zeros(tuple(tokens.shape))
    if mode == "terminal":
        result = reward.evaluate(texts, **columns)
        for i, row in enumerate(rows):
            if row:
                r[i, len(row) - 1] = result.total[i]
    elif mode == "incremental":
        ends = [prefix_ends(row, decode, every) for row in rows]
        owner = [i for i, e in enumerate(ends) for _ in e]
        prefixes = [decode(rows[i][:k]).strip() for i, e in enumerate(ends) for k in e]
        scored = reward.evaluate(prefixes, **{k: _take(v, owner) for k, v in columns.items()})
        final = np.cumsum([len(e) for e in ends]) - 1  # each row's full text is its last prefix
        for i, e in enumerate(ends):
            r[i, : len(rows[i])] = incremental_rewards(scored.total[final[i] - len(e) + 1: final[i] + 1], e, len(rows[i]))
        result = RewardResult(total=scored.total[final], components={k: v[final] for k, v in scored.components.items()},
                              nonfinite=scored.nonfinite, empty=sum(1 for t in texts if not t))
    else:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, not {mode!r}")
    return r, result
