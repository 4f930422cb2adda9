"""A small ONNX model and two folds of it, made here: a correct one by a peer (onnxsim) and one broken
in one channel of one layer, for the tests of the package, its command and its pytest plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from foldscope_app.examples import onnx_zoo
from fold.frontends.onnx.peers import onnxsim_simplify

#: The layer the broken fold breaks, and the BN it absorbed.
BROKEN_LAYER, BROKEN_BN = "head_conv", "head_bn"


def broken(proto: onnx.ModelProto, layer: str = BROKEN_LAYER, factor: float = 1.05) -> onnx.ModelProto:
    """A copy of ``proto`` whose Conv ``layer`` has output channel 0 of its kernel ``factor`` too large."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    node = next(n for n in out.graph.node if n.name == layer)
    tensor = next(t for t in out.graph.initializer if t.name == node.input[1])
    kernel = numpy_helper.to_array(tensor).copy()
    kernel[0] *= np.asarray(factor, kernel.dtype)
    tensor.CopyFrom(numpy_helper.from_array(kernel, tensor.name))
    return out


def onnx_pair(folder: Path) -> tuple[Path, Path, Path]:
    """(original, onnxsim's fold of it, that fold broken by 5 % in one channel of ``BROKEN_LAYER``), written
    into ``folder``: a DBNet-style head, Conv and ConvTranspose layers each followed by a BN."""
    folder.mkdir(parents=True, exist_ok=True)
    proto = onnx_zoo.text_detector_head(channels=8)
    simplified = onnxsim_simplify(proto)
    paths = folder / "head.onnx", folder / "head_sim.onnx", folder / "head_broken.onnx"
    for path, model in zip(paths, (proto, simplified, broken(simplified))):
        onnx.save(model, path)
    return paths
