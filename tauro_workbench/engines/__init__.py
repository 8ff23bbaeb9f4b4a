"""Query engines: the QueryExecutor protocol, DuckDB (embedded default) and Spark, and the
point-in-time join implemented per engine."""
