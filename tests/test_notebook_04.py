"""Notebook 04 (A2C) as issue 35 rebuilt it: one algorithm (GRPO moved to 04b), learning goals and takeaways, the
policy-gradient derivation, a pseudocode box and a diagram of the token-level MDP, the k3 estimator's gradient, the
critic warm-up, the A2C-loss exercise with a hint per mistake, and an action stage that reports fixed / broken and
the sign test against SFT, with whole answers in its stored outputs.

Each check is a function of the notebook's cells; every test runs it on the committed notebook and on a copy with
the error it guards planted, and the planted copy must fail."""
import copy
import re

import numpy as np
import pytest
from test_exercises import hint_of
from test_notebook_text import TRUNCATION, cells, notebook, output_texts, source

from drivekit.algorithms import a2c
from drivekit.course import exercises
from drivekit.evaluation import stats

NB = notebook("04")


@pytest.fixture(scope="module")
def nb() -> list[dict]:
    return cells(NB)


def markdown(nb: list[dict]) -> list[str]:
    return [source(c) for c in nb if c["cell_type"] == "markdown"]


def code_cell(nb: list[dict], *needles: str) -> dict:
    """The first code cell whose source holds every needle."""
    return next(c for c in nb if c["cell_type"] == "code" and all(n in source(c) for n in needles))


def printed(cell: dict) -> str:
    return "\n".join(output_texts(cell))


def planted(nb: list[dict], cell: dict, text: str | None = None, outputs: list | None = None) -> list[dict]:
    """A copy of the notebook with one cell's source (``text``) or stored ``outputs`` replaced."""
    nb = copy.deepcopy(nb)
    target = next(c for c in nb if c["id"] == cell["id"])
    if text is not None:
        target["source"] = [text]
    if outputs is not None:
        target["outputs"] = outputs
    return nb


def stream(text: str) -> list[dict]:
    return [{"output_type": "stream", "name": "stdout", "text": [text]}]


# --- learning goals and takeaways -------------------------------------------------------------------------------
def goals_and_takeaways(nb: list[dict]) -> list[str]:
    md = markdown(nb)
    problems = []
    if "**Learning goals.**" not in md[0]:
        problems.append("no learning goals in the first markdown cell")
    if not md[-1].startswith("## Key takeaways"):
        problems.append("the last markdown cell is not the key takeaways")
    return problems


def test_learning_goals_at_the_top_and_takeaways_at_the_end(nb):
    assert goals_and_takeaways(nb) == []
    first = next(c for c in nb if c["cell_type"] == "markdown")
    assert goals_and_takeaways(planted(nb, first, source(first).replace("**Learning goals.**", "Goals:")))
    assert goals_and_takeaways(nb + [{"cell_type": "markdown", "id": "x", "source": ["## More"]}])


# --- one notebook, one algorithm ----------------------------------------------------------------------------------
def grpo_left(nb: list[dict]) -> list[str]:
    problems = [f"GRPO cell: {source(c)[:60]!r}" for c in nb
                if "check_group_advantages" in source(c) or "nanstd" in source(c) or source(c).startswith("## GRPO")]
    if not any("04b_grpo.ipynb" in text for text in markdown(nb)):
        problems.append("no pointer to notebook 04b")
    numbers = [m for text in markdown(nb) for m in re.findall(r"\*\*Exercise (\d+b?\.\d+)", text)]
    if numbers != ["04.1", "04.2", "04.3"]:
        problems.append(f"exercises {numbers}")
    return problems


def test_grpo_moved_to_04b_and_the_exercises_are_numbered_in_order(nb):
    assert grpo_left(nb) == []
    old = {"cell_type": "markdown", "id": "g", "source": ["## GRPO: a group of answers instead of a critic\n"]}
    assert grpo_left(nb[:5] + [old] + nb[5:])
    exercise = next(c for c in nb if "**Exercise 04.3" in source(c))
    assert grpo_left(planted(nb, exercise, source(exercise).replace("Exercise 04.3", "Exercise 04.4")))


