"""Regenerate repogen/paddle/pir_signatures.py from the installed Paddle wheel's PIR op stubs.

Dev tool only (the readers never import Paddle): ``python -m repogen.paddle.gen_signatures``.
The stubs list each op's phi arguments in order; ops declared ``(*args, **kwargs)`` are skipped.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def main() -> None:
    spec = importlib.util.find_spec("paddle")
    assert spec and spec.origin, "paddle is not installed"
    stub = Path(spec.origin).parent / "_typing" / "libs" / "libpaddle" / "pir" / "ops.pyi"
    tree = ast.parse(stub.read_text())
    sigs: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.args.vararg and not node.name.endswith("_grad"):
            sigs.setdefault(node.name, tuple(a.arg for a in node.args.args))
    lines = ['"""PIR op argument names in phi order, generated from Paddle\'s ops.pyi by gen_signatures.py."""', "",
             "SIGNATURES: dict[str, tuple[str, ...]] = {"]
    lines += [f"    {name!r}: {args!r}," for name, args in sorted(sigs.items())]
    lines.append("}")
    out = Path(__file__).with_name("pir_signatures.py")
    out.write_text("\n".join(lines) + "\n")
    print(f"{len(sigs)} signatures -> {out}")


if __name__ == "__main__":
    main()
