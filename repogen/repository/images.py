"""Which Triton image serves what a repository holds, decided from the repository's own record (each model
folder's ``repogen.json``: its target and, for plans, the TensorRT that built them), and what the Python-backend
models repogen writes import inside the server (what the images must carry). The harness's container server and
``repogen manifests`` both ask here.

One release for the whole project: docker/Dockerfile.build, Dockerfile.serve-paddle and compose.yaml default
to it too (tests/test_container.py keeps them equal). 25.01 = TensorRT 10.8.0, Triton 2.54.0.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from repogen.errors import ConfigError

TRITON_RELEASE = "25.01"
#: a CPU tritonserver with Paddle, OpenCV, pyclipper and repogen's runtime: every Python-backend model repogen
#: writes loads in it (docker/build-cpu-image.sh builds it; a cluster needs it pushed to its own registry)
CPU_IMAGE = "repogen/tritonserver-cpu:latest"
#: the NGC release plus what every Python-backend model imports (docker/Dockerfile.serve-paddle, built with
#: --build-arg TRITON_RELEASE=<release>): Python-backend models on a GPU host, or beside TensorRT plans
PADDLE_GPU_REPOSITORY = "repogen/tritonserver-paddle"
PADDLE_GPU_IMAGE = f"{PADDLE_GPU_REPOSITORY}:{TRITON_RELEASE}"
# NGC release -> the TensorRT it ships (NVIDIA's frameworks support matrix); a plan loads only in the
# TensorRT that built it, so the serving image is chosen by the plan's TensorRT major.minor.
NGC_TENSORRT = {
    "24.10": "10.5", "24.11": "10.6", "24.12": "10.7", "25.01": "10.8", "25.02": "10.8", "25.03": "10.9",
}
#: targets whose folders are Python-backend models (a model.py run by Triton's Python backend)
PYTHON_TARGETS = ("paddle", "numpy", "python")


def ngc_image(release: str = TRITON_RELEASE) -> str:
    return f"nvcr.io/nvidia/tritonserver:{release}-py3"


def paddle_gpu_image(release: str = TRITON_RELEASE) -> str:
    """docker/Dockerfile.serve-paddle built on the NGC release ``release``."""
    return f"{PADDLE_GPU_REPOSITORY}:{release}"


@dataclass(frozen=True)
class ServingImage:
    image: str
    gpu: bool  # whether what it serves needs a GPU (a TensorRT plan)
    why: str


def _is_python_backend(manifest: dict[str, Any]) -> bool:
    return manifest.get("backend") == "python" or manifest.get("target") in PYTHON_TARGETS


def _python_kinds(manifests: list[dict[str, Any]]) -> str:
    """'paddle target, pipeline stages' : the kinds of Python-backend models, for a reason a person reads."""
    kinds = []
    for m in manifests:
        role, target = m.get("role"), m.get("target")
        kind = ("pipeline stages" if role in ("pre", "post", "system") else
                "partition remainders" if target == "python" else
                "NumPy stand-ins" if target == "numpy" else "paddle target" if target == "paddle" else
                "Python-backend models")
        if kind not in kinds:
            kinds.append(kind)
    return ", ".join(kinds)


def serving_image(manifests: Iterable[dict[str, Any]], gpu_host: bool = False, where: str = "repository") -> ServingImage:
    """The image for these model folders' manifests (repogen.json). Plans need the NGC release whose TensorRT
    built them (and a GPU); Python-backend models need Paddle, OpenCV, pyclipper and repogen's runtime: alone,
    the CPU image unless ``gpu_host``; beside plans, Dockerfile.serve-paddle built on the plans' NGC release."""
    manifests = list(manifests)
    plans: set[str] = set()
    for manifest in manifests:
        if manifest.get("target") == "tensorrt":
            plans.add(str((manifest.get("tensorrt") or {}).get("version") or ""))
    python = [m for m in manifests if _is_python_backend(m)]
    if not plans:
        if gpu_host:
            return ServingImage(PADDLE_GPU_IMAGE, False, "Python-backend models only (Paddle on a GPU host)")
        return ServingImage(CPU_IMAGE, False, "Python-backend models only: no TensorRT plan, no GPU needed")
    majors = {".".join(v.split(".")[:2]) for v in plans if v}
    if len(majors) > 1:
        raise ConfigError(f"{where}: plans from several TensorRT versions ({', '.join(sorted(majors))}) cannot "
                          "share one server; pass --image")
    if majors:
        major = majors.pop()
        releases = sorted(r for r, trt in NGC_TENSORRT.items() if trt == major)
        if not releases:
            raise ConfigError(f"{where}: no known NGC tritonserver release ships TensorRT {major}; pass --image")
        release, plans_why = releases[0], f"TensorRT {major} plans"
    else:
        release, plans_why = TRITON_RELEASE, "TensorRT plans"
    if python:
        # the stock NGC image has TensorRT but neither Paddle, OpenCV, pyclipper nor repogen: the Python models
        # beside the plans would fail to load there
        return ServingImage(paddle_gpu_image(release), True,
                            f"{plans_why} and {len(python)} Python-backend model(s) ({_python_kinds(python)}): "
                            f"NGC {release} plus what the Python models import (docker/Dockerfile.serve-paddle, "
                            f"--build-arg TRITON_RELEASE={release})")
    return ServingImage(ngc_image(release), True, plans_why)


