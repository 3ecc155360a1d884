"""What every stage script does first: send its output to the rule's log, set threads, log progress."""

from __future__ import annotations

import logging
import os
import sys


def start(log_path: str, threads: int = 1) -> logging.Logger:
    """Redirect stdout and stderr (of Python and of native code) to ``log_path``; set torch's threads."""
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return logging.getLogger("sppo")
