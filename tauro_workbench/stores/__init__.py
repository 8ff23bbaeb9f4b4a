"""Feature stores: the base contract and the materialized, virtualized and hybrid strategies."""
