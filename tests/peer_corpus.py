"""The peer-fold corpus: the models (real ones from registry packages, and cases built to be hard) and
every tool that folds BatchNorms the way users fold them, for ``tests/test_peer_corpus.py`` and
``bench/bench_verdict.py``.

A peer is a function from an original ONNX file to the file the tool writes of it (or an exception:
the tool does not fold that model). The ONNX tools are ``fold.frontends.onnx.peers``' own (onnxsim, onnxslim,
onnxoptimizer, onnxruntime's offline optimizer at the extended level) plus onnxruntime at the basic
level and onnxscript's rewriter with its three BN rules; PyTorch's ``fuse_conv_bn_eval`` is a peer of
the models built in PyTorch (each Conv/ConvTranspose + BN module pair fused, the result exported with
``torch.onnx`` like the original).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fold.frontends.onnx.peers import onnxoptimizer_fuse, onnxruntime_offline, onnxsim_simplify, onnxslim_slim
from foldscope_app.examples.onnx_zoo import Graph
from tests.real_models import real_model


def onnxscript_rules(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxscript's rewriter with its BatchNormalization rules (into Conv, ConvTranspose and Gemm)."""
    from onnxscript import rewriter
    from onnxscript.rewriter.rules.common import (
        fuse_batchnorm_into_conv_rule, fuse_batchnorm_into_conv_transpose_rule, fuse_batchnorm_into_gemm_rule,
    )

    rules = [fuse_batchnorm_into_conv_rule, fuse_batchnorm_into_conv_transpose_rule, fuse_batchnorm_into_gemm_rule]
    return rewriter.rewrite(proto, pattern_rewrite_rules=rules)


#: The ONNX peers: name -> ModelProto -> ModelProto.
ONNX_PEERS: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "onnxsim": onnxsim_simplify,
    "onnxslim": onnxslim_slim,
    "onnxruntime-basic": functools.partial(onnxruntime_offline, level="basic"),
    "onnxruntime-extended": onnxruntime_offline,
    "onnxoptimizer": onnxoptimizer_fuse,
    "onnxscript": onnxscript_rules,
}


# -- cases built to be hard ----------------------------------------------------------------------------

def _cancelling_bn(g: Graph, x: str, channels: int, bias: np.ndarray | None, name: str) -> str:
    """A BN whose shift nearly cancels what it is added to: beta = s (mean - b) + 1e-3 * noise, with
    |beta| and |s mean| near 1 (PP-OCRv3's 'BatchNormalization_44': beta -0.9533, s mean -0.9541)."""
    rng = g.rng
    gamma = rng.uniform(0.8, 1.6, channels)
    var = rng.uniform(0.5, 2.0, channels)
    s = gamma / np.sqrt(var + 1e-5)
    mean = rng.choice([-1.0, 1.0], channels) * rng.uniform(0.8, 1.2, channels)
    b = np.zeros(channels) if bias is None else bias.astype(np.float64)
    beta = s * (mean - b) + 1e-3 * rng.normal(size=channels)
    names = [g.const(f"{name}.{p}", v.astype(np.float32)) for p, v in
             zip(("scale", "B", "mean", "var"), (gamma, beta, mean, var))]
    return g.node("BatchNormalization", [x, *names], name, epsilon=1e-5)


