"""The HTML report (``--html``, the Fold tab's download) of a zoo model: how long it takes to build,
how large it is and of what, and how long headless chromium takes to draw its graph from disk with
the network cut.

The model is the page's (``foldscope_app.workbench.workbench.zoo_workbench``: DenseNet121 with ``weights=None``, 2
samples); the report is the same function the command line and the page call. The goal: the fold
and verification with their report within 1.3x the fold and verification alone, measured in the
same run; the process's peak RSS is given before and after the report. Run from the
repository root (the draw time needs /usr/bin/chromium):

    .venv/bin/python bench/bench_report.py
    .venv/bin/python bench/bench_report.py --model ResNet50 --out artifacts/resnet50.html
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from foldscope_app.workbench.workbench import zoo_workbench  # noqa: E402


def parts(text: str) -> dict[str, int]:
    """Bytes of the graphs' scenes and the charts' numbers (JSON), the pictures, and the rest (text,
    tables, the scripts)."""
    figures = sum(len(m) for m in re.findall(r'<script id="graphs"[^>]*>(.*?)</script>', text, re.S))
    charts = sum(len(m) for m in re.findall(r'<script id="charts"[^>]*>(.*?)</script>', text, re.S))
    pictures = sum(len(m) for m in re.findall(r'src="(data:[^"]*)"', text))
    return {"graph JSON": figures, "charts JSON": charts, "pictures": pictures,
            "text, tables, scripts": len(text.encode()) - figures - charts - pictures}


def draw_seconds(path: Path) -> float:
    """From opening the file until its graph's nodes are drawn, every request off the file aborted."""
    from playwright.sync_api import sync_playwright

    from browser.server import launch_chromium

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                      else route.abort())
        page = context.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("() => document.getElementById('graph-0').dataset.ready === '1'"
                               " && !!document.querySelector('.fsg-node')", timeout=120_000)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="DenseNet121", help="a zoo model's label (default DenseNet121)")
    parser.add_argument("--out", type=Path, help="keep the report here (default: a temporary file)")
    parser.add_argument("--no-browser", action="store_true", help="skip the draw time in chromium")
    args = parser.parse_args()
    start = time.perf_counter()
    wb = zoo_workbench(args.model)
    fold_s = time.perf_counter() - start
    proof_s = wb.result.timings_s["fold"] + wb.result.timings_s["verify"]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    start = time.perf_counter()
    data = wb.html_report()
    build_s = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    start = time.perf_counter()
    again = wb.html_report()
    cached_s = time.perf_counter() - start
    assert again is data
    text = data.decode("utf-8")
    print(f"{args.model}: workbench {fold_s:.1f} s (build the model, fold {wb.result.timings_s['fold']:.2f} s, verify "
          f"{wb.result.timings_s['verify']:.2f} s on {wb.verification.samples} samples); report built in {build_s:.2f} s "
          f"(again, from the workbench's memo: {cached_s * 1e3:.2f} ms); fold + verify + report = "
          f"{(proof_s + build_s) / proof_s:.2f}x fold + verify (goal 1.3x); peak RSS {rss_before:.0f} MiB before the "
          f"report, {rss_after:.0f} MiB after; {len(data):,} bytes ({len(data) / 2**20:.2f} MiB, {len(data) / 1e6:.2f} MB)")
    for name, size in parts(text).items():
        print(f"  {name:<22} {size:>10,} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or Path(tmp) / "report.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if not args.no_browser:
            print(f"  drawn in headless chromium from disk, network cut: {draw_seconds(path):.1f} s")


if __name__ == "__main__":
    main()
