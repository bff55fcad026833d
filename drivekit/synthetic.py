"""Synthetic BDD-OIA-format driving clips for the offline ``tiny`` profile.

A clip is a random *scene graph* (lanes, lines, turn arrows, traffic light, stop sign, lead car,
adjacent cars, pedestrian, rider, cones) rendered as M ego-view frames. Its labels are derived
from the scene graph by one rule table (``EVIDENCE`` + ``ACTION_RULES`` + ``derive_labels``), the
same for every clip, and every element a positive reason rests on is drawn in the frames.

Designed for 96x96 px frames (the default): the traffic light is ~9x23 px with 6 px lamps, cars
are 10-30 px wide, people ~15 px tall. Two reasons need several frames: a lead car moving away
(shrinks) vs stopped (grows as we approach) end at overlapping sizes, and a lead car turning
left/right drifts sideways out of the lane across the frames.

``generate`` writes the official layout (``data/<name>.jpg``, ``{split}_25k_images_actions.json``,
``{split}_25k_images_reasons.json``), plus ``data/<stem>_f{i}.jpg`` for each of the M frames and
``scenes.jsonl`` (scene graph and natural-language description per clip).
"""
from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from .taxonomy import N_ACTIONS, N_REASONS, REASON_KEYS

SPLITS = ("train", "val", "test")
SPLIT_SHARES = (0.70, 0.10, 0.20)  # BDD-OIA: 16,082 / 2,270 / 4,572


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


def _evidence(s: Scene) -> np.ndarray:
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
         lambda s: not _evidence(s)[3:9].any() and s.ego_lane == "through"),
    Rule("stop", "any stop evidence (reasons 3-8)", lambda s: bool(_evidence(s)[3:9].any())),
    Rule("left", "left evidence (9-11) or a side road, nothing stopped ahead, the light allows left, and from a "
         "through lane no car (15) or solid line (17) on the left and a left lane (16) or a side road", lambda s: _turn_possible(s, _evidence(s), "left")),
    Rule("right", "mirror of left", lambda s: _turn_possible(s, _evidence(s), "right")),
)
LABELLING = (
    "A reason is labelled when its evidence is visible and it explains the decision: forward reasons "
    "(0-2) when moving forward, stop reasons (3-8) always, left/right reasons (9-14) when that turn is "
    "possible, blocker reasons (15-20) when that turn is not possible and the ego lane is not a turn "
    "lane to that side."
)


def derive_labels(scene: Scene) -> tuple[list[int], list[int]]:
    """(actions[4], reasons[21]) of a scene, by the rule table."""
    e = _evidence(scene)
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


# ---------------------------------------------------------------------------------------------
# Rendering: a simple perspective ego view. Lane coordinates: x = 0 is the ego lane's centre, one
# unit per lane; depth s in (0, 1], 1 at the bottom of the image, 0 at the horizon.
# ---------------------------------------------------------------------------------------------
SKY, GRASS, ROAD, WHITE, CURB = (150, 190, 230), (70, 130, 60), (90, 90, 95), (235, 235, 235), (170, 170, 160)
CAR_COLOURS = [(40, 70, 180), (20, 30, 90), (230, 230, 230), (25, 25, 25), (120, 120, 125), (180, 180, 190),
               (110, 50, 140), (120, 80, 40)]
LAMP = {"red": (255, 40, 30), "yellow": (255, 210, 0), "green": (40, 255, 80)}


class _View:
    def __init__(self, w: int, h: int):
        self.w, self.h, self.horizon = w, h, 0.42 * h

    def y(self, s: float) -> float:
        return self.horizon + s * (self.h - self.horizon)

    def x(self, lane_x: float, s: float) -> float:
        return self.w / 2 + lane_x * s * 0.55 * self.w

    def px(self, s: float) -> float:  # one lane width in pixels at depth s
        return s * 0.55 * self.w


def _quad(v: _View, x0: float, x1: float, s0: float, s1: float) -> list[tuple[float, float]]:
    return [(v.x(x0, s0), v.y(s0)), (v.x(x1, s0), v.y(s0)), (v.x(x1, s1), v.y(s1)), (v.x(x0, s1), v.y(s1))]


