"""Config and manifest templates as an attacker or a careless user writes them (issue 25 item 10): nothing
but the template itself and the bundled macros can be loaded, runtime errors are one line naming the template
and line (rc 2, no traceback), and output size and loop work are bounded (repogen.repository.templating).

The seeded fuzzer mutates the bundled templates and splices in hostile fragments (includes and imports of
files beside the template or through links, huge outputs, deep loops, recursion, runtime errors, sandbox
escapes, syntax damage); every case renders in a worker process under a 1 GiB address-space cap and a
per-case watchdog, the way the render child renders (the sandbox and its deadline; the child's own 512 MiB
and CPU caps are not used), so the sandbox's limits are shown to hold by themselves. A sample also runs through ``repogen build --template`` and ``repogen manifests --templates``.

    pytest tests/test_template_hardening.py                          # 240 cases, 6 through the CLI
    REPOGEN_SLOW_TESTS=1 pytest -s tests/test_template_hardening.py  # 3,000 cases, 40 through the CLI
    python tests/test_template_hardening.py 3000 40                  # a report without pytest
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repogen import cli  # noqa: E402
from repogen.repository import templating  # noqa: E402

SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"
SEED = 25
CASES = 3000 if SLOW else 240
CLI_CASES = 40 if SLOW else 6
CASE_SECONDS = 30  # per case; the sandbox's own deadline is templating.MAX_SECONDS
LIMIT_BYTES = 1 << 30
CANARY = "CANARY-aws_secret_access_key-7f3e"
URI = "s3://models/prod"
NGC = "nvcr.io/nvidia/tritonserver:24.08-py3"


# -- the reproductions of the issue, through the CLI ----------------------------------------------------------

def _build(tmp_path: Path, template_text: str, capsys: pytest.CaptureFixture, name: str = "t.pbtxt.j2"
           ) -> tuple[int, str, Path, Path]:
    folder = tmp_path / "tpl"
    folder.mkdir(exist_ok=True)
    template = folder / name
    template.write_text(template_text)
    out = tmp_path / "repo"
    capsys.readouterr()
    rc = cli.main(["build", "--out", str(out), "--no-check", "--target", "paddle", "--template", str(template)])
    return rc, capsys.readouterr().err, template, out


def _one_error(err: str) -> str:
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("how", ["include", "import", "from", "extends", "link", "absolute", "parent"])
def test_a_template_cannot_load_files_beside_it_or_through_links(tmp_path: Path, capsys, how: str) -> None:
    """The issue's case: a credentials file beside the template (or reached through a link) ended up in
    config.pbtxt. Now the template can load the bundled macros only."""
    secret = tmp_path / "home" / ".aws" / "credentials"
    secret.parent.mkdir(parents=True)
    secret.write_text(f"[default]\naws_secret_access_key = {CANARY}\n")
    folder = tmp_path / "tpl"
    folder.mkdir()
    shutil.copy(secret, folder / "creds.txt")
    (folder / "link.j2").symlink_to(secret)
    name = {"include": "creds.txt", "import": "creds.txt", "from": "creds.txt", "extends": "creds.txt",
            "link": "link.j2", "absolute": str(secret), "parent": "../home/.aws/credentials"}[how]
    statement = {"import": f'{{% import "{name}" as c %}}', "from": f'{{% from "{name}" import x %}}',
                 "extends": f'{{% extends "{name}" %}}'}.get(how, f'{{% include "{name}" %}}')
    rc, err, template, out = _build(tmp_path, 'name: {{ name | q }}\nbackend: "python"\n' + statement + "\n", capsys)
    line = _one_error(err)
    assert rc == 2 and CANARY not in err and not out.exists()
    assert line == (f"repogen build: error: {template} line 3: cannot load {name!r}: a template may import only "
                    "repogen's bundled macros (_io.pbtxt.j2), never another file")


@pytest.mark.parametrize("body, words", [
    ("{{ 1/0 }}", "ZeroDivisionError: division by zero"),
    ("{{ 10.0**400 }}", "OverflowError: (34, 'Numerical result out of range')"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
     "recursion too deep (a macro or loop that calls itself without end?)"),
    ("{{ no_such_name }}", "'no_such_name' is undefined"),
    ("{{ inputs[0].no_such_key }}", "'dict object' has no attribute 'no_such_key'"),
    ("{{ 'a' + 1 }}", 'TypeError: can only concatenate str (not "int") to str'),
    ("{% for %}", "Expected an expression, got 'end of statement block'"),
])
def test_runtime_errors_are_one_line_naming_template_and_line(tmp_path: Path, capsys, body: str, words: str) -> None:
    rc, err, template, out = _build(tmp_path, f'name: {{{{ name | q }}}}\nbackend: "python"\n{body}\n', capsys)
    assert rc == 2 and not out.exists()
    assert _one_error(err) == f"repogen build: error: {template} line 3: {words}"


@pytest.mark.parametrize("body, words", [
    ("{{ 'a' * 300000000 }}", "line 3: over a template limit: a string of 1 repeated 300,000,000 times"),
    ("{{ 'a' * (3e8 | int) }}", "line 3: over a template limit: a string of 1 repeated 300,000,000 times"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "line 3: over a template limit: more than 100,000 loop iterations and calls"),
    # whichever comes first on a loaded machine: the step budget or the deadline
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
     "line 3: over a template limit: (more than 100,000 loop iterations and calls|rendering took more than 5 s)"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "line 3: over a template limit: a value of 8,388,608 characters or items"),
    ("{{ 'x' | center(1000000000) }}", "line 3: over a template limit: the center filter with 1e\\+09"),
    ("{{ '%0999999999d' % 1 }}", "line 3: over a template limit: a format width or precision of a million or more"),
    ("{{ 2 ** 100000 }}", "line 3: over a template limit: 2 \\*\\* 100000 has more than 8,192 bits"),
    ("{% set big %}{% for i in range(90000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}",
     "line 3: over a template limit: more than 16,777,216 characters of output"),
    ("{% for i in range(90000) %}{{ 'y' * 1000 }}{% endfor %}",  # the result itself: counted as it is joined
     "over a template limit: more than 4,194,304 characters of output"),
])
def test_output_size_and_loop_work_are_bounded(tmp_path: Path, capsys, body: str, words: str) -> None:
    """'a'*3e8 wrote a 300 MB config.pbtxt with rc 0 and nested ranges hung the build (issue 25)."""
    started = time.perf_counter()
    rc, err, template, out = _build(tmp_path, f'name: {{{{ name | q }}}}\nbackend: "python"\n{body}\n', capsys)
    seconds = time.perf_counter() - started
    assert rc == 2 and not out.exists()
    assert re.match(re.escape(f"repogen build: error: {template}") + "[ :] ?" + words, _one_error(err)), err
    assert seconds < templating.MAX_SECONDS + 20


def test_the_child_caps_what_the_sandbox_does_not_foresee(tmp_path: Path) -> None:
    """A user template renders in a child process under CHILD_MEMORY: even with the sandbox's size checks
    turned off (as if a way around them existed), a 2 GB string ends as one line, not as a dead build."""
    job = templating.Job("/u/t.j2", "/u/t.j2", {"/u/t.j2": "{{ 'a' * 2000000000 }}"}, {})
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from repogen.repository import templating as T\n"
            "T._check_repeat = lambda left, right: None\n"
            "T._checked = lambda value: value\n"
            "try:\n"
            "    T._child_main()\n"
            "except BaseException as exc:\n"
            "    print(type(exc).__name__, file=sys.stderr)\n") % str(ROOT)
    import pickle

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], input=pickle.dumps([job]), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    (result,) = json.loads(proc.stdout)
    assert result == {"error": f"/u/t.j2 line 1: out of memory while rendering "
                               f"(over the renderer's {templating.CHILD_MEMORY >> 20} MiB)"}
    assert time.perf_counter() - started < 60


def test_the_deadline_stops_a_single_slow_call() -> None:
    """Between two steps a single call can take long (a slow filter on a large value): in the render child
    SIGALRM ends it at the deadline. Shown with a context callable that sleeps, as no template can."""
    job = templating.Job("/u/t.j2", "/u/t.j2", {"/u/t.j2": "a\n{{ slow() }}"}, {"slow": lambda: time.sleep(120)})
    started = time.perf_counter()
    with pytest.raises(templating.ConfigError) as err:
        templating._render_here(job, interrupt=True)
    assert str(err.value) == "/u/t.j2 line 2: over a template limit: rendering took more than 5 s"
    assert time.perf_counter() - started < templating.MAX_SECONDS + 5


def test_a_template_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "fifo.pbtxt.j2"
    os.mkfifo(fifo)
    rc = cli.main(["build", "--out", str(tmp_path / "repo"), "--no-check", "--target", "paddle", "--template",
                   str(fifo)])
    assert rc == 2
    assert _one_error(capsys.readouterr().err) == f"repogen build: error: {fifo}: a template must be a regular file"


def _manifests(tmp_path: Path, files: dict[str, str], capsys) -> tuple[int, str, Path]:
    user = tmp_path / "k8s"
    user.mkdir(exist_ok=True)
    for name, text in files.items():
        (user / name).write_text(text)
    out = tmp_path / "manifests"
    capsys.readouterr()
    rc = cli.main(["manifests", URI, "--out", str(out), "--templates", str(user), "--gpus", "0", "--secret", "",
                   "--image", NGC])
    return rc, capsys.readouterr().err, out


def test_manifest_templates_have_the_same_rules(tmp_path: Path, capsys) -> None:
    from repogen.deploy.manifests import BUILTIN

    pytest.importorskip("yaml")
    service = (BUILTIN / "service.yaml.j2").read_text()
    user = tmp_path / "k8s"
    user.mkdir()
    (user / "secret.txt").write_text(CANARY)
    # the bundled macro file still imports (service.yaml.j2 does), a file beside it does not
    rc, err, out = _manifests(tmp_path, {"service.yaml.j2": service + '{% include "secret.txt" %}\n'}, capsys)
    assert rc == 2 and CANARY not in err and not out.exists()
    assert _one_error(err).endswith(f"{user / 'service.yaml.j2'} line {service.count(chr(10)) + 1}: cannot load "
                                    "'secret.txt': a template may import only repogen's bundled macros (_labels.j2), "
                                    "never another file")
    started = time.perf_counter()
    rc, err, out = _manifests(tmp_path, {"service.yaml.j2": "{% for i in range(100000) %}{% for j in range(100000) %}"
                                         "{% endfor %}{% endfor %}"}, capsys)
    assert rc == 2 and "over a template limit: more than 100,000 loop iterations and calls" in _one_error(err)
    assert time.perf_counter() - started < templating.MAX_SECONDS + 20
    # an override that links out of the folder is refused unread
    (user / "service.yaml.j2").unlink()
    (user / "service.yaml.j2").symlink_to(tmp_path / "elsewhere.j2")
    (tmp_path / "elsewhere.j2").write_text(CANARY)
    rc, err, out = _manifests(tmp_path, {}, capsys)
    assert rc == 2 and CANARY not in err
    assert _one_error(err).endswith(f"{user / 'service.yaml.j2'}: a symlink to a file outside {user}; templates are "
                                    "read from that folder only")
    # and a well-behaved override still works, with the bundled macros
    (user / "service.yaml.j2").unlink()
    rc, err, out = _manifests(tmp_path, {"service.yaml.j2": service.replace("ClusterIP", "NodePort")}, capsys)
    assert rc == 0, err
    assert "type: NodePort" in (out / "service.yaml").read_text()


# -- the fuzzer -----------------------------------------------------------------------------------------------

#: hostile fragments; {n} is replaced by a size the case draws
HOSTILE = [
    # loading other files
    '{% include "creds.txt" %}', '{% include "link.j2" %}', '{% import "creds.txt" as c %}',
    '{% from "link.j2" import x %}', '{% extends "creds.txt" %}', '{% include "/etc/passwd" %}',
    '{% include "../creds.txt" %}', '{% include "tensorrt.pbtxt.j2" %}', '{% include "" %}',
    '{% include ["creds.txt", "link.j2"] %}', '{% include name %}', '{% import "_io.pbtxt.j2" as io %}',
    # huge outputs
    "{{ 'a' * {n} }}", "{{ [0] * {n} }}", "{{ 'ab' | center({n}) }}", "{{ 'x'.ljust({n}) }}",
    "{{ 'x' | indent({n}, true) }}", "{{ '%{n}d' % 1 }}", "{{ '{:>{n}}'.format(1) }}", "{{ '%*d' % ({n}, 1) }}",
    "{{ ('x' * 1000).replace('x', 'y' * 1000) }}", "{{ (range(100000) | list | join(',' * 100)) }}",
    "{{ [1] | batch({n}, 'x') | list }}", "{{ (range(99999) | list) * 50 }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s=[1]) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set big %}{% for i in range(100000) %}{{ 'y' * 500 }}{% endfor %}{% endset %}{{ big | length }}",
    "{% macro m() %}{% for i in range(1000) %}{{ 'z' * 4000 }}{% endfor %}{% endmacro %}{{ m() ~ m() }}",
    "{{ lipsum(1000, false, 1000, 1000) }}", "{{ ('x' * 1000000) | wordwrap(1) }}",
    "{{ (range(100000) | map('string') | join) * 100 }}", "{{ 'x' * {n} * {n} }}",
    # slow filters: Python loops inside one call, between two steps
    "{{ ([0] * 4000000) | map('string') | join }}", "{{ ('x\\n' * 2000000) | indent(4, true) }}",
    "{{ ('x ' * 2000000) | urlize }}", "{{ ([1] * 4000000) | unique | list | length }}",
    "{{ ('x' * 4000000) | wordwrap(2) }}", "{{ ([{}] * 4000000) | map(attribute='a', default=1) | sum }}",
    # deep loops
    "{% for i in range({n}) %}{% for j in range({n}) %}{% for k in range({n}) %}.{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{% for c in 'x' * 100000 %}{% for d in 'x' * 100000 %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) recursive %}{{ loop(range(100000)) }}{% endfor %}",
    "{% for x in inputs * 100000 %}{% for y in inputs * 100000 %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ range(100000) | sum }}{% endfor %}",
    # recursion
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f({n}) }}",
    "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
    "{% macro c() %}{{ caller() }}{% endmacro %}{% call c() %}{% call c() %}{{ 1 }}{% endcall %}{% endcall %}",
    "{% for i in [1] recursive %}{{ loop([i]) }}{% endfor %}",
    # big numbers and runtime errors
    "{{ 9 ** 9 ** 9 }}", "{{ 2 ** {n} }}", "{{ 10.0 ** 400 }}", "{{ 1 / 0 }}", "{{ 1 // 0 }}", "{{ 1 % 0 }}",
    "{{ 'a' + 1 }}", "{{ [][1] }}", "{{ {}['k'] }}", "{{ none.attr }}", "{{ undefined_name }}",
    "{{ 'x' | int + 'y' }}", "{{ inputs[100] }}", "{{ max_batch_size / 0.0 }}", "{{ (2 ** 1000) * 1.5 }}",
    "{{ range(10 ** 10) }}", "{{ 'x' | float ** 1000 }}", "{{ inputs | first | attr('name') | int(base=99) }}",
    "{{ 'x' | format(*range(100)) }}", "{{ {}.update(a=1) }}", "{{ inputs.append(1) }}",
    # sandbox escapes
    "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}", "{{ namespace.__init__ }}", "{{ range.__self__ }}",
    "{{ joiner.__init__.__globals__.os }}", "{{ name.format_map({}) }}", "{{ '{0.__class__}'.format(1) }}",
    # syntax damage
    "{% for x in %}", "{% if %}", "{{ (((((((((((( }}", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "{{ " + "[" * 3000 + "]" * 3000 + " }}", "{% endfor %}", "{% raw %}", "{{ }", "{# ", "{% macro %}",
    "{% set %}", "{{ x | no_such_filter }}", "{{ x is no_such_test }}", "\x00", "{{ '\\x00' }}",
]
SIZES = [0, 1, 7, 40, 1000, 10 ** 5, 10 ** 6, 10 ** 7, 3 * 10 ** 8, 10 ** 12]


def bases() -> dict[str, tuple[str, str]]:
    """name -> (kind, source): every bundled config and manifest template."""
    from repogen.deploy.manifests import BUILTIN
    from repogen.repository.config import TEMPLATE_DIR

    out = {n: ("pbtxt", s) for n, s in templating.bundled_sources(TEMPLATE_DIR).items()
           if n.endswith(".pbtxt.j2") and not n.startswith("_")}
    out |= {n: ("k8s", s) for n, s in templating.bundled_sources(BUILTIN).items() if not n.startswith("_")}
    return out


def _fragment(rng: random.Random) -> str:
    return rng.choice(HOSTILE).replace("{n}", str(rng.choice(SIZES)))


def make_case(rng: random.Random, base: str) -> tuple[str, str]:
    """(mutated template text, what was done)."""
    lines = base.splitlines(keepends=True) or ["\n"]
    op = rng.choice(["splice", "splice", "splice", "alone", "loop", "delete", "duplicate", "rename", "numbers",
                     "truncate", "tags"])
    if op in ("splice", "alone", "loop"):
        frag = _fragment(rng)
        if op == "loop":
            frag = f"{{% for _i in range({rng.choice(SIZES)}) %}}{frag}{{% endfor %}}"
        if op == "alone":
            return frag + "\n", f"alone: {frag[:80]}"
        at = rng.randrange(len(lines) + 1)
        return "".join(lines[:at] + [frag + "\n"] + lines[at:]), f"{op} at line {at + 1}: {frag[:80]}"
    if op == "delete":
        at = rng.randrange(len(lines))
        return "".join(lines[:at] + lines[at + 1:]), f"delete line {at + 1}"
    if op == "duplicate":
        at = rng.randrange(len(lines))
        return "".join(lines[:at] + [lines[at]] * rng.choice((2, 50, 5000)) + lines[at + 1:]), f"duplicate {at + 1}"
    if op == "rename":
        names = sorted(set(re.findall(r"\b[a-z_]+\b", base))) or ["name"]
        old = rng.choice(names)
        return re.sub(rf"\b{old}\b", "zz_" + old, base), f"rename {old}"
    if op == "numbers":
        new = str(rng.choice(SIZES + [-1, "1e308", "10**400", "0.0"]))
        return re.sub(r"\b\d+\b", new, base), f"numbers -> {new}"
    if op == "truncate":
        at = rng.randrange(len(base) + 1)
        return base[:at], f"truncate at {at}"
    tags = re.findall(r"\{%-?\s*(?:end)?\w+", base) or ["{% for"]
    tag = rng.choice(tags)
    return base.replace(tag, rng.choice(["{% for", "{% endif", "{% macro", "{{", "{% endfor", ""]), 1), f"tag {tag}"


def contexts() -> dict[str, dict[str, Any]]:
    """A real context per kind, as the build and manifests pass it."""
    from repogen.build.spec import DynamicBatching, ModelSpec, Warmup
    from repogen.deploy.manifests import ManifestOptions, context
    from repogen.repository.config import EngineDesc, TensorDesc, config_context

    engine = EngineDesc([TensorDesc("image", "float32", (-1, 3, 32, 32))], [TensorDesc("probs", "float32", (-1, 10))],
                        [{"image": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}])
    spec = ModelSpec(source=ROOT, name="m", dynamic_batching=DynamicBatching(enabled=True), warmup=Warmup())
    pbtxt = config_context(name="m", target="tensorrt", engine=engine, max_batch_size=8, spec=spec,
                           default_kind="KIND_GPU", labels_filename="labels.txt")
    pbtxt |= {"description": "stage", "steps": [{"model": "a", "inputs": [["x", "image"]], "outputs": [["y", "probs"]]}]}
    k8s = context(URI, ManifestOptions(image=NGC, gpus=0))
    return {"pbtxt": pbtxt, "k8s": k8s}


def generate(root: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Cases written as template files beside a credentials file and a link to it (what an include could
    reach if the loader looked at disk)."""
    rng = random.Random(seed)
    base = bases()
    names = sorted(base)
    cases = []
    for i in range(n):
        name = names[i % len(names)]
        kind, source = base[name]
        text, desc = make_case(rng, source)
        folder = root / f"{i:05d}"
        folder.mkdir(parents=True)
        (folder / "creds.txt").write_text(CANARY + "\n")
        (folder / "link.j2").symlink_to(folder / "creds.txt")
        template = folder / name  # the bundled name, so a manifests --templates run overrides that file
        template.write_text(text, encoding="utf-8", errors="surrogatepass")
        cases.append({"i": i, "file": str(template), "kind": kind, "base": name, "desc": desc})
    return cases


