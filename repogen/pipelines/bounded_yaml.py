"""Read a user's YAML file with bounds on its size, its nesting and what its aliases expand to.

PyYAML's ``safe_load`` shares an aliased node instead of copying it, so a "billion laughs" file (``l1: &l1
[*l0, *l0, ...]`` nine levels deep) loads in microseconds - and then costs gigabytes the moment anything walks
or stringifies the value. Its composer also recurses once per nesting level, so 20,000 nested ``[`` end in
``RecursionError``. Both are settled here before anything is built: one streaming pass over the parser's events
(no recursion, no objects kept) counts every node as it would be once the aliases are expanded, and the
nesting depth; only a document inside the limits is then composed and constructed. Parser errors are reported
by line and column without echoing the file's text.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int = 4 << 20  # the file itself
    max_nodes: int = 300_000  # scalars + collections, aliases counted as the nodes they stand for
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
    try:
        import yaml  # the pipelines / deploy extras: a build of a model without YAML beside it never needs it
    except ImportError:
        raise ConfigError("reading YAML needs PyYAML: pip install 'repogen[pipelines]'") from None
    return yaml


def _yaml_error(where: str, exc: Exception) -> ConfigError:
    # PyYAML's str() quotes the offending lines; the problem and its position are enough and echo nothing
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ConfigError(f"{where}: not valid YAML{at}: {' '.join(str(problem).split())[:200]}")


def check_events(text: str, where: str, limits: YamlLimits) -> None:
    """Walk the parser's events once and refuse a document whose expanded size or nesting is over ``limits``,
    an alias to a node that is not complete (a recursive structure) and a stream of several documents."""
    yaml = _yaml()
    loader = _loader_class()(text)
    nodes = chars = depth = documents = 0
    # anchor -> (nodes, chars) of the node it names; open anchors -> totals when their node started
    anchors: dict[str, tuple[int, int]] = {}
    opened: list[tuple[str | None, int, int]] = []

    def over(what: str) -> ConfigError:
        line = loader.peek_event().start_mark.line + 1 if loader.check_event() else "?"
        return ConfigError(f"{where}: {what} (near line {line}); a deploy config is far smaller: refused before "
                           "loading")

    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise ConfigError(f"{where}: holds more than one YAML document (---); expected one mapping")
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise ConfigError(f"{where}: alias *{str(event.anchor)[:64]} refers to a node that is not "
                                      "complete there (a recursive structure) or not defined")
                n, c = anchors[event.anchor]
                nodes += n
                chars += c
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                chars += len(event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = (1, len(event.value))
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                nodes += 1
                depth += 1
                if depth > limits.max_depth:
                    raise over(f"nested deeper than {limits.max_depth} levels")
                opened.append((event.anchor, nodes - 1, chars))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
                anchor, n0, c0 = opened.pop()
                if anchor is not None:
                    anchors[anchor] = (nodes - n0, chars - c0)
            if nodes > limits.max_nodes:
                raise over(f"expands to more than {limits.max_nodes} YAML nodes (aliases counted as copies)")
            if chars > limits.max_chars:
                raise over(f"expands to more than {limits.max_chars} characters of text (aliases counted as "
                           "copies)")
    except yaml.YAMLError as exc:
        raise _yaml_error(where, exc) from None
    finally:
        loader.dispose()


def _loader_class() -> Any:
    yaml = _yaml()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: the same result, faster


def load_yaml_text(text: str, where: str, limits: YamlLimits = YamlLimits()) -> Any:
    """The document in ``text`` (safe types only), once :func:`check_events` found it inside ``limits``."""
    yaml = _yaml()
    check_events(text, where, limits)
    try:
        return yaml.load(text, Loader=_loader_class())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise _yaml_error(where, exc) from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        # PyYAML's constructors raise these for an explicit tag the value does not fit (``!!int 1.5``,
        # ``!!float zz``, ``!!timestamp 2001-13-45``), without a position
        raise ConfigError(f"{where}: not valid YAML: a tagged value does not fit its tag ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:100]})") from None
    except RecursionError:  # unreachable within max_depth; kept so no limit change can bring a traceback back
        raise ConfigError(f"{where}: nested too deeply") from None


def load_yaml_file(path: Path | str, what: str, limits: YamlLimits = YamlLimits()) -> Any:
    """A user's YAML file: a regular file of at most ``limits.max_bytes``, UTF-8, inside ``limits``."""
    data = read_regular_file(path, limits.max_bytes, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None
    return load_yaml_text(text, str(path), limits)
