"""The Python API of the walkthrough notebook (``notebooks/walkthrough.ipynb``).

Plain function calls, one per step of the workflow, whose results render as tables and figures
in Jupyter (``_repr_html_``) and are ordinary objects otherwise. The same calls run against the
offline twin (``open_workspace("twin")``) and a deployed stack on AWS (``open_workspace("aws")``)::

    from scones import notebook as nb

    ws = nb.open_workspace("twin")                       # 1. scones up + scones env
    data = nb.run_etl(nb.choose_archive("", ...), ...)   # 2. scones etl
    report = nb.train(ws, data.output, ...)              # 3. scones train (or a SageMaker job)
    nb.deploy(ws, report)                                # 4. scones deploy --local (or SageMaker)
    nb.invoke_endpoint(ws, png)
    nb.invoke_function(ws, "SerializeImageFunction", "serialize_image", ...)   # 5. scones invoke
    nb.run_image(ws, "bike.png", png)                    # 6. scones run + scones graph
    nb.monitor(ws)                                       # 7. scones monitor
    nb.measure_cost(ws)                                  # 8. scones cost
    nb.clean_up(ws)

Modules: ``workspace`` (step 1), ``data`` (2), ``model`` (3), ``workflow`` (4-6), ``observe``
(7-8), ``aws`` (the AWS target and clean-up), ``display`` (the HTML), ``execute`` (runs the
notebook headless: ``make notebook-html`` and the stack test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scones.notebook.aws import CleanUp, clean_up, deploy_endpoint, sagemaker_train
from scones.notebook.data import ArchiveChoice, SampleGrid, choose_archive, run_etl, sample_grid
from scones.notebook.model import (
    Candidate,
    ModelReport,
    model_report,
    pick_confident,
    pick_for_review,
    train_model,
)
from scones.notebook.observe import CostReport, measure_cost, monitor
from scones.notebook.workflow import (
    BatchRun,
    Deployment,
    ExecutionRun,
    LambdaResult,
    Prediction,
    deploy_twin,
    invoke_endpoint,
    invoke_function,
    put_image,
    run_image,
    run_images,
)
from scones.notebook.workspace import Workspace, open_workspace


def train(
    workspace: Workspace, data: Path, out: Path, *, epochs: int = 3, seed: int = 0
) -> ModelReport:
    """Step 3 on either target: ``scones train`` here (twin), a SageMaker training job (aws)."""
    if workspace.twin:
        report = train_model(Path(data), Path(out), epochs=epochs, seed=seed)
    else:
        report = sagemaker_train(workspace, Path(data), Path(out), epochs=epochs, seed=seed)
    workspace.classes = list(report.classes)
    return report  # type: ignore[no-any-return]


def deploy(workspace: Workspace, report: ModelReport, **kwargs: Any) -> Deployment:
    """Step 4 on either target: ``scones deploy --local`` (twin: the whole stack and the model),
    or the SageMaker endpoint the deployed stack calls (aws; BILLED hourly)."""
    workspace.classes = list(report.classes)
    if workspace.twin:
        return deploy_twin(workspace, report.model_tar, kwargs.get("parameter_overrides"))
    return deploy_endpoint(workspace, **kwargs)  # type: ignore[no-any-return]


__all__ = [
    "ArchiveChoice",
    "BatchRun",
    "Candidate",
    "CleanUp",
    "CostReport",
    "Deployment",
    "ExecutionRun",
    "LambdaResult",
    "ModelReport",
    "Prediction",
    "SampleGrid",
    "Workspace",
    "choose_archive",
    "clean_up",
    "deploy",
    "deploy_endpoint",
    "deploy_twin",
    "invoke_endpoint",
    "invoke_function",
    "measure_cost",
    "model_report",
    "monitor",
    "open_workspace",
    "pick_confident",
    "pick_for_review",
    "put_image",
    "run_etl",
    "run_image",
    "run_images",
    "sagemaker_train",
    "sample_grid",
    "train",
    "train_model",
]
