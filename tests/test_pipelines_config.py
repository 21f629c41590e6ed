"""Deploy-config reading: PaddleX inference.yml, PaddleDetection infer_cfg.yml, PaddleSeg deploy.yaml."""

from __future__ import annotations

import pytest

from repogen.errors import ConfigError
from repogen.examples import pipeline_exports as testing
from repogen.pipelines.deploy_config import find_deploy_config, input_roles, read_deploy_config


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_ocr_det_config(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, "inference.yml", testing.OCR_DET_YML))
    assert cfg.kind == "ocr_det" and cfg.fmt == "paddlex" and cfg.color == "BGR"
    assert cfg.model_name == "PP-OCRv5_mobile_det" and cfg.default_name("x") == "PP-OCRv5_mobile_det"
    assert cfg.dynamic_shapes == {"x": [[1, 3, 32, 32], [1, 3, 736, 736], [1, 3, 1280, 1280]]}
    assert [t["op"] for t in cfg.transforms] == ["det_resize", "normalize", "to_chw"]
    # PaddleX: resize_long is the limit, PP-OCR detectors limit the long side
    assert cfg.transforms[0] == {"op": "det_resize", "limit_side_len": 320, "limit_type": "max"}
    assert cfg.transforms[1]["alpha"][0] == pytest.approx(1 / 255 / 0.229)
    assert cfg.post["unclip_ratio"] == 1.5 and cfg.post["box_thresh"] == 0.6 and cfg.post["thresh"] == 0.3


def test_ocr_det_limit_defaults_follow_model_name(tmp_path):
    text = testing.OCR_DET_YML.replace("PP-OCRv5_mobile_det", "my_det").replace("      resize_long: 320\n", "")
    text = text.replace("  - DetResizeForTest:\n", "  - DetResizeForTest: null\n")
    cfg = read_deploy_config(_write(tmp_path, "inference.yml", text))
    assert cfg.transforms[0] == {"op": "det_resize", "limit_side_len": 736, "limit_type": "min"}


def test_ocr_rec_config(tmp_path):
    chars = ["a", "b", "中", "'", ":"]
    cfg = read_deploy_config(_write(tmp_path, "inference.yml", testing.ocr_rec_yml(chars)))
    assert cfg.kind == "ocr_rec" and cfg.characters == chars
    assert cfg.transforms == [{"op": "rec_resize", "image_shape": [3, 48, 320]}]
    assert cfg.dynamic_shapes["x"][2] == [8, 3, 48, 3200]


def test_layout_config(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, "inference.yml", testing.LAYOUT_YML))
    assert cfg.kind == "detection" and cfg.arch == "PicoDet" and cfg.color == "RGB"
    assert cfg.labels[:3] == ["paragraph_title", "image", "text"] and len(cfg.labels) == 23
    assert cfg.transforms[0] == {"op": "resize", "target_wh": [480, 480], "keep_ratio": False, "interp": "BICUBIC"}
    # norm_type none: PaddleX still applies mean/std (here 0 and 1) after scaling
    assert cfg.transforms[1]["alpha"] == [1 / 255] * 3 and cfg.transforms[1]["beta"] == [0.0] * 3
    assert set(cfg.dynamic_shapes) == {"image", "im_shape", "scale_factor"}
    assert cfg.post == {"threshold": 0.5}


def test_paddledetection_config(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, "infer_cfg.yml", testing.PPDET_YML))
    assert cfg.fmt == "paddledet" and cfg.kind == "detection" and cfg.arch == "YOLO" and cfg.model_name is None
    assert cfg.default_name("yolov3_tiny") == "yolov3_tiny"
    assert [t["op"] for t in cfg.transforms] == ["resize", "normalize", "to_chw", "pad_stride"]
    assert cfg.transforms[0]["target_wh"] == [320, 320] and cfg.transforms[0]["keep_ratio"] is True
    assert cfg.post["threshold"] == 0.3 and cfg.labels == ["person", "bicycle", "car", "dog", "cat"]
    assert cfg.dynamic_shapes == {}


def test_paddleseg_config(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, "deploy.yaml", testing.SEG_YML))
    assert cfg.fmt == "paddleseg" and cfg.kind == "segmentation"
    # PaddleSeg's target_size is [width, height]; PaddleX keeps the ratio and rounds to 32 by default
    assert cfg.transforms[0] == {"op": "resize", "target_wh": [256, 192], "keep_ratio": True, "size_divisor": 32,
                                 "interp": "LINEAR"}
    assert [t["op"] for t in cfg.transforms] == ["resize", "normalize", "to_chw"]


