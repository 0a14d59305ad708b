"""`GET /v1/cohorts` and `/v1/cohorts.csv` on the running stack, against the slice's own orders.

The expected matrix is computed here from the slice as ingest cleans it, in a way of its own
(truncated dates, float sums), not by `retention_trainer.cohorts`: every cell of the shares and
sizes, monthly and quarterly, and of the monthly revenue and orders must match it.
"""

from __future__ import annotations

import io

import httpx
import polars as pl
import pytest

from retention_cli.stack import Stack
from retention_ingest.file_ingest import ingest_file
from retention_shared.features import orders_from_event_columns
from tests.support.problems import field_problems, first_problem
from tests.support.stack import READ_KEY, SLICE, auth, url

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slice_orders(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    work = tmp_path_factory.mktemp("cohorts")
    result = ingest_file(SLICE, tenant_id="default", source="expected", work_dir=work)
    return orders_from_event_columns(result.events().collect())


def expected(orders: pl.DataFrame, period: str) -> dict[str, dict]:
    """Per cohort label: start, size and, per age up to the last order's period, the share of
    customers with a purchase, the purchase orders and the net total (cancellations included)
    of the orders from each customer's first purchase on."""
    every = {"month": "1mo", "quarter": "1q"}[period]
    months = {"month": 1, "quarter": 3}[period]
    dated = orders.with_columns(at=pl.col("occurred_at").dt.truncate(every).dt.date())
    firsts = (
        dated.filter(pl.col("kind") == "purchase")
        .group_by("customer_id")
        .agg(first_purchase=pl.col("occurred_at").min(), start=pl.col("at").min())
    )
    last = dated["at"].max()

    start, at = pl.col("start"), pl.col("at")
    months_since = (at.dt.year() - start.dt.year()) * 12 + at.dt.month().cast(pl.Int32)
    cells = (
        dated.join(firsts, on="customer_id")
        .filter(pl.col("occurred_at") >= pl.col("first_purchase"))
        .with_columns(age=(months_since - start.dt.month().cast(pl.Int32)) // months)
        .group_by("start", "age")
        .agg(
            active=pl.col("customer_id").filter(pl.col("kind") == "purchase").n_unique(),
            orders=(pl.col("kind") == "purchase").sum(),
            revenue=pl.col("total").sum(),
        )
    )
    sizes = firsts.group_by("start").agg(size=pl.len())
    result = {}
    for start, size in sizes.sort("start").iter_rows():
        label = (
            start.strftime("%Y-%m")
            if period == "month"
            else f"{start.year}-Q{(start.month - 1) // 3 + 1}"
        )
        ages = ((last.year - start.year) * 12 + last.month - start.month) // months + 1
        mine = {row["age"]: row for row in cells.filter(start=start).iter_rows(named=True)}
        zero = {"active": 0, "orders": 0, "revenue": 0.0}
        result[label] = {
            "start": start.isoformat(),
            "size": size,
            "customers": [mine.get(a, zero)["active"] / size for a in range(ages)],
            "orders": [mine.get(a, zero)["orders"] for a in range(ages)],
            "revenue": [mine.get(a, zero)["revenue"] for a in range(ages)],
        }
    return result


def cohorts(
    stack: Stack, key: str | None = None, suffix: str = "", **params: str
) -> httpx.Response:
    headers = auth(key) if key else auth()
    return httpx.get(f"{url(stack, 'trainer')}/v1/cohorts{suffix}", params=params, headers=headers)


@pytest.mark.parametrize(
    ("period", "metrics"),
    [("month", ("customers", "revenue", "orders")), ("quarter", ("customers",))],
)
def test_every_cell_matches_the_slices_own_orders(
    loaded_stack: Stack, slice_orders: pl.DataFrame, period: str, metrics: tuple[str, ...]
) -> None:
    wanted = expected(slice_orders, period)
    for metric in metrics:
        response = cohorts(loaded_stack, period=period, metric=metric)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["tenant_id"], body["period"], body["metric"]) == ("default", period, metric)
        assert body["as_of"].replace("Z", "+00:00") == slice_orders["occurred_at"].max().isoformat()
        got = {c["cohort"]: c for c in body["cohorts"]}
        assert list(got) == list(wanted)  # every cohort, oldest first
        for label, cohort in got.items():
            assert cohort["start"] == wanted[label]["start"]
            assert cohort["size"] == wanted[label]["size"], label
            assert cohort["values"] == pytest.approx(wanted[label][metric], abs=1e-6), label
        assert body["max_age"] == max(len(c["values"]) for c in body["cohorts"]) - 1
    if period == "quarter":
        assert all(label[4:6] == "-Q" for label in got)


def test_from_and_to_pick_cohorts_by_their_start(loaded_stack: Stack) -> None:
    # The read role is enough.
    body = cohorts(loaded_stack, READ_KEY, **{"from": "2011-02-15", "to": "2011-05-01"}).json()
    assert [c["cohort"] for c in body["cohorts"]] == ["2011-03", "2011-04", "2011-05"]
    assert body["max_age"] == len(body["cohorts"][0]["values"]) - 1


@pytest.mark.parametrize(("period", "metric"), [("month", "revenue"), ("quarter", "customers")])
def test_the_csv_holds_the_same_cells_as_the_json(
    loaded_stack: Stack, period: str, metric: str
) -> None:
    params = {"period": period, "metric": metric, "from": "2011-01-01"}
    body = cohorts(loaded_stack, **params).json()
    response = cohorts(loaded_stack, suffix=".csv", **params)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    csv = pl.read_csv(io.BytesIO(response.content))
    assert csv.columns == ["cohort", "cohort_size", "age", "period", "value"]
    from_json = [
        (c["cohort"], c["size"], age, value)
        for c in body["cohorts"]
        for age, value in enumerate(c["values"])
    ]
    assert csv.select("cohort", "cohort_size", "age", "value").rows() == from_json
    # The period column names the calendar period of each age.
    last = csv.filter(pl.col("cohort") == body["cohorts"][0]["cohort"]).row(-1, named=True)
    assert last["period"] == csv["period"].max()


def test_another_tenant_sees_no_cohorts(loaded_stack: Stack) -> None:
    body = cohorts(loaded_stack, key="e2e-other").json()
    assert body == {
        "tenant_id": "other",
        "period": "month",
        "metric": "customers",
        "as_of": None,
        "cohorts": [],
        "max_age": 0,
    }
    csv = cohorts(loaded_stack, key="e2e-other", suffix=".csv")
    assert csv.text.strip() == "cohort,cohort_size,age,period,value"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "week"}, "query.period"),
        ({"metric": "profit"}, "query.metric"),
        ({"from": "2011-02-30"}, "query.from"),
        ({"to": "last year"}, "query.to"),
        ({"from": "2011-06-01", "to": "2011-01-01"}, "query.to"),
    ],
)
@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_a_bad_parameter_is_a_422_naming_it(
    loaded_stack: Stack, params: dict[str, str], field: str, suffix: str
) -> None:
    response = cohorts(loaded_stack, suffix=suffix, **params)
    assert response.status_code == 422, response.text
    assert [found for found, _ in field_problems(response)] == [field]


def test_without_a_key_is_a_401(loaded_stack: Stack) -> None:
    response = httpx.get(f"{url(loaded_stack, 'trainer')}/v1/cohorts")
    assert response.status_code == 401
    assert first_problem(response)[0] == "Authorization"
