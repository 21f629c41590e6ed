"""The ``repogen`` command line: the only code that reads arguments and prints.

One module per command (``repogen/cli/<command>.py``), each with ``add_parser(sub)`` and ``run(args) -> exit
code``; the work itself is done by the library packages below, which never see ``args``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from repogen import __version__
from repogen.errors import RepogenError

DESCRIPTION = """\
Turn PaddlePaddle inference models into checked Triton Inference Server model repositories.

  repogen build --out model_repository          # the bundled example, or: repogen build MODEL --out DIR
  repogen validate model_repository             # serve it on a real Triton, compare answers with Paddle
  repogen serve model_repository                # serve it until Ctrl-C"""

EPILOG = """\
Models are folders, path prefixes (dir/inference) or model files of any Paddle format (Fluid __model__,
Paddle 2.x .pdmodel, Paddle 3 PIR .json). Bad input is one error line and exit code 2.
Run 'repogen COMMAND --help' for the options of a command."""

#: the commands, in the order --help lists them; each is the module repogen.cli.<name>
COMMANDS = ("inspect", "ops", "check", "build", "validate", "publish", "manifests", "serve", "gateway", "examples")


def _command(name: str):
    return importlib.import_module(f"repogen.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repogen", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"repogen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        _command(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # paddle's import-time ccache notice says nothing about the user's model
    warnings.filterwarnings("ignore", message="No ccache found")
    try:
        if getattr(args, "endpoint_url", None) and args.command in ("validate", "serve"):
            from repogen.storage.commands import with_endpoint

            args.repo = with_endpoint(args.repo, args.endpoint_url)  # s3://http://host:port/... for Triton
        rc = int(_command(args.command).run(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at interpreter exit
        return rc
    except RepogenError as exc:
        print(f"repogen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"repogen {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        # sizes the user asked for (a --shape of 10^11 elements...) that this machine cannot hold
        print(f"repogen {args.command}: error: out of memory: the requested shapes or files do not fit in "
              "this machine's memory", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `repogen inspect --json | head`: the reader left. Exit 1 without a traceback, as rich does for the
        # tables; stdout goes to /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
