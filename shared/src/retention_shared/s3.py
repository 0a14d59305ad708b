"""S3 clients from settings: the lake and the model exports reach the same endpoint the same way.

Needs boto3: install `retention-shared[s3]`. It is imported when a client is made, not with this
module: boto3 and botocore are ~9 MiB of RSS that the trainer, its training child and scoring
would otherwise hold with a local lake and no export configured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from retention_shared.config import Settings

__all__ = ["parse_s3_url", "s3_client"]


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix`)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"expected an s3://bucket/prefix URL, got {url!r}")
    return parts.netloc, parts.path.strip("/")


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client for `RETENTION_S3_ENDPOINT_URL` (AWS when unset); credentials and
    region come from the standard AWS_* variables, as boto3 reads them."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
