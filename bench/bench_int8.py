"""Benchmark real int8 (``fold.int8.int8_report``, ``--int8``) on the model zoo, beside the
quantizer's own run in the same process.

For each model: build and fold it as the page does (``demo.workbench.zoo_workbench``), then time
the whole real-int8 report (every variant quantized by the runtime's own quantizer, run with its
tensors kept, every folded layer judged) against the peer floor: the runtime's quantizer alone on
the folded model, once, with nothing kept (onnxruntime's ``quantize_static`` for ONNX models,
TensorFlow's converter in full-integer mode for Keras models). The report builds three or four
variants, so a ratio near that count means the layer-by-layer line-up costs little beyond the
quantization itself.

Run from the repository root:

    .venv/bin/python bench/bench_int8.py
    .venv/bin/python bench/bench_int8.py --models "ResNet50" "ONNX: ResNet-50"
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fold.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from demo.workbench import zoo_workbench  # noqa: E402
from fold.int8 import int8_report  # noqa: E402
from fold.quantization import quant_report  # noqa: E402

MODELS = ("DCGAN generator", "U-Net (skip connections)", "MobileNetV2",
          "ONNX: DCGAN generator (grouped ConvTranspose)", "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)",
          "ONNX: ResNet-50")


def quantizer_alone(wb) -> float:
    """Seconds the runtime's own quantizer takes on the folded model, per tensor, nothing kept."""
    inputs = wb.checked.inputs
    start = time.perf_counter()
    if wb.frontend.format.name == "onnx":
        from fold.frontends.onnx.int8 import quantize

        quantize(wb.result.folded, inputs, per_channel=False)
    else:
        from fold.frontends.keras.int8 import quantize

        quantize(wb.result.folded, inputs, per_channel=False)
    return time.perf_counter() - start


def bench(name: str) -> dict:
    wb = zoo_workbench(name)
    equalized = quant_report(wb.result, wb.checked).equalized
    v = wb.verification
    start = time.perf_counter()
    report = int8_report(wb.result, wb.checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                         equalized=equalized)
    seconds = time.perf_counter() - start
    alone = quantizer_alone(wb)
    worst = report.worst()
    return {"model": name, "runtime": report.runtime, "folded layers": len(report.layers),
            "samples": v.samples, "report s": round(seconds, 2), "quantizer alone s": round(alone, 2),
            "ratio": round(seconds / alone, 2) if alone else None,
            "output dB": {k: None if x is None else round(x, 1) for k, x in report.output_sqnr_db.items()},
            "loses most": None if worst is None else f"{worst.layer} {worst.sqnr_db['folded_per_tensor']:.1f} dB"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine()}))
    for name in args.models:
        print(json.dumps(bench(name)), flush=True)


if __name__ == "__main__":
    main()
