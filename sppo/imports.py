"""Importing transformers without its optional import of scikit-learn.

transformers imports ``sklearn.metrics`` as soon as its generation code loads, whenever scikit-learn
is installed (it is: alpaca_eval, which the evaluate stage uses, needs it), for one feature no stage
uses (the confidence threshold of assisted decoding). On 2 cores that import alone took 2.3 s of
the ~10 s a model job spent starting (``python -X importtime``). Inside :func:`without_sklearn`,
scikit-learn looks absent; transformers caches that answer, and a later ``import sklearn``
(alpaca_eval) works as usual.
"""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def without_sklearn():
    """Hide scikit-learn from imports (``importlib.util.find_spec`` answers None) for the block."""
    if "sklearn" in sys.modules:  # already imported: nothing to save
        yield
        return
    sys.modules["sklearn"] = None
    try:
        yield
    finally:
        if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
            del sys.modules["sklearn"]
