"""Run by a SageMaker Python SDK venv (``make install-sdk``), not by pytest: a new user's endpoint
lookup and invocation against the twin, with every connection that would leave the machine
refused and recorded. ``python sagemaker_sdk_client.py v2|v3 ENDPOINT PNG_FILE BUCKET`` prints one JSON
object after ``SDK-RESULT ``: what the SDK answered, the seconds each step took, and ``outbound`` (hosts it tried to
reach; must be empty). The environment is ``scones env``'s (the test passes it)."""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

LOCAL = {"127.0.0.1", "localhost", "::1"}
MARKER = "SDK-RESULT "  # the SDK prints progress to stdout too
outbound: list[str] = []
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _host(address: Any) -> str:
    return str(address[0] if isinstance(address, tuple) else address)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and _host(address) not in LOCAL:
        outbound.append(_host(address))
        raise OSError(f"refused by the test: a connection to {address} would leave the machine")
    _connect(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and str(host) not in LOCAL:
        outbound.append(str(host))
        raise socket.gaierror(f"refused by the test: {host} is not this machine")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
socket.getaddrinfo = _guarded_getaddrinfo


def v2(endpoint: str, image: bytes, bucket: str) -> dict[str, Any]:
    """SDK v2: ``Session.wait_for_endpoint``, ``Predictor`` lookups and ``predict``, and
    ``AsyncPredictor.predict`` (InvokeEndpointAsync, then the SDK polls S3 for the output)."""
    import sagemaker
    from sagemaker.async_inference import WaiterConfig
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.predictor_async import AsyncPredictor
    from sagemaker.serializers import IdentitySerializer

    steps: dict[str, float] = {}
    start = time.monotonic()
    session = sagemaker.Session()
    description = session.wait_for_endpoint(endpoint, poll=1)
    steps["wait_for_endpoint"] = time.monotonic() - start
    start = time.monotonic()
    predictor = Predictor(
        endpoint,
        sagemaker_session=session,
        serializer=IdentitySerializer("image/png"),
        deserializer=JSONDeserializer(),
    )
    models = predictor._get_model_names()  # DescribeEndpoint + DescribeEndpointConfig
    steps["model_names"] = time.monotonic() - start
    start = time.monotonic()
    probabilities = predictor.predict(image)
    steps["predict"] = time.monotonic() - start
    start = time.monotonic()
    session.boto_session.client("s3").put_object(Bucket=bucket, Key="sdk-in/image.png", Body=image)
    later = AsyncPredictor(predictor).predict(
        input_path=f"s3://{bucket}/sdk-in/image.png",
        initial_args={"ContentType": "image/png"},
        waiter_config=WaiterConfig(max_attempts=60, delay=0.5),
    )
    steps["predict_async"] = time.monotonic() - start
    return {
        "async_probabilities": later,
        "version": sagemaker.__version__,
        "status": description["EndpointStatus"],
        "capture": description.get("DataCaptureConfig", {}).get("DestinationS3Uri"),
        "models": models,
        "probabilities": probabilities,
        "seconds": steps,
    }


def v3(endpoint: str, image: bytes, bucket: str) -> dict[str, Any]:
    """SDK v3 (``sagemaker-core``): ``Endpoint.get``, its config and model, ``invoke``."""
    from importlib.metadata import version

    from sagemaker.core.resources import Endpoint, EndpointConfig, Model

    steps: dict[str, float] = {}
    start = time.monotonic()
    found = Endpoint.get(endpoint_name=endpoint)
    config = EndpointConfig.get(endpoint_config_name=found.endpoint_config_name)
    model = Model.get(model_name=config.production_variants[0].model_name)
    steps["get"] = time.monotonic() - start
    start = time.monotonic()
    answer = found.invoke(body=image, content_type="image/png", accept="application/json")
    steps["invoke"] = time.monotonic() - start
    return {
        "version": version("sagemaker-core"),
        "status": found.endpoint_status,
        "capture": found.data_capture_config.destination_s3_uri,
        "models": [model.model_name],
        "probabilities": json.loads(answer.body.read()),
        "seconds": steps,
    }


def main() -> int:
    """Run one SDK's check; print the JSON result (with ``error`` when the SDK raised)."""
    kind, endpoint, image_path, bucket = sys.argv[1:5]
    with open(image_path, "rb") as f:
        image = f.read()
    try:
        result = {"v2": v2, "v3": v3}[kind](endpoint, image, bucket)
    except Exception as exc:  # reported to the test, which shows it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["outbound"] = sorted(set(outbound))
    print("\n" + MARKER + json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
