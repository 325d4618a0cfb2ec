"""`tiptrust link …`: record linkage — which records are the same person.

``batch`` links CSV files. The other commands work on the trust's store: ``review`` lists, shows
and decides the records linkage left to an operator; ``why`` explains a person or a pair of
records (ids, comparison levels and weights — never a name, date of birth or document number);
``separate`` and ``join`` record an operator's verdict on two records outside any review, e.g. to
undo a wrong merge. Only ``review show --values`` prints identifying values, and every such view
is recorded in the store (``IdentifiersViewed``) before it is printed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from tiptrust import wiring
from tiptrust.cli.common import Exit, HomeOpt, StoreOpt, console, fail, home_of, out
from tiptrust.cli.principal_cmd import TokenOpt, acting
from tiptrust.home import Home
from trust.store.eventstore import EventStore, open_store

if TYPE_CHECKING:  # pandas, numpy and the string metrics load only when linking
    from trust.linkage.batch import BatchInput
    from trust.linkage.errors import LinkageError
    from trust.linkage.model import MatchModel
    from trust.linkage.resolver import Resolver
    from trust.linkage.review import MayLink, ReviewDetail
    from trust.store.events import VictimRef

app = typer.Typer(
    help="Link records of the same person: batch linkage of CSV files, explanations, review.",
    no_args_is_help=True,
)


@app.command()
def batch(
    inputs: Annotated[
        list[Path],
        typer.Option(
            "--input",
            help="A CSV file with columns id, given_name, surname, date_of_birth, sex, "
            "nationality, document_number [, address, postcode, age, age_year, event_year, "
            "forms]; repeat for several files",
        ),
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write id_l,id_r,probability (same person)")
    ],
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe",
            help="Also link records within each input (required with a single input)",
        ),
    ] = False,
    review_out: Annotated[
        Path | None,
        typer.Option("--review-out", help="Where to write the pairs left for review"),
    ] = None,
    upper: Annotated[
        float | None,
        typer.Option(
            "--upper", help="Match probability from which records are joined [default: 0.9]"
        ),
    ] = None,
    lower: Annotated[
        float | None,
        typer.Option(
            "--lower", help="Match probability from which a pair goes to review [default: 0.5]"
        ),
    ] = None,
    block_cap: Annotated[
        int | None,
        typer.Option(
            "--block-cap",
            min=2,
            help="Join a blocking key's block of more records than this through its refinements "
            "(sex, nationality, year; date of birth), as the trust's own linker looks records "
            "up: candidate pairs then grow with the records, not their square (for large files) "
            "[default: blocks of up to 1000 records joined whole]",
        ),
    ] = None,
) -> None:
    """Find the records of the same person in CSV files, by probabilistic record linkage.

    Writes one row per pair of records placed in the same person, with id_l < id_r and the
    pair's match probability (for a pair joined only through other records: the lowest
    probability on the path that joined them). With several inputs and no --dedupe, only pairs
    across inputs are linked. Pairs between --lower and --upper that were not joined are written
    to --review-out when given.

    Exit codes: 0 done; 2 bad input (missing column, unreadable date, repeated id …), named by
    file, row and column — never by value.
    """
    from trust.linkage.batch import link_batch, read_batch_csv, write_pairs
    from trust.linkage.errors import LinkageError
    from trust.linkage.settings import LinkageSettings

    try:
        defaults = LinkageSettings()
        settings = LinkageSettings(
            upper=defaults.upper if upper is None else upper,
            lower=defaults.lower if lower is None else lower,
            batch_block_cap=block_cap,
        )
        if len(inputs) == 1 and not dedupe:
            raise fail("one input can only be deduplicated: add --dedupe", Exit.USAGE)
        names = _display_names(inputs)
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]link batch[/bold] {task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("read", total=None)
            batches: list[BatchInput] = [
                read_batch_csv(path, name) for path, name in zip(inputs, names, strict=True)
            ]
            result = link_batch(
                batches,
                dedupe=dedupe,
                settings=settings,
                progress=lambda stage: progress.update(task, description=stage),
            )
            progress.update(task, description="write")
            write_pairs(out_path, result.pairs)
            if review_out is not None:
                write_pairs(review_out, result.review)
    except LinkageError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except OSError as exc:
        raise fail(
            f"cannot write the output: {(exc.strerror or 'error').lower()}", Exit.USAGE
        ) from None
    records = sum(len(b.records) for b in batches)
    out.print(
        f"{records} records, {len(result.clustering.persons)} persons; "
        f"{len(result.pairs)} same-person pairs written to {out_path}"
        + (f", {len(result.review)} for review to {review_out}" if review_out else "")
        + f"; model {result.linker.model_version}",
        highlight=False,
        soft_wrap=True,
    )


def _display_names(paths: list[Path]) -> list[str]:
    """File names, or full paths where two inputs share a name."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


