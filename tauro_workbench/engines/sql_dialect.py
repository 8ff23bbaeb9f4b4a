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
"""

from __future__ import annotations

from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from tauro_workbench.exceptions import VirtualizationQueryError

__all__ = [
    "Dialect",
    "parse_query",
    "quote",
    "referenced_tables",
    "rewrite_tables",
    "transpile",
]

Dialect = Literal["duckdb", "spark"]
DIALECTS: tuple[str, ...] = ("duckdb", "spark")


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


def _cte_names(tree: exp.Expr) -> set[str]:
    return {cte.alias_or_name for cte in tree.find_all(exp.CTE)}


def referenced_tables(tree: exp.Expr) -> list[str]:
    """Return the dotted names of the tables a query reads (CTE names excluded), sorted."""
    ctes = _cte_names(tree)
    names = set()
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        if isinstance(table.this, exp.Func):  # table functions such as range(10)
            continue
        names.add(".".join(p for p in (table.catalog, table.db, table.name) if p))
    return sorted(names)


def rewrite_tables(tree: exp.Expr, mapping: dict[str, str]) -> exp.Expr:
    """Return a copy of ``tree`` with table ``a.b`` renamed to ``mapping["a.b"]`` (one identifier)."""
    ctes = _cte_names(tree)
    copy = tree.copy()
    for table in copy.find_all(exp.Table):
        name = ".".join(p for p in (table.catalog, table.db, table.name) if p)
        if name in mapping and not (not table.db and table.name in ctes):
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
