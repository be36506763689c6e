"""A real S3 HTTP API for the store tests: moto's standalone server on a free loopback port.

Every test gets its own bucket and `BACKLOT_STORE=s3://<bucket>/store`; credentials, endpoint
and region come from the environment exactly as on a studio's worker.
"""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from backlot.storage import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str
    url: str  # the store root

    def store(self) -> Store:
        return Store(self.url)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="eu-west-1",
                            aws_access_key_id="backlot-test", aws_secret_access_key="backlot-secret")

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def s3(s3_endpoint, env, monkeypatch) -> S3:
    """A fresh bucket, and the environment a worker would have to reach it."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "backlot-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "backlot-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    bucket = "b" + uuid.uuid4().hex[:12]
    spec = S3(s3_endpoint, bucket, f"s3://{bucket}/store")
    spec.client().create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    monkeypatch.setenv("BACKLOT_STORE", spec.url)
    return spec
