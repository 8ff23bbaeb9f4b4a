"""Generate the small, deterministic silver tables of the tauro_workbench demos.

Run ``python sample_data/generate.py`` (or ``--out DIR``) to rewrite ``sample_data/silver/``.
Every run with the same seed writes the same data. See ``sample_data/README.md`` for the
tables, their columns, the distribution shift of the last month and the late and duplicate
events.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

SEED = 20260101
N_USERS = 2_000
N_PURCHASES = 36_000
N_TRANSACTIONS = 54_000
N_MERCHANTS = 150
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 7, 1, tzinfo=UTC)
SHIFT_START = datetime(2026, 6, 1, tzinfo=UTC)
SHIFT_AMOUNT_FACTOR = 1.5
LATE_SHARE = 0.03
DUPLICATE_SHARE = 0.01
UTC_US = pl.Datetime("us", "UTC")

COUNTRIES = {  # country -> (region, weight)
    "ES": ("EMEA", 0.22), "DE": ("EMEA", 0.14), "FR": ("EMEA", 0.12), "GB": ("EMEA", 0.10),
    "US": ("AMER", 0.20), "MX": ("AMER", 0.07), "BR": ("AMER", 0.06),
    "JP": ("APAC", 0.05), "IN": ("APAC", 0.04),
}
PLANS = {"free": 0.62, "pro": 0.30, "team": 0.08}
CHANNELS = {"web": 0.45, "app": 0.45, "store": 0.10}
# the category mix before and during the shifted month (electronics takes over in June)
CATEGORIES_BEFORE = {"groceries": 0.35, "fashion": 0.20, "home": 0.15, "electronics": 0.10, "books": 0.10, "sports": 0.10}
CATEGORIES_SHIFTED = {"groceries": 0.20, "fashion": 0.15, "home": 0.10, "electronics": 0.35, "books": 0.08, "sports": 0.12}
MERCHANT_CATEGORIES = ["grocery", "restaurant", "travel", "electronics", "fashion", "fuel"]
CURRENCIES = {"EMEA": "EUR", "AMER": "USD", "APAC": "USD"}


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _choice(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return np.array(names)[rng.choice(len(names), size=size, p=p / p.sum())]


def _timestamps(rng: np.random.Generator, size: int) -> np.ndarray:
    """Event times uniform over the six months, with more activity in the evening."""
    days = rng.integers(0, (END - START).days, size=size)
    hours = rng.choice(24, size=size, p=_hour_weights())
    seconds = rng.integers(0, 3600, size=size)
    micros = rng.integers(0, 1_000_000, size=size)
    return _us(START) + ((days * 24 + hours) * 3600 + seconds) * 1_000_000 + micros


def _hour_weights() -> np.ndarray:
    hours = np.arange(24)
    weights = 1.0 + 2.0 * np.exp(-((hours - 20) ** 2) / 8.0) + np.exp(-((hours - 12) ** 2) / 6.0)
    return weights / weights.sum()


def _ingestion(rng: np.random.Generator, event_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ingestion times: seconds to minutes after the event, or 1-10 days late for a few rows."""
    delay = rng.exponential(90.0, size=event_us.size) * 1_000_000
    late = rng.random(event_us.size) < LATE_SHARE
    delay[late] = rng.uniform(1, 10, size=int(late.sum())) * 86_400 * 1_000_000
    return event_us + delay.astype(np.int64), late


