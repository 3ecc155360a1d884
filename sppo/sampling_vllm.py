"""Sampling with vLLM (``generate.backend: vllm``, GPU only), for generate and evaluate_answers.

Every (prompt, sample k) pair is one vLLM request with n = 1 and its own seed,
``batch_seed(sample_seeds[k], row)``, where row is the prompt's position in the iteration part. So
sample k keeps the reference's per-sample seed (50·k by default), and no seed depends on the shards.
(One request per prompt with n = K would draw all K samples from one seed.) vLLM shares the prompt's
KV cache between its K requests (prefix caching). The same seed does not make the same response
wherever the request lands: vLLM's batched kernels round differently with the batch's size and
make-up, which another shard count changes, and vLLM promises batch-independent outputs only in
its batch-invariant mode (``VLLM_BATCH_INVARIANT=1``, set by ``generate.batch_invariant``).

Prompts are rendered with the chat template as in the transformers backend and handed over as
token ids, so vLLM adds no second BOS; vLLM's own tokenizer (end of sequence, the responses' text)
is the workflow's, handed over as a saved copy (``tokenizer=``), not vLLM's ``AutoTokenizer`` load
of the model repo (which transformers 5 rebuilds for some classes: :mod:`sppo.tokenizer_files`).
The rows have the transformers backend's format
{id, prompt, responses, finish_reasons} (vLLM's own finish_reason: "stop" or "length"); the
responses themselves differ (another sampler). vllm is imported only
when generation runs: the workflow, its tests and dry runs do not need it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

from sppo import tokenizer_files
from sppo.chat import prompt_ids
from sppo.sampling import batch_seed, sample_seeds

log = logging.getLogger(__name__)

MISSING = (
    "generate.backend is 'vllm' but vllm is not installed in this job's environment; on a GPU machine "
    "install the project with its vllm extra (SPPO_EXTRAS=dev,vllm ./run ..., see README) or set "
    "generate.backend: transformers"
)


def require_vllm():
    """The vllm module, or a RuntimeError that says how to get it."""
    try:
        import vllm
    except ImportError as err:
        raise RuntimeError(MISSING) from err
    return vllm


def sampling_kwargs(settings: dict, row: int) -> list[dict]:
    """Keyword arguments of vllm.SamplingParams for the K requests of the prompt at position ``row``."""
    return [
        {
            "n": 1,
            "seed": batch_seed(seed, row),
            "temperature": settings["temperature"],
            "top_p": settings["top_p"],
            "max_tokens": settings["max_new_tokens"],
        }
        | ({"stop_token_ids": settings["stop_token_ids"]} if settings.get("stop_token_ids") else {})
        for seed in sample_seeds(settings)
    ]


def requests(
    tokenizer, batches: list[tuple[int, list[dict]]], settings: dict
) -> list[tuple[dict, list, list]]:
    """(row, prompt token ids, K SamplingParams kwargs) for every prompt of the shard's batches.

    ``batches`` come from :func:`sppo.sampling.shard_rows` (through ``fit_batches``: None for a
    dropped prompt); all batches but the last are full, so batch b's i-th prompt sits at position
    b·batch_size + i of the iteration part.
    """
    out = []
    for index, batch in batches:
        for i, row in enumerate(batch):
            if row is None:
                continue
            ids = prompt_ids(tokenizer, row["prompt"], settings.get("prompt_template"))
            out.append((row, ids, sampling_kwargs(settings, index * settings["batch_size"] + i)))
    return out


def generate_shard(model_path: str, model_config: dict, batches, settings: dict) -> list[dict]:
    """Rows {id, prompt, responses, finish_reasons} (K each) for every prompt of the shard's batches."""
    if settings["batch_invariant"]:
        os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read by vllm and its engine processes: set first
    vllm = require_vllm()
    from sppo.models import load_tokenizer

    tokenizer = load_tokenizer(model_path, model_config)
    todo = requests(tokenizer, batches, settings)
    with tempfile.TemporaryDirectory(prefix="sppo-tokenizer-") as saved:
        return run_requests(vllm, model_path, model_config, settings, todo, tokenizer, saved)


def run_requests(vllm, model_path: str, model_config: dict, settings: dict, todo, tokenizer, saved: str):
    """Generate ``todo`` with a vLLM engine whose tokenizer (for end-of-sequence and the responses'
    text) is the workflow's own, saved in ``saved`` (:func:`sppo.tokenizer_files.save_for_loaders`)."""
    from sppo.models import revision

    llm = vllm.LLM(
        model=model_path,
        tokenizer=str(tokenizer_files.save_for_loaders(tokenizer, saved) or model_path),
        revision=revision(model_path, model_config),
        trust_remote_code=model_config["trust_remote_code"],
        dtype=model_config["dtype"],
        tensor_parallel_size=settings["tensor_parallel_size"],
        gpu_memory_utilization=settings["gpu_memory_utilization"],
        enable_prefix_caching=True,
    )
    prompts = [{"prompt_token_ids": ids} for _, ids, kwargs in todo for _ in kwargs]
    params = [vllm.SamplingParams(**kw) for _, _, kwargs in todo for kw in kwargs]
    started = time.monotonic()
    outputs = iter(llm.generate(prompts, params, use_tqdm=False))
    rows = []
    for row, _, kwargs in todo:
        samples = [next(outputs).outputs[0] for _ in kwargs]
        rows.append(
            {
                "id": row["id"],
                "prompt": row["prompt"],
                "responses": [s.text for s in samples],
                "finish_reasons": [s.finish_reason for s in samples],
            }
        )
    log.info(
        "generated %d prompts × %d samples with vLLM (%.1f s)",
        len(rows),
        len(sample_seeds(settings)),
        time.monotonic() - started,
    )
    return rows
