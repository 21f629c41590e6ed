"""Deploy configs as an attacker or a careless user writes them (issue 25, items 1-6): wrong types, nesting,
alias bombs, huge files, symlinks out of the model folder, nonsense values and labels that do not match the
model. Each is one ConfigError line naming the file, the key path and what was expected; the CLI exits 2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from repogen.errors import ConfigError
from repogen.examples import pipeline_exports as testing
from repogen.pipelines.bounded_yaml import YamlLimits, load_yaml_text, read_regular_file
from repogen.pipelines.config_schema import MAX_LIST
from repogen.pipelines.deploy_config import (LIMITS, check_labels, find_deploy_config, read_deploy_config,
                                             read_model_facts)

EXAMPLE = Path(__file__).resolve().parents[1] / "repogen" / "examples" / "tiny_cnn"
# a classifier config for the bundled example (10 classes, 3x32x32 input) that builds: the refusals below come
# from the one edit each makes, not from a config the example could never take
TINY_CLS_YML = """\
Global:
  model_name: tiny
PreProcess:
  transform_ops:
  - ResizeImage:
      resize_short: 40
  - CropImage:
      size: 32
  - NormalizeImage:
      mean: [0.485, 0.456, 0.406]
      std: [0.229, 0.224, 0.225]
      scale: 0.00392156862745098
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 2
    label_list: [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9]
"""


def _write(tmp_path: Path, text: str, name: str = "inference.yml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as exc:
        read_deploy_config(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def _bomb(levels: int = 8) -> str:
    """Anchors ``l0``..``l<levels>``, each nine copies of the one before: ``*l8`` stands for 9**9 strings."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _expanded_nodes(value: object, stop: int) -> int:
    """Nodes of ``value`` with shared sub-lists counted each time they appear (as str() or a walk sees them)."""
    count, todo = 0, [value]
    while todo and count < stop:
        v = todo.pop()
        count += 1
        if isinstance(v, list):
            todo.extend(v)
        elif isinstance(v, dict):
            todo.extend(v.values())
    return count


# -- 1. wrong types: one line with the key path ----------------------------------------------------------------

@pytest.mark.parametrize("base,edit,path,expected", [
    (testing.CLS_YML, ("Global:\n  model_name: PP-LCNet_x1_0", "Global: 7"), "Global", "expected a mapping"),
    (testing.CLS_YML, ("topk: 3", "topk: zz"), "PostProcess.Topk.topk", "expected an integer"),
    (testing.CLS_YML, ("topk: 3", "topk: true"), "PostProcess.Topk.topk", "expected a number"),
    (testing.OCR_DET_YML, ("Hpi:\n", "Hpi: 7\nHpx:\n"), "Hpi", "expected a mapping"),
    (testing.CLS_YML, ("size: 64", "size: [1]"), "PreProcess.transform_ops[1].CropImage.size",
     "expected at least 2 items"),
    (testing.CLS_YML, ("resize_short: 72", "resize_short: .inf"), "PreProcess.transform_ops[0].ResizeImage.resize_short",
     "expected a finite number"),
    (testing.CLS_YML, ("resize_short: 72", "resize_short: 1.0e+400"), "ResizeImage.resize_short", "finite"),
    (testing.CLS_YML, ("model_name: PP-LCNet_x1_0", "model_name: {a: 1}"), "Global.model_name", "expected a string"),
    (testing.OCR_DET_YML, ("resize_long: 320", "resize_long: zz"),
     "PreProcess.transform_ops[2].DetResizeForTest.resize_long", "expected an integer"),
    (testing.OCR_DET_YML, ("thresh: 0.3", "thresh: [0.3]"), "PostProcess.thresh", "expected a number"),
    (testing.PPDET_YML, ("keep_ratio: true", "keep_ratio: 7"), "Preprocess[0].Resize.keep_ratio",
     "expected true or false"),
    (testing.PPDET_YML, ("- type: Permute", "- type: [Permute]"), "Preprocess[2]", "expected a mapping with a 'type'"),
    (testing.SEG_YML, ("  transforms:", "  transforms: 5\n  x:"), "Deploy.transforms", "expected a list"),
    (testing.OCR_DET_YML, ("  - ToCHWImage: null", "  - ToCHWImage: 5"), "PreProcess.transform_ops[4].ToCHWImage",
     "expected a mapping of arguments"),
    (testing.OCR_DET_YML, ("PostProcess:\n", "PostProcess: [1]\nPostX:\n"), "PostProcess", "expected a mapping"),
    (testing.LAYOUT_YML, ("        image: [[1, 3, 480, 480]", "        image: [[1, 3, zz, 480]"),
     "trt_dynamic_shapes['image']", "integer dims"),
])
def test_wrong_types_are_one_error_with_the_key_path(tmp_path, base, edit, path, expected):
    assert edit[0] in base
    read_deploy_config(_write(tmp_path, base, "ok.yml"))  # the base itself is fine
    _refused(_write(tmp_path, base.replace(edit[0], edit[1], 1)), path, expected)


