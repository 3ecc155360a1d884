"""mkdocs hook: the site's home page is README.md and its key table config/README.md, read where they
are (on GitHub they are the front door and the generated table), with their links made site-relative."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def _read(relative: str, links: dict[str, str]) -> str:
    text = (ROOT / relative).read_text()
    for old, new in links.items():
        text = text.replace(f"]({old}", f"]({new}")
    return text


def on_files(files, config):
    home = _read("README.md", {"docs/": "", "config/README.md": "configuration.md"})
    files.append(File.generated(config, "index.md", content=home))
    files.append(File.generated(config, "configuration.md", content=_read("config/README.md", {})))
    return files


def on_page_markdown(markdown, page, config, files):
    """docs/*.md link the key table as ../config/README.md (right on GitHub); on the site it is a page."""
    return re.sub(r"\]\(\.\./config/README\.md", "](configuration.md", markdown)
