"""The reward explorer (notebooks 04 and 05): terms scored once, re-weighted and re-ranked without recomputing."""
import json

import numpy as np
import pandas as pd
import pytest

from drivekit.course import widgets
from drivekit.text.formats import target_text
from drivekit.core.taxonomy import REASON_PHRASES

STOP = ([0, 1, 0, 0], [0, 0, 1] + [0] * 18)
GO = ([1, 0, 0, 0], [1] + [0] * 20)


def _answers():
    right, wrong = target_text(*STOP), target_text(*GO)
    rows = [("a.jpg", right), ("a.jpg", wrong), ("a.jpg", "garbage"), ("b.jpg", wrong), ("b.jpg", right)]
    return pd.DataFrame([dict(file_name=f, text=t, actions=STOP[0], reasons=STOP[1]) for f, t in rows])


class FakeClip:
    """R1 standing in for CLIP: prefers answers that say *Move forward*."""

    __name__ = "r1_clip"

    def __init__(self):
        self.calls = 0

    def __call__(self, completions, **batch):
        self.calls += 1
        return [1.0 if "forward" in c.lower() else 0.2 for c in completions]


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


def test_the_explorer_reports_the_mean_reward_and_how_many_best_answers_changed():
    pytest.importorskip("ipywidgets")
    explorer = widgets.reward_explorer(widgets.score_answers(_answers(), FakeClip()), shown=2)
    table, summary = explorer.table()
    assert summary["clips"] == 2 and summary["top_changed"] == 0 and len(table) == 4
    assert np.isclose(summary["mean_R"], widgets.rescore(explorer.scored, {"r1": 1, "r2": 1})["R"].mean())
    explorer.weights["r2"].value = 0.0  # a slider move: R1 alone
    table, summary = explorer.table()
    assert summary["top_changed"] == 2 and (table["default rank"] > 1).any()
    explorer.variant.value = "bleu_raw"
    assert explorer.table()[1]["top_changed"] == 2  # R2's weight is still 0


def test_json_answers_are_scored_by_the_json_stages_terms():
    from drivekit.rewards.weighted_reward import RewardSettings, make_reward

    right = json.dumps({"scene": "A car ahead, moving forward.", "actions": ["Stop/Slow down"],
                        "reasons": [REASON_PHRASES[2]], "justification": "Stop/Slow down because of the car."})
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
    assert scored["r1"].tolist() == [1.0, 0.0, 0.0]  # R1 reads the JSON's text; not JSON: 0, CLIP not asked
    assert scored["r3"].iloc[0] > scored["r3"].iloc[1]
    ranked = widgets.rescore(scored, {"r2": 0.0, "r3": 1.0})
    assert ranked.loc[0, "rank"] == 1  # R3 alone: the valid JSON first
