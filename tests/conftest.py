"""Shared fixtures: a local S3-compatible server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

S3_BUCKET = "infnet-test"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on a free 127.0.0.1 port with bucket ``infnet-test``; yields its endpoint."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in a failing test's log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``s3://infnet-test/<id>`` folder on the local server. The AWS settings go into the
    environment (pyarrow, boto3 and MLflow read ``AWS_ENDPOINT_URL_S3`` there), so Ray nodes and
    subprocesses started afterwards reach the server as they would reach S3. The bucket is (re)created
    here: a ``mock_aws`` test elsewhere resets moto's state, this server's included."""
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_server}.items():
        monkeypatch.setenv(key, value)
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=S3_BUCKET)  # idempotent in us-east-1
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"
