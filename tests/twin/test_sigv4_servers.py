"""The twin's servers refuse what is not signed with its keys: moto (the production sfn server,
in-process), an ASGI app behind the endpoint's guard (uvicorn on a free port), the console's
guard, and the notebook's JupyterLab command line."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from scones.settings import Settings
from scones.twin import sigv4
from scones.twin.sigv4_http import AsgiGuard

SETTINGS = Settings(project_root=Path("."), home=Path("."))
ROOT = Path(__file__).resolve().parents[2]


def client(service: str, url: str, *, key: str | None = None, secret: str | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=SETTINGS.region,
        aws_access_key_id=key or SETTINGS.access_key_id,
        aws_secret_access_key=secret or SETTINGS.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def code_of(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]


def raw(
    url: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = {"Host": f"{host}:{port}", **headers}  # as sent by any client, unless overridden
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return answer


# ------------------------------------------------------------------------------------- moto


def test_moto_answers_a_signed_client(moto_server: Any) -> None:
    assert "stateMachines" in client("stepfunctions", moto_server.url).list_state_machines()
    assert "Functions" in client("lambda", moto_server.url).list_functions()


@pytest.mark.parametrize(
    ("service", "call", "secret_code", "key_code"),
    [
        (
            "stepfunctions",
            lambda c: c.list_state_machines(),
            "InvalidSignatureException",
            "UnrecognizedClientException",
        ),
        (
            "lambda",
            lambda c: c.list_functions(),
            "InvalidSignatureException",
            "UnrecognizedClientException",
        ),
        ("iam", lambda c: c.list_roles(), "SignatureDoesNotMatch", "InvalidClientTokenId"),
        ("sts", lambda c: c.get_caller_identity(), "SignatureDoesNotMatch", "InvalidClientTokenId"),
        (
            "cloudwatch",
            lambda c: c.list_metrics(),
            "InvalidSignatureException",
            "UnrecognizedClientException",
        ),
    ],
)
def test_moto_refuses_other_credentials_in_each_protocol(
    moto_server: Any, service: str, call: Any, secret_code: str, key_code: str
) -> None:
    wrong_secret = client(service, moto_server.url, secret="guessed")
    assert code_of(lambda: call(wrong_secret)) == (403, secret_code)
    other_key = client(service, moto_server.url, key="AKIAEXAMPLE", secret="x")
    assert code_of(lambda: call(other_key)) == (403, key_code)


def test_moto_refuses_unsigned_requests(moto_server: Any) -> None:
    unsigned = boto3.client(
        "stepfunctions",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    assert code_of(unsigned.list_state_machines) == (403, "MissingAuthenticationTokenException")


def test_moto_api_needs_a_signature_too(moto_server: Any) -> None:
    url = moto_server.url + "/moto-api/reset"
    host = url.split("/")[2]
    status, headers, _ = raw(moto_server.url, "POST", "/moto-api/reset", b"", {"Host": host})
    assert (status, headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
    config = json.dumps({"batch": {"use_docker": False}}).encode()
    signed = sigv4.sign_headers(SETTINGS, "POST", moto_server.url + "/moto-api/config", body=config)
    assert raw(moto_server.url, "POST", "/moto-api/config", config, signed)[0] == 201


def test_moto_refuses_a_tampered_body(moto_server: Any) -> None:
    body = json.dumps({"maxResults": 5}).encode()
    target = {
        "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
        "Content-Type": "application/x-amz-json-1.0",
    }
    signed = sigv4.sign_headers(
        SETTINGS, "POST", moto_server.url + "/", body=body, headers=target, service="states"
    )
    assert raw(moto_server.url, "POST", "/", body, signed)[0] == 200
    status, headers, answer = raw(moto_server.url, "POST", "/", body.replace(b"5", b"9"), signed)
    assert (status, json.loads(answer)["__type"]) == (403, "InvalidSignatureException")


def test_moto_refuses_web_pages_and_foreign_hosts(moto_server: Any) -> None:
    body = b"{}"
    target = {
        "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
        "Content-Type": "application/x-amz-json-1.0",
    }
    signed = sigv4.sign_headers(
        SETTINGS, "POST", moto_server.url + "/", body=body, headers=target, service="states"
    )
    status, _, answer = raw(
        moto_server.url, "POST", "/", body, {**signed, "Origin": "https://evil.example"}
    )
    assert (status, json.loads(answer)["__type"]) == (403, "AccessDeniedException")
    port = moto_server.url.rsplit(":", 1)[1]
    rebound = f"http://evil.example:{port}/"
    signed = sigv4.sign_headers(
        SETTINGS, "POST", rebound, body=body, headers=target, service="states"
    )
    assert signed["Authorization"] and raw(moto_server.url, "POST", "/", body, signed)[0] == 403


def test_moto_own_clients_sign_with_the_twin_keys(moto_server: Any) -> None:
    """moto's ASL interpreter builds its service-integration clients with ``ak``/``sk``."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    internal = boto_client.boto_client_for(region="us-east-1", service="stepfunctions")
    assert internal._request_signer._credentials.access_key == SETTINGS.access_key_id  # not "ak"
    assert internal.meta.endpoint_url.endswith(f":{moto_server.port}")
    assert "stateMachines" in internal.list_state_machines()


