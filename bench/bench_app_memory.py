"""Memory of the app across repeated reruns: does the process's RSS plateau once the caches are full?

Runs app.py headless with Streamlit's ``AppTest`` (in this process) ``--runs`` times, cycling
through the model sources and, on the Playground, through new "Channels out", "Stride" and
"Random seed" values, so that every run folds a model the caches have not seen and the
bounded caches (the page's ``st.cache_resource`` of workbenches with ``max_entries``, and the
views memoized on each workbench, which go with it) fill and evict.
After each run it collects garbage and reads VmRSS from /proc/self/status.

It prints one row per run (RSS in MiB and the change since the previous run), then the
growth over the last half of the runs and its least-squares slope; a bounded app shows a
plateau (a slope near zero), a leak a steady climb.

Run from the repository root:

    .venv/bin/python bench/bench_app_memory.py --runs 30
    .venv/bin/python bench/bench_app_memory.py --runs 60 --toggles --json memory.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED, SEED_OPS, PLAYGROUND, ZOO = "The seed example", "The seed, as TensorFlow ops", "Playground", "Model zoo"


def rss_mib() -> float:
    """Resident set size of this process, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def schedule(run: int) -> tuple[str, dict]:
    """The source of run ``run`` and, for the Playground, its settings (new ones every time)."""
    if run % 10 == 4:
        return SEED, {}
    if run % 10 == 7:
        return SEED_OPS, {}
    if run % 10 == 9:
        return ZOO, {}
    return PLAYGROUND, {"Channels out": 1 + (3 * run) % 16, "Stride": 1 + run % 3, "Random seed": run}


def _widget(at, label: str):
    return next(w for w in at.sidebar.number_input if w.label == label)


def rerun(at, source: str, settings: dict, toggles: bool):
    """Switch the page to ``source`` with ``settings`` and run it (twice when the source changes)."""
    radio = at.sidebar.radio[0]
    if radio.value != source:
        radio.set_value(source)
        at.run()
    for label, value in settings.items():
        _widget(at, label).set_value(value)
    if toggles:  # the op view and the converter comparison are memoized views of their own
        for toggle in at.toggle:
            toggle.set_value(True)
    return at.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="reruns of the page (default 30)")
    parser.add_argument("--toggles", action="store_true",
                        help="also turn on the op view and the TFLite converter comparison (slower)")
    parser.add_argument("--json", help="write every row and the summary to this file")
    args = parser.parse_args(argv)

    from streamlit.testing.v1 import AppTest

    start_rss = rss_mib()
    t0 = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    gc.collect()
    rows = [{"run": 0, "source": SEED, "settings": {}, "rss_mib": rss_mib(), "seconds": time.perf_counter() - t0,
             "errors": [e.value for e in (*at.exception, *at.error)]}]
    print(f"RSS before the app: {start_rss:.0f} MiB")
    print(f"{'run':>4}  {'source':<28} {'settings':<44} {'RSS MiB':>8} {'change':>7} {'s':>5}")
    for run in range(1, args.runs + 1):
        source, settings = schedule(run)
        t = time.perf_counter()
        rerun(at, source, settings, args.toggles)
        gc.collect()
        rows.append({"run": run, "source": source, "settings": settings, "rss_mib": rss_mib(),
                     "seconds": time.perf_counter() - t, "errors": [e.value for e in (*at.exception, *at.error)]})
    previous = None
    for row in rows:
        change = "" if previous is None else f"{row['rss_mib'] - previous:+.1f}"
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        flag = "  ERROR: " + "; ".join(map(str, row["errors"]))[:200] if row["errors"] else ""
        print(f"{row['run']:>4}  {row['source']:<28} {settings:<44} {row['rss_mib']:>8.1f} {change:>7} "
              f"{row['seconds']:>5.1f}{flag}")
        previous = row["rss_mib"]

    half = rows[len(rows) // 2:]
    xs = [r["run"] for r in half]
    ys = [r["rss_mib"] for r in half]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mean_x) ** 2 for x in xs))
    summary = {
        "runs": args.runs, "toggles": args.toggles, "rss_before_app_mib": start_rss,
        "rss_first_mib": rows[0]["rss_mib"], "rss_peak_mib": max(r["rss_mib"] for r in rows),
        "rss_last_mib": rows[-1]["rss_mib"],
        "growth_last_half_mib": half[-1]["rss_mib"] - half[0]["rss_mib"],
        "slope_last_half_mib_per_run": slope, "errors": sum(bool(r["errors"]) for r in rows),
        "total_seconds": time.perf_counter() - t0,
    }
    print()
    print(f"RSS: first page {summary['rss_first_mib']:.0f} MiB, peak {summary['rss_peak_mib']:.0f} MiB, "
          f"last {summary['rss_last_mib']:.0f} MiB")
    print(f"last half (runs {half[0]['run']}-{half[-1]['run']}): growth {summary['growth_last_half_mib']:+.1f} MiB, "
          f"slope {slope:+.2f} MiB/run; {summary['errors']} run(s) with an error on the page; "
          f"{summary['total_seconds']:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
