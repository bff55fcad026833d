"""What the pretrained VLM perceives: its own scene descriptions, read back element by element.

The tiny VLM is pretrained to write :func:`drivekit.data.scene.describe`'s text for a clip (frames only,
no task text). :func:`parse` reads such a text back into one value per scene element (``ELEMENTS``),
:func:`scene_values` gives the values the scene itself has, and :func:`score` compares the two over
many clips: the share of clips in which each element is described correctly, and the confusion
matrix of the lead car's state (true -> described).

Absence: where ``describe`` says nothing when an element is absent (stop sign, side road, person,
rider, cones; arrows beside a light), an unwritten sentence means "no". Where it always writes a
sentence (ego lane, each side lane, the light, the lead car), an unwritten one is ``MISSING``;
sentences that contradict each other give ``UNREADABLE``. Sentences that match no template are
counted, never raised on.
"""
from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
import numpy as np
from PIL import Image

from drivekit.models import prompts
from drivekit.data.bddoia import frame_paths, load_image
from drivekit.core.config import Config
from drivekit.data.render import render_clip
from drivekit.data.scene import Scene, describe, sample_scene
from drivekit.data.synthetic import ensure_dataset, read_scenes
from drivekit.data.toy_split import load_or_make_toy_split

MISSING, UNREADABLE = "missing", "unreadable"
YES, NO = "yes", "no"
ELEMENTS = ("ego_lane", "left_lane", "left_line", "left_car", "right_lane", "right_line", "right_car",
            "light", "left_arrow", "right_arrow", "stop_sign", "lead", "junction", "pedestrian", "rider", "cones")
LEAD_STATES = ("none", "away", "stopped", "left", "right")
OPTIONAL = ("left_arrow", "right_arrow", "stop_sign", "junction", "pedestrian", "rider", "cones")  # absent = no
MAX_NEW_TOKENS = 120  # room for the longest description (about 80 tokens) and some babble

_LANES = {"through": "through", "left-turn": "left", "right-turn": "right"}
_LEAD = {"No car is ahead of us": "none", "The car ahead is moving away": "away",
         "The car ahead is stopped close to us": "stopped", "The car ahead is turning left": "left",
         "The car ahead is turning right": "right"}
_FLAGS = {"A stop sign stands at the roadside": "stop_sign", "A side road crosses ahead": "junction",
          "A person is crossing the road": "pedestrian", "A cyclist rides ahead": "rider",
          "Cones block the lane": "cones"}
_EGO = re.compile(r"We drive in an? (through|left-turn|right-turn) lane")
_SIDE = re.compile(r"On the (left|right) is a lane behind an? (solid|dashed) line(, with a car in it)?")
_NO_SIDE = re.compile(r"There is no lane on the (left|right)")
_LIGHT = re.compile(r"The traffic light is (red|yellow|green)(?: with a green (left|right|left and right) arrow)?")


def _yes(flag) -> str:
    return YES if flag else NO


def _scene(scene: Scene | Mapping) -> Scene:
    return scene if isinstance(scene, Scene) else Scene(**scene)


def scene_values(scene: Scene | Mapping) -> dict[str, str]:
    """The value of every element in ``scene`` (a ``Scene`` or its ``asdict``), as ``describe`` tells it:
    a side lane's line and car are "none"/"no" when there is no lane there."""
    s = _scene(scene)
    values = dict(ego_lane=s.ego_lane, light=s.light, left_arrow=_yes(s.light != "none" and s.left_arrow),
                  right_arrow=_yes(s.light != "none" and s.right_arrow), stop_sign=_yes(s.stop_sign), lead=s.lead,
                  junction=_yes(s.junction), pedestrian=_yes(s.pedestrian), rider=_yes(s.rider), cones=_yes(s.cones))
    for side, has, line, car in (("left", s.left_lane, s.left_line, s.left_car),
                                 ("right", s.right_lane, s.right_line, s.right_car)):
        values.update({f"{side}_lane": _yes(has), f"{side}_line": line if has else "none",
                       f"{side}_car": _yes(has and car)})
    return {e: values[e] for e in ELEMENTS}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(".") if s.strip()]


def _claims(sentence: str) -> list[tuple[str, str]] | None:
    """(element, value) pairs one sentence states; None when it matches no template."""
    if m := _EGO.fullmatch(sentence):
        return [("ego_lane", _LANES[m[1]])]
    if m := _SIDE.fullmatch(sentence):
        return [(f"{m[1]}_lane", YES), (f"{m[1]}_line", m[2]), (f"{m[1]}_car", _yes(m[3]))]
    if m := _NO_SIDE.fullmatch(sentence):
        return [(f"{m[1]}_lane", NO), (f"{m[1]}_line", "none"), (f"{m[1]}_car", NO)]
    if sentence == "There is no traffic light":
        return [("light", "none"), ("left_arrow", NO), ("right_arrow", NO)]
    if m := _LIGHT.fullmatch(sentence):
        arrows = (m[2] or "").split(" and ")
        return [("light", m[1]), ("left_arrow", _yes("left" in arrows)), ("right_arrow", _yes("right" in arrows))]
    if sentence in _LEAD:
        return [("lead", _LEAD[sentence])]
    if sentence in _FLAGS:
        return [(_FLAGS[sentence], YES)]
    return None


