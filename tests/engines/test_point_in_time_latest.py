"""``latest_per_entity`` (the get_features lookup) against the brute-force oracle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tauro_workbench.engines.pit import PointInTimeSpec, latest_per_entity
from tests.engines.test_point_in_time import feature_frames, hours, specs
from tests.pit_oracle import oracle_latest


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_latest_per_entity_matches_the_oracle(data: st.DataObject) -> None:
    keys = data.draw(st.sampled_from([("k",), ("k", "region")]))
    features, spec = data.draw(feature_frames(keys)), data.draw(specs(keys))
    as_of = data.draw(st.none() | st.integers(-1, 31).map(hours))
    entities = None
    if data.draw(st.booleans()):
        n = data.draw(st.integers(0, 6))
        columns = {
            "k": pl.Series([data.draw(st.none() | st.integers(0, 4)) for _ in range(n)], dtype=pl.Int32)
        }
        if "region" in keys:
            columns["region"] = pl.Series(
                [data.draw(st.sampled_from(["eu", "us", None])) for _ in range(n)], dtype=pl.String
            )
        entities = pl.DataFrame(columns)
    expected = oracle_latest(features, spec, as_of=as_of, entities=entities)
    got = latest_per_entity(features.lazy(), spec, as_of=as_of, entities=entities).collect()
    assert_frame_equal(got, expected, check_exact=True)


def test_latest_per_entity_filters_a_parquet_scan_by_entity(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    pl.DataFrame(
        {
            "k": list(range(1000)) * 3,
            "event_time": [hours(h) for h in (0, 1, 2) for _ in range(1000)],
            "value": [float(i) for i in range(3000)],
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    ).write_parquet(path, row_group_size=500)
    spec = PointInTimeSpec(("k",), "ts", "event_time", ("value",), ttl=timedelta(hours=1))
    got = latest_per_entity(
        pl.scan_parquet(path), spec, as_of=hours(1), entities=pl.DataFrame({"k": [7, 5000, 3]})
    ).collect()
    assert got["value"].to_list() == [1007.0, None, 1003.0]
    assert got["event_time"].to_list() == [hours(1), None, hours(1)]
