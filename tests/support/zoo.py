"""Test model zoo: small Paddle models built with Paddle itself and saved in every format repogen reads.

``get(name, fmt)`` returns a directory holding the saved model, building it on first use in a subprocess
(PIR and legacy-IR saving need different process-wide flags) and caching it under
``tempfile.gettempdir()/repogen-zoo-<paddle version>/<name>-<definition hash>/<format>/`` (editing a
builder changes the hash, so a stale copy is never served). Saves are atomic (temp dir + rename), so two
processes racing on the same model both end up with a complete copy.

How each format is made (Paddle 3.3.1 can no longer write the Fluid layout itself):

* ``pir``: ``paddle.jit.save`` (default PIR mode) -> ``inference.json`` + ``inference.pdiparams``.
* ``paddle2``: the same in a subprocess with ``FLAGS_enable_pir_api=0`` -> ``inference.pdmodel``.
* ``fluid-separate`` / ``fluid-combined``: the 2.x ProgramDesc bytes copied to ``__model__`` (the Fluid file
  is the same message), parameters written by Paddle's own ``paddle.static.io.save_vars`` (its ``save`` op
  per variable, or ``save_combine`` into ``__params__``).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMATS = ("fluid-separate", "fluid-combined", "paddle2", "pir")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]  # -1 = dynamic
    sample: tuple[int, ...]  # a concrete shape for reference runs
    low: float = -1.0
    high: float = 1.0
    lod_level: int = 0  # > 0: a LoD (variable-length sequence) input, legacy formats only


@dataclass(frozen=True)
class ZooModel:
    name: str
    build: Callable[[], Any]  # () -> paddle.nn.Layer, called with paddle imported and seeded
    inputs: tuple[InputSpec, ...]
    families: tuple[str, ...] = ()  # ops_target.md families this model exercises
    formats: tuple[str, ...] = FORMATS  # formats Paddle 3.3.1 can write this model in
    paddle_ptq: bool = False  # quantized after saving by Paddle's own PostTrainingQuantization (legacy only)
    bn_inflation: tuple[float, float] = (1.1, 1.5)  # batch-norm variance jitter range, see _calibrate_batch_norms


def _img(name: str = "x", c: int = 3, hw: int = 32, spatial_dynamic: bool = True) -> InputSpec:
    dyn = -1 if spatial_dynamic else hw
    return InputSpec(name, "float32", (-1, c, dyn, dyn), (2, c, hw, hw))


# --- builders (run inside the saving subprocess) -------------------------------------------------

def _vision(attr: str, **kw: Any) -> Callable[[], Any]:
    def build() -> Any:
        import paddle
        return getattr(paddle.vision.models, attr)(**kw)
    return build


def _convnet() -> Any:
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class ConvNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 3, padding=1)
            self.dw = nn.Conv2D(8, 8, 3, padding=1, groups=8)
            self.bn = nn.BatchNorm2D(8)
            self.convt = nn.Conv2DTranspose(8, 4, 4, stride=2, padding=1)
            self.dwt = nn.Conv2DTranspose(4, 4, 3, padding=1, groups=4)
            self.gn = nn.GroupNorm(2, 4)
            self.inorm = nn.InstanceNorm2D(4)
            self.ln = nn.LayerNorm([4])
            self.prelu = nn.PReLU(4)
            self.conv_same = nn.Conv2D(4, 4, 3, stride=2, padding="SAME", dilation=1)

        def forward(self, x: Any) -> Any:
            y = self.bn(self.conv(x))
            y = F.relu(self.dw(y))
            a = F.max_pool2d(y, 3, stride=2, padding=0, ceil_mode=True)
            b = F.avg_pool2d(y, 2, stride=2, exclusive=False)
            c = F.adaptive_avg_pool2d(y, 4)
            d = F.adaptive_max_pool2d(y, 2)
            g = paddle.mean(y, axis=[2, 3])
            t = self.dwt(self.convt(a + b))
            t = self.prelu(self.inorm(self.gn(t)))
            t = self.ln(t.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])
            t = F.pad(t, [1, 1, 2, 0], mode="constant", value=0.5)
            t = F.pad(t, [1, 1, 1, 1], mode="reflect")
            t = self.conv_same(t)
            n = F.interpolate(t, scale_factor=2, mode="nearest")
            bl = F.interpolate(t, size=[8, 8], mode="bilinear", align_corners=True)
            bl2 = F.interpolate(t, size=[8, 8], mode="bilinear", align_corners=False, align_mode=0)
            bc = F.interpolate(t, size=[8, 8], mode="bicubic", align_corners=False)
            li = F.interpolate(t.flatten(2), size=[16], mode="linear", align_corners=False, data_format="NCW")
            return (n.mean(axis=[2, 3]) + paddle.sum(bl, axis=[2, 3]) + bl2.max(axis=[2, 3]) + bc.min(axis=[2, 3]),
                    li, c.flatten(1), d, g, F.max_pool2d(y, 2, padding="VALID"))

    return ConvNet()


def _elementwise() -> Any:
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Elementwise(nn.Layer):
        def forward(self, x: Any, y: Any) -> Any:
            p = paddle.abs(x) + 0.5  # positive, for log/sqrt/pow/div/mod
            q = paddle.abs(y) + 0.5
            bin_ = [x + y, x - y, x * y, x / q, paddle.pow(p, q), paddle.remainder(p, q),
                    paddle.floor_divide(p, q), paddle.maximum(x, y), paddle.minimum(x, y),
                    x + y[0], x * paddle.to_tensor(2.0)]
            act = [F.relu(x), F.relu6(x * 8), F.leaky_relu(x, 0.1), F.sigmoid(x), paddle.tanh(x), F.swish(x),
                   F.silu(x), F.hardswish(x), F.hardsigmoid(x), F.gelu(x), F.gelu(x, approximate=True),
                   F.elu(x, 0.5), F.selu(x), F.softplus(x), F.softsign(x), F.mish(x)]
            una = [paddle.exp(x), paddle.log(p), paddle.sqrt(p), paddle.rsqrt(p), paddle.abs(x), paddle.floor(x),
                   paddle.ceil(x), paddle.round(x), paddle.sign(x), paddle.reciprocal(q), paddle.erf(x),
                   paddle.sin(x), paddle.cos(x), paddle.pow(x, 3.0), paddle.square(x)]
            misc = [paddle.scale(x, 2.0, 1.0), paddle.scale(x, 0.5, -1.0, bias_after_scale=False),
                    paddle.clip(x, -0.5, 0.5), F.softmax(x, -1), F.softmax(x, 1), F.log_softmax(x, -1)]
            return paddle.stack(bin_ + act + una + misc, axis=0)

    return Elementwise()


def _tensors() -> Any:
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Tensors(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 12)
            self.emb = nn.Embedding(10, 16, padding_idx=0)
            self.dropout = nn.Dropout(0.3)
            self.w = self.create_parameter([16, 16])

        def forward(self, x: Any, ids: Any) -> Any:  # x: [N, 4, 16], ids: [N, 4] int64
            e = self.emb(ids)
            h = self.dropout(x + e)
            h = self.fc(h)  # [N, 4, 12]
            m = paddle.matmul(x, self.w)
            mt = paddle.matmul(x, x, transpose_y=True)  # [N, 4, 4]
            b = paddle.bmm(mt, x)
            r = paddle.reshape(h, [-1, 48])
            r2 = paddle.reshape(h, [0, 6, 8])
            f = paddle.flatten(r2, 1)
            u = paddle.unsqueeze(f, [1, 3])
            s = paddle.squeeze(u, [3])
            t = paddle.transpose(r2, [0, 2, 1])
            c = paddle.concat([r, f], axis=1)
            s1, s2, s3 = paddle.split(c, [32, 32, 32], axis=1)
            s4, s5 = paddle.split(c, 2, axis=-1)
            st = paddle.stack([s1, s2, s3], axis=1)
            us = paddle.unstack(st, axis=1)
            sl = x[:, 1:3, 2:10]
            ss = paddle.strided_slice(x, axes=[1, 2], starts=[0, 1], ends=[4, 16], strides=[2, 3])
            ex = paddle.expand(x[:, :1, :], [-1, 4, 16])
            ea = paddle.expand_as(x[:, :1, :], x)
            tl = paddle.tile(x[:, :1, :2], [1, 2, 3])
            g = paddle.gather(x, paddle.to_tensor([0, 2]), axis=1)
            cs = paddle.cast(ids, "float32") + paddle.shape(x)[1].astype("float32")
            fl = paddle.full([1, 4], 0.25) + paddle.full_like(cs, 2.0) + paddle.zeros_like(cs)
            asg = paddle.assign(x)
            red = [paddle.sum(x, axis=1), x.mean(axis=-1, keepdim=True), x.max(axis=[1, 2]), x.min(axis=2), x.prod(axis=1),
                   paddle.sum(x)]
            am = paddle.argmax(x, axis=-1)
            an = paddle.argmin(x, axis=1, keepdim=True)
            return (m, b, t, s, s4 + s5, us[0] + us[2], sl, ss, ex + ea, tl, g, fl, asg, am, an, *red)

    return Tensors()


def _tier2() -> Any:
    import paddle
    import paddle.nn as nn

    class Tier2(nn.Layer):
        def forward(self, x: Any) -> Any:  # [N, 8]
            z = paddle.zeros_like(x)
            w = paddle.where(x > 0, x, z)
            cmp = [(x == z), (x != z), (x < z), (x <= z), (x >= z)]
            logic = paddle.logical_and(cmp[0], paddle.logical_not(cmp[1]))
            vals, idx = paddle.topk(x, 3, axis=-1)
            srt = paddle.argsort(x, axis=-1, descending=True)
            cs = paddle.cumsum(x, axis=1)
            fl = paddle.flip(x, [1])
            ro = paddle.roll(x, 2, axis=1)
            tr = paddle.tril(x.unsqueeze(0).expand([8, -1, -1])[:, :8, :])
            ar = paddle.arange(0, 8, 1, dtype="float32")
            isn = paddle.isnan(x)
            ta = paddle.take_along_axis(x, idx, axis=1)
            ins = paddle.index_select(x, paddle.to_tensor([1, 3]), axis=1)
            return (w, logic.astype("float32"), vals, idx, srt, cs, fl, ro, tr, x + ar, isn, ta, ins,
                    paddle.einsum("ij,ij->i", x, x), paddle.linalg.norm(x, p=2, axis=1))

    return Tier2()


def _ifnet() -> Any:
    import paddle
    import paddle.nn as nn

    class IfNet(nn.Layer):
        def forward(self, x: Any) -> Any:
            return paddle.static.nn.cond(paddle.mean(x) > 0, lambda: x * 2.0, lambda: x - 1.0)

    return IfNet()


def _whilenet() -> Any:
    import paddle
    import paddle.nn as nn

    class WhileNet(nn.Layer):
        def forward(self, x: Any) -> Any:
            i = paddle.full([1], 0, "int64")
            limit = paddle.full([1], 3, "int64")
            _, y = paddle.static.nn.while_loop(lambda i, y: i < limit, lambda i, y: [i + 1, y * 2.0 + 1.0], [i, x])
            return y

    return WhileNet()


def _legacy_ops() -> Any:
    """Fluid-era ops Paddle 3 APIs no longer emit, appended directly (legacy IR only)."""
    import paddle.nn as nn
    from paddle.base.layer_helper import LayerHelper

    def emit(op_type: str, inputs: dict, attrs: dict, outs: tuple = ("Out",)) -> Any:
        helper = LayerHelper(op_type)
        res = [helper.create_variable_for_type_inference("float32") for _ in outs]
        helper.append_op(type=op_type, inputs=inputs, outputs={k: [v] for k, v in zip(outs, res)}, attrs=attrs)
        return res[0]

    class LegacyOps(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.w = self.create_parameter([144, 8])
            self.b = self.create_parameter([8], is_bias=True)
            self.scale = self.create_parameter([4])
            self.bias = self.create_parameter([4], is_bias=True)

        def forward(self, x: Any) -> Any:  # [N, 4, 6, 6]
            return (
                emit("mul", {"X": [x], "Y": [self.w]}, {"x_num_col_dims": 1, "y_num_col_dims": 1}),
                emit("fc", {"Input": [x], "W": [self.w], "Bias": [self.b]},
                     {"in_num_col_dims": 1, "activation_type": "relu"}),
                emit("matmul", {"X": [x], "Y": [x]}, {"transpose_X": False, "transpose_Y": True, "alpha": 0.5}),
                emit("flatten2", {"X": [x]}, {"axis": 2}, ("Out", "XShape")),
                emit("affine_channel", {"X": [x], "Scale": [self.scale], "Bias": [self.bias]},
                     {"data_layout": "NCHW"}),
                emit("nearest_interp", {"X": [x]}, {"out_h": 12, "out_w": 12, "interp_method": "nearest",
                                                    "align_corners": False, "data_layout": "NCHW"}),
                emit("bilinear_interp", {"X": [x]}, {"out_h": 9, "out_w": 9, "interp_method": "bilinear",
                                                     "align_corners": True, "align_mode": 1, "data_layout": "NCHW"}),
                emit("fill_constant_batch_size_like", {"Input": [x]},
                     {"shape": [-1, 3], "input_dim_idx": 0, "output_dim_idx": 0, "dtype": 5, "value": 1.5}),
                emit("brelu", {"X": [x]}, {"t_min": 0.1, "t_max": 0.6}),
                emit("reshape", {"X": [x]}, {"shape": [-1, 144]}),
                emit("transpose", {"X": [x]}, {"axis": [0, 2, 3, 1]}),
            )

    return LegacyOps()


def _transformer() -> Any:
    import paddle.nn as nn

    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.1)
    return nn.TransformerEncoder(layer, 2)


def _ernie() -> Any:
    """BERT/ERNIE-style encoder: word + position + token-type embeddings, padding mask built from the ids
    (pad id 0 -> -1e4 added to the attention logits), post-norm encoder layers, tanh pooler on token 0."""
    import paddle
    import paddle.nn as nn

    class Ernie(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(64, 32, padding_idx=0)
            self.position = nn.Embedding(16, 32)
            self.token_type = nn.Embedding(2, 32)
            self.norm = nn.LayerNorm(32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation="gelu", attn_dropout=0.1)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.pooler = nn.Linear(32, 32)

        def forward(self, ids: Any, token_types: Any) -> Any:  # [N, L] int64 each
            positions = paddle.arange(paddle.shape(ids)[1], dtype="int64").unsqueeze(0)
            h = self.norm(self.word(ids) + self.position(positions) + self.token_type(token_types))
            mask = (ids == 0).astype("float32").unsqueeze([1, 2]) * -1e4  # [N, 1, 1, L]
            seq = self.encoder(h, src_mask=mask)
            return seq, paddle.tanh(self.pooler(seq[:, 0]))

    return Ernie()


def _rtdetr() -> Any:
    """RT-DETR-like head: encoder scores pick the top-K memory tokens as queries (topk + take_along_axis),
    reference points from a grid built with arange/meshgrid of the run-time H, W, one decoder layer with
    self-attention and single-scale deformable cross-attention (sampling offsets -> grid_sample of the
    per-head value map, softmax-weighted sum), box refinement through inverse sigmoid, class logits."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    d, heads, points, queries, classes = 32, 4, 4, 10, 5

    class RTDETRHead(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.input_proj = nn.Conv2D(16, d, 1)
            self.enc_score = nn.Linear(d, classes)
            self.self_attn = nn.MultiHeadAttention(d, heads)
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
            self.offsets = nn.Linear(d, heads * points * 2)
            self.weights = nn.Linear(d, heads * points)
            self.value = nn.Linear(d, d)
            self.out = nn.Linear(d, d)
            self.ffn = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, d))
            self.box = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 4))
            self.cls = nn.Linear(d, classes)

        def forward(self, feat: Any) -> Any:  # [N, 16, H, W]
            x = self.input_proj(feat)
            n, h, w = paddle.shape(x)[0], paddle.shape(x)[2], paddle.shape(x)[3]
            memory = x.flatten(2).transpose([0, 2, 1])  # [N, HW, d]
            ys, xs = paddle.meshgrid(paddle.arange(h, dtype="float32"), paddle.arange(w, dtype="float32"))
            wh = paddle.stack([w, h]).astype("float32")
            anchors = (paddle.stack([xs, ys], -1).reshape([1, -1, 2]) + 0.5) / wh  # [1, HW, 2] in (0, 1)
            scores = self.enc_score(memory).max(-1)  # [N, HW]
            _, idx = paddle.topk(scores, queries, axis=1)
            tgt = paddle.take_along_axis(memory, idx.unsqueeze(-1).expand([-1, -1, d]), axis=1)
            ref = paddle.take_along_axis(anchors.expand([n, -1, -1]), idx.unsqueeze(-1).expand([-1, -1, 2]), axis=1)
            tgt = self.norm1(tgt + self.self_attn(tgt, tgt, tgt))
            # deformable cross-attention, one level
            value = self.value(memory).reshape([n, h, w, heads, d // heads]).transpose([0, 3, 4, 1, 2])
            value = value.reshape([-1, d // heads, h, w])  # [N*heads, d/heads, H, W]
            off = self.offsets(tgt).reshape([n, queries, heads, points, 2]) / wh
            loc = ref.unsqueeze([2, 3]) + off  # [N, Q, heads, P, 2] in (0, 1)
            grid = (loc * 2 - 1).transpose([0, 2, 1, 3, 4]).reshape([-1, queries, points, 2])
            sampled = F.grid_sample(value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            attn = F.softmax(self.weights(tgt).reshape([n, queries, heads, points]), -1)
            attn = attn.transpose([0, 2, 1, 3]).reshape([-1, 1, queries, points])
            cross = paddle.sum(sampled * attn, axis=-1).reshape([n, d, queries]).transpose([0, 2, 1])
            tgt = self.norm2(tgt + self.out(cross))
            tgt = self.norm3(tgt + self.ffn(tgt))
            ref_logit = paddle.log(ref.clip(1e-5, 1 - 1e-5) / (1 - ref.clip(1e-5, 1 - 1e-5)))
            delta = self.box(tgt)
            boxes = F.sigmoid(delta + paddle.concat([ref_logit, paddle.zeros_like(ref_logit)], -1))
            return self.cls(tgt), boxes

    return RTDETRHead()


def _multiclass_nms3(bboxes: Any, scores: Any, **attrs: Any) -> Any:
    """Paddle 3.3.1 has no Python API for multiclass_nms3: PaddleDetection calls the C++ op (PIR) or appends
    it (2.x), as here. Returns (out [M, 6], per-image count)."""
    import paddle
    from paddle import _C_ops

    if paddle.framework.in_pir_mode():
        out, _, count = _C_ops.multiclass_nms3(bboxes, scores, None, attrs["score_threshold"], attrs["nms_top_k"],
                                               attrs["keep_top_k"], attrs["nms_threshold"], True, 1.0,
                                               attrs["background_label"])
        return out, count
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper("multiclass_nms3")
    out = helper.create_variable_for_type_inference(bboxes.dtype)
    index = helper.create_variable_for_type_inference("int32")
    count = helper.create_variable_for_type_inference("int32")
    helper.append_op(type="multiclass_nms3", inputs={"BBoxes": [bboxes], "Scores": [scores]},
                     outputs={"Out": [out], "Index": [index], "NmsRoisNum": [count]},
                     attrs=dict(attrs, normalized=True, nms_eta=1.0))
    return out, count


def _yolo_head() -> Any:
    """YOLOv3-style detector tail: a small conv trunk, one head per stride (16 and 8), yolo_box decoding with
    the run-time image size, boxes of both heads concatenated, multiclass_nms3 (legacy and PIR)."""
    import paddle
    import paddle.nn as nn

    classes, anchors = 3, ([10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119])

    class YoloHead(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2D(3, 8, 3, 2, 1), nn.BatchNorm2D(8), nn.LeakyReLU(0.1),
                                      nn.Conv2D(8, 16, 3, 2, 1), nn.BatchNorm2D(16), nn.LeakyReLU(0.1),
                                      nn.Conv2D(16, 16, 3, 2, 1), nn.BatchNorm2D(16), nn.LeakyReLU(0.1))
            self.down = nn.Sequential(nn.Conv2D(16, 16, 3, 2, 1), nn.BatchNorm2D(16), nn.LeakyReLU(0.1))
            self.head8 = nn.Conv2D(16, 3 * (5 + classes), 1)
            self.head16 = nn.Conv2D(16, 3 * (5 + classes), 1)

        def forward(self, image: Any, im_size: Any) -> Any:  # [N, 3, H, W], [N, 2] int32 (h, w)
            f8 = self.stem(image)
            f16 = self.down(f8)
            boxes, scores = [], []
            for head, feat, stride, anc in ((self.head16, f16, 16, anchors[1]), (self.head8, f8, 8, anchors[0])):
                b, s = paddle.vision.ops.yolo_box(head(feat), im_size, anc, classes, conf_thresh=0.005,
                                                  downsample_ratio=stride, clip_bbox=True, scale_x_y=1.05)
                boxes.append(b)
                scores.append(s)
            boxes = paddle.concat(boxes, axis=1)  # [N, M, 4]
            scores = paddle.concat(scores, axis=1).transpose([0, 2, 1])  # [N, classes, M]
            return _multiclass_nms3(boxes, scores, score_threshold=0.01, nms_top_k=100, keep_top_k=20,
                                    nms_threshold=0.45, background_label=-1)

    return YoloHead()


def _yolo_dense() -> Any:
    """yolo_head whose NMS takes every box of every class (nms_top_k -1, as detectors exported with a large
    nms_top_k do): 3 classes x 3 * (H*W/256 + H*W/64) boxes pass TensorRT's 5000-box NMS limit above 181x181."""
    import paddle

    head = _yolo_head()

    class Dense(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, image: Any, im_size: Any) -> Any:
            h = self.head
            f8 = h.stem(image)
            f16 = h.down(f8)
            boxes, scores = [], []
            for conv, feat, stride, anc in ((h.head16, f16, 16, [30, 61, 62, 45, 59, 119]),
                                            (h.head8, f8, 8, [10, 13, 16, 30, 33, 23])):
                b, s = paddle.vision.ops.yolo_box(conv(feat), im_size, anc, 3, conf_thresh=0.005,
                                                  downsample_ratio=stride, clip_bbox=True, scale_x_y=1.05)
                boxes.append(b)
                scores.append(s)
            return _multiclass_nms3(paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1).transpose([0, 2, 1]),
                                    score_threshold=0.01, nms_top_k=-1, keep_top_k=20, nms_threshold=0.45,
                                    background_label=-1)

    return Dense()


def _yolo_matrix() -> Any:
    """yolo_head with SOLOv2's matrix_nms over every box of every class (nms_top_k -1, as PaddleDetection's
    PP-YOLO configs export it): 3 * (H*W/256 + H*W/64) candidates per class pass TensorRT's TopK limit (3840)
    above 256x256, so a partitioned build runs the NMS in Python there."""
    import paddle

    head = _yolo_head()

    class Matrix(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, image: Any, im_size: Any) -> Any:
            h = self.head
            f8 = h.stem(image)
            f16 = h.down(f8)
            boxes, scores = [], []
            for conv, feat, stride, anc in ((h.head16, f16, 16, [30, 61, 62, 45, 59, 119]),
                                            (h.head8, f8, 8, [10, 13, 16, 30, 33, 23])):
                b, s = paddle.vision.ops.yolo_box(conv(feat), im_size, anc, 3, conf_thresh=0.005,
                                                  downsample_ratio=stride, clip_bbox=True, scale_x_y=1.05)
                boxes.append(b)
                scores.append(s)
            out, count, _ = paddle.vision.ops.matrix_nms(
                paddle.concat(boxes, axis=1), paddle.concat(scores, axis=1).transpose([0, 2, 1]),
                score_threshold=0.01, post_threshold=0.01, nms_top_k=-1, keep_top_k=20, use_gaussian=False,
                background_label=-1, normalized=False, return_index=False, return_rois_num=True)
            return out, count

    return Matrix()


def _cumprod_net() -> Any:
    """A conv net with an op in the middle that has no TensorRT converter (cumprod along the width), so a
    partitioned build runs Python between two TensorRT regions."""
    import paddle
    import paddle.nn as nn

    class CumprodNet(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2D(3, 8, 3, 1, 1), nn.Sigmoid())
            self.tail = nn.Sequential(nn.Conv2D(8, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2D(1), nn.Flatten(),
                                      nn.Linear(8, 5))

        def forward(self, x: Any) -> Any:
            return self.tail(paddle.cumprod(self.stem(x) + 0.5, dim=3))

    return CumprodNet()


def _crnn() -> Any:
    """CRNN text recognizer: conv trunk collapsing the height, 2-layer bidirectional LSTM over the width
    (the `rnn` op), per-step class scores with softmax (CTC decoding happens outside the model)."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class CRNN(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2D(3, 16, 3, 1, 1), nn.BatchNorm2D(16), nn.ReLU(), nn.MaxPool2D(2, 2),
                                       nn.Conv2D(16, 32, 3, 1, 1), nn.BatchNorm2D(32), nn.ReLU(),
                                       nn.MaxPool2D((4, 1), (4, 1)))
            self.lstm = nn.LSTM(32, 24, num_layers=2, direction="bidirect")
            self.fc = nn.Linear(48, 12)

        def forward(self, x: Any) -> Any:  # [N, 3, 8, W]
            f = self.trunk(x).squeeze(2).transpose([0, 2, 1])  # [N, W/2, 32]
            seq, _ = self.lstm(f)
            return F.softmax(self.fc(seq), axis=-1)

    return CRNN()


def _lod_pool() -> Any:
    """Fluid-era sequence model: fc over a LoD batch of variable-length sequences, then sequence_pool. Not
    expressible in TensorRT (no LoD): `repogen check` must name the op, `--target auto` must fall back."""
    import paddle
    import paddle.nn as nn

    class LodPool(nn.Layer):
        def forward(self, x: Any) -> Any:  # [total steps, 8], LoD level 1
            return paddle.static.nn.sequence_pool(paddle.static.nn.fc(x, 4), "sum")

    return LodPool()


def _seg_gaps() -> Any:
    """Segmentation-style head exercising issue 17's gaps: upsampling to the input's run-time size, tile with
    repeats taken from the run-time shape, a boolean-mask index_put (a select), a strided_slice whose step is
    the run-time batch size, and an argmax label map whose classes tie (compared tie-aware)."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    def index_put(x: Any, mask: Any, value: Any) -> Any:
        if isinstance(x, paddle.static.Variable):  # legacy IR: Paddle 3.3.1's static API only writes PIR
            from paddle.base.layer_helper import LayerHelper

            helper = LayerHelper("index_put")
            out = helper.create_variable_for_type_inference(x.dtype)
            helper.append_op(type="index_put", inputs={"x": [x], "indices": [mask], "value": [value]},
                             outputs={"out": [out]}, attrs={"accumulate": False})
            return out
        return paddle.index_put(x, (mask,), value)

    class SegGaps(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Conv2D(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2D(8, 4, 3, 1, 1))

        def forward(self, x: Any) -> Any:
            f = self.trunk(x)  # [N, 4, H/2, W/2] class logits
            hw = paddle.shape(x)[2:]
            up = F.interpolate(f, size=hw, mode="bilinear", align_corners=False)
            bias = paddle.tile(F.adaptive_avg_pool2d(f, 1), [1, 1, hw[0], hw[1]])
            y = up + bias * 0.5
            y = index_put(y, y > 0.3, paddle.full([1], 0.3, "float32"))  # clamp: many exact ties at 0.3
            step = paddle.shape(x)[0]
            cols = paddle.strided_slice(y, [3], [0], [paddle.shape(y)[3]], [step])
            # a fifth class scoring class 0 x 1.0001: FP16 rounds the two to one value (ties, compared tie-aware)
            scores = paddle.concat([y, y[:, :1] * 1.0001], axis=1)
            return y, paddle.argmax(scores, axis=1), cols

    return SegGaps()


def _bf16_net() -> Any:
    """A small classifier whose convolution weights are stored as bfloat16 (mixed-precision exports), cast to
    float32 where used. Paddle 3.3.1 writes bf16 parameters in PIR programs only."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Bf16Net(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            vals = np.random.default_rng(5).normal(0.0, 0.3, (8, 3, 3, 3)).astype("float32")
            self.w = self.create_parameter([8, 3, 3, 3], dtype="bfloat16",
                                           default_initializer=nn.initializer.Assign(vals))
            self.fc = nn.Linear(8, 10)

        def forward(self, x: Any) -> Any:
            y = F.relu(F.conv2d(x, self.w.astype("float32"), padding=1))
            return self.fc(paddle.flatten(F.adaptive_avg_pool2d(y, 1), 1))

    return Bf16Net()


MODELS: dict[str, ZooModel] = {m.name: m for m in [
    ZooModel("resnet18", _vision("resnet18", num_classes=10), (_img(hw=32),), ("conv", "pool", "norm", "matmul")),
    ZooModel("resnet50", _vision("resnet50"), (_img(hw=32),), ("conv", "pool", "norm", "matmul"),
             bn_inflation=(1.5, 2.0)),
    ZooModel("mobilenet_v2", _vision("mobilenet_v2", scale=0.5, num_classes=10), (_img(hw=32),), ("depthwise", "relu6")),
    ZooModel("mobilenet_v3_small", _vision("mobilenet_v3_small", scale=0.5, num_classes=10), (_img(hw=32),),
             ("hardswish", "hardsigmoid", "se")),
    ZooModel("transformer", _transformer, (InputSpec("x", "float32", (-1, -1, 32), (2, 5, 32)),),
             ("matmul", "softmax", "layer_norm", "reshape", "transpose")),
    ZooModel("convnet", _convnet, (_img(hw=16),), ("conv", "pool", "norm", "pad", "interp")),
    ZooModel("elementwise", _elementwise,
             (InputSpec("x", "float32", (-1, 3, 8), (2, 3, 8)), InputSpec("y", "float32", (-1, 3, 8), (2, 3, 8))),
             ("elementwise", "activation", "unary", "scale")),
    ZooModel("tensors", _tensors,
             (InputSpec("x", "float32", (-1, 4, 16), (2, 4, 16)),
              InputSpec("ids", "int64", (-1, 4), (2, 4), 0, 10)),
             ("matmul", "shape", "slice", "reduce", "gather", "embedding")),
    ZooModel("ernie", _ernie, (InputSpec("ids", "int64", (-1, -1), (2, 7), 0, 64),
                               InputSpec("token_types", "int64", (-1, -1), (2, 7), 0, 2)),
             ("embedding", "attention mask", "gelu", "layer_norm", "arange")),
    ZooModel("rtdetr_head", _rtdetr, (InputSpec("feat", "float32", (-1, 16, -1, -1), (2, 16, 6, 8)),),
             ("topk", "take_along_axis", "meshgrid", "grid_sample", "attention", "deformable attention")),
    ZooModel("yolo_head", _yolo_head, (_img("image", hw=64), InputSpec("im_size", "int32", (-1, 2), (2, 2), 64, 65)),
             ("yolo_box", "multiclass_nms3", "leaky_relu")),
    ZooModel("yolo_dense", _yolo_dense, (_img("image", hw=64), InputSpec("im_size", "int32", (-1, 2), (2, 2), 64, 65)),
             ("yolo_box", "multiclass_nms3 beyond TensorRT's NMS limit")),
    ZooModel("yolo_matrix", _yolo_matrix,
             (_img("image", hw=64), InputSpec("im_size", "int32", (-1, 2), (2, 2), 64, 65)),
             ("yolo_box", "matrix_nms beyond TensorRT's TopK limit")),
    ZooModel("cumprod_net", _cumprod_net, (_img(hw=16),), ("cumprod (no converter)",)),
    ZooModel("crnn", _crnn, (InputSpec("x", "float32", (-1, 3, 8, -1), (2, 3, 8, 32)),), ("rnn (LSTM)", "bidirectional")),
    ZooModel("lod_pool", _lod_pool, (InputSpec("x", "float32", (-1, 8), (6, 8), lod_level=1),), ("sequence_pool",),
             formats=("fluid-separate", "fluid-combined", "paddle2")),
    ZooModel("tier2", _tier2, (InputSpec("x", "float32", (-1, 8), (8, 8)),), ("compare", "topk", "cumsum")),
    ZooModel("ifnet", _ifnet, (InputSpec("x", "float32", (-1, 4), (2, 4)),), ("control flow",)),
    ZooModel("legacy_ops", _legacy_ops, (InputSpec("x", "float32", (-1, 4, 6, 6), (2, 4, 6, 6)),),
             ("mul", "fc", "matmul v1", "flatten2", "affine_channel", "interp v1"),
             formats=("fluid-separate", "fluid-combined", "paddle2")),
    # Paddle 3.3.1's PIR quantization API (paddle.quantization.PTQ + jit.save) writes a program that Paddle
    # Inference itself cannot run ("Tensor holds no memory" for its quant_out values), so 2.x formats only
    ZooModel("convnet_paddle_ptq", _convnet, (_img(hw=16),), ("quantize_linear", "dequantize_linear", "int8 weights"),
             formats=("fluid-separate", "fluid-combined", "paddle2"), paddle_ptq=True),
    ZooModel("whilenet", _whilenet, (InputSpec("x", "float32", (-1, 4), (2, 4)),), ("control flow",)),
    ZooModel("seg_gaps", _seg_gaps, (_img(hw=16),),
             ("run-time interp size", "run-time tile", "bool-mask index_put", "run-time strided_slice step",
              "argmax label map (tie-aware)")),
    ZooModel("bf16_net", _bf16_net, (_img(hw=16),), ("bf16 parameters",), formats=("pir",)),
]}


def input_specs(name: str) -> tuple[InputSpec, ...]:
    return MODELS[name].inputs


def sample_feeds(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in MODELS[name].inputs:
        if spec.dtype.startswith("int"):
            feeds[spec.name] = rng.integers(int(spec.low), int(spec.high), spec.sample).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.uniform(spec.low, spec.high, spec.sample).astype(spec.dtype)
    return feeds


def paddle_version() -> str:
    try:
        return importlib.metadata.version("paddlepaddle")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / f"repogen-zoo-{paddle_version()}"


def fingerprint(name: str) -> str:
    """Short hash of a model's definition, so editing a builder never serves a stale cached copy."""
    import hashlib
    import inspect

    model = MODELS[name]
    cells = [c.cell_contents for c in (model.build.__closure__ or ())]
    text = repr(cells) + repr(model.inputs) + repr(model.bn_inflation) + "".join(
        inspect.getsource(f) for f in (model.build, _save, _calibration_feeds, _calibrate_batch_norms, sample_feeds,
                                       *((_paddle_ptq,) if model.paddle_ptq else ())))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def model_dir(name: str) -> Path:
    return cache_root() / f"{name}-{fingerprint(name)}"


def get(name: str, fmt: str = "pir") -> Path:
    """The directory of zoo model ``name`` saved in ``fmt`` (one of FORMATS), building it if needed."""
    if name not in MODELS:
        raise KeyError(f"no zoo model {name!r}; have {', '.join(MODELS)}")
    if fmt not in MODELS[name].formats:
        raise KeyError(f"zoo model {name!r} has no format {fmt!r}; have {', '.join(MODELS[name].formats)}")
    final = model_dir(name) / fmt
    if (final / ".complete").exists():
        return final
    mode = "pir" if fmt == "pir" else "legacy"
    _build(name, mode)
    if not (final / ".complete").exists():
        raise RuntimeError(f"zoo: building {name} ({mode}) did not produce {final}")
    return final


def ensure(names: list[str] | None = None, workers: int | None = None) -> None:
    """Build every missing format of the named models (default: all), several Paddle subprocesses at once."""
    from concurrent.futures import ThreadPoolExecutor

    todo = []
    for name in names or list(MODELS):
        for mode in ("pir", "legacy"):
            fmts = [f for f in MODELS[name].formats if (f == "pir") == (mode == "pir")]
            if fmts and not all((model_dir(name) / f / ".complete").exists() for f in fmts):
                todo.append((name, mode))
    with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(_build, name, mode) for name, mode in todo]:
            future.result()


def _build(name: str, mode: str) -> None:
    root = model_dir(name)
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FLAGS_enable_pir_api="1" if mode == "pir" else "0", GLOG_minloglevel="2")
    tmp = root / f".tmp-{mode}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.support.zoo", "_save", name, mode, str(tmp)],
                              env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"zoo: saving {name} ({mode}) failed:\n{proc.stderr[-4000:]}")
        fmts = ("pir",) if mode == "pir" else ("paddle2", "fluid-separate", "fluid-combined")
        for fmt in fmts:
            (tmp / fmt / ".complete").write_text("ok\n")
            try:
                os.rename(tmp / fmt, root / fmt)
            except OSError:
                if not (root / fmt / ".complete").exists():  # a loser of a race leaves the winner's copy
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install_legacy_shims() -> None:
    """Paddle 3.3.1 routes many static-graph APIs straight to PIR-only ``_C_ops`` even with the legacy IR
    selected (``abs(): argument must be Value, but got Variable``). Wrap those entry points so that, given
    legacy Variables, they append the legacy op as Paddle 2.x did."""
    import paddle
    from paddle import _C_ops
    from paddle.base.layer_helper import LayerHelper

    def emit(op_type: str, inputs: dict, attrs: dict, out_dtype: Any = None, outs: tuple = ("Out",)) -> Any:
        helper = LayerHelper(op_type)
        first = next(iter(inputs.values()))[0]
        results = [helper.create_variable_for_type_inference(out_dtype or first.dtype) for _ in outs]
        helper.append_op(type=op_type, inputs=inputs, outputs={k: [v] for k, v in zip(outs, results)}, attrs=attrs)
        return results[0] if len(results) == 1 else results

    def axes(a: Any) -> list:
        return [] if a is None else ([a] if isinstance(a, int) else list(a))

    unary = {n: n for n in ["abs", "exp", "log", "sqrt", "rsqrt", "floor", "ceil", "round", "sign", "sin", "cos",
                            "sigmoid", "tanh", "logical_not"]}
    unary["isnan"] = "isnan_v2"
    shims: dict[str, Callable[..., Any]] = {}
    for api, op in unary.items():
        dtype = "bool" if api in ("isnan", "logical_not") else None
        shims[api] = lambda x, *a, _op=op, _dt=dtype, **k: emit(_op, {"X": [x]}, {}, _dt)
    shims["maximum"] = lambda x, y: emit("elementwise_max", {"X": [x], "Y": [y]}, {"axis": -1})
    shims["minimum"] = lambda x, y: emit("elementwise_min", {"X": [x], "Y": [y]}, {"axis": -1})
    shims["logical_and"] = lambda x, y: emit("logical_and", {"X": [x], "Y": [y]}, {}, "bool")
    shims["gelu"] = lambda x, approximate=False: emit("gelu", {"X": [x]}, {"approximate": bool(approximate)})
    shims["softplus"] = lambda x, beta=1.0, threshold=20.0: emit("softplus", {"X": [x]},
                                                                {"beta": float(beta), "threshold": float(threshold)})
    shims["matmul"] = lambda x, y, transpose_x=False, transpose_y=False: emit("matmul_v2", {"X": [x], "Y": [y]},
                                                            {"trans_x": bool(transpose_x), "trans_y": bool(transpose_y)})
    shims["bmm"] = lambda x, y: emit("bmm", {"X": [x], "Y": [y]}, {})
    shims["expand_as"] = lambda x, y, shape=(): emit("expand_as_v2", {"X": [x], "Y": [y]},
                                                  {"target_shape": list(shape) or list(y.shape)})
    shims["sum"] = lambda x, axis=None, dtype=None, keepdim=False, *a: emit(
        "reduce_sum", {"X": [x]}, {"dim": axes(axis) or [0], "keep_dim": bool(keepdim), "reduce_all": not axes(axis)})
    for api, op in (("argmax", "arg_max"), ("argmin", "arg_min")):
        shims[api] = lambda x, axis, keepdim=False, flatten=False, dtype=None, _op=op: emit(
            _op, {"X": [x]}, {"axis": int(axis), "keepdims": bool(keepdim), "flatten": bool(flatten), "dtype": 3},
            "int64")
    shims["roll"] = lambda x, shifts, axis: emit("roll", {"X": [x]}, {"shifts": axes(shifts), "axis": axes(axis)})
    shims["tril"] = lambda x, diagonal=0: emit("tril_triu", {"X": [x]}, {"diagonal": int(diagonal), "lower": True})
    shims["grid_sample"] = lambda x, grid, mode="bilinear", padding_mode="zeros", align_corners=True: emit(
        "grid_sampler", {"X": [x], "Grid": [grid]},
        {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners)}, outs=("Output",))

    for api, shim in shims.items():
        original = getattr(_C_ops, api)

        def wrapper(*args: Any, _orig: Any = original, _shim: Any = shim, **kw: Any) -> Any:
            first = args[0] if args else kw.get("x")
            if isinstance(first, paddle.static.Variable):
                return _shim(*args, **kw)
            return _orig(*args, **kw)

        setattr(_C_ops, api, wrapper)
        # some modules bind the function at import (``from paddle._C_ops import matmul``): rebind those too
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("paddle") and getattr(mod, api, None) is original:
                setattr(mod, api, wrapper)


def _calibration_feeds(name: str) -> dict[str, np.ndarray]:
    """Two sample batches' worth of inputs (where the batch is dynamic), for batch-norm statistics.

    Small: calibrating runs the net once per batch norm (resnet50: 53 runs, 0.35 s each at 16 images)."""
    specs = MODELS[name].inputs
    if any(s.shape[:1] != (-1,) for s in specs):
        return sample_feeds(name, seed=1)
    batches = [sample_feeds(name, seed=s) for s in range(1, 3)]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _calibrate_batch_norms(exe: Any, main: Any, scope: Any, bn_inputs: list, feeds: dict[str, np.ndarray],
                           inflation: tuple[float, float] = (1.1, 1.5)) -> None:
    """Running statistics measured on sample inputs, as training leaves them, then jittered.

    Random-weight nets need this: Paddle initialises depthwise convolutions for fan-in ``9 * channels``,
    so with guessed statistics (means +-0.2, variances [0.5, 1.5]) mobilenet_v2's signal shrinks
    ~sqrt(channels) per block and its logits no longer depend on the input (two images' logits agreed to
    4e-7 while their magnitude was 0.5). Each layer is measured after the ones before it are set (its input
    depends on them). Exact unit normalisation makes a random net chaotic (mobilenet_v2: a 1e-3 input
    perturbation moved the logits 6e-2, so FP16 cannot match FP32); variances inflated x[1.1, 1.5] after
    measuring give a gain of ~5 with the input still a quarter of the logits. Deeper nets need more
    (``inflation``): resnet50 at x[1.1, 1.5] moved its logits by 9e-6 (relative) for a one-ulp input change,
    so no float32 engine could be held to 1e-5 against it; at x[1.5, 2.0] that is 2e-6 and its logits still
    depend on the input. The other jitter (means +-0.2 std, gammas [0.8, 1.2], betas +-0.1) keeps a swapped
    mean/variance or scale/bias mapping visible.
    """
    import paddle

    rng = np.random.default_rng(0)
    place = paddle.CPUPlace()

    def put(param: Any, value: np.ndarray) -> None:
        scope.find_var(param.name).get_tensor().set(value.astype("float32"), place)

    measured = []
    for bn, x in bn_inputs:
        (act,) = exe.run(main, feed=feeds, fetch_list=[x])
        channel = 1 if bn._data_format in ("NC", "NCL", "NCHW", "NCDHW") else act.ndim - 1
        axes = tuple(a for a in range(act.ndim) if a != channel)
        mean, var = act.mean(axis=axes), act.var(axis=axes)
        var = np.maximum(var, 0.1 * np.median(var)) + 1e-3  # few samples per channel in late layers
        put(bn._mean, mean)
        put(bn._variance, var)
        measured.append((bn, mean, var))
    for bn, mean, var in measured:  # jittered only now: measuring after it would undo the variance inflation
        c = mean.shape
        put(bn._mean, mean + rng.uniform(-0.2, 0.2, c) * np.sqrt(var))
        put(bn._variance, var * rng.uniform(*inflation, c))
        put(bn.weight, rng.uniform(0.8, 1.2, c))
        put(bn.bias, rng.uniform(-0.1, 0.1, c))


def _save(name: str, mode: str, out: Path) -> None:
    """Runs in the subprocess whose FLAGS_enable_pir_api matches mode.

    Builds the program with paddle.static (Paddle 3.3.1's dy2static is broken with the legacy IR).
    """
    import paddle

    paddle.seed(0)
    np.random.seed(0)
    spec = MODELS[name]
    paddle.enable_static()
    if mode != "pir":
        _install_legacy_shims()
    main, startup = paddle.static.Program(), paddle.static.Program()
    bn_inputs: list = []  # (batch norm layer, its input), in execution order
    with paddle.static.program_guard(main, startup):
        layer = spec.build()
        layer.eval()
        for m in layer.sublayers(include_self=True):
            if isinstance(m, paddle.nn.layer.norm._BatchNormBase):
                m.register_forward_pre_hook(lambda m, args: bn_inputs.append((m, args[0])))
        feeds = [paddle.static.data(s.name, list(s.shape), s.dtype, **({"lod_level": s.lod_level} if s.lod_level else {}))
                 for s in spec.inputs]
        outs = layer(*feeds)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    exe = paddle.static.Executor(paddle.CPUPlace())
    scope = paddle.static.global_scope()
    exe.run(startup)
    # in static graphs a batch norm's running statistics are parameters, not buffers
    _calibrate_batch_norms(exe, main, scope, bn_inputs, _calibration_feeds(name), spec.bn_inflation)
    fmt = "pir" if mode == "pir" else "paddle2"
    (out / fmt).mkdir(parents=True)
    paddle.static.save_inference_model(str(out / fmt / "inference"), feeds, outs, exe, program=main)
    if mode == "pir":
        return
    if spec.paddle_ptq:
        _paddle_ptq(name, exe, out / "paddle2")
    prog, _, _ = paddle.static.load_inference_model(str(out / "paddle2" / "inference"), exe)
    persist = [v for v in prog.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
    for fmt, filename in (("fluid-separate", None), ("fluid-combined", "__params__")):
        (out / fmt).mkdir()
        shutil.copyfile(out / "paddle2" / "inference.pdmodel", out / fmt / "__model__")
        paddle.static.io.save_vars(exe, str(out / fmt), prog, vars=persist, filename=filename)


def _paddle_ptq(name: str, exe: Any, model: Path) -> None:
    """Replace the float model in ``model`` by Paddle's own post-training quantization of it: int8 weights
    (per channel) behind dequantize_linear, activations through quantize_linear/dequantize_linear pairs,
    scales from 8 calibration batches (algo "avg"), as PaddleSlim's PTQ writes deployable models."""
    from paddle.static.quantization import PostTrainingQuantization

    def batches() -> Any:
        for seed in range(8):
            yield {k: np.concatenate([v] * 2) for k, v in sample_feeds(name, seed=100 + seed).items()}

    ptq = PostTrainingQuantization(
        executor=exe, model_dir=str(model), model_filename="inference.pdmodel", params_filename="inference.pdiparams",
        data_loader=batches, batch_nums=8, algo="avg", onnx_format=True, weight_quantize_type="channel_wise_abs_max",
        quantizable_op_type=["conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul_v2"])
    ptq.quantize()
    ptq.save_quantized_model(str(model), model_filename="inference.pdmodel", params_filename="inference.pdiparams")


def paddle_view(paths: list[Path]) -> dict[str, dict]:
    """What Paddle's own loader sees in saved models (for tests): feeds, fetches, ops, parameter digests.

    Runs one subprocess per IR mode (the legacy IR can only be selected at process start).
    """
    import json

    result: dict[str, dict] = {}
    for pir in (True, False):
        todo = [str(p) for p in paths if (_source_format(p) == "pir") == pir]
        if not todo:
            continue
        env = dict(os.environ, FLAGS_enable_pir_api="1" if pir else "0", GLOG_minloglevel="2")
        proc = subprocess.run([sys.executable, "-m", "tests.support.zoo", "_view", *todo], env=env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"zoo: paddle_view failed:\n{proc.stderr[-4000:]}")
        result.update(json.loads(proc.stdout.splitlines()[-1]))
    return result


def _source_format(path: Path | str) -> str:
    from repogen.paddle.loader import detect

    return detect(path).format


def _view(paths: list[str]) -> dict[str, dict]:
    import hashlib

    import paddle
    from paddle.base.data_feeder import convert_dtype

    from repogen.paddle.loader import detect

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    out = {}
    for path in paths:
        src = detect(path)
        kwargs: dict[str, Any] = {}
        if src.format.startswith("fluid"):
            prefix = str(src.model_file.parent)
            kwargs["model_filename"] = "__model__"
            if src.params_file is not None:
                kwargs["params_filename"] = src.params_file.name
        else:
            prefix = str(src.model_file.with_suffix(""))
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prog, feed_names, fetch_targets = paddle.static.load_inference_model(prefix, exe, **kwargs)
        view: dict[str, Any] = {"feeds": [], "fetches": [], "ops": [], "params": {}, "sub_block_ops": []}
        if src.format == "pir":
            ops = prog.global_block().ops
            structural = {"builtin.parameter", "pd_op.data", "pd_op.fetch", "builtin.combine", "builtin.split",
                          "builtin.slice"}
            names = []
            for op in ops:
                n = op.name()
                if n == "builtin.parameter":
                    names.append(op.attrs()["parameter_name"])
                elif n == "pd_op.data":
                    v = op.result(0)
                    view["feeds"].append([op.attrs()["name"], convert_dtype(v.dtype), list(v.shape)])
                elif n == "pd_op.fetch":
                    v = op.operand_source(0)
                    view["fetches"].append([op.attrs()["name"], convert_dtype(v.dtype), list(v.shape)])
                if n not in structural:
                    view["ops"].append(n)
                    try:
                        view.setdefault("slots", []).append([n, op.get_input_names(), op.get_output_names()])
                    except ValueError:  # ops without yaml info (cf.*, pd_op.if) have no slot names
                        view.setdefault("slots", []).append([n, None, None])
                    view["sub_block_ops"].extend(sub.name() for blk in op.blocks() for sub in blk.ops)
        else:
            block = prog.global_block()
            for n in feed_names:
                v = block.var(n)
                view["feeds"].append([n, convert_dtype(v.dtype), list(v.shape)])
            for v in fetch_targets:
                view["fetches"].append([v.name, convert_dtype(v.dtype), list(v.shape)])
            view["ops"] = [op.type for op in block.ops if op.type not in ("feed", "fetch")]
            view["sub_block_ops"] = [op.type for b in prog.blocks[1:] for op in b.ops]
            names = [v.name for v in prog.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
        for n in names:
            arr = np.array(scope.find_var(n).get_tensor())
            view["params"][n] = [str(arr.dtype), list(arr.shape), hashlib.sha256(arr.tobytes()).hexdigest()]
        out[path] = view
    return out


def reference_outputs(path: str | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run Paddle Inference (CPU) on a saved model; outputs by the predictor's output names, in order.

    The settings of repogen.reference (the reference check/build/validate use), run in this process: tests
    call this thousands of times, and a child process per call would cost a Paddle import each."""
    from repogen.reference import paddle_outputs

    return paddle_outputs(path, feeds)


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "_view":
        import json

        print(json.dumps(_view(argv[1:])))
        return 0
    if len(argv) == 4 and argv[0] == "_save":
        _save(argv[1], argv[2], Path(argv[3]))
        return 0
    names = argv or list(MODELS)
    for name in names:
        for fmt in MODELS[name].formats:
            print(name, fmt, get(name, fmt))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
