"""Self-checks of notebooks 04 (A2C: incremental rewards, returns and advantages, the loss) and 04b (GRPO: group
advantages, PPO's clipped objective), with the reference implementations they compare against."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from drivekit.algorithms import a2c
from drivekit.course.exercises.checking import (NOT_ATTEMPTED, _attempt, _cases, _close, _diagnose, _fail, _passed,
                                                _rng, _same)


# ---------------------------------------------------------------------------------------------
# 04 · A2C
# ---------------------------------------------------------------------------------------------
def check_incremental_rewards(fn: Callable) -> bool:
    """Exercise 04.1: ``fn(values_at_ends, ends, length)`` -> per-token rewards of one answer of ``length``
    tokens, from the rewards R(T_k) of its prefixes of ``ends`` tokens (:func:`drivekit.algorithms.a2c.incremental_rewards`)."""
    rng = _rng(42)
    cases = [([0.25, 0.5, 1.5], [2, 5, 6], 6), ([0.8], [4], 4), ([0.3, 0.1, 0.9, 0.9], [1, 2, 3, 4], 4),
             ([1.0, 0.5], [3, 8], 8)]
    for n in (5, 12):
        ends = sorted(rng.choice(np.arange(1, n), size=n // 3, replace=False).tolist()) + [n]
        cases.append((rng.random(len(ends)).round(3).tolist(), ends, n))

    def late(values, ends, length):  # one token late
        rewards = np.zeros(length)
        for k, d in zip(ends, np.diff([0.0, *values])):
            if k < length:
                rewards[k] = d
        return rewards

    def early(values, ends, length):  # one token early
        rewards = np.zeros(length)
        for k, d in zip(ends, np.diff([0.0, *values])):
            if k >= 2:
                rewards[k - 2] = d
        return rewards

    def from_first(values, ends, length):  # the first scored prefix taken as the zero: R(empty text) forgotten
        rewards = np.zeros(length)
        for k, d in zip(ends, np.diff([values[0], *values])):
            rewards[k - 1] = d
        return rewards

    def terminal(values, ends, length):
        rewards = np.zeros(length)
        rewards[length - 1] = values[-1]
        return rewards

    mistakes = [
        (lambda values, ends, n: np.bincount(np.asarray(ends) - 1, weights=values, minlength=n),
         "each scored token got R(T_k) itself; give it the change, R(T_k) − R(the previous scored prefix), so that "
         "the rewards add up to the whole answer's R"),
        (late, "one token late: the prefix of k tokens ends at token index k − 1 (counting from 0)"),
        (early, "one token early: the prefix of k tokens ends at token index k − 1, not k − 2 (ends counts tokens "
                "from 1, indices count from 0)"),
        (from_first, "the first scored prefix got 0: the change is measured from R of the empty text, which is 0, so "
                     "the token that closes the first scored prefix gets R(T_k) itself"),
        (terminal, "that is the terminal mode (the whole answer's R on its last token): in the incremental mode every "
                   "token that closes a scored prefix gets the change of R there"),
    ]
    return _cases("Exercise 04.1 (incremental rewards)", fn, cases, a2c.incremental_rewards,
                  lambda got, want: got is not None and _close(got, want),
                  "one reward per token, 0 except at the token that ends a scored prefix: for the prefix of "
                  "k tokens, token k − 1 (counting from 0) gets R(T_k) − R(the previous scored prefix), with "
                  "R(empty text) = 0; the rewards then add up to the last value", mistakes)


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
    def forwards(r, v, d):  # rewards accumulated from the first token on
        g = np.zeros(len(r))
        running = 0.0
        for t in range(len(r)):
            running = r[t] + d * running
            g[t] = running
        return g, g - np.asarray(v)

    def undiscounted(r, v, d):
        g = np.cumsum(np.asarray(r, dtype=float)[::-1])[::-1]
        return g, g - np.asarray(v)

    def flipped(r, v, d):
        g, a = returns_and_advantages(r, v, d)
        return g, -a

    def swapped(r, v, d):
        g, a = returns_and_advantages(r, v, d)
        return a, g

    mistakes = [
        (swapped, "you returned (A, G): return the returns first, then the advantages, (G, A)"),
        (flipped, "the advantage's sign is flipped: A_t = G_t − V(s_t), not V(s_t) − G_t (a token that turned out "
                  "better than the critic expected gets a positive advantage, and is made more likely)"),
        (undiscounted, "you left out the discount: G_t = rewards[t] + discount · G_{t+1} (with discount < 1 a "
                       "later reward counts less), going backwards from the last token"),
        (forwards, "you accumulated forwards, over the rewards before t: G_t sums the rewards from t to the end, "
                   "so go backwards from the last token"),
        (lambda r, v, d: (np.asarray(r, dtype=float), np.asarray(r, dtype=float) - np.asarray(v)),
         "G_t is not the one reward r_{t+1}: it sums every reward from t to the end, discounted (go backwards)"),
    ]
    return _cases("Exercise 04.2 (returns and advantages)", fn, cases, returns_and_advantages,
                  lambda got, want: got is not None and len(got) == 2 and all(map(_close, got, want)),
                  "go backwards from the last token: G_t = rewards[t] + discount · G_{t+1}, with G = 0 after the "
                  "last token; then A_t = G_t − values[t]; return the two sequences (G, A), one value per token",
                  mistakes)


# The A2C loss (exercise 04.3): drivekit's A2CTrainer computes it so (drivekit.algorithms.a2c, its training step)
def a2c_loss(logp: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor, returns: torch.Tensor,
             mask: torch.Tensor, value_coef: float, entropy_coef: float) -> torch.Tensor:
    """One step's A2C loss, as :class:`drivekit.algorithms.a2c.A2CTrainer` computes it (without its KL term):
    ``-mean(A·log π) + c_v·mean((V − G)²) − c_e·mean(H)``, every mean over the valid tokens (``mask``), with the
    advantage ``A = G − V`` detached (:func:`drivekit.algorithms.a2c.advantages`): the policy term moves the
    policy only, the value term the critic only."""
    adv = a2c.advantages(returns, values, mask)
    policy = -a2c.masked_mean(adv * logp, mask)
    value = a2c.masked_mean((values - returns) ** 2, mask)
    return policy + value_coef * value - entropy_coef * a2c.masked_mean(entropy, mask)


def _a2c_cases() -> list[dict]:
    """Batches of 2 or 3 answers, padded (mask 0 at the end of the shorter ones), with coefficients."""
    g = torch.Generator().manual_seed(43)
    cases = []
    for (b, t), c_v, c_e in (((2, 4), 0.5, 0.01), ((3, 6), 1.0, 0.1), ((2, 5), 0.25, 0.0)):
        mask = torch.ones(b, t)
        mask[0, t - 1:] = 0  # the first answer is a token shorter: padding
        mask[-1, t - 2:] = 0
        cases.append(dict(logp=-torch.rand(b, t, generator=g) * 3, entropy=torch.rand(b, t, generator=g) * 2,
                          values=torch.randn(b, t, generator=g), returns=torch.randn(b, t, generator=g) + 0.5,
                          mask=mask, value_coef=c_v, entropy_coef=c_e))
    return cases


def _loss_and_grads(fn: Callable, case: Mapping) -> tuple[float, dict[str, np.ndarray]]:
    """``fn``'s loss on fresh copies of the case's tensors, and its gradients with respect to ``logp``,
    ``entropy`` and ``values`` (zeros where the loss does not depend on one)."""
    leaves = {k: case[k].clone().requires_grad_(True) for k in ("logp", "entropy", "values")}
    loss = fn(leaves["logp"], leaves["entropy"], leaves["values"], case["returns"].clone(), case["mask"].clone(),
              case["value_coef"], case["entropy_coef"])
    loss = torch.as_tensor(loss)
    if loss.numel() != 1:
        raise ValueError(f"the loss must be one number, not a tensor of shape {tuple(loss.shape)}")
    if loss.requires_grad:
        loss.backward()
    return float(loss.detach()), {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy() for k, v in leaves.items()}


def check_a2c_loss(fn: Callable) -> bool:
    """Exercise 04.3: ``fn(logp, entropy, values, returns, mask, value_coef, entropy_coef) -> loss`` (a scalar
    tensor), A2C's loss as :func:`a2c_loss`: its value and its gradients with respect to ``logp``, ``entropy`` and
    ``values`` are compared, so an advantage that is not detached (same value, other gradient) is found."""
    name = "Exercise 04.3 (the A2C loss)"
    mm = a2c.masked_mean

    def undetached(logp, entropy, values, returns, mask, c_v, c_e):
        return (-mm((returns - values) * logp, mask) + c_v * mm((values - returns) ** 2, mask)
                - c_e * mm(entropy, mask))

    def policy_sign(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, mask, c_v, c_e) + 2 * mm(a2c.advantages(returns, values, mask) * logp, mask)

    def entropy_sign(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, mask, c_v, c_e) + 2 * c_e * mm(entropy, mask)

    def unmasked(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, torch.ones_like(mask), c_v, c_e)

    def no_value_coef(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, mask, 1.0, c_e) if c_v != 1.0 else None

    def critic_frozen(logp, entropy, values, returns, mask, c_v, c_e):  # V detached in the value term too
        return a2c_loss(logp, entropy, values.detach(), returns, mask, c_v, c_e)

    def no_entropy(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, mask, c_v, 0.0) if c_e != 0.0 else None

    def summed(logp, entropy, values, returns, mask, c_v, c_e):
        return a2c_loss(logp, entropy, values, returns, mask, c_v, c_e) * mask.sum()

    def no_baseline(logp, entropy, values, returns, mask, c_v, c_e):  # REINFORCE: A = G
        return (-mm(returns * logp, mask) + c_v * mm((values - returns) ** 2, mask) - c_e * mm(entropy, mask))

    mistakes = [
        (undetached, "the loss is right but the critic's gradient is not: detach the advantage in the policy term "
                     "(A = returns − values.detach()). Otherwise the policy term also trains the critic, pushing V to "
                     "make A·log π small instead of predicting G"),
        (policy_sign, "the policy term's sign is flipped (a minus missing in front of it, or the advantage written "
                      "V − G): the loss holds −A·log π with A = G − V (mean over valid tokens), so that gradient descent "
                      "raises log π where A > 0 and lowers it where A < 0"),
        (critic_frozen, "the critic gets no gradient: detach V only inside the advantage; the value term "
                        "value_coef · mean((values − returns)²) must keep values' gradient, or the critic never learns"),
        (no_baseline, "the policy term weighs log π by the return G, not by the advantage: subtract the critic's "
                      "value, A = returns − values.detach() (the baseline that cuts the variance)"),
        (no_entropy, "the entropy term is missing: subtract entropy_coef · mean(entropy) (a bonus for staying uncertain)"),
        (entropy_sign, "the entropy term's sign is flipped: the bonus is subtracted, − entropy_coef · mean(H), so that "
                       "minimising the loss keeps the policy uncertain rather than collapsing it"),
        (unmasked, "you averaged over every position, padding included: average over the valid tokens only, "
                   "(x · mask).sum() / mask.sum(), as a2c.masked_mean does"),
        (no_value_coef, "the value term is weighed by value_coef: + value_coef · mean((V − G)²)"),
        (summed, "you summed over the tokens: each term is a mean over the valid tokens, (x · mask).sum() / mask.sum()"),
    ]
    cases = _a2c_cases()
    for i, case in enumerate(cases):
        try:
            got = _loss_and_grads(fn, case)
        except NotImplementedError:
            return _attempt(name, fn, *case.values()) is not NOT_ATTEMPTED  # prints "not attempted yet"
        want = _loss_and_grads(a2c_loss, case)
        same = lambda g, w: math.isclose(g[0], w[0], rel_tol=1e-5, abs_tol=1e-6) and all(
            np.allclose(g[1][k], w[1][k], rtol=1e-4, atol=1e-6) for k in w[1])
        if not same(got, want):
            hint = "loss = −mean(A·logp) + value_coef·mean((values − returns)²) − entropy_coef·mean(entropy), " \
                   "each mean over the valid tokens (mask), with A = returns − values.detach()"
            for wrong, why in mistakes:
                if wrong(*(case[k] for k in ("logp", "entropy", "values", "returns", "mask", "value_coef",
                                             "entropy_coef"))) is None:
                    continue
                if same(got, _loss_and_grads(wrong, case)):
                    hint = why
                    break
            what = "loss"  # or, where the loss agrees, the first gradient that does not
            if math.isclose(got[0], want[0], rel_tol=1e-5, abs_tol=1e-6):
                what = next(k for k in want[1] if not np.allclose(got[1][k], want[1][k], rtol=1e-4, atol=1e-6))

            def shown(result):
                return f"loss {result[0]:.6f}" if what == "loss" else \
                    f"d loss / d {what} = {np.array2string(result[1][what].ravel()[:6], precision=4)} ..."

            _fail(name, f"batch {i} ({tuple(case['mask'].shape)}, value_coef {case['value_coef']}, entropy_coef "
                        f"{case['entropy_coef']})", shown(want), shown(got), hint)
    return _passed(name, len(cases))


# ---------------------------------------------------------------------------------------------
# 04b · GRPO
# ---------------------------------------------------------------------------------------------
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
    """Exercise 04b.1: ``fn(rewards, group_size, scale=True)`` -> GRPO's advantages (:func:`group_advantages`,
    trl 1.16's convention: unbiased std, + 1e-4)."""
    rng = _rng(41)
    base = [([1.0, 0.0, 0.5, 0.5], 4), ([0.2, 0.9, 0.9, 0.9, 0.0, 1.0, 0.4, 0.4], 4),
            ([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], 4),  # a first group that scores the same: nothing to learn
            ([0.3, 0.7, 2.0, 2.0, -1.0, 1.0], 2), (rng.random(16).round(3).tolist(), 8)]
    cases = [(r, g, s) for r, g in base for s in (True, False)]

    def groups(r, g):
        return np.asarray(r, dtype=float).reshape(-1, g)

    def biased(r, g, scale=True):
        x = groups(r, g)
        c = x - x.mean(axis=1, keepdims=True)
        return (c / (x.std(axis=1, keepdims=True) + GRPO_EPS) if scale else c).ravel()

    def no_eps(r, g, scale=True):
        x = groups(r, g)
        c = x - x.mean(axis=1, keepdims=True)
        return (c / x.std(axis=1, ddof=1, keepdims=True) if scale else c).ravel()

    def whole_batch(r, g, scale=True):
        x = np.asarray(r, dtype=float)
        c = x - x.mean()
        return c / (x.std(ddof=1) + GRPO_EPS) if scale else c

    mistakes = [
        (lambda r, g, scale=True: -group_advantages(r, g, scale),
         "the sign is flipped: an answer's reward minus its group's mean, so that the better answers of a clip get "
         "positive advantages"),
        (lambda r, g, scale=True: group_advantages(r, g, True),
         "with scale=False leave the division by the std out (trl's scale_rewards='none')"),
        (biased, "np.std divides by n (the biased std): trl's std has Bessel's correction, n − 1 (np.std(..., "
                 "ddof=1), or torch.std)"),
        (no_eps, "add 1e-4 to the group's std (trl's epsilon): without it a group whose answers score the same "
                 "divides 0 by 0"),
        (whole_batch, "normalise within each group of group_size consecutive rewards (the answers of one clip), "
                      "not over the whole batch"),
    ]
    return _cases("Exercise 04b.1 (GRPO's group advantages)", fn, cases, group_advantages,
                  lambda got, want: got is not None and _close(got, want, 1e-5),
                  "split the rewards into consecutive groups of group_size (the answers of one prompt); in each "
                  "group: reward − the group's mean, and with scale divide by (the group's std + 1e-4), the std "
                  "with Bessel's correction (n − 1, as torch.std; np.std needs ddof=1); return one value per reward",
                  mistakes)


