"""boto3 clients pointed at the offline twin, and the one error for a twin that is not running.

Every AWS call of the twin's commands and of the S3 bridge goes through these plain clients (the
same calls that work on AWS), with explicit endpoints and credentials from ``Settings``.
"""

from __future__ import annotations

from typing import Any

from scones.errors import CommandError
from scones.settings import Settings


def twin_clients(settings: Settings, *services: str, moto_url: str | None = None) -> list[Any]:
    """boto3 clients for ``services`` pointed at the twin (explicit endpoints and credentials).

    S3 goes to SeaweedFS, ``sagemaker-runtime`` to the local endpoint, everything else to moto
    (``moto_url``, default ``settings.moto_url``).
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    urls = {"s3": settings.s3_url, "sagemaker-runtime": settings.endpoint_url}
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=64,
        s3={"addressing_style": "path"},
        inject_host_prefix=False,  # StartSyncExecution / TestState: no sync-127.0.0.1 host
    )
    return [
        session.client(
            name, endpoint_url=urls.get(name, moto_url or settings.moto_url), config=config
        )
        for name in services
    ]


def unreachable(exc: Exception, settings: Settings) -> CommandError:
    """The error to raise when the twin does not answer (``exc``: the connection error)."""
    return CommandError(
        f"the offline twin is not reachable ({type(exc).__name__}); start it with `scones up`"
        f" (S3 {settings.s3_url}, Step Functions {settings.moto_url})"
    )