# ---------------------------------------------------------------------------------- endpoint


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the body size it read (as the endpoint app reads bodies)."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    payload = json.dumps({"size": size, "path": scope["path"]}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def guarded_url() -> Iterator[str]:
    import uvicorn

    verifier = sigv4.Verifier.for_settings(SETTINGS)
    app = AsgiGuard(echo, verifier, open_routes=frozenset({("GET", "/ping")}), max_body=1000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_endpoint_guard_passes_boto3_and_refuses_a_wrong_secret(guarded_url: str) -> None:
    runtime = client("sagemaker-runtime", guarded_url)
    answer = runtime.invoke_endpoint(EndpointName="e", ContentType="image/png", Body=b"png")
    assert json.loads(answer["Body"].read()) == {"size": 3, "path": "/endpoints/e/invocations"}
    wrong = client("sagemaker-runtime", guarded_url, secret="guessed")
    call = lambda: wrong.invoke_endpoint(EndpointName="e", ContentType="image/png", Body=b"png")  # noqa: E731
    assert code_of(call) == (403, "InvalidSignatureException")


def test_endpoint_guard_refuses_unsigned_but_not_ping(guarded_url: str) -> None:
    request = urllib.request.Request(
        guarded_url + "/endpoints/e/invocations",
        data=b"png",
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 403
    assert caught.value.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    with urllib.request.urlopen(guarded_url + "/ping", timeout=10) as response:
        assert response.status == 200
    host = guarded_url.split("/")[2]
    assert (
        raw(guarded_url, "GET", "/ping", b"", {"Host": host, "Origin": "http://evil.example"})[0]
        == 403
    )
    assert raw(guarded_url, "GET", "/ping", b"", {"Host": "evil.example"})[0] == 403


def test_endpoint_guard_takes_presigned_urls_and_keeps_oversized_bodies_oversized(
    guarded_url: str,
) -> None:
    url = sigv4.presign_url(SETTINGS, "POST", guarded_url + "/endpoints/e/invocations", expires=60)
    request = urllib.request.Request(url, data=b"x" * 5000, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["size"] == 1001  # the app still sees "over the limit"
    signed = sigv4.sign_headers(SETTINGS, "POST", guarded_url + "/x", body=b"abc")
    assert raw(guarded_url, "POST", "/x", b"abd", signed)[0] == 403


# ----------------------------------------------------------------------- console and notebook


def test_console_refuses_cross_site_posts_and_foreign_hosts() -> None:
    from scones.console.app import Guard

    async def page(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the guard let it through")

    import asyncio

    def status_of(method: str, headers: list[tuple[bytes, bytes]]) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": "/", "headers": headers}
        asyncio.run(Guard(page, 8090)(scope, receive, send))
        return int(sent[0]["status"])

    local = (b"host", b"127.0.0.1:8090")
    assert status_of("POST", [local, (b"origin", b"https://evil.example")]) == 405
    assert status_of("GET", [(b"host", b"evil.example:8090")]) == 421


def test_make_notebook_keeps_jupyter_token_and_host_checks() -> None:
    """JupyterLab on 127.0.0.1 keeps its defaults: a token, XSRF checks, and Host checking
    (``allow_remote_access`` is off when it listens on loopback only)."""
    recipe = (ROOT / "Makefile").read_text()
    start = recipe.index("\nnotebook:")
    target = recipe[start : recipe.index("\n\n", start)]
    assert "--ServerApp.ip=127.0.0.1" in target
    for weakening in (
        "token=",
        "password",
        "disable_check_xsrf",
        "allow_remote_access",
        "allow_origin",
    ):
        assert weakening not in target


def test_moto_connection_stays_usable_after_a_refusal(moto_server: Any) -> None:
    """Refusals answer cleanly: the keep-alive connection serves the next request."""
    body = b"{}"
    target = {
        "X-Amz-Target": "AWSStepFunctions.ListStateMachines",
        "Content-Type": "application/x-amz-json-1.0",
    }
    url = moto_server.url + "/"
    signed = sigv4.sign_headers(SETTINGS, "POST", url, body=body, headers=target, service="states")
    conn = http.client.HTTPConnection("127.0.0.1", moto_server.port, timeout=10)
    try:
        statuses = []
        for headers in ({**signed, "Origin": "https://evil.example"}, {**target}, signed):
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        assert statuses == [403, 403, 200]
    finally:
        conn.close()