def worker(listing: str) -> None:
    """Render each case as the render child does (the sandbox and its deadline, here in one process under the
    worker's 1 GiB cap); one JSON line per case on stdout. A case that outlasts CASE_SECONDS is a hang: a
    watchdog kills the worker (nothing inside the render can catch that) and the parent records it."""
    import traceback

    from repogen.deploy.manifests import template_jobs
    from repogen.errors import ConfigError
    from repogen.repository.config import template_job

    ctx = contexts()
    for case in json.loads(Path(listing).read_text()):
        watchdog = threading.Timer(CASE_SECONDS, lambda: os.kill(os.getpid(), signal.SIGKILL))
        watchdog.start()
        started = time.perf_counter()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result: dict[str, Any] = {"file": case["file"]}
        path = Path(case["file"])
        try:
            if case["kind"] == "pbtxt":
                job, user = template_job(path, ctx["pbtxt"])
            else:
                ((job, user),) = template_jobs(path.parent, [path.name], ctx["k8s"])
            assert user
            text = templating._render_here(job, interrupt=True)
            result.update(outcome="accepted", chars=len(text), canary=CANARY in text)
        except ConfigError as exc:
            msg = str(exc)
            result.update(outcome="refused", one_line="\n" not in msg and msg.startswith(case["file"]),
                          canary=CANARY in msg, message=msg[:300])
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            result.update(outcome="traceback", error=f"{type(exc).__name__}: {str(exc)[:200]}",
                          where=traceback.format_exc().strip().splitlines()[-3:-1])
        finally:
            watchdog.cancel()
        result["seconds"] = round(time.perf_counter() - started, 4)
        result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["rss_grew_kb"] = result["maxrss_kb"] - rss_before  # a new peak this case made
        print(json.dumps(result), flush=True)


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run_cases(root: Path, cases: list[dict[str, Any]]) -> dict[str, dict]:
    """Results by file. A worker that dies or stalls costs the case it was on (recorded) and is restarted."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results: dict[str, dict] = {}
    todo = list(cases)
    while todo:
        listing = root / f"cases-{len(todo)}.json"
        listing.write_text(json.dumps(todo))
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(listing)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_cap)
        try:
            out, err = proc.communicate(timeout=60 + CASE_SECONDS * 2 + 2 * len(todo))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        for line in out.splitlines():
            row = json.loads(line)
            results[row["file"]] = row
        todo = [c for c in todo if c["file"] not in results]
        if todo:
            # SIGKILL: the watchdog (a case over CASE_SECONDS) or the parent's timeout; anything else: a death
            results[todo[0]["file"]] = {"file": todo[0]["file"], "outcome": "hang" if proc.returncode in (-9, None)
                                        else "died", "error": f"rc {proc.returncode}: {err[-300:]}", "seconds": None}
            todo = todo[1:]
    return results


def run_cli(case: dict[str, Any], out: Path) -> dict[str, Any]:
    """The case through the real command: ``build --template`` or ``manifests --templates``, under the same
    1 GiB cap, killed after CASE_SECONDS."""
    path = Path(case["file"])
    if case["kind"] == "pbtxt":
        args = ["build", "--out", str(out), "--no-check", "--target", "paddle", "--template", str(path)]
    else:
        args = ["manifests", URI, "--out", str(out), "--templates", str(path.parent), "--gpus", "0", "--secret", "",
                "--image", NGC]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    logs = path.parent / "cli.stdout", path.parent / "cli.stderr"
    killed = threading.Event()
    with logs[0].open("w") as stdout, logs[1].open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", *args], stdout=stdout, stderr=stderr, env=env,
                                preexec_fn=_cap)

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(CASE_SECONDS * 2, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
    err = logs[1].read_text(errors="replace")
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()) if out.exists() else ""
    return {"file": case["file"], "rc": os.waitstatus_to_exitcode(status), "hung": killed.is_set(),
            "seconds": round(time.perf_counter() - started, 2), "traceback": "Traceback" in err,
            "error_lines": [ln for ln in err.replace("\r", "\n").splitlines() if "error:" in ln],
            "canary": CANARY in err or CANARY in written, "maxrss_kb": usage.ru_maxrss}


def _reason(message: str) -> str:
    text = message.split(": ", 1)[1] if ": " in message else message
    text = re.sub(r"^line \d+: ", "", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", text)
    return " ".join(re.sub(r"-?\d[\d,.e+-]*", "N", text).split()[:7])


def fuzz(root: Path, n: int, cli_n: int, seed: int) -> dict[str, Any]:
    cases = generate(root / "cases", n, seed)
    started = time.perf_counter()
    results = run_cases(root, cases)
    seconds = time.perf_counter() - started
    cli_runs = [run_cli(c, root / "out" / f"{c['i']:05d}") for c in cases[:: max(1, n // max(cli_n, 1))][:cli_n]]
    outcomes = Counter(r["outcome"] for r in results.values())
    refused = [r for r in results.values() if r["outcome"] == "refused"]
    desc = {c["file"]: f"{c['base']} {c['desc']}" for c in cases}
    return {
        "cases": n, "seed": seed, "outcomes": dict(outcomes),
        "by_base": dict(sorted(Counter(f"{c['base']}/{results[c['file']]['outcome']}" for c in cases).items())),
        "limit_refusals": sum("over a template limit" in r["message"] for r in refused),
        "load_refusals": sum("cannot load" in r["message"] for r in refused),
        "seconds": round(seconds, 1),
        "slowest_case_s": max((r["seconds"] or 0) for r in results.values()),
        "slowest_cases": [f"{r['seconds']} s: {desc[r['file']]}" for r in
                          sorted(results.values(), key=lambda r: -(r["seconds"] or 0))[:3]],
        "largest_peak_rss_rises": [f"+{r['rss_grew_kb'] // 1024} MB: {desc[r['file']]}" for r in
                                   sorted(results.values(), key=lambda r: -r.get("rss_grew_kb", 0))[:3]],
        "peak_rss_mb": round(max((r.get("maxrss_kb", 0) for r in results.values()), default=0) / 1024, 1),
        "largest_output_chars": max((r.get("chars", 0) for r in results.values()), default=0),
        "bad": [dict(r, desc=next(c["desc"] for c in cases if c["file"] == f)) for f, r in results.items()
                if r["outcome"] not in ("accepted", "refused") or not r.get("one_line", True) or r.get("canary")],
        "refusal_reasons": dict(Counter(_reason(r["message"]) for r in refused).most_common(20)),
        "cli_runs": len(cli_runs), "cli_rc": dict(Counter(c["rc"] for c in cli_runs)),
        "cli_slowest_s": max((c["seconds"] for c in cli_runs), default=0),
        "cli_peak_rss_mb": round(max((c["maxrss_kb"] for c in cli_runs), default=0) / 1024, 1),
        "cli_bad": [c for c in cli_runs if c["rc"] not in (0, 2) or c["hung"] or c["traceback"] or c["canary"]
                    or (c["rc"] == 2 and len(c["error_lines"]) != 1)],
    }


@pytest.mark.timeout(3600 if SLOW else 600)
def test_template_fuzz(tmp_path: Path) -> None:
    report = fuzz(tmp_path, CASES, CLI_CASES, SEED)
    print(json.dumps({k: v for k, v in report.items() if k not in ("bad", "cli_bad")}, indent=1))
    assert not report["bad"], json.dumps(report["bad"][:5], indent=1)
    assert not report["cli_bad"], json.dumps(report["cli_bad"][:5], indent=1)
    # the cases reach the limits and the loader, and some mutations still render
    assert report["outcomes"].get("accepted", 0) > 0 and report["limit_refusals"] > 0 and report["load_refusals"] > 0
    assert report["slowest_case_s"] < templating.MAX_SECONDS + 10 and report["cli_slowest_s"] < CASE_SECONDS * 2
    assert report["peak_rss_mb"] < 1024 and report["cli_peak_rss_mb"] < 1024
    assert report["largest_output_chars"] <= templating.MAX_TEXT


OLD_RENDERER = """
import sys, resource, signal
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
signal.alarm(int(sys.argv[2]))
path = sys.argv[1]
env = ImmutableSandboxedEnvironment(loader=jinja2.FileSystemLoader([path.rsplit('/', 1)[0]]),
                                    undefined=jinja2.StrictUndefined)
