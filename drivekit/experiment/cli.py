"""The command line: ``python -m drivekit rl-vs-sft`` (and ``benchmarks/bench_rl_vs_sft.py``, which
names the run directory ``--runs``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from drivekit.algorithms.a2c import A2CSettings
from drivekit.algorithms.grpo import GRPOSettings
from drivekit.core.config import dataclass_overrides, load
from drivekit.core.tracking import BACKENDS
from drivekit.experiment.protocol import run
from drivekit.experiment.results import table, tuning_table
from drivekit.experiment.settings import A2C_SETTINGS, GRPO_SETTINGS, LABEL_FREE_SETTINGS, METHODS, ExperimentSettings


def parser(runs_flag: str = "--out") -> argparse.ArgumentParser:
    """The command line of ``python -m drivekit rl-vs-sft``; ``benchmarks/bench_rl_vs_sft.py`` names the
    run directory ``--runs`` (its ``--out`` is the results file)."""
    defaults = ExperimentSettings()
    p = argparse.ArgumentParser(prog="python -m drivekit rl-vs-sft", description=(
        "SFT, SFT-all, SFT+val and RL on the unlabelled pool over seeds, each seed with its own data draw; "
        "label-grounded settings chosen on validation, label-free ones on a 63-clip selection set; every final "
        "run answers the toy test split and a fresh test split once; F1s, spread, per-seed sign tests against "
        "SFT with Holm's correction, and the diagnostics of label-free RL."))
    p.add_argument("--profile", help="tiny (default) or paper")
    p.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    p.add_argument("--fraction", type=float, default=defaults.fraction, help="labelled share of the toy train part")
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=list(defaults.methods))
    p.add_argument("--steps", type=int, default=defaults.steps, help="RL steps of 8 sampled answers each")
    p.add_argument("--sft-epochs", type=float, help="SFT's epochs over the labelled clips (default: as many clip "
                   "passes as the profile's SFT on the proposal's 1/8, 48 at 1/32)")
    p.add_argument("--val-size", type=int, default=defaults.val_size, help="validation clips per seed")
    p.add_argument("--selection-size", type=int, default=defaults.selection_size, help="the first validation "
                   "clips of each seed that the guarded label-free candidates' settings are chosen on")
    p.add_argument("--fresh-test", type=int, default=defaults.fresh_test, help="clips of the fresh test split every "
                   "final run answers once (tiny profile; 0: none)")
    p.add_argument("--tune-seed", type=int, default=0, help="choose A2C's and GRPO's settings on this seed's "
                   "validation clips, and the guarded label-free candidates' on its selection set, first (default 0)")
    p.add_argument("--no-tune", dest="tune_seed", action="store_const", const=None,
                   help="run with the settings given (--a2c, --grpo, --label-free), choosing none")
    p.add_argument("--a2c", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"A2CSettings overrides on top of {A2C_SETTINGS}, e.g. lr=2e-4")
    p.add_argument("--grpo", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"GRPOSettings overrides on top of {GRPO_SETTINGS}, e.g. kl_coef=0")
    p.add_argument("--label-free", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"settings of the guarded label-free candidates on top of {LABEL_FREE_SETTINGS} (A2C's and "
                   "GRPO's fields both have them), e.g. kl_coef=0.2")
    p.add_argument("--no-sft-all", dest="sft_all", action="store_false",
                   help="leave out SFT-all and SFT+val, the label references (a short run)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (the CPU's threads "
                   "shared among them)")
    p.add_argument(runs_flag, dest="runs", type=Path, help="run directory (default <runs>/rl-vs-sft)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--report-to", choices=BACKENDS, help="watch every run in trackio or TensorBoard (default: "
                   "$DRIVEKIT_REPORT_TO, else none; README, 'Watch a run')")
    return p


def from_arguments(a: argparse.Namespace, echo=print) -> dict:
    """Run the experiment the parsed command line ``a`` asks for; its results."""
    free = dataclass_overrides(a.label_free, A2CSettings, "--label-free")
    dataclass_overrides(a.label_free, GRPOSettings, "--label-free")  # a key both settings have
    exp = ExperimentSettings(seeds=a.seeds, fraction=a.fraction, methods=a.methods, steps=a.steps,
                             sft_all=a.sft_all, sft_epochs=a.sft_epochs, val_size=a.val_size,
                             selection_size=a.selection_size, fresh_test=a.fresh_test,
                             a2c={**A2C_SETTINGS, **dataclass_overrides(a.a2c, A2CSettings, "--a2c")},
                             grpo={**GRPO_SETTINGS, **dataclass_overrides(a.grpo, GRPOSettings, "--grpo")},
                             label_free={**LABEL_FREE_SETTINGS, **free})
    return run(exp, a.runs, load(a.profile), progress=a.progress, echo=echo, report_to=a.report_to,
               tune_seed=a.tune_seed, jobs=a.jobs)


def main(argv: list[str] | None = None) -> None:
    results = from_arguments(parser().parse_args(argv))
    for key in ("tuning", "tuning_label_free"):
        if key in results:
            print(tuning_table(results[key]).to_markdown(index=False))
    for split in ("test", "fresh_test") if "fresh_test" in results.get("splits", {}) else ("test",):
        print(table(results, split).to_markdown())


if __name__ == "__main__":
    main()
