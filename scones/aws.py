"""What the SageMaker training path and endpoint path share: where objects go on S3, AWS's
PyTorch container images, the one polling loop, and telling "not found" from other AWS errors.

Used by ``scones.training.sagemaker`` (the training job) and ``scones.endpoint.sagemaker`` (model,
endpoint config, endpoint); nothing account-specific is hard-coded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_PREFIX = "scones"
TAGS = [{"Key": "project", "Value": "scones"}]  # on every SageMaker resource we create

# AWS's PyTorch Deep Learning Containers; training and inference use the same framework version.
FRAMEWORK_VERSION = "2.5.1"
PY_VERSION = "py311"
CUDA_VERSION = "cu124"
OS_VERSION = "ubuntu22.04"
DLC_ACCOUNT = "763104351884"
# Regions whose Deep Learning Containers live in another account (the rest use DLC_ACCOUNT).
DLC_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "eu-south-1": "692866216735",
    "me-south-1": "217643126080",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-west-1": "442386744353",
}


class SageMakerError(Exception):
    """Base class of the SageMaker path's errors (one-line messages)."""


@dataclass(frozen=True)
class S3Location:
    """Where the project's objects live: ``s3://bucket/prefix/...``."""

    bucket: str
    prefix: str = DEFAULT_PREFIX

    def uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/part/part``."""
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def key(self, *parts: str) -> str:
        """The key under the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def _is_gpu(instance_type: str) -> bool:
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    return family.startswith(("p", "g"))


def image_uri(
    kind: str,
    region: str,
    instance_type: str,
    *,
    framework_version: str = FRAMEWORK_VERSION,
    py_version: str = PY_VERSION,
) -> str:
    """URI of AWS's PyTorch ``training`` or ``inference`` container for the region and instance."""
    if kind not in ("training", "inference"):
        raise ValueError(f"kind must be training or inference, got {kind!r}")
    account = DLC_ACCOUNTS.get(region, DLC_ACCOUNT)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if _is_gpu(instance_type):
        tag = f"{framework_version}-gpu-{py_version}-{CUDA_VERSION}-{OS_VERSION}-sagemaker"
    else:
        tag = f"{framework_version}-cpu-{py_version}-{OS_VERSION}-sagemaker"
    return f"{account}.dkr.ecr.{region}.{domain}/pytorch-{kind}:{tag}"


def timestamp(now: datetime | None = None) -> str:
    """A name suffix such as ``20261127-184405``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def poll(
    describe: Callable[[], dict[str, Any]],
    *,
    state: Callable[[dict[str, Any]], str],
    done: Callable[[dict[str, Any]], bool],
    label: str,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, Any]:
    """Call ``describe()`` every ``poll_s`` seconds until ``done(description)``; show
    ``state(description)`` on a progress bar named ``label``; return the last description."""
    from tqdm import tqdm

    shown = None
    with tqdm(desc=label, unit="poll", disable=not progress) as bar:
        while True:
            desc = dict(describe())
            now = state(desc)
            if now != shown:
                bar.set_postfix_str(now)
                shown = now
            bar.update(1)
            if done(desc):
                return desc
            sleep(poll_s)


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` is an AWS error saying the resource does not exist."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}".lower()
    return "not find" in text or "does not exist" in text or "notfound" in text


def if_found(call: Callable[[], T]) -> T | None:
    """``call()``'s result, or None when AWS answers that its resource does not exist (other
    errors propagate)."""
    try:
        return call()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
