"""Helpers for tests on moto's mocks (unit tests only; never a stand-in for the twin)."""

from __future__ import annotations


def queue_endpoint_results(*bodies: str, content_type: str = "application/json") -> None:
    """Queue answers for moto's sagemaker-runtime through its documented moto-api route."""
    import requests

    results = [
        {
            "Body": body,
            "ContentType": content_type,
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for body in bodies
    ]
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": results, "region": "us-east-1"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
