"""The reward explorer (notebooks 04 and 05): terms scored once, re-weighted and re-ranked without recomputing;
constructed answers that every weight and R2 variant reorder; weights as shares plus a scale; the outputs a
reader without a widget front end sees; the training panel's controls and curves; notebook 03's R1 box."""
import html as html_lib
import json
import re

import numpy as np
import pandas as pd
import pytest

from drivekit.course import candidates, widgets
from drivekit.text.formats import parse_text, target_text
from drivekit.text.json_output import parse_json, structure_score
from drivekit.core.taxonomy import REASON_PHRASES

STOP = ([0, 1, 0, 0], [0, 0, 0, 1] + [0] * 17)  # stop for a car
GO = ([1, 0, 0, 0], [1] + [0] * 20)  # move forward, follow traffic
SCENE = "We drive in a through lane. The car ahead is stopped close to us."


def _answers():
    right, wrong = target_text(*STOP), target_text(*GO)
    rows = [("a.jpg", right), ("a.jpg", wrong), ("a.jpg", "garbage"), ("b.jpg", wrong), ("b.jpg", right)]
    return pd.DataFrame([dict(file_name=f, text=t, actions=STOP[0], reasons=STOP[1]) for f, t in rows])


class FakeClip:
    """R1 standing in for CLIP: prefers answers that say *Move forward*, then long ones."""

    __name__ = "r1_clip"

    def __init__(self):
        self.calls = 0

    def __call__(self, completions, **batch):
        self.calls += 1
        return [(0.6 if "forward" in c.lower() else 0.2) + min(len(c), 400) / 1000 for c in completions]


def clip_item(name, labels):
    return dict(name=name, actions=np.array(labels[0]), reasons=np.array(labels[1]))


def test_terms_are_scored_once_and_each_weighting_reranks_the_answers():
    clip = FakeClip()
    scored = widgets.score_answers(_answers(), clip)
    assert clip.calls == 1 and {"r1", "r2:label_f1", "r2:bleu", "r2:bleu_raw"} <= set(scored.columns)
    assert list(scored["r2:label_f1"]) == [1.0, 0.0, 0.0, 0.0, 1.0]
    labels_only = widgets.rescore(scored, {"r1": 0.0, "r2": 1.0})
    assert labels_only.loc[0, "rank"] == 1 and labels_only.loc[4, "rank"] == 1  # the right answers first
    clip_only = widgets.rescore(scored, {"r1": 1.0, "r2": 0.0})
    best = clip_only[clip_only["rank"] == 1]["text"].tolist()
    assert all("forward" in t.lower() for t in best)  # R1 alone prefers the wrong action here
    assert clip_only["R"].tolist() != labels_only["R"].tolist() and clip.calls == 1  # nothing recomputed
    bleu = widgets.rescore(scored, {"r2": 1.0}, "bleu_raw")
    assert sorted(bleu["r2"]) == sorted(scored["r2:bleu_raw"]) and bleu.loc[0, "rank"] == 1
    with pytest.raises(KeyError, match="r3"):
        widgets.rescore(scored, {"r3": 1.0})


def test_equal_rewards_share_a_rank_and_clips_keep_their_order():
    scored = pd.DataFrame(dict(file_name=["z.jpg", "z.jpg", "z.jpg", "a.jpg"], text=["p", "q", "r", "s"],
                               r1=[0.1 + 0.2, 0.3, 0.9, 0.5]))  # 0.1 + 0.2 != 0.3 in floating point
    ranked = widgets.rescore(scored, {"r1": 1.0})
    assert ranked["file_name"].tolist() == ["z.jpg", "z.jpg", "z.jpg", "a.jpg"]  # z first, as given
    assert ranked["text"].tolist() == ["r", "p", "q", "s"] and ranked["rank"].tolist() == [1, 2, 2, 1]
    assert ranked["tied"].tolist() == [False, True, True, False]
    assert [widgets.rank_label(r, t) for r, t in zip(ranked["rank"], ranked["tied"])] == ["1", "2=", "2=", "1"]