# --- the theory: derivation, pseudocode, MDP diagram ----------------------------------------------------------------
DERIVATION = {  # what the derivation must hold, by a fragment of its LaTeX
    "the log-derivative trick": r"\nabla_\theta p_\theta = p_\theta \nabla_\theta \log p_\theta",
    "the policy gradient as a sum over tokens": r"\sum_{t=0}^{T-1} \nabla_\theta \log \pi_\theta(a_t \mid s_t)",
    "a baseline's term has mean 0": r"= b(s_t)\, \nabla_\theta 1 = 0",
    "reward-to-go": r"G_t = \sum_{k=t}^{T-1} r_{k+1}",
    "the advantage": r"A_t = G_t - V_w(s_t)",
    "the advantage detached in the loss": "held **constant** (detached)",
}


def derivation_missing(nb: list[dict]) -> list[str]:
    text = "\n".join(markdown(nb))
    missing = [name for name, fragment in DERIVATION.items() if fragment not in text]
    md = markdown(nb)
    start = next((i for i, t in enumerate(md) if t.startswith("## From the policy gradient to A2C")), None)
    first_exercise = next(i for i, t in enumerate(md) if "**Exercise 04." in t)
    if start is None or start > first_exercise:
        missing.append("the derivation before the exercises that use it")
    return missing


def test_the_policy_gradient_is_derived_where_a2c_uses_it(nb):
    assert derivation_missing(nb) == []
    cell = next(c for c in nb if source(c).startswith("## From the policy gradient to A2C"))
    without_baseline = source(cell).replace(r"= b(s_t)\, \nabla_\theta 1 = 0", "= 0")
    assert derivation_missing(planted(nb, cell, without_baseline)) == ["a baseline's term has mean 0"]
    assert "reward-to-go" in derivation_missing(planted(nb, cell, source(cell).replace("G_t = \\sum_{k=t}^{T-1}", "G_t =")))


PSEUDOCODE = ("G_t ← r_{t+1} + γ · G_{t+1}", "A_t ← G_t − V_w(s_t), V detached", "log π_θ(a_t | s_t)",
              "c_v · mean_t (V_w(s_t) − G_t)²", "c_e · mean_t H_t", "e^δ_t − δ_t − 1", "if k < K_w")


def pseudocode_problems(nb: list[dict]) -> list[str]:
    box = next((t for t in markdown(nb) if "```text" in t and "Algorithm: A2C" in t), None)
    if box is None:
        return ["no pseudocode box for A2C"]
    problems = [f"missing {line!r}" for line in PSEUDOCODE if line not in box]
    # every settings field the box names is one of A2CSettings' (a renamed field would leave the box behind)
    fields = set(a2c.A2CSettings.__dataclass_fields__)
    named = set(re.findall(r"\b([a-z]{2,}(?:_[a-z]{2,})+)\b", box)) - {"masked_mean"}
    problems += [f"{name} is no A2CSettings field" for name in sorted(named - fields)]
    return problems


def test_the_pseudocode_box_follows_the_trainer(nb):
    assert pseudocode_problems(nb) == []
    box = next(c for c in nb if "Algorithm: A2C" in source(c))
    assert pseudocode_problems(planted(nb, box, source(box).replace("critic_warmup", "critic_warm_steps")))
    assert pseudocode_problems(planted(nb, box, source(box).replace("V detached", "")))


def diagram_problems(nb: list[dict]) -> list[str]:
    try:
        cell = code_cell(nb, "a2c.prefix_ends(", "token_mdp_")
    except StopIteration:
        return ["no cell draws the token-level MDP"]
    problems = []
    if not any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
        problems.append("the diagram is not in the stored outputs (GitHub would show nothing)")
    text = source(cell)
    for part in ("actor", "critic", "reward", "state", "incremental_rewards("):
        if part not in text:
            problems.append(f"the diagram does not show the {part}")
    return problems


def test_the_token_level_mdp_is_drawn(nb):
    assert diagram_problems(nb) == []
    cell = code_cell(nb, "a2c.prefix_ends(", "token_mdp_")
    assert diagram_problems(planted(nb, cell, outputs=[]))
    assert diagram_problems(planted(nb, cell, source(cell).replace("critic", "head")))


# --- k3: the value and the gradient --------------------------------------------------------------------------------
K3_STATEMENT = r"**Its gradient, used as a loss on the sampled tokens, is that of the other KL, $\mathrm{KL}(\pi_{\text{ref}} \,\|\, \pi_\theta)$.**"
K3_GAP = re.compile(r"largest gap to ∇KL\(π_ref ‖ π_θ\) ([\d.]+), to ∇KL\(π_θ ‖ π_ref\) ([\d.]+)")


