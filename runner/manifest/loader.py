"""A safe YAML loader that keeps the line and column of every node.

It works on the parser's *event* stream (libyaml when available) and builds the data itself,
instead of using PyYAML's composer and constructor, for four reasons:

- every key and value gets its mark (:class:`~runner.manifest.nodes.MDict`), cheaply;
- duplicate keys are refused (PyYAML silently keeps the last one);
- only plain data tags are accepted (``!!python/object`` and friends are refused before anything
  is constructed), and scalars follow the YAML 1.2 core schema, so ``aspect_ratio: 16:9`` is the
  string ``"16:9"`` (not the YAML 1.1 sexagesimal number 969) and ``no`` stays a string;
- alias expansion is *bounded while parsing*: an alias adds the size of its anchor to a running
  total, and a file whose expanded size outgrows its written size tenfold (a "billion laughs")
  is refused at once, before anything walks it. Nesting depth is bounded too.

Problems that stop loading raise :class:`~runner.core.errors.ManifestError` with one located
problem;
duplicate keys are collected and returned so the later passes still run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import structlog
import yaml
from yaml import events as ev

from runner.core.errors import Location, ManifestError, Problem
from runner.manifest.nodes import NO_MARK, KeyPath, Mark, MDict, MList, format_path

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 64
ALIAS_FACTOR = 10  # expanded size may be at most this many times the written size ...
ALIAS_SLACK = 10_000  # ... plus this many nodes
MAX_BYTES = 256 * 1024 * 1024

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_Y + t for t in ("str", "int", "float", "bool", "null"))
_CONTAINER_TAGS = {_Y + "seq", _Y + "map", None, "!"}
_INT_RE = re.compile(r"[-+]?[0-9]+\Z")
_OCT_RE = re.compile(r"0o[0-7]+\Z")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_MAYBE_TYPED = frozenset("0123456789+-.~nNtTfF")

_log = structlog.get_logger()


class _Stop(Exception):
    """Loading cannot go on; carries the one problem to report."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _int(text: str) -> int | None:
    if _INT_RE.match(text):
        return int(text)
    if _OCT_RE.match(text):
        return int(text[2:], 8)
    if _HEX_RE.match(text):
        return int(text[2:], 16)
    return None


def resolve_plain(text: str) -> Any:
    """A plain (unquoted) scalar under the YAML 1.2 core schema."""
    if not text:
        return None
    if text[0] not in _MAYBE_TYPED:
        return text
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    number = _int(text)
    if number is not None:
        return number
    if _FLOAT_RE.match(text):
        return float(text)
    return text


