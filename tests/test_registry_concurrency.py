"""FeatureStoreMetadata across threads and processes: retries on a locked database, persistence,
fork, and the 4 processes x 8 threads acceptance run."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tauro_workbench.config import FeatureStoreConfig
from tauro_workbench.exceptions import LineageCycleError, MetadataError
from tauro_workbench.registry import FeatureStoreMetadata
from tauro_workbench.retry import RetryPolicy
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema

REPO = Path(__file__).resolve().parents[1]
PROCESSES, THREADS, WRITES = 4, 8, 5


def group(name: str, version: int = 1, features: tuple[str, ...] = ("a",)) -> FeatureGroupSchema:
    return FeatureGroupSchema(
        name,
        version=version,
        entity_keys=["id"],
        timestamp_key="ts",
        features=[FeatureSchema(f, "DOUBLE", "NUMERICAL") for f in features],
    )


def run_python(code: str, *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


# -- retries on a locked database --------------------------------------------------------
@pytest.fixture
def locked_registry(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A registry file whose write lock is held by a second connection (``COMMIT`` it to release)."""
    FeatureStoreMetadata(tmp_path).close()  # create the tables first
    holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO documents VALUES ('note', 'holder', '{}', '2024-01-01')")
    yield tmp_path, holder
    if holder.in_transaction:
        holder.execute("COMMIT")
    holder.close()


def short_busy_config(tmp_path: Path, **options: float) -> FeatureStoreConfig:
    # lock_timeout split over the attempts gives a busy timeout of a few ms: contention reaches
    # the retry policy instead of being absorbed inside SQLite's busy handler.
    return FeatureStoreConfig(storage_path=str(tmp_path), lock_timeout_seconds=0.05, **options)  # type: ignore[arg-type]


def test_the_busy_timeout_is_the_lock_timeout_split_over_the_attempts(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(config=short_busy_config(tmp_path, max_retries=3))
    assert metadata.busy_timeout_ms == 12  # 50 ms / 4 attempts
    busy = metadata.database.run(
        lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0], what="t", write=False
    )
    assert busy == 12
    assert metadata.retry_policy.delays() == RetryPolicy.from_config(metadata.config).delays()