def k3_problems(nb: list[dict]) -> list[str]:
    problems = []
    text = "\n".join(markdown(nb))
    if K3_STATEMENT not in text or r"= \nabla_\theta \mathrm{KL}(\pi_{\text{ref}} \,\|\, \pi_\theta)" not in text:
        problems.append("the k3 gradient statement (and its derivation) is missing")
    if "half the answers are pushed down" in "\n".join(source(c) for c in nb):
        problems.append("'half the answers are pushed down'")
    gaps = [K3_GAP.search(printed(c)) for c in nb if c["cell_type"] == "code"]
    gaps = [g for g in gaps if g]
    if len(gaps) != 1:
        problems.append("the worked example does not print the k3 gradient's gaps")
    elif not float(gaps[0][1]) < 0.01 < float(gaps[0][2]):
        problems.append(f"the printed gaps do not single out KL(π_ref ‖ π_θ): {gaps[0][0]}")
    return problems


def test_k3_states_and_checks_which_kl_its_gradient_follows(nb):
    assert k3_problems(nb) == []
    cell = next(c for c in nb if K3_STATEMENT in source(c))
    assert k3_problems(planted(nb, cell, source(cell).replace(K3_STATEMENT, "")))
    example = next(c for c in nb if c["cell_type"] == "code" and K3_GAP.search(printed(c)))
    found = K3_GAP.search(printed(example))
    swapped = printed(example).replace(found[0], found[0].replace(found[1], "@").replace(found[2], found[1]).replace("@", found[2]))
    assert k3_problems(planted(nb, example, outputs=stream(swapped)))
    comment = {"cell_type": "code", "id": "h", "source": ["# a group's advantages cancel: half the answers are pushed down"],
               "outputs": []}
    assert k3_problems(nb + [comment])


# --- the critic warm-up, where the short runs are --------------------------------------------------------------------
def warmup_problems(nb: list[dict]) -> list[str]:
    md = markdown(nb)
    problems = []
    action = next((i for i, t in enumerate(md) if t.startswith("## Action stage")), None)
    short = next(i for i, t in enumerate(md) if t.startswith("### A short run of your own"))
    if action is None or "`critic_warmup`" not in md[action] or "V_w(s_t) = 0" not in md[action] or action > short:
        problems.append("the action stage does not explain the critic warm-up before the short runs")
    catch = [c for c in nb if c["cell_type"] == "code" and "mean advantage over steps 1-5" in printed(c)]
    if not catch:
        problems.append("no stored output shows how fast the critic catches up")
    return problems


def test_the_critic_warmup_is_explained_where_short_runs_are_run(nb):
    assert warmup_problems(nb) == []
    cell = next(c for c in nb if source(c).startswith("## Action stage"))
    assert warmup_problems(planted(nb, cell, source(cell).replace("`critic_warmup`", "a warm-up")))
    catch = next(c for c in nb if "mean advantage over steps 1-5" in printed(c))
    assert warmup_problems(planted(nb, catch, outputs=[]))


# --- the action stage against SFT: fixed / broken and p; whole answers -------------------------------------------
PAIRED = re.compile(r"A2C against SFT, clip by clip on the (\d+) test clips: (\d+) fixed / (\d+) broken "
                    r"\((\d+) both right, (\d+) both wrong\), exact sign test p = ([\d.e+-]+)")


def paired_problems(nb: list[dict]) -> list[str]:
    cell = code_cell(nb, "a2c_stage.predictions(", "stats.sign_test(")
    found = PAIRED.search(printed(cell))
    if not found:
        return ["the action stage prints no fixed / broken and p"]
    n, fixed, broken, both_right, both_wrong = map(int, found.groups()[:5])
    problems = []
    if fixed + broken + both_right + both_wrong != n:
        problems.append("the four counts do not add up to the test clips")
    if found[6] != f"{stats.sign_test(fixed, broken):.3g}":
        problems.append(f"p = {found[6]} is not the sign test of {fixed}/{broken}")
    return problems