def _line(d: ImageDraw.ImageDraw, v: _View, x: float, kind: str, phase: float, colour=WHITE) -> None:
    half = 0.035
    if kind == "solid":
        d.polygon(_quad(v, x - half, x + half, 0.02, 1.05), fill=colour)
        return
    # dashes periodic in distance z = 1/s; the phase moves with the ego car
    for k in range(40):
        z0 = 1.0 + (k - phase) * 1.2
        if z0 < 0.95:
            continue
        s0, s1 = 1 / z0, 1 / (z0 + 0.6)
        if s1 < 0.03:
            break
        d.polygon(_quad(v, x - half, x + half, min(s0, 1.05), s1), fill=colour)


def _car(d: ImageDraw.ImageDraw, v: _View, x: float, s: float, colour, blink: str | None = None,
         blink_on: bool = False) -> None:
    w = 0.62 * v.px(s)
    h = 0.55 * w
    cx, bottom = v.x(x, s), v.y(s)
    d.rectangle([cx - w / 2, bottom - h, cx + w / 2, bottom], fill=colour)
    d.rectangle([cx - w * 0.35, bottom - h * 0.95, cx + w * 0.35, bottom - h * 0.55], fill=(30, 40, 50))
    lamp = max(1.0, w * 0.12)
    d.rectangle([cx - w / 2, bottom - h * 0.45, cx - w / 2 + lamp, bottom - h * 0.25], fill=(150, 20, 20))
    d.rectangle([cx + w / 2 - lamp, bottom - h * 0.45, cx + w / 2, bottom - h * 0.25], fill=(150, 20, 20))
    d.rectangle([cx - w / 2, bottom - 1, cx + w / 2, bottom + max(1, h * 0.1)], fill=(20, 20, 20))  # wheels/shadow
    if blink and blink_on:
        bx = cx - w / 2 - lamp if blink == "left" else cx + w / 2
        d.rectangle([bx, bottom - h * 0.5, bx + lamp, bottom - h * 0.2], fill=(255, 170, 0))


def _person(d: ImageDraw.ImageDraw, v: _View, x: float, s: float, shirt) -> None:
    hgt = 0.55 * v.px(s)
    cx, feet = v.x(x, s), v.y(s)
    r = hgt * 0.12
    d.ellipse([cx - r, feet - hgt, cx + r, feet - hgt + 2 * r], fill=(230, 180, 140))
    d.rectangle([cx - hgt * 0.13, feet - hgt + 2 * r, cx + hgt * 0.13, feet - hgt * 0.45], fill=shirt)
    d.rectangle([cx - hgt * 0.12, feet - hgt * 0.45, cx + hgt * 0.12, feet], fill=(30, 30, 60))


def _rider(d: ImageDraw.ImageDraw, v: _View, x: float, s: float, shirt) -> None:
    size = 0.5 * v.px(s)
    cx, ground = v.x(x, s), v.y(s)
    r = size * 0.2
    for dx in (-size * 0.3, size * 0.3):  # wheels, seen slightly from the side
        d.ellipse([cx + dx - r, ground - 2 * r, cx + dx + r, ground], outline=(10, 10, 10), width=max(1, int(r / 3)))
    d.line([cx - size * 0.3, ground - r, cx + size * 0.3, ground - r], fill=(200, 30, 30), width=max(1, int(r / 2)))
    d.rectangle([cx - size * 0.1, ground - size * 0.95, cx + size * 0.1, ground - r], fill=shirt)
    d.ellipse([cx - size * 0.1, ground - size * 1.2, cx + size * 0.1, ground - size * 0.95], fill=(250, 250, 250))


def _cones(d: ImageDraw.ImageDraw, v: _View, s: float) -> None:
    for x in (-0.3, 0.0, 0.3):
        w, cx, base = 0.16 * v.px(s), v.x(x, s), v.y(s)
        d.polygon([(cx - w / 2, base), (cx + w / 2, base), (cx, base - 1.8 * w)], fill=(255, 120, 0))
        d.line([cx - w / 4, base - 0.8 * w, cx + w / 4, base - 0.8 * w], fill=WHITE, width=max(1, int(w / 4)))


