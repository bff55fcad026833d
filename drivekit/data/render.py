"""Rendering a scene graph (:mod:`drivekit.data.scene`) as M ego-view frames.

Designed for 96x96 px frames (the default): the traffic light is ~9x23 px with 6 px lamps, cars
are 10-30 px wide, people ~15 px tall. Two reasons need several frames: a lead car moving away
(shrinks) vs stopped (grows as we approach) end at overlapping sizes, and a lead car turning
left/right drifts sideways out of the lane across the frames. Every element a positive reason
rests on is drawn.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from drivekit.data.scene import Scene, evidence

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
    moving = not evidence(scene)[3:9].any()
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
