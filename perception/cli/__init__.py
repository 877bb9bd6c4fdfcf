"""``perception <command> ...``: one command per verb, each in its own module.

Every command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``,
and imports its heavy dependencies inside ``run`` so that ``perception --help`` stays fast and
optional extras are only needed by the commands that use them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from perception import __version__
from perception.errors import PerceptionError

# command name -> module; literal so that every command is greppable.
COMMANDS: dict[str, str] = {
    "data": "perception.cli.data",
    "demo": "perception.cli.demo",
    "stream": "perception.cli.stream",
    "view": "perception.cli.view",
    "train": "perception.cli.train",
    "val": "perception.cli.val",
    "predict": "perception.cli.predict",
    "compare": "perception.cli.compare",
    "export": "perception.cli.export",
    "benchmark": "perception.cli.benchmark",
    "track": "perception.cli.track",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception",
        description="Driving datasets to trained, exported, real-time 2D/3D detectors and trackers.",
    )
    parser.add_argument("--version", action="version", version=f"perception {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for input errors")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not sys.stderr.isatty():  # a log file or CI: one progress line every 30 s, not every 0.1 s
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except PerceptionError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
