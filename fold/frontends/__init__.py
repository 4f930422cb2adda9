"""The frontends, one package per model file format, each split the same way: ``match`` (read the
model's structure: its graph and candidate pairs), ``rules`` (the shared rules plus the format's
own guards), ``rewrite`` (apply the folds to a copy) and ``io`` (load, describe, run, write).
``fold.frontend.FRONTENDS`` maps a file format to its package."""
