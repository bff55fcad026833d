"""The committed notebooks' stored outputs, as GitHub and a notebook opened before its cells run show them (issue 36).

- No output is a raw widget repr (``VBox(children=(...``): every widget output also holds a readable HTML table
  or PNG image of the widget's first state.
- No output is a library warning (stderr, ``FutureWarning: ...``, bitsandbytes' kernels notice).
- In the notebooks with widgets (03, 04, 05) no answer text is cut (pandas' ``...`` at 50 characters, a slice
  with ``…``).
- The reward explorers of 04 and 05, rebuilt from the answers and scores their cell stored
  (``widgets.EXPLORER_MIME``): every clip has every constructed answer; moving each weight's share slider to 0
  changes the ranking of at least one clip, and so does each R2 variant; the scale changes none; the stored
  table is the explorer's own at its first weights, one table with every answer whole, and ties marked.
"""
import html
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_NOTEBOOKS = ["03_clip_reward", "04_a2c", "05_json_stage"]
EXPLORERS = {"04_a2c": "plain", "05_json_stage": "json"}
VIEW = "application/vnd.jupyter.widget-view+json"
# A library warning as Python prints it, and notices known to have reached cells
WARNING = re.compile(r"\b[A-Z]\w*Warning\b: |warnings\.warn\(|kernels-community|is deprecated|Traceback \(most recent")
# A text cut short: an ellipsis glued to the word or quote it cut (pandas' "allow...", a slice's "lane…")
CUT = re.compile(r"[\w\"'\])}:;,.](\.\.\.|…)(?!\.)")


def widget_names() -> list[str]:
    ipywidgets = pytest.importorskip("ipywidgets")
    names = {cls.__name__ for cls in vars(ipywidgets).values()
             if isinstance(cls, type) and issubclass(cls, ipywidgets.Widget)}
    return sorted(names, key=len, reverse=True)


def outputs(path: Path):
    """(cell index, output, {mimetype or 'stream:<name>': text}) of every stored output."""
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            texts = {}
            if output["output_type"] == "stream":
                texts[f"stream:{output['name']}"] = "".join(output["text"])
            elif output["output_type"] == "error":
                texts["error"] = "\n".join(output.get("traceback", []))
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/"):
                    texts[mime] = data if isinstance(data, str) else "".join(data)
            yield i, output, texts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_output_is_a_widget_repr_or_a_library_warning(path):
    repr_ = re.compile(r"\b(" + "|".join(widget_names()) + r")\(")
    for i, output, texts in outputs(path):
        data = output.get("data", {})
        if VIEW in data:
            assert {"text/html", "image/png"} & set(data), f"{path.name} cell {i}: a widget output with no HTML or image"
        for kind, text in texts.items():
            assert not repr_.search(text), f"{path.name} cell {i} ({kind}): a widget's repr: {text[:120]!r}"
            assert kind != "stream:stderr" and kind != "error", f"{path.name} cell {i}: {kind} output: {text[:300]!r}"
            found = WARNING.search(text)
            assert not found, f"{path.name} cell {i} ({kind}): a library warning: {text[max(0, found.start() - 80):][:240]!r}"


@pytest.mark.parametrize("name", WIDGET_NOTEBOOKS)
def test_no_answer_text_is_cut(name):
    path = ROOT / "notebooks" / f"{name}.ipynb"
    for i, _, texts in outputs(path):
        for kind, text in texts.items():
            if kind.startswith("stream"):
                continue  # printed progress ("training ..."), not a table
            found = CUT.search(html.unescape(text))
            assert not found, (f"{name} cell {i} ({kind}): a text cut short: "
                               f"{html.unescape(text)[max(0, found.start() - 60):found.end() + 10]!r}")


def stored_explorers(name: str):
    path = ROOT / "notebooks" / f"{name}.ipynb"
    from drivekit.course import widgets

    found = [(i, output["data"]) for i, output, _ in outputs(path) if widgets.EXPLORER_MIME in output.get("data", {})]
    assert len(found) == 1, f"{name}: {len(found)} stored reward explorers, expected 1"
    return found[0]


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_every_weight_and_r2_variant_of_the_stored_explorer_reorders_a_constructed_clip(name):
    pytest.importorskip("ipywidgets")
    from drivekit.course import candidates, widgets

    i, data = stored_explorers(name)
    explorer = widgets.stored_explorer(data[widgets.EXPLORER_MIME])
    kinds = candidates.JSON_KINDS if EXPLORERS[name] == "json" else candidates.PLAIN_KINDS
    sources = explorer.scored.groupby("file_name")["source"].apply(lambda s: " = ".join(s))
    for clip, named in sources.items():
        for kind in (*kinds, "sampled"):
            assert kind in named, f"{name}: clip {clip} has no {kind!r} answer ({named})"
    assert explorer.table()[1]["changed"] == 0
    moved = {}
    for term, share in explorer.shares.items():
        first = share.value
        share.value = 0.0
        moved[term] = explorer.table()[1]["changed"]
        share.value = first
    assert all(moved.values()), f"{name}: moving a share to 0 changed no ranking: {moved}"
    for variant in explorer.variants[1:]:
        explorer.variant.value = variant
        assert explorer.table()[1]["changed"], f"{name}: the R2 variant {variant} changed no ranking"
    explorer.variant.value = explorer.variants[0]
    explorer.scale.value = explorer.scale.max
    assert explorer.table()[1]["changed"] == 0, "the scale changed a ranking"


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_the_stored_explorer_shows_one_table_of_every_whole_answer_as_python_draws_it(name):
    pytest.importorskip("ipywidgets")
    from drivekit.course import widgets

    i, data = stored_explorers(name)
    explorer = widgets.stored_explorer(data[widgets.EXPLORER_MIME])
    page = data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"])
    assert explorer.html() in page and page.count("<table") == 1, f"{name} cell {i}: not the explorer's table"
    assert page.count("class='answer'") == len(explorer.scored)  # every answer a row
    for text in explorer.scored["text"]:
        assert html.escape(text) in page
    if explorer.first["tied"].any():
        assert "=</td>" in page  # a shared rank is marked
    assert "ratios" in page and "learning rate" in page  # the sentence on shares and scale


def test_notebook_03s_r1_box_is_stored_with_an_image():
    found = [output["data"] for _, output, _ in outputs(ROOT / "notebooks" / "03_clip_reward.ipynb")
             if VIEW in output.get("data", {})]
    assert len(found) == 1 and "image/png" in found[0] and "R1 = " in "".join(found[0]["text/plain"])
