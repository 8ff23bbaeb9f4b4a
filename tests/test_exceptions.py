"""The exception tree: every error is a FeatureStoreException and the matching builtin."""

from __future__ import annotations

import pytest

from tauro_workbench import exceptions as exc

BUILTIN = {
    exc.FeatureNotFoundError: KeyError,
    exc.FeatureGroupNotFoundError: KeyError,
    exc.SchemaValidationError: ValueError,
    exc.VirtualizationQueryError: ValueError,
    exc.QueryTimeoutError: TimeoutError,
    exc.LineageCycleError: ValueError,
    exc.ConfigurationError: ValueError,
    exc.PointInTimeError: ValueError,
    exc.DataSourceError: ValueError,
    exc.MissingExtraError: ImportError,
}
PARENT = {
    exc.QueryTimeoutError: exc.VirtualizationQueryError,
    exc.FeatureRegistryError: exc.MetadataError,
    exc.LineageCycleError: exc.FeatureRegistryError,
}


def test_all_lists_every_exception_class() -> None:
    classes = {
        name for name, value in vars(exc).items() if isinstance(value, type) and issubclass(value, Exception)
    }
    assert set(exc.__all__) == classes


@pytest.mark.parametrize("name", exc.__all__)
def test_every_error_is_a_feature_store_exception(name: str) -> None:
    cls = getattr(exc, name)
    if issubclass(cls, Warning):  # warnings are shown, never raised: FeatureStoreWarning's tree
        assert issubclass(cls, exc.FeatureStoreWarning) and issubclass(cls, UserWarning)
        return
    assert issubclass(cls, exc.FeatureStoreException)
    assert issubclass(cls, Exception)
    if cls in BUILTIN:
        assert issubclass(cls, BUILTIN[cls])
    if cls in PARENT:
        assert issubclass(cls, PARENT[cls])


def test_tree_is_drawn_in_the_module_docstring() -> None:
    assert exc.__doc__ is not None
    for name in exc.__all__:
        assert name in exc.__doc__


def test_root_message_and_hint() -> None:
    err = exc.FeatureStoreException("Something broke.", hint="Do this.")
    assert err.message == "Something broke."
    assert err.hint == "Do this."
    assert str(err) == "Something broke. Hint: Do this."
    assert str(exc.FeatureStoreException("Plain.")) == "Plain."


def test_feature_not_found_lists_candidates_and_reads_well_as_key_error() -> None:
    err = exc.FeatureNotFoundError("agee", candidates=["user.age", "user.region", "user.age"])
    assert err.feature == "agee"
    assert err.candidates == ["user.age", "user.region"]
    text = str(err)
    assert "'agee'" in text and "user.age" in text and "user.region" in text
    assert "group.feature" in text  # the hint
    assert not text.startswith('"')  # KeyError would repr() the message
    with pytest.raises(KeyError):
        raise err


def test_feature_not_found_custom_reason_and_long_candidate_lists() -> None:
    err = exc.FeatureNotFoundError(
        "x", candidates=[f"g.f{i:02d}" for i in range(30)], reason="Ambiguous 'x'."
    )
    assert str(err).startswith("Ambiguous 'x'.")
    assert "(10 more)" in str(err)
    assert "[] (none)" in str(exc.FeatureNotFoundError("x"))


def test_group_not_found_names_group_version_and_available() -> None:
    err = exc.FeatureGroupNotFoundError("users", available=["orders", "payments"])
    assert err.group == "users" and err.version is None
    assert "'users'" in str(err) and "orders" in str(err) and "payments" in str(err)
    assert "register_features" in str(err)
    err = exc.FeatureGroupNotFoundError("users", version=3, available=[1, 2])
    assert err.version == 3 and err.available == ["1", "2"]
    assert "version 3" in str(err) and "[1, 2]" in str(err)


def test_schema_validation_error_lists_every_problem() -> None:
    one = exc.SchemaValidationError("column 'a' is missing", group="g")
    assert one.problems == ["column 'a' is missing"] and one.group == "g"
    assert str(one) == "Schema validation failed for feature group 'g': column 'a' is missing"
    many = exc.SchemaValidationError(["p1", "p2", "p3"])
    assert many.problems == ["p1", "p2", "p3"]
    assert "3 problems" in str(many)
    assert all(f"  - p{i}" in str(many) for i in (1, 2, 3))


def test_virtualization_error_shows_the_query() -> None:
    err = exc.VirtualizationQueryError("Binder error.", query="  SELECT x FROM t  ", hint="Check the column.")
    assert err.query == "  SELECT x FROM t  "
    assert "Query:\nSELECT x FROM t" in str(err)
    assert str(err).endswith("Hint: Check the column.")
    timeout = exc.QueryTimeoutError("Query ran past 1 s.", query="SELECT 1")
    assert isinstance(timeout, TimeoutError) and isinstance(timeout, exc.VirtualizationQueryError)


def test_lineage_cycle_names_the_cycle() -> None:
    err = exc.LineageCycleError(["a", "b", "a"])
    assert err.cycle == ["a", "b", "a"]
    assert "a -> b -> a" in str(err)
    assert isinstance(err, exc.MetadataError)


def test_drift_detected_keeps_the_report() -> None:
    report = object()
    err = exc.DriftDetectedError("Drift in user.age.", report=report)
    assert err.report is report
    assert "on_drift" in str(err)


def test_missing_extra_is_an_import_error_naming_the_extra() -> None:
    err = exc.MissingExtraError("redis", extra="redis")
    assert isinstance(err, ImportError)
    assert err.package == "redis" and err.extra == "redis"
    assert "'redis'" in str(err)
    assert "pip install 'tauro-workbench[redis]'" in str(err)
    with pytest.raises(ImportError, match="tauro-workbench\\[spark\\]"):
        raise exc.MissingExtraError("pyspark", extra="spark")


@pytest.mark.parametrize(
    "cls", [exc.FeatureMaterializationError, exc.MetadataError, exc.OnlineStoreError, exc.ConfigurationError]
)
def test_plain_errors_take_message_and_hint(cls: type[exc.FeatureStoreException]) -> None:
    err = cls("It failed for 'g'.", hint="Retry.")
    assert str(err) == "It failed for 'g'. Hint: Retry."
    with pytest.raises(exc.FeatureStoreException):
        raise err
