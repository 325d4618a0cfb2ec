"""Re-estimating linkage's model on the trust's own data, and which model is in force.

The trust starts with the shipped model (:func:`trust.linkage.model.default_model`). An operator
re-estimates it on the linked records (:func:`estimate_on_store`: the sealed fields of every
linked record, opened in memory only, through the same EM as batch linkage, seeded from the model
in force) and adopts the result (:func:`adopt`, a ``LinkModelAdopted`` event). The resolver links
with the newest adopted model (:func:`model_in_force`); decisions made before keep the version
they name — re-linking them under the new model is a separate step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from trust.linkage.comparison import Comparison
from trust.linkage.errors import LinkageError
from trust.linkage.linker import train
from trust.linkage.model import Estimation, MatchModel, default_model
from trust.linkage.record import prepare
from trust.linkage.resolver import Resolver
from trust.linkage.review import OPERATOR
from trust.linkage.settings import LinkageSettings
from trust.store.events import LinkModelAdopted, new_event_id
from trust.store.eventstore import EventStore
from trust.store.tables import link_features as _features
from trust.store.tables import stored_events as _events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Estimate:
    """A model estimated on the trust's linked records, not yet adopted."""

    model: MatchModel
    estimation: Estimation
    records: int


def model_in_force(
    store: EventStore, comparisons: Sequence[Comparison] | None = None
) -> MatchModel:
    """The newest adopted model, or the shipped one if none was adopted — or if the adopted one
    was estimated for other comparisons than ``comparisons`` (default: the default settings'),
    as after an upgrade that added a comparison: the trust then decides with the shipped model
    (logged) until an operator adopts a new estimate (``tiptrust link train --adopt``)."""
    with store.engine.connect() as conn:
        seq = conn.execute(
            select(_events.c.seq)
            .where(_events.c.event_type == LinkModelAdopted.event_type)
            .order_by(_events.c.seq.desc())
            .limit(1)
        ).scalar()
    if seq is None:
        return default_model()
    ((_, event),) = store.read_types({LinkModelAdopted.event_type}, int(seq) - 1, int(seq), 1)
    assert isinstance(event, LinkModelAdopted)
    adopted = MatchModel.from_dict(event.model)
    try:
        adopted.check_fits(LinkageSettings().comparisons if comparisons is None else comparisons)
    except LinkageError:
        log.warning(
            "linkage.model_outdated adopted=%s: estimated for other comparisons; deciding with "
            "the shipped model until a new estimate is adopted",
            adopted.version,
        )
        return default_model()
    return adopted


def estimate_on_store(store: EventStore, resolver: Resolver) -> Estimate:
    """EM on every linked record's fields (opened in memory; erased persons are left out),
    seeded from the model in force (its ``u`` kept)."""
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(_features))]
    resolver.vault.warm(r["person_key_id"] for r in rows)
    records = []
    for row in rows:
        opened = resolver.open_features(row)
        if opened is not None:
            records.append(prepare(opened))
    training = train(
        resolver.linker.settings, records, resolver.linker.hasher, seed_model=resolver.linker.model
    )
    return Estimate(training.linker.model, training.estimation, len(records))


def adopt(store: EventStore, estimate: Estimate, operator: str) -> LinkModelAdopted:
    """Record the estimate as the model in force from now on."""
    event = LinkModelAdopted(
        event_id=new_event_id(),
        model=estimate.model.to_dict(),
        trained_on_records=estimate.records,
        operator=operator,
        adopted_at_ms=int(time.time() * 1000),
    )
    store.append([event], None, OPERATOR)
    return event
