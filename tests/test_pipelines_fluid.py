"""PaddleDetection 0.x (Fluid) exports: ``infer_cfg.yml`` with ``mode: fluid``.

Expected values come from PaddleDetection release/0.5's documented behaviour (deploy/python/preprocess.py and
infer.py), written out here as formulas on constructed images, never from repogen's own ops:

* Resize: x scale target/w and y scale target/h, or, with max_size and an R-CNN-style arch, one scale putting the
  short side at target unless the rounded long side passes max_size (then long side at max_size); OpenCV resizes
  by the factors (fx, fy); with image_shape the result is zero-padded to a max_size square;
* Normalize: /255 when is_scale, minus mean, over std, per channel of the axis is_channel_first names;
* Permute: HWC -> CHW, then to_bgr reverses the channels; the image was decoded as RGB;
* PadStride: zero-padded bottom/right to multiples of the stride;
* feeds: YOLO ``im_size`` int32 [[source h, w]]; R-CNN ``im_info`` [[padded h, w, scale]] + ``im_shape``
  [[source h, w, 1]]; RetinaNet ``im_info``; TTFNet ``scale_factor``; SOLOv2 ``im_info`` of the resized size.

Each check is also shown to fail for a plausible wrong implementation. The end-to-end test builds the zoo's Fluid
YOLO export with a Fluid-era ``infer_cfg.yml`` and no flags, and ``repogen validate`` passes on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from repogen.errors import ConfigError  # noqa: E402
from repogen.pipelines import ops  # noqa: E402
from repogen.pipelines.deploy_config import check_size_inputs, is_unsupported, read_deploy_config  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

YOLO_YML = """\
use_python_inference: false
mode: fluid
draw_threshold: 0.5
metric: COCO
arch: YOLO
min_subgraph_size: 3
with_background: false
Preprocess:
- type: Resize
  interp: 2
  max_size: 0
  target_size: 64
  image_shape: [64, 64]
  use_cv2: true
  resize_box: false
- type: Normalize
  is_channel_first: false
  is_scale: true
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
- type: Permute
  channel_first: true
  to_bgr: false
label_list: [background, ring, box, dot]
"""

RCNN_YML = """\
use_python_inference: false
mode: fluid
draw_threshold: 0.5
metric: COCO
arch: RCNN
min_subgraph_size: 40
with_background: true
Preprocess:
- type: Resize
  interp: 1
  max_size: 1333
  target_size: 800
  use_cv2: true
- type: Normalize
  is_channel_first: false
  is_scale: true
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
- type: Permute
  channel_first: true
  to_bgr: false
- type: PadStride
  stride: 32
label_list: [person, car]
"""


def _config(tmp_path: Path, text: str):
    path = tmp_path / "infer_cfg.yml"
    path.write_text(text, encoding="utf-8")
    return read_deploy_config(path)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with every pixel different, so any change in sampling shows."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _run(transforms: list[dict], rgb: np.ndarray) -> dict:
    return ops.preprocess(rgb.copy(), transforms)


def _paddle05_normalize(im: np.ndarray, is_scale: bool = True, axis: int = -1) -> np.ndarray:
    """0.x's documented Normalize in float64: (im / 255 if is_scale) - mean, / std, per channel on ``axis``."""
    shape = [1, 1, 1]
    shape[axis] = 3
    im = im.astype(np.float64) / (255.0 if is_scale else 1.0)
    return (im - np.reshape(MEAN, shape)) / np.reshape(STD, shape)


# -- Resize ----------------------------------------------------------------------------------------------------------

def test_yolo_resize_scales_each_side_to_target_size(tmp_path):
    cfg = _config(tmp_path, YOLO_YML)
    rgb = _noise(50, 80)
    got = _run(cfg.transforms[:1], rgb)
    # 0.x: no max_size (or not an R-CNN-style arch): x and y factors on their own, cv2 interp code 2 (cubic)
    fx, fy = 64 / 80, 64 / 50
    want = cv2.resize(rgb, None, None, fx=fx, fy=fy, interpolation=cv2.INTER_CUBIC)
    assert want.shape == (64, 64, 3)
    np.testing.assert_array_equal(got["img"], want)
    assert got["scale_hw"] == (fy, fx)
    # wrong: PaddleDetection 2.x's Resize keep_ratio reading of target_size (long side 64, ratio kept)
    wrong = _run([{"op": "resize", "target_wh": [64, 64], "keep_ratio": True, "interp": "BICUBIC"}], rgb)["img"]
    assert wrong.shape != want.shape


