"""Propose a mapping for an export from its header and values (``tiptrust mapping init``).

The CTDC global dataset's layout (wide 0/1 columns, ``-99`` for missing) and HTCDS v2.0 field
names are recognised by their column names; any other column is matched to a target by name —
exactly against a table of common and multilingual names (``dob``, ``fecha_nacimiento``,
``nationalité``), else fuzzily — and its values to codes (ICS-TIP codes, HTCDS labels, common
words, then fuzzily). Every proposed entry carries a note saying how it was found, so a person can
review it; the rendered YAML has the notes as comments.

Values are read only to choose codes, missing markers and date formats; a proposal holds values
only of coded columns that look categorical (few distinct values), never of identifying fields.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from producers.codes import HTCDS_LIST_OF, loose, named_codes
from producers.mapping import ROW_HASH, TARGETS, Target
from producers.readers import CellDate, InputOptions, Row

__all__ = ["CTDC_COLUMNS", "Proposal", "propose", "render"]

#: Distinct values above which a coded column is not given a codes table (it may be free text).
MAX_CODED_VALUES = 60
FUZZY_NAME = 86
FUZZY_VALUE = 88

# --- known layouts -------------------------------------------------------------------------------

_CTDC_CONTROL = {
    "meansOfControlDebtBondage": "DebtBondage",
    "meansOfControlTakesEarnings": "TakesEarnings",
    "meansOfControlRestrictsFinancialAccess": "RestrictsFinancialAccess",
    "meansOfControlThreats": "PhysicalThreats",
    "meansOfControlPsychologicalAbuse": "PsychologicalAbuse",
    "meansOfControlPhysicalAbuse": "PhysicalAbuse",
    "meansOfControlSexualAbuse": "SexualAbuse",
    "meansOfControlFalsePromises": "FalsePromises",
    "meansOfControlPsychoactiveSubstances": "PsychoactiveSubstance",
    "meansOfControlRestrictsMovement": "Other",
    "meansOfControlRestrictsMedicalCare": "RestrictsMedicalCare",
    "meansOfControlExcessiveWorkingHours": "ExcessiveWorkingHours",
    "meansOfControlUsesChildren": "ThreatensChildrenFamily",
    "meansOfControlThreatOfLawEnforcement": "ThreatsLawEnforcement",
    "meansOfControlWithholdsNecessities": "WithholdsNecessities",
    "meansOfControlWithholdsDocuments": "WithholdsDocuments",
    "meansOfControlOther": "Other",
}
_CTDC_FORMS: dict[str, str | list[str]] = {
    "isForcedLabour": "ForcedLabour",
    "isSexualExploit": "SexualExploitation",
    "isOtherExploit": "Other",
    "isSexAndLabour": ["SexualExploitation", "ForcedLabour"],
    "isForcedMarriage": "ForcedMarriage",
    "isForcedMilitary": "ForcedMilitaryByNonStateActors",
    "isOrganRemoval": "OrganRemoval",
    "isSlaveryAndPractices": "Servitude",
    "typeOfLabourBegging": "ForcedBegging",
    "typeOfLabourIllicitActivities": "ForcedCriminality",
}
_CTDC_SEX = {
    "typeOfSexProstitution": "Prostitution",
    "typeOfSexPornography": "Pornography",
    "typeOfSexRemoteInteractiveServices": "RemoteInteractiveServices",
    "typeOfSexPrivateSexualServices": "PrivateSexualServices",
}
_CTDC_INDUSTRY = {
    "Agriculture": "A_AgricultureForestryAndFishing",
    "Aquafarming": "A_AgricultureForestryAndFishing",
    "Construction": "F_Construction",
    "DomesticWork": "T_ActivitiesOfHouseholdsAsEmployers",
    "Hospitality": "I_AccommodationAndFoodServiceActivities",
    "Manufacturing": "C_Manufacturing",
    "MiningOrDrilling": "B_MiningAndQuarrying",
    "Peddling": "G_WholesaleAndRetailTradeRepairOfMotorVehicles",
    "Transportation": "H_TransportationAndStorage",
}
#: Columns of the CTDC layout not proposed, and why (shown as review notes).
_CTDC_LEFT = {
    "majorityStatusAtExploit": "adult/minor status at exploitation: the record holds the status "
    "at identification (majorityStatus)",
    "majorityEntry": "adult/minor status at entry: the record holds the status at identification",
    "yearOfRegistration": "the year a case was registered has no ICS-TIP field",
    "Datasource": "the kind of data source has no ICS-TIP field",
    "isAbduction": "abduction has no ICS-TIP code",
}
#: The 63 columns of the CTDC global dataset (in its published order).
CTDC_COLUMNS: tuple[str, ...] = (
    "yearOfRegistration", "Datasource", "gender", "ageBroad", "majorityStatus",
    "majorityStatusAtExploit", "majorityEntry", "citizenship",
    *(c for c in _CTDC_CONTROL if c not in ("meansOfControlOther",)),
    "meansOfControlOther", "meansOfControlNotSpecified", "meansOfControlConcatenated",
    *(c for c in _CTDC_FORMS if c.startswith("is")), "typeOfExploitConcatenated",
    "typeOfLabourAgriculture", "typeOfLabourAquafarming", "typeOfLabourBegging",
    "typeOfLabourConstruction", "typeOfLabourDomesticWork", "typeOfLabourHospitality",
    "typeOfLabourIllicitActivities", "typeOfLabourManufacturing", "typeOfLabourMiningOrDrilling",
    "typeOfLabourPeddling", "typeOfLabourTransportation", "typeOfLabourOther",
    "typeOfLabourNotSpecified", "typeOfLabourConcatenated",
    *_CTDC_SEX, "typeOfSexConcatenated", "isAbduction", "RecruiterRelationship",
    "CountryOfExploitation", "recruiterRelationIntimatePartner", "recruiterRelationFriend",
    "recruiterRelationFamily", "recruiterRelationOther", "recruiterRelationUnknown",
)  # fmt: skip

# --- names of columns and values -----------------------------------------------------------------

#: Target → column names it is known by (HTCDS v2.0 and CTDC names, common and multilingual ones).
_ALIASES: dict[str, tuple[str, ...]] = {
    "$.victims[].sex": ("sex", "gender", "prs_Gender", "sexe", "genre", "sexo", "genero",
                        "geschlecht", "victim_sex", "victim_gender"),
    "$.victims[].age_at_identification": ("age", "age_at_identification", "edad", "âge", "alter",
                                          "idade", "età", "victim_age"),
    "$.victims[].age_first_trafficked": ("age_first_trafficked", "vic_AgeWhenTrafficked",
                                         "age_when_trafficked", "age_at_recruitment"),
    "$.victims[].citizenships": ("citizenship", "citizenships", "nationality", "prs_Citizenship",
                                 "nationalité", "nacionalidad", "nacionalidade",
                                 "staatsangehörigkeit", "cittadinanza", "country_of_origin"),
    "$.victims[].country_of_residence": ("country_of_residence", "residence", "prs_MailingCountry",
                                         "pays_de_résidence", "país_de_residencia"),
    "$.victims[].relationship_to_trafficker": ("relationship_to_trafficker", "RecruiterRelationship",
                                               "vic_RelationshipToTrafficker"),
    "$.victims[].migration_status": ("migration_status", "protection_status"),
    "$.victims[].identifiers.given_names": ("first_name", "firstname", "given_name",
                                            "given_names", "forename", "prs_FirstName",
                                            "prs_First_Name", "nombre", "prénom", "vorname",
                                            "nome"),
    "$.victims[].identifiers.surnames": ("last_name", "lastname", "surname", "surnames",
                                         "family_name", "prs_SecondName", "prs_Second_Name",
                                         "apellido", "apellidos", "nom_de_famille", "nom",
                                         "nachname", "cognome", "sobrenome"),
    "$.victims[].identifiers.date_of_birth": ("dob", "date_of_birth", "birthdate", "birth_date",
                                              "prs_Birthdate", "fecha_nacimiento",
                                              "fecha_de_nacimiento", "date_de_naissance",
                                              "geburtsdatum", "data_nascimento",
                                              "data_di_nascita"),
    "$.victims[].identifiers.phone": ("phone", "mobile", "telephone", "prs_MobilePhone",
                                      "prs_HomePhone", "teléfono", "téléphone"),
    "$.victims[].identifiers.documents[].number": ("passport", "passport_no", "passport_number",
                                                   "document_number", "id_number",
                                                   "prs_IdentityNumber", "pasaporte",
                                                   "passeport", "numero_documento"),
    "$.event.forms_of_exploitation": ("forms_of_exploitation", "form_of_exploitation",
                                      "type_of_exploitation", "exploitation",
                                      "vic_TypeOfExploitation", "tipo_de_explotacion",
                                      "forme_d_exploitation"),
    "$.event.methods_of_control": ("methods_of_control", "means_of_control",
                                   "vic_MethodsOfControl", "vic_Methods_of_Control"),
    "$.event.methods_of_recruitment": ("methods_of_recruitment", "method_of_recruitment",
                                       "vic_MethodOfRecruitment", "recruitment"),
    "$.event.types_of_sexual_exploitation": ("types_of_sexual_exploitation",
                                             "type_of_sexual_exploitation",
                                             "vic_TypeOfSexExploitation"),
    "$.event.industry": ("industry", "sector", "vic_ForcedLabourIndustry", "sector_economico"),
    "$.event.country_of_exploitation": ("country_of_exploitation", "CountryOfExploitation",
                                        "pays_d_exploitation", "país_de_explotación"),
    "$.event.year_of_exploitation": ("year_of_exploitation", "exploitation_year"),
    "$.event.start_date": ("start_date", "exploitation_start", "date_start"),
    "$.event.end_date": ("end_date", "exploitation_end", "date_end"),
    "$.reporting_entity.identification_status": ("identification_status", "trafficking_status",
                                                 "vic_TraffickingStatus"),
    "$.reporting_entity.identified_by": ("identified_by", "vic_TraffickingStatusDecisionMakingOrg",
                                         "vic_TraffickinStatusDecisionMakingOrg"),
    "$.reporting_entity.date_recorded": ("date_recorded", "registration_date", "date_registered",
                                         "cas_IncomingReferralDate", "fecha_registro",
                                         "date_d_enregistrement"),
}  # fmt: skip
_CASE_IDS = ("case_id", "case", "case_ref", "case_no", "case_number", "caseid", "id_caso",
             "numero_caso", "dossier", "expediente", "n_dossier")  # fmt: skip
_VICTIM_IDS = ("victim_id", "victim", "person_id", "client_id", "client_no", "victim_ref",
               "id_victima", "id_victime")  # fmt: skip
_PERP_IDS = ("perpetrator_id", "suspect_id", "offender_id", "suspect_ref")

#: Code list (enum name) → agency words for its codes, beyond the codes and HTCDS labels.
_VALUE_ALIASES: dict[str, dict[str, str]] = {
    "Gender": {
        "female": "Feminine", "f": "Feminine", "woman": "Feminine", "girl": "Feminine",
        "femme": "Feminine", "féminin": "Feminine", "mujer": "Feminine", "femenino": "Feminine",
        "feminino": "Feminine", "weiblich": "Feminine", "male": "Masculine", "m": "Masculine",
        "man": "Masculine", "boy": "Masculine", "homme": "Masculine", "masculin": "Masculine",
        "hombre": "Masculine", "masculino": "Masculine", "männlich": "Masculine",
        "transgender/nonconforming": "NonConforming", "nonbinary": "NonConforming",
        "non-binary": "NonConforming", "transgender": "NonConforming",
    },
    "RelationshipToTrafficker": {
        "family": "Familial", "relative": "Familial", "familiar": "Familial",
        "friend": "Acquainted", "acquaintance": "Acquainted", "intimatepartner": "Acquainted",
        "partner": "Acquainted", "stranger": "Unaquainted", "unacquainted": "Unaquainted",
    },
    "CrossBorder": {"international": "CrossBorder", "national": "Domestic"},
}  # fmt: skip
#: Cell values that mean "not recorded" in many exports (compared loosely).
_MISSING_WORDS = frozenset(
    loose(w)
    for w in ("-99", "-9", "99", "999", "n/a", "na", "unknown", "not known", "not specified",
              "none", "null", "-", "?", "nk", "desconocido", "inconnu", "ns/nr", "sin dato")
)  # fmt: skip
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d",
                 "%d %b %Y", "%Y%m%d")  # fmt: skip


@dataclass
class Proposal:
    """A proposed mapping: its top-level keys and field entries (``as_dict()`` is what
    ``Mapping.from_dict`` takes), a note per key (``fields.<path>``, ``case_column`` …) saying how
    it was found, the columns left unmapped and how many entries are guesses to review."""

    layout: str
    top: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    guesses: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The proposal as a mapping file's content."""
        return dict(self.top, fields=dict(self.entries))


