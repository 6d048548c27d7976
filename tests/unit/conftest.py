"""Fixtures the settings and auth-configuration tests share (the RSA key pair is in tests/conftest.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch):
    """The test process may carry MLSERVICE_* variables; none of them may leak into Settings()."""
    for name in list(os.environ):
        if name.upper().startswith("MLSERVICE_"):
            monkeypatch.delenv(name, raising=False)
