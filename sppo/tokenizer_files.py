"""A model repo's tokenizer exactly as its ``tokenizer.json`` defines it, for every stage and vLLM.

transformers 5 builds the tokenizer of a class with its own definition (``LlamaTokenizer``,
``GemmaTokenizer``, ...) from that definition and the config's flags, replacing parts of the repo's
``tokenizer.json`` pipeline (normalizer, pre-tokenizer, decoder). For Mistral-7B-Instruct-v0.2's
format (``LlamaTokenizer``, ``legacy: true``, a normalizer that prepends "▁" and replaces spaces)
under transformers 5.17 every text segment that starts with a space loses a token: ``<s> [INST]``
gives ``<s>``, ``▁[`` where the repo's pipeline gives ``<s>``, ``▁▁``, ``[`` (tests/test_tokenizers.py).
The model was trained on the repo's pipeline, so it is loaded as it is: ``tokenizer.json`` through the
generic fast class, with the special tokens, chat template and flags of ``tokenizer_config.json``.
A repo without ``tokenizer.json``, or with its own tokenizer code (``auto_map``, trusted), is loaded
by ``AutoTokenizer`` as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from sppo.imports import without_sklearn

with without_sklearn():
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers.utils import cached_file


def repo_file(path: str, name: str, revision: str | None) -> Path | None:
    """``name`` in the model directory or cached hub repo ``path``, or None where the repo has none."""
    found = cached_file(path, name, revision=revision, _raise_exceptions_for_missing_entries=False)
    return Path(found) if found else None


def has_own_code(path: str, revision: str | None, trust_remote_code: bool) -> bool:
    """Whether the repo ships (and the config trusts) its own tokenizer class."""
    config = repo_file(path, "tokenizer_config.json", revision)
    if not trust_remote_code or config is None:
        return False
    return "AutoTokenizer" in json.loads(config.read_text()).get("auto_map", {})


def load(path: str, revision: str | None, trust_remote_code: bool):
    """The tokenizer of ``path``: its ``tokenizer.json`` as it is where it has one (see the module)."""
    if repo_file(path, "tokenizer.json", revision) and not has_own_code(path, revision, trust_remote_code):
        return PreTrainedTokenizerFast.from_pretrained(path, revision=revision)
    return AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)


def save_for_loaders(tokenizer, directory: str | Path) -> Path | None:
    """Save a tokenizer loaded as it is (:func:`load`) where another loader (vLLM's, through
    ``AutoTokenizer``) gets the same one: its saved config names the generic fast class, so
    ``AutoTokenizer`` reads the ``tokenizer.json`` as it is. None for a tokenizer of another class
    (the repo's own code, or no ``tokenizer.json``): the repo itself is the one to load."""
    if type(tokenizer) is not PreTrainedTokenizerFast:
        return None
    tokenizer.save_pretrained(directory)
    return Path(directory)
