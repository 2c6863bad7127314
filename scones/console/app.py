"""The console's web app: Starlette routes, Jinja2 pages (autoescape on), read-only guards.

Routes (GET and HEAD only): ``/`` the executions (``?status=&token=&size=&sm=``),
``/execution?arn=`` one execution, ``/endpoint`` the newest Data Capture records, and
``/monitor/report.html`` the latest ``scones monitor`` report. Every response carries a
Content-Security-Policy that allows nothing but this origin, inline CSS and ``data:`` images and
fonts, so no page can load anything from the internet; a request whose Host header is not this
server's own loopback address is refused (DNS rebinding).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from scones.console.executions import DEFAULT_PAGE, MAX_PAGE, Executions
from scones.console.source import Source
from scones.executions import EXECUTION_STATUSES as STATUSES
from scones.executions import execution_history

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
REFRESH_S = 2  # how often a running execution's page reloads
MACHINES_TTL_S = 60.0


class Guard:
    """ASGI wrapper: only GET/HEAD, only our own Host header, security headers on every answer."""

    def __init__(self, app: ASGI, port: int) -> None:
        self.app = app
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").lower()
        if host not in self.hosts:
            await _plain(send, 421, "misdirected request: this console answers only to 127.0.0.1")
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _plain(send, 405, "read-only: only GET", allow="GET, HEAD")
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, secured)


async def _plain(send: Any, status: int, text: str, allow: str | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})


def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("scones.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


class Console:
    """The pages; ``create_app`` wires them into Starlette."""

    def __init__(self, source: Source) -> None:
        from scones.console.history import GraphCache

        self.source = source
        self.executions = Executions(source.sfn)
        self.graphs = GraphCache()
        self.env = _templates()
        self.machines: tuple[float, list[dict[str, Any]]] | None = None

    def render(self, name: str, code: int = 200, **values: Any) -> Any:
        """An HTML response from template ``name`` with HTTP status ``code``."""
        from starlette.responses import HTMLResponse

        page = self.env.get_template(name).render(source=self.source, **values)
        return HTMLResponse(page, status_code=code)

    def error(self, status: int, message: str) -> Any:
        """The error page: one line saying what went wrong."""
        return self.render("error.html", code=status, message=message, refresh=None)

    def executions_page(self, request: Any) -> Any:
        """``/``: one page of executions, filtered by status."""
        query = request.query_params
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            return self.error(400, f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        try:
            size = max(1, min(int(query.get("size", DEFAULT_PAGE)), MAX_PAGE))
            number = max(1, int(query.get("page", 1)))
        except ValueError:
            return self.error(400, "size and page must be whole numbers")
        machine = query.get("sm") or self.source.state_machine_arn
        machines = self._machines() if self.source.mode == "aws" else []
        if not machine:
            return self.error(404, f"no state machine found ({self.source.where})")
        page = self.executions.page(machine, status=status, token=query.get("token"), size=size)
        return self.render(
            "executions.html",
            rows=page.rows,
            next_token=page.next_token,
            status=status,
            statuses=STATUSES,
            size=size,
            number=number,
            machine=machine,
            machines=machines,
            refresh=None,
        )

    def _machines(self) -> list[dict[str, Any]]:
        """ListStateMachines, at most once a minute (the chooser above the executions)."""
        now = time.monotonic()
        if self.machines is None or now - self.machines[0] > MACHINES_TTL_S:
            self.machines = (now, self.source.state_machines())
        return self.machines[1]

    def _definition(self, arn: str, machine: str) -> str:
        try:
            info = self.source.sfn.describe_state_machine_for_execution(executionArn=arn)
        except Exception:  # noqa: BLE001 - not every backend has it; the machine's own will do
            info = self.source.sfn.describe_state_machine(stateMachineArn=machine)
        return str(info["definition"])

    def execution_page(self, request: Any) -> Any:
        """``/execution?arn=``: graph, states with input/output, events."""
        from scones.console.history import event_rows, state_rows

        arn = request.query_params.get("arn")
        if not arn:
            return self.error(400, "which execution? /execution?arn=EXECUTION_ARN")
        info = self.source.sfn.describe_execution(executionArn=arn)
        definition = self._definition(arn, info["stateMachineArn"])
        events = execution_history(self.source.sfn, arn)
        running = info["status"] == "RUNNING"
        try:
            svg, graph_error = self.graphs.svg(arn, definition, events, final=not running), None
        except Exception as exc:  # noqa: BLE001 - the rest of the page is still worth showing
            svg, graph_error = None, f"{type(exc).__name__}: {exc}"
        return self.render(
            "execution.html",
            info=info,
            summary=_summary(info),
            svg=svg,
            graph_error=graph_error,
            states=state_rows(definition, events),
            events=event_rows(events),
            execution_input=_shown(info.get("input")),
            execution_output=_shown(info.get("output")),
            refresh=REFRESH_S if running else None,
        )

    def endpoint_page(self, request: Any) -> Any:
        """``/endpoint``: the newest Data Capture records and the monitor report link."""
        from scones.console.captures import recent_captures

        uri, why = self.source.capture_location()
        rows = recent_captures(self.source.s3, uri, self.source.endpoint_name) if uri else []
        report = self.source.report
        report_time = None
        if report is not None and report.is_file():
            report_time = datetime.fromtimestamp(report.stat().st_mtime, UTC)
        return self.render(
            "endpoint.html",
            rows=rows,
            capture_uri=uri,
            why=why,
            report=report,
            report_time=report_time,
            refresh=None,
        )

    def report_page(self, request: Any) -> Any:
        """``/monitor/report.html``: the latest ``scones monitor`` report, as written."""
        from starlette.responses import FileResponse

        report = self.source.report
        if report is None or not report.is_file():
            return self.error(
                404,
                f"no monitor report at {report}: run `scones monitor s3://BUCKET/data_capture"
                f" --output {report.parent if report else '.scones/monitor'}`",
            )
        return FileResponse(report, media_type="text/html; charset=utf-8")


def _shown(text: str | None) -> Any:
    from scones.console.payloads import show_json

    return show_json(text)


def _summary(info: dict[str, Any]) -> Any:
    from scones.console.executions import summarize

    return summarize(info)


def close_app(app: Any) -> None:
    """Stop the background describes of an app from ``create_app``."""
    app.app.state.console.executions.close()


def create_app(source: Source, port: int) -> ASGI:
    """The console's ASGI app for ``source``, guarded for ``127.0.0.1:port``."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
    from starlette.applications import Starlette
    from starlette.routing import Route

    console = Console(source)

    def aws_error(request: Any, exc: Exception) -> Any:
        if isinstance(exc, EndpointConnectionError) and source.mode == "twin":
            return console.error(503, f"the offline twin is not reachable ({exc}): run `scones up`")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = 404 if "DoesNotExist" in code or code == "NoSuchKey" else 502
            return console.error(status, f"AWS error: {exc}")
        return console.error(502, f"AWS error: {exc}")

    app = Starlette(
        routes=[
            Route("/", console.executions_page),
            Route("/execution", console.execution_page),
            Route("/endpoint", console.endpoint_page),
            Route("/monitor/report.html", console.report_page),
        ],
        exception_handlers={ClientError: aws_error, BotoCoreError: aws_error},
    )
    app.state.console = console
    return Guard(app, port)
