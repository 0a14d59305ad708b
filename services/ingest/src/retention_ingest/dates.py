"""Order timestamps: which date format a column uses, and reading it as UTC.

Text dates come in families: ISO (`2010-12-01 08:26:00`, optionally with an offset), day-first
(`01/12/2010 08:26`), month-first (`12/1/2010 8:26`) and compact (`20101201`, CDNOW). Detection
scores each family by how many distinct values of the column it parses (a year outside 1900..2100
does not count, which keeps `%Y` from reading `10` as year 10). Day-first and month-first are told
apart by the data: a value like `13/01/2011` only parses day-first. When every value seen so far
parses both ways the guess is *ambiguous*; callers feed more values (`observe`) until it settles,
and if it never does, day-first is reported with `ambiguous=True`. A mapping's `date_format`
overrides detection: a strftime pattern, or `day_first` / `month_first` to settle only that
question (the pattern within the family is still detected). Typed columns (Parquet, Excel dates
read natively) need no format.

Naive timestamps are wall-clock time in the tenant's IANA timezone and are converted to UTC the
way `datetime.replace(tzinfo=ZoneInfo(tz))` reads them (PEP 495, fold=0), so files and the JSON
paths agree: a repeated hour (autumn) is its first occurrence, a skipped hour (spring) is read with
the offset in force before the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from retention_ingest.errors import IngestError, IngestErrorCode

UTC_DATETIME = pl.Datetime("us", "UTC")
_YEARS = (1900, 2100)
# Distinct values tried per observed chunk: plenty to meet a day > 12, cheap to parse 60 ways.
_SAMPLE = 20_000


def _day_month_patterns(first: str, second: str) -> tuple[str, ...]:
    times = ("%H:%M:%S%.f", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
    patterns = []
    for separator in ("/", "-", "."):
        for year in ("%Y", "%y"):
            day = f"{first}{separator}{second}{separator}{year}"
            patterns += [f"{day} {time}" for time in times] + [day]
    return tuple(patterns)


# Aware patterns (with an offset) come first so an ISO value with an offset is never misread.
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
FAMILIES: dict[str, tuple[str, ...]] = {
    "iso": (
        *_ISO_AWARE,
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M",
        "%Y/%m/%d",
    ),
    "day_first": _day_month_patterns("%d", "%m"),
    "month_first": _day_month_patterns("%m", "%d"),
    "compact": ("%Y%m%d", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S"),
}
# What a mapping's `date_format` may name instead of a pattern: the one choice data can leave open.
DATE_ORDERS = ("day_first", "month_first")


@dataclass(frozen=True)
class DateFormat:
    """How a column's timestamps are read; reported in the upload status."""

    # "iso" | "day_first" | "month_first" | "compact" | "given" (mapping) | "native" (typed column)
    order: str
    # Tried in turn on every value; the first is the one most values had in the sample.
    patterns: tuple[str, ...] = ()
    ambiguous: bool = False
    # Tried only on values none of `patterns` parses (rare shapes of the same family).
    fallback: tuple[str, ...] = ()

    @classmethod
    def given(cls, pattern: str) -> DateFormat:
        return cls("given", (pattern,))

    @classmethod
    def of_mapping(cls, date_format: str) -> DateFormat:
        """A mapping's `date_format` for values read one record at a time (`orders.raw`): a
        pattern, or every pattern of the named order (files detect which, `DateFormatDetector`)."""
        if date_format in DATE_ORDERS:
            return cls(date_format, FAMILIES[date_format])
        return cls.given(date_format)

    @classmethod
    def native(cls) -> DateFormat:
        return cls("native")

    @classmethod
    def iso(cls) -> DateFormat:
        """ISO 8601 with or without an offset: what the canonical JSON orders carry."""
        return cls("iso", FAMILIES["iso"])

    def describe(self) -> dict[str, object]:
        return {
            "order": self.order,
            "pattern": self.patterns[0] if self.patterns else None,
            "ambiguous": self.ambiguous,
        }


def check_timezone(timezone: str) -> str:
    """`timezone` if naive timestamps can be read in it; else `unknown_timezone`.

    Python's zoneinfo opens any TZif file of the tz database (`posixrules`, `Factory`,
    `localtime`, `right/UTC`); polars, which reads the timestamps, knows only the IANA names,
    and such a zone failed every upload and order read in it after a 202 or 200.
    """
    try:
        ZoneInfo(timezone)
        pl.Series([datetime(2011, 1, 1)]).dt.replace_time_zone(timezone)
    except (ZoneInfoNotFoundError, ValueError, pl.exceptions.PolarsError):
        raise IngestError(
            IngestErrorCode.UNKNOWN_TIMEZONE,
            f"{timezone!r} is not an IANA timezone such as Europe/London",
            "timezone",
        ) from None
    return timezone


def _parse_pattern(values: pl.Series, pattern: str, timezone: str) -> pl.Series:
    parsed = values.str.to_datetime(pattern, strict=False, time_unit="us")
    utc = (
        parsed.dt.convert_time_zone("UTC")
        if parsed.dtype == UTC_DATETIME or getattr(parsed.dtype, "time_zone", None)
        else localize_to_utc(parsed, timezone)
    )
    # `%Y` also reads "10" as the year 10: outside a sane range it is not a date, it is an error.
    year = utc.dt.year()
    return utc.set((year < _YEARS[0]) | (year > _YEARS[1]), None)


