"""The pure core: folding math, the kinds table, rules, the graph schema, verification and the
result type. It imports only NumPy, networkx and itself (``tests/test_layout.py`` checks)."""
