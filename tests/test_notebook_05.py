"""Notebooks 03 and 05 as issue 35 found them, and what guards each fix:

- 05's "inconsistent reason" example named "Traffic light is red", no taxonomy phrase, so it scored consistency 1
  and showed the opposite of its label: the example must score below 1 (and the phrase must be in the taxonomy);
- 05 said valid answers score "about 2" while its outputs show 2.5-2.7: the range the text states must be the one
  the cell above it prints;
- 05's RL-JSON log had mean R2 = mean R3 at every step: the log is right (two functions, two means; a batch where
  they differ logs two numbers), and the notebook measures why (the kinds of the sampled answers, printed);
- a validity gain of a few clips stood with no test: the comparison is followed by a paired sign test, printed;
- 03 and 05 state learning goals first and key takeaways last, and their stored outputs cut no answer;
- the 05 exercises' checkers tell common mistakes apart (a raised error included), each with its own hint;
- the JSON stage at the course's labelled share: SFT-JSON keeps the clip passes of its 12 epochs over 1/8, and
  RL-JSON samples on the pool.

Each check is run on the planted error as well (the ``*_finds_*`` tests), so that it cannot pass vacuously.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_exercises import hint_of
from test_notebook_text import TRUNCATION, cells, notebook, output_texts, source

from drivekit.core.taxonomy import ACTION_PHRASES, REASON_PHRASES
from drivekit.course import exercises
from drivekit.course.exercises.output_checks import _any_case, _pooled_f1, consistency_level
from drivekit.rewards.weighted_reward import RewardSettings, make_reward

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


# --- learning goals and key takeaways ------------------------------------------------------------------------------
def goals_and_takeaways(nb_cells: list[dict]) -> list[str]:
    """What is missing: learning goals in the first markdown cell, "## Key takeaways" opening the last one."""
    markdown = [source(c) for c in nb_cells if c["cell_type"] == "markdown"]
    missing = []
    if not markdown or "**Learning goals.**" not in markdown[0]:
        missing.append("learning goals in the first markdown cell")
    if not markdown or not markdown[-1].lstrip().startswith("## Key takeaways"):
        missing.append('"## Key takeaways" as the last markdown cell')
    return missing


@pytest.mark.parametrize("number", ["03", "05"])
def test_learning_goals_first_and_key_takeaways_last(number):
    assert goals_and_takeaways(cells(notebook(number))) == []


def test_the_goals_check_finds_a_notebook_without_them():
    nb_cells = cells(notebook("05"))
    no_goals = [dict(c, source=source(c).replace("**Learning goals.**", "Goals:")) for c in nb_cells]
    assert goals_and_takeaways(no_goals) == ["learning goals in the first markdown cell"]
    takeaways_first = [nb_cells[-1], *nb_cells[:-1]]  # the takeaways no longer last
    assert '"## Key takeaways" as the last markdown cell' in goals_and_takeaways(takeaways_first)


# --- 05 cell 6: the inconsistent reason ------------------------------------------------------------------------------
def crafted_inconsistency(code: str) -> tuple[list[str], list[str]]:
    """The actions and reasons the "inconsistent reason" example of notebook 05 lists (read from the cell's code)."""
    line = next(line for line in code.splitlines() if '"inconsistent reason"' in line)
    actions = re.search(r'"actions": (\[[^\]]*\])', line)[1]
    reasons = re.search(r'"reasons": (\[[^\]]*\])', line)[1]
    return json.loads(actions), json.loads(reasons)


def inconsistency_problems(code: str) -> list[str]:
    actions, reasons = crafted_inconsistency(code)
    problems = [f"{r!r} is no taxonomy reason" for r in reasons if r not in REASON_PHRASES]
    if consistency_level(actions, reasons) >= 1:
        problems.append(f"{actions} with {reasons} scores consistency {consistency_level(actions, reasons)}")
    return problems


def example_cell() -> dict:
    return next(c for c in cells(notebook("05"), "code") if '"inconsistent reason"' in source(c))


def test_the_inconsistent_reason_example_is_inconsistent():
    """Its reason is a taxonomy phrase that belongs to another action, so the level is below 1, in the code and
    in the table the cell stored."""
    cell = example_cell()
    assert inconsistency_problems(source(cell)) == []
    table = next(t for t in output_texts(cell) if "inconsistent reason" in t and "<" not in t)
    row = next(line for line in table.splitlines() if line.startswith("inconsistent reason"))
    json_level, fields, taxonomy, consistency = map(float, row.split()[2:6])
    assert consistency < 1 and taxonomy == 1, row


def test_the_example_check_finds_the_old_example():
    old = source(example_cell()).replace('"reasons": ["Obstacle: car"]', '"reasons": ["Traffic light is red"]')
    assert old != source(example_cell())
    problems = inconsistency_problems(old)
    assert any("no taxonomy reason" in p for p in problems) and any("scores consistency 1" in p for p in problems)


# --- 05: the score of a right answer, as printed ---------------------------------------------------------------------
PRINTED_RANGE = re.compile(r"R of the right JSON answer on \d+ test clips: (\d+\.\d+) to (\d+\.\d+)")
STATED_RANGE = re.compile(r"scores R = R1 \+ R2 \+ R3 between (\d+\.\d+) and (\d+\.\d+)")


def range_problems(nb_cells: list[dict]) -> list[str]:
    """Each markdown cell that says what a right answer scores states the range the code cell above it printed."""
    problems = []
    for i, cell in enumerate(nb_cells):
        text = source(cell)
        if cell["cell_type"] != "markdown":
            continue
        if re.search(r"scores? about \d", text):
            problems.append(f"cell {i} states a rough score: {re.search(r'scores? about [^ ]+', text)[0]!r}")
        stated = STATED_RANGE.search(text)
        if "critic learns first" in text and not stated:
            problems.append(f"cell {i} explains the warm-up without the printed range")
        if stated:
            above = next(c for c in reversed(nb_cells[:i]) if c["cell_type"] == "code")
            printed = [PRINTED_RANGE.search(t) for t in output_texts(above)]
            printed = [m.groups() for m in printed if m]
            if printed != [stated.groups()]:
                problems.append(f"cell {i} states {stated.groups()}, the cell above printed {printed}")
    return problems


def test_the_score_of_a_right_answer_is_the_printed_range():
    assert range_problems(cells(notebook("05"))) == []


def test_the_range_check_finds_the_old_text_and_a_wrong_range():
    nb_cells = cells(notebook("05"))
    i = next(k for k, c in enumerate(nb_cells) if "critic learns first" in source(c))
    stated = STATED_RANGE.search(source(nb_cells[i]))
    old = "**The critic learns first.** Every valid answer scores about 2 (R1 + R2 + R3), all of it on the last token"
    planted = [dict(c, source=old) if k == i else c for k, c in enumerate(nb_cells)]
    assert len(range_problems(planted)) == 2  # a rough score, and no printed range
    low = f"{float(stated[1]) - 0.5:.2f}"
    wrong = source(nb_cells[i]).replace(f"between {stated[1]} and", f"between {low} and")
    planted = [dict(c, source=wrong) if k == i else c for k, c in enumerate(nb_cells)]
    assert len(range_problems(planted)) == 1


# --- 05: mean R2 = mean R3, and the samples behind it --------------------------------------------------------------
def test_the_log_holds_each_terms_own_mean():
    """R2 and R3 are logged from their own scores: on a batch where they differ (right format, half-wrong labels;
    plain text) the two means differ. A log that wrote one term under both names would fail here."""
    reward = make_reward(RewardSettings(r2="label_f1"), target="json")
    answer = json.dumps({"scene": "A car ahead.", "actions": ["Stop/Slow down"], "reasons": ["Traffic sign"],
                         "justification": "Stop/Slow down because of the car."})
    truth = dict(actions=[np.eye(4, dtype=int)[1]] * 2, reasons=[np.eye(21, dtype=int)[3]] * 2)
    summary = reward.evaluate([answer, "Action: Stop/Slow down; Reason: Obstacle: car"], **truth).summary()
    assert summary["reward_r2"] == pytest.approx(0.25) and summary["reward_r3"] == pytest.approx(0.5)


def test_the_log_check_finds_a_log_that_writes_one_term_twice():
    reward = make_reward(RewardSettings(r2="label_f1"), target="json")
    answer = json.dumps({"scene": "", "actions": ["Stop/Slow down"], "reasons": ["Traffic sign"], "justification": "x"})
    result = reward.evaluate([answer], actions=[np.eye(4, dtype=int)[1]], reasons=[np.eye(21, dtype=int)[3]])
    result.components["r2"] = result.components["r3"]  # the bug the issue suspected
    assert result.summary()["reward_r2"] == result.summary()["reward_r3"] != pytest.approx(0.5)


def test_sample_kinds():
    from drivekit.stages.json_stage import sample_kind

    valid = json.dumps({"scene": "s", "actions": ["Stop/Slow down"], "reasons": ["Obstacle: car"], "justification": "j"})
    assert sample_kind(valid) == "valid JSON"
    assert sample_kind(json.dumps({"actions": ["Fly"]})) == "invalid JSON"
    assert sample_kind(valid[:40]) == "invalid JSON"
    assert sample_kind("Action: Stop/Slow down; Reason: Obstacle: car") == "plain text"
    assert sample_kind("") == "plain text"


def test_train_recording_keeps_every_scored_answer_by_step():
    """``json_stage.train_recording`` returns the log and one row per answer the reward scored during each step,
    with each term's score; the trainer's reward is left as it was."""
    from drivekit.stages.json_stage import train_recording

    reward = make_reward(RewardSettings(r2="label_f1"), target="json")
    valid = json.dumps({"scene": "s", "actions": ["Stop/Slow down"], "reasons": ["Obstacle: car"],
                        "justification": "Stop/Slow down because of the car."})
    columns = dict(actions=[np.eye(4, dtype=int)[1]] * 2, reasons=[np.eye(21, dtype=int)[3]] * 2)

    class Trainer:
        def __init__(self):
            self.reward = reward

        def train(self, callback):
            for step in (1, 2):
                result = self.reward.evaluate([valid, "Action: Stop/Slow down"], **columns)
                callback(self, {"step": step, "reward_r2": result.summary()["reward_r2"]})
            return "log"

    log, samples = train_recording(Trainer())
    assert log == "log" and len(samples) == 4
    assert samples["step"].tolist() == [1, 1, 2, 2]
    assert samples["kind"].tolist() == ["valid JSON", "plain text"] * 2
    assert samples["r2"].tolist() == [1.0, 0.0] * 2 and samples["r3"].tolist() == [1.0, 0.0] * 2
    assert "evaluate" not in vars(reward)  # the method restored


def samples_cell_problems(nb_cells: list[dict]) -> list[str]:
    """The RL-JSON section prints the plain-text share of the sampled answers and how many answers have R2 = R3,
    and its text explains the equal means."""
    printed = "\n".join(t for c in nb_cells if c["cell_type"] == "code" for t in output_texts(c))
    text = "\n".join(source(c) for c in nb_cells if c["cell_type"] == "markdown")
    problems = []
    if not re.search(r"answers sampled at temperature [\d.]+ in \d+ steps: .*plain text \d+\.\d%", printed):
        problems.append("no printed share of plain-text samples")
    if not re.search(r"answers whose R2 equals their R3: \d+ of \d+", printed):
        problems.append("no printed count of answers with R2 = R3")
    if "Why mean R2 so often equals mean R3" not in text:
        problems.append("no explanation of the equal means")
    return problems


def test_the_sampled_answers_are_measured_and_explained():
    assert samples_cell_problems(cells(notebook("05"))) == []


def test_the_samples_check_finds_a_notebook_without_them():
    nb_cells = [c for c in cells(notebook("05")) if "train_recording" not in source(c) and "sample_kind" not in source(c)
                and "SAMPLE_KINDS" not in source(c) and "Why mean R2" not in source(c)]
    assert len(samples_cell_problems(nb_cells)) == 3


# --- 05: the paired test of the comparison ---------------------------------------------------------------------------
PAIRED = re.compile(r"JSON validity, RL-JSON against SFT-JSON on \d+ test clips: (\d+) became valid, (\d+) became "
                    r"invalid; exact sign test p = ([\d.e-]+)")


def paired_problems(nb_cells: list[dict]) -> list[str]:
    from drivekit.evaluation import stats

    printed = "\n".join(t for c in nb_cells if c["cell_type"] == "code" for t in output_texts(c))
    found = PAIRED.search(printed)
    if not found:
        return ["no paired test of validity printed"]
    gained, lost, p = int(found[1]), int(found[2]), float(found[3])
    if f"{stats.sign_test(gained, lost):.3g}" != found[3]:
        return [f"p = {p} is not the sign test of {gained} / {lost}"]
    return []


def test_validity_is_compared_with_a_paired_test():
    assert paired_problems(cells(notebook("05"))) == []


def test_the_paired_check_finds_a_missing_or_wrong_test():
    nb_cells = cells(notebook("05"))
    assert paired_problems([c for c in nb_cells if "became_valid" not in source(c)]) == \
        ["no paired test of validity printed"]
    cell = next(c for c in nb_cells if "became_valid" in source(c))
    text = next(t for t in output_texts(cell) if PAIRED.search(t))
    wrong = PAIRED.sub(lambda m: m[0].replace(f"p = {m[3]}", "p = 0.0123"), text)
    planted = [{"cell_type": "code", "source": "", "outputs": [{"output_type": "stream", "text": wrong}]}]
    assert "is not the sign test" in paired_problems(planted)[0]


# --- 03 and 05: no answer cut in the stored outputs ------------------------------------------------------------------
@pytest.mark.parametrize("number", ["03", "05"])
def test_no_stored_output_cuts_an_answer_or_a_table(number):
    for cell in cells(notebook(number), "code"):
        for text in output_texts(cell):
            assert not TRUNCATION.search(text), f"{number}: {source(cell)[:80]!r} shows {TRUNCATION.search(text)[0]!r}"
            assert not re.search(r"\w…", text), f"{number}: {source(cell)[:80]!r} cuts a text with '…'"


def test_the_truncation_check_finds_the_old_answers():
    old = '0  {"scene":"We drive in a through lane. On the l...   1.0     1.0       1.0'
    assert TRUNCATION.search(old) and re.search(r"\w…", "Action: Move forward; Reason: Traffic light…")


# --- the 05 exercises: a hint for each common mistake ---------------------------------------------------------------
def _solutions05():
    import importlib.util

    spec = importlib.util.spec_from_file_location("solutions_05_own", SOLUTIONS / "05_json_stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S05 = _solutions05()


def index_everything(actions, reasons):
    """list.index on every phrase: raises ValueError on a phrase outside the taxonomy."""
    chosen = {ACTION_PHRASES.index(a) for a in actions}
    known = {REASON_PHRASES.index(r) for r in reasons}
    return S05.my_consistency(actions, reasons) if chosen or known else 0.0


def divide_by_reasons(actions, reasons):
    """No case for an answer without a known reason: divides by 0."""
    value = S05.my_consistency(actions, reasons)
    known = {r for r in reasons if r in REASON_PHRASES}
    return value if known or not any(a in ACTION_PHRASES for a in actions) else 1 / len(known)


def empty_reasons_zero(actions, reasons):
    known_action = any(a in ACTION_PHRASES for a in actions)
    return 0.0 if known_action and not any(r in REASON_PHRASES for r in reasons) else S05.my_consistency(actions, reasons)


def loads_without_try(answer, actions, reasons):
    json.loads(answer)
    return S05.my_label_f1_r2(answer, actions, reasons)


def assumes_a_dict(answer, actions, reasons):
    try:
        obj = json.loads(answer)
    except json.JSONDecodeError:
        return 0.0
    obj.get("actions")
    return S05.my_label_f1_r2(answer, actions, reasons)


def adds_the_fields(answer, actions, reasons):
    try:
        obj = json.loads(answer)
    except json.JSONDecodeError:
        return 0.0
    if isinstance(obj, dict):
        obj.get("actions", []) + obj.get("reasons", [])  # a string field plus a list
    return S05.my_label_f1_r2(answer, actions, reasons)


def empty_f1_divides(answer, actions, reasons):
    value = S05.my_label_f1_r2(answer, actions, reasons)
    return 1 / 0 if value > 0 and not any(reasons) else value


MISTAKES = [
    (exercises.check_consistency, index_everything, "list.index raises for a phrase"),
    (exercises.check_consistency, divide_by_reasons, "divided by 0 reasons"),
    (exercises.check_consistency, empty_reasons_zero, "the level is 1, not 0"),
    (exercises.check_label_f1_r2, loads_without_try, "catch the error of json.loads"),
    (exercises.check_label_f1_r2, assumes_a_dict, "only a dict is a JSON object"),
    (exercises.check_label_f1_r2, adds_the_fields, "read only lists"),
    (exercises.check_label_f1_r2, empty_f1_divides, "the F1 of two empty sets"),
    (exercises.check_label_f1_r2, _pooled_f1, "one F1 over the actions and the reasons together"),
    (exercises.check_label_f1_r2, _any_case, "phrases match exactly"),
]


@pytest.mark.parametrize("check, wrong, hint", MISTAKES, ids=[w.__name__ for _, w, _ in MISTAKES])
def test_each_common_mistake_gets_its_own_hint(check, wrong, hint):
    assert hint in (given := hint_of(check, wrong)), given


def test_the_hints_are_distinct_and_the_solutions_pass():
    assert exercises.check_consistency(S05.my_consistency) and exercises.check_label_f1_r2(S05.my_label_f1_r2)
    hints = [hint_of(check, wrong) for check, wrong, _ in MISTAKES]
    assert len(set(hints)) == len(hints)


def test_a_raised_error_is_shown_as_the_answer_not_as_a_traceback():
    with pytest.raises(exercises.ExerciseError) as error:
        exercises.check_label_f1_r2(loads_without_try)
    assert "got:      raised JSONDecodeError" in str(error.value)


def test_without_the_named_mistakes_the_generic_hint_comes_back():
    """The planted error for the hints: the same wrong answers checked with no named mistakes get one hint."""
    from drivekit.course.exercises import checking
    from drivekit.course.exercises import output_checks
    from drivekit.course.exercises.output_checks import _guarded, _same_value, label_f1_r2

    hints = {hint_of(lambda fn: checking._cases("05.2", _guarded(fn), output_checks._label_f1_cases(), label_f1_r2,
                                                 _same_value, "the generic hint"), wrong)
             for wrong in (loads_without_try, _pooled_f1, _any_case)}
    assert hints == {" the generic hint"}


# --- the JSON stage at the course's labelled share -------------------------------------------------------------------
def test_sft_json_keeps_the_clip_passes_of_its_epochs_over_one_eighth():
    from drivekit.core import config
    from drivekit.data.toy_split import TRAIN_FRACTION
    from drivekit.stages import json_stage, sft_stage

    cfg = config.load("tiny")
    stage = config.profile_defaults(json_stage.JsonSettings, cfg)
    epochs = stage.sft_settings(cfg).epochs
    assert epochs * sft_stage.course_fraction(cfg) == pytest.approx(stage.sft_epochs * TRAIN_FRACTION)
    assert epochs == pytest.approx(48.0)  # 12 at 1/8 -> 48 at 1/32, the 384 steps that learn the format


def test_rl_json_samples_on_the_pool(monkeypatch):
    from drivekit.core import config
    from drivekit.stages import json_stage, sft_stage

    cfg = config.load("tiny")
    seen = {}
    monkeypatch.setattr(json_stage, "build_trainer", lambda cfg, items, *a, **k: seen.setdefault("items", items))
    stage = config.profile_defaults(json_stage.JsonSettings, cfg)
    json_stage.make_trainer(cfg, stage, json_stage.artifacts(cfg), clip_reward=None)
    pool = {item["name"] for item in sft_stage.course_data(cfg).pool}
    names = {item["name"] for item in seen["items"]}
    assert names == pool
