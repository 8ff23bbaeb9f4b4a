import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Point-in-time training sets

    A training set pairs each label with the feature values **as they were at the label's
    time**. Get that wrong and the model trains on the future: it looks great offline and fails
    in production. This notebook uses `silver.purchases`, which has the two classic traps built
    in — **late events** (rows that reached the lake 1-10 days after they happened) and **exact
    duplicates** (an at-least-once ingestion) — and shows, with counts:

    1. two naive joins: one leaks future values, the other loses and duplicates rows;
    2. `get_historical_features`: one row per label, nothing from the future;
    3. **time travel**: rebuild an earlier training set exactly from its Delta version, even
       after late events have landed.

    Like the quickstart, it starts from a fresh demo repo (`$TAURO_FS_STORAGE_PATH`, else
    `./feature_repo_training_set`) on every run.
    """)
    return


@app.cell
def _():
    import random
    from datetime import UTC, datetime, timedelta

    import marimo as mo
    import polars as pl

    from tauro_workbench import (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        Workbench,
    )
    from tauro_workbench.quickstart import demo_repo, sample_data_path

    return (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        UTC,
        Workbench,
        datetime,
        demo_repo,
        mo,
        pl,
        random,
        sample_data_path,
        timedelta,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## The purchases

    `purchased_at` is the **event time** (when it happened), `ingested_at` the **created time**
    (when it reached the lake).
    """)
    return


@app.cell
def _(mo, pl, sample_data_path):
    purchases = pl.read_parquet(sample_data_path(mo.notebook_dir()) / "purchases.parquet").with_columns(
        pl.col("purchased_at").alias("last_purchase_at"),
        pl.col("ingested_at").alias("last_ingested_at"),
    )
    duplicates = purchases.height - purchases["purchase_id"].n_unique()
    late = int(purchases.unique("purchase_id")["is_late"].sum())
    print(
        f"[data] {purchases.height:,} purchase rows: {duplicates} exact duplicates, {late} late events (1-10 days)"
    )
    purchases.head(5)
    return (purchases,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## A feature group, landed batch by batch

    `user_last_purchase` holds each user's purchases; a training set takes the **latest one at
    or before** the label time, within a 30-day ttl. Ties on the event time are broken by the
    created time, then by write order, so an exact duplicate never becomes a second row.

    Batches are cut by **ingestion** month, the way a monthly job sees the lake: a purchase of
    31 May that arrived on 4 June lands with June's batch. Each batch is one Delta version.
    """)
    return


@app.cell
def _(DataType, FeatureGroupSchema, FeatureSchema, FeatureType, Workbench, demo_repo):
    wb = Workbench(demo_repo("feature_repo_training_set"))
    last_purchase = FeatureGroupSchema(
        name="user_last_purchase",
        entity_keys=["user_id"],
        timestamp_key="purchased_at",
        created_timestamp_key="ingested_at",
        ttl="30d",
        features=[
            FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("category", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("last_purchase_at", DataType.TIMESTAMP, FeatureType.TIMESERIES),
            FeatureSchema("last_ingested_at", DataType.TIMESTAMP, FeatureType.TIMESERIES),
        ],
    )
    wb.register(last_purchase)
    feature_names = [f"user_last_purchase.{f}" for f in last_purchase.feature_names]
    wb.get_group(last_purchase.name)
    return feature_names, last_purchase, wb


@app.cell
def _(last_purchase, pl, purchases):
    batches = {
        month[0]: part.select(last_purchase.columns)
        for month, part in purchases.sort("ingested_at").group_by(
            pl.col("ingested_at").dt.strftime("%Y-%m"), maintain_order=True
        )
    }
    print("[batches] by ingestion month: " + ", ".join(f"{m} {b.height:,}" for m, b in batches.items()))
    return (batches,)


@app.cell
def _(batches, last_purchase, wb):
    versions = {
        month: wb.write(last_purchase.name, batch).table_version
        for month, batch in batches.items()
    }
    print(f"[write] one Delta version per batch: {versions}")
    return (versions,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Labels

    5,000 (user, time) pairs between 15 January and 1 June 2026, seeded so every run is the
    same; `label_id` keeps track of each row.
    """)
    return


@app.cell
def _(UTC, datetime, pl, purchases, random, timedelta):
    _rng = random.Random(7)
    _buyers = sorted(purchases["user_id"].unique().to_list())
    _start = datetime(2026, 1, 15, tzinfo=UTC)
    _span = int((datetime(2026, 6, 1, tzinfo=UTC) - _start).total_seconds())
    labels = pl.DataFrame(
        {
            "label_id": range(5000),
            "user_id": [_rng.choice(_buyers) for _ in range(5000)],
            "event_timestamp": [_start + timedelta(seconds=_rng.randrange(_span)) for _ in range(5000)],
        }
    )
    print(f"[labels] {labels.height:,} rows, {labels['user_id'].n_unique():,} users")
    return (labels,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Two naive joins

    1. **Latest purchase per user**, joined on `user_id`: the value is whatever the table holds
       *now*, so for most labels it comes from their future.
    2. **Purchases up to the label time, keep the latest**: no future values, but the inner join
       drops labels with no earlier purchase, the exact duplicates tie for "latest" and double
       rows, and the ttl is ignored.
    """)
    return


@app.cell
def _(batches, labels, pl):
    landed = pl.concat(list(batches.values()))
    naive_latest = labels.join(
        landed.sort("purchased_at").group_by("user_id").last(),
        on="user_id",
        how="left",
        maintain_order="left",
    )
    naive_leaks = naive_latest.filter(pl.col("last_purchase_at") > pl.col("event_timestamp")).height
    naive_range = (
        labels.join(landed, on="user_id")
        .filter(pl.col("purchased_at") <= pl.col("event_timestamp"))
        .filter(pl.col("purchased_at") == pl.col("purchased_at").max().over("label_id"))
    )
    naive_lost = labels.height - naive_range["label_id"].n_unique()
    naive_extra = naive_range.height - naive_range["label_id"].n_unique()
    print(
        f"[naive 1] latest per user: {naive_latest.height:,} rows, {naive_leaks:,} take a value from the future"
    )
    print(
        f"[naive 2] range join: {naive_range.height:,} rows for {labels.height:,} labels "
        f"({naive_lost:,} labels lost, {naive_extra} duplicated rows)"
    )
    return (landed,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## The point-in-time join

    `get_historical_features` keeps every label row, in order, and per row takes the latest
    purchase with `purchased_at <= event_timestamp` and within 30 days. We count future values
    (none), and check the result against a hand-written Polars `join_asof` on deduplicated data.
    """)
    return


