"""The notebooks' exercises: every solution in ``notebooks/solutions/`` passes the checker its notebook
calls (``drivekit.course.exercises``), a deliberately wrong answer is rejected with a helpful message, and
an exercise not attempted yet (the stub) is reported, not failed."""
import importlib.util
import json
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


# (checker, the solution's name, a wrong answer and a fragment of the message it must get)
SIMPLE = {
    "00": [(exercises.check_decode, "decode",
            lambda a, r: ([p for p, v in zip(exercises.ACTION_PHRASES, a) if v], []), "REASON_PHRASES"),
           (exercises.check_cooccurrence, "cooccurrence", lambda a, r: np.asarray(a).T @ np.asarray(a), "(4, 21)")],
    "01": [(exercises.check_stratified_split, "stratified_split",
            lambda labels, share, seed: list(range(round(share * len(labels)))), "EACH label")],
    "03": [(exercises.check_r1, "my_r1",
            lambda f, t: float(torch.nn.functional.normalize(f.mean(0), dim=-1) @ torch.nn.functional.normalize(t, dim=-1)),
            "normalise each frame"),
           (exercises.check_ordered_r1, "ordered_r1", lambda f, t: float(exercises.r1(f, t)), "different weights")],
    "04": [(exercises.check_returns_and_advantages, "my_returns_advantages",  # forgets the discount
            lambda r, v, d: (np.cumsum(r[::-1])[::-1], np.cumsum(r[::-1])[::-1] - np.asarray(v)), "backwards"),
           (exercises.check_group_advantages, "my_group_advantages",  # np.std's default: the biased std
            lambda r, g, scale=True: biased_group_advantages(r, g, scale), "Bessel"),
           (exercises.check_incremental_rewards, "my_incremental_rewards",  # each prefix's reward, not its increase
            lambda values, ends, n: np.bincount(np.asarray(ends) - 1, weights=values, minlength=n), "R(T_k) − R(")],
    "05": [(exercises.check_consistency, "my_consistency",  # every reason fits whatever the action
            lambda actions, reasons: 1.0 if set(actions) & set(exercises.ACTION_PHRASES) else 0.0, "r >= 15"),
           (exercises.check_label_f1_r2, "my_label_f1_r2",  # scores the labels of the Stage-2 parser, JSON or not
            lambda answer, a, r: float(exercises.LabelF1Reward()([answer], actions=[np.asarray(a)],
                                                                 reasons=[np.asarray(r)])[0]), "one JSON object")],
    "06": [(exercises.check_sample_f1, "my_sample_f1",
            lambda t, p: float((np.asarray(t) == np.asarray(p)).mean()), "2·|true ∩ predicted|"),
           (exercises.check_sign_test, "my_sign_test",
            lambda f, b: 0.5 ** (f + b), "smaller tail")],
}
CASES = [(nb, *case) for nb, cases in SIMPLE.items() for case in cases]


@pytest.mark.parametrize("notebook, check, name, wrong, hint", CASES,
                         ids=[f"{nb}-{name}" for nb, _, name, _, _ in CASES])
def test_solution_passes_wrong_answer_fails_stub_is_not_attempted(notebook, check, name, wrong, hint, capsys):
    assert check(getattr(solutions(notebook), name)) is True
    assert "passed" in capsys.readouterr().out
    with pytest.raises(exercises.ExerciseError, match="wrong answer") as error:
        check(wrong)
    assert hint in str(error.value)
    assert check(stub) is False
    assert "not attempted yet" in capsys.readouterr().out


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

    per_action = [41, 339, 12, 11]  # the proposal's Fig. 4 test counts, as a pool's action counts
    samples = [Sample(name=f"c{a}_{i}.jpg", split="train", actions=tuple(int(k == a) for k in range(4)),
                      reasons=(1,) + (0,) * 20)
               for a, n in enumerate(per_action) for i in range(n)]
    split = make_toy_split(samples, seed=0)
    observed = split.counts().loc["total"].to_dict()
    assert exercises.check_split_sizes(solutions("01").predict_sizes, per_action, observed)
    with pytest.raises(exercises.ExerciseError, match="'test'"):
        exercises.check_split_sizes(lambda c: {"test": sum(c) // 4, "train_full": 0, "train": 0}, per_action, observed)
    assert exercises.check_split_sizes(stub, per_action, observed) is False


def test_label_mask_and_lora_parameters_on_a_real_batch_and_model(micro_batch_and_model):
    batch, model = micro_batch_and_model
    s = solutions("02")
    assert exercises.check_label_mask(s.mask_labels, batch)
    with pytest.raises(exercises.ExerciseError, match="prompt"):  # padding masked, prompt not
        exercises.check_label_mask(lambda ids, mask, n: ids.masked_fill(mask == 0, -100), batch)
    with pytest.raises(exercises.ExerciseError, match="padding"):  # prompt masked, padding not
        exercises.check_label_mask(lambda ids, mask, n: torch.stack(
            [row.masked_fill(torch.arange(len(row)) < k, -100) for row, k in zip(ids, n)]), batch)
    assert exercises.check_label_mask(stub, batch) is False
    assert exercises.check_lora_parameters(s.lora_parameters, model)
    with pytest.raises(exercises.ExerciseError, match="d_out × r"):
        exercises.check_lora_parameters(lambda i, o, r: r * i * o, model)
    assert exercises.check_lora_parameters(stub, model) is False


# The notebooks with exercise cells (04's checkers and solutions exist; its cells join when they are in it).
WITH_EXERCISES = ("00", "01", "02", "03", "04", "05", "06")


@pytest.mark.parametrize("path", [p for p in sorted(NOTEBOOKS.glob("0*.ipynb")) if p.name[:2] in WITH_EXERCISES],
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
    module = solutions(path.name[:2])
    for name in names:
        assert hasattr(module, name), f"{path.name}: no solution for {name}"
        assert any(f"({name}" in c for c in checks), f"{path.name}: no self-check calls {name}"
