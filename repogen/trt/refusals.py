"""What the converters still refuse, and why, rendered from what each converter family declared beside its
converters (repogen.trt.converter_table.refuse, asked through the registry): the Paddle op, the attribute (or
input) whose value causes it and the reason TensorRT cannot take it (`repogen ops --refused`, docs/refused.md).

Ops without any converter are listed by `repogen check` / `build` with registry.why_unsupported; this table is
about ops that do convert, except for the attribute values named here.
"""

from __future__ import annotations

from repogen.trt.registry import refusals


def markdown() -> str:
    """The tables of docs/refused.md."""
    rows = refusals()
    lines = ["| Paddle op | attribute / input value | why |", "|---|---|---|"]
    lines += [f"| {', '.join(f'`{o}`' for o in r.ops)} | {r.attribute} | {r.why} |" for r in rows if not r.approximate]
    lines += ["", "Accepted, but exact only under a condition:", "", "| Paddle op | attribute / input value | why |",
              "|---|---|---|"]
    lines += [f"| {', '.join(f'`{o}`' for o in r.ops)} | {r.attribute} | {r.why} |" for r in rows if r.approximate]
    return "\n".join(lines) + "\n"


def as_json() -> list[dict]:
    return [{"ops": list(r.ops), "attribute": r.attribute, "why": r.why, "approximate": r.approximate}
            for r in refusals()]
