"""Self-checks for the notebooks' exercises (in the style of rasbt/LLMs-from-scratch).

Each exercise in a notebook is a small function the learner writes, starting as a stub that raises
``NotImplementedError``. A ``check_*`` function below calls it on a few cases and compares it with
drivekit's own implementation (or with a hand-computed value):

- the stub is still there (``NotImplementedError``): it prints "not attempted yet" and returns
  False, so a notebook run top to bottom (CI, ``pytest --nbval-lax``) does not fail;
- a wrong answer: it raises :class:`ExerciseError` (an ``AssertionError``) that says which case
  failed, what was expected, what came back, and a hint;
- a right answer: it prints "passed" and returns True.

The solutions are in ``notebooks/solutions/`` and ``tests/test_exercises.py`` runs every one of them
through the same checker, and checks that a deliberately wrong answer is rejected.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from drivekit.algorithms import a2c
from drivekit.text import json_output
from drivekit.evaluation import metrics, stats
from drivekit.rewards.action_reward import LabelF1Reward
from drivekit.rewards.clip_reward import r1
from drivekit.models.prompts import IGNORE_INDEX
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES
from drivekit.rewards.weighted_reward import OnJson


class ExerciseError(AssertionError):
    """A learner's answer is wrong; the message says where and gives a hint."""


NOT_ATTEMPTED = object()  # what _attempt returns for a stub


def _attempt(name: str, fn: Callable, *args):
    """``fn(*args)``, or ``NOT_ATTEMPTED`` (and a printed note) when ``fn`` is still the stub."""
    try:
        return fn(*args)
    except NotImplementedError:
        print(f"{name}: not attempted yet (the function still raises NotImplementedError). "
              "Write it, then run this cell again.")
        return NOT_ATTEMPTED


def _fail(name: str, case: str, expected, got, hint: str) -> None:
    raise ExerciseError(f"{name}: wrong answer for {case}.\n  expected: {expected!r}\n  got:      {got!r}\n"
                        f"  hint: {hint}")


def _passed(name: str, n: int) -> bool:
    print(f"{name}: passed ({n} cases)")
    return True


def _cases(name: str, fn: Callable, cases: Sequence[tuple], expected: Callable, same: Callable, hint: str) -> bool:
    """Run ``fn`` on every case (a tuple of arguments); stop at the first wrong answer."""
    for args in cases:
        got = _attempt(name, fn, *args)
        if got is NOT_ATTEMPTED:
            return False
        want = expected(*args)
        try:
            right = bool(same(got, want))
        except Exception:  # noqa: BLE001 (an answer of any wrong type or shape is a wrong answer)
            right = False
        if not right:
            _fail(name, f"arguments {_short(args)}", want, got, hint)
    return _passed(name, len(cases))


def _short(args: tuple) -> str:
    text = ", ".join(np.array2string(np.asarray(a), threshold=12) if isinstance(a, (np.ndarray, torch.Tensor))
                     else repr(a) for a in args)
    return text if len(text) < 300 else text[:300] + " ..."


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _one_hot_rows(rng: np.random.Generator, n: int, width: int, density: float = 0.3) -> np.ndarray:
    return (rng.random((n, width)) < density).astype(int)


# ---------------------------------------------------------------------------------------------
# 00 · data exploration
# ---------------------------------------------------------------------------------------------
def _decoded(actions, reasons) -> tuple[list[str], list[str]]:
    return ([ACTION_PHRASES[i] for i, v in enumerate(actions) if v],
            [REASON_PHRASES[i] for i, v in enumerate(reasons) if v])


