"""The pure core, the floor every other layer stands on: folding math, the kinds table, rules, the
graph schema, verification, the verdict and the result type, and what every layer above needs that
knows no format (errors a user can cause in one sentence, frameworks kept quiet). It imports only
NumPy, networkx and itself (``tests/test_layout.py`` checks)."""
