"""The RL-vs-SFT experiment (``drivekit.experiment``) with its provenance: the results file and every
final run's answers, clip by clip.

    python benchmarks/bench_rl_vs_sft.py --out-dir /tmp/rl-vs-sft --jobs 2 [the options of
                                         python -m drivekit rl-vs-sft]

Writes ``benchmarks/results/rl_vs_sft.json`` (``record.py``: command, commit, clean tree, versions,
machine; ``results`` as ``experiment.summarize`` gives them, with the tuning) and, beside it,
``rl_vs_sft_predictions.jsonl.gz``: every final run's answers on the validation clips and the test
split (method, seed, split, clip, predicted and true labels), from which
``experiment.paired_from_predictions`` recomputes every fixed / broken count and sign test. Both
need a clean git tree (``--results FILE`` writes the JSON elsewhere, the answers beside it).
"""
from __future__ import annotations

from pathlib import Path

from drivekit import experiment

import record


def main() -> None:
    p = experiment.parser()
    p.prog = "python benchmarks/bench_rl_vs_sft.py"
    p.add_argument("--out-dir", type=Path, help="the runs' folder (default <runs>/rl-vs-sft)")
    p.add_argument("--results", type=Path, metavar="FILE",
                   help="results file (default: benchmarks/results/rl_vs_sft.json, which needs a clean git tree)")
    a = p.parse_args()
    a.out = a.out_dir
    target = record.check("rl_vs_sft", a.results)
    answers = target.with_name(target.stem + "_predictions.jsonl.gz")
    results = experiment.from_arguments(a)
    out = a.out or experiment.load(a.profile).runs_dir / "rl-vs-sft"
    recipe = experiment.ExperimentSettings(**{**results["recipe"], "seeds": tuple(results["seeds"])})
    experiment.export_predictions(out, recipe, answers)
    print(f"wrote {record.write('rl_vs_sft', results, a.results)} and {answers}")
    print(experiment.table(results).to_markdown())


if __name__ == "__main__":
    main()
