"""A release a consumer holds, described as a DDI-Codebook 2.5 document.

A ministry that files a release in its statistical catalogue needs the release's description in
the format the catalogue reads — the manual's annex on metadata names DDI-Codebook — not only
the ``NNNNNN.metadata.json`` the subscriber writes beside it. Everything comes from the signed
release itself (the ``NNNNNN.json``): its title, period, unit, the sources it may name (the
trust names only those whose agreement allows it, and gives the number of all), the disclosure
method and k, the counting rule and the caveat. Each dimension becomes one DDI ``var`` whose
categories are the codes the release uses, each with the label the release gives it, so a
catalogue shows "Sexual exploitation" where the CSV says ``SexualExploitation``. No number of
the table goes into the description; the data file it describes is the release's CSV.
"""

from __future__ import annotations

import datetime as dt

from consumers.writers import TOTAL, release_metadata
from schemas.ddi import Category, Codebook, DataFile, Variable, codebook_xml
from schemas.release import Release

PRODUCER = "tiptrust data trust (signed release)"


def dimension_codes(release: Release, dimension: str) -> list[str]:
    """The codes of ``dimension`` a reader meets in the release: those it labels, in the
    release's order, then any other code an aggregate uses (a hierarchy's parent, a code
    without a label), in their first use's order."""
    codes = list(release.labels.get(dimension, {}))
    seen = set(codes)
    for parent, children in release.hierarchies.get(dimension, {}).items():
        for code in (parent, *children):
            if code not in seen:
                seen.add(code)
                codes.append(code)
    for a in release.aggregates:
        if dimension in a.dimensions:
            code = a.key[a.dimensions.index(dimension)]
            if code not in seen:
                seen.add(code)
                codes.append(code)
    return codes


def _dimension(release: Release, dimension: str, meaning: str | None) -> Variable:
    labels = release.labels.get(dimension, {})
    notes = [meaning or f"'{TOTAL}' in the CSV: the aggregate is not broken down by {dimension}"]
    for parent, children in release.hierarchies.get(dimension, {}).items():
        notes.append(f"{parent} is the sum of {', '.join(children)}")
    return Variable(
        name=dimension,
        label=dimension.replace("_", " "),
        categories=tuple(
            Category(code, labels.get(code)) for code in dimension_codes(release, dimension)
        ),
        notes=tuple(notes),
    )


def release_codebook(release: Release) -> Codebook:
    """``release`` as a DDI-Codebook: one ``var`` per dimension (its categories and labels) and
    one for the published value."""
    described = release_metadata(release)
    method = described["method"]
    params = ", ".join(f"{k}={v}" for k, v in method["parameters"].items())
    notes = [
        f"Counting rule: {described['counting_rule']}" if described["counting_rule"] else "",
        f"Caveat: {release.caveat}",
        f"Disclosure control: {release.method} ({params}); {described['suppressed']}",
        f"Sources counted: {release.source_count}"
        + (f"; named: {', '.join(release.sources)}" if release.sources else "; none named"),
        f"Stream {release.stream}, sequence {release.sequence}, release {release.release_id}"
        + (f"; signed with key {release.signing_key_id}" if release.signing_key_id else ""),
    ]
    value = Variable(
        name="value",
        label=release.unit,
        notes=(str(described["columns"].get("value", "")),),
        continuous=True,
    )
    issued = dt.datetime.fromtimestamp(release.issued_at_ms / 1000, dt.UTC).date()
    return Codebook(
        title=release.title,
        identifier=f"tiptrust-release-{release.stream}-{release.sequence:06d}",
        file=DataFile(
            name=described["describes"][0],
            content=f"{release.title}: cells, margins and total by "
            + (" x ".join(release.dimensions) or "nothing (a total)"),
            cases=len(release.aggregates),
        ),
        authors=release.sources,
        producer=PRODUCER,
        distributed=issued,
        period_start=None if release.period_start is None else str(release.period_start),
        period_end=None if release.period_end is None else str(release.period_end),
        unit=release.unit,
        notes=tuple(n for n in notes if n),
        variables=(
            *(_dimension(release, d, described["columns"].get(d)) for d in release.dimensions),
            value,
        ),
    )


def release_ddi(release: Release) -> bytes:
    """``release`` as DDI-Codebook 2.5 XML."""
    return codebook_xml(release_codebook(release))
