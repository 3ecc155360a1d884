"""PairRM (llm-blender) as a judge: llm-blender's own model, fed llm-blender's own inputs, batched.

For one prompt x and candidates y_1..y_K, PairRM reads ``[CLS]<|source|>x[SEP][CLS]<|candidate1|>y_i[SEP]
[CLS]<|candidate2|>y_j[SEP]`` and, with h the hidden states at the three prefix tokens and f its head,

    M[i, j] = f(h_src, h_cand1) − f(h_src, h_cand2)     (i ≠ j; M[i, i] = 0, never computed),

so M[i, j] and M[j, i] come from two forward passes. The scores are s_i = mean_j (M[i, j] − M[j, i]).

``Blender.rank(prompts, candidates, return_scores=True, batch_size=1)``, the SPPO authors' call,
collates each prompt alone and runs K(K−1) forward passes of one sequence each. This judge builds
exactly the same model inputs and gets the same M:

1. the token ids are those of llm-blender's CrossCompareCollator applied to each prompt alone,
   without its padding to the full length (:meth:`PairRMJudge.encode`; the tests compare them token
   for token). The prompt gets the prefix ``<|source|>`` and is cut to source_max_length tokens; each
   response gets ``<|candidate|>`` and is cut to candidate_max_length + (source_max_length − the
   prompt's tokens) // 2 tokens (the collator's budget, which depends on the longest prompt in its
   batch: that is why the authors' batch_size=1 is the reference); ``[SEP]`` in a text becomes a space;
2. the N·K(K−1) ordered pairs are sorted by joined length and cut into batches of at most
   ``batch_size`` pairs and ``batch_tokens`` padded tokens, so each batch has little padding;
3. each batch runs through the ranker's own ``_forward`` (which joins source and candidates, moves
   the padding to the end and puts ``<|candidate1|>``/``<|candidate2|>`` in place), under
   ``torch.inference_mode``.

llm-blender 0.0.2 is used under transformers 5 through :mod:`sppo.judges.pairrm_compat` (three
in-memory fixes; the tests hold both this judge and ``Blender.rank`` to golden scores made under
transformers 4.57.6).

One deliberate difference: llm-blender crashes (a tensor size mismatch) on a text holding one of
its prefix tokens (``<|source|>``, ``<|candidate1|>``, ``<|candidate2|>`` anywhere, ``<|candidate|>``
in a response), as each must occur once per pair. This judge replaces them by a space, as
llm-blender does with ``[SEP]``, and counts the texts under ``prefix_tokens_replaced``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sppo import hub
from sppo.devices import resolve_device, torch_dtype
from sppo.io import is_hub_repo_id
from sppo.judges import pairrm_compat
from sppo.judges.base import Judge, Judgement, scores_from_logits
from sppo.judges.model_judge import (
    check_batch_size,
    check_checkpoint_dir,
    count_candidates,
    hub_error,
    is_hub_id,
    weights_file,
)
from sppo.provenance.hashing import file_sha256

# load_ranker reads pytorch_model.bin when there is one, else model.safetensors.
WEIGHT_NAMES = ("pytorch_model.bin", "model.safetensors")


def _load_blender(path, device: str, source_max_length: int, candidate_max_length: int, backbone: str):
    """A Blender holding the ranker in the directory ``path``, its backbone read from ``backbone`` (a
    directory; it replaces the config's ``model_name``).

    fp16=False: on cuda, loadranker would otherwise cast the float32 weights to float16
    (RankerConfig.fp16 defaults to true), and casting back to the configured dtype would not restore them."""
    pairrm_compat.apply()  # before llm_blender is imported: it cannot import under transformers 5 without
    from llm_blender import Blender, BlenderConfig

    blender = Blender(BlenderConfig(device=device, use_tqdm=False))
    blender.loadranker(
        str(path),
        device=device,
        source_maxlength=source_max_length,
        candidate_maxlength=candidate_max_length,
        fp16=False,
        model_name=str(backbone),
    )
    return blender


def checkpoint_dir(path: str) -> Path:
    """The local folder of the ranker ``path``: a directory as given; a hub id's snapshot in the
    standard hub cache (``models--llm-blender--PairRM/snapshots/<commit>``), else llm-blender's own
    folder ``$HF_HUB_CACHE/<id>``, else a download into the hub cache (llm-blender itself looks only
    in its own folder, so a cache filled by ``hf download`` or by the fetch would be ignored)."""
    if not is_hub_id(path):
        return Path(path)
    pinned = hub.pinned(path)  # the commit the run's fetch recorded, if any
    hub.note_read(path, pinned)
    cached = hub.cached_snapshot(path, pinned)
    if cached is not None:
        return cached
    from huggingface_hub.constants import HF_HUB_CACHE

    own = Path(HF_HUB_CACHE) / path
    return own if own.is_dir() and pinned is None else hub.snapshot(path, pinned)


def backbone_dir(checkpoint: Path) -> tuple[str, str]:
    """The backbone named in the ranker's config.json (``model_name``), and its local folder: a
    directory as given, a hub id (PairRM's: microsoft/deberta-v3-large) through the hub cache."""
    name = json.loads((checkpoint / "config.json").read_text())["model_name"]
    if Path(name).is_dir() or not is_hub_repo_id(name):
        return name, name
    return name, str(hub.snapshot(name, hub.pinned(name)))


def _load_checked(path: str, device: str, source_max_length: int, candidate_max_length: int):
    """:func:`_load_blender` of ``path`` (a directory or hub id) with both ranker and backbone resolved
    to local folders first; any failure names ``path``. Returns the Blender and the backbone's name."""
    try:
        directory = checkpoint_dir(path)
        check_checkpoint_dir(directory, WEIGHT_NAMES)
        name, backbone = backbone_dir(directory)
    except Exception as e:
        if not is_hub_id(path):
            raise
        raise hub_error(path, e) from e  # not cached, and the hub refused or could not be reached
    return _load_blender(directory, device, source_max_length, candidate_max_length, backbone), name


class PairRMJudge(Judge):
    name = "pairrm"

    def __init__(
        self,
        path: str = "llm-blender/PairRM",
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 32,
        batch_tokens: int = 1024,
        source_max_length: int = 1224,
        candidate_max_length: int = 412,
    ):
        self.path = str(path)
        self.dtype = dtype
        self.torch_dtype = torch_dtype(dtype)
        self.batch_size = check_batch_size(batch_size)
        self.batch_tokens = check_batch_size(batch_tokens, "batch_tokens")
        self.device = resolve_device(device)
        self.source_max_length = source_max_length
        self.candidate_max_length = candidate_max_length
        blender, self.backbone = _load_checked(
            self.path, self.device, source_max_length, candidate_max_length
        )
        self.ranker = blender.ranker.to(self.torch_dtype)
        self.collator = blender.ranker_collator
        self.tokenizer = blender.ranker_tokenizer
        self.checkpoint = Path(blender.ranker_config.load_checkpoint)
        if self.collator.mannually_add_sep_token:  # llm-blender's spelling
            raise ValueError(
                f"judge checkpoint {self.path!r}: its tokenizer does not add [CLS]/[SEP] itself; only "
                "rankers whose tokenizer does (DeBERTa, as PairRM) are supported"
            )

    def judge(self, prompts: list[str], candidates: list[list[str]]) -> Judgement:
        k = count_candidates(prompts, candidates)
        sources, responses, truncated = self.encode(prompts, candidates)
        logits = np.zeros((len(prompts), k, k))
        with torch.inference_mode():
            for batch in pair_batches(sources, responses, self.batch_size, self.batch_tokens):
                n, i, j = batch.T
                logits[n, i, j] = self._forward_pairs(
                    [sources[a] for a in n],
                    [responses[a][b] for a, b in zip(n, i, strict=True)],
                    [responses[a][b] for a, b in zip(n, j, strict=True)],
                )
        return Judgement(logits=logits, scores=scores_from_logits(logits), truncated=truncated)

    def encode(
        self, prompts: list[str], candidates: list[list[str]]
    ) -> tuple[list[list[int]], list[list[list[int]]], dict[str, int]]:
        """The unpadded token ids that llm-blender's collator gives each prompt and its responses when it
        collates the prompt alone (as ``Blender.rank(..., batch_size=1)`` does), and how many texts were
        cut (``prompts``, ``responses``) or had PairRM's prefix tokens replaced (``prefix_tokens_replaced``).

        Each text is tokenized once in full; only a text longer than its budget is tokenized again, by
        the tokenizer's own truncation, exactly as the collator's ``truncation=True`` call does."""
        c = self.collator
        k = count_candidates(prompts, candidates)
        source_texts, replaced = self._clean(prompts, c.source_prefix, self._guard_source)
        response_texts, replaced_responses = self._clean(
            [y for row in candidates for y in row], c.candidate_prefix, self._guard_response
        )
        source_limits = [self.source_max_length] * len(prompts)
        sources, cut_prompts = self._tokenize(source_texts, source_limits)
        # The collator's response budget: candidate_max_length + (source_max_length − source tokens) // 2.
        budgets = [self.candidate_max_length + (self.source_max_length - len(s)) // 2 for s in sources]
        flat, cut_responses = self._tokenize(response_texts, [b for b in budgets for _ in range(k)])
        self._check_markers(source_texts, sources, (1, None, 0, 0, 1))  # <|candidate|> here is harmless
        self._check_markers(response_texts, flat, (0, 1, 0, 0, 1))
        responses = [flat[n * k : (n + 1) * k] for n in range(len(prompts))]
        truncated = {"prompts": cut_prompts, "responses": cut_responses}
        if replaced + replaced_responses:
            truncated["prefix_tokens_replaced"] = replaced + replaced_responses
        return sources, responses, truncated

    @property
    def _guard_source(self) -> list[str]:
        """Prefix tokens that break llm-blender when found in a prompt (each must occur once per pair)."""
        c = self.collator
        return [c.source_prefix, c.candidate1_prefix, c.candidate2_prefix]

    @property
    def _guard_response(self) -> list[str]:
        return self._guard_source + [self.collator.candidate_prefix]

    def _clean(self, texts: list[str], prefix: str, guard: list[str]) -> tuple[list[str], int]:
        """``prefix + text`` with the separator token replaced by a space (as the collator does), and the
        prefix tokens in ``guard`` likewise (llm-blender would crash on them); the count of texts changed."""
        out, changed = [], 0
        for text in texts:
            clean = text
            for token in guard:
                clean = clean.replace(token, " ")
            changed += clean != text
            out.append((prefix + clean).replace(self.collator.sep_token, " "))
        return out, changed

    def _tokenize(self, texts: list[str], limits: list[int]) -> tuple[list[list[int]], int]:
        """Each text's ids with special tokens, cut to its limit as ``truncation=True`` cuts; how many cut."""
        full = self.tokenizer(texts, verbose=False)["input_ids"] if texts else []
        out, cut = [], 0
        for text, ids, limit in zip(texts, full, limits, strict=True):
            if len(ids) > limit:
                ids = self.tokenizer(text, max_length=limit, truncation=True)["input_ids"]
                cut += 1
            out.append(ids)
        return out, cut

    def _check_markers(self, texts: list[str], ids: list[list[int]], expected: tuple) -> None:
        """Each text's count of the tokens (<|source|>, <|candidate|>, <|candidate1|>, <|candidate2|>,
        [SEP]) is ``expected`` (None: any), as ``_forward`` needs to find them; else a ValueError naming
        the text (a tokenizer that normalizes text could make a marker from other characters)."""
        t = self.tokenizer
        markers = [t.source_prefix_id, t.cand_prefix_id, t.cand1_prefix_id, t.cand2_prefix_id, t.sep_token_id]
        for text, seq in zip(texts, ids, strict=True):
            counts = tuple(seq.count(m) for m in markers)
            if any(e is not None and c != e for c, e in zip(counts, expected, strict=True)):
                raise ValueError(
                    f"PairRM cannot read {text[:80]!r}: it has the marker tokens <|source|>, <|candidate|>, "
                    f"<|candidate1|>, <|candidate2|>, [SEP] {counts} times, where {expected} is needed"
                )

    def _forward_pairs(self, sources: list, firsts: list, seconds: list) -> np.ndarray:
        """M[n, i, j] for the pairs (source, first, second), by one call of the ranker's ``_forward``."""
        inputs = [tensor for seqs in (sources, firsts, seconds) for tensor in self._padded(seqs)]
        return self.ranker._forward(*inputs)["logits"].float().cpu().numpy()

    def _padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids padded on the right with the pad token, and the attention mask, as the collator makes them."""
        ids = np.full((len(seqs), max(map(len, seqs))), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def identity(self) -> dict:
        weights = weights_file(self.checkpoint, WEIGHT_NAMES)
        return {
            "name": self.name,
            "source": self.path,
            "backbone": self.backbone,
            "weights_file": weights.name,
            "weights_sha256": file_sha256(weights),
            "dtype": self.dtype,
            "source_max_length": self.source_max_length,
            "candidate_max_length": self.candidate_max_length,
        }


def pair_batches(
    sources: list[list[int]], responses: list[list[list[int]]], batch_size: int, batch_tokens: int
) -> list[np.ndarray]:
    """All ordered pairs (n, i, j), i ≠ j, sorted by joined token length and cut into batches of at most
    ``batch_size`` pairs whose padded size (pairs × longest) is at most ``batch_tokens`` (a longer pair
    runs alone). Each batch is an int array of shape (pairs, 3)."""
    k = len(responses[0]) if responses else 0
    n, i, j = (
        a.ravel() for a in np.meshgrid(np.arange(len(sources)), np.arange(k), np.arange(k), indexing="ij")
    )
    keep = i != j
    pairs = np.stack([n[keep], i[keep], j[keep]], axis=1)
    source_len = np.array([len(s) for s in sources], dtype=np.int64)
    response_len = np.array([[len(y) for y in row] for row in responses], dtype=np.int64).reshape(-1, k)
    lengths = (
        source_len[pairs[:, 0]]
        + response_len[pairs[:, 0], pairs[:, 1]]
        + response_len[pairs[:, 0], pairs[:, 2]]
    )
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < batch_size
            and (end - start + 1) * lengths[order[end]] <= batch_tokens
        ):
            end += 1
        batches.append(pairs[order[start:end]])
        start = end
    return batches
