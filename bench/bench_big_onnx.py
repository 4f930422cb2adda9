"""Benchmark the streaming ONNX fold on a model past protobuf's 2 GB, beside the field's ONNX tools.

Builds a synthetic model with external data under ``--dir`` (default /var/tmp): ``--layers``
blocks of 1x1 Conv (``--channels`` in and out, with bias) -> BatchNormalization -> Relu on a
1x``--channels``x2x2 input, every weight written straight to one data file (the largest tensor is
one kernel, channels^2 float32: 256 MiB at 8192 channels; 12 layers make 3 GiB). Then, each in a
subprocess of its own, one after the other:

- foldscope ``python -m fold MODEL --no-verify`` (the fold alone: read, fold, write OUT + OUT.data),
- foldscope ``python -m fold check MODEL OUT`` (the verification of that output, from disk),
- onnxruntime running the original and that output from their files on the check's 4 rows (the
  check's floor: two runtime passes, every optimization off, as foldscope runs them),
- foldscope ``python -m fold MODEL`` (fold and verify in one run),
- onnxsim (``onnxsim.simplify`` on the loaded model, saved with external data),
- onnxoptimizer (``fuse_bn_into_conv`` on the loaded model, saved with external data),
- onnxruntime's offline optimizer at ORT_ENABLE_BASIC and at ORT_ENABLE_EXTENDED
  (``SessionOptions.optimized_model_filepath``, the session built from the file path, its
  initializers written to external data),

and reports each one's wall time, peak RSS (``ru_maxrss`` from ``os.wait4`` of that child), its
exit and what it did (BatchNormalization nodes left in what it wrote) or how it failed (the last
line of its stderr). A child past ``--timeout`` seconds or ``--max-rss`` GiB is killed and
reported so. The floors: one sequential read of the data file in 64 MiB chunks (as it is: the
page cache is not dropped), one sequential write of as many bytes (a fold that folds every layer
writes that much) and one ``cp`` of the data file to the same disk. Goals: foldscope's fold peak
RSS at most the largest tensor + 1 GiB and its wall time at most 3x the ``cp``; the check's peak
RSS at most 4 GiB and its wall time at most 2x onnxruntime's two runs. Everything written under
``--dir`` is removed at the end.

Run from the repository root (needs about 3 x the model size on disk and several GiB of RAM):

    .venv/bin/python bench/bench_big_onnx.py
    .venv/bin/python bench/bench_big_onnx.py --layers 2 --channels 2048   # a 32 MiB smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
CHUNK = 64 * 2**20


def _external(name: str, array: np.ndarray, data, folder_name: str) -> TensorProto:
    """``array`` appended to the open data file ``data`` (page-aligned), as an external initializer."""
    offset = -(-data.tell() // 4096) * 4096
    data.seek(offset)
    data.write(np.ascontiguousarray(array, dtype="<f4").tobytes())
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(array.shape))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", folder_name), ("offset", str(offset)), ("length", str(array.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def build(folder: Path, layers: int, channels: int, seed: int = 0) -> Path:
    """The synthetic model (graph in model.onnx, every tensor in model.onnx.data), one kernel in memory at a time."""
    rng = np.random.default_rng(seed)
    path = folder / "model.onnx"
    nodes, inits, x = [], [], "x"
    with open(folder / "model.onnx.data", "wb") as data:
        for i in range(layers):
            w = rng.uniform(-1, 1, (channels, channels, 1, 1)).astype(np.float32) * np.float32(np.sqrt(3 / channels))
            inits.append(_external(f"conv{i}.W", w, data, "model.onnx.data"))
            del w
            params = {"B": rng.normal(0, 0.1, channels), "scale": rng.normal(1, 0.2, channels),
                      "beta": rng.normal(0, 0.2, channels), "mean": rng.normal(0, 0.2, channels),
                      "var": rng.uniform(0.5, 2, channels)}
            for key, value in params.items():
                inits.append(_external(f"conv{i}.{key}" if key == "B" else f"bn{i}.{key}", value.astype(np.float32),
                                       data, "model.onnx.data"))
            nodes += [helper.make_node("Conv", [x, f"conv{i}.W", f"conv{i}.B"], [f"c{i}"], name=f"conv{i}"),
                      helper.make_node("BatchNormalization", [f"c{i}", *(f"bn{i}.{k}" for k in
                                                                         ("scale", "beta", "mean", "var"))],
                                       [f"b{i}"], name=f"bn{i}"),
                      helper.make_node("Relu", [f"b{i}"], [f"r{i}"], name=f"relu{i}")]
            x = f"r{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 2, 2])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench_big_onnx")
    model.ir_version = 8
    onnx.save(model, path)  # the graph only: its tensors are external already
    return path


def sequential_write(folder: Path, size: int) -> float:
    """Seconds to write ``size`` bytes once, in CHUNK-sized writes (as a fold writes its output: no fsync)."""
    chunk = bytes(CHUNK)
    path = folder / "floor.bin"
    start = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(-(-size // CHUNK)):
            fh.write(chunk)
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def drop_page_cache() -> bool:
    """Write back and drop the kernel's page cache (root only), so that the next read comes from the
    disk; False where the machine does not allow it."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def sequential_read(path: Path) -> float:
    """Seconds to read ``path`` once, front to back, in CHUNK-sized reads."""
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        buffer = bytearray(CHUNK)
        while fh.readinto(buffer):
            pass
    return time.perf_counter() - start


