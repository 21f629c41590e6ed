"""``repogen gateway``: PaddleX basic serving's HTTP routes in front of a Triton server that serves repogen's
PaddleX-protocol models (``ocr_paddlex``, ``<model>_paddlex``: repogen.pipelines.paddlex_protocol).

PaddleX's basic serving answers ``POST /ocr``, ``/object-detection``, ``/image-classification``,
``/semantic-segmentation`` with the same JSON its high-stability models answer on Triton. The gateway forwards
each request body, unchanged, as the protocol model's one BYTES input (Triton's HTTP/REST JSON form, as
PaddleX's own high-stability documentation sends it) and answers the model's JSON with the HTTP status PaddleX
uses (200, or the ``errorCode``: 422, 500). ``GET /health`` answers PaddleX's health envelope. What goes wrong
between the gateway and Triton is answered in the same envelope: 413 (body over the limit), 503 (Triton
unreachable or the model not ready), 504 (no answer within the timeout).

Routes come from Triton alone: every ready model whose config carries the ``paddlex_endpoint`` parameter, or
are given explicitly (``ROUTE=MODEL``) where several models answer one route.
"""

from __future__ import annotations

import json
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from repogen.errors import ConfigError
from repogen.extras import require, require_installed
from repogen.interrupts import terminate_raises
from repogen.pipelines.paddlex_protocol import ENDPOINT_PARAMETER, ENDPOINTS, INPUT, MAX_FILE_BYTES, OUTPUT

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080  # PaddleX's basic serving port; loopback unless asked otherwise
DEFAULT_TIMEOUT_S = 120.0  # one request through Triton, connect included
CONNECT_TIMEOUT_S = 5.0
MAX_BODY_BYTES = MAX_FILE_BYTES * 4 // 3 + (1 << 20)  # the largest file a protocol model takes, as base64 JSON


@dataclass
class GatewaySettings:
    """``triton_url``: Triton's HTTP endpoint (http://host:8000); ``routes``: PaddleX route -> protocol model."""

    triton_url: str
    routes: dict[str, str]
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_body_bytes: int = MAX_BODY_BYTES


PACKAGES = ("httpx", "starlette", "uvicorn")  # the gateway extra: the client to Triton, the app, its server


def require_packages() -> None:
    """Every package the gateway needs, before it calls Triton: a user with one of them (httpx comes with other
    tools) learns what is missing at once, not after the server was listed."""
    for module in PACKAGES:
        require_installed(module, extra="gateway", for_what="repogen gateway")


def base_url(url: str) -> str:
    """``host:port`` or ``http://host:port[/]`` -> ``http://host:port``; other schemes are refused."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{url}: the gateway calls Triton's HTTP endpoint (http://host:port)")
    return url


def check_routes(routes: dict[str, str]) -> dict[str, str]:
    """Routes as PaddleX names them (``/ocr``...); the model names are Triton's to judge."""
    known = sorted(ENDPOINTS.values())
    for route, model in routes.items():
        if route not in known:
            raise ConfigError(f"route {route!r}: not a PaddleX route this gateway serves (known: {', '.join(known)})")
        if not model or "/" in model:
            raise ConfigError(f"route {route}: {model!r} is not a Triton model name")
    return dict(routes)


def discover_routes(triton_url: str, given: dict[str, str] | None = None,
                    timeout_s: float = CONNECT_TIMEOUT_S * 2) -> dict[str, str]:
    """Route -> model for every ready protocol model on the server (its config's ``paddlex_endpoint``), with
    ``given`` routes taking precedence; a route two unnamed models answer is an error naming both."""
    httpx = require("httpx", extra="gateway", for_what="repogen gateway")
    url = base_url(triton_url)
    found: dict[str, list[str]] = {}
    try:
        with httpx.Client(timeout=timeout_s) as cli:
            index = cli.post(f"{url}/v2/repository/index", json={"ready": True})
            index.raise_for_status()
            for entry in index.json():
                if entry.get("state", "READY") != "READY":
                    continue
                got = cli.get(f"{url}/v2/models/{entry['name']}/config")
                if got.status_code != 200:
                    continue
                route = ((got.json().get("parameters") or {}).get(ENDPOINT_PARAMETER) or {}).get("string_value")
                if route:
                    found.setdefault(route, []).append(entry["name"])
    except httpx.HTTPError as exc:
        raise ConfigError(f"{url}: cannot list the server's models ({type(exc).__name__}: {exc})") from None
    routes = check_routes(dict(given or {}))
    for route, models in sorted(found.items()):
        if route in routes:
            continue
        if len(models) > 1:
            raise ConfigError(f"route {route}: models {', '.join(sorted(models))} all answer it; choose one with "
                              f"--route {route}=MODEL")
        routes[route] = models[0]
    if not routes:
        raise ConfigError(f"{url}: serves no PaddleX-protocol model (repogen build writes one per pipeline, "
                          "<model>_paddlex / ocr_paddlex)")
    return routes


