"""One import name: the distribution installs `backlot` and nothing else at the top level.

The repository keeps four folders (pipeline/, integrations/, services/, migrations/) that the
build maps into `backlot` (docs/architecture.md). These tests check the mapping itself, that
no code imports a folder name, and that a built wheel installs beside a studio's own
top-level `pipeline` package without either shadowing the other.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"pipeline": "backlot", "integrations": "backlot.integrations", "services": "backlot.services",
           "migrations": "backlot.migrations"}


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_under_its_installed_name():
    config = _setuptools_config()
    assert config["package-dir"] == {name: folder for folder, name in FOLDERS.items()}
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join((name, *init.parent.relative_to(ROOT / folder).parts)))
    assert sorted(config["packages"]) == sorted(found)


def _python_sources():
    for top in (*FOLDERS, "tests"):
        yield from (p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def test_no_code_imports_a_folder_name():
    wrong = []
    for path in _python_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in FOLDERS]
    assert not wrong, "import the installed names (backlot...), not the folders:\n" + "\n".join(wrong)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    # Built from a copy of what a clone has (setuptools writes build/ next to the sources), and
    # without build isolation: the test venv has setuptools, so the build needs no network.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, cwd=out)
    (built,) = out.glob("backlot-*.whl")
    return built


@pytest.mark.slow
def test_wheel_has_only_backlot_at_the_top_level(wheel):
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        names = set(zf.namelist())
    assert tops == {"backlot", "backlot-0.1.0.dist-info"}
    for data in ("backlot/migrations/script.py.mako", "backlot/services/cli/demo_data/sq010_cut_v001.otio",
                 "backlot/services/api/review/static/review.js",
                 "backlot/integrations/openassetio/plugin_path/backlot_manager.py"):
        assert data in names
    entry_points = zipfile.ZipFile(wheel).read("backlot-0.1.0.dist-info/entry_points.txt").decode()
    assert "backlot = backlot.services.cli.app:main" in entry_points
    assert "backlot = backlot.integrations.openassetio" in entry_points
    assert "backlot = backlot.integrations.otio" in entry_points


STUDIO_CHECK = """
import importlib.metadata, os, subprocess, sys
import pipeline                      # the studio's own package
import backlot
from backlot.refs import parse_version_ref
from backlot.db.migrate import head_revision
assert pipeline.STUDIO_TOOL == "in-house", pipeline.__file__
assert not hasattr(pipeline, "session")
assert os.path.join("backlot", "__init__.py") in backlot.__file__ and "site-packages" in backlot.__file__
assert parse_version_ref("film/characters/mara@3").selector == 3
assert head_revision()
(ep,) = [e for e in importlib.metadata.entry_points(group="openassetio.manager_plugin") if e.name == "backlot"]
assert ep.load().openassetioPlugin.identifier() == "org.backlot.manager"
(otio,) = [e for e in importlib.metadata.entry_points(group="opentimelineio.plugins") if e.name == "backlot"]
assert otio.load().__name__ == "backlot.integrations.otio"
help_text = subprocess.run([os.path.join(os.path.dirname(sys.executable), "backlot"), "--help"],
                           capture_output=True, text=True, check=True).stdout
assert "regen" in help_text
print("both imported")
"""


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable) beside a studio `pipeline` package;
    returns its python."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The studio's in-house `pipeline` package, installed first-class in the same environment.
    (site / "pipeline").mkdir()
    (site / "pipeline" / "__init__.py").write_text('STUDIO_TOOL = "in-house"\n')
    # Backlot's dependencies come from the test venv's site-packages, appended after the fresh
    # venv's own (a plain path line: that folder's .pth files, such as the editable finder, are not run).
    (site / "zz_backlot_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "BACKLOT_STORE", "BROKER_URL")}
    return {**env, **extra}


@pytest.mark.slow
def test_wheel_installs_beside_a_studio_pipeline_package(installed, tmp_path):
    result = subprocess.run([installed, "-c", STUDIO_CHECK], cwd=tmp_path, env=_clean_env(), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "both imported" in result.stdout


@pytest.mark.slow
def test_the_installed_cli_runs_a_production_from_any_folder(installed, tmp_path):
    """The wheel's `backlot`, run outside the checkout with a fresh home: its own embedded
    database (migrated from the wheel's revisions), the shipped demo cut (package data)."""
    backlot = installed.parent / "backlot"
    env = _clean_env(BACKLOT_HOME=str(tmp_path / "home"), HOME=str(tmp_path))
    cut = subprocess.run([installed, "-c", "from backlot.services.cli.demo import CUT_FILE; print(CUT_FILE)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert "site-packages" in cut

    def run(*args: str) -> str:
        done = subprocess.run([backlot, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"backlot {' '.join(args)}: {done.stderr}"
        return done.stdout

    try:
        run("project", "create", "smoke", "--fps", "24")
        imported = run("cut", "import", "smoke", cut, "--create-shots")
        assert "sq010" in run("shot", "list", "smoke")
        assert imported.strip()
    finally:
        subprocess.run([backlot, "db", "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert (tmp_path / "home" / "postgres").is_dir() and not (ROOT / ".backlot").exists()
