"""Which file belongs to which variant and iteration: the rules pass per-π_t files with their
(variant, iteration) labels, and the figures draw one line (colour) per variant."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def labelled(paths: list[str], labels: list[list]) -> list[tuple[str, int, str]]:
    """(variant, iteration, path) for the rule's inputs and its params' [variant, iteration] pairs
    (variant "" for a run without variants)."""
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} files for {len(labels)} (variant, iteration) labels")
    return [(str(v), int(t), str(p)) for (v, t), p in zip(labels, paths, strict=True)]


def colours(variants) -> dict[str, str]:
    """One matplotlib colour per variant, in order of appearance."""
    return {name: f"C{i}" for i, name in enumerate(dict.fromkeys(variants))}


def label(variant: str, what: str = "") -> str:
    """A legend entry: "dpo: loss", or "loss" for a run without variants."""
    return ": ".join(x for x in (variant, what) if x) or "SPPO"


def save(fig, path: str) -> None:
    """Write ``fig`` as a PNG without the matplotlib version in it (byte-stable across runs)."""
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
