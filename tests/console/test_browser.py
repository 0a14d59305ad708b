"""The console in real headless Chromium against the real stack on the real broker.

From an empty data directory: sign in → upload a slice of `online_retail` whose columns are
renamed and whose dates are day-first, through the mapping form → the progress bar reaches done →
a model is trained → the Overview numbers equal the API's → the Segments chart has one mark per
segment → a customer page shows reasons and order history equal to the API → the campaign plan
changes when the budget changes → the downloaded CSV equals the API's CSV for the same filter →
sign out. Then: a read-only key sees no upload form and is refused if it posts anyway; tenant B
sees none of tenant A's customers; a stopped scoring service reads as a message. Each step saves
a screenshot (RETENTION_SCREENSHOT_DIR keeps them; docs/console.md shows them).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from playwright.sync_api import Browser, Page, expect

from retention_cli.stack import WITH_CONSOLE, Stack
from retention_console.pages.overview import at_risk_list_query
from retention_console.rendering import percent
from retention_shared.customer_lists import HIGH_VALUE_AT_RISK
from retention_shared.embedded_broker import EmbeddedBroker
from tests.console.browser import Screens, sign_in
from tests.support.stack import API_KEY, READ_KEY, auth, stack_of_its_own, url
from tests.support.uci_orders import TEST_DATA

pytestmark = pytest.mark.slow

OTHER_KEY = "e2e-other"
# The slice as a spreadsheet user re-exports it: their own column names, dd/mm/yyyy dates.
RENAMED = {
    "InvoiceNo": "Receipt",
    "StockCode": "Article",
    "Description": "Article name",
    "Quantity": "Amount",
    "InvoiceDate": "Date",
    "UnitPrice": "Price",
    "CustomerID": "Client",
    "Country": "Market",
}
MAPPING = {
    "customer_id": "Client",
    "order_id": "Receipt",
    "order_datetime": "Date",
    "product_id": "Article",
    "quantity": "Amount",
    "unit_price": "Price",
    "country": "Market",
}
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = pl.read_parquet(TEST_DATA / "online_retail_slice.parquet")
    path = tmp_path_factory.mktemp("export") / "shop-export.csv"
    source.rename(RENAMED).with_columns(pl.col("Date").dt.strftime("%d/%m/%Y %H:%M")).write_csv(
        path
    )
    return path


@pytest.fixture(scope="module")
def stack(kafka: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("console-stack")
    with stack_of_its_own(kafka, work, "console", services=WITH_CONSOLE) as running:
        yield running


@pytest.fixture(scope="module")
def console(stack: Stack) -> str:
    return url(stack, "console")


def api(stack: Stack, service: str, path: str, key: str = API_KEY, **params: object) -> dict:
    response = httpx.get(f"{url(stack, service)}{path}", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(check, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(what)


# `stack` comes first in every test: Playwright's sync API keeps an event loop running in this
# thread, so the stack (which uses asyncio.run to create its topics) must be up before it starts.
def test_the_console_tour(
    stack: Stack, console: str, export: Path, browser: Browser, screens: Screens
) -> None:
    page = browser.new_page(viewport=WIDE, accept_downloads=True)
    sign_in(page, console, API_KEY)
    # A new tenant is asked for its first export.
    expect(page.get_by_role("heading", name="Upload your first export")).to_be_visible()
    screens.take(page, "01-empty-overview")

    _upload_through_the_mapping_form(page, console, export, screens)
    _wait_for_a_served_model(stack, page, console, screens)
    _overview_equals_the_api(page, stack, console, screens)
    _segments_chart_has_one_mark_per_segment(page, stack, console, screens)
    _customer_page_equals_the_api(page, stack, console, screens)
    _campaign_plan_follows_the_budget(page, console, screens)
    _download_equals_the_api_csv(page, stack, console, screens)
    _cohorts_and_models(page, console, screens)
    _every_page_is_accessible_at_both_widths(page, console, screens)
    _a_table_that_scrolls_sideways_says_so(page, console)
    _a_date_filter_shows_the_whole_date(page, console)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{console}/signin")
    page.goto(f"{console}/customers")
    expect(page).to_have_url(f"{console}/signin?next=/customers")
    screens.take(page, "12-signed-out")
    page.close()


def _upload_through_the_mapping_form(
    page: Page, console: str, export: Path, screens: Screens
) -> None:
    page.goto(f"{console}/data")
    page.get_by_label("Export file").set_input_files(str(export))
    screens.take(page, "02-data-file-chosen")
    page.get_by_role("button", name="Upload and preview").click()
    form = page.locator("#mapping-form")
    expect(form).to_be_visible()
    for field, column in MAPPING.items():
        form.locator(f"select[name='map-{field}']").select_option(column)
    date_order = form.locator("select[name='date_format']")
    if date_order.count():
        date_order.select_option("day_first")
    # The preview shows the rows as the import stores them: the CSV's 12583.0 (a float column
    # written out) is the customer 12583, its price 18.0 the number 18.
    first = page.locator("#preview-rows tbody tr").first
    expect(first.locator("td").first).to_have_text("12583")
    expect(page.locator("#preview-rows")).not_to_contain_text("12583.0")
    expect(first.locator("td.num").last).to_have_text("18")
    screens.take(page, "03-data-mapping", full_page=True)
    page.get_by_role("button", name="Import").click()
    progress = page.locator("#upload-progress")
    expect(progress).to_be_visible()
    expect(progress).to_have_attribute("data-state", "done", timeout=120_000)
    screens.take(page, "04-data-done", full_page=True)
    accepted = page.locator("[data-result='accepted']").get_attribute("data-value")
    assert accepted is not None and int(accepted) > 20_000


def _wait_for_a_served_model(stack: Stack, page: Page, console: str, screens: Screens) -> None:
    def served() -> bool:
        response = httpx.get(f"{url(stack, 'scoring')}/v1/insights", headers=auth())
        if response.status_code != 200:
            return False
        customers = next(k for k in response.json()["kpis"] if k["name"] == "customers")
        upload = httpx.get(f"{url(stack, 'ingest')}/v1/uploads", headers=auth()).json()
        expected = upload["uploads"][0]["customers"]
        return customers["value"] == expected

    wait_until(served, "a trained model scoring every uploaded customer")
    page.goto(f"{console}/models")
    screens.take(page, "05-models", full_page=True)


def _overview_equals_the_api(page: Page, stack: Stack, console: str, screens: Screens) -> None:
    page.goto(f"{console}/")
    insights = api(stack, "scoring", "/v1/insights")
    cards = page.locator("[data-kpi]")
    expect(cards).to_have_count(len(insights["kpis"]))
    for kpi in insights["kpis"]:
        shown = page.locator(f"[data-kpi='{kpi['name']}']").get_attribute("data-value")
        assert shown == str(kpi["value"]), kpi
    for sentence in insights["narrative"]:
        expect(page.get_by_text(sentence["text"], exact=True)).to_be_visible()
    # The high-value customers at risk are the demo's list (one definition), and its link opens
    # the customer list on the same filter and order: the same customers first.
    listing = api(stack, "scoring", "/v1/customers", **HIGH_VALUE_AT_RISK)
    at_risk = [c["customer_id"] for c in listing["customers"]]
    assert at_risk, "no High/VIP customer at medium or high risk: the link is not shown"
    top = page.locator("section[aria-labelledby='top-risk'] tr[data-customer]")
    assert top.evaluate_all("rows => rows.map(r => r.dataset.customer)") == at_risk
    screens.take(page, "06-overview", full_page=True)
    page.get_by_role("link", name="All high-value customers at risk").click()
    page.wait_for_url(f"{console}/customers?{at_risk_list_query()}")
    listed = page.locator("tr[data-customer]")
    expect(listed.first).to_be_visible()
    rows = listed.evaluate_all("rows => rows.map(r => r.dataset.customer)")
    assert rows[: len(at_risk)] == at_risk
    screens.take(page, "06b-overview-at-risk-list", full_page=True)


def _segments_chart_has_one_mark_per_segment(
    page: Page, stack: Stack, console: str, screens: Screens
) -> None:
    page.goto(f"{console}/segments")
    segments = api(stack, "scoring", "/v1/segments")["segments"]
    chart = page.locator("#segment-bars")
    expect(chart).to_have_attribute("data-rendered", "true")
    expect(chart).to_have_attribute("data-marks", str(len(segments)))
    # What the browser drew, not only what the page declared: one bar per segment.
    drawn = page.evaluate(
        "() => echarts.getInstanceByDom(document.getElementById('segment-bars'))"
        ".getOption().series[0].data.length"
    )
    assert drawn == len(segments)
    screens.take(page, "07-segments", full_page=True)


def _customer_page_equals_the_api(page: Page, stack: Stack, console: str, screens: Screens) -> None:
    top = api(stack, "scoring", "/v1/customers", risk_band="high", sort="revenue_at_risk", limit=1)
    customer_id = top["customers"][0]["customer_id"]
    score = api(stack, "scoring", f"/v1/customers/{customer_id}/score")
    orders = api(stack, "features", f"/v1/customers/{customer_id}/orders", limit=500)
    page.goto(f"{console}/customers/{customer_id}")
    for reason in score["reasons"]["churn"]:
        expect(page.get_by_text(reason["text"]).first).to_be_visible()
    # The reasons name the typical customer's churn probability they raise or lower it from.
    baseline = percent(score["reasons"]["churn_baseline"])
    expect(page.locator("[data-baseline]").first).to_contain_text(f"({baseline} at this time")
    rows = page.locator("#orders tbody tr")
    expect(rows.first).to_be_visible()
    shown = rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.order, r.cells[4].textContent.trim()])"
    )
    expected = [[o["order_id"], f"{o['net_value']:,.2f}"] for o in orders["orders"]]
    assert shown == expected[: len(shown)] and len(shown) == min(20, len(expected))
    # The timeline's axis reads as dates, also when every order fell on one day.
    chart = page.locator("#orders-chart")
    expect(chart).to_have_attribute("data-rendered", "true")
    labels = chart.locator("svg text").all_text_contents()
    clock_times = [label for label in labels if re.fullmatch(r"\d\d:\d\d", label.strip())]
    assert clock_times == [], labels
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d", label.strip()) for label in labels), labels
    screens.take(page, "08-customer", full_page=True)


def _campaign_plan_follows_the_budget(page: Page, console: str, screens: Screens) -> None:
    page.goto(f"{console}/campaigns")
    contacts = page.locator("[data-plan='contacts']")
    expect(contacts).to_be_visible()
    before = int(contacts.get_attribute("data-value") or 0)
    assert before > 10, "the default budget should reach more than ten worthwhile contacts"
    page.get_by_label("Budget", exact=True).fill("50")
    expect(contacts).to_have_attribute("data-value", "10")  # 50 at 5 per contact
    screens.take(page, "09-campaigns", full_page=True)


def _download_equals_the_api_csv(page: Page, stack: Stack, console: str, screens: Screens) -> None:
    page.goto(f"{console}/customers?{at_risk_list_query()}")
    screens.take(page, "10-customers", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    downloaded = Path(download.value.path()).read_text()
    expected = httpx.get(
        f"{url(stack, 'scoring')}/v1/customers",
        params={**HIGH_VALUE_AT_RISK, "limit": 10_000},
        headers={**auth(), "Accept": "text/csv"},
    )
    assert downloaded == expected.text
    assert downloaded.count("\n") > 1


def _cohorts_and_models(page: Page, console: str, screens: Screens) -> None:
    page.goto(f"{console}/cohorts")
    expect(page.locator("[data-option]").first).to_have_attribute("data-rendered", "true")
    screens.take(page, "11-cohorts", full_page=True)


PAGES = ("/", "/segments", "/customers", "/cohorts", "/campaigns", "/data", "/models")
UNLABELLED_FIELDS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea')]
    .filter(f => f.labels.length === 0 && !f.getAttribute('aria-label'))
    .map(f => f.name || f.id)"""