def parse(text: str) -> dict[str, str]:
    """Element values of a description (any text: what matches no template is ignored), plus
    ``"unparsed"``: how many of its sentences matched no template."""
    said: dict[str, set[str]] = {e: set() for e in ELEMENTS}
    unparsed = 0
    for sentence in sentences(text):
        claims = _claims(sentence)
        if claims is None:
            unparsed += 1
            continue
        for element, value in claims:
            said[element].add(value)
    values = {}
    for element, options in said.items():
        if len(options) > 1:
            values[element] = UNREADABLE
        elif options:
            values[element] = options.pop()
        else:
            values[element] = NO if element in OPTIONAL else MISSING
    values["unparsed"] = unparsed
    return values


def score(texts: Sequence[str], scenes: Sequence[Scene | Mapping]) -> dict:
    """Per-element accuracy of ``texts`` against ``scenes``, the lead car's confusion matrix
    (true state -> described state -> count), the share of clips with every element right and
    the share of sentences that matched no template."""
    if len(texts) != len(scenes):
        raise ValueError(f"{len(texts)} descriptions but {len(scenes)} scenes")
    right = Counter()
    lead = {state: Counter() for state in LEAD_STATES}
    all_right = unparsed = n_sentences = 0
    for text, scene in zip(texts, scenes):
        truth, said = scene_values(scene), parse(text)
        ok = [truth[e] == said[e] for e in ELEMENTS]
        right.update(e for e, good in zip(ELEMENTS, ok) if good)
        all_right += all(ok)
        lead[truth["lead"]][said["lead"]] += 1
        unparsed += said["unparsed"]
        n_sentences += len(sentences(text))
    n = max(1, len(texts))
    return {"elements": {e: right[e] / n for e in ELEMENTS},
            "lead": {state: dict(sorted(counts.items())) for state, counts in lead.items()},
            "all_elements": all_right / n, "unparsed_sentences": unparsed / max(1, n_sentences),
            "n_clips": len(texts)}


def lead_recall(result: Mapping) -> dict[str, float | None]:
    """Per true lead state: the share described as that state (None for a state with no clips)."""
    out = {}
    for state, counts in result["lead"].items():
        total = sum(counts.values())
        out[state] = counts.get(state, 0) / total if total else None
    return out


def describe_clips(model, processor, clips: Sequence[Sequence], batch_size: int = 32,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """The model's greedy descriptions of ``clips`` (frames only, as in pretraining)."""
    texts: list[str] = []
    for start in range(0, len(clips), batch_size):
        texts += prompts.generate(model, processor, clips[start:start + batch_size], max_new_tokens=max_new_tokens)
    return texts


def measure(model, processor, clips: Sequence[Sequence], scenes: Sequence[Scene | Mapping],
            batch_size: int = 32) -> dict:
    """:func:`score` of the model's own descriptions of ``clips``, with a few samples."""
    texts = describe_clips(model, processor, clips, batch_size)
    result = score(texts, scenes)
    wrong = [i for i, (t, s) in enumerate(zip(texts, scenes)) if parse(t)["lead"] != scene_values(s)["lead"]]
    result["samples"] = [{"generated": texts[i], "truth": describe(_scene(scenes[i]))}
                         for i in (wrong[:3] or range(min(2, len(texts))))]
    return result


def passes(result: Mapping, element_min: float = 0.95, lead_min: float = 0.90) -> bool:
    """The targets: every element right in ``element_min`` of clips, each lead state that occurs in ``lead_min``."""
    recall = [r for r in lead_recall(result).values() if r is not None]
    return min(result["elements"].values()) >= element_min and min(recall, default=0.0) >= lead_min


def table(result: Mapping) -> str:
    """A plain-text table of the per-element accuracy and the lead car's confusion matrix."""
    lines = [f"{'element':<12} accuracy"] + [f"{e:<12} {a:.3f}" for e, a in result["elements"].items()]
    described = [*LEAD_STATES, *sorted({d for c in result["lead"].values() for d in c} - set(LEAD_STATES))]
    lines += ["", "lead car: true \\ described", f"{'':<10}" + "".join(f"{d:>11}" for d in described)]
    for state, counts in result["lead"].items():
        lines.append(f"{state:<10}" + "".join(f"{counts.get(d, 0):>11}" for d in described))
    return "\n".join(lines)


def fresh_clips(n_clips: int, seed: int = 1, n_frames: int = 4, size: tuple[int, int] = (96, 96)
                ) -> tuple[list[list], list[Scene]]:
    """``n_clips`` newly sampled scenes, drawn as the dataset writer draws them (JPEG, quality 92) but
    from another seed: every lead-car state occurs, turning ones too (the toy test split has almost none)."""
    rng = np.random.default_rng([seed, 7919])
    clips, scenes = [], []
    for _ in range(n_clips):
        scene = sample_scene(rng)
        frames = []
        for frame in render_clip(scene, n_frames, size, seed=int(rng.integers(2**31))):
            buf = io.BytesIO()
            frame.save(buf, format="JPEG", quality=92)
            frames.append(Image.open(buf).convert("RGB"))
        clips.append(frames)
        scenes.append(scene)
    return clips, scenes


def toy_test_clips(cfg: Config, n_clips: int | None = None) -> tuple[list[str], list[list], list[Scene]]:
    """(names, frames, scenes) of the toy test split's clips in ``scenes.jsonl`` order, the first
    ``n_clips`` of them (all when None): the clips whose descriptions pretraining holds out."""
    root = ensure_dataset(cfg)
    held_out = set(load_or_make_toy_split(cfg).test)
    records = [r for r in read_scenes(root) if r["file_name"] in held_out][:n_clips]
    names = [r["file_name"] for r in records]
    clips = [[load_image(p) for p in frame_paths(root, name)] for name in names]
    return names, clips, [Scene(**r["scene"]) for r in records]
