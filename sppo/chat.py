"""Rendering prompts as chat turns and encoding (prompt, response) pairs for log-probabilities.

The prompt is the tokenizer's chat template applied to one user turn plus the generation prompt
(for Gemma and Llama-3 this includes the assistant header). The response is whatever the template
appends after that for an assistant turn: its content and the end-of-turn marker. Only response
tokens count towards a log-probability, and the template's BOS is the only BOS: the rendered text
is tokenized without adding special tokens again.
"""

from __future__ import annotations

from dataclasses import dataclass


def render_prompt(tokenizer, prompt: str) -> str:
    """The chat-templated text of one user turn, ready for the model to answer."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def response_suffix(tokenizer, prompt: str, response: str) -> str:
    """The text the chat template adds for the assistant turn ``response`` after the rendered prompt."""
    head = render_prompt(tokenizer, prompt)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
    )
    if full.startswith(head):
        return full[len(head) :]
    # Templates that rewrite earlier turns (rare): fall back to the response and the EOS token.
    return response + (tokenizer.eos_token or "")


@dataclass
class EncodedPair:
    prompt_ids: list[int]
    response_ids: list[int]
    prompt_truncated: bool
    response_truncated: bool

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids


def encode_pair(
    tokenizer, prompt: str, response: str, max_length: int, max_prompt_length: int
) -> EncodedPair:
    """Token ids of the rendered prompt and of the response, cut as the reference does.

    If prompt + response exceed ``max_length``, the prompt keeps its last ``max_prompt_length``
    tokens, then the response is cut to what is left of ``max_length``.
    """
    prompt_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response_suffix(tokenizer, prompt, response), add_special_tokens=False)[
        "input_ids"
    ]
    prompt_cut = response_cut = False
    if len(prompt_ids) + len(response_ids) > max_length:
        if len(prompt_ids) > max_prompt_length:
            prompt_ids, prompt_cut = prompt_ids[-max_prompt_length:], True
        room = max_length - len(prompt_ids)
        if len(response_ids) > room:
            response_ids, response_cut = response_ids[:room], True
    return EncodedPair(prompt_ids, response_ids, prompt_cut, response_cut)