def _norm(name: str) -> str:
    """A column name reduced for matching: last ODK group segment, no accents, case or marks."""
    base = name.rsplit("/", 1)[-1]
    decomposed = unicodedata.normalize("NFKD", base)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^0-9a-z]", "", plain.casefold())


def _layout(header: Sequence[str]) -> str:
    names = set(header)
    if len(names & set(CTDC_COLUMNS)) >= 10:
        return "ctdc"
    if sum(1 for h in names if re.match(r"(prs|vic|cas|per)_[A-Z]", h)) >= 5:
        return "htcds"
    return "generic"


def propose(
    header: Sequence[str],
    rows: Sequence[Row],
    *,
    source_id: str | None = None,
    list_separator: str | None = None,
    options: InputOptions | None = None,
) -> Proposal:
    """A mapping for an export with this ``header`` and these ``rows`` (all, or a sample)."""
    layout = _layout(header)
    p = Proposal(layout)
    m = p.top
    if source_id:
        m["source_id"] = source_id
    m["organisation_type"] = "Other"
    p.notes["organisation_type"] = "review: your agency's organisation type (or {column: …})"
    p.guesses += 1
    opts = options or InputOptions()
    for key in ("encoding", "delimiter", "sheet", "format"):
        value = getattr(opts, key)
        if value:
            m[key] = value
    values = _column_values(header, rows)
    used: set[str] = set()
    fields = p.entries

    _propose_ids(p, header, rows, used, layout)
    if layout == "ctdc":
        _propose_ctdc(p, header, values, fields, used)
    for path, column, how in _match_columns(header, used, set(fields)):
        entry, note = _entry(TARGETS[path], column, values[column], list_separator)
        if entry is None:
            continue
        fields[path] = entry
        used.add(column)
        p.notes[f"fields.{path}"] = f"{how}; {note.removeprefix('review: ')}" if note else how
        if how.startswith("review"):
            p.guesses += 1
    p.unmapped = [h for h in header if h not in used]
    return p


