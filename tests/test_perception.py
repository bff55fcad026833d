"""The perception benchmark's parser: descriptions read back into scene elements, garbage never raises."""
import numpy as np
import pytest

from drivekit.models import perception
from drivekit.data import scene
from drivekit.models.perception import ELEMENTS, MISSING, UNREADABLE

from micro import MICRO


def _scenes(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [scene.sample_scene(rng) for _ in range(n)]


def test_description_parses_back_to_the_scene_values():
    scenes = _scenes()
    for s in scenes:
        said = perception.parse(scene.describe(s))
        assert said.pop("unparsed") == 0
        assert said == perception.scene_values(s), scene.describe(s)
    lead = {perception.scene_values(s)["lead"] for s in scenes}
    assert lead == set(perception.LEAD_STATES)  # every state went through the round trip
    for element in ELEMENTS:  # and every element took more than one value
        assert len({perception.scene_values(s)[element] for s in scenes}) > 1, element


def test_sentence_order_does_not_matter():
    from drivekit.models.zoo import shuffled

    rng = np.random.default_rng(1)
    for s in _scenes(50, seed=1):
        assert perception.parse(shuffled(scene.describe(s), rng)) == perception.parse(scene.describe(s))


def test_arrows_and_side_lanes():
    s = scene.Scene(ego_lane="left", left_lane=False, left_car=True, right_line="solid", right_car=True,
                    light="red", left_arrow=True, right_arrow=True, lead="stopped")
    values = perception.parse(scene.describe(s))
    assert values["left_lane"] == "no" and values["left_line"] == "none" and values["left_car"] == "no"
    assert values["right_line"] == "solid" and values["right_car"] == "yes"
    assert values["left_arrow"] == values["right_arrow"] == "yes" and values["light"] == "red"
    assert values["lead"] == "stopped" and values["ego_lane"] == "left"


@pytest.mark.parametrize("text", ["", "....", "garbage without a full stop", None, 42, "\u00e9\u00e8 . <image> ..",
                                  "The car ahead is", "We drive in a sideways lane."])
def test_garbage_never_raises(text):
    values = perception.parse(text)
    assert values["lead"] == values["light"] == values["ego_lane"] == MISSING
    assert values["stop_sign"] == values["cones"] == "no"


def test_contradictions_and_missing_sentences():
    text = "The car ahead is moving away. No car is ahead of us. There is no traffic light. Blah."
    values = perception.parse(text)
    assert values["lead"] == UNREADABLE and values["light"] == "none" and values["unparsed"] == 1
    assert values["left_lane"] == MISSING and values["left_car"] == MISSING


def test_score_counts_elements_and_lead_confusion():
    stopped = scene.Scene(lead="stopped")
    away = scene.Scene(lead="away", cones=True)
    texts = [scene.describe(stopped).replace("stopped close to us", "moving away"), scene.describe(away)]
    result = perception.score(texts, [stopped, away])
    assert result["elements"]["lead"] == 0.5 and result["elements"]["cones"] == 1.0
    assert result["lead"]["stopped"] == {"away": 1} and result["lead"]["away"] == {"away": 1}
    assert result["lead"]["none"] == {} and result["all_elements"] == 0.5
    assert perception.lead_recall(result)["stopped"] == 0.0 and perception.lead_recall(result)["left"] is None
    assert not perception.passes(result)
    perfect = perception.score([scene.describe(s) for s in _scenes(200)], _scenes(200))
    assert perception.passes(perfect) and perfect["all_elements"] == 1.0
    assert "stopped" in perception.table(result)
    with pytest.raises(ValueError, match="2 scenes"):
        perception.score(texts[:1], [stopped, away])


def test_frame_cache_batches_are_what_prompts_encode_makes():
    import torch

    from drivekit.models import prompts, zoo
    from drivekit.data import render

    scenes = _scenes(5)
    _, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in scenes]), MICRO)
    clips = [render.render_clip(s, 4, (96, 96), seed=i) for i, s in enumerate(scenes)]
    cache = zoo.FrameCache(processor, clips, chunk=2)
    indices, targets = [3, 0, 3], [scene.describe(scenes[i]) for i in (3, 0, 1)]
    got, want = cache.batch(indices, targets), prompts.encode(processor, [clips[i] for i in indices], targets)
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6 if key == "pixel_values" else 0)


def test_clip_weights_even_out_the_states():
    from drivekit.models import zoo

    states = ["away"] * 6 + ["stopped"] * 3 + ["left"]
    assert zoo.clip_weights(states, 0.0) is None
    p = zoo.clip_weights(states, 1.0)
    assert np.isclose(p.sum(), 1) and np.allclose([p[:6].sum(), p[6:9].sum(), p[9]], 1 / 3)


def test_pretraining_is_deterministic_for_a_seed():
    import torch

    from drivekit.data import render
    from drivekit.models import zoo

    scenes = _scenes(6, seed=2)
    descriptions = [scene.describe(s) for s in scenes]
    clips = [render.render_clip(s, 2, (96, 96), seed=i) for i, s in enumerate(scenes)]

    def run(seed):
        model, processor = zoo.untrained(zoo.corpus(descriptions), MICRO, seed=0)
        settings = zoo.PretrainSettings.tiny(epochs=2, batch_size=4, warmup_steps=1, text_batch_size=2, seed=seed)
        losses = zoo.pretrain(model, processor, clips, descriptions, zoo.language_texts(0, descriptions), settings,
                              progress=False, states=[s.lead for s in scenes])
        return losses, model.state_dict()

    (first, a), (again, b), (other, _) = run(0), run(0), run(1)
    assert len(first) == 3 and first == again and first != other
    assert all(torch.equal(a[k], b[k]) for k in a)