def test_identity_errors_reach_the_model_only_reader_too(tmp_path):
    """--no-pipeline reads only the model's facts; a bad value there is still an error, not a traceback."""
    for edit in (("Global:\n  model_name: PP-LCNet_x1_0", "Global: 7"), ("model_name: PP-LCNet_x1_0", "model_name: [x]")):
        path = _write(tmp_path, testing.CLS_YML.replace(*edit))
        with pytest.raises(ConfigError, match=r": Global(\.model_name)?: expected"):
            read_model_facts(path)


# -- 2./3./4. nesting, alias bombs, size ------------------------------------------------------------------------

def test_nesting_20000_deep_is_one_error(tmp_path):
    for text in ("Global: " + "[" * 20000 + "]" * 20000, "Global: " + "{a: " * 20000 + "1" + "}" * 20000,
                 "Global:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1000))):
        msg = _refused(_write(tmp_path, text), "nested deeper than 32 levels")
        assert len(msg) < 300


@pytest.mark.parametrize("where", ["Global:\n  model_name: *l8\n",
                                   testing.CLS_YML.split("PostProcess:")[0] + "PostProcess:\n  Topk:\n    topk: 3\n"
                                   "    label_list: *l8\n",
                                   testing.ocr_rec_yml().split("  character_dict:")[0] + "  character_dict: *l8\n"])
def test_alias_bombs_are_refused_before_anything_expands(tmp_path, where):
    text = _bomb() + where
    # the file is a real bomb: PyYAML alone loads it in a blink, and a walk of the result never ends
    naive = yaml.safe_load(text)
    assert _expanded_nodes(naive["l8"], stop=2_000_000) == 2_000_000
    path = _write(tmp_path, text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        _refused(path, f"expands to more than {LIMITS.max_nodes} YAML nodes")
        elapsed, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 20 << 20, (elapsed, peak)


def test_aliases_within_the_budget_still_load(tmp_path):
    """PaddleX itself writes ``trt_dynamic_shapes: &id001`` and ``dynamic_shapes: *id001``."""
    cfg = read_deploy_config(_write(tmp_path, testing.OCR_DET_YML))
    assert cfg.dynamic_shapes["x"][2] == [1, 3, 1280, 1280]
    assert load_yaml_text("a: &a [1, 2]\nb: [*a, *a]\n", "t") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


def test_valid_files_load_as_pyyaml_safe_load_reads_them():
    """The bounded loader is PyYAML's safe loader with a counting composer: the same values for every config
    the exports write, characters written as JSON escapes included (libyaml's scanner refuses the surrogate
    pairs JSON writes for emoji; PyYAML reads them as two code points, and so does this loader)."""
    import json

    texts = [testing.OCR_DET_YML, testing.ocr_rec_yml(list("ab中😀 '\":") + ["\\", "#", "&", "*x"]), testing.PPDET_YML,
             testing.LAYOUT_YML, testing.SEG_YML, testing.CLS_YML, testing.TEXTLINE_YML,
             "character_dict:\n" + "".join(f"- {json.dumps(c)}\n" for c in "😀é\u00a0\t"),
             "a: &x {b: [1, 2.5, .inf, ~, yes, 0x1F, 2001-12-14]}\nc: *x\nd: {<<: *x, e: 1}\n"]
    for text in texts:
        ours, theirs = load_yaml_text(text, "t"), yaml.safe_load(text)
        assert json.dumps(ours, default=str, sort_keys=True) == json.dumps(theirs, default=str, sort_keys=True)
    assert load_yaml_text(texts[1], "t")["PostProcess"]["character_dict"][2] == "中"


@pytest.mark.parametrize("text", ["Global: !!int 1.5\n", "Global: !!float zz\n", "Global: !!timestamp 2001-13-45\n",
                                  "Global: !!python/object/apply:os.system [echo pwned]\n", "Global: !!set [1, 2]\n"])
def test_tags_that_do_not_fit_are_yaml_errors(tmp_path, text):
    _refused(_write(tmp_path, text), "not valid YAML")


def test_recursive_aliases_and_several_documents(tmp_path):
    _refused(_write(tmp_path, "Global: &g {model_name: *g}\n"), "alias *g")
    _refused(_write(tmp_path, "Global: &g [1, *g]\n"), "recursive")
    _refused(_write(tmp_path, "Global: *nowhere\n"), "found undefined alias")
    _refused(_write(tmp_path, testing.CLS_YML + "---\nGlobal: {}\n"), "expected a single document in the stream")


def test_text_bombs_count_characters(tmp_path):
    """A long string repeated through aliases is as costly as a list: the characters it stands for count."""
    text = f"s: &s {'x' * 100_000}\nl1: &l1 [{', '.join(['*s'] * 100)}]\nGlobal:\n  model_name: [*l1, *l1]\n"
    _refused(_write(tmp_path, text), "characters of text")


def test_size_caps(tmp_path):
    big = tmp_path / "inference.yml"
    with big.open("w") as f:
        f.write(testing.CLS_YML)
        f.write("#" + "x" * (20 << 20) + "\n")  # 20 MB, nearly all of it a comment
    started = time.perf_counter()
    _refused(big, f"at most {LIMITS.max_bytes} are read")
    assert time.perf_counter() - started < 1.0
    labels = "[" + ", ".join(f"l{i}" for i in range(MAX_LIST + 1)) + "]"
    _refused(_write(tmp_path, testing.CLS_YML.replace("[circle, square, stripe, dots, blank, noise]", labels)),
             "PostProcess.Topk.label_list", f"at most {MAX_LIST} items")
    _refused(_write(tmp_path, testing.CLS_YML.replace("circle", "c" * 5000)), "label_list[0]", "at most 1000")
    with pytest.raises(ConfigError, match="expands to more than 1000 YAML nodes"):
        load_yaml_text("a: [" + ",".join(["1"] * 1001) + "]", "t", YamlLimits(max_nodes=1000))


@pytest.mark.skipif(os.environ.get("REPOGEN_SLOW_TESTS") != "1", reason="slow: set REPOGEN_SLOW_TESTS=1")
def test_size_caps_at_full_size(tmp_path):
    """The real caps: 10 M characters in a dictionary end at the list cap, a flat list over the node cap is
    refused while it is composed (pure-Python PyYAML: tens of seconds on a loaded 2-core machine)."""
    _refused(_write(tmp_path, testing.ocr_rec_yml(["a"] * (MAX_LIST + 1))), "PostProcess.character_dict",
             f"at most {MAX_LIST} items")
    nodes = "Global:\n  other: [" + ",".join(["1"] * (LIMITS.max_nodes + 1)) + "]\n"
    _refused(_write(tmp_path, nodes), f"more than {LIMITS.max_nodes} YAML nodes")


def test_limits_are_parameters():
    with pytest.raises(ConfigError, match="nested deeper than 2"):
        load_yaml_text("a: [[1]]", "t", YamlLimits(max_depth=2))
    assert load_yaml_text("a: [[1]]", "t", YamlLimits(max_depth=3)) == {"a": [[1]]}


def test_not_utf8_and_yaml_errors_echo_no_text(tmp_path):
    p = tmp_path / "inference.yml"
    p.write_bytes(b"Global: {model_name: \xff\xfe}\n")
    _refused(p, "not UTF-8")
    p.write_bytes(b"Global: {model_name: a\x04b}\n")
    _refused(p, "character #x0004 at character 22 is not allowed")
    secret = "SECRET-TOKEN-1234"
    msg = _refused(_write(tmp_path, f"Global: [{secret}\n  : : :"), "not valid YAML at line")
    assert secret not in msg


# -- 5. files: regular, inside the model folder ------------------------------------------------------------------

def test_symlink_out_of_the_model_folder_is_refused_unread(tmp_path):
    secret = tmp_path / "elsewhere" / "credentials"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key: SECRET-TOKEN-1234\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "inference.yml").symlink_to(secret)
    with pytest.raises(ConfigError, match="symlink to a file outside the model folder") as exc:
        find_deploy_config(model)
    assert "SECRET" not in str(exc.value)
    # a link inside the folder is the folder's own file
    (model / "inference.yml").unlink()
    (model / "real.yml").write_text(testing.CLS_YML)
    (model / "inference.yml").symlink_to("real.yml")
    assert read_deploy_config(find_deploy_config(model)).kind == "classification"


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "deploy.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="not a regular file"):
        read_regular_file(fifo, 1000, "deploy config")  # would block forever on open() without O_NONBLOCK
    assert time.perf_counter() - started < 1.0
    assert find_deploy_config(tmp_path) is None  # a FIFO beside a model is no config


# -- 6. nonsense values ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("base,edit,path", [
    (testing.CLS_YML, ("topk: 3", "topk: 0"), "PostProcess.Topk.topk"),
    (testing.CLS_YML, ("topk: 3", "topk: -2"), "PostProcess.Topk.topk"),
    (testing.CLS_YML, ("size: 64", "size: 0"), "CropImage.size[0]"),
    (testing.CLS_YML, ("size: 64", "size: [64, -5]"), "CropImage.size[1]"),
    (testing.CLS_YML, ("resize_short: 72", "resize_short: -1"), "ResizeImage.resize_short"),
    (testing.CLS_YML, ("resize_short: 72", "resize_short: 100000"), "ResizeImage.resize_short"),
    (testing.ocr_rec_yml(), ("image_shape: [3, 48, 320]", "image_shape: [3, 0, 320]"), "RecResizeImg.image_shape[1]"),
    (testing.ocr_rec_yml(), ("image_shape: [3, 48, 320]", "image_shape: 0"), "RecResizeImg.image_shape"),
    (testing.OCR_DET_YML, ("thresh: 0.3", "thresh: .inf"), "PostProcess.thresh"),
    (testing.OCR_DET_YML, ("box_thresh: 0.6", "box_thresh: .nan"), "PostProcess.box_thresh"),
    (testing.OCR_DET_YML, ("unclip_ratio: 1.5", "unclip_ratio: -1.5"), "PostProcess.unclip_ratio"),
    (testing.OCR_DET_YML, ("max_candidates: 1000", "max_candidates: 0"), "PostProcess.max_candidates"),
    (testing.OCR_DET_YML, ("std: [0.229, 0.224, 0.225]", "std: [0.229, 0, 0.225]"), "NormalizeImage.std[1]"),
    (testing.OCR_DET_YML, ("scale: 1./255.", "scale: 1./0."), "NormalizeImage.scale"),
    (testing.PPDET_YML, ("draw_threshold: 0.3", "draw_threshold: .inf"), "draw_threshold"),
    (testing.PPDET_YML, ("target_size: [320, 320]", "target_size: [-320, 320]"), "Resize.target_size"),
    (testing.PPDET_YML, ("stride: 32", "stride: -32"), "PadStride.stride"),
    (testing.SEG_YML, ("target_size: [256, 192]", "target_size: [0, 192]"), "Resize.target_size"),
    (testing.LAYOUT_YML, ("[1, 3, 480, 480], [8, 3, 480, 480]]", "[1, 3, 480, 480], [8, 3, 240, 480]]"),
     "trt_dynamic_shapes['image']"),
])
def test_nonsense_values_are_refused(tmp_path, base, edit, path):
    assert edit[0] in base
    _refused(_write(tmp_path, base.replace(edit[0], edit[1], 1)), f"{path}")


