"""Rendering repogen's Jinja2 templates (config.pbtxt, model.py, Kubernetes manifests), bundled or the user's.

A template is data. Whatever it says, rendering it cannot run Python, read a file, or take the machine's
memory or time; every way it fails is one ``ConfigError`` line naming the template and, where there is one,
the line (the CLI prints it and exits 2):

* **What it can load.** The loader is a dictionary of sources repogen read itself before rendering: the named
  template and the bundled macros of its kind (``_io.pbtxt.j2`` for configs, ``_labels.j2`` for manifests).
  ``{% include %}``, ``{% import %}``, ``{% extends %}`` of any other name, a file beside the template or a
  path through a symlink, is refused; nothing else on disk is ever opened.
* **What it can reach.** Jinja2's ``ImmutableSandboxedEnvironment``: no Python internals
  (``cycler.__init__.__globals__``), no mutation of the context.
* **How much work and output.** :class:`BoundedSandbox` counts every loop iteration and every call (macros,
  filters, methods) against one budget per render and checks a deadline as it goes; the operators and filters
  that make big values from small ones (``*``, ``**``, ``~``, ``+``, ``%``, ``format``, ``center``,
  ``indent``, ``batch``, ``replace``, ``join``, ...) are checked before they allocate, and every joined text
  (the output itself, a macro's result, a ``{% set %}`` block) is capped while it is joined. See the MAX_*
  constants.
* **The process.** A user's template renders in a child process with an address-space and CPU-time cap
  (:func:`render` with ``isolated=True``), so anything the checks above do not foresee still ends as one line,
  not as a dead or swapping build. repogen's own templates render in-process with the same sandbox.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import json
import math
import os
import pickle
import re
import resource
import signal
import stat
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from repogen.errors import ConfigError

MAX_TEMPLATE_BYTES = 1 << 20
"""A template file (the bundled ones are 0.3-6 KB)."""
MAX_TEXT = 4 << 20
"""Characters (or items) in any one value a template makes and in its whole output: the bundled tensorrt template
gives 204 KB for a model with 1,000 inputs (profiles and warm-up included), a manifest a few KB."""
MAX_PRODUCED = 4 * MAX_TEXT
"""Characters of ``{{ ... }}`` output over a render, wherever it goes (a macro's output is counted again where
it is used, so nested macros count a few times)."""
MAX_STEPS = 100_000
"""Loop iterations plus calls (macros, filters, methods) in one render: the bundled tensorrt template takes 23
for a one-input model and about 10 more per tensor (10,013 for 1,000 inputs)."""
MAX_SECONDS = 5.0
"""Wall time of one render, checked at every step."""
MAX_INT_BITS = 8192
"""Integers a template computes (``**`` and ``*``): about 2,500 decimal digits."""
CHILD_MEMORY = 512 << 20
"""Address space of the child process a user's template renders in (the interpreter and Jinja2 take ~25 MB)."""
CHILD_CPU_SECONDS = 20
"""CPU time of that child: the kernel stops it (SIGXCPU) if a single operation outlasts the deadline above."""
CHILD_WALL_SECONDS = 60
"""Wall time the parent waits for the child (start-up on a loaded machine included)."""

LOOP_FILTER = "_repogen_loop_step"
# filters whose integer arguments size their output (width, count, precision)
_SIZING_FILTERS = {"center", "indent", "batch", "slice", "wordwrap", "truncate", "round", "filesizeformat"}
_SIZING_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
# filters that walk their value item by item (or character by character) in Python
_ITERATING_FILTERS = {"map", "select", "reject", "selectattr", "rejectattr", "join", "unique", "groupby", "batch",
                      "slice", "sort", "dictsort", "min", "max", "sum", "wordwrap", "urlize", "xmlattr", "pprint",
                      "indent"}
_FORMAT_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


