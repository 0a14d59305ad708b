"""The models page with scoring and the trainer faked: the model card, the backtest against the
baselines, drift per feature, the run history with its reports, and "Retrain now"."""

from __future__ import annotations

import json
import re

import httpx

from tests.console.support import FakeServices, csrf_token, signed_in
from tests.support.problems import problem_reply

CARD = {
    "tenant_id": "default",
    "model_version": "v7abc",
    "model_tag": "retention-default:v7abc",
    "champion_since": "2026-12-05T01:55:00.788087Z",
    "loaded_at": "2026-12-05T01:55:06Z",
    "trained_at": "2026-12-05T01:54:59Z",
    "training_window": {"start": "2010-12-01T08:45:00Z", "end": "2011-12-09T12:50:00Z"},
    "windows": {"churn": {"horizon_days": 90, "test_cutoff": "2011-09-10"}},
    "production": {
        "refitted": True,
        "data_end": "2011-12-09",
        "churn": {"training_cutoffs": ["2011-08-11", "2011-09-10"]},
        "ltv": {"training_cutoffs": ["2011-05-13", "2011-06-12"]},
    },
    "feature_schema": ["recency_days", "frequency", "monetary"],
    "churn": {
        "model": {"roc_auc": 0.8258, "brier": 0.1455, "lift_top_decile": 1.3239},
        "baselines": {
            "recency": {"roc_auc": 0.8100, "brier": 0.1991, "lift_top_decile": 0.9483},
            "bgnbd": {"roc_auc": 0.8645, "brier": 0.1391, "lift_top_decile": 1.0892},
        },
        "threshold": 0.55,
        "test_customers": 312,
    },
    "ltv": {
        "model": {"spearman": 0.6654, "mae": 309.84},
        "baselines": {"bgnbd_gamma_gamma": {"spearman": 0.6133, "mae": 256.68}},
    },
    "segments": [],
    "drift": {
        "status": "drift",
        "checked_at": "2026-12-05T02:10:00Z",
        "threshold": 0.2,
        "psi": {"recency_days": 0.3521, "frequency": 0.0412},
        "drifted_features": ["recency_days"],
        "published_at": "2026-12-05T02:10:00Z",
    },
}


def run(run_id: str, status: str, **fields: object) -> dict:
    return {
        "run_id": run_id,
        "tenant_id": "default",
        "status": status,
        "triggers": [{"kind": "upload", "detail": "upload 1", "at": "2026-12-05T01:54:37+00:00"}],
        "options": {},
        "created_at": "2026-12-05T01:54:38+00:00",
        "started_at": "2026-12-05T01:54:38.500000+00:00",
        "finished_at": "2026-12-05T01:55:00.811352+00:00",
        "message": "no champion yet",
        "model_tag": None,
        "timings": {"lake_wait": 0.21, "lake_read": 0.02, "publish": 5.1},
        "data": None,
        "gate": {
            "promote": True,
            "reason": "no champion yet",
            "candidate": {"roc_auc": 0.82586, "spearman": 0.66541},
            "champion": None,
        },
        "has_run_report": True,
        **fields,
    }


PUBLISHED = run("a1" * 16, "published")
SKIPPED = run(
    "b2" * 16,
    "skipped",
    message="too little history",
    gate=None,
    has_run_report=False,
    timings={"lake_wait": 0.1},
)


def models_fake(*runs: dict, roles: tuple[str, ...] = ("admin",), **routes: object) -> FakeServices:
    return FakeServices(
        roles=roles,
        routes={
            ("scoring", "GET", "/v1/model"): CARD,
            ("trainer", "GET", "/v1/runs"): {
                "tenant_id": "default",
                "runs": list(runs or (PUBLISHED, SKIPPED)),
            },
            **{tuple(key.split(" ")): value for key, value in routes.items()},
        },
    )


def option(html: str, chart_id: str) -> dict:
    return json.loads(re.search(rf'id="{chart_id}-option">([^<]+)<', html).group(1))


