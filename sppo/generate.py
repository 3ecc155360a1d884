"""Stage generate: K sampled responses per prompt from the current policy, and why each ended.

The sampling (seeds, backends, prompts fitted to the context) is :mod:`sppo.sampling`, shared with
evaluate_answers; this module names what the stage uses of it.
"""

from __future__ import annotations

from sppo.sampling import batch_seed, generate_shard, respond, sample_seeds, shard_rows

__all__ = ["batch_seed", "generate_shard", "respond", "sample_seeds", "shard_rows"]