def test_the_action_stage_reports_fixed_broken_and_the_sign_test(nb):
    assert paired_problems(nb) == []
    cell = code_cell(nb, "a2c_stage.predictions(", "stats.sign_test(")
    text = printed(cell)
    found = PAIRED.search(text)
    wrong_p = text.replace(f"p = {found[6]}", "p = 0.5" if found[6] != "0.5" else "p = 0.01")
    assert paired_problems(planted(nb, cell, outputs=stream(wrong_p)))
    assert paired_problems(planted(nb, cell, outputs=stream(text.replace(f"{found[2]} fixed", f"{int(found[2]) + 1} fixed"))))
    assert paired_problems(planted(nb, cell, outputs=[o for o in cell["outputs"] if "text" not in o]))


ANSWER = re.compile(r"Action: [^;\n]+?; Reason: .+?(?= {2,}|\n|$)")


def truncation_problems(nb: list[dict]) -> list[str]:
    problems = [f"{source(c)[:60]!r} shows {TRUNCATION.search(t)[0]!r}" for c in nb if c["cell_type"] == "code"
                for t in output_texts(c) if TRUNCATION.search(t)]
    cell = code_cell(nb, "answers changed")
    text = printed(cell)
    count = re.search(r"(\d+) of (\d+) answers changed", text)
    if not count:
        return problems + ["the changed answers' count is not printed"]
    rows = [line for line in text.splitlines() if re.match(r"\s*syn\d+\.jpg", line)]
    if len(rows) != min(int(count[1]), 20):
        problems.append(f"{len(rows)} rows for {count[1]} changed answers")
    for line in rows:
        if not re.search(r"(fixed|broken|both right|both wrong)\s*$", line):
            problems.append(f"a row without its verdict, cut short: {line!r}")
    return problems


def test_no_stored_output_cuts_an_answer_short(nb):
    assert truncation_problems(nb) == []
    cell = code_cell(nb, "answers changed")
    text = printed(cell)
    first = next(line for line in text.splitlines() if re.match(r"\s*syn\d+\.jpg", line)) if "syn" in text else None
    old = ("17 of 506 answers changed\n           clip                                             truth\n"
           "0  syn000065.jpg      Action: Stop/Slow down; Reason: Traffic light ...\n")
    assert truncation_problems(planted(nb, cell, outputs=stream(old)))
    if first is not None:  # a row cut before its verdict
        assert truncation_problems(planted(nb, cell, outputs=stream(text.replace(first, first[:60]))))


# --- the A2C-loss exercise and the hints per mistake ---------------------------------------------------------------
def exercise_problems(nb: list[dict]) -> list[str]:
    problems = []
    stub = next((c for c in nb if c["cell_type"] == "code" and source(c).startswith("def my_a2c_loss(")), None)
    if stub is None or "raise NotImplementedError" not in source(stub):
        problems.append("no stub for my_a2c_loss")
    check = next((c for c in nb if "exercises.check_a2c_loss(my_a2c_loss)" in source(c)), None)
    if check is None or not source(check).startswith("# NBVAL_CHECK_OUTPUT"):
        problems.append("no self-check cell compared by nbval")
    elif "Exercise 04.3 (the A2C loss): not attempted yet" not in printed(check):
        problems.append("the self-check's stored output is not the unattempted message")
    return problems


def test_the_a2c_loss_exercise_has_a_stub_and_a_checked_self_check(nb):
    assert exercise_problems(nb) == []
    check = next(c for c in nb if "exercises.check_a2c_loss(my_a2c_loss)" in source(c))
    assert exercise_problems(planted(nb, check, source(check).replace("# NBVAL_CHECK_OUTPUT", "#")))
    assert exercise_problems(planted(nb, check, outputs=[]))


def my_a2c_loss(logp, entropy, values, returns, mask, value_coef, entropy_coef, *, detach_adv=True,
                detach_value=False, baseline=True, entropy_on=True, mean=True):
    """The A2C loss, with the mistakes the checker names switched on by keyword."""
    def avg(x):
        return (x * mask).sum() / (mask.sum() if mean else 1.0)
    v_adv = values.detach() if detach_adv else values
    adv = returns - v_adv if baseline else returns
    v = values.detach() if detach_value else values
    return (-avg(adv * logp) + value_coef * avg((v - returns) ** 2)
            - (entropy_coef * avg(entropy) if entropy_on else 0.0))


A2C_HINTS = [  # (a wrong loss, a fragment of the hint it must get)
    (dict(detach_value=True), "the critic gets no gradient"),
    (dict(baseline=False), "weighs log π by the return G"),
    (dict(entropy_on=False), "the entropy term is missing"),
    (dict(mean=False), "you summed over the tokens"),
    (dict(detach_adv=False), "detach the advantage"),
]