def test_constructed_answers_differ_from_the_truth_in_one_way_each():
    items = [clip_item("a.jpg", STOP), clip_item("b.jpg", GO)]
    plain = candidates.constructed_answers(items, {"a.jpg": "Action: Stop/Slow down; Reason: Traffic light"},
                                           scenes={"a.jpg": SCENE})
    a = plain[plain["file_name"] == "a.jpg"].set_index("source")["text"]
    assert list(a.index) == list(candidates.PLAIN_KINDS)
    truth = parse_text(a["true answer"])
    assert truth.ok and truth.actions.tolist() == STOP[0] and truth.reasons.tolist() == STOP[1]
    wrong_reason = parse_text(a["right action, wrong reason"])
    assert wrong_reason.actions.tolist() == STOP[0] and wrong_reason.reasons.tolist() != STOP[1]
    assert wrong_reason.reasons[[4]].tolist() == [1]  # a reason of stopping: Obstacle: person
    wrong_action = parse_text(a["wrong action, right reason"])
    assert wrong_action.actions.tolist() == GO[0] and wrong_action.reasons.tolist() == STOP[1]
    assert a["verbose"] == f"{a['true answer']}\n{SCENE}" and not parse_text(a["malformed"]).ok
    assert a["SFT's answer"] == "Action: Stop/Slow down; Reason: Traffic light"
    b = plain[plain["file_name"] == "b.jpg"].set_index("source")["text"]
    assert "SFT's answer" not in b and parse_text(b["wrong action, right reason"]).actions.tolist() == STOP[0]

    other = "A red light ahead, nothing else on the road."
    js = candidates.constructed_answers(items, target="json", scenes={"a.jpg": SCENE, "b.jpg": other})
    js = js[js["file_name"] == "a.jpg"].set_index("source")["text"]
    assert list(js.index) == list(candidates.JSON_KINDS[:-1])  # no SFT answers given: none
    truth = json.loads(js["true answer"])
    assert parse_json(js["true answer"]).ok and truth["scene"] == SCENE
    assert parse_json(js["wrong action, right reason"]).actions.tolist() == GO[0]
    assert json.loads(js["another clip's scene"]) == {**truth, "scene": other}  # the labels and R3 of the truth
    verbose = json.loads(js["verbose (extra key)"])
    assert verbose == {**truth, "notes": candidates.NOTES} and not parse_json(js["verbose (extra key)"]).ok
    assert structure_score(js["verbose (extra key)"]).total < 1 == structure_score(js["true answer"]).total
    assert js["true answer"].startswith(js["cut off"]) and structure_score(js["cut off"]).total == 0


def test_gather_merges_a_clips_identical_answers_and_names_every_source():
    items = [clip_item("a.jpg", STOP)]
    truth = target_text(*STOP)
    answers = widgets.explorer_answers(items, [truth, truth, "Action: Move forward; Reason: Follow traffic", truth],
                                       {"a.jpg": truth}, scenes={"a.jpg": SCENE})
    assert answers["text"].is_unique and answers["count"].sum() == len(candidates.PLAIN_KINDS) + 4
    by_text = answers.set_index("text")["source"]
    assert by_text[truth] == "true answer = SFT's answer = sampled ×3"
    assert by_text["Action: Move forward; Reason: Follow traffic"] == "sampled"
    with pytest.raises(ValueError, match="same number"):
        candidates.sampled_answers(items * 2, ["x"] * 3)


def test_explorer_clips_take_clips_sft_gets_wrong_and_right():
    items = [clip_item(f"{i}.jpg", STOP) for i in range(6)]
    rows = [dict(file_name=f"{i}.jpg", actions_true=STOP[0], reasons_true=STOP[1], actions_pred=GO[0] if i in (1, 4) else STOP[0],
                 reasons_pred=STOP[1]) for i in range(6)]
    assert [c["name"] for c in candidates.explorer_clips(items, rows, n=3, wrong=1)] == ["0.jpg", "1.jpg", "2.jpg"]
    assert [c["name"] for c in candidates.explorer_clips(items, rows, n=4, wrong=3)] == ["0.jpg", "1.jpg", "2.jpg", "4.jpg"]


def _explorer(target="plain", clip=None):
    items = [clip_item("a.jpg", STOP), clip_item("b.jpg", GO)]
    samples = [target_text(*STOP)] * 2 + [target_text(*GO)] * 2
    if target == "json":
        from drivekit.text.json_output import json_target

        samples = [json_target(*map(np.array, STOP), SCENE)] * 2 + [json_target(*map(np.array, GO), SCENE)] * 2
    answers = widgets.explorer_answers(items, samples, None, target, {"a.jpg": SCENE, "b.jpg": SCENE})
    weights = {"r1": 1.0, "r2": 1.0, "r3": 1.0} if target == "json" else {"r1": 1.0, "r2": 1.0}
    return widgets.reward_explorer(widgets.score_answers(answers, clip or FakeClip(), target=target), weights)


