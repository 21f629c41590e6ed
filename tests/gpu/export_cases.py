"""Gather the Paddle programs the CPU test suite saved (per-op cases and zoo models) into a folder that
tests/gpu/builder_check.py reads on a GPU machine with no Paddle.

Each exported model gets a case.json: its name, the model file, and concrete input shapes (dynamic dims
filled: batch 2, image height/width 64, any other dim 8) at which the two backends are compared.

Usage (after the CPU suite has run): python tests/gpu/export_cases.py OUT_DIR [--skip resnet50,...]
                                      [--max-mb 40] [--max-model-mb N] [--only GROUP,...] [--names NAME,...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import zoo  # noqa: E402
from repogen.errors import RepogenError  # noqa: E402
from repogen.paddle import load_model  # noqa: E402

FORMATS = ("pir", "legacy", "paddle2", "pir-static")  # fluid formats hold the same program as paddle2


def concrete(shape: tuple[int, ...]) -> list[int]:
    dims = []
    for i, d in enumerate(shape):
        if d >= 0:
            dims.append(d)
        elif i == 0:
            dims.append(2)
        elif len(shape) == 4 and i >= 2:
            dims.append(64)
        else:
            dims.append(8)
    return dims


def case_shapes(group: str, case: str) -> dict[str, list[int]] | None:
    """The first run shapes of a per-op case (tests/support/opcases.py Case), found through the test module that
    saves under this tag: dims such as an RNN state's batch or temporal_shift's segments must agree."""
    import importlib.util

    for path in sorted((Path(__file__).resolve().parents[1]).glob("test_*.py")):
        if f'"{group}"' not in path.read_text():
            continue
        spec = importlib.util.spec_from_file_location(f"_cases_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        cases = getattr(mod, "CASES", None)
        found = cases.get(case) if isinstance(cases, dict) else None
        if found is not None and hasattr(found, "runs"):
            return {k: list(v) for k, v in found.runs[0].items()}
    return None


def saved_models(root: Path) -> list[tuple[str, Path]]:
    """(case name, folder) for the newest save of each model folder under the cache root."""
    newest: dict[str, tuple[float, Path]] = {}
    for group in root.iterdir():
        if not group.is_dir() or group.name.startswith("tmp"):
            continue
        for fmt_dir in group.iterdir():
            if fmt_dir.name not in FORMATS:
                continue
            for model in [fmt_dir, *fmt_dir.iterdir()]:
                if model.is_dir() and (any(model.glob("*.json")) or any(model.glob("*.pdmodel"))):
                    key = f"{group.name.split('-')[0]}/{fmt_dir.name}/{model.name}"
                    stamp = model.stat().st_mtime
                    if key not in newest or stamp > newest[key][0]:
                        newest[key] = (stamp, model)
    return sorted((k, p) for k, (_, p) in newest.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--skip", default="resnet50")
    ap.add_argument("--only", default="")
    ap.add_argument("--max-mb", type=float, default=40.0, help="total size carried to the GPU machine")
    ap.add_argument("--max-model-mb", type=float, default=1e9, help="leave out models larger than this")
    ap.add_argument("--names", default="", help="only these model names (last path part)")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    total = 0
    for name, folder in saved_models(zoo.cache_root()):
        group = name.split("/")[0]
        names = set(filter(None, args.names.split(",")))
        if group in skip or (only and group not in only) or (names and name.split("/")[-1] not in names):
            continue
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        if (total + size) / 2**20 > args.max_mb or size / 2**20 > args.max_model_mb:
            print(f"left out (size): {name}")
            continue
        try:
            graph = load_model(folder)
        except RepogenError as exc:
            print(f"left out (unreadable): {name}: {exc}")
            continue
        dest = args.out / name.replace("/", "__")
        shutil.copytree(folder, dest, dirs_exist_ok=True)
        model_file = graph.source.model_file.name
        known = case_shapes(group, name.split("/")[-1])
        shapes = {n: (known or {}).get(n) or concrete(graph.value(n).shape) for n in graph.inputs}
        (dest / "case.json").write_text(json.dumps({"name": name, "model": model_file, "shapes": shapes}))
        total += size
    print(f"exported {total / 2**20:.1f} MiB to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
