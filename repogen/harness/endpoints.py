"""The addresses of a Triton someone else runs (``validate --server URL [--grpc-url URL]``).

URLs are parsed with ``urllib.parse`` (IPv6 in brackets, port range) into the ``host:port`` form
tritonclient takes; anything malformed is one ``ConfigError`` naming the option. The gRPC endpoint is
probed once before any model is validated, so an unreachable server is reported as a server problem,
not as a failure of every model.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from repogen.errors import ConfigError, ServerError

TRITON_GRPC_OFFSET = 1  # Triton's defaults: HTTP 8000, gRPC 8001


def host_port(url: str, option: str, schemes: tuple[str, ...]) -> tuple[str, int]:
    """``http://[::1]:8000`` -> ("[::1]", 8000); a bare ``host:port`` is accepted too."""
    text = url.strip()
    if "://" not in text:
        text = f"{schemes[0]}://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{option} {url!r}: not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ConfigError(f"{option} {url!r}: scheme must be {' or '.join(schemes)}")
    if not parts.hostname or port is None:
        raise ConfigError(f"{option} {url!r}: expected host:port (for example {schemes[0]}://127.0.0.1:8000)")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(f"{option} {url!r}: give only scheme://host:port")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host, port


def server_urls(server: str, grpc_url: str | None = None) -> tuple[str, str]:
    """(http host:port, grpc host:port) for ``--server URL`` (or ``HTTP,grpc://GRPC``) and ``--grpc-url``."""
    http, grpc = server, grpc_url
    if "," in server:
        parts = [p.strip() for p in server.split(",")]
        http = next((p for p in parts if not p.startswith("grpc")), parts[0])
        grpc = grpc or next((p for p in parts if p.startswith("grpc")), None)
    host, port = host_port(http, "--server", ("http",))  # the harness speaks plain HTTP and gRPC
    if grpc is None:
        if port + TRITON_GRPC_OFFSET > 65535:
            raise ConfigError(f"--server {server!r}: give the gRPC endpoint with --grpc-url")
        return f"{host}:{port}", f"{host}:{port + TRITON_GRPC_OFFSET}"
    ghost, gport = host_port(grpc, "--grpc-url", ("grpc",))
    return f"{host}:{port}", f"{ghost}:{gport}"


def probe_http(http_url: str, timeout: float = 5.0) -> None:
    """Raise ServerError at once when nothing listens at ``http_url`` (a typo in a port should not cost the
    minute a starting server is given). A server that answers but is not live yet is left to wait_live."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/live", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # something answers HTTP: wait_live decides
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerError(f"no Triton answers at http://{http_url}: {reason}") from None


def probe_grpc(grpc_url: str, explicit: bool) -> None:
    """Raise ServerError unless a Triton answers gRPC at ``grpc_url``."""
    import tritonclient.grpc as grpcclient

    try:
        client = grpcclient.InferenceServerClient(grpc_url)
        try:
            live = client.is_server_live(client_timeout=10.0)
        finally:
            client.close()
    except Exception as exc:  # tritonclient wraps every transport failure in its own exception type
        live, why = False, " ".join(str(exc).split())[:200]
    else:
        why = "server says it is not live"
    if not live:
        hint = "" if explicit else " (assumed: the HTTP port + 1; give the real one with --grpc-url)"
        raise ServerError(f"no Triton gRPC endpoint answers at {grpc_url}{hint}: {why}")
