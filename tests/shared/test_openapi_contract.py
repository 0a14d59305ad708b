"""Every /v1 operation of the four API services documents what it really does, so a generated
client or a reader of Swagger needs nothing else: the API key, a description, a typed 2xx answer
with an example (CSV, Markdown and HTML as their media types), and its errors as RFC 9457
problem+json. A route added without any of these fails here.

Each document is also checked against the OpenAPI 3.1 schema (openapi-spec-validator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate

from retention_features.app import create_app as features_app
from retention_ingest.app import create_app as ingest_app
from retention_scoring.app import create_app as scoring_app
from retention_shared.config import Settings
from retention_shared.problems import PROBLEM_MEDIA_TYPE
from retention_trainer.app import create_app as trainer_app

APPS = {
    "ingest": ingest_app,
    "features": features_app,
    "trainer": trainer_app,
    "scoring": scoring_app,
}
# Routes any known key may call: no role to lack, so no 403. Every other route needs a role
# that some key does not have (`read`, `ingest` or `admin`), and says 403.
ANY_KEY = {("get", "/v1/whoami")}
# Bodies that are text for people or spreadsheets rather than JSON.
TEXT_MEDIA = {"text/csv", "text/markdown", "text/html"}
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module", params=sorted(APPS))
def document(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(tmp / "bentoml"))
        settings = Settings(
            api_keys="k:default:admin", kafka_bootstrap="127.0.0.1:1", data_dir=Path(tmp)
        )
        return APPS[request.param](settings).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        (method, path, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]
    assert found, "no /v1 operations"
    return found


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _typed(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that says what the body is: a model, or a typed value; not `{}` nor an object
    whose properties nobody wrote down."""
    resolved = _schema(document, schema)
    if "anyOf" in resolved or "oneOf" in resolved:
        return all(_typed(document, s) for s in resolved.get("anyOf", resolved.get("oneOf")))
    kind = resolved.get("type")
    if kind is None:
        return False
    if kind == "object":
        return bool(resolved.get("properties"))
    if kind == "array":
        return _typed(document, resolved.get("items", {}))
    return True