@pytest.mark.parametrize("hw, scale", [
    ((300, 500), 800 / 300),  # short side to 800: the long side rounds to 1333, not above max_size
    ((200, 500), 1333 / 500),  # short side to 800 would make the long side 2000: long side to max_size instead
    ((299, 500), 1333 / 500),  # 800/299 * 500 = 1337.8 rounds above 1333
])
def test_rcnn_resize_short_side_capped_by_max_size(tmp_path, hw, scale):
    cfg = _config(tmp_path, RCNN_YML)
    h, w = hw
    rgb = _noise(h, w, seed=h)
    s = 800 / min(h, w)
    if np.round(s * max(h, w)) > 1333:
        s = 1333 / max(h, w)
    assert s == pytest.approx(scale)
    want = cv2.resize(rgb, None, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    got = _run(cfg.transforms[:1], rgb)
    np.testing.assert_array_equal(got["img"], want)
    assert got["scale_hw"] == (s, s) and got["resized_hw"] == want.shape[:2]
    # wrong: resizing to the rounded size instead of by the factors samples at a slightly different scale
    dsize = cv2.resize(rgb, (want.shape[1], want.shape[0]), interpolation=cv2.INTER_LINEAR)
    assert not np.array_equal(dsize, want)


def test_rcnn_resize_rounds_the_long_side_before_capping(tmp_path):
    """(300, 500): 800/300 * 500 = 1333.33 rounds to 1333 = max_size, so 0.x keeps the short side's scale. A cap
    on the unrounded product (1333.33 > 1333) would resize by 1333/500 instead: the same size, other pixels."""
    cfg = _config(tmp_path, RCNN_YML)
    rgb = _noise(300, 500, seed=1)
    got = _run(cfg.transforms[:1], rgb)
    assert got["img"].shape[:2] == (800, 1333) and got["scale_hw"] == (800 / 300, 800 / 300)
    capped = cv2.resize(rgb, None, None, fx=1333 / 500, fy=1333 / 500, interpolation=cv2.INTER_LINEAR)
    assert capped.shape == got["img"].shape and not np.array_equal(capped, got["img"])


def test_fixed_shape_export_pads_to_max_size_square(tmp_path):
    # what 0.x's exporter writes for an R-CNN-style model with a fixed image_shape [3, 608, 608]
    text = RCNN_YML.replace("  max_size: 1333\n  target_size: 800\n",
                            "  max_size: 608\n  target_size: 608\n  image_shape: [608, 608]\n")
    cfg = _config(tmp_path, text)
    rgb = _noise(100, 150)
    got = _run(cfg.transforms[:1], rgb)["img"]
    s = 608 / 100
    if np.round(s * 150) > 608:
        s = 608 / 150
    resized = cv2.resize(rgb, None, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    assert resized.shape[:2] == (405, 608)
    assert got.shape == (608, 608, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:405, :608], resized)
    assert not got[405:].any()
    # YOLO-style with max_size: each side to target_size, then the padding
    yolo = _config(tmp_path, YOLO_YML.replace("max_size: 0", "max_size: 96"))
    padded = _run(yolo.transforms[:1], rgb)["img"]
    assert padded.shape == (96, 96, 3) and not padded[64:].any() and not padded[:, 64:].any()
    np.testing.assert_array_equal(padded[:64, :64], cv2.resize(rgb, None, None, fx=64 / 150, fy=64 / 100,
                                                               interpolation=cv2.INTER_CUBIC))


# -- Normalize, Permute, PadStride -----------------------------------------------------------------------------------

def test_normalize_scales_then_subtracts_mean_and_divides_by_std(tmp_path):
    rgb = _noise(40, 30)
    cfg = _config(tmp_path, YOLO_YML)
    norm = cfg.transforms[1]
    got = _run([norm], rgb)["img"]
    want = _paddle05_normalize(rgb)
    assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-6
    # the 8-bit table and the float path give the same float32 values
    as_float = _run([norm], rgb.astype(np.float32))["img"]
    np.testing.assert_array_equal(got, as_float)
    # is_scale false: no division by 255; applying it anyway would be off by orders of magnitude
    raw = _run([_config(tmp_path, YOLO_YML.replace("is_scale: true", "is_scale: false")).transforms[1]], rgb)["img"]
    assert np.abs(raw - _paddle05_normalize(rgb, is_scale=False)).max() < 1e-3
    assert np.abs(raw - want).max() > 100
    # wrong: channels normalised in the other (BGR) order
    swapped = (rgb.astype(np.float64) / 255 - MEAN[::-1]) / STD[::-1]
    assert np.abs(got - swapped).max() > 0.1


def test_normalize_channel_first_after_permute(tmp_path):
    text = YOLO_YML.replace(
        "- type: Normalize\n  is_channel_first: false\n", "- type: Permute\n  channel_first: true\n  to_bgr: false\n"
        "- type: Normalize\n  is_channel_first: true\n").replace(
        "- type: Permute\n  channel_first: true\n  to_bgr: false\nlabel_list", "label_list")
    cfg = _config(tmp_path, text)
    assert [t["op"] for t in cfg.transforms] == ["fluid_resize", "to_chw", "fluid_normalize", "fluid_feeds"]
    rgb = _noise(64, 64)
    got = _run([t for t in cfg.transforms if t["op"] != "fluid_resize"], rgb)["img"]
    want = _paddle05_normalize(rgb.transpose(2, 0, 1), axis=0)
    assert got.shape == (3, 64, 64) and np.abs(got - want).max() < 1e-6
    # wrong: scaled only (mean and std on the wrong axis never apply)
    assert np.abs(got - rgb.transpose(2, 0, 1) / 255.0).max() > 0.1


def test_permute_to_bgr_gives_back_opencv_channel_order(tmp_path):
    """0.x decodes to RGB; Permute(to_bgr) reverses the channels of the CHW image: a BGR-trained model gets
    OpenCV's order back."""
    text = YOLO_YML.replace("to_bgr: false", "to_bgr: true").replace("is_scale: true", "is_scale: false") \
        .replace("[0.485, 0.456, 0.406]", "[0, 0, 0]").replace("[0.229, 0.224, 0.225]", "[1, 1, 1]")
    cfg = _config(tmp_path, text)
    assert cfg.color == "RGB"
    bgr = _noise(64, 64, seed=3)
    rgb = ops.raw_image(bgr, cfg.color)
    got = _run([t for t in cfg.transforms if t["op"] != "fluid_resize"], rgb)["img"]
    np.testing.assert_array_equal(got, bgr.transpose(2, 0, 1).astype(np.float32))
    # without to_bgr the model would get RGB
    assert not np.array_equal(got, rgb.transpose(2, 0, 1))


def test_pad_stride_pads_bottom_right_with_zeros(tmp_path):
    cfg = _config(tmp_path, RCNN_YML)
    rgb = _noise(50, 80)
    got = _run([t for t in cfg.transforms if t["op"] not in ("fluid_resize", "fluid_feeds")], rgb)["img"]
    assert got.shape == (3, 64, 96)
    np.testing.assert_allclose(got[:, :50, :80], _paddle05_normalize(rgb.transpose(2, 0, 1), axis=0), atol=1e-6)
    assert not got[:, 50:].any() and not got[:, :, 80:].any()


# -- the model's feeds -----------------------------------------------------------------------------------------------

def test_yolo_feeds_the_source_size_as_int32(tmp_path):
    cfg = _config(tmp_path, YOLO_YML)
    assert cfg.fmt == "paddledet" and cfg.kind == "detection" and cfg.arch == "YOLO" and cfg.color == "RGB"
    assert cfg.size_inputs == {"im_size": "int32"} and cfg.post == {"threshold": 0.5}
    bgr = _noise(50, 80, seed=7)
    state = ops.preprocess(ops.raw_image(bgr, cfg.color), cfg.transforms)
    feeds = ops.model_feeds(state, {"image": "image", "im_size": "im_shape"})
    # the whole chain as 0.x documents it
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    resized = cv2.resize(rgb, None, None, fx=64 / 80, fy=64 / 50, interpolation=cv2.INTER_CUBIC)
    want = _paddle05_normalize(resized).transpose(2, 0, 1)[None]
    assert feeds["image"].shape == (1, 3, 64, 64) and np.abs(feeds["image"] - want).max() < 1e-6
    assert feeds["im_size"].dtype == np.int32
    np.testing.assert_array_equal(feeds["im_size"], [[50, 80]])
    # wrong: the resized size (what 2.x's im_shape is) would put the boxes in the 64x64 frame
    assert not np.array_equal(feeds["im_size"], [[64, 64]])


def test_rcnn_feeds_im_info_of_the_padded_image_and_im_shape_of_the_source(tmp_path):
    cfg = _config(tmp_path, RCNN_YML)
    assert cfg.size_inputs == {"im_info": "float32", "im_shape": "float32"}
    state = ops.preprocess(_noise(300, 500), cfg.transforms)
    feeds = ops.model_feeds(state, {"image": "image", "im_info": "im_info", "im_shape": "im_shape"})
    # resized 800 x 1333, padded to multiples of 32: 800 x 1344
    assert feeds["image"].shape == (1, 3, 800, 1344)
    np.testing.assert_allclose(feeds["im_info"], [[800, 1344, 800 / 300]], rtol=1e-7)
    np.testing.assert_array_equal(feeds["im_shape"], [[300, 500, 1.0]])
    assert feeds["im_info"].dtype == feeds["im_shape"].dtype == np.float32


@pytest.mark.parametrize("arch, name, want", [
    ("RetinaNet", "im_info", lambda s, pad, resized: [[*pad, s]]),
    ("FCOS", "im_info", lambda s, pad, resized: [[*pad, s]]),
    ("SOLOv2", "im_info", lambda s, pad, resized: [[*resized, s]]),  # 0.x: the resized size, not the padded one
    ("TTFNet", "scale_factor", None),
])
def test_feeds_by_arch(tmp_path, arch, name, want):
    text = RCNN_YML.replace("arch: RCNN", f"arch: {arch}").replace("max_size: 1333", "max_size: 100") \
        .replace("target_size: 800", "target_size: 60")
    cfg = _config(tmp_path, text)
    state = ops.preprocess(_noise(45, 70), cfg.transforms)
    feeds = ops.model_feeds(state, {"image": "image", name: "im_info"})
    keep_ratio = arch in ("RetinaNet", "FCOS", "SOLOv2")  # 0.x's RESIZE_SCALE_SET (with RCNN)
    if keep_ratio:
        s = 60 / 45
        if np.round(s * 70) > 100:
            s = 100 / 70
        resized = (round(45 * s), round(70 * s))
        np.testing.assert_allclose(feeds[name], want(s, (64, 96), resized), rtol=1e-6)
    else:  # TTFNet: each side to 60
        np.testing.assert_allclose(feeds[name], [[60 / 70, 60 / 45, 60 / 70, 60 / 45]], rtol=1e-6)


def test_labels_follow_with_background(tmp_path):
    # with_background false: the built-in COCO list's "background" entry is not a class of the model
    assert _config(tmp_path, YOLO_YML).labels == ["ring", "box", "dot"]
    # with_background true and a list from an annotation file: class 0 is the background
    assert _config(tmp_path, RCNN_YML).labels == ["background", "person", "car"]
    kept = _config(tmp_path, RCNN_YML.replace("[person, car]", "[background, person, car]"))
    assert kept.labels == ["background", "person", "car"]
    plain = _config(tmp_path, YOLO_YML.replace("[background, ring, box, dot]", "[ring, box, dot]"))
    assert plain.labels == ["ring", "box", "dot"]


# -- what is refused ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("is_channel_first: false", "is_channel_first: true"),
     "Preprocess[1].Normalize: is_channel_first true but the image is HWC"),
    (lambda t: t.replace("channel_first: true\n  to_bgr: false", "channel_first: false\n  to_bgr: true"),
     "Preprocess[2].Permute: to_bgr works on a CHW image"),
    (lambda t: t.replace("target_size: 64", "target_size: [64, 96]"), "Preprocess[0].Resize.target_size must be one"),
    (lambda t: t.replace("use_cv2: true", "use_cv2: false"), "use_cv2 false"),
    (lambda t: t.replace("max_size: 0", "max_size: 32"), "beyond the max_size 32 square"),
    (lambda t: t.replace("arch: YOLO\n", ""), "arch is required"),
    (lambda t: t.replace("  mean: [0.485, 0.456, 0.406]\n", ""), "needs mean and std"),
    (lambda t: t.replace("- type: Permute", "- type: PadStride\n  stride: 32\n- type: Permute"),
     "Preprocess[2].PadStride: PadStride works on a CHW image"),
])
def test_config_errors_name_the_transform(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=None) as exc:
        _config(tmp_path, edit(YOLO_YML))
    assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert not is_unsupported(exc.value)


