"""Convolution, deconvolution and pooling: padding arithmetic (PaddingMode formulas) and strided-view kernels."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._support import compute_in, require_type, same_type, weights_array
from ._network import ILayer, Info, NetworkCore, ITensor
from ._types import FLOAT_TYPES, DataType, Dims, LayerType, PaddingMode, PoolingType, as_weights, volume

_P = PaddingMode


def conv_geometry(mode: int, size: int, k: int, s: int, d: int, pre: int, post: int) -> tuple[int, int, int]:
    """(pre, post, output) along one spatial dim of a convolution/pooling, per the PaddingMode formulas.

    With EXPLICIT_ROUND_UP the returned post padding grows so the last window fits; callers treat that
    growth as outside both the data and the explicit padding (zero for convolution, ignored by pooling).
    """
    dk = 1 + d * (k - 1)
    mode = _P(mode)
    if size < 0:
        return pre, post, -1
    if mode in (_P.SAME_UPPER, _P.SAME_LOWER):
        out = -(-size // s)
        p = max((out - 1) * s + dk - size, 0)
        small = p // 2
        pre, post = (small, p - small) if mode == _P.SAME_UPPER else (p - small, small)
        return pre, post, out
    m = size + pre + post
    if m < dk:
        return pre, post, 0
    out = (m - dk) // s + 1 if mode == _P.EXPLICIT_ROUND_DOWN else -(-(m - dk) // s) + 1
    return pre, post, out


def deconv_geometry(mode: int, size: int, k: int, s: int, d: int, pre: int, post: int) -> tuple[int, int, int]:
    dk = 1 + d * (k - 1)
    mode = _P(mode)
    if mode in (_P.SAME_UPPER, _P.SAME_LOWER):
        p = max(dk - s, 0)
        small = p // 2
        pre, post = (small, p - small) if mode == _P.SAME_UPPER else (p - small, small)
    if size < 0:
        return pre, post, -1
    return pre, post, (size - 1) * s + dk - pre - post


def pad_crop(x: np.ndarray, pads: Sequence[tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """np.pad over trailing axes; negative amounts crop."""
    lead = x.ndim - len(pads)
    crop = [slice(None)] * lead + [slice(max(-a, 0), x.shape[lead + i] - max(-b, 0)) for i, (a, b) in enumerate(pads)]
    x = x[tuple(crop)]
    width = [(0, 0)] * lead + [(max(a, 0), max(b, 0)) for a, b in pads]
    if any(w != (0, 0) for w in width):
        x = np.pad(x, width, constant_values=value)
    return x


def windows(xp: np.ndarray, k: Sequence[int], s: Sequence[int], d: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """View (..., *out, *k) of the windows of the trailing len(k) axes."""
    nsp = len(k)
    dk = [1 + di * (ki - 1) for ki, di in zip(k, d)]
    axes = tuple(range(xp.ndim - nsp, xp.ndim))
    v = sliding_window_view(xp, dk, axis=axes)
    sel = [slice(None)] * (xp.ndim - nsp) + [slice(0, o * si, si) for o, si in zip(out, s)]
    sel += [slice(None, None, di) for di in d]
    return v[tuple(sel)]


def grouped_conv(xp: np.ndarray, w: np.ndarray, groups: int, s: Sequence[int], d: Sequence[int],
                 out: Sequence[int]) -> np.ndarray:
    """Correlation of padded NC<spatial> input with KC/g<k> weights through im2col + batched matmul."""
    n, c = xp.shape[:2]
    k_out = w.shape[0]
    ks = w.shape[2:]
    nsp = len(ks)
    win = windows(xp, ks, s, d, out)  # (N, C, *out, *ks)
    cg, kg = c // groups, k_out // groups
    win = win.reshape((n, groups, cg) + tuple(out) + tuple(ks))
    perm = (1, 0) + tuple(range(3, 3 + nsp)) + (2,) + tuple(range(3 + nsp, 3 + 2 * nsp))
    cols = win.transpose(perm).reshape(groups, n * volume(out), cg * volume(ks))
    wm = w.reshape(groups, kg, cg * volume(ks)).transpose(0, 2, 1)
    y = np.matmul(cols, wm)  # (g, N*out, kg)
    y = y.reshape((groups, n) + tuple(out) + (kg,))
    perm = (1, 0, 2 + nsp) + tuple(range(2, 2 + nsp))
    return y.transpose(perm).reshape((n, k_out) + tuple(out))


class _SpatialLayer(ILayer):
    """Attributes shared by convolution, deconvolution and pooling (names of tensorrt's Python API)."""

    def _init_spatial(self, nsp: int) -> None:
        d = self.__dict__
        d["_pre"] = (0,) * nsp
        d["_post"] = (0,) * nsp
        d["stride_nd"] = Dims((1,) * nsp)
        d["padding_mode"] = _P.EXPLICIT_ROUND_DOWN

    @property
    def padding_nd(self) -> Dims:
        return Dims(self._pre)

    @padding_nd.setter
    def padding_nd(self, value: Sequence[int]) -> None:
        self.__dict__["_pre"] = tuple(Dims(value))
        self.__dict__["_post"] = tuple(Dims(value))
        self._network._touch(self)

    @property
    def pre_padding(self) -> Dims:
        return Dims(self._pre)

    @pre_padding.setter
    def pre_padding(self, value: Sequence[int]) -> None:
        self.__dict__["_pre"] = tuple(Dims(value))
        self._network._touch(self)

    @property
    def post_padding(self) -> Dims:
        return Dims(self._post)

    @post_padding.setter
    def post_padding(self, value: Sequence[int]) -> None:
        self.__dict__["_post"] = tuple(Dims(value))
        self._network._touch(self)

    def _check_nd(self, name: str, value: Sequence[int], nsp: int, minimum: int) -> tuple[int, ...]:
        v = tuple(Dims(value))
        if len(v) != nsp:
            raise self._fail(f"{name} {v} must have {nsp} entries (one per spatial dimension)")
        if any(x < minimum for x in v):
            raise self._fail(f"{name} {v} has entries below {minimum}")
        return v

    def _geometry(self, x: Info, ks: tuple[int, ...], dil: tuple[int, ...], deconv: bool) -> list[tuple[int, int, int]]:
        nsp = len(ks)
        if x.rank != nsp + 2:
            raise self._fail(f"input shape {x.shape} must be N, C and {nsp} spatial dims")
        s = self._check_nd("stride_nd", self.stride_nd, nsp, 1)
        pre = self._check_nd("pre_padding", self._pre, nsp, 0)
        post = self._check_nd("post_padding", self._post, nsp, 0)
        geo = deconv_geometry if deconv else conv_geometry
        res = [geo(self.padding_mode, x.shape[2 + i], ks[i], s[i], dil[i], pre[i], post[i]) for i in range(nsp)]
        if any(0 <= o < 1 for _, _, o in res):
            self._late(f"output spatial size {[o for _, _, o in res]} is empty for input {x.shape}")
        return res


class _ConvBase(_SpatialLayer):
    _DECONV = False

    def __init__(self, network: NetworkCore, x: ITensor, num_output_maps: int, kernel_shape: Sequence[int],
                 kernel: Any, bias: Any):
        super().__init__(network, [x])
        ks = Dims(kernel_shape)
        self._init_spatial(len(ks))
        d = self.__dict__
        d["num_output_maps"] = int(num_output_maps)
        d["kernel_size_nd"] = ks
        d["num_groups"] = 1
        d["dilation_nd"] = Dims((1,) * len(ks))
        d["kernel"] = as_weights(kernel)
        d["bias"] = as_weights(bias)

    def _max_inputs(self) -> int:
        return 2

    def _kernel_shape(self, c_in: int) -> tuple[int, ...]:
        g, k = int(self.num_groups), int(self.num_output_maps)
        ks = tuple(Dims(self.kernel_size_nd))
        return (c_in, k // g) + ks if self._DECONV else (k, c_in // g) + ks

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, FLOAT_TYPES, "input")
        ks = self._check_nd("kernel_size_nd", self.kernel_size_nd, len(Dims(self.kernel_size_nd)), 1)
        if len(ks) not in (1, 2, 3):
            raise self._fail(f"kernel_size_nd {ks} must have 1 to 3 entries")
        dil = self._check_nd("dilation_nd", self.dilation_nd, len(ks), 1)
        g, k = int(self.num_groups), int(self.num_output_maps)
        c = x.shape[1] if x.rank > 1 else -1
        if g < 1 or k < 1 or k % g or (c >= 0 and c % g):
            self._late(f"num_groups {g} must divide the input channels {c} and num_output_maps {k}")
            g = 1
        if c < 0:
            raise self._fail(f"the channel dimension of input {x.shape} must be static")
        want = self._kernel_shape(c)
        w_in = ins[1] if len(ins) > 1 else None
        if w_in is not None:
            same_type(self, [x, w_in], "input and kernel (input 1)")
            if w_in.shape != want:
                self._late(f"kernel tensor shape {w_in.shape} != expected {want}")
        else:
            w = as_weights(self.kernel)
            # an empty kernel is legal until run time: converters pass Weights() and set_input(1, ...) later
            if w.size and w.dtype != x.dtype:
                raise self._fail(f"kernel weights are {w.dtype.name}, the input is {x.dtype.name} (strongly typed)")
            if w.size and w.size != volume(want):
                self._late(f"kernel has {w.size} values, expected {volume(want)} for shape {want}")
        b_in = ins[2] if len(ins) > 2 else None
        if b_in is not None:
            same_type(self, [x, b_in], "input and bias (input 2)")
            if volume(b_in.shape) != k:
                raise self._fail(f"bias tensor shape {b_in.shape} does not hold {k} values")
        else:
            b = as_weights(self.bias)
            if b.size not in (0, k):
                raise self._fail(f"bias has {b.size} values, expected {k}")
            if b.size and b.dtype != x.dtype:
                raise self._fail(f"bias weights are {b.dtype.name}, the input is {x.dtype.name} (strongly typed)")
        geo = self._geometry(x, ks, dil, self._DECONV)
        return [Info(x.dtype, (x.shape[0], k) + tuple(o for _, _, o in geo))]

    def _weights(self, xs: list[np.ndarray | None], c_in: int, ct: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
        w = xs[1] if len(xs) > 1 and xs[1] is not None else weights_array(self, self.kernel, "kernel")
        if w is None:
            raise self._fail("no kernel: give kernel weights or set_input(1, tensor)")
        w = np.asarray(w).astype(ct).reshape(self._kernel_shape(c_in))
        b = xs[2] if len(xs) > 2 and xs[2] is not None else weights_array(self, self.bias, "bias")
        return w, (None if b is None else np.asarray(b).astype(ct).reshape(-1))

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        info = Info(DataType.FLOAT, x.shape)
        ks = tuple(Dims(self.kernel_size_nd))
        dil = tuple(Dims(self.dilation_nd))
        geo = self._geometry(info, ks, dil, self._DECONV)
        ct = compute_in(x)
        w, b = self._weights(xs, x.shape[1], ct)
        g = int(self.num_groups)
        s = tuple(Dims(self.stride_nd))
        xt = x.astype(ct)
        if not self._DECONV:
            pads = []
            for i, (pre, post, out) in enumerate(geo):
                need = (out - 1) * s[i] + 1 + dil[i] * (ks[i] - 1) - (x.shape[2 + i] + pre + post)
                pads.append((pre, post + max(need, 0)))
            y = grouped_conv(pad_crop(xt, pads), w, g, s, dil, [o for _, _, o in geo])
        else:
            # transposed convolution = stride-dilated input, padded by DK-1-pre / DK-1-post, correlated with
            # the spatially flipped kernel whose in/out channel roles are swapped per group
            n, c = x.shape[:2]
            up_shape = (n, c) + tuple((x.shape[2 + i] - 1) * s[i] + 1 for i in range(len(ks)))
            up = np.zeros(up_shape, ct)
            up[(slice(None), slice(None)) + tuple(slice(None, None, si) for si in s)] = xt
            pads = [(dil[i] * (ks[i] - 1) - pre, dil[i] * (ks[i] - 1) - post) for i, (pre, post, _) in enumerate(geo)]
            kg = w.shape[1]
            wt = w.reshape((g, c // g, kg) + ks).swapaxes(1, 2).reshape((g * kg, c // g) + ks)
            wt = np.flip(wt, axis=tuple(range(2, 2 + len(ks))))
            y = grouped_conv(pad_crop(up, pads), np.ascontiguousarray(wt), g, (1,) * len(ks), dil,
                             [o for _, _, o in geo])
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * len(ks))
        return [y.astype(x.dtype)]


class IConvolutionLayer(_ConvBase):
    _TYPE = LayerType.CONVOLUTION
    _TYPE_NAME = "Convolution"


class IDeconvolutionLayer(_ConvBase):
    _TYPE = LayerType.DECONVOLUTION
    _TYPE_NAME = "Deconvolution"
    _DECONV = True


class IPoolingLayer(_SpatialLayer):
    _TYPE = LayerType.POOLING
    _TYPE_NAME = "Pooling"

    def __init__(self, network: NetworkCore, x: ITensor, kind: PoolingType, window_size: Sequence[int]):
        super().__init__(network, [x])
        ws = Dims(window_size)
        self._init_spatial(len(ws))
        d = self.__dict__
        d["_kind"] = PoolingType(kind)
        d["window_size_nd"] = ws
        d["blend_factor"] = 0.0
        d["average_count_excludes_padding"] = True

    # IPoolingLayer.type is the pooling kind in tensorrt's Python API
    @property
    def type(self) -> Any:  # type: ignore[override]
        return self.__dict__["_kind"]

    @type.setter
    def type(self, value: Any) -> None:
        self.__dict__["_kind"] = PoolingType(value)
        self._network._touch(self)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, FLOAT_TYPES, "input")
        ws = self._check_nd("window_size_nd", self.window_size_nd, len(Dims(self.window_size_nd)), 1)
        if len(ws) not in (1, 2, 3):
            raise self._fail(f"window_size_nd {ws} must have 1 to 3 entries")
        if not 0.0 <= float(self.blend_factor) <= 1.0:
            raise self._fail(f"blend_factor {self.blend_factor} is outside [0, 1]")
        pre, post = self._pre, self._post
        if any(p >= w for p, w in zip(pre + post, ws + ws)):
            self._late(f"padding {pre}/{post} must be smaller than the window {ws}")
        geo = self._geometry(x, ws, (1,) * len(ws), False)
        return [Info(x.dtype, x.shape[:2] + tuple(o for _, _, o in geo))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        ws = tuple(Dims(self.window_size_nd))
        nsp = len(ws)
        s = tuple(Dims(self.stride_nd))
        geo = self._geometry(Info(DataType.FLOAT, x.shape), ws, (1,) * nsp, False)
        out = [o for _, _, o in geo]
        pads, extra = [], []
        for i, (pre, post, o) in enumerate(geo):
            need = max((o - 1) * s[i] + ws[i] - (x.shape[2 + i] + pre + post), 0)
            pads.append((pre, post + need))
            extra.append(need)
        win_axes = tuple(range(x.ndim, x.ndim + nsp))
        kind = PoolingType(self.type)
        ct = compute_in(x)
        xt = x.astype(ct)
        res_max = res_avg = None
        if kind in (PoolingType.MAX, PoolingType.MAX_AVERAGE_BLEND):
            xp = pad_crop(xt, pads, -np.inf)
            res_max = windows(xp, ws, s, (1,) * nsp, out).max(axis=win_axes)
        if kind in (PoolingType.AVERAGE, PoolingType.MAX_AVERAGE_BLEND):
            xp = pad_crop(xt, pads, 0.0)
            total = windows(xp, ws, s, (1,) * nsp, out).sum(axis=win_axes)
            # count the cells a window covers: the data only, or the data and the explicit padding, never the
            # cells added to fit EXPLICIT_ROUND_UP's last window
            spatial = x.shape[2:]
            if self.average_count_excludes_padding:
                ones = pad_crop(np.ones(spatial, ct), pads, 0.0)
            else:
                ones = pad_crop(np.ones(tuple(d + p0 + p1 for d, (p0, p1), e in zip(spatial, pads, extra)), ct)
                                [tuple(slice(0, d + p0 + p1 - e) for d, (p0, p1), e in zip(spatial, pads, extra))],
                                [(0, e) for e in extra], 0.0)
            count = windows(ones, ws, s, (1,) * nsp, out).sum(axis=tuple(range(nsp, 2 * nsp)))
            res_avg = total / np.maximum(count, 1)
        if kind == PoolingType.MAX:
            y = res_max
        elif kind == PoolingType.AVERAGE:
            y = res_avg
        else:
            # Pooling operator page: (1 - blend_factor) * max + blend_factor * average
            bf = ct.type(self.blend_factor)
            y = (1 - bf) * res_max + bf * res_avg
        return [np.asarray(y).astype(x.dtype)]
