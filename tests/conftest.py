"""Shared test fixtures: the parity fixtures of the original D3S (../shared/parity) and the device switch.

Device switch: the suite runs on the CPU. ``D3S_TEST_DEVICE=cuda`` (or ``cuda:N``) runs the tests that
take a device (the ``test_device`` fixture, :func:`test_device_name`) on that GPU instead and enables
the tests marked ``@pytest.mark.cuda``, which are skipped otherwise. No test picks CUDA (or NCCL) by
itself: whatever runs on a GPU asks for it through this switch.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVICE_VARIABLE = "D3S_TEST_DEVICE"


def test_device_name() -> str:
    """The device the device-aware tests use: ``$D3S_TEST_DEVICE`` (``cpu``, ``cuda``, ``cuda:N``), default ``cpu``."""
    value = os.environ.get(DEVICE_VARIABLE, "cpu").strip() or "cpu"
    if value != "cpu" and not (value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
        raise pytest.UsageError(f"{DEVICE_VARIABLE}={value!r}: use cpu, cuda or cuda:N")
    return value


test_device_name.__test__ = False           # a helper, not a test


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a GPU; runs only with D3S_TEST_DEVICE=cuda (skipped otherwise)")
    device = test_device_name()
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(f"{DEVICE_VARIABLE}={device} but CUDA is not available on this machine")


def pytest_collection_modifyitems(config, items):
    if test_device_name() != "cpu":
        return
    skip = pytest.mark.skip(reason=f"needs a GPU: set {DEVICE_VARIABLE}=cuda on a machine with one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def test_device() -> str:
    """The device name for the device-aware tests (see :func:`test_device_name`)."""
    return test_device_name()


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
