"""Fixtures the settings and auth-configuration tests share."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch):
    """The test process may carry MLSERVICE_* variables; none of them may leak into Settings()."""
    for name in list(os.environ):
        if name.upper().startswith("MLSERVICE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def rsa_pems() -> tuple[str, str]:
    """(private, public) PEM of a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()
