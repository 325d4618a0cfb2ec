"""Diagnostics: event codes through, values never (the redaction filter), text and JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.errors import ReasonCode
from tiptrust.logs import (
    NOT_AN_EVENT,
    REDACTED,
    RedactingFilter,
    configure_logging,
    is_safe_value,
    redacted_exception,
)
from transport.errors import DeliveryFailed

SECRET = "Maria Lopez, born 1990-04-12"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A stream with the tiptrust handler on it; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging("debug", stream=out)
    try:
        yield out
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def last_message(out: io.StringIO) -> str:
    line = out.getvalue().strip().splitlines()[-1]
    return line.split(" ", 4)[4]  # date time level logger message


def render(msg: str, *args: object, logger: str = "trust.ingest.worker") -> str:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, msg, args, None)
    RedactingFilter().filter(record)
    return record.getMessage()


# --- arguments ---------------------------------------------------------------------------


def test_event_codes_and_positions_pass(stream: io.StringIO) -> None:
    log = logging.getLogger("trust.ingest.worker")
    log.info(
        "ingest.rejected reason=%s topic=%s partition=%d offset=%d",
        ReasonCode.BAD_SIGNATURE,
        "tip.inbound.police",
        3,
        1207,
    )
    assert last_message(stream) == (
        "ingest.rejected reason=bad_signature topic=tip.inbound.police partition=3 offset=1207"
    )


@pytest.mark.parametrize(
    "value",
    [
        "police",
        "bad_signature",
        "tip.release.ministry.victims_by_sex_age_form",
        "3f2b8c1e-9d4a-4c7e-8f00-1a2b3c4d5e6f",
        "a3f9c2e1b4d5f607",
        "9" * 15 + "a" + "0" * 48,
        "$.victims[0].sex",
        "$.victims[].identifiers.name",
        "KeyError",
        "DeliveryFailed",
        None,
        True,
        42,
        0.25,
        ReasonCode.DUPLICATE_EVENT,
    ],
)
def test_safe_shapes_pass(value: object) -> None:
    assert is_safe_value(value)
    assert render("x.y value=%s", value) == f"x.y value={value}" or isinstance(value, Enum)


@pytest.mark.parametrize(
    "value",
    [
        "Maria",
        "Maria Lopez",
        "maria@example.org",
        "1990-04-12",
        "AB123456",
        "1234567890123456",  # a 16-digit national id is not a hex digest
        "tip.inbound.police and more",
        "../../etc/passwd",
        "",
        b"sealed bytes",
        date(1990, 4, 12),
        Path("/exports/maria.csv"),
        {"name": "Maria"},
        ["Maria"],
        ValueError("Maria"),
        float("nan"),
    ],
)
def test_anything_else_is_redacted(value: object) -> None:
    assert not is_safe_value(value)
    assert render("x.y value=%s", value) == f"x.y value={REDACTED}"


def test_a_conversion_that_cannot_take_the_redaction_still_renders(stream: io.StringIO) -> None:
    logging.getLogger("trust.x").info("x.y count=%d name=%s", "Maria", "police")
    assert last_message(stream) == f"x.y count={REDACTED} name=police"
    assert "Logging error" not in stream.getvalue()


def test_mapping_arguments_are_redacted_too() -> None:
    assert render("x.y a=%(a)s b=%(b)d", {"a": "Maria", "b": 7}) == f"x.y a={REDACTED} b=7"


def test_classes_are_shown_by_name() -> None:
    assert render("x.y error=%s", KeyError) == "x.y error=KeyError"


def test_our_modules_must_log_event_codes() -> None:
    name = "Maria"
    assert render(f"ingest.rejected name={name}") == NOT_AN_EVENT
    assert render("Rejected a record of Maria") == NOT_AN_EVENT
    assert render("ingest.caught_up") == "ingest.caught_up"
    assert render("ingest.run stage=ingest count=%d", 3) == "ingest.run stage=ingest count=3"


def test_other_libraries_keep_their_text_but_not_their_arguments() -> None:
    got = render("INSERT INTO person VALUES (?, ?) %s", ("Maria", 1990), logger="sqlalchemy")
    assert got == f"INSERT INTO person VALUES (?, ?) {REDACTED}"
    record = logging.LogRecord("alembic", logging.INFO, __file__, 1, ["Maria"], None, None)
    RedactingFilter().filter(record)
    assert record.getMessage() == REDACTED


def test_child_loggers_reach_the_filter_through_the_root_handler(stream: io.StringIO) -> None:
    logging.getLogger("consumers.subscriber.deep.child").warning("release.x who=%s", SECRET)
    assert SECRET not in stream.getvalue()
    assert last_message(stream) == f"release.x who={REDACTED}"


# --- exceptions --------------------------------------------------------------------------


PEOPLE = {SECRET: 1}


def _raise_chain() -> None:
    # (a traceback shows source lines: code, never the values it handled)
    try:
        PEOPLE[SECRET.upper()]
    except KeyError as exc:
        raise DeliveryFailed(f"could not send {SECRET}", failed=1) from exc


def test_exceptions_keep_class_code_and_frames_not_messages(stream: io.StringIO) -> None:
    try:
        _raise_chain()
    except DeliveryFailed:
        logging.getLogger("trust.x").exception("ingest.failed topic=%s", "tip.inbound.police")
    text = stream.getvalue()
    assert "Maria" not in text and "MARIA" not in text and SECRET not in text
    assert "transport.errors.DeliveryFailed (code=delivery_failed): <redacted>" in text
    assert "KeyError: <redacted>" in text
    assert "direct cause" in text
    assert "test_logs.py" in text and "in _raise_chain" in text


def test_exception_notes_and_group_members_are_dropped() -> None:
    inner = ValueError(SECRET)
    inner.add_note(f"note {SECRET}")
    group = ExceptionGroup(f"group {SECRET}", [inner, KeyError(SECRET)])
    text = redacted_exception(group)
    assert SECRET not in text
    assert "members: ValueError, KeyError" in text


def test_text_formatted_earlier_by_another_handler_is_replaced() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "x.y", (), None)
    record.exc_text = f"Traceback ... ValueError: {SECRET}"
    RedactingFilter().filter(record)
    assert record.exc_text == REDACTED


# --- formats and set-up ----------------------------------------------------------------------


def test_json_lines(stream: io.StringIO) -> None:
    configure_logging("info", json=True, stream=stream)
    try:
        raise ValueError(SECRET)
    except ValueError:
        logging.getLogger("trust.ingest.pipeline").warning(
            "ingest.step_failed error=%s topic=%s partition=%d offset=%d",
            "ValueError",
            "tip.inbound.ngo",
            0,
            5,
            exc_info=True,
        )
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["level"] == "warning" and line["logger"] == "trust.ingest.pipeline"
    assert line["event"] == "ingest.step_failed"
    assert line["fields"] == {
        "error": "ValueError",
        "topic": "tip.inbound.ngo",
        "partition": "0",
        "offset": "5",
    }
    assert "ValueError: <redacted>" in line["exception"]
    assert SECRET not in stream.getvalue()


def test_configure_logging_replaces_its_own_handler_and_sets_the_level(
    stream: io.StringIO,
) -> None:
    other = io.StringIO()
    configure_logging("error", stream=other)
    root = logging.getLogger()
    ours = [h for h in root.handlers if type(h).__name__ == "_Handler"]
    assert len(ours) == 1 and root.level == logging.ERROR
    logging.getLogger("trust.x").warning("x.quiet")
    logging.getLogger("trust.x").error("x.loud")
    assert "x.quiet" not in other.getvalue() and "x.loud" in other.getvalue()
    assert stream.getvalue() == ""


# --- the property: no value of a disallowed shape ever reaches the output ----------------------

values = st.text(min_size=1, max_size=40)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, json_lines=st.booleans())
def test_no_disallowed_string_reaches_the_output(
    stream: io.StringIO, value: str, json_lines: bool
) -> None:
    assume(not is_safe_value(value))
    configure_logging("info", json=json_lines, stream=stream)
    stream.seek(0)
    stream.truncate()
    template = "ingest.rejected reason=%s source=%s topic=%s partition=%d"
    logging.getLogger("trust.ingest.worker").info(
        template, value, "police", "tip.inbound.police", 1
    )
    expected = (
        f"ingest.rejected reason={REDACTED} source=police topic=tip.inbound.police partition=1"
    )
    out = stream.getvalue()
    message = json.loads(out)["message"] if json_lines else out.strip().split(" ", 4)[4]
    assert message == expected  # so the value is nowhere in it
    assert out.strip().endswith(expected) or json_lines


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_no_exception_message_reaches_the_output(stream: io.StringIO, value: str) -> None:
    marked = f"SECRET<{value}>"
    stream.seek(0)
    stream.truncate()
    try:
        raise RuntimeError(marked)
    except RuntimeError:
        logging.getLogger("trust.x").exception("x.failed")
    assert marked not in stream.getvalue()
    assert "RuntimeError: <redacted>" in stream.getvalue()
