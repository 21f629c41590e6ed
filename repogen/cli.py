"""The ``repogen`` command line: one subcommand per job, each implemented in the module named for it."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Callable

from repogen import __version__
from repogen.errors import RepogenError
from repogen.deploy.commands import add_manifests_parser
from repogen.storage.commands import add_publish_parser, add_store_options, with_endpoint

DESCRIPTION = """\
Turn PaddlePaddle inference models into checked Triton Inference Server model repositories.

  repogen build --out model_repository          # the bundled example, or: repogen build MODEL --out DIR
  repogen validate model_repository             # serve it on a real Triton, compare answers with Paddle
  repogen serve model_repository                # serve it until Ctrl-C"""

EPILOG = """\
Models are folders, path prefixes (dir/inference) or model files of any Paddle format (Fluid __model__,
Paddle 2.x .pdmodel, Paddle 3 PIR .json). Bad input is one error line and exit code 2.
Run 'repogen COMMAND --help' for the options of a command."""

# subcommand -> "module:function"; each function takes the parsed args and returns an exit code.
COMMANDS = {
    "inspect": "repogen.paddle.inspect:run",
    "ops": "repogen.trt.ops_cmd:run",
    "check": "repogen.trt.check:run",
    "build": "repogen.triton.build:run",
    "validate": "repogen.harness.validate:run",
    "serve": "repogen.harness.serve:run",
    "publish": "repogen.storage.commands:run_publish",
    "manifests": "repogen.deploy.commands:run_manifests",
}


def _add_shape_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", default=[], metavar="NAME:DIMS",
                   help="shorthand for equal min/opt/max shapes, e.g. x:1x3x224x224 (repeatable)")
    p.add_argument("--min-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile minimum shapes, trtexec style; repeat the option for several profiles")
    p.add_argument("--opt-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile shapes TensorRT tunes for (default: the max shapes)")
    p.add_argument("--max-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile maximum shapes; a dynamic batch dim left out ranges up to the max batch")


def _add_int8_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int8", action="store_true",
                   help="post-training INT8: Q/DQ before conv/matmul inputs, scales from --calib-data")
    p.add_argument("--calib-data", metavar="DIR|FILE.npz",
                   help="calibration samples: .npz with one array per input (or a folder of them); the last "
                        "20%% are held out to measure the accuracy change")
    p.add_argument("--calib-method", choices=["max", "percentile", "entropy"], default="max",
                   help="how activation ranges are taken from the calibration samples (default max)")


def _add_container_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="tritonserver image for --server docker (default: chosen from the models' "
                                    "repogen.json: the NGC release of a plan's TensorRT, or repogen/tritonserver-cpu "
                                    "for Python-backend models on a host without a GPU)")
    p.add_argument("--engine", choices=["docker", "podman"],
                   help="container engine for --server docker (default: $REPOGEN_CONTAINER_ENGINE, then podman, "
                        "then docker)")


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return parse


