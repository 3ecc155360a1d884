"""Rendering prompts as chat turns and encoding (prompt, response) pairs for log-probabilities.

The prompt is the tokenizer's chat template applied to one user turn plus the generation prompt
(for Gemma and Llama-3 this includes the assistant header). The response is whatever the template
appends after that for an assistant turn: its content and the end-of-turn marker. Only response
tokens count towards a log-probability, and the template's BOS is the only BOS: the rendered text
is tokenized without adding special tokens again.

The tokens are those of the whole conversation tokenized at once, split where the prompt ends, as
the authors' trainer (TRL 0.9.6's DPOTrainer) takes them. Tokenizing the response on its own would
not give the tokens the model reads: with a SentencePiece tokenizer that adds a dummy prefix
(Mistral, Llama-2) the response would start with an extra "▁" or another first token.
"""

from __future__ import annotations

from dataclasses import dataclass

# train.truncation: how a pair longer than train.max_length is cut (see truncate).
TRUNCATIONS = ("pair", "response")


def render_prompt(tokenizer, prompt: str) -> str:
    """The chat-templated text of one user turn, ready for the model to answer."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def prompt_text(tokenizer, prompt: str, template: str | None = None) -> str:
    """The text the model reads for ``prompt``: the chat template's (:func:`render_prompt`), or a text
    ``template`` with the prompt in place of its ``{instruction}`` (as alpaca_eval's ``make_prompts``
    fills the prompt templates of its model configs: the first occurrence, by plain replacement)."""
    if template is None:
        return render_prompt(tokenizer, prompt)
    return template.replace("{instruction}", prompt, 1)


def prompt_ids(tokenizer, prompt: str, template: str | None = None) -> list[int]:
    """The token ids the model reads for ``prompt`` (:func:`prompt_text`). The chat template writes its
    own BOS, so its text is tokenized without adding special tokens; a text ``template`` is tokenized
    as vLLM tokenizes a text prompt, special tokens added (a template that writes its BOS itself, as
    alpaca_eval's Gemma-2 and Llama-3 configs do, so gets two, as the leaderboard's answers had)."""
    text = prompt_text(tokenizer, prompt, template)
    return tokenizer(text, add_special_tokens=template is not None)["input_ids"]


@dataclass
class EncodedPair:
    prompt_ids: list[int]
    response_ids: list[int]
    prompt_truncated: bool = False
    response_truncated: bool = False

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids


def encode_response(tokenizer, prompt: str, response: str) -> EncodedPair:
    """Prompt and response ids, uncut, from one tokenization of the whole conversation.

    As TRL 0.9.6's ``build_tokenized_answer``: the response starts after as many tokens as the
    rendered prompt has on its own; where those are not a prefix of the joint ids (the prompt's last
    token merged with the response's first), it starts one token earlier. A template that renders the
    user turn differently once an answer follows is refused: the response could not be told apart.
    """
    head = render_prompt(tokenizer, prompt)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
    )
    if not full.startswith(head):
        raise ValueError(
            "the chat template renders the user turn differently when an answer follows, so the "
            f"response tokens cannot be told apart (prompt {prompt[:60]!r})"
        )
    prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    start = len(prompt_ids) if full_ids[: len(prompt_ids)] == prompt_ids else len(prompt_ids) - 1
    return EncodedPair(full_ids[:start], full_ids[start:])


def truncate(
    sides: list[EncodedPair], max_length: int, max_prompt_length: int, rule: str
) -> list[EncodedPair]:
    """The responses of one prompt (a pair: chosen and rejected) cut to at most ``max_length`` tokens.

    ``pair`` (the authors', TRL 0.9.6's with truncation_mode keep_end), decided from the longest
    response L of them: if prompt + L > max_length, the prompt keeps its last
    ``max_prompt_length`` tokens; if prompt + L still exceeds it, every response is capped at
    ``max_length − max_prompt_length`` tokens.
    ``response``: each side alone: if prompt + response > max_length, the prompt keeps its last
    ``max_prompt_length`` tokens, then the response is cut to what is left of ``max_length``.
    """
    if rule == "pair":
        longest = max(len(side.response_ids) for side in sides)
        return [_cut_for(side, longest, max_length, max_prompt_length) for side in sides]
    if rule == "response":
        return [_cut_alone(side, max_length, max_prompt_length) for side in sides]
    raise ValueError(f"train.truncation: {rule!r} is none of {TRUNCATIONS}")


def _cut_for(side: EncodedPair, longest: int, max_length: int, max_prompt_length: int) -> EncodedPair:
    """``side`` cut by the rule ``pair``, for a pair whose longer response has ``longest`` tokens."""
    prompt, response = side.prompt_ids, side.response_ids
    if len(prompt) + longest > max_length:
        prompt = prompt[-max_prompt_length:]
        if len(prompt) + longest > max_length:
            response = response[: max_length - max_prompt_length]
    return _cut_from(side, prompt, response)


def _cut_alone(side: EncodedPair, max_length: int, max_prompt_length: int) -> EncodedPair:
    """``side`` cut by the rule ``response``."""
    prompt, response = side.prompt_ids, side.response_ids
    if len(prompt) + len(response) > max_length:
        prompt = prompt[-max_prompt_length:]
        response = response[: max_length - len(prompt)]
    return _cut_from(side, prompt, response)


def _cut_from(side: EncodedPair, prompt: list[int], response: list[int]) -> EncodedPair:
    return EncodedPair(
        prompt, response, len(prompt) < len(side.prompt_ids), len(response) < len(side.response_ids)
    )
