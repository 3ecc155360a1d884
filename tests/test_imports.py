"""Model jobs import transformers without scikit-learn (sppo.imports), and scikit-learn still works after."""

import subprocess
import sys

import pytest


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("module", ["sppo.models", "sppo.train", "sppo.basemodel"])
def test_model_modules_load_transformers_without_sklearn(module):
    code = (
        f"import sys, {module}\n"
        "from transformers import AutoModelForCausalLM, Trainer\n"
        "import transformers.generation.candidate_generator\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))\n"
        "import sklearn.metrics\n"  # alpaca_eval's own import still works afterwards
        "print(sklearn.metrics.roc_auc_score([0, 1], [0.2, 0.9]))\n"
    )
    assert run(code).split("\n")[:2] == ["[]", "1.0"]


def test_without_sklearn_hides_it_only_inside_the_block():
    code = (
        "import importlib.util\n"
        "from sppo.imports import without_sklearn\n"
        "with without_sklearn():\n"
        "    print(importlib.util.find_spec('sklearn'))\n"
        "print(importlib.util.find_spec('sklearn') is not None)\n"
    )
    assert run(code).split("\n")[:2] == ["None", "True"]
