"""Fetch what the run reads from the Hugging Face hub into the hub cache and record the commits.
Run by rule fetch (a local rule, on a machine that reaches the hub), online whatever the jobs are:

    HF_HUB_OFFLINE=0 python scripts/fetch.py --plan '<sppo.fetch.plan(config), JSON>' \
        --out results/fetch/revisions.json

What and why: sppo/fetch.py.
"""

import argparse
import json
import logging

from sppo import fetch, io

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=json.loads, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    io.write_json(args.out, {"fetched": fetch.fetch(args.plan)})
