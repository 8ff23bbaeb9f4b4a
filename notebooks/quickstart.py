import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # tauro_workbench quickstart

    The whole tour through one object, the `Workbench`, on the embedded defaults — Polars,
    DuckDB, Delta Lake on local disk, a SQLite registry and an in-memory online store. No Redis,
    no Spark, no server, no network.

    1. **register** sources and feature groups, and write card-spending aggregates month by
       month (each write is checked for drift);
    2. **define** a virtual group in SQL and **preview** it;
    3. **promote** it to a Delta table;
    4. build a point-in-time **training set**;
    5. serve the latest values **online**;
    6. look at the **lineage** graph and the **drift** of the shifted month;
    7. browse the registry in the **browser** widget.

    Run it headless with `python notebooks/quickstart.py`, open it with
    `marimo edit notebooks/quickstart.py`, or serve it with `marimo run`.
    """)
    return


@app.cell
def _():
    import marimo as mo
    import polars as pl

    from tauro_workbench import DataType, FeatureGroupSchema, FeatureSchema, FeatureType, Workbench
    from tauro_workbench.catalog import Catalog
    from tauro_workbench.notebook import browse, charts
    from tauro_workbench.quickstart import demo_repo, sample_data_path

    return (
        Catalog,
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        Workbench,
        browse,
        charts,
        demo_repo,
        mo,
        pl,
        sample_data_path,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. A fresh feature repo and its sources

    The repo is `$TAURO_FS_STORAGE_PATH`, else `./feature_repo_quickstart` — its own folder, so
    the README tour's `./feature_repo` is never touched. **Every run starts from an empty repo**:
    `demo_repo()` empties the folder first, but only a folder a demo created (it carries a
    `.tauro_demo` marker). A source is a named silver table that SQL reads by name.
    """)
    return


@app.cell
def _(Workbench, demo_repo, mo, sample_data_path):
    repo = demo_repo("feature_repo_quickstart")
    silver = sample_data_path(mo.notebook_dir())
    wb = Workbench(repo)
    for _table in ("users", "purchases", "transactions"):
        wb.add_source(f"silver.{_table}", str(silver / f"{_table}.parquet"))
    print(f"[repo] {repo} (mode {wb.config.mode.value}, online store in memory)")
    print(
        "[sources] "
        + ", ".join(
            f"{s.name} ({s.describe().row_estimate:,} rows)"
            for s in sorted(wb.sources(), key=lambda s: s.name)
        )
    )
    return repo, silver, wb


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Register feature groups

    A feature group is a typed schema: entity keys, an event time and features.
    `user_features` has no event time (a training set gets each user's latest profile).
    `user_txn_daily` is card spending per user and day; its event time is the **end** of the
    day, because a daily total is only known once the day is over.
    """)
    return


@app.cell
def _(Catalog, DataType, FeatureGroupSchema, FeatureSchema, FeatureType, wb):
    user_features = FeatureGroupSchema(
        name="user_features",
        entity_keys=["user_id"],
        timestamp_key=None,
        description="Profile attributes of a user (latest profile).",
        features=[
            FeatureSchema("age", DataType.INT, FeatureType.NUMERICAL, metadata={"min": 0, "max": 150}),
            FeatureSchema("country", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("plan", DataType.STRING, FeatureType.CATEGORICAL),
        ],
        tags={"team": "growth"},
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
        ],
        tags={"team": "risk"},
    )
    for _schema in (user_features, user_txn_daily):
        wb.register(_schema)
    print(f"[groups] registered {', '.join(g.name for g in wb.groups())}")
    wb.get_group("user_txn_daily")
    return user_features, user_txn_daily


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Write month by month

    Each write is validated, committed as one Delta transaction, profiled and compared with the
    previous write for drift. June 2026 is the month where amounts shift in the sample data.
    """)
    return


