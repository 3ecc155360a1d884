"""Which configuration a working directory's ``results/`` belongs to, and the run's resolved config.

A run configuration is named by the config files a run is given (``--configfile``, in order), or
``config/config.yaml`` (the offline toy) when it is given none; ``--config`` overrides do not change
the name (they are the tweaks Snakemake reruns for). Each run that executes jobs claims the results
root for its configuration before the first job starts: it writes ``results/config.yaml`` (the
names and the resolved config, every default filled in), and a run of another configuration in the
same directory is refused, naming both, before anything is overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from sppo.io import atomic_path

TOY = "config/config.yaml"
RECORD = Path("results") / "config.yaml"


class OtherConfigurationError(RuntimeError):
    """results/ holds the run of other config files."""


def names(configfiles, cwd: str | os.PathLike = ".") -> list[str]:
    """The configuration's name: its config files as paths relative to ``cwd`` where they lie
    under it (else absolute), in the order given; the toy when there are none."""
    if not configfiles:
        return [TOY]
    base = Path(cwd).resolve()
    out = []
    for path in configfiles:
        full = (base / os.path.expanduser(str(path))).resolve()
        out.append(full.relative_to(base).as_posix() if full.is_relative_to(base) else str(full))
    return out


def render(config_names: list[str], config: dict) -> str:
    """The record's text: the configuration's name and its resolved config, as YAML."""
    header = "# The run configuration this results/ belongs to, and its resolved config (sppo.runconfig).\n"
    return header + yaml.safe_dump({"configfiles": config_names, "config": config}, sort_keys=False)


def claim(config_names: list[str], config: dict, record: str | os.PathLike = RECORD) -> None:
    """Write ``record`` for this configuration, or refuse when it holds another one's."""
    record = Path(record)
    if record.exists():
        try:
            held = (yaml.safe_load(record.read_text(encoding="utf-8")) or {}).get("configfiles")
        except (yaml.YAMLError, AttributeError) as err:
            raise OtherConfigurationError(
                f"{record}: not a run configuration record ({err}); remove it"
            ) from err
        if held and held != config_names:
            raise OtherConfigurationError(
                f"{record.parent}/ holds the run of --configfile {' '.join(held)}; this run is"
                f" --configfile {' '.join(config_names)}, and would overwrite its outputs. Run this"
                " configuration in a directory of its own (docs/usage.md, 'Running from another"
                f" directory'), or, if it is the same run under a new name, remove {record}."
            )
    record.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as tmp:
        tmp.write_text(render(config_names, config), encoding="utf-8")