# --- on the trust's store: review, why, separate, join ------------------------------------------

review_app = typer.Typer(
    help="The review queue: records linkage would not place alone, for an operator to decide.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

OperatorOpt = Annotated[
    str | None,
    typer.Option(
        "--operator",
        help="Who decides or views, as the store's audit trail names them: the principal of "
        "your token (the default; another name is refused)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON")]
PersonsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--person",
        help="A candidate person of the review (repeat for several) [default: accept the best "
        "candidate; reject every candidate]",
    ),
]
RECORD_SYNTAX = "SOURCE/CASE/VICTIM (ids, e.g. police/CR-17/v1)"
_MEANING = {
    "join": "the same person",
    "review": "a pair for review",
    "distinct": "different persons",
}


def _custodian(event_store: EventStore, token: str | None, operator: str | None, view: bool) -> str:
    """The custodian acting (their principal name is the operator the store records); a
    ``--operator`` that names someone else is refused."""
    from trust.stewardship.principals import Action

    action = Action.VIEW_IDENTIFIERS if view else Action.DECIDE_LINKS
    me = acting(event_store, token, action)
    if operator is not None and operator.strip() != me.name:
        raise fail(f"you act as {me.name}: --operator must name you or be left out", Exit.USAGE)
    return me.name


def _victim(text: str) -> VictimRef:
    """``source/case/victim`` as a record key (a case id may itself hold ``/``)."""
    from trust.store.events import VictimRef

    first, last = text.find("/"), text.rfind("/")
    if first <= 0 or last <= first + 1 or last == len(text) - 1:
        raise fail(f"a record is given as {RECORD_SYNTAX}", Exit.USAGE)
    return VictimRef(text[:first], text[first + 1 : last], text[last + 1 :])


@contextlib.contextmanager
def _opened(home: str | None, store: str | None) -> Iterator[tuple[Home, EventStore]]:
    """The home and its trust store; a store or setup failure is a clear error, never a
    traceback."""
    h = home_of(home)
    try:
        event_store = open_store(h.store_url(store))
    except DBAPIError as exc:
        _store_failed(exc)
    try:
        yield h, event_store
    except wiring.SetupError as exc:
        raise fail(str(exc), Exit.NOT_SET_UP) from None
    except DBAPIError as exc:
        _store_failed(exc)
    finally:
        event_store.close()


def _store_failed(exc: DBAPIError) -> NoReturn:
    raise fail(
        f"the event store failed ({type(exc.orig).__name__}): run again when it is back",
        Exit.DELIVERY_FAILED,
    ) from None


def _refused(exc: LinkageError, subject: str) -> typer.Exit:
    """Exit 2 for an unknown id or a verdict that cannot be, 6 for a review already closed."""
    from trust.linkage.errors import LinkageReason

    code = Exit.REFUSED if exc.reason == LinkageReason.REVIEW_CLOSED else Exit.USAGE
    return fail(f"{subject}: {exc} ({exc.reason})", code)


