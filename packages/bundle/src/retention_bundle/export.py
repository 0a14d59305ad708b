"""Model bundles to and from S3: `retention-<tenant>:<version>` ⇄ `<export url>/<name>/<version>.bentomodel`.

The object is BentoML's own `.bentomodel` archive (`bentoml.models.export_model`), uploaded with
boto3 so the endpoint and credentials are the ones the lake uses (`RETENTION_S3_ENDPOINT_URL`,
AWS_* variables). The archive holds the bundle's JSON and UBJ files and BentoML's YAML model
info; importing it unpacks files, it never runs code from the artifact (docs/architecture.md,
principle 7). The trainer exports every champion it publishes; scoring imports one its local store
lacks. Needs boto3: install `retention-bundle[s3]`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bentoml
from botocore.exceptions import ClientError

from retention_shared.config import Settings
from retention_shared.s3 import parse_s3_url, s3_client

__all__ = ["ExportedModelNotFound", "export_model", "exported_model_url", "import_model"]


class ExportedModelNotFound(LookupError):
    """No export of the requested model at the configured location."""


def _location(tag: bentoml.Tag, settings: Settings) -> tuple[str, str]:
    if not settings.model_export_url:
        raise ValueError("RETENTION_MODEL_EXPORT_URL is not set; there is nowhere to export to")
    if not tag.version or tag.version == "latest":
        # S3 has no "latest"; exports are addressed by the exact version a model event names.
        raise ValueError(f"model tag {str(tag)!r} needs an exact version, e.g. 'name:abc123'")
    bucket, prefix = parse_s3_url(settings.model_export_url)
    key = f"{tag.name}/{tag.version}.bentomodel"
    return bucket, f"{prefix}/{key}" if prefix else key


def exported_model_url(tag: str, settings: Settings) -> str:
    """Where `tag` (with an exact version) is exported: `s3://bucket/prefix/<name>/<version>.bentomodel`."""
    bucket, key = _location(bentoml.Tag.from_taglike(tag), settings)
    return f"s3://{bucket}/{key}"


def export_model(tag: str, settings: Settings) -> str:
    """Upload the model `tag` (`latest` allowed) from the local BentoML store; returns its URL."""
    model = bentoml.models.get(tag)
    bucket, key = _location(model.tag, settings)
    with tempfile.TemporaryDirectory(prefix="retention-export-") as work:
        archive = bentoml.models.export_model(str(model.tag), str(Path(work) / "model.bentomodel"))
        # One object, uploaded whole (multipart completes atomically): readers never see half.
        s3_client(settings).upload_file(archive, bucket, key)
    return f"s3://{bucket}/{key}"


def import_model(tag: str, settings: Settings) -> None:
    """Download the export of `tag` into the local BentoML store; a no-op if it is there."""
    wanted = bentoml.Tag.from_taglike(tag)
    bucket, key = _location(wanted, settings)
    try:
        bentoml.models.get(wanted)
        return
    except bentoml.exceptions.NotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="retention-import-") as work:
        archive = Path(work) / "model.bentomodel"
        try:
            s3_client(settings).download_file(bucket, key, str(archive))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchBucket"}:
                raise ExportedModelNotFound(
                    f"no exported model {wanted} at s3://{bucket}/{key}"
                ) from None
            raise
        imported = bentoml.models.import_model(str(archive))
    if imported.tag != wanted:
        # The archive names its own tag; an object under the wrong key must not pass as another.
        bentoml.models.delete(imported.tag)
        raise ValueError(f"s3://{bucket}/{key} holds {imported.tag}, not {wanted}")
