"""The model endpoint: SageMaker on AWS, our SageMaker-Runtime server offline.

``sagemaker`` deploys and deletes the real endpoint (model, endpoint config with Data Capture);
``registry`` records which endpoints the local server serves; ``server`` is the local server's
entry point (``python -m scones.endpoint.server``), with ``supervisor`` (worker processes),
``app`` (the ASGI routes), ``model`` (loading ``code/inference.py``, batching), ``responses``
(errors and their HTTP status, in one place) and ``capture`` (the Data Capture writer).
"""
