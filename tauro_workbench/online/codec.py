"""Encoding of online rows: entity keys and typed feature values, without pickle.

**Entity keys** are typed and escaped text, so ``1`` and ``"1"`` are different entities and a
composite key can never collide with another one::

    1            -> "i1"            integers (INT, BIGINT)
    "a|b"        -> "sa\\|b"        strings: "\\" and "|" escaped
    date(2024,1,2) -> "d2024-01-02"   dates
    (7, "x")     -> "i7|sx"         composite keys: parts joined by "|"

**Values** are one text per entity: a 36-character order prefix, then the features as a
positional JSON array in schema order::

    <event time: 18 digits><created time: 18 digits>[850,"abc",0.5,null,...]

The prefix holds microseconds since 0001-01-01 UTC, zero-padded, so comparing two prefixes as
strings compares ``(event time, created time)`` — which is what the Redis Lua script does to
keep an older write from overwriting a newer one. Groups without an event time use zeros
(so the last write wins). Feature values are typed by the schema on the wire:

=================  =======================================  ==================================
DataType           wire (JSON)                               decoded as
=================  =======================================  ==================================
INT, BIGINT        number                                    int
FLOAT, DOUBLE      number; ``NaN``/``Infinity``              float (FLOAT rounded to float32)
DECIMAL            string ``"12.30"``                        decimal.Decimal
STRING, BOOLEAN    string, true/false                        str, bool
DATE               days since 1970-01-01                     datetime.date
TIMESTAMP          microseconds since the epoch (UTC)        datetime (UTC)
ARRAY, MAP, STRUCT JSON array / array of {key,value} / obj   list / list of dicts / dict
=================  =======================================  ==================================

Floats nested in ARRAY/MAP/STRUCT travel as JSON numbers, or, in a write holding NaN or an
infinity there, as text (``"NaN"``) since JSON numbers cannot express them.

Decoded values equal what ``pl.DataFrame.to_dicts()`` gives for the same row offline (a MAP is
a list of ``{"key", "value"}`` dicts, as Polars represents it).

Encoding runs vectorized in Polars (a million rows in well under a second); decoding is one
``json.loads`` plus per-type converters only where a type needs one.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from tauro_workbench.dtypes import DataType, TypeSpec
from tauro_workbench.exceptions import SchemaValidationError
from tauro_workbench.schema import FeatureGroupSchema

__all__ = [
    "ORDER_WIDTH",
    "ValueCodec",
    "encode_entity",
    "entity_key_expr",
    "latest_per_entity",
    "order_prefix_expr",
]

#: Microseconds from 0001-01-01 to 1970-01-01: makes every representable time non-negative.
_OFFSET_US = 62_135_596_800_000_000
_DIGITS = 18
#: Length of the order prefix (event time + created time) of every encoded value.
ORDER_WIDTH = 2 * _DIGITS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_F32 = struct.Struct("<f")
#: Microseconds since the epoch of Python's ``datetime.min`` / ``datetime.max`` (UTC).
_PY_MIN_US = -62_135_596_800_000_000
_PY_MAX_US = 253_402_300_799_999_999

Decoder = Callable[[Any], Any]


# -- entity keys ------------------------------------------------------------------------------
def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _encode_part(value: Any, column: str) -> str:
    kind = type(value)
    if kind is int:
        return f"i{value}"
    if kind is str:
        return "s" + _escape(value) if ("|" in value or "\\" in value) else "s" + value
    if kind is date:
        return f"d{value.isoformat()}"
    if not isinstance(value, bool | datetime | float) and value is not None:
        if hasattr(value, "__index__"):  # numpy and other integer types
            return f"i{int(value)}"
        if isinstance(value, str):
            return "s" + _escape(str(value))
        if isinstance(value, date):
            return f"d{value.isoformat()}"
    raise SchemaValidationError(
        f"entity key {column!r} has value {value!r} of type {kind.__name__}; "
        "entity keys are integers, strings or dates"
    )


def encode_entity(values: Sequence[Any], columns: Sequence[str]) -> str:
    """Return the typed, escaped key text of one entity (``values`` in ``columns`` order).

    Raises:
        SchemaValidationError: If a value is not an integer, string or date.

    Example:
        >>> encode_entity([7, "a|b"], ["shop_id", "sku"])
        'i7|sa\\\\|b'
    """
    if len(values) == 1:
        return _encode_part(values[0], columns[0])
    return "|".join(_encode_part(v, c) for v, c in zip(values, columns, strict=True))


def entity_key_expr(schema: Mapping[str, pl.DataType], columns: Sequence[str]) -> pl.Expr:
    """Return an expression building the :func:`encode_entity` text of every row.

    Raises:
        SchemaValidationError: If a key column is not of an integer, string or date type.
    """
    parts: list[pl.Expr] = []
    for column in columns:
        dtype = schema[column]
        expr = pl.col(column)
        if dtype.is_integer():
            parts.append(pl.concat_str(pl.lit("i"), expr.cast(pl.String)))
        elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
            text = expr.cast(pl.String).str.replace_all("\\", "\\\\", literal=True)
            parts.append(pl.concat_str(pl.lit("s"), text.str.replace_all("|", "\\|", literal=True)))
        elif dtype == pl.Date:
            parts.append(pl.concat_str(pl.lit("d"), expr.dt.strftime("%Y-%m-%d")))
        else:
            raise SchemaValidationError(
                f"entity key {column!r} has type {dtype}; online keys are integers, strings or dates"
            )
    return parts[0] if len(parts) == 1 else pl.concat_str(parts, separator="|")


# -- rows -------------------------------------------------------------------------------------
def latest_per_entity(schema: FeatureGroupSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """Keep the latest row of each entity: greatest event time, then created time, then position.

    Groups without an event time keep each entity's last row (the last write wins).
    """
    order = schema.time_columns
    if order:
        frame = frame.sort(order, nulls_last=False, maintain_order=True)
    return frame.unique(subset=schema.entity_keys, keep="last", maintain_order=False)


def _micros_text(column: str | None) -> pl.Expr:
    if column is None:
        return pl.lit("0" * _DIGITS)
    micros = pl.col(column).dt.epoch("us") + _OFFSET_US
    return micros.cast(pl.String).str.zfill(_DIGITS).fill_null("0" * _DIGITS)


def order_prefix_expr(schema: FeatureGroupSchema) -> pl.Expr:
    """Return the 36-character ``event time + created time`` prefix of every row."""
    return pl.concat_str(_micros_text(schema.timestamp_key), _micros_text(schema.created_timestamp_key))


def event_micros(prefix: bytes | str) -> int:
    """Return the event time (microseconds since the epoch) of an encoded value's prefix."""
    return int(prefix[:_DIGITS]) - _OFFSET_US


