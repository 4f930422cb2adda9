"""How the page holds up under a room of people: many sessions arriving a few seconds apart on one
server, against one user alone, measured in the same run through the real page (`streamlit run
app.py`, one headless Debian chromium driving every session with Playwright's async API:
``browser.sessions``).

One run, on a fresh server:

1. first visits: each model of the mix visited once, alone (this builds, folds, verifies and caches
   it: what the first person to ask for a model waits for);
2. single user: ``--baseline`` rounds of the mix, one session at a time (the models now cached);
3. the load: ``--sessions`` sessions arriving ``--gap`` s apart, session i asking for the mix's
   model i mod its size, each in its own browser context, closed once its figures show.

Every time is a visit's, from opening the page until its model's Fold tab shows the verdict, the
graph drawn and every picture loaded (the page opens on the seed; a zoo model is two clicks
further: the source, then the model). The server's process tree is sampled every 0.2 s for its
resident memory, and the load average is read before and after (the machine may be shared).

It prints each phase's times and the load's p95 against the single-user median (the goal: 3x at
most), the server's peak RSS (goal: 2.5 GiB at most), failures, and the bytes each visit received.
Run from the repository root (needs /usr/bin/chromium):

    .venv/bin/python bench/bench_load.py                      # 64 sessions, 6 s apart
    .venv/bin/python bench/bench_load.py --sessions 40 --gap 3 --json load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from browser.server import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402
from browser.sessions import PLAYGROUND, SEED, ZOO, Choice, Visit, visit  # noqa: E402

GIB = 2**30
#: The page's models a room asks for: the seed, the playground and the zoo's Keras models, big and small,
#: and an ONNX one.
MIX: list[Choice] = [SEED, PLAYGROUND, *(ZOO[name] for name in (
    "DCGAN generator", "U-Net (skip connections)", "MobileNetV2", "ResNet50", "DenseNet121",
    "ONNX: text detector head (paddle2onnx's ConvTranspose -> Add -> BN)"))]
MIXES = {"default": MIX, "big": [*MIX[:-1], ZOO["ONNX: ResNet-50"]]}


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # the process ended between two reads
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process tree: each live process's own and those of the children it reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def machine_cpu() -> float:
    """CPU seconds every process of the machine has spent, since boot (Linux /proc/stat: user to steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return sum(int(f) for i, f in enumerate(fields[:8]) if i not in (3, 4)) / os.sysconf("SC_CLK_TCK")  # not idle, iowait


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    total = 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue  # the process ended between two reads
    return total


class PeakRss:
    """The peak of ``tree_rss(pid)``, sampled every ``interval`` s in a thread while in the ``with``."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between the closest ranks (inf stays inf)."""
    ranked = sorted(values)
    k = (len(ranked) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ranked) - 1)
    if k == low or ranked[high] == ranked[low]:
        return ranked[low]
    return ranked[low] + (ranked[high] - ranked[low]) * (k - low)


async def alone(browser, url: str, choices: list[Choice], timeout_s: float, poll_ms: int) -> list[Visit]:
    return [await visit(browser, url, choice, timeout_s, poll_ms) for choice in choices]


async def load(browser, url: str, mix: list[Choice], sessions: int, gap: float, timeout_s: float,
               poll_ms: int) -> list[Visit]:
    """``sessions`` visits, the i-th starting i * ``gap`` s after the first."""
    async def arrive(i: int) -> Visit:
        await asyncio.sleep(i * gap)
        return await visit(browser, url, mix[i % len(mix)], timeout_s, poll_ms)

    return list(await asyncio.gather(*(arrive(i) for i in range(sessions))))


def _row(visits: list[Visit], cpu: dict[str, float]) -> dict:
    """A phase's figures; a visit that never showed its figures counts as the slowest (None: never)."""
    times = [v.seconds for v in visits if v.seconds is not None]
    every = times + [math.inf] * (len(visits) - len(times))
    median, p95 = statistics.median(every), percentile(every, 95)
    return {"visits": len(visits), "shown": len(times), "failed": len(visits) - len(times),
            "errors": [f"{v.choice.label}: {v.error}" for v in visits if v.error],
            "median_s": median if math.isfinite(median) else None, "p95_s": p95 if math.isfinite(p95) else None,
            "max_s": max(every) if math.isfinite(max(every)) else None,
            "median_received_kib": statistics.median(v.received_bytes for v in visits) / 1024,
            "server_cpu_s_per_visit": cpu["server"] / len(visits), "browser_cpu_s_per_visit": cpu["browser"] / len(visits),
            "others_cores": cpu["others_cores"]}


