"""`repogen check` on the command line: table/JSON, exit codes, --inputs/--reference files."""

from __future__ import annotations

import json

import numpy as np

from repogen import zoo
from repogen.cli import main


def test_check_json_passes(capsys):
    path = zoo.get("mobilenet_v3_small", "paddle2")
    rc = main(["check", str(path), "--shape", "x:2x3x32x32", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["passed"]
    assert report["input_shapes"] == {"x": [2, 3, 32, 32]}
    assert all(o["rel_err"] <= 1e-5 and o["tolerance"] == 1e-5 for o in report["outputs"])


def test_check_reference_mismatch_fails(tmp_path, capsys):
    path = zoo.get("transformer", "pir")
    feeds = zoo.sample_feeds("transformer")
    ref = zoo.reference_outputs(path, feeds)
    np.savez(tmp_path / "in.npz", **feeds)
    np.savez(tmp_path / "good.npz", **ref)
    np.savez(tmp_path / "bad.npz", **{k: v * 1.01 for k, v in ref.items()})
    assert main(["check", str(path), "--inputs", str(tmp_path / "in.npz"), "--reference", str(tmp_path / "good.npz")]) == 0
    capsys.readouterr()
    rc = main(["check", str(path), "--inputs", str(tmp_path / "in.npz"), "--reference", str(tmp_path / "bad.npz"),
               "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and not report["passed"]
    assert 0.005 < report["outputs"][0]["rel_err"] < 0.02


def test_check_lists_unsupported_ops(capsys):
    # control flow (`if`) has no converter yet; when one lands, point this at another unconvertible model
    rc = main(["check", str(zoo.get("ifnet", "pir")), "--shape", "x:2x4", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["unsupported"]
    assert {"position", "op", "outputs"} <= set(report["unsupported"][0])


def test_check_dynamic_dims_need_shape(capsys):
    rc = main(["check", str(zoo.get("transformer", "pir"))])
    assert rc == 2 and "--shape" in capsys.readouterr().err
