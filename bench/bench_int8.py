"""Benchmark real int8 (``fold.tools.int8_report.int8_report``, ``--int8``) on the model zoo, beside the
quantizer's own run in the same process.

For each model: build and fold it as the page does (``foldscope_app.workbench.workbench.zoo_workbench``), then time
the whole real-int8 report (every variant quantized by the runtime's own quantizer, run with its
tensors kept, every folded layer judged) against the peer floor: the runtime's quantizer alone on
the folded model, once, with nothing kept (onnxruntime's ``quantize_static`` for ONNX models,
TensorFlow's converter in full-integer mode for Keras models), and on the five variants' models
together (the report's floor: it quantizes each once; goal: the report within 2x of it). For Keras models, also Google's AI Edge Quantizer on the converter's float
.tflite of the fold: its quantize (static int8, per tensor) and its own ``validate`` (every tensor
of the float model against the int8 one, by name, one sample per row), the nearest thing it has to
the report, which cannot line up an unfolded model against a folded one.

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

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from fold.core.errors import FoldError  # noqa: E402
from fold.tools.int8_report import int8_report  # noqa: E402
from fold.tools.quantization import quant_report  # noqa: E402
from foldscope_app.workbench.workbench import zoo_workbench  # noqa: E402

MODELS = ("DCGAN generator", "U-Net (skip connections)", "MobileNetV2",
          "ONNX: DCGAN generator (grouped ConvTranspose)", "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)",
          "ONNX: ResNet-50")


def quantizer_alone(wb, equalized) -> tuple[float, float]:
    """Seconds the runtime's own quantizer takes on the folded model, per tensor, nothing kept; and on
    the five variants' models together (the original, the fold per tensor and per channel, the
    equalized fold twice: its bias-corrected variant has the same graph), the report's floor."""
    inputs = wb.checked.inputs
    if wb.frontend.format.name == "onnx":
        from fold.frontends.onnx.int8 import quantize
    else:
        from fold.frontends.keras.int8 import quantize
    cle = equalized if equalized is not None else wb.result.folded
    runs = [(wb.result.original, False), (wb.result.folded, False), (wb.result.folded, True), (cle, False),
            (cle, False)]
    seconds = []
    for model, per_channel in runs:
        start = time.perf_counter()
        try:
            quantize(model, inputs, per_channel=per_channel)
        except FoldError:  # a variant the quantizer refuses (a grouped ConvTranspose per channel): the report's too
            continue
        seconds.append(time.perf_counter() - start)
    return seconds[1], sum(seconds)


def ai_edge_quantizer_alone(wb) -> tuple[float, float]:
    """Seconds of ai-edge-quantizer's quantize and of its validate on the converter's float .tflite of
    the fold (Keras models), on the verification's rows."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric

    from fold.frontends.keras.io import to_tflite
    from fold.frontends.tflite import int8 as lite
    from fold.frontends.tflite.io import model_from_bytes

    model = model_from_bytes(to_tflite(wb.result.folded), "folded.tflite")
    inputs = wb.checked.inputs
    start = time.perf_counter()
    int8 = lite.quantize(model, inputs, per_channel=False)
    quantized = time.perf_counter() - start
    data, key = lite.with_signature(model)
    names = list(lite.signature_inputs(data, key, [s.name for s in wb.frontend.inputs(wb.result.folded)]).values())
    rows = [{n: x[i:i + 1] for n, x in zip(names, inputs)} for i in range(inputs[0].shape[0])]
    start = time.perf_counter()
    quantizer.Quantizer(bytearray(data), previous_quantized_model=bytearray(int8)).validate(
        {key: rows}, error_metrics=[ValidationErrorMetric.SNR], use_xnnpack=False, num_threads=1)
    return quantized, time.perf_counter() - start


def bench(name: str) -> dict:
    wb = zoo_workbench(name)
    equalized = quant_report(wb.result, wb.checked).equalized
    v = wb.verification
    start = time.perf_counter()
    report = int8_report(wb.result, wb.checked.inputs, samples=v.samples, seed=v.seed, source=v.inputs_source,
                         equalized=equalized)
    seconds = time.perf_counter() - start
    alone, five = quantizer_alone(wb, equalized)
    worst = report.worst()
    aeq = ai_edge_quantizer_alone(wb) if wb.frontend.format.name == "keras" else None
    return {"model": name, "runtime": report.runtime, "folded layers": len(report.layers),
            "samples": v.samples, "report s": round(seconds, 2), "quantizer alone s": round(alone, 2),
            "quantizer on the five variants s": round(five, 2), "ratio to the five": round(seconds / five, 2),
            "ai-edge-quantizer quantize s": None if aeq is None else round(aeq[0], 2),
            "ai-edge-quantizer validate s": None if aeq is None else round(aeq[1], 2),
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
