"""The synthetic scene graph and its rule table: what a clip shows, and the labels that follow.

A clip is a random *scene graph* (lanes, lines, turn arrows, traffic light, stop sign, lead car,
adjacent cars, pedestrian, rider, cones). Its labels are derived from the scene graph by one rule
table (``EVIDENCE`` + ``ACTION_RULES`` + ``derive_labels``), the same for every clip; notebook 00
shows it (:func:`rule_table`). :func:`describe` writes the clip's natural-language description,
the text the tiny VLM is pretrained on. Drawing the scene is :mod:`drivekit.data.render`'s job.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivekit.core.taxonomy import N_REASONS, REASON_KEYS


@dataclass(frozen=True)
class Scene:
    """What a clip shows. ``lead``: none | away | stopped | left | right (turning)."""

    ego_lane: str = "through"  # through | left (left-turn lane) | right (right-turn lane)
    left_lane: bool = True
    left_line: str = "dashed"  # solid | dashed (the line between ego lane and left lane)
    left_car: bool = False
    right_lane: bool = True
    right_line: str = "dashed"
    right_car: bool = False
    light: str = "none"  # none | red | yellow | green
    left_arrow: bool = False  # green left-arrow lamp beside the light
    right_arrow: bool = False
    stop_sign: bool = False
    lead: str = "none"
    pedestrian: bool = False
    rider: bool = False
    cones: bool = False
    junction: bool = False  # a side road crosses ahead: turning possible, though no BDD-OIA reason names it


# ---------------------------------------------------------------------------------------------
# The rule table: visible evidence for each reason, then actions, then which reasons are labelled.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    key: str
    when: str
    test: Callable[[Scene], bool]


def _light_stops(s: Scene) -> bool:
    arrow_for_lane = (s.ego_lane == "left" and s.left_arrow) or (s.ego_lane == "right" and s.right_arrow)
    return s.light in ("red", "yellow") and not arrow_for_lane


EVIDENCE: tuple[Rule, ...] = (
    Rule("f_follow_traffic", "the car ahead moves away", lambda s: s.lead == "away"),
    Rule("f_road_clear", "no car ahead and no traffic light", lambda s: s.lead == "none" and s.light == "none"),
    Rule("f_traffic_light", "the light is green", lambda s: s.light == "green"),
    Rule("s_ob_car", "the car ahead is stopped (grows across frames)", lambda s: s.lead == "stopped"),
    Rule("s_ob_ped", "a pedestrian crosses ahead", lambda s: s.pedestrian),
    Rule("s_ob_rider", "a rider is ahead", lambda s: s.rider),
    Rule("s_other", "cones block the lane", lambda s: s.cones),
    Rule("s_traffic_light", "red/yellow light and no green arrow for the ego lane", _light_stops),
    Rule("s_traffic_sign", "a stop sign", lambda s: s.stop_sign),
    Rule("l_front_car", "the car ahead turns left (drifts left across frames)", lambda s: s.lead == "left"),
    Rule("l_lane", "left-turn arrow painted on the ego lane", lambda s: s.ego_lane == "left"),
    Rule("l_traffic_light", "green left-arrow lamp", lambda s: s.left_arrow),
    Rule("r_front_car", "the car ahead turns right (drifts right across frames)", lambda s: s.lead == "right"),
    Rule("r_lane", "right-turn arrow painted on the ego lane", lambda s: s.ego_lane == "right"),
    Rule("r_traffic_light", "green right-arrow lamp", lambda s: s.right_arrow),
    Rule("no_l_car", "a car in the left lane", lambda s: s.left_lane and s.left_car),
    Rule("no_l_lane", "grass, no lane, left of the ego lane", lambda s: not s.left_lane),
    Rule("no_l_solid_line", "solid line to the left lane", lambda s: s.left_lane and s.left_line == "solid"),
    Rule("no_r_car", "a car in the right lane", lambda s: s.right_lane and s.right_car),
    Rule("no_r_lane", "grass, no lane, right of the ego lane", lambda s: not s.right_lane),
    Rule("no_r_solid_line", "solid line to the right lane", lambda s: s.right_lane and s.right_line == "solid"),
)
assert tuple(r.key for r in EVIDENCE) == REASON_KEYS


def evidence(s: Scene) -> np.ndarray:
    """Which of the 21 reasons have their evidence in scene ``s`` (before `LABELLING` picks the labelled ones)."""
    return np.array([r.test(s) for r in EVIDENCE], dtype=bool)


def _turn_possible(s: Scene, e: np.ndarray, side: str) -> bool:
    pos, neg = (slice(9, 12), slice(15, 18)) if side == "left" else (slice(12, 15), slice(18, 21))
    arrow = s.left_arrow if side == "left" else s.right_arrow
    blocked_ahead = e[3:7].any() or e[8]  # car stopped, person, rider, cones, stop sign
    light_ok = s.light in ("none", "green") or arrow
    car, no_lane, solid = e[neg]
    # from a through lane a car or a solid line on that side blocks the turn, and so does a missing
    # lane unless a side road crosses; a turn lane turns whatever is beside it
    side_free = s.ego_lane == side or not (car or solid or (no_lane and not s.junction))
    return bool((e[pos].any() or s.junction) and not blocked_ahead and light_ok and side_free)


ACTION_RULES: tuple[Rule, ...] = (
    Rule("forward", "no stop evidence and the ego lane is a through lane",
         lambda s: not evidence(s)[3:9].any() and s.ego_lane == "through"),
    Rule("stop", "any stop evidence (reasons 3-8)", lambda s: bool(evidence(s)[3:9].any())),
    Rule("left", "left evidence (9-11) or a side road, nothing stopped ahead, the light allows left, and from a "
         "through lane no car (15) or solid line (17) on the left and a left lane (16) or a side road", lambda s: _turn_possible(s, evidence(s), "left")),
    Rule("right", "mirror of left", lambda s: _turn_possible(s, evidence(s), "right")),
)
LABELLING = (
    "A reason is labelled when its evidence is visible and it explains the decision: forward reasons "
    "(0-2) when moving forward, stop reasons (3-8) always, left/right reasons (9-14) when that turn is "
    "possible, blocker reasons (15-20) when that turn is not possible and the ego lane is not a turn "
    "lane to that side."
)


def derive_labels(scene: Scene) -> tuple[list[int], list[int]]:
    """(actions[4], reasons[21]) of a scene, by the rule table."""
    e = evidence(scene)
    actions = np.array([rule.test(scene) for rule in ACTION_RULES], dtype=bool)
    relevant = np.zeros(N_REASONS, dtype=bool)
    relevant[0:3] = actions[0]
    relevant[3:9] = True
    relevant[9:12] = actions[2]
    relevant[12:15] = actions[3]
    relevant[15:18] = not actions[2] and scene.ego_lane != "left"
    relevant[18:21] = not actions[3] and scene.ego_lane != "right"
    return actions.astype(int).tolist(), (e & relevant).astype(int).tolist()


def rule_table():
    """The rule table as a DataFrame (notebook 00 shows it)."""
    import pandas as pd

    rows = [("reason", i, r.key, r.when) for i, r in enumerate(EVIDENCE)]
    rows += [("action", i, r.key, r.when) for i, r in enumerate(ACTION_RULES)]
    return pd.DataFrame(rows, columns=["kind", "index", "key", "rule"])


# ---------------------------------------------------------------------------------------------
# Sampling: a mix of "simple" scenes (one decisive cue: the toy split's single-label clips) and
# busy scenes whose features are drawn independently (multi-label, BDD-OIA-like imbalance).
# ---------------------------------------------------------------------------------------------
SIMPLE_SHARE = 0.4
SIMPLE_CUES = {  # cue -> weight; each gives exactly one action and one reason
    "follow": 0.12, "clear": 0.08, "green": 0.07,
    "stopped": 0.15, "pedestrian": 0.09, "rider": 0.05, "cones": 0.05, "red": 0.16, "stop_sign": 0.06,
    "left_lane": 0.085, "right_lane": 0.085,
}


def _simple_scene(rng: np.random.Generator) -> Scene:
    """A through lane between free dashed lanes, plus exactly one decisive cue."""
    weights = np.array(list(SIMPLE_CUES.values()))
    cue = str(rng.choice(list(SIMPLE_CUES), p=weights / weights.sum()))
    if cue in ("follow", "clear", "green"):
        return Scene(lead="away" if cue == "follow" else "none", light="green" if cue == "green" else "none")
    if cue in ("left_lane", "right_lane"):
        return Scene(ego_lane=cue.split("_")[0], light=str(rng.choice(["none", "green"])))
    kw: dict = dict(lead=str(rng.choice(["none", "away"])))
    if cue == "stopped":
        kw["lead"] = "stopped"
    elif cue == "red":
        kw["light"] = str(rng.choice(["red", "red", "yellow"]))
    else:
        kw[cue] = True
    return Scene(**kw)


def _busy_scene(rng: np.random.Generator) -> Scene:
    u = rng.random
    light = str(rng.choice(["none", "red", "yellow", "green"], p=[0.35, 0.17, 0.04, 0.44]))
    has_light = light != "none"
    return Scene(
        ego_lane=str(rng.choice(["through", "left", "right"], p=[0.84, 0.07, 0.09])),
        left_lane=bool(u() < 0.6), left_line=str(rng.choice(["solid", "dashed"], p=[0.45, 0.55])),
        left_car=bool(u() < 0.4),
        right_lane=bool(u() < 0.65), right_line=str(rng.choice(["solid", "dashed"], p=[0.3, 0.7])),
        right_car=bool(u() < 0.5),
        light=light, left_arrow=bool(has_light and u() < 0.1), right_arrow=bool(has_light and u() < 0.1),
        stop_sign=bool(not has_light and u() < 0.05),
        lead=str(rng.choice(["none", "away", "stopped", "left", "right"], p=[0.25, 0.5, 0.15, 0.05, 0.05])),
        pedestrian=bool(u() < 0.05), rider=bool(u() < 0.02), cones=bool(u() < 0.015), junction=bool(u() < 0.6),
    )


def sample_scene(rng: np.random.Generator) -> Scene:
    return _simple_scene(rng) if rng.random() < SIMPLE_SHARE else _busy_scene(rng)


# ---------------------------------------------------------------------------------------------
# Description
# ---------------------------------------------------------------------------------------------
def describe(s: Scene) -> str:
    """A natural-language description of the scene (the pretraining and CLIP text)."""
    lane = {"through": "a through lane", "left": "a left-turn lane", "right": "a right-turn lane"}[s.ego_lane]
    parts = [f"We drive in {lane}."]
    for side, has, line, car in (("left", s.left_lane, s.left_line, s.left_car),
                                 ("right", s.right_lane, s.right_line, s.right_car)):
        if has:
            parts.append(f"On the {side} is a lane behind a {line} line" + (", with a car in it." if car else "."))
        else:
            parts.append(f"There is no lane on the {side}.")
    if s.light == "none":
        parts.append("There is no traffic light.")
    else:
        arrows = [d for d, on in (("left", s.left_arrow), ("right", s.right_arrow)) if on]
        extra = f" with a green {' and '.join(arrows)} arrow" if arrows else ""
        parts.append(f"The traffic light is {s.light}{extra}.")
    if s.stop_sign:
        parts.append("A stop sign stands at the roadside.")
    parts.append({
        "none": "No car is ahead of us.",
        "away": "The car ahead is moving away.",
        "stopped": "The car ahead is stopped close to us.",
        "left": "The car ahead is turning left.",
        "right": "The car ahead is turning right.",
    }[s.lead])
    if s.junction:
        parts.append("A side road crosses ahead.")
    if s.pedestrian:
        parts.append("A person is crossing the road.")
    if s.rider:
        parts.append("A cyclist rides ahead.")
    if s.cones:
        parts.append("Cones block the lane.")
    return " ".join(parts)
