"""The frontends, one package per model file format, each split the same way: ``match`` (read the
model's structure: its graph and candidate pairs), ``rules`` (the shared rules plus the format's
own guards), ``rewrite`` (apply the folds to a copy) and ``io`` (load, describe, run, write).
The op-level formats (GraphDef, TFLite, ONNX, circle) each add a ``view`` of their ops for the shared
op-graph layer, ``fold.frontends.ops``, which finds chains, builds candidates, holds the op-level
rules and draws the graph once for all of them. TFLite and circle, one schema family, share their view,
matching, rules and rewrite too (``fold.frontends.flatbuffer``), and keep their schema and runtime.

Adding a format is one folder here and its row in ``fold.frontend.FRONTENDS``; ``docs/frontend.md``
says exactly what the folder writes.
"""
