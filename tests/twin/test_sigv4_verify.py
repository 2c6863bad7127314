"""SigV4 verification (``scones.twin.sigv4``) against requests signed by botocore's own signer,
and the 403 shapes (``scones.twin.sigv4_http``) read back by botocore's own response parsers."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from scones.settings import Settings
from scones.twin import sigv4
from scones.twin.sigv4 import AuthFailure, SignedRequest, Verifier
from scones.twin.sigv4_http import browser_check, error_response

SETTINGS = Settings(project_root=Path("."), home=Path("."))
KEY, SECRET = SETTINGS.access_key_id, SETTINGS.secret_access_key
LAMBDA_URL = (
    "http://127.0.0.1:5055/2015-03-31/functions/"
    "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ax/invocations"
)


def signed(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    service: str = "lambda",
    key: str = KEY,
    secret: str = SECRET,
    auth: type[SigV4Auth] = SigV4Auth,
    headers: dict[str, str] | None = None,
) -> SignedRequest:
    """``url`` signed by botocore, as the server receives it."""
    request = AWSRequest(
        method=method, url=url, data=body, headers=headers or {"Content-Type": "application/json"}
    )
    auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    return received(request.prepare().url, request.headers, body, method)


def received(url: str, headers: Any, body: bytes, method: str = "POST") -> SignedRequest:
    parts = urlsplit(url)
    lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    lower.setdefault("host", parts.netloc)
    return SignedRequest(method, parts.path, parts.query, lower, hashlib.sha256(body).hexdigest())


def failure(request: SignedRequest, verifier: Verifier | None = None) -> AuthFailure:
    with pytest.raises(AuthFailure) as caught:
        (verifier or Verifier(KEY, SECRET)).verify(request)
    return caught.value


@pytest.mark.parametrize(
    ("url", "method", "service", "auth"),
    [
        (LAMBDA_URL, "POST", "lambda", SigV4Auth),  # an ARN in the path: encoded twice
        ("http://127.0.0.1:5055/", "POST", "states", SigV4Auth),
        (
            "http://127.0.0.1:5055/2015-03-31/functions/?MaxItems=5&Marker=a%2Fb%20c",
            "GET",
            "lambda",
            SigV4Auth,
        ),
        ("http://localhost:5055/b/odd%20key/../x?uploads", "PUT", "s3", S3SigV4Auth),
        ("http://127.0.0.1:8080/endpoints/e/invocations", "POST", "sagemaker", SigV4Auth),
    ],
)
def test_requests_signed_by_botocore_pass(url: str, method: str, service: str, auth: Any) -> None:
    request = signed(url, b'{"a": 1}', method=method, service=service, auth=auth)
    assert Verifier(KEY, SECRET).verify(request) == service


def test_unsigned_request_is_missing_authentication() -> None:
    request = received(LAMBDA_URL, {"Content-Type": "application/json"}, b"{}")
    assert failure(request).kind == sigv4.MISSING


def test_wrong_secret_is_a_signature_mismatch() -> None:
    caught = failure(signed(LAMBDA_URL, b"{}", secret="guessed"))
    assert caught.kind == sigv4.MISMATCH and "does not match" in caught.message


def test_unknown_access_key_is_refused_before_the_signature() -> None:
    caught = failure(signed(LAMBDA_URL, b"{}", key="AKIAOTHER"))
    assert caught.kind == sigv4.UNKNOWN_KEY and caught.service == "lambda"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: dataclasses.replace(r, payload_sha256=hashlib.sha256(b"{}!").hexdigest()),
        lambda r: dataclasses.replace(r, raw_path=r.raw_path.replace("x", "y")),
        lambda r: dataclasses.replace(r, method="PUT"),
        lambda r: dataclasses.replace(r, raw_query="Qualifier=2"),
        lambda r: dataclasses.replace(r, headers={**r.headers, "content-type": "text/plain"}),
        lambda r: dataclasses.replace(r, headers={**r.headers, "host": "127.0.0.1:5056"}),
    ],
    ids=["body", "path", "method", "query", "signed-header", "host"],
)
def test_tampered_request_is_a_mismatch(tamper: Any) -> None:
    assert failure(tamper(signed(LAMBDA_URL, b"{}"))).kind == sigv4.MISMATCH


def test_payload_hash_header_must_match_the_body() -> None:
    request = signed(
        "http://127.0.0.1:5055/b/k", b"data", method="PUT", service="s3", auth=S3SigV4Auth
    )
    Verifier(KEY, SECRET).verify(request)
    tampered = dataclasses.replace(request, payload_sha256=hashlib.sha256(b"evil").hexdigest())
    assert "x-amz-content-sha256" in failure(tampered).message


def test_time_stamp_may_be_15_minutes_off_not_more() -> None:
    request = signed(LAMBDA_URL, b"{}")
    now = time.time()
    Verifier(KEY, SECRET, clock=lambda: now + 14 * 60).verify(request)
    Verifier(KEY, SECRET, clock=lambda: now - 14 * 60).verify(request)
    late = failure(request, Verifier(KEY, SECRET, clock=lambda: now + 16 * 60))
    assert late.kind == sigv4.EXPIRED and late.message.startswith("Signature expired:")
    early = failure(request, Verifier(KEY, SECRET, clock=lambda: now - 16 * 60))
    assert early.kind == sigv4.EXPIRED and "not yet current" in early.message


@pytest.mark.parametrize(
    ("authorization", "part"),
    [
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00", "Credential"),
        (
            "AWS4-HMAC-SHA256 Credential=scones/20261128/us-east-1/x/aws4_request, Signature=0",
            "SignedHeaders",
        ),
        ("AWS scones:abc", "algorithm"),
        ("AWS4-HMAC-SHA256 Credential=scones/x, SignedHeaders=host, Signature=00", "scoped"),
    ],
)
def test_malformed_authorization_is_incomplete(authorization: str, part: str) -> None:
    good = signed(LAMBDA_URL, b"{}")
    request = dataclasses.replace(good, headers={**good.headers, "authorization": authorization})
    caught = failure(request)
    assert caught.kind == sigv4.INCOMPLETE and part in caught.message


def test_host_must_be_signed() -> None:
    request = signed(LAMBDA_URL, b"{}")
    auth = request.headers["authorization"].replace("SignedHeaders=", "SignedHeaders=x-amz-date;")
    auth = auth.replace(";host", "")
    caught = failure(
        dataclasses.replace(request, headers={**request.headers, "authorization": auth})
    )
    assert caught.kind == sigv4.INCOMPLETE and "Host" in caught.message


def test_sign_headers_is_what_the_verifier_accepts() -> None:
    url = "http://127.0.0.1:8080/endpoints/e/invocations"
    headers = sigv4.sign_headers(SETTINGS, "POST", url, body=b"png", headers={"Accept": "*/*"})
    assert headers["Accept"] == "*/*" and headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    assert Verifier.for_settings(SETTINGS).verify(received(url, headers, b"png")) == "sagemaker"
    assert failure(received(url, headers, b"gif")).kind == sigv4.MISMATCH


def test_presigned_url_passes_with_any_body_until_it_expires() -> None:
    url = sigv4.presign_url(
        SETTINGS, "POST", "http://127.0.0.1:8080/endpoints/e/invocations", expires=60
    )
    assert "X-Amz-Signature=" in url
    verifier = Verifier.for_settings(SETTINGS)
    for body in (b"", b"any body"):
        assert verifier.verify(received(url, {}, body)) == "sagemaker"
    later = time.time() + 61
    caught = failure(received(url, {}, b""), Verifier(KEY, SECRET, clock=lambda: later))
    assert caught.kind == sigv4.EXPIRED
    assert failure(received(url.replace("/e/", "/f/"), {}, b"")).kind == sigv4.MISMATCH
    other = sigv4.presign_url(dataclasses.replace(SETTINGS, secret_access_key="x"), "GET", url)
    assert failure(received(other, {}, b"", "GET")).kind == sigv4.MISMATCH


def test_presigned_url_lives_at_most_a_week() -> None:
    url = sigv4.presign_url(SETTINGS, "GET", "http://127.0.0.1:8080/ping", expires=8 * 24 * 3600)
    assert failure(received(url, {}, b"", "GET")).kind == sigv4.INCOMPLETE


def test_signing_key_is_derived_once_per_day_region_service() -> None:
    verifier = Verifier(KEY, SECRET)
    request = signed(LAMBDA_URL, b"{}")
    for _ in range(50):
        verifier.verify(request)
    assert len(verifier._keys) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example:5055"},
        {"host": "localhost.evil:5055"},
        {"host": ""},
        {"host": "127.0.0.1:5055", "origin": "https://evil.example"},
        {"host": "127.0.0.1:5055", "origin": "null"},
        {"host": "127.0.0.1:5055", "sec-fetch-site": "cross-site"},
    ],
)
def test_browser_requests_and_foreign_hosts_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(AuthFailure) as caught:
        browser_check(headers)
    assert caught.value.kind == sigv4.REFUSED


@pytest.mark.parametrize("host", ["127.0.0.1:5055", "localhost:1", "[::1]:8080", "LOCALHOST"])
def test_loopback_hosts_pass(host: str) -> None:
    browser_check({"host": host, "sec-fetch-site": "none"})


# ------------------------------------------------------------------ the shapes botocore reads

SHAPES = [
    (
        "stepfunctions",
        "ListStateMachines",
        {"x-amz-target": "AWSStepFunctions.ListStateMachines"},
        sigv4.MISMATCH,
        "InvalidSignatureException",
    ),
    ("lambda", "ListFunctions", {}, sigv4.MISSING, "MissingAuthenticationTokenException"),
    ("sagemaker-runtime", "InvokeEndpoint", {}, sigv4.UNKNOWN_KEY, "UnrecognizedClientException"),
    (
        "sagemaker",
        "ListEndpoints",
        {"x-amz-target": "SageMaker.ListEndpoints"},
        sigv4.INCOMPLETE,
        "IncompleteSignatureException",
    ),
    (
        "sts",
        "GetCallerIdentity",
        {"content-type": "application/x-www-form-urlencoded"},
        sigv4.UNKNOWN_KEY,
        "InvalidClientTokenId",
    ),
    (
        "iam",
        "ListRoles",
        {"content-type": "application/x-www-form-urlencoded"},
        sigv4.EXPIRED,
        "SignatureDoesNotMatch",
    ),
    (
        "cloudwatch",
        "PutMetricData",
        {"smithy-protocol": "rpc-v2-cbor"},
        sigv4.MISMATCH,
        "InvalidSignatureException",
    ),
    (
        "cloudwatch",
        "PutMetricData",
        {"smithy-protocol": "rpc-v2-cbor"},
        sigv4.REFUSED,
        "AccessDeniedException",
    ),
]


@pytest.mark.parametrize(("service", "operation", "headers", "kind", "code"), SHAPES)
def test_error_shape_gives_botocore_the_code(
    service: str, operation: str, headers: dict[str, str], kind: str, code: str
) -> None:
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model(service)
    status, answer, body = error_response(AuthFailure(kind, "why it failed", "x"), headers)
    assert status == (400 if kind == sigv4.INCOMPLETE else 403)
    response = {"status_code": status, "headers": dict(answer), "body": body}
    parsed = create_parser(model.protocol).parse(
        response, model.operation_model(operation).output_shape
    )
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == "why it failed"


def test_s3_error_shape() -> None:
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("s3")
    status, answer, body = error_response(AuthFailure(sigv4.MISMATCH, "bad", "s3"), {})
    response = {"status_code": status, "headers": dict(answer), "body": body}
    parsed = create_parser("rest-xml").parse(
        response, model.operation_model("ListBuckets").output_shape
    )
    assert (status, parsed["Error"]["Code"]) == (403, "SignatureDoesNotMatch")
