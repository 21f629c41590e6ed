"""repogen.pipelines.ops against PaddleX's own processor classes on random inputs (identical results)."""

from __future__ import annotations

import numpy as np
import pytest

from repogen.pipelines import ops
from repogen.pipelines.deploy_config import _normalize

ref = pytest.importorskip("tests.support.pipeline_reference")
RNG = np.random.default_rng(0)


def _img(h: int, w: int, c: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


SIZES = [(5, 7), (20, 30), (50, 70), (96, 64), (123, 457), (700, 300), (1000, 1500)]


@pytest.mark.parametrize("kwargs", [
    {"limit_side_len": 736, "limit_type": "min"},
    {"limit_side_len": 960, "limit_type": "max"},
    {"limit_side_len": 64, "limit_type": "resize_long"},
    {"limit_side_len": 4000, "limit_type": "min", "max_side_limit": 500},
    {"resize_long": 320},
    {"image_shape": [64, 128]},
    {"image_shape": [64, 128], "keep_ratio": True},
    {"input_shape": [3, 96, 160]},
])
def test_det_resize_matches_paddlex(kwargs):
    theirs = ref.textdet.DetResizeForTest(**kwargs)
    for h, w in SIZES:
        img = _img(h, w)
        want_img, want_shape = theirs([img])
        state = ops.preprocess(img, [{"op": "det_resize", **kwargs}])
        assert state["img"].shape == want_img[0].shape, (h, w, kwargs)
        assert np.array_equal(state["img"], want_img[0])
        assert np.array_equal(ops.info_vector(state).astype(np.float64), want_shape[0].astype(np.float32))


@pytest.mark.parametrize("scale,mean,std", [(1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
                                            (1.0, [123.7, 116.3, 103.5], [58.4, 57.1, 57.4]),
                                            (1 / 255, [0.5] * 3, [0.5] * 3)])
def test_normalize_image_and_normalize_match_paddlex(scale, mean, std):
    img = _img(37, 53)
    step = _normalize(scale, mean, std, "test")
    got = ops.preprocess(img, [step])["img"]
    assert got.dtype == np.float32
    assert np.array_equal(got, ref.textdet.NormalizeImage(scale=scale, mean=mean, std=std, order="hwc")([img])[0])
    assert np.array_equal(got, ref.common.Normalize(scale=scale, mean=mean, std=std)([img])[0])
    chw = ops.preprocess(img, [step, {"op": "to_chw"}])["img"]
    assert np.array_equal(chw, ref.common.ToCHWImage()([got])[0])
    every = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 2, 3))  # the table path, every 8-bit value
    assert np.array_equal(ops.preprocess(every, [step])["img"], ref.common.Normalize(scale=scale, mean=mean, std=std)([every])[0])


@pytest.mark.parametrize("shape", [[3, 48, 320], [3, 32, 100]])
def test_rec_resize_matches_paddlex(shape):
    theirs = ref.textrec.OCRReisizeNormImg(rec_image_shape=shape)
    for h, w in [(48, 20), (31, 200), (40, 2000), (10, 5000), (100, 90)]:
        img = _img(h, w)
        got = ops.preprocess(img, [{"op": "rec_resize", "image_shape": shape}])["img"]
        want = theirs([img])[0]
        assert got.shape == want.shape and np.array_equal(got, want.astype(np.float32)), (h, w)


@pytest.mark.parametrize("target_hw,keep_ratio,interp", [([640, 640], False, 2), ([608, 800], True, 1),
                                                         ([320, 320], True, 0), ([300, 500], False, 3)])
def test_detection_resize_matches_paddlex(target_hw, keep_ratio, interp):
    from repogen.pipelines.deploy_config import INTERP_CODES

    theirs = ref.det_proc.Resize(target_size=target_hw[::-1], keep_ratio=keep_ratio, interp=INTERP_CODES[interp])
    for h, w in SIZES[1:]:
        img = _img(h, w)
        data = theirs([{"img": img}])[0]
        state = ops.preprocess(img, [{"op": "resize", "target_wh": target_hw[::-1], "keep_ratio": keep_ratio,
                                      "interp": INTERP_CODES[interp]}])
        assert np.array_equal(state["img"], data["img"])
        # PaddleX's ToBatch feeds [h, w] orders of img_size and scale_factors
        feeds = ops.model_feeds(state, {"image": "image", "im_shape": "im_shape", "scale_factor": "scale_factor"})
        assert np.array_equal(feeds["im_shape"][0], np.array(data["img_size"][::-1], np.float32))
        assert np.array_equal(feeds["scale_factor"][0], np.array(data["scale_factors"][::-1], np.float32))


@pytest.mark.parametrize("target_wh,keep_ratio,divisor", [(None, True, 32), ([512, 256], True, 32),
                                                          ([100, 80], False, None)])
