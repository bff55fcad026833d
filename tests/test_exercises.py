"""The notebooks' exercises: every solution in ``notebooks/solutions/`` passes the checker its notebook
calls (``drivekit.course.exercises``), a deliberately wrong answer is rejected with a helpful message, and
an exercise not attempted yet (the stub) is reported, not failed."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from micro import items

from drivekit.course import exercises
from drivekit.algorithms import sft
from drivekit.models.vlm import LoraSettings, load_vlm

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def solutions(notebook: str):
    """The solution module of a notebook (its file name starts with the notebook's number)."""
    path = next((NOTEBOOKS / "solutions").glob(f"{notebook}_*.py"))
    spec = importlib.util.spec_from_file_location(f"solutions_{notebook}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hint_of(check, fn) -> str:
    """The hint of the wrong-answer ``ExerciseError`` that ``check`` raises on ``fn``."""
    with pytest.raises(exercises.ExerciseError, match="wrong answer") as error:
        check(fn)
    return str(error.value).split("hint:", 1)[1]


def stub(*args):
    raise NotImplementedError


@pytest.fixture(scope="module")
def micro_batch_and_model(saved):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), device="cpu")
    return sft.Collator(processor)(items(3, n_frames=2)), model


def biased_group_advantages(rewards, group_size, scale):
    groups = np.asarray(rewards, dtype=float).reshape(-1, group_size)
    centred = groups - groups.mean(axis=1, keepdims=True)
    return (centred / (groups.std(axis=1, keepdims=True) + 1e-4) if scale else centred).ravel()


def returns_forwards(r, v, d):
    """G accumulated from the first token on (the wrong direction)."""
    g, running = [], 0.0
    for x in r:
        running = x + d * running
        g.append(running)
    return np.array(g), np.array(g) - np.asarray(v)


def consistency(actions, reasons, why_not=True, once=True):
    """R3's consistency level written with a named mistake: every reason fits its own action (why_not=False),
    or repeats counted (once=False)."""
    chosen = {exercises.ACTION_PHRASES.index(a) for a in actions if a in exercises.ACTION_PHRASES}
    known = [exercises.REASON_PHRASES.index(r) for r in reasons if r in exercises.REASON_PHRASES]
    known = list(dict.fromkeys(known)) if once else known
    if not chosen:
        return 0.0
    if not known:
        return 1.0
    return float(np.mean([(exercises.ACTION_OF_REASON[r] in chosen) == (r < 15 or not why_not) for r in known]))