class LimitError(Exception):
    """A render went over one of the MAX_* limits."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    produced: int = 0

    def produce(self, chars: int) -> None:
        self.produced += chars
        if self.produced > MAX_PRODUCED:
            raise LimitError(f"more than {MAX_PRODUCED:,} characters of output (macro results and "
                             "{% set %} blocks included)")

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise LimitError(f"more than {MAX_STEPS:,} loop iterations and calls")
        if time.monotonic() > self.deadline:
            raise LimitError(f"rendering took more than {MAX_SECONDS:g} s")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("repogen_template_budget")


def _budget() -> _Budget:
    budget = _BUDGET.get(None)
    if budget is None:  # compiled or called outside render(): still bounded
        budget = _Budget(time.monotonic() + MAX_SECONDS)
        _BUDGET.set(budget)
    return budget


def _checked(value: Any) -> Any:
    """``value`` if it is within the size limits."""
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) and len(value) > MAX_TEXT:
        raise LimitError(f"a value of {len(value):,} characters or items (the limit is {MAX_TEXT:,})")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitError(f"an integer of more than {MAX_INT_BITS:,} bits")
    return value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)) else 1


def _check_sizing_ints(what: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a) > MAX_TEXT:
            raise LimitError(f"{what} with {a:g} (a width or count above {MAX_TEXT:,})")


def _check_format(fmt: Any, args: Sequence[Any]) -> None:
    """printf-style and str.format strings: widths and precisions, literal or passed in, stay under the cap."""
    if isinstance(fmt, str) and _FORMAT_WIDTH.search(fmt):
        raise LimitError("a format width or precision of a million or more")
    if isinstance(fmt, str) and ("*" in fmt or re.search(r"\{[^{}]*\{", fmt)):
        _check_sizing_ints("a format with a width from its arguments", args, {})


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitError(f"an integer product of more than {MAX_INT_BITS:,} bits")
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_TEXT:
            raise LimitError(f"{_kind(seq)} of {len(seq):,} repeated {n:,} times (the limit is {MAX_TEXT:,})")


def _check_power(base: Any, exp: Any) -> None:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        if exp * math.log2(abs(base)) > MAX_INT_BITS:
            raise LimitError(f"{base} ** {exp} has more than {MAX_INT_BITS:,} bits")


def _kind(seq: Any) -> str:
    return "a string" if isinstance(seq, str) else "a list"


def _bounded_list(items: Any, what: str) -> list[Any]:
    """``items`` (any iterable: a generator too) as a list of at most MAX_TEXT items."""
    kept = list(itertools.islice(items, MAX_TEXT + 1))
    if len(kept) > MAX_TEXT:
        raise LimitError(f"{what} over more than {MAX_TEXT:,} items")
    return kept


def _check_join(sep: str, items: list[Any], what: str) -> None:
    if len(sep) * max(len(items) - 1, 0) + sum(len(str(x)) for x in items) > MAX_TEXT:
        raise LimitError(f"{what} would make more than {MAX_TEXT:,} characters")


def _check_call(obj: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Checks before a method or global call allocates: str.center(10**9), 'x'.replace('x', big), format.
    (``str.join`` is checked in BoundedSandbox.call, which needs its items as a list first.)"""
    obj = getattr(obj, "__wrapped__", obj)  # the sandbox's wrapper of str.format
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str):
        if name in _SIZING_METHODS:
            _check_sizing_ints(f"str.{name}", args, kwargs)
        elif name in ("format", "format_map"):
            _check_format(owner, list(args) + list(kwargs.values()))
        elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            count = len(owner) + 1 if args[0] == "" else owner.count(args[0])
            if len(owner) + count * max(len(args[1]) - len(args[0]), 0) > MAX_TEXT:
                raise LimitError(f"str.replace would make more than {MAX_TEXT:,} characters")


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if hasattr(func, "jinja_pass_arg") else 1  # (environment or context,) value, then the arguments

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value, rest = (args[skip - 1] if len(args) >= skip else None), args[skip:]
        # a filter that walks its value item by item in Python costs a step per item
        _budget().step(_size(value) if name in _ITERATING_FILTERS else 1)
        if name in _SIZING_FILTERS:
            _check_sizing_ints(f"the {name} filter", rest, kwargs)
        elif name == "format":
            _check_format(value, list(rest) + list(kwargs.values()))
        elif name == "replace" and len(rest) >= 2:
            _check_call(str(value).replace, rest[:2], {})
        elif name == "join" and len(args) >= skip:
            items = _bounded_list(value, "the join filter")
            _check_join(str(rest[0] if rest else kwargs.get("d", "")), items, "the join filter")
            args = (*args[:skip - 1], items, *rest)
        return _checked(func(*args, **kwargs))

    return bounded