def test_the_card_shows_scorings_model() -> None:
    page = signed_in(models_fake()).get("/models")
    assert page.status_code == 200
    assert 'data-model="v7abc"' in page.text
    assert "2026-12-05 01:55 UTC" in page.text  # champion since
    assert "2010-12-01 to 2011-12-09" in page.text
    assert "predictions at 2011-09-10 checked against the next 90 days" in page.text
    # The production window next to the evidence one.
    assert (
        "refitted after the backtest on outcomes up to 2011-12-09 "
        "(churn cutoffs to 2011-09-10, lifetime value to 2011-06-12)"
    ) in page.text
    assert 'data-drift="drift"' in page.text


def test_the_card_shows_the_realized_accuracy_of_the_served_model() -> None:
    outcome = {
        "model_tag": CARD["model_tag"],
        "score_date": "2011-09-09",
        "horizon_days": 90,
        "customers": 406,
        "churners": 288,
        "roc_auc": 0.4798,
        "brier": 0.2918,
        "backtest_roc_auc": 0.9048,
        "backtest_brier": 0.0962,
        "auc_drop": 0.4697,
        "drift": True,
        "evaluated_at": "2026-12-05T14:40:07+00:00",
    }
    answer = {"tenant_id": "default", "outcomes": [outcome]}
    page = signed_in(models_fake(**{"trainer GET /v1/outcomes": answer})).get("/models").text
    assert (
        "ROC AUC 0.480 against 0.905 in the backtest for its predictions of 2011-09-09, checked "
        "against the next 90 days; Brier score 0.292 — more than the allowed drop"
    ) in page
    # An earlier champion's outcome is not this model's.
    other = {**outcome, "model_tag": "retention-default:older"}
    answer = {"tenant_id": "default", "outcomes": [other]}
    page = signed_in(models_fake(**{"trainer GET /v1/outcomes": answer})).get("/models").text
    assert "Realized" not in page
    # None yet (or a trainer without the route): no line.
    assert "Realized" not in signed_in(models_fake()).get("/models").text


def test_a_model_that_was_not_refitted_says_why() -> None:
    card = {**CARD, "production": {"refitted": False, "reason": "not refitted: too short"}}
    page = signed_in(models_fake(**{"scoring GET /v1/model": card})).get("/models").text
    assert "not refitted: too short" in page
    # A model published before the refit has no production window: no line about it.
    older = {**CARD, "production": None}
    page = signed_in(models_fake(**{"scoring GET /v1/model": older})).get("/models").text
    assert "Served model" not in page


def test_the_backtest_is_every_baselines_numbers_as_a_chart_and_a_table() -> None:
    page = signed_in(models_fake()).get("/models").text
    churn = option(page, "backtest-churn-0")
    assert [s["name"] for s in churn["series"]] == ["Model", "Recency only", "BG/NBD"]
    assert churn["yAxis"]["data"] == ["ROC AUC", "Lift in the riskiest 10%", "Brier score"]
    assert churn["series"][0]["data"] == [0.8258, 1.3239, 0.1455]
    assert churn["series"][2]["data"] == [0.8645, 1.0892, 0.1391]
    # The table holds the same numbers; the best of a row is marked, lower being better for
    # the Brier score.
    roc = re.search(r'<tr data-metric="roc_auc">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'data-value="([^"]*)"', roc) == ["0.8258", "0.81", "0.8645"]
    assert "<strong>0.865</strong>" in roc
    brier = re.search(r'<tr data-metric="brier">(.*?)</tr>', page, re.S).group(1)
    assert "<strong>0.139</strong>" in brier
    lift = re.search(r'<tr data-metric="lift_top_decile">(.*?)</tr>', page, re.S).group(1)
    assert "<strong>1.324</strong>" in lift
    ranking = option(page, "backtest-ltv-1")
    assert ranking["series"][1]["name"] == "BG/NBD + Gamma-Gamma"
    assert ranking["series"][1]["data"] == [0.6133]
    errors = option(page, "backtest-ltv-2")
    assert errors["series"][0]["data"] == [309.84]
    mae = re.search(r'<tr data-metric="mae">(.*?)</tr>', page, re.S).group(1)
    assert "<strong>257</strong>" in mae
    # Every chart has a text alternative naming its numbers.
    assert 'aria-label="Bar chart, Churn: who will stop buying. ROC AUC: Model 0.826' in page