def sign_tail(fixed, broken, k=min, times=2, cap=True):
    """The sign test written with a named mistake (one tail, no cap at 1, the larger count's tail)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    p = times * sum(math.comb(n, i) for i in range(k(fixed, broken) + 1)) / 2 ** n
    return min(1.0, p) if cap else p


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


# (checker, the solution's name, a wrong answer made with one named mistake, a fragment of the hint it must get)
SIMPLE = {
    "00": [(exercises.check_decode, "decode",  # forgets the reasons
            lambda a, r: ([p for p, v in zip(exercises.ACTION_PHRASES, a) if v], []), "REASON_PHRASES"),
           (exercises.check_decode, "decode",  # indices, not phrases
            lambda a, r: ([i for i, v in enumerate(a) if v], [i for i, v in enumerate(r) if v]), "you returned the indices"),
           (exercises.check_decode, "decode",  # the first 1 of each vector only
            lambda a, r: (solutions("00").decode(a, r)[0][:1], solutions("00").decode(a, r)[1][:1]), "only the first"),
           (exercises.check_cooccurrence, "cooccurrence", lambda a, r: np.asarray(a).T @ np.asarray(a), "(4, 21)"),
           (exercises.check_cooccurrence, "cooccurrence", lambda a, r: np.asarray(r).T @ np.asarray(a), "(21, 4)"),
           (exercises.check_cooccurrence, "cooccurrence",
            lambda a, r: (np.asarray(a).T @ np.asarray(r) > 0).astype(int), "count the clips")],
    "01": [(exercises.check_stratified_split, "stratified_split",
            lambda labels, share, seed: list(range(round(share * len(labels)))), "EACH label"),
           (exercises.check_stratified_split, "stratified_split",  # the train part
            lambda labels, share, seed: sorted(set(range(len(labels))) - set(solutions("01").stratified_split(labels, share, seed))),
            "the other part"),
           (exercises.check_stratified_split, "stratified_split",  # a mask
            lambda labels, share, seed: np.isin(np.arange(len(labels)), solutions("01").stratified_split(labels, share, seed)),
            "not a mask")],
    "03": [(exercises.check_r1, "my_r1", lambda f, t: float(unit(f.mean(0)) @ unit(t)), "normalise each frame"),
           (exercises.check_r1, "my_r1", lambda f, t: float(unit(unit(f).mean(0)) @ unit(t)), "not normalised again"),
           (exercises.check_r1, "my_r1", lambda f, t: float(unit(f).mean(0) @ t), "the text embedding"),
           (exercises.check_ordered_r1, "ordered_r1", lambda f, t: float(exercises.r1(f, t)), "different weights")],
    "04": [(exercises.check_returns_and_advantages, "my_returns_advantages",  # forgets the discount
            lambda r, v, d: (np.cumsum(r[::-1])[::-1], np.cumsum(r[::-1])[::-1] - np.asarray(v)), "left out the discount"),
           (exercises.check_returns_and_advantages, "my_returns_advantages",  # A = V − G
            lambda r, v, d: (lambda g, a: (g, -a))(*exercises.returns_and_advantages(r, v, d)), "sign is flipped"),
           (exercises.check_returns_and_advantages, "my_returns_advantages", returns_forwards, "accumulated forwards"),
           (exercises.check_incremental_rewards, "my_incremental_rewards",  # each prefix's reward, not its increase
            lambda values, ends, n: np.bincount(np.asarray(ends) - 1, weights=values, minlength=n), "R(T_k) − R("),
           (exercises.check_incremental_rewards, "my_incremental_rewards",  # one token late
            lambda values, ends, n: np.concatenate([[0.0], solutions("04").my_incremental_rewards(values, ends, n)[:-1]]),
            "one token late")],
    "04b": [(exercises.check_group_advantages, "my_group_advantages",  # np.std's default: the biased std
             lambda r, g, scale=True: biased_group_advantages(r, g, scale), "Bessel"),
            (exercises.check_group_advantages, "my_group_advantages",  # the mean minus the reward
             lambda r, g, scale=True: -solutions("04b").my_group_advantages(r, g, scale), "sign is flipped"),
            (exercises.check_group_advantages, "my_group_advantages",  # no epsilon
             lambda r, g, scale=True: (lambda x: ((x - x.mean(1, keepdims=True)) / x.std(1, ddof=1, keepdims=True)
                                                  if scale else x - x.mean(1, keepdims=True)).ravel())(
                 np.asarray(r, dtype=float).reshape(-1, g)), "add 1e-4"),
            (exercises.check_group_advantages, "my_group_advantages",  # the whole batch as one group
             lambda r, g, scale=True: solutions("04b").my_group_advantages(r, len(r), scale), "not over the whole batch"),
            (exercises.check_group_advantages, "my_group_advantages",  # scale ignored
             lambda r, g, scale=True: solutions("04b").my_group_advantages(r, g, True), "scale=False")],
    "05": [(exercises.check_consistency, "my_consistency",  # every reason fits whatever the action
            lambda actions, reasons: 1.0 if set(actions) & set(exercises.ACTION_PHRASES) else 0.0,
            "every known reason as fitting"),
           (exercises.check_consistency, "my_consistency",  # reasons 15-20 read like 0-14
            lambda actions, reasons: consistency(actions, reasons, why_not=False), "say why a turn is NOT possible"),
           (exercises.check_consistency, "my_consistency",  # a repeated reason counted twice
            lambda actions, reasons: consistency(actions, reasons, once=False), "count each reason once"),
           (exercises.check_label_f1_r2, "my_label_f1_r2",  # scores the labels of the Stage-2 parser, JSON or not
            lambda answer, a, r: float(exercises.LabelF1Reward()([answer], actions=[np.asarray(a)],
                                                                 reasons=[np.asarray(r)])[0]), "one JSON object")],
    "06": [(exercises.check_sample_f1, "my_sample_f1",
            lambda t, p: float((np.asarray(t) == np.asarray(p)).mean()), "(accuracy)"),
           (exercises.check_sample_f1, "my_sample_f1",  # pooled counts
            lambda t, p: float(exercises.metrics.f1_score(np.asarray(t), np.asarray(p), average="micro", zero_division=0)),
            "micro F1"),
           (exercises.check_sign_test, "my_sign_test", lambda f, b: 0.5 ** (f + b), "one tail"),
           (exercises.check_sign_test, "my_sign_test", lambda f, b: sign_tail(f, b, times=1), "one tail"),
           (exercises.check_sign_test, "my_sign_test", lambda f, b: sign_tail(f, b, cap=False), "cap p at 1"),
           (exercises.check_sign_test, "my_sign_test", lambda f, b: sign_tail(f, b, k=max), "k = min(fixed, broken)")],
}
def test_group_advantages_follow_trl_grpo_trainer():
    """The reference of exercise 04.2 is trl's formula (GRPOTrainer, ``scale_rewards`` "group" and "none"):
    ``rewards - mean`` of the group, divided by trl's ``nanstd`` of the group + 1e-4."""
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([0.2, 0.9, 0.9, 0.9, 0.0, 1.0, 0.4, 0.4, 1.0, 1.0, 1.0, 1.0])
    grouped = rewards.view(-1, 4)
    centred = rewards - grouped.mean(dim=1).repeat_interleave(4)
    scaled = centred / (nanstd(grouped, dim=1).repeat_interleave(4) + 1e-4)
    assert np.allclose(exercises.group_advantages(rewards.tolist(), 4), scaled.numpy(), atol=1e-6)
    assert np.allclose(exercises.group_advantages(rewards.tolist(), 4, scale=False), centred.numpy(), atol=1e-6)
    assert np.allclose(exercises.group_advantages(rewards.tolist(), 4)[-4:], 0.0)  # a group that scores the same