def _column_values(header: Sequence[str], rows: Iterable[Row]) -> dict[str, Counter[str]]:
    values: dict[str, Counter[str]] = {h: Counter() for h in header}
    for row in rows:
        for h, v in row.values.items():
            if v is not None and h in values:
                values[h][v] += 1
    return values


def _propose_ids(
    p: Proposal, header: Sequence[str], rows: Sequence[Row], used: set[str], layout: str
) -> None:
    by_norm = {_norm(h): h for h in header}
    case = next((by_norm[_norm(a)] for a in _CASE_IDS if _norm(a) in by_norm), None)
    victim = next((by_norm[_norm(a)] for a in _VICTIM_IDS if _norm(a) in by_norm), None)
    perp = next((by_norm[_norm(a)] for a in _PERP_IDS if _norm(a) in by_norm), None)
    if case is None and layout == "ctdc" and header and header[0] not in CTDC_COLUMNS:
        first = header[0]
        cells = [r.values.get(first) for r in rows]
        if all(cells) and len(set(cells)) == len(cells):
            case = first
            p.notes["case_column"] = "the CTDC export's first column identifies rows"
    if case is None:
        p.top["ids"] = ROW_HASH
        p.notes["ids"] = (
            "review: no id column found; ids hash each row's mapped cells (a corrected row then "
            "counts as a new case)"
        )
        p.guesses += 1
        return
    p.top["case_column"] = case
    used.add(case)
    p.notes.setdefault("case_column", "review: matched by name")
    if victim is not None and victim != case:
        p.top["victim_column"] = victim
        used.add(victim)
        p.notes["victim_column"] = "review: matched by name"
    else:
        p.notes["case_column"] += "; it also serves as the victim id"
    if perp is not None:
        p.top["perpetrator_column"] = perp
        used.add(perp)


