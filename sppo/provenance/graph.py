"""The lineage of one artifact as a text tree or a Graphviz drawing, from the records alone."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def _label(path: str, made: dict[str, dict]) -> str:
    record = made.get(path)
    if record is None:
        return f"{path}  [source]" if not path.startswith("results") else f"{path}  [no record]"
    wildcards = ", ".join(f"{k}={v}" for k, v in record["wildcards"].items())
    rule = f"{record['rule']} {wildcards}".strip()
    return f"{path}  [{rule}] sha256 {record['outputs'][path]['sha256'][:12]}"


def tree(root: str, made: dict[str, dict]) -> list[str]:
    """Lines of the lineage tree of ``root``: each artifact above the inputs its job read."""
    lines, shown = [], set()

    def visit(path: str, prefix: str, branch: str) -> None:
        inputs = list(made[path]["inputs"]) if path in made else []
        again = path in shown and inputs
        lines.append(prefix + branch + _label(path, made) + ("  (inputs above)" if again else ""))
        if again:
            return
        shown.add(path)
        below = prefix + ("" if not branch else "    " if branch == "└── " else "│   ")
        for i, parent in enumerate(inputs):
            visit(parent, below, "└── " if i == len(inputs) - 1 else "├── ")

    visit(os.path.normpath(root), "", "")
    return lines


def dot(root: str, made: dict[str, dict]) -> str:
    """Graphviz dot text of the lineage of ``root``: an edge from each input to what was made from it."""
    nodes, edges, todo = {}, set(), [os.path.normpath(root)]
    while todo:
        path = todo.pop()
        if path in nodes:
            continue
        nodes[path] = _label(path, made).replace("  ", "\\n")
        for parent in made.get(path, {}).get("inputs", []):
            edges.add((parent, path))
            todo.append(parent)
    out = ["digraph lineage {", "  rankdir=TB;", '  node [shape=box, fontname="Helvetica", fontsize=10];']
    out += [f'  "{p}" [label="{label}"];' for p, label in sorted(nodes.items())]
    out += [f'  "{a}" -> "{b}";' for a, b in sorted(edges)]
    return "\n".join(out + ["}"]) + "\n"


def draw(root: str, made: dict[str, dict], out: str) -> None:
    """Write the lineage to ``out``: dot text for .dot/.gv (or - for stdout), else rendered by Graphviz."""
    text = dot(root, made)
    if out == "-":
        print(text, end="")
        return
    suffix = Path(out).suffix.lstrip(".")
    if suffix in ("dot", "gv"):
        Path(out).write_text(text, encoding="utf-8")
        return
    if shutil.which("dot") is None:
        raise SystemExit(
            f"cannot render {out}: Graphviz `dot` is not installed (apt-get install graphviz); "
            "write the dot text instead (OUT ending in .dot, or -)"
        )
    subprocess.run(["dot", f"-T{suffix}", "-o", out], input=text, text=True, check=True)
