"""One invocation of a zip function's handler, in its own process (``scones.twin.lambda_zip``).

Run as ``python -m scones.twin.lambda_worker`` in the function's unpacked code folder: reads
``{"handler", "event", "request_id", "function_name", "memory_mb", "timeout_s", "region"}`` as
JSON on stdin, imports the handler's module from the current folder, calls it, and writes
``{"payload", "is_error"}`` as JSON to the original stdout. Everything the handler prints or logs
goes to stderr (the function's log). Errors have the Lambda runtime's shape (``errorType`` is the
exception's class name; a result JSON cannot hold is ``Runtime.MarshalError``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from typing import Any


def main() -> int:
    """Run the invocation described on stdin; the answer goes to the original stdout."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # the handler's prints, even from C code, become log lines
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    sys.path.insert(0, os.getcwd())
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"[%(levelname)s]\t%(asctime)s\t{request['request_id']}\t%(message)s",
    )
    from scones.twin import lambda_runtime

    context = lambda_runtime.LambdaContext(
        function_name=request["function_name"],
        memory_limit_in_mb=int(request["memory_mb"]),
        timeout_s=float(request["timeout_s"]),
        aws_request_id=request["request_id"],
        region=request["region"],
    )
    module_name, _, function = str(request["handler"]).rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function)
    except ImportError as exc:
        result = _failed(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", context
        )
    except AttributeError:
        message = f"Handler '{function}' missing on module '{module_name}'"
        result = _failed("Runtime.HandlerNotFound", message, context)
    except Exception as exc:  # noqa: BLE001 - the module raised while importing
        result = lambda_runtime.InvokeResult(
            lambda_runtime.error_payload(exc, context.aws_request_id), True
        )
    else:
        result = lambda_runtime.invoke(handler, request["event"], context)
    if result.is_error:  # the Python runtime logs an unhandled error
        error = result.payload
        trace = "".join(error.get("stackTrace") or [])
        print(
            f"[ERROR] {error.get('errorType')}: {error.get('errorMessage')}\n{trace}",
            file=sys.stderr,
        )
    sys.stderr.flush()
    with os.fdopen(answer_fd, "w", encoding="utf-8") as answer:
        json.dump({"payload": result.payload, "is_error": result.is_error}, answer)
    return 0


def _failed(error_type: str, message: str, context: object) -> Any:
    from scones.twin import lambda_runtime

    payload: dict[str, Any] = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": getattr(context, "aws_request_id", ""),
        "stackTrace": [],
    }
    return lambda_runtime.InvokeResult(payload, True)


if __name__ == "__main__":
    sys.exit(main())