def test_unsupported_archs_and_transforms(tmp_path):
    with pytest.raises(ConfigError, match="normalised to") as exc:
        _config(tmp_path, YOLO_YML.replace("arch: YOLO", "arch: SSD"))
    assert is_unsupported(exc.value)
    with pytest.raises(ConfigError, match="'Crop' has no repogen implementation") as exc:
        _config(tmp_path, YOLO_YML.replace("- type: Permute", "- type: Crop\n- type: Permute"))
    assert is_unsupported(exc.value) and "Normalize" in str(exc.value)


def test_fluid_is_told_from_2x(tmp_path):
    # no mode key: use_python_inference is 0.x's alone
    assert _config(tmp_path, YOLO_YML.replace("mode: fluid\n", "")).transforms[0]["op"] == "fluid_resize"
    # the failure: a Fluid config read with 2.x's transforms
    with pytest.raises(ConfigError, match="transform 'Normalize' has no repogen implementation"):
        _config(tmp_path, YOLO_YML.replace("mode: fluid", "mode: paddle").replace("use_python_inference: false\n", ""))


def test_model_inputs_must_be_the_ones_0x_feeds(tmp_path):
    cfg = _config(tmp_path, YOLO_YML)
    t = SimpleNamespace
    check_size_inputs(cfg, [t(name="image", dtype="float32"), t(name="im_size", dtype="int32")], "m")
    with pytest.raises(ConfigError, match="input im_size is int64; PaddleDetection 0.x feeds it as int32"):
        check_size_inputs(cfg, [t(name="image", dtype="float32"), t(name="im_size", dtype="int64")], "m")
    with pytest.raises(ConfigError, match="input im_info is not one PaddleDetection 0.x feeds a YOLO export"):
        check_size_inputs(cfg, [t(name="image", dtype="float32"), t(name="im_info", dtype="float32")], "m")
    with pytest.raises(ConfigError, match="produces FP32 inputs; input image is uint8"):
        check_size_inputs(cfg, [t(name="image", dtype="uint8"), t(name="im_size", dtype="int32")], "m")
    # a 2.x config has no im_info to give
    v2 = _config(tmp_path, YOLO_YML.replace("mode: fluid", "mode: paddle").replace("use_python_inference: false\n", "")
                 .replace("type: Normalize\n  is_channel_first: false\n", "type: NormalizeImage\n"))
    assert v2.size_inputs is None
    with pytest.raises(ConfigError, match="im_info is fed only to PaddleDetection 0.x exports"):
        check_size_inputs(v2, [t(name="image", dtype="float32"), t(name="im_info", dtype="float32")], "m")


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    else:
        yield path


