import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Drift monitoring

    Every write to a materialized feature group is **profiled** (counts, null rate,
    min/max/mean/std, quantiles and a histogram for numeric features, top categories for
    categorical ones) and **compared with a reference** — the previous write, unless you pin a
    baseline — with PSI, KS and the null-rate change. This notebook writes six months of card
    transactions from the sample data, one month per write; in June 2026 amounts are 1.5x
    higher and travel and electronics merchants spend more.

    The charts come from `tauro_workbench.notebook.charts` (Altair). marimo renders them
    itself, with no CDN; `to_svg` / `to_png` export them offline.

    It starts from a fresh demo repo (`$TAURO_FS_STORAGE_PATH`, else `./feature_repo_drift`)
    on every run.
    """)
    return


@app.cell
def _():
    from datetime import UTC, datetime

    import marimo as mo
    import polars as pl

    from tauro_workbench import (
        DataType,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        Workbench,
    )
    from tauro_workbench.exceptions import DriftDetectedError
    from tauro_workbench.monitoring import GroupProfile, drift_history
    from tauro_workbench.notebook import charts
    from tauro_workbench.quickstart import demo_repo, sample_data_path

    return (
        DataType,
        DriftDetectedError,
        FeatureGroupSchema,
        FeatureSchema,
        FeatureType,
        GroupProfile,
        UTC,
        Workbench,
        charts,
        datetime,
        demo_repo,
        drift_history,
        mo,
        pl,
        sample_data_path,
    )


@app.cell
def _(DataType, FeatureGroupSchema, FeatureSchema, FeatureType, Workbench, demo_repo):
    wb = Workbench(demo_repo("feature_repo_drift"))
    card_transactions = FeatureGroupSchema(
        name="card_transactions",
        entity_keys=["transaction_id"],
        timestamp_key="transaction_ts",
        created_timestamp_key="created_at",
        features=[
            FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("merchant_category", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("status", DataType.STRING, FeatureType.CATEGORICAL),
            FeatureSchema("currency", DataType.STRING, FeatureType.CATEGORICAL),
        ],
    )
    wb.register(card_transactions)
    return card_transactions, wb


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Write month by month, with an alert hook

    The event bus delivers a `DriftDetected` event for every write that drifts (or warns) —
    the place to page someone or open a ticket. A subscriber that raises never breaks a write.
    """)
    return


@app.cell
def _(card_transactions, mo, pl, sample_data_path, wb):
    alerts = []

    def _alert(event):
        alerts.append(event)
        print(
            f"[alert] {event.group}: {event.severity} in {', '.join(event.features)} (max PSI {event.max_psi:.3f})"
        )

    _subscription = wb.events.subscribe(_alert, kinds=["drift_detected"])
    transactions = (
        pl.read_parquet(sample_data_path(mo.notebook_dir()) / "transactions.parquet")
        .unique("transaction_id", keep="first", maintain_order=True)
        .with_columns(pl.col("transaction_ts").dt.strftime("%Y-%m").alias("month"))
    )
    writes = []
    for _month, _part in transactions.group_by("month", maintain_order=True):
        _record = wb.write(card_transactions.name, _part.select(card_transactions.columns))
        writes.append((_month[0], _record))
        print(f"[write] {_month[0]}: {_record.rows:,} rows -> table version {_record.table_version}")
    _subscription.cancel()
    return alerts, transactions, writes


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Profiles per month

    The profile of each write is stored with it in the registry. Here is `amount` month by month:
    the mean and the quartiles jump in June.
    """)
    return


@app.cell
def _(GroupProfile, card_transactions, pl, wb):
    _records = wb.history(card_transactions.name)
    profiles = [GroupProfile.from_dict(r.details["profile"]) for r in _records]
    amount_by_month = pl.DataFrame(
        [
            {
                "month": p.event_time_min.strftime("%Y-%m"),
                "rows": p.rows,
                "mean": round(p.feature("amount").mean, 2),
                "std": round(p.feature("amount").std, 2),
                "p50": round(p.feature("amount").quantile(0.5), 2),
                "p90": round(p.feature("amount").quantile(0.9), 2),
                "top merchant_category": p.feature("merchant_category").top_categories[0][0],
            }
            for p in profiles
        ]
    )
    print(
        "[profiles] mean amount per month: "
        + ", ".join(f"{r['month']} {r['mean']}" for r in amount_by_month.iter_rows(named=True))
    )
    amount_by_month
    return (profiles,)


@app.cell
def _(profiles):
    profiles[-1].to_polars()
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Drift per month

    One row per write and feature. PSI >= 0.1 warns and >= 0.25 drifts (configurable per group
    and per feature); a KS statistic >= 0.2 or a null-rate change >= 0.1 also counts as drift.
    """)
    return


