"""``python -m fold zoo DIR``: every model file under a folder folded and verified, each in a process
of its own (``fold.zoo_worker``), so that one model's crash, MemoryError or hang is that model's row
with its reason, never the run's end.

    tasks = [Task(str(p), p.relative_to(root).as_posix(), options) for p in find_models(root)[0]]
    rows = run_local(tasks, jobs=2, timeout=600)         # or run_ray(tasks, "auto", ...)
    print(zoo_table(rows))

A row is one model file: foldscope's own fold (its verdict and reason, as ``python -m fold`` gives
them) and, with ``peers``, each peer tool's fold of the same file checked as ``python -m fold check``
checks it (``fold.peers``). Its verdict is pass, fail or inconclusive, or error: the file could not
be read, folded or verified, or its worker crashed or timed out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fold.core.verification import Verification
from fold.errors import FoldError, describe, ended, one_line
from fold.files import check_model_file
from fold.frontend import format_for
from fold.report import VERDICTS, table

#: The repository root: what a worker needs on its path to import ``fold``.
ROOT = Path(__file__).resolve().parents[1]
#: What a verdict is called in the zoo's table, its own "error" included.
ZOO_VERDICTS = {**VERDICTS, "error": "ERROR"}
#: The default time a model's worker may take before it is stopped (seconds).
TIMEOUT_S = 600.0


@dataclass
class ToolRow:
    """One tool's fold of one model: BatchNorms it left, its verdict and why, its max abs diff
    against the original, the seconds the tool took to fold (its verification apart)."""

    tool: str
    verdict: str
    reason: str
    bn_left: int | None = None
    max_abs_diff: float | None = None
    seconds: float | None = None
    action: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def verdict_row(tool: str, verification: Verification, bn_left: int, seconds: float,
                action: str | None = None) -> ToolRow:
    """A tool's row from the verification of its fold."""
    return ToolRow(tool, verification.verdict, verification.reason, bn_left, verification.max_abs_diff,
                   round(seconds, 4), action)


def error_row(tool: str, reason: str, action: str | None = None) -> ToolRow:
    """A tool that gave no verdict, and why, in one sentence."""
    return ToolRow(tool, "error", reason, action=action)


@dataclass
class ModelRow:
    """One model file of the zoo: ``model`` is its path relative to the zoo's folder; ``fold`` is
    foldscope's row, ``peers`` the peer tools' (empty without ``--peers``); ``seconds`` the model's
    whole run, its worker's start included."""

    model: str
    format: str | None
    bn_before: int | None
    fold: ToolRow
    peers: list[ToolRow] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return self.fold.verdict

    @property
    def reason(self) -> str:
        return self.fold.reason

    def to_dict(self) -> dict:
        """The ``--json`` row: foldscope's figures at the top level, each peer's under ``peers``."""
        fold = self.fold
        return {"model": self.model, "format": self.format, "verdict": fold.verdict, "reason": fold.reason,
                "bn_before": self.bn_before, "bn_left": fold.bn_left, "max_abs_diff": fold.max_abs_diff,
                "seconds": fold.seconds, "wall_seconds": round(self.seconds, 3),
                "peers": [p.to_dict() for p in self.peers]}

    @classmethod
    def from_dict(cls, row: dict) -> ModelRow:
        fold = ToolRow("foldscope", row["verdict"], row["reason"], row["bn_left"], row["max_abs_diff"], row["seconds"])
        return cls(row["model"], row["format"], row["bn_before"], fold, [ToolRow(**p) for p in row["peers"]],
                   row["wall_seconds"])


@dataclass(frozen=True)
class Task:
    """One model for a worker: its file, its name in the rows, the verification's options (samples,
    seed, atol, shapes, inputs_file, inputs, outputs) and whether the peers run too."""

    path: str
    name: str
    options: dict[str, Any]
    peers: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def find_models(root: str | os.PathLike) -> tuple[list[Path], int]:
    """The model files under ``root`` (any suffix of ``fold.frontend.FRONTENDS``, recursively, sorted
    by their path below ``root``) and how many other files were passed over. Hidden folders (.git,
    .venv) are not entered."""
    base = Path(root)
    if not base.is_dir():
        raise FoldError(f"'{base}' is not a folder; give the folder of the models (python -m fold zoo DIR).")
    found, others = [], 0
    for folder, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if format_for(path) is None:
                others += 1
            else:
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(base).as_posix()), others