# -- values -----------------------------------------------------------------------------------
def _has_float(spec: TypeSpec) -> bool:
    if spec.base in (DataType.FLOAT, DataType.DOUBLE):
        return True
    children = [spec.element, spec.key, spec.value, *(s for _, s in spec.fields)]
    return any(c is not None and _has_float(c) for c in children)


def _wire_dtype(spec: TypeSpec, *, floats_as_text: bool) -> pl.DataType:
    """Polars type whose JSON encoding is the wire form of ``spec``."""
    base = spec.base
    if base in (DataType.FLOAT, DataType.DOUBLE):
        return pl.String() if floats_as_text else spec.to_polars()
    if base is DataType.DATE:
        return pl.Int32()
    if base is DataType.TIMESTAMP:
        return pl.Int64()
    if base is DataType.DECIMAL:
        return pl.String()
    if base is DataType.ARRAY:
        assert spec.element is not None
        return pl.List(_wire_dtype(spec.element, floats_as_text=floats_as_text))
    if base is DataType.MAP:
        assert spec.key is not None and spec.value is not None
        return pl.List(
            pl.Struct(
                {
                    "key": _wire_dtype(spec.key, floats_as_text=floats_as_text),
                    "value": _wire_dtype(spec.value, floats_as_text=floats_as_text),
                }
            )
        )
    if base is DataType.STRUCT:
        return pl.Struct({n: _wire_dtype(s, floats_as_text=floats_as_text) for n, s in spec.fields})
    return spec.to_polars()


