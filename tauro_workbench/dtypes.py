"""Data types of features and their exact mapping to Polars and Arrow.

A feature's type is a :class:`TypeSpec`: a :class:`DataType` plus its parameters (decimal
precision and scale, array element type, map key and value types, struct fields). Specs are
written as strings in YAML and JSON::

    DOUBLE   DECIMAL(12,2)   ARRAY<DOUBLE>   MAP<STRING,BIGINT>   STRUCT<city:STRING,zip:INT>

=============  ==========================  ===========================
DataType       Polars                      Arrow
=============  ==========================  ===========================
INT            Int32                       int32
BIGINT         Int64                       int64
FLOAT          Float32                     float32
DOUBLE         Float64                     float64
DECIMAL(p,s)   Decimal(p, s)               decimal128(p, s)
STRING         String                      large_string
BOOLEAN        Boolean                     bool
TIMESTAMP      Datetime("us", "UTC")       timestamp("us", tz="UTC")
DATE           Date                        date32
ARRAY<T>       List(T)                     large_list(T)
MAP<K,V>       List(Struct{key, value})    map_(K, V)
STRUCT<...>    Struct(...)                 struct(...)
=============  ==========================  ===========================

Bare ``DECIMAL`` means ``DECIMAL(38,9)``; bare ``ARRAY`` means ``ARRAY<DOUBLE>``; bare ``MAP``
means ``MAP<STRING,STRING>``. A Polars ``Map(K, V)`` column is accepted as ``MAP<K,V>``. Timestamps are always microseconds in UTC, so Spark, DuckDB and
Polars read the same tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import polars as pl

from tauro_workbench.exceptions import SchemaValidationError

if TYPE_CHECKING:
    import pyarrow as pa
    from polars.datatypes import DataTypeClass

__all__ = ["DataType", "TypeSpec", "can_cast_losslessly"]

DEFAULT_DECIMAL = (38, 9)


class DataType(str, Enum):  # noqa: UP042 - str() and format() keep the Enum behaviour
    """The storage type of a feature (case-insensitive when given as a string)."""

    INT = "INT"
    BIGINT = "BIGINT"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    DECIMAL = "DECIMAL"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    ARRAY = "ARRAY"
    MAP = "MAP"
    STRUCT = "STRUCT"

    @classmethod
    def _missing_(cls, value: object) -> DataType | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


_SIMPLE_POLARS: dict[DataType, pl.DataType] = {
    DataType.INT: pl.Int32(),
    DataType.BIGINT: pl.Int64(),
    DataType.FLOAT: pl.Float32(),
    DataType.DOUBLE: pl.Float64(),
    DataType.STRING: pl.String(),
    DataType.BOOLEAN: pl.Boolean(),
    DataType.TIMESTAMP: pl.Datetime("us", "UTC"),
    DataType.DATE: pl.Date(),
}


def _simple_arrow(base: DataType) -> pa.DataType | None:
    # pyarrow is imported here, not at module level, to keep ``import tauro_workbench`` fast
    import pyarrow as pa

    simple = {
        DataType.INT: pa.int32(),
        DataType.BIGINT: pa.int64(),
        DataType.FLOAT: pa.float32(),
        DataType.DOUBLE: pa.float64(),
        DataType.STRING: pa.large_string(),
        DataType.BOOLEAN: pa.bool_(),
        DataType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        DataType.DATE: pa.date32(),
    }
    return simple.get(base)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TypeSpec:
    """A data type with its parameters; build one with :meth:`parse` or :meth:`of`."""

    base: DataType
    precision: int | None = None
    scale: int | None = None
    element: TypeSpec | None = None
    key: TypeSpec | None = None
    value: TypeSpec | None = None
    fields: tuple[tuple[str, TypeSpec], ...] = ()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def of(cls, value: TypeSpec | DataType | str) -> TypeSpec:
        """Return ``value`` as a spec: a spec, a :class:`DataType`, or a type string."""
        if isinstance(value, TypeSpec):
            return value
        if isinstance(value, DataType):
            return cls._with_defaults(value)
        if isinstance(value, str):
            return cls.parse(value)
        raise SchemaValidationError(
            f"data type must be a DataType or a type string such as 'DOUBLE', got {value!r}"
        )

    @classmethod
    def _with_defaults(cls, base: DataType) -> TypeSpec:
        if base is DataType.DECIMAL:
            return cls(base, precision=DEFAULT_DECIMAL[0], scale=DEFAULT_DECIMAL[1])
        if base is DataType.ARRAY:
            return cls(base, element=cls(DataType.DOUBLE))
        if base is DataType.MAP:
            return cls(base, key=cls(DataType.STRING), value=cls(DataType.STRING))
        if base is DataType.STRUCT:
            raise SchemaValidationError("STRUCT needs its fields, e.g. 'STRUCT<city:STRING,zip:INT>'")
        return cls(base)

    @classmethod
    def parse(cls, text: str) -> TypeSpec:
        """Parse a type string such as ``DECIMAL(12,2)`` or ``ARRAY<STRUCT<a:INT>>``."""
        parser = _Parser(text)
        spec = parser.type()
        parser.end()
        return spec

    @classmethod
    def from_polars(cls, dtype: pl.DataType | DataTypeClass) -> TypeSpec:
        """Return the spec that maps to the Polars ``dtype`` (widening small integer types)."""
        dtype = _instance(dtype)
        if isinstance(dtype, pl.Decimal):
            return cls(DataType.DECIMAL, precision=dtype.precision, scale=dtype.scale)
        if isinstance(dtype, pl.Map):
            return cls(DataType.MAP, key=cls.from_polars(dtype.key), value=cls.from_polars(dtype.value))
        if isinstance(dtype, pl.List | pl.Array):
            inner = dtype.inner
            if isinstance(inner, pl.Struct) and [f.name for f in inner.fields] == ["key", "value"]:
                return cls(
                    DataType.MAP,
                    key=cls.from_polars(inner.fields[0].dtype),
                    value=cls.from_polars(inner.fields[1].dtype),
                )
            return cls(DataType.ARRAY, element=cls.from_polars(inner))
        if isinstance(dtype, pl.Struct):
            return cls(
                DataType.STRUCT, fields=tuple((f.name, cls.from_polars(f.dtype)) for f in dtype.fields)
            )
        if isinstance(dtype, pl.Datetime):
            return cls(DataType.TIMESTAMP)
        if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16):
            return cls(DataType.INT)
        if dtype in (pl.Int64, pl.UInt32, pl.UInt64):
            return cls(DataType.BIGINT)
        if dtype in (pl.String, pl.Categorical, pl.Enum):
            return cls(DataType.STRING)
        for base, mapped in _SIMPLE_POLARS.items():
            if dtype == mapped:
                return cls(base)
        raise SchemaValidationError(f"Polars type {dtype} has no feature data type")

    @classmethod
    def from_arrow(cls, dtype: pa.DataType) -> TypeSpec:
        """Return the spec that maps to the Arrow ``dtype`` (through its Polars equivalent)."""
        import pyarrow as pa

        try:
            polars_dtype = pl.from_arrow(pa.array([], type=dtype)).dtype  # type: ignore[union-attr]
        except (pa.ArrowException, pl.exceptions.PolarsError, TypeError, ValueError) as err:
            raise SchemaValidationError(f"Arrow type {dtype} has no feature data type") from err
        return cls.from_polars(polars_dtype)

    # -- rendering ------------------------------------------------------------------------
    def __str__(self) -> str:
        if self.base is DataType.DECIMAL:
            return f"DECIMAL({self.precision},{self.scale})"
        if self.base is DataType.ARRAY:
            return f"ARRAY<{self.element}>"
        if self.base is DataType.MAP:
            return f"MAP<{self.key},{self.value}>"
        if self.base is DataType.STRUCT:
            return "STRUCT<" + ",".join(f"{n}:{t}" for n, t in self.fields) + ">"
        return self.base.value

    def to_polars(self) -> pl.DataType:
        """Return the Polars type this spec maps to."""
        if self.base in _SIMPLE_POLARS:
            return _SIMPLE_POLARS[self.base]
        if self.base is DataType.DECIMAL:
            assert self.precision is not None and self.scale is not None
            return pl.Decimal(self.precision, self.scale)
        if self.base is DataType.ARRAY:
            assert self.element is not None
            return pl.List(self.element.to_polars())
        if self.base is DataType.MAP:
            assert self.key is not None and self.value is not None
            return pl.List(pl.Struct({"key": self.key.to_polars(), "value": self.value.to_polars()}))
        return pl.Struct({name: spec.to_polars() for name, spec in self.fields})

    def to_arrow(self) -> pa.DataType:
        """Return the Arrow type this spec maps to."""
        import pyarrow as pa

        simple = _simple_arrow(self.base)
        if simple is not None:
            return simple
        if self.base is DataType.DECIMAL:
            assert self.precision is not None and self.scale is not None
            return pa.decimal128(self.precision, self.scale)
        if self.base is DataType.ARRAY:
            assert self.element is not None
            return pa.large_list(self.element.to_arrow())
        if self.base is DataType.MAP:
            assert self.key is not None and self.value is not None
            return pa.map_(self.key.to_arrow(), self.value.to_arrow())
        return pa.struct([pa.field(name, spec.to_arrow()) for name, spec in self.fields])

    @property
    def is_numeric(self) -> bool:
        """True for INT, BIGINT, FLOAT, DOUBLE and DECIMAL."""
        return self.base in _NUMERIC


_NUMERIC = {DataType.INT, DataType.BIGINT, DataType.FLOAT, DataType.DOUBLE, DataType.DECIMAL}
_INT_RANGES = {
    pl.Int8: (-(2**7), 2**7 - 1),
    pl.Int16: (-(2**15), 2**15 - 1),
    pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1),
    pl.UInt8: (0, 2**8 - 1),
    pl.UInt16: (0, 2**16 - 1),
    pl.UInt32: (0, 2**32 - 1),
    pl.UInt64: (0, 2**64 - 1),
}
_EXACT_FLOAT_BITS = {DataType.FLOAT: 24, DataType.DOUBLE: 53}


def _instance(dtype: pl.DataType | DataTypeClass) -> pl.DataType:
    # Polars hands out nested types as classes or instances; parameterless classes are equal
    return dtype() if isinstance(dtype, type) else dtype


def can_cast_losslessly(source: pl.DataType | DataTypeClass, target: TypeSpec) -> bool:
    """Return True when every value of Polars type ``source`` fits ``target`` exactly.

    Allowed: the exact type; narrower integers to wider ones; integers to FLOAT or DOUBLE when
    every value of the source type is exactly representable (up to 16 bits to FLOAT, 32 bits
    to DOUBLE); FLOAT to DOUBLE; integers to DECIMAL with enough integer digits; DECIMAL to a
    DECIMAL with at least as many integer and fraction digits; any Datetime (any unit or time
    zone; naive means UTC; units finer than microseconds are truncated) to TIMESTAMP; Date to TIMESTAMP (midnight UTC); Categorical and Enum
    to STRING; the all-null type to anything; element-wise for ARRAY, MAP (from a list of
    key/value structs or a Polars Map) and STRUCT.
    """
    source = _instance(source)
    if source == pl.Null:
        return True
    base = target.base
    if base in _SIMPLE_POLARS and source == _SIMPLE_POLARS[base] and base is not DataType.TIMESTAMP:
        return True
    if base is DataType.TIMESTAMP:
        return isinstance(source, pl.Datetime) or source == pl.Date
    if base is DataType.STRING:
        return source in (pl.String, pl.Categorical) or isinstance(source, pl.Enum | pl.Categorical)
    int_range = _int_range(source)
    if int_range is not None:
        low, high = int_range
        if base in (DataType.INT, DataType.BIGINT):
            tlow, thigh = _INT_RANGES[pl.Int32 if base is DataType.INT else pl.Int64]
            return tlow <= low and high <= thigh
        if base in _EXACT_FLOAT_BITS:
            return max(abs(low), high) <= 2 ** _EXACT_FLOAT_BITS[base]
        if base is DataType.DECIMAL:
            assert target.precision is not None and target.scale is not None
            return len(str(max(abs(low), high))) <= target.precision - target.scale
        return False
    if base is DataType.DOUBLE:
        return source in (pl.Float32, pl.Float64)
    if base is DataType.DECIMAL and isinstance(source, pl.Decimal):
        assert target.precision is not None and target.scale is not None
        src_scale = source.scale or 0
        src_int = (source.precision or 38) - src_scale
        return src_scale <= target.scale and src_int <= target.precision - target.scale
    if base is DataType.ARRAY and isinstance(source, pl.List | pl.Array):
        assert target.element is not None
        return can_cast_losslessly(source.inner, target.element)
    if base is DataType.MAP and isinstance(source, pl.Map):
        assert target.key is not None and target.value is not None
        return can_cast_losslessly(source.key, target.key) and can_cast_losslessly(source.value, target.value)
    if base is DataType.MAP and isinstance(source, pl.List):
        inner = source.inner
        return (
            isinstance(inner, pl.Struct)
            and [f.name for f in inner.fields] == ["key", "value"]
            and target.key is not None
            and target.value is not None
            and can_cast_losslessly(inner.fields[0].dtype, target.key)
            and can_cast_losslessly(inner.fields[1].dtype, target.value)
        )
    if base is DataType.STRUCT and isinstance(source, pl.Struct):
        src_fields = {f.name: f.dtype for f in source.fields}
        return list(src_fields) == [n for n, _ in target.fields] and all(
            can_cast_losslessly(src_fields[n], spec) for n, spec in target.fields
        )
    return False


def _int_range(dtype: pl.DataType) -> tuple[int, int] | None:
    for int_type, bounds in _INT_RANGES.items():
        if dtype == int_type:
            return bounds
    return None


class _Parser:
    """Recursive-descent parser of type strings."""

    _TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),:])")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = self._TOKEN.match(text, pos)
            if match is None:
                raise self._error(f"unexpected character {text[pos:].strip()[0]!r}")
            self.tokens.append(match.group(1))
            pos = match.end()
        self.pos = 0

    def _error(self, problem: str) -> SchemaValidationError:
        return SchemaValidationError(
            f"invalid data type {self.text!r}: {problem}",
            hint="Use e.g. DOUBLE, DECIMAL(12,2), ARRAY<DOUBLE>, MAP<STRING,BIGINT>, STRUCT<a:INT>.",
        )

    def _next(self) -> str:
        if self.pos >= len(self.tokens):
            raise self._error("unexpected end")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _expect(self, token: str) -> None:
        got = self._next()
        if got != token:
            raise self._error(f"expected {token!r}, got {got!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def end(self) -> None:
        if self.pos != len(self.tokens):
            raise self._error(f"unexpected {self.tokens[self.pos]!r}")

    def type(self) -> TypeSpec:
        word = self._next()
        base = DataType.__members__.get(word.upper())
        if base is None:
            raise self._error(f"unknown type {word!r}; valid: {', '.join(DataType.__members__)}")
        if base is DataType.DECIMAL and self._peek() == "(":
            self._next()
            precision = self._int()
            scale = 0
            if self._peek() == ",":
                self._next()
                scale = self._int()
            self._expect(")")
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise self._error("DECIMAL needs 1 <= precision <= 38 and 0 <= scale <= precision")
            return TypeSpec(base, precision=precision, scale=scale)
        if base is DataType.ARRAY and self._peek() == "<":
            self._next()
            element = self.type()
            self._expect(">")
            return TypeSpec(base, element=element)
        if base is DataType.MAP and self._peek() == "<":
            self._next()
            key = self.type()
            self._expect(",")
            value = self.type()
            self._expect(">")
            return TypeSpec(base, key=key, value=value)
        if base is DataType.STRUCT and self._peek() == "<":
            self._next()
            fields: list[tuple[str, TypeSpec]] = []
            while True:
                name = self._next()
                if not _IDENT.fullmatch(name):
                    raise self._error(f"invalid struct field name {name!r}")
                if name in dict(fields):
                    raise self._error(f"duplicate struct field {name!r}")
                self._expect(":")
                fields.append((name, self.type()))
                if self._peek() == ",":
                    self._next()
                    continue
                self._expect(">")
                break
            return TypeSpec(base, fields=tuple(fields))
        try:
            return TypeSpec._with_defaults(base)
        except SchemaValidationError as err:
            raise self._error(str(err.problems[0])) from None

    def _int(self) -> int:
        token = self._next()
        if not token.isdigit():
            raise self._error(f"expected a number, got {token!r}")
        return int(token)
