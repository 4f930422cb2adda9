"""The format-neutral engine, written once for every format: load, fold and verify
(``fold.engine.pipeline``), and the verification of any pair of models (``fold.engine.comparison``).
It reaches the formats through their table alone (``fold.frontends.formats``)."""