def test_drift_per_feature_with_the_threshold() -> None:
    page = signed_in(models_fake()).get("/models").text
    drift = option(page, "drift-chart")["baseOption"]
    assert drift["yAxis"]["data"] == ["Days since the last purchase", "Orders so far"]
    assert [d["value"] for d in drift["series"][0]["data"]] == [0.3521, 0.0412]
    assert drift["series"][0]["markLine"]["data"] == [{"xAxis": 0.2}]
    assert '<tr data-feature="recency_days" data-value="0.3521">' in page
    assert "Shifted: Days since the last purchase." in page


def test_drift_not_checked_yet_says_so() -> None:
    card = CARD | {"drift": {"status": "not checked yet", "threshold": 0.2, "psi": {}}}
    page = signed_in(models_fake(**{"scoring GET /v1/model": card})).get("/models").text
    assert "Drift has not been checked for this model yet." in page
    assert "drift-chart" not in page


def test_the_run_history_with_reports_through_the_console() -> None:
    page = signed_in(models_fake()).get("/models").text
    published = re.search(rf'<tr data-run="{PUBLISHED["run_id"]}".*?</tr>', page, re.S).group(0)
    assert "Published" in published and "Upload" in published
    assert "22 s" in published  # finished − started
    assert "0.826" in published and "0.665" in published
    assert f'href="/models/runs/{PUBLISHED["run_id"]}/report"' in published
    skipped = re.search(rf'<tr data-run="{SKIPPED["run_id"]}".*?</tr>', page, re.S).group(0)
    assert "too little history" in skipped and "/report" not in skipped


def test_a_report_is_the_trainers_page_with_its_own_policy() -> None:
    policy = "default-src 'none'; style-src 'unsafe-inline'"
    report = httpx.Response(
        200,
        text="<!doctype html><title>Run report</title>",
        headers={"content-type": "text/html; charset=utf-8", "content-security-policy": policy},
    )
    run_id = PUBLISHED["run_id"]
    fake = models_fake(**{f"trainer GET /v1/runs/{run_id}/report": report})
    client = signed_in(fake)
    page = client.get(f"/models/runs/{run_id}/report")
    assert page.status_code == 200 and "<title>Run report</title>" in page.text
    assert page.headers["content-security-policy"] == policy
    (sent,) = fake.requests_to("trainer", f"/v1/runs/{run_id}/report")
    assert sent.url.params["format"] == "html"
    markdown = client.get(f"/models/runs/{run_id}/report.md")
    assert markdown.headers["content-disposition"].startswith("attachment")
    assert fake.requests_to("trainer", f"/v1/runs/{run_id}/report")[1].url.params["format"] == "md"


def test_a_run_without_a_report_is_a_409_page() -> None:
    refused = problem_reply(409, "run_id", "run 'x' is skipped")
    run_id = SKIPPED["run_id"]
    fake = models_fake(**{f"trainer GET /v1/runs/{run_id}/report": refused})
    page = signed_in(fake).get(f"/models/runs/{run_id}/report")
    assert page.status_code == 409
    assert "Not possible right now" in page.text and "is skipped" in page.text


def test_a_run_id_that_is_not_one_never_reaches_the_trainer() -> None:
    fake = models_fake()
    page = signed_in(fake).get("/models/runs/..%2F..%2Fv1%2Fmodel/report")
    assert page.status_code == 404
    assert fake.requests_to("trainer", "/v1/model") == []


