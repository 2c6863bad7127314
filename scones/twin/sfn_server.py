"""The twin's Lambda + Step Functions service: moto with the ASL interpreter and our handlers.

Run as ``python -m scones.twin.sfn_server`` (``scones up`` does it). It serves moto's API on
``127.0.0.1:$SCONES_MOTO_PORT`` with the Step Functions interpreter on, each function that
``scones deploy --local`` bound running the real handler from template.yaml and any other
running its own zip (``scones.twin.moto_binding``), the Step Functions operations moto lacks
(``scones.twin.sfn_api``), AWS's error for any other operation or service moto lacks
(``scones.twin.aws_errors``), moto's speed and memory fixed for a long run
(``scones.twin.moto_fixes``), and the S3 -> state machine bridge (``scones.twin.bridge``)
polling the deployed bucket's incoming prefix. As ``scones env``'s catch-all endpoint it
answers every AWS service without its own setting.

The handlers run in this process and make their boto3 calls with the process environment, so
it must hold ``settings.aws_env()`` (local S3 and endpoint); missing variables are filled in.

Environment: ``SCONES_BRIDGE=0`` turns the bridge off; ``SCONES_SFN_KEEP_EXECUTIONS`` (default
1000) is how many finished executions per state machine stay queryable.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from scones.settings import Settings

LOG = logging.getLogger("scones.twin.sfn")


@dataclass(frozen=True)
class ServerOptions:
    """How to run the server (read once from the command line and environment)."""

    host: str
    port: int
    bridge: bool
    keep_executions: int


class RunningServer:
    """A started moto server (and bridge) in this process; ``stop()`` shuts both down."""

    def __init__(self, server: MotoHttpServer, bridge: object | None, port: int) -> None:
        self.server = server
        self._bridge = bridge
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the bridge, then the HTTP server."""
        if self._bridge is not None:
            self._bridge.stop()  # type: ignore[attr-defined]
        self.server.stop()


class MotoHttpServer:
    """moto's API over HTTP in a daemon thread, as moto's ``ThreadedMotoServer`` serves it, but
    with the twin's dispatcher (``moto_fixes.Dispatcher``: no Flask debug mode, backend per host
    remembered), behind ``sigv4_http.guard_moto`` (SigV4 with the twin's keys only). The port
    is bound when constructed: an ``OSError`` says it is taken."""

    def __init__(self, host: str, port: int, settings: Settings) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        from scones.twin.moto_fixes import Dispatcher
        from scones.twin.sigv4_http import guard_moto

        self.dispatcher = Dispatcher()
        app = guard_moto(self.dispatcher, settings)  # SigV4 with settings' keys, no browsers
        self._server = make_server(
            host, port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-http", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The port it listens on (the free one chosen when asked for port 0)."""
        return int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop serving and wait for the serving thread."""
        self._server.shutdown()
        self._thread.join()


def start_server(settings: Settings, options: ServerOptions) -> RunningServer:
    """Bind Lambda, apply the fixes, serve on ``options.host:options.port`` (0: any free)."""
    from scones.twin import moto_binding, moto_fixes, moto_targets, sfn_api

    moto_binding.configure_moto()
    moto_binding.install()
    moto_binding.configure_home(settings.home)
    sfn_api.install()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    # moto logs every failed state (a normal outcome here, e.g. LowConfidenceError) at ERROR.
    logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(
        logging.CRITICAL
    )
    moto_fixes.apply(keep_executions=options.keep_executions)
    for stale in moto_targets.stale_importers():
        LOG.warning("moto's original still in use at %s: fix or binding bypassed there", stale)
    if settings.deployed_file.exists():
        # Re-create the last deployment before the real port answers (clients that see the
        # server healthy must find it): through a private server on a free port, which shares
        # moto's in-process backends.
        private = MotoHttpServer(options.host, 0, settings)
        _restore(settings, private.port)
        private.stop()
    server = MotoHttpServer(options.host, options.port, settings)
    port = server.port
    # moto's interpreter reaches its own service integrations on localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    bridge = None
    if options.bridge:
        from scones.twin.bridge import Bridge

        bridge = Bridge(settings, moto_url=f"http://{options.host}:{port}")
        bridge.start()
    LOG.info(
        "sfn server listening on %s:%s (bridge %s)", options.host, port, "on" if bridge else "off"
    )
    return RunningServer(server, bridge, port)


def _restore(settings: Settings, port: int) -> None:
    """Re-create the last deployment (moto's state lives in memory only)."""
    from dataclasses import replace

    from scones.twin.deploy import restore_workflow

    try:
        if restore_workflow(replace(settings, moto_port=port)):
            LOG.info("restored the deployment of %s", settings.deployed_file)
    except Exception as exc:  # noqa: BLE001 - the server still serves; deploy again to fix
        LOG.warning(
            "could not restore the last deployment (%s: %s); run `scones deploy --local`",
            type(exc).__name__,
            exc,
        )


def _parse(argv: Sequence[str] | None, settings: Settings) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m scones.twin.sfn_server",
        description="Serve the twin's Lambda + Step Functions API (moto) on loopback.",
    )
    parser.add_argument(
        "--port", type=int, default=settings.moto_port, help="port (default: %(default)s)"
    )
    parser.add_argument(
        "--no-bridge", action="store_true", help="do not start executions on S3 uploads"
    )
    args = parser.parse_args(argv)
    keep = int(os.environ.get("SCONES_SFN_KEEP_EXECUTIONS", "1000"))
    bridge = os.environ.get("SCONES_BRIDGE", "1").lower() not in ("0", "false", "no", "off")
    return ServerOptions(
        host=settings.host,
        port=args.port,
        bridge=bridge and not args.no_bridge,
        keep_executions=keep,
    )


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (default 8 per core): the server runs a thread per request and
    several per execution, and many arenas let RSS creep up over thousands of executions."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM / SIGINT."""
    limit_malloc_arenas()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    settings = Settings.from_env()
    options = _parse(argv, settings)
    for key, value in settings.aws_env().items():
        os.environ.setdefault(key, value)
    try:
        running = start_server(settings, options)
    except OSError as exc:
        print(
            f"sfn server: cannot listen on {options.host}:{options.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    done = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        LOG.info("signal %s: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
