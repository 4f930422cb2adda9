"""The graph's layout on DenseNet121: ELK (``viz.layout``, in an embedded V8) against the layered
layout foldscope drew before it (the hand-written one, read from git at ``--baseline``), in the
same run, on the same graphs; and what the page pays for the view "every block open" (the scene:
labels, layout, frames) against the view with every block closed.

The model is built with ``weights=None`` and folded (no verification: the layout needs the graphs
only). Run from the repository root (git must have the baseline commit):

    .venv/bin/python bench/bench_layout.py
    .venv/bin/python bench/bench_layout.py --model ResNet50 --repeat 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fold.core.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

from fold.engine.pipeline import fold  # noqa: E402
from fold.frontends.formats import FRONTENDS  # noqa: E402
from foldscope_app.examples.model_zoo import application  # noqa: E402
from viz import fold_graph  # noqa: E402
from viz.interactive import frames  # noqa: E402
from viz.layout import pane_layouts  # noqa: E402
from viz.text import label_lines, label_size  # noqa: E402

#: The last commit whose viz/layout.py is the hand-written layered layout.
BASELINE = "40539eb"


def baseline_module(rev: str) -> types.ModuleType:
    """viz/layout.py as it was at ``rev``, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:viz/layout.py"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType("baseline_layout")
    sys.modules[module.__name__] = module  # its dataclasses look themselves up there
    exec(compile(source, f"{rev}:viz/layout.py", "exec"), module.__dict__)  # noqa: S102 (our own file, from git)
    return module


def timed(call, repeat: int) -> tuple[float, float]:
    """The first call's seconds, and the median of ``repeat`` more."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        runs.append(time.perf_counter() - start)
    return first, statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="DenseNet121", help="a keras.applications name (default DenseNet121)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the first (default 5)")
    parser.add_argument("--baseline", default=BASELINE, help=f"the commit of the old layout (default {BASELINE})")
    args = parser.parse_args()
    result = fold(FRONTENDS["keras"].frontend(), application(args.model))
    before, after = fold_graph.open_graphs(result, ())
    old = baseline_module(args.baseline)
    sizes = {n: label_size(label_lines(g, n)) for g in (before, after) for n in g}
    rows = {
        "old: layered positions (no sizes, no routes)": timed(lambda: old.before_after_positions(before, after),
                                                              args.repeat),
        "ELK: boxes and routed edges": timed(lambda: pane_layouts(before, after, sizes), args.repeat),
    }
    every = fold_graph.block_view(result, (before, after), ())
    group_of, parent_group = frames((before, after), every.blocks)
    rows["ELK: every block open, as frames"] = timed(
        lambda: pane_layouts(before, after, sizes, group_of, parent_group), args.repeat)
    rows["the page's scene, every block open"] = timed(lambda: fold_graph.figure(result, graphs=(before, after)),
                                                       args.repeat)
    rows["the page's scene, every block closed"] = timed(
        lambda: fold_graph.figure(result, graphs=(before, after), blocks=every), args.repeat)
    base = rows["old: layered positions (no sizes, no routes)"][1]
    print(f"{args.model}: {len(before)} + {len(after)} nodes, {before.number_of_edges()} + "
          f"{after.number_of_edges()} edges; median of {args.repeat} runs after the first")
    print(f"  {'':<46} {'first':>8} {'median':>8} {'vs old':>8}")
    for name, (first, median) in rows.items():
        print(f"  {name:<46} {first:>7.3f}s {median:>7.3f}s {median / base:>7.1f}x")


if __name__ == "__main__":
    main()
