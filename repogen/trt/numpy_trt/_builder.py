"""The builder side: Builder, IBuilderConfig, IOptimizationProfile, Logger and Runtime. Profiles and configs are
recorded as TensorRT records them; building or deserializing an engine raises NoEngineError."""

from __future__ import annotations

import enum
from typing import Any, Sequence

from repogen.errors import RepogenError

from ._api import INetworkDefinition
from ._network import NetworkCore
from ._types import Dims, NetworkError


class Logger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self, min_severity: "Logger.Severity" = Severity.WARNING):
        self.min_severity = min_severity
        self.messages: list[tuple[int, str]] = []

    def log(self, severity: "Logger.Severity", msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            self.messages.append((int(severity), msg))


ILogger = Logger


class NoEngineError(RepogenError, NotImplementedError):
    """The NumPy backend records and executes networks; it cannot build TensorRT engines."""


class IOptimizationProfile:
    def __init__(self) -> None:
        self._shapes: dict[str, tuple[Dims, Dims, Dims]] = {}
        self._values: dict[str, tuple[list[int], list[int], list[int]]] = {}
        self.extra_memory_target = 1.0

    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:  # noqa: A002
        mn, op, mx = Dims(min), Dims(opt), Dims(max)
        if not (len(mn) == len(op) == len(mx)):
            raise NetworkError(f"profile {input}", f"min/opt/max ranks differ: {mn} {op} {mx}")
        for a, b, c in zip(mn, op, mx):
            if not (0 <= a <= b <= c):
                raise NetworkError(f"profile {input}", f"need 0 <= min <= opt <= max, got {mn} {op} {mx}")
        self._shapes[input] = (mn, op, mx)

    def get_shape(self, input: str) -> list[Dims]:  # noqa: A002
        return list(self._shapes.get(input, ()))

    def set_shape_input(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:  # noqa: A002
        self._values[input] = (list(min), list(opt), list(max))

    def get_shape_input(self, input: str) -> list[list[int]]:  # noqa: A002
        return list(self._values.get(input, ()))

    def __bool__(self) -> bool:
        return True

    @property
    def shapes(self) -> dict[str, tuple[Dims, Dims, Dims]]:
        return dict(self._shapes)


class IBuilderConfig:
    def __init__(self) -> None:
        self._profiles: list[IOptimizationProfile] = []
        self._flags = 0
        self._pool_limits: dict[int, int] = {}
        self.builder_optimization_level = 3
        self.profiling_verbosity = 0
        self.default_device_type = 0
        self.max_aux_streams = -1

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    def get_optimization_profile(self, index: int) -> IOptimizationProfile:
        return self._profiles[index]

    def set_flag(self, flag: Any) -> None:
        self._flags |= 1 << int(flag)

    def clear_flag(self, flag: Any) -> None:
        self._flags &= ~(1 << int(flag))

    def get_flag(self, flag: Any) -> bool:
        return bool(self._flags & (1 << int(flag)))

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self._pool_limits[int(pool)] = int(size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        return self._pool_limits.get(int(pool), 0)


class Builder:
    platform_has_fast_fp16 = False
    platform_has_fast_int8 = False
    platform_has_tf32 = False
    num_DLA_cores = 0

    def __init__(self, logger: Logger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: NetworkCore, config: IBuilderConfig) -> None:
        raise NoEngineError(
            "repogen.trt.numpy_trt builds no TensorRT engines: it only records the network and runs it with "
            "NumPy (numpy_trt.execute). Build plans on a machine with the tensorrt package and a GPU."
        )

    build_engine_with_config = build_serialized_network

    def is_network_supported(self, network: NetworkCore, config: IBuilderConfig) -> bool:
        network._refresh()
        return True

    def __enter__(self) -> "Builder":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Runtime:
    def __init__(self, logger: Logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data: Any) -> None:
        raise NoEngineError("repogen.trt.numpy_trt cannot deserialize or run TensorRT engines")
