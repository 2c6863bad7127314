"""The walkthrough notebook, executed top to bottom against the real twin (nbclient), and its
HTML copy opened in headless Chromium.

The kernel inherits this module's environment (the twin's ``SCONES_*`` settings and
``aws_env()``, see conftest.py), so the notebook's ``open_workspace("twin")`` finds the
session's twin on its free ports and writes under its temporary ``SCONES_HOME``. A cell injected
before the notebook's own refuses non-loopback connections inside the kernel, as
tests/conftest.py does in this process. A failing cell fails the test with that cell's error.
"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium_helpers import chromium_dom
from PIL import Image

from scones.notebook.execute import (
    INJECTED_TAG,
    PARAMETERS_TAG,
    execute,
    inject_parameters,
    plain,
    read,
    to_html,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WALKTHROUGH = NOTEBOOKS / "walkthrough.ipynb"
MONITOR_FIGURES = 5
COST_OPTIONS = 7  # scones.cost.options.default_options with two instance types

KERNEL_GUARD = """
# Injected by tests/stack/test_notebook.py: this kernel may not reach beyond loopback.
import ipaddress as _ip, socket as _socket
_connect = _socket.socket.connect
def _loopback_only(self, address):
    if isinstance(address, tuple) and address and address[0] != "localhost":
        if not _ip.ip_address(address[0]).is_loopback:
            raise OSError(f"the notebook may not reach the network (tried {address[0]})")
    return _connect(self, address)
