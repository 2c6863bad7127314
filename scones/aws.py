"""What the SageMaker training path and endpoint path share: where objects go on S3, AWS's
PyTorch container images (every region they are published in; Inferentia, Trainium and Graviton
refused), the Service Quotas check of an instance type, the one polling loop, and telling "not
found" from other AWS errors.

Used by ``scones.training.sagemaker`` (the training job) and ``scones.endpoint.sagemaker`` (model,
endpoint config, endpoint); nothing account-specific is hard-coded.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_PREFIX = "scones"
TAGS = [{"Key": "project", "Value": "scones"}]  # on every SageMaker resource we create
TRAIN_INSTANCE = "ml.m5.xlarge"  # CPU, 4 vCPUs: the 3 members train side by side
ENDPOINT_INSTANCE = "ml.m5.large"

# AWS's PyTorch Deep Learning Containers; training and inference use the same framework version.
FRAMEWORK_VERSION = "2.5.1"
PY_VERSION = "py311"
CUDA_VERSION = "cu124"
OS_VERSION = "ubuntu22.04"
# The ECR account of the PyTorch 2.5.1 DLCs in every region they are published in (training and
# inference alike). Source: the SageMaker Python SDK wheel sagemaker-2.257.7,
# sagemaker/image_uri_config/pytorch.json, versions 2.5.1 "registries" (read 2026-11-28).
DLC_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}
# What the containers above run on, for wheels shipped inside model.tar.gz (see
# scones.training.wheelhouse): CPython 3.11 on x86_64 Ubuntu 22.04 (glibc 2.35).
DLC_PYTHON = "3.11"
DLC_GLIBC = (2, 35)
DLC_ARCH = "x86_64"
# Instance families the x86 CPU/GPU images above cannot run on (they need another image).
GRAVITON_FAMILY = re.compile(r"^[a-z]+[0-9]+g[a-z]*$")  # c6g, c7gn, m6gd, r7g, t4g, ...
REFUSED_PREFIXES = {"inf": "Inferentia (AWS Neuron)", "trn": "Trainium (AWS Neuron)"}


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


class UnknownRegionError(SageMakerError):
    """AWS publishes no PyTorch container of our version in that region."""


class UnsupportedInstanceTypeError(SageMakerError):
    """The instance type cannot run AWS's x86 PyTorch containers (or is not a SageMaker type)."""


def instance_family(instance_type: str) -> str:
    """``ml.m5.xlarge`` -> ``m5``; raise ``UnsupportedInstanceTypeError`` for a malformed name."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml" or not parts[1] or not parts[2]:
        raise UnsupportedInstanceTypeError(
            f"{instance_type!r} is not a SageMaker instance type (ml.FAMILY.SIZE, e.g. ml.m5.xlarge)"
        )
    return parts[1]


def refused_kind(instance_type: str) -> str | None:
    """What kind of non-x86 or accelerator-specific instance this is (Inferentia, Trainium,
    Graviton), or None for a type AWS's x86 CPU/GPU PyTorch images run on."""
    family = instance_family(instance_type)
    for prefix, kind in REFUSED_PREFIXES.items():
        if family.startswith(prefix):
            return kind
    if GRAVITON_FAMILY.match(family):
        return "Graviton (arm64)"
    return None


