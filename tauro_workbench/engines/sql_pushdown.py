"""Push row filters on a query's output columns down to the SELECTs that read its sources.

A virtual feature read asks for ``query`` restricted to some entities (and an event-time
range). Filtering the query's *output* is always correct but makes the engine compute every
entity first (``GROUP BY user_id`` over the whole table, then keep 1,000 of them). This module
rewrites the query with sqlglot so the filter runs where the rows are read, which is equivalent
only when filtering rows before a SELECT cannot change the output rows that pass the filter.

The rule, for a predicate ``f`` over output columns ``C`` that a SELECT projects as bare column
references (``t.user_id`` or ``user_id AS uid``): a ``WHERE f(e)`` on those same expressions
commutes with the SELECT when

- every aggregation is grouped by all of ``C`` (plain ``GROUP BY`` items, positions or
  ``GROUP BY ALL``; no ROLLUP / CUBE / GROUPING SETS, no global aggregate or bare HAVING);
- every window function is partitioned by all of ``C`` (no named windows);
- ``DISTINCT ON`` lists all of ``C``; there is no LIMIT / OFFSET / FETCH, no ``USING SAMPLE``
  or TABLESAMPLE, and no clause we do not know (refused, never guessed).

From there the filter moves further down into the FROM item that provides ``C`` when it is a
derived table, or a CTE referenced exactly once, and that item is an inner or preserved side
of every join (never the null-supplying side of an outer join, never a FULL / NATURAL / ASOF /
LATERAL join); a UNION [ALL] passes it into every branch (columns matched by position). When
it cannot move down it is added as a WHERE at the deepest safe SELECT; when even the top
SELECT is unsafe, :func:`push_filter` reports the query as not filtered, and the caller keeps
its outer filter (always correct). Any filter placed inside is on a path of commuting
operators up to the root, so keeping an outer filter on top stays correct as well.

Filter values never enter SQL text: entity ids are a registered relation
(``key IN (SELECT key FROM ids)``, composite keys as a tuple), time bounds named parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from loguru import logger
from sqlglot import exp

from tauro_workbench.engines.sql_dialect import parse_query

__all__ = [
    "Pushdown",
    "RowFilter",
    "entity_filter",
    "output_condition",
    "push_filter",
    "push_filters",
    "time_filter",
]

# Select clauses that never change which rows a key keeps (Spark's DISTRIBUTE/SORT/CLUSTER BY
# only partition). Anything else set on a SELECT makes it refuse.
_SELECT_ARGS = frozenset(
    {
        "with_",
        "expressions",
        "hint",
        "distinct",
        "from_",
        "joins",
        "laterals",
        "where",
        "group",
        "having",
        "qualify",
        "order",
        "distribute",
        "sort",
        "cluster",
    }
)
_INNER_KINDS = frozenset({"", "INNER", "CROSS", "OUTER"})
_FILTERING_KINDS = _INNER_KINDS | {"SEMI", "ANTI"}


@dataclass(frozen=True)
class RowFilter:
    """A predicate over some output columns of a query.

    Attributes:
        label: What it filters, for log messages (``"entity keys"``).
        columns: The output column names the predicate reads.
        build: Given one expression per column (where the filter is placed), the predicate.
    """

    label: str
    columns: tuple[str, ...]
    build: Callable[[Sequence[exp.Expr]], exp.Expr]


@dataclass(frozen=True)
class Pushdown:
    """The outcome of :func:`push_filter`.

    Attributes:
        tree: The rewritten query (a copy; the input is untouched).
        complete: True when ``tree`` returns exactly the filtered rows of the input, so no
            outer filter is needed.
        reasons: Why the filter stopped where it did (for DEBUG logs).
    """

    tree: exp.Query
    complete: bool
    reasons: tuple[str, ...]


def entity_filter(keys: Sequence[str], relation: str) -> RowFilter:
    """Return ``(k1, ...) IN (SELECT k1, ... FROM relation)``: a semi-join on the entity keys.

    Example:
        >>> entity_filter(["user_id"], "ids").build([exp.column("uid", table="t")]).sql()
        't.uid IN (SELECT "user_id" FROM "ids")'
    """
    names = tuple(keys)

    def build(columns: Sequence[exp.Expr]) -> exp.Expr:
        lookup = exp.select(*[exp.column(k, quoted=True) for k in names]).from_(
            exp.to_identifier(relation, quoted=True)
        )
        left = columns[0].copy() if len(columns) == 1 else exp.Tuple(expressions=[c.copy() for c in columns])
        return exp.In(this=left, query=exp.Subquery(this=lookup))

    return RowFilter("entity keys", names, build)


def time_filter(column: str, *, lower: str | None, upper: str | None) -> RowFilter:
    """Return ``column >= :lower AND column <= :upper`` with named parameters (either optional).

    Example:
        >>> time_filter("ts", lower=None, upper="hi").build([exp.column("ts")]).sql("duckdb")
        'ts <= $hi'
    """

    def build(columns: Sequence[exp.Expr]) -> exp.Expr:
        value = columns[0]
        bounds: list[exp.Expr] = []
        if lower is not None:
            bounds.append(exp.GTE(this=value.copy(), expression=exp.Placeholder(this=lower)))
        if upper is not None:
            bounds.append(exp.LTE(this=value.copy(), expression=exp.Placeholder(this=upper)))
        return exp.and_(*bounds) if bounds else exp.true()

    return RowFilter("event time", (column,), build)


def push_filter(tree: exp.Query, row_filter: RowFilter) -> Pushdown:
    """Rewrite ``tree`` so ``row_filter`` runs as close to the sources as is provably safe.

    Args:
        tree: One parsed query (see :func:`~tauro_workbench.engines.sql_dialect.parse_query`).
        row_filter: The predicate over output columns of ``tree``.

    Returns:
        The rewritten copy, whether it is complete, and the reasons it stopped.

    Example:
        >>> q = parse_query("SELECT user_id, COUNT(*) AS n FROM silver.tx GROUP BY user_id", "duckdb")  # doctest: +SKIP
        >>> push_filter(q, entity_filter(["user_id"], "ids")).tree.sql("duckdb")  # doctest: +SKIP
        'SELECT user_id, COUNT(*) AS n FROM silver.tx WHERE user_id IN (SELECT "user_id" FROM "ids") GROUP BY user_id'
    """
    copy = tree.copy()
    pusher = _Pusher(copy, row_filter)
    complete = pusher.query(copy, list(row_filter.columns))
    return Pushdown(copy, complete, tuple(pusher.reasons))


def push_filters(
    sql: str, filters: Sequence[RowFilter], *, read: str, write: str
) -> tuple[str, list[RowFilter]]:
    """Return ``sql`` (dialect ``read``) in dialect ``write`` with ``filters`` pushed in, and those incomplete.

    The caller applies the returned filters to the query's output (see :func:`output_condition`).
    A partial rewrite is kept: every filter it placed sits under operators that commute with it,
    so it stays correct under the outer filter and already saves work.

    Raises:
        VirtualizationQueryError: If ``sql`` does not parse.

    Example:
        >>> push_filters("SELECT user_id, ts FROM silver.tx", [entity_filter(["user_id"], "ids")], read="duckdb", write="spark")  # doctest: +SKIP
        ('SELECT user_id, ts FROM silver.tx WHERE user_id IN (SELECT `user_id` FROM `ids`)', [])
    """
    tree = parse_query(sql, read)
    outer = []
    for row_filter in filters:
        result = push_filter(tree, row_filter)
        tree = result.tree
        if not result.complete:
            outer.append(row_filter)
        logger.debug(
            "pushdown of {}: {}; {}",
            row_filter.label,
            "complete" if result.complete else "refused, filtering the output",
            "; ".join(result.reasons) or "pushed to the source reads",
        )
    return tree.sql(dialect=write), outer


def output_condition(filters: Sequence[RowFilter], alias: str, dialect: str) -> str:
    """Return the SQL condition applying ``filters`` to the output columns of relation ``alias``."""
    return " AND ".join(
        f.build([exp.column(c, table=alias, quoted=True) for c in f.columns]).sql(dialect=dialect)
        for f in filters
    )


def _lower(name: str) -> str:
    return name.lower()


def _is_column(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Column) and not isinstance(node.this, exp.Star)


def _own_nodes(select: exp.Select) -> Iterator[exp.Expr]:
    """Yield the nodes of ``select``'s own scope (nested queries are not entered)."""
    for node in select.walk(prune=lambda n: n is not select and isinstance(n, (exp.Query, exp.Subquery))):
        if node is not select:
            yield node