@app.cell
def _(alerts, card_transactions, drift_history, pl, wb):
    history = drift_history(wb.metadata, card_transactions.name)
    verdicts = [r.details["drift"]["verdict"] for r in wb.history(card_transactions.name)]
    assert verdicts == ["no_reference", "ok", "ok", "ok", "ok", "drift"], verdicts
    assert len(alerts) == 1
    print(f"[drift] verdict per month: {verdicts}")
    history.pivot(on="feature", index="write_id", values="psi").with_columns(
        pl.col("*").exclude("write_id").round(4)
    )
    return (history,)


@app.cell
def _(card_transactions, charts, history):
    print(
        f"[chart] PSI over time: {history['write_id'].n_unique()} writes x {history['feature'].n_unique()} features"
    )
    charts.psi_over_time(history, card_transactions.name)
    return


@app.cell
def _(card_transactions, charts, history):
    # one feature over time: PSI (with its thresholds) and KS in their own panels and colours
    charts.feature_over_time(history, card_transactions.name, "amount")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## June in detail

    The report of the June write: PSI per feature against its thresholds, then the reference
    and current distributions of `amount` (drifted) and of `merchant_category` (stable: in the
    transactions the June shift is in the amounts, not in the category mix).
    """)
    return


@app.cell
def _(card_transactions, wb):
    june = wb.drift(card_transactions.name)
    print(f"[june] {june.verdict} against {june.reference}: drifted {june.drifted}, warned {june.warned}")
    june
    return (june,)


@app.cell
def _(charts, june, mo):
    _amount = june.feature("amount")
    _category = june.feature("merchant_category")
    print(
        f"[june] amount: PSI {_amount.psi:.3f}, KS {_amount.ks:.3f}; merchant_category: PSI {_category.psi:.3f}"
    )
    mo.vstack([charts.distribution(june, "amount"), charts.distribution(june, "merchant_category")])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Pin a baseline and block drifting writes

    Comparing with the previous write lets a slow drift creep in month after month. Pin a
    baseline instead — here the first quarter — and set the gate to `block`: a write that
    drifts from it is rejected **before** anything is written.
    """)
    return


@app.cell
def _(DriftDetectedError, UTC, card_transactions, datetime, pl, transactions, wb):
    store = wb.materialized  # baselines and table versions belong to the materialized store
    _baseline = store.monitor.pin_baseline(
        card_transactions.name, start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC)
    )
    _version = store.list_table_versions(card_transactions.name)[-1]
    _late_june = transactions.filter(pl.col("month") == "2026-06").select(card_transactions.columns)
    try:
        wb.write(card_transactions.name, _late_june, mode="merge", on_drift="block")
        blocked = False
    except DriftDetectedError as err:
        blocked = True
        print(f"[gate] blocked against {err.report.reference}: drifted {err.report.drifted}")
    assert blocked and store.list_table_versions(card_transactions.name)[-1] == _version
    store.monitor.unpin_baseline(card_transactions.name)  # back to comparing with the previous write
    print(f"[gate] table still at version {_version}; baseline was: {_baseline.label}")
    return


if __name__ == "__main__":
    app.run()
