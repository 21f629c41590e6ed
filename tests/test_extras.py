"""First use without a dead end: every command works, or fails with one line naming the extra to install.

Fast checks: ``repogen.extras.require`` itself, no optional package imported behind its back, every extra that
can reach the Triton Python-backend stub keeping numpy below 2, and ``validate`` without OpenCV.

The slow check (marked ``slow``: eight minutes of one worker, so it runs with ``REPOGEN_SLOW_TESTS=1``) installs
the base package and each extra ALONE into fresh venvs, exactly as the README says (``pip install -e ".[EXTRA]"``
from this checkout), and walks the README's path in each: --help, inspect, check, build, validate, a pipeline
export, publish to a local S3 server, manifests, ``repogen gateway`` in front of a Triton this test starts. It then adds the pipelines extra to the serve venv (the order that
once pulled numpy 2 under the stub) and validates a pipeline repository there. Its time is printed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import repogen
from repogen.errors import RepogenError, ServerError
from repogen.extras import PACKAGES, MissingExtraError, require, require_installed

ROOT = Path(repogen.__file__).resolve().parents[1]
EXAMPLE = ROOT / "repogen" / "examples" / "tiny_cnn"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the base install carries tomli on 3.10
    import tomli as tomllib

#: import names of the packages only extras install (tensorrt has its own detection in repogen.trt.engine)
OPTIONAL = set(PACKAGES) | {"paddlex"}


# -- require ---------------------------------------------------------------------------------------------------------

def _package(tmp_path: Path, name: str, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_require_returns_the_module_it_imports():
    import numpy

    assert require("numpy", extra="paddle") is numpy
    import json as json_module

    assert require("json.decoder", extra="s3").JSONDecodeError is json_module.JSONDecodeError


def test_a_missing_package_is_one_line_naming_the_extra():
    with pytest.raises(MissingExtraError) as info:
        require("repogen_absent_pkg.sub", extra="pipelines", for_what="validating pipeline models")
    assert isinstance(info.value, RepogenError)  # the CLI prints it as one line and exits 2
    assert str(info.value) == ('validating pipeline models needs repogen_absent_pkg, which is not installed: '
                               'pip install "repogen[pipelines]"')
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback


def test_without_a_purpose_the_extra_says_what_it_is_for(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ModuleNotFoundError now
    with pytest.raises(MissingExtraError) as info:
        require("yaml", extra="deploy")
    # the package goes by the name users install it as
    assert str(info.value) == ('rendering Kubernetes manifests needs PyYAML, which is not installed: '
                               'pip install "repogen[deploy]"')


def test_an_installed_but_broken_package_is_not_called_missing(tmp_path, monkeypatch):
    # a package whose own import fails (a missing shared library, a dependency of its own that is absent)
    _package(tmp_path, "repogen_broken_pkg", "raise ImportError('libGL.so.1: cannot open shared object file')\n",
             monkeypatch)
    _package(tmp_path, "repogen_needs_dep", "import repogen_absent_dependency\n", monkeypatch)
    with pytest.raises(MissingExtraError) as info:
        require("repogen_broken_pkg", extra="pipelines")
    assert "installed but cannot be imported (ImportError: libGL.so.1: cannot open shared object file)" in str(info.value)
    with pytest.raises(MissingExtraError) as info:
        require("repogen_needs_dep", extra="pipelines")
    assert "installed but cannot be imported (ModuleNotFoundError: No module named 'repogen_absent_dependency')" \
        in str(info.value)
    assert str(info.value).endswith('pip install "repogen[pipelines]"') and "\n" not in str(info.value)


def test_an_interrupted_import_stays_an_interrupt(tmp_path, monkeypatch):
    """Paddle turns a Ctrl-C inside its import into ImportError("Can not import paddle core"): not a missing
    package, the user's interrupt (exit 130)."""
    _package(tmp_path, "repogen_interrupted_pkg", "try:\n    raise KeyboardInterrupt\nexcept KeyboardInterrupt:\n"
                                                  "    raise ImportError('Can not import paddle core')\n", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        require("repogen_interrupted_pkg", extra="paddle")


def test_require_installed_looks_without_importing():
    require_installed("numpy", extra="paddle")
    with pytest.raises(MissingExtraError, match=r'needs repogen_absent_pkg, which is not installed: '
                                                r'pip install "repogen\[serve\]"'):
        require_installed("repogen_absent_pkg.inference", extra="serve")


# -- no optional package imported behind require's back --------------------------------------------------------------

def direct_imports(root: Path) -> list[str]:
    """``import X`` / ``from X import ...`` statements of optional packages in the package's source. Not
    counted: ``pipelines/ops.py`` and ``pipelines/served/``, which are copied into model folders and run
    inside Triton without repogen (their callers in repogen call ``require`` first)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel == Path("pipelines/ops.py") or "served" in rel.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            names = [n for n in names if n.split(".")[0] in OPTIONAL]
            found += [f"{rel}:{node.lineno} imports {n}" for n in names]
    return found


def test_optional_packages_are_imported_only_through_require():
    assert direct_imports(ROOT / "repogen") == []


def test_the_import_scan_finds_a_direct_import(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "ops.py").write_text("import cv2\n")  # copied into Triton: allowed
    (tmp_path / "mod.py").write_text("def f():\n    import yaml\n    from kubernetes.client import models\n")
    assert direct_imports(tmp_path) == ["mod.py:2 imports yaml", "mod.py:3 imports kubernetes.client"]


_BASE_ONLY = r"""
import contextlib, io, json, sys, traceback
for name in sys.argv[1].split(","):  # `import name` raises ModuleNotFoundError, find_spec(name) is None
    sys.modules[name] = None
from repogen.cli import main
results = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as exc:  # --help
        rc = exc.code
    except BaseException:
        rc, err = -1, io.StringIO(traceback.format_exc())
    results.append((rc, err.getvalue()))
print(json.dumps(results))
"""


def test_the_base_install_path_with_every_optional_package_hidden(tmp_path):
    """The fresh-venv walk's base column in seconds: with every optional package hidden from the interpreter,
    the commands that need none work and the others stop with one line naming their extra."""
    repo = str(tmp_path / "R")
    steps = [(["--help"], None), (["ops"], None), (["inspect", str(EXAMPLE)], None),
             (["build", "--out", repo], None), (["check", str(EXAMPLE)], "paddle"),
             (["validate", repo], "serve"), (["publish", repo, "s3://bucket-x/p"], "s3"),
             (["manifests", "s3://bucket-x/p", "--out", str(tmp_path / "M")], "deploy"),
             (["manifests", "s3://bucket-x/p", "--out", str(tmp_path / "M"), "--image", "i", "--gpus", "0"],
              "deploy"), (["gateway", "http://127.0.0.1:9"], "gateway")]
    proc = subprocess.run([sys.executable, "-c", _BASE_ONLY, ",".join(sorted(OPTIONAL)),
                           json.dumps([argv for argv, _ in steps])], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    problems = []
    for (argv, want), (rc, err) in zip(steps, json.loads(proc.stdout)):
        if want is None:
            ok = rc == 0
        else:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            m = _ONE_LINE.fullmatch(lines[0]) if len(lines) == 1 else None
            ok = rc == 2 and m is not None and m.group(1) == want
        if not ok:
            problems.append(f"{argv[0]}: rc {rc}, want {want or 'success'}: {err[-1500:]}")
    assert problems == []


def test_the_gateway_names_its_missing_package_before_it_calls_triton():
    """httpx comes with many tools: with it installed and starlette absent, ``repogen gateway`` must say so at
    once, not first report the Triton it could not list (nothing listens on port 9 here)."""
    proc = subprocess.run([sys.executable, "-c", _BASE_ONLY, "starlette",
                           json.dumps([["gateway", "http://127.0.0.1:9"]])], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [(rc, err)] = json.loads(proc.stdout)
    assert rc == 2 and err.strip() == ('repogen gateway: error: repogen gateway needs Starlette, which is not '
                                       'installed: pip install "repogen[gateway]"'), err


# -- extras that cannot break each other -----------------------------------------------------------------------------

def _extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _numpy_allows(requirements: list[str], version: str) -> bool:
    from packaging.requirements import Requirement

    specs = [Requirement(r).specifier for r in requirements if Requirement(r).name == "numpy"]
    return bool(specs) and all(s.contains(version) for s in specs)


def test_every_extra_that_can_reach_the_python_backend_stub_keeps_numpy_below_2():
    """Installed alone or after another one, no extra may move numpy to 2.x under the stub (docs/triton.md,
    "Serving on a CPU"). tensorrt serves plans in NGC images and pulls no numpy."""
    extras = _extras()
    for name, requirements in extras.items():
        if name == "tensorrt":
            continue
        assert _numpy_allows(requirements, "1.26.4"), name
        assert not _numpy_allows(requirements, "2.0.0") and not _numpy_allows(requirements, "2.4.6"), name
    assert _numpy_allows(["numpy>=1.24,<3"], "2.0.0")  # the check itself tells a 2.x-allowing pin apart


def test_the_bundled_server_refuses_numpy_2_in_one_line():
    from repogen.harness.server import check_stub_numpy

    check_stub_numpy("1.26.4")
    with pytest.raises(ServerError) as info:
        check_stub_numpy("2.2.6")
    text = str(info.value)
    assert "numpy 2.2.6 is installed" in text and 'pip install "numpy<2"' in text and "\n" not in text


def _pipeline_folder(repo: Path) -> Path:
    """A folder repogen wrote as a pipeline (what validate routes to the pipeline checks)."""
    folder = repo / "m_pipeline"
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text('name: "m_pipeline"\nplatform: "ensemble"\n')
    (folder / "repogen.json").write_text(json.dumps({"role": "pipeline"}))
    return folder


def test_validate_of_a_pipeline_repository_without_opencv_is_one_line(tmp_path):
    """Issue 26 item 1 as the user met it, with OpenCV hidden from the interpreter: one line naming the
    pipelines extra, exit 2, no traceback, before any server starts."""
    _pipeline_folder(tmp_path / "repo")
    code = ("import sys; sys.modules['cv2'] = None\n"  # `import cv2` now raises ModuleNotFoundError
            "from repogen.cli import main\n"
            f"sys.exit(main(['validate', {str(tmp_path / 'repo')!r}, '--tritonserver', '/nonexistent']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("repogen validate: error: validating this repository's pipeline models needs "
                                   "OpenCV (opencv-python-headless), which is not installed: "
                                   'pip install "repogen[pipelines]"')


def test_validate_of_a_plain_repository_does_not_import_opencv(tmp_path):
    """The harness imports the pipelines' ops only for pipeline models: the validate module and its imports
    load with OpenCV and pyclipper hidden."""
    code = ("import sys; sys.modules['cv2'] = None; sys.modules['pyclipper'] = None\n"
            "import repogen.harness.validate, repogen.cli.validate, repogen.cli.serve\n"
            "print('cv2' in sys.modules and sys.modules['cv2'] is not None)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr[-2000:]


def test_a_step_passes_only_as_the_table_says():
    """The verdict the fresh-venv walk uses: a traceback, a wrong extra or two lines are each a problem."""
    def proc(rc: int, err: str, out: str = "") -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], rc, out, err)

    line = 'repogen check: error: comparing with Paddle Inference needs PaddlePaddle, which is not installed: ' \
           'pip install "repogen[paddle]"'
    assert _outcome("base", "check", proc(2, line + "\n")) is None
    assert _outcome("base", "check", proc(2, line.replace("[paddle]", "[serve]")))  # names the wrong extra
    assert _outcome("base", "check", proc(2, "warning: x\n" + line))  # more than one line
    assert _outcome("base", "check", proc(1, "Traceback (most recent call last):\nModuleNotFoundError: paddle"))
    assert _outcome("paddle", "check", proc(0, "")) is None
    assert _outcome("paddle", "check", proc(2, line))  # paddle installed: check must work


# -- the README's path in fresh venvs, one extra at a time -----------------------------------------------------------

VENVS = ("base", "paddle", "serve", "pipelines", "s3", "deploy", "gateway")

#: (venv, step) -> the extra the one-line error must name; a step absent here must succeed
NEEDS = {
    **{(v, "check"): "paddle" for v in VENVS if v not in ("paddle", "serve")},
    **{(v, "validate"): "serve" for v in VENVS if v != "serve"},
    **{(v, "serve"): "serve" for v in VENVS if v != "serve"},  # in the serve venv it would serve until Ctrl-C
    **{(v, "build-pipeline"): "pipelines" for v in VENVS if v not in ("pipelines", "deploy")},  # deploy has PyYAML
    **{(v, "validate-pipeline"): "pipelines" for v in VENVS if v != "pipelines"},
    ("pipelines", "validate-pipeline"): "serve",
    **{(v, "publish"): "s3" for v in VENVS if v not in ("s3", "deploy")},  # deploy reads the store too
    **{(v, "manifests"): "deploy" for v in VENVS if v != "deploy"},
    # kserve (the deploy extra) brings starlette, uvicorn and httpx: there, as in its own venv, the gateway answers
    **{(v, "gateway"): "gateway" for v in VENVS if v not in ("gateway", "deploy")},
}

_ONE_LINE = re.compile(r'repogen [a-z]+: error: [^\n]+: pip install "repogen\[([a-z0-9]+)\]"')


def _env(extra_env: dict[str, str]) -> dict[str, str]:
    """The user's shell: no PYTHONPATH pointing at a tree, no other venv active."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra_env}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _install(venv: Path, extra: str | None) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=_env({}))
    target = f"{ROOT}[{extra}]" if extra else str(ROOT)
    # --no-compile: nothing is byte-compiled up front (the commands below import a small part of the packages)
    proc = _run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-e", target], ROOT, _env({}),
                timeout=900)
    assert proc.returncode == 0, f"pip install -e {target}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return time.monotonic() - started