def clipped_objective(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      epsilon: float = 0.2) -> torch.Tensor:
    """PPO's clipped surrogate objective per token, as trl 1.16's ``GRPOTrainer`` computes it (its loss is the
    negative): ``min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)`` with ``ρ = exp(logp − old_logp)``."""
    ratio = torch.exp(logp - old_logp)
    return torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * advantages)


def _clip_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    """(logp, old_logp, advantages, epsilon): ratios inside and outside the clip range on both sides, with
    positive and negative advantages (every token's answer advantage already copied to it); no ratio on a bound of
    the range, where min's gradient would depend on how a tie is broken."""
    ratios = torch.tensor([[0.5, 0.9, 1.1, 1.5], [0.5, 0.9, 1.1, 1.5], [0.7, 1.0, 1.25, 3.0]], dtype=torch.float64)
    old = -torch.tensor([[1.0, 2.0, 0.5, 3.0], [2.5, 0.2, 1.0, 1.5], [0.1, 4.0, 2.0, 0.7]], dtype=torch.float64)
    adv = torch.tensor([[1.5], [-0.7], [0.3]], dtype=torch.float64).expand(3, 4).clone()
    g = torch.Generator().manual_seed(44)
    rand_old = -torch.rand(4, 7, generator=g, dtype=torch.float64) * 4
    rand_new = rand_old + torch.randn(4, 7, generator=g, dtype=torch.float64) * 0.3
    rand_adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 7).clone()
    return [(old + ratios.log(), old, adv, 0.2), (rand_new, rand_old, rand_adv, 0.2), (old + ratios.log(), old, adv, 0.15)]