def _parse_patterns(values: pl.Series, patterns: tuple[str, ...], timezone: str) -> pl.Series:
    result = pl.Series(values.name, [None] * len(values), dtype=UTC_DATETIME)
    for pattern in patterns:
        todo = result.is_null() & values.is_not_null()
        if not todo.any():
            break
        if todo.all():
            result = _parse_pattern(values, pattern, timezone)
        else:
            index = todo.arg_true()
            result = result.scatter(index, _parse_pattern(values.gather(index), pattern, timezone))
    return result


def localize_to_utc(naive: pl.Series, timezone: str) -> pl.Series:
    """Wall-clock times in `timezone` as UTC instants, DST-correct (PEP 495 fold=0 semantics)."""
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    utc = local.dt.convert_time_zone("UTC")
    skipped = utc.is_null() & naive.is_not_null()
    if skipped.any():
        # In a spring-forward gap: use the offset in force a day earlier, i.e. before the gap.
        index = skipped.arg_true()
        gap = naive.gather(index)
        before = gap - timedelta(days=1)
        before_utc = (
            before.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
        )
        utc = utc.scatter(index, (gap - (before - before_utc)).dt.replace_time_zone("UTC"))
    return utc.cast(UTC_DATETIME)


def parse_datetimes(values: pl.Series, date_format: DateFormat, timezone: str) -> pl.Series:
    """A text or typed timestamp column as UTC instants; null where a value does not parse."""
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone:
            return values.dt.convert_time_zone("UTC").cast(UTC_DATETIME)
        return localize_to_utc(values.cast(pl.Datetime("us")), timezone)
    if dtype == pl.Date:
        return localize_to_utc(values.cast(pl.Datetime("us")), timezone)
    text = values.cast(pl.String).str.strip_chars()
    result = _parse_patterns(text, date_format.patterns, timezone)
    if date_format.fallback:
        todo = result.is_null() & text.is_not_null()
        if todo.any():
            index = todo.arg_true()
            retry = _parse_patterns(text.gather(index), date_format.fallback, timezone)
            result = result.scatter(index, retry)
    return result


@dataclass
class DateFormatDetector:
    """Accumulates evidence over a column's values (chunk by chunk) until the format settles."""

    timezone: str = "UTC"
    # The families to choose from: all, or the one a mapping's `date_format` names (`day_first`).
    families: tuple[str, ...] = tuple(FAMILIES)
    values_seen: int = 0
    _hits: dict[str, dict[str, int]] = field(default_factory=dict)

    def observe(self, values: pl.Series) -> None:
        text = values.cast(pl.String).str.strip_chars()
        distinct = text.filter(text.is_not_null() & (text != "")).unique(maintain_order=True)
        if distinct.is_empty():
            return
        if len(distinct) > _SAMPLE:
            # Evenly spaced, so the sample is deterministic and spans the whole chunk.
            distinct = distinct.gather_every(len(distinct) // _SAMPLE)
        self.values_seen += len(distinct)
        for family in self.families:
            patterns = FAMILIES[family]
            hits = self._hits.setdefault(family, {})
            remaining = distinct
            for pattern in patterns:
                parsed = _parse_pattern(remaining, pattern, "UTC")
                ok = parsed.is_not_null()
                count = int(ok.sum())
                if count:
                    hits[pattern] = hits.get(pattern, 0) + count
                    remaining = remaining.filter(~ok)
                if remaining.is_empty():
                    break

    def _score(self, family: str) -> int:
        return sum(self._hits.get(family, {}).values())

    @property
    def settled(self) -> bool:
        """True unless the best guess so far is a day-first/month-first tie."""
        return not self._best()[1]

    def _best(self) -> tuple[str, bool]:
        scores = {family: self._score(family) for family in self.families}
        best = max(scores, key=lambda family: scores[family])
        tie = scores.get("day_first") == scores.get("month_first")
        ambiguous = best in ("day_first", "month_first") and tie and scores[best] > 0
        return ("day_first" if ambiguous else best), ambiguous

    def result(self, column: str) -> DateFormat:
        """The detected format; raises `unparseable_date_column` if most values parse in none."""
        family, ambiguous = self._best()
        score = self._score(family)
        if self.values_seen == 0 or score * 2 < self.values_seen:
            recognized = (
                "(ISO, day-first, month-first or YYYYMMDD)"
                if len(self.families) > 1
                else f"({', '.join(self.families)}, as mapping.date_format says)"
            )
            raise IngestError(
                IngestErrorCode.UNPARSEABLE_DATE_COLUMN,
                f"column {column!r} (order_datetime) is not in a date format we recognize "
                f"{recognized}; give mapping.date_format, e.g. %d.%m.%Y %H:%M",
                "order_datetime",
            )
        hits = self._hits[family]
        seen = tuple(sorted(hits, key=lambda pattern: -hits[pattern]))
        rest = tuple(p for p in FAMILIES[family] if p not in seen)
        return DateFormat(family, seen, ambiguous=ambiguous, fallback=rest)


def check_given_format(values: pl.Series, date_format: DateFormat, column: str) -> None:
    """Fail early when a mapping's `date_format` reads none of the column's first values."""
    text = values.cast(pl.String).str.strip_chars()
    present = text.filter(text.is_not_null() & (text != "")).head(1000)
    if present.is_empty():
        return
    if parse_datetimes(present, date_format, "UTC").is_null().all():
        raise IngestError(
            IngestErrorCode.UNPARSEABLE_DATE_COLUMN,
            f"mapping.date_format {date_format.patterns[0]!r} reads none of column {column!r}'s "
            f"values, e.g. {present[0]!r}",
            "order_datetime",
        )
