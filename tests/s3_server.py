"""moto's standalone S3 server on a free local port: the real S3 HTTP protocol for the object-store tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.private_servers import free_port

# Credentials moto accepts (any will do); the standard variables every S3 client reads.
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    """The endpoint, and the environment that points a process (or a worker) at it."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def create_bucket(self, name: str) -> None:
        import boto3  # lazy: start-up cost (boto3, only where a test makes a bucket)

        boto3.client("s3", endpoint_url=self.endpoint, **_client_credentials()).create_bucket(Bucket=name)


def _client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


@contextmanager
def running_s3() -> Iterator[S3Server]:
    """A moto S3 server in a thread of this process, reachable over HTTP by any process on the machine."""
    from moto.server import ThreadedMotoServer  # lazy: start-up cost (moto, werkzeug)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the test output
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
