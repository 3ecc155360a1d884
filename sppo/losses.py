"""The training losses (train.loss), per prompt, from summed response log-probabilities.

Notation: for a response y of prompt x, the log-ratio r(y) = log πθ(y|x) − log π_ref(y|x) (sums
over the response tokens); y_w and y_l the chosen and rejected responses; P̂(y) the estimated win
rate of y against π_{t−1} (stage winprob); P_wl = P(y_w ≻ y_l); η = train.eta, β = train.beta;
|y| the number of response tokens.

====================  ================================================  =========================
``sppo``              ½[(r_w − η(P̂_w − ½))² + (r_l − η(P̂_l − ½))²]      the authors' "sppo"
``sppo`` (all K)      (1/K) Σ_i (r_i − η(P̂_i − ½))²                      the paper's Algorithm 1
``sppo_single``       ½[(r_w − η(P_wl − ½))² + (r_l + η(P_wl − ½))²]     the authors' "sppo_single"
``sppo_hard``         (r_w − η/2)² + (r_l + η/2)²                        TRL's "sppo_hard", β = 1/η
``dpo``               −log σ(β(r_w − r_l))                               TRL's "sigmoid"
``ipo``               (r_w/|y_w| − r_l/|y_l| − 1/(2β))²                  TRL's "ipo"
====================  ================================================  =========================

``sppo`` on the pair is the mean over its two responses of (r − η(P̂ − ½))², so the all-responses
form (train.responses: all) with K = 2 and the pair as its two responses is the same number.
``sppo_hard`` is SPPO with P̂_w = 1 and P̂_l = 0, summed instead of averaged (as TRL has it).
``ipo`` divides each log-ratio by its response's token count, as TRL does (its comment: the IPO
authors confirmed the paper's results use this form); the SPPO authors' fork of TRL 0.9.6 used the
summed log-ratios, (r_w − r_l − 1/(2β))², which ``ipo_normalize=False`` (train.ipo_normalize) gives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("sppo", "sppo_single", "sppo_hard", "dpo", "ipo")
# Losses that compare the chosen and the rejected response only (train.responses must be pair).
PAIR_ONLY = ("sppo_single", "sppo_hard", "dpo", "ipo")


def per_prompt(
    loss: str,
    ratios: torch.Tensor,
    *,
    eta: float,
    beta: float,
    win_rates: torch.Tensor | None = None,
    pair_probs: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
    ipo_normalize: bool = True,
) -> torch.Tensor:
    """The loss of each prompt, shape [n].

    ``ratios`` [n, m]: the log-ratios of each prompt's responses, the chosen first and the rejected
    second when m = 2 (train.responses: pair); ``win_rates`` [n, m]: their P̂ (``sppo``);
    ``pair_probs`` [n]: P_wl (``sppo_single``); ``tokens`` [n, m]: response token counts (``ipo``,
    unless not ``ipo_normalize``).
    """
    if loss == "sppo":
        return ((ratios - eta * (win_rates - 0.5)) ** 2).mean(dim=1)
    if ratios.shape[1] != 2:
        raise ValueError(f"train.loss {loss} compares two responses, got {ratios.shape[1]} per prompt")
    r_w, r_l = ratios[:, 0], ratios[:, 1]
    if loss == "sppo_single":
        target = eta * (pair_probs - 0.5)
        return 0.5 * ((r_w - target) ** 2 + (r_l + target) ** 2)
    if loss == "sppo_hard":
        return (r_w - eta / 2) ** 2 + (r_l + eta / 2) ** 2
    if loss == "dpo":
        return -F.logsigmoid(beta * (r_w - r_l))
    if loss == "ipo":
        scores = ratios / tokens.clamp(min=1) if ipo_normalize else ratios
        return (scores[:, 0] - scores[:, 1] - 1 / (2 * beta)) ** 2
    raise ValueError(f"train.loss: {loss!r} is none of {LOSSES}")