@pytest.mark.parametrize("base", [YOLO_YML, RCNN_YML])
def test_every_value_mutated_reads_or_is_one_error_line(tmp_path, base):
    """Each key of a 0.x config set to a wrong type or an extreme: an accepted config or one ConfigError line
    naming the file, never another exception (the YAML-level attacks are test_deploy_config_fuzz.py's)."""
    import copy

    import yaml

    data = yaml.safe_load(base)
    values = [None, True, -1, 2 ** 63, float("nan"), "zz", [1, 2, 3, 4], {"type": "Resize"}]
    outcomes = {"read": 0, "refused": 0}
    for path in list(_leaves(data)):
        for value in values:
            mutated = copy.deepcopy(data)
            node = mutated
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            (tmp_path / "infer_cfg.yml").write_text(yaml.safe_dump(mutated), encoding="utf-8")
            try:
                cfg = read_deploy_config(tmp_path / "infer_cfg.yml")
            except ConfigError as exc:
                assert "\n" not in str(exc) and str(tmp_path / "infer_cfg.yml") in str(exc), (path, value, exc)
                outcomes["refused"] += 1
            else:
                json.dumps(cfg.transforms, allow_nan=False)
                outcomes["read"] += 1
    assert outcomes["read"] > 0 and outcomes["refused"] > 50, outcomes