def _worker() -> list[str]:
    return [sys.executable, "-m", "fold.zoo_worker"]


def _ended(proc: subprocess.CompletedProcess) -> str | None:
    """Why a worker that ended by itself left its row unfinished (None: it did not)."""
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        return f"the worker {ended(proc.returncode)}"
    last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "")
    return f"the worker {ended(proc.returncode)}" + (f": {one_line(last, 200)}" if last else "")


def _row(task: Task, fmt: str, partial: dict | None, problem: str | None, seconds: float) -> ModelRow:
    """A model's row from what its worker wrote, and what stopped it (a crash, a timeout) if anything did."""
    if partial is None or partial.get("fold") is None:
        reason = problem or "the worker ended without a result"
        return ModelRow(task.name, fmt, None, error_row("foldscope", reason), [], seconds)
    peers = [ToolRow(**p) for p in partial["peers"]]
    running = partial.get("running")
    if running is not None:
        stopped = problem or "the worker ended before it finished"
        peers.append(error_row(running["tool"], stopped, running["action"]))
        peers += [error_row(p["tool"], f"not run: {stopped} in {running['tool']}", p["action"])
                  for p in partial["pending"]]
    return ModelRow(task.name, partial["format"], partial["bn_before"], ToolRow(**partial["fold"]), peers, seconds)


def run_task(task: Task, timeout: float = TIMEOUT_S, worker: Sequence[str] | None = None) -> ModelRow:
    """One model's row: the file judged here (a bad one needs no worker), then folded, verified and
    given to the peers by a worker process (``worker``: its command, ``python -m fold.zoo_worker``
    unless told), which is stopped after ``timeout`` seconds."""
    start = time.perf_counter()
    try:
        fmt = check_model_file(task.path).name
    except FoldError as exc:
        return ModelRow(task.name, None, None, error_row("foldscope", str(exc)), [], time.perf_counter() - start)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="foldscope-zoo-") as tmp:
        out = Path(tmp) / "row.json"
        command = [*(worker or _worker()), json.dumps(task.to_dict()), str(out)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  env=env, cwd=tmp)
            problem = _ended(proc)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the worker
            problem = f"timed out after {timeout:g} s"
        partial = json.loads(out.read_text()) if out.is_file() and out.stat().st_size else None
    return _row(task, fmt, partial, problem, time.perf_counter() - start)


Done = Callable[[ModelRow, int, int], None]


def run_local(tasks: Sequence[Task], jobs: int = 1, timeout: float = TIMEOUT_S, *,
              worker: Sequence[str] | None = None, on_done: Done | None = None) -> list[ModelRow]:
    """Every task's row, ``jobs`` workers at a time, in the tasks' order; ``on_done(row, done, total)``
    hears of each row as it comes."""
    rows: list[ModelRow | None] = [None] * len(tasks)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_task, task, timeout, worker): i for i, task in enumerate(tasks)}
        for done, future in enumerate(as_completed(futures), 1):
            rows[futures[future]] = future.result()
            if on_done:
                on_done(rows[futures[future]], done, len(tasks))
    return [row for row in rows if row is not None]


def _ray_task(task: dict, files: dict[str, tuple[str, bytes]], timeout: float) -> dict:
    """A zoo task on a Ray node: the files it was sent written to a folder of its own, then ``run_task``."""
    with tempfile.TemporaryDirectory(prefix="foldscope-ray-") as tmp:
        paths = {}
        for role, (name, data) in files.items():
            paths[role] = Path(tmp, role)
            paths[role].mkdir()
            paths[role] = paths[role] / name
            paths[role].write_bytes(data)
        options = {**task["options"], "inputs_file": str(paths["inputs"]) if "inputs" in paths else None}
        local = Task(str(paths["model"]), task["name"], options, task["peers"])
        return run_task(local, timeout).to_dict()