text = env.get_template(path.rsplit('/', 1)[1]).render(name='m')
print(len(text), 'CANARY' in text)
"""


@pytest.mark.parametrize("fragment, symptom, seconds", [
    ('{% include "creds.txt" %}', "0 True", 30),  # the credentials in the output (length varies)
    # Jinja2 folds the constant into the compiled module: a 300 MB literal, MemoryError under the 1 GiB cap
    ("{{ 'a' * 300000000 }}", "MemoryError", 50),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "Alarm clock", 5),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError", 30),
])
def test_the_fuzzer_catches_the_old_renderer(tmp_path: Path, fragment: str, symptom: str, seconds: int) -> None:
    """The checks can fail: the environment as it was (Jinja2's sandbox with a FileSystemLoader on the
    template's folder, no limits) leaks the canary, runs out of memory, hangs, or gives a traceback on
    fragments the fuzzer splices in."""
    (tmp_path / "creds.txt").write_text(CANARY)
    (tmp_path / "t.j2").write_text(fragment)
    proc = subprocess.run([sys.executable, "-c", OLD_RENDERER % (LIMIT_BYTES, LIMIT_BYTES), str(tmp_path / "t.j2"),
                           str(seconds)], capture_output=True, text=True, timeout=90)
    seen = proc.stdout + proc.stderr + (" Alarm clock" if proc.returncode == -signal.SIGALRM else "")
    if symptom == "0 True":
        assert proc.stdout.split()[1] == "True"
    else:
        assert symptom in seen, seen[-500:]


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(sys.argv[2])
elif __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else CASES
        print(json.dumps(fuzz(Path(tmp), n, int(sys.argv[2]) if len(sys.argv) > 2 else CLI_CASES, SEED), indent=1))
