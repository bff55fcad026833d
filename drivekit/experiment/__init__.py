"""RL against SFT over seeds, clip by clip: the experiment behind every "RL vs SFT" sentence.

**Data.** Each experiment seed draws its own data from the toy train part (``toy_split.toy_data``
with ``draw=seed``): a labelled subset (``fraction``, stratified by action), a validation set
(:data:`VAL_SIZE` clips, whose first ``selection_size`` are the label-free *selection set*) and the *pool*,
the rest, whose labels only the label-grounded reward reads. Two test splits, each shared by every seed: the
toy test split (506 clips, the proposal's figures; earlier rounds looked at it) and the *fresh test split*
(:mod:`drivekit.data.fresh_split`: ``fresh_test`` new clips of the toy test's action shares from another
generator seed, seen by no model and no choice, answered once by every final run). The seeds' test scores are
not independent: every sign test is per seed, Holm's correction runs over every seed's tests of a split, and
sums over seeds are descriptive only.

**Runs**, per seed, in ``<out>/<method>/seed<s>/``:

- ``SFT``: QLoRA SFT on the labelled subset, for as many clip passes as the profile's SFT makes on
  the proposal's 1/8 (:func:`sft_epochs`); ``SFT-all``: SFT on every label of the train part but
  the validation clips', the reference of what the labels alone give; ``SFT+val``: SFT on the labelled subset
  plus the validation clips, what the labels that choose settings are worth as training data;
- each RL method from that seed's SFT adapter on the pool (:data:`METHODS`; the algorithm is the
  prefix, the reward the suffix). ``A2C-*`` is drivekit's own A2C (:mod:`drivekit.stages.a2c_stage`),
  ``GRPO-*`` trl's GRPO (:mod:`drivekit.stages.grpo_stage`), through one interface (``train``) and one
  reward object (:mod:`drivekit.rewards.weighted_reward`), the same number of sampled answers a step and
  the same steps. ``-R2``: the label-F1 R2 on the pool's labels (label-grounded). Label-free, the
  pool's items reach training without their labels (:func:`unlabelled`), so no reward can read
  one: ``-R1`` R1 alone, from a tiny CLIP trained on a second synthetic dataset
  (:func:`unseen_clip`); ``-SC`` self-consistency (the answers sampled for a clip vote; each is
  rewarded for agreeing with the majority, ``action_reward.MajorityVoteReward``): issue 25's, kept as the
  "before". Issue 34's guarded candidates (:data:`GUARDED`), whose reward breaking the answer's form cannot
  raise and which keep a KL term to SFT: ``-R1G`` R1 gated by the form (an answer that does not parse as
  action + reason scores R1's minimum), ``-SC3`` a vote that speaks only where at least 3 of a clip's 4
  answers agree (no signal elsewhere), ``-R1G+SC3`` the two summed. ``ST``, self-training
  (:mod:`drivekit.stages.self_training`): SFT continued on its own greedy answers for the pool, the same
  number of training examples as RL samples answers, the baseline label-free RL has to beat.

**Choices, then the test splits once.** Every run answers its seed's validation clips
(``val_predictions.jsonl``). :func:`tune` chooses each algorithm's settings with its label-F1 method on the
tuning seed's validation clips with the same budget for both (:data:`GRID` over lr and KL coefficient, then
:data:`VARIANTS`, four algorithm-specific alternatives each, at the grid's best), by :func:`val_score`; the
label-grounded methods and the "before" use them. :func:`tune_label_free` chooses each guarded candidate's lr
and KL (:data:`LABEL_FREE_GRID`) on the tuning seed's selection set only (63 validation clips: never a pool
label, never the rest of the validation clips). Every other setting is fixed before any run;
``ExperimentSettings.chosen`` says, per setting, how it was chosen. The final runs use the chosen settings and
answer the toy test split and the fresh test split once. Per method and seed: F1_act, F1_rsn, pair F1 and
the mean test R under one yardstick (R1 + label-F1 R2), the same on validation, and, against the same seed's
SFT, the clips it fixed and broke with their sign test (Holm-adjusted too). :func:`summarize` adds mean ± sd
over seeds and the share of the SFT → SFT-all gap closed. Finished runs are reused (with a check that their
settings are the experiment's), so an interrupted experiment continues where it stopped; a run is finished only
when its ``summary.json`` parses, and one whose summary is truncated or unreadable is redone, its file named
(``<path>: unfinished (<reason>)``). Summaries and results are written atomically (a temporary file, then a
rename: :mod:`drivekit.core.files`). ``jobs`` runs several at once.

**Diagnostics** (:mod:`drivekit.experiment.diagnostics`, read with the labels after training; they choose
nothing): the share of sampled answers without an action or a reason per step (every reward's monitors, in
``log.csv``) and of answers without them on each split; the vote's accuracy per step with Wilson intervals and a
trend test; the R1 judge's two error rates on each seed's validation clips.

With ``--report-to trackio|tensorboard`` (or ``$DRIVEKIT_REPORT_TO``) every run reports while it trains
(:mod:`drivekit.core.tracking`) to one dashboard project named after the output folder, as
``<method>-seed<s>``.

    python -m drivekit rl-vs-sft [--seeds 0 1 2 3 4] [--methods A2C-R2 GRPO-R2 ...] [--tune-seed 0]
                                 [--steps 320] [--fresh-test 1064] [--jobs 2] [--out DIR] [--report-to ...]

(``benchmarks/bench_rl_vs_sft.py`` runs it and writes ``benchmarks/results/rl_vs_sft.json`` with
the commit, versions and machine.)

**Modules** (each imports the others by their full name, never through this package):
``settings`` (:class:`ExperimentSettings`, the methods, budget, validation size, tuning grids, the fresh split's
size, how each setting is chosen, and each run's settings), ``folders`` (run paths, when a run is finished, the
reuse check), ``label_free`` (the rewards, the pool without labels, the unseen CLIP), ``diagnostics`` (the
readings after training), ``runner`` (one run, many runs, the references, the selection set), ``tuning`` (the
choices on validation and on the selection set), ``fresh`` (the fresh test split, answered once), ``protocol``
(:func:`run`, end to end), ``results`` (the summary, tables and curves), ``export`` (every answer, clip by clip),
``answers`` (the exported answers read back per method and seed: scores, spread, form, paired tests; notebook 06),
``cli`` (the command line). This package re-exports what notebooks, benchmarks and tests use.
"""
from drivekit.experiment.cli import from_arguments, main, parser
from drivekit.experiment.diagnostics import form_counts, form_curves, judge_accuracy, judge_errors, majority_accuracy
from drivekit.experiment.export import export_predictions, paired_from_predictions
from drivekit.experiment.fresh import score_fresh
from drivekit.experiment.label_free import rl_reward, unlabelled, unseen_clip
from drivekit.experiment.protocol import run
from drivekit.experiment.results import curves, f1_tables, load_results, summarize, table, tuning_table
from drivekit.experiment.runner import selection_clips, short_runs
from drivekit.experiment.settings import (A2C_SETTINGS, GRID, GRPO_SETTINGS, GUARDED, LABEL_FREE_GRID,
                                          LABEL_FREE_SETTINGS, LABELS_USED, METHODS, REFERENCES, TUNED_METHOD,
                                          VAL_SIZE, VARIANTS, ExperimentSettings, budget, rl_settings, sft_epochs,
                                          val_score)
from drivekit.experiment.tuning import tune, tune_label_free, tuned

__all__ = [
    "A2C_SETTINGS", "GRID", "GRPO_SETTINGS", "GUARDED", "LABEL_FREE_GRID", "LABEL_FREE_SETTINGS", "LABELS_USED",
    "METHODS", "REFERENCES", "TUNED_METHOD", "VAL_SIZE", "VARIANTS", "ExperimentSettings", "budget", "curves",
    "export_predictions", "f1_tables", "form_counts", "form_curves", "from_arguments", "judge_accuracy",
    "judge_errors", "load_results", "main", "majority_accuracy", "paired_from_predictions", "parser", "rl_reward",
    "rl_settings", "run", "score_fresh", "selection_clips", "sft_epochs", "short_runs", "summarize", "table", "tune",
    "tune_label_free", "tuned", "tuning_table", "unlabelled", "unseen_clip", "val_score",
]