# -- what the generated Python-backend models import ------------------------------------------------------------

#: provided inside Triton by the Python backend itself, not by a package an image installs
BACKEND_MODULES = frozenset({"triton_python_backend_utils"})
_PACKAGE = Path(__file__).resolve().parents[1]  # repogen/, whose modules the stand-ins import at load and run


def _statements(source: str, module: str = "") -> set[tuple[str, str | None]]:
    """(module, name or None) for every import in ``source``, those inside functions included, plus the modules
    ``repogen.extras.require`` is called with (the optional packages repogen imports where it needs them)."""
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")[:-node.level] if module else []
                base = ".".join(package + ([base] if base else []))
            found |= {(base, alias.name) for alias in node.names}
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"):
            found.add((node.args[0].value, None))
    return found


def _repogen_source(module: str) -> Path | None:
    path = _PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def python_model_imports(folders: Iterable[Path]) -> list[str]:
    """The import statements the Python-backend models in these model folders run, at load and at run time, that
    the server's Python must satisfy, one line of Python each (``import cv2``, ``from paddle import inference``).

    Read with ``ast`` from every ``.py`` file in the folders' version folders (model.py and the modules copied
    beside it, which are themselves left out), with repogen's own modules followed through this package (their
    imports inside functions and ``require`` calls included: a stand-in converts and runs its network at run
    time). Standard-library modules and what the Python backend provides are left out."""
    statements: set[tuple[str, str | None]] = set()
    for folder in folders:
        for source in sorted(Path(folder).glob("*/*.py")):
            siblings = {p.stem for p in source.parent.glob("*.py")}
            statements |= {s for s in _statements(source.read_text(encoding="utf-8"))
                           if s[0].split(".")[0] not in siblings}
    todo = sorted(m for m, _ in statements if m.split(".")[0] == "repogen")
    todo += sorted(f"{m}.{n}" for m, n in statements if m.split(".")[0] == "repogen" and n)
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module imports its packages
        path = _repogen_source(module)
        if module in seen or path is None:  # a name from a module, not a module of its own
            continue
        seen.add(module)
        inner = _statements(path.read_text(encoding="utf-8"), module if path.name != "__init__.py" else module + ".x")
        statements |= inner
        todo += [m for m, _ in inner if m.split(".")[0] == "repogen"]
        todo += [f"{m}.{n}" for m, n in inner if m.split(".")[0] == "repogen" and n]
    lines = set()
    for module, name in statements:
        top = module.split(".")[0]
        if not top or top == "__future__" or top in sys.stdlib_module_names or module in BACKEND_MODULES:
            continue
        lines.add(f"import {module}" if name is None else f"from {module} import {name}")
    return sorted(lines)