def _as_utc(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype(np.int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _activity(rng: np.random.Generator, size: int) -> np.ndarray:
    """Skewed activity per user: a few heavy users, a long tail of occasional ones."""
    weights = rng.lognormal(0.0, 1.1, size=N_USERS)
    return rng.choice(np.arange(1, N_USERS + 1), size=size, p=weights / weights.sum())


def _with_duplicates(rng: np.random.Generator, frame: pl.DataFrame, time_column: str) -> pl.DataFrame:
    """Append exact copies of a few rows (same ids, same times), then sort by event time."""
    n = int(frame.height * DUPLICATE_SHARE)
    picks = np.sort(rng.choice(frame.height, size=n, replace=False))
    return pl.concat([frame, frame[picks]]).sort([time_column, frame.columns[0]], maintain_order=True)


def users(rng: np.random.Generator) -> pl.DataFrame:
    """The users table: one row per user."""
    countries = _choice(rng, {c: w for c, (_, w) in COUNTRIES.items()}, N_USERS)
    signup_offsets = rng.integers(0, (date(2026, 6, 30) - date(2023, 1, 1)).days, size=N_USERS)
    ages_days = (rng.gamma(6.0, 6.0, size=N_USERS).clip(0, 62) + 18) * 365.25
    plan = _choice(rng, PLANS, N_USERS)
    signup = pl.Series(signup_offsets).cast(pl.Int32) + (date(2023, 1, 1) - date(1970, 1, 1)).days
    updated = _us(START) + rng.integers(0, _us(END) - _us(START), size=N_USERS)
    return pl.DataFrame(
        {
            "user_id": np.arange(1, N_USERS + 1, dtype=np.int64),
            "signup_date": signup.cast(pl.Date),
            "birth_date": (pl.Series([_days(date(2026, 1, 1))] * N_USERS) - pl.Series(ages_days.astype(np.int32))).cast(pl.Date),
            "country": countries,
            "region": [COUNTRIES[c][0] for c in countries],
            "plan": plan,
            "marketing_opt_in": rng.random(N_USERS) < np.where(plan == "free", 0.35, 0.6),
            "updated_at": _as_utc(updated),
        }
    )


def _days(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def purchases(rng: np.random.Generator) -> pl.DataFrame:
    """Purchases: one row per order line, event time ``purchased_at``, created time ``ingested_at``."""
    event = np.sort(_timestamps(rng, N_PURCHASES))
    shifted = event >= _us(SHIFT_START)
    category = np.where(
        shifted,
        _choice(rng, CATEGORIES_SHIFTED, N_PURCHASES),
        _choice(rng, CATEGORIES_BEFORE, N_PURCHASES),
    )
    base = {"groceries": 3.2, "fashion": 3.8, "home": 4.0, "electronics": 4.9, "books": 2.9, "sports": 3.7}
    mu = np.array([base[c] for c in category])
    amount = rng.lognormal(mu, 0.6) * np.where(shifted, SHIFT_AMOUNT_FACTOR, 1.0)
    ingested, late = _ingestion(rng, event)
    frame = pl.DataFrame(
        {
            "purchase_id": np.arange(1, N_PURCHASES + 1, dtype=np.int64),
            "user_id": _activity(rng, N_PURCHASES).astype(np.int64),
            "category": category,
            "amount": np.round(amount, 2),
            "quantity": (rng.poisson(0.6, size=N_PURCHASES) + 1).astype(np.int32),
            "channel": _choice(rng, CHANNELS, N_PURCHASES),
            "purchased_at": _as_utc(event),
            "ingested_at": _as_utc(ingested),
            "is_late": late,
        }
    )
    return _with_duplicates(rng, frame, "purchased_at")


def transactions(rng: np.random.Generator) -> pl.DataFrame:
    """Card transactions: event time ``transaction_ts``, created time ``created_at``."""
    event = np.sort(_timestamps(rng, N_TRANSACTIONS))
    shifted = event >= _us(SHIFT_START)
    # Zipf-like merchant popularity
    popularity = 1.0 / np.arange(1, N_MERCHANTS + 1) ** 1.1
    merchant = rng.choice(N_MERCHANTS, size=N_TRANSACTIONS, p=popularity / popularity.sum())
    merchant_category = np.array(MERCHANT_CATEGORIES)[merchant % len(MERCHANT_CATEGORIES)]
    # in the shifted month, travel and electronics merchants get a larger share of the spend
    boost = np.isin(merchant_category, ["travel", "electronics"]) & shifted
    amount = rng.lognormal(3.4, 0.9, size=N_TRANSACTIONS) * np.where(shifted, SHIFT_AMOUNT_FACTOR, 1.0)
    amount = np.where(boost, amount * 1.3, amount)
    user = _activity(rng, N_TRANSACTIONS)
    created, late = _ingestion(rng, event)
    regions = np.array([COUNTRIES[c][0] for c in COUNTRIES])
    frame = pl.DataFrame(
        {
            "transaction_id": np.arange(1, N_TRANSACTIONS + 1, dtype=np.int64),
            "user_id": user.astype(np.int64),
            "merchant_id": [f"m_{m + 1:03d}" for m in merchant],
            "merchant_category": merchant_category,
            "amount": np.round(amount, 2),
            "currency": [CURRENCIES[str(r)] for r in regions[user % len(regions)]],
            "status": _choice(rng, {"approved": 0.95, "declined": 0.04, "refunded": 0.01}, N_TRANSACTIONS),
            "is_fraud": rng.random(N_TRANSACTIONS) < np.where(boost, 0.01, 0.003),
            "transaction_ts": _as_utc(event),
            "created_at": _as_utc(created),
            "is_late": late,
        }
    )
    return _with_duplicates(rng, frame, "transaction_ts")


def generate(out: Path, *, seed: int = SEED) -> dict[str, Path]:
    """Write ``users``, ``purchases`` and ``transactions`` as Parquet into ``out``.

    Args:
        out: Target folder (created if needed).
        seed: Random seed; the same seed always gives the same data.

    Returns:
        Table name -> path of the file written.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"users": users(rng), "purchases": purchases(rng), "transactions": transactions(rng)}
    paths = {}
    for name, frame in tables.items():
        path = out / f"{name}.parquet"
        frame.write_parquet(path, compression="zstd", compression_level=10, statistics=True)
        paths[name] = path
    return paths


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "silver")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for name, path in generate(args.out, seed=args.seed).items():
        frame = pl.read_parquet(path)
        print(f"{name:<13} {frame.height:>7,} rows  {path.stat().st_size / 1024:>7.1f} KiB  {path}")


if __name__ == "__main__":
    main()
