"""A real S3-compatible HTTP server on 127.0.0.1 for tests: moto's ``ThreadedMotoServer``.

moto (``moto[server]``, in the ``test`` extra) speaks the S3 REST protocol
over real HTTP, so LanceDB talks to it exactly as it would to AWS S3 or
MinIO: list/put/get/conditional put, multipart uploads. Its objects live in
the test process's memory and vanish when the server stops.

Use the ``s3`` fixture (import it into a test module)::

    from tests.s3_server import s3  # noqa: F401

    def test_x(s3):
        store = Store(s3.uri("lab"), storage_options=s3.options)
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import pytest

ACCESS_KEY = "embedstore-test"
SECRET_KEY = "embedstore-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running server and one fresh bucket on it."""

    endpoint: str
    bucket: str
    client: object = field(repr=False)

    @property
    def options(self) -> dict[str, str]:
        """LanceDB storage options for this server (the keys a lab passes with ``--storage-option``)."""
        return {"endpoint": self.endpoint, "region": REGION, "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY, "allow_http": "true"}

    def cli_options(self) -> list[str]:
        """``--storage-option KEY=VALUE`` arguments for the CLI."""
        out: list[str] = []
        for key, value in self.options.items():
            out += ["--storage-option", f"{key}={value}"]
        return out

    def uri(self, prefix: str = "lab") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        """Object keys under ``prefix`` in the bucket (all pages)."""
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out


@pytest.fixture(scope="module")
def moto_endpoint():
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install -e '.[test]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint, tmp_path, monkeypatch) -> S3Server:
    """A fresh bucket on the module's S3 server; maintenance locks in a temp dir."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    bucket = f"lab-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("EMBEDSTORE_LOCK_DIR", str(tmp_path / "locks"))
    return S3Server(moto_endpoint, bucket, client)
