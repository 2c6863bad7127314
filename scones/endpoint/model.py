"""Loading a registered endpoint's model and running its requests in batches.

A model is served through its own ``code/inference.py`` (``model_fn``, ``input_fn``,
``predict_fn``/``predict_batch_fn``, ``output_fn``), as SageMaker's PyTorch inference container
serves it. Requests that queue while a batch runs form the next batch, run in one inference
thread so the event loop keeps accepting. ``EndpointCache`` keeps one loaded model per registered
endpoint and reloads it when its ``endpoint.json`` changes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from scones.endpoint import registry
from scones.settings import Settings

log = logging.getLogger("scones.endpoint")

MAX_BATCH = 64
RECHECK_SECONDS = 1.0  # how long a worker trusts its copy of an endpoint before a stat()
DEFAULT_ACCEPT = "application/json"

# The status the "container" answers for an exception the model code raised, by class name (or a
# base class's name), unless the exception carries its own ``status_code`` as the SageMaker
# inference toolkit's errors do. Anything else is a 500.
STATUS_BY_ERROR = {
    "UnsupportedContentTypeError": 415,
    "UnsupportedAcceptError": 406,
    "ValueError": 400,
}


class ModelLoadError(RuntimeError):
    """The model's ``code/inference.py`` could not be imported or its ``model_fn`` failed."""


@dataclass
class Outcome:
    """The result of one invocation: a body, or the status and message the container gave."""

    status: int
    body: bytes
    content_type: str = DEFAULT_ACCEPT
    message: str = ""


def status_of(exc: BaseException) -> int:
    """The HTTP status the model container answers for ``exc`` (the one mapping place)."""
    own = getattr(exc, "status_code", None)
    if isinstance(own, int) and 400 <= own <= 599:
        return own
    for klass in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(klass.__name__)
        if status:
            return status
    return 500


def error_outcome(exc: BaseException) -> Outcome:
    """The outcome of a request whose model code raised ``exc`` (500s are logged with a trace)."""
    message = f"{type(exc).__name__}: {exc}"
    status = status_of(exc)
    if status == 500:
        trace = "".join(traceback.format_exception(exc))
        log.error("model code raised", extra={"error": message, "trace": trace})
    return Outcome(status=status, body=b"", message=message)


def _import_inference(model_dir: Path, module_name: str) -> ModuleType:
    code_dir = model_dir / "code"
    path = code_dir / "inference.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # registered like any import (dataclasses and typing look modules up there); a unique name
    # per load, removed again when the endpoint is replaced
    sys.modules[module_name] = module
    sys.path.insert(0, str(code_dir))  # so inference.py can import its sibling modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    return module


class LoadedModel:
    """A model served through its ``inference.py`` handler functions."""

    def __init__(self, model_dir: Path, module_name: str) -> None:
        try:
            self.module = _import_inference(model_dir, module_name)
            self.model = self.module.model_fn(str(model_dir))
        except Exception as exc:
            raise ModelLoadError(f"loading {model_dir}: {type(exc).__name__}: {exc}") from exc
        self.batch_fn = getattr(self.module, "predict_batch_fn", None)

    def _predict_all(self, arrays: list[Any]) -> list[Any]:
        if self.batch_fn is not None:
            try:
                return list(self.batch_fn(arrays, self.model))
            except Exception:  # find out which input fails, one by one
                pass
        results: list[Any] = []
        for array in arrays:
            try:
                results.append(self.module.predict_fn(array, self.model))
            except Exception as exc:
                results.append(exc)
        return results

    def _output(self, prediction: Any, accept: str) -> Outcome:
        try:
            result = self.module.output_fn(prediction, accept)
        except Exception as exc:
            return error_outcome(exc)
        if isinstance(result, tuple):  # (body, content_type), as some toolkits return
            body, content_type = result
        else:
            body = result
            content_type = DEFAULT_ACCEPT if accept in ("", "*/*") else accept
        if isinstance(body, str):
            body = body.encode("utf-8")
        return Outcome(status=200, body=bytes(body), content_type=content_type)

    def run_batch(self, items: list[tuple[bytes, str, str]]) -> list[Outcome]:
        """Run (body, content_type, accept) items as one batch; one Outcome each, in order."""
        outcomes: list[Outcome | None] = [None] * len(items)
        arrays, positions = [], []
        for i, (body, content_type, _accept) in enumerate(items):
            try:
                arrays.append(self.module.input_fn(body, content_type))
                positions.append(i)
            except Exception as exc:
                outcomes[i] = error_outcome(exc)
        predictions = self._predict_all(arrays) if arrays else []
        for i, prediction in zip(positions, predictions, strict=True):
            if isinstance(prediction, BaseException):
                outcomes[i] = error_outcome(prediction)
            else:
                outcomes[i] = self._output(prediction, items[i][2])
        return [o if o is not None else Outcome(500, b"", message="no result") for o in outcomes]


