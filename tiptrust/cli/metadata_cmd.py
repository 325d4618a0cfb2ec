"""`tiptrust metadata …`: the metadata the manual's annex asks to travel with the data.

* ``ddi --source S``: the trust's description of what source S has submitted (box A.5.1:
  title, file name, organisation, date submitted, indicators, number of cases, contact) as a
  DDI-Codebook 2.5 document, from the store's counts and the agreement in force; counts only.
* ``ddi --release FILE``: a consumer's description of a release it holds (the ``NNNNNN.json``
  ``tiptrust subscribe`` wrote) as DDI-Codebook; needs no store.
* ``structure``: the case record's fields and code lists, from the wire schema.
* ``admin``: per source, the agreement in force — version, purposes, retention, classification.

Like the other commands that only read the trust (``agreement show``, ``trust status``), the
trust-side ones open the store and take no token: they show no record and no value of one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from consumers.ddi import release_ddi
from consumers.writers import atomic_write
from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, fail, home_of, out, valid_name
from tiptrust.cli.consume import held_release
from trust.metadata.administrative import classification, terms_in_force
from trust.metadata.structure import structure as case_structure
from trust.metadata.submission import MetadataError, describe_submission, submission_ddi
from trust.store.eventstore import open_store

app = typer.Typer(
    help="Metadata: DDI-Codebook of a source's submission or a release; structure; terms.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON")]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _emit(xml: bytes, out_file: Path | None) -> None:
    if out_file is None:
        print(xml.decode("utf-8"), end="")
        return
    try:
        atomic_write(out_file, xml)
    except OSError as exc:
        raise fail(f"cannot write {out_file}: {exc.strerror}", Exit.USAGE) from None
    out.print(f"wrote {out_file}")


def _source_ddi(h_given: str | None, store: str | None, source: str) -> bytes:
    h = home_of(h_given)
    event_store = open_store(h.store_url(store))
    try:
        agreements = wiring.trust_agreements(h, event_store)
        agreement = agreements.in_force_at_or_none(source, _now_ms())
        submission = describe_submission(event_store, source, agreement)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except MetadataError as exc:
        raise fail(f"{exc} ({exc.code})", Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    return submission_ddi(submission)


def _release_ddi(release_file: Path, trust_key: Path | None) -> bytes:
    return release_ddi(held_release(release_file, trust_key))


@app.command("ddi")
def ddi(
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            callback=lambda v: None if v is None else valid_name(v),
            help="Describe what this source submitted (trust side: reads the store)",
        ),
    ] = None,
    release_file: Annotated[
        Path | None,
        typer.Option(
            "--release",
            help="Describe this release, a NNNNNN.json written by `tiptrust subscribe` "
            "(consumer side: no store)",
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the XML here [default: standard output]")
    ] = None,
    trust_key: Annotated[
        Path | None,
        typer.Option(
            "--trust-key",
            help="With --release: verify its signature with this trust release public key first",
        ),
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """A DDI-Codebook 2.5 document: of a source's submission (--source) or of a release
    (--release). Box A.5.1's items go where DDI puts them; counts and labels only, never a
    record's value.

    Exit codes: 0 written; 2 neither or both of --source and --release, or no such file;
    5 the trust holds nothing of the source; 6 not a release, or its signature fails.
    """
    if (source is None) == (release_file is None):
        raise fail("give one of --source or --release", Exit.USAGE)
    if source is not None:
        xml = _source_ddi(home, store, source)
    else:
        assert release_file is not None
        xml = _release_ddi(release_file, trust_key)
    _emit(xml, out_file)


@app.command("structure")
def structure(as_json: JsonOpt = False) -> None:
    """The case record's fields (path, type, optional, list) and the code lists they take,
    with HTCDS labels where HTCDS has the list, read from the wire schema."""
    shape = case_structure()
    if as_json:
        print(json.dumps(shape.to_json()))
        return
    t = Table("field", "type", "optional", "list", title=f"{shape.schema} fields")
    for f in shape.fields:
        t.add_row(f.path, f.type, "yes" if f.optional else "", "yes" if f.repeated else "")
    out.print(t)
    lists = Table("code list", "codes", "labels from", title="code lists")
    for c in shape.code_lists.values():
        shown = ", ".join(c.codes[:8]) + (f" … ({len(c.codes)})" if len(c.codes) > 8 else "")
        lists.add_row(c.name, shown, c.labelled_by or "-")
    out.print(lists)


@app.command("admin")
def admin(
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            callback=lambda v: None if v is None else valid_name(v),
            help="Only this source [default: every source with an agreement]",
        ),
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per source, the agreement in force now: version, purposes allowed per consumer and
    forbidden, retention, field classification (the defaults and the agreement's own)."""
    h = home_of(home)
    event_store = open_store(h.store_url(store))
    try:
        agreements = wiring.trust_agreements(h, event_store)
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    finally:
        event_store.close()
    terms = terms_in_force(agreements, _now_ms(), None if source is None else [source])
    rows = [t.to_json() for t in terms]
    if as_json:
        print(json.dumps(rows))
        return
    if not terms:
        out.print("the trust holds no agreement")
        return
    t = Table(
        "source", "version", "purposes", "forbidden", "retention", "classification", title="terms"
    )
    for term in terms:
        a = term.agreement
        if a is None:
            t.add_row(term.source_id, "none in force", "-", "-", "-", "-")
            continue
        t.add_row(
            term.source_id,
            str(a.version),
            "\n".join(f"{g.consumer}: {', '.join(g.purposes)}" for g in a.releases_allowed)
            or "none",
            ", ".join(a.purposes_forbidden) or "-",
            a.retention.describe() if a.retention else "kept until an agreement says otherwise",
            "\n".join(f"{p}: {level}" for p, level in classification(a).items()),
        )
    out.print(t)