def check_decode(decode: Callable) -> bool:
    """Exercise 00.1: ``decode(actions, reasons) -> (action phrases, reason phrases)`` of 0/1 vectors."""
    rng = _rng(0)
    cases = [([0, 1, 0, 0], [0] * 3 + [1] + [0] * 17), ([1, 0, 0, 1], [1, 0, 0] + [0] * 15 + [1, 0, 1]),
             ([0, 0, 0, 0], [0] * N_REASONS)]
    cases += [(list(a), list(r)) for a, r in zip(_one_hot_rows(rng, 5, N_ACTIONS), _one_hot_rows(rng, 5, N_REASONS))]
    return _cases("Exercise 00.1 (decode)", decode, cases, _decoded,
                  lambda got, want: got is not None and [list(got[0]), list(got[1])] == [list(w) for w in want],
                  "index i of the action vector is taxonomy.ACTION_PHRASES[i], of the reason vector "
                  "taxonomy.REASON_PHRASES[i]; keep the index order and return two lists")


def check_cooccurrence(count: Callable) -> bool:
    """Exercise 00.2: ``count(actions (n, 4), reasons (n, 21)) -> (4, 21)`` clips with both labels."""
    rng = _rng(1)
    cases = [(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]]),
              np.eye(N_REASONS, dtype=int)[[0, 3, 3]])]
    cases += [(_one_hot_rows(rng, n, N_ACTIONS), _one_hot_rows(rng, n, N_REASONS)) for n in (1, 7, 40)]
    return _cases("Exercise 00.2 (co-occurrence counts)", count, cases, lambda a, r: a.T @ r,
                  lambda got, want: got is not None and np.shape(got) == want.shape and np.array_equal(got, want),
                  "entry [a, r] counts the clips whose action a AND reason r are both 1; "
                  "a (4, 21) array (the matrix product actions.T @ reasons is one way)")


# ---------------------------------------------------------------------------------------------
# 01 · the toy split
# ---------------------------------------------------------------------------------------------
def check_split_sizes(predict: Callable, counts_per_action: Sequence[int], observed: dict) -> bool:
    """Exercise 01.1: ``predict(counts_per_action) -> {"test": n, "train_full": n, "train": n}`` must
    give the sizes the saved split has (``observed``, e.g. from ``ToySplit.counts()``)."""
    name = "Exercise 01.1 (predict the split's sizes)"
    got = _attempt(name, predict, list(counts_per_action))
    if got is NOT_ATTEMPTED:
        return False
    if not isinstance(got, dict):
        _fail(name, "the saved split", "a dict {'test': n, 'train_full': n, 'train': n}", got, "return a dict")
    for part, slack in (("test", 0), ("train_full", 0), ("train", 1)):
        if part not in got or abs(int(got[part]) - int(observed[part])) > slack:
            _fail(name, f"the part {part!r} (clips per action {list(counts_per_action)})", observed.get(part),
                  got.get(part), "test: 20 % of each action, rounded so that the total is round(0.2 * all); "
                  "train_full: the rest; train: 1/8 of train_full per action, at least one clip per action "
                  "(train may be off by one: the rounding per action is not asked for)")
    return _passed(name, 3)


def check_stratified_split(split: Callable) -> bool:
    """Exercise 01.2: ``split(labels, test_share, seed) -> indices of the test part``, stratified by label."""
    name = "Exercise 01.2 (a stratified split)"
    rng = _rng(2)
    cases = [(np.array([0] * 10 + [1] * 5 + [2] * 5), 0.2, 0),
             (rng.choice(4, size=203, p=[0.1, 0.6, 0.15, 0.15]), 0.2, 1),
             (rng.choice(3, size=57), 0.5, 2)]
    for labels, share, seed in cases:
        got = _attempt(name, split, labels, share, seed)
        if got is NOT_ATTEMPTED:
            return False
        test = np.asarray(got, dtype=int).ravel()
        case = f"{len(labels)} labels, test_share={share}, seed={seed}"
        if len(set(test.tolist())) != len(test) or (len(test) and (test.min() < 0 or test.max() >= len(labels))):
            _fail(name, case, "distinct indices in range(len(labels))", test[:20].tolist(),
                  "return positions into labels, each at most once")
        for label in np.unique(labels):
            n = int((labels == label).sum())
            k = int((labels[test] == label).sum())
            if abs(k - share * n) > 1:
                _fail(name, case, f"about {share * n:.1f} test clips of label {label} (±1)", k,
                      "pick test_share of the indices of EACH label separately, then join them")
        again = np.asarray(split(labels, share, seed), dtype=int).ravel()
        if sorted(again.tolist()) != sorted(test.tolist()):
            _fail(name, case, "the same test part for the same seed", "a different one",
                  "draw with np.random.default_rng(seed), so that a seed gives one split")
    return _passed(name, len(cases))