def _port(text: str) -> int:
    value = _at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repogen", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"repogen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="describe a Paddle inference model")
    p.add_argument("model", help="model directory, path prefix, or model file")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("ops", help="list every op name that has a converter")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--refused", action="store_true",
                   help="list the op attribute values that still do not convert, and why")

    p = sub.add_parser("check", help="convert with the NumPy TensorRT backend and compare with Paddle")
    p.add_argument("model", help="model directory, path prefix (dir/inference), or model file")
    _add_shape_options(p)
    p.add_argument("--inputs", help="npz with one array per input name (default: random inputs)")
    p.add_argument("--reference", help="npz with one array per output name (default: run Paddle Inference)")
    p.add_argument("--fp16", action="store_true",
                   help="convert with FP16 layers and compare at fp16 tolerance (relative error <= 1e-2)")
    _add_int8_options(p)
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--partition", action="store_true",
                   help="check what a partitioned build deploys: TensorRT regions (NumPy backend) and the Python "
                        "remainder, chained, at the first profile's opt shapes; layer limits use its max shapes")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("build", help="write a Triton model repository")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="Paddle models: folder, path prefix (dir/inference) or model file (default: the bundled "
                        "example)")
    p.add_argument("--spec", help="repogen.toml listing the models to build")
    p.add_argument("--out", required=True, help="model repository folder, or s3://bucket/prefix (built locally, "
                                                "then published: see repogen publish)")
    p.add_argument("--name", help="Triton model name (one model only)")
    p.add_argument("--version-folder", dest="model_version", type=int, default=None,
                   help="numeric version folder (default 1); a new version is added beside the existing "
                        "ones, which are kept")
    # None (not "auto") so that a target written in --spec is not overridden by an unset option
    p.add_argument("--target", choices=["tensorrt", "paddle", "numpy", "auto"], default=None,
                   help="default auto: tensorrt when TensorRT is installed, else paddle; numpy: the tensorrt "
                        "layout with a CPU stand-in (Python backend, NumPy TensorRT backend) for each plan")
    p.add_argument("--fp16", action="store_true",
                   help="FP16 TensorRT plan (checked at relative error <= 1e-2); the paddle target stays fp32")
    _add_int8_options(p)
    _add_shape_options(p)
    p.add_argument("--max-batch-size", type=int, metavar="N",
                   help="Triton max_batch_size. Default: when every input's first dim is dynamic, the profiles' "
                        "max batch (8 when no --max-shapes give one); 0 when the batch dim is fixed")
    p.add_argument("--instances", type=int, metavar="N",
                   help="model instances Triton runs in parallel (one instance group; default 1)")
    p.add_argument("--input-names", metavar="OLD:NEW[,OLD:NEW]",
                   help="rename inputs in the Triton model (config, plan, manifest); shape options use the new "
                        "names")
    p.add_argument("--output-names", metavar="OLD:NEW[,OLD:NEW]",
                   help="rename outputs, e.g. linear_0.tmp_1:scores (Paddle's internal names otherwise)")
    p.add_argument("--template", help="custom config.pbtxt Jinja2 template")
    from repogen.triton.serving_options import add_cli_args  # serving settings (batching, threads, policies)

    add_cli_args(p)
    p.add_argument("--no-check", action="store_true", help="skip the NumPy-backend check against Paddle")
    p.add_argument("--deploy-config", metavar="FILE",
                   help="PaddleX inference.yml / PaddleDetection infer_cfg.yml / PaddleSeg deploy.yaml (default: the "
                        "one beside the model): profiles, labels and the _pre/_post/_pipeline models")
    p.add_argument("--no-pipeline", action="store_true",
                   help="build the model alone: no pre/post-processing models from its deploy config")
    p.add_argument("--partition", action=argparse.BooleanOptionalAction, default=None,
                   help="ops TensorRT cannot run go to Python-backend models, joined with the TensorRT regions in "
                        "an ensemble under the model's name (default: on for --target auto); --no-partition: "
                        "refuse such models instead")
    p.add_argument("--force", action="store_true",
                   help="rebuild a model version that already exists in --out (only folders repogen built are "
                        "ever replaced; other versions are kept)")
    p.add_argument("--add-plan", action="store_true",
                   help="add the plan built on this machine's GPU to the existing TensorRT model folder in --out "
                        "(model_<cc>.plan beside model.plan, cc_model_filenames in config.pbtxt); --force replaces "
                        "a plan for the same compute capability")
    add_store_options(p)  # --endpoint-url, --prune: used when --out is s3://
    p.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout (progress and warnings stay on stderr)")

    p = sub.add_parser("validate", help="serve a repository with Triton and validate it against Paddle")
    p.add_argument("repo", help="model repository folder (what repogen build --out wrote)")
    add_store_options(p, prune=False)  # --endpoint-url for an s3:// repo
    p.add_argument("--models", help="comma-separated model names (default: all)")
    p.add_argument("--server", default="local",
                   help="local (the bundled CPU tritonserver), docker, or the HTTP URL of a running server "
                        "(http://HOST:PORT)")
    p.add_argument("--grpc-url", metavar="grpc://HOST:PORT",
                   help="gRPC endpoint of the --server URL (default: its HTTP port + 1, Triton's convention)")
    _add_container_options(p)
    p.add_argument("--tritonserver", help="tritonserver binary for --server local")
    p.add_argument("--protocol", default="http,grpc",
                   help="protocols whose answers are compared with Paddle: http, grpc or both (default both)")
    p.add_argument("--inputs", help="npz with one array per input name (default: random inputs of the profile "
                                    "shapes)")
    p.add_argument("--concurrency", default="1,4",
                   help="comma-separated numbers of concurrent clients for the timing runs (default 1,4)")
    p.add_argument("--requests", type=_at_least(1), default=200,
                   help="latency samples the stable windows must hold per concurrency level (default 200)")
    p.add_argument("--window-ms", type=_at_least(1), default=500, help="measurement window (default 500 ms)")
    p.add_argument("--stability-pct", type=float, default=10.0,
                   help="the last 3 windows' throughput and p50 must be within this %% of their average")
    p.add_argument("--max-windows", type=_at_least(3), default=10,
                   help="give up on stability after this many windows (default 10)")
    p.add_argument("--level-budget-s", type=float, default=60.0, metavar="SECONDS",
                   help="longest the timing of one concurrency level may take; a level whose windows, sized "
                        "from the single-request latency, need longer is reported as too slow to measure "
                        "(default 60)")
    p.add_argument("--shm", action="store_true", help="also time gRPC with system shared memory")
    p.add_argument("--load", action="store_true", help="with --server URL: load the models on that server "
                   "(explicit model control; reloads a model that is already serving). Default: only check "
                   "that they are ready")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")

    add_publish_parser(sub)
    add_manifests_parser(sub)

    p = sub.add_parser("serve", help="start Triton on a repository until Ctrl-C")
    p.add_argument("repo", help="model repository folder (what repogen build --out wrote)")
    add_store_options(p, prune=False)  # --endpoint-url for an s3:// repo
    p.add_argument("--server", default="local", choices=["docker", "local"],
                   help="local: the tritonserver bundled with nvidia-pytriton (CPU, pip install "
                        "'repogen[serve]'); docker: a Triton container (docs/docker.md)")
    _add_container_options(p)
    p.add_argument("--tritonserver", help="tritonserver binary for --server local (default: the bundled one)")
    p.add_argument("--http-port", type=_port, metavar="PORT", help="HTTP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--grpc-port", type=_port, metavar="PORT", help="gRPC port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-strict-readiness", action="store_true",
                   help="let /v2/health/ready answer 200 as soon as the server responds (default: only once every "
                        "model is loaded, as probes and scripts that wait for readiness expect)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # paddle's import-time ccache notice says nothing about the user's model
    warnings.filterwarnings("ignore", message="No ccache found")
    module_name, func_name = COMMANDS[args.command].split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        if getattr(args, "endpoint_url", None) and args.command in ("validate", "serve"):
            args.repo = with_endpoint(args.repo, args.endpoint_url)  # s3://http://host:port/... for Triton
        rc = int(func(args) or 0)
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
