"""Diagnostics: event-code logging for the composition root, and a filter no value gets through.

Library modules log an event code, then ``key=value`` pairs of codes and positions, with the
values as arguments (never formatted into the message):

    log.info("ingest.rejected reason=%s topic=%s partition=%d offset=%d", reason, topic, p, o)

:func:`configure_logging` (called once at start-up) installs one stderr handler with a
:class:`RedactingFilter`. Every record that reaches it is rendered by the filter, and:

* An argument passes only if it has a safe shape: ``None``, a bool, an int or float, an enum
  member whose value passes, a class (shown by name), or a string that is a code or name
  (``[a-z][a-z0-9_-]{0,62}``: reason codes, source, consumer and stream names), a topic
  (``tip.inbound.police``), a UUID, a hex digest or key id (16-128 lowercase hex digits, at
  least one a-f), a field path (``$.victims[0].sex``), or the name of an exception class. Anything
  else (other strings, bytes, dates, paths, containers, objects) becomes ``<redacted>``. A
  lowercase word passes as a name, so never log free text or a person's attribute, even one
  that looks like a code; the filter is the last line, not the first.
* The message of a module of this project (``schemas``, ``transport``, ``producers``, ``trust``,
  ``consumers``, ``tiptrust``, ``infra``, ``benchmarks``) must be an event code with
  ``key=%s``-style pairs (``key=literal`` with a lowercase literal is allowed too); any other
  message, such as an f-string with a value in it, is replaced by ``<redacted: not an event
  code>``. Messages of other libraries are kept (their arguments are still redacted): they are
  their authors' text, e.g. SQL with ``?`` placeholders whose parameters are arguments.
* An exception keeps its class (and its ``code`` attribute when that is a safe code) and the
  traceback's frames (file, line, function, source line), for each exception of a chain; its
  message, its notes and any ``ExceptionGroup`` members' messages are dropped: exception texts
  may quote values (``KeyError('Maria')``). A message that is not a ``str`` is redacted whole.

``json=True`` writes one JSON object per line: ``time``, ``level``, ``logger``, ``message``,
``event`` and ``fields`` (the ``key=value`` pairs, when the message is an event code), and
``exception`` (the redacted traceback) when there is one.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
import re
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import IO, Any

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "is_safe_value",
    "redacted_exception",
]

REDACTED = "<redacted>"
NOT_AN_EVENT = "<redacted: not an event code>"
OUR_PACKAGES = (
    "schemas",
    "transport",
    "producers",
    "trust",
    "consumers",
    "tiptrust",
    "infra",
    "benchmarks",
)

_SAFE_STRING = re.compile(
    r"""
      [a-z][a-z0-9_-]{0,62}                                         # codes and names
    | tip(\.[a-z][a-z0-9_-]{1,62}){2,3}                             # topics
    | [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}  # UUIDs
    | (?=[0-9]*[a-f])[0-9a-f]{16,128}                               # digests, key ids
    | \$(\.[A-Za-z_][A-Za-z0-9_]{0,62}|\[[0-9]{0,9}\]){0,32}        # field paths
    """,
    re.VERBOSE,
)
_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]{1,79}")
_EVENT = re.compile(
    r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+"
    r"( [a-z][a-z0-9_]*=(%(\([a-z_][a-z0-9_]*\))?(\.[0-9]+)?[sdifr]|[a-z0-9_.:-]+))*"
)
_PAIR = re.compile(r" ([a-z][a-z0-9_]*)=(\S+)")
_CONVERSION = re.compile(r"%(\([^)]*\))?[-#0 +]*(\*|[0-9]+)?(\.(\*|[0-9]+))?[hlL]?[a-zA-Z%]")
_exception_names: set[str] = set()


def _refresh_exception_names() -> None:
    stack: list[type[BaseException]] = [BaseException]
    seen: set[type[BaseException]] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        _exception_names.add(cls.__name__)
        try:
            stack.extend(cls.__subclasses__())
        except TypeError:  # a metaclass without a bound __subclasses__
            continue


def _is_exception_name(text: str) -> bool:
    if not _CAMEL.fullmatch(text):
        return False
    if text not in _exception_names:
        _refresh_exception_names()  # a class defined since the last look
    return text in _exception_names


def is_safe_value(value: object) -> bool:
    """True if ``value`` may appear in a log line as it is (see the module notes)."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Enum):
        return is_safe_value(value.value)
    if isinstance(value, type):
        return True
    if isinstance(value, str):
        return bool(_SAFE_STRING.fullmatch(value)) or _is_exception_name(value)
    return False