# ---------------------------------------------------------------------------------------------
# 02 · SFT with QLoRA
# ---------------------------------------------------------------------------------------------
def check_label_mask(mask: Callable, batch) -> bool:
    """Exercise 02.1: ``mask(input_ids, attention_mask, prompt_lengths) -> labels``: the answer's
    tokens copied, -100 on the prompt and on padding. Checked against ``batch["labels"]`` of a real
    ``sft.Collator`` batch (right-padded: row i holds its prompt, then its answer, then padding)."""
    name = "Exercise 02.1 (label masking)"
    labels = batch["labels"]
    prompt_lengths = [int((row != IGNORE_INDEX).nonzero()[0]) for row in labels]  # first supervised position
    got = _attempt(name, mask, batch["input_ids"].clone(), batch["attention_mask"].clone(), prompt_lengths)
    if got is NOT_ATTEMPTED:
        return False
    got = torch.as_tensor(got)
    if got.shape != labels.shape:
        _fail(name, "the batch", tuple(labels.shape), tuple(got.shape), "one label per input token")
    for i in range(len(labels)):
        wrong = (got[i] != labels[i]).nonzero().ravel()
        if len(wrong):
            j = int(wrong[0])
            where = ("the prompt (image tokens included)" if j < prompt_lengths[i] else
                     "padding" if batch["attention_mask"][i, j] == 0 else "the answer")
            _fail(name, f"row {i}, position {j}, in {where}", int(labels[i, j]), int(got[i, j]),
                  "copy input_ids, then set -100 where the position is in the prompt (< prompt_lengths[i]) "
                  "or is padding (attention_mask == 0)")
    return _passed(name, len(labels))


def lora_layers(model: torch.nn.Module) -> list[tuple[int, int, int]]:
    """``(in_features, out_features, r)`` of every LoRA-wrapped linear layer of a peft model."""
    found = []
    for module in model.modules():
        if hasattr(module, "lora_A") and hasattr(module, "base_layer") and len(module.lora_A):
            a = next(iter(module.lora_A.values()))
            b = next(iter(module.lora_B.values()))
            found.append((a.in_features, b.out_features, a.out_features))
    return found


def check_lora_parameters(count: Callable, model: torch.nn.Module | None = None) -> bool:
    """Exercise 02.2: ``count(d_in, d_out, r)``: the trainable parameters LoRA adds to one linear layer.
    With ``model`` (a peft model), the sum over its LoRA layers must equal its trainable parameters."""
    name = "Exercise 02.2 (LoRA parameters)"
    cases = [(64, 64, 8), (128, 32, 16), (2048, 8192, 8), (5, 3, 1)]
    if not _cases(name + ", hand cases", count, cases, lambda i, o, r: r * (i + o),
                  lambda got, want: got is not None and int(got) == want,
                  "W (d_out × d_in) stays frozen; LoRA adds A (r × d_in) and B (d_out × r)"):
        return False
    if model is not None:
        layers = lora_layers(model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(int(count(i, o, r)) for i, o, r in layers)
        if total != trainable:
            _fail(name, f"the model's {len(layers)} LoRA layers", trainable, total,
                  "sum count(d_in, d_out, r) over the LoRA layers; should equal the trainable parameters")
        print(f"  and on the model: {len(layers)} LoRA layers, {total:,} parameters = its trainable parameters")
    return True


# ---------------------------------------------------------------------------------------------
# 03 · the CLIP reward R1
# ---------------------------------------------------------------------------------------------
def _r1_cases(seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([3.0, 3.0]))]  # worked example: sqrt(2)/2
    cases += [(torch.randn(m, d, generator=g) * 5, torch.randn(d, generator=g)) for m, d in ((1, 4), (4, 16), (3, 512))]
    return cases


