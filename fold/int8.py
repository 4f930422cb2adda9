"""Real int8 (``--int8``): each variant of a fold quantized by the runtime's own static quantizer
(int8 weights and activations, calibrated on the verification's inputs) and run by that runtime;
every folded layer's dequantized int8 output compared with the float original's BN output it
replaced, and the outputs with the float original's, as SQNR in dB.

    original_per_tensor         the original, its BNs kept in float (the quantizer would give a
                                BN's scale one int8 step for all its channels)
    folded_per_tensor           foldscope's fold, one weight scale per tensor
    folded_per_channel          foldscope's fold, one weight scale per output channel
    folded_cle_per_tensor       the fold after cross-layer equalization (``fold.quantization``), per
                                tensor; its layers are compared with the equalized float model's own
                                tensors (equalization rescales the channels between a pair)
    folded_cle_bias_per_tensor  + high-bias absorption and bias correction: not built yet (null)

A layer's SQNR is the mean over its output channels of each channel's 10 log10(sum r^2 / sum (r - q)^2)
over every sample and element (as the weight-only view's); an output's is pooled over all of it;
None where it is undefined (no signal, or no difference at all). Only ONNX models in onnxruntime are built so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fold.core.result import FoldResult
from fold.errors import FoldError
from fold.frontend import Format

VARIANTS = ("original_per_tensor", "folded_per_tensor", "folded_per_channel", "folded_cle_per_tensor",
            "folded_cle_bias_per_tensor")
#: Format -> the runtime its int8 models run in.
RUNTIMES = {"onnx": "onnxruntime"}


def sqnr_db(reference: np.ndarray, got: np.ndarray) -> float | None:
    """10 log10(sum r^2 / sum (r - q)^2) over every element, in float64 (None: undefined)."""
    r = np.asarray(reference, dtype=np.float64).ravel()
    q = np.asarray(got, dtype=np.float64).ravel()
    if r.shape != q.shape or not np.isfinite(q).all():
        return None
    signal, noise = float(np.sum(r * r)), float(np.sum((r - q) ** 2))
    if signal == 0.0 or noise == 0.0:
        return None
    return 10.0 * float(np.log10(signal / noise))


def channel_sqnr_db(reference: np.ndarray, got: np.ndarray, axis: int = 1) -> float | None:
    """The mean over channels (``axis``) of each channel's pooled SQNR: a few wide channels cannot hide
    the collapse of the others (the weight-only view's figure, ``fold.core.quant``). Channels whose
    SQNR is undefined are left out."""
    r, q = np.asarray(reference, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if r.shape != q.shape or r.ndim <= axis:
        return sqnr_db(r, q)
    found = [sqnr_db(np.take(r, c, axis=axis), np.take(q, c, axis=axis)) for c in range(r.shape[axis])]
    found = [v for v in found if v is not None]
    return float(np.mean(found)) if found else None


@dataclass
class Int8Layer:
    """A folded layer's SQNR in every variant (the tensor: the BN output it replaced, or the Relu's
    that alone reads it)."""

    layer: str
    bn: str
    tensor: str
    sqnr_db: dict[str, float | None]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "tensor": self.tensor, "sqnr_db": dict(self.sqnr_db)}


@dataclass
class Int8Report:
    runtime: str
    version: str
    calibration: dict[str, Any]
    output_sqnr_db: dict[str, float | None]
    layers: list[Int8Layer]
    notes: list[str] = field(default_factory=list)

    def worst(self, variant: str = "folded_per_tensor") -> Int8Layer | None:
        """The layer that loses most in ``variant``: its lowest SQNR."""
        scored = [layer for layer in self.layers if layer.sqnr_db.get(variant) is not None]
        return min(scored, key=lambda layer: layer.sqnr_db[variant], default=None)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "version": self.version, "calibration": dict(self.calibration),
                "output_sqnr_db": dict(self.output_sqnr_db), "layers": [layer.to_dict() for layer in self.layers],
                "notes": list(self.notes)}


def check_runtime(fmt: Format, runtime: str | None) -> str:
    """The runtime ``--int8 RUNTIME`` names for a format (None: the format's own); one sentence if
    there is none."""
    own = RUNTIMES.get(fmt.name)
    if own is None:
        raise FoldError(f"--int8 builds real int8 models of ONNX files in onnxruntime; for a {fmt.label} model "
                        "the LiteRT path is not built yet.")
    if runtime not in (None, own):
        raise FoldError(f"--int8 {runtime} cannot run a {fmt.label} model; its int8 runtime is {own}.")
    return own


def _compared(view, tensor: str) -> str:
    """The tensor a layer is judged at: the BN's output, or the output of the Relu that alone reads it
    (the quantizer gives the two one range, from 0: below 0 nothing downstream reads the values)."""
    readers = view.readers(tensor)
    if len(readers) == 1 and readers[0].type == "Relu" and not view.is_output(tensor):
        return readers[0].output
    return tensor


def int8_report(result: FoldResult, inputs: list[np.ndarray], *, samples: int, seed: int | None, source: str,
                equalized: Any = None, runtime: str | None = None) -> Int8Report:
    """Every variant of ``result`` quantized and run by the format's runtime, calibrated and compared
    on ``inputs`` (the verification's: ``samples`` rows from ``source``)."""
    check_runtime(result.frontend.format, runtime)
    from fold.frontends.onnx import int8 as rt
    from fold.frontends.onnx.view import view_of

    pairs = result.folded_pairs
    view = view_of(result.original)
    tensors = {d.layer: _compared(view, view.by_name[d.bn_nodes[-1]].output) for d in pairs}
    float_outputs, float_values = rt.run(result.original, inputs, list(tensors.values()))
    notes = ["Calibrated and compared on the same inputs, the verification's.",
             "original_per_tensor keeps its BatchNorms in float (onnxruntime would quantize a BN's scale per "
             "tensor, even with per-channel weights).",
             "folded_cle_bias_per_tensor: high-bias absorption and bias correction are not built yet."]
    bn_nodes = [n for d in pairs for n in d.bn_nodes]
    builds = {"original_per_tensor": (result.original, False, bn_nodes),
              "folded_per_tensor": (result.folded, False, ()),
              "folded_per_channel": (result.folded, True, ())}
    if equalized is not None:
        builds["folded_cle_per_tensor"] = (equalized, False, ())
    else:
        notes.append("folded_cle_per_tensor: no pair of layers to equalize in this model.")
    references = {name: (float_outputs, float_values) for name in builds}
    if equalized is not None:
        references["folded_cle_per_tensor"] = rt.run(equalized, inputs, list(tensors.values()))
    per_layer: dict[str, dict[str, float | None]] = {d.layer: dict.fromkeys(VARIANTS) for d in pairs}
    outputs: dict[str, float | None] = dict.fromkeys(VARIANTS)
    for name, (model, per_channel, keep_float) in builds.items():
        try:
            int8 = rt.quantize(model, inputs, per_channel=per_channel, keep_float=keep_float)
        except FoldError as exc:  # a variant the quantizer refuses is a result too (a grouped ConvTranspose)
            notes.append(f"{name}: not built: {exc}")
            continue
        held = rt.held_value_names(int8, list(tensors.values()))
        got_outputs, got = rt.run(int8, inputs, list(held.values()))
        _, reference = references[name]
        for d in pairs:
            t = tensors[d.layer]
            per_layer[d.layer][name] = channel_sqnr_db(reference[t], got[held[t]])
        outputs[name] = sqnr_db(np.concatenate([np.ravel(o) for o in float_outputs]),
                                np.concatenate([np.ravel(o) for o in got_outputs]))
    layers = [Int8Layer(d.layer, d.bn, tensors[d.layer], per_layer[d.layer]) for d in pairs]
    return Int8Report(rt.RUNTIME, rt.runtime_version(), {"samples": samples, "seed": seed, "source": source},
                      outputs, layers, notes)
