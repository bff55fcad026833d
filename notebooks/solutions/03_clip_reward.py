"""Solutions to notebook 03's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""
import torch


def my_r1(frames, text):
    """Exercise 03.1: R1 = mean_i (f_i / |f_i|) . (t / |t|)."""
    v = (frames / frames.norm(dim=-1, keepdim=True)).mean(dim=0)
    return float(v @ (text / text.norm()))


def ordered_r1(frames, text):
    """Exercise 03.2: later frames weigh more (weights 1, 2, ..., M, normalised to sum to 1).

    A still clip keeps plain R1 (the weights sum to 1), a clip and its reverse differ. It is only
    a start: the text embedding itself carries no time, so CLIP still cannot read "moving away"
    from "closing in"; a reward that can needs a model trained on ordered frames.
    """
    m = len(frames)
    weights = torch.arange(1, m + 1, dtype=frames.dtype)
    weights = weights / weights.sum()
    v = (weights[:, None] * (frames / frames.norm(dim=-1, keepdim=True))).sum(dim=0)
    return float(v @ (text / text.norm()))