def test_an_admin_retrains_and_follows_the_run() -> None:
    new = "c3" * 16
    asked: list[dict] = []

    def retrain(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        return httpx.Response(202, json={"run_id": new, "status": "queued", "triggers": 1})

    queued = run(new, "queued", started_at=None, finished_at=None, timings={}, gate=None)
    fake = models_fake(
        **{"trainer POST /v1/retrain": retrain, f"trainer GET /v1/runs/{new}": queued}
    )
    client = signed_in(fake)
    token = csrf_token(client, "/models")
    assert "Retrain now" in client.get("/models").text
    response = client.post(
        "/models/retrain",
        data={"reason": "new orders"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code == 200
    assert asked == [{"reason": "new orders"}]
    assert f'hx-get="/models/runs/{new}" hx-trigger="every 2s"' in response.text
    assert 'data-status="queued"' in response.text and "waiting for the lake" in response.text
    # Polled: running shows the stage after the last one recorded, then the end stops polling.
    running = run(new, "running", finished_at=None, timings={"lake_wait": 0.3}, gate=None)
    fake.routes[("trainer", "GET", f"/v1/runs/{new}")] = running
    poll = client.get(f"/models/runs/{new}", headers={"HX-Request": "true"})
    assert "reading the orders, training and backtesting" in poll.text
    assert 'hx-trigger="every 2s"' in poll.text
    fake.routes[("trainer", "GET", f"/v1/runs/{new}")] = run(new, "published")
    done = client.get(f"/models/runs/{new}", headers={"HX-Request": "true"})
    assert 'data-status="published"' in done.text and "hx-trigger" not in done.text
    assert f'href="/models/runs/{new}/report"' in done.text
    # Without htmx the post leads back to the page, which follows the asked-for run.
    plain = client.post(
        "/models/retrain", data={"csrf_token": token, "reason": ""}, follow_redirects=False
    )
    assert plain.status_code == 303 and plain.headers["location"] == f"/models?run={new}"
    assert asked[-1] == {"reason": "Retrain now, from the console"}


def test_an_unfinished_run_is_followed_when_the_page_opens() -> None:
    running = run("d4" * 16, "running", finished_at=None, timings={"lake_wait": 0.3})
    page = signed_in(models_fake(running, PUBLISHED)).get("/models").text
    progress = re.search(r'<div id="retrain-progress".*?</div>', page, re.S).group(0)
    assert 'data-status="running"' in progress and 'hx-trigger="every 2s"' in progress


def test_a_read_key_sees_no_retrain_button_and_is_refused_if_it_posts() -> None:
    fake = models_fake(roles=("read",), **{"trainer POST /v1/retrain": {"run_id": "x"}})
    client = signed_in(fake)
    page = client.get("/models")
    assert page.status_code == 200
    assert "Retrain now" not in page.text and "/models/retrain" not in page.text
    token = csrf_token(client, "/models")  # the sign-out form carries it
    refused = client.post("/models/retrain", data={"csrf_token": token})
    assert refused.status_code == 403
    assert "admin role" in refused.text
    assert fake.requests_to("trainer", "/v1/retrain") == []


def test_retrain_without_the_csrf_token_is_refused() -> None:
    fake = models_fake(**{"trainer POST /v1/retrain": {"run_id": "x"}})
    client = signed_in(fake)
    assert client.post("/models/retrain", data={"reason": "x"}).status_code == 403
    forged = client.post("/models/retrain", data={"reason": "x"}, headers={"X-CSRF-Token": "no"})
    assert forged.status_code == 403
    assert fake.requests_to("trainer", "/v1/retrain") == []


def test_before_the_first_model_the_runs_still_show() -> None:
    no_model = problem_reply(503, None, "no champion model for this tenant")
    page = signed_in(models_fake(SKIPPED, **{"scoring GET /v1/model": no_model})).get("/models")
    assert page.status_code == 200
    assert "There is no model yet." in page.text
    assert f'data-run="{SKIPPED["run_id"]}"' in page.text
    assert "Backtest against the baselines" not in page.text


def test_one_service_down_leaves_the_other_parts() -> None:
    fake = models_fake()
    client = signed_in(fake)
    fake.down.add("trainer")
    page = client.get("/models")
    assert page.status_code == 200
    assert "The trainer is not answering" in page.text and 'data-model="v7abc"' in page.text
    fake.down = {"scoring"}
    page = client.get("/models")
    assert "The scoring service is not answering" in page.text
    assert f'data-run="{PUBLISHED["run_id"]}"' in page.text


def test_older_runs_are_a_page_away_with_the_trainers_cursor() -> None:
    first = {"tenant_id": "default", "runs": [PUBLISHED], "next_cursor": "WyJydW5zIiw3XQ"}
    older = {"tenant_id": "default", "runs": [SKIPPED], "next_cursor": None}
    fake = models_fake(**{"trainer GET /v1/runs": first})
    client = signed_in(fake)
    page = client.get("/models").text
    assert 'href="/models?runs_cursor=WyJydW5zIiw3XQ">Older runs' in page
    assert f'data-run="{SKIPPED["run_id"]}"' not in page
    fake.routes[("trainer", "GET", "/v1/runs")] = older
    second = client.get("/models?runs_cursor=WyJydW5zIiw3XQ").text
    sent = fake.requests_to("trainer", "/v1/runs")
    assert sent[0].url.params.get("cursor") is None
    assert sent[-1].url.params["cursor"] == "WyJydW5zIiw3XQ"
    assert sent[-1].url.params["limit"] == "20"
    assert f'data-run="{SKIPPED["run_id"]}"' in second and "Older runs, newest first" in second
    assert '<a href="/models">Latest runs</a>' in second and "runs_cursor=" not in second
    # Not a cursor the trainer could have issued: never sent on, the latest runs show instead.
    client.get('/models?runs_cursor="><script>')
    assert "cursor" not in fake.requests_to("trainer", "/v1/runs")[-1].url.params


def test_a_cursor_the_trainer_refuses_says_the_page_is_gone() -> None:
    refused = problem_reply(422, "cursor", "not a cursor this service issued")
    page = signed_in(models_fake(**{"trainer GET /v1/runs": refused})).get(
        "/models?runs_cursor=WyJydW5zIiw3XQ"
    )
    assert page.status_code == 200
    assert "That page of older runs is gone" in page.text and "Version" in page.text


def test_calibration_importance_and_orders_show_when_the_card_has_them() -> None:
    card = json.loads(json.dumps(CARD))
    card["churn"] |= {
        "expected_calibration_error": 0.0412,
        "reliability": [
            {"lower": 0.0, "upper": 0.1, "count": 0, "mean_predicted": None, "observed_rate": None},
            {
                "lower": 0.9,
                "upper": 1.0,
                "count": 140,
                "mean_predicted": 0.94,
                "observed_rate": 0.9,
            },
        ],
        "importance": {"recency_days": 0.42, "frequency": 0.11},
    }
    card["ltv"] |= {"importance": {"monetary": 0.59}}
    card["orders"] = {
        "horizon_days": 90,
        "method": "bgnbd",
        "validation_mae_by_method": {"bgnbd": 0.63, "bgnbd_xgboost": 0.66},
        "model": {"mae": 0.78, "next_order_median_abs_days": 38.93},
        "baselines": {"bgnbd": {"mae": 0.806, "next_order_median_abs_days": 43.83}},
        "test_customers": 312,
        "ordered_customers": 140,
        "mean_orders": 1.05,
    }
    page = signed_in(models_fake(**{"scoring GET /v1/model": card})).get("/models").text
    assert "<strong data-ece>0.041</strong>" in page
    reliability = re.search(r'data-table="reliability">(.*?)</table>', page, re.S).group(1)
    assert "90–100%" in reliability and "0–10%" not in reliability  # empty bins left out
    churn = re.search(r'data-table="importance-churn">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'data-feature="([^"]+)"', churn) == ["recency_days", "frequency"]
    assert 'data-feature="monetary"' in page
    orders = re.search(r'data-table="orders">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'data-orders="([^"]+)"', orders) == ["Model", "BG/NBD"]
    assert "38.9" in orders and "43.8" in orders


def test_a_card_from_before_them_has_no_quality_section() -> None:
    page = signed_in(models_fake()).get("/models").text
    assert 'id="quality-heading"' not in page