class _Composer:
    """Turns parser events into MDict/MList/scalars, with every check of the module doc."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.written = 0
        self.expanded = 0
        # A frame: [container, key_in_parent, anchor, expanded_at_start, pending_key,
        #           pending_key_mark, merges]
        self.stack: list[list[Any]] = []
        self.root: Any = None
        self.have_root = False

    # -- helpers ---------------------------------------------------------------------------
    def loc(self, mark: Mark) -> Location:
        return Location(self.file, mark[0], mark[1])

    def path(self) -> KeyPath:
        steps: list[str | int] = []
        for frame in self.stack[1:]:
            steps.append(frame[1])
        return tuple(steps)

    def child_key(self) -> str | int:
        """The key (or index) the next value gets in the innermost container."""
        if not self.stack:
            return ""
        top = self.stack[-1]
        container = top[0]
        if isinstance(container, MDict):
            return top[4] if isinstance(top[4], str) else "?"
        return len(container)

    def stop(self, mark: Mark, message: str, extra: str | int | None = None) -> _Stop:
        path = self.path() + ((extra,) if extra is not None else ())
        return _Stop(Problem(self.loc(mark), format_path(path), message))

    # -- events ----------------------------------------------------------------------------
    def add(self, value: Any, mark: Mark) -> None:
        """Attach a finished value to the innermost container (or make it the root)."""
        if not self.stack:
            self.root = value
            self.have_root = True
            return
        top = self.stack[-1]
        container = top[0]
        if isinstance(container, MList):
            container.append(value)
            container.item_marks.append(mark)
            return
        assert isinstance(container, MDict)
        pending = top[4]
        if pending is _NO_KEY:
            raise self.stop(mark, "a key must be a plain name, not a list or a mapping; "
                                  "write it as `name: value`")
        top[4] = _NO_KEY
        if pending is _MERGE:
            self.merge(top, value, mark)
            return
        if pending in container.key_marks:
            first = container.key_marks[pending]
            self.problems.append(Problem(
                self.loc(top[5]), format_path((*self.path(), pending)),
                f"duplicate key '{pending}' (first at line {first[0]}); keep only one of them"))
            return
        container[pending] = value
        container.key_marks[pending] = top[5]
        container.value_marks[pending] = mark

    def merge(self, frame: list[Any], value: Any, mark: Mark) -> None:
        sources = value if isinstance(value, MList) else [value]
        for source in sources:
            if not isinstance(source, MDict):
                raise self.stop(mark, "a merge key '<<' takes a mapping or a list of mappings",
                                "<<")
            frame[6].append(source)

    def scalar(self, event: ev.ScalarEvent) -> Any:
        tag = event.tag
        text: str = event.value
        if tag is None or tag == "!":
            if tag is None and event.implicit[0]:
                return resolve_plain(text)
            return text
        if tag == _STR:
            return text
        mark = _mark(event)
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            value = resolve_plain(text)
            wanted: Any = {_INT: int, _FLOAT: (int, float), _BOOL: bool, _NULL: type(None)}[tag]
            if isinstance(value, wanted) and not (tag != _BOOL and isinstance(value, bool)):
                return float(value) if tag == _FLOAT else value
            raise self.stop(mark, f"{text!r} is not a valid {tag[len(_Y):]}",
                            self.child_key())
        raise self.stop(mark, _tag_message(tag), self.child_key())

    def start(self, container: Any, event: Any) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise _Stop(Problem(self.loc(_mark(event)), "", f"nested deeper than {MAX_DEPTH} "
                                "levels; a manifest is never this deep"))
        if event.tag not in _CONTAINER_TAGS:
            raise self.stop(_mark(event), _tag_message(event.tag), self.child_key())
        anchor = event.anchor
        if anchor is not None:
            self.open_anchors.add(anchor)
        self.stack.append([container, self.child_key(), anchor, self.expanded, _NO_KEY, None,
                           [] if isinstance(container, MDict) else None])

    def end(self) -> None:
        frame = self.stack.pop()
        container = frame[0]
        if isinstance(container, MDict) and frame[6]:
            for source in frame[6]:
                for key, value in source.items():
                    if key not in container:
                        container[key] = value
                        container.key_marks[key] = source.key_marks.get(key, NO_MARK)
                        container.value_marks[key] = source.value_marks.get(key, NO_MARK)
        anchor = frame[2]
        if anchor is not None:
            self.open_anchors.discard(anchor)
            self.anchors[anchor] = (container, self.expanded - frame[3])
        self.add(container, container.mark)

    def alias(self, event: ev.AliasEvent) -> None:
        mark = _mark(event)
        name = event.anchor
        if name in self.open_anchors:
            raise self.stop(mark, f"alias *{name} refers to a node that contains it; "
                                  "recursive data cannot be a manifest", self.child_key())
        if name not in self.anchors:
            raise self.stop(mark, f"alias *{name} has no anchor &{name} before it",
                            self.child_key())
        value, size = self.anchors[name]
        self.expanded += size
        if self.expanded > ALIAS_FACTOR * self.written + ALIAS_SLACK:
            raise self.stop(mark, "aliases expand this file far beyond its written size "
                                  "(a 'billion laughs' file?); write the data out instead of "
                                  "nesting aliases", self.child_key())
        if self.stack and isinstance(self.stack[-1][0], MDict) and self.stack[-1][4] is _NO_KEY:
            raise self.stop(mark, "an alias cannot be used as a key")
        self.add(value, mark)

    def feed(self, event: Any) -> None:
        kind = type(event)
        self.written += 1
        self.expanded += 1
        if kind is _SCALAR:
            stack = self.stack
            top = stack[-1] if stack else None
            if (top is not None and type(top[0]) is MList and event.tag is None
                    and event.anchor is None):
                # The common case in a list, inlined: a plain item.
                start = event.start_mark
                text = event.value
                top[0].append(resolve_plain(text) if event.implicit[0] else text)
                top[0].item_marks.append((start.line + 1, start.column + 1))
                return
            if top is not None and type(top[0]) is MDict:
                start = event.start_mark
                mark = (start.line + 1, start.column + 1)
                key = top[4]
                if key is _NO_KEY:
                    if event.tag not in (None, "!", _STR):
                        raise self.stop(mark, _tag_message(event.tag))
                    # A plain `<<` is a merge key; a quoted one is an ordinary key.
                    merge = event.value == "<<" and event.implicit[0] and event.tag is None
                    top[4] = _MERGE if merge else event.value
                    top[5] = mark
                    return
                container = top[0]
                if (event.tag is None and event.anchor is None and key is not _MERGE
                        and key not in container.key_marks):
                    # The common case, inlined: a plain value under a new key.
                    text = event.value
                    container[key] = resolve_plain(text) if event.implicit[0] else text
                    container.key_marks[key] = top[5]
                    container.value_marks[key] = mark
                    top[4] = _NO_KEY
                    return
            value = self.scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self.add(value, _mark(event))
        elif kind is ev.MappingStartEvent:
            self.start(MDict(_mark(event)), event)
        elif kind is ev.SequenceStartEvent:
            self.start(MList(_mark(event)), event)
        elif kind is ev.MappingEndEvent or kind is ev.SequenceEndEvent:
            self.end()
        elif kind is ev.AliasEvent:
            self.alias(event)
        elif kind is ev.DocumentStartEvent and self.have_root:
            raise self.stop(_mark(event), "holds more than one YAML document ('---'); "
                                          "a manifest is one document")


_NO_KEY: Any = object()
_MERGE: Any = object()
_SCALAR = ev.ScalarEvent


def _mark(event: Any) -> Mark:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1)


def _tag_message(tag: str | None) -> str:
    shown = f"!!{tag[len(_Y):]}" if tag and tag.startswith(_Y) else str(tag)
    return (f"YAML tag '{shown}' is not allowed: a manifest holds plain data only "
            "(strings, numbers, booleans, lists, mappings); remove the tag")


def _fatal(file: str, message: str, mark: Mark = NO_MARK) -> ManifestError:
    return ManifestError([Problem(Location(file, mark[0], mark[1]), "", message)])


def read_text(path: Path, file: str) -> str:
    """The file's text, or a located refusal: missing, a directory, empty, binary, not UTF-8."""
    try:
        if path.is_dir():
            raise _fatal(file, "is a directory, not a manifest file; give the path of a .yaml file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _fatal(file, f"is {size} bytes; a manifest is at most {MAX_BYTES} bytes")
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fatal(file, "no such file; check the path") from None
    except PermissionError:
        raise _fatal(file, "cannot be read (permission denied); check its permissions") from None
    except OSError as exc:
        raise _fatal(file, f"cannot be read: {exc.strerror or exc}") from None
    if not data:
        raise _fatal(file, "is empty (0 bytes); a manifest needs at least version, name and shots")
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise _fatal(file, f"is a binary file (NUL byte at offset {nul}), not a YAML manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fatal(file, f"is not UTF-8 text (bad byte at offset {exc.start}); save the "
                           "manifest as UTF-8", (line, column)) from None


def _syntax_message(text: str, exc: yaml.MarkedYAMLError) -> tuple[Mark, str]:
    mark = exc.problem_mark or exc.context_mark
    where: Mark = (mark.line + 1, mark.column + 1) if mark is not None else NO_MARK
    problem = (exc.problem or "").strip()
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines):
        line = lines[mark.line]
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent or line[mark.column : mark.column + 1] == "\t":
            column = indent.index("\t") if "\t" in indent else mark.column
            return ((mark.line + 1, column + 1),
                    "a tab is used for indentation; YAML allows only spaces: "
                    "replace the tab with spaces")
    context = (exc.context or "").strip()
    detail = f"{problem} ({context})" if context and context != problem else problem
    return where, f"YAML syntax error: {detail or 'cannot parse'}; fix the YAML at this point"