def _propose_ctdc(
    p: Proposal,
    header: Sequence[str],
    values: dict[str, Counter[str]],
    fields: dict[str, Any],
    used: set[str],
) -> None:
    present = set(header)
    for path, table in (
        ("$.event.methods_of_control", _CTDC_CONTROL),
        ("$.event.forms_of_exploitation", _CTDC_FORMS),
        ("$.event.types_of_sexual_exploitation", _CTDC_SEX),
    ):
        flags = {c: code for c, code in table.items() if c in present}
        if flags:
            fields[path] = {"columns": flags, "missing": ["-99"]}
            used.update(flags)
            p.notes[f"fields.{path}"] = "CTDC layout: wide 0/1 columns, -99 not recorded"
    if "ageBroad" in present:
        fields["$.victims[].age_range"] = {"column": "ageBroad", "missing": ["-99"]}
        used.add("ageBroad")
        p.notes["fields.$.victims[].age_range"] = "CTDC layout: age bands such as 18--20, -99"
    if "majorityStatus" in present:
        fields["$.victims[].majority_status"] = {
            "column": "majorityStatus",
            "codes": {"Adult": "Adult", "Minor": "Minor"},
            "missing": ["-99"],
            "default": "Unknown",
        }
        used.add("majorityStatus")
        p.notes["fields.$.victims[].majority_status"] = "CTDC layout: Adult / Minor, -99"
    if "typeOfLabourConcatenated" in present:
        column = "typeOfLabourConcatenated"
        fields["$.event.industry"] = {
            "column": column,
            "split": ";",
            "multiple": "first",
            "codes": dict(_CTDC_INDUSTRY),
            "missing": ["-99"],
            "default": "Unknown",
        }
        used.update({column, *(c for c in present if c.startswith("typeOfLabour"))})
        p.notes["fields.$.event.industry"] = (
            "review: CTDC layout; the first labour sector of several is kept"
        )
        p.guesses += 1
    for column in present:
        if column.endswith(("Concatenated", "NotSpecified")) or column.startswith(
            "recruiterRelation"
        ):
            used.add(column)  # the same facts as the wide columns / RecruiterRelationship
    for column, why in _CTDC_LEFT.items():
        if column in present:
            used.add(column)
            p.notes[f"left.{column}"] = why


