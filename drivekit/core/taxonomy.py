"""The BDD-OIA label space: 4 actions and 21 reasons, in the dataset's index order.

The order follows the dataset's own readme and the authors' label script. The row *names* in
Table 1 of the OIA paper (copied into the proposal's Fig. 2) are listed in a different order;
the *counts* printed there are in this index order (see ``BDDOIA_REASON_COUNTS``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    index: int
    key: str
    phrase: str


ACTIONS: tuple[Label, ...] = (
    Label(0, "forward", "Move forward"),
    Label(1, "stop", "Stop/Slow down"),
    Label(2, "left", "Turn left"),
    Label(3, "right", "Turn right"),
)

REASONS: tuple[Label, ...] = (
    Label(0, "f_follow_traffic", "Follow traffic"),
    Label(1, "f_road_clear", "Road is clear"),
    Label(2, "f_traffic_light", "Traffic light is green"),
    Label(3, "s_ob_car", "Obstacle: car"),
    Label(4, "s_ob_ped", "Obstacle: person"),
    Label(5, "s_ob_rider", "Obstacle: rider"),
    Label(6, "s_other", "Obstacle: others"),
    Label(7, "s_traffic_light", "Traffic light"),
    Label(8, "s_traffic_sign", "Traffic sign"),
    Label(9, "l_front_car", "Front car turning left"),
    Label(10, "l_lane", "On the left-turn lane"),
    Label(11, "l_traffic_light", "Traffic light allows (left)"),
    Label(12, "r_front_car", "Front car turning right"),
    Label(13, "r_lane", "On the right-turn lane"),
    Label(14, "r_traffic_light", "Traffic light allows (right)"),
    Label(15, "no_l_car", "Obstacles on the left lane"),
    Label(16, "no_l_lane", "No lane on the left"),
    Label(17, "no_l_solid_line", "Solid line on the left"),
    Label(18, "no_r_car", "Obstacles on the right lane"),
    Label(19, "no_r_lane", "No lane on the right"),
    Label(20, "no_r_solid_line", "Solid line on the right"),
)

N_ACTIONS = len(ACTIONS)
N_REASONS = len(REASONS)
ACTION_PHRASES = tuple(a.phrase for a in ACTIONS)
REASON_PHRASES = tuple(r.phrase for r in REASONS)
ACTION_KEYS = tuple(a.key for a in ACTIONS)
REASON_KEYS = tuple(r.key for r in REASONS)

# Which reasons explain which action (the reason's own action, see the key prefixes).
REASONS_FOR_ACTION: dict[int, tuple[int, ...]] = {
    0: (0, 1, 2),
    1: (3, 4, 5, 6, 7, 8),
    2: (9, 10, 11, 15, 16, 17),
    3: (12, 13, 14, 18, 19, 20),
}
# Groups as the proposal's Figs. 4-5 draw them: why left/right is possible, then why not.
GROUPS: dict[str, tuple[int, ...]] = {
    "Forward": REASONS_FOR_ACTION[0],
    "Stop": REASONS_FOR_ACTION[1],
    "Left": REASONS_FOR_ACTION[2],
    "Right": REASONS_FOR_ACTION[3],
}
ACTION_OF_REASON: tuple[int, ...] = tuple(
    next(a for a, rs in REASONS_FOR_ACTION.items() if r.index in rs) for r in REASONS
)

# Totals over all BDD-OIA splits (the dataset's own label counts), for comparing the synthetic data's shape.
BDDOIA_ACTION_COUNTS = (12491, 10432, 5906, 6532)
BDDOIA_REASON_COUNTS = (
    7805, 3489, 4838, 5381, 1539, 233, 163, 5255, 455, 150, 666,
    316, 154, 885, 365, 4503, 4514, 3660, 6081, 4022, 2161,
)
