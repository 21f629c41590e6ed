"""Which Triton image serves what a repository holds, decided from the repository's own record (each model
folder's ``repogen.json``: its target and, for plans, the TensorRT that built them). The harness's container
server and ``repogen manifests`` both ask here.

One release for the whole project: docker/Dockerfile.build, Dockerfile.serve-paddle and compose.yaml default
to it too (tests/test_container.py keeps them equal). 25.01 = TensorRT 10.8.0, Triton 2.54.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from repogen.errors import ConfigError

TRITON_RELEASE = "25.01"
#: a CPU tritonserver with Paddle, OpenCV, pyclipper and repogen's runtime: every Python-backend model repogen
#: writes loads in it (docker/build-cpu-image.sh builds it; a cluster needs it pushed to its own registry)
CPU_IMAGE = "repogen/tritonserver-cpu:latest"
#: the NGC release plus the same Python packages, for Python-backend models on a GPU host (Dockerfile.serve-paddle)
PADDLE_GPU_IMAGE = f"repogen/tritonserver-paddle:{TRITON_RELEASE}"
# NGC release -> the TensorRT it ships (NVIDIA's frameworks support matrix); a plan loads only in the
# TensorRT that built it, so the serving image is chosen by the plan's TensorRT major.minor.
NGC_TENSORRT = {
    "24.10": "10.5", "24.11": "10.6", "24.12": "10.7", "25.01": "10.8", "25.02": "10.8", "25.03": "10.9",
}


def ngc_image(release: str = TRITON_RELEASE) -> str:
    return f"nvcr.io/nvidia/tritonserver:{release}-py3"


@dataclass(frozen=True)
class ServingImage:
    image: str
    gpu: bool  # whether what it serves needs a GPU (a TensorRT plan)
    why: str


def serving_image(manifests: Iterable[dict[str, Any]], gpu_host: bool = False, where: str = "repository") -> ServingImage:
    """The image for these model folders' manifests (repogen.json). Plans need the NGC release whose TensorRT
    built them (and a GPU); Python-backend models alone need Paddle and repogen's runtime, on CPU unless
    ``gpu_host``."""
    plans: set[str] = set()
    for manifest in manifests:
        if manifest.get("target") == "tensorrt":
            plans.add(str((manifest.get("tensorrt") or {}).get("version") or ""))
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
        return ServingImage(ngc_image(releases[0]), True, f"TensorRT {major} plans")
    return ServingImage(ngc_image(), True, "TensorRT plans")
