"""RL against SFT over seeds, clip by clip: the experiment behind every "RL vs SFT" sentence.

**Data.** Each experiment seed draws its own data from the toy train part (``toy_split.toy_data``
with ``draw=seed``): a labelled subset (``fraction``, stratified by action), a validation set
(:data:`VAL_SIZE` clips) and the *pool*, the rest, whose labels only the label-grounded reward
reads. The toy test split is the same for every seed, so the seeds' test scores are not
independent: every sign test is per seed, and sums over seeds are descriptive only.

**Runs**, per seed, in ``<out>/<method>/seed<s>/``:

- ``SFT``: QLoRA SFT on the labelled subset, for as many clip passes as the profile's SFT makes on
  the proposal's 1/8 (:func:`sft_epochs`); ``SFT-all``: SFT on every label of the train part but
  the validation clips', the reference of what the labels alone give;
- each RL method from that seed's SFT adapter on the pool (:data:`METHODS`; the algorithm is the
  prefix, the reward the suffix). ``A2C-*`` is drivekit's own A2C (:mod:`drivekit.stages.a2c_stage`),
  ``GRPO-*`` trl's GRPO (:mod:`drivekit.stages.grpo_stage`), through one interface (``train``) and one
  reward object (:mod:`drivekit.rewards.weighted_reward`), the same number of sampled answers a step and
  the same steps. ``-R2``: the label-F1 R2 on the pool's labels (label-grounded). Label-free, the
  pool's items reach training without their labels (:func:`unlabelled`), so no reward can read
  one: ``-R1`` R1 alone, from a tiny CLIP trained on a second synthetic dataset
  (:func:`unseen_clip`); ``-SC`` self-consistency (the answers sampled for a clip vote; each is
  rewarded for agreeing with the majority, ``action_reward.MajorityVoteReward``); and ``ST``,
  self-training (:mod:`drivekit.stages.self_training`): SFT continued on its own greedy answers for the
  pool, the same number of training examples as RL samples answers, the baseline label-free RL
  has to beat.

**Choice on validation, test once.** Every run answers its seed's validation clips
(``val_predictions.jsonl``); :func:`tune` chooses each algorithm's settings on the tuning seed's
validation set with the same budget for both (:data:`GRID` over lr and KL coefficient, then
:data:`VARIANTS`, four algorithm-specific alternatives each, at the grid's best), by
:func:`val_score`. The final runs (:func:`run`) use the chosen settings and answer the test split
once. Per method and seed: F1_act, F1_rsn, pair F1 and the mean test R under one yardstick (R1 +
label-F1 R2), the same on validation, and, against the same seed's SFT, the clips it fixed and
broke with their sign test. :func:`summarize` adds mean ± sd over seeds and the share of the
SFT → SFT-all gap closed. Finished runs are reused (with a check that their settings are the
experiment's), so an interrupted experiment continues where it stopped; a run is finished only when
its ``summary.json`` parses, and one whose summary is truncated or unreadable is redone, its file
named (``<path>: unfinished (<reason>)``). Summaries and results are written atomically (a temporary
file, then a rename: :mod:`drivekit.core.files`). ``jobs`` runs several at once.

With ``--report-to trackio|tensorboard`` (or ``$DRIVEKIT_REPORT_TO``) every run reports while it trains
(:mod:`drivekit.core.tracking`) to one dashboard project named after the output folder, as
``<method>-seed<s>``.

    python -m drivekit rl-vs-sft [--seeds 0 1 2] [--methods A2C-R2 GRPO-R2 ...] [--tune-seed 0]
                                 [--steps 320] [--jobs 2] [--out DIR] [--report-to ...]

(``benchmarks/bench_rl_vs_sft.py`` runs it and writes ``benchmarks/results/rl_vs_sft.json`` with
the commit, versions and machine.)

**Modules** (each imports the others by their full name, never through this package):
``settings`` (:class:`ExperimentSettings`, the methods, budget, validation size, tuning grid and each
run's settings), ``folders`` (run paths, when a run is finished, the reuse check), ``label_free``
(the rewards, the pool without labels, the unseen CLIP), ``runner`` (one run, many runs, the
references), ``tuning`` (the choice on validation), ``protocol`` (:func:`run`, end to end),
``results`` (the summary, tables and curves), ``export`` (every answer, clip by clip), ``cli`` (the
command line). This package re-exports what notebooks, benchmarks and tests use.
"""
from drivekit.experiment.cli import from_arguments, main, parser
from drivekit.experiment.export import export_predictions, paired_from_predictions
from drivekit.experiment.label_free import judge_accuracy, majority_accuracy, rl_reward, unlabelled, unseen_clip
from drivekit.experiment.protocol import run
from drivekit.experiment.results import curves, f1_tables, load_results, summarize, table, tuning_table
from drivekit.experiment.runner import short_runs
from drivekit.experiment.settings import (A2C_SETTINGS, GRID, GRPO_SETTINGS, LABELS_USED, METHODS, REFERENCES,
                                          TUNED_METHOD, VAL_SIZE, VARIANTS, ExperimentSettings, budget, rl_settings,
                                          sft_epochs, val_score)
from drivekit.experiment.tuning import tune, tuned

__all__ = [
    "A2C_SETTINGS", "GRID", "GRPO_SETTINGS", "LABELS_USED", "METHODS", "REFERENCES", "TUNED_METHOD", "VAL_SIZE",
    "VARIANTS", "ExperimentSettings", "budget", "curves", "export_predictions", "f1_tables", "from_arguments",
    "judge_accuracy", "load_results", "main", "majority_accuracy", "paired_from_predictions", "parser", "rl_reward",
    "rl_settings", "run", "sft_epochs", "short_runs", "summarize", "table", "tune", "tuned", "tuning_table",
    "unlabelled", "unseen_clip", "val_score",
]
