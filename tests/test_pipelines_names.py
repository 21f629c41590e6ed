"""Model names from the exporter's ``Global.model_name`` and the spec's ``[ocr_system]`` table: spec-time
checks on folders holding only deploy configs (no Paddle, no server), and one build with two recognizers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repogen.errors import ConfigError
from repogen.examples import pipeline_exports as testing
from repogen.build.spec import load_spec_file, spec_from_table

DET, REC, TEXTLINE, CLS = "PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec", "PP-LCNet_x0_25_textline_ori", "PP-LCNet_x1_0"
REC_B = "PP-OCRv5_server_rec"


def _export(root: Path, folder: str, config: str, text: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / config).write_text(text, encoding="utf-8")
    return root / folder


@pytest.fixture
def exports(tmp_path) -> Path:
    """Folders as exporters leave them (deploy configs only: spec checks never read the model)."""
    _export(tmp_path, "det", "inference.yml", testing.OCR_DET_YML)
    _export(tmp_path, "rec_a", "inference.yml", testing.ocr_rec_yml())
    _export(tmp_path, "rec_b", "inference.yml", testing.ocr_rec_yml().replace(REC, REC_B))
    _export(tmp_path, "ori", "inference.yml", testing.TEXTLINE_YML)
    _export(tmp_path, "cls", "inference.yml", testing.CLS_YML)
    _export(tmp_path, "seg", "deploy.yaml", testing.SEG_YML)
    _export(tmp_path, "yolo", "infer_cfg.yml", testing.PPDET_YML)
    return tmp_path


def _spec(root: Path, folders: list[str], system: str = "") -> Path:
    text = system + "".join(f'[[model]]\nsource = "{f}"\n' for f in folders)
    (root / "repogen.toml").write_text(text, encoding="utf-8")
    return root / "repogen.toml"


def test_default_name_is_the_exporters_model_name(tmp_path):
    folder = _export(tmp_path, "my_export", "inference.yml",
                     testing.OCR_DET_YML.replace(DET, "PP-OCRv4_mobile_det"))
    assert spec_from_table({"source": str(folder)}, tmp_path, "m").name == "PP-OCRv4_mobile_det"
    assert spec_from_table({"source": str(folder), "name": "mine"}, tmp_path, "m").name == "mine"  # the user wins
    # made Triton-safe: a folder name, a URL segment and a metric label
    odd = _export(tmp_path, "odd", "inference.yml", testing.OCR_DET_YML.replace(DET, "../PP OCR/v4 det"))
    assert spec_from_table({"source": str(odd)}, tmp_path, "m").name == "PP_OCR_v4_det"
    # PaddleDetection's arch (YOLO) and PaddleSeg configs name no model: the folder does
    assert spec_from_table({"source": str(_export(tmp_path, "yolo", "infer_cfg.yml", testing.PPDET_YML))},
                           tmp_path, "m").name == "yolo"
    assert spec_from_table({"source": str(_export(tmp_path, "seg", "deploy.yaml", testing.SEG_YML))},
                           tmp_path, "m").name == "seg"


def test_same_model_name_twice_is_one_error_naming_both(exports):
    shutil.copytree(exports / "rec_a", exports / "rec_copy")
    with pytest.raises(ConfigError, match=f"model name '{REC}' appears twice") as exc:
        load_spec_file(_spec(exports, ["rec_a", "rec_copy"]))
    assert str(exports / "rec_a") in str(exc.value) and str(exports / "rec_copy") in str(exc.value)
    assert "`name`" in str(exc.value)
    # the command line: exit 2, one line, no traceback, nothing written
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(exports / "rec_a"),
                           str(exports / "rec_copy"), "--out", str(exports / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "appears twice" in proc.stderr and "rec_copy" in proc.stderr
    assert "Traceback" not in proc.stderr and not (exports / "out").exists()


def test_ocr_system_key_resolves_members(exports):
    models = ["det", "rec_a", "rec_b", "ori", "cls", "seg"]
    assert load_spec_file(_spec(exports, models)).ocr_system is None  # no key: automatic, as before
    assert load_spec_file(_spec(exports, models, "ocr_system = false\n")).ocr_system.enabled is False
    with pytest.raises(ConfigError, match=r"model\[0\]: ocr_system is a top-level key: write it before"):
        load_spec_file(_spec(exports, [], '[[model]]\nsource = "det"\nocr_system = false\n'))
    chosen = load_spec_file(_spec(exports, models, f'[ocr_system]\nrecognizer = "{REC_B}"\n')).ocr_system
    # the others are the build's only detector and only text-line classifier
    assert (chosen.name, chosen.detector, chosen.recognizer, chosen.classifier) == ("ocr_system", DET, REC_B, TEXTLINE)
    chosen = load_spec_file(_spec(exports, models, f'[ocr_system]\nname = "ocr"\nrecognizer = "{REC}"\n'
                                                   'classifier = false\n')).ocr_system
    assert (chosen.name, chosen.recognizer, chosen.classifier) == ("ocr", REC, None)


@pytest.mark.parametrize("system,match", [
    ("[ocr_system]\n", rf"ocr_system.recognizer: the build holds 2 models .*text recognizer.*: {REC}, {REC_B}; name one"),
    ('[ocr_system]\nrecognizer = "nope"\n', r"ocr_system.recognizer: 'nope' is not a model of this build"),
    (f'[ocr_system]\nrecognizer = "{REC}"\ndetector = "{REC_B}"\n',
     rf"ocr_system.detector: '{REC_B}' is not a text detector.*makes it a ocr_rec model"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nclassifier = "{CLS}"\n',
     rf"ocr_system.classifier: '{CLS}' is not a text-line orientation classifier.*classification model"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nclassifier = "seg"\n', "'seg' is not a text-line .* segmentation"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nclassifier = 3\n', r"ocr_system.classifier: expected a model name or false"),
    (f'[ocr_system]\nrecognizer = "{REC}"\ndetectr = "x"\n', r"ocr_system: unknown key 'detectr'"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nname = "seg"\n', r"ocr_system.name: 'seg' is already a model"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nname = "my_post"\n', r"ocr_system.name: .* ends like a pipeline stage"),
    (f'[ocr_system]\nrecognizer = "{REC}"\nname = "a/b"\n', r"ocr_system.name: .*path separator"),
    ("ocr_system = true\n", r"ocr_system: expected a table"),
    ("[other]\n", r"unknown top-level key 'other'"),
])
def test_ocr_system_key_mistakes_are_one_error_each(exports, system, match):
    path = _spec(exports, ["det", "rec_a", "rec_b", "ori", "cls", "seg"], system)
    with pytest.raises(ConfigError, match=match) as exc:
        load_spec_file(path)
    assert str(path) in str(exc.value)


def test_ocr_system_key_needs_a_detector(exports):
    with pytest.raises(ConfigError, match="ocr_system: the build holds no text detector"):
        load_spec_file(_spec(exports, ["rec_a"], "[ocr_system]\n"))


@pytest.fixture(scope="module")
def two_recognizers(tmp_path_factory) -> Path:
    """A detector and two recognizers (the second export's inference.yml names another model)."""
    root = tmp_path_factory.mktemp("two-recs")
    testing.save_models(root, ("ocr_det", "ocr_rec"))
    shutil.copytree(root / "ocr_rec", root / "ocr_rec_b")
    cfg = root / "ocr_rec_b" / "inference.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(REC, REC_B), encoding="utf-8")
    return root


def test_build_with_two_recognizers_uses_the_chosen_one(two_recognizers):
    from repogen.build.flow import build_repository

    root = two_recognizers
    folders = ["ocr_det", "ocr_rec", "ocr_rec_b"]
    tail = 'target = "paddle"\ncheck = false\n'
    spec = root / "chosen.toml"
    spec.write_text("".join(f'[[model]]\nsource = "{f}"\n{tail}' for f in folders)
                    + f'[ocr_system]\nname = "reader"\nrecognizer = "{REC_B}"\n', encoding="utf-8")
    report = build_repository(load_spec_file(spec), root / "repo", progress=False)
    assert [m.name for m in report.models if m.role == "model"] == [DET, REC, REC_B]
    assert [m.name for m in report.models if m.role == "system"] == ["reader"]
    data = json.loads((root / "repo" / "reader" / "1" / "pipeline.json").read_text())
    assert data["det"]["model"] == DET and data["rec"]["model"] == REC_B and "cls" not in data
    assert "name: \"reader\"" in (root / "repo" / "reader" / "config.pbtxt").read_text()
    assert not (root / "repo" / "ocr_system").exists()

    # without the key: no system, and the build says why in one warning
    spec.write_text("".join(f'[[model]]\nsource = "{f}"\n{tail}' for f in folders), encoding="utf-8")
    report = build_repository(load_spec_file(spec), root / "auto", progress=False)
    assert not (root / "auto" / "ocr_system").exists()
    why = [w for w in report.warnings if "ocr_system not built" in w]
    assert len(why) == 1 and f"2 recognizer(s) ({REC}, {REC_B})" in why[0] and "[ocr_system]" in why[0]


def test_command_line_deploy_config_names_the_model(exports):
    from repogen.cli import build_parser
    from repogen.build.spec import EXAMPLE_DIR, specs_from_options
    from repogen.cli.build import build_options

    def specs(*argv):
        return specs_from_options(build_options(build_parser().parse_args(["build", "--out", "o", *argv])))

    cfg = exports / "det" / "inference.yml"
    assert [s.name for s in specs(str(EXAMPLE_DIR), "--deploy-config", str(cfg))] == [DET]
    assert [s.name for s in specs(str(EXAMPLE_DIR), "--deploy-config", str(cfg), "--name", "n")] == ["n"]
    assert [s.name for s in specs(str(exports / "rec_b"))] == [REC_B]
    assert [s.name for s in specs(str(exports / "rec_b"), "--name", "r")] == ["r"]


def test_automatic_system_says_why_it_left_members_out():
    from repogen.pipelines.ensemble import GeneratedModel, ocr_system

    def pre(model: str, kind: str, labels=None, transforms=()) -> GeneratedModel:
        data = {"kind": kind, "labels": labels, "roles": {"x": "image"}, "transforms": list(transforms),
                "model_outputs": ["out"], "color": "BGR", "min_side": 8, "max_side": 10000, "post": {"use_space_char": True},
                "characters": ["a"]}
        return GeneratedModel(f"{model}_pre", "", meta={"model": model, "pipeline": data, "max_batch_size": 8,
                                                        "instances": 1})

    rec = [{"op": "rec_resize", "image_shape": [3, 48, 320]}]
    det, rec_a, rec_b = pre("d", "ocr_det"), pre("a", "ocr_rec", transforms=rec), pre("b", "ocr_rec", transforms=rec)
    ori = [pre(n, "classification", ["0_degree", "180_degree"]) for n in ("o1", "o2")]
    heard: list[str] = []
    assert ocr_system([det, rec_a, rec_b], warn=heard.append) == []
    assert heard == ["WARNING: ocr_system not built: the build holds 1 text detector(s) (d) and 2 recognizer(s) "
                     "(a, b); choose them with [ocr_system] detector/recognizer in a spec file"]
    heard.clear()
    (system,) = ocr_system([det, rec_a, *ori], warn=heard.append)
    assert "cls" not in json.loads(system.files["1/pipeline.json"]) and len(heard) == 1 and "o1, o2" in heard[0]
    (system,) = ocr_system([det, rec_a, ori[0]], warn=heard.append)
    assert json.loads(system.files["1/pipeline.json"])["cls"]["model"] == "o1" and len(heard) == 1


def test_spec_keys_pipeline_and_deploy_config(exports, tmp_path):
    """``pipeline = false`` and ``deploy_config`` are the spec's --no-pipeline and --deploy-config; the named
    config gives the default name; a missing file or a non-boolean is one error naming the key."""
    cfg = exports / "rec_b" / "inference.yml"
    spec = spec_from_table({"source": str(exports / "det"), "deploy_config": str(cfg), "pipeline": False},
                           tmp_path, "spec: model[0]")
    assert spec.name == REC_B and spec.deploy_config == cfg.resolve() and spec.pipeline is False
    with pytest.raises(ConfigError, match=r"model\[0\]\.deploy_config: .*does not exist"):
        spec_from_table({"source": str(exports / "det"), "deploy_config": "nope.yml"}, tmp_path, "spec: model[0]")
    with pytest.raises(ConfigError, match=r"model\[0\]\.pipeline"):
        spec_from_table({"source": str(exports / "det"), "pipeline": "no"}, tmp_path, "spec: model[0]")


def test_examples_command_writes_exports_that_build_into_pipelines(tmp_path):
    """`repogen examples OUT` writes the small exports with their deploy configs; a build of two of them with no
    flags gives their pipelines and the OCR system (what docs/pipelines.md tells a new user to try)."""
    import subprocess
    import sys

    out = tmp_path / "ex"
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "examples", str(out), "--kinds", "ocr_det,ocr_rec",
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(proc.stdout)
    assert sorted(saved) == ["ocr_det", "ocr_rec"] and all((Path(p) / "inference.yml").is_file() for p in saved.values())
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", saved["ocr_det"], saved["ocr_rec"], "--out",
                           str(tmp_path / "repo"), "--target", "paddle", "--no-check", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    roles = {m["name"]: m["role"] for m in json.loads(proc.stdout)["models"]}
    assert roles["ocr_system"] == "system" and roles["PP-OCRv5_mobile_det_pipeline"] == "pipeline"
    bad = subprocess.run([sys.executable, "-m", "repogen.cli", "examples", str(out), "--kinds", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "choose from" in bad.stderr and "Traceback" not in bad.stderr
