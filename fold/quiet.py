"""Import TensorFlow without its start-up chatter on stderr.

TensorFlow 2.21 logs oneDNN and CPU-feature notices through absl before logging is set
up, ignoring TF_CPP_MIN_LOG_LEVEL; the command line promises one line on stderr, so the
import runs with file descriptor 2 pointed at /dev/null.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null (what C++ code and absl print there included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
