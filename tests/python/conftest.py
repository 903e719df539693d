"""Shared fixtures: the built package on PYTHONPATH (ctest sets it), the CLI, the models."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
_build_python = ROOT / "build" / "python"
if "PYTHONPATH" not in os.environ and _build_python.is_dir():
    sys.path.insert(0, str(_build_python))


@pytest.fixture(scope="session")
def models_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TANDEM_MODELS", ROOT / "models"))


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TANDEM_CLI", ROOT / "build" / "bin" / "tandem"))
