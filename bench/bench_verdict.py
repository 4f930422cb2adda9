"""How much the verdict can see, and what it costs: on the zoo and on real models, the margins of
correct folds (how close the worst folded layer and the worst tensor came to their tolerance), the
smallest margin by which a 1 % error in one channel of one layer fails, and the verification's time
against the physical floor of two plain forward passes on the same inputs.

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

from fold.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import numpy as np  # noqa: E402

from demo import zoo  # noqa: E402
from fold.core.affine import scale_kernel  # noqa: E402
from fold.frontend import FRONTENDS, LayerKernel  # noqa: E402
from fold.pipeline import fold, fold_file, model_inputs, run, verify, verify_models  # noqa: E402


def _real(package: str, inner: str):
    import importlib.util

    spec = importlib.util.find_spec(package)
    path = Path(spec.submodule_search_locations[0], inner)

    def build():
        return fold_file(path)
    return build


def _zoo(name: str):
    def build():
        entry = zoo.ZOO[name]
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
    "PaddleOCR v2 classifier (real)": _real("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    "FER emotion, Keras 2 .h5 (real)": _real("fer", "data/emotion_model.hdf5"),
}


def _broken(result, layer: str):
    """The folded model with ``layer``'s kernel 1 % off in output channel 0."""
    frontend = result.frontend
    k = frontend.kernel(result.folded, layer)
    scale = np.ones(k.channels)
    scale[0] = 1.01
    kernel = scale_kernel(k.kernel, scale, k.kind, k.groups).astype(k.kernel.dtype)
    return frontend.with_kernels(result.folded, {layer: LayerKernel(kernel, None, k.kind, k.groups)})


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
    layers = [d.layer for d in result.folded_pairs]
    picks = sorted({layers[0], layers[len(layers) // 2], layers[-1]}) if layers else []
    caught = []
    for layer in picks:
        bad = verify_models(frontend, result.original, _broken(result, layer), decisions=result.decisions,
                            inputs=inputs, graphs=(result.graph_before, result.graph_after)).verification
        check = next(c for c in bad.folded_layers if c.layer == layer)
        caught.append((layer, bad.verdict, check.margin))
    row["1 % errors caught"] = f"{sum(v == 'fail' for _, v, _ in caught)} / {len(caught)}"
    row["smallest failing margin"] = min((m for _, _, m in caught), default=None)
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
