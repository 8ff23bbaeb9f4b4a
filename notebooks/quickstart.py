import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # tauro_workbench quickstart

    The whole tour on the embedded defaults — Polars, DuckDB, Delta Lake on local disk, a SQLite
    registry and an in-memory online store. No Redis, no Spark, no server.

    1. register the silver **sources** and three **feature groups**;
    2. **materialize** card-transaction aggregates month by month, with a drift check on every write;
    3. define a **virtual** group in SQL, computed on demand by DuckDB;
    4. read the latest **features** of a few users;
    5. build a **point-in-time training set** from a labels frame;
    6. look at the **drift report** of the shifted month (June 2026);
    7. **promote** the groups online and read them back.

    Run it as a script with `python notebooks/quickstart.py`, or open it with
    `marimo edit notebooks/quickstart.py`.
    """)
    return


@app.cell
def _():
    import time

    import marimo as mo
    import polars as pl

    from tauro_workbench import (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        MaterializedFeatureStore,
        VirtualizedFeatureStore,
    )
    from tauro_workbench.quickstart import demo_repo, sample_data_path

    return (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        MaterializedFeatureStore,
        VirtualizedFeatureStore,
        demo_repo,
        mo,
        pl,
        sample_data_path,
        time,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. A fresh feature repo

    The repo is the folder named by the `TAURO_FS_STORAGE_PATH` environment variable, or
    `./feature_repo` (relative to where you run this). It holds the registry (`registry.db`)
    and one Delta table per feature group under `offline/`.

    **Every run starts from an empty repo**, so running the notebook twice gives the same
    result: `demo_repo()` deletes what the previous run left — but only in a folder that a demo
    created (it carries a `.tauro_demo` marker); it refuses to touch anything else. Appending
    the same months again instead would double the rows, and the drift check would compare
    January with the previous run's June.
    """)
    return


@app.cell
def _(MaterializedFeatureStore, VirtualizedFeatureStore, demo_repo, mo, sample_data_path):
    repo = demo_repo("feature_repo")
    silver = sample_data_path(mo.notebook_dir())
    store = MaterializedFeatureStore(storage_path=repo, config={"enable_online_store": True})
    virtual = VirtualizedFeatureStore(config=store.config, metadata=store.metadata, events=store.events)
    print(f"[repo] {repo} (offline tables: {store.config.offline_format}, online store: in memory)")
    return repo, silver, store, virtual


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Sources

    A source is a named silver table. Virtual features read sources by name in SQL; the
    registry remembers where each file-backed source lives.
    """)
    return


@app.cell
def _(pl, silver, virtual):
    for _table in ("users", "purchases", "transactions"):
        virtual.add_source(f"silver.{_table}", str(silver / f"{_table}.parquet"))
    sources = pl.DataFrame(
        [
            {"source": s.name, "format": s.format, "rows": s.row_estimate, "columns": len(s.schema)}
            for s in virtual.executor.sources.list()
        ]
    )
    print(
        "[sources] " + ", ".join(f"{r['source']} ({r['rows']:,} rows)" for r in sources.iter_rows(named=True))
    )
    sources
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Feature groups

    A feature group is a typed schema: entity keys, an event time, and features.

    - **`user_features`** — profile attributes of a user from `silver.users`. It has no event
      time (`timestamp_key=None`): a training set gets the latest profile of each user.
    - **`user_txn_daily`** — card spending of a user per day, computed with Polars from
      `silver.transactions`. Its event time is `day_end`, the **end** of the day: a daily total
      is only known once the day is over, so a label at noon must not see that day's total.
      No ttl here, because the sample data ends in June 2026: with, say, `ttl="30d"` the online
      values would (rightly) read as null today.
    """)
    return


