"""The metric contract (docs/metrics.md) and the metric names a PromQL expression references.

`documented_metrics()` is the one reader of the table in docs/metrics.md; reuse it wherever a
test compares metric names (dashboard, alert rules, or what the running services export).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

METRICS_DOC = REPO / "docs" / "metrics.md"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    service: str
    meaning: str

    def exposed_names(self) -> set[str]:
        """The series names Prometheus scrapes for this metric (histograms: three of them)."""
        if self.type == "histogram":
            return {self.name + suffix for suffix in HISTOGRAM_SUFFIXES}
        return {self.name}


_ROW = re.compile(r"^\|\s*`(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|(?P<rest>.*)\|\s*$")


def documented_metrics(path: Path = METRICS_DOC) -> dict[str, Metric]:
    """Every metric of the table in docs/metrics.md, by name."""
    metrics: dict[str, Metric] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line.strip())
        if not match:
            continue
        cells = [cell.strip() for cell in match["rest"].split("|")]
        if len(cells) != 4:
            raise ValueError(f"metrics table row needs 5 columns: {line!r}")
        kind, labels, service, meaning = cells
        if match["name"] in metrics:
            raise ValueError(f"metric {match['name']} documented twice")
        metrics[match["name"]] = Metric(
            name=match["name"],
            type=kind,
            labels=tuple(re.findall(r"`([a-zA-Z_][a-zA-Z0-9_]*)`", labels)),
            service=service,
            meaning=meaning,
        )
    if not metrics:
        raise ValueError(f"no metrics table found in {path}")
    return metrics


def exposed_metric_names(path: Path = METRICS_DOC) -> set[str]:
    """All series names the documented metrics expose (with histogram suffixes)."""
    return {name for metric in documented_metrics(path).values() for name in metric.exposed_names()}


# --- PromQL -----------------------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+", re.IGNORECASE)
_AT = re.compile(r"@\s*(?:start\(\)|end\(\)|[0-9.]+)")
# An identifier not inside a number (1e3) and not a function call (name followed by "(").
_IDENTIFIER = re.compile(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:]|\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (regex-based; enough for our rules).

    Strips string literals, label matchers, range/subquery brackets, grouping clauses and
    offsets, then keeps the identifiers that are neither function calls nor keywords.
    """
    text = _STRINGS.sub('""', expr)
    text = _LABEL_MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _AT.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def unknown_metric_names(expr: str, documented: dict[str, Metric]) -> set[str]:
    """Names in `expr` that are not a documented metric (histogram suffixes allowed)."""
    allowed = {name for metric in documented.values() for name in metric.exposed_names()}
    return promql_metric_names(expr) - allowed
