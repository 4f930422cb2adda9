"""circle frontend, the runtimes: a circle model runs in a real circle runtime, in a worker process of
its own (``fold.frontends.circle.worker``), one per runtime, started on first use and kept for the
next models; a runtime that crashes takes its worker down, never foldscope, and the crash is one
sentence naming the model and the signal.

    tico   tico's NumPy/PyTorch reference runtime: every op foldscope folds, TRANSPOSE_CONV included,
           and circle's own INSTANCE_NORM and RMS_NORM
    onert  ONE's runtime (CPU backend): no TRANSPOSE_CONV kernel ("NYI"), refuses a TRANSPOSE_CONV
           with a bias input; intermediate tensors only with CPU_MEMORY_PLANNER=Bump

A tensor inside the model is read by running a copy whose outputs include it (both runtimes hand
out only a model's outputs), ``with_outputs``.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from fold.core.errors import FoldError, ended, installed, require

#: Runtimes by name -> the package that provides it (both in foldscope's circle extra).
RUNTIMES = {"tico": "tico", "onert": "onert"}
_ROOT = Path(__file__).resolve().parents[3]


def label(runtime: str) -> str:
    """The runtime in words, with its version: "tico 0.3.0's reference runtime", "onert 0.1.0 (CPU)"."""
    release = version(RUNTIMES[runtime])
    return f"tico {release}'s reference runtime" if runtime == "tico" else f"onert {release} (CPU)"


def available(runtime: str) -> bool:
    return installed(RUNTIMES[runtime])


def model_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Worker:
    """One worker process running one runtime; ``run`` is one request at a time."""

    def __init__(self, runtime: str):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._folder: str | None = None
        self._sent: set[str] = set()

    def _started(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        require("circle", f"Running circle models in {self.runtime}", RUNTIMES[self.runtime])
        self._folder = tempfile.mkdtemp(prefix=f"foldscope-{self.runtime}-")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)}
        if self.runtime == "onert":
            env["CPU_MEMORY_PLANNER"] = "Bump"  # an intermediate tensor made an output reads back right
        self._proc = subprocess.Popen([sys.executable, "-m", "fold.frontends.circle.worker", self.runtime,
                                       self._folder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, cwd=self._folder)
        self._sent = set()
        return self._proc

    def run(self, key: str, data: bytes, inputs: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
        """The model's outputs on ``inputs``; FoldError when the runtime refuses the model or its
        inputs, or crashes on them."""
        with self._lock:
            proc = self._started()
            for attempt in range(2):  # twice when the worker no longer holds the model
                request = (key, None if key in self._sent and not attempt else data, list(inputs))
                try:
                    pickle.dump(request, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                    proc.stdin.flush()
                    status, value = pickle.load(proc.stdout)
                except (OSError, EOFError, pickle.UnpicklingError) as exc:
                    raise FoldError(f"{label(self.runtime)} {ended(proc.wait())} running '{name}'.") from exc
                self._sent.add(key)
                if status == "ok":
                    return value
                if status == "refused":
                    raise FoldError(f"{label(self.runtime)} cannot run '{name}': {value}")
        raise FoldError(f"{label(self.runtime)} lost '{name}' twice.")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.stdin.close()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


_WORKERS: dict[str, Worker] = {}
_WORKERS_LOCK = threading.Lock()


def worker(runtime: str) -> Worker:
    """The one worker of ``runtime`` in this process."""
    with _WORKERS_LOCK:
        if runtime not in _WORKERS:
            _WORKERS[runtime] = Worker(runtime)
        return _WORKERS[runtime]


@atexit.register
def _close_all() -> None:
    for found in list(_WORKERS.values()):
        found.close()
