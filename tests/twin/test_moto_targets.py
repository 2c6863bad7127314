"""The moto-upgrade guard: every moto name the twin subclasses, wraps or calls is still there with
the parameters we wrote against, moto is the pinned version, and no module keeps an original."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Any

import pytest

from scones.twin import moto_targets
from scones.twin.moto_targets import TARGETS


def test_installed_moto_is_the_pinned_version() -> None:
    installed = moto_targets.installed_moto_version()
    assert installed == moto_targets.PINNED_MOTO, (
        f"moto {installed} is installed but the twin is written against"
        f" {moto_targets.PINNED_MOTO}: check every target in scones/twin/moto_targets.py"
    )


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_moto_target_is_unchanged(target: str) -> None:
    problem = moto_targets.target_problem(target)
    assert problem is None, problem


def test_our_lambda_backend_overrides_invoke_with_motos_parameters() -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from scones.twin.moto_binding import BoundLambdaBackend

    assert BoundLambdaBackend.__mro__[1] is LambdaSimpleBackend
    assert moto_targets.shape(BoundLambdaBackend.invoke) == moto_targets.shape(
        LambdaSimpleBackend.invoke
    )


def test_every_replaced_name_is_a_listed_target(moto_server: Any) -> None:
    replaced = moto_targets.rebound_paths()
    assert "moto.awslambda_simple.models.lambda_simple_backends" in replaced
    assert [path for path in replaced if path not in TARGETS] == []


def _import_all(package: str) -> None:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001, S112 - optional extras of moto; not our targets
            continue


def test_no_module_keeps_an_original_even_if_loaded_after_the_patch(moto_server: Any) -> None:
    for package in (
        "moto.stepfunctions.parser",
        "moto.awslambda",
        "moto.awslambda_simple",
        "moto.moto_server",
    ):
        _import_all(package)
    importlib.import_module("moto.server")
    assert moto_targets.stale_importers() == []


@pytest.fixture
def fake_package(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A package ``scones_fake`` defining ``f``, and a module ``scones_fake.early`` that copied it;
    the rebind records of this test are kept apart from the real ones."""
    monkeypatch.setattr(moto_targets, "_rebinds", [])
    package = ModuleType("scones_fake")
    exec("def f(a, b=1):\n    return 'original'\n", package.__dict__)  # noqa: S102
    early = ModuleType("scones_fake.early")
    early.g = package.f  # type: ignore[attr-defined]  # `from scones_fake import f as g`
    monkeypatch.setitem(sys.modules, "scones_fake", package)
    monkeypatch.setitem(sys.modules, "scones_fake.early", early)
    return package


def test_rebind_reaches_early_and_late_importers_and_finds_stale_copies(
    fake_package: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = fake_package.f

    def ours(a: Any, b: Any = 1) -> str:
        return "ours"

    assert moto_targets.rebind(fake_package, "f", ours, importers="scones_fake") is original
    assert sys.modules["scones_fake.early"].g is ours  # loaded before: rebound
    late: dict[str, Any] = {}
    exec("from scones_fake import f", late)  # noqa: S102 - loaded after: reads the new name
    assert late["f"] is ours
    assert moto_targets.stale_importers() == []
    assert moto_targets.original(fake_package, "f") is original
    assert moto_targets.rebound_paths() == ["scones_fake.f"]
    stale = ModuleType("scones_fake.stale")
    stale.f = original  # type: ignore[attr-defined]  # a copy taken from somewhere else
    monkeypatch.setitem(sys.modules, "scones_fake.stale", stale)
    assert moto_targets.stale_importers() == ["scones_fake.stale.f"]


def test_a_changed_target_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    path = "moto.awslambda.utils.get_backend"
    monkeypatch.setitem(TARGETS, path, "(account_id, region, extra)")
    problem = moto_targets.target_problem(path)
    assert problem is not None and path in problem and "(account_id, region)" in problem
    monkeypatch.setitem(TARGETS, "moto.awslambda.utils.no_such_name", None)
    missing = moto_targets.target_problem("moto.awslambda.utils.no_such_name")
    assert missing is not None and "no_such_name does not exist" in missing