def _turn_arrow(d: ImageDraw.ImageDraw, v: _View, side: str) -> None:
    sign = -1 if side == "left" else 1
    s0, s1 = 0.78, 0.55  # stem from near to far, then the head bends to the side
    d.polygon(_quad(v, -0.05, 0.05, s0, s1), fill=WHITE)
    tip_x = 0.33 * sign
    d.polygon([(v.x(0.0, s1 + 0.06), v.y(s1 + 0.06)), (v.x(0.0, s1 - 0.03), v.y(s1 - 0.03)),
               (v.x(tip_x, s1 + 0.015), v.y(s1 + 0.015))], fill=WHITE)
    d.polygon(_quad(v, min(0, tip_x * 0.5), max(0, tip_x * 0.5), s1 + 0.035, s1 - 0.005), fill=WHITE)


def _traffic_light(d: ImageDraw.ImageDraw, w: int, h: int, s: Scene) -> None:
    bw, bh = 0.095 * w, 0.24 * h
    x0, y0 = 0.6 * w, 0.04 * h
    d.rectangle([x0 + bw * 0.4, y0 + bh, x0 + bw * 0.6, 0.42 * h], fill=(60, 60, 60))  # pole
    d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=(20, 20, 20))
    r = bw * 0.36
    for i, colour in enumerate(("red", "yellow", "green")):
        cy = y0 + bh * (i + 0.5) / 3
        lit = LAMP[colour] if s.light == colour else tuple(c // 5 for c in LAMP[colour])
        d.ellipse([x0 + bw / 2 - r, cy - r, x0 + bw / 2 + r, cy + r], fill=lit)
    for side, on in (("left", s.left_arrow), ("right", s.right_arrow)):
        if not on:
            continue
        ax0 = x0 - bw * 1.05 if side == "left" else x0 + bw * 1.05
        cy = y0 + bh * 2.5 / 3
        d.rectangle([ax0, cy - bw * 0.5, ax0 + bw, cy + bw * 0.5], fill=(20, 20, 20))
        tip, back = (ax0 + bw * 0.1, ax0 + bw * 0.9) if side == "left" else (ax0 + bw * 0.9, ax0 + bw * 0.1)
        d.polygon([(tip, cy), (back, cy - bw * 0.4), (back, cy + bw * 0.4)], fill=LAMP["green"])


def _stop_sign(d: ImageDraw.ImageDraw, v: _View, x: float, s: float) -> None:
    r = 0.3 * v.px(s)
    cx, cy = v.x(x, s), v.y(s) - 3.2 * r
    d.rectangle([cx - r * 0.12, cy, cx + r * 0.12, v.y(s)], fill=(90, 90, 90))
    angles = np.deg2rad(22.5 + 45 * np.arange(8))
    d.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=(210, 20, 20))
    d.rectangle([cx - r * 0.6, cy - r * 0.15, cx + r * 0.6, cy + r * 0.15], fill=WHITE)