@pytest.mark.parametrize("target", ["plain", "json"])
def test_every_weight_and_r2_variant_reorders_a_clip_and_the_scale_none(target):
    pytest.importorskip("ipywidgets")
    explorer = _explorer(target)
    first, summary = explorer.table()
    assert summary["changed"] == 0 and summary["clips"] == 2 and len(first) == len(explorer.scored)
    assert explorer.weights() == pytest.approx(explorer.first_weights)
    for name, share in explorer.shares.items():
        share.value = 0.0
        assert explorer.table()[1]["changed"] >= 1, name
        share.value = 1.0
    assert explorer.table()[1]["changed"] == 0
    for variant in widgets.EXPLORER_VARIANTS[1:]:
        explorer.variant.value = variant
        assert explorer.table()[1]["changed"] >= 1, variant
    explorer.variant.value = widgets.EXPLORER_VARIANTS[0]
    before = explorer.table()[0]
    explorer.scale.value = explorer.scale.max  # every weight × max / Σw: R scaled, no rank moves
    after, summary = explorer.table()
    factor = explorer.scale.max / sum(explorer.first_weights.values())
    assert factor == 2 and summary["changed"] == 0 and after["R"].to_numpy() == pytest.approx(before["R"].to_numpy() * factor)


def test_shares_and_scale_give_the_weights():
    pytest.importorskip("ipywidgets")
    controls = widgets.WeightControls({"r1": 0.5, "r2": 1.0})
    assert controls.shares["r1"].value == 0.5 and controls.shares["r2"].value == 1.0 and controls.scale.value == 1.5
    assert controls.values() == {"r1": 0.5, "r2": 1.0} and controls.formula.value == "R = 0.50·R1 + 1.00·R2"
    controls.shares["r1"].value = 1.0
    assert controls.values() == {"r1": 0.75, "r2": 0.75} and controls.formula.value == "R = 0.75·R1 + 0.75·R2"
    controls.shares["r1"].value = controls.shares["r2"].value = 0.0
    assert controls.values() == {"r1": 0.0, "r2": 0.0}
    with pytest.raises(ValueError, match="above 0"):
        widgets.WeightControls({"r1": 0.0})


def test_the_table_shows_every_answer_whole_with_ties_and_a_fallback_for_readers_without_widgets():
    pytest.importorskip("ipywidgets")
    explorer = _explorer("json")
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "children=" not in bundle["text/plain"]
    page, text = bundle["text/html"], bundle["text/plain"]
    assert page.count("<table") == 1 and page.count("class='answer'") == len(explorer.scored)
    for answer in explorer.scored["text"]:  # whole in both: escaped in the HTML, wrapped in the text
        assert html_lib.escape(answer) in page and "".join(answer.split()) in "".join(text.split())
    assert "ratios" in page and "learning rate" in page
    payload = bundle[widgets.EXPLORER_MIME]
    assert len(payload["answers"]) == len(explorer.scored) and payload["weights"] == explorer.first_weights
    json.dumps(payload)  # stored as JSON
    explorer.shares["r2"].value = 0.0
    state = explorer.state()
    assert state["weights"]["r2"] == 0 and len(state["rows"]) == len(explorer.scored)
    assert explorer.view.value == explorer.html() and "r2" not in [r for r in state["weights"] if state["weights"][r]]


def test_a_clip_whose_answers_tie_shows_the_shared_rank():
    pytest.importorskip("ipywidgets")
    explorer = _explorer("plain")
    explorer.shares["r1"].value = 0.0  # R2 (label F1) alone: the true and the verbose answer both score 1
    now = explorer.table()[0]
    a = now[now["file_name"] == "a.jpg"].set_index("source")
    assert a.loc["verbose", "rank"] == a.loc["true answer = sampled ×2", "rank"] == 1 and a.loc["verbose", "tied"]
    assert re.search(r"<td[^>]*>1=</td>", explorer.view.value)


def test_json_answers_are_scored_by_the_json_stages_terms():
    from drivekit.rewards.weighted_reward import RewardSettings, make_reward

    right = json.dumps({"scene": "A car ahead, moving forward.", "actions": ["Stop/Slow down"],
                        "reasons": [REASON_PHRASES[3]], "justification": "Stop/Slow down because of the car."})
    answers = pd.DataFrame([dict(file_name="a.jpg", text=t, actions=STOP[0], reasons=STOP[1])
                            for t in (right, right[:40], target_text(*STOP))])  # JSON, cut JSON, plain text
    clip = FakeClip()
    scored = widgets.score_answers(answers, clip, target="json")
    assert clip.calls == 1 and {"r1", "r2:label_f1", "r2:bleu", "r3"} <= set(scored.columns)
    stage = make_reward(RewardSettings(), clip, "json").evaluate(answers["text"].tolist(), file_name=["a.jpg"] * 3,
                                                                  actions=[STOP[0]] * 3, reasons=[STOP[1]] * 3)
    for name in ("r1", "r3"):
        assert scored[name].tolist() == pytest.approx(stage.components[name])
    assert scored["r2:label_f1"].tolist() == pytest.approx(stage.components["r2"]) == [1.0, 0.0, 0.0]
    assert scored["r1"].tolist()[1:] == [0.0, 0.0] and scored["r1"].iloc[0] > 0  # not JSON: 0, CLIP not asked
    assert scored["r3"].iloc[0] > scored["r3"].iloc[1]
    ranked = widgets.rescore(scored, {"r2": 0.0, "r3": 1.0})
    assert ranked.loc[0, "rank"] == 1  # R3 alone: the valid JSON first


