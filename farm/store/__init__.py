"""The DuckDB store (the farm's one source of truth), its schema and migrations, the typed
records it returns, the Pareto fronts it marks and the content-addressed artifact cache.
"""
