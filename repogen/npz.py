"""Reading the ``.npz`` files users pass (``--inputs``, ``--reference``): one array per tensor name.

Every way such a file can be wrong (missing, a folder, empty, not a zip, a damaged member, object arrays
that would need pickle) is one ``ConfigError`` naming the option and the file, never a NumPy traceback.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from repogen.errors import ConfigError


def load_npz(path: str | Path, option: str) -> dict[str, np.ndarray]:
    """All arrays of ``path`` by name, read eagerly (the file is closed on return)."""
    p = Path(path)
    where = f"{option} {p}"
    if not p.exists():
        raise ConfigError(f"{where}: file not found")
    if not p.is_file():
        raise ConfigError(f"{where}: not a file")
    if p.stat().st_size == 0:
        raise ConfigError(f"{where}: empty file")
    if not zipfile.is_zipfile(p):
        raise ConfigError(f"{where}: not an .npz file (np.savez writes one: a zip of .npy arrays)")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ConfigError(f"{where}: holds object arrays (pickled Python objects); repogen reads numeric "
                              "arrays only, never pickle") from None
        raise ConfigError(f"{where}: unreadable array: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(f"{where}: unreadable ({type(exc).__name__}: {exc})") from None
    if not arrays:
        raise ConfigError(f"{where}: holds no arrays")
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ConfigError(f"{where}: array {name!r} has dtype {a.dtype}; expected numbers or booleans")
    return arrays
