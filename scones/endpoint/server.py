"""The offline twin's SageMaker Runtime: ``python -m scones.endpoint.server``.

Serves every endpoint registered under ``$SCONES_HOME/endpoints`` (see ``registry``) through its
model's own ``code/inference.py``, at the path boto3's ``sagemaker-runtime`` client calls,
``POST /endpoints/{name}/invocations``, with SageMaker's error shapes (424 ``ModelError``, 400
``ValidationError``, 413 for bodies over 6 MB), plus the container contract (``GET /ping``,
``POST /invocations``), writing Data Capture files to S3 when the endpoint enables it.

This module is only the entry point (``scones.twin.services`` starts it by this name):

* ``scones.endpoint.supervisor``: the worker processes (SO_REUSEPORT sockets, restarts, logging);
* ``scones.endpoint.app``: the ASGI app, routing and invocations; ``responses``: its errors,
  each carrying its HTTP status, and the one place that turns them into responses;
* ``scones.endpoint.model``: loading a model's ``inference.py`` and batching its requests;
* ``scones.endpoint.capture``: the Data Capture writer; ``registry``: the registered endpoints.
"""

from __future__ import annotations

import sys

from scones.endpoint.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
