"""``repogen gateway``: PaddleX basic serving's HTTP routes (/ocr, /object-detection, ...) in front of a Triton
server that serves repogen's PaddleX-protocol models (repogen.harness.gateway)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from repogen.cli.options import port

HELP = "answer PaddleX basic serving's HTTP routes by calling a Triton server's PaddleX-protocol models"


def _route(text: str) -> tuple[str, str]:
    route, sep, model = text.partition("=")
    if not sep or not route.startswith("/") or not model:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROUTE=MODEL, e.g. /object-detection=det_paddlex")
    return route, model


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} s: expected more than 0 and at most 3600")
    return value


def add_parser(sub: Any) -> None:
    # defaults are resolved in run() from repogen.harness.gateway: importing it here would slow every command
    p = sub.add_parser("gateway", help=HELP, description=HELP + ". The routes are found on the server (every "
                       "ocr_paddlex / <model>_paddlex model repogen build wrote) unless given with --route.")
    p.add_argument("url", metavar="URL",
                   help="Triton's HTTP endpoint, http://HOST:PORT (what repogen serve prints)")
    p.add_argument("--host", metavar="ADDRESS",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=port, metavar="PORT", help="port to listen on (default 8080, PaddleX's)")
    p.add_argument("--route", type=_route, action="append", default=[], metavar="ROUTE=MODEL",
                   help="answer ROUTE (/ocr, /object-detection, /image-classification, /semantic-segmentation) "
                        "with MODEL; repeat for several; needed where several models answer one route")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="longest wait for Triton's answer to one request (default 120)")


def run(args: argparse.Namespace) -> int:
    from repogen.harness import gateway

    gateway.require_packages()
    host, port_ = args.host or gateway.DEFAULT_HOST, args.port or gateway.DEFAULT_PORT
    routes = gateway.discover_routes(args.url, dict(args.route))
    app = gateway.make_app(gateway.GatewaySettings(gateway.base_url(args.url), routes,
                                                   timeout_s=args.timeout or gateway.DEFAULT_TIMEOUT_S))
    print(f"PaddleX routes on http://{host}:{port_} -> Triton {gateway.base_url(args.url)}:")
    for route, model in sorted(routes.items()):
        print(f"  POST {route:24} {model}")
    print("  GET  /health\npress Ctrl-C to stop", flush=True)
    try:
        gateway.run(app, host, port_)
    finally:
        print("gateway stopped", file=sys.stderr)
    return 0