def test_returns_and_advantages_of_a_terminal_reward():
    """One reward R on the last of T tokens: G_t = γ^(T−1−t)·R, the formula notebooks 04 and 05 write."""
    returns, adv = exercises.returns_and_advantages([0.0, 0.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.5], 0.5)
    assert np.allclose(returns, [0.25, 0.5, 1.0, 2.0])
    assert np.allclose(adv, returns - 0.5)


def test_a_function_that_returns_nothing_is_wrong_not_unattempted():
    with pytest.raises(exercises.ExerciseError):
        exercises.check_sign_test(lambda fixed, broken: None)


def test_split_sizes_against_a_real_split():
    from drivekit.data.bddoia import Sample
    from drivekit.data.toy_split import make_toy_split

    per_action = [688, 1395, 206, 241]  # the synthetic pool's single-label clips per action (notebook 01)
    samples = [Sample(name=f"c{a}_{i}.jpg", split="train", actions=tuple(int(k == a) for k in range(4)),
                      reasons=(1,) + (0,) * 20)
               for a, n in enumerate(per_action) for i in range(n)]
    for fraction in (1 / 8, 1 / 32):
        split = make_toy_split(samples, seed=0, train_fraction=fraction)
        observed = split.counts().loc["total"].to_dict()
        assert exercises.check_split_sizes(solutions("01").predict_sizes, per_action, observed, fraction)
        with pytest.raises(exercises.ExerciseError, match="'test'"):
            exercises.check_split_sizes(lambda c, f: {"test": sum(c) // 4, "train_full": 0, "train": 0}, per_action,
                                        observed, fraction)
        with pytest.raises(exercises.ExerciseError, match="the other way round"):  # test and train_full swapped
            exercises.check_split_sizes(lambda c, f: {"test": round(0.8 * sum(c)), "train_full": 0, "train": 0},
                                        per_action, observed, fraction)
        sizes = solutions("01").predict_sizes(per_action, fraction)
        with pytest.raises(exercises.ExerciseError, match="not of all clips"):  # train from every clip
            exercises.check_split_sizes(lambda c, f: {**sizes, "train": round(f * sum(c))}, per_action, observed, fraction)
        assert exercises.check_split_sizes(stub, per_action, observed, fraction) is False
    with pytest.raises(exercises.ExerciseError, match="not the proposal's 1/8"):  # the proposal's share at 1/32
        exercises.check_split_sizes(lambda c, f: solutions("01").predict_sizes(c, 1 / 8), per_action, observed, 1 / 32)


def test_label_mask_and_lora_parameters_on_a_real_batch_and_model(micro_batch_and_model):
    batch, model = micro_batch_and_model
    s = solutions("02")
    assert exercises.check_label_mask(s.mask_labels, batch)
    with pytest.raises(exercises.ExerciseError, match="prompt"):  # padding masked, prompt not
        exercises.check_label_mask(lambda ids, mask, n: ids.masked_fill(mask == 0, -100), batch)
    with pytest.raises(exercises.ExerciseError, match="padding"):  # prompt masked, padding not
        exercises.check_label_mask(lambda ids, mask, n: torch.stack(
            [row.masked_fill(torch.arange(len(row)) < k, -100) for row, k in zip(ids, n)]), batch)
    with pytest.raises(exercises.ExerciseError, match="don't shift"):  # labels shifted as the logits are
        exercises.check_label_mask(lambda ids, mask, n: torch.nn.functional.pad(
            s.mask_labels(ids, mask, n)[:, 1:], (0, 1), value=-100), batch)
    assert exercises.check_label_mask(stub, batch) is False
    assert exercises.check_lora_parameters(s.lora_parameters, model)
    with pytest.raises(exercises.ExerciseError, match="add their sizes"):
        exercises.check_lora_parameters(lambda i, o, r: r * i * o, model)
    with pytest.raises(exercises.ExerciseError, match="is frozen"):
        exercises.check_lora_parameters(lambda i, o, r: i * o + r * (i + o), model)
    assert exercises.check_lora_parameters(stub, model) is False


# The notebooks with exercise cells, by number (a notebook's number is its name up to the first "_": 04b).
WITH_EXERCISES = ("00", "01", "02", "03", "04", "04b", "05", "06")


def number(path: Path) -> str:
    return path.name.split("_", 1)[0]


def test_every_notebook_is_numbered_and_has_its_exercises_listed():
    assert {number(p) for p in NOTEBOOKS.glob("0*.ipynb")} == set(WITH_EXERCISES)


@pytest.mark.parametrize("path", [p for p in sorted(NOTEBOOKS.glob("0*.ipynb")) if number(p) in WITH_EXERCISES],
                         ids=lambda p: p.stem)
def test_each_notebook_has_two_exercises_with_stubs_and_a_solution_file(path):
    """At least two self-check cells; each exercise starts as a stub, and the solution file has every stub's function."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    checks = [c for c in cells if "exercises.check_" in c]
    assert len(checks) >= 2, f"{path.name}: {len(checks)} self-checks"
    stubs = [c for c in cells if "raise NotImplementedError" in c]
    names = [line.split("(")[0].removeprefix("def ").strip() for c in stubs for line in c.splitlines()
             if line.startswith("def ")]
    assert len(names) >= len(checks), f"{path.name}: {len(checks)} self-checks but stubs for {names}"
    module = solutions(number(path))
    for name in names:
        assert hasattr(module, name), f"{path.name}: no solution for {name}"
        assert any(f"({name}" in c for c in checks), f"{path.name}: no self-check calls {name}"


# --- the A2C loss and PPO's clipped objective: each named mistake gets its own hint -----------------------------
def a2c_with(policy_sign=1.0, entropy_sign=1.0, detach=True, masked=True):
    """The A2C loss written with named mistakes."""
    def loss(logp, entropy, values, returns, mask, value_coef, entropy_coef):
        m = mask if masked else torch.ones_like(mask)
        mean = lambda x: (x * m).sum() / m.sum()
        adv = returns - (values.detach() if detach else values)
        return (-policy_sign * mean(adv * logp) + value_coef * mean((values - returns) ** 2)
                - entropy_sign * entropy_coef * mean(entropy))
    return loss


A2C_MISTAKES = [(a2c_with(detach=False), "detach the advantage"), (a2c_with(policy_sign=-1.0), "policy term's sign"),
                (a2c_with(entropy_sign=-1.0), "entropy term's sign"), (a2c_with(masked=False), "padding included"),
                (lambda lp, h, v, g, m, cv, ce: a2c_with()(lp, h, v, g, m, 1.0, ce), "weighed by value_coef"),
                (lambda lp, h, v, g, m, cv, ce: a2c_with()(lp, h, v, g, m, cv, ce).detach(), "loss = −mean(A·logp)")]



def test_a2c_loss_reference_is_the_trainers():
    """The reference loss is what A2CTrainer's step computes (policy, value and entropy terms over the valid
    tokens, the advantage detached): the undetached loss has the same value and another gradient."""
    case = exercises._a2c_cases()[0]
    args = [case[k] for k in ("logp", "entropy", "values", "returns", "mask", "value_coef", "entropy_coef")]
    value, grads = exercises._loss_and_grads(exercises.a2c_loss, case)
    other, other_grads = exercises._loss_and_grads(a2c_with(detach=False), case)
    assert math.isclose(value, other, rel_tol=1e-6) and not np.allclose(grads["values"], other_grads["values"])
    mask = case["mask"]
    by_hand = (-(((case["returns"] - case["values"]) * case["logp"] * mask).sum() / mask.sum())
               + case["value_coef"] * (((case["values"] - case["returns"]) ** 2 * mask).sum() / mask.sum())
               - case["entropy_coef"] * ((case["entropy"] * mask).sum() / mask.sum()))
    assert math.isclose(float(exercises.a2c_loss(*args)), float(by_hand), rel_tol=1e-6)


def ppo(minimum=True, clip_advantage=False, with_unclipped=True, sign=1.0, use_exp=True, upside_down=False):
    """PPO's clipped objective written with named mistakes."""
    def objective(logp, old, adv, eps):
        if upside_down:
            logp, old = old, logp
        ratio = torch.exp(logp - old) if use_exp else logp - old
        clipped = ratio * torch.clamp(adv, 1 - eps, 1 + eps) if clip_advantage else torch.clamp(ratio, 1 - eps, 1 + eps) * adv
        if not with_unclipped:
            return sign * clipped
        return sign * (torch.minimum if minimum else torch.maximum)(ratio * adv, clipped)
    return objective


