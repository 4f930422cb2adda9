"""Real int8 (``--int8``): each variant of a fold quantized by the runtime's own static quantizer
(int8 weights and activations, calibrated on the verification's inputs) and run by that runtime;
every folded layer's dequantized int8 output compared with the float original's BN output it
replaced, and the outputs with the float original's, as SQNR in dB.

    original_per_tensor         the original, its BNs kept in float (the quantizer would give a
                                BN's scale one int8 step for all its channels)
    folded_per_tensor           foldscope's fold, one weight scale per tensor
    folded_per_channel          foldscope's fold, one weight scale per output channel
    folded_cle_per_tensor       the fold after cross-layer equalization (``fold.tools.quantization``), per
                                tensor; its layers are compared with the equalized float model's own
                                tensors (equalization rescales the channels between a pair)
    folded_cle_bias_per_tensor  + high-bias absorption (data-free, from the BN statistics: Nagel et al.
                                2019 section 4.2, ``fold.tools.quantization.high_bias_absorbed``) + bias
                                correction (empirical, section 4.3: each folded layer's mean int8-weight
                                error on the calibration inputs taken off its bias), per tensor; its
                                layers are compared with the absorbed float model's own tensors

A layer's SQNR is the mean over its output channels of each channel's 10 log10(sum r^2 / sum (r - q)^2)
over every sample and element (as the weight-only view's); an output's is pooled over all of it;
None where it is undefined (no signal, or no difference at all). Each format's part ``int8`` runs its own
runtime (``fold.frontends.formats.Int8Adapter``): onnxruntime for ONNX models, LiteRT for Keras models and
.tflite files (TensorFlow's converter and ai-edge-quantizer as the quantizers); none yet for .pb files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fold.core.errors import FoldError, require
from fold.core.quant import GRANULARITY_TARGETS, granularity_sqnr
from fold.core.result import FoldResult
from fold.frontends.formats import FRONTENDS, Format
from fold.tools.quantization import Absorbed, bias_corrected, high_bias_absorbed

VARIANTS = ("original_per_tensor", "folded_per_tensor", "folded_per_channel", "folded_cle_per_tensor",
            "folded_cle_bias_per_tensor")


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
    if r.shape != q.shape or r.ndim < 2:
        return sqnr_db(r, q)
    others = tuple(i for i in range(r.ndim) if i != axis % r.ndim)
    with np.errstate(invalid="ignore", over="ignore"):  # every channel's sums at once, as sqnr_db takes them
        signal, noise = np.sum(r * r, axis=others), np.sum((r - q) ** 2, axis=others)
    defined = np.isfinite(q).all(axis=others) & (signal != 0.0) & (noise != 0.0)
    found = 10.0 * np.log10(signal[defined] / noise[defined])
    return float(np.mean(found)) if found.size else None


@dataclass
class Int8Layer:
    """A folded layer's SQNR in every variant (the tensor: the BN output it replaced, or the Relu's
    that alone reads it), and its BN's scale spread (``scale_spread``): what folding multiplies the
    kernel's output channels by, largest |s| over smallest non-zero, where a per-tensor scale loses."""

    layer: str
    bn: str
    tensor: str
    sqnr_db: dict[str, float | None]
    scale_spread: float | None = None

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "tensor": self.tensor, "sqnr_db": dict(self.sqnr_db),
                "bn_scale_spread": self.scale_spread}


@dataclass
class Granularity:
    """A folded transposed convolution's int8 weight SQNR (mean over output channels) under the
    granularity each known target uses: simulated (``fold.core.quant``), weights only; the runtime's
    own per-output-channel figure is the layer's ``folded_per_channel``."""

    layer: str
    bn: str
    weight_sqnr_db: dict[str, float | None]

    def rescued_by_per_channel(self, margin_db: float = 6.0) -> dict[str, bool]:
        """For each target granularity, whether it keeps within ``margin_db`` of per-output-channel."""
        best = self.weight_sqnr_db["per_output_channel"]
        return {g: best is not None and v is not None and v >= best - margin_db for g, v in self.weight_sqnr_db.items()}

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bn": self.bn, "weight_sqnr_db": dict(self.weight_sqnr_db), "simulated": True}