@app.cell
def _(feature_names, labels, pl, wb):
    training_set = wb.training_set(labels, feature_names)
    training = training_set.frame
    _leaks = training.filter(pl.col("last_purchase_at") > pl.col("event_timestamp")).height
    _stale = training.filter(
        pl.col("last_purchase_at") < pl.col("event_timestamp") - pl.duration(days=30)
    ).height
    assert training.height == labels.height and training["label_id"].equals(labels["label_id"])
    assert _leaks == 0 and _stale == 0
    print(
        f"[point in time] {training.height:,} rows for {labels.height:,} labels: {_leaks} future values, "
        f"{_stale} past the ttl, {training['amount'].null_count():,} with no purchase in the 30 days before "
        f"(table version {training_set.table_versions})"
    )
    training_set
    return (training,)


@app.cell
def _(labels, landed, training):
    _oracle = (
        labels.sort("event_timestamp")
        .join_asof(
            landed.unique(maintain_order=True).sort("purchased_at"),
            left_on="event_timestamp",
            right_on="purchased_at",
            by="user_id",
            strategy="backward",
            tolerance="30d",
            check_sortedness=False,  # both sides are sorted on the time, so within each user too
        )
        .sort("label_id")
    )
    _same = training.select("amount", "category").equals(_oracle.select("amount", "category"))
    assert _same, "the point-in-time join disagrees with join_asof"
    print(f"[check] same values as a hand-written join_asof with a 30-day tolerance: {_same}")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Late events: what did each monthly job know?

    The join above uses the whole history, late events included, each at its event time. A
    training job that ran at the end of each month only saw the batches landed so far. **Time
    travel** rebuilds that view: for the labels of each month, read the table `as_of` the Delta
    version written by that month's batch. The rows that differ are exactly the labels whose
    latest purchase arrived late.
    """)
    return


@app.cell
def _(feature_names, labels, pl, training, versions, wb):
    _parts = []
    for _month, _version in versions.items():
        _labels = labels.filter(pl.col("event_timestamp").dt.strftime("%Y-%m") == _month)
        if _labels.height:
            _parts.append(wb.materialized.get_historical_features(_labels, feature_names, as_of=_version).collect())
    known_then = pl.concat(_parts).sort("label_id")
    _changed = training.join(known_then, on="label_id", suffix="_then").filter(
        pl.col("last_purchase_at").ne_missing(pl.col("last_purchase_at_then"))
    )
    _arrived_later = _changed.filter(
        pl.col("last_ingested_at").dt.strftime("%Y-%m") > pl.col("event_timestamp").dt.strftime("%Y-%m")
    ).height
    assert known_then.height == labels.height and _arrived_later == _changed.height
    print(
        f"[late events] {_changed.height} of {labels.height:,} rows differ between the full history and what "
        f"the monthly jobs knew; all {_arrived_later} use a purchase that landed in a later batch"
    )
    _changed.select(
        "label_id", "event_timestamp", "amount_then", "amount", "last_purchase_at", "last_ingested_at"
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Rebuild a training set exactly

    Every read records what it read in `wb.materialized.last_read_info` (a training set shows
    it as `table_versions`). Keep `table_versions` with
    the model; later — after more writes, a backfill or a correction — pass them back as
    `as_of` and you get the same training set, row for row.
    """)
    return


@app.cell
def _(batches, feature_names, labels, last_purchase, pl, versions, wb):
    store = wb.materialized  # time travel (as_of) is a read of the materialized store
    _may = labels.filter(pl.col("event_timestamp").dt.strftime("%Y-%m") == "2026-05")
    model_training = store.get_historical_features(_may, feature_names, as_of=versions["2026-05"]).collect()
    model_versions = store.last_read_info.table_versions
    # later, a correction rewrites the amounts of 500 May purchases (a merge on user and event time)
    _fix = batches["2026-05"].head(500).with_columns(pl.col("amount") * 100)
    _record = wb.write(last_purchase.name, _fix, mode="merge")
    _rebuilt = store.get_historical_features(_may, feature_names, as_of=model_versions).collect()
    _latest = store.get_historical_features(_may, feature_names).collect()
    assert _rebuilt.equals(model_training)
    print(
        f"[time travel] May training set ({model_training.height:,} rows) read at {model_versions}; after a merge "
        f"(table version {_record.table_version}) the latest differs in "
        f"{(_latest['amount'].ne_missing(model_training['amount'])).sum()} rows, the rebuild as of "
        f"{model_versions} is identical: {_rebuilt.equals(model_training)}"
    )
    return


if __name__ == "__main__":
    app.run()
