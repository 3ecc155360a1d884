"""Inputs the benchmarks share: judge texts of realistic SPPO lengths, and random token batches.

The realistic mix follows what a 7–9B instruct model answers to UltraFeedback prompts (the SPPO
recipes): prompts of 30–360 tokens, responses of 80–2000 tokens, both log-uniform, so that about
half of the responses are longer than PairRM's candidate limit (412 tokens) and get cut. Texts are
made of words that the tiny PairRM tokenizer (sppo.judges.tiny) holds whole, one token per word,
so a text of n words is about n tokens there (a real tokenizer gives about as many for English).

:func:`varying_groups` draws token-id pairs of the same realistic lengths and cuts them as training
does (sppo.chat.truncate), for the training micro-batches of varying length (benchmarks.padding,
the packed-vs-padded steps of benchmarks.gpu).
"""

from __future__ import annotations

import math
import random

import torch

from sppo.chat import EncodedPair, truncate

WORDS = "the a an and of to in is it that for on with as are be this you not or what how can".split()

# (shortest, longest) in tokens; see the module docstring
REALISTIC = {"prompt": (30, 360), "response": (80, 2000)}
SHORT = {"prompt": (3, 30), "response": (5, 60)}  # for toy runs (tests)


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high + 1))))


def realistic_texts(
    n_prompts: int, k: int, seed: int, lengths: dict = REALISTIC
) -> tuple[list[str], list[list[str]]]:
    """Deterministic prompts with K responses each, of the lengths in ``lengths`` (tokens ≈ words)."""
    rng = random.Random(seed)

    def text(kind: str) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(log_uniform(rng, *lengths[kind])))

    prompts = [text("prompt") for _ in range(n_prompts)]
    return prompts, [[text("response") for _ in range(k)] for _ in prompts]


def random_token_prompts(n: int, vocab_size: int, seed: int, lengths=REALISTIC["prompt"]) -> list[list[int]]:
    """``n`` prompts of random token ids (ids 10 and up, clear of special tokens), log-uniform lengths."""
    rng = random.Random(seed)
    return [[rng.randrange(10, vocab_size) for _ in range(log_uniform(rng, *lengths))] for _ in range(n)]


def pair_batch(
    pairs: int, prompt_len: int, response_len: int, vocab_size: int, seed: int, responses: int = 2
) -> dict:
    """A training batch as sppo's collator lays it out, no padding: ``responses`` sequences per
    prompt, response-major (for pairs: the chosen rows, then the rejected rows; with more, every
    prompt's first response, then every second, … as train.responses all), with input ids,
    attention mask, labels (-100 on the prompt) and the responses' win rates P̂ [pairs, responses]."""
    generator = torch.Generator().manual_seed(seed)
    length = prompt_len + response_len
    ids = torch.randint(10, vocab_size, (responses * pairs, length), generator=generator)
    for i in range(1, responses):  # a prompt's responses answer the same prompt
        ids[i * pairs : (i + 1) * pairs, :prompt_len] = ids[:pairs, :prompt_len]
    labels = ids.clone()
    labels[:, :prompt_len] = -100
    if responses == 2:
        p_win = 0.5 + 0.5 * torch.rand(pairs, generator=generator)
        win_rates = torch.stack([p_win, 1 - p_win], dim=1)
    else:
        win_rates = torch.rand(pairs, responses, generator=generator)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "win_rates": win_rates,
    }


def varying_groups(
    n_prompts: int,
    vocab_size: int,
    seed: int,
    *,
    max_length: int,
    max_prompt_length: int,
    truncation: str = "pair",
    responses: int = 2,
    lengths: dict = REALISTIC,
) -> list[list[EncodedPair]]:
    """``n_prompts`` prompts of random token ids (ids 10 and up) with ``responses`` responses each,
    prompt and response lengths log-uniform in ``lengths`` (tokens), cut to ``max_length`` as
    training cuts them (train.truncation, sppo.chat.truncate): what one training micro-batch
    collates (sppo.logprobs.collate_groups), in order."""
    rng = random.Random(seed)

    def ids(kind: str) -> list[int]:
        return [rng.randrange(10, vocab_size) for _ in range(log_uniform(rng, *lengths[kind]))]

    groups = []
    for _ in range(n_prompts):
        prompt = ids("prompt")
        sides = [EncodedPair(prompt, ids("response")) for _ in range(responses)]
        groups.append(truncate(sides, max_length, max_prompt_length, truncation))
    return groups
