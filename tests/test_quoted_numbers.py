"""Every number README, RESULTS and the notebooks' markdown quote about an experiment is bound to the one value
of a committed results file it comes from (``drivekit.evaluation.quotes`` has the rules):

    <!-- numbers: benchmarks/results/rl_vs_sft.json  a2c = results.methods.A2C-R2 -->
    A2C closes 0.78 / 0.73<!-- a2c.gap_closed.{f1_act,f1_rsn} --> of the gap ...
    <!-- /numbers -->

A number that equals some other value of the file does not pass: the planted errors below are changes of
real passages to values the file holds elsewhere, and each must fail naming the number and its key path.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivekit.evaluation.quotes import Quote, agrees, check, check_file, documents, expand

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "benchmarks/RESULTS.md",
             *(f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("*.ipynb")))]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_fenced_number_agrees_with_the_value_it_is_bound_to(name):
    assert check_file(name, ROOT) == []


def test_the_committed_fences_bind_their_numbers():
    """Guards the check against finding nothing: the fences are there and nearly every number is bound."""
    quotes: list[Quote] = []
    for name in DOCUMENTS:
        check_file(name, ROOT, quotes)
    bound = [q for q in quotes if q.value is not None]
    assert len(bound) > 400 and len(quotes) - len(bound) < 15
    assert all(q.why for q in quotes if q.value is None)


# --- planted errors: real passages, each changed the way a reviewer changed them --------------------------------

def fenced(name: str, results: str) -> str:
    """The text of ``name`` (for a notebook: its markdown cell) holding the fence that quotes ``results``."""
    opening = f"<!-- numbers: benchmarks/results/{results}"
    return next(text for _, text in documents(ROOT / name, name) if opening in text)


def edited(text: str, changes: list[tuple[str, str, str]]) -> str:
    """``text`` with, for each ``(key path, old, new)``, the first number bound to that full key path (which
    reads ``old``) written ``new``; the binding comments stay as they were."""
    quotes: list[Quote] = []
    assert check(text, ROOT, "", quotes) == []
    for path, old, new in sorted(changes, key=lambda c: -next(q.start for q in quotes if q.full == c[0])):
        quote = next(q for q in quotes if q.full == path)
        assert quote.text == old, (path, quote.text)
        text = text[:quote.start] + new + text[quote.start + len(old):]
    return text


def held_elsewhere(results: str, number: str) -> bool:
    """Whether some value of the results file rounds to ``number`` (what the earlier check accepted)."""
    def values(data):
        if isinstance(data, dict):
            return [v for x in data.values() for v in values(x)]
        if isinstance(data, list):
            return [v for x in data for v in values(x)]
        return [data] if isinstance(data, (int, float)) and not isinstance(data, bool) else []
    quote = Quote(number, False, 0, 0)
    return any(agrees(quote, v) for v in values(json.loads((ROOT / "benchmarks/results" / results).read_text())))


A2C, GRPO, R1, SC = (f"results.methods.{m}" for m in ("A2C-R2", "GRPO-R2", "A2C-R1", "GRPO-SC"))
PLANTED = {  # kind of error: (document, results file, [(full key path, as quoted, as planted)])
    "a gap closed, to another value of the file": (
        "benchmarks/RESULTS.md", "rl_vs_sft.json", [(f"{A2C}.gap_closed.f1_act", "0.78", "0.75")]),
    "an F1": ("README.md", "rl_vs_sft.json", [(f"{A2C}.summary.f1_act.mean", "0.978", "0.968")]),
    "a fraction": ("benchmarks/RESULTS.md", "rl_vs_sft.json", [(f"{SC}.majority.2.right", "0.539", "0.839")]),
    "a fixed/broken pair swapped": ("benchmarks/RESULTS.md", "rl_vs_sft.json", [
        (f"{A2C}.paired.0.fixed", "23", "5"), (f"{A2C}.paired.0.broken", "5", "23")]),
    "whole numbers in prose swapped": ("README.md", "rl_vs_sft.json", [
        (f"{GRPO}.paired.0.fixed", "16", "9"), (f"{GRPO}.paired.0.broken", "9", "16")]),
    "counts of clips": ("benchmarks/RESULTS.md", "rl_vs_sft.json", [
        (f"{R1}.judge.0.n", "41", "91"), (f"{R1}.judge.1.n", "91", "41")]),
    "a count in a table cell": ("README.md", "rl_vs_sft.json", [("results.methods.SFT.n_train", "63", "62")]),
    "a p-value's exponent": ("benchmarks/RESULTS.md", "rl_vs_sft.json", [(f"{A2C}.paired.1.p", "5.2e-16", "5.2e-15")]),
    "a score, to another run's": ("notebooks/04_a2c.ipynb", "rl_vs_sft.json", [
        ("results.tuning.algorithms.a2c.runs.lr3e-04-kl0.score", "0.9722", "0.9626")]),
    "a click's seconds, to its estimate": ("benchmarks/RESULTS.md", "training_panel.json", [
        ("results.runs.3.seconds", "28.0", "23.3")]),
    "a seconds-a-step": ("README.md", "paper_scale.json", [("runs.256m.1.rollout_s", "6.6", "7.6")]),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_a_planted_error_fails_naming_the_number_and_its_key_path(kind):
    name, results, changes = PLANTED[kind]
    problems = check(edited(fenced(name, results), changes), ROOT, name)
    assert len(problems) == len(changes), problems
    for path, old, new in changes:
        problem = next(p for p in problems if f"({path})" in p)
        assert problem.startswith(f"{name}:") and f'"{new}" bound to ' in problem, problem
        assert f"({old} " in problem, problem  # the value as quoted: "(0.78 at 2 places)"
        # the earlier check, "equals any value of the file", let these through (a p-value's new exponent aside)
        assert held_elsewhere(results, new) or kind == "a p-value's exponent"


def test_the_message_names_number_path_and_value():
    text = edited(fenced("benchmarks/RESULTS.md", "rl_vs_sft.json"), [(f"{A2C}.gap_closed.f1_act", "0.78", "0.75")])
    quotes: list[Quote] = []
    problems = check(text, ROOT, "benchmarks/RESULTS.md", quotes)
    line = next(q.line for q in quotes if q.full == f"{A2C}.gap_closed.f1_act")
    assert problems == [
        f'benchmarks/RESULTS.md:{line}: "0.75" bound to a2c.gap_closed.f1_act '
        f"(results.methods.A2C-R2.gap_closed.f1_act), which holds 0.778571 (0.78 at 2 places)"]


def test_a_number_without_a_binding_fails():
    text = fenced("benchmarks/RESULTS.md", "rl_vs_sft.json")
    problems = check(text.replace("<!-- r1.judge.{0,1,2}.n -->", ""), ROOT, "R")
    assert [p.split(": ", 1)[1] for p in problems] == [f'"{n}" has no binding: a comment after it names its key path '
                                                       f"(or <!-- unbound: why -->)" for n in ("41", "91", "79")]
    added = text.replace("0.78 / 0.73<!--", "0.78 / 0.73 / 0.74<!--")
    assert check(added, ROOT, "R")[0].endswith("names 2 path(s) for the 3 number(s) before it ('0.78', '0.73', '0.74')")


def test_a_key_path_the_file_does_not_hold_fails_naming_it():
    text = fenced("benchmarks/RESULTS.md", "rl_vs_sft.json")
    problems = check(text.replace("a2c.gap_closed.{f1_act,f1_rsn}", "a2c.gap_close.{f1_act,f1_rsn}"), ROOT, "R")
    assert problems[0].endswith('"0.78" bound to a2c.gap_close.f1_act (results.methods.A2C-R2.gap_close.f1_act): '
                                "results.methods.A2C-R2 has no key 'gap_close'")
    assert len(problems) == 2
    problems = check(text.replace("r1.judge.{0,1,2}.n", "r1.judge.{0,1,3}.n"), ROOT, "R")
    assert problems == [problems[0]] and problems[0].endswith(
        "results.methods.A2C-R1.judge has no item '3' (a list of 3)")


# --- the rules, on a small file ---------------------------------------------------------------------------------

def test_the_rules(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({
        "gap": 0.7291, "p": 2.30e-25, "paired": [{"fixed": 93, "broken": 2}, {"fixed": 2, "broken": 93}],
        "n": 1503, "runs": {"lr3e-04-kl0": {"score": 0.9722}, "lr3e-04-kl0.05": {"score": 0.9626}},
        "delta": -1.12, "name": "A2C", "ok": True}))
    good = ("<!-- numbers: r.json  s = runs -->\n"
            "A2C closes 0.73 of the gap (72.9 %)<!-- gap gap -->, fixes 93/2<!-- paired.0.{fixed,broken} --> on "
            "1,503<!-- n --> clips (p = 2.3e-25<!-- p -->), F1 scores 0.972 and 0.963"
            "<!-- s.{lr3e-04-kl0,lr3e-04-kl0.05}.score -->, −1.12<!-- delta -->, "
            "in 320<!-- unbound: a setting in code --> steps. F1, R2, H200, 256M, `8x4` and 3.11.7 are names.\n"
            "<!-- /numbers -->\n0.123 and 7 outside any fence are not checked.")
    assert check(good, tmp_path) == []
    assert expand("a.{b,c{d,e}}.{0,1}") == ["a.b.0", "a.b.1", "a.cd.0", "a.cd.1", "a.ce.0", "a.ce.1"]
    bad = (good.replace("72.9 %", "72.8 %").replace("93/2", "2/93").replace("2.3e-25", "2.3e-24")
           .replace("1,503", "1,502").replace("−1.12", "1.12"))
    assert [p.split(": ", 1)[1] for p in check(bad, tmp_path, "d")] == [
        '"72.8" bound to gap, which holds 0.7291 (72.9 % at 1 place)',
        '"2" bound to paired.0.fixed, which holds 93 (93 as a whole number)',
        '"93" bound to paired.0.broken, which holds 2 (2 as a whole number)',
        '"1,502" bound to n, which holds 1503 (1503 as a whole number)',
        '"2.3e-24" bound to p, which holds 2.3e-25 (2.3e-25 at 2 significant digits)',
        '"1.12" bound to delta, which holds -1.12 (-1.12 at 2 places)']
    fence = "<!-- numbers: r.json -->{}<!-- /numbers -->"
    assert check(fence.format("A2C is 7<!-- name -->; 1<!-- ok -->"), tmp_path, "d") == [
        "d:1: \"7\" bound to name, which holds 'A2C', not a number",
        'd:1: "1" bound to ok, which holds True, not a number']
    assert check(fence.format("7 and 8<!-- unbound: settings -->"), tmp_path, "d") == [
        "d:1: <!-- unbound: settings --> leaves one number unbound and says why; 2 number(s) precede it ('7', '8')"]
    assert check(fence.format("7<!-- unbound: -->"), tmp_path, "d")[0].endswith(
        "leaves one number unbound and says why; 1 number(s) precede it ('7')")
    assert check(fence.format("no numbers"), tmp_path, "d") == ["d:1: the fence binds no number"]
    assert check("<!-- numbers: gone.json -->0.5<!-- gap --><!-- /numbers -->", tmp_path, "d") == [
        "d:1: gone.json: no such file"]
    assert check(fence.format("0.73<!-- gap -->") + "\n<!-- /numbers -->", tmp_path, "d") == [
        "d:2: <!-- /numbers --> closes no fence"]
    assert check("<!-- numbers: r.json -->\n<!-- numbers: r.json -->0.73<!-- gap --><!-- /numbers -->", tmp_path,
                 "d") == ["d:2: a fence opens inside the fence opened at line 1"]
    assert check("<!-- numbers: r.json -->\n0.73<!-- gap -->", tmp_path, "d") == [
        "d:1: the fence is not closed (<!-- /numbers -->)"]
    assert check("<!-- numbers: r.json gap = n -->2<!-- gap --><!-- /numbers -->", tmp_path, "d")[0] == (
        "d:1: the short name 'gap' is also a key of r.json")
