"""Command line: ``python -m drivekit <command> [options]`` (``--help`` on each command)."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {  # command -> (module with main(argv), what it does)
    "generate": ("drivekit.data.synthetic", "write the synthetic BDD-OIA-format dataset"),
    "check-data": ("drivekit.data.check_data", "check a BDD-OIA copy on disk: rows kept/dropped, missing images, labels"),
    "build-vlm": ("drivekit.models.zoo", "build and pretrain the tiny SmolVLM-architecture model"),
    "build-clip": ("drivekit.models.clip", "train the tiny driving-domain CLIP"),
    "sft": ("drivekit.stages.sft_stage", "QLoRA SFT on the toy split, then predictions on its test part"),
    "rl-vs-sft": ("drivekit.experiment", "SFT, SFT-all and RL on the unlabelled pool over seeds, compared clip by clip"),
    "reproduce": ("drivekit.course.reproduce", "run notebooks 00-06 headless and regenerate figures/"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m drivekit <command> [options]\n\ncommands:")
        for name, (_, what) in COMMANDS.items():
            print(f"  {name:<11} {what}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    module, _ = COMMANDS[argv[0]]
    importlib.import_module(module).main(argv[1:])


if __name__ == "__main__":
    main()
