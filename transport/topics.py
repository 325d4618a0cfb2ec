"""Topic names of the trust, in one place: inbound, rejected and release topics.

Releases are made per subscription (a consumer, a stream, a purpose), each on its own topic, so
a consumer's topic holds only what its subscription was allowed.
"""

from __future__ import annotations

import re

INBOUND_PREFIX = "tip.inbound."
REJECTED_PREFIX = "tip.rejected."
RELEASE_PREFIX = "tip.release."

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid source id or stream name, else raise ``ValueError``.

    Valid: a lowercase letter, then 1-62 of lowercase letters, digits, ``_`` or ``-``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid source id or stream name {name!r}: expected ^[a-z][a-z0-9_-]{{1,62}}$"
        )
    return name


def inbound(source_id: str) -> str:
    """Topic a source publishes its sealed batches to: ``tip.inbound.<source>``."""
    return INBOUND_PREFIX + validate_name(source_id)


def rejected(source_id: str) -> str:
    """Dead-letter topic for a source's rejected deliveries: ``tip.rejected.<source>``."""
    return REJECTED_PREFIX + validate_name(source_id)


def release(consumer: str, stream: str) -> str:
    """Topic of one subscription's releases: ``tip.release.<consumer>.<stream>``."""
    return f"{RELEASE_PREFIX}{validate_name(consumer)}.{validate_name(stream)}"


def source_of_inbound(topic: str) -> str:
    """The source id of an inbound topic; ``ValueError`` if ``topic`` is not one."""
    if not topic.startswith(INBOUND_PREFIX):
        raise ValueError(f"not an inbound topic: {topic!r} (expected prefix {INBOUND_PREFIX!r})")
    return validate_name(topic[len(INBOUND_PREFIX) :])