@pytest.mark.parametrize("mistake, hint", A2C_HINTS, ids=[h for _, h in A2C_HINTS])
def test_the_a2c_loss_checker_names_each_mistake(mistake, hint, capsys):
    assert exercises.check_a2c_loss(my_a2c_loss) is True  # the helper without a mistake is right
    assert hint in hint_of(exercises.check_a2c_loss, lambda *a: my_a2c_loss(*a, **mistake))


def test_the_flipped_advantage_and_the_undetached_one_get_different_hints():
    """The issue's example: a sign-flipped advantage (A = V − G) and an advantage that is not detached."""
    def flipped(logp, entropy, values, returns, mask, c_v, c_e):
        mean = lambda x: (x * mask).sum() / mask.sum()
        return -mean((values.detach() - returns) * logp) + c_v * mean((values - returns) ** 2) - c_e * mean(entropy)
    sign = hint_of(exercises.check_a2c_loss, flipped)
    detach = hint_of(exercises.check_a2c_loss, lambda *a: my_a2c_loss(*a, detach_adv=False))
    assert "V − G" in sign and "detach the advantage" in detach and sign != detach


def incremental(values, ends, length, shift=0, start=0.0, terminal=False):
    r = np.zeros(length)
    if terminal:
        r[-1] = values[-1]
        return r
    previous = values[0] if start is None else start
    for k, v in zip(ends, values):
        r[k - 1 + shift] = v - previous
        previous = v
    return r


INCREMENTAL_HINTS = [(dict(shift=-1), "one token early"), (dict(start=None), "R of the empty text"),
                     (dict(terminal=True), "terminal mode"), (dict(shift=1), "one token late")]


@pytest.mark.parametrize("mistake, hint", INCREMENTAL_HINTS, ids=[h for _, h in INCREMENTAL_HINTS])
def test_the_incremental_rewards_checker_names_each_mistake(mistake, hint, capsys):
    assert exercises.check_incremental_rewards(incremental) is True

    def wrong(values, ends, length):
        try:
            return incremental(values, ends, length, **mistake)
        except IndexError:  # one token late runs past the last token: that reward is lost
            r = np.zeros(length)
            for k, v, p in zip(ends, values, [0.0, *values]):
                if k < length:
                    r[k] = v - p
            return r
    assert hint in hint_of(exercises.check_incremental_rewards, wrong)


def test_the_returns_checker_names_the_swapped_pair(capsys):
    hint = hint_of(exercises.check_returns_and_advantages,
                   lambda r, v, d: exercises.returns_and_advantages(r, v, d)[::-1])
    assert "(G, A)" in hint


def test_every_named_mistake_of_the_04_checkers_gets_a_hint_of_its_own():
    """A hint per mistake: the wrong answers above get pairwise different hints, within each checker."""
    a2c_hints = {hint_of(exercises.check_a2c_loss, lambda *a, m=m: my_a2c_loss(*a, **m)) for m, _ in A2C_HINTS}
    assert len(a2c_hints) == len(A2C_HINTS)
    incremental_hints = set()
    for mistake, _ in INCREMENTAL_HINTS[:3]:
        incremental_hints.add(hint_of(exercises.check_incremental_rewards,
                                      lambda v, e, n, m=mistake: incremental(v, e, n, **m)))
    assert len(incremental_hints) == 3


def test_a_mistake_the_checker_does_not_know_gets_the_generic_hint():
    """The guard of the tests above: a wrong answer no named mistake explains gets the generic hint, not a named one."""
    hint = hint_of(exercises.check_a2c_loss, lambda *a: my_a2c_loss(*a) * 1.5)
    assert hint.strip().startswith("loss = −mean(A·logp)")
    assert all(fragment not in hint for _, fragment in A2C_HINTS)


def test_the_solution_file_matches_the_notebook_stubs():
    from test_exercises import solutions
    module = solutions("04")
    assert exercises.check_a2c_loss(module.my_a2c_loss) is True
    stubs = [source(c).split("(")[0].removeprefix("def ") for c in cells(NB, "code") if "raise NotImplementedError" in source(c)]
    assert stubs == ["my_incremental_rewards", "my_returns_advantages", "my_a2c_loss"]
    assert not hasattr(module, "my_group_advantages")  # 04b's exercise, with its solution in 04b_grpo.py