def _match_columns(
    header: Sequence[str], used: set[str], taken: set[str]
) -> list[tuple[str, str, str]]:
    """(target path, column, how) for columns matched to targets: by name, then fuzzily."""
    free = [h for h in header if h not in used]
    aliases = {
        _norm(a): path for path, names in _ALIASES.items() if path not in taken for a in names
    }
    out: list[tuple[str, str, str]] = []
    done: set[str] = set()
    rest: list[str] = []
    for column in free:
        path = aliases.get(_norm(column))
        if path is not None and path not in done:
            out.append((path, column, "review: column name matched"))
            done.add(path)
        else:
            rest.append(column)
    if rest:
        from rapidfuzz import fuzz, process

        choices = {a: path for a, path in aliases.items() if path not in done and len(a) > 3}
        for column in rest:
            key = _norm(column)
            if len(key) <= 3:
                continue
            hit = process.extractOne(key, list(choices), scorer=fuzz.ratio, score_cutoff=FUZZY_NAME)
            if hit is None or choices[hit[0]] in done:
                continue
            path = choices[hit[0]]
            out.append((path, column, f"review (guess): column name resembles {hit[0]!r}"))
            done.add(path)
    return out


def _entry(
    target: Target, column: str, values: Counter[str], separator: str | None
) -> tuple[dict[str, Any] | str | None, str]:
    """The field entry for ``column`` into ``target`` and a note on how its values fit."""
    if target.kind == "str":
        return column, ""
    if target.kind == "int":
        missing = sorted({v.strip() for v in values if not _is_int(v, target.bounds)})
        if len(missing) > 5:
            return {"column": column}, f"review: {len(missing)} values are not whole numbers"
        return ({"column": column, "missing": missing} if missing else column), ""
    if target.kind == "date":
        return _date_entry(column, values)
    return _code_entry(target, column, values, separator)


def _is_int(value: str, bounds: tuple[int, int]) -> bool:
    try:
        return bounds[0] <= int(value.strip()) <= bounds[1]
    except ValueError:
        return False


def _date_entry(column: str, values: Counter[str]) -> tuple[dict[str, Any] | str | None, str]:
    texts = [v.strip() for v in values if not isinstance(v, CellDate) and v.strip()]
    if not texts:
        return column, "spreadsheet dates"
    best, parsed = "%Y-%m-%d", -1
    for fmt in _DATE_FORMATS:
        n = 0
        for t in texts:
            try:
                datetime.strptime(t, fmt)
                n += 1
            except ValueError:
                pass
        if n > parsed:
            best, parsed = fmt, n
    note = f"review: dates read as {best} ({parsed} of {len(texts)} distinct values fit)"
    missing = sorted({t for t in texts if loose(t) in _MISSING_WORDS})
    entry: dict[str, Any] = {"column": column, "format": best}
    if missing:
        entry["missing"] = missing
    return entry, note