def check_r1(my_r1: Callable) -> bool:
    """Exercise 03.1: ``my_r1(frames (M, D), text (D,)) -> float``, R1 as ``clip_reward.r1`` computes it."""
    def same(got, want):
        return got is not None and math.isclose(float(got), float(want), rel_tol=1e-4, abs_tol=1e-5)

    return _cases("Exercise 03.1 (R1)", my_r1, _r1_cases(), lambda f, t: float(r1(f, t)), same,
                  "normalise each frame's embedding to length 1, average them (v, not normalised again), "
                  "normalise the text embedding, and take the dot product")


def check_ordered_r1(ordered_r1: Callable) -> bool:
    """Exercise 03.2: an R1 that depends on the frames' order, equal to R1 when every frame is the same."""
    name = "Exercise 03.2 (an order-sensitive R1)"
    g = torch.Generator().manual_seed(4)
    frames, text = torch.randn(4, 32, generator=g), torch.randn(32, generator=g)
    got = _attempt(name, ordered_r1, frames, text)
    if got is NOT_ATTEMPTED:
        return False
    reverse = float(ordered_r1(frames.flip(0), text))
    if math.isclose(float(got), reverse, abs_tol=1e-6):
        _fail(name, "4 random frames and their reverse", "two different values", (float(got), reverse),
              "give the frames different weights by position (e.g. later frames more), or add a term "
              "on the change between consecutive frames")
    still = frames[:1].repeat(4, 1)
    want = float(r1(still, text))
    if not math.isclose(float(ordered_r1(still, text)), want, rel_tol=1e-4, abs_tol=1e-5):
        _fail(name, "a still clip (4 copies of one frame)", want, float(ordered_r1(still, text)),
              "when nothing moves, order cannot matter: let your weights sum to 1 so a still clip gets plain R1")
    for m, d in ((2, 8), (6, 16)):
        f, t = torch.randn(m, d, generator=g), torch.randn(d, generator=g)
        value = float(ordered_r1(f, t))
        if not -1 - 1e-5 <= value <= 1 + 1e-5:
            _fail(name, f"{m} random frames", "a value in [-1, 1]", value,
                  "a weighted mean of unit vectors, dotted with a unit vector, stays in [-1, 1]")
    return _passed(name, 4)


# ---------------------------------------------------------------------------------------------
# 04 · A2C and GRPO
# ---------------------------------------------------------------------------------------------
def _close(got, want, tol: float = 1e-6) -> bool:
    """``got`` has ``want``'s shape and values (lists, arrays or tensors)."""
    got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=float)
    return got.shape == np.shape(want) and np.allclose(got, want, rtol=tol, atol=tol)