# -- labels against the output width -----------------------------------------------------------------------------

def _engine(*outputs: tuple[str, tuple[int, ...]]) -> SimpleNamespace:
    """What the build's engine description tells of the outputs: names and full shapes (-1: dynamic)."""
    return SimpleNamespace(outputs=[SimpleNamespace(name=n, dtype="float32", shape=s) for n, s in outputs])


def _classifier(width: int | None) -> SimpleNamespace:
    return _engine(("probs", (-1, width) if width else (-1, 6)))


class _Spec:
    name = "m"

    def __init__(self, labels: Path | None = None):
        self.labels = labels


def test_labels_checked_against_the_output_width(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, testing.CLS_YML.replace(
        "[circle, square, stripe, dots, blank, noise]", "[" + ", ".join(f"c{i}" for i in range(24)) + "]")))
    with pytest.raises(ConfigError, match=r"label_list has 24 labels but the model's output probs has 10 classes"):
        check_labels(_Spec(), cfg, _classifier(10), 8)
    check_labels(_Spec(), cfg, _classifier(24), 8)  # 24 classes: right
    check_labels(_Spec(), cfg, _classifier(None), 0)  # [M, 6] rows: the class count is not in the shape
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"l{i}\n" for i in range(24)))
    with pytest.raises(ConfigError, match=r"labels file .*labels.txt has 24 labels but .* has 10 classes"):
        check_labels(_Spec(labels), None, _classifier(10), 8)
    labels.write_text("".join(f"l{i}\n" for i in range(9)) + "last")  # no final newline: still 10 labels
    check_labels(_Spec(labels), None, _classifier(10), 8)


