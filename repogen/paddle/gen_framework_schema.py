"""Regenerate repogen/paddle/framework_schema.py from protobuf's own descriptor of Paddle's framework.proto.

Dev tool only (the readers never import Paddle): ``python -m repogen.paddle.gen_framework_schema``. The
descriptor is the one compiled into the installed Paddle wheel (paddle.base.proto.framework_pb2), so the
table says exactly which wire type Paddle's parser expects for every field of every message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repogen.extras import require

PACKAGE = "paddle.framework.proto."
# FieldDescriptor.TYPE_* -> protobuf wire type
_WIRE = {1: 1, 2: 5, 3: 0, 4: 0, 5: 0, 6: 1, 7: 5, 8: 0, 9: 2, 10: 3, 11: 2, 12: 2, 13: 0, 14: 0, 15: 5, 16: 1,
         17: 0, 18: 0}
_PACKED_KIND = {0: "varint", 1: "fixed64", 5: "fixed32"}


def _is(field: Any, label: str) -> bool:
    """protobuf >= 5.28 has is_repeated/is_required and deprecates label; older ones only have label."""
    if hasattr(field, f"is_{label}"):
        return bool(getattr(field, f"is_{label}"))
    return field.label == {"required": 2, "repeated": 3}[label]


def render(file_descriptor: Any) -> str:
    messages: dict[str, dict[int, tuple[int, str | None]]] = {}
    required: dict[str, tuple[int, ...]] = {}
    enums: dict[str, dict[int, tuple[int, ...]]] = {}

    def walk(m: Any) -> None:
        name = m.full_name[len(PACKAGE):]
        fields = {}
        for f in m.fields:
            wire = _WIRE[f.type]
            repeated = _is(f, "repeated")
            if f.message_type is not None:
                kind = f.message_type.full_name[len(PACKAGE):]
            elif repeated and wire in _PACKED_KIND:
                kind = _PACKED_KIND[wire]  # a repeated scalar may also come packed in one LEN field
            else:
                kind = None
            mask = 1 << wire
            if kind in _PACKED_KIND.values():
                mask |= 1 << 2
            fields[f.number] = (mask, kind)
            if f.enum_type is not None:
                enums.setdefault(m.full_name[len(PACKAGE):], {})[f.number] = tuple(
                    sorted(v.number for v in f.enum_type.values))
        messages[name] = dict(sorted(fields.items()))
        required[name] = tuple(sorted(f.number for f in m.fields if _is(f, "required")))
        for nested in m.nested_types:
            walk(nested)

    for m in file_descriptor.message_types_by_name.values():
        walk(m)
    lines = ['"""Wire types of Paddle\'s framework.proto, generated from protobuf\'s descriptor by',
             'gen_framework_schema.py (do not edit).', "",
             "FIELDS[message][field number] = (bit mask of the allowed wire types, what the payload is: a message",
             'name, "varint"/"fixed32"/"fixed64" for a packed repeated scalar, or None); REQUIRED[message] = the',
             'fields proto2 marks required; ENUMS the values of enum fields."""', "",
             "FIELDS: dict[str, dict[int, tuple[int, str | None]]] = {"]
    for name, fields in sorted(messages.items()):
        lines.append(f"    {name!r}: {{")
        lines += [f"        {num}: ({mask:#04x}, {kind!r})," for num, (mask, kind) in fields.items()]
        lines.append("    },")
    lines += ["}", "", "REQUIRED: dict[str, frozenset[int]] = {"]
    lines += [f"    {name!r}: frozenset({set(req)!r})," if req else f"    {name!r}: frozenset(),"
              for name, req in sorted(required.items())]
    lines.append("}")
    lines += ["", "# ENUMS[message][field number] = the values its (closed, proto2) enum declares",
              "ENUMS: dict[str, dict[int, frozenset[int]]] = {"]
    for name, fields in sorted(enums.items()):
        lines.append(f"    {name!r}: {{")
        lines += [f"        {num}: frozenset({set(values)!r})," for num, values in sorted(fields.items())]
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    framework_pb2 = require("paddle.base.proto.framework_pb2", extra="paddle", for_what="regenerating the schema")

    out = Path(__file__).with_name("framework_schema.py")
    out.write_text(render(framework_pb2.DESCRIPTOR))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