CHARTS_WITHOUT_TEXT = """() => [...document.querySelectorAll('[data-option]')]
    .filter(c => c.getAttribute('role') !== 'img' || !c.getAttribute('aria-label'))
    .map(c => c.id)"""


def _every_page_is_accessible_at_both_widths(page: Page, console: str, screens: Screens) -> None:
    """Every field has a label, every chart a text alternative, and at 390 px nothing but a
    table's own scroller is wider than the screen."""
    for width in (WIDE, NARROW):
        page.set_viewport_size(width)
        for path in PAGES:
            page.goto(f"{console}{path}")
            assert page.evaluate(UNLABELLED_FIELDS) == [], path
            assert page.evaluate(CHARTS_WITHOUT_TEXT) == [], path
            overflow = page.evaluate("() => document.documentElement.scrollWidth")
            assert overflow <= width["width"], f"{path} is {overflow} px wide at {width}"
    page.goto(f"{console}/")
    screens.take(page, "06-overview-390", full_page=True)
    page.goto(f"{console}/customers")
    screens.take(page, "10-customers-390", full_page=True)
    page.set_viewport_size(WIDE)


SCROLL_HINTS = """() => [...document.querySelectorAll('.table-wrap')]
    .map(wrap => getComputedStyle(wrap, '::before').content)"""