def render_clip(scene: Scene, n_frames: int = 4, size: tuple[int, int] = (96, 96), seed: int = 0) -> list[Image.Image]:
    """The clip's M frames. ``seed`` varies only the appearance (colours, positions), never the labels."""
    rng = np.random.default_rng(seed)
    w, h = size
    ss = 3  # draw at 3x and downsample: anti-aliased edges keep small objects legible
    v = _View(w * ss, h * ss)
    lead_colour, left_colour, right_colour = (CAR_COLOURS[i] for i in rng.integers(len(CAR_COLOURS), size=3))
    shirt = tuple(int(c) for c in rng.integers(40, 255, size=3))
    sky = tuple(int(c + d) for c, d in zip(SKY, rng.integers(-20, 20, size=3)))
    trees = [(float(rng.uniform(-3.2, 3.2)), float(rng.uniform(0.08, 0.5))) for _ in range(rng.integers(1, 4))]
    buildings = [(float(rng.uniform(0, 1)), float(rng.uniform(0.05, 0.18)), float(rng.uniform(0.05, 0.15)))
                 for _ in range(rng.integers(2, 6))]
    lead_end = float(rng.uniform(0.45, 0.7))
    side_s = (float(rng.uniform(0.5, 0.85)), float(rng.uniform(0.5, 0.85)))
    moving = not _evidence(scene)[3:9].any()
    phase0 = float(rng.uniform(0, 1))
    ped_from = float(rng.choice([-1, 1]))
    frames = []
    for f in range(n_frames):
        t = f / max(1, n_frames - 1)  # 0 .. 1 over the clip
        img = Image.new("RGB", (w * ss, h * ss), sky)
        d = ImageDraw.Draw(img)
        for bx, bw_, bh_ in buildings:
            d.rectangle([bx * v.w, v.horizon - bh_ * v.h, (bx + bw_) * v.w, v.horizon], fill=(140, 130, 125))
        d.rectangle([0, v.horizon, v.w, v.h], fill=GRASS)
        left_edge = -1.5 if scene.left_lane else -0.5
        right_edge = 1.5 if scene.right_lane else 0.5
        d.polygon(_quad(v, left_edge - 0.06, right_edge + 0.06, 0.0, 1.1), fill=CURB)
        d.polygon(_quad(v, left_edge, right_edge, 0.0, 1.1), fill=ROAD)
        if scene.junction:
            d.polygon(_quad(v, -8, 8, 0.2, 0.3), fill=ROAD)
        for tx, ts in trees:
            if left_edge - 0.3 < tx < right_edge + 0.3:
                tx = right_edge + 0.8 if tx > 0 else left_edge - 0.8
            r = 0.25 * v.px(ts)
            d.ellipse([v.x(tx, ts) - r, v.y(ts) - 3 * r, v.x(tx, ts) + r, v.y(ts) - r], fill=(30, 90, 40))
        phase = phase0 + t * (1.2 if moving else 0.25)
        for has, x, line in ((scene.left_lane, -0.5, scene.left_line), (scene.right_lane, 0.5, scene.right_line)):
            if has:
                _line(d, v, x, line, phase)
        for has, x in ((scene.left_lane, -1.5), (scene.right_lane, 1.5)):
            if has:
                _line(d, v, x, "solid", 0)
        if scene.ego_lane != "through":
            _turn_arrow(d, v, scene.ego_lane)
        if scene.light != "none":
            _traffic_light(d, v.w, v.h, scene)
        if scene.stop_sign:
            _stop_sign(d, v, min(right_edge + 0.3, 1.6), 0.45)
        # far-to-near drawing order
        objects: list[tuple[float, Callable[[], None]]] = []
        if scene.left_lane and scene.left_car:
            objects.append((side_s[0], lambda: _car(d, v, -1.0, side_s[0], left_colour)))
        if scene.right_lane and scene.right_car:
            objects.append((side_s[1], lambda: _car(d, v, 1.0, side_s[1], right_colour)))
        if scene.lead != "none":
            if scene.lead == "away":
                s_lead, x_lead = lead_end + 0.18 * (1 - t), 0.0
            elif scene.lead == "stopped":
                s_lead, x_lead = lead_end + 0.1 * t, 0.0
            else:
                s_lead, x_lead = lead_end, (0.9 * t) * (-1 if scene.lead == "left" else 1)
            blink = scene.lead if scene.lead in ("left", "right") else None
            objects.append((s_lead, lambda s_=s_lead, x_=x_lead, b=blink, on=f % 2 == 0:
                            _car(d, v, x_, s_, lead_colour, b, on)))
        if scene.pedestrian:
            objects.append((0.72, lambda px=ped_from * (0.6 - 0.8 * t): _person(d, v, px, 0.72, shirt)))
        if scene.rider:
            objects.append((0.8, lambda: _rider(d, v, 0.05, 0.8 - 0.05 * t, shirt)))
        if scene.cones:
            objects.append((0.85, lambda: _cones(d, v, 0.85)))
        for _, draw in sorted(objects, key=lambda o: o[0]):
            draw()
        frames.append(img.resize((w, h), Image.LANCZOS))
    return frames