PPO_MISTAKES = [(ppo(minimum=False), "max instead of min"), (ppo(clip_advantage=True), "you clipped the advantage"),
                (ppo(with_unclipped=False), "the clipped term alone"), (ppo(sign=-1.0), "the sign is flipped"),
                (ppo(use_exp=False), "exp(logp − old_logp), not the difference"), (ppo(upside_down=True), "upside down"),
                (lambda lp, old, adv, eps: ppo()(lp, old, adv, eps).detach(), "the gradient flows through ρ")]



def test_clipped_objective_follows_trl_grpo_trainer():
    """The reference is trl 1.16's per-token GRPO loss, negated: coef_1 = exp(logp − old_logp), coef_2 =
    clamp(coef_1, 1 − ε, 1 + ε), per_token_loss = −min(coef_1·A, coef_2·A) (GRPOTrainer._compute_loss)."""
    import inspect

    from trl.trainer.grpo_trainer import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._compute_loss)
    for line in ("coef_1 = torch.exp(log_importance_weights)",
                 "coef_2 = torch.clamp(coef_1, 1 - self.epsilon_low, 1 + self.epsilon_high)",
                 "per_token_loss = -torch.min(per_token_loss1, per_token_loss2)"):
        assert line in source, line
    logp, old, adv, eps = exercises._clip_cases()[0]
    coef_1 = torch.exp(logp - old)
    trl_loss = -torch.min(coef_1 * adv, torch.clamp(coef_1, 1 - eps, 1 + eps) * adv)
    assert torch.allclose(exercises.clipped_objective(logp, old, adv, eps), -trl_loss)
    # every kind of token is in the first case: inside the range, and clipped below and above with either sign of A
    ratio = coef_1.numpy()
    assert ((ratio < 1 - eps) & (adv.numpy() > 0)).any() and ((ratio < 1 - eps) & (adv.numpy() < 0)).any()
    assert ((ratio > 1 + eps) & (adv.numpy() > 0)).any() and ((ratio > 1 + eps) & (adv.numpy() < 0)).any()


