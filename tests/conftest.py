"""Shared test set-up: quiet TensorFlow, the repo on sys.path, and a guard that the run leaves the
checkout as it found it (tests write only to ignored paths such as artifacts/ and tmp dirs)."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

#: The browser tests' server, chromium and page fixtures, shared by every browser test file.
pytest_plugins = ["tests.browser_fixtures"]


def _git_status() -> set[str] | None:
    """Lines of ``git status --porcelain`` (tracked changes and untracked, unignored files), or None
    outside a git checkout."""
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(proc.stdout.splitlines()) if proc.returncode == 0 else None


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller only, not each xdist worker
        session.config._foldscope_status = _git_status()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_foldscope_status", None)
    after = _git_status() if before is not None else None
    if after is None or os.environ.get("FOLDSCOPE_SCREENSHOTS") == "1":
        return
    new = sorted(after - before)
    if new:
        print(f"\nThe test run changed the checkout (tests must write only to ignored paths): {new}", file=sys.stderr)
        session.exitstatus = 1
