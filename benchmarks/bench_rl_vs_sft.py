"""The RL-vs-SFT experiment (``drivekit.experiment``) with its provenance: the results file and every
final run's answers, clip by clip.

    python benchmarks/bench_rl_vs_sft.py --runs /tmp/rl-vs-sft --jobs 2 [the options of
                                         python -m drivekit rl-vs-sft, its --out being --runs here]

With no option it is the whole experiment in one go, resumable (finished runs are reused): 5 seeds, every
method, the references, both tunings on seed 0 (validation; the 63-clip selection set), every final run, the
fresh test split answered once, the summary with its diagnostics. Writes ``benchmarks/results/rl_vs_sft.json``
(``record.py``: command, commit, clean tree, versions, machine; ``results`` as ``experiment.summarize`` gives
them, with both tunings and the judge's error rates) and, beside it, ``rl_vs_sft_predictions.jsonl.gz``: every
final run's answers on the validation clips, the toy test split and the fresh test split (method, seed, split,
clip, predicted and true labels), from which ``experiment.paired_from_predictions`` recomputes every fixed /
broken count and sign test. Both need a clean git tree (``--out FILE`` writes the JSON elsewhere, the answers
beside it).
"""
from __future__ import annotations

from drivekit import experiment
from drivekit.core import config

import record


def main() -> None:
    p = experiment.parser(runs_flag="--runs")
    p.prog = "python benchmarks/bench_rl_vs_sft.py"
    record.add_out_option(p, "rl_vs_sft")
    a = p.parse_args()
    target = record.check("rl_vs_sft", a.out)
    answers = target.with_name(target.stem + "_predictions.jsonl.gz")
    results = experiment.from_arguments(a)
    runs = a.runs or config.load(a.profile).runs_dir / "rl-vs-sft"
    exp = experiment.ExperimentSettings(**{**results["recipe"], "seeds": tuple(results["seeds"])})
    written = record.write("rl_vs_sft", results, a.out)  # first: it checks the tree is clean, answers file included
    experiment.export_predictions(runs, exp, answers)
    print(f"wrote {written} and {answers}")
    print(experiment.table(results).to_markdown())


if __name__ == "__main__":
    main()