@dataclass(frozen=True)
class _Linkage:
    """The trust's linkage as the running trust has it: the resolver (its model, the vault that
    opens the compared fields, the agreements that limit links) and the agreements' rule."""

    resolver: Resolver
    may_link: MayLink


def _linkage(h: Home, event_store: EventStore) -> _Linkage:
    from trust.stewardship.policy import Policy

    the_vault = wiring.vault(h, event_store)
    policy = Policy(wiring.trust_agreements(h, event_store))
    now_ms = int(time.time() * 1000)
    return _Linkage(
        wiring.resolver(the_vault, policy, event_store),
        lambda a, b: policy.may_link(a, b, now_ms),
    )


def _resolver(h: Home, event_store: EventStore) -> Resolver:
    return _linkage(h, event_store).resolver


def _apply(event_store: EventStore, resolver: Resolver) -> None:
    """Let linkage follow the decision now (the running trust would on its next step)."""
    from trust.follow import follow

    try:
        follow(event_store, resolver)
    except DBAPIError as exc:
        raise fail(
            f"the decision is recorded, but linkage could not apply it now "
            f"({type(exc.orig).__name__}): the trust applies it when it next runs "
            "(`tiptrust trust run`)",
            Exit.DELIVERY_FAILED,
        ) from None


def _print(text: str) -> None:
    out.print(text, highlight=False, soft_wrap=True, markup=False)


def _bits(weight: float | None) -> str:
    return "?" if weight is None else f"{round(weight, 2) + 0.0:+.2f}"


