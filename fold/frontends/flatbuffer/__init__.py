"""What the TFLite and circle frontends share: circle (Samsung ONE) is TFLite's schema extended, so
one view, one candidate builder, one set of rules, one rewrite and one layers-alone model serve both,
each reading the format's ``Schema`` (its generated binding, identifier and operator-code rule).

    schema.py    ``Schema``: a binding, its identifier, how an operator code names its op; the file checks
    model.py     ``FlatModel``: bytes, object tree, a stable id per op
    view.py      the ``OpView`` the op-graph layer (``fold.frontends.ops``) reads: buffers, DEQUANTIZE, activations
    match.py     candidates (fused activations, tensor types) and the graph
    rules.py     the shared rules, the op-level rules and the flatbuffer guards (float32, linear MUL)
    rewrite.py   scale the filter, write the bias, drop MUL/ADD, place the activation
    alone.py     the layers-alone model the verdict runs (rule 1)
    frontend.py  the frontend methods both formats share

The formats keep their runtimes: ``fold.frontends.tflite`` runs LiteRT, ``fold.frontends.circle`` runs
tico's reference runtime and onert. Nothing here imports either binding; each format hands its own in.
"""