def dlc_account(region: str) -> str:
    """The ECR account of the PyTorch containers in ``region``, or ``UnknownRegionError``."""
    account = DLC_ACCOUNTS.get(region)
    if account is None:
        close = difflib.get_close_matches(region, DLC_ACCOUNTS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownRegionError(
            f"AWS publishes no PyTorch {FRAMEWORK_VERSION} container in region {region!r}; "
            f"{hint}use one of the {len(DLC_ACCOUNTS)} regions in scones.aws.DLC_ACCOUNTS "
            "or pass --image URI of an image in that region"
        )
    return account


def _is_gpu(instance_type: str) -> bool:
    return instance_family(instance_type).startswith(("p", "g"))


def image_uri(
    kind: str,
    region: str,
    instance_type: str,
    *,
    framework_version: str = FRAMEWORK_VERSION,
    py_version: str = PY_VERSION,
) -> str:
    """URI of AWS's PyTorch ``training`` or ``inference`` container for the region and instance.

    Raises ``UnknownRegionError`` for a region without these containers and
    ``UnsupportedInstanceTypeError`` for Inferentia, Trainium and Graviton instances (the x86
    image does not run there: the caller must name an image itself)."""
    if kind not in ("training", "inference"):
        raise ValueError(f"kind must be training or inference, got {kind!r}")
    refused = refused_kind(instance_type)
    if refused is not None:
        raise UnsupportedInstanceTypeError(
            f"{instance_type} runs on {refused}: AWS's x86 PyTorch {kind} image does not run "
            "there; pass --image URI of an image built for it, or pick an x86 type such as "
            "ml.m5.xlarge"
        )
    account = dlc_account(region)
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


# Service Quotas: SageMaker's per-instance-type quotas are named "<type> for <usage>", as
# SageMaker's own ResourceLimitExceeded messages name them ("The account-level service limit
# 'ml.m5.large for training job usage' is 0 Instances ..."); their codes (L-...) are looked up
# by that name, never hard-coded.
QUOTA_SERVICE = "sagemaker"
QUOTA_USAGE = {
    "training": "training job usage",
    "spot": "spot training job usage",
    "endpoint": "endpoint usage",
}


class InsufficientQuotaError(SageMakerError):
    """The account's quota for the instance type is below what the job or endpoint needs."""


@dataclass(frozen=True)
class Quota:
    """One Service Quotas quota: ``applied`` False means AWS's default (no account value)."""

    name: str
    code: str
    value: float
    applied: bool


def quota_name(instance_type: str, usage: str) -> str:
    """``ml.m5.xlarge for training job usage`` (usage: training, spot, endpoint)."""
    return f"{instance_type} for {QUOTA_USAGE[usage]}"


def quota_console_url(region: str, code: str) -> str:
    """The Service Quotas console page of SageMaker quota ``code`` in ``region``."""
    path = f"servicequotas/home/services/{QUOTA_SERVICE}/quotas/{code}"
    if region.startswith("cn-"):
        return f"https://console.amazonaws.cn/{path}?region={region}"
    if region.startswith("us-gov-"):
        return f"https://console.amazonaws-us-gov.com/{path}?region={region}"
    return f"https://{region}.console.aws.amazon.com/{path}"


def find_quota(client: Any, name: str) -> Quota | None:
    """The SageMaker quota called ``name`` (its applied value, else AWS's default), or None."""
    from botocore.exceptions import ClientError

    default = None
    pages = client.get_paginator("list_aws_default_service_quotas").paginate(
        ServiceCode=QUOTA_SERVICE, PaginationConfig={"PageSize": 100}
    )
    for page in pages:
        default = next((q for q in page.get("Quotas", []) if q.get("QuotaName") == name), None)
        if default is not None:
            break
    if default is None:
        return None
    code = str(default["QuotaCode"])
    try:
        applied = client.get_service_quota(ServiceCode=QUOTA_SERVICE, QuotaCode=code)["Quota"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
        return Quota(name, code, float(default["Value"]), applied=False)
    return Quota(name, code, float(applied["Value"]), applied=True)


def check_instance_quota(
    client: Any,
    *,
    region: str,
    instance_type: str,
    usage: str,
    count: int = 1,
    warn: Callable[[str], None],
) -> Quota | None:
    """Raise ``InsufficientQuotaError`` (saying which quota to raise, and where) when the quota
    for ``count`` instances of ``instance_type`` is too low; when Service Quotas cannot be read
    (denied, unavailable, no such quota) call ``warn`` and return None."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = quota_name(instance_type, usage)
    try:
        quota = find_quota(client, name)
    except (ClientError, BotoCoreError) as exc:
        warn(f"could not read the quota '{name}' from Service Quotas ({exc}); not checked")
        return None
    if quota is None:
        warn(f"Service Quotas lists no SageMaker quota '{name}' in {region}; not checked")
        return None
    if quota.value < count:
        source = "" if quota.applied else ", AWS's default"
        raise InsufficientQuotaError(
            f"the SageMaker quota '{name}' ({quota.code}) is {quota.value:g}{source} in {region}; "
            f"{count} instance(s) needed. Raise it in the Service Quotas console: "
            f"{quota_console_url(region, quota.code)} or run: aws service-quotas "
            f"request-service-quota-increase --service-code {QUOTA_SERVICE} "
            f"--quota-code {quota.code} --desired-value {count} --region {region} "
            "(or choose another --instance-type)"
        )
    return quota