# Every named mistake: the simple checks' table, and the A2C-loss and clipped-objective mistakes
CASES = ([(nb, *case) for nb, cases in SIMPLE.items() for case in cases]
         + [("04", exercises.check_a2c_loss, "my_a2c_loss", wrong, hint) for wrong, hint in A2C_MISTAKES]
         + [("04b", exercises.check_clipped_objective, "my_clipped_objective", wrong, hint) for wrong, hint in PPO_MISTAKES])


@pytest.mark.parametrize("notebook, check, name, wrong, hint", CASES,
                         ids=[f"{nb}-{name}-{i}" for i, (nb, _, name, _, _) in enumerate(CASES)])
def test_solution_passes_wrong_answer_gets_its_hint_stub_is_not_attempted(notebook, check, name, wrong, hint, capsys):
    assert check(getattr(solutions(notebook), name)) is True
    assert "passed" in capsys.readouterr().out
    assert hint in (given := hint_of(check, wrong)), given
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_each_named_mistake_gets_a_hint_of_its_own():
    """Two mistakes of one exercise never share a hint: the test above would pass a hint that names the
    wrong mistake if two rows expected the same fragment for different checkers' mistakes."""
    by_check = {}
    for _, check, _, wrong, hint in CASES:
        by_check.setdefault(check.__name__, {}).setdefault(hint, set()).add(hint_of(check, wrong))
    for check, hints in by_check.items():
        texts = [t for ts in hints.values() for t in ts]
        assert len(set(texts)) == len(hints), (check, hints)