def _output_names(node: exp.Expr) -> list[str] | None:
    """Return a query's output column names, or None when a star hides them."""
    if isinstance(node, exp.Subquery):
        return _output_names(node.this)
    if isinstance(node, exp.Union):
        return _output_names(node.this)
    if isinstance(node, exp.Select):
        names = []
        for projection in node.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                return None
            names.append(projection.alias_or_name)
        return names
    return None


class _Pusher:
    """One rewrite: walks the query from the root, refusing at the first unsafe operator."""

    def __init__(self, root: exp.Query, row_filter: RowFilter) -> None:
        self.root = root
        self.filter = row_filter
        self.reasons: list[str] = []

    def refuse(self, node: exp.Expr, why: str) -> bool:
        self.reasons.append(f"{why} (at: {node.sql()[:120]})")
        return False

    # -- queries ---------------------------------------------------------------------------
    def query(self, node: exp.Expr, columns: list[str]) -> bool:
        """Filter ``node``'s rows on ``columns``; True when it now returns only passing rows."""
        if isinstance(node, exp.Subquery):
            extra = [k for k, v in node.args.items() if v and k not in ("this", "alias")]
            if extra:
                return self.refuse(node, f"parenthesised query with {extra}")
            return self.query(node.this, columns)
        if isinstance(node, exp.Union):
            return self.union(node, columns)
        if isinstance(node, exp.Select):
            return self.select(node, columns)
        return self.refuse(node, f"{type(node).__name__} is not a SELECT or UNION")

    def union(self, node: exp.Union, columns: list[str]) -> bool:
        extra = [
            k
            for k, v in node.args.items()
            if v and k not in ("this", "expression", "distinct", "order", "with_")
        ]
        if extra:
            return self.refuse(node, f"UNION with {extra}")
        if node.args.get("with_") and node.args["with_"].args.get("recursive"):
            return self.refuse(node, "recursive CTE")
        names = [_lower(n) for n in _output_names(node) or []]
        if not names:
            return self.refuse(node, "UNION whose columns are hidden by a star")
        try:
            positions = [names.index(_lower(c)) for c in columns]
        except ValueError:
            return self.refuse(node, f"UNION does not output {columns}")
        complete = True
        for branch in (node.this, node.expression):
            branch_names = _output_names(branch)
            if branch_names is None or max(positions) >= len(branch_names):
                complete = self.refuse(branch, "UNION branch whose columns are hidden by a star") and complete
                continue
            # evaluate every branch even after a failure: each one filtered is still a win
            complete = self.query(branch, [branch_names[p] for p in positions]) and complete
        return complete

    def select(self, select: exp.Select, columns: list[str]) -> bool:
        extra = [k for k, v in select.args.items() if v and k not in _SELECT_ARGS]
        if extra:
            return self.refuse(select, f"SELECT with {extra}")
        with_ = select.args.get("with_")
        if with_ is not None and with_.args.get("recursive"):
            return self.refuse(select, "recursive CTE")
        found = [self.projection(select, c) for c in columns]
        if any(f is None for f in found):
            return self.refuse(select, f"{columns} are not all plain column references")
        exprs = [f[0] for f in found if f is not None]
        indexes = [f[1] for f in found if f is not None]
        why = self.unsafe(select, exprs, indexes)
        if why:
            return self.refuse(select, why)
        if not self.descend(select, exprs):
            select.where(self.filter.build(exprs), copy=False)
        return True

    def projection(self, select: exp.Select, name: str) -> tuple[exp.Column, int | None] | None:
        """Return the bare column ``select`` outputs as ``name`` (and its position), else None."""
        wanted = _lower(name)
        matches = [(i, p) for i, p in enumerate(select.expressions) if _lower(p.alias_or_name) == wanted]
        stars = [
            p
            for p in select.expressions
            if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        ]
        if len(matches) == 1 and not stars:
            index, projection = matches[0]
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            if not _is_column(inner):
                return None
            assert isinstance(inner, exp.Column)
            # DuckDB and Spark resolve a name to an earlier select alias (lateral alias)
            aliases = {
                _lower(p.alias)
                for j, p in enumerate(select.expressions)
                if j != index and isinstance(p, exp.Alias)
            }
            if _lower(inner.name) in aliases:
                return None
            return inner, index
        if (
            not matches
            and len(stars) == 1
            and not select.args.get("joins")
            and not select.args.get("laterals")
        ):
            star = stars[0]
            modifiers = star.this.args if isinstance(star, exp.Column) else star.args
            if any(modifiers.get(k) for k in ("replace", "rename")):
                return None
            return exp.column(name), None
        return None

    # -- safety of one SELECT --------------------------------------------------------------
    def unsafe(self, select: exp.Select, exprs: list[exp.Column], indexes: list[int | None]) -> str | None:
        """Return why a WHERE on ``exprs`` would not commute with ``select``, else None."""
        single = not select.args.get("joins") and not select.args.get("laterals")
        same = lambda a, b: _same_column(a, b, single=single)  # noqa: E731
        nodes = list(_own_nodes(select))
        if any(isinstance(n, exp.TableSample) for n in nodes):
            return "sampling"
        distinct = select.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            on = distinct.args["on"].expressions
            if not all(any(same(e, o) for o in on) for e in exprs):
                return "DISTINCT ON without every filtered column"
        group = select.args.get("group")
        if group is not None:
            if any(group.args.get(k) for k in ("grouping_sets", "cube", "rollup", "totals")):
                return "ROLLUP / CUBE / GROUPING SETS"
            items = group.expressions
            if any(isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets)) for g in items):
                return "ROLLUP / CUBE / GROUPING SETS"
            if not group.args.get("all"):
                for e, index in zip(exprs, indexes, strict=True):
                    if not any(same(e, g) or _is_position(g, index) for g in items):
                        return f"GROUP BY without {e.sql()}"
        else:
            if select.args.get("having") is not None:
                return "HAVING without GROUP BY"
            aggregated = any(
                isinstance(n, exp.AggFunc)
                and not isinstance(n.find_ancestor(exp.Window, exp.Select), exp.Window)
                for n in nodes
            )
            if aggregated:
                return "aggregate over every row (no GROUP BY)"
        for window in (n for n in nodes if isinstance(n, exp.Window)):
            partition = window.args.get("partition_by") or []
            if not all(any(same(e, p) for p in partition) for e in exprs):
                return f"window not partitioned by {[e.sql() for e in exprs]}"
        return None

    # -- moving into the FROM item ---------------------------------------------------------
    def descend(self, select: exp.Select, exprs: list[exp.Column]) -> bool:
        """Push the filter into the FROM item providing ``exprs``; True when complete there."""
        source = self.source_of(select, exprs)
        if source is None:
            return False
        item, joins_ok = source
        if not joins_ok:
            self.reasons.append(f"kept the filter above the joins of {item.sql()[:80]}")
            return False
        alias = item.args.get("alias")
        if alias is not None and alias.args.get("columns"):
            self.reasons.append(f"column aliases on {item.sql()[:80]}")
            return False
        names = [e.name for e in exprs]
        if isinstance(item, exp.Subquery):
            return self.query(item, names)
        if isinstance(item, exp.Table):
            cte = self.cte_of(item)
            if cte is None:
                return False  # a source table: the filter goes right above it, here
            if cte.args.get("alias") is not None and cte.args["alias"].args.get("columns"):
                self.reasons.append(f"column aliases on CTE {cte.alias}")
                return False
            if self.references(cte.alias) != 1:
                self.reasons.append(f"CTE {cte.alias} is read more than once")
                return False
            return self.query(cte.this, names)
        return False

    def source_of(self, select: exp.Select, exprs: list[exp.Column]) -> tuple[exp.Expr, bool] | None:
        """Return the FROM item the columns come from and whether its joins allow descending."""
        from_ = select.args.get("from_")
        if from_ is None:
            return None
        items: list[exp.Expr] = [from_.this, *[j.this for j in select.args.get("joins") or []]]
        tables = {_lower(e.table) for e in exprs}
        if tables == {""}:
            if len(items) != 1 or select.args.get("laterals"):
                return None
            return items[0], True
        if len(tables) != 1:
            return None
        wanted = tables.pop()
        matching = [i for i, item in enumerate(items) if _lower(item.alias_or_name) == wanted]
        if len(matching) != 1 or any(e.args.get("db") for e in exprs):
            return None
        position = matching[0]
        return items[position], not select.args.get("laterals") and _joins_keep_side(
            select.args.get("joins") or [], position
        )

    def cte_of(self, table: exp.Table) -> exp.CTE | None:
        if table.args.get("db") or table.args.get("catalog"):
            return None
        node: exp.Expr | None = table
        while node is not None:
            with_ = node.args.get("with_") if isinstance(node, (exp.Query, exp.Subquery)) else None
            if with_ is not None:
                for cte in with_.expressions:
                    if _lower(cte.alias) == _lower(table.name):
                        return cte
            node = node.parent
        return None

    def references(self, name: str) -> int:
        return sum(
            1
            for t in self.root.find_all(exp.Table)
            if not t.args.get("db") and not t.args.get("catalog") and _lower(t.name) == _lower(name)
        )


