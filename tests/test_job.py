"""The job environment: shell rules find the interpreter running Snakemake."""

import os
import sys

from sppo import job


def test_interpreter_goes_first_on_path_without_conda(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    job.put_interpreter_on_path(frozenset())
    assert os.environ["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin", "/bin"]
    job.put_interpreter_on_path(frozenset())  # idempotent
    assert os.environ["PATH"].count(os.path.dirname(sys.executable)) == 1


def test_conda_environments_keep_their_own_python(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    job.put_interpreter_on_path({"DeploymentMethod.CONDA"})
    assert os.environ["PATH"] == "/usr/bin:/bin"