@dataclass
class Int8Report:
    runtime: str
    version: str
    calibration: dict[str, Any]
    output_sqnr_db: dict[str, float | None]
    layers: list[Int8Layer]
    notes: list[str] = field(default_factory=list)
    granularity: list[Granularity] = field(default_factory=list)

    def worst(self, variant: str = "folded_per_tensor") -> Int8Layer | None:
        """The layer that loses most in ``variant``: its lowest SQNR."""
        scored = [layer for layer in self.layers if layer.sqnr_db.get(variant) is not None]
        return min(scored, key=lambda layer: layer.sqnr_db[variant], default=None)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "version": self.version, "calibration": dict(self.calibration),
                "output_sqnr_db": dict(self.output_sqnr_db), "layers": [layer.to_dict() for layer in self.layers],
                "granularity": [g.to_dict() for g in self.granularity],
                "granularity_targets": dict(GRANULARITY_TARGETS), "notes": list(self.notes)}


def scale_spread(scale: np.ndarray) -> float | None:
    """max |s| / min |s| over the non-zero, finite channels (None: fewer than one such channel)."""
    s = np.abs(np.asarray(scale, dtype=np.float64))
    s = s[np.isfinite(s) & (s > 0)]
    return float(s.max() / s.min()) if s.size else None


def check_runtime(fmt: Format, runtime: str | None) -> str:
    """The runtime ``--int8 RUNTIME`` names for a format (None: the format's own, ``Format.int8``); one
    sentence if there is none, or if the package its int8 part needs is not installed."""
    own = fmt.int8
    if own is None:
        built = [f"{f.label} ({f.int8})" for f in FRONTENDS.values() if f.int8]
        raise FoldError(f"--int8 builds real int8 models of {', '.join(built[:-1])} and {built[-1]} files; for a "
                        f"{fmt.label} file it is not built yet.")
    if runtime not in (None, own):
        raise FoldError(f"--int8 {runtime} cannot run a {fmt.label} model; its int8 runtime is {own}.")
    if fmt.int8_needs:  # a package foldscope's int8 extra brings, beyond the format's own
        require("int8", f"--int8 on a {fmt.label} file", fmt.int8_needs.replace("-", "_"))
    return own