def test_segmentation_resize_matches_paddlex(target_wh, keep_ratio, divisor):
    theirs = ref.seg_proc.Resize(target_size=target_wh or -1, keep_ratio=keep_ratio, size_divisor=divisor)
    for h, w in SIZES[1:]:
        img = _img(h, w)
        got = ops.preprocess(img, [{"op": "resize", "target_wh": target_wh, "keep_ratio": keep_ratio,
                                    "size_divisor": divisor, "interp": "LINEAR"}])["img"]
        assert np.array_equal(got, theirs([img])[0])


@pytest.mark.parametrize("stride", [0, 32, 128])
def test_pad_stride_matches_paddlex(stride):
    img = RNG.standard_normal((3, 45, 97)).astype(np.float32)
    state = {"img": img}
    ops.pad_stride(state, stride=stride)
    assert np.array_equal(state["img"], ref.det_proc.PadStride(stride)([{"img": img}])[0]["img"])


def _prob_map(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(3, 15)):
        x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 6))
        bw, bh = int(rng.integers(4, w // 2)), int(rng.integers(3, h // 4))
        if rng.random() < 0.5:
            cv2.rectangle(m, (x, y), (x + bw, y + bh), float(rng.uniform(0.4, 1.0)), -1)
        else:
            cv2.ellipse(m, (x, y), (bw // 2, bh // 2 + 1), float(rng.uniform(0, 180)), 0, 360,
                        float(rng.uniform(0.4, 1.0)), -1)
    m += rng.uniform(0, 0.35, m.shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(m, (5, 5), 0), 0, 1)[None]


DB_PARAMS = [
    {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5},
    {"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 2.0, "use_dilation": True},
    {"thresh": 0.4, "box_thresh": 0.5, "unclip_ratio": 1.6, "score_mode": "slow"},
    {"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.5, "box_type": "poly"},
]
DB_MAPS = [(_prob_map(*[(96, 160), (224, 320), (64, 64)][seed % 3], seed), seed) for seed in range(12)]


@pytest.fixture(scope="module")
def db_reference(tmp_path_factory):
    """PaddleX's DBPostProcess as PaddleX's environment runs it (OpenCV 4.10: the box mask fill differs in 4.11)."""
    from tests.support.opencv_reference import paddlex_db_reference

    maps = [(pred, np.array([int(pred.shape[1] * 1.7), int(pred.shape[2] * 0.9), 1 / 1.7, 1 / 0.9]))
            for pred, _ in DB_MAPS]
    return maps, paddlex_db_reference([], maps, tmp_path_factory.mktemp("db410"),
                                      [dict(p, max_candidates=1000) for p in DB_PARAMS])


@pytest.mark.parametrize("k", range(len(DB_PARAMS)))
def test_db_postprocess_matches_paddlex(db_reference, k):
    params, (maps, want) = DB_PARAMS[k], db_reference
    total = 0
    for (pred, info), (want_boxes, want_scores), (_, seed) in zip(maps, want["answers"][k], DB_MAPS):
        got_boxes, got_scores = ops.db_postprocess(pred, info.astype(np.float32), **params)
        assert len(got_boxes) == len(want_boxes), seed
        for a, b in zip(got_boxes, want_boxes):
            assert np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
        assert np.abs(np.asarray(got_scores) - np.asarray(want_scores)).max(initial=0) <= 1e-6
        total += len(got_boxes)
    assert total > 20  # the maps really produce boxes


def test_ctc_decode_matches_paddlex():
    chars = list("0123456789abcdefghijklmnopqrstuvwxyz") + ["中", "文"]
    theirs = ref.textrec.CTCLabelDecode(character_list=chars)
    probs = RNG.random((6, 40, len(chars) + 2)).astype(np.float32)
    probs[:, :, 0] += 0.3 * (RNG.random((6, 40)) > 0.5)  # blanks in places
    probs[5] = 0
    probs[5, :, 0] = 1  # all blank: empty text, score 0
    want_texts, want_scores = theirs([probs])
    got_texts, got_scores = ops.ctc_decode(probs, ops.ctc_characters(chars))
    assert got_texts == want_texts and got_scores == want_scores
    assert got_texts[5] == "" and any(got_texts[:5])


@pytest.mark.parametrize("labels", [["car", "person", "dog"], ["text", "image", "table"]])
def test_detection_postprocess_matches_paddlex(labels):
    theirs = ref.det_proc.DetPostProcess(labels=labels)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(0, 12))
        w, h = 300, 200
        xy = rng.uniform(-30, 330, (n, 2)).astype(np.float32)
        wh = rng.uniform(-5, 250, (n, 2)).astype(np.float32)
        boxes = np.concatenate([rng.integers(-1, len(labels), (n, 1)).astype(np.float32),
                                rng.random((n, 1)).astype(np.float32), xy, xy + wh], axis=1)
        if n and seed % 3 == 0 and "image" in labels:
            boxes[0] = [labels.index("image"), 0.99, 0, 0, w, h]  # a whole-page "image" region is dropped
        want = theirs([{"boxes": boxes}], [{"ori_img_size": [w, h]}], threshold=0.4)[0]
        got = ops.det_postprocess(boxes, (h, w), labels, 0.4)
        assert [d["label"] for d in want] == got["labels"]
        assert [d["cls_id"] for d in want] == got["label_ids"].tolist()
        assert np.array_equal(np.array([d["score"] for d in want], np.float32), got["scores"])
        assert np.array_equal(np.array([d["coordinate"] for d in want], np.float32).reshape(-1, 4), got["boxes"])


def test_topk_matches_paddlex():
    probs = RNG.random((4, 20)).astype(np.float32)
    labels = [f"class{i}" for i in range(20)]
    idx, scores, names = ref.cls_proc.Topk(class_ids=labels)([probs], topk=5)
    for i in range(4):
        a, b, c = ops.topk(probs[i], 5, labels)
        assert np.array_equal(a, idx[i]) and np.array_equal(b, scores[i]) and c == names[i]


def test_segmentation_postprocess_matches_paddlex():
    pred = RNG.integers(0, 5, (1, 64, 96)).astype(np.int32)
    want = ref.seg_proc.SegPostProcess()([pred], [np.zeros((150, 77, 3), np.uint8)])[0]
    assert np.array_equal(ops.seg_postprocess(pred[None], (150, 77))[None], want)
    logits = RNG.standard_normal((1, 5, 64, 96)).astype(np.float32)
    got = ops.seg_postprocess(logits, (150, 77))
    assert np.array_equal(got[None], ref.seg_proc.SegPostProcess()([logits[0].argmax(0)[None].astype(np.int32)],
                                                                    [np.zeros((150, 77, 3), np.uint8)])[0])


def test_decode_errors_are_per_request_input_errors():
    import cv2

    with pytest.raises(ops.InputError, match="empty"):
        ops.decode_image(b"", "BGR")
    with pytest.raises(ops.InputError, match="cannot decode"):
        ops.decode_image(b"not an image at all", "BGR")
    ok, one = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ops.InputError, match="at least"):
        ops.decode_image(one.tobytes(), "BGR")
    ok, wide = cv2.imencode(".png", np.zeros((10, 20000, 3), np.uint8))
    with pytest.raises(ops.InputError, match="at most"):
        ops.decode_image(wide.tobytes(), "BGR")
    img = _img(30, 40)
    ok, png = cv2.imencode(".png", img)
    assert np.array_equal(ops.decode_image(png.tobytes(), "BGR"), img)
    assert np.array_equal(ops.decode_image(png.tobytes(), "RGB"), img[:, :, ::-1])
    # the reference reader agrees on the channel order
    assert np.array_equal(ref.image_reader.ReadImage(format="RGB")([img])[0], img[:, :, ::-1])
    assert np.array_equal(ops.raw_image(img, "RGB"), img[:, :, ::-1])
    with pytest.raises(ops.InputError, match="UINT8"):
        ops.raw_image(img.astype(np.float32), "BGR")


@pytest.mark.parametrize("short,crop,interp", [(72, 64, "LINEAR"), (256, 224, "BICUBIC"), (40, [32, 24], "NEAREST")])
def test_classification_resize_and_crop_match_paddlex(short, crop, interp):
    from paddlex.inference.models.image_classification.processors import Crop

    size = [crop, crop] if isinstance(crop, int) else crop
    for h, w in SIZES[1:]:
        img = _img(h, w)
        want = Crop(crop_size=size)(ref.common.ResizeByShort(target_short_edge=short, interp=interp)([img]))[0]
        got = ops.preprocess(img, [{"op": "resize_short", "target": short, "interp": interp},
                                   {"op": "center_crop", "size": size}])["img"]
        assert np.array_equal(got, want), (h, w)
    with pytest.raises(ops.InputError, match="centre crop"):
        ops.preprocess(_img(20, 20), [{"op": "center_crop", "size": [32, 32]}])


def test_rotate_and_crop_match_paddlex():
    from paddlex.inference.pipelines.components.common.warp_image import rotate_image

    ref._bind_cv2()
    for h, w in SIZES[1:5]:
        img = _img(h, w)
        for angle in (0, 180, 90):
            assert np.array_equal(ops.rotate(img, angle), rotate_image(img, angle))
    img = _img(200, 300)
    boxes = [np.array([[10, 20], [120, 25], [118, 60], [8, 55]], np.int16),
             np.array([[200, 10], [230, 10], [230, 150], [200, 150]], np.int16)]  # tall: turned 90 degrees
    want = ref.crop_image_regions.CropByPolys("quad")(img, boxes)
    for box, crop in zip(boxes, want):
        assert np.array_equal(ops.minarea_crop(img, box), crop)
    assert want[1].shape[1] > want[1].shape[0]
    shuffled = [boxes[1], boxes[0], np.array([[5, 21], [50, 21], [50, 40], [5, 40]], np.int16)]
    assert [b.tolist() for b in ops.sort_boxes(shuffled)] == [b.tolist() for b in ref.sort_boxes.SortQuadBoxes()(shuffled)]
