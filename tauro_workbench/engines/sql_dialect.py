"""The SQL dialect contract shared by the DuckDB and Spark executors (parsing with sqlglot).

Contract:

- Every query names the dialect it is written in: ``"duckdb"`` or ``"spark"``. Executors run
  SQL in their own dialect unchanged; SQL in the other dialect is transpiled by sqlglot first.
  Virtual-feature definitions record their dialect (by default the dialect of the executor
  they were defined with), so a definition written for DuckDB runs on Spark and back.
- What transpiling covers: function spellings (``DATE(x)`` -> ``CAST(x AS DATE)``,
  ``CURRENT_DATE()`` -> ``CURRENT_DATE``, ``NVL`` -> ``COALESCE``, ...), casts (``x::INT``),
  interval syntax, identifier quoting (`````` ` `````` vs ``"``), named parameters (``:name``
  in Spark, ``$name`` in DuckDB), and Spark-only clauses with no meaning in DuckDB
  (``DISTRIBUTE BY``, ``CLUSTER BY``, ``SORT BY`` are dropped). What is not covered: engine
  specific functions with no counterpart (those fail at validation, when defined).
- Tables are named sources (``silver.users``); Spark has no schemas for temporary views, so
  the Spark executor rewrites source names to its registered view names.
- A query reads only registered sources (:func:`check_reads`): it is one SELECT (CTEs, set
  operations, subqueries and ``VALUES`` allowed) whose every relation is a registered source,
  a relation the caller registered for that query, or a CTE in scope. Refused anywhere in the
  query, scalar subqueries included: table functions (``read_csv``, ``read_text``, ``glob``,
  ``query_table``, ``range``, ``unnest`` / ``explode`` in ``FROM``: use them in the select
  list), file paths (``FROM '/etc/passwd'``, ``parquet.`/x```), other catalogs and schemas,
  ``SELECT ... INTO``, Spark's ``TRANSFORM ... USING`` and the functions of
  :data:`DENIED_FUNCTIONS`. A CTE is visible only after its definition (no recursive CTEs),
  so a CTE cannot hide the relation its own body reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from tauro_workbench.exceptions import VirtualizationQueryError

__all__ = [
    "DENIED_FUNCTIONS",
    "Dialect",
    "check_reads",
    "parse_query",
    "prepare_query",
    "quote",
    "referenced_tables",
    "rewrite_tables",
    "transpile",
]

Dialect = Literal["duckdb", "spark"]
DIALECTS: tuple[str, ...] = ("duckdb", "spark")
#: Functions that read the engine's environment (settings, variables, Java) instead of data.
DENIED_FUNCTIONS = frozenset(
    {"getenv", "current_setting", "which_secret", "reflect", "java_method", "try_reflect"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_dialect(dialect: str) -> Dialect:
    """Return ``dialect`` if supported.

    Raises:
        VirtualizationQueryError: For any other dialect.
    """
    if dialect not in DIALECTS:
        raise VirtualizationQueryError(f"Unknown SQL dialect {dialect!r}; use one of {list(DIALECTS)}.")
    return dialect  # type: ignore[return-value]


def parse_query(sql: str, dialect: str) -> exp.Query:
    """Parse one SELECT statement written in ``dialect``.

    Raises:
        VirtualizationQueryError: If the text does not parse, holds several statements, or is
            not a query (DDL and DML are refused).
    """
    check_dialect(dialect)
    if not isinstance(sql, str) or not sql.strip():
        raise VirtualizationQueryError("The query is empty.", query=str(sql))
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as err:
        raise VirtualizationQueryError(
            f"The query does not parse as {dialect} SQL: {err}", query=sql
        ) from err
    if len(statements) != 1:
        raise VirtualizationQueryError(f"Expected one statement, found {len(statements)}.", query=sql)
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise VirtualizationQueryError(
            f"The text is not a SELECT query (it parses as {type(tree).__name__.upper()}); only queries are allowed.",
            query=sql,
        )
    return tree


def _visible_ctes(node: exp.Expr) -> set[str]:
    """Return the CTE names in scope at ``node``: those of enclosing queries, and the earlier
    ones of the WITH clause it is defined in (a CTE does not see itself)."""
    names: set[str] = set()
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            for cte in parent.expressions:
                if cte is child:
                    break
                names.add(cte.alias_or_name)
        elif isinstance(parent, exp.Query):
            with_ = parent.args.get("with_")
            if with_ is not None and with_ is not child:
                names.update(cte.alias_or_name for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


def _table_parts(table: exp.Table) -> tuple[str, ...]:
    return tuple(
        p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p is not None
    )


def _function_name(func: exp.Func) -> str:
    return (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()


@dataclass(frozen=True)
class _Reads:
    """What a query reads: relation names outside CTEs, and the constructs that are refused."""

    relations: tuple[tuple[str, ...], ...]
    refused: tuple[str, ...]


def _short(node: exp.Expr, dialect: str) -> str:
    text = node.sql(dialect=dialect)
    return text if len(text) <= 80 else text[:77] + "..."


def _reads(tree: exp.Expr, dialect: str) -> _Reads:
    relations: dict[tuple[str, ...], None] = {}
    refused: dict[str, None] = {}
    for node in tree.walk():
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                refused[f"table function {_short(node, dialect)}"] = None
                continue
            parts = _table_parts(node)
            if len(parts) == 1 and parts[0] in _visible_ctes(node):
                continue
            relations[parts] = None
        elif isinstance(node, exp.From | exp.Join | exp.Lateral):
            relation = node.this
            if not isinstance(relation, exp.Table | exp.Subquery | exp.Values | exp.Lateral):
                refused[f"table function {_short(relation, dialect)}"] = None
        elif isinstance(node, exp.QueryTransform):
            refused["TRANSFORM ... USING (runs a command)"] = None
        elif isinstance(node, exp.Func) and _function_name(node) in DENIED_FUNCTIONS:
            refused[f"function {_function_name(node)}() (reads the engine's environment)"] = None
        elif isinstance(node, exp.Select) and node.args.get("into") is not None:
            refused["SELECT ... INTO (creates a table)"] = None
    return _Reads(tuple(relations), tuple(refused))


def _dotted(parts: tuple[str, ...]) -> str:
    return ".".join(parts)


def _shown(parts: tuple[str, ...]) -> str:
    return ".".join(p if _IDENTIFIER.fullmatch(p) else f'"{p}"' for p in parts)


def referenced_tables(tree: exp.Expr) -> list[str]:
    """Return the dotted names of the tables a query reads (CTE names excluded), sorted."""
    return sorted({_dotted(parts) for parts in _reads(tree, "duckdb").relations})


def _verdict(reads: _Reads, known: Iterable[str], frames: Iterable[str], query: str) -> list[str]:
    """Return the sources read, or raise listing what the query may not read."""
    sources = {tuple(name.split(".")): name for name in known}
    local = {(name,) for name in frames}
    problems = list(reads.refused)
    unknown = [p for p in reads.relations if p not in sources and p not in local]
    if unknown:
        problems.append(f"unknown table(s) {', '.join(_shown(p) for p in unknown)}")
    if problems:
        raise VirtualizationQueryError(
            "The query may read only registered sources; refused: "
            + "; ".join(problems)
            + f". Registered sources: {sorted(sources.values()) or '(none)'}.",
            query=query,
            hint="Register the data as a source (add_source / register_frame) and read it by its name; "
            "table functions, file paths and engine settings are not allowed.",
        )
    return sorted({sources[p] for p in reads.relations if p in sources})


def check_reads(
    tree: exp.Expr,
    known: Iterable[str],
    *,
    frames: Iterable[str] = (),
    query: str,
    dialect: str = "duckdb",
) -> list[str]:
    """Refuse a query that reads anything but registered sources; return those it reads.

    Args:
        tree: The parsed query (:func:`parse_query`).
        known: The registered source names (``silver.users``).
        frames: Single-identifier relations registered for this query only.
        query: The SQL text, quoted in the error.
        dialect: The dialect errors render SQL in.

    Returns:
        The sources the query reads, sorted.

    Raises:
        VirtualizationQueryError: Listing each table function, file path, unknown relation
            and refused function, and the registered sources.

    Example:
        >>> check_reads(parse_query("SELECT * FROM silver.users", "duckdb"), ["silver.users"], query="...")
        ['silver.users']
    """
    return _verdict(_reads(tree, dialect), known, frames, query)


@lru_cache(maxsize=1024)
def _cached_reads(sql: str, dialect: str) -> _Reads:
    return _reads(parse_query(sql, dialect), dialect)


def prepare_query(
    sql: str, *, read: str, write: str, known: Iterable[str], frames: Iterable[str] = ()
) -> str:
    """Check that ``sql`` (one query in ``read``) reads only ``known`` sources and ``frames``,
    and return it in dialect ``write``.

    The parse is cached by text, with the names of ``frames`` (identifiers, registered for this
    query only, often with random names) replaced by stable placeholders.

    Raises:
        VirtualizationQueryError: If the query does not parse, is not one SELECT, or reads
            anything else (see :func:`check_reads`); for a frame name that is not an identifier.

    Example:
        >>> prepare_query("SELECT * FROM silver.users", read="duckdb", write="spark", known=["silver.users"])
        'SELECT * FROM silver.users'
    """
    check_dialect(read)
    check_dialect(write)
    names = list(frames)
    bad = [n for n in names if not _IDENTIFIER.fullmatch(n)]
    if bad:
        raise VirtualizationQueryError(f"Relation names {bad} are not identifiers such as 'tmp_ids'.")
    text = sql
    placeholders = [f"__tauro_relation_{i}__" for i in range(len(names))]
    if isinstance(sql, str) and "__tauro_relation_" not in sql:
        for name, placeholder in zip(names, placeholders, strict=True):
            text = re.sub(rf"\b{name}\b", placeholder, text)
    else:
        placeholders = names
    _verdict(_cached_reads(text, read), known, placeholders, sql if isinstance(sql, str) else str(sql))
    return sql if read == write else parse_query(sql, read).sql(dialect=write)


def rewrite_tables(tree: exp.Expr, mapping: dict[str, str]) -> exp.Expr:
    """Return a copy of ``tree`` with table ``a.b`` renamed to ``mapping["a.b"]`` (one identifier)."""
    copy = tree.copy()
    for table in list(copy.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            continue
        parts = _table_parts(table)
        if len(parts) == 1 and parts[0] in _visible_ctes(table):
            continue
        name = _dotted(parts)
        if name in mapping:
            alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
            table.replace(exp.Table(this=exp.to_identifier(mapping[name]), alias=alias))
    return copy


def transpile(sql: str, *, read: str, write: str) -> str:
    """Return ``sql`` (one query in dialect ``read``) in dialect ``write``; unchanged when equal.

    Raises:
        VirtualizationQueryError: If the query does not parse.
    """
    check_dialect(write)
    if read == write:
        return sql
    return parse_query(sql, read).sql(dialect=write)


def quote(identifier: str, dialect: str) -> str:
    """Quote a validated identifier for ``dialect``."""
    return exp.to_identifier(identifier, quoted=True).sql(dialect=dialect)
