"""Release streams, declared in one place: what each counts, by which categories, under which k.

Every stream is a :class:`StreamSpec`: its name (``tip.release.<consumer>.<name>``), title, unit,
dimensions and, per dimension, the :class:`~trust.release.categories.Classification` it
publishes — the categories, the rare codes grouped into a declared residual, their labels and
hierarchy — the cells it declares impossible (structural zeros), k, whether every margin is
published, and the disclosure method. The aggregator (:mod:`trust.release.aggregate`), the
stage's counts, disclosure control and the release's labels all read these declarations.

**Why the code lists are grouped.** A table over every code of its list is mostly zeros: seven
sex codes of which data use two or three, twelve forms of which a country records four or five.
A zero is sensitive (it says "nobody"), so it is suppressed like a small count: a table over
every code is mostly hidden cells, a reader cannot tell a hidden zero from a hidden nine, and a
rare code's few persons are hidden one cell at a time where together they could be published.
Each dimension therefore publishes the codes people report on and groups the rare ones into one
declared category (the manual's advice to aggregate before suppressing, *Making each case
count* §5, table 9); a stream may declare its own grouping (``StreamSpec.categories``):

- ``sex``: ``Feminine``, ``Masculine``, ``OtherGenderIdentity`` (the HTCDS codes
  ``TransgenderFeminine``, ``TransgenderMasculine`` and ``NonConforming``: recorded gender
  identities are kept, not re-assigned to female or male, and shown together so that they are
  visible without cells of one or two persons), and ``Unknown`` (``NonSpecifiedUnknown`` — the
  HTCDS "Not specified/unknown" — and no value recorded);
- ``form``: the three forms UNODC's Global Report on Trafficking in Persons reports on its own —
  ``SexualExploitation``, ``ForcedLabour``, ``ForcedCriminality`` — then ``OtherForms`` (every
  other code: servitude, begging, forced marriage, child labour, organ removal, adoption,
  surrogacy, forced military service, ``Other``), ``Multiple`` (two or more forms recorded for
  the person, whichever they are: the form rule decides the cell before the grouping) and
  ``Unknown``;
- ``age_group``: the ICS-TIP bands with their hierarchy, children ``0-17`` = ``0-11`` +
  ``12-17`` + ``0-17 band unknown``, adults ``18+`` = ``18-24`` + ``25-34`` + ``35-44`` +
  ``45+`` + ``18+ band unknown``, and ``Unknown``. A person is placed from the best of what
  their records say (:func:`schemas.rules.age_group_of`): the exact age; else the age range
  (an export's band such as ``9--17``) narrowed by the majority status — the band that holds the
  whole range, or, for a range inside 0-17 that spans both children's bands or ``Minor`` alone,
  the leaf ``0-17 band unknown`` (likewise ``18+ band unknown`` for adults); else ``Unknown``.
  So every child counts in ``0-17`` and every adult in ``18+`` even when their band is not
  known, and each parent is still the sum of its children (the leaves of unknown band are
  children like the others: margins stay additive, and disclosure control protects them like
  any cell);
- ``year``: the years the counted persons have, then ``Unknown``; in a release, a year is shown
  on its own once k persons are counted in it and then stays for that consumer, the persons of
  the other years being in ``Rest`` (``disclosure/differencing.md``, sticky years), unless the
  stream declares its years (``first_year``);
- ``role`` (perpetrators): the roles in the trafficking process that the records name most —
  ``RecruiterOrIntermediary``, ``Transporter``, ``Exploiter`` — then ``OtherRoles`` (every other
  HTCDS ``per_RoleInProcess`` code, ``Other`` included), ``Multiple`` (two or more roles
  recorded for the perpetrator: one cell per perpetrator, as for forms) and ``Unknown``;
- ``citizenship``, ``country_of_exploitation``: the most frequent countries (at most
  :data:`TOP_COUNTRIES`, each with at least k persons), then ``Multiple`` (a person with two or
  more: one cell per person, as for forms), ``Rest`` (every other country; never the code
  ``Other``) and ``Unknown``. In a consumer's later releases every category it was given
  before stays (a country never returns into ``Rest``: ``disclosure/differencing.md``), so
  more than :data:`TOP_COUNTRIES` countries can be listed.

**Kinds of stream.** :data:`STREAMS` are tables of counted persons (the stage's counts follow
them, each person in one cell). A stream's ``subject`` says whom it counts: ``victims`` (the
persons linkage makes of victim records) or ``perpetrators`` (perpetrator records, one per
distinct source, case and perpetrator id, never linked across sources; only sources whose
agreement shares perpetrator data are counted: perpetrators are suspects, and counts of them
can reveal investigations). :data:`ESTIMATE_STREAMS` publish something made from the linked
persons instead: a stream with an :class:`Estimate` (``prevalence_estimate``) releases the
multiple-systems estimate of the persons no list saw, by ``measure`` (detected, estimate,
interval), from capture histories of the linked persons (:mod:`trust.estimate.stream`); a stream
with :class:`Synthetic` settings (``synthetic_microdata``) releases k-anonymous synthetic
records of them (:mod:`trust.synthesize.release`); a stream with :class:`Cumulative` settings
(``victims_by_month_cumulative``) releases, month by month, how many persons a count stream counts,
as a differentially private continual release (:mod:`trust.release.disclosure.continual`).
:data:`CATALOGUE` holds every kind: what a consumer may subscribe to.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from schemas.codec import default_registry
from schemas.codelists import CODELISTS_DIR, htcds_labels
from schemas.rules import ADULT_BAND_UNKNOWN, AGE_GROUPS, MINOR_BAND_UNKNOWN, age_group
from transport.topics import validate_name
from trust.release.categories import (
    MOST_FREQUENT,
    REST,
    UNKNOWN,
    YEARS,
    Category,
    Classification,
    Impossible,
    Parent,
    UnknownDimension,
)
from trust.release.errors import InvalidThreshold, UnknownStream

__all__ = [
    "AGE_GROUP",
    "AGE_GROUPS",
    "CATALOGUE",
    "CLASSIFICATIONS",
    "ESTIMATE_STREAMS",
    "FORM",
    "FORM_CODES",
    "MEASURE",
    "MEASURES",
    "MONTH",
    "PERPETRATORS",
    "PERPETRATORS_BY_ROLE",
    "PREVALENCE_ESTIMATE",
    "REPEAT_VICTIMISATION",
    "ROLE",
    "ROLE_CODES",
    "SDG_16_2_2",
    "SEX",
    "SEXES",
    "STREAMS",
    "SUBJECTS",
    "SYNTHETIC_MICRODATA",
    "VICTIMS",
    "VICTIMS_BY_MONTH_CUMULATIVE",
    "VICTIMS_BY_SEX_AGE_FORM",
    "VICTIMS_BY_YEAR_AGE_GROUP",
    "VICTIMS_BY_YEAR_CITIZENSHIP",
    "VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION",
    "VICTIMS_BY_YEAR_FORM",
    "VICTIMS_BY_YEAR_SEX",
    "Cumulative",
    "Estimate",
    "Rate",
    "StreamSpec",
    "Synthetic",
    "age_group",
    "stream",
]

MULTIPLE = "Multiple"

# -- the code lists, from the case record schema's model (never its JSON) -----------------------

_CASE_MODEL = default_registry().current("case_record").model

#: ICS-TIP sex/gender codes (HTCDS prs_Gender) a record may hold, ``Unknown`` last.
SEXES: tuple[str, ...] = tuple(
    [c for c in _CASE_MODEL.enum_at("$.victims[].sex").symbols if c != UNKNOWN] + [UNKNOWN]
)
#: Forms of exploitation a record may hold (FormOfExploitation, ``Unknown`` included).
FORM_CODES: tuple[str, ...] = _CASE_MODEL.enum_at("$.event.forms_of_exploitation").symbols
#: The form values of a person (:func:`trust.release.aggregate.form_of`): a code, then
#: ``Multiple``, then ``Unknown``.
FORMS: tuple[str, ...] = tuple([c for c in FORM_CODES if c != UNKNOWN] + [MULTIPLE, UNKNOWN])
#: Roles in the trafficking process a perpetrator record may hold (HTCDS per_RoleInProcess).
ROLE_CODES: tuple[str, ...] = _CASE_MODEL.enum_at("$.perpetrators[].roles").symbols
#: The role values of a perpetrator (:func:`trust.release.aggregate.role_of`): a code, then
#: ``Multiple``, then ``Unknown``.
ROLES: tuple[str, ...] = tuple([c for c in ROLE_CODES if c != UNKNOWN] + [MULTIPLE, UNKNOWN])
#: ISO 3166 alpha-2 codes of the case record's ``Country`` (without ``Unknown``).
COUNTRY_CODES: tuple[str, ...] = tuple(
    c for c in _CASE_MODEL.enum_at("$.event.country_of_exploitation").symbols if c != UNKNOWN
)


def _country_labels() -> Mapping[str, str]:
    path = CODELISTS_DIR / "htcds_v2.0_countries_iso3166_alpha2.csv"
    with open(path, encoding="utf-8", newline="") as f:
        return MappingProxyType({r["alpha2"]: r["name"] for r in csv.DictReader(f)})


# -- the classifications: one per dimension name ------------------------------------------------

_GENDER = htcds_labels("prs_Gender")
OTHER_GENDER_IDENTITY = "OtherGenderIdentity"

SEX = Classification(
    "sex",
    categories=(
        Category("Feminine", _GENDER["Feminine"]),
        Category("Masculine", _GENDER["Masculine"]),
        Category(
            OTHER_GENDER_IDENTITY,
            "Transgender or gender non-conforming",
            ("TransgenderFeminine", "TransgenderMasculine", "NonConforming"),
        ),
        Category(UNKNOWN, "Sex not specified or not recorded", ("NonSpecifiedUnknown", UNKNOWN)),
    ),
    code_list=SEXES,
    note=(
        "OtherGenderIdentity groups the HTCDS codes TransgenderFeminine, TransgenderMasculine "
        "and NonConforming; Unknown groups NonSpecifiedUnknown and no value recorded."
    ),
)

_AGE_LABELS = {
    "0-11": "0-11 years",
    "12-17": "12-17 years",
    MINOR_BAND_UNKNOWN: "Children, age band not known (under 18)",
    ADULT_BAND_UNKNOWN: "Adults, age band not known (18 and over)",
    "18-24": "18-24 years",
    "25-34": "25-34 years",
    "35-44": "35-44 years",
    "45+": "45 years and over",
    UNKNOWN: "Age not recorded",
}
CHILDREN, ADULTS = "0-17", "18+"

AGE_GROUP = Classification(
    "age_group",
    categories=tuple(Category(g, _AGE_LABELS[g]) for g in AGE_GROUPS),
    parents=(
        Parent(CHILDREN, "Children (0-17 years)", ("0-11", "12-17", MINOR_BAND_UNKNOWN)),
        Parent(
            ADULTS,
            "Adults (18 years and over)",
            ("18-24", "25-34", "35-44", "45+", ADULT_BAND_UNKNOWN),
        ),
    ),
    code_list=AGE_GROUPS,
    note=(
        "Age at identification (the youngest of the person's records), in ICS-TIP bands; a "
        "person whose records give only an age band or an adult/minor status is in the band "
        f"that holds it, else in {MINOR_BAND_UNKNOWN!r} (a child) or {ADULT_BAND_UNKNOWN!r} "
        "(an adult)."
    ),
)

_FORM_LABELS = htcds_labels("vic_TypeOfExploitation")
#: The forms published on their own (UNODC GLOTIP's reporting categories); the rest are grouped.
MAIN_FORMS: tuple[str, ...] = ("SexualExploitation", "ForcedLabour", "ForcedCriminality")
OTHER_FORMS = "OtherForms"
_GROUPED_FORMS = tuple(c for c in FORMS if c not in (*MAIN_FORMS, MULTIPLE, UNKNOWN))

FORM = Classification(
    "form",
    categories=(
        *(Category(c, _FORM_LABELS.get(c, "Forced criminality")) for c in MAIN_FORMS),
        Category(OTHER_FORMS, "Other forms of exploitation", _GROUPED_FORMS),
        Category(MULTIPLE, "Several forms recorded"),
        Category(UNKNOWN, "Form not recorded"),
    ),
    code_list=FORMS,
    note="OtherForms groups " + ", ".join(_GROUPED_FORMS) + ".",
)

_ROLE_LABELS = htcds_labels("per_RoleInProcess")
#: The roles published on their own; the rest are grouped.
MAIN_ROLES: tuple[str, ...] = ("RecruiterOrIntermediary", "Transporter", "Exploiter")
OTHER_ROLES = "OtherRoles"
_GROUPED_ROLES = tuple(c for c in ROLES if c not in (*MAIN_ROLES, MULTIPLE, UNKNOWN))

ROLE = Classification(
    "role",
    categories=(
        *(Category(c, _ROLE_LABELS[c]) for c in MAIN_ROLES),
        Category(OTHER_ROLES, "Other roles in the trafficking process", _GROUPED_ROLES),
        Category(MULTIPLE, "Several roles recorded"),
        Category(UNKNOWN, "Role not recorded"),
    ),
    code_list=ROLES,
    note="OtherRoles groups " + ", ".join(_GROUPED_ROLES) + ".",
)

YEAR = Classification(
    "year",
    kind=YEARS,
    categories=(
        Category(REST, "Other years (fewer than k persons each when first counted)"),
        Category(UNKNOWN, "Year not recorded"),
    ),
    note="In a release a year is shown on its own once at least k persons are counted in it, "
    "and then in every later release to the same consumer; Rest holds the persons of the other "
    "years.",
)

#: The months of a cumulative series (``YYYY-MM``): calendar months, never taken from the data.
MONTH = Classification(
    "month",
    kind=YEARS,
    note="Each month's value is the number of persons counted at the end of that month "
    "(UTC), since the series began: cumulative, so months are not added up.",
)

REPEATED, ONCE = "Repeated", "Once"
VICTIMISATION = Classification(
    "victimisation",
    categories=(
        Category(REPEATED, "Exploited in two or more different years"),
        Category(ONCE, "Exploited in one year"),
        Category(UNKNOWN, "Year of exploitation not recorded"),
    ),
    code_list=(REPEATED, ONCE, UNKNOWN),
)

#: How many most frequent countries a country dimension publishes before ``Rest``.
TOP_COUNTRIES = 10
_COUNTRY_FIXED = (
    Category(MULTIPLE, "Several countries recorded"),
    Category(REST, "All other countries"),
    Category(UNKNOWN, "Country not recorded"),
)
CITIZENSHIP = Classification(
    "citizenship",
    kind=MOST_FREQUENT,
    categories=_COUNTRY_FIXED,
    code_list=COUNTRY_CODES,
    code_labels=_country_labels(),
    top=TOP_COUNTRIES,
    note=f"The {TOP_COUNTRIES} most frequent citizenships with at least k persons; Multiple: "
    "two or more citizenships recorded for the person; Rest: every other citizenship.",
)
COUNTRY_OF_EXPLOITATION = Classification(
    "country_of_exploitation",
    kind=MOST_FREQUENT,
    categories=_COUNTRY_FIXED,
    code_list=COUNTRY_CODES,
    code_labels=_country_labels(),
    top=TOP_COUNTRIES,
    note=f"The {TOP_COUNTRIES} most frequent countries of exploitation with at least k "
    "persons; Multiple: the person's records name two or more; Rest: every other country.",
)

#: The classification of each dimension name (a stream may declare its own instead).
CLASSIFICATIONS: Mapping[str, Classification] = MappingProxyType(
    {
        c.dimension: c
        for c in (
            YEAR,
            SEX,
            AGE_GROUP,
            FORM,
            VICTIMISATION,
            MONTH,
            CITIZENSHIP,
            COUNTRY_OF_EXPLOITATION,
            ROLE,
        )
    }
)

VICTIMS, PERPETRATORS = "victims", "perpetrators"
#: Whom a count stream counts (``StreamSpec.subject``).
SUBJECTS: tuple[str, ...] = (VICTIMS, PERPETRATORS)
#: The dimensions a stream about perpetrators can be broken down by.
PERPETRATOR_DIMENSIONS = frozenset({"year", "role"})


# -- streams ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """A stream published as a rate: persons per ``per`` population, the denominator being the
    population of the aggregate's categories in the ``population`` dimensions (the operator's
    population file, :mod:`trust.release.population`)."""

    per: int = 100_000
    population: tuple[str, ...] = ("year", "sex", "age_group")

    def __post_init__(self) -> None:
        if isinstance(self.per, bool) or not isinstance(self.per, int) or self.per < 1:
            raise ValueError("a rate is per a whole number of persons >= 1")
        if not self.population or not set(self.population) <= {"year", "sex", "age_group"}:
            raise ValueError("a rate's population is by year, sex and age group (some of them)")


@dataclass(frozen=True)
class Estimate:
    """A stream that publishes a multiple-systems estimate instead of counts.

    ``criterion``: the model-selection rule (``trust.estimate.Criterion``'s values: ``bic``,
    ``aic``, ``pvalue``); ``level``: the interval's coverage (profile likelihood of the chosen
    model: about a second at most, so it can run when the linked data change).
    """

    criterion: str = "bic"
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.criterion not in ("bic", "aic", "pvalue"):
            raise ValueError("an estimate's criterion is bic, aic or pvalue")
        if not 0 < self.level < 1:
            raise ValueError("an estimate's level is a probability in (0, 1)")


@dataclass(frozen=True)
class Synthetic:
    """A stream that publishes k-anonymous synthetic records of the linked persons, one column
    per dimension (``trust.synthesize``: every combination of attributes in the output, of any
    length, is held by at least k persons; k is the plan's).

    ``mode``: the synthesiser's mode (``default`` or ``classic``); ``length``: the reporting
    length of the utility the release states and of the companion aggregate it carries
    (combinations of 1 … ``length`` attributes, counts rounded down to a multiple of k, those
    the persons' table protected by secondary suppression and its audit publishes:
    :mod:`trust.synthesize.companion`); ``purposes``: the subscription purposes it serves
    (record-level data go to research only, on top of what the agreements allow).
    """

    mode: str = "default"
    length: int = 3
    purposes: tuple[str, ...] = ("research",)

    def __post_init__(self) -> None:
        if self.mode not in ("default", "classic"):
            raise ValueError("a synthesis mode is default or classic")
        if self.length < 1 or not self.purposes:
            raise ValueError("a synthetic stream has a reporting length >= 1 and purposes")


@dataclass(frozen=True)
class Cumulative:
    """A stream that publishes, month by month, how many persons a count stream counts at the
    end of each month (the persons counted so far: one value per month, never a cell table),
    as a differentially private continual release (method ``dp_continual``: OpenDP's b-ary tree,
    :mod:`trust.release.disclosure.continual`). ``counts_from``: the count stream whose persons
    it counts (every victims stream counts each person once, so any gives the same total)."""

    counts_from: str = "victims_by_year_sex"


@dataclass(frozen=True)
class StreamSpec:
    """A release stream: its name (``tip.release.<name>``), descriptive metadata and policy.

    ``k`` is the minimum published cell size; ``min_interval_s`` the least time between two
    releases of the stream (0: whenever the published cells change). ``margins``: the release
    publishes every cell, every margin and the total under primary and secondary suppression
    with the LP audit (``disclosure/secondary.md``); otherwise (tables too large for the
    secondary suppression at every release) only the cells and the total under primary
    suppression. ``method``: the disclosure method applied after suppression, by the name it is
    declared under in :mod:`trust.release.disclosure.methods` (``"suppression"``: suppression
    only, values exact).

    ``categories``: the stream's own classification of a dimension, where it differs from
    :data:`CLASSIFICATIONS` (the standard one of its name). ``structural_zeros``: the rules
    declaring cells no person can be in. ``rate``: published as a rate per population
    (None: counts). ``subject``: whom the stream counts (:data:`SUBJECTS`: victims, or
    perpetrator records). ``caveat``: what a reader must know of the stream's figures, in place
    of the release's standard caveat about detected victims (None: the standard caveat).

    ``first_year``: the first year the stream's tables show, declared in advance. Every year from
    it to the current one is then a row whoever is counted (and persons of other years are left
    out), so whether a year appears says nothing of the data. A differentially private stream
    with a year dimension must declare it: under noise, a row that exists only because somebody
    was counted in its year would itself disclose that.
    """

    name: str
    title: str
    unit: str
    dimensions: tuple[str, ...]
    k: int = 10
    min_interval_s: float = 0.0
    margins: bool = False
    method: str = "suppression"
    categories: tuple[Classification, ...] = ()
    structural_zeros: tuple[Impossible, ...] = ()
    rate: Rate | None = None
    estimate: Estimate | None = field(default=None, repr=False)
    synthetic: Synthetic | None = field(default=None, repr=False)
    subject: str = VICTIMS
    caveat: str | None = None
    first_year: int | None = None
    cumulative: Cumulative | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.first_year is not None and (
            "year" not in self.dimensions or not 1900 <= self.first_year <= 9999
        ):
            raise ValueError(f"stream {self.name}: first_year is a year of its year dimension")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InvalidThreshold(f"stream {self.name}: k must be an integer >= 1")
        if self.min_interval_s < 0:
            raise ValueError(f"stream {self.name}: min_interval_s must be >= 0")
        if not self.dimensions or len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"stream {self.name}: dimensions must be non-empty and distinct")
        own = [c.dimension for c in self.categories]
        if len(set(own)) != len(own) or not set(own) <= set(self.dimensions):
            raise ValueError(f"stream {self.name}: its own categories must be of its dimensions")
        for rule in self.structural_zeros:
            if not rule.dimensions() <= set(self.dimensions):
                raise ValueError(f"stream {self.name}: a structural zero names another dimension")
        if self.rate is not None and not set(self.rate.population) <= set(self.dimensions):
            raise ValueError(f"stream {self.name}: a rate's population is by its dimensions")
        if self.estimate is not None and (self.dimensions != (MEASURE.dimension,) or self.rate):
            raise ValueError(f"stream {self.name}: an estimate is published by measure only")
        if self.synthetic is not None and (self.estimate or self.rate or self.margins):
            raise ValueError(f"stream {self.name}: synthetic records are neither rates nor margins")
        if self.subject not in SUBJECTS:
            raise ValueError(f"stream {self.name}: subject is one of {', '.join(SUBJECTS)}")
        if self.cumulative is not None and (
            self.dimensions != (MONTH.dimension,)
            or self.margins
            or self.rate
            or self.estimate
            or self.synthetic
            or self.subject != VICTIMS
        ):
            raise ValueError(f"stream {self.name}: a cumulative series is by month only")
        if self.subject == PERPETRATORS and (
            self.rate
            or self.estimate
            or self.synthetic
            or not set(self.dimensions) <= PERPETRATOR_DIMENSIONS
        ):
            raise ValueError(
                f"stream {self.name}: perpetrators are counted by "
                f"{' and '.join(sorted(PERPETRATOR_DIMENSIONS))} only"
            )

    @property
    def counted(self) -> bool:
        """Whether the stream is a table of counted persons (the stage's counts follow it)."""
        return self.estimate is None and self.synthetic is None and self.cumulative is None

    @property
    def release_cost(self) -> int:
        """How costly a release of this stream is to make, as a rank the release stage checks
        subscriptions by (cheapest first, so a quick stream's release never waits behind a slow
        one's): 0 for a table of cells (rates and cumulative series included) or a two-way
        table with its margins; 1 for a table of more dimensions with every margin (secondary
        suppression with the LP audit: over the four-way table's thousands of values, seconds);
        2 for prevalence
        estimates and synthetic microdata (a model fitted at each release)."""
        if self.estimate is not None or self.synthetic is not None:
            return 2
        return 1 if self.margins and len(self.dimensions) > 2 else 0

    def classification(self, dimension: str) -> Classification:
        """How the stream publishes ``dimension``; :class:`UnknownDimension` if it cannot."""
        for c in self.categories:
            if c.dimension == dimension:
                return c
        try:
            return CLASSIFICATIONS[dimension]
        except KeyError:
            raise UnknownDimension(
                f"stream {self.name}: no classification for dimension {dimension!r}"
            ) from None

    def classifications(self) -> tuple[Classification, ...]:
        """Each dimension's classification, in the stream's order."""
        return tuple(self.classification(d) for d in self.dimensions)

    def hierarchies(self) -> dict[str, tuple[tuple[str, tuple[str, ...]], ...]]:
        """``{dimension: ((parent, children), …)}`` of the dimensions with a hierarchy."""
        return {c.dimension: c.hierarchy() for c in self.classifications() if c.parents}

    def labels(self) -> dict[str, dict[str, str]]:
        """Every label the stream can publish, per dimension."""
        return {c.dimension: c.labels() for c in self.classifications()}


_PERSONS = "persons (detected victims)"

VICTIMS_BY_YEAR_SEX = StreamSpec(
    "victims_by_year_sex",
    "Detected victims by year of exploitation and sex",
    _PERSONS,
    ("year", "sex"),
    margins=True,
)

VICTIMS_BY_YEAR_AGE_GROUP = StreamSpec(
    "victims_by_year_age_group",
    "Detected victims by year of exploitation and age group (children 0-17, adults 18+)",
    _PERSONS,
    ("year", "age_group"),
    margins=True,
)

VICTIMS_BY_YEAR_FORM = StreamSpec(
    "victims_by_year_form",
    "Detected victims by year and form of exploitation",
    _PERSONS,
    ("year", "form"),
    margins=True,
)

VICTIMS_BY_SEX_AGE_FORM = StreamSpec(
    "victims_by_sex_age_form",
    "Detected victims by sex, age group, form of exploitation and year",
    _PERSONS,
    ("year", "sex", "age_group", "form"),
    margins=True,
)
"""Year x sex x age group x form with every margin (the age groups' hierarchy included) and the
total, under secondary suppression and the LP audit like the two-way streams: a few CPU seconds
per release (``disclosure/secondary.md``). The same exact counts as an earlier release give that
release again (the replay rule, ``disclosure/differencing.md``), so an undone merge gives the
release back."""

REPEAT_VICTIMISATION = StreamSpec(
    "repeat_victimisation",
    "Detected victims exploited in more than one year, by sex and first year of exploitation",
    "persons (detected victims, after linkage)",
    ("year", "sex", "victimisation"),
    margins=True,
    structural_zeros=(
        Impossible(
            "a person with no recorded year of exploitation is neither a repeat nor a "
            "one-time victim",
            where=(("year", (UNKNOWN,)), ("victimisation", (REPEATED, ONCE))),
        ),
        Impossible(
            "a person with a recorded year of exploitation is a repeat or a one-time victim",
            where=(("victimisation", (UNKNOWN,)),),
            other_than=(("year", (UNKNOWN,)),),
        ),
    ),
)
"""A person is a repeat victim when their linked records name at least two different years of
exploitation (the manual's repeat victimisation: one person in separate events at different
times). Records of one event reported by several agencies share its year, so they never make a
person a repeat victim by themselves; a person whose records name no year is ``Unknown``. The
year is the first year: a person has a year exactly when they are a repeat or a one-time
victim, so the other cells of those rows are structural zeros."""

SDG_16_2_2 = StreamSpec(
    "sdg_16_2_2",
    "SDG indicator 16.2.2: detected victims of trafficking per 100,000 population, by year, "
    "sex, age group and form of exploitation",
    "detected victims per 100,000 population",
    ("year", "sex", "age_group", "form"),
    margins=True,
    rate=Rate(per=100_000, population=("year", "sex", "age_group")),
)
"""The SDG 16.2.2 indicator from the trust's counts: every aggregate of the year x sex x age
group x form table after disclosure control, divided by the population of its year, sex and
age group (a form of exploitation has no population: a rate by form is per the whole
population of the year, sex and age group). A suppressed count gives a suppressed rate; an
aggregate without a denominator (sex or age not recorded, a total over the years) is not
published (:mod:`trust.release.rates`)."""

VICTIMS_BY_YEAR_CITIZENSHIP = StreamSpec(
    "victims_by_year_citizenship",
    "Detected victims by year of exploitation and citizenship (most frequent citizenships)",
    _PERSONS,
    ("year", "citizenship"),
    margins=True,
)

VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION = StreamSpec(
    "victims_by_year_country_of_exploitation",
    "Detected victims by year and country of exploitation (most frequent countries)",
    _PERSONS,
    ("year", "country_of_exploitation"),
    margins=True,
)

PERPETRATORS_BY_ROLE = StreamSpec(
    "perpetrators_by_role",
    "Perpetrator records by year of exploitation and role in the trafficking process",
    "perpetrator records (not linked across sources)",
    ("year", "role"),
    margins=True,
    subject=PERPETRATORS,
    caveat=(
        "Counts of perpetrator records (suspects among them) held by the contributing agencies "
        "whose agreements share perpetrator data: one per distinct agency, case and "
        "perpetrator id, never linked across agencies or cases, so a person recorded by two "
        "agencies or in two cases counts twice. Whatever their recorded legal status (suspected, "
        "prosecuted, convicted, acquitted): not a count of offenders or convictions; a "
        "change may reflect investigative effort rather than trafficking."
    ),
)
"""Perpetrators have other protection needs than victims (the manual's section 4): they are
suspects, and a count of them by year and role can reveal an investigation. So the stream counts
only sources whose agreement in force sets ``perpetrator_sharing``, the least k is the
strictest of the stream's and those agreements', and every margin is protected by secondary
suppression and the LP audit as for the victims' two-way streams. A perpetrator's year is its
case's year of exploitation; its role is one cell per perpetrator (the single role recorded,
``Multiple`` or ``Unknown``). Retracted and disposed cases' perpetrators are not counted."""

STREAMS: dict[str, StreamSpec] = {
    s.name: s
    for s in (
        VICTIMS_BY_YEAR_SEX,
        VICTIMS_BY_YEAR_AGE_GROUP,
        VICTIMS_BY_YEAR_FORM,
        VICTIMS_BY_SEX_AGE_FORM,
        REPEAT_VICTIMISATION,
        SDG_16_2_2,
        VICTIMS_BY_YEAR_CITIZENSHIP,
        VICTIMS_BY_YEAR_COUNTRY_OF_EXPLOITATION,
        PERPETRATORS_BY_ROLE,
    )
}


OBSERVED, ESTIMATED, CI_LOW, CI_HIGH = "observed", "estimate", "ci_low", "ci_high"
#: The numbers an estimate stream publishes, in order.
MEASURES: tuple[str, ...] = (OBSERVED, ESTIMATED, CI_LOW, CI_HIGH)
MEASURE = Classification(
    "measure",
    categories=(
        Category(OBSERVED, "Detected victims (persons on at least one list)"),
        Category(ESTIMATED, "Estimated victims, detected and undetected"),
        Category(CI_LOW, "Lower limit of the interval of the estimate"),
        Category(CI_HIGH, "Upper limit of the interval of the estimate"),
    ),
    code_list=MEASURES,
    note="The interval is published beside the estimate, always: the estimate alone says "
    "nothing of how uncertain it is.",
)

PREVALENCE_ESTIMATE = StreamSpec(
    "prevalence_estimate",
    "Estimated number of victims, detected and undetected (multiple-systems estimation)",
    "persons (victims, estimated)",
    (MEASURE.dimension,),
    k=10,
    min_interval_s=3600.0,
    categories=(MEASURE,),
    estimate=Estimate(),
)
"""The annex 7 estimate from the linked persons of the sources a subscription may receive: how
many were detected, the estimate of the total and its interval — never a per-list count or an
overlap (they can be small cells). Released when the linked data change materially
(:mod:`trust.estimate.stream`), at most once an hour."""

SYNTHETIC_MICRODATA = StreamSpec(
    "synthetic_microdata",
    "Synthetic records of detected victims (k-anonymous), for research",
    "synthetic records (not persons)",
    ("sex", "age_group", "form", "year"),
    k=10,
    min_interval_s=86_400.0,
    synthetic=Synthetic(),
)
"""Synthetic microdata for approved researchers (manual box 7, annex 6): records whose every
combination of attributes, of any length, at least k linked persons of the allowed sources
share, made by ``trust.synthesize``'s default mode and checked by its independent checker before
signing; beside them, in the same signed release, the companion aggregate (counts of
combinations of up to three attributes, rounded down to a multiple of k, as the CTDC's dashboards
show beside its synthetic data — but only those that the table of this stream's persons by the
four attributes, the table of ``victims_by_sex_age_form``, publishes after suppression below k,
secondary suppression and the LP audit; checked on the checker's own path too); at most daily,
and only when the persons changed."""

VICTIMS_BY_MONTH_CUMULATIVE = StreamSpec(
    "victims_by_month_cumulative",
    "Detected victims counted by the end of each month (cumulative, differential privacy)",
    _PERSONS,
    (MONTH.dimension,),
    k=10,
    method="dp_continual",
    cumulative=Cumulative(),
    caveat=(
        "Each month's value is the number of detected victims the trust counted at the end of "
        "that month (UTC), every year of exploitation included: a cumulative series, so the "
        "months are not added up, and the total is the latest month's value. Values carry "
        "differentially private noise (OpenDP's b-ary tree: each month's noise is drawn once "
        "and never changes; a later release adds months and repeats the earlier ones), so they "
        "are not exact and may even fall from one month to the next; values below k are not "
        "shown. Persons removed after a month closed (retractions, erasures, linkage merges) "
        "leave the values of the following months. Detected cases, not prevalence."
    ),
)
"""A monthly cumulative series of the persons counted (the issue's cumulative monthly series
under continual release): the first release covers the month before it with everyone counted
so far; each later calendar month is closed at the first check after it ends and published with
every earlier month again, their values unchanged (each node of the tree is drawn once, its draw
kept in the release's event metadata). The series' ε (1 by default) is charged once to each
contributing source, when it is first counted in the series; after 64 months the series ends
(refused, ``continual_series_ended``)."""

#: The streams made from the linked persons rather than counted into cells (the stage's counts
#: never follow them).
ESTIMATE_STREAMS: dict[str, StreamSpec] = {
    s.name: s for s in (PREVALENCE_ESTIMATE, SYNTHETIC_MICRODATA, VICTIMS_BY_MONTH_CUMULATIVE)
}

#: Every stream a consumer may subscribe to: the count streams, then the estimates.
CATALOGUE: dict[str, StreamSpec] = {**STREAMS, **ESTIMATE_STREAMS}


def stream(name: str) -> StreamSpec:
    """The declared stream called ``name``; :class:`UnknownStream` if there is none."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownStream(f"no release stream is declared as {name!r}") from None


#: Every label a release can carry, per dimension, from the standard classifications.
DIMENSION_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {name: MappingProxyType(c.labels()) for name, c in CLASSIFICATIONS.items()}
)
