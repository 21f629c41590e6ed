"""How the op and model tests judge a conversion: through the one verification core (repogen.verify), at the
precision the network was converted at, with the network's own noise floor at fp32 when the caller has it."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from repogen.verify import OutputVerdict, compare, noise_floors, rule_for


def judge(actual: Any, expected: Any, precision: str, name: str = "", *, network: Any = None,
          feeds: Mapping[str, np.ndarray] | None = None, engine_name: str | None = None,
          detection: str | None = None) -> OutputVerdict:
    """``actual`` (our network's output) against Paddle's ``expected`` under ``rule_for(precision)``; at fp32 with
    ``network`` and ``feeds`` given, the network's noise floor for ``engine_name`` (default ``name``) too."""
    noise = None
    if precision == "fp32" and network is not None and feeds is not None:
        noise = noise_floors(network, feeds).get(engine_name or name)
    return compare(actual, expected, rule_for(precision), name=name, noise=noise, detection=detection)