def test_profiles_follow_the_fluid_export(tmp_path):
    """No shape flags: a YOLO export's one size fixes the image profile; R-CNN's 3-wide im_info / im_shape get
    profiles of their own width."""
    from repogen.build.pipeline_stages import fill_profiles
    from repogen.build.spec import ModelSpec

    def graph(*inputs):
        return SimpleNamespace(input_values=lambda: [SimpleNamespace(name=n, shape=s) for n, s in inputs])

    spec = ModelSpec(source=tmp_path, name="m", max_batch_size=2)
    yolo = fill_profiles(spec, graph(("image", [-1, 3, -1, -1]), ("im_size", [-1, 2])), _config(tmp_path, YOLO_YML))
    assert yolo.min_shapes == ["image:1x3x64x64,im_size:1x2"] and yolo.max_shapes == ["image:2x3x64x64,im_size:2x2"]
    rcnn = fill_profiles(spec, graph(("image", [-1, 3, -1, -1]), ("im_info", [-1, 3]), ("im_shape", [-1, 3])),
                         _config(tmp_path, RCNN_YML))
    assert rcnn.max_shapes[0].endswith(",im_info:2x3,im_shape:2x3") and rcnn.min_shapes[0].startswith("image:1x3x32x32")


# -- end to end: the zoo's Fluid YOLO export, no flags, validated by repogen validate ----------------------------------

