"""Torch dtypes and devices by the names the config uses (model.dtype/device, judge.*.dtype/device)."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name`` (one of :data:`DTYPES`)."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def resolve_device(device: str) -> str:
    """``"auto"``: ``"cuda"`` when torch sees a GPU, else ``"cpu"``; any other device as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