def _has_example(document: dict[str, Any], media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = media.get("schema", {})
    # An optional body is `anyOf: [model, null]`: the model's examples are the body's.
    branches = schema.get("anyOf", [schema])
    return any(_schema(document, branch).get("examples") for branch in branches)


def test_every_operation_is_documented_completely(document: dict[str, Any]) -> None:
    problems = []
    for method, path, operation in _operations(document):
        name = f"{method.upper()} {path}"
        if operation.get("security") != [{"ApiKey": []}]:
            problems.append(f"{name}: no ApiKey security")
        if not (operation.get("description") or "").strip():
            problems.append(f"{name}: no description (docstring)")
        responses = operation["responses"]
        answers = {code: r for code, r in responses.items() if code.startswith("2")}
        if not answers:
            problems.append(f"{name}: no 2xx response")
        for code, answer in answers.items():
            content = answer.get("content") or {}
            if code == "204":
                if content:
                    problems.append(f"{name}: a 204 with a body")
                continue
            if not content:
                problems.append(f"{name}: {code} without a media type")
            for media_type, media in content.items():
                schema = media.get("schema") or {}
                if media_type in TEXT_MEDIA:
                    if schema.get("type") != "string":
                        problems.append(f"{name}: {code} {media_type} is not a string")
                elif not _typed(document, schema):
                    problems.append(f"{name}: {code} {media_type} has no typed schema: {schema}")
                if not _has_example(document, media):
                    problems.append(f"{name}: {code} {media_type} has no example")
        body = (operation.get("requestBody") or {}).get("content") or {}
        for media_type, media in body.items():
            if not _typed(document, media.get("schema") or {}):
                problems.append(f"{name}: request {media_type} has no typed schema")
            if media_type == "application/json" and not _has_example(document, media):
                problems.append(f"{name}: request {media_type} has no example")
        needed = {"401"}
        if (method, path) not in ANY_KEY:
            needed.add("403")
        if operation.get("parameters") or operation.get("requestBody"):
            needed.add("422")
        for code in sorted(needed - set(responses)):
            problems.append(f"{name}: does not declare {code}")
        for code, error in responses.items():
            if code[0] not in "45":
                continue
            media = (error.get("content") or {}).get(PROBLEM_MEDIA_TYPE)
            if media is None or media.get("schema") != {"$ref": PROBLEM_REF}:
                problems.append(f"{name}: {code} is not problem+json with the Problem schema")
            elif media.get("example", {}).get("status") != int(code):
                problems.append(f"{name}: {code}'s example is not a {code} problem")
            if set(error.get("content") or {}) != {PROBLEM_MEDIA_TYPE}:
                problems.append(f"{name}: {code} declares a media type other than problem+json")
    assert not problems, "\n".join(problems)


def test_no_framework_validation_error_schema_is_left(document: dict[str, Any]) -> None:
    # FastAPI's own 422 (`{"detail": [...]}` as HTTPValidationError) is not what is sent.
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "#/components/schemas/ValidationError" not in text
    assert "Problem" in document["components"]["schemas"]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def _examples(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    found = [media["example"]] if "example" in media else []
    found += [example["value"] for example in (media.get("examples") or {}).values()]
    schema = media.get("schema", {})
    for branch in schema.get("anyOf", [schema]):
        found += _schema(document, branch).get("examples") or []
    return found


def _dropped_null(document: dict[str, Any], error: ValidationError) -> bool:
    """FastAPI writes its document without None values (`exclude_none`), examples included: a
    required property that may be null is missing from an example for that reason only."""
    if error.validator != "required":
        return False
    missing = error.message.split("'")[1]
    schema = error.schema.get("properties", {}).get(missing)
    if schema is None:
        return False
    return Draft202012Validator({"allOf": [schema], "components": document["components"]}).is_valid(
        None
    )


def test_every_json_example_is_an_answer_the_schema_accepts(document: dict[str, Any]) -> None:
    # Hand-written examples drift from their models unless something reads them against it.
    checked, problems = 0, []
    for method, path, operation in _operations(document):
        bodies = [("request", (operation.get("requestBody") or {}).get("content") or {})]
        bodies += [(code, r.get("content") or {}) for code, r in operation["responses"].items()]
        for where, content in bodies:
            for media_type, media in content.items():
                if media_type in TEXT_MEDIA:
                    continue
                # References resolve against the document's components, as in the document.
                schema = {"allOf": [media.get("schema", {})], "components": document["components"]}
                for example in _examples(document, media):
                    checked += 1
                    for error in Draft202012Validator(schema).iter_errors(example):
                        if not _dropped_null(document, error):
                            problems.append(f"{method.upper()} {path} {where}: {error.message}")
    assert checked > 0
    assert not problems, "\n".join(problems)


def test_the_model_card_names_every_backtest_number(tmp_path: Path) -> None:
    """`GET /v1/model` shows the bundle's backtest report as typed fields, not as a dict."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
        settings = Settings(
            api_keys="k:default:admin", kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path
        )
        document = scoring_app(settings).openapi()
    schemas = document["components"]["schemas"]
    card = schemas["ModelCard"]["properties"]
    for name in ("churn", "ltv", "windows"):
        assert _schema(document, card[name]).get("properties"), name
    assert _schema(document, card["segments"]["items"])["properties"].keys() == {
        "segment",
        "customers",
        "revenue_share",
        "churn_rate",
        "action",
    }
    churn = _schema(document, schemas["ChurnCard"]["properties"]["model"])["properties"]
    assert {"roc_auc", "pr_auc", "brier", "f1", "lift_top_decile"} <= churn.keys()
    ltv = _schema(document, schemas["LTVCard"]["properties"]["model"])["properties"]
    assert {"mae", "rmse", "spearman", "normalized_gini", "top10_capture"} <= ltv.keys()
    window = _schema(document, schemas["BacktestWindows"]["properties"]["churn"])["properties"]
    assert window["test_cutoff"] == {"format": "date", "title": "Test Cutoff", "type": "string"}