@pytest.fixture(scope="module")
def fluid_yolo(tmp_path_factory) -> Path:
    zoo = pytest.importorskip("tests.support.zoo")
    pytest.importorskip("paddle")
    import shutil

    folder = tmp_path_factory.mktemp("fluid") / "yolov3_fluid"
    shutil.copytree(zoo.get("yolo_head", "fluid-combined"), folder)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["__model__", "__params__"]
    (folder / "infer_cfg.yml").write_text(YOLO_YML, encoding="utf-8")
    return folder


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_fluid_yolo_builds_with_no_flags_and_validates(fluid_yolo, tmp_path):
    repo = tmp_path / "repo"
    build = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(fluid_yolo), "--out", str(repo),
                            "--target", "paddle", "--json"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    roles = {m["name"]: m["role"] for m in json.loads(build.stdout)["models"]}
    assert roles == {"yolov3_fluid": "model", "yolov3_fluid_pre": "pre", "yolov3_fluid_post": "post",
                     "yolov3_fluid_pipeline": "pipeline", "yolov3_fluid_pipeline_raw": "pipeline",
                     "yolov3_fluid_paddlex": "pipeline"}
    data = json.loads((repo / "yolov3_fluid_pre" / "1" / "pipeline.json").read_text())
    assert [t["op"] for t in data["transforms"]] == ["fluid_resize", "fluid_normalize", "to_chw", "fluid_feeds"]
    assert data["labels"] == ["ring", "box", "dot"]

    from repogen.harness import pipelines as hp
    from repogen.harness.server import launch
    from tests.support import zoo

    with launch(repo) as srv:
        assert not any(srv.loaded.values()), srv.loaded
        val = subprocess.run([sys.executable, "-m", "repogen.cli", "validate", str(repo), "--server", srv.http_url,
                              "--grpc-url", srv.grpc_url,
                              "--concurrency", "1", "--requests", "4", "--json"],
                             capture_output=True, text=True, timeout=400)
        assert val.returncode == 0, (val.stdout[-2000:], val.stderr[-2000:])
        report = json.loads(val.stdout)
        models = {m["model"]: m for m in report["models"]}
        assert report["ok"] and set(models) == set(roles) and all(m["ok"] for m in models.values())
        assert len(models["yolov3_fluid_pipeline"]["checks"]) == 6  # 3 images x http, grpc

        # independent of repogen's reference chain: Paddle on the feeds 0.x's deploy makes, filtered at
        # draw_threshold, against the served answer
        mc = hp.client(srv.grpc_url, "grpc")
        found = 0
        for bgr in hp.images_for("detection"):
            got = hp.infer(mc, "yolov3_fluid_pipeline", bgr)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            resized = cv2.resize(rgb, None, None, fx=64 / w, fy=64 / h, interpolation=cv2.INTER_CUBIC)
            image = _paddle05_normalize(resized).astype(np.float32).transpose(2, 0, 1)[None]
            outs = zoo.reference_outputs(fluid_yolo, {"image": np.ascontiguousarray(image),
                                                      "im_size": np.array([[h, w]], np.int32)})
            rows = next(v for v in outs.values() if v.ndim == 2 and v.shape[-1] == 6)
            rows = rows[(rows[:, 1] > 0.5) & (rows[:, 0] > -1)]
            rows = rows[(rows[:, 4] > rows[:, 2]) & (rows[:, 5] > rows[:, 3])]  # repogen drops empty boxes
            assert got["boxes"].shape == (len(rows), 4)
            np.testing.assert_allclose(got["boxes"], rows[:, 2:], atol=1e-2)
            np.testing.assert_allclose(got["scores"], rows[:, 1], atol=1e-4)
            assert got["labels"] == [["ring", "box", "dot"][int(c)] for c in rows[:, 0]]
            found += len(rows)
        assert found > 0  # the images give the detector something to find