def profile(py: str, model: Path, base: Path, env: dict) -> None:
    """foldscope's fold of ``model`` once more, under cProfile in a child of its own: where its time
    goes, by function (own time), the output removed after."""
    folder = base / "profiled"
    folder.mkdir()
    stats = folder / "fold.prof"
    subprocess.run([py, "-m", "cProfile", "-o", str(stats), "-m", "fold", str(model), "-o", str(folder / "out.onnx"),
                    "--no-verify"], cwd=ROOT, env=env, check=True, capture_output=True)
    import pstats

    print("where the fold's time goes (cProfile, own time of each function):")
    pstats.Stats(str(stats)).sort_stats("tottime").print_stats(12)
    shutil.rmtree(folder)


def copy_seconds(path: Path) -> float:
    """Seconds ``cp`` takes to copy ``path`` beside itself (the same disk), the copy removed after."""
    target = path.with_name(path.name + ".copy")
    start = time.perf_counter()
    subprocess.run(["cp", str(path), str(target)], check=True)
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


#: The check's floor, run as ``python -c RUNS MODEL FOLDED SAMPLES``: onnxruntime (every optimization
#: off, as foldscope runs it) running the original and the fold from their files on as many rows.
RUNS = """
    import sys, numpy as np, onnxruntime as ort
    for path in sys.argv[1:3]:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        x = session.get_inputs()[0]
        row = [1 if not isinstance(d, int) else d for d in x.shape]
        rng = np.random.default_rng(0)
        for _ in range(int(sys.argv[3]) // row[0]):
            session.run(None, {x.name: rng.standard_normal(row).astype(np.float32)})
        del session
    print("ran both")
"""

#: The peers, each a script run as ``python -c SCRIPT MODEL OUT``; it prints what it did.
PEER_SCRIPTS = {
    "onnxsim": """
        import sys, onnx, onnxsim
        model = onnx.load(sys.argv[1])
        simplified, ok = onnxsim.simplify(model)
        onnx.save(simplified, sys.argv[2], save_as_external_data=True, location="out.onnx.data")
        print("simplified, check", ok)
    """,
    "onnxoptimizer": """
        import sys, onnx, onnxoptimizer
        model = onnx.load(sys.argv[1])
        optimized = onnxoptimizer.optimize(model, ["fuse_bn_into_conv"])
        onnx.save(optimized, sys.argv[2], save_as_external_data=True, location="out.onnx.data")
        print("fuse_bn_into_conv applied")
    """,
    "onnxruntime": """
        import sys, onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, sys.argv[3])
        options.optimized_model_filepath = sys.argv[2]
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "out.onnx.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        options.log_severity_level = 3
        ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
        print("optimized model written")
    """,
}