def test_a_locked_database_is_retried_with_the_configured_backoff(
    locked_registry: tuple[Path, sqlite3.Connection],
) -> None:
    path, holder = locked_registry
    config = short_busy_config(path, max_retries=3, retry_backoff_ms=20, retry_backoff_multiplier=3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:  # the other writer finishes while we back off
            holder.execute("COMMIT")

    metadata = FeatureStoreMetadata(config=config, retry_policy=RetryPolicy.from_config(config, sleep=sleep))
    metadata.register_feature_group(group("users"))
    assert slept == pytest.approx([0.02])
    assert metadata.list_feature_groups() == ["users"]
    assert metadata.find_document("note", "holder") == {}


def test_retries_outlast_a_writer_holding_the_lock_for_a_while(
    locked_registry: tuple[Path, sqlite3.Connection],
) -> None:
    path, holder = locked_registry
    config = short_busy_config(path, max_retries=8, retry_backoff_ms=10, retry_backoff_multiplier=2)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    metadata = FeatureStoreMetadata(config=config, retry_policy=RetryPolicy.from_config(config, sleep=sleep))
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        metadata.record_write("users", 1, mode="append", rows=3)
    finally:
        release.join()
    assert 1 <= len(slept) <= 8
    assert slept == pytest.approx(metadata.retry_policy.delays()[: len(slept)])
    assert [w.rows for w in metadata.list_writes("users")] == [3]


def test_gives_up_after_max_retries_with_metadata_error(
    locked_registry: tuple[Path, sqlite3.Connection],
) -> None:
    path, _ = locked_registry
    config = short_busy_config(path, max_retries=2, retry_backoff_ms=5, retry_backoff_multiplier=2)
    slept: list[float] = []
    metadata = FeatureStoreMetadata(
        config=config, retry_policy=RetryPolicy.from_config(config, sleep=slept.append)
    )
    with pytest.raises(MetadataError, match="gave up after 2 retries") as info:
        metadata.set_lineage("b", ["a"])
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert "locked" in str(info.value.__cause__)
    assert slept == pytest.approx([0.005, 0.01])
    assert metadata.lineage_edges() == []  # reads still work while a writer holds the lock


def test_a_long_busy_timeout_absorbs_contention_without_retries(
    locked_registry: tuple[Path, sqlite3.Connection],
) -> None:
    path, holder = locked_registry
    config = FeatureStoreConfig(storage_path=str(path), max_retries=3)
    slept: list[float] = []
    metadata = FeatureStoreMetadata(
        config=config,
        busy_timeout_ms=10_000,
        retry_policy=RetryPolicy.from_config(config, sleep=slept.append),
    )
    release = threading.Timer(0.1, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        metadata.put_document("note", "mine", {"x": 1})
    finally:
        release.join()
    assert slept == []
    assert sorted(metadata.list_documents("note")) == ["holder", "mine"]


# -- processes ---------------------------------------------------------------------------
def test_persistence_across_processes(tmp_path: Path) -> None:
    run_python(
        "from tests.test_registry_concurrency import group\n"
        "from tauro_workbench.registry import FeatureStoreMetadata\n"
        f"m = FeatureStoreMetadata({str(tmp_path)!r})\n"
        "m.register_feature_group(group('users'))\n"
        "m.register_feature_group(group('users', 2, ('a', 'b')))\n"
        "m.set_lineage('users', ['silver.users'])\n"
        "m.record_write('users', 2, mode='append', rows=7, details={'k': 1})\n"
        "m.record_event('written', {'rows': 7}, group='users')\n"
        "m.put_document('source', 'silver.users', {'path': 'u.parquet'})\n"
    )
    out = run_python(
        "import json\n"
        "from tauro_workbench.registry import FeatureStoreMetadata\n"
        f"m = FeatureStoreMetadata({str(tmp_path)!r})\n"
        "print(json.dumps({'groups': m.list_feature_groups(), 'versions': m.list_versions('users'),\n"
        "  'latest': m.get_feature_group('users').to_dict(), 'up': m.get_upstream('users'),\n"
        "  'writes': [(w.rows, w.details) for w in m.list_writes('users')],\n"
        "  'last': m.get_last_updated('users').isoformat(),\n"
        "  'events': [e.payload for e in m.list_events()], 'docs': m.list_documents('source')}))\n"
    )
    seen = json.loads(out.stdout)
    here = FeatureStoreMetadata(tmp_path)
    assert seen["groups"] == ["users"] and seen["versions"] == [1, 2]
    assert seen["latest"] == group("users", 2, ("a", "b")).to_dict()
    assert seen["up"] == ["silver.users"] and seen["writes"] == [[7, {"k": 1}]]
    assert seen["last"] == here.list_writes("users")[0].written_at.isoformat()
    assert seen["events"] == [{"rows": 7}] and seen["docs"] == {"silver.users": {"path": "u.parquet"}}


def _register_in_child(metadata: FeatureStoreMetadata) -> None:
    metadata.register_feature_group(group("from_child"))


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    metadata = FeatureStoreMetadata(tmp_path)
    metadata.register_feature_group(group("from_parent"))  # the parent's connection is open
    child = multiprocessing.get_context("fork").Process(target=_register_in_child, args=(metadata,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert metadata.list_feature_groups() == ["from_child", "from_parent"]


def concurrency_worker(path: str, process: int) -> None:
    """One process of the acceptance run: THREADS threads register, link and record writes."""
    metadata = FeatureStoreMetadata(path)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    results: dict[str, list[object]] = {"errors": [], "created_shared": []}

    def work(t: int) -> None:
        own = f"g_p{process}_t{t}"
        try:
            metadata.register_feature_group(group(own))
            metadata.register_feature_group(group(own, 2, ("a", "b")))
            results["created_shared"].append(metadata.ensure_feature_group(group("shared")))
            metadata.register_feature_group(group(f"shared_t{t}", 1 + t % 3))
            metadata.set_lineage(own, [f"src.p{process}", "shared"])
            metadata.set_lineage(f"shared_t{t}", "shared")
            # the ring closes a cycle: exactly one of its 8 edges must be refused overall
            with contextlib.suppress(LineageCycleError):
                metadata.set_lineage(f"ring{(t + 1) % THREADS}", [f"ring{t}"])
            for i in range(WRITES):
                metadata.record_write(own, 1, mode="append", rows=i, details={"p": process, "t": t, "i": i})
                metadata.record_event("written", {"p": process, "t": t, "i": i}, group=own)
            metadata.put_document("state", own, {"p": process, "t": t})
            assert metadata.get_feature_group(own).version == 2
        except BaseException as err:  # reported to the parent
            results["errors"].append(repr(err))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results), flush=True)


def test_processes_and_threads_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    path = str(tmp_path)
    FeatureStoreMetadata(path).close()
    code = "import sys\nfrom tests.test_registry_concurrency import concurrency_worker\nconcurrency_worker(sys.argv[1], int(sys.argv[2]))"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, path, str(p)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        outputs = [worker.communicate("go\n", timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [w.returncode for w in workers] == [0] * PROCESSES, [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    assert sum(sum(r["created_shared"]) for r in results) == 1  # one winner among 32 registrations

    own = [f"g_p{p}_t{t}" for p in range(PROCESSES) for t in range(THREADS)]
    metadata = FeatureStoreMetadata(path)
    assert metadata.list_feature_groups() == sorted(
        [*own, "shared", *(f"shared_t{t}" for t in range(THREADS))]
    )
    assert all(metadata.list_versions(name) == [1, 2] for name in own)
    assert all(metadata.list_versions(f"shared_t{t}") == [1 + t % 3] for t in range(THREADS))

    edges = metadata.lineage_edges()
    expected = {
        (u, g)
        for p in range(PROCESSES)
        for t in range(THREADS)
        for g in [f"g_p{p}_t{t}"]
        for u in (f"src.p{p}", "shared")
    }
    expected |= {("shared", f"shared_t{t}") for t in range(THREADS)}
    ring = {(f"ring{t}", f"ring{(t + 1) % THREADS}") for t in range(THREADS)}
    assert len(edges) == len(set(edges)) == len(expected) + THREADS - 1
    assert set(edges) - ring == expected and len(set(edges) & ring) == THREADS - 1

    writes = [w for name in own for w in metadata.list_writes(name)]
    keys = sorted((w.details["p"], w.details["t"], w.details["i"]) for w in writes)
    assert keys == sorted((p, t, i) for p in range(PROCESSES) for t in range(THREADS) for i in range(WRITES))
    events = metadata.list_events(kind="written")
    assert len(events) == len({e.id for e in events}) == len(writes)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert sorted(metadata.list_documents("state")) == sorted(own)

    def check(conn: sqlite3.Connection) -> str:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    assert metadata.database.run(check, what="integrity", write=False) == "ok"