def test_recognizer_dictionary_checked_against_the_output_width(tmp_path):
    """PaddleX's CTCLabelDecode reads class i as ['blank'] + character_dict (+ ' ') [i]; the test recognizer
    (repogen.examples.pipeline_exports) returns len(CHARACTERS) + 2 classes, the official PP-OCRv4 one 6623 + 2."""
    rec = _engine(("softmax", (-1, -1, len(testing.CHARACTERS) + 2)))
    check_labels(_Spec(), read_deploy_config(_write(tmp_path, testing.ocr_rec_yml())), rec, 8)
    short = read_deploy_config(_write(tmp_path, testing.ocr_rec_yml(testing.CHARACTERS[:-1])))
    with pytest.raises(ConfigError, match=r"character_dict has 35 characters \(\+ blank \+ space = 37 classes\) "
                                          r"but the model's output softmax has 38 classes"):
        check_labels(_Spec(), short, rec, 8)
    no_space = read_deploy_config(_write(tmp_path, testing.ocr_rec_yml() + "  use_space_char: false\n"))
    with pytest.raises(ConfigError, match=r"36 characters \(\+ blank = 37 classes\)"):
        check_labels(_Spec(), no_space, rec, 8)


# -- the CLI: exit 2, one line, no traceback, for a pipeline build and for --no-pipeline --name X -------------