def _numpy(venv: Path) -> str:
    out = _run([str(venv / "bin" / "python"), "-c", "import numpy; print(numpy.__version__)"], venv, _env({}))
    return out.stdout.strip()


def _outcome(name: str, step: str, proc: subprocess.CompletedProcess) -> str | None:
    """None when the step did what NEEDS says; else what went wrong."""
    text = proc.stdout + proc.stderr
    if "Traceback" in text:
        return f"{name} {step}: a traceback:\n{text[-3000:]}"
    want = NEEDS.get((name, step))
    if want is None:
        return None if proc.returncode == 0 else f"{name} {step}: rc {proc.returncode}:\n{text[-2000:]}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    m = _ONE_LINE.fullmatch(lines[-1]) if len(lines) == 1 else None
    if proc.returncode != 2 or m is None or m.group(1) != want:
        return f"{name} {step}: expected rc 2 and one line naming repogen[{want}], got rc {proc.returncode}:\n" \
               f"{proc.stderr[-2000:]}"
    return None


def _gateway_step(name: str, exe: str, work: Path, env: dict[str, str], triton_url: str) -> str | None:
    """``repogen gateway`` in front of the test's Triton (the pipeline repository, with its PaddleX-protocol
    model): where the venv lacks the extra, one line naming it; where it has it, /health and one PaddleX
    image-classification request answered, then SIGTERM ends it cleanly."""
    import urllib.request

    import numpy as np

    from repogen.harness.server import free_port
    from repogen.pipelines.paddlex_protocol import request_body
    from repogen.verify import inputs

    port = free_port()
    cmd = [exe, "gateway", triton_url, "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    problem, url, served = None, f"http://127.0.0.1:{port}", False
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as got:
                    health = json.loads(got.read())
                served = True
                break
            except OSError:
                time.sleep(0.2)
        if not served:
            problem = None if proc.poll() is not None else f"{name} gateway: neither ended nor answered /health in 60 s"
        elif (name, "gateway") in NEEDS:
            problem = f"{name} gateway: answers /health, but NEEDS says this venv lacks the gateway extra"
        else:
            image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
            body = json.dumps(request_body("classification", inputs.encode(image))).encode()
            ask = urllib.request.Request(f"{url}/image-classification", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(ask, timeout=120) as got:
                answer = json.loads(got.read())
            if health.get("errorCode") != 0 or answer.get("errorCode") != 0 or not answer["result"].get("categories"):
                problem = f"{name} gateway: health {health}, answer {str(answer)[:500]}"
    except OSError as exc:
        problem = f"{name} gateway: {type(exc).__name__}: {exc}"
    finally:
        if proc.poll() is None:
            proc.terminate()
        out, err = proc.communicate(timeout=60)
    if not served and problem is None:  # it ended by itself: one line naming the extra, as NEEDS says
        return _outcome(name, "gateway", subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    if problem is None and (proc.returncode != 143 or "Traceback" in out + err):
        problem = f"{name} gateway: SIGTERM ended it with rc {proc.returncode}:\n{(out + err)[-2000:]}"
    return problem


def _walk(name: str, venv: Path, work: Path, export: Path, pipeline_repo: Path, s3_env: dict[str, str],
          bucket: str, triton_url: str) -> tuple[list[str], dict[str, float]]:
    """The README's path in one venv; returns the problems found and each step's seconds."""
    exe = str(venv / "bin" / "repogen")
    env = _env(s3_env)
    work.mkdir()
    steps = {
        "help": [exe, "--help"],
        "ops": [exe, "ops"],
        "inspect": [exe, "inspect", str(EXAMPLE)],
        "check": [exe, "check", str(EXAMPLE)],
        "build": [exe, "build", "--out", "R"],
        "validate": [exe, "validate", "R", "--concurrency", "1"],
        "serve": [exe, "serve", "R"],
        "build-pipeline": [exe, "build", str(export), "--out", "RP", "--target", "paddle", "--no-check"],
        "validate-pipeline": [exe, "validate", str(pipeline_repo), "--concurrency", "1"],
        "publish": [exe, "publish", "R", f"s3://{bucket}/{name}"],
        "manifests": [exe, "manifests", f"s3://{bucket}/{name}", "--out", "M"],
    }
    problems, seconds = [], {}
    for step, cmd in steps.items():
        if step == "serve" and (name, step) not in NEEDS:
            continue  # tests/test_first_use.py serves and stops it
        started = time.monotonic()
        proc = _run(cmd, work, env)
        seconds[step] = time.monotonic() - started
        problem = _outcome(name, step, proc)
        if problem:
            problems.append(problem)
        elif step == "validate" and (name, step) not in NEEDS and "all models valid" not in proc.stdout:
            problems.append(f"{name} validate: no 'all models valid':\n{proc.stdout[-2000:]}")
        elif step == "manifests" and (name, step) not in NEEDS and not (work / "M" / "deployment.yaml").is_file():
            problems.append(f"{name} manifests: no deployment.yaml written")
    started = time.monotonic()
    problem = _gateway_step(name, exe, work, env, triton_url)
    seconds["gateway"] = time.monotonic() - started
    if problem:
        problems.append(problem)
    return problems, seconds


@pytest.fixture(scope="module")
def fresh_venvs(tmp_path_factory):
    """The base package and each extra alone, installed side by side (one pip cache), and the seconds each
    took; removed afterwards (they hold about 3 GB)."""
    import shutil

    root = tmp_path_factory.mktemp("extras")
    started = time.monotonic()
    with ThreadPoolExecutor(len(VENVS)) as pool:
        times = dict(zip(VENVS, pool.map(lambda v: _install(root / f"venv-{v}", None if v == "base" else v),
                                         VENVS)))
    yield root, {"install (parallel)": time.monotonic() - started, **{f"install {v}": t for v, t in times.items()}}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pipeline_export(tmp_path_factory) -> tuple[Path, Path]:
    """A PaddleX-style classification export (model + inference.yml) and the repository this checkout's
    environment builds from it (pre/post stages and the pipeline ensemble)."""
    from repogen.examples import pipeline_exports as testing

    root = tmp_path_factory.mktemp("extras-pipeline")
    export = testing.save_model("cls", root / "cls")
    repo = root / "repo"
    proc = _run([sys.executable, "-m", "repogen.cli", "build", str(export), "--out", str(repo), "--target", "paddle",
                 "--no-check"], root, {**os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return export, repo


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_each_extra_alone_in_a_fresh_venv_walks_the_readme_path(fresh_venvs, pipeline_export, capsys):
    from repogen.harness.server import launch
    from tests.support.local_s3 import local_s3

    export, pipeline_repo = pipeline_export
    fresh_venvs, times = fresh_venvs
    numpys = {v: _numpy(fresh_venvs / f"venv-{v}") for v in VENVS}
    # every extra keeps numpy below 2 (the base install may take 2.x: it serves nothing)
    assert {v: n for v, n in numpys.items() if v != "base" and int(n.split(".")[0]) >= 2} == {}
    bucket = f"extras-{uuid.uuid4().hex[:8]}"
    # the gateway steps call this Triton (this checkout's environment serves; the gateway venv only answers)
    with local_s3() as server, launch(pipeline_repo, require_models=True) as triton:
        server.create_bucket(bucket)
        started = time.monotonic()
        with ThreadPoolExecutor(len(VENVS)) as pool:
            walked = dict(zip(VENVS, pool.map(
                lambda v: _walk(v, fresh_venvs / f"venv-{v}", fresh_venvs / f"work-{v}", export, pipeline_repo,
                                server.credentials_env(), bucket, triton.http_url), VENVS)))
        times["commands (parallel)"] = time.monotonic() - started
    problems = [p for found, _ in walked.values() for p in found]
    for v, (_, seconds) in walked.items():
        times.update({f"{v} {step}": s for step, s in seconds.items()})

    # the order that once broke serving: the pipelines extra added to a serve install keeps numpy 1.x, and a
    # pipeline repository (a Paddle model, its pre/post stages, the ensemble) validates there
    serve = fresh_venvs / "venv-serve"
    started = time.monotonic()
    proc = _run([str(serve / "bin" / "pip"), "install", "-q", "--no-compile", "-e", f"{ROOT}[pipelines]"], ROOT,
                _env({}), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(_numpy(serve).split(".")[0]) < 2
    proc = _run([str(serve / "bin" / "repogen"), "validate", str(pipeline_repo), "--concurrency", "1"],
                fresh_venvs, _env({}))
    times["serve + pipelines: install and validate"] = time.monotonic() - started
    if proc.returncode != 0 or "all models valid" not in proc.stdout or "Traceback" in proc.stdout + proc.stderr:
        problems.append(f"serve+pipelines validate: rc {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    with capsys.disabled():  # the CI log keeps this test's cost in sight
        phases = ("install (parallel)", "commands (parallel)", "serve + pipelines: install and validate")
        slowest = sorted((k for k in times if k not in phases), key=times.get, reverse=True)[:8]
        print(f"\ntest_extras: fresh venvs {sum(times[k] for k in phases):.0f} s: "
              + ", ".join(f"{k} {times[k]:.0f} s" for k in phases)
              + "; slowest: " + ", ".join(f"{k} {times[k]:.0f} s" for k in slowest) + f"; numpy {numpys}")
    assert problems == []
