"""`repogen ops`: every op spelling (legacy, canonical, pd_op.) that has a converter."""

from __future__ import annotations

import json
from typing import Any

from repogen.trt.registry import supported_op_names


def run(args: Any) -> int:
    names = supported_op_names()
    if getattr(args, "json", False):
        print(json.dumps({"count": len(names), "ops": names}))
    else:
        for n in names:
            print(n)
    return 0