def _cli(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(src), "--out", str(out), "--target",
                           "numpy", "--no-check", *extra], capture_output=True, text=True, timeout=240)


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in re.split(r"[\r\n]", proc.stderr) if "error:" in ln]


@pytest.mark.parametrize("edit,fragment", [
    (("Global:\n  model_name: tiny", "Global: 7"), "Global: expected a mapping"),
    (("topk: 2", "topk: zz"), "PostProcess.Topk.topk: expected an integer"),
    (("topk: 2", "topk: 0"), "PostProcess.Topk.topk: expected a value >= 1"),
    (("size: 32", "size: [1]"), "CropImage.size"),
    (("resize_short: 40", "resize_short: .inf"), "ResizeImage.resize_short"),
    (("model_name: tiny", "model_name: {a: 1}"), "Global.model_name"),
    (("Global:", "Hpi: 7\nGlobal:"), "Hpi: expected a mapping"),
    (("label_list: [c0,", "label_list: [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, c0,"),
     "label_list has 24 labels but the model's output"),
])
def test_cli_refuses_with_exit_2_and_one_line(tmp_path, edit, fragment):
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    (model / "inference.yml").write_text(TINY_CLS_YML)
    if edit == (("Global:\n  model_name: tiny", "Global: 7")):  # the unedited config builds (checked once)
        ok = _cli(model, tmp_path / "ok")
        assert ok.returncode == 0, ok.stderr[-1500:]
    (model / "inference.yml").write_text(TINY_CLS_YML.replace(*edit, 1))
    for extra in ((), ("--no-pipeline", "--name", "X")):
        out = tmp_path / ("o" + "".join(extra))
        proc = _cli(model, out, *extra)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        lines = _error_lines(proc)
        assert len(lines) == 1 and fragment in lines[0], lines
        assert not out.exists()


def test_cli_symlinked_config_and_spec_labels(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model)
    secret = tmp_path / "secret.yml"
    secret.write_text("Global: {model_name: SECRET-TOKEN-1234}\n")
    (model / "inference.yml").symlink_to(secret)
    proc = _cli(model, tmp_path / "o")
    assert proc.returncode == 2 and "outside the model folder" in proc.stderr and "Traceback" not in proc.stderr
    assert "SECRET" not in proc.stderr + proc.stdout
    (model / "inference.yml").unlink()
    labels = tmp_path / "labels24.txt"
    labels.write_text("".join(f"l{i}\n" for i in range(24)))
    spec = tmp_path / "repogen.toml"
    spec.write_text(f'[[model]]\nsource = "{model}"\nname = "c"\nlabels = "{labels}"\ntarget = "numpy"\n'
                    "check = false\n")
    run = [sys.executable, "-m", "repogen.cli", "build", "--spec", str(spec), "--out"]
    proc = subprocess.run(run + [str(tmp_path / "s")], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert _error_lines(proc) == [f"repogen build: error: c: labels file {labels} has 24 labels but the model's "
                                  "output probs has 10 classes"]
    labels.write_text("".join(f"l{i}\n" for i in range(10)))
    proc = subprocess.run(run + [str(tmp_path / "s")], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-1500:]
