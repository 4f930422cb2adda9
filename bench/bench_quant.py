"""Benchmark the quantization view (``fold.tools.quantization.quant_report``) on the model zoo.

For each model: build and fold it as the page does (``foldscope_app.workbench.workbench.zoo_workbench``, one
verification sample), then time ``quant_report`` on the verification's inputs: every folded
layer's four SQNRs, cross-layer equalization of every pair it applies to, the equalized
model's check, and the four end-to-end runs with fake-quantized weights. Reported with the
median time (and min) of ``--repeats`` runs: folded layers, equalized pairs, the median and
worst per-tensor SQNR after folding, the median loss folding causes per tensor, and the
end-to-end output SQNRs.

Run from the repository root:

    .venv/bin/python bench/bench_quant.py
    .venv/bin/python bench/bench_quant.py --models "ResNet50" "ONNX: ResNet-50" --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from bench.bench_onnx import timed  # noqa: E402
from fold.tools.quantization import quant_report  # noqa: E402
from foldscope_app.examples.model_zoo import ZOO  # noqa: E402
from foldscope_app.workbench.quant_view import loss_db  # noqa: E402
from foldscope_app.workbench.workbench import zoo_workbench  # noqa: E402

MODELS = ("DCGAN generator", "U-Net (skip connections)", "MobileNetV2", "ResNet50",
          "ONNX: DCGAN generator (grouped ConvTranspose)", "ONNX: ResNet-50")


def measure(name: str, repeats: int) -> dict:
    wb = zoo_workbench(name)
    median, fastest, report = timed(lambda: quant_report(wb.result, wb.checked), repeats)
    after = [q.sqnr["per_tensor_after"].mean for q in report.layers]
    return {
        "model": name, "format": ZOO[name].format, "folded_layers": len(report.layers),
        "equalized_pairs": len(report.pairs), "seconds_median": round(median, 2), "seconds_min": round(fastest, 2),
        "per_tensor_after_median_db": round(statistics.median(after), 1),
        "per_tensor_after_worst_db": round(min(after), 1),
        "loss_median_db": round(statistics.median(loss_db(q) for q in report.layers), 1),
        "output_sqnr_db": {k: None if v is None else round(v, 1) for k, v in report.output_sqnr_db.items()},
        "cle_check_max_rel_diff": None if report.equalized_check is None else report.equalized_check.max_rel_diff,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(ZOO))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    rows = [measure(name, args.repeats) for name in args.models]
    print(f"{platform.processor() or platform.machine()}, {args.repeats} run(s) each")
    print(f"{'model':<46} {'layers':>6} {'pairs':>5} {'s':>6}  {'after dB':>8} {'worst':>6} {'loss':>5}  "
          "output dB: BN float / folded / per channel / + CLE")
    for r in rows:
        out = " / ".join("n/a" if v is None else f"{v:.1f}" for v in r["output_sqnr_db"].values())
        print(f"{r['model']:<46} {r['folded_layers']:>6} {r['equalized_pairs']:>5} {r['seconds_median']:>6.2f}  "
              f"{r['per_tensor_after_median_db']:>8.1f} {r['per_tensor_after_worst_db']:>6.1f} "
              f"{r['loss_median_db']:>5.1f}  {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