async def main_async(args: argparse.Namespace) -> dict:
    mix = MIXES[args.mix]
    phases: dict[str, tuple[list[Visit], dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = StreamlitServer(Path(tmp) / "streamlit.log").start()
        pid = server.proc.pid

        async def phase(name: str, run) -> None:
            """Run one phase, with the CPU seconds the server and the browser side (chromium, Playwright,
            this script) spent on it."""
            server_cpu, all_cpu, machine, start = tree_cpu(pid), tree_cpu(os.getpid()), machine_cpu(), time.perf_counter()
            visits = await run
            server_used = tree_cpu(pid) - server_cpu
            ours = tree_cpu(os.getpid()) - all_cpu
            phases[name] = visits, {"server": server_used, "browser": ours - server_used,
                                    "others_cores": max(0.0, machine_cpu() - machine - ours) / (time.perf_counter() - start)}

        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    with PeakRss(pid) as rss:
                        started = time.perf_counter()
                        load_before = os.getloadavg()
                        await phase("first visits", alone(browser, server.url, mix, args.timeout, args.poll_ms))
                        await phase("single user", alone(browser, server.url, mix * args.baseline, args.timeout,
                                                         args.poll_ms))
                        await phase("load", load(browser, server.url, mix, args.sessions, args.gap, args.timeout,
                                                 args.poll_ms))
                        load_after = os.getloadavg()
                finally:
                    await browser.close()
        finally:
            server.stop()
    summary = {name: _row(visits, cpu) for name, (visits, cpu) in phases.items()}
    per_model = {c.label: {name: [round(v.seconds, 2) if v.seconds is not None else None
                                  for v in visits if v.choice == c] for name, (visits, _) in phases.items()}
                 for c in mix}
    base, p95 = summary["single user"]["median_s"], summary["load"]["p95_s"]
    return {"sessions": args.sessions, "gap_s": args.gap, "mix": [c.label for c in mix], "baseline": args.baseline,
            "poll_ms": args.poll_ms, "phases": summary, "per_model": per_model,
            "p95_over_single_median": p95 / base if p95 and base else None,
            "peak_rss_gib": rss.peak / GIB, "load_average_before": load_before, "load_average_after": load_after,
            "wall_s": time.perf_counter() - started}


def report(result: dict) -> None:
    print(f"{result['sessions']} sessions arriving {result['gap_s']:g} s apart on one server; the mix: "
          f"{', '.join(result['mix'])}")
    print(f"load average before {result['load_average_before'][0]:.2f}, after {result['load_average_after'][0]:.2f}; "
          f"{result['wall_s']:.0f} s in all\n")
    print("| phase | visits | figures shown | median s | p95 s | max s | KiB received (median) "
          "| server CPU s / visit | browser CPU s / visit | other processes' cores |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, row in result["phases"].items():
        cells = [f"{row[k]:.1f}" if row[k] is not None else "-" for k in ("median_s", "p95_s", "max_s")]
        print(f"| {name} | {row['visits']} | {row['shown']} | {' | '.join(cells)} | {row['median_received_kib']:.0f} "
              f"| {row['server_cpu_s_per_visit']:.2f} | {row['browser_cpu_s_per_visit']:.2f} | {row['others_cores']:.2f} |")
    print()
    for label, phases in result["per_model"].items():
        print(f"  {label}: " + "; ".join(f"{k} {v}" for k, v in phases.items()))
    errors = [e for row in result["phases"].values() for e in row["errors"]]
    for error in errors:
        print(f"  FAILED {error[:300]}")
    ratio = result["p95_over_single_median"]
    print(f"\nload p95 / single-user median: {ratio:.2f}x (goal: 3x at most)" if ratio else
          "\nno ratio: more than 5 % of the load's visits (or the single user's half) never showed their figures")
    print(f"server's peak RSS (process tree): {result['peak_rss_gib']:.2f} GiB (goal: 2.5 GiB at most)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=64, help="sessions in the load (default 64)")
    parser.add_argument("--gap", type=float, default=6.0, help="seconds between two arrivals (default 6)")
    parser.add_argument("--baseline", type=int, default=2, help="rounds of the mix alone for the single-user "
                                                                 "times (default 2)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="default",
                        help="the models asked for: 'big' puts the zoo's ONNX ResNet-50 in place of the small ONNX one")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a visit may take (default 600)")
    parser.add_argument("--poll-ms", type=int, default=500,
                        help="how often a waiting session reads its page (default 500 ms: each read lays the page out)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    met = (result["p95_over_single_median"] is not None and result["p95_over_single_median"] <= 3
           and result["peak_rss_gib"] <= 2.5 and not any(r["failed"] for r in result["phases"].values()))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