def _shown(value: object) -> object:
    """``value`` as the log line may show it: itself, its enum value, its class name, or
    :data:`REDACTED`."""
    if not is_safe_value(value):
        return REDACTED
    if isinstance(value, Enum):
        return _shown(value.value)
    if isinstance(value, type):
        return value.__name__
    return value


def _is_ours(logger_name: str) -> bool:
    return logger_name.partition(".")[0] in OUR_PACKAGES


def _render(record: logging.LogRecord) -> str:
    msg = record.msg
    if not isinstance(msg, str):
        return REDACTED
    if _is_ours(record.name) and not _EVENT.fullmatch(msg):
        return NOT_AN_EVENT
    args = record.args
    if not args:
        return msg
    safe: Mapping[str, object] | tuple[object, ...]
    if isinstance(args, Mapping) and "%(" in msg:
        safe = {str(k): _shown(v) for k, v in args.items()}
    elif isinstance(args, Mapping):  # one dict for a plain %s: its keys may be values too
        safe = (REDACTED,)
    else:
        safe = tuple(_shown(a) for a in args)
    try:
        return msg % safe
    except (TypeError, ValueError, KeyError):
        pass
    # A conversion met a value it cannot take (e.g. %d and <redacted>): show every value as %s.
    loose = _CONVERSION.sub(lambda m: "%%" if m.group(0) == "%%" else f"%{m.group(1) or ''}s", msg)
    try:
        return loose % safe
    except (TypeError, ValueError, KeyError):
        return f"{msg} {REDACTED}"


def _exception_label(exc: BaseException) -> str:
    cls = type(exc)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    code = getattr(exc, "code", None)
    if isinstance(code, str) and _SAFE_STRING.fullmatch(code):
        name += f" (code={code})"
    if isinstance(exc, BaseExceptionGroup):
        members = ", ".join(type(e).__name__ for e in exc.exceptions)
        name += f" [members: {members}]"
    return name


def redacted_exception(exc: BaseException) -> str:
    """A traceback of ``exc`` and its chain with class names and frames, but no message."""
    lines: list[str] = []
    seen: set[int] = set()

    def walk(e: BaseException) -> None:
        seen.add(id(e))
        if e.__cause__ is not None and id(e.__cause__) not in seen:
            walk(e.__cause__)
            lines.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
            )
        elif (
            e.__context__ is not None
            and not e.__suppress_context__
            and id(e.__context__) not in seen
        ):
            walk(e.__context__)
            lines.append(
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if e.__traceback__ is not None:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_list(traceback.extract_tb(e.__traceback__)))
        lines.append(f"{_exception_label(e)}: {REDACTED}\n")

    walk(exc)
    return "".join(lines).rstrip("\n")


class RedactingFilter(logging.Filter):
    """Renders each record safely in place: message with safe arguments only, and exceptions
    without their messages (see the module notes). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_tiptrust_redacted", False):
            return True
        record.msg = _render(record)
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redacted_exception(record.exc_info[1])
        elif record.exc_text:
            record.exc_text = REDACTED  # formatted earlier by a handler without this filter
        record.exc_info = None
        setattr(record, "_tiptrust_redacted", True)  # noqa: B010 (not a declared attribute)
        return True


class TextFormatter(logging.Formatter):
    """``time level logger message`` lines; exceptions are redacted even without the filter."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatException(self, ei: Any) -> str:
        exc = ei[1] if isinstance(ei, tuple) else None
        return redacted_exception(exc) if isinstance(exc, BaseException) else REDACTED


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module notes)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        event = message.split(" ", 1)[0]
        if re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", event):
            out["event"] = event
            out["fields"] = dict(_PAIR.findall(message[len(event) :]))
        if record.exc_info and record.exc_info[1] is not None:
            out["exception"] = redacted_exception(record.exc_info[1])
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return jsonlib.dumps(out, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (so a second call replaces it)."""


def configure_logging(
    level: str | int = "warning", json: bool = False, *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send diagnostics at ``level`` and above to ``stream`` (stderr), redacted; idempotent.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error`` (any case), or a ``logging`` level.
        json: One JSON object per line instead of text lines.
        stream: Where to write; default ``sys.stderr`` at the time of the call.

    Returns:
        The installed handler (it replaces one installed by an earlier call).
    """
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
