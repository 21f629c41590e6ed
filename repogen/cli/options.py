"""Argument definitions that several commands share, and the value types argparse checks them with."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from repogen.repository.serving_options import ALLOCATION_STRATEGIES, CLI_DESTS
from repogen.storage.uri import ENDPOINT_ENV


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return parse


def port(text: str) -> int:
    value = at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def comma_list(text: str | None) -> list[str] | None:
    """"a, b,,c" -> ["a", "b", "c"]; None or empty -> None."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    return items or None


def add_shape_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", default=[], metavar="NAME:DIMS",
                   help="shorthand for equal min/opt/max shapes, e.g. x:1x3x224x224 (repeatable)")
    p.add_argument("--min-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile minimum shapes, trtexec style; repeat the option for several profiles")
    p.add_argument("--opt-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile shapes TensorRT tunes for (default: the max shapes)")
    p.add_argument("--max-shapes", action="append", default=[], metavar="NAME:DIMS[,NAME:DIMS]",
                   help="profile maximum shapes; a dynamic batch dim left out ranges up to the max batch")


def add_int8_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--int8", action="store_true",
                   help="post-training INT8: Q/DQ before conv/matmul inputs, scales from --calib-data")
    p.add_argument("--calib-data", metavar="DIR|FILE.npz",
                   help="calibration samples: .npz with one array per input (or a folder of them); the last "
                        "20%% are held out to measure the accuracy change")
    p.add_argument("--calib-method", choices=["max", "percentile", "entropy"], default="max",
                   help="how activation ranges are taken from the calibration samples (default max)")


def add_container_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="IMAGE",
                   help="tritonserver image for --server docker (default: chosen from the models' repogen.json: the "
                        "NGC release of a plan's TensorRT, or repogen/tritonserver-cpu for Python-backend models on "
                        "a host without a GPU)")
    p.add_argument("--engine", choices=["docker", "podman"],
                   help="container engine for --server docker (default: $REPOGEN_CONTAINER_ENGINE, then podman, "
                        "then docker)")


def add_store_options(p: argparse.ArgumentParser, prune: bool = True) -> None:
    p.add_argument("--endpoint-url", default=None, metavar="URL",
                   help=f"S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: ${ENDPOINT_ENV}, else AWS)")
    if prune:
        p.add_argument("--prune", type=int, default=None, metavar="N",
                       help="after publishing, delete remote versions beyond the newest N (default: delete nothing)")


def add_serving_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-dynamic-batching", action="store_true",
                   help="leave dynamic_batching out (default: on for every model that can batch)")
    p.add_argument("--cpu-threads", type=int, metavar="N",
                   help="Paddle math threads per instance of the paddle target (default: cores // instances, when "
                        "the instance starts)")
    p.add_argument("--execution-context-allocation-strategy", choices=sorted(ALLOCATION_STRATEGIES),
                   help="TensorRT backend parameter")
    p.add_argument("--version-policy", metavar="all|latest:N|specific:V,V",
                   help="which version folders Triton serves (default: Triton's latest:1)")
    p.add_argument("--response-cache", action="store_true", help="response_cache { enable: true }")
    p.add_argument("--instance-memory-mb", type=int, metavar="MB",
                   help="memory one model instance may use: sets the pipelines' per-request pixel budget (default: "
                        "half this machine's memory / instances)")
    p.add_argument("--cuda-graphs", action="store_true", help="CUDA graphs for the plan (opt shapes)")
    p.add_argument("--cuda-graph-batch-sizes", metavar="B,B", help="one CUDA graph per batch size (implies "
                                                                   "--cuda-graphs)")


def serving_values(args: argparse.Namespace) -> dict[str, Any]:
    """The serving options the user gave (dest -> value), for repogen.repository.serving_options.apply_cli."""
    return {dest: getattr(args, dest) for dest in CLI_DESTS if getattr(args, dest, None)}
