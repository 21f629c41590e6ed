"""`repogen ops`: every op spelling (legacy, canonical, pd_op.) that has a converter; ``--refused``: the
attribute values the converters still refuse, and why (repogen/trt/refusals.py)."""

from __future__ import annotations

import json
from typing import Any

from repogen.trt.registry import supported_op_names


def run(args: Any) -> int:
    if getattr(args, "refused", False):
        from repogen.trt import refusals

        if getattr(args, "json", False):
            print(json.dumps({"refused": refusals.as_json()}))
        else:
            print(refusals.markdown(), end="")
        return 0
    names = supported_op_names()
    if getattr(args, "json", False):
        print(json.dumps({"count": len(names), "ops": names}))
    else:
        for n in names:
            print(n)
    return 0