def _all_finite(series: pl.Series) -> bool:
    """True when no float inside ``series`` (at any nesting depth) is NaN or infinite."""
    dtype = series.dtype
    if dtype.is_float():
        return bool(series.drop_nulls().is_finite().all())
    if isinstance(dtype, pl.List):
        return _all_finite(series.explode())
    if isinstance(dtype, pl.Struct):
        return all(_all_finite(series.struct.field(f.name)) for f in dtype.fields)
    return True


def _json_fragment(expr: pl.Expr) -> pl.Expr:
    # json_encode escapes strings and nests lists/structs; strip the one-field wrapper.
    wrapped = pl.struct(expr.alias("v")).struct.json_encode()
    return wrapped.str.strip_prefix('{"v":').str.strip_suffix("}")


def _float_fragment(expr: pl.Expr) -> pl.Expr:
    # Polars prints NaN/inf/-inf; Python's json reads NaN/Infinity/-Infinity.
    return expr.cast(pl.String).str.replace("inf", "Infinity", literal=True)


def _decoder(spec: TypeSpec) -> Decoder | None:
    """Return the converter from the JSON value to the Python value (None: identity)."""
    base = spec.base
    if base is DataType.FLOAT:
        return lambda v: None if v is None else _F32.unpack(_F32.pack(float(v)))[0]
    if base is DataType.DOUBLE:
        return lambda v: v if v is None or type(v) is float else float(v)
    if base is DataType.DECIMAL:
        return lambda v: None if v is None else Decimal(v)
    if base is DataType.DATE:
        return lambda v: None if v is None else date.fromordinal(v + _EPOCH_ORDINAL)
    if base is DataType.TIMESTAMP:
        return lambda v: None if v is None else _EPOCH + timedelta(microseconds=v)
    if base is DataType.ARRAY:
        assert spec.element is not None
        inner = _decoder(spec.element)
        if inner is None:
            return None
        return lambda v: None if v is None else [inner(x) for x in v]
    if base is DataType.MAP:
        assert spec.key is not None and spec.value is not None
        dk = _decoder(spec.key) or _identity
        dv = _decoder(spec.value) or _identity
        return lambda v: None if v is None else [{"key": dk(p["key"]), "value": dv(p["value"])} for p in v]
    if base is DataType.STRUCT:
        fields = [(name, _decoder(s) or _identity) for name, s in spec.fields]
        return lambda v: None if v is None else {n: d(v[n]) for n, d in fields}
    return None


def _identity(value: Any) -> Any:
    return value


_JSON_TYPES: dict[DataType, tuple[type, ...]] = {
    DataType.INT: (int,),
    DataType.BIGINT: (int,),
    DataType.DOUBLE: (float, int),
    DataType.STRING: (str,),
    DataType.BOOLEAN: (bool,),
}

#: Flat types whose JSON values Polars reads directly, then casts to the feature type.
_WIRE_COLUMN: dict[DataType, pl.DataType] = {
    DataType.INT: pl.Int32(),
    DataType.BIGINT: pl.Int64(),
    DataType.FLOAT: pl.Float64(),
    DataType.DOUBLE: pl.Float64(),
    DataType.DECIMAL: pl.String(),
    DataType.STRING: pl.String(),
    DataType.BOOLEAN: pl.Boolean(),
    DataType.DATE: pl.Int32(),
    DataType.TIMESTAMP: pl.Int64(),
}