# ---------------------------------------------------------------------------------------------
# Dataset writer
# ---------------------------------------------------------------------------------------------
def clip_name(index: int) -> str:
    return f"syn{index:06d}.jpg"


def _make_clip(args: tuple[int, int, int, tuple[int, int]]) -> dict:
    index, seed, n_frames, size = args
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)
    frames = render_clip(scene, n_frames, size, seed=int(rng.integers(2**31)))
    jpegs = []
    for frame in frames:
        buf = io.BytesIO()
        frame.save(buf, format="JPEG", quality=92)
        jpegs.append(buf.getvalue())
    actions, reasons = derive_labels(scene)
    return dict(file_name=clip_name(index), scene=asdict(scene), description=describe(scene),
                actions=actions, reasons=reasons, jpegs=jpegs)


def generate(root: str | Path, n_clips: int = 6000, n_frames: int = 4, size: tuple[int, int] = (96, 96),
             seed: int = 0, workers: int = 2, progress: bool = True) -> Path:
    """Write a synthetic dataset in the official BDD-OIA layout to ``root``; returns ``root``."""
    from tqdm.auto import tqdm

    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    split_of = np.random.default_rng(seed).choice(len(SPLITS), size=n_clips, p=SPLIT_SHARES)
    jobs = [(i, seed, n_frames, tuple(size)) for i in range(n_clips)]
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    with Pool(workers) if workers > 1 else _Serial() as pool, open(root / "scenes.jsonl", "w") as scenes:
        clips = pool.imap(_make_clip, jobs, chunksize=64)
        for i, clip in enumerate(tqdm(clips, total=n_clips, disable=not progress, desc="synthetic clips")):
            split = SPLITS[split_of[i]]
            stem = clip["file_name"][:-4]
            jpegs = clip.pop("jpegs")
            for f, jpeg in enumerate(jpegs):
                (root / "data" / f"{stem}_f{f}.jpg").write_bytes(jpeg)
            (root / "data" / clip["file_name"]).write_bytes(jpegs[-1])  # the last frame, as in BDD-OIA
            by_split[split].append(clip)
            scenes.write(json.dumps(dict(file_name=clip["file_name"], split=split, frames=n_frames,
                                         scene=clip["scene"], description=clip["description"])) + "\n")
    for split, clips in by_split.items():
        actions = dict(
            images=[dict(file_name=c["file_name"], id=i) for i, c in enumerate(clips)],
            annotations=[dict(id=i, category=c["actions"]) for i, c in enumerate(clips)],
        )
        reasons = [dict(file_name=c["file_name"], reason=c["reasons"]) for c in clips]
        (root / f"{split}_25k_images_actions.json").write_text(json.dumps(actions))
        (root / f"{split}_25k_images_reasons.json").write_text(json.dumps(reasons))
    (root / "generator.json").write_text(json.dumps(dict(n_clips=n_clips, n_frames=n_frames, size=list(size),
                                                         seed=seed)))
    return root


class _Serial:
    """Stand-in for ``multiprocessing.Pool`` with one worker."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(fn, jobs, chunksize=1):
        return map(fn, jobs)


def read_scenes(root: str | Path) -> list[dict]:
    """The records of ``scenes.jsonl`` (scene graph as a dict, description, split)."""
    with open(Path(root) / "scenes.jsonl") as f:
        return [json.loads(line) for line in f]


def ensure_dataset(cfg, **kwargs) -> Path:
    """The synthetic dataset at ``cfg.data_root``, generated first when it is missing."""
    root = Path(cfg.data_root)
    if not (root / "test_25k_images_reasons.json").exists():
        generate(root, seed=cfg.seed, **kwargs)
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate synthetic BDD-OIA-format driving clips.")
    p.add_argument("--out", type=Path, help="dataset root (default: the tiny profile's data root)")
    p.add_argument("--clips", type=int, default=6000)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("W", "H"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    from .config import load

    out = a.out or load("tiny").data_root
    t0 = time.perf_counter()
    generate(out, a.clips, a.frames, tuple(a.size), a.seed, a.workers)
    print(f"wrote {a.clips} clips x {a.frames} frames to {out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
