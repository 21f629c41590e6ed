"""The mutation suite: seeded wrong conversions (tests/support/mutations.py) must fail repogen.verify's rules at
fp32 and fp16 while the unmutated conversion passes, judged against Paddle Inference's own outputs.

Default: each of the 12 mutations on one small case where it changes the computation (the trained PP-OCR
direction classifier, zoo convnet / resnet18 / rtdetr_head). REPOGEN_SLOW_TESTS=1: every mutation on every
case where it applies (trained det 640x640, rec, cls and seven zoo networks), as in docs/precision.md.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.support.mutations import MUTATIONS, judge, same_outputs

SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"

# mutation -> the small case it is checked on by default
FAST = {
    "bias_sign": "cls", "channel_order": "cls", "activation_slope": "cls", "hardswish_as_swish": "cls",
    "transposed_weight": "cls", "residual_dropped": "cls", "softmax_axis": "cls",
    "deconv_unflipped": "convnet", "norm_epsilon": "convnet", "resize_off_by_one": "convnet",
    "pool_padding": "resnet18", "concat_order": "rtdetr_head",
}


def _case(name: str):
    if name == "cls":
        from tests.support.trained_models import official_exports

        feeds = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 192)).astype(np.float32)}
        return official_exports()["cls"], feeds
    from tests.support import zoo

    return zoo.get(name, "pir"), zoo.sample_feeds(name)


def test_every_mutation_has_a_fast_case():
    assert set(FAST) == set(MUTATIONS) and len(MUTATIONS) >= 10


@pytest.mark.parametrize("case", sorted(set(FAST.values())))
def test_unmutated_conversion_passes(case):
    model, feeds = _case(case)
    for precision in ("fp32", "fp16"):
        j = judge(model, feeds, precision)
        assert j.passed, (precision, [(v.name, v.reason) for v in j.verdicts if not v.passed])


@pytest.mark.parametrize("name", sorted(FAST))
def test_mutation_fails_fp32_and_fp16(name):
    model, feeds = _case(FAST[name])
    mutation = MUTATIONS[name]
    for precision in ("fp32", "fp16"):
        j = judge(model, feeds, precision, mutation)
        assert j.changed_ops, f"{name} changed no op of {FAST[name]}"
        assert not same_outputs(j, judge(model, feeds, precision)), f"{name}: outputs identical to unmutated"
        assert not j.passed, (precision, [(v.name, v.rel_l2, v.outside_share) for v in j.verdicts])


@pytest.mark.skipif(not SLOW, reason="the full mutation matrix: REPOGEN_SLOW_TESTS=1")
def test_full_matrix_catches_every_mutation():
    from tests.support.mutations import catch_table, trained_cases, zoo_cases

    rows = catch_table({**trained_cases(), **zoo_cases()})
    base = [r for r in rows if r["mutation"] is None]
    mutated = [r for r in rows if r["mutation"]]
    assert len(base) == 10 and len(mutated) >= 40
    assert all(r[p]["new"] for r in base for p in ("fp32", "fp16")), base
    missed = [(r["case"], r["mutation"], p) for r in mutated for p in ("fp32", "fp16") if r[p]["new"]]
    assert not missed, missed
    assert {r["mutation"] for r in mutated} == set(MUTATIONS)