def parse(text: str, file: str) -> tuple[Any, list[Problem]]:
    """The data of ``text`` and the non-fatal problems found (duplicate keys).

    Raises :class:`ManifestError` for anything that stops loading.
    """
    composer = _Composer(file)
    loader = _Parser(text)
    try:
        while True:
            event = loader.get_event()
            if event is None or type(event) is ev.StreamEndEvent:
                break
            composer.feed(event)
    except _Stop as stop:
        raise ManifestError([stop.problem]) from None
    except yaml.MarkedYAMLError as exc:
        where, message = _syntax_message(text, exc)
        raise _fatal(file, message, where) from None
    except yaml.YAMLError as exc:
        raise _fatal(file, f"cannot be read as YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()
    return composer.root, composer.problems


def load_yaml(path: Path | str, file: str | None = None) -> tuple[MDict, list[Problem]]:
    """Load a manifest's YAML: the root mapping and the non-fatal problems found.

    ``file`` is the name used in messages (default: the path as given).
    """
    path = Path(path)
    name = file if file is not None else str(path)
    text = read_text(path, name)
    root, problems = parse(text, name)
    if root is None:
        raise _fatal(name, "has no content (only comments or blank lines); a manifest needs "
                           "at least version, name and shots")
    if not isinstance(root, MDict):
        got = "a list" if isinstance(root, MList) else f"the single value {str(root)[:40]!r}"
        mark = getattr(root, "mark", (1, 1))
        raise _fatal(name, f"the top level must be a mapping (version: 1, name: ..., shots: "
                           f"[...]), not {got}", mark)
    _log.debug("manifest_loaded", file=name, nodes=len(root))
    return root, problems
