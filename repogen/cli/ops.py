"""``repogen ops``: every op spelling (legacy, canonical, pd_op.) that has a converter; ``--refused``: the
attribute values the converters still refuse, and why (repogen/trt/refusals.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "list every op name that has a converter"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ops", help=HELP, description=HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--refused", action="store_true",
                   help="list the op attribute values that still do not convert, and why")


def run(args: argparse.Namespace) -> int:
    if args.refused:
        from repogen.trt import refusals

        if args.json:
            print(json.dumps({"refused": refusals.as_json()}))
        else:
            print(refusals.markdown(), end="")
        return 0
    from repogen.trt.registry import supported_op_names

    names = supported_op_names()
    if args.json:
        print(json.dumps({"count": len(names), "ops": names}))
    else:
        for n in names:
            print(n)
    return 0