# ---------------------------------------------------------------------------------------------
# The training panel: shares and scale, the learning rate as its labels write it, KL, the curves drawn
# ---------------------------------------------------------------------------------------------
def _log(settings):
    steps = settings["steps"]
    return pd.DataFrame({"step": range(1, steps + 1), "reward": 0.5, "value_loss": 0.1, "policy_loss": 0.0,
                         "entropy": 1.0, "kl": 0.0 if not settings.get("kl_coef") else 0.01, "reward_r1": 0.0,
                         "reward_r2": 0.5, "skipped": False})


def test_the_panel_draws_no_curve_for_a_zero_weight_and_kl_only_when_it_is_on():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    calls, drawn = [], []

    def run(**settings):
        calls.append(settings)
        return _log(settings)

    def plot(logs):
        drawn.append({name: list(log.columns) for name, log in logs.items()})
        from matplotlib.figure import Figure

        return Figure()

    panel = widgets.reward_panel(run, plot, weights={"r1": 0.0, "r2": 1.0}, lr=3e-4, kl_coef=0.0, steps=2)
    assert panel.lr.label == "3e-04" and panel.kl.label == "0 (off)"  # the readout as the run labels write it
    panel.train()
    assert calls[-1] == dict(weights={"r1": 0.0, "r2": 1.0}, lr=3e-4, steps=2, kl_coef=0.0)
    label = list(panel.logs)[-1]
    assert label == "#1 r1=0 r2=1 kl=0 lr=3e-04 steps=2"
    assert "reward_r1" not in drawn[-1][label] and "kl" not in drawn[-1][label] and "reward_r2" in drawn[-1][label]
    panel.shares["r1"].value, panel.kl.value = 1.0, 0.05
    panel.train()
    assert calls[-1]["weights"] == {"r1": 0.5, "r2": 0.5} and calls[-1]["kl_coef"] == 0.05
    second = list(panel.logs)[-1]
    assert second.endswith("r1=0.5 r2=0.5 kl=0.05 lr=3e-04 steps=2")
    assert {"reward_r1", "kl"} <= set(drawn[-1][second]) and "kl" not in drawn[-1][label]
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "children=" not in bundle["text/plain"]
    assert "KL coef 0.05" in bundle["text/html"] and "learning rate 3e-04" in bundle["text/plain"]


def test_the_panel_without_a_kl_control_reads_the_runs_coefficient():
    pytest.importorskip("ipywidgets")

    class Runs:
        settings = type("S", (), {"kl_coef": 0.0})()

        def __call__(self, **settings):
            return _log(settings)

    panel = widgets.reward_panel(Runs(), lambda logs: logs, weights={"r1": 1.0, "r2": 1.0}, steps=1)
    assert panel.kl is None and "kl_coef" not in panel.settings()
    shown = panel.train()
    assert "kl" not in next(iter(shown.values())) and widgets.number(2.5e-4) == "2.5e-04"


# ---------------------------------------------------------------------------------------------
# Notebook 03: R1 of a typed text
# ---------------------------------------------------------------------------------------------
def test_the_r1_box_scores_the_typed_text_and_shows_an_image_without_widgets():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    clip = FakeClip()
    frames = lambda name: [Image.new("RGB", (16, 9), (0, 0, 200 if name == "a.jpg" else 0))] * 2
    box = widgets.R1Explorer(clip, frames, [("clip a", "a.jpg"), ("clip b", "b.jpg")], "Action: Stop")
    assert box.value == pytest.approx(clip(["Action: Stop"])[0]) and "R1 = +0.212" in box.readout.value
    first = box.image.value
    box.text.value = "Action: Move forward"
    assert box.value == pytest.approx(0.62) and "R1 = +0.620" in box.readout.value and box.image.value != first
    bundle = box._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "application/vnd.jupyter.widget-view+json", "image/png"}
    assert "R1 = +0.620 for 'Action: Move forward' on clip a.jpg" in bundle["text/plain"]
