"""Optional packages, imported only by the commands that use them.

The base install (numpy, protobuf, jinja2, tritonclient, rich) reads, inspects, converts and builds; the extras
in pyproject.toml add the rest. A module that needs an optional package calls :func:`require` where the need
arises instead of importing it at its top, so that ``repogen validate`` does not need OpenCV for a repository
without pipelines, and a missing package is one line naming the extra that installs it (a RepogenError: the
CLI prints it and exits 2) instead of a ModuleNotFoundError traceback.

Not here: ``repogen/pipelines/ops.py`` and ``repogen/pipelines/served/`` are copied into model folders and run
inside Triton without repogen, so they import OpenCV and pyclipper directly; their callers in repogen call
``require`` first.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from repogen.errors import RepogenError

#: import name -> the name a user knows it by (its pip distribution where the two differ)
PACKAGES = {
    "cv2": "OpenCV (opencv-python-headless)",
    "pyclipper": "pyclipper",
    "shapely": "shapely",
    "yaml": "PyYAML",
    "boto3": "boto3",
    "botocore": "botocore (boto3)",
    "kubernetes": "the kubernetes client",
    "kserve": "kserve",
    "pydantic": "pydantic",
    "paddle": "PaddlePaddle",
    "starlette": "Starlette",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
}


#: extra -> what it is for, the default start of the message when a caller names nothing more precise
EXTRAS = {
    "paddle": "the Paddle reference (check, build's numerical check)",
    "serve": "serving on this machine (validate, serve)",
    "pipelines": "running pre/post-processing pipelines",
    "s3": "reading and writing s3:// repositories",
    "deploy": "rendering Kubernetes manifests",
    "gateway": "PaddleX's HTTP routes in front of Triton (repogen gateway)",
}


class MissingExtraError(RepogenError):
    """An optional package is not installed (or cannot be imported); the message names the extra to install."""

    def __init__(self, module: str, extra: str, for_what: str, failure: str | None = None):
        top = module.split(".")[0]
        name = PACKAGES.get(top, top)
        install = f'pip install "repogen[{extra}]"'
        if failure is None:
            text = f"{for_what} needs {name}, which is not installed: {install}"
        else:  # installed but broken (a missing shared library, a package built for another numpy)
            text = f"{for_what} needs {name}, which is installed but cannot be imported ({failure}): {install}"
        super().__init__(text)
        self.module = module
        self.extra = extra


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _interrupted(exc: BaseException) -> bool:
    seen = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def require(module: str, *, extra: str, for_what: str | None = None) -> ModuleType:
    """``import module`` (dotted names too), or MissingExtraError naming ``extra``.

    ``for_what`` says what needs it, as the start of a sentence ("validating pipeline models"); by default
    what the extra is for."""
    for_what = for_what or EXTRAS[extra]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # the package itself is absent (not one of its own imports, which is a broken install)
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise MissingExtraError(module, extra, for_what) from None
        raise MissingExtraError(module, extra, for_what, _first_line(exc)) from None
    except ImportError as exc:
        if _interrupted(exc):  # Paddle turns a Ctrl-C during its import into "Can not import paddle core"
            raise KeyboardInterrupt from None
        raise MissingExtraError(module, extra, for_what, _first_line(exc)) from None


def require_installed(module: str, *, extra: str, for_what: str | None = None) -> None:
    """Like :func:`require` without importing: for packages a child process or Triton imports, and for slow
    imports that only need to exist before work starts (Paddle takes seconds)."""
    if not installed(module):
        raise MissingExtraError(module, extra, for_what or EXTRAS[extra])


def installed(module: str) -> bool:
    """Whether the top-level package of ``module`` can be found (nothing is imported)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