@review_app.command("list")
def review_list(
    all_reviews: Annotated[
        bool, typer.Option("--all", help="Also the reviews already decided or withdrawn")
    ] = False,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """The review queue, oldest first: each record's id, its own person until decided, and the
    candidate persons with their best match probability (ids only)."""
    from trust.linkage.review import record_text, reviews

    with _opened(home, store) as (_, event_store):
        found = reviews(event_store, None if all_reviews else "open")
    rows = [
        {
            "review_id": r.review_id,
            "status": r.status,
            "record": record_text(r.victim),
            "person_id": r.person_id,
            "candidates": r.candidates,
            "opened_seq": r.opened_seq,
        }
        for r in found
    ]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        _print("no reviews" if all_reviews else "no open reviews")
        return
    t = Table("review", "status", "record", "its person", "candidates", title="link reviews")
    for r in found:
        ranked = sorted(r.candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        t.add_row(
            escape(r.review_id),
            r.status,
            escape(record_text(r.victim)),
            escape(r.person_id),
            escape(", ".join(f"{p} {b:.4f}" for p, b in ranked)),
        )
    out.print(t)


def _print_detail(detail: ReviewDetail) -> None:
    r = detail.review
    _print(
        f"review {r.review_id} · {r.status} · opened at seq {r.opened_seq} under model "
        f"{detail.model_version}"
    )
    if detail.explained_by != detail.model_version:
        _print(f"levels named and weighed by the current model {detail.explained_by}")
    now = detail.record_person or "not linked any more"
    _print(
        f"record {'/'.join(r.victim.key())}: its own person until decided {r.person_id} (now {now})"
    )
    for c in detail.candidates:
        moved = "" if c.current == c.person_id else f", now {c.current}"
        _print(
            f"candidate {c.person_id}{moved}: {len(c.records)} record(s), best probability "
            f"{c.best:.5f}"
        )
        t = Table("comparison", *(escape("/".join(p.other.key())) for p in c.pairs))
        names = list(dict.fromkeys(term.comparison for p in c.pairs for term in p.terms))
        for name in names:
            cells = []
            for p in c.pairs:
                term = next((x for x in p.terms if x.comparison == name), None)
                cells.append("" if term is None else f"{term.level} {_bits(term.weight)}")
            t.add_row(name, *cells)
        t.add_row("prior", *(_bits(detail.prior_weight) for _ in c.pairs))
        if any(p.adjustment is not None and abs(p.adjustment) >= 0.005 for p in c.pairs):
            t.add_row("name frequency", *(_bits(p.adjustment) for p in c.pairs))
        t.add_row("match weight (bits)", *(f"{p.match_weight:.2f}" for p in c.pairs))
        t.add_row("probability", *(f"{p.probability:.5f}" for p in c.pairs))
        out.print(t)


@review_app.command("show")
def review_show(
    review_id: Annotated[
        str, typer.Argument(metavar="REVIEW", help="A review id (see `tiptrust link review list`)")
    ],
    values: Annotated[
        bool,
        typer.Option(
            "--values",
            help="Also the records' identifying values side by side: for the trust's reviewer "
            "only (needs the trust's vault key); every such view is recorded in the store",
        ),
    ] = False,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """A review: each candidate pair's comparison levels and weights (no values). With --values
    (custodians only), the identifying values of the record and of the candidates' records,
    recorded as an IdentifiersViewed event naming the custodian before they are printed.

    Exit codes: 0 shown; 2 no review has this id; 5 the trust is not set up in this home;
    7 --values without a custodian's token.
    """
    from trust.linkage.errors import LinkageError
    from trust.linkage.review import review_detail, side_by_side

    who: str | None = None
    with _opened(home, store) as (h, event_store):
        if values:
            who = _custodian(event_store, token, operator, view=True)
        resolver = _resolver(h, event_store)
        try:
            detail = review_detail(event_store, resolver.linker.model, review_id)
            shown = None if who is None else side_by_side(event_store, resolver, review_id, who)
        except LinkageError as exc:
            raise _refused(exc, f"review {review_id}") from None
    if shown:
        console.print(
            f"this view of identifying values is recorded in the trust's audit trail "
            f"(operator {escape(who or '')})",
            highlight=False,
        )
    if as_json:
        body = detail.as_json()
        if shown is not None:
            body["values"] = shown
        print(json.dumps(body))
        return
    _print_detail(detail)
    if shown is not None:
        if not shown:
            _print("no identifying values to show: the records left linkage or were erased")
            return
        t = Table("field", *(escape(k) for k in shown), title="identifying values")
        fields = list(dict.fromkeys(f for v in shown.values() for f in v))
        for f in fields:
            t.add_row(f, *(escape(v.get(f, "")) for v in shown.values()))
        out.print(t)


def _decide(
    review_id: str,
    persons: list[str] | None,
    *,
    same: bool,
    operator: str | None,
    token: str | None,
    as_json: bool,
    store: str | None,
    home: str | None,
) -> None:
    from trust.linkage.errors import LinkageError
    from trust.linkage.review import person_of, record_text, resolve

    with _opened(home, store) as (h, event_store):
        who = _custodian(event_store, token, operator, view=False)
        linkage = _linkage(h, event_store)
        try:
            decision = resolve(
                event_store,
                review_id,
                same=same,
                operator=who,
                persons=persons or (),
                may_link=linkage.may_link,
            )
        except LinkageError as exc:
            raise _refused(exc, f"review {review_id}") from None
        _apply(event_store, linkage.resolver)
        now = person_of(event_store, decision.victim)
        others = sorted({p for o in decision.others if (p := person_of(event_store, o))})
    verdict = "accepted" if same else "rejected"
    if as_json:
        print(
            json.dumps(
                {
                    "review_id": review_id,
                    "decision": verdict,
                    "operator": who,
                    "record": record_text(decision.victim),
                    "person": now,
                    "others": [record_text(o) for o in decision.others],
                    "other_persons": others,
                }
            )
        )
        return
    record = record_text(decision.victim)
    if same:
        _print(
            f"review {review_id} accepted by {who}: {record} is in person {now} with "
            f"{len(decision.others)} other record(s)"
        )
    else:
        _print(
            f"review {review_id} rejected by {who}: {record} (person {now}) is kept apart from "
            f"{len(decision.others)} record(s) of {', '.join(others) or 'no person now'}"
        )
    _print("release counts follow at the trust's next release check (`tiptrust trust run`)")


@review_app.command("accept")
def review_accept(
    review_id: Annotated[str, typer.Argument(metavar="REVIEW", help="A review id")],
    persons: PersonsOpt = None,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """The record is the same person as the candidate (default: the best one): their persons
    merge now (the oldest person id survives) and the model never parts these records again.

    Exit codes: 0 done; 2 unknown review or a person that is not a candidate; 5 the trust is not
    set up in this home; 6 the review is already closed.
    """
    _decide(
        review_id,
        persons,
        same=True,
        operator=operator,
        token=token,
        as_json=as_json,
        store=store,
        home=home,
    )


@review_app.command("reject")
def review_reject(
    review_id: Annotated[str, typer.Argument(metavar="REVIEW", help="A review id")],
    persons: PersonsOpt = None,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """The record is not the candidates' person (default: none of them): linkage keeps it apart
    from their records from now on, also when the record is sent again.

    Exit codes: 0 done; 2 unknown review or a person that is not a candidate; 5 the trust is not
    set up in this home; 6 the review is already closed.
    """
    _decide(
        review_id,
        persons,
        same=False,
        operator=operator,
        token=token,
        as_json=as_json,
        store=store,
        home=home,
    )


def _print_history(header: dict[str, Any], history: list[dict[str, Any]]) -> None:
    person = header["person_id"]
    n = len(header["records"])
    if header["now"] != person:
        _print(f"person {person}: merged into {header['now']}, which holds {n} record(s) now")
    else:
        _print(f"person {person}: {n} record(s) now")
    for r in header["records"]:
        _print(f"  {r}")
    for e in history:
        at = f"seq {e['seq']}"
        what = e["what"]
        if what == "linked":
            _print(
                f"{at} linked {e['record']} to {e['person']}: {e['decision']} "
                f"(model {e['model_version']})"
            )
            for p in e["evidence"]:
                levels = ", ".join(
                    f"{x['comparison']} {x['level']} {_bits(x['weight'])}"
                    for x in p["levels"]
                    if x["index"] != 0
                )
                _print(
                    f"    with {p['with']}: probability {p['probability']:.5f}, "
                    f"{p['match_weight']:.2f} bits — {levels or 'no comparison had data'}"
                )
        elif what == "unlinked":
            _print(f"{at} unlinked {e['record']} from {e['person']}: {e['reason']}")
        elif what == "merged":
            _print(f"{at} merged {', '.join(e['absorbed'])} into {e['survivor']} ({e['reason']})")
        elif what == "split":
            _print(
                f"{at} split {e['from']}: {', '.join(e['moved'])} moved to {e['new_person']} "
                f"({e['reason']})"
            )
        elif what == "review_opened":
            ranked = sorted(e["candidates"].items(), key=lambda kv: (-kv[1], kv[0]))
            _print(
                f"{at} review {e['review_id']} opened for {e['record']} (own person "
                f"{e['person']}); candidates " + ", ".join(f"{p} {b:.4f}" for p, b in ranked)
            )
        elif what == "operator":
            verdict = "the same person as" if e["same"] else "a different person from"
            review = f" (review {e['review_id']})" if e["review_id"] else ""
            _print(
                f"{at} operator {e['operator']}: {e['record']} is {verdict} "
                f"{', '.join(e['others']) or 'no record'}{review}"
            )


def _why_person(event_store: EventStore, model: MatchModel, person_id: str, as_json: bool) -> None:
    from trust.linkage.review import current_person, person_history, person_records, record_text

    now = current_person(event_store, person_id)
    header = {
        "person_id": person_id,
        "now": now,
        "records": [record_text(v) for v in person_records(event_store, now)],
    }
    history = person_history(event_store, person_id, model)
    if as_json:
        print(json.dumps({**header, "history": history}))
    else:
        _print_history(header, history)


def _why_records(
    event_store: EventStore, linkage: _Linkage, a: VictimRef, b: VictimRef, as_json: bool
) -> None:
    from trust.linkage.review import explain_pair, pair_verdict, person_of, record_text

    score = explain_pair(event_store, linkage.resolver, a, b)
    x = score.explanation
    verdict = pair_verdict(event_store, a, b)
    persons = [person_of(event_store, a), person_of(event_store, b)]
    body: dict[str, Any] = {
        "records": [record_text(a), record_text(b)],
        "persons": persons,
        "model_version": x.model_version,
        "prior_weight": round(x.prior_weight, 4),
        "levels": [
            {
                "comparison": t.comparison,
                "level": t.level,
                "weight": round(t.weight + 0.0, 4),
                "term_frequency_adjustment": round(t.term_frequency_adjustment + 0.0, 4),
            }
            for t in x.terms
        ],
        "match_weight": round(x.match_weight, 6),
        "probability": round(x.probability, 9),
        "decision": str(score.decision.value),
        "operator_verdict": None if verdict is None else ("same" if verdict else "different"),
        "agreements_allow": linkage.may_link(a.source_id, b.source_id),
    }
    if as_json:
        print(json.dumps(body))
        return
    pa, pb = persons
    _print(
        f"{body['records'][0]} (person {pa}) and {body['records'][1]} (person {pb}) under "
        f"model {x.model_version}"
    )
    t = Table("comparison", "level", "weight (bits)", "name frequency")
    for term in body["levels"]:
        tf = term["term_frequency_adjustment"]
        t.add_row(term["comparison"], term["level"], _bits(term["weight"]), _bits(tf) if tf else "")
    t.add_row("prior", "", _bits(x.prior_weight), "")
    out.print(t)
    _print(
        f"match weight {x.match_weight:.2f} bits, probability {x.probability:.5f}: "
        f"by the model alone, {_MEANING.get(body['decision'], body['decision'])}"
    )
    if verdict is not None:
        _print(f"an operator judged them {body['operator_verdict']}: that verdict prevails")
    if not body["agreements_allow"]:
        _print("the sources' agreements do not allow linking these records: they stay apart")


@app.command("why")
def why(
    person: Annotated[
        str | None,
        typer.Option("--person", help="A person id: the linkage history that made it"),
    ] = None,
    records: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--records",
            metavar="A B",
            help=f"Two linked records, each {RECORD_SYNTAX}: how the current model scores them",
        ),
    ] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Why records are one person or not: ids, comparison levels and weights — never a name,
    date of birth or document number.

    --person P: every link (decision, probability, levels), review, operator's verdict, merge,
    split and unlink that made the person. --records A B: the current model's level and weight
    for each comparison of the pair, and any operator's verdict on it.

    Exit codes: 0 shown; 2 unknown person or record, or not exactly one of --person, --records;
    5 the trust is not set up in this home.
    """
    from trust.linkage.errors import LinkageError

    if (person is None) == (records is None):
        raise fail("give either --person P or --records A B", Exit.USAGE)
    pair = None if records is None else (_victim(records[0]), _victim(records[1]))
    with _opened(home, store) as (h, event_store):
        linkage = _linkage(h, event_store)
        try:
            if pair is None:
                assert person is not None
                _why_person(event_store, linkage.resolver.linker.model, person, as_json)
            else:
                _why_records(event_store, linkage, pair[0], pair[1], as_json)
        except LinkageError as exc:
            subject = f"person {person}" if pair is None else "records"
            raise _refused(exc, subject) from None


def _verdict(
    a: str,
    b: str,
    *,
    same: bool,
    operator: str | None,
    token: str | None,
    as_json: bool,
    store: str | None,
    home: str | None,
) -> None:
    from trust.linkage.errors import LinkageError
    from trust.linkage.review import decide_pair, person_of, record_text

    va, vb = _victim(a), _victim(b)
    with _opened(home, store) as (h, event_store):
        who = _custodian(event_store, token, operator, view=False)
        linkage = _linkage(h, event_store)
        try:
            decide_pair(event_store, va, vb, same=same, operator=who, may_link=linkage.may_link)
        except LinkageError as exc:
            raise _refused(exc, "records") from None
        _apply(event_store, linkage.resolver)
        pa, pb = person_of(event_store, va), person_of(event_store, vb)
    if as_json:
        print(
            json.dumps(
                {
                    "records": [record_text(va), record_text(vb)],
                    "same": same,
                    "operator": who,
                    "persons": [pa, pb],
                }
            )
        )
        return
    judged = "the same person" if same else "different persons"
    _print(
        f"recorded by {who}: {record_text(va)} and {record_text(vb)} are {judged}; they are in "
        + (f"person {pa}" if pa == pb else f"persons {pa} and {pb}")
    )
    _print("release counts follow at the trust's next release check (`tiptrust trust run`)")


RecordArg = Annotated[str, typer.Argument(help=f"A linked record, {RECORD_SYNTAX}")]


@app.command("separate")
def separate(
    a: RecordArg,
    b: RecordArg,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """An operator's verdict: A and B are different persons (e.g. to undo a wrong merge).

    If they are in one person, linkage splits it now; it never joins the pair again.

    Exit codes: 0 done; 2 a record that is not linked, or two victims of one case; 5 the trust is
    not set up in this home.
    """
    _verdict(
        a, b, same=False, operator=operator, token=token, as_json=as_json, store=store, home=home
    )


@app.command("join")
def join(
    a: RecordArg,
    b: RecordArg,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """An operator's verdict: A and B are the same person. Their persons merge now (the oldest
    person id survives).

    Exit codes: 0 done; 2 a record that is not linked, or persons holding victims of one case;
    5 the trust is not set up in this home.
    """
    _verdict(
        a, b, same=True, operator=operator, token=token, as_json=as_json, store=store, home=home
    )


@app.command("train")
def train_model(
    adopt: Annotated[
        bool,
        typer.Option("--adopt", help="Make the estimated model the one linkage decides with"),
    ] = False,
    operator: OperatorOpt = None,
    as_json: JsonOpt = False,
    token: TokenOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Re-estimate linkage's model by EM on the trust's own linked records (seeded from the model
    in force); with --adopt (custodians only), decisions from now on use it and name its version.

    Prints the versions, the EM sessions and the prior — never a value of any record.
    Exit codes: 0 done; 5 the trust is not set up in this home; 7 --adopt without a custodian's
    token.
    """
    from trust.linkage.training import adopt as adopt_model
    from trust.linkage.training import estimate_on_store

    with _opened(home, store) as (h, event_store):
        who = _custodian(event_store, token, operator, view=False) if adopt else None
        resolver = _resolver(h, event_store)
        with console.status("estimating the model on the linked records"):
            estimate = estimate_on_store(event_store, resolver)
        result: dict[str, Any] = {
            "model_in_force": resolver.model_version,
            "estimated": estimate.model.version,
            "records": estimate.records,
            "prior": estimate.model.prior,
            "em_sessions": [
                {"rule": rule, "pairs": pairs, "iterations": iterations, "converged": converged}
                for rule, pairs, iterations, converged in estimate.estimation.sessions
            ],
            "adopted": False,
        }
        if who is not None:
            adopt_model(event_store, estimate, who)
            result["adopted"] = True
    if as_json:
        print(json.dumps(result))
        return
    _print(
        f"estimated {result['estimated']} on {result['records']} linked records "
        f"(in force: {result['model_in_force']}); "
        + ("adopted: decisions from now on use it" if adopt else "not adopted (--adopt)")
    )
