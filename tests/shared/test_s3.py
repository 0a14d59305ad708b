"""`retention_shared.s3`: boto3 is loaded when a client is made, not with the module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from retention_shared.s3 import parse_s3_url

LOADS = """
import sys
from retention_shared.config import Settings
from retention_shared import s3
print("boto3" in sys.modules)
client = s3.s3_client(Settings(s3_endpoint_url="http://127.0.0.1:9"))
print("boto3" in sys.modules, client.meta.endpoint_url)
"""


def test_boto3_is_imported_by_the_first_client_only() -> None:
    # boto3 and botocore are ~9 MiB of RSS in the trainer, its child and scoring (a local lake
    # and no export need none of it).
    out = subprocess.run(
        [sys.executable, "-c", LOADS],
        capture_output=True,
        text=True,
        check=True,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
    )
    assert out.stdout.split() == ["False", "True", "http://127.0.0.1:9"]


def test_s3_urls_are_split_into_bucket_and_prefix() -> None:
    assert parse_s3_url("s3://lake/tenants/acme/") == ("lake", "tenants/acme")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        parse_s3_url("https://lake/x")
