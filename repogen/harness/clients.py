"""Thin tritonclient wrappers shared by the correctness checks and the timing loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from repogen.harness.model_files import ModelFolder

REQUEST_TIMEOUT_S = 60.0  # a dead or wedged server turns into an error, never a hang


def module(protocol: str):
    return grpcclient if protocol == "grpc" else httpclient


def make_client(protocol: str, url: str, timeout: float = REQUEST_TIMEOUT_S):
    """A client; HTTP ones end every request within ``timeout`` (gRPC takes its timeout per call)."""
    if protocol == "grpc":
        return grpcclient.InferenceServerClient(url)
    return httpclient.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)


@dataclass(frozen=True)
class Request:
    """One inference request in protocol-neutral form: what the timing loops send over and over."""

    model: str
    inputs: tuple[tuple[str, str, np.ndarray], ...]  # (name, tritonclient datatype such as "FP32", array)
    outputs: tuple[str, ...] = ()  # the outputs asked for; empty: every output of the model


def tensor_request(model: ModelFolder, feeds: dict[str, np.ndarray]) -> Request:
    return Request(model.name, tuple((s.name, s.datatype, np.ascontiguousarray(feeds[s.name], dtype=s.dtype))
                                     for s in model.inputs), tuple(s.name for s in model.outputs))


def to_protocol(protocol: str, request: Request) -> tuple[list, list | None]:
    """tritonclient InferInput / InferRequestedOutput objects for ``request`` (None: every output)."""
    mod = module(protocol)
    inputs = []
    for name, datatype, arr in request.inputs:
        inp = mod.InferInput(name, list(arr.shape), datatype)
        if protocol == "http":
            inp.set_data_from_numpy(arr, binary_data=True)
        else:
            inp.set_data_from_numpy(arr)
        inputs.append(inp)
    if not request.outputs:
        return inputs, None
    if protocol == "http":
        return inputs, [mod.InferRequestedOutput(n, binary_data=True) for n in request.outputs]
    return inputs, [mod.InferRequestedOutput(n) for n in request.outputs]


def build_request(protocol: str, model: ModelFolder, feeds: dict[str, np.ndarray]) -> tuple[list, list]:
    inputs, outputs = to_protocol(protocol, tensor_request(model, feeds))
    return inputs, outputs or []


def infer(client, protocol: str, model: ModelFolder, inputs: list, outputs: list):
    if protocol == "grpc":
        return client.infer(model.name, inputs, outputs=outputs, client_timeout=REQUEST_TIMEOUT_S)
    return client.infer(model.name, inputs, outputs=outputs)


def infer_arrays(client, protocol: str, model: ModelFolder, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    inputs, outputs = build_request(protocol, model, feeds)
    result = infer(client, protocol, model, inputs, outputs)
    return {s.name: result.as_numpy(s.name) for s in model.outputs}


def model_stats(grpc_client, name: str) -> dict:
    """Cumulative counters (ns and counts) from Triton's statistics extension."""
    stats = grpc_client.get_inference_statistics(name, as_json=True)
    rows = stats.get("model_stats") or []
    out: dict = {"inference_count": 0, "execution_count": 0, "queue_ns": 0, "compute_infer_ns": 0,
                 "compute_input_ns": 0, "compute_output_ns": 0, "success_count": 0, "batch_counts": {}}
    for row in rows:
        out["inference_count"] += int(row.get("inference_count", 0))
        out["execution_count"] += int(row.get("execution_count", 0))
        inf = row.get("inference_stats", {})
        out["queue_ns"] += int(inf.get("queue", {}).get("ns", 0))
        out["compute_infer_ns"] += int(inf.get("compute_infer", {}).get("ns", 0))
        out["compute_input_ns"] += int(inf.get("compute_input", {}).get("ns", 0))
        out["compute_output_ns"] += int(inf.get("compute_output", {}).get("ns", 0))
        out["success_count"] += int(inf.get("success", {}).get("count", 0))
        for b in row.get("batch_stats", []):
            size = int(b.get("batch_size", 0))
            out["batch_counts"][size] = out["batch_counts"].get(size, 0) + int(b.get("compute_infer", {}).get("count", 0))
    return out


def stats_delta(before: dict, after: dict) -> dict:
    """Counters accumulated between two ``model_stats`` snapshots."""
    delta = {k: after[k] - before[k] for k in after if k != "batch_counts"}
    sizes = {s: n - before["batch_counts"].get(s, 0) for s, n in after["batch_counts"].items()}
    delta["batch_counts"] = {s: n for s, n in sizes.items() if n > 0}
    return delta