def check_incremental_rewards(fn: Callable) -> bool:
    """Exercise 04.1: ``fn(values_at_ends, ends, length)`` -> per-token rewards of one answer of ``length``
    tokens, from the rewards R(T_k) of its prefixes of ``ends`` tokens (:func:`drivekit.algorithms.a2c.incremental_rewards`)."""
    rng = _rng(42)
    cases = [([0.25, 0.5, 1.5], [2, 5, 6], 6), ([0.8], [4], 4), ([0.3, 0.1, 0.9, 0.9], [1, 2, 3, 4], 4),
             ([1.0, 0.5], [3, 8], 8)]
    for n in (5, 12):
        ends = sorted(rng.choice(np.arange(1, n), size=n // 3, replace=False).tolist()) + [n]
        cases.append((rng.random(len(ends)).round(3).tolist(), ends, n))
    return _cases("Exercise 04.1 (incremental rewards)", fn, cases, a2c.incremental_rewards,
                  lambda got, want: got is not None and _close(got, want),
                  "one reward per token, 0 except at the token that ends a scored prefix: for the prefix of "
                  "k tokens, token k − 1 (counting from 0) gets R(T_k) − R(the previous scored prefix), with "
                  "R(empty text) = 0; the rewards then add up to the last value")


def returns_and_advantages(rewards: Sequence[float], values: Sequence[float], discount: float):
    """``(G, A)`` of one episode by drivekit's A2C (:func:`drivekit.algorithms.a2c.discounted_returns` and
    :func:`drivekit.algorithms.a2c.advantages`): the episode as a batch of one row with every token valid."""
    r = torch.tensor([list(rewards)], dtype=torch.float64)
    v = torch.tensor([list(values)], dtype=torch.float64)
    mask = torch.ones_like(r)
    g = a2c.discounted_returns(r, mask, discount)
    return g[0].numpy(), a2c.advantages(g, v, mask)[0].numpy()


def check_returns_and_advantages(fn: Callable) -> bool:
    """Exercise 04.2: ``fn(rewards, values, discount) -> (G, A)`` for one episode: ``rewards[t]`` is the
    reward r_{t+1} that follows token t, ``values[t]`` the critic's V(s_t); G_t = Σ_{k≥t} γ^{k−t} r_{k+1}
    and A_t = G_t − V(s_t), as :func:`drivekit.algorithms.a2c.discounted_returns` / :func:`drivekit.algorithms.a2c.advantages`."""
    rng = _rng(40)
    cases = [([0.0, 0.0, 0.0, 1.5], [0.2, 0.5, 1.0, 1.4], 0.9),  # terminal reward: G_t = γ^(T−1−t)·R
             ([0.5, -0.25, 0.0, 0.75], [0.0, 0.0, 0.0, 0.0], 1.0),  # incremental rewards, γ = 1: G_0 = R(T)
             ([2.0], [0.5], 0.99), ([1.0, 1.0, 1.0], [3.0, 2.0, 1.0], 0.0)]
    cases += [(rng.normal(size=n).round(3).tolist(), rng.normal(size=n).round(3).tolist(), g)
              for n, g in ((7, 0.95), (20, 0.5), (12, 1.0))]
    return _cases("Exercise 04.2 (returns and advantages)", fn, cases, returns_and_advantages,
                  lambda got, want: got is not None and len(got) == 2 and all(map(_close, got, want)),
                  "go backwards from the last token: G_t = rewards[t] + discount · G_{t+1}, with G = 0 after the "
                  "last token; then A_t = G_t − values[t]; return the two sequences (G, A), one value per token")


GRPO_EPS = 1e-4  # trl 1.16 GRPOTrainer: (r − group mean) / (group std + 1e-4)


def group_advantages(rewards: Sequence[float], group_size: int, scale: bool = True) -> np.ndarray:
    """GRPO's group-relative advantages, as trl 1.16's ``GRPOTrainer`` computes them.

    The rewards are consecutive groups of ``group_size`` (the answers sampled for one prompt;
    trl's ``rewards.view(-1, num_generations)``). Each answer's advantage is its reward minus its
    group's mean; with ``scale`` (trl's ``scale_rewards="group"``, its default) divided by the
    group's standard deviation + 1e-4, where the standard deviation is the *unbiased* one (Bessel's
    correction, n − 1: trl's ``nanstd`` = ``torch.std``); ``scale=False`` is ``scale_rewards="none"``.
    A group whose answers all score the same gets advantage 0 either way.
    """
    r = torch.tensor(np.asarray(rewards, dtype=np.float64)).view(-1, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (r.std(dim=1, keepdim=True) + GRPO_EPS)  # torch.std is unbiased by default
    return adv.reshape(-1).numpy()


def check_group_advantages(fn: Callable) -> bool:
    """Exercise 04.3: ``fn(rewards, group_size, scale=True)`` -> GRPO's advantages (:func:`group_advantages`,
    trl 1.16's convention: unbiased std, + 1e-4)."""
    rng = _rng(41)
    base = [([1.0, 0.0, 0.5, 0.5], 4), ([0.2, 0.9, 0.9, 0.9, 0.0, 1.0, 0.4, 0.4], 4),
            ([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], 4),  # a first group that scores the same: nothing to learn
            ([0.3, 0.7, 2.0, 2.0, -1.0, 1.0], 2), (rng.random(16).round(3).tolist(), 8)]
    cases = [(r, g, s) for r, g in base for s in (True, False)]
    return _cases("Exercise 04.3 (GRPO's group advantages)", fn, cases, group_advantages,
                  lambda got, want: got is not None and _close(got, want, 1e-5),
                  "split the rewards into consecutive groups of group_size (the answers of one prompt); in each "
                  "group: reward − the group's mean, and with scale divide by (the group's std + 1e-4), the std "
                  "with Bessel's correction (n − 1, as torch.std; np.std needs ddof=1); return one value per reward")


# ---------------------------------------------------------------------------------------------
# 05 · Stage 3: JSON outputs, R3 and R2 on JSON
# ---------------------------------------------------------------------------------------------
def consistency_level(actions: Sequence[str], reasons: Sequence[str]) -> float:
    """R3's consistency level (:func:`drivekit.text.json_output.structure_score`) of an answer listing these
    action and reason phrases (the other fields filled in)."""
    answer = json.dumps({"scene": "", "actions": list(actions), "reasons": list(reasons), "justification": ""})
    return json_output.structure_score(answer).consistency


def check_consistency(fn: Callable) -> bool:
    """Exercise 05.1: ``fn(actions, reasons) -> float``, the consistency level of R3 for lists of phrases."""
    rng = _rng(50)
    cases = [(["Stop/Slow down"], ["Obstacle: car"]), (["Move forward"], ["Traffic light"]),
             (["Move forward", "Turn left"], ["Road is clear", "No lane on the left"]),
             (["Stop/Slow down"], ["Obstacle: person", "Solid line on the right"]),
             (["Turn right"], ["Solid line on the right", "On the right-turn lane"]),
             (["Stop/Slow down"], []), ([], ["Obstacle: car"]), (["Fly"], ["Obstacle: car"]),
             (["Stop/Slow down"], ["Obstacle: car", "Obstacle: car", "Traffic light is green"]),
             (["Stop/Slow down", "Unicorn"], ["Obstacle: car", "Banana"]), (["Move forward"], ["Banana"])]
    for _ in range(6):
        acts = [ACTION_PHRASES[i] for i in np.flatnonzero(rng.random(N_ACTIONS) < 0.4)]
        cases.append((acts, [REASON_PHRASES[i] for i in np.flatnonzero(rng.random(N_REASONS) < 0.15)]))
    return _cases("Exercise 05.1 (R3's consistency level)", fn, cases, consistency_level,
                  lambda got, want: got is not None and math.isclose(float(got), want, abs_tol=1e-9),
                  "ignore phrases not in the taxonomy and count each reason once; 0 when no known action is listed, "
                  "1 when actions are known but no reason is; otherwise the share of reasons that fit: reason r "
                  "(its index in REASON_PHRASES) belongs to action ACTION_OF_REASON[r]; r < 15 fits when that "
                  "action is chosen, r >= 15 (a reason why NOT to turn) when it is not")


def label_f1_r2(answer: str, actions, reasons) -> float:
    """The course's R2 on a JSON answer (``label_f1`` read through :class:`drivekit.rewards.weighted_reward.OnJson`,
    as notebook 05 trains with it) against the true 0/1 vectors ``actions`` and ``reasons``."""
    reward = OnJson(LabelF1Reward(), "labels")
    return float(reward([answer], actions=[np.asarray(actions)], reasons=[np.asarray(reasons)])[0])


def _label_vectors(actions: Sequence[int], reasons: Sequence[int]) -> tuple[list[int], list[int]]:
    return ([int(i in actions) for i in range(N_ACTIONS)], [int(i in reasons) for i in range(N_REASONS)])


def _label_f1_cases() -> list[tuple[str, list[int], list[int]]]:
    """Answers to two truths (stop for a car at a red light; move forward, no reason given), garbage included."""
    stop, go = _label_vectors([1], [3, 7]), _label_vectors([0], [])
    answer = {"scene": "A car ahead.", "actions": ["Stop/Slow down"], "reasons": ["Obstacle: car", "Traffic light"],
              "justification": "Stop/Slow down because of the car."}
    answers = [json.dumps(answer),
               json.dumps({**answer, "reasons": ["Obstacle: car"]}),
               json.dumps({**answer, "actions": ["Stop/Slow down", "Turn left"], "reasons": ["Road is clear"]}),
               json.dumps({**answer, "actions": ["Move forward"], "reasons": ["Road is clear"]}),
               json.dumps({"actions": "Stop/Slow down", "reasons": ["Obstacle: car"]}),  # actions not a list
               json.dumps({"actions": ["Stop/Slow down", "Stop/Slow down"], "reasons": ["Obstacle: car", 7, "Car"],
                           "mood": "calm"}),  # a repeat, a number, an unknown phrase and an extra key
               json.dumps({"actions": ["stop/slow down"], "reasons": []}),  # not the exact phrase
               json.dumps({"scene": "empty road", "actions": [], "reasons": []}),
               "Action: Stop/Slow down; Reason: Obstacle: car | Traffic light",  # Stage-2 text, not JSON
               json.dumps(answer)[:40],  # truncated
               json.dumps(["Stop/Slow down"]), "", "}{", "null"]
    cases = [(a, *stop) for a in answers]
    cases += [(json.dumps({**answer, "actions": ["Move forward"], "reasons": []}), *go),  # no reason on either side
              (json.dumps({**answer, "actions": ["Move forward"], "reasons": ["Road is clear"]}), *go)]
    return cases


def check_label_f1_r2(fn: Callable) -> bool:
    """Exercise 05.2: ``fn(answer, actions, reasons) -> float``, the label-F1 R2 of a JSON answer
    (:func:`label_f1_r2`), on answers of every kind, garbage included."""
    return _cases("Exercise 05.2 (label-F1 R2 on JSON)", fn, _label_f1_cases(), label_f1_r2,
                  lambda got, want: got is not None and math.isclose(float(got), want, abs_tol=1e-9),
                  "0 unless the text is one JSON object whose 'actions' / 'reasons' lists hold at least one exact "
                  "taxonomy phrase (other items are skipped, a repeat counts once); then (F1 of the actions + F1 "
                  "of the reasons) / 2, F1 = 2·|T ∩ P| / (|T| + |P|), and 1 when T and P are both empty")


# ---------------------------------------------------------------------------------------------
# 06 · F1 and the sign test
# ---------------------------------------------------------------------------------------------
WORKED_TRUE = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 1]])  # the 3-clip example of notebook 06
WORKED_PRED = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])


