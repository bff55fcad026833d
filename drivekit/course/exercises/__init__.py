"""Self-checks for the notebooks' exercises (in the style of rasbt/LLMs-from-scratch).

Each exercise in a notebook is a small function the learner writes, starting as a stub that raises
``NotImplementedError``. A ``check_*`` function below calls it on a few cases and compares it with
drivekit's own implementation (or with a hand-computed value):

- the stub is still there (``NotImplementedError``): it prints "not attempted yet" and returns
  False, so a notebook run top to bottom (CI, ``pytest --nbval-lax``) does not fail;
- a wrong answer: it raises :class:`ExerciseError` (an ``AssertionError``) that says which case
  failed, what was expected, what came back, and a hint. Where a mistake is common, the checker
  recomputes the case the mistaken way, and when the answer is that, the hint names that mistake
  (a sign-flipped advantage is told so, not sent to the generic hint): ``mistakes``, pairs of a function
  computing the mistaken answer and its hint;
- a right answer: it prints "passed" and returns True.

The solutions are in ``notebooks/solutions/`` and ``tests/test_exercises.py`` runs every one of them
through the same checker, and checks that each named mistake is rejected with its own hint.

The checks live in one module per pair of notebooks (``data_checks``: 00, 01; ``model_checks``: 02, 03;
``rl_checks``: 04, 04b; ``output_checks``: 05, 06) on the protocol of ``checking``; notebooks use them as
``exercises.check_*`` through this package.
"""
from drivekit.core.taxonomy import ACTION_OF_REASON, ACTION_PHRASES, REASON_PHRASES  # noqa: F401 (tests, notebooks)
from drivekit.course.exercises.checking import NOT_ATTEMPTED, ExerciseError  # noqa: F401
from drivekit.course.exercises.data_checks import (check_cooccurrence, check_decode, check_split_sizes,  # noqa: F401
                                                   check_stratified_split)
from drivekit.course.exercises.model_checks import (check_label_mask, check_lora_parameters, check_ordered_r1,  # noqa: F401
                                                    check_r1, lora_layers, r1)
from drivekit.course.exercises.output_checks import (WORKED_PRED, WORKED_TRUE, LabelF1Reward,  # noqa: F401
                                                     check_consistency, check_label_f1_r2, check_sample_f1,
                                                     check_sign_test, consistency_level, label_f1_r2, metrics)
from drivekit.course.exercises.rl_checks import (GRPO_EPS, _a2c_cases, _clip_cases, _loss_and_grads,  # noqa: F401
                                                 a2c_loss, check_a2c_loss, check_clipped_objective,
                                                 check_group_advantages, check_incremental_rewards,
                                                 check_returns_and_advantages, clipped_objective, group_advantages,
                                                 returns_and_advantages)
