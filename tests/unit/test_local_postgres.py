"""The platform's own PostgreSQL (mlservice/launcher/postgres.py), as the tests' fixture starts it: loopback
only, its socket in its own cluster directory, password authentication (a wrong password is
refused, on TCP and on the socket), the cluster owner-only; databases created once."""

from __future__ import annotations

import stat

import psycopg
import pytest


def test_the_server_listens_on_loopback_only_and_wants_the_password(postgres_server):
    server = postgres_server.server
    with psycopg.connect(server.url("postgres", driver="postgresql")) as conn:
        settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN "
                                     "('listen_addresses', 'unix_socket_directories', 'password_encryption')").fetchall())
    assert settings == {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(server.cluster_dir),
                        "password_encryption": "scram-sha-256"}
    wrong = f"postgresql://mlservice:not-the-password@127.0.0.1:{server.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password"):  # the socket asks for it too
        psycopg.connect(host=str(server.cluster_dir), port=server.port, user="mlservice", dbname="postgres", connect_timeout=5)
    assert stat.S_IMODE(server.cluster_dir.stat().st_mode) == 0o700


def test_databases_are_created_once(postgres_server):
    server = postgres_server.server
    server.ensure_databases("created_once")
    with psycopg.connect(server.url("created_once", driver="postgresql")) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    server.ensure_databases("created_once")  # again: nothing dropped or recreated
    with psycopg.connect(server.url("created_once", driver="postgresql")) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