def _loop_step(iterable: Any) -> Any:
    """Every for loop iterates through this (see _BoundedCodeGenerator): one step per item."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja2's code generator with three hooks: every ``{% for %}`` iterates through the step budget, every
    ``{{ expression }}`` output (into the result, a macro's body or a ``{% set %}`` block) is counted, every
    ``~`` result is size-checked (the other operators are intercepted by the sandbox itself)."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        # before the generator collects the filters the template uses, so the loop filter is among them
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Any, finalize: Any) -> None:
        self.write("environment.output_piece(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Any, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")


def _q(value: Any) -> str:
    # Triton's text format takes C-style quoted strings; JSON quoting is a subset of it for our names.
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the work and size limits above; see the module's docstring."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        """``sources``: loader name -> (source text, the name errors and tracebacks show for it)."""
        super().__init__(loader=_Sources(sources), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                         trim_blocks=True, lstrip_blocks=True, autoescape=False, cache_size=64)
        self.filters["q"] = _q
        self.filters["pyrepr"] = repr
        self.filters = {name: _wrap_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP_FILTER] = _loop_step
        self.globals.pop("lipsum", None)  # paragraphs of filler text: nothing a config needs, a lot of output

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left, list(right) if isinstance(right, tuple) else
                          list(right.values()) if isinstance(right, dict) else [right])
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja2's own
        _budget().step()
        if getattr(__obj, "__name__", "") == "join" and isinstance(getattr(__obj, "__self__", None), str) and args:
            items = _bounded_list(args[0], "str.join")
            _check_join(__obj.__self__, [str(x) if not isinstance(x, str) else x for x in items], "str.join")
            args = (items, *args[1:])
        _check_call(__obj, args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def concat(self, parts: Any) -> str:
        """Every joined text: the output, a macro's result, a ``{% set %}`` block. Counted while joining."""
        kept, total = [], 0
        for part in parts:
            total += len(part)
            if total > MAX_TEXT:
                raise LimitError(f"more than {MAX_TEXT:,} characters of output")
            kept.append(part)
        return "".join(kept)

    def checked_value(self, value: Any) -> Any:
        return _checked(value)

    def output_piece(self, text: str) -> str:
        _budget().produce(len(text))
        return text


class _Sources(jinja2.BaseLoader):
    """Only the sources repogen read itself: nothing is looked up on disk while rendering."""

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        self.sources = dict(sources)

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        text, shown = self.sources[template]
        return text, shown, lambda: True


@dataclass
class Job:
    """One render: ``where`` names the template in messages (the user's path, or the bundled file's name);
    ``name`` is its key in ``sources`` (loader name -> source text): the template itself and the bundled
    macros it may import, nothing else."""

    where: str
    name: str
    sources: dict[str, str]
    context: Mapping[str, Any] = field(default_factory=dict)