def test_find_deploy_config(tmp_path):
    assert find_deploy_config(tmp_path) is None
    _write(tmp_path, "infer_cfg.yml", testing.PPDET_YML)
    (tmp_path / "model.pdmodel").write_bytes(b"")
    assert find_deploy_config(tmp_path) == tmp_path / "infer_cfg.yml"
    assert find_deploy_config(tmp_path / "model.pdmodel") == tmp_path / "infer_cfg.yml"


@pytest.mark.parametrize("edit,match", [
    (("- type: Permute", "- type: GridMask"), r"Preprocess\[2\] GridMask.*no repogen implementation"),
    (("interp: 2", "interp: 9"), "interp 9"),
    (("target_size: [320, 320]", "target_size: [320]"), r"target_size must be \[height, width\]"),
    (("label_list:", "label_list: 5\nx:"), "label_list must be a list"),
])
def test_bad_detection_configs_name_the_field(tmp_path, edit, match):
    path = _write(tmp_path, "infer_cfg.yml", testing.PPDET_YML.replace(*edit))
    with pytest.raises(ConfigError, match=match) as exc:
        read_deploy_config(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("edit,match", [
    (("  - ToCHWImage: null", "  - RandomCropImage: null"), r"transform_ops\[4\] RandomCropImage"),
    (("name: DBPostProcess", "name: EASTPostProcess"), "EASTPostProcess"),
    (("scale: 1./255.", "scale: one"), "scale: 'one' is not a number"),
    (("        - [1, 3, 32, 32]\n", ""), r"dynamic_shapes\['x'\]"),
    (("order: hwc", "order: chw"), "only hwc"),
])
def test_bad_ocr_configs_name_the_field(tmp_path, edit, match):
    path = _write(tmp_path, "inference.yml", testing.OCR_DET_YML.replace(*edit))
    with pytest.raises(ConfigError, match=match):
        read_deploy_config(path)


def test_not_yaml_and_unknown_layout(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_deploy_config(_write(tmp_path, "a.yml", "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="YAML mapping"):
        read_deploy_config(_write(tmp_path, "b.yml", "- 1\n"))
    with pytest.raises(ConfigError, match="not a deploy config repogen knows"):
        read_deploy_config(_write(tmp_path, "c.yml", "Global: {model_name: x}\n"))
    rec = testing.ocr_rec_yml().replace("  character_dict:", "  character_dict: []\n  unused:")
    with pytest.raises(ConfigError, match="character_dict must be a non-empty list"):
        read_deploy_config(_write(tmp_path, "d.yml", rec))


def test_input_roles():
    assert input_roles(["image", "im_shape", "scale_factor"], "m") == {
        "image": "image", "im_shape": "im_shape", "scale_factor": "scale_factor"}
    assert input_roles(["x"], "m") == {"x": "image"}
    with pytest.raises(ConfigError, match="which input takes the image"):
        input_roles(["a", "b"], "m")


def test_cli_deploy_config_and_no_pipeline(tmp_path):
    """--deploy-config names a config kept elsewhere; --no-pipeline builds the model alone (profiles still
    from the config); a missing file is one error line."""
    import json
    import subprocess
    import sys

    from repogen.harness.model_files import folder_role, read_model_folder

    cfg = tmp_path / "cfg" / "deploy.yaml"
    cfg.parent.mkdir()
    cfg.write_text(testing.SEG_YML.replace("target_size: [256, 192]", "target_size: [32, 32]\n    keep_ratio: false"))
    model = "repogen/examples/tiny_cnn"

    def build(out, *extra):
        return subprocess.run([sys.executable, "-m", "repogen.cli", "build", model, "--out", str(out), "--target",
                               "paddle", "--no-check", "--json", *extra], capture_output=True, text=True, timeout=240)

    proc = build(tmp_path / "a", "--deploy-config", str(cfg))
    assert proc.returncode == 0, proc.stderr[-1500:]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["tiny_cnn", "tiny_cnn_paddlex", "tiny_cnn_pipeline", "tiny_cnn_pipeline_raw", "tiny_cnn_post",
                     "tiny_cnn_pre"]  # _paddlex: PaddleX's serving protocol over the pipeline
    assert [folder_role(tmp_path / "a" / n) for n in names] == ["model", "pipeline", "pipeline", "pipeline", "post",
                                                                "pre"]
    built = json.loads(proc.stdout)["models"]  # the summary lists every folder written, with its role
    assert sorted((m["name"], m["role"], m["part_of"]) for m in built) == [
        ("tiny_cnn", "model", None), ("tiny_cnn_paddlex", "pipeline", "tiny_cnn"),
        ("tiny_cnn_pipeline", "pipeline", "tiny_cnn"),
        ("tiny_cnn_pipeline_raw", "pipeline", "tiny_cnn"), ("tiny_cnn_post", "post", "tiny_cnn"),
        ("tiny_cnn_pre", "pre", "tiny_cnn")]
    # the fixed Resize made the profile: 3x32x32 images
    manifest = json.loads((tmp_path / "a" / "tiny_cnn" / "repogen.json").read_text())
    assert "32" in json.dumps(manifest.get("profiles") or manifest)
    proc = build(tmp_path / "b", "--deploy-config", str(cfg), "--no-pipeline")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["tiny_cnn"]
    assert read_model_folder(tmp_path / "b" / "tiny_cnn").inputs[0].dims[-1] in (-1, 32)
    proc = build(tmp_path / "c", "--deploy-config", str(tmp_path / "nope.yml"))
    assert proc.returncode == 2 and "--deploy-config" in proc.stderr and "Traceback" not in proc.stderr
    # a rebuild with --force replaces the pipeline folders; a folder the user made is never replaced
    assert build(tmp_path / "a", "--deploy-config", str(cfg), "--force").returncode == 0
    (tmp_path / "d" / "tiny_cnn_pre").mkdir(parents=True)
    proc = build(tmp_path / "d", "--deploy-config", str(cfg), "--force")
    assert proc.returncode == 2 and "a folder repogen did not write" in proc.stderr
    assert (tmp_path / "d" / "tiny_cnn_pre").is_dir() and not (tmp_path / "d" / "tiny_cnn").exists()


def test_classification_config(tmp_path):
    cfg = read_deploy_config(_write(tmp_path, "inference.yml", testing.CLS_YML))
    assert cfg.kind == "classification" and cfg.color == "RGB" and cfg.post == {"topk": 3}
    assert cfg.labels == ["circle", "square", "stripe", "dots", "blank", "noise"]
    assert [t["op"] for t in cfg.transforms] == ["resize_short", "center_crop", "normalize", "to_chw"]
    assert cfg.transforms[1]["size"] == [64, 64]
    with pytest.raises(ConfigError, match="needs resize_short or size"):
        read_deploy_config(_write(tmp_path, "b.yml", testing.CLS_YML.replace("resize_short: 72", "other: 1")))


def test_classification_labels_become_label_filename(tmp_path):
    """label_list -> labels.txt beside config.pbtxt and label_filename on the first output, so Triton's
    classification extension (``class_count``) answers with the exporter's names."""
    import json
    import subprocess
    import sys

    from repogen.repository.config import parse_config

    model = testing.save_model("cls", tmp_path / "cls")
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(model), "--out", str(tmp_path / "r"),
                           "--target", "paddle", "--no-check", "--json"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-1500:]
    built = json.loads(proc.stdout)["models"]
    assert [m["name"] for m in built if m["role"] == "model"] == ["PP-LCNet_x1_0"]  # Global.model_name
    folder = tmp_path / "r" / "PP-LCNet_x1_0"
    cfg = parse_config((folder / "config.pbtxt").read_text(), "cls")
    assert cfg.output[0].label_filename == "labels.txt"
    assert (folder / "labels.txt").read_text().split("\n")[:2] == ["circle", "square"]
    assert [i.dims for i in cfg.input] == [[3, 64, 64]]  # the CropImage size made the profile


def test_config_without_a_pipeline_still_serves_the_model_alone(tmp_path):
    """An export whose inference.yml has a transform repogen has no pipeline for: the pipeline build is one
    error that names the transform and says how to serve the model alone; --no-pipeline then builds the model
    with the config's name, and a config that does parse keeps its labels under --no-pipeline."""
    import json
    import shutil
    import subprocess
    import sys

    from repogen.pipelines.deploy_config import read_model_facts

    model = testing.save_model("cls", tmp_path / "cls")
    odd = tmp_path / "odd"
    shutil.copytree(model, odd)
    yml = odd / "inference.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("  - CropImage:", "  - FancyCrop:"), encoding="utf-8")

    def build(src, out, *extra):
        return subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(src), "--out", str(out), "--target",
                               "paddle", "--no-check", "--json", *extra], capture_output=True, text=True, timeout=240)

    proc = build(odd, tmp_path / "a")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "FancyCrop" in proc.stderr and "--no-pipeline" in proc.stderr and not (tmp_path / "a").exists()
    proc = build(odd, tmp_path / "b", "--no-pipeline", "--shape", "x:1x3x64x64")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["PP-LCNet_x1_0"]
    facts = read_model_facts(yml)
    assert facts.kind == "model" and facts.model_name == "PP-LCNet_x1_0" and facts.transforms == []
    proc = build(model, tmp_path / "c", "--no-pipeline")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert [m["name"] for m in json.loads(proc.stdout)["models"]] == ["PP-LCNet_x1_0"]
    assert (tmp_path / "c" / "PP-LCNet_x1_0" / "labels.txt").is_file()