class Batcher:
    """Runs whatever requests queued while the previous batch ran as the next batch."""

    def __init__(self, model: LoadedModel, executor: ThreadPoolExecutor) -> None:
        self.model = model
        self.executor = executor
        self.queue: deque[tuple[tuple[bytes, str, str], asyncio.Future[Outcome]]] = deque()
        self.running = False

    async def infer(self, body: bytes, content_type: str, accept: str) -> Outcome:
        """Queue one request and wait for its outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.queue.append(((body, content_type, accept), future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                count = min(len(self.queue), MAX_BATCH)
                batch = [self.queue.popleft() for _ in range(count)]
                try:
                    outcomes = await loop.run_in_executor(
                        self.executor, self.model.run_batch, [item for item, _ in batch]
                    )
                except Exception as exc:  # a bug in run_batch itself
                    outcomes = [error_outcome(exc)] * count
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self.running = False


@dataclass
class Endpoint:
    """A registered endpoint as one worker currently serves it (``batcher`` None: load failed)."""

    name: str
    signature: tuple[int, int, int]
    config: dict[str, Any]
    batcher: Batcher | None
    load_error: str = ""
    checked: float = field(default_factory=time.monotonic)

    @property
    def variant(self) -> str:
        return str(self.config.get("variant", "AllTraffic"))

    def release(self) -> None:
        """Forget the model's code module, so a replaced model's code can be collected."""
        if self.batcher is not None:
            sys.modules.pop(self.batcher.model.module.__name__, None)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class EndpointCache:
    """The endpoints one worker serves, loaded on first use and reloaded when their
    ``endpoint.json`` changes (checked at most every ``RECHECK_SECONDS``)."""

    def __init__(self, settings: Settings, executor: ThreadPoolExecutor) -> None:
        self.settings = settings
        self.executor = executor
        self.loaded: dict[str, Endpoint] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.generation = 0

    def _load(self, name: str, signature: tuple[int, int, int]) -> Endpoint:
        folder = registry.endpoint_dir(self.settings, name)
        config = json.loads((folder / registry.ENDPOINT_FILE).read_text("utf-8"))
        self.generation += 1
        module_name = f"scones_endpoint_{name.replace('-', '_')}_{self.generation}"
        try:
            model = LoadedModel(folder / registry.MODEL_DIR, module_name)
        except ModelLoadError as exc:
            log.error("model failed to load", extra={"endpoint": name, "error": str(exc)})
            return Endpoint(name, signature, config, None, load_error=str(exc))
        log.info("endpoint loaded", extra={"endpoint": name, "variant": config.get("variant")})
        return Endpoint(name, signature, config, Batcher(model, self.executor))

    async def get(self, name: str) -> Endpoint | None:
        """Return endpoint ``name`` (None when it is not registered), reloading it when its
        ``endpoint.json`` changed."""
        current = self.loaded.get(name)
        now = time.monotonic()
        if current is not None and now - current.checked < RECHECK_SECONDS:
            return current
        if not registry.NAME_PATTERN.match(name):
            return None
        signature = _signature(registry.endpoint_dir(self.settings, name) / registry.ENDPOINT_FILE)
        if signature is None:
            gone = self.loaded.pop(name, None)
            if gone is not None:
                gone.release()
            return None
        if current is not None and current.signature == signature:
            current.checked = now
            return current
        async with self.locks.setdefault(name, asyncio.Lock()):
            current = self.loaded.get(name)
            if current is not None and current.signature == signature:
                return current
            loop = asyncio.get_running_loop()
            try:
                loaded = await loop.run_in_executor(self.executor, self._load, name, signature)
            except (OSError, ValueError):  # endpoint.json vanished or is being replaced
                return current
            if current is not None:
                current.release()
            self.loaded[name] = loaded
            return loaded