class ValueCodec:
    """Encodes a group's rows to value texts and decodes them back, typed by its schema.

    Args:
        schema: The feature group; features are encoded positionally in schema order.
    """

    def __init__(self, schema: FeatureGroupSchema) -> None:
        self.schema = schema
        self.positions = {name: i for i, name in enumerate(schema.feature_names)}
        # name -> (position, wire dtype or None for nested types, feature dtype, decoder)
        self._columns = {
            f.name: (i, _WIRE_COLUMN.get(f.spec.base), f.polars_dtype, _decoder(f.spec) or _identity)
            for i, f in enumerate(schema.features)
        }
        # Flat DOUBLEs arrive as JSON floats already; nested ones may arrive as text ("NaN").
        self.decoders = {
            f.name: None if f.spec.base is DataType.DOUBLE else _decoder(f.spec) for f in schema.features
        }
        # JSON types of the flat features passed through as they are (checked: corrupt values)
        self._json_types = {f.name: _JSON_TYPES.get(f.spec.base) for f in schema.features}

    # -- encoding -------------------------------------------------------------------------
    def value_expr(self, frame: pl.DataFrame) -> pl.Expr:
        """Return the expression of every row's value text (order prefix + JSON array)."""
        fragments: list[pl.Expr] = []
        for feature in self.schema.features:
            spec, expr = feature.spec, pl.col(feature.name)
            if spec.base in (DataType.FLOAT, DataType.DOUBLE):
                has_infinity = bool(frame.get_column(feature.name).is_infinite().any())
                fragment = _float_fragment(expr) if has_infinity else expr.cast(pl.String)
            elif spec.base in (DataType.INT, DataType.BIGINT, DataType.BOOLEAN):
                fragment = expr.cast(pl.String)
            elif spec.base is DataType.DATE:
                fragment = expr.cast(pl.Int32).cast(pl.String)
            elif spec.base is DataType.TIMESTAMP:
                fragment = expr.dt.epoch("us").cast(pl.String)
            elif spec.base is DataType.DECIMAL:
                fragment = pl.concat_str(pl.lit('"'), expr.cast(pl.String), pl.lit('"'))
            elif spec.base is DataType.STRING:
                fragment = _json_fragment(expr)
            else:
                # NaN inside nested floats would become null in JSON: send those floats as text.
                as_text = _has_float(spec) and not _all_finite(frame.get_column(feature.name))
                fragment = _json_fragment(expr.cast(_wire_dtype(spec, floats_as_text=as_text)))
            fragments.append(fragment.fill_null("null"))
        body = pl.concat_str(fragments, separator=",") if fragments else pl.lit("")
        return pl.concat_str(order_prefix_expr(self.schema), pl.lit("["), body, pl.lit("]"))

    @property
    def expires(self) -> bool:
        """True when rows expire: the group has a ttl and an event time."""
        return self.schema.ttl is not None and self.schema.timestamp_key is not None

    def expire_at_expr(self) -> pl.Expr:
        """Return when each row expires, in epoch milliseconds as text.

        Raises:
            ValueError: If rows of the group never expire (see :attr:`expires`).
        """
        ttl = self.schema.ttl
        if ttl is None or self.schema.timestamp_key is None:
            raise ValueError(
                f"feature group {self.schema.name!r} has no ttl and event time: rows never expire"
            )
        ttl_us = int(ttl.total_seconds() * 1_000_000)
        # Round up (never expire early); PXAT needs a positive time, 1 means "already expired".
        millis = (pl.col(self.schema.timestamp_key).dt.epoch("us") + ttl_us) // 1000 + 1
        return millis.clip(lower_bound=1).cast(pl.String)

    # -- decoding -------------------------------------------------------------------------
    def decode_columns(
        self,
        raws: Sequence[bytes | None],
        features: Sequence[str],
        *,
        on_bad: Callable[[int, Exception], None] | None = None,
    ) -> list[pl.Series]:
        """Decode many encoded values (None: no row) into one typed Series per feature.

        One ``json.loads`` for all rows; flat types are built from their JSON values and cast
        by Polars, so no Python object is made per value.

        Args:
            raws: Encoded values, None where an entity has no row.
            features: Features to return, in order.
            on_bad: Called with the position and the error of each value that cannot be
                decoded (corrupt, or a time Python cannot hold); that entity then reads as null.
                Without it such a value raises.
        """
        try:
            return self._decode_fast(raws, features, on_bad=on_bad)
        except (ValueError, TypeError, OverflowError, IndexError, KeyError, pl.exceptions.PolarsError):
            if on_bad is None:
                raise
        return self._decode_rows(raws, features, on_bad)

    def _decode_fast(
        self,
        raws: Sequence[bytes | None],
        features: Sequence[str],
        *,
        on_bad: Callable[[int, Exception], None] | None,
    ) -> list[pl.Series]:
        body = b",".join(b"null" if raw is None else raw[ORDER_WIDTH:] for raw in raws)
        empty = [None] * len(self.positions)
        rows = [row if row is not None else empty for row in json.loads(b"[" + body + b"]")]
        transposed = list(zip(*rows, strict=True)) if rows else [()] * len(self.positions)
        columns = []
        for name in features:
            position, wire, dtype, decoder = self._columns[name]
            values = transposed[position]
            if wire is None:
                columns.append(pl.Series(name, [decoder(v) for v in values], dtype=dtype))
            elif wire == dtype:
                columns.append(pl.Series(name, values, dtype=dtype))
            else:
                series = pl.Series(name, values, dtype=wire)
                if wire == pl.Int64 and isinstance(dtype, pl.Datetime):
                    outside = (series < _PY_MIN_US) | (series > _PY_MAX_US)
                    if outside.any():
                        if on_bad is None:
                            raise OverflowError(f"{name}: timestamps past what Python's datetime holds")
                        raise ValueError(name)  # the per-row path names each bad entity
                columns.append(series.cast(dtype))
        return columns

    def _decode_rows(
        self, raws: Sequence[bytes | None], features: Sequence[str], on_bad: Callable[[int, Exception], None]
    ) -> list[pl.Series]:
        """Decode value by value; an undecodable value makes its whole entity null."""
        rows: list[tuple[Any, ...] | None] = []
        bad: set[int] = set()
        for i, raw in enumerate(raws):
            if raw is None:
                rows.append(None)
                continue
            try:
                rows.append(self.decode(raw, features))
            except (ValueError, TypeError, OverflowError, IndexError, KeyError) as err:
                on_bad(i, err)
                bad.add(i)
                rows.append(None)
        for j, name in enumerate(features):  # values of the wrong JSON type for the feature
            dtype = self._columns[name][2]
            for i, row in enumerate(rows):
                if row is None or row[j] is None:
                    continue
                try:
                    pl.Series(name, [row[j]], dtype=dtype)
                except (ValueError, TypeError, OverflowError, pl.exceptions.PolarsError) as err:
                    on_bad(i, err)
                    bad.add(i)
                    rows[i] = None
        empty = (None,) * len(features)
        values = [empty if row is None else row for row in rows]
        return [
            pl.Series(name, [v[j] for v in values], dtype=self._columns[name][2])
            for j, name in enumerate(features)
        ]

    def decode(self, raw: bytes | str, features: Sequence[str]) -> tuple[Any, ...]:
        """Return the values of ``features`` from one encoded value.

        Raises:
            ValueError: If the value is not what :meth:`value_expr` writes (corrupt).
            OverflowError: If a time does not fit Python's ``datetime``.
        """
        values = json.loads(raw[ORDER_WIDTH:])
        if not isinstance(values, list) or len(values) != len(self.positions):
            raise ValueError(f"expected a JSON array of {len(self.positions)} values, got {values!r:.80}")
        out = []
        for name in features:
            value = values[self.positions[name]]
            decoder = self.decoders[name]
            if decoder is not None:
                value = decoder(value)
            elif value is not None:
                types = self._json_types[name]
                if types is not None and type(value) not in types:
                    raise TypeError(
                        f"feature {name!r} holds {value!r:.40}, not a {self.schema.get_feature(name).spec} value"
                    )
            out.append(value)
        return tuple(out)
