"""What every self-check shares: the not-attempted / wrong / passed protocol, the diagnosis of named mistakes,
and small helpers for building cases (:mod:`drivekit.course.exercises` describes the protocol)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class ExerciseError(AssertionError):
    """A learner's answer is wrong; the message says where and gives a hint."""


NOT_ATTEMPTED = object()  # what _attempt returns for a stub


def _attempt(name: str, fn: Callable, *args):
    """``fn(*args)``, or ``NOT_ATTEMPTED`` (and a printed note) when ``fn`` is still the stub."""
    try:
        return fn(*args)
    except NotImplementedError:
        print(f"{name}: not attempted yet (the function still raises NotImplementedError). "
              "Write it, then run this cell again.")
        return NOT_ATTEMPTED


def _fail(name: str, case: str, expected, got, hint: str) -> None:
    raise ExerciseError(f"{name}: wrong answer for {case}.\n  expected: {expected!r}\n  got:      {got!r}\n"
                        f"  hint: {hint}")


def _passed(name: str, n: int) -> bool:
    print(f"{name}: passed ({n} cases)")
    return True


Mistake = tuple[Callable, str]  # (the answer made the mistaken way, from the case's arguments; the hint for it)


def _same(same: Callable, got, want) -> bool:
    try:
        return bool(same(got, want))
    except Exception:  # noqa: BLE001 (an answer of any wrong type or shape is a wrong answer)
        return False


def _diagnose(got, args: tuple, same: Callable, mistakes: Sequence[Mistake], hint: str) -> str:
    """The hint of the first mistake whose answer to ``args`` is ``got``, else the generic ``hint``."""
    for wrong, why in mistakes:
        try:
            made = wrong(*args)
        except Exception:  # noqa: BLE001 (a mistake that cannot be made on this case is not this one)
            continue
        if _same(same, got, made):
            return why
    return hint


def _cases(name: str, fn: Callable, cases: Sequence[tuple], expected: Callable, same: Callable, hint: str,
           mistakes: Sequence[Mistake] = ()) -> bool:
    """Run ``fn`` on every case (a tuple of arguments); stop at the first wrong answer, with the hint of the
    mistake it shows (``mistakes``) or the generic ``hint``."""
    for args in cases:
        got = _attempt(name, fn, *args)
        if got is NOT_ATTEMPTED:
            return False
        want = expected(*args)
        if not _same(same, got, want):
            _fail(name, f"arguments {_short(args)}", want, got, _diagnose(got, args, same, mistakes, hint))
    return _passed(name, len(cases))


def _short(args: tuple) -> str:
    text = ", ".join(np.array2string(np.asarray(a), threshold=12) if isinstance(a, (np.ndarray, torch.Tensor))
                     else repr(a) for a in args)
    return text if len(text) < 300 else text[:300] + " ..."


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _one_hot_rows(rng: np.random.Generator, n: int, width: int, density: float = 0.3) -> np.ndarray:
    return (rng.random((n, width)) < density).astype(int)


def _close(got, want, tol: float = 1e-6) -> bool:
    """``got`` has ``want``'s shape and values (lists, arrays or tensors)."""
    got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=float)
    return got.shape == np.shape(want) and np.allclose(got, want, rtol=tol, atol=tol)
