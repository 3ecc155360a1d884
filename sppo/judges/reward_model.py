"""A reward model as a judge: any transformers sequence classifier with one output logit.

The model gives each (prompt x, response y) a reward r(x, y). The judge is Bradley–Terry on r:

    M[i, j] = r_i − r_j,   P(i ≻ j) = σ(M[i, j]),   s_i = mean_j (M[i, j] − M[j, i]) = 2 (r_i − r̄).

The input is the conversation [user: x, assistant: y] rendered by the tokenizer's chat template
when it has one (tokenized without adding special tokens again: the template writes them), else
the text ``x + "\\n\\n" + y`` with the tokenizer's special tokens. Inputs longer than max_length
tokens are cut at the end and counted. They run sorted by length, ``batch_size`` at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sppo.devices import resolve_device, torch_dtype
from sppo.judges.base import Judge, Judgement, scores_from_logits
from sppo.judges.model_judge import (
    check_batch_size,
    check_checkpoint_dir,
    count_candidates,
    hub_error,
    is_hub_id,
    weight_files,
    weights_file,
)
from sppo.provenance.hashing import file_sha256

# from_pretrained prefers safetensors; a sharded checkpoint has an index instead.
WEIGHT_NAMES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Formats other than PyTorch's, left out when fetching a hub repository.
_OTHER_FORMATS = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.gguf", "*.tflite"]


def resolve_checkpoint(path: str) -> Path:
    """The local directory of ``path``: a directory, or a hub id fetched by snapshot_download (from the
    local cache only when HF_HUB_OFFLINE=1). Checked for config.json and weights; errors name ``path``."""
    if not is_hub_id(path):
        return check_checkpoint_dir(path, WEIGHT_NAMES)
    from huggingface_hub import snapshot_download

    try:
        directory = snapshot_download(path, ignore_patterns=_OTHER_FORMATS)
    except Exception as e:
        raise hub_error(path, e) from e
    return check_checkpoint_dir(directory, WEIGHT_NAMES)


class RewardModelJudge(Judge):
    name = "reward_model"

    def __init__(
        self,
        path: str,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 32,
        max_length: int = 2048,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = str(path)
        self.dtype = dtype
        self.torch_dtype = torch_dtype(dtype)
        self.batch_size = check_batch_size(batch_size)
        self.device = resolve_device(device)
        self.max_length = max_length
        self.checkpoint = resolve_checkpoint(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=trust_remote_code)
        from sppo.models import attention_kwargs

        # A reward model on Gemma-2 (e.g. Skywork-Reward-Gemma-2) soft-caps its attention too
        attention = attention_kwargs(self.checkpoint, "auto", trust_remote_code=trust_remote_code)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.checkpoint, torch_dtype=self.torch_dtype, trust_remote_code=trust_remote_code, **attention
        )
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"judge checkpoint {self.path!r}: a reward model has 1 output, this has "
                f"{self.model.config.num_labels}"
            )
        if self.tokenizer.pad_token is None:
            # Padding is masked out; the classifier only needs an id to find each input's last token.
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device).eval()

    def judge(self, prompts: list[str], candidates: list[list[str]]) -> Judgement:
        k = count_candidates(prompts, candidates)
        ids = self.encode(
            [x for x, row in zip(prompts, candidates, strict=True) for _ in row],
            [y for row in candidates for y in row],
        )
        truncated = sum(len(seq) > self.max_length for seq in ids)
        rewards = self._rewards([seq[: self.max_length] for seq in ids]).reshape(len(prompts), k)
        logits = rewards[:, :, None] - rewards[:, None, :]
        return Judgement(logits=logits, scores=scores_from_logits(logits), truncated={"responses": truncated})

    def encode(self, prompts: list[str], responses: list[str]) -> list[list[int]]:
        """Token ids of each (prompt, response), untruncated: chat template if any, else ``x\\n\\ny``."""
        if self.tokenizer.chat_template:
            texts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": x}, {"role": "assistant", "content": y}], tokenize=False
                )
                for x, y in zip(prompts, responses, strict=True)
            ]
            return self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return self.tokenizer([f"{x}\n\n{y}" for x, y in zip(prompts, responses, strict=True)])["input_ids"]

    def _rewards(self, ids: list[list[int]]) -> np.ndarray:
        """r for each token sequence, run in batches of similar length; float64, in input order."""
        order = sorted(range(len(ids)), key=lambda n: len(ids[n]))
        rewards = np.zeros(len(ids))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [ids[n] for n in chunk]}, return_tensors="pt")
                logits = self.model(**batch.to(self.device)).logits
                rewards[chunk] = logits[:, 0].float().cpu().numpy()
        return rewards

    def identity(self) -> dict:
        weights = weights_file(self.checkpoint, WEIGHT_NAMES)
        return {
            "name": self.name,
            "source": self.path,
            "weights_file": weights.name,
            "weights_sha256": file_sha256(*weight_files(weights)),
            "dtype": self.dtype,
            "max_length": self.max_length,
        }