@app.cell
def _(pl, silver, user_features, user_txn_daily, wb):
    _users = pl.read_parquet(silver / "users.parquet").select(
        "user_id",
        ((pl.col("updated_at").dt.date() - pl.col("birth_date")).dt.total_days() // 365)
        .cast(pl.Int32)
        .alias("age"),
        "country",
        "plan",
    )
    _profile = wb.write(user_features.name, _users, mode="overwrite")
    print(f"[write] user_features: {_profile.rows:,} rows, table version {_profile.table_version}")
    transactions = pl.read_parquet(silver / "transactions.parquet").unique(
        "transaction_id", keep="first", maintain_order=True
    )
    _daily = (
        transactions.group_by("user_id", pl.col("transaction_ts").dt.truncate("1d").alias("day"))
        .agg(
            pl.len().cast(pl.Int32).alias("txn_count"),
            pl.col("amount").sum().alias("txn_amount_sum"),
            pl.col("amount").mean().alias("txn_amount_mean"),
        )
        .with_columns((pl.col("day") + pl.duration(days=1)).alias("day_end"))
        .sort("day_end", "user_id")
    )
    _months = []
    for (_month,), _part in _daily.group_by(pl.col("day").dt.strftime("%Y-%m"), maintain_order=True):
        _record = wb.write(user_txn_daily.name, _part.drop("day"))
        _drift = _record.details.get("drift") or {}
        _months.append(
            {
                "month": _month,
                "rows": _record.rows,
                "table_version": _record.table_version,
                "drift": _drift.get("verdict"),
            }
        )
        print(
            f"[write] user_txn_daily {_month}: {_record.rows:,} rows -> table v{_record.table_version}; drift check: {_drift.get('verdict')}"
        )
    monthly = pl.DataFrame(_months)
    assert monthly["drift"].to_list()[-1] == "drift", "June 2026 should drift"
    monthly
    return (transactions,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. A virtual group in SQL, previewed

    `user_purchases_daily` is computed on demand by DuckDB from `silver.purchases`. The SQL is
    validated now (it parses, reads known sources, returns the declared columns and types) and
    its lineage recorded. `preview` shows the rows, the SQL that ran, the route and the timing.
    """)
    return


@app.cell
def _(DataType, FeatureGroupSchema, FeatureSchema, FeatureType, wb):
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
    wb.register(user_purchases_daily)
    wb.define_virtual(
        user_purchases_daily.name,
        sql="""
        SELECT user_id,
               date_trunc('day', purchased_at) + INTERVAL 1 DAY AS day_end,
               count(DISTINCT purchase_id) AS purchase_count,
               sum(amount) AS purchase_amount
        FROM (SELECT DISTINCT * FROM silver.purchases)
        GROUP BY ALL
        """,
    )
    preview = wb.preview(user_purchases_daily.name, limit=5)
    print(
        f"[preview] user_purchases_daily: {preview.frame.height} rows via {preview.route} on {preview.engine}"
    )
    preview
    return (user_purchases_daily,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. Promote it to a Delta table

    One call computes the SQL and writes the result as one Delta transaction (with a drift
    profile). Running it again finds nothing to do. `explain` shows where a read now goes.
    """)
    return


@app.cell
def _(user_purchases_daily, wb):
    promotion = wb.promote(user_purchases_daily.name, to="materialized")
    _again = wb.promote(user_purchases_daily.name, to="materialized")
    print(f"[promote] {promotion.message}; again: changed={_again.changed}")
    promotion
    return


@app.cell
def _(wb):
    wb.explain(["user_purchases_daily.purchase_count"])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 6. A point-in-time training set

    Labels: every June 2026 card transaction with `is_fraud`. Each label row gets, per group,
    the latest value whose event time is **at or before** the label's time — never one from
    its future — and exactly one output row per label row. The display shows the table
    versions read and how many labels each group matched.
    """)
    return


@app.cell
def _(pl, transactions, wb):
    labels = transactions.filter(pl.col("transaction_ts") >= pl.datetime(2026, 6, 1, time_zone="UTC")).select(
        "transaction_id", "user_id", pl.col("transaction_ts").alias("event_timestamp"), "is_fraud"
    )
    training = wb.training_set(
        labels,
        [
            "user_features.plan",
            "user_features.age",
            "user_txn_daily.txn_count",
            "user_txn_daily.txn_amount_sum",
            "user_purchases_daily.purchase_count",
        ],
    )
    assert training.frame.height == labels.height
    print(
        f"[training set] {labels.height:,} label rows -> {training.frame.height:,} rows x {training.frame.width} columns; "
        f"match rate {', '.join(f'{g} {r:.0%}' for g, r in training.match_rate.items())}"
    )
    training
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 7. Online

    `promote(group, to="online")` syncs the latest row per entity to the online store; online
    reads return plain Python values and agree with the offline read.
    """)
    return


@app.cell
def _(pl, wb):
    for _group in ("user_features", "user_txn_daily"):
        print(f"[online] {wb.promote(_group, to='online').message}")
    _names = ["user_features.plan", "user_txn_daily.txn_count", "user_txn_daily.txn_amount_sum"]
    one = wb.get_online_features(_names, entity_keys={"user_id": 42})
    _offline = wb.get_features(_names, entity_ids={"user_id": [42]}).collect()
    assert _offline.drop("user_id").row(0, named=True) == one, (one, _offline)
    print(f"[online] user 42: {one} (matches the offline read)")
    pl.DataFrame([one])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 8. Lineage

    Sources → SQL → features → group → online, plus the writes that landed data (the
    promotion ran the SQL). Drawn offline as SVG; `to_png()` and `to_dict()` export it.
    """)
    return


@app.cell
def _(user_purchases_daily, wb):
    lineage = wb.lineage(user_purchases_daily.name)
    print(f"[lineage] {lineage.to_text().splitlines()[0]}")
    lineage
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 9. Drift of the shifted month

    The latest report of `user_txn_daily` (June vs May): PSI, KS and null-rate change per
    feature with a verdict and the PSI chart, then each statistic of `txn_amount_mean` over
    every write (Altair, rendered by marimo without a CDN).
    """)
    return


@app.cell
def _(user_txn_daily, wb):
    june = wb.drift(user_txn_daily.name)
    print(f"[drift] June vs {june.reference}: {june.verdict}; drifted {june.drifted}")
    june
    return


@app.cell
def _(charts, user_txn_daily, wb):
    charts.feature_over_time(wb.metadata, user_txn_daily.name, "txn_amount_mean")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 10. Browse the registry

    Search, pick a group, see its schema, lineage, last writes and drift verdict; preview or
    promote it — the actions run in this kernel.
    """)
    return


@app.cell
def _(Catalog, browse, mo, wb):
    browser = mo.ui.anywidget(browse(wb))
    print(f"[browser] {Catalog(wb).state['total']} groups")
    browser
    return


@app.cell
def _(Catalog, wb):
    Catalog(wb)
    return


@app.cell
def _(repo):
    print(f"[done] quickstart finished; feature repo: {repo}")
    return


if __name__ == "__main__":
    app.run()
