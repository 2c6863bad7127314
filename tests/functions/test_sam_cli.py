"""The template through the real tools, offline: `sam validate --lint`, cfn-lint and `sam build`.

SAM comes from ``$SCONES_SAM`` or ``.venv/sam/bin/sam`` (``make install-sam``); cfn-lint from the
project venv. None of these calls needs the network or Docker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sam_helpers import (
    ALL_HANDLERS,
    PROJECT,
    lambda_wheelhouse,
    offline_pip,
    read_template,
    sam_executable,
)

PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv"))


def sam_env(tmp_path: Path) -> dict[str, str]:
    """Environment for the SAM CLI: no telemetry, a home of its own, the pyenv interpreters.

    ``sam build`` for python3.12/3.13 needs that interpreter on PATH; pyenv provides them when
    installed (``PYENV_VERSION`` lists the versions to expose).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SAM_CLI_TELEMETRY="0", HOME=str(tmp_path / "home"), SAM_CLI_CONTEXT="unit-tests")
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    if (PYENV / "shims").is_dir():
        env["PATH"] = f"{PYENV / 'shims'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PYENV_VERSION", "3.11.7:3.12.1:3.13.0")
    return env


def run(
    command: list[str], tmp_path: Path, cwd: Path = PROJECT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=env or sam_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sam_validate_lint(tmp_path: Path) -> None:
    result = run(
        [sam_executable(), "validate", "--lint", "--template-file", "template.yaml"], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_lint_rejects_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    text = (PROJECT / "template.yaml").read_text()
    broken.write_text(
        text.replace("!GetAtt ClassifyImageFunction.Arn", "!GetAtt NoSuchFunction.Arn")
    )
    result = run([sam_executable(), "validate", "--lint", "--template-file", str(broken)], tmp_path)
    assert result.returncode != 0


def test_cfn_lint(tmp_path: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    if not cfn_lint.exists():
        pytest.fail(f"cfn-lint not found at {cfn_lint}: run `make install`")
    result = run([str(cfn_lint), "template.yaml"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_without_containers(tmp_path: Path) -> None:
    runtime = read_template()["Globals"]["Function"]["Runtime"]  # e.g. python3.13
    env = sam_env(tmp_path)
    if shutil.which(runtime, path=env["PATH"]) is None:
        pytest.fail(
            f"sam build needs {runtime} on PATH (the template's runtime): install it, e.g. with pyenv"
        )
    build = tmp_path / "build"
    env = {**env, **offline_pip(lambda_wheelhouse())}  # SerializeImage's Pillow, offline
    result = run(
        [
            sam_executable(),
            "build",
            "--template-file",
            str(PROJECT / "template.yaml"),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-cached",
        ],
        tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (build / "template.yaml").is_file()
    for logical_id, folder in ALL_HANDLERS.items():  # sam build builds conditional ones too
        built = build / logical_id / "app.py"
        assert built.read_text() == (PROJECT / "functions" / folder / "app.py").read_text()
    layer = build / "CommonLayer" / "python" / "scones_common.py"  # what Lambda puts on sys.path
    assert layer.read_text() == (PROJECT / "functions" / "common" / "scones_common.py").read_text()
    # Pillow and pillow-heif for the function's architecture (arm64), not this machine's
    serialize = build / "SerializeImageFunction"
    for package in ("PIL", "pillow_heif"):
        assert (serialize / package / "__init__.py").is_file(), package
    libraries = [*serialize.glob("PIL/_imaging.*.so"), *serialize.glob("_pillow_heif.*.so")]
    assert len(libraries) == 2 and all("aarch64" in p.name for p in libraries), libraries
    assert all(elf_machine(p) == "aarch64" for p in libraries)
    for logical_id in ALL_HANDLERS:  # the others need nothing installed
        if logical_id != "SerializeImageFunction":
            assert not list((build / logical_id).glob("*.dist-info")), logical_id
    shutil.rmtree(build)


def elf_machine(path: Path) -> str:
    """The machine an ELF shared object is built for (its e_machine field)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return {0x3E: "x86_64", 0xB7: "aarch64"}.get(int.from_bytes(header[18:20], "little"), "?")


#: Run by SAM's own interpreter: translate template.yaml with aws-sam-translator (what `sam`
#: deploys through) and print each function's translated properties. Local CodeUri/ContentUri/
#: DefinitionUri become S3 URIs first, as `sam validate` does; no network is used.
_TRANSLATE = """
import json, sys
import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    props = resource.get("Properties") or {}
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(props.get(key), str):
            props[key] = "s3://bucket/" + props[key]
session = boto3.session.Session(region_name="us-east-1")
translated = Translator({}, Parser(), boto_session=session).translate(template, {})
print(json.dumps({
    k: v["Properties"] for k, v in translated["Resources"].items()
    if v["Type"] == "AWS::Lambda::Function"
}))
"""


def test_globals_merge_like_the_sam_translator(tmp_path: Path) -> None:
    """The twin merges Globals itself (scones.twin.template); SAM's translator must agree."""
    from scones.twin.template.functions import merge_globals

    python = Path(sam_executable()).with_name("python")
    result = run([str(python), "-c", _TRANSLATE, "template.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr
    translated = json.loads(result.stdout)
    template = read_template()
    assert set(translated) == set(ALL_HANDLERS)
    for logical_id, props in translated.items():
        merged = merge_globals(
            template["Globals"]["Function"], template["Resources"][logical_id]["Properties"]
        )
        # SAM renames a LayerVersion to <LogicalId><10-hex-digit hash> (a new version per change)
        layers = [{"Ref": re.sub("[0-9a-f]{10}$", "", ref["Ref"])} for ref in props["Layers"]]
        assert layers == merged["Layers"], logical_id
        for key in ("Runtime", "Handler", "Timeout", "MemorySize", "Environment"):
            assert props.get(key) == merged.get(key), f"{logical_id}.{key}"
        for key in ("Architectures", "LoggingConfig"):
            assert props[key] == merged[key], f"{logical_id}.{key}"
