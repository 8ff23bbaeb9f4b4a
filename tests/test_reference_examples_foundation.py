"""The schema, registry and exception examples of the Tauro Feature Store README, run verbatim.

Only the imports change: ``tauro.feature_store`` becomes ``tauro_workbench``.
"""

from __future__ import annotations

from loguru import logger

# from tauro.feature_store.schema import FeatureSchema, DataType, FeatureType
from tauro_workbench.schema import DataType, FeatureSchema, FeatureType


def _user_age() -> FeatureSchema:
    user_age = FeatureSchema(
        name="age",
        data_type=DataType.INT,
        feature_type=FeatureType.NUMERICAL,
        description="User age in years",
        nullable=False,
        metadata={"min": 0, "max": 150, "unit": "years"},
    )
    return user_age


def _user_features():  # type: ignore[no-untyped-def]
    # from tauro.feature_store.schema import FeatureGroupSchema
    from tauro_workbench.schema import FeatureGroupSchema

    user_age = _user_age()
    user_region = FeatureSchema("region", DataType.STRING, FeatureType.CATEGORICAL)
    user_spending = FeatureSchema("spending", DataType.DOUBLE, FeatureType.NUMERICAL)

    user_features = FeatureGroupSchema(
        name="user_features",
        version=1,
        entity_keys=["user_id"],
        timestamp_key="event_timestamp",
        description="Core user demographic and behavioral features",
        features=[user_age, user_region, user_spending],
        tags={"team": "data-science", "environment": "production"},
    )
    return user_features


def test_feature_schema_example() -> None:
    user_age = _user_age()
    assert user_age.data_type is DataType.INT and user_age.feature_type is FeatureType.NUMERICAL
    assert not user_age.nullable and user_age.metadata["unit"] == "years"


def test_feature_group_schema_example() -> None:
    user_features = _user_features()
    assert user_features.feature_names == ["age", "region", "spending"]
    assert user_features.tags == {"team": "data-science", "environment": "production"}


def test_pattern_one_schema_example() -> None:
    # from tauro.feature_store import MaterializedFeatureStore, FeatureGroupSchema, FeatureSchema
    # from tauro.feature_store.schema import DataType, FeatureType
    from tauro_workbench import FeatureGroupSchema, FeatureSchema
    from tauro_workbench.schema import DataType, FeatureType

    schema = FeatureGroupSchema(
        name="transaction_features",
        entity_keys=["transaction_id"],
        timestamp_key="transaction_date",
        features=[
            FeatureSchema("amount", DataType.DOUBLE, FeatureType.NUMERICAL),
            FeatureSchema("merchant_id", DataType.STRING, FeatureType.CATEGORICAL),
        ],
    )
    assert schema.columns == ["transaction_id", "transaction_date", "amount", "merchant_id"]


def test_version_management_example() -> None:
    from tauro_workbench import FeatureGroupSchema

    # the README writes FeatureGroupSchema(name="features", version=2); entity keys are required here
    schema = FeatureGroupSchema(name="features", version=2, entity_keys=["id"])
    assert schema.version == 2


def test_registry_example() -> None:
    user_features_schema = _user_features()

    # from tauro.feature_store.base import FeatureStoreMetadata
    from tauro_workbench.base import FeatureStoreMetadata

    metadata = FeatureStoreMetadata()
    metadata.register_feature_group(user_features_schema)
    features = metadata.list_features("user_features")

    assert features == ["age", "region", "spending"]
    assert metadata.list_feature_groups() == ["user_features"]
    assert metadata.get_feature_group("user_features") == user_features_schema
    assert metadata.get_feature("user_features", "age") == _user_age()


def _run_exception_example(metadata: object) -> tuple[object, list[str]]:
    messages: list[str] = []
    sink = logger.add(messages.append, level="ERROR", format="{message}")
    logger.enable("tauro_workbench")
    feature = None
    try:
        # from tauro.feature_store.exceptions import (
        from tauro_workbench.exceptions import (
            FeatureMaterializationError,  # noqa: F401 - imported as in the README
            FeatureNotFoundError,
        )

        try:
            feature = metadata.get_feature("user_features", "age")  # type: ignore[attr-defined]
        except FeatureNotFoundError as e:
            logger.error(f"Feature not found: {e}")
    finally:
        logger.disable("tauro_workbench")
        logger.remove(sink)
    return feature, messages


def test_exception_usage_example() -> None:
    from tauro_workbench.base import FeatureStoreMetadata
    from tauro_workbench.schema import FeatureGroupSchema

    # after the registry example: the feature exists
    metadata = FeatureStoreMetadata()
    metadata.register_feature_group(_user_features())
    feature, messages = _run_exception_example(metadata)
    assert feature == _user_age() and messages == []

    # a group without 'age': the README's except branch runs
    other = FeatureStoreMetadata()
    other.register_feature_group(
        FeatureGroupSchema(
            name="user_features", entity_keys=["user_id"], features=[FeatureSchema("region", "STRING")]
        )
    )
    feature, messages = _run_exception_example(other)
    assert feature is None
    assert len(messages) == 1 and messages[0].startswith("Feature not found: ")
    assert "'age'" in messages[0] and "user_features.region" in messages[0]


def test_error_handling_best_practice() -> None:
    from tauro_workbench.base import FeatureStoreMetadata
    from tauro_workbench.exceptions import FeatureMaterializationError, FeatureNotFoundError

    metadata = FeatureStoreMetadata()
    metadata.register_feature_group(_user_features())
    handled = []
    try:
        metadata.get_feature("user_features", "height")
    except FeatureNotFoundError:
        handled.append("missing feature")
    except FeatureMaterializationError:
        handled.append("materialization")
    assert handled == ["missing feature"]
