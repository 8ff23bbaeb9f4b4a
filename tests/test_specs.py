"""YAML definitions: shapes equal to the Python objects; errors name file, line and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tauro_workbench.exceptions import ConfigurationError, SpecError
from tauro_workbench.schema import FeatureGroupSchema, FeatureSchema
from tauro_workbench.specs import (
    GroupSpec,
    SourceSpec,
    ViewSpec,
    VirtualSpec,
    load_config,
    load_definitions,
    load_yaml,
    parse,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "repo"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, model: type = GroupSpec) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(load_yaml(path), model)
    return info.value


@pytest.mark.parametrize(
    "schema",
    [
        FeatureGroupSchema(
            name="users",
            version=3,
            entity_keys=["user_id", "country"],
            timestamp_key="ts",
            created_timestamp_key="created",
            description="d",
            owner="me",
            ttl=timedelta(days=7),
            tags={"team": "risk"},
            entity_key_types={"user_id": "BIGINT"},
            features=[
                FeatureSchema("age", "INT", "NUMERICAL", "years", False, {"min": 0, "max": 150}),
                FeatureSchema("price", "DECIMAL(12,2)"),
                FeatureSchema("tags", "ARRAY<STRING>"),
            ],
        ),
        FeatureGroupSchema(name="totals", entity_keys=["k"], features=[FeatureSchema("n", "BIGINT")]),
    ],
)
def test_group_yaml_is_the_schema_dict_both_ways(schema: FeatureGroupSchema, tmp_path: Path) -> None:
    assert GroupSpec.model_validate(schema.to_dict()).to_schema() == schema
    assert GroupSpec.from_schema(schema).to_schema() == schema
    file = write(tmp_path / "g.yaml", schema.to_yaml())
    assert parse(load_yaml(file), GroupSpec).to_schema() == schema


def test_short_ttl_and_string_entity_key(tmp_path: Path) -> None:
    file = write(tmp_path / "g.yaml", "name: g\nentity_keys: user_id\nttl: 7d\nfeatures: []\n")
    schema = parse(load_yaml(file), GroupSpec).to_schema()
    assert schema.entity_keys == ["user_id"] and schema.ttl == timedelta(days=7)


def test_bad_type_names_file_line_and_key(tmp_path: Path) -> None:
    file = write(
        tmp_path / "g.yaml",
        "name: g\nentity_keys: [k]\nfeatures:\n  - name: a\n    data_type: INT\n  - name: b\n    data_type: FLOT\n",
    )
    err = error_of(file)
    assert (err.file, err.line, err.key) == (str(file), 7, "features[1].data_type")
    assert str(err).startswith(f"{file}:7: features[1].data_type: invalid data type 'FLOT'")


def test_unknown_and_missing_keys(tmp_path: Path) -> None:
    err = error_of(write(tmp_path / "a.yaml", "name: g\nentity_keys: [k]\nfeaturs: []\n"))
    assert (err.line, err.key, err.problem) == (3, "featurs", "unknown key")
    err = error_of(write(tmp_path / "b.yaml", "name: g\nfeatures:\n  - name: a\n"))
    assert err.key == "entity_keys" and err.problem.startswith("required key is missing")
    assert "and 1 more problem" in str(err)  # data_type of features[0] is missing too


def test_schema_rules_are_reported_at_the_group(tmp_path: Path) -> None:
    file = write(tmp_path / "g.yaml", "name: g\nentity_keys: [k]\nfeatures:\n  - {name: k, data_type: INT}\n")
    err = error_of(file)
    assert err.line == 1 and "column 'k' is declared twice" in str(err)


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        (b"name: caf\xe9\n", 1, "is not UTF-8 text (byte 0xe9 at offset 9)"),
        (b"a: 1\nb: [1, 2\n", 3, "is not valid YAML"),
        (b"a: 1\n  b: 2\n", 2, "is not valid YAML: mapping values are not allowed here"),
        (b"name: a\nname: b\n", 2, "key 'name' appears twice"),
    ],
)
def test_unreadable_yaml(tmp_path: Path, content: bytes, line: int, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        load_yaml(write(tmp_path / "x.yaml", content))
    assert info.value.line == line and needle in str(info.value)
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, ValueError)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a folder"):
        load_yaml(tmp_path)
    with pytest.raises(SpecError, match="is not a folder"):
        load_definitions(tmp_path / "nope")
    with pytest.raises(SpecError, match="declares nothing"):
        load_definitions(tmp_path)


def test_sources_virtual_and_views_shapes(tmp_path: Path) -> None:
    spec = SourceSpec(name="silver.users", location="../silver/users.parquet")
    assert spec.resolved(tmp_path / "repo").location == str((tmp_path / "silver" / "users.parquet").resolve())
    assert SourceSpec(name="s", location="/abs/x.parquet").resolved(tmp_path).location == "/abs/x.parquet"
    assert VirtualSpec(group="g", sql="SELECT 1").as_queries() == {"*": "SELECT 1"}
    assert VirtualSpec(group="g", queries={"a": "SELECT 1"}).as_queries() == {"a": "SELECT 1"}
    file = write(tmp_path / "v.yaml", "group: g\nsql: SELECT 1\nqueries: {a: SELECT 1}\n")
    assert "exactly one of 'sql'" in str(error_of(file, VirtualSpec))
    file = write(tmp_path / "w.yaml", "name: v\nfeatures: []\n")
    err = error_of(file, ViewSpec)
    assert (err.line, err.key) == (2, "features")


def test_sample_definitions_load(tmp_path: Path) -> None:
    found = load_definitions(SAMPLE)
    assert [s.spec.name for s in found.sources] == ["silver.users", "silver.purchases", "silver.transactions"]
    assert all(Path(s.spec.location).is_file() for s in found.sources)
    assert sorted(g.spec.name for g in found.groups) == [
        "user_features",
        "user_purchases_daily",
        "user_txn_daily",
    ]
    assert [v.spec.group for v in found.virtual] == ["user_purchases_daily"]
    assert [v.spec.name for v in found.views] == ["fraud_model"]
    assert found.groups[0].line == 2  # after the comment line


def test_duplicates_across_files_and_lists(tmp_path: Path) -> None:
    write(tmp_path / "groups" / "a.yaml", "- {name: g, entity_keys: [k]}\n- {name: h, entity_keys: [k]}\n")
    write(tmp_path / "groups" / "b.yaml", "name: g\nentity_keys: [k]\n")
    with pytest.raises(SpecError) as info:
        load_definitions(tmp_path)
    assert info.value.file.endswith("b.yaml") and "group 'g' is declared twice" in str(info.value)
    assert "a.yaml:1" in str(info.value)
    write(tmp_path / "groups" / "b.yaml", "name: g2\nentity_keys: [k]\nbad: 1\n")
    with pytest.raises(SpecError) as info:
        load_definitions(tmp_path)
    assert info.value.line == 3 and info.value.key == "bad"
    write(tmp_path / "groups" / "b.yaml", "- 3\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_definitions(tmp_path)


def test_config_errors_point_at_the_option(tmp_path: Path) -> None:
    file = write(tmp_path / "tauro.yaml", "mode: hybrid\nonline_store:\n  type: redis\n  batch_size: 0\n")
    with pytest.raises(SpecError) as info:
        load_config(file)
    assert (info.value.line, info.value.key) == (4, "online_store.batch_size")
    file = write(tmp_path / "global.yaml", "feature_store:\n  mode: hybrid\n  storage_pth: x\n")
    with pytest.raises(SpecError) as info:
        load_config(file)
    assert info.value.line == 3 and "unknown option" in str(info.value)
    ok = write(tmp_path / "ok.yaml", "mode: hybrid\nenable_online_store: true\n")
    assert load_config(ok).enable_online_store is True


def test_source_and_config_shapes_equal_the_python_objects(tmp_path: Path) -> None:
    from tauro_workbench.config import FeatureStoreConfig
    from tauro_workbench.sources import SourceRegistry

    source = SourceRegistry().add(
        "silver.users", SAMPLE.parent / "silver" / "users.parquet", format="parquet"
    )
    spec = SourceSpec.model_validate({"name": source.name, **source.to_document()})
    assert (spec.name, spec.location, spec.format, spec.options) == (
        source.name,
        source.location,
        source.format,
        source.options,
    )
    config = FeatureStoreConfig(
        mode="hybrid", enable_online_store=True, online_store={"type": "redis", "url": "redis://x"}
    )
    file = write(tmp_path / "tauro.yaml", yaml.safe_dump(config.model_dump(mode="json")))
    assert load_config(file) == config