def int8_report(result: FoldResult, inputs: list[np.ndarray], *, samples: int, seed: int | None, source: str,
                equalized: Any = None, runtime: str | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> Int8Report:
    """Every variant of ``result`` quantized and run by the format's runtime, calibrated and compared
    on ``inputs`` (the verification's: ``samples`` rows from ``source``). ``progress(variant, k, n)``
    is told before the k-th of the n int8 models is built (0-based), for a caller that shows it."""
    fmt = result.frontend.format
    check_runtime(fmt, runtime)
    rt = fmt.part("int8").Adapter()
    pairs = result.backward_pairs
    at = rt.judged(result)
    original_points, folded_points = [at[d.layer][0] for d in pairs], [at[d.layer][1] for d in pairs]
    float_outputs, float_values = rt.run_float(result.original, inputs, original_points)
    notes = ["Calibrated and compared on the same inputs, the verification's."]
    notes.append(rt.original_note)
    bn_nodes = [n for d in pairs for n in d.bn_nodes]
    builds = {"original_per_tensor": (result.original, False, bn_nodes, original_points),
              "folded_per_tensor": (result.folded, False, [], folded_points),
              "folded_per_channel": (result.folded, True, [], folded_points)}
    references = {name: {d.layer: float_values[at[d.layer][0]] for d in pairs} for name in builds}
    if equalized is not None:
        builds["folded_cle_per_tensor"] = (equalized, False, [], folded_points)
        _, values = rt.run_float(equalized, inputs, folded_points)
        references["folded_cle_per_tensor"] = {d.layer: values[at[d.layer][1]] for d in pairs}
    else:
        notes.append("folded_cle_per_tensor: no pair of layers to equalize in this model.")
    base = equalized if equalized is not None else result.folded
    stepped = _bias_steps(rt, result, base, inputs, float_outputs, folded_points, notes, cle=equalized is not None)
    if stepped is not None:
        builds["folded_cle_bias_per_tensor"] = (stepped[0], False, [], folded_points)
        references["folded_cle_bias_per_tensor"] = {d.layer: stepped[1][at[d.layer][1]] for d in pairs}
    per_layer: dict[str, dict[str, float | None]] = {d.layer: dict.fromkeys(VARIANTS) for d in pairs}
    outputs: dict[str, float | None] = dict.fromkeys(VARIANTS)
    for k, (name, (model, per_channel, keep_float, points)) in enumerate(builds.items()):
        if progress is not None:
            progress(name, k, len(builds))
        try:
            got_outputs, got = rt.run_int8(model, inputs, points, per_channel=per_channel, keep_float=keep_float)
        except FoldError as exc:  # a variant the quantizer refuses is a result too (a grouped ConvTranspose)
            notes.append(f"{name}: not built: {exc}")
            continue
        unseen = [d.layer for d, point in zip(pairs, points) if point not in got]
        if unseen:
            notes.append(f"{name}: the int8 model holds no tensor of {', '.join(unseen)} (fused away): no figure.")
        for d, point in zip(pairs, points):
            if point in got:
                per_layer[d.layer][name] = channel_sqnr_db(references[name][d.layer], got[point], rt.channel_axis)
        outputs[name] = sqnr_db(_flat(float_outputs), _flat(got_outputs))
    layers = [Int8Layer(d.layer, d.bn, at[d.layer][0], per_layer[d.layer], scale_spread(d.affine.scale)) for d in pairs]
    return Int8Report(rt.name, rt.version, {"samples": samples, "seed": seed, "source": source}, outputs, layers,
                      notes, granularity(result, notes))


def _moved(reference: np.ndarray, outputs: list[np.ndarray]) -> float | None:
    """A changed float model's output SQNR against ``reference``, another's flat outputs (None: identical)."""
    return sqnr_db(reference, _flat(outputs))


def _moved_text(moved: float | None, against: str = "the float original") -> str:
    return "not at all" if moved is None else f"to {moved:.1f} dB SQNR against {against}"


def _absorption_text(absorbed: Absorbed, moved: float | None) -> str:
    """What high-bias absorption did, in words: the pairs, the channels, how far the float function moved."""
    done = [f"{a} -> {b} ({n} channel{'s' if n != 1 else ''}, up to {c:.3g})"
            for (a, b), (n, c) in absorbed.moved.items() if n]
    text = "high-bias absorption (Nagel et al. 2019 section 4.2, from the BN statistics): "
    if done:
        text += f"{', '.join(done)}, which moves the float function {_moved_text(moved, 'the model before it')}"
    elif absorbed.moved:
        text += "no channel's mean lies 3 standard deviations above 0, nothing moved"
    else:
        text += "no pair to absorb into"
    if absorbed.skipped:
        text += "; not absorbed: " + "; ".join(f"{a} -> {b}: {r}" for (a, b), r in absorbed.skipped.items())
    return text


def _bias_steps(rt, result: FoldResult, base: Any, inputs: list[np.ndarray], float_outputs: list[np.ndarray],
                points: list[str], notes: list[str], *, cle: bool) -> tuple[Any, dict[str, np.ndarray]] | None:
    """``base`` (the fold, after CLE when ``cle``) after high-bias absorption and bias correction, and the
    absorbed float model's tensors at ``points`` (what the variant's layers are compared with: bias
    correction moves the float function on purpose, absorption by what it says); None, with a note,
    when it cannot be built. Each step's move of the float function joins ``notes``."""
    try:
        absorbed = high_bias_absorbed(result, base)
        corrected = bias_corrected(result, absorbed.model, inputs)
    except (ValueError, KeyError) as exc:  # a layer that cannot be run alone or rewritten
        notes.append(f"folded_cle_bias_per_tensor: not built: {exc}")
        return None
    absorbed_outputs, values = rt.run_float(absorbed.model, inputs, points)
    moved = None if absorbed.model is base else _moved(_flat(rt.run_float(base, inputs, [])[0]), absorbed_outputs)
    notes.append("folded_cle_bias_per_tensor: " + ("CLE, then " if cle else "no CLE pair; ")
                 + _absorption_text(absorbed, moved) + "; its layers are compared with the absorbed float model's "
                 "own tensors.")
    notes.append("folded_cle_bias_per_tensor: then empirical bias correction (each folded layer's mean int8-weight "
                 "error on the calibration inputs taken off its bias), which on purpose moves the float function, "
                 f"{_moved_text(_moved(_flat(float_outputs), rt.run_float(corrected, inputs, [])[0]))}.")
    return corrected, values


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])


def granularity(result: FoldResult, notes: list[str]) -> list[Granularity]:
    """Every folded transposed convolution's weights under each target's granularity."""
    found = []
    for d in result.backward_pairs:
        if d.family != "transpose":
            continue
        k = result.frontend.kernel(result.folded, d.layer)
        try:
            figures = granularity_sqnr(k.kernel, k.kind, k.groups)
        except ValueError as exc:  # a layout whose input channels do not lie along one axis
            notes.append(f"granularity of '{d.layer}': {exc}")
            continue
        found.append(Granularity(d.layer, d.bn, {g: f.mean for g, f in figures.items()}))
    return found
