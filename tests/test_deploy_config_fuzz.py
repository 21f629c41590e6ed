"""A seeded type-mutation fuzzer over the six deploy-config kinds the test exports carry (PaddleX OCR det and
rec, PaddleDetection, PaddleX layout, PaddleSeg, PaddleX classification).

Each case takes one of those configs and breaks it: a value replaced by a wrong type or an extreme, a key
added with a bad value, a raw YAML fragment spliced in (alias bombs, 20,000-deep nesting, recursive anchors,
tags, .inf/.nan), or the file itself damaged (truncated, bytes flipped, duplicated, several documents, over the
size cap). The reader runs in a child process capped at 1 GB of address space, one alarm per case; a sample of
the cases also goes through ``repogen build`` (a pipeline build and ``--no-pipeline --name X`` in turn), each
build capped at 1 GB and 60 s. Every outcome must be an accepted config with finite, JSON-able values or one
ConfigError line naming the file; never a traceback, a hang, a run over 1 GB or over 60 s.

Fast default: 300 cases, 6 of them through the CLI. ``REPOGEN_SLOW_TESTS=1``: 3,600 cases, 60 through the CLI
(``REPOGEN_FUZZ_CASES`` / ``REPOGEN_FUZZ_SEED`` override). Run as a script with ``--worker DIR`` it is the child.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from repogen.pipelines.deploy_config import LIMITS

LIMIT_BYTES = 1 << 30  # address space of every child: a run that needs more fails with MemoryError, caught
CASE_SECONDS = 60
SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"
CASES = int(os.environ.get("REPOGEN_FUZZ_CASES", 3600 if SLOW else 300))
CLI_CASES = 60 if SLOW else 6
SEED = int(os.environ.get("REPOGEN_FUZZ_SEED", 25))
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "repogen" / "examples" / "tiny_cnn"

SLOT = "REPOGEN_FUZZ_SLOT"
VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 7, 3, -(2 ** 31), 2 ** 63, 10 ** 30, 0.5, -0.5, 1e308, -1e308, 1e-320,
    math.inf, -math.inf, math.nan, "", "zz", "1./0.", "1/255", "-3", "0x1F", "x" * 5000, "\u202e\x00\x1b",
    [], [1], [0, 0], [-5, 10], [1, 2, 3, 4], [[1]], [None], ["a"] * 7, [math.inf, 1, 1], [1.5, 2.5],
    {}, {"a": 1}, {"type": "Resize"}, {"DetResizeForTest": 7}, {"Global": 7}, [{"a": [1, {"b": 2}]}],
]
# raw YAML the dumper cannot write: aliases (their anchors defined at the top of the file by _anchors), deep
# nesting, tags, special floats, YAML syntax errors
FRAGMENTS = [
    "*l8", "*l5", "*l4", "*l2", "[*l4, *l4, *l4, *l4, *l4, *l4]", "{a: *l8}", "<<: *l4", "*s",
    "[" + ", ".join(["*s"] * 43) + "]", "[" + ", ".join(["*s"] * 100) + "]",
    "[" * 20000 + "]" * 20000, "{a: " * 20000 + "1" + "}" * 20000, "[" * 40 + "1" + "]" * 40, "[" * 30 + "1" + "]" * 30,
    ".inf", "-.inf", ".nan", "1.0e+400", "0x7fffffffffffffffffff", "!!binary aGVsbG8=", "!!set {a, b}",
    "2001-12-14t21:59:43.10-05:00", "!!python/object/apply:os.system [echo pwned]", "&r [1, *r]", "*nowhere",
    "!!float zz", "!!int 1.5", "!!str", "'''", "[1, 2", "{a: 1, a: 2}", "? [1, 2]\n  : 3", "&t " + "y" * 100_000,
]


def _anchors(fragment: str) -> str:
    """Definitions of the anchors ``fragment`` refers to: ``l0``..``lN`` (each nine copies of the one before,
    so defining ``l8`` is the billion-laughs file: 9**9 strings) and ``s`` (100,000 characters)."""
    refs = re.findall(r"\*(l\d|s)\b", fragment)
    top = max((int(r[1]) for r in refs if r.startswith("l")), default=-1)
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] if top >= 0 else []
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, top + 1)]
    if "s" in refs:
        lines.append("s: &s " + "y" * 100_000)
    return "".join(line + "\n" for line in lines)


BOMB = _anchors("*l8")
# keys the schema reads that the bases may not carry: added with bad values
KEYS = ["model_name", "arch", "Hpi", "backend_configs", "tensorrt", "dynamic_shapes", "trt_dynamic_shapes",
        "image_shape", "input_shape", "keep_ratio", "resize_long", "limit_type", "limit_side_len", "img_mode",
        "channel_first", "scale", "mean", "std", "order", "resize_short", "size", "interpolation", "interp",
        "target_size", "is_scale", "norm_type", "stride", "size_divisor", "thresh", "box_thresh", "max_candidates",
        "unclip_ratio", "use_dilation", "score_mode", "box_type", "use_space_char", "character_dict", "topk",
        "label_list", "draw_threshold", "Topk", "name", "transform_ops", "transforms", "type", "Global",
        "PreProcess", "PostProcess", "Preprocess", "Deploy"]


def bases() -> dict[str, tuple[str, str]]:
    """kind -> (config file name, text): the six kinds of repogen.examples.pipeline_exports's exports."""
    from repogen.examples import pipeline_exports as testing

    return {"ocr_det": ("inference.yml", testing.OCR_DET_YML), "ocr_rec": ("inference.yml", testing.ocr_rec_yml()),
            "ppdet": ("infer_cfg.yml", testing.PPDET_YML), "layout": ("inference.yml", testing.LAYOUT_YML),
            "seg": ("deploy.yaml", testing.SEG_YML), "cls": ("inference.yml", testing.CLS_YML)}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return doc