def check_sample_f1(my_f1: Callable) -> bool:
    """Exercise 06.1: ``my_f1(y_true, y_pred) -> float``, sample-level F1 (``metrics.sample_f1``)."""
    rng = _rng(6)
    cases = [(WORKED_TRUE, WORKED_PRED), (np.zeros((2, 4), int), np.zeros((2, 4), int))]
    cases += [(_one_hot_rows(rng, n, w), _one_hot_rows(rng, n, w)) for n, w in ((5, 4), (30, 21), (1, 21))]
    return _cases("Exercise 06.1 (sample-level F1)", my_f1, cases, metrics.sample_f1,
                  lambda got, want: got is not None and math.isclose(float(got), want, abs_tol=1e-9),
                  "per clip: F1 = 2·|true ∩ predicted| / (|true| + |predicted|), 0 when both are empty; "
                  "then the mean over clips")


def check_sign_test(my_p: Callable) -> bool:
    """Exercise 06.2: ``my_p(fixed, broken) -> float``, the exact two-sided sign test (``stats.sign_test``)."""
    cases = [(0, 0), (3, 0), (5, 5), (7, 2), (2, 7), (93, 2), (20, 11), (1, 0), (12, 3)]
    return _cases("Exercise 06.2 (sign test)", my_p, cases, stats.sign_test,
                  lambda got, want: got is not None and math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-12),
                  "twice the smaller tail of Binomial(n, 1/2), at most 1: n = fixed + broken, k = min(fixed, broken), "
                  "p = min(1, 2 · Σ_{i≤k} C(n, i) / 2^n); p = 1 when n = 0")