def check_clipped_objective(fn: Callable) -> bool:
    """Exercise 04b.2: ``fn(logp, old_logp, advantages, epsilon) -> (B, T)``, PPO's clipped objective per token
    (:func:`clipped_objective`); its gradient with respect to ``logp`` is checked too (ρ·A where the unclipped
    term is the smaller, 0 where the clipped one is)."""
    name = "Exercise 04b.2 (PPO's clipped objective)"

    def clip_ratio(logp, old, adv, eps):
        return torch.clamp(torch.exp(logp - old), 1 - eps, 1 + eps)

    mistakes = [
        (lambda logp, old, adv, eps: torch.maximum(torch.exp(logp - old) * adv, clip_ratio(logp, old, adv, eps) * adv),
         "max instead of min: the objective takes the smaller of the two terms, a pessimistic bound, so that moving "
         "ρ past the clip range never gains anything while a move that hurts is never hidden"),
        (lambda logp, old, adv, eps: torch.minimum(torch.exp(logp - old) * adv,
                                                   torch.exp(logp - old) * torch.clamp(adv, 1 - eps, 1 + eps)),
         "you clipped the advantage: clip the probability ratio ρ to [1 − ε, 1 + ε] and multiply the clipped ρ by "
         "the advantage as it is"),
        (lambda logp, old, adv, eps: clip_ratio(logp, old, adv, eps) * adv,
         "the clipped term alone is not the objective: take min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A), so that where ρ moved "
         "the wrong way (ρ < 1 − ε with A > 0, or ρ > 1 + ε with A < 0) the full penalty stays"),
        (lambda logp, old, adv, eps: -clipped_objective(logp, old, adv, eps),
         "the sign is flipped: return the objective (to maximise), min(ρ·A, clip(ρ)·A); trl's loss is its negative"),
        (lambda logp, old, adv, eps: torch.minimum((logp - old) * adv, torch.clamp(logp - old, 1 - eps, 1 + eps) * adv),
         "ρ is a ratio of probabilities: exp(logp − old_logp), not the difference of the log-probabilities"),
        (lambda logp, old, adv, eps: clipped_objective(old, logp, adv, eps),
         "ρ is upside down: π_θ / π_old = exp(logp − old_logp), the new policy over the one that sampled"),
    ]
    cases = _clip_cases()
    for i, (logp, old, adv, eps) in enumerate(cases):
        leaf = logp.clone().requires_grad_(True)
        try:
            got = fn(leaf, old.clone(), adv.clone(), eps)
        except NotImplementedError:
            return _attempt(name, fn, logp, old, adv, eps) is not NOT_ATTEMPTED
        want = clipped_objective(logp, old, adv, eps)
        case = f"case {i}: ratios {np.array2string(torch.exp(logp - old).numpy().ravel()[:12], precision=2)}, " \
               f"epsilon {eps}"
        if not _same(lambda g, w: _close(g, w, 1e-6), got, want):
            hint = _diagnose(got, (logp, old, adv, eps), lambda g, w: _close(g, w, 1e-6), mistakes,
                             "min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A) per token, with ρ = exp(logp − old_logp)")
            _fail(name, case, want.numpy().round(4), got, hint)
        reference = logp.clone().requires_grad_(True)
        clipped_objective(reference, old, adv, eps).sum().backward()
        got_grad = torch.autograd.grad(torch.as_tensor(got).sum(), leaf, allow_unused=True)[0] \
            if isinstance(got, torch.Tensor) and got.requires_grad else None
        if got_grad is None or not _close(got_grad, reference.grad, 1e-6):
            _fail(name, case + " (the gradient with respect to logp)", reference.grad.numpy().round(4), got_grad,
                  "compute it with torch operations on logp (torch.exp, torch.clamp, torch.minimum), without .detach(), "
                  ".item() or numpy, so that the gradient flows through ρ")
    return _passed(name, len(cases))
