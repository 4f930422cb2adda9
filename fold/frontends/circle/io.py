"""circle frontend, input and output: read .circle bytes safely (``circle-schema``'s bindings, the
shared checks of ``fold.frontends.flatbuffer.schema`` and circle's own operator-code rule), describe the
model from the file, and run it in a circle runtime's worker (``fold.frontends.circle.runtime``).

Which runtime runs a model (``runtime``): "tico" (tico's reference runtime), "onert", or "auto": onert
when it runs the model (a first run on zeros), else tico's reference runtime, which has every kernel
foldscope folds into. A copy with more outputs (``with_outputs``) reads tensors inside the model.
A runtime is given a TRANSPOSE_CONV's bias of shape (1, 1, 1, C) as [C] (``runnable``): ONE's tools
read either (Samsung ONE's Net_TConv_BN_004 has the first), tico's reference runtime only the second.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np

from fold.core.verdict import as_shaped
from fold.core.verification import InputSpec, OutputSpec
from fold.errors import FoldError
from fold.frontend import LayerRunner, Tap
from fold.frontends.circle import runtime as runtimes
from fold.frontends.circle.model import CIRCLE_SCHEMA, CircleModel
from fold.frontends.flatbuffer.alone import alone
from fold.frontends.flatbuffer.model import tensor_name
from fold.frontends.flatbuffer.view import DTYPES, view_of

#: What ``runtime`` may be.
CHOICES = ("auto", "tico", "onert")
#: Elements an input may declare per sample at most (1 GiB of float32): more is a damaged shape, which
#: the random inputs foldscope makes would otherwise try to fill.
MAX_INPUT_ELEMENTS = 2**28


def model_from_bytes(data: bytes, name: str = "model", runtime: str = "auto") -> CircleModel:
    """A CircleModel from a file's bytes; a foreign, corrupt or inconsistent file is a FoldError naming it."""
    if runtime not in CHOICES:
        raise FoldError(f"Invalid value for `runtime`: expected one of {', '.join(CHOICES)}. Received: {runtime!r}.")
    model = CircleModel.from_tree(data, CIRCLE_SCHEMA.parse(data, name), name, runtime=runtime)
    for spec in input_specs(model):
        if spec.dtype is None:
            raise FoldError(f"'{name}' has an input of a type foldscope cannot feed ('{spec.name}').")
        elements = int(np.prod([d or 1 for d in spec.shape], dtype=np.float64))
        if elements > MAX_INPUT_ELEMENTS:
            raise FoldError(f"'{name}' declares input '{spec.name}' of shape {list(spec.shape)}, {elements:,} elements, "
                            f"more than foldscope feeds a model ({MAX_INPUT_ELEMENTS:,}): its shape is damaged.")
    return model


def _dtype(tensor) -> str | None:
    """The NumPy dtype of a tensor's type (None: a type foldscope cannot feed)."""
    layout = DTYPES.get(CIRCLE_SCHEMA.tensor_type_names.get(tensor.type, ""))
    return None if layout is None else np.dtype(layout).name


def input_specs(model: CircleModel) -> list[InputSpec]:
    """Name, shape (None where the file's shape signature says -1) and dtype of each input, from the file."""
    view = view_of(model)
    return [InputSpec(tensor_name(model.main, t), view.shape(str(t)) or (), _dtype(model.main.tensors[t]))
            for t in model.main.inputs]


def output_specs(model: CircleModel) -> list[OutputSpec]:
    return [OutputSpec(tensor_name(model.main, t), -1) for t in model.main.outputs]


def with_outputs(model: CircleModel, tensors: Sequence[int]):
    """A copy of the model's tree with ``tensors`` appended to its outputs (each once); ``model`` is untouched."""
    tree = copy.copy(model.tree)
    main = copy.copy(model.main)
    main.outputs = list(main.outputs) + [t for t in dict.fromkeys(tensors) if t not in main.outputs]
    tree.subgraphs = [main, *tree.subgraphs[1:]]
    tree.signatureDefs = None  # a signature lists the outputs it names; these extra ones it does not
    return tree


def runnable(tree, data: bytes | None = None) -> bytes:
    """A model's bytes as a runtime is given them (``data``: the tree's bytes, when at hand): every
    TRANSPOSE_CONV bias of one value per channel shaped [C], the same values (``tree`` is untouched)."""
    sg = tree.subgraphs[0]
    flat = {}
    for i, op in enumerate(sg.operators):
        if CIRCLE_SCHEMA.op_type(tree, op) == "TRANSPOSE_CONV" and len(op.inputs) > 3 and op.inputs[3] >= 0:
            shape = [int(d) for d in sg.tensors[op.inputs[3]].shape]
            if len(shape) > 1 and max(shape) == int(np.prod(shape)):
                flat[i] = max(shape)
    if not flat:
        return CIRCLE_SCHEMA.pack(tree) if data is None else data
    tree, sg = copy.copy(tree), copy.copy(sg)
    tree.subgraphs = [sg, *tree.subgraphs[1:]]
    sg.tensors, sg.operators = list(sg.tensors), list(sg.operators)
    for i, channels in flat.items():  # a bias of its own, shaped [C], for each such op
        op = sg.operators[i] = copy.copy(sg.operators[i])
        bias = copy.deepcopy(sg.tensors[op.inputs[3]])
        bias.shape, bias.shapeSignature = [channels], None
        sg.tensors.append(bias)
        op.inputs = [*op.inputs[:3], len(sg.tensors) - 1, *op.inputs[4:]]
    return CIRCLE_SCHEMA.pack(tree)