def make_case(rng: random.Random, base_text: str) -> tuple[str, bytes]:
    """(description, file bytes) of one mutation of ``base_text``."""
    import copy

    import yaml

    doc = yaml.safe_load(base_text)
    roll = rng.random()
    if roll < 0.80:  # structural: a value replaced, or a key added, with a Python value or a raw fragment
        doc = copy.deepcopy(doc)
        raw = rng.random() < 0.3
        value: Any = SLOT if raw else copy.deepcopy(rng.choice(VALUES))
        if rng.random() < 0.3:
            maps = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
            target, key = rng.choice(maps), rng.choice(KEYS)
            _get(doc, target)[key] = value
            where = ".".join(map(str, target + (key,)))
        else:
            target = rng.choice(_paths(doc)[1:])
            _set(doc, target, value)
            where = ".".join(map(str, target))
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1 << 20)
        if raw:
            fragment = rng.choice(FRAGMENTS)
            # a multi-line fragment lands as a flow value on one line, or as written when it is a mapping line
            text = _anchors(fragment) + text.replace(SLOT, fragment, 1)
            return f"{where} = raw {fragment[:40]!r}", text.encode()
        return f"{where} = {repr(value)[:40]}", text.encode()
    data = base_text.encode()
    if roll < 0.86:
        cut = rng.randrange(len(data))
        return f"truncated at {cut}", data[:cut]
    if roll < 0.92:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return "bytes flipped", bytes(buf)
    if roll < 0.95:
        return "duplicated", data + b"\n" + data
    if roll < 0.97:
        return "two documents", data + b"---\n" + data
    if roll < 0.995:
        return "over the size cap", data + b"#" + b"x" * LIMITS.max_bytes + b"\n"
    # a flat list just over the node cap (rare: PyYAML's pure-Python composer takes seconds for it)
    return "over the node cap", data + b"fuzz_nodes: [" + b",".join([b"1"] * LIMITS.max_nodes) + b"]\n"


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def generate(root: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Write ``n`` cases under ``root`` (one folder each, the config under its exporter's file name)."""
    rng = random.Random(seed)
    kinds = bases()
    cases = []
    for i in range(n):
        kind = sorted(kinds)[i % len(kinds)]
        name, text = kinds[kind]
        desc, data = make_case(rng, text)
        folder = root / f"{i:05d}"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        cases.append({"i": i, "kind": kind, "desc": desc, "file": str(folder / name)})
    return cases


# -- the child ---------------------------------------------------------------------------------------------------

def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"over {CASE_SECONDS} s")


def worker(files: list[str]) -> None:
    """Read each config; one JSON line per case on stdout."""
    import signal
    import traceback

    from repogen.errors import ConfigError
    from repogen.pipelines.deploy_config import read_deploy_config, read_model_facts

    signal.signal(signal.SIGALRM, _alarm)
    for file in files:
        started = time.perf_counter()
        result: dict[str, Any] = {"file": file}
        signal.alarm(CASE_SECONDS)
        try:
            cfg = read_deploy_config(file)
            facts = read_model_facts(file)
            payload = {"transforms": cfg.transforms, "post": cfg.post, "labels": cfg.labels,
                       "characters": cfg.characters, "shapes": cfg.dynamic_shapes, "name": cfg.default_name("x"),
                       "facts": [facts.kind, facts.default_name("x"), facts.dynamic_shapes]}
            json.dumps(payload, allow_nan=False)  # what pipeline.json will hold: no inf, no nan, no odd types
            result.update(outcome="accepted", sane=_finite(payload))
        except ConfigError as exc:
            msg = str(exc)
            result.update(outcome="refused", one_line="\n" not in msg and msg.startswith(file + ": "),
                          message=msg[:300])
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            result.update(outcome="traceback", error=f"{type(exc).__name__}: {str(exc)[:200]}",
                          where=traceback.format_exc().strip().splitlines()[-3:-1])
        finally:
            signal.alarm(0)
        result["seconds"] = round(time.perf_counter() - started, 4)
        print(json.dumps(result), flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"maxrss_kb": usage.ru_maxrss}), flush=True)


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def run_reader(cases: list[dict[str, Any]]) -> tuple[dict[str, dict], int]:
    """Results by file, and the child's peak RSS (kB). A child that dies or stalls costs the case it was on
    (recorded as a crash or a hang) and is restarted after it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results: dict[str, dict] = {}
    todo = [c["file"] for c in cases]
    peak = 0
    while todo:
        listing = Path(todo[0]).parent.parent / f"files-{len(todo)}.json"
        listing.write_text(json.dumps(todo))
        proc = subprocess.Popen([sys.executable, __file__, "--worker", str(listing)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_cap)
        try:
            out, err = proc.communicate(timeout=60 + 0.5 * len(todo))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        for line in out.splitlines():
            row = json.loads(line)
            if "maxrss_kb" in row:
                peak = max(peak, row["maxrss_kb"])
            else:
                results[row["file"]] = row
        todo = [f for f in todo if f not in results]
        if todo:  # the child died or hung on todo[0]
            results[todo[0]] = {"file": todo[0], "outcome": "hang" if proc.returncode in (-9, None) else "died",
                                "error": f"rc {proc.returncode}: {err[-300:]}", "seconds": None}
            todo = todo[1:]
    return results, peak


def run_cli(case: dict[str, Any], out: Path, no_pipeline: bool) -> dict[str, Any]:
    """``repogen build`` on the bundled example with the case's config beside it: rc, seconds, peak RSS."""
    model = Path(case["file"]).parent
    for f in EXAMPLE.iterdir():
        if f.suffix in (".pdmodel", ".pdiparams"):
            shutil.copyfile(f, model / f.name)
    args = [sys.executable, "-m", "repogen.cli", "build", str(model), "--out", str(out), "--target", "numpy",
            "--no-check"] + (["--no-pipeline", "--name", "X"] if no_pipeline else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    logs = model / "cli.stdout", model / "cli.stderr"
    killed = threading.Event()
    with logs[0].open("w") as stdout, logs[1].open("w") as stderr:
        proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, preexec_fn=_cap)

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(CASE_SECONDS, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest child's so far
        timer.cancel()
    seconds = time.perf_counter() - started
    err = logs[1].read_text(errors="replace")
    errors = [ln for ln in err.replace("\r", "\n").splitlines() if "error:" in ln]
    return {"file": case["file"], "rc": os.waitstatus_to_exitcode(status), "hung": killed.is_set(),
            "seconds": round(seconds, 2), "traceback": "Traceback" in err, "error_lines": errors,
            "maxrss_kb": usage.ru_maxrss}


def _reason(message: str) -> str:
    """A refusal without its file, key path and values: what kind of check refused it."""
    text = message.split(": ", 1)[1] if ": " in message else message
    text = re.sub(r"^[\w.\[\]'-]+(: | )", "", text)  # the key path
    text = re.sub(r"\(got .*|, got .*|\(near line.*|at line \d+, column \d+", "", text)
    return " ".join(re.sub(r"-?\d[\d.e+-]*", "N", text).split()[:8])


def fuzz(root: Path, n: int, cli_n: int, seed: int) -> dict[str, Any]:
    cases = generate(root / "cases", n, seed)
    started = time.perf_counter()
    results, peak = run_reader(cases)
    reader_seconds = time.perf_counter() - started
    cli = []
    for j, case in enumerate(cases[:: max(1, n // max(cli_n, 1))][:cli_n]):
        cli.append(run_cli(case, root / "out" / f"{case['i']:05d}", no_pipeline=bool(j % 2)))
    outcomes = Counter(r["outcome"] for r in results.values())
    by_kind = Counter((c["kind"], results[c["file"]]["outcome"]) for c in cases)
    slowest = max((r["seconds"] or 0) for r in results.values())
    return {"cases": n, "seed": seed, "outcomes": dict(outcomes), "by_kind": {f"{k}/{o}": v for (k, o), v in
                                                                           sorted(by_kind.items())},
            "reader_seconds": round(reader_seconds, 1), "reader_slowest_case_s": slowest,
            "reader_peak_rss_mb": round(peak / 1024, 1),
            "bad": [dict(r, desc=next(c["desc"] for c in cases if c["file"] == f)) for f, r in results.items()
                    if r["outcome"] not in ("accepted", "refused") or not r.get("one_line", True)
                    or not r.get("sane", True)],
            "refusal_reasons": dict(Counter(_reason(r["message"]) for r in results.values()
                                            if r["outcome"] == "refused").most_common(25)),
            "refusal_sample": [r["message"].split(": ", 1)[1][:160] for r in list(results.values())[:: max(1, n // 8)]
                               if r["outcome"] == "refused"],
            "cli_runs": len(cli), "cli_rc": dict(Counter(c["rc"] for c in cli)),
            "cli_sample": [c["error_lines"][0][:200] for c in cli[:4] if c["error_lines"]],
            "cli_slowest_s": max((c["seconds"] for c in cli), default=0),
            "cli_peak_rss_mb": round(max((c["maxrss_kb"] for c in cli), default=0) / 1024, 1),
            "cli_bad": [c for c in cli if c["rc"] not in (0, 2) or c["hung"] or c["traceback"]
                        or (c["rc"] == 2 and len(c["error_lines"]) != 1)]}


def test_deploy_config_fuzz(tmp_path):
    report = fuzz(tmp_path, CASES, CLI_CASES, SEED)
    print(json.dumps({k: v for k, v in report.items() if k not in ("bad", "cli_bad")}, indent=1))
    assert not report["bad"], json.dumps(report["bad"][:5], indent=1)
    assert not report["cli_bad"], json.dumps(report["cli_bad"][:5], indent=1)
    # the mutations reach the schema: most are refused, some (a value the reader ignores) are accepted
    assert report["outcomes"].get("refused", 0) > CASES // 2 and report["outcomes"].get("accepted", 0) > 0
    assert report["reader_slowest_case_s"] < CASE_SECONDS and report["cli_slowest_s"] < CASE_SECONDS
    assert report["cli_peak_rss_mb"] < 1024 and report["reader_peak_rss_mb"] < 1024


def test_the_fuzzer_finds_a_traceback_in_a_careless_reader(tmp_path, monkeypatch):
    """The checks above can fail: a reader that does ``data["Global"].get(...)`` (the pre-schema code's
    ``Global: 7`` bug) is caught as a traceback, and a reader that stringifies an alias bomb blows a memory cap
    (256 MB here, so the demonstration is quick; the fuzzer's children run under 1 GB)."""
    careless = tmp_path / "careless.py"
    careless.write_text(
        "import yaml\n"
        "def read_deploy_config(path):\n"
        "    data = yaml.safe_load(open(path).read())\n"
        "    return str((data.get('Global') or {}).get('model_name'))\n")
    from repogen.examples import pipeline_exports as testing

    bomb = tmp_path / "bomb" / "inference.yml"
    bomb.parent.mkdir()
    bomb.write_text(BOMB + "Global:\n  model_name: *l8\n")
    seven = tmp_path / "seven" / "inference.yml"
    seven.parent.mkdir()
    seven.write_text(testing.CLS_YML.replace("Global:\n  model_name: PP-LCNet_x1_0", "Global: 7"))
    code = ("import sys, resource; sys.path.insert(0, %r); import careless\n"
            "resource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n"
            "careless.read_deploy_config(sys.argv[1])\n") % (str(tmp_path), 256 << 20, 256 << 20)
    for path, error in ((seven, "AttributeError"), (bomb, "MemoryError")):
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" in proc.stderr and error in proc.stderr, proc.stderr[-500:]


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(json.loads(Path(sys.argv[2]).read_text()))
elif __name__ == "__main__":  # a report without pytest: python tests/test_deploy_config_fuzz.py [cases] [cli]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rep = fuzz(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else CASES,
                   int(sys.argv[2]) if len(sys.argv) > 2 else CLI_CASES, SEED)
        print(json.dumps(rep, indent=1))