def run_child(argv: list[str], folder: Path, timeout: float, max_rss: float, env: dict) -> dict:
    """One child: wall time, peak RSS (GiB, from wait4: file pages it maps count, so onnxruntime's
    maps of the data files do), its peak private memory (RssAnon, polled), exit status, the last
    line of its stderr; killed past ``timeout`` seconds or ``max_rss`` GiB of private memory."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    start = time.perf_counter()
    with open(out, "w") as o, open(err, "w") as e:
        child = subprocess.Popen(argv, stdout=o, stderr=e, cwd=ROOT, env=env, start_new_session=True)
    killed, private = None, 0.0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - start
        rss = _rss(child.pid)
        private = max(private, rss)
        if elapsed > timeout or rss > max_rss:
            killed = f"killed after {elapsed:.0f} s" if elapsed > timeout else f"killed at {rss:.1f} GiB private"
            os.killpg(child.pid, signal.SIGKILL)
        time.sleep(0.1)
    child.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in err.read_text(errors="replace").splitlines() if line.strip()]
    return {"seconds": time.perf_counter() - start, "peak_rss_gib": usage.ru_maxrss * 1024 / GIB,
            "peak_private_gib": private,
            "exit": child.returncode, "killed": killed, "stdout": out.read_text(errors="replace"),
            "error": lines[-1][:300] if lines and child.returncode != 0 else None}


def _rss(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return 0.0


def _said(stdout: str) -> str:
    """A child's own summary: foldscope's verdict line, else its last line."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    verdict = [line for line in lines if line.startswith(("verification (", "not verified"))]
    said = (verdict or lines or [""])[-1]
    if said.startswith("verification ("):
        return f"verification: {said.rsplit(': ', 1)[-1]}"
    return said.split(";")[0][:120]


def bn_left(path: Path) -> int | None:
    """BatchNormalization nodes in a written model (its graph only), None if nothing was written."""
    if not path.exists():
        return None
    return sum(n.op_type == "BatchNormalization" for n in onnx.load(path, load_external_data=False).graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/var/tmp", help="where the model and every output go (all removed)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--channels", type=int, default=8192)
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a child is killed")
    parser.add_argument("--max-rss", type=float, default=16,
                        help="GiB of private memory (RssAnon) at which a child is killed")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--cold", action="store_true",
                        help="drop the page cache (root) before the read floor and before each tool, so that the "
                             "floor and every run read the data from the disk")
    parser.add_argument("--profile", action="store_true",
                        help="run foldscope's fold once more under cProfile and print where its time goes")
    parser.add_argument("--tools", nargs="+", default=["foldscope", *PEER_SCRIPTS],
                        choices=["foldscope", *PEER_SCRIPTS], help="the tools to run (default: all)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench_big_onnx-", dir=args.dir))
    rows = []
    try:
        start = time.perf_counter()
        model = build(base, args.layers, args.channels)
        data = base / "model.onnx.data"
        size = data.stat().st_size
        largest = args.channels**2 * 4
        print(f"model: {args.layers} x Conv 1x1 {args.channels}->{args.channels} + BN + Relu, data "
              f"{size / GIB:.2f} GiB, largest tensor {largest / GIB:.2f} GiB, built in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        cold = args.cold and drop_page_cache()
        if args.cold and not cold:
            print("cannot drop the page cache here (not root): every read may come from memory", flush=True)
        floor = sequential_read(data)
        print(f"one sequential read of the data file: {floor:.2f} s ({size / GIB / floor:.2f} GiB/s"
              f"{', from the disk' if cold else ', from the page cache where it holds the file'})", flush=True)
        write_floor = sequential_write(base, size)
        print(f"one sequential write of as many bytes: {write_floor:.2f} s ({size / GIB / write_floor:.2f} GiB/s)",
              flush=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(base)}
        py = sys.executable

        def step(tool: str, action: str, argv: list[str], output: Path | None) -> dict:
            work = base / f"run{len(rows)}"
            work.mkdir()
            if cold:
                drop_page_cache()
            run = run_child(argv, work, args.timeout, args.max_rss, env)
            run |= {"tool": tool, "action": action, "bn_left": None if output is None else bn_left(output)}
            rows.append(run)
            print(f"  {tool} / {action}: exit {run['exit']}, {run['seconds']:.1f} s, {run['peak_rss_gib']:.2f} GiB "
                  f"RSS, {run['peak_private_gib']:.2f} GiB private"
                  f"{', ' + run['killed'] if run['killed'] else ''}{', ' + run['error'] if run['error'] else ''}",
                  flush=True)
            return run

        def folder_for(name: str) -> Path:
            folder = base / name
            folder.mkdir()
            return folder / "out.onnx"

        copy_floor = None
        if "foldscope" in args.tools:
            copy_floor = copy_seconds(data)
            print(f"cp of the data file to the same disk: {copy_floor:.2f} s", flush=True)
            out = folder_for("foldscope")
            step("foldscope", "fold --no-verify", [py, "-m", "fold", str(model), "-o", str(out), "--no-verify"], out)
            step("foldscope", "check MODEL OUT (verify the fold from disk)",
                 [py, "-m", "fold", "check", str(model), str(out), "--samples", "4"], None)
            step("onnxruntime", "runs the original and the fold from disk (the check's floor)",
                 [py, "-c", textwrap.dedent(RUNS), str(model), str(out), "4"], None)
            if args.profile:
                profile(py, model, base, env)
            if out.exists():
                out.unlink()
                (base / "foldscope" / "out.onnx.data").unlink()
            verified = folder_for("foldscope_verified")
            step("foldscope", "fold + verify", [py, "-m", "fold", str(model), "-o", str(verified), "--samples", "4"],
                 verified)
            shutil.rmtree(verified.parent)
        for tool, script in ((t, PEER_SCRIPTS[t]) for t in args.tools if t in PEER_SCRIPTS):
            levels = ["ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED"] if tool == "onnxruntime" else [None]
            for level in levels:
                target = folder_for(f"{tool}{level or ''}")
                action = {"onnxsim": "simplify", "onnxoptimizer": "fuse_bn_into_conv"}.get(tool, f"offline, {level}")
                step(tool, action, [py, "-c", textwrap.dedent(script), str(model), str(target), *filter(None, [level])],
                     target)
                shutil.rmtree(target.parent)
        fold_row = rows[0] if "foldscope" in args.tools else None
        print()
        print(f"| tool | what | exit | wall s | x read | x write | peak RSS GiB | peak private GiB | "
              f"BN left (of {args.layers}) | what happened |")
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
        for r in rows:
            said = r["killed"] or r["error"] or _said(r["stdout"])
            print(f"| {r['tool']} | {r['action']} | {r['exit']} | {r['seconds']:.1f} | {r['seconds'] / floor:.1f} | "
                  f"{r['seconds'] / write_floor:.1f} | {r['peak_rss_gib']:.2f} | {r['peak_private_gib']:.2f} | "
                  f"{'' if r['bn_left'] is None else r['bn_left']} | "
                  f"{said.replace('|', '/')} |")
        print()
        goal_rss = largest / GIB + 1
        if fold_row is not None:
            check_row, runs_row = rows[1], rows[2]
            met = {True: "met", False: "NOT met"}
            print(f"goals: fold peak RSS {fold_row['peak_rss_gib']:.2f} GiB <= largest tensor + 1 GiB = {goal_rss:.2f} GiB: "
                  f"{met[fold_row['peak_rss_gib'] <= goal_rss]}; fold wall {fold_row['seconds']:.1f} s <= 3 x cp "
                  f"{3 * copy_floor:.1f} s: {met[fold_row['seconds'] <= 3 * copy_floor]} "
                  f"({fold_row['seconds'] / copy_floor:.1f}x cp)")
            print(f"       check peak RSS {check_row['peak_rss_gib']:.2f} GiB <= 4 GiB: "
                  f"{met[check_row['peak_rss_gib'] <= 4]}; check wall {check_row['seconds']:.1f} s <= 2 x onnxruntime's "
                  f"two runs {2 * runs_row['seconds']:.1f} s: {met[check_row['seconds'] <= 2 * runs_row['seconds']]} "
                  f"({check_row['seconds'] / runs_row['seconds']:.1f}x; the runs' own peak RSS "
                  f"{runs_row['peak_rss_gib']:.2f} GiB)")
        if args.json:
            Path(args.json).write_text(json.dumps({"data_bytes": size, "largest_bytes": largest, "read_s": floor,
                                                   "cold": cold, "copy_s": copy_floor,
                                                   "write_s": write_floor,
                                                   "rows": rows}, indent=2) + "\n")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
