"""One way for every subcommand to turn an error the user can act on into one line and an exit code.

A handler is wrapped with ``@user_errors(table)``; ``table`` is called only when an error happens
(so heavy modules are imported lazily) and lists ``(exception classes, exit code)`` pairs. AWS SDK
errors (no credentials, unreachable endpoint, an API error) are always reported the same way.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]
ErrorTable = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], int]]

EXIT_USAGE = 2  # bad arguments, bad configuration, missing input: the user can fix it
EXIT_FAILED = 1  # the work was attempted and failed (an AWS error, a failed deployment)


class CommandError(Exception):
    """An error whose message alone tells the user what to do (printed without its class name)."""


def describe(exc: BaseException) -> str:
    """The one line shown for ``exc``: its class name and message (the message alone for
    ``CommandError``)."""
    if isinstance(exc, CommandError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _aws_errors() -> list[tuple[tuple[type[BaseException], ...], int, str | None]]:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    return [
        (
            (NoCredentialsError,),
            EXIT_USAGE,
            'no AWS credentials (configure a profile or AWS_* variables, or `eval "$(scones env)"` for the twin)',
        ),
        ((EndpointConnectionError,), EXIT_FAILED, None),
        ((ClientError, BotoCoreError), EXIT_FAILED, None),
    ]


def user_errors(table: Callable[[], ErrorTable] = lambda: ()) -> Callable[[Handler], Handler]:
    """Decorate a subcommand handler so the errors in ``table()`` (and AWS SDK errors) print
    ``scones <command>: <Class>: <message>`` on stderr and return their exit code."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(args: argparse.Namespace) -> int:
            try:
                return func(args)
            except Exception as exc:
                code, message = _match(exc, table())
                if code is None:
                    raise
                command = " ".join(
                    str(part)
                    for part in (getattr(args, "command", None), getattr(args, "subcommand", None))
                    if part
                )
                print(f"scones {command}: {message}", file=sys.stderr)
                return code

        return handler

    return wrap


def _match(exc: Exception, table: ErrorTable) -> tuple[int | None, str]:
    for kinds, code in (*table, (CommandError, EXIT_USAGE)):
        if isinstance(exc, kinds):
            return code, describe(exc)
    try:
        aws = _aws_errors()
    except ImportError:  # pragma: no cover - botocore is a dependency
        aws = []
    for aws_kinds, code, fixed in aws:
        if isinstance(exc, aws_kinds):
            return code, fixed or f"AWS error: {exc}"
    return None, ""