def _a_table_that_scrolls_sideways_says_so(page: Page, console: str) -> None:
    """On a phone the customer list is wider than the screen and shows no scroll bar until
    touched: a line above it says there are more columns. On a wide screen it fits and says
    nothing."""
    for path in ("/", "/customers"):
        page.set_viewport_size(NARROW)
        page.goto(f"{console}{path}")
        hints = page.evaluate(SCROLL_HINTS)
        assert any("Scroll sideways" in hint for hint in hints), (path, hints)
        page.set_viewport_size(WIDE)
        # The mark follows the window: the same page made wide again has no hint left.
        expect(page.locator(".table-wrap.scrolls")).to_have_count(0)
        assert not any("Scroll sideways" in hint for hint in page.evaluate(SCROLL_HINTS)), path


def _a_date_filter_shows_the_whole_date(page: Page, console: str) -> None:
    """The "likely to order again by" dates are not cut off after the month: each date field is
    as wide as the text a filled-in date needs."""
    for width in (WIDE, NARROW):
        page.set_viewport_size(width)
        page.goto(f"{console}/customers")
        field = page.locator("#next_order_from")
        field.fill("2012-01-31")
        needed = field.evaluate(
            """input => {
                const probe = document.createElement('span');
                probe.style.font = getComputedStyle(input).font;
                probe.textContent = '00/00/0000';
                document.body.append(probe);
                const text = probe.getBoundingClientRect().width;
                probe.remove();
                return text;
            }"""
        )
        # Beside the digits: the field's padding (2 × 10 px) and the calendar button (~20 px).
        assert field.evaluate("input => input.clientWidth") > needed + 40, width
    page.set_viewport_size(WIDE)