def chosen(model: CircleModel, data: bytes | None = None, specs: Sequence[InputSpec] | None = None) -> str:
    """The runtime that runs ``data`` (the model's own bytes unless given), as the model's ``runtime`` says."""
    if model.runtime != "auto":
        return model.runtime
    data = model.data if data is None else data
    key = runtimes.model_key(data)
    if key not in model.probed:
        model.probed[key] = "tico"
        if runtimes.available("onert"):
            zeros = [np.zeros([d or 1 for d in s.shape], s.dtype) for s in specs or input_specs(model)]
            try:
                runtimes.worker("onert").run(key, data, zeros, model.name)
                model.probed[key] = "onert"
            except FoldError as exc:
                model.refusals[key] = str(exc)
    return model.probed[key]


def runtime_label(model: CircleModel, data: bytes | None = None, specs: Sequence[InputSpec] | None = None) -> str:
    """What runs ``data`` (the model's own bytes unless given) in words, and why not onert when "auto"
    chose tico's runtime because onert refused."""
    data = runnable(model.tree, model.data) if data is None else data
    name = chosen(model, data, specs)
    refusal = model.refusals.get(runtimes.model_key(data))
    why = f" (onert refused it: {refusal.partition(': ')[2]})" if name == "tico" and refusal else ""
    return runtimes.label(name) + why


def _run(model: CircleModel, data: bytes, inputs: Sequence[np.ndarray], specs: Sequence[InputSpec]
         ) -> list[np.ndarray]:
    name = chosen(model, data, specs)
    xs = [np.ascontiguousarray(x, dtype=s.dtype) for x, s in zip(inputs, specs)]
    return runtimes.worker(name).run(runtimes.model_key(data), data, xs, model.name)


def runner(model: CircleModel) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """The returned function runs one batch through the model in its runtime's worker."""
    specs, data = input_specs(model), runnable(model.tree, model.data)

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(specs):
            raise FoldError(f"'{model.name}' takes {len(specs)} inputs; received {len(inputs)}.")
        return _run(model, data, inputs, specs)

    return run


def tapper(model: CircleModel, nodes=(), feeds=()) -> Callable[[list[np.ndarray]], Tap]:
    """A copy of the model that also outputs output 0 of each named op and the data inputs of each fed op;
    one run gives them all."""
    view = view_of(model)
    taps = {n: int(view.by_name[n].output) for n in nodes if n in view.by_name and view.by_name[n].output}
    inputs = {tensor_name(model.main, t): i for i, t in enumerate(model.main.inputs)}
    given = {n: inputs[n] for n in nodes if n in inputs}
    fed = {f: [int(t) for t in view.data_inputs(view.by_name[f])] for f in feeds if f in view.by_name}
    own = set(model.main.inputs)
    extra = [t for t in [*taps.values(), *(t for ts in fed.values() for t in ts)] if t not in own]
    data = runnable(with_outputs(model, extra)) if extra else runnable(model.tree, model.data)
    outputs = list(model.main.outputs) + [t for t in dict.fromkeys(extra) if t not in model.main.outputs]
    specs, count = input_specs(model), len(model.main.outputs)

    def run(xs: list[np.ndarray]) -> Tap:
        got = _run(model, data, xs, specs)
        value = {t: got[outputs.index(t)] for t in extra} | {t: xs[model.main.inputs.index(t)] for t in own}
        return Tap(got[:count], {n: value[t] for n, t in taps.items()} | {n: xs[i] for n, i in given.items()},
                   {f: [value[t] for t in ts] for f, ts in fed.items()})

    return run


def layer_runner(model: CircleModel, layers, magnitude: bool = False) -> LayerRunner:
    """Every op (through ``until``; alone when ``magnitude``) in one model of its own, run in a runtime."""
    built = alone(model, layers, magnitude)
    if built is None:
        return LayerRunner(frozenset(), lambda feeds, inputs: {})
    sg = built.tree.subgraphs[0]
    specs = [InputSpec(str(t), tuple(int(d) for d in sg.tensors[t].shape), _dtype(sg.tensors[t]) or "float32")
             for t in sg.inputs]
    order, data = {t: i for i, t in enumerate(sg.inputs)}, runnable(built.tree, built.data)
    ran_in = runtime_label(model, data, specs)

    def run(feeds, _inputs) -> dict[str, np.ndarray]:
        xs: list = [None] * len(sg.inputs)
        for name, (fed, _) in built.ends.items():
            for t, x in zip(fed, feeds[name]):  # a 1-D layer's input, fed to a 2-D op
                xs[order[t]] = as_shaped(x, specs[order[t]].shape)
        got = _run(model, data, xs, specs)
        return {name: got[list(sg.outputs).index(out)] for name, (_, out) in built.ends.items()}

    return LayerRunner(built.layers, run, ran_in)
