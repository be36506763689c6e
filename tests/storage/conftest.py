"""A real S3 HTTP API for the store tests: moto's standalone server on a free loopback port.

Every test gets its own bucket and `BACKLOT_STORE=s3://<bucket>/store`; credentials, endpoint
and region come from the environment exactly as on a studio's worker.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from backlot.storage import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoS3:
    """moto's S3 server in this process, on a port that stays the same across stop/start."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_for_port(self.port)

    def stop(self) -> None:
        """Unreachable: the listening socket is closed too (moto's stop leaves it open, and
        clients would hang in its backlog instead of being refused)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        wsgi = server._server
        server.stop()
        if wsgi is not None:
            wsgi.server_close()


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = MotoS3()
    server.start()
    yield server.endpoint
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
