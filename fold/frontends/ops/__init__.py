"""The op-graph layer shared by the op-level frontends (GraphDef, TFLite, ONNX, circle), free of any framework.

A format adapts its model to one small view (``view.OpView``: its ops, the producer and readers of
a tensor, whether a tensor is a constant and its value, shapes, the kinds table entry and weight
slots of an op, its fused BatchNorm and activation); on that view everything else is written once:

    chains.py      the chain finder: layer -> [what exporters put between] -> [bias add] -> BN or Mul/Add,
                   and the maps that follow one another composed into one chain
    candidates.py  one candidate type with one set of fields, constant and per-channel operand reading
    directions.py  a map's other directions: forward into the layer after it, partially across a ReLU,
                   split over the Concat before it
    plan.py        the weights every fold leaves a layer with (a layer can take a map each way)
    rules.py       the op-level rules, one name each (constant-weights, unshared-weights, ...)
    graph.py       foldscope's display graph of the ops
    names.py       fresh names for what a rewrite adds

A frontend keeps only what is truly its own: its view (how it chases constants, its slots and
fused activations), its own guards, its ``io`` and its ``rewrite``.
"""