def cancelling_bias() -> onnx.ModelProto:
    """x -> Conv(3 -> 8, bias) -> cancelling BN -> Relu -> Conv(8 -> 6, stride 2) -> cancelling BN."""
    g = Graph(11)
    x = g.input("x", ["N", 3, 16, 16])
    w = g.const("c1.W", g.rng.normal(0, 0.4, (8, 3, 3, 3)).astype(np.float32))
    b = g.rng.normal(0, 0.5, 8).astype(np.float32)
    y = g.node("Conv", [x, w, g.const("c1.B", b)], "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = g.node("Relu", [_cancelling_bn(g, y, 8, b, "bn1")], "relu1")
    w2 = g.const("c2.W", g.rng.normal(0, 0.3, (6, 8, 3, 3)).astype(np.float32))
    y = g.node("Conv", [y, w2], "c2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return g.model([_cancelling_bn(g, y, 6, None, "bn2")], "cancelling_bias")


def float16_storage() -> onnx.ModelProto:
    """float16 weights behind a Cast to float32 (how converters store a half-size float32 model), a Conv
    computed in float32, then a cancelling float32 BN."""
    g = Graph(12)
    x = g.input("x", ["N", 4, 12, 12])
    w16 = g.const("c.W16", g.rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float16))
    b16 = g.rng.normal(0, 0.3, 6).astype(np.float16)
    w = g.node("Cast", [w16], "c.W", to=TensorProto.FLOAT)
    b = g.node("Cast", [g.const("c.B16", b16)], "c.B", to=TensorProto.FLOAT)
    y = g.node("Conv", [x, w, b], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.model([_cancelling_bn(g, y, 6, b16.astype(np.float32), "bn")], "float16_storage")


def mixed_precision_bn() -> onnx.ModelProto:
    """x float16 -> Conv (float16 weights) -> BatchNormalization with float32 parameters (legal since
    opset 15: T for X and Y, T1 and T2 for the parameters), float16 out."""
    g = Graph(13, opset=15)
    x = g.input("x", ["N", 3, 12, 12], TensorProto.FLOAT16)
    w = g.const("c.W", g.rng.normal(0, 0.3, (5, 3, 3, 3)).astype(np.float16))
    y = g.node("Conv", [x, w], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return g.model([g.bn(y, 5, "bn")], "mixed_precision_bn", dtype=TensorProto.FLOAT16)


def gemm_bn() -> onnx.ModelProto:
    """x (N, 16) -> Gemm(transB = 1, alpha 1, beta 0.5, C) -> BN over its 12 features -> Relu -> Gemm -> BN."""
    g = Graph(14)
    x = g.input("x", ["N", 16])
    w = g.const("fc1.W", g.rng.normal(0, 0.3, (12, 16)).astype(np.float32))
    c = g.const("fc1.C", g.rng.normal(0, 0.3, 12).astype(np.float32))
    y = g.node("Relu", [g.bn(g.node("Gemm", [x, w, c], "fc1", transB=1, beta=0.5), 12, "bn1")], "relu")
    w2 = g.const("fc2.W", g.rng.normal(0, 0.3, (12, 7)).astype(np.float32))
    return g.model([g.bn(g.node("Gemm", [y, w2], "fc2"), 7, "bn2")], "gemm_bn")


def grouped_tconv() -> onnx.ModelProto:
    """ConvTranspose with group 2 (4 -> 6 channels, stride 2) -> BN, then a depthwise ConvTranspose
    (group 6, multiplier 2: 6 -> 12) -> BN: the layouts every peer has tripped on."""
    g = Graph(15)
    x = g.input("x", ["N", 4, 7, 9])
    y = g.bn(g.conv_transpose(x, 4, 6, 3, "grouped", group=2, bias=True), 6, "bn1")
    y = g.node("Relu", [y], "relu")
    return g.model([g.bn(g.conv_transpose(y, 6, 12, 3, "depthwise", group=6), 12, "bn2")], "grouped_tconv")


BUILT: dict[str, Callable[[], onnx.ModelProto]] = {
    "cancelling_bias": cancelling_bias, "float16_storage": float16_storage, "mixed_precision_bn": mixed_precision_bn,
    "gemm_bn": gemm_bn, "grouped_tconv": grouped_tconv,
}
#: Real models (``tests.real_models.FILES``) with BatchNormalizations.
REAL = ("ppocr_det", "ppocr_rec", "ppocr_cls", "ppocr_v3_det", "ppocr_v3_rec", "ppocr_v5_det", "ppocr_v5_rec")


# -- PyTorch: the original exported with its BNs, and fuse_conv_bn_eval's fold exported the same way ---------

def _export(module, example, path: Path) -> Path:
    """``torch.onnx.export`` with the TorchScript exporter, BNs kept (training mode preserved on an eval
    module), constant folding off: the original as PyTorch users export it before any fold."""
    import torch

    torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["z"], output_names=["out"],
                      dynamic_axes={"z": {0: "N"}, "out": {0: "N"}}, training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)
    return path


def dcgan_faces():
    """The trained DCGAN face generator of ``gan-face-generate`` (PyTorch's DCGAN tutorial: five
    ConvTranspose2d, four BatchNorm2d; weights from its package's ``weights.tar``, read with
    ``weights_only``), in eval mode, and an example latent batch."""
    import torch
    from torch import nn

    nz, ngf = 100, 64
    layers = []
    for cin, cout, stride, pad in ((nz, ngf * 8, 1, 0), (ngf * 8, ngf * 4, 2, 1), (ngf * 4, ngf * 2, 2, 1),
                                   (ngf * 2, ngf, 2, 1)):
        layers += [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
    net = nn.Sequential(*layers, nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())
    state = torch.load(real_model("dcgan_faces"), map_location="cpu", weights_only=True)["netG_state_dict"]
    net.load_state_dict({k.removeprefix("main."): v for k, v in state.items()})
    return net.eval(), torch.randn(2, nz, 1, 1, generator=torch.Generator().manual_seed(0))


def _with_bn_statistics(net):
    """``net`` in eval mode, every BatchNorm2d given seeded random statistics, scale and shift."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in net if isinstance(m, nn.BatchNorm2d)):
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
        bn.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.data.copy_(torch.randn(n, generator=gen) * 0.5)
    return net.eval()


def grouped_torch():
    """A PyTorch ConvTranspose2d with groups 2 (4 -> 6 channels, stride 2) + BN: fuse_conv_bn_eval
    raises on it (pytorch#180995)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, 2, 1, groups=2), nn.BatchNorm2d(6), nn.ReLU())
    return _with_bn_statistics(net), torch.randn(2, 4, 6, 7, generator=torch.Generator().manual_seed(0))


def depthwise_torch():
    """A depthwise PyTorch ConvTranspose2d (groups = 4 = in = out channels) + BN: fuse_conv_bn_eval
    broadcasts the BN's scale against its (4, 1, k, k) weight into a (4, 4, k, k) one without a word
    (pytorch#180995); the fused module then fails at its first run (a bias of 4 for 16 channels)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(4, 4, 3, 1, 1, groups=4), nn.BatchNorm2d(4), nn.ReLU())
    return _with_bn_statistics(net), torch.randn(2, 4, 6, 7, generator=torch.Generator().manual_seed(0))


TORCH: dict[str, Callable] = {"dcgan_faces": dcgan_faces, "grouped_torch": grouped_torch,
                               "depthwise_torch": depthwise_torch}


def torch_fused(net):
    """``torch.nn.utils.fusion.fuse_conv_bn_eval`` on every (Conv or ConvTranspose, BatchNorm) pair of a
    Sequential, the BN replaced by an Identity (so the exported names line up with the original's)."""
    import copy

    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(net)
    for i in range(len(fused) - 1):
        conv, bn = fused[i], fused[i + 1]
        if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
            fused[i] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
            fused[i + 1] = nn.Identity()
    return fused


def case_file(name: str, folder: Path) -> Path:
    """The original of a case as an ONNX file (a real one where it lies, a built one written to ``folder``)."""
    if name in REAL:
        return real_model(name)
    path = folder / f"{name}.onnx"
    if not path.exists():
        if name in TORCH:
            net, example = TORCH[name]()
            _export(net, example, path)
        else:
            onnx.save(BUILT[name](), path)
    return path


def peer_file(case: str, peer: str, folder: Path) -> Path:
    """The file ``peer`` writes of ``case`` (written to ``folder`` once); the tool's exception when it
    does not fold that model."""
    path = folder / f"{case}.{peer}.onnx"
    if path.exists():
        return path
    if peer == "torch":
        net, example = TORCH[case]()
        return _export(torch_fused(net), example, path)
    proto = ONNX_PEERS[peer](onnx.load(case_file(case, folder)))
    onnx.save(proto, path)
    return path


def broken_everywhere(proto: onnx.ModelProto, layers: dict[str, int], factor: float) -> onnx.ModelProto:
    """A copy of a folded ONNX model whose every layer in ``layers`` has its kernel times ``factor`` along
    the output channel given (Conv and Gemm(transB): axis 0; Gemm: axis 1; ConvTranspose: c = g * (C_out /
    group) + j, on axes 0 and 1 split by group); a float16 weight behind a Cast is changed where it is stored."""
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    graph = broken.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name not in layers:
            continue
        weight = node.input[1]
        while weight not in inits and weight in producer and producer[weight].op_type in ("Cast", "Identity"):
            weight = producer[weight].input[0]
        tensor = inits[weight]
        w = numpy_helper.to_array(tensor).copy()
        c = layers[node.name]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "ConvTranspose":
            group = int(attrs.get("group", 1))
            per = w.shape[1]
            rows = w.shape[0] // group
            w[(c // per) * rows:(c // per + 1) * rows, c % per] *= factor
        elif node.op_type == "Gemm" and not attrs.get("transB", 0):
            w[:, c] *= factor
        else:
            w[c] *= factor
        tensor.CopyFrom(numpy_helper.from_array(w.astype(w.dtype), tensor.name))
    return broken
