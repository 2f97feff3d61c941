"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds the Snakefile)."""
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny tensors run much faster on one thread than with 2 threads contending on a busy 2-core runner."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _autograd_stays_on():
    """A test (or a library it imports: ccmetrics switches autograd off at import) must not leave autograd
    off for the tests after it."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    yield
    torch.set_grad_enabled(True)