def test_a_read_only_key_sees_no_upload_and_is_refused(
    stack: Stack, console: str, browser: Browser, screens: Screens
) -> None:
    page = browser.new_page(viewport=NARROW)
    sign_in(page, console, READ_KEY)
    page.goto(f"{console}/data")
    expect(page.get_by_label("Export file")).to_have_count(0)
    expect(page.get_by_role("button", name="Retrain now")).to_have_count(0)
    screens.take(page, "13-read-only-data-390")
    # Posting anyway, with the page's own CSRF token: the role, not the token, refuses it.
    status = page.evaluate(
        """async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const body = new FormData();
            body.append('csrf_token', token);
            body.append('file', new Blob(['a,b\\n1,2\\n']), 'x.csv');
            const answer = await fetch('/data/preview', {method: 'POST', body});
            return answer.status;
        }"""
    )
    assert status == 403
    page.close()


def test_tenant_b_sees_none_of_tenant_a(
    stack: Stack, console: str, browser: Browser, screens: Screens
) -> None:
    someone = api(stack, "scoring", "/v1/customers", limit=1)["customers"][0]["customer_id"]
    page = browser.new_page(viewport=WIDE)
    sign_in(page, console, OTHER_KEY)
    expect(page.get_by_role("heading", name="Upload your first export")).to_be_visible()
    page.goto(f"{console}/customers/{someone}")
    # B has no such customer: no score, no orders, only B's own (empty) state.
    expect(page.get_by_role("heading", name="Upload your first export")).to_be_visible()
    assert page.get_by_text("Churn probability").count() == 0
    page.goto(f"{console}/customers")
    assert page.locator("[data-customer]").count() == 0
    screens.take(page, "14-tenant-b")
    page.close()


def test_a_stopped_scoring_service_reads_as_a_message(
    stack: Stack, console: str, browser: Browser, screens: Screens
) -> None:
    """Last in the module: scoring stays down after it."""
    scoring = next(service for service in stack.running if service.name == "scoring")
    scoring.process.send_signal(signal.SIGTERM)  # asked to stop: the supervisor leaves it down
    scoring.process.wait(timeout=30)
    page = browser.new_page(viewport=WIDE)
    sign_in(page, console, API_KEY)
    page.goto(f"{console}/segments")
    expect(page.get_by_role("heading", name="The scoring service is not answering")).to_be_visible()
    screens.take(page, "15-scoring-down")
    page.close()