_socket.socket.connect = _loopback_only
"""


def _html(cell: Any) -> str:
    """Every text/html output of a code cell, joined."""
    return "".join(
        o.get("data", {}).get("text/html", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result")
    )


def _cell(nb: Any, source_start: str) -> Any:
    found = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    assert len(found) == 1, f"one code cell starting with {source_start!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, float]]:
    """The walkthrough run top to bottom in a fresh kernel (the time it took, in seconds)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    jupyter = tmp_path_factory.mktemp("jupyter")
    saved = dict(os.environ)
    # the kernel's IPython profile and connection files stay in the test's temporary folder
    os.environ.update({"IPYTHONDIR": str(jupyter / "ipython"), "JUPYTER_RUNTIME_DIR": str(jupyter)})
    nb = read(WALKTHROUGH)
    nb.cells.insert(0, nbformat.v4.new_code_cell(KERNEL_GUARD, metadata={"tags": [INJECTED_TAG]}))
    inject_parameters(nb, {"TARGET": "twin"})
    started = time.perf_counter()
    try:
        execute(nb, cwd=NOTEBOOKS, timeout=300)
    except CellExecutionError as exc:
        pytest.fail(f"a notebook cell failed:\n{plain(str(exc))}", pytrace=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.perf_counter() - started
    print(f"\nnotebooks/walkthrough.ipynb executed in {seconds:.1f} s")
    yield nb, seconds


def test_committed_notebooks_have_no_outputs() -> None:
    import nbformat

    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert WALKTHROUGH in notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} is committed with outputs: clear them"
                assert cell.execution_count is None, f"{path.name} has execution counts"
    nb = nbformat.read(WALKTHROUGH, as_version=4)
    tagged = [c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and 'TARGET = "twin"' in tagged[0].source
    assert nb.metadata["kernelspec"]["name"] == "scones"  # what `make notebook` registers
    steps = [c.source.split("\n")[0] for c in nb.cells if c.cell_type == "markdown"]
    numbered = [s for s in steps if re.match(r"## \d\. ", s)]
    assert [s[3] for s in numbered] == list("12345678"), numbered


def test_the_notebook_runs_and_shows_every_step(executed: tuple[Any, float]) -> None:
    nb, _ = executed
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    grid = _html(_cell(nb, "nb.sample_grid("))
    assert grid.count('data-scones="sample"') == 16  # 8 per class
    report = _html(_cell(nb, "# BILLED (aws): uploads the data"))
    assert 'data-scones="model-report"' in report and 'data-scones="model-figure"' in report
    invoked = _html(_cell(nb, "confident = nb.pick_confident("))
    assert 'data-scones="probabilities"' in invoked
    assert 'data-scones="lambda-result"' in _html(_cell(nb, "key = nb.put_image("))
    filters = _html(_cell(nb, 'display(nb.invoke_function(ws, "FilterInferencesFunction"'))
    assert 'data-scones="lambda-error"' in filters and "LowConfidenceError" in filters


def test_the_executions_are_drawn_inline(executed: tuple[Any, float]) -> None:
    nb, _ = executed
    ok = _html(_cell(nb, "ok = nb.run_image("))
    review = _html(_cell(nb, "review = nb.run_image("))
    for shown in (ok, review):
        assert 'data-scones="graph"' in shown and "<svg" in shown and "<?xml" not in shown
    status = r'data-state="{}"[^>]*data-status="{}"'
    assert re.search(status.format("FilterInferences", "succeeded"), ok)
    assert re.search(status.format("FilterInferences", "caught"), review)
    assert re.search(status.format("LowConfidence", "failed"), review)
    assert "SUCCEEDED" in ok and "LowConfidenceError" in review


def test_monitor_figures_and_cost_table_are_in_the_outputs(executed: tuple[Any, float]) -> None:
    nb, _ = executed
    monitor = _html(_cell(nb, "nb.monitor(ws)"))
    figures = re.findall(
        r'<img data-scones="monitor-figure"[^>]*src="data:image/png;base64,([^"]+)"', monitor
    )
    assert len(figures) == MONITOR_FIGURES
    for data in figures:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.format == "PNG" and image.size == (900, 360)
    records = re.search(r"<td[^>]*>(\d+) from \d+ capture files", monitor)
    assert records and int(records.group(1)) >= 3  # 1 invocation, ClassifyImage, 2+ executions
    cost = _html(_cell(nb, "nb.measure_cost(ws)"))
    table = re.search(r'<table data-scones="cost-options".*?</table>', cost, re.S)
    assert table, "no options table in the cost step's output"
    assert table.group(0).count("<tr>") == COST_OPTIONS + 1
    assert "Standard, arm64, real-time 1 x ml.m5.large" in table.group(0)
    assert 'data-scones="cost-this-run"' in cost and 'data-scones="cost-chart"' in cost


CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images).map(function (img) {
    return img.complete && img.naturalWidth > 0 ? img.dataset.scones || "img" : "broken";
  });
  var states = Array.from(document.querySelectorAll('[data-scones="graph"] [data-state]'));
  var drawn = states.filter(function (g) { return g.getBoundingClientRect().width > 0; });
  var out = document.createElement("pre");
  out.textContent = "CHECK " + JSON.stringify({images: images, states: states.length,
                                               drawn: drawn.length}) + " END";
  document.body.appendChild(out);
});
</script>
"""


def test_the_html_copy_renders_its_images_in_chromium(
    executed: tuple[Any, float], tmp_path: Path
) -> None:
    import json

    page = tmp_path / "walkthrough.html"
    html = to_html(executed[0])
    assert not re.search(r'<(script|link|img)[^>]*(src|href)="https?:', html), "loads the network"
    page.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    dom, err, code = chromium_dom(page.as_uri(), tmp_path / "chromium-profile")
    found = re.search(r"CHECK (.*?) END", dom)
    assert found, f"chromium rendered no check (exit {code}): {err[-800:]}"
    check = json.loads(found.group(1).replace("&quot;", '"'))
    images = check["images"]
    assert "broken" not in images, images
    assert images.count("monitor-figure") == MONITOR_FIGURES
    assert images.count("sample") == 16
    assert {"model-figure", "cost-chart", "invocation"} <= set(images)
    assert check["states"] > 0 and check["drawn"] == check["states"], check


STACK_OUTPUTS = {
    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:scones-ImageClassification",
    "SerializeImageFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-SerializeImage",
    "ClassifyImageFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-ClassifyImage",
    "FilterInferencesFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-Filter",
    "ImageBucketName": "scones-images-123",
    "IncomingPrefix": "incoming/",
    "EndpointName": "scones-image-classifier",
}


def test_the_aws_target_calls_sagemaker_and_cleans_up(
    tiny_model_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TARGET = "aws" against moto: the stack's outputs, the training job (its model downloaded
    and reported), the endpoint with Data Capture, and the clean-up that deletes it."""
    import json

    import boto3
    from moto import mock_aws

    import scones.aws
    import scones.training.wheelhouse
    from scones import notebook as nb

    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)  # the twin's endpoints and credentials: back after the test
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(scones.aws, "timestamp", lambda now=None: "20261128-120000")
    # the wheelhouse would `pip download` the endpoint's wheels: ship the archive as it is
    monkeypatch.setattr(scones.training.wheelhouse, "offline_model", lambda s3, uri, *a, **k: uri)
    with mock_aws():
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::S3::Bucket"}},
            "Outputs": {k: {"Value": v} for k, v in STACK_OUTPUTS.items()},
        }
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="scones", TemplateBody=json.dumps(template)
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="scones-ml")
        job = "scones-train-20261128-120000"  # where moto says the job wrote its model
        s3.upload_file(str(tiny_model_tar), "scones-ml", f"scones/output/{job}/output/model.tar.gz")
        ws = nb.open_workspace(
            "aws", workdir=tmp_path, bucket="scones-ml", role="arn:aws:iam::123456789012:role/sm",
            region="us-east-1",
        )  # fmt: skip
        assert ws.identity["Account"] == "123456789012" and ws.stack_outputs == STACK_OUTPUTS
        data = tiny_model_tar.parent.parent / "data"
        report = nb.train(ws, data, tmp_path / "model", epochs=1)
        assert report.trained.startswith(f"SageMaker training job {job}")
        assert (tmp_path / "model" / "model.tar.gz").read_bytes() == tiny_model_tar.read_bytes()
        assert s3.head_object(Bucket="scones-ml", Key="scones/data/train.lst")
        deployed = nb.deploy(ws, report)
        assert deployed.capture_uri == "s3://scones-ml/scones/data_capture"
        assert deployed.bucket == "scones-images-123"
        assert set(deployed.functions) == {
            "SerializeImageFunction", "ClassifyImageFunction", "FilterInferencesFunction"
        }  # fmt: skip
        sm = boto3.client("sagemaker", region_name="us-east-1")
        endpoint = sm.describe_endpoint(EndpointName="scones-image-classifier")
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        assert config["DataCaptureConfig"]["DestinationS3Uri"] == deployed.capture_uri
        assert [b.split(" ")[0] for b in ws.billed] == ["S3", "training", "endpoint"]
        done = nb.clean_up(ws)
        assert "endpoint scones-image-classifier" in done.removed
        assert not sm.list_endpoints()["Endpoints"]
        html = ws._repr_html_() + deployed._repr_html_() + done._repr_html_()
        assert "sam delete --stack-name scones" in html and "aws s3 rm --recursive" in html