def _code_entry(
    target: Target, column: str, values: Counter[str], separator: str | None
) -> tuple[dict[str, Any] | str | None, str]:
    split = separator
    if split is None:
        for candidate in (";", "|"):
            if any(candidate in v for v in values):
                split = candidate
                break
    pieces: Counter[str] = Counter()
    for v, n in values.items():
        for piece in v.split(split) if split else (v,):
            if piece.strip():
                pieces[piece.strip()] += n
    if len(pieces) > MAX_CODED_VALUES:
        return None, ""  # not categorical: never propose codes for what may be free text
    htcds = HTCDS_LIST_OF.get(target.enum_name)
    named = named_codes(f"htcds:{htcds}", target.symbols, target.enum_name) if htcds else {}
    known = {loose(k): v for k, v in named.items()}
    known.update({loose(s): s for s in target.symbols})
    aliases = {loose(k): v for k, v in _VALUE_ALIASES.get(target.enum_name, {}).items()}
    extra: dict[str, str] = {}
    missing: list[str] = []
    unmatched: list[str] = []
    used_named = False
    fuzzy = 0
    own = {loose(s) for s in target.symbols}
    for piece in sorted(pieces, key=lambda x: -pieces[x]):
        key = loose(piece)
        if key in known:
            used_named = used_named or key not in own
        elif key in aliases:
            extra[piece] = aliases[key]
        elif key in _MISSING_WORDS:
            missing.append(piece)
        else:
            code = _fuzzy_code(piece, known)
            if code is None:
                unmatched.append(piece)
            else:
                extra[piece] = code
                fuzzy += 1
    entry: dict[str, Any] = {"column": column}
    if split and (target.array or any(split in v for v in values)):
        entry["split"] = split
        if not target.array:
            entry["multiple"] = "first"
    codes: list[Any] = []
    if extra or used_named:
        codes.append("ics-tip")
        if used_named and htcds:
            codes.append(f"htcds:{htcds}")
        if extra:
            codes.append(extra)
    if codes:
        entry["codes"] = codes
    if missing:
        entry["missing"] = missing
    notes = []
    if unmatched:
        default = "Other" if "Other" in target.symbols else "Unknown"
        entry["default"] = default
        n = len(unmatched)
        notes.append(
            f"review: {n} value{'s' if n > 1 else ''} match no code: they become {default}"
        )
    if fuzzy:
        notes.append(f"review (guess): {fuzzy} value(s) matched to codes by resemblance")
    if entry.get("multiple"):
        notes.append("review: cells with several values keep the first")
    if len(entry) == 1:
        return column, "; ".join(notes)
    return entry, "; ".join(notes)


def _fuzzy_code(piece: str, known: dict[str, str]) -> str | None:
    from rapidfuzz import fuzz, process

    key = loose(piece)
    if len(key) < 4:
        return None
    hit = process.extractOne(key, list(known), scorer=fuzz.ratio, score_cutoff=FUZZY_VALUE)
    return None if hit is None else known[hit[0]]


# --- rendering -----------------------------------------------------------------------------------


def render(p: Proposal, origin: str) -> str:
    """The proposal as a commented YAML mapping file (loads with ``Mapping.load``)."""

    def dump(data: dict[str, Any]) -> str:
        # leaf collections in flow style, the mapping itself in block style
        nested = any(isinstance(v, dict | list) for v in data.values())
        text: str = yaml.safe_dump(
            data,
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=None if nested else False,
        )
        return text

    lines = [
        f"# Proposed by `tiptrust mapping init` from {origin} (layout: {p.layout}).",
        "# Entries marked 'review' are guesses: check each, then run `tiptrust mapping check`.",
    ]
    for key, value in p.top.items():
        note = p.notes.get(key)
        if note:
            lines.append(f"# {note}")
        lines.append(dump({key: value}).rstrip("\n"))
    lines.append("fields:")
    for path, entry in p.entries.items():
        note = p.notes.get(f"fields.{path}")
        if note:
            lines.append(f"  # {note}")
        lines.extend("  " + line for line in dump({path: entry}).rstrip("\n").splitlines())
    left = [f"{k[5:]}: {v}" for k, v in p.notes.items() if k.startswith("left.")]
    if left or p.unmapped:
        lines.append("# Not mapped:")
        lines.extend(f"#   {item}" for item in left)
        rest = [c for c in p.unmapped if f"left.{c}" not in p.notes]
        if rest:
            lines.append("#   other columns: " + ", ".join(rest))
    return "\n".join(lines) + "\n"
