"""``scones train`` and the SageMaker training job.

``script`` finds the SageMaker source directory ``ml/`` and loads ``ml/train.py`` from it (the same
file SageMaker runs); ``local`` runs it on this machine and packs ``model.tar.gz``; ``sagemaker``
builds the script-mode training job; ``wheelhouse`` ships the endpoint's wheels inside
``model.tar.gz`` (offline install, at ``scones sagemaker deploy``); ``tiny`` builds a small real
model for tests; ``cli`` is ``scones train``.
"""
