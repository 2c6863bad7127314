"""Settings for the CLI and the offline twin, read once from the environment."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"

#: The twin's secret key when no credentials file exists yet (tests' private twins). ``scones up``
#: replaces it with a random secret per install (``$SCONES_HOME/credentials.json``), so a web page
#: or program that read this repository cannot sign requests to a user's twin.
DEFAULT_SECRET = "scones-local-secret"
CREDENTIALS_FILE = "credentials.json"


def find_project_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` holding ``template.yaml``.

    Falls back to the checkout this package was installed from (editable install), then to
    ``start`` (the current directory).
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder
    # Outside the checkout: an editable install still knows where its project is.
    source = Path(__file__).resolve().parent.parent
    if start is None and (source / "template.yaml").is_file():
        return source
    return here


def project_root(
    environ: Mapping[str, str] | None = None, find: Callable[[], Path] = find_project_root
) -> Path:
    """``$SCONES_PROJECT`` when set, else ``find()`` (the checkout holding ``template.yaml``)."""
    value = (os.environ if environ is None else environ).get("SCONES_PROJECT")
    return Path(value).resolve() if value else find()


@dataclass(frozen=True)
class Settings:
    """Everything the twin and the CLI need to know about where things run.

    Every field can be set through the environment variable named in ``from_env``.
    """

    project_root: Path
    home: Path
    host: str = LOOPBACK
    s3_port: int = 8333
    moto_port: int = 5055
    endpoint_port: int = 8080
    region: str = "us-east-1"
    access_key_id: str = "scones"
    secret_access_key: str = DEFAULT_SECRET
    endpoint_workers: int = 2
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``)."""
        env = dict(os.environ if environ is None else environ)
        root = project_root(env)
        home = Path(env.get("SCONES_HOME") or root / ".scones").resolve()
        return cls(
            project_root=root,
            home=home,
            s3_port=int(env.get("SCONES_S3_PORT", 8333)),
            moto_port=int(env.get("SCONES_MOTO_PORT", 5055)),
            endpoint_port=int(env.get("SCONES_ENDPOINT_PORT", 8080)),
            region=env.get("SCONES_REGION", "us-east-1"),
            endpoint_workers=int(env.get("SCONES_ENDPOINT_WORKERS", 2)),
            secret_access_key=env.get("SCONES_SECRET_ACCESS_KEY") or read_secret(home),
        )

    @property
    def credentials_file(self) -> Path:
        """The per-install secret ``scones up`` writes (read by ``from_env``)."""
        return self.home / CREDENTIALS_FILE

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def moto_url(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.endpoint_port}"

    @property
    def deployed_file(self) -> Path:
        """JSON written by ``scones deploy --local``: bucket, ARNs, endpoint name."""
        return self.home / "deployed.json"

    @property
    def endpoints_dir(self) -> Path:
        """One folder per local endpoint (see ``scones.endpoint.registry``)."""
        return self.home / "endpoints"

    def aws_env(self) -> dict[str, str]:
        """Environment variables that point any AWS SDK or the AWS CLI at the twin.

        ``AWS_ENDPOINT_URL`` (every service without its own setting) is the moto server, so no
        call leaves the machine: IAM, CloudWatch Logs, EventBridge, CloudFormation and the rest
        are answered there (moto, or an AWS-shaped error for what it lacks). S3 goes to
        SeaweedFS, SageMaker and SageMaker Runtime to the endpoint server.
        ``AWS_DISABLE_HOST_PREFIX_INJECTION`` keeps botocore from prefixing the host for
        ``StartSyncExecution`` / ``TestState`` (``sync-127.0.0.1`` resolves nowhere).
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.moto_url,  # the catch-all: nothing goes to real AWS
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_ENDPOINT_URL_SFN": self.moto_url,
            "AWS_ENDPOINT_URL_STEPFUNCTIONS": self.moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": self.moto_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.endpoint_url,  # the twin's endpoints' control plane
            "AWS_ENDPOINT_URL_STS": self.moto_url,
            "AWS_ENDPOINT_URL_CLOUDWATCH": self.moto_url,  # the endpoint's Invocations metric
        }


def read_secret(home: Path) -> str:
    """The secret in ``home/credentials.json``, or ``DEFAULT_SECRET`` when there is none."""
    try:
        value = json.loads((home / CREDENTIALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_SECRET
    secret = value.get("secret_access_key") if isinstance(value, dict) else None
    return secret if isinstance(secret, str) and secret else DEFAULT_SECRET


def ensure_secret(home: Path) -> bool:
    """Write a random secret to ``home/credentials.json`` (mode 0600) unless one exists.

    Returns True when it wrote one. ``scones up`` calls it before starting anything.
    """
    path = home / CREDENTIALS_FILE
    if path.exists():
        return False
    home.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"secret_access_key": secrets.token_urlsafe(30)}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(data)
    return True
