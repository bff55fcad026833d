"""Notebook 06 analyses the committed experiment and ends with what the course found (issue 35 item 2).

Each check is a function returning its problems, run on the committed notebook (no problem) and on a copy with a
planted error (the problem is found): the findings section with numbers bound to ``rl_vs_sft.json``, numbers
outside a fence printed by a cell, every method and seed of the committed file analysed and recomputed from the
per-clip answers, no answer cut short, learning goals at the top and takeaways at the end.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from drivekit import experiment
from drivekit.evaluation.plots import trailing_mean  # bound here: the planted error below replaces plots' own
from drivekit.evaluation.quotes import COMMENT, NUMBER, Quote, check
from drivekit.experiment import answers
from drivekit.experiment.settings import BASELINE
from drivekit.text.formats import target_text
from test_notebook_text import TRUNCATION, notebook, output_texts, source

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FENCE = re.compile(r"<!--\s*numbers:.*?<!--\s*/numbers\s*-->", re.S)


def load() -> dict:
    return json.loads(notebook("06").read_text())


def markdown(nb: dict) -> list[str]:
    return [source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]


def outputs(nb: dict) -> str:
    return "\n".join(t for c in nb["cells"] if c["cell_type"] == "code" for t in output_texts(c))


def code_cell(nb: dict, marker: str) -> dict:
    """The one code cell whose source holds ``marker``."""
    found = [c for c in nb["cells"] if c["cell_type"] == "code" and marker in source(c)]
    assert len(found) == 1, (marker, len(found))
    return found[0]


def committed():
    results = experiment.load_results(RESULTS / "rl_vs_sft.json")
    return results, answers.answers(RESULTS / "rl_vs_sft_predictions.jsonl.gz", "test")


# --- the checks ------------------------------------------------------------------------------------------------
def findings_problems(nb: dict) -> list[str]:
    """The section exists just before the takeaways, says what the brief asks, and binds its numbers."""
    texts = markdown(nb)
    found = [i for i, t in enumerate(texts) if t.startswith("## What this course found")]
    if len(found) != 1:
        return [f"{len(found)} markdown cells start with '## What this course found'"]
    text, problems = texts[found[0]], []
    if found[0] != len(texts) - 2:
        problems.append("the findings are not the markdown cell just before the takeaways")
    flat = " ".join(COMMENT.sub("", text).split())
    for phrase in ("three quarters", "below SFT on all labels", "unlearned", "without a reason", "toy test split",
                   "scored in every round", "not a fresh test"):
        if phrase not in flat:
            problems.append(f"the findings do not say {phrase!r}")
    if "<!-- numbers: benchmarks/results/rl_vs_sft.json" not in text:
        problems.append("no numbers fence on benchmarks/results/rl_vs_sft.json")
    quotes: list[Quote] = []
    problems += check(text, ROOT, "findings", quotes)
    bound = [q for q in quotes if q.value is not None]
    if len(bound) < 40 or len(quotes) != len(bound):
        problems.append(f"{len(bound)} numbers bound to the results file, {len(quotes) - len(bound)} unbound")
    return problems


def unfenced_problems(nb: dict) -> list[str]:
    """Every number the findings quote outside a fence is printed by a code cell (an "a of b" as printed)."""
    text = next(t for t in markdown(nb) if t.startswith("## What this course found"))
    rest = COMMENT.sub("", FENCE.sub("", text))
    printed = outputs(nb)
    tokens = set(NUMBER_TOKENS.findall(printed))
    problems = [f'"{m}" is not printed by any cell' for m in re.findall(r"\d+ of \d+", rest) if m not in printed]
    problems += [f'"{n[0]}" is not printed by any cell' for n in NUMBER.finditer(rest) if n[0] not in tokens]
    return problems


NUMBER_TOKENS = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w]|\.\d)")


def coverage_problems(nb: dict) -> list[str]:
    """Every method and seed of the committed file appears in the tables the notebook stores, and the code names
    no RL method (it reads whatever the file holds)."""
    results, _ = committed()
    methods, seeds = list(results["methods"]), results["seeds"]
    problems = []
    form = "".join(output_texts(code_cell(nb, "answers.form(")))
    paired = "".join(output_texts(code_cell(nb, "answers.paired_tests(")))
    for m in methods:
        for s in seeds:
            if f"{m}, seed {s}: " not in form:
                problems.append(f"the form cell has no line for {m}, seed {s}")
            if m != "SFT" and f"{m} vs SFT, seed {s}: " not in paired:
                problems.append(f"the paired-tests cell has no line for {m} vs SFT, seed {s}")
    for marker in ("answers.spread(", "answers.per_class(", "scored.pivot("):
        table = "".join(t for t in output_texts(code_cell(nb, marker)) if not t.lstrip().startswith("<"))
        rows = {line.split()[0] for line in table.splitlines() if line.strip()}
        problems += [f"the table of {marker!r} has no row {m}" for m in methods if m not in rows]
    header = "".join(output_texts(code_cell(nb, "scored.pivot(")))
    problems += [f"the per-seed table has no column for seed {s}" for s in seeds if f"seed {s}" not in header]
    rl = [m for m in methods if m not in ("SFT", "SFT-all")]
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            problems += [f"a code cell names the method {m!r}: {source(c)[:60]!r}" for m in rl
                         if re.search(rf"[\"']{re.escape(m)}[\"']", source(c))]
    return problems


def recomputed_problems(nb: dict) -> list[str]:
    """The stored form and paired-test lines are those the committed answers give today."""
    results, runs = committed()
    form = answers.form(runs)
    lines = []
    for r in form.itertuples():
        line = (f"{r.method}, seed {r.seed}: no action {r.no_action}, no reason {r.no_reason} of {r.n}; "
                f"with a reason, right {r.reason_right} of {r.with_reason}")
        if r.method != "SFT":
            line += f"; broken vs SFT {int(r.broken)}, of them without a reason {int(r.broken_without_reason)}"
        lines.append(line)
    label_free = [m for m, e in results["methods"].items() if e.get("labels_used") == "none" and m != BASELINE]
    tests = answers.paired_tests(runs, "SFT", {BASELINE: label_free} if BASELINE in runs else None)
    lines += [f"{r.method} vs {r.against}, seed {r.seed}: fixed {r.fixed}, broken {r.broken}, p {r.p:.2g}, "
              f"Holm p {r.p_holm:.2g}" for r in tests.itertuples()]
    stored = "".join(output_texts(code_cell(nb, "answers.form("))) + "".join(
        output_texts(code_cell(nb, "answers.paired_tests(")))
    return [f"not stored as the committed answers give it: {line}" for line in lines if line not in stored]


def truncation_problems(nb: dict) -> list[str]:
    """No stored output cuts a table or a string; the example answers are whole, as the committed answers give."""
    problems = [f"{source(c)[:60]!r} shows {TRUNCATION.search(t)[0]!r}" for c in nb["cells"] if c["cell_type"] == "code"
                for t in output_texts(c) if TRUNCATION.search(t)]
    _, runs = committed()
    cell = code_cell(nb, "plots.pick_examples(")
    text = "".join("".join(o["data"]["text/plain"]) for o in cell["outputs"] if "text/plain" in o.get("data", {}))
    seed = int(re.search(r"seed (\d+)", "".join(output_texts(cell)))[1])
    by_name = {m: {r["file_name"]: r for r in by_seed[seed]} for m, by_seed in runs.items()}
    blocks: dict[str, list[str]] = {}  # clip -> its lines in the table
    for line in text.splitlines():
        if re.match(r"syn\S+\.jpg", line):
            clip = line.split()[0]
        if blocks or re.match(r"syn\S+\.jpg", line):
            blocks.setdefault(clip, []).append(line)
    if not blocks:
        problems.append("the examples' answers table shows no clip")
    for clip, lines in blocks.items():
        for m, rows in by_name.items():
            whole = target_text(rows[clip]["actions_pred"], rows[clip]["reasons_pred"])
            if not any(re.search(rf"\s{re.escape(m)}\s+{re.escape(whole)}(\s|$)", f" {line}") for line in lines):
                problems.append(f"{clip} {m}: the answer {whole!r} is not shown whole")
    return problems


def goals_problems(nb: dict) -> list[str]:
    texts = markdown(nb)
    problems = [] if "**Learning goals.**" in texts[0] else ["no **Learning goals.** in the first markdown cell"]
    if not texts[-1].startswith("## Key takeaways"):
        problems.append("the last markdown cell is not ## Key takeaways")
    return problems


# --- the committed notebook has no problem --------------------------------------------------------------------
CHECKS = {"findings": findings_problems, "unfenced numbers": unfenced_problems, "coverage": coverage_problems,
          "recomputed": recomputed_problems, "truncation": truncation_problems, "goals": goals_problems}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_06(name):
    assert CHECKS[name](load()) == []


# --- each check finds a planted error --------------------------------------------------------------------------
def markdown_cell(nb: dict, start: str) -> dict:
    return next(c for c in nb["cells"] if c["cell_type"] == "markdown" and source(c).startswith(start))


def replace_in_source(cell: dict, old: str, new: str) -> None:
    text = source(cell)
    assert old in text, old
    cell["source"] = text.replace(old, new, 1).splitlines(keepends=True)


def replace_in_outputs(cell: dict, old: str, new: str) -> None:
    changed = False
    for o in cell["outputs"]:
        for holder, key in [(o, "text")] + [(o.get("data", {}), k) for k in o.get("data", {})]:
            if key in holder and isinstance(holder[key], (str, list)):
                text = holder[key] if isinstance(holder[key], str) else "".join(holder[key])
                if old in text:
                    holder[key], changed = text.replace(old, new), True
    assert changed, old


def plant_gap(nb):  # 0.78 -> 0.75: a value the file holds elsewhere
    replace_in_source(markdown_cell(nb, "## What this course found"), "closes 0.78 /", "closes 0.75 /")


def plant_unbound(nb):  # a number typed into the fence without its binding
    replace_in_source(markdown_cell(nb, "## What this course found"), "<!-- m.A2C-R2.summary.f1_act.mean -->", "")


def plant_missing_claim(nb):  # the section no longer says that label-free RL unlearned
    cell = markdown_cell(nb, "## What this course found")
    cell["source"] = source(cell).replace("unlearned", "did not improve").splitlines(keepends=True)


def plant_unprinted(nb):  # 206 of 506 -> 207 of 506 outside the fence
    replace_in_source(markdown_cell(nb, "## What this course found"), "206 of 506", "207 of 506")


def plant_dropped_method(nb):  # the stored tables lose a method (as a hard-coded list of methods would)
    cell = code_cell(nb, "answers.form(")
    for o in cell["outputs"]:
        if "text" in o:
            o["text"] = [line for line in "".join(o["text"]).splitlines(keepends=True) if not line.startswith("ST,")]


def plant_named_method(nb):
    cell = code_cell(nb, "answers.form(")
    cell["source"] = ['runs = {m: runs[m] for m in ("SFT", "A2C-R2", "A2C-R1")}\n', *cell["source"]]


def plant_stale_count(nb):  # the committed answers changed since the notebook ran
    replace_in_outputs(code_cell(nb, "answers.form("), "no reason 206 of 506", "no reason 205 of 506")


def plant_cut_answer(nb):  # the old display: answers cut by pandas
    replace_in_outputs(code_cell(nb, "plots.pick_examples("), "Reason: On the right-turn lane",
                       "Reason: On the right-turn ...")


def plant_short_answer(nb):  # an answer cut without pandas' mark
    replace_in_outputs(code_cell(nb, "plots.pick_examples("), "Reason: On the right-turn lane", "Reason: On the right")


def plant_takeaways_first(nb):
    md = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    i, j = nb["cells"].index(md[-1]), nb["cells"].index(md[-2])
    nb["cells"][i], nb["cells"][j] = nb["cells"][j], nb["cells"][i]


PLANTED = {"findings": [plant_gap, plant_unbound, plant_missing_claim, plant_takeaways_first],
           "unfenced numbers": [plant_unprinted], "coverage": [plant_dropped_method, plant_named_method],
           "recomputed": [plant_stale_count], "truncation": [plant_cut_answer, plant_short_answer],
           "goals": [plant_takeaways_first]}


@pytest.mark.parametrize("name,plant", [(n, p) for n, ps in PLANTED.items() for p in ps],
                         ids=lambda x: getattr(x, "__name__", x))
def test_a_planted_error_is_found(name, plant):
    nb = copy.deepcopy(load())
    plant(nb)
    assert CHECKS[name](nb) != []


def test_the_reader_gives_the_results_files_numbers():
    """answers.scores / paired_tests recompute rl_vs_sft.json's per-seed F1s and fixed/broken from the answers."""
    results, runs = committed()
    scored = answers.scores(runs)
    assert set(scored["method"]) == set(results["methods"]) and set(scored["seed"]) == set(results["seeds"])
    for r in scored.itertuples():
        saved = results["methods"][r.method]["f1_act"][results["seeds"].index(r.seed)]
        assert r.f1_act == pytest.approx(saved, abs=1e-12)
    tests = answers.paired_tests(runs)
    for r in tests.itertuples():
        saved = results["methods"][r.method]["paired"][results["seeds"].index(r.seed)]
        assert (r.fixed, r.broken) == (saved["fixed"], saved["broken"])
        assert r.p == pytest.approx(saved["p"])
    # a planted error: one answer losing its reason changes the counts
    seed, method = results["seeds"][0], next(m for m in runs if m != "SFT")
    rows = runs[method][seed]
    i = next(i for i, r in enumerate(rows)
             if r["actions_pred"] == r["actions_true"] and r["reasons_pred"] == r["reasons_true"])
    rows[i] = {**rows[i], "reasons_pred": [0] * len(rows[i]["reasons_pred"])}
    changed = answers.paired_tests(runs)
    row = changed[(changed["method"] == method) & (changed["seed"] == seed)].iloc[0]
    saved = results["methods"][method]["paired"][0]
    assert (row["fixed"], row["broken"]) != (saved["fixed"], saved["broken"])


