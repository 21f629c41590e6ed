"""config.pbtxt templates: render, parse with Triton's own ModelConfig schema, cross-check a fake engine."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from repogen.errors import ConfigError
from repogen.repository.config import (EngineDesc, TensorDesc, config_context, cross_check, derive_max_batch,
                                   parse_config, render_and_check, render_template)
from repogen.build.spec import DynamicBatching, InstanceGroup, ModelSpec, Warmup

STATIC = EngineDesc(
    [TensorDesc("image", "float32", (-1, 3, 32, 32))], [TensorDesc("probs", "float32", (-1, 10))],
    [{"image": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}])
DYNAMIC_HW = EngineDesc(
    [TensorDesc("x", "float32", (-1, 3, -1, -1)), TensorDesc("scale", "float32", (-1, 1))],
    [TensorDesc("y", "float32", (-1, 3, -1, -1)), TensorDesc("ids", "int64", (-1, 5))],
    [{"x": ((1, 3, 16, 16), (2, 3, 32, 32), (4, 3, 64, 64)), "scale": ((1, 1), (2, 1), (4, 1))},
     {"x": ((1, 3, 64, 64), (8, 3, 128, 128), (16, 3, 256, 256)), "scale": ((1, 1), (8, 1), (16, 1))}])
FP16 = EngineDesc([TensorDesc("x", "float16", (-1, 8))], [TensorDesc("y", "float16", (-1, 8))],
                  [{"x": ((1, 8), (2, 8), (4, 8))}])
NO_BATCH = EngineDesc([TensorDesc("x", "int32", (2, 5)), TensorDesc("s", "float32", ())],
                      [TensorDesc("y", "bool", (2, 5))], [])
ENGINES = {"static": STATIC, "dynamic_hw": DYNAMIC_HW, "fp16": FP16, "no_batch": NO_BATCH}

# dtype -> Triton enum, written out here rather than imported from the code under test
EXPECTED_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                  "bool": "TYPE_BOOL"}


def spec(**kw) -> ModelSpec:
    return ModelSpec(source=Path("unused"), name="m", **kw)


def render(engine: EngineDesc, target: str = "tensorrt", mbs: int | None = None, **kw) -> tuple[str, mc.ModelConfig]:
    s = spec(**kw)
    mbs = derive_max_batch(engine, mbs, s.instance_groups)
    ctx = config_context(name="m", target=target, engine=engine, max_batch_size=mbs, spec=s,
                         default_kind="KIND_GPU" if target == "tensorrt" else "KIND_CPU", labels_filename=None)
    return render_and_check(template=f"{target}.pbtxt.j2", context=ctx, engine=engine, name="m", target=target,
                            version_folder="1")


OPTIONS = {
    "plain": {},
    "groups": {"instance_groups": [InstanceGroup(2, "KIND_GPU", [0, 1]), InstanceGroup(1, "KIND_CPU")]},
    "batching": {"dynamic_batching": DynamicBatching([2, 4], 100)},
    "cuda_graphs": {"cuda_graphs": True},
    "warmup": {"warmup": Warmup(2, "random", 3)},
}


@pytest.mark.parametrize("target,engine_name,option", [
    (t, e, o) for t, e, o in itertools.product(("tensorrt", "paddle"), ENGINES, OPTIONS)
    if not (e == "no_batch" and o == "batching")])
def test_render_parse_and_check(target: str, engine_name: str, option: str) -> None:
    engine = ENGINES[engine_name]
    text, cfg = render(engine, target, **OPTIONS[option])
    batching = engine_name != "no_batch"
    assert cfg.name == "m"
    if target == "tensorrt":
        assert cfg.platform == "tensorrt_plan" and cfg.backend == "" and cfg.default_model_filename == "model.plan"
    else:
        assert cfg.backend == "python" and cfg.platform == ""
    # Triton's rule: the largest profile max of the batch dim; 0 when the engine cannot batch
    expected_mbs = {"static": 8, "dynamic_hw": 16, "fp16": 4, "no_batch": 0}[engine_name]
    assert cfg.max_batch_size == expected_mbs
    for declared, tensors in ((cfg.input, engine.inputs), (cfg.output, engine.outputs)):
        assert [i.name for i in declared] == [t.name for t in tensors]
        for io, t in zip(declared, tensors):
            assert mc.DataType.Name(io.data_type) == EXPECTED_TYPES[t.dtype]
            full = list(t.shape)
            want = full[1:] if batching else full
            if want:
                assert list(io.dims) == want
            else:  # a scalar travels as [1] reshaped to []
                assert list(io.dims) == [1] and io.HasField("reshape") and list(io.reshape.shape) == []
    if option == "groups":
        assert [(g.count, mc.ModelInstanceGroup.Kind.Name(g.kind), list(g.gpus)) for g in cfg.instance_group] == \
            [(2, "KIND_GPU", [0, 1]), (1, "KIND_CPU", [])]
    else:
        assert len(cfg.instance_group) == 1
        kind = mc.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind)
        assert kind == ("KIND_GPU" if target == "tensorrt" else "KIND_CPU")
    if option == "batching":
        assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    else:  # on by default for every model that can batch; preferred sizes only for multi-profile plans
        assert cfg.HasField("dynamic_batching") == batching
        preferred = [2, 8] if (engine_name, target) == ("dynamic_hw", "tensorrt") else []
        assert list(cfg.dynamic_batching.preferred_batch_size) == preferred
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 0
    assert cfg.optimization.cuda.graphs == (option == "cuda_graphs" and target == "tensorrt")
    if option == "warmup":
        (w,) = cfg.model_warmup
        assert w.count == 3 and w.batch_size == (2 if batching else 1)
        assert set(w.inputs) == {t.name for t in engine.inputs}
        assert all(v.random_data for v in w.inputs.values())
        if engine_name == "dynamic_hw":  # dynamic dims take profile 0's opt
            assert list(w.inputs["x"].dims) == [3, 32, 32]
    else:
        assert not cfg.model_warmup


def test_profile_names_on_instance_groups() -> None:
    _, cfg = render(DYNAMIC_HW, instance_groups=[InstanceGroup(1, "KIND_GPU", [0], [0]),
                                                 InstanceGroup(1, "KIND_GPU", [0], [1])])
    assert [list(g.profile) for g in cfg.instance_group] == [["0"], ["1"]]
    with pytest.raises(ConfigError, match=r"profile '2' does not exist"):
        render(DYNAMIC_HW, instance_groups=[InstanceGroup(1, "KIND_GPU", [0], [2])])


def test_explicit_max_batch_zero_keeps_full_shape() -> None:
    _, cfg = render(STATIC, mbs=0)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [-1, 3, 32, 32]


# -- each mismatch is refused with a message that says what is wrong ---------------------------------------------

GOOD = render(STATIC)[0]


def check_text(text: str, engine: EngineDesc = STATIC, target: str = "tensorrt", version: str = "1") -> None:
    cross_check(parse_config(text, "t"), engine, name="m", target=target, version_folder=version)


def test_good_config_passes() -> None:
    check_text(GOOD)


@pytest.mark.parametrize("change,message", [
    (("dims: [ 3, 32, 32 ]", "dims: [ 8, 3, 32, 32 ]"), r"include the batch dim"),
    (("max_batch_size: 8", "max_batch_size: 16"), r"max_batch_size 16 exceeds the engine's max batch 8"),
    (("data_type: TYPE_FP32\n  dims: [ 10 ]", "data_type: TYPE_FP16\n  dims: [ 10 ]"),
     r"output probs: data_type TYPE_FP16 but the engine has float32"),
    (("dims: [ 3, 32, 32 ]", "dims: [ 3, 64, 32 ]"), r"dim 2 is 64 in the config but 32 in the engine"),
    (('platform: "tensorrt_plan"', 'backend: "tensorrt_plan"'), r'write platform: "tensorrt_plan"'),
    (('platform: "tensorrt_plan"', 'platform: "onnxruntime_onnx"'), r'a plan needs platform: "tensorrt_plan"'),
    (('name: "m"', 'name: "other"'), r"name 'other' differs from the model folder 'm'"),
    (('name: "probs"', 'name: "prob"'), r"(?s)output 'prob' is not an engine output.*engine output 'probs' is missing"),
    (("max_batch_size: 8", "max_batch_size: 0"), r"(?s)rank 3 but .*rank 4.*dynamic_batching needs max_batch_size > 0"),
])
def test_mismatch_rejected(change: tuple[str, str], message: str) -> None:
    assert change[0] in GOOD
    with pytest.raises(ConfigError, match=message):
        check_text(GOOD.replace(change[0], change[1], 1))


def test_dims_outside_profile() -> None:
    engine = EngineDesc([TensorDesc("x", "float32", (-1, 3, -1, -1))], [TensorDesc("y", "float32", (-1, 4))],
                        [{"x": ((1, 3, 16, 16), (2, 3, 32, 32), (4, 3, 64, 64))},
                         {"x": ((1, 3, 16, 100), (2, 3, 32, 100), (4, 3, 64, 200))}])
    text, _ = render(engine)
    fixed = text.replace("dims: [ 3, -1, -1 ]", "dims: [ 3, 128, 100 ]")
    with pytest.raises(ConfigError) as err:
        check_text(fixed, engine)
    msg = str(err.value)
    assert "dim 2 = 128 is outside profile 0's range [16, 64]" in msg
    assert "dim 3 = 100 is outside profile 0's range [16, 64]" in msg
    assert "profile 1's range [16, 64]" in msg and "dim 3 = 100 is outside profile 1" not in msg


def test_batch_one_must_fit_a_profile() -> None:
    engine = EngineDesc([TensorDesc("x", "float32", (-1, 4))], [TensorDesc("y", "float32", (-1, 4))],
                        [{"x": ((2, 4), (4, 4), (8, 4))}])
    ctx = config_context(name="m", target="tensorrt", engine=engine, max_batch_size=8, spec=spec(),
                         default_kind="KIND_GPU", labels_filename=None)
    with pytest.raises(ConfigError, match=r"batch sizes 1 \(of 1..8\) fit no profile \[0\]"):
        check_text(render_template("tensorrt.pbtxt.j2", ctx), engine)


# -- several profiles: split by batch size, bound to instance groups, warmup per group -----------------------------

SPLIT = EngineDesc([TensorDesc("x", "float32", (-1, 4))], [TensorDesc("y", "float32", (-1, 4))],
                   [{"x": ((1, 4), (4, 4), (4, 4))}, {"x": ((5, 4), (16, 4), (16, 4))}])
HW = EngineDesc([TensorDesc("x", "float32", (-1, 3, -1, -1))], [TensorDesc("y", "float32", (-1, 3, -1, -1))],
                [{"x": ((1, 3, 16, 16), (2, 3, 32, 32), (8, 3, 64, 64))},
                 {"x": ((1, 3, 96, 96), (2, 3, 128, 128), (8, 3, 256, 256))}])


def test_batch_split_profiles_render_and_check() -> None:
    """Profile 0 batch 1-4, profile 1 batch 5-16: Triton serves batch 1..16 (largest max across profiles)."""
    for target in ("tensorrt", "paddle"):
        text, cfg = render(SPLIT, target, warmup=Warmup(1), dynamic_batching=DynamicBatching([4, 16], 100))
        assert cfg.max_batch_size == 16
        (w,) = cfg.model_warmup
        assert w.batch_size == 1 and list(w.inputs["x"].dims) == [4]
        check_text(text, SPLIT, target)
    # a warmup of batch 8 only fits profile 1, which the one implicit group also uses
    _, cfg = render(SPLIT, warmup=Warmup(8))
    assert cfg.model_warmup[0].batch_size == 8


def test_batch_gap_between_profiles_refused() -> None:
    gap = EngineDesc(SPLIT.inputs, SPLIT.outputs,
                     [{"x": ((1, 4), (4, 4), (4, 4))}, {"x": ((8, 4), (16, 4), (16, 4))}])
    with pytest.raises(ConfigError, match=r"batch sizes 5-7 \(of 1..16\) fit no profile \[0, 1\]"):
        render(gap)


def test_max_batch_per_instance_group() -> None:
    """A group bound to profile 0 (batch 1-4) caps the model at 4: the batcher may send any batch to it."""
    groups = [InstanceGroup(1, "KIND_GPU", [0], [0]), InstanceGroup(1, "KIND_GPU", [0], [0, 1])]
    _, cfg = render(SPLIT, instance_groups=groups)
    assert cfg.max_batch_size == 4
    with pytest.raises(ConfigError, match=r"max_batch_size 16 exceeds the engine's max batch 4 .*"
                                          r"profiles \[0\], which instance_group\[0\] uses"):
        render(SPLIT, mbs=16, instance_groups=groups)


def test_warmup_comes_from_the_groups_own_profiles() -> None:
    """A group bound to profile 1 (H, W 96..256) must warm up at profile 1's opt, not profile 0's."""
    groups = [InstanceGroup(2, "KIND_GPU", [0], [1])]
    text, cfg = render(HW, instance_groups=groups, warmup=Warmup(2))
    assert list(cfg.model_warmup[0].inputs["x"].dims) == [3, 128, 128]
    # the same config with profile 0's opt dims is refused by the checker
    bad = text.replace("dims: [ 3, 128, 128 ]", "dims: [ 3, 32, 32 ]")
    assert bad != text
    with pytest.raises(ConfigError, match=r"model_warmup 'repogen_warmup' \(x \[2, 3, 32, 32\]\) lies outside "
                                          r"every profile \[1\] that instance_group\[0\] uses"):
        check_text(bad, HW)
    # both groups: no one sample fits profile 0 only and profile 1 only (H, W ranges do not meet)
    both = [InstanceGroup(1, "KIND_GPU", [0], [0]), InstanceGroup(1, "KIND_GPU", [0], [1])]
    with pytest.raises(ConfigError, match=r"no warmup sample fits every instance group"):
        render(HW, instance_groups=both, warmup=Warmup(1))


def test_warmup_batch_outside_a_groups_profiles_refused() -> None:
    text, _ = render(SPLIT, warmup=Warmup(1))
    bound = text.replace("  kind: KIND_GPU\n", '  kind: KIND_GPU\n  profile: [ "1" ]\n', 1)
    assert bound != text
    with pytest.raises(ConfigError) as err:  # profile 1 takes batch 5..16 only
        check_text(bound, SPLIT)
    assert "(x [1, 4]) lies outside every profile [1] that instance_group[0] uses" in str(err.value)
    assert "batch sizes 1-4 (of 1..16) fit no profile [1]" in str(err.value)


def test_warmup_missing_input_refused() -> None:
    text, _ = render(DYNAMIC_HW, warmup=Warmup(1))
    without = re.sub(r'  inputs \{\n    key: "scale"\n    value \{\n(?:      .*\n)*    \}\n  \}\n', "", text)
    assert without != text
    with pytest.raises(ConfigError, match=r"gives no data for engine input\(s\) scale"):
        check_text(without, DYNAMIC_HW)


def test_fixed_batch_engine_refuses_batching_config() -> None:
    with pytest.raises(ConfigError, match=r"no dynamic leading \(batch\) dim"):
        check_text(GOOD, EngineDesc([TensorDesc("image", "float32", (1, 3, 32, 32))],
                                    [TensorDesc("probs", "float32", (1, 10))], []))


@pytest.mark.parametrize("version", ["0", "01", "1a", ""])
def test_version_folder_rejected(version: str) -> None:
    with pytest.raises(ConfigError, match=r"version folder .* positive integer not starting with 0"):
        check_text(GOOD, version=version)


def test_unknown_field_rejected_by_schema() -> None:
    with pytest.raises(ConfigError, match=r"not a valid Triton ModelConfig.*max_batch"):
        parse_config(GOOD.replace("max_batch_size: 8", "max_batch: 8"), "config.pbtxt of m")


def test_paddle_target_rules() -> None:
    text, _ = render(STATIC, "paddle")
    with pytest.raises(ConfigError, match=r'backend must be "python"'):
        check_text(text.replace('backend: "python"', 'backend: "onnxruntime"'), target="paddle")
    with pytest.raises(ConfigError, match=r"cuda.graphs only applies to TensorRT"):
        check_text(text + "optimization { cuda { graphs: true } }\n", target="paddle")


def test_user_template_can_import_bundled_macros(tmp_path: Path) -> None:
    t = tmp_path / "mine.pbtxt.j2"
    t.write_text('{% import "_io.pbtxt.j2" as io with context %}\nname: {{ name | q }}\n'
                 'platform: "tensorrt_plan"\nmax_batch_size: {{ max_batch_size }}\n'
                 '{{ io.tensors("input", inputs) }}{{ io.tensors("output", outputs) }}\n'
                 'response_cache { enable: true }\n')
    ctx = config_context(name="m", target="tensorrt", engine=STATIC, max_batch_size=8, spec=spec(),
                         default_kind="KIND_GPU", labels_filename=None)
    _, cfg = render_and_check(template=t, context=ctx, engine=STATIC, name="m", target="tensorrt",
                              version_folder="1")
    assert cfg.response_cache.enable and cfg.max_batch_size == 8


def test_broken_user_template_names_file_and_line(tmp_path: Path) -> None:
    t = tmp_path / "bad.pbtxt.j2"
    t.write_text('name: "m"\n{{ no_such_variable }}\n')
    with pytest.raises(ConfigError, match=r"bad.pbtxt.j2.*no_such_variable"):
        render_template(t, {})
