"""``repogen examples OUT``: write the small pipeline exports (text detector and recognizer, orientation
classifier, detector, layout model, segmenter, classifier), each with its deploy config, to try pipelines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError

HELP = "write small Paddle exports with their deploy configs, to try pipelines with"


def add_parser(sub: Any) -> None:
    from repogen.examples.pipeline_exports import TEST_KINDS

    p = sub.add_parser("examples", help=HELP, description=HELP + ". Then: repogen build OUT/* --out REPO")
    p.add_argument("out", metavar="OUT", help="folder to write one sub-folder per export into")
    p.add_argument("--kinds", metavar="KIND[,KIND]", default=",".join(TEST_KINDS),
                   help=f"which exports (default all: {', '.join(TEST_KINDS)})")
    p.add_argument("--json", action="store_true", help="print one JSON object: export kind -> folder")


def run(args: argparse.Namespace) -> int:
    from repogen.examples.pipeline_exports import DESCRIPTIONS, TEST_KINDS, save_models
    from repogen.extras import require_installed

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in TEST_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"--kinds {args.kinds}: choose from {', '.join(TEST_KINDS)}")
    require_installed("paddle", extra="paddle", for_what="saving the example exports")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    taken = [k for k in kinds if (out / k).exists() and not (out / k / "inference.pdiparams").is_file()]
    if taken:
        raise ConfigError(f"{out / taken[0]}: exists and is not an export repogen wrote; choose another OUT")
    saved = save_models(out, kinds)
    if args.json:
        print(json.dumps({k: str(p) for k, p in saved.items()}))
        return 0
    for kind, folder in saved.items():
        print(f"{folder}  {DESCRIPTIONS[kind]}")
    print(f"next: repogen build {' '.join(str(saved[k]) for k in kinds)} --out model_repository")
    return 0
