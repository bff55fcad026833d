"""Provenance: every final run's answers, clip by clip, in one compressed file, and the paired counts
recomputed from it (``benchmarks/bench_rl_vs_sft.py`` writes it beside ``rl_vs_sft.json``)."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from drivekit.core.files import write_atomic
from drivekit.evaluation.reports import read_predictions
from drivekit.experiment.folders import FRESH_PREDICTIONS, PREDICTIONS, run_dir
from drivekit.experiment.results import tested
from drivekit.experiment.settings import ExperimentSettings
from drivekit.stages import sft_stage

ANSWER_KEYS = ("actions_pred", "reasons_pred", "actions_true", "reasons_true")


def export_predictions(out: str | Path, exp: ExperimentSettings, path: str | Path) -> Path:
    """Write every final run's answers (references and methods of ``exp``, each seed, on the
    validation clips, the toy test split and, when the experiment has one, the fresh test split) to ``path``
    (gzip-compressed JSON lines: ``method``, ``seed``, ``split`` (``val``, ``test``, ``fresh_test``),
    ``file_name`` and the 0/1 label vectors as strings of digits), atomically."""
    splits = (("val", sft_stage.VAL_PREDICTIONS), ("test", PREDICTIONS),
              *((("fresh_test", FRESH_PREDICTIONS),) if exp.fresh_test else ()))
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile(Path(path).name, "wb", fileobj=raw) as z, \
                io.TextIOWrapper(z, encoding="utf-8") as f:  # the header names the file, not the temporary one
            for method in (*exp.references, *exp.methods):
                for seed in exp.seeds:
                    folder = run_dir(out, method, seed)
                    for split, name in splits:
                        for row in read_predictions(folder / name):
                            f.write(json.dumps(dict(method=method, seed=seed, split=split, file_name=row["file_name"],
                                                    **{k: "".join(str(int(v)) for v in row[k]) for k in ANSWER_KEYS}))
                                    + "\n")

    return write_atomic(path, write)


def read_exported(path: str | Path) -> dict[tuple[str, int, str], list[dict]]:
    """:func:`export_predictions`'s file as ``{(method, seed, split): prediction rows}``."""
    runs: dict[tuple[str, int, str], list[dict]] = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            row = dict(file_name=r["file_name"], **{k: [int(c) for c in r[k]] for k in ANSWER_KEYS})
            runs.setdefault((r["method"], r["seed"], r["split"]), []).append(row)
    return runs


def paired_from_predictions(path: str | Path, split: str = "test") -> dict[str, list[dict]]:
    """Per method, each seed's clip-by-clip comparison with that seed's SFT (``stats.paired`` with its
    sign test ``p``), recomputed from an exported answers file."""
    runs = read_exported(path)
    seeds = sorted({seed for (_, seed, sp) in runs if sp == split})
    methods = list(dict.fromkeys(m for (m, _, sp) in runs if sp == split and m != "SFT"))
    out = {}
    for m in methods:
        out[m] = [tested(runs[("SFT", s, split)], runs[(m, s, split)]) for s in seeds]
    return out