def _files(task: Task) -> dict[str, tuple[str, bytes]]:
    """What a Ray node needs of a task, by role: the model file's name (its suffix is its format, its
    name is in the messages) and bytes, and the inputs file's."""
    paths = {"model": task.path, "inputs": task.options.get("inputs_file")}
    return {role: (Path(path).name, Path(path).read_bytes()) for role, path in paths.items() if path}


def run_ray(tasks: Sequence[Task], address: str, jobs: int = 1, timeout: float = TIMEOUT_S, *,
            on_done: Done | None = None) -> list[ModelRow]:
    """Every task's row, each model a Ray task on the cluster at ``address`` (``ray.init``'s: "auto"
    an existing cluster, "local" a new local instance of ``jobs`` CPUs, "ray://HOST:PORT" a remote
    one through Ray Client), in the tasks' order. The model's bytes travel with the task; the task
    runs the same worker process as a local run, so the rows are the same."""
    try:
        import ray
    except ImportError as exc:
        raise FoldError("--ray needs Ray, which is not installed: pip install -r requirements-ray.txt.") from exc
    import logging

    settings: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                "logging_level": logging.ERROR, "configure_logging": True,
                                "runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT)}}}
    if address == "local":
        settings["num_cpus"] = max(1, jobs)
    try:
        ray.init(**settings)
    except Exception as exc:  # noqa: BLE001 - no cluster there is the user's to fix, in one sentence
        raise FoldError(f"Cannot start or reach Ray at '{address}': {describe(exc, 200)}") from exc
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        refs = [remote.remote(task.to_dict(), _files(task), timeout) for task in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        rows: list[ModelRow | None] = [None] * len(tasks)
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            i = index[ready[0]]
            try:
                rows[i] = ModelRow.from_dict(ray.get(ready[0]))
            except Exception as exc:  # noqa: BLE001 - a node lost with its task is that model's row
                rows[i] = ModelRow(tasks[i].name, None, None, error_row("foldscope", f"the Ray task failed: "
                                                                                     f"{describe(exc, 200)}"))
            if on_done:
                on_done(rows[i], len(tasks) - len(waiting), len(tasks))
    finally:
        ray.shutdown()
    return [row for row in rows if row is not None]


def _cells(model: str, row: ToolRow, bn_before: int | None) -> tuple[str, ...]:
    left = "" if row.bn_left is None else f"{row.bn_left} of {bn_before}" if bn_before is not None else str(row.bn_left)
    diff = "" if row.max_abs_diff is None else f"{row.max_abs_diff:.3e}"
    seconds = "" if row.seconds is None else f"{row.seconds:.2f} s"
    return model, row.tool, left, ZOO_VERDICTS[row.verdict], diff, seconds


def zoo_table(rows: Sequence[ModelRow]) -> str:
    """One line per model and tool: BatchNorms left, verdict, max abs diff, the tool's time to fold (its
    verification apart: the progress line's time is the model's whole run)."""
    lines = [_cells(r.model, t, r.bn_before) for r in rows for t in (r.fold, *r.peers)]
    return table(("model", "tool", "BNs left", "verdict", "max abs diff", "fold time"), lines)


def not_passed(rows: Sequence[ModelRow]) -> list[ModelRow]:
    """The models whose fold did not verify (failed, inconclusive or gave no verdict)."""
    return [r for r in rows if r.verdict != "pass"]


def counts(rows: Sequence[ModelRow]) -> dict[str, int]:
    """How many models have each verdict."""
    return {v: sum(r.verdict == v for r in rows) for v in ZOO_VERDICTS}


def zoo_dict(root: str, rows: Sequence[ModelRow], exit_status: int) -> dict:
    """The ``--json`` document: the folder, one row per model file, the counts, the models that did
    not pass and the run's exit status."""
    return {"dir": root, "models": [r.to_dict() for r in rows], "counts": counts(rows),
            "not_passed": [r.model for r in not_passed(rows)], "exit_status": exit_status}
