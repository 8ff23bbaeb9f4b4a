"""Redis specifics: key layout, expiry, URLs with password and TLS, failures on a real server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from redis.connection import Connection
from redis.crc import key_slot

from tauro_workbench.config import FeatureStoreConfig, OnlineStoreConfig
from tauro_workbench.exceptions import ConfigurationError, OnlineStoreError
from tauro_workbench.online import create_online_store
from tauro_workbench.online.redis import _IN_FLIGHT, RedisOnlineStore, redact
from tests.conftest import RedisServer, free_port
from tests.online.conftest import at, make_store, user_rows, user_schema


def test_keys_share_one_cluster_slot_per_group_and_values_are_plain_text(redis_server: RedisServer) -> None:
    store = make_store("redis", redis_server.url)
    assert isinstance(store, RedisOnlineStore)
    schema = user_schema()
    store.write(schema, user_rows(schema, [(1, at(-1), 1, 0.5, "a"), (22, at(-1), 2, None, 'q"|')]))
    keys = sorted(cast("list[bytes]", store.client.keys("*")))
    assert keys == [b"{tauro:user:v1}:i1", b"{tauro:user:v1}:i22"]
    assert len({key_slot(k) for k in keys}) == 1
    value = cast("bytes | None", store.client.get(b"{tauro:user:v1}:i22"))
    assert value is not None and value.endswith(b'[2,null,"q\\"|"]')
    assert store.client.pttl(b"{tauro:user:v1}:i1") == -1  # no ttl: never expires


def test_rows_expire_at_event_time_plus_ttl(redis_server: RedisServer) -> None:
    store = make_store("redis", redis_server.url)
    assert isinstance(store, RedisOnlineStore)
    schema = user_schema(ttl=timedelta(hours=1))
    store.write(schema, user_rows(schema, [(1, at(-600), 1, 0.5, "a"), (2, at(-7200), 2, 0.5, "b")]))
    remaining = store.client.pttl(b"{tauro:user:v1}:i1")
    assert 3000 * 1000 - 5000 < remaining <= 3000 * 1000 + 5000
    assert store.client.exists(b"{tauro:user:v1}:i2") == 0  # already past its ttl


def test_factory_builds_the_configured_store(redis_server: RedisServer) -> None:
    assert create_online_store().kind == "memory"
    config = FeatureStoreConfig(
        online_store=OnlineStoreConfig(type="redis", url=redis_server.url, key_prefix="x.y")
    )
    store = create_online_store(config)
    assert isinstance(store, RedisOnlineStore) and store.health_check()
    assert store.group_tag(user_schema()) == "{x.y:user:v1}:"
    connection = store._pool.get_connection()
    try:  # hiredis is installed here, and redis-py picks it up by itself
        assert type(connection._parser).__name__ == "_HiredisParser"
        assert connection.socket_timeout == 5.0 and connection.socket_connect_timeout == 5.0
    finally:
        store._pool.release(connection)
    with pytest.raises(ConfigurationError, match="url is not set"):
        create_online_store(OnlineStoreConfig(type="redis"))
    with pytest.raises(ConfigurationError, match="key_prefix"):
        RedisOnlineStore(redis_server.url, key_prefix="a{b}")
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisOnlineStore("http://127.0.0.1:1/0")


def _start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.02)
    process.terminate()
    raise RuntimeError("redis-server did not start")


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server speaking only TLS, with a password, and the CA file that signed it."""
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem"))
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=tauro-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=localhost",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    port = free_port()
    process = _start(
        [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        port,
    )
    yield port, ca
    process.terminate()
    process.wait(timeout=10)


def test_tls_url_with_password(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    schema = user_schema()
    good = RedisOnlineStore(f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    good.write(schema, user_rows(schema, [(1, at(-1), 7, 0.5, "tls")]))
    assert good.read(schema, [(1,)], ["age", "city"]) == [(7, "tls")]
    wrong = RedisOnlineStore(f"rediss://:nope@127.0.0.1:{port}/0?ssl_ca_certs={ca}", max_retries=0)
    with pytest.raises(OnlineStoreError) as caught:
        wrong.read(schema, [(1,)], ["age"])
    assert "nope" not in str(caught.value) and "***" in str(caught.value)
    plain = RedisOnlineStore(f"redis://:s3cret@127.0.0.1:{port}/0", max_retries=0, socket_timeout_seconds=0.5)
    assert not plain.health_check()


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_server_down_fails_after_retries_then_recovers(own_redis: RedisServer) -> None:
    sleeps: list[float] = []
    store = RedisOnlineStore(own_redis.url, max_retries=2, retry_backoff_ms=10, socket_timeout_seconds=1)
    store._retry.sleep = sleeps.append  # record the backoff instead of waiting
    schema = user_schema()
    store.write(schema, user_rows(schema, [(1, at(-5), 1, 0.1, "before")]))
    own_redis.stop()
    assert not store.health_check()
    with pytest.raises(OnlineStoreError, match="after 2 retries"):
        store.write(schema, user_rows(schema, [(1, at(-1), 2, 0.2, "during")]))
    with pytest.raises(OnlineStoreError, match="failed to read user"):
        store.read(schema, [(1,)], ["city"])
    assert sleeps == [0.01, 0.02, 0.01, 0.02]
    own_redis.start()
    store.write(schema, user_rows(schema, [(1, at(-1), 3, 0.3, "after")]))
    assert store.read(schema, [(1,)], ["city"]) == [("after",)]


def test_a_restart_mid_write_resumes_after_the_acknowledged_batches(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisOnlineStore(own_redis.url, batch_size=10, retry_backoff_ms=20)
    schema = user_schema()
    store.set_sync_token(schema, "before")
    original = Connection.read_response
    calls = {"n": 0}

    def read_response(self: Connection, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # call 1 answered SET token; restart the real server under the writer
            own_redis.restart()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "read_response", read_response)
    rows = [(i, at(-1), i, 0.0, "x") for i in range(100)]
    result = store.write(schema, user_rows(schema, rows))
    monkeypatch.undo()
    assert result.entities == 100 and result.batches == 10
    got = store.read(schema, [(i,) for i in range(100)], ["age"])
    present = sum(row is not None for row in got)
    # Batches acknowledged before the restart were wiped with it (no persistence); the write
    # resumed after them, so at most the in-flight window is missing ...
    assert 100 - 10 * _IN_FLIGHT <= present < 100
    # ... and the vanished token is how a sync notices the loss (see OnlineServingMixin).
    assert store.get_sync_token(schema) is None


def test_importing_the_package_does_not_import_redis_and_a_missing_extra_is_named() -> None:
    code = (
        "import sys\n"
        "import tauro_workbench.online, tauro_workbench.stores.online_serving\n"
        "assert 'redis' not in sys.modules\n"
        "sys.modules['redis'] = None\n"
        "from tauro_workbench.config import OnlineStoreConfig\n"
        "from tauro_workbench.exceptions import MissingExtraError\n"
        "try:\n"
        "    tauro_workbench.online.create_online_store(OnlineStoreConfig(type='redis', url='redis://x'))\n"
        "except MissingExtraError as err:\n"
        "    print(err.package, err.extra)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "redis redis"
