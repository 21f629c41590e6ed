"""``repogen build``: Paddle models -> a checked Triton model repository (repogen.build does the work)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from repogen.cli.options import (add_int8_options, add_serving_options, add_shape_options, add_store_options,
                                 serving_values)
from repogen.errors import ConfigError, RepogenError

HELP = "write a Triton model repository"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("build", help=HELP, description=HELP)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="Paddle models: folder, path prefix (dir/inference) or model file (default: the bundled "
                        "example)")
    p.add_argument("--spec", metavar="FILE.toml", help="repogen.toml listing the models to build")
    p.add_argument("--out", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                   help="model repository folder, or s3://bucket/prefix (built locally, then published: see "
                        "repogen publish)")
    p.add_argument("--name", metavar="NAME", help="Triton model name (one model only)")
    p.add_argument("--version-folder", dest="model_version", type=int, default=None, metavar="N",
                   help="numeric version folder (default 1); a new version is added beside the existing "
                        "ones, which are kept")
    # None (not "auto") so that a target written in --spec is not overridden by an unset option
    p.add_argument("--target", choices=["tensorrt", "paddle", "numpy", "auto"], default=None,
                   help="default auto: tensorrt when TensorRT is installed, else paddle; numpy: the tensorrt "
                        "layout with a CPU stand-in (Python backend, NumPy TensorRT backend) for each plan")
    p.add_argument("--fp16", action="store_true",
                   help="FP16 TensorRT plan (checked at fp16 tolerance); the paddle target stays fp32")
    add_int8_options(p)
    add_shape_options(p)
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
    p.add_argument("--template", metavar="FILE.j2", help="custom config.pbtxt Jinja2 template")
    add_serving_options(p)
    p.add_argument("--no-check", action="store_true", help="skip the NumPy-backend check against Paddle")
    p.add_argument("--deploy-config", metavar="FILE",
                   help="PaddleX inference.yml / PaddleDetection infer_cfg.yml / PaddleSeg deploy.yaml (default: the "
                        "one beside the model): profiles, labels and the _pre/_post/_pipeline models")
    p.add_argument("--pipeline", dest="pipeline_kind", choices=["ocr-det", "ocr-rec", "ocr-cls"], default=None,
                   help="a PaddleOCR 2.x export with no deploy config (one MODEL): build its pipeline with PaddleOCR's "
                        "defaults (text detector, recognizer, direction classifier); folders named *_det_infer, "
                        "*_rec_infer, *_cls_infer are recognised without it. The config used is written beside the "
                        "model")
    p.add_argument("--char-dict", metavar="FILE",
                   help="the character dictionary of the build's PaddleOCR 2.x recognizer (e.g. ppocr_keys_v1.txt; "
                        "default: the .txt file beside the model)")
    p.add_argument("--paddlex-pipeline", metavar="PIPELINE.yaml",
                   help="a PaddleX pipeline config (OCR.yaml, object_detection.yaml, semantic_segmentation.yaml, "
                        "image_classification.yaml) instead of MODEL: its SubModules' model_dir folders are built with "
                        "the settings the config gives them, so the pipeline answers as paddlex.create_pipeline does")
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


def build_options(args: argparse.Namespace) -> Any:
    """The parsed arguments as repogen.build.spec.BuildOptions."""
    from repogen.build.spec import BuildOptions

    return BuildOptions(
        models=list(args.models), spec_file=args.spec, name=args.name, version=args.model_version,
        target=args.target, fp16=args.fp16, int8=args.int8, calib_data=args.calib_data,
        calib_method=args.calib_method, shape=list(args.shape or []), min_shapes=list(args.min_shapes or []),
        opt_shapes=list(args.opt_shapes or []), max_shapes=list(args.max_shapes or []),
        max_batch_size=args.max_batch_size, instances=args.instances, template=args.template,
        serving=serving_values(args), input_names=args.input_names, output_names=args.output_names,
        check=not args.no_check, partition=args.partition, deploy_config=args.deploy_config,
        pipeline=not args.no_pipeline, pipeline_kind=args.pipeline_kind, char_dict=args.char_dict,
        paddlex_pipeline=args.paddlex_pipeline)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `repogen --help` stays fast, and an extra that is not installed fails only
    # the command that needs it
    from repogen.build.flow import build_repository
    from repogen.build.spec import specs_from_options
    from repogen.cli.progress import BuildProgress
    from repogen.cli.publish import printer
    from repogen.storage.uri import is_remote, parse

    try:
        specs = specs_from_options(build_options(args))
        progress = BuildProgress(not args.json)
        if is_remote(args.out):  # object storage: build into a local staging folder, then publish
            if args.add_plan:
                raise ConfigError(f"--add-plan works on a local repository folder, not {args.out}: add the plan "
                                  "locally, then repogen publish it")
            from repogen.storage.commands import build_to_store

            report = build_to_store(lambda out: build_repository(specs, out, force=args.force, progress=progress),
                                    parse(args.out, args.endpoint_url), prune=args.prune, log=printer(args.json))
        else:
            report = build_repository(specs, Path(args.out), force=args.force, progress=progress,
                                      add_plan=args.add_plan)
    except RepogenError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "kind": type(exc).__name__}))
            print(f"repogen build: error: {exc}", file=sys.stderr)
            return 2
        raise
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print_summary(report)
    return 0


def print_summary(report: Any) -> None:
    """Every folder written, the models asked for and what was built for them (parts, pipeline stages)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Triton model repository {report.out}")
    for col in ("model", "role", "ver", "target", "precision", "batch", "check (rel L2)", "files", "s"):
        table.add_column(col, no_wrap=True)
    for m in report.models:
        check = m.check["status"]
        if m.check.get("outputs"):
            check += f" {max(o['rel_l2'] for o in m.check['outputs'].values()):.1e}"
        role = m.role if not m.part_of else f"{m.role} of {m.part_of}"
        table.add_row(m.name, role, str(m.version), m.target, m.precision, str(m.max_batch_size), check,
                      str(len(m.files)), f"{m.seconds:.2f}")
    # piped or redirected: full rows (rich would squeeze the table into 80 columns and cut names)
    Console(width=None if sys.stdout.isatty() else 1000).print(table)
