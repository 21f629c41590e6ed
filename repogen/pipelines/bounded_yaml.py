"""Read a user's YAML file with bounds on its size, its nesting and what its aliases expand to.

PyYAML's ``safe_load`` shares an aliased node instead of copying it, so a "billion laughs" file (``l1: &l1
[*l0, *l0, ...]`` nine levels deep) loads in microseconds - and then costs gigabytes the moment anything walks
or stringifies the value. Its composer also recurses once per nesting level, so 20,000 nested ``[`` end in
``RecursionError``. Here the composer counts: every node as it would be once the aliases are expanded (an alias
adds the nodes and characters of the node it names), and the nesting depth, checked before it recurses; a
document over the limits is refused while it is being composed, before any value is built. Errors are one
ConfigError line with the line and column, without echoing the file's text.
"""

from __future__ import annotations

import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.extras import require


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 4 << 20  # the file itself
    max_nodes: int = 200_000  # scalars + collections, aliases counted as the nodes they stand for
    max_chars: int = 8 << 20  # characters in scalars, aliases counted as the text they stand for
    max_depth: int = 32  # nested mappings / sequences


def read_regular_file(path: Path | str, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file (a FIFO or device would block or never end) no larger than
    ``max_bytes``; otherwise one ConfigError naming the file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: the {what} is not a regular file")
        if st.st_size > max_bytes:
            raise ConfigError(f"{path}: the {what} is {st.st_size} bytes; at most {max_bytes} are read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)  # a file growing while read is still cut at the cap
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: the {what} is over {max_bytes} bytes")
    return data


def _yaml() -> Any:
    # the pipelines / deploy extras: a build of a model without YAML beside it never needs it
    return require("yaml", extra="pipelines", for_what="reading YAML")


def _yaml_error(where: str, exc: Exception) -> ConfigError:
    # PyYAML's str() quotes the offending lines; the problem and its position are enough and echo nothing
    if isinstance(getattr(exc, "character", None), int):  # ReaderError: a character YAML does not allow
        return ConfigError(f"{where}: not valid YAML: character #x{exc.character:04x} at character "
                           f"{exc.position} is not allowed in YAML text")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = ", ".join(p for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    problem = problem or type(exc).__name__
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ConfigError(f"{where}: not valid YAML{at}: {' '.join(str(problem).split())[:200]}")


@functools.lru_cache(maxsize=1)
def _bounded_loader() -> type:
    """PyYAML's pure-Python ``SafeLoader`` (what ``yaml.safe_load`` uses: libyaml's scanner reads some files
    differently, e.g. refuses the surrogate-pair escapes JSON writes for emoji) with a composer that counts."""
    yaml = _yaml()

    class BoundedLoader(yaml.SafeLoader):
        where: str = ""
        limits: YamlLimits = YamlLimits()

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.nodes = self.chars = self.depth = 0
            self.weights: dict[int, tuple[int, int]] = {}  # id(anchored node) -> its (nodes, chars) expanded

        def _count(self, nodes: int, chars: int) -> None:
            self.nodes += nodes
            self.chars += chars
            if self.nodes > self.limits.max_nodes:
                raise self._over(f"expands to more than {self.limits.max_nodes} YAML nodes (aliases counted as "
                                 "copies)")
            if self.chars > self.limits.max_chars:
                raise self._over(f"expands to more than {self.limits.max_chars} characters of text (aliases "
                                 "counted as copies)")

        def _over(self, what: str) -> ConfigError:
            mark = self.peek_event().start_mark if self.check_event() else None
            near = f" (near line {mark.line + 1})" if mark is not None else ""
            return ConfigError(f"{self.where}: {what}{near}; a deploy config is far smaller: refused before "
                               "loading")

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                target = self.anchors.get(event.anchor)
                if target is not None:  # an undefined one is PyYAML's own error
                    if id(target) not in self.weights:
                        raise ConfigError(f"{self.where}: alias *{str(event.anchor)[:64]} refers to a node that "
                                          "contains it (a recursive structure)")
                    self._count(*self.weights[id(target)])
                return super().compose_node(parent, index)
            before = (self.nodes, self.chars)
            node = super().compose_node(parent, index)
            if event.anchor is not None:
                self.weights[id(node)] = (self.nodes - before[0], self.chars - before[1])
            return node

        def compose_scalar_node(self, anchor: Any) -> Any:
            node = super().compose_scalar_node(anchor)
            self._count(1, len(node.value))
            return node

        def _collection(self, compose: Any, anchor: Any) -> Any:
            # checked before the composer recurses: 20,000 nested "[" never reach Python's recursion limit
            if self.depth >= self.limits.max_depth:
                raise self._over(f"nested deeper than {self.limits.max_depth} levels")
            self.depth += 1
            self._count(1, 0)
            try:
                return compose(anchor)
            finally:
                self.depth -= 1

        def compose_sequence_node(self, anchor: Any) -> Any:
            return self._collection(super().compose_sequence_node, anchor)

        def compose_mapping_node(self, anchor: Any) -> Any:
            return self._collection(super().compose_mapping_node, anchor)

    return BoundedLoader


def load_yaml_text(text: str, where: str, limits: YamlLimits = YamlLimits()) -> Any:
    """The one document in ``text`` (safe types only). Nodes are counted while they are composed, aliases as
    the nodes they stand for, so a document over ``limits`` is refused before it is built."""
    yaml = _yaml()
    loader = None
    try:
        loader = _bounded_loader()(text)  # the reader refuses control characters here, before any parsing
        loader.where, loader.limits = where, limits
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(where, exc) from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        # PyYAML's constructors raise these for an explicit tag the value does not fit (``!!int 1.5``,
        # ``!!float zz``, ``!!timestamp 2001-13-45``), without a position
        raise ConfigError(f"{where}: not valid YAML: a tagged value does not fit its tag ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:100]})") from None
    except RecursionError:  # unreachable within max_depth; kept so no limit change can bring a traceback back
        raise ConfigError(f"{where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: Path | str, what: str, limits: YamlLimits = YamlLimits()) -> Any:
    """A user's YAML file: a regular file of at most ``limits.max_bytes``, UTF-8, inside ``limits``."""
    data = read_regular_file(path, limits.max_bytes, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
    return load_yaml_text(text, str(path), limits)


def dump_yaml(data: Any, header: str = "") -> str:
    """``data`` (plain dicts, lists, strings, numbers, booleans) as block-style YAML that :func:`load_yaml_text`
    reads back to the same values: keys in the order given, text as is (no escapes for non-ASCII characters), a
    list of scalars on one line only when it is short. ``header`` lines become ``#`` comments on top."""
    yaml = _yaml()

    class Dumper(yaml.SafeDumper):
        def represent_sequence(self, tag: str, sequence: Any, flow_style: Any = None) -> Any:
            # [3, 48, 320] and [0.485, 0.456, 0.406] on one line; a dictionary of characters one per line
            short = len(sequence) <= 8 and all(isinstance(v, (int, float)) for v in sequence)
            return super().represent_sequence(tag, sequence, flow_style=short)

    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)
