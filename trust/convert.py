"""The one converter between the trust's typed objects and plain data (cattrs).

Events, agreements and every other boundary type of the trust are frozen dataclasses; this
converter turns them into JSON-safe dicts and back, with one rule per kind of value — dates as ISO
strings, bytes as base64 — instead of a hand-written ``to_dict``/``from_dict`` per class.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import cattrs


def _date(value: Any, _: type) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueError("a date, not a time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise ValueError("a date (YYYY-MM-DD)")


def _bytes(value: Any, _: type) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    raise ValueError("base64 text")


def make_converter(*, forbid_extra_keys: bool = False) -> cattrs.Converter:
    """A converter with the trust's value rules (``forbid_extra_keys`` for documents people
    write, where an unknown key is a mistake to report)."""
    c = cattrs.Converter(forbid_extra_keys=forbid_extra_keys)
    c.register_structure_hook(dt.date, _date)
    c.register_unstructure_hook(dt.date, lambda d: d.isoformat())
    c.register_structure_hook(bytes, _bytes)
    c.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))
    return c


converter = make_converter()
"""For stored events and other data the trust wrote itself."""