def _envelope(code: int, message: str, log_id: str | None = None) -> dict[str, Any]:
    return {"logId": log_id or str(uuid.uuid4()), "errorCode": code, "errorMsg": message}


def make_app(settings: GatewaySettings) -> Any:
    """The Starlette app (ASGI): one POST route per protocol model, ``GET /health``."""
    def need(module: str) -> Any:
        return require(module, extra="gateway", for_what="repogen gateway")

    httpx = need("httpx")
    Starlette = need("starlette.applications").Starlette
    HTTPException = need("starlette.exceptions").HTTPException
    JSONResponse, Response = need("starlette.responses").JSONResponse, need("starlette.responses").Response
    Route = need("starlette.routing").Route
    Request = need("starlette.requests").Request

    url = base_url(settings.triton_url)
    state: dict[str, Any] = {}

    def answer(code: int, message: str) -> JSONResponse:
        return JSONResponse(_envelope(code, message), status_code=code)

    async def read_body(request: Request) -> bytes | None:
        """The body, or None past the limit (read in chunks: a huge body is never held whole)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def forward(model: str):
        async def handle(request: Request) -> Response:
            body = await read_body(request)
            if body is None:
                return answer(413, f"the request is over {settings.max_body_bytes} bytes")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return answer(422, "the request is not JSON (not UTF-8)")
            triton_request = {"inputs": [{"name": INPUT, "shape": [1, 1], "datatype": "BYTES", "data": [text]}],
                              "outputs": [{"name": OUTPUT}]}
            try:
                got = await state["client"].post(f"{url}/v2/models/{model}/infer", json=triton_request)
            except httpx.TimeoutException:
                return answer(504, f"{model}: no answer from Triton within {settings.timeout_s:g} s")
            except httpx.HTTPError as exc:
                return answer(503, f"{model}: Triton at {url} cannot be reached ({type(exc).__name__})")
            if got.status_code != 200:
                try:
                    why = got.json().get("error", got.text)
                except ValueError:
                    why = got.text
                return answer(503, f"{model}: Triton answered {got.status_code}: {str(why)[:300]}")
            try:
                payload = json.loads(got.json()["outputs"][0]["data"][0])
                code = int(payload.get("errorCode", 500))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                return answer(500, f"{model}: not a PaddleX-protocol answer")
            return JSONResponse(payload, status_code=200 if code == 0 else code if 400 <= code < 600 else 500)
        return handle

    async def health(request: Request) -> Response:
        return JSONResponse({"logId": str(uuid.uuid4()), "errorCode": 0, "errorMsg": "Healthy"})

    async def http_error(request: Request, exc: HTTPException) -> Response:  # 404 / 405 in PaddleX's envelope
        return answer(exc.status_code, str(exc.detail))

    @asynccontextmanager
    async def lifespan(app: Any):
        timeout = httpx.Timeout(settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s))
        async with httpx.AsyncClient(timeout=timeout) as client:
            state["client"] = client
            yield
        state.clear()

    routes = [Route(route, forward(model), methods=["POST"]) for route, model in check_routes(settings.routes).items()]
    return Starlette(routes=routes + [Route("/health", health, methods=["GET"])],
                     exception_handlers={HTTPException: http_error}, lifespan=lifespan)


def run(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM. uvicorn shuts down gracefully (requests in flight answered, at most
    10 s), then raises the signal again: SIGTERM ends as SystemExit(143), as every repogen command."""
    uvicorn = require("uvicorn", extra="gateway", for_what="repogen gateway")
    with terminate_raises():
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)