def read_template(path: Path, *, inside: Path | None = None) -> str:
    """A template file's text: a regular file of at most MAX_TEMPLATE_BYTES, UTF-8. With ``inside``, a
    symlink that resolves outside that folder is refused unread (a ``--templates`` folder)."""
    if inside is not None and path.is_symlink() and not path.resolve().is_relative_to(inside.resolve()):
        raise ConfigError(f"{path}: a symlink to a file outside {inside}; templates are read from that folder only")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"{path}: template not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the template: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: a template must be a regular file")
        data = f.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{path}: a template of more than {MAX_TEMPLATE_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: a template must be UTF-8 text (byte {exc.start} is not)") from None


@functools.lru_cache(maxsize=None)
def bundled_sources(folder: Path) -> dict[str, str]:
    """repogen's own templates in ``folder`` (not its subfolders), by file name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.j2")) if p.is_file()}


def bundled_macros(folder: Path) -> dict[str, str]:
    """The bundled files a user's template may import: the macro files (their names start with ``_``)."""
    return {n: s for n, s in bundled_sources(folder).items() if n.startswith("_")}


# -- rendering ---------------------------------------------------------------------------------------------------

def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(exc: BaseException, job: Job) -> str:
    """The one line for ``exc``: the template (or the bundled macro it happened in) and line, then what."""
    shown = {job.name: job.where} | {n: n for n in job.sources if n != job.name}
    where, line = job.where, None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where, line = shown.get(exc.name or job.name, job.where), exc.lineno
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename in shown.values() or frame.filename in shown:
                where, line = shown.get(frame.filename, frame.filename), frame.lineno
    if where != job.where:
        where = f"{job.where}: {where}"
    at = f"{where} line {line}" if line else where
    if isinstance(exc, jinja2.TemplateNotFound):
        allowed = ", ".join(n for n in job.sources if n != job.name) or "none"
        return (f"{at}: cannot load {exc.name!r}: a template may import only repogen's bundled macros "
                f"({allowed}), never another file")
    if isinstance(exc, SecurityError):
        return f"{at}: refused by the template sandbox: {_one_line(exc)}"
    if isinstance(exc, LimitError):
        return f"{at}: over a template limit: {exc}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{at}: {_one_line(exc.message or exc)}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"{at}: {_one_line(exc)}"
    if isinstance(exc, RecursionError):
        return f"{at}: recursion too deep (a macro or loop that calls itself without end?)"
    if isinstance(exc, MemoryError):
        cap = f" (over the renderer's {CHILD_MEMORY >> 20} MiB)" if _IN_CHILD else ""
        return f"{at}: out of memory while rendering{cap}"
    return f"{at}: {type(exc).__name__}: {_one_line(exc)}"


@functools.lru_cache(maxsize=16)
def _environment(sources: tuple[tuple[str, tuple[str, str]], ...]) -> BoundedSandbox:
    """One environment per set of sources, so that repogen's own templates compile once per process (the
    environment holds no per-render state: the budget is a context variable)."""
    return BoundedSandbox(dict(sources))


@contextlib.contextmanager
def _interrupted_after(seconds: float) -> Iterator[None]:
    """SIGALRM raises LimitError in the block: the deadline also stops a single slow filter or method (pure
    Python between two steps). Main thread of the render child only: the signal is process-wide."""
    def expire(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise LimitError(f"rendering took more than {MAX_SECONDS:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _render_here(job: Job, *, interrupt: bool = False) -> str:
    """``job`` rendered in this process; ``interrupt``: with the SIGALRM deadline too (the render child)."""
    # a template's own frames carry the name the user knows it by (errors find its lines by it)
    sources = tuple(sorted((n, (s, job.where if n == job.name else n)) for n, s in job.sources.items()))
    token = _BUDGET.set(_Budget(time.monotonic() + MAX_SECONDS))
    try:
        with _interrupted_after(MAX_SECONDS + 0.5) if interrupt else contextlib.nullcontext():
            return _environment(sources).get_template(job.name).render(**job.context)
    except Exception as exc:  # noqa: BLE001 - every failure of a template is one line naming it
        raise ConfigError(_describe(exc, job)) from None
    finally:
        _BUDGET.reset(token)


def render(job: Job, *, isolated: bool) -> str:
    """``job`` rendered; ``isolated``: in a child process under CHILD_MEMORY and CHILD_CPU_SECONDS (a user's
    template), else here (repogen's own)."""
    return render_all([job], isolated=isolated)[0]


def render_all(jobs: Sequence[Job], *, isolated: bool) -> list[str]:
    """Several renders; isolated ones share one child process."""
    if not isolated:
        return [_render_here(job) for job in jobs]
    if not jobs:
        return []
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the repogen package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    code = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
            "from repogen.repository.templating import _child_main; _child_main()")
    names = ", ".join(j.where for j in jobs)
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(jobs), capture_output=True,
                              timeout=CHILD_WALL_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{names}: rendering took more than {CHILD_WALL_SECONDS} s; stopped") from None
    try:
        results = json.loads(proc.stdout)
    except ValueError:
        results = None
    for r in results if isinstance(results, list) else []:
        if "error" in r:
            raise ConfigError(r["error"])
    if proc.returncode != 0 or not isinstance(results, list) or len(results) != len(jobs):
        if proc.returncode == -9 or proc.returncode == -24:  # SIGKILL / SIGXCPU from the CPU-time cap
            why = f"more than {CHILD_CPU_SECONDS} s of CPU time"
        else:
            last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            why = f"the renderer stopped ({_one_line(last[0], 200)})"
        raise ConfigError(f"{names}: rendering stopped: {why}")
    return [r["text"] for r in results]


_IN_CHILD = False


def _child_main() -> None:
    """The child process of :func:`render_all`: limits first, then the jobs from stdin, results to stdout."""
    global _IN_CHILD
    _IN_CHILD = True
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_CPU_SECONDS, CHILD_CPU_SECONDS + 1))
    jobs = pickle.loads(sys.stdin.buffer.read())  # from the parent, which trusts itself
    results: list[dict[str, str]] = []
    for job in jobs:
        try:
            results.append({"text": _render_here(job, interrupt=True)})
        except ConfigError as exc:
            results.append({"error": str(exc)})
            break
        except MemoryError:  # while reporting another error
            results.append({"error": f"{job.where}: out of memory while rendering (over the renderer's "
                                     f"{CHILD_MEMORY >> 20} MiB)"})
            break
    sys.stdout.write(json.dumps(results))
    sys.stdout.flush()
