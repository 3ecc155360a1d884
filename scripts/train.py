"""Train π_t from π_{t-1} on the iteration's pairs with the SPPO loss. Run by rule train, under
python, torchrun or srun … torchrun (see train_launcher in rules/common.smk):

    python scripts/train.py --pairs results/iter1/reflogp/pairs.jsonl --out results/iter1/model \
        --model results/iter0/model --settings '<train section, JSON>' \
        --model-config '<model section, JSON>' --seed 42 [--log-file logs/train/iter1.log ...]

Options: python scripts/train.py --help; what it does: sppo/train.py.
"""

from sppo import train

if __name__ == "__main__":  # not again in worker processes that import the main module (spawn)
    train.main()
