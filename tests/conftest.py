"""Shared test fixtures: the parity fixtures of the original D3S live in ../shared/parity."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def parity_dir() -> Path:
    """Where the original implementation's reference outputs are (env D3S_PARITY_DIR overrides)."""
    return Path(os.environ.get("D3S_PARITY_DIR", REPO_ROOT.parent / "shared" / "parity"))


@pytest.fixture(scope="session")
def parity_path() -> Path:
    """The fixtures live beside the repository (../shared/parity), not in it. CI must have them; a
    plain clone without them skips the parity tests, saying why."""
    path = parity_dir()
    if not (path / "make_weights.py").is_file():
        message = f"parity fixtures not found in {path}: set D3S_PARITY_DIR to the shared/parity folder"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def make_weights(parity_path):
    """The fixture's weight generator, imported by path (it is data for the tests, not our code)."""
    spec = importlib.util.spec_from_file_location("d3s_parity_make_weights", parity_path / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def net_ref(parity_path):
    return np.load(parity_path / "net_ref.npz")


@pytest.fixture(scope="session")
def tracker_ref(parity_path):
    return np.load(parity_path / "tracker_ref.npz")