@app.cell
def _(DataType, FeatureGroupSchema, FeatureSchema, FeatureType, store):
    user_features = FeatureGroupSchema(
        name="user_features",
        entity_keys=["user_id"],
        timestamp_key=None,
        description="Profile attributes of a user (latest profile).",
        features=[
            FeatureSchema("age", DataType.INT, FeatureType.NUMERICAL, metadata={"min": 0, "max": 150}),
            FeatureSchema("country", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("plan", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("marketing_opt_in", DataType.BOOLEAN, FeatureType.CATEGORICAL),
        ],
    )
    user_txn_daily = FeatureGroupSchema(
        name="user_txn_daily",
        entity_keys=["user_id"],
        timestamp_key="day_end",
        description="Card transactions of a user per day; known at the end of the day.",
        features=[
            FeatureSchema("txn_count", DataType.INT, FeatureType.NUMERICAL),
            FeatureSchema("txn_amount_sum", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("txn_amount_mean", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("txn_amount_max", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("declined_count", DataType.INT, FeatureType.NUMERICAL),
        ],
    )
    for _schema in (user_features, user_txn_daily):
        store.register_features(_schema)
    print(f"[groups] registered {', '.join(store.metadata.list_feature_groups())}")
    return user_features, user_txn_daily


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. Materialize

    `user_features` is one write. The daily aggregates are computed once with Polars (exact
    duplicate transactions dropped first) and written **month by month**, the way a daily or
    monthly job would land them. Every write is validated against the schema, committed as one
    Delta transaction, profiled, and compared with the previous write for drift. June 2026 is
    the month where amounts shift in the sample data.
    """)
    return


@app.cell
def _(pl, store, time, user_features, virtual):
    _started = time.perf_counter()
    _users = virtual.executor.sources.get("silver.users").scan()
    user_rows = _users.select(
        "user_id",
        ((pl.col("updated_at").dt.date() - pl.col("birth_date")).dt.total_days() // 365)
        .cast(pl.Int32)
        .alias("age"),
        "country",
        "plan",
        "marketing_opt_in",
    ).collect()
    _record = store.write_features(user_features.name, user_rows, mode="overwrite")
    print(
        f"[write] user_features: {_record.rows:,} rows, table version {_record.table_version} ({time.perf_counter() - _started:.2f} s)"
    )
    user_rows.head(5)
    return


@app.cell
def _(pl, virtual):
    daily = (
        virtual.executor.sources.get("silver.transactions")
        .scan()
        .unique("transaction_id", keep="first", maintain_order=True)
        .group_by("user_id", pl.col("transaction_ts").dt.truncate("1d").alias("day"))
        .agg(
            pl.len().cast(pl.Int32).alias("txn_count"),
            pl.col("amount").sum().alias("txn_amount_sum"),
            pl.col("amount").mean().alias("txn_amount_mean"),
            pl.col("amount").max().alias("txn_amount_max"),
            (pl.col("status") == "declined").sum().cast(pl.Int32).alias("declined_count"),
        )
        .with_columns((pl.col("day") + pl.duration(days=1)).alias("day_end"))
        .sort("day_end", "user_id")
        .collect()
    )
    print(f"[aggregate] {daily.height:,} user-days from silver.transactions")
    return (daily,)


@app.cell
def _(daily, pl, store, time, user_txn_daily):
    drift_events = []
    _subscription = store.events.subscribe(drift_events.append, kinds=["drift_detected"])
    _rows = []
    for _month, _part in daily.group_by(
        pl.col("day").dt.strftime("%Y-%m").alias("month"), maintain_order=True
    ):
        _started = time.perf_counter()
        _record = store.write_features(user_txn_daily.name, _part.drop("day"))
        _report = store.monitor.reports(user_txn_daily.name)[-1]
        _rows.append(
            {
                "month": _month[0],
                "rows": _record.rows,
                "table_version": _record.table_version,
                "drift": _report.verdict,
                "max_psi": _report.max_psi,
                "drifted": ", ".join(_report.drifted),
                "seconds": round(time.perf_counter() - _started, 3),
            }
        )
        _psi = "" if _report.max_psi is None else f", max PSI {_report.max_psi:.3f}"
        _flagged = f" in {_rows[-1]['drifted']}" if _rows[-1]["drifted"] else ""
        print(
            f"[write] user_txn_daily {_month[0]}: {_record.rows:,} rows -> table v{_record.table_version} "
            f"in {_rows[-1]['seconds']:.2f} s; drift check: {_report.verdict}{_psi}{_flagged}"
        )
    _subscription.cancel()
    monthly = pl.DataFrame(_rows)
    assert monthly["drift"].to_list()[-1] == "drift", "June 2026 should drift"
    assert "drift" not in monthly["drift"].to_list()[:-1], "January to May should not drift"
    print(
        f"[events] drift_detected published {len(drift_events)} time(s): {[e.features for e in drift_events]}"
    )
    monthly
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. A virtual group in SQL

    `user_purchases_daily` is never stored: DuckDB computes it from `silver.purchases` when it
    is read. The definition is validated now (it parses, reads known sources, returns the keys,
    the event time and the declared types) and its lineage is recorded. `preview` shows the
    rows with the SQL that ran and its timing.
    """)
    return


@app.cell
def _(DataType, FeatureGroupSchema, FeatureSchema, FeatureType, virtual):
    user_purchases_daily = FeatureGroupSchema(
        name="user_purchases_daily",
        entity_keys=["user_id"],
        timestamp_key="day_end",
        description="Purchases of a user per day, computed on demand from silver.purchases.",
        features=[
            FeatureSchema("purchase_count", DataType.BIGINT, FeatureType.NUMERICAL),
            FeatureSchema("purchase_amount", DataType.DOUBLE, FeatureType.NUMERICAL),
        ],
    )
    virtual.register_features(user_purchases_daily)
    virtual.define_virtual_features(
        user_purchases_daily.name,
        """
        SELECT user_id,
               date_trunc('day', purchased_at) + INTERVAL 1 DAY AS day_end,
               count(DISTINCT purchase_id) AS purchase_count,
               sum(amount) AS purchase_amount
        FROM (SELECT DISTINCT * FROM silver.purchases)
        GROUP BY ALL
        """,
    )
    preview = virtual.preview(user_purchases_daily.name, limit=5)
    print(
        f"[virtual] user_purchases_daily: preview of {preview.to_polars().height} rows by {preview.engine} in {preview.seconds * 1000:.0f} ms"
    )
    preview
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 6. Latest features of a few users

    `get_features` returns a lazy Polars frame: one row per requested id, in order, with the
    latest value of each feature (nulls for an unknown id). Name features as `group.feature`.
    """)
    return


@app.cell
def _(store, time, virtual):
    users = {"user_id": [1, 2, 3, 42]}
    offline_names = [
        "user_features.plan",
        "user_features.age",
        "user_txn_daily.txn_count",
        "user_txn_daily.txn_amount_sum",
    ]
    _started = time.perf_counter()
    latest = store.get_features(offline_names, entity_ids=users).collect()
    _seconds = time.perf_counter() - _started
    latest_virtual = virtual.get_features(["user_purchases_daily.purchase_count"], entity_ids=users).collect()
    print(
        f"[get_features] {latest.height} users in {_seconds * 1000:.0f} ms: "
        + "; ".join(
            f"user {r['user_id']}: plan={r['plan']} age={r['age']} txn_amount_sum={r['txn_amount_sum']}"
            for r in latest.head(3).iter_rows(named=True)
        )
    )
    print(f"[get_features] virtual purchase_count: {latest_virtual['purchase_count'].to_list()}")
    latest
    return latest, offline_names, users


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 7. A point-in-time training set

    Labels: every June 2026 card transaction, with `is_fraud` as the label and the transaction
    time as the point in time. For each row, each group contributes the latest value whose
    event time is **at or before** that time — never a value from its future. The result has
    exactly one row per label row, in order. Materialized and virtual groups chain: the second
    join adds columns to the first one's output.
    """)
    return


@app.cell
def _(pl, store, time, virtual):
    labels = (
        virtual.executor.sources.get("silver.transactions")
        .scan()
        .unique("transaction_id", keep="first", maintain_order=True)
        .filter(pl.col("transaction_ts") >= pl.datetime(2026, 6, 1, time_zone="UTC"))
        .select("transaction_id", "user_id", pl.col("transaction_ts").alias("event_timestamp"), "is_fraud")
        .collect()
    )
    _started = time.perf_counter()
    _offline = store.get_historical_features(
        labels,
        [
            "user_features.plan",
            "user_features.age",
            "user_txn_daily.txn_count",
            "user_txn_daily.txn_amount_sum",
        ],
    )
    training = virtual.get_historical_features(_offline, ["user_purchases_daily.purchase_count"]).collect()
    _seconds = time.perf_counter() - _started
    assert training.height == labels.height and training["transaction_id"].equals(labels["transaction_id"])
    _filled = {
        c: f"{1 - training[c].null_count() / training.height:.0%}"
        for c in ("plan", "txn_amount_sum", "purchase_count")
    }
    print(
        f"[training set] {labels.height:,} label rows -> {training.height:,} rows x {training.width} columns "
        f"in {_seconds:.2f} s; {training['is_fraud'].sum()} frauds; non-null: {_filled}"
    )
    training.head(10)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 8. The drift report of June

    Each write's profile (counts, null rate, quantiles, histogram or top categories) is stored
    with the write, and compared with the previous write: PSI and KS per numeric feature, PSI
    per categorical one, and the null-rate change. June's amounts are 1.5x higher.
    """)
    return


@app.cell
def _(store, user_txn_daily):
    june = store.monitor.reports(user_txn_daily.name)[-1]
    print(
        f"[drift] June vs {june.reference}: {june.verdict}; "
        + ", ".join(f"{f.feature} PSI {f.psi:.3f} KS {f.ks:.3f} ({f.verdict})" for f in june.features)
    )
    june
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 9. Online

    `promote(group, to="online")` syncs the latest row per entity to the online store (here in
    memory; set `online_store={"type": "redis", "url": ...}` for Redis). Online reads return
    plain Python values for one entity, or a Polars frame for many, and agree with the
    offline `get_features`.
    """)
    return


@app.cell
def _(latest, offline_names, pl, store, time, user_features, user_txn_daily, users):
    for _group in (user_features.name, user_txn_daily.name):
        _sync = store.promote(_group, to="online")
        print(
            f"[online] promoted {_group}: {_sync.entities:,} entities synced in {_sync.seconds * 1000:.0f} ms"
        )
    one = store.get_online_features(offline_names, entity_keys={"user_id": 42})
    many = store.get_online_features(offline_names, entity_keys=users)
    assert isinstance(many, pl.DataFrame) and many.equals(latest), "online and offline reads differ"
    _timings = []
    for _ in range(500):
        _started = time.perf_counter()
        store.get_online_features(offline_names, entity_keys={"user_id": 42})
        _timings.append(time.perf_counter() - _started)
    _p50 = sorted(_timings)[len(_timings) // 2] * 1e6
    print(f"[online] user 42: {one}")
    print(f"[online] {many.height} users match the offline read; p50 of one read: {_p50:.0f} us")
    many
    return


@app.cell(hide_code=True)
def _(mo, repo):
    mo.md(f"""
    ## Done

    The repo is in `{repo}`: `registry.db` and the Delta tables under `offline/`. Next:
    `notebooks/training_set.py` (point-in-time correctness on late and duplicate events, time
    travel) and `notebooks/drift.py` (profiles, drift per month, charts).
    """)
    return


@app.cell
def _(repo):
    print(f"[done] quickstart finished; feature repo: {repo}")
    return


if __name__ == "__main__":
    app.run()