def seed_band_problems(fig, frame, window) -> list[str]:
    """Per panel: one light line per seed with its raw values, the dark line the mean over seeds of their trailing
    means, the band from the lowest to the highest of them."""
    import numpy as np

    problems = []
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    for ax, (method, runs) in zip(panels, frame.groupby("method", sort=False)):
        by_seed = {s: r.sort_values("step")["value"].to_numpy() for s, r in runs.groupby("seed")}
        smooth = np.array([trailing_mean(v, window) for v in by_seed.values()])
        raw = [line.get_ydata() for line in ax.lines if line.get_alpha() and line.get_alpha() < 0.5]
        dark = [line.get_ydata() for line in ax.lines if not line.get_alpha()]
        if sorted(map(tuple, raw)) != sorted(map(tuple, by_seed.values())):
            problems.append(f"{method}: the light lines are not each seed's raw values")
        if len(dark) != 1 or not np.allclose(dark[0], smooth.mean(axis=0)):
            problems.append(f"{method}: the dark line is not the mean of the seeds' trailing means")
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        if not (np.isclose(band.min(), smooth.min()) and np.isclose(band.max(), smooth.max())):
            problems.append(f"{method}: the band does not span the seeds' trailing means")
    if len(panels) != frame["method"].nunique():
        problems.append(f"{len(panels)} panels for {frame['method'].nunique()} methods")
    return problems


def test_seed_bands_show_raw_values_light_and_the_seeds_band(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from drivekit.evaluation import plots

    rng = np.random.default_rng(0)
    frame = pd.DataFrame([dict(method=m, seed=s, step=t, value=float(rng.normal(t / 50, 1)))
                          for m in ("A", "B") for s in (0, 1, 2) for t in range(1, 61)])
    assert seed_band_problems(plots.plot_seed_bands(frame, "value", window=10), frame, 10) == []
    # planted: no smoothing (the dark line the raw mean)
    monkeypatch.setattr(plots, "trailing_mean", lambda values, window: np.asarray(values, dtype=float))
    assert seed_band_problems(plots.plot_seed_bands(frame, "value", window=10), frame, 10) != []