def _joins_keep_side(joins: Sequence[exp.Join], position: int) -> bool:
    """Tell whether filtering FROM item ``position`` (0: the FROM, i: joins[i-1]) drops only its own rows."""
    for i, join in enumerate(joins, start=1):
        side = (join.side or "").upper()
        kind = (join.kind or "").upper()
        if join.args.get("method") or not isinstance(join.this, (exp.Table, exp.Subquery)):
            return False
        if i < position:
            continue
        if i == position:
            if side not in ("", "RIGHT") or kind not in _INNER_KINDS:
                return False
        elif side not in ("", "LEFT") or kind not in _FILTERING_KINDS:
            return False
    return True


def _same_column(a: exp.Column, b: exp.Expr, *, single: bool) -> bool:
    """Tell whether ``b`` names the same column as ``a`` (qualifiers must match across joins)."""
    if not _is_column(b):
        return False
    assert isinstance(b, exp.Column)
    if _lower(a.name) != _lower(b.name):
        return False
    qa = tuple(_lower(p.name) for p in a.parts[:-1])
    qb = tuple(_lower(p.name) for p in b.parts[:-1])
    if qa == qb:
        return True
    # one side unqualified: unambiguous only when the SELECT reads a single relation
    return single and (not qa or not qb)


def _is_position(group_item: exp.Expr, index: int | None) -> bool:
    """Tell whether a GROUP BY item is the 1-based position of projection ``index``."""
    return (
        index is not None
        and isinstance(group_item, exp.Literal)
        and not group_item.is_string
        and group_item.this.isdigit()
        and int(group_item.this) == index + 1
    )
