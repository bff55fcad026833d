"""Self-checks of notebooks 02 (SFT with QLoRA) and 03 (the CLIP reward R1)."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from drivekit.course.exercises.checking import NOT_ATTEMPTED, _attempt, _cases, _fail, _passed
from drivekit.models.prompts import IGNORE_INDEX
from drivekit.rewards.clip_reward import r1


# ---------------------------------------------------------------------------------------------
# 02 · SFT with QLoRA
# ---------------------------------------------------------------------------------------------
def check_label_mask(mask: Callable, batch) -> bool:
    """Exercise 02.2: ``mask(input_ids, attention_mask, prompt_lengths) -> labels``: the answer's
    tokens copied, -100 on the prompt and on padding. Checked against ``batch["labels"]`` of a real
    ``sft.Collator`` batch (right-padded: row i holds its prompt, then its answer, then padding)."""
    name = "Exercise 02.2 (label masking)"
    labels = batch["labels"]
    prompt_lengths = [int((row != IGNORE_INDEX).nonzero()[0]) for row in labels]  # first supervised position
    got = _attempt(name, mask, batch["input_ids"].clone(), batch["attention_mask"].clone(), prompt_lengths)
    if got is NOT_ATTEMPTED:
        return False
    got = torch.as_tensor(got)
    if got.shape != labels.shape:
        _fail(name, "the batch", tuple(labels.shape), tuple(got.shape), "one label per input token")
    if not torch.equal(got, labels) and (torch.equal(got[:, :-1], labels[:, 1:]) or torch.equal(got[:, 1:], labels[:, :-1])):
        _fail(name, "the batch", "labels at the positions of their tokens", "the labels shifted by one position",
              "don't shift: position t holds token t's label (or -100); the model pairs logits[t - 1] with "
              "labels[t] itself")
    for i in range(len(labels)):
        wrong = (got[i] != labels[i]).nonzero().ravel()
        if len(wrong):
            j = int(wrong[0])
            where = ("the prompt (image tokens included)" if j < prompt_lengths[i] else
                     "padding" if batch["attention_mask"][i, j] == 0 else "the answer")
            _fail(name, f"row {i}, position {j}, in {where}", int(labels[i, j]), int(got[i, j]),
                  "copy input_ids, then set -100 where the position is in the prompt (< prompt_lengths[i]) "
                  "or is padding (attention_mask == 0)")
    return _passed(name, len(labels))


def lora_layers(model: torch.nn.Module) -> list[tuple[int, int, int]]:
    """``(in_features, out_features, r)`` of every LoRA-wrapped linear layer of a peft model."""
    found = []
    for module in model.modules():
        if hasattr(module, "lora_A") and hasattr(module, "base_layer") and len(module.lora_A):
            a = next(iter(module.lora_A.values()))
            b = next(iter(module.lora_B.values()))
            found.append((a.in_features, b.out_features, a.out_features))
    return found


def check_lora_parameters(count: Callable, model: torch.nn.Module | None = None) -> bool:
    """Exercise 02.1: ``count(d_in, d_out, r)``: the trainable parameters LoRA adds to one linear layer.
    With ``model`` (a peft model), the sum over its LoRA layers must equal its trainable parameters."""
    name = "Exercise 02.1 (LoRA parameters)"
    cases = [(64, 64, 8), (128, 32, 16), (2048, 8192, 8), (5, 3, 1)]
    mistakes = [(lambda i, o, r: i * o + r * (i + o), "W (d_out × d_in) is frozen: count only what LoRA adds, "
                                                       "A (r × d_in) and B (d_out × r)"),
                (lambda i, o, r: r * i * o, "A (r × d_in) and B (d_out × r) are two matrices: add their sizes, "
                                            "r·d_in + d_out·r, don't multiply everything"),
                (lambda i, o, r: r * i, "B (d_out × r) trains too: r·d_in + d_out·r")]
    if not _cases(name + ", hand cases", count, cases, lambda i, o, r: r * (i + o),
                  lambda got, want: got is not None and int(got) == want,
                  "W (d_out × d_in) stays frozen; LoRA adds A (r × d_in) and B (d_out × r)", mistakes):
        return False
    if model is not None:
        layers = lora_layers(model)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(int(count(i, o, r)) for i, o, r in layers)
        if total != trainable:
            _fail(name, f"the model's {len(layers)} LoRA layers", trainable, total,
                  "sum count(d_in, d_out, r) over the LoRA layers; should equal the trainable parameters")
        print(f"  and on the model: {len(layers)} LoRA layers, {total:,} parameters = its trainable parameters")
    return True


# ---------------------------------------------------------------------------------------------
# 03 · the CLIP reward R1
# ---------------------------------------------------------------------------------------------
def _r1_cases(seed: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([3.0, 3.0]))]  # worked example: sqrt(2)/2
    cases += [(torch.randn(m, d, generator=g) * 5, torch.randn(d, generator=g)) for m, d in ((1, 4), (4, 16), (3, 512))]
    return cases


def check_r1(my_r1: Callable) -> bool:
    """Exercise 03.1: ``my_r1(frames (M, D), text (D,)) -> float``, R1 as ``clip_reward.r1`` computes it."""
    def same(got, want):
        return got is not None and math.isclose(float(got), float(want), rel_tol=1e-4, abs_tol=1e-5)

    def unit(x):
        return x / x.norm(dim=-1, keepdim=True)

    mistakes = [
        (lambda f, t: float(unit(f.mean(0)) @ unit(t)), "you averaged the raw frame embeddings and normalised the "
         "mean: normalise each frame to length 1 first, then average (a long embedding must not outvote the others)"),
        (lambda f, t: float(unit(unit(f).mean(0)) @ unit(t)), "v is the mean of the unit frame vectors, not "
         "normalised again (its length shrinks when the frames disagree, and R1 with it)"),
        (lambda f, t: float(unit(f).mean(0) @ t), "normalise the text embedding to length 1 too"),
    ]
    return _cases("Exercise 03.1 (R1)", my_r1, _r1_cases(), lambda f, t: float(r1(f, t)), same,
                  "normalise each frame's embedding to length 1, average them (v, not normalised again), "
                  "normalise the text embedding, and take the dot product", mistakes)


def check_ordered_r1(ordered_r1: Callable) -> bool:
    """Exercise 03.2: an R1 that depends on the frames' order, equal to R1 when every frame is the same."""
    name = "Exercise 03.2 (an order-sensitive R1)"
    g = torch.Generator().manual_seed(4)
    frames, text = torch.randn(4, 32, generator=g), torch.randn(32, generator=g)
    got = _attempt(name, ordered_r1, frames, text)
    if got is NOT_ATTEMPTED:
        return False
    reverse = float(ordered_r1(frames.flip(0), text))
    if math.isclose(float(got), reverse, abs_tol=1e-6):
        _fail(name, "4 random frames and their reverse", "two different values", (float(got), reverse),
              "give the frames different weights by position (e.g. later frames more), or add a term "
              "on the change between consecutive frames")
    still = frames[:1].repeat(4, 1)
    want = float(r1(still, text))
    if not math.isclose(float(ordered_r1(still, text)), want, rel_tol=1e-4, abs_tol=1e-5):
        _fail(name, "a still clip (4 copies of one frame)", want, float(ordered_r1(still, text)),
              "when nothing moves, order cannot matter: let your weights sum to 1 so a still clip gets plain R1")
    for m, d in ((2, 8), (6, 16)):
        f, t = torch.randn(m, d, generator=g), torch.randn(d, generator=g)
        value = float(ordered_r1(f, t))
        if not -1 - 1e-5 <= value <= 1 + 1e-5:
            _fail(name, f"{m} random frames", "a value in [-1, 1]", value,
                  "a weighted mean of unit vectors, dotted with a unit vector, stays in [-1, 1]")
    return _passed(name, 4)
