"""Command line: ``python -m drivekit [--debug] <command> [options]`` (``--help`` on each command).

An error ends the command with one line on stderr, ``drivekit <command>: <what went wrong>``, and exit
code 1 (a usage error: 2, as argparse does); ``--debug``, anywhere on the line, shows the traceback instead.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {  # command -> (module with main(argv), what it does)
    "generate": ("drivekit.data.synthetic", "write the synthetic BDD-OIA-format dataset"),
    "check-data": ("drivekit.data.check_data", "check a BDD-OIA copy on disk: labels, rows kept/dropped, images (1280x720 JPEGs)"),
    "convert-fiftyone": ("drivekit.data.fiftyone", "convert BDD-OIA's public FiftyOne copy into the official layout"),
    "build-vlm": ("drivekit.models.zoo", "build and pretrain the tiny SmolVLM-architecture model"),
    "build-clip": ("drivekit.models.clip", "train the tiny driving-domain CLIP"),
    "sft": ("drivekit.stages.sft_stage", "QLoRA SFT on the toy split, then predictions on its test part"),
    "rl-vs-sft": ("drivekit.experiment", "SFT, SFT-all and RL on the unlabelled pool over seeds, compared clip by clip"),
    "reproduce": ("drivekit.course.reproduce", "run notebooks 00-06 headless and regenerate figures/"),
}
DEBUG = "--debug"


def one_line(err: BaseException) -> str:
    """``err`` as one line: its type (unless its message already says what it is) and its message."""
    message = " ".join(str(err).split())
    name = type(err).__name__
    if not message:
        return name
    return message if isinstance(err, (ValueError, FileNotFoundError)) else f"{name}: {message}"


def usage() -> str:
    lines = [f"usage: python -m drivekit [{DEBUG}] <command> [options]", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    lines += ["", f"{DEBUG}: on an error, show the traceback instead of one line"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG in argv
    argv = [a for a in argv if a != DEBUG]
    if not argv or argv[0] not in COMMANDS:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(usage(), file=sys.stdout if asked or not argv else sys.stderr)
        if argv and not asked:
            print(f"drivekit: unknown command {argv[0]!r}", file=sys.stderr)
        sys.exit(0 if asked else 2)
    command = argv[0]
    try:
        importlib.import_module(COMMANDS[command][0]).main(argv[1:])
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"drivekit {command}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # SystemExit (argparse, a command's own exit) passes through
        if debug:
            raise
        print(f"drivekit {command}: {one_line(err)} (run with {DEBUG} for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
