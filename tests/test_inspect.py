"""`repogen inspect` against what Paddle itself reports for the same saved models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import zoo
from repogen.cli import main

CASES = [("tensors", "pir"), ("tensors", "fluid-separate"), ("ifnet", "paddle2"), ("convnet", "fluid-combined")]


@pytest.fixture(scope="module")
def views() -> dict:
    return zoo.paddle_view([zoo.get(m, f) for m, f in CASES])


@pytest.mark.parametrize("model,fmt", CASES)
def test_inspect_json(model: str, fmt: str, views: dict, capsys: pytest.CaptureFixture) -> None:
    path = zoo.get(model, fmt)
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    view = views[str(path)]
    assert info["format"] == fmt
    assert info["pir_version"] == (4 if fmt == "pir" else None)
    assert [[v["name"], v["dtype"], v["shape"]] for v in info["inputs"]] == view["feeds"]
    assert [[v["name"], v["dtype"], v["shape"]] for v in info["outputs"]] == view["fetches"]
    assert info["ops"] == len(view["ops"])
    assert sum(info["op_histogram"].values()) == len(view["ops"]) + len(view["sub_block_ops"])
    assert info["parameters"]["tensors"] == len(view["params"])
    assert info["parameters"]["count"] == sum(int(np.prod(s)) for _, s, _ in view["params"].values())
    assert info["parameters"]["bytes"] == 4 * info["parameters"]["count"]  # all zoo parameters are fp32
    assert len(info["sub_blocks"]) == (2 if model == "ifnet" else 0)
    if "ops_without_converter" in info:
        assert set(info["ops_without_converter"]) <= set(info["op_histogram"])


def test_inspect_tables(capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(zoo.get("ifnet", "pir"))]) == 0
    out = capsys.readouterr().out
    for text in ("pir (PIR version 4)", "x", "fetch_name_0", "float32", "[?, 4]", "Sub-blocks", "if"):
        assert text in out, text


def test_inspect_error_is_one_line(tmp_path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "inference.json").write_text("{not json")
    (tmp_path / "inference.pdiparams").write_bytes(b"")
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repogen inspect: error:") and "inference.json" in err and "Traceback" not in err
