"""Artifact provenance: a record per job, an audit of a run's lineage, a Workflow Run RO-Crate.

- hashing.py: content hashes of files and directories (the directory hash is defined there);
- code.py: the code version a rule runs with (git commit, dirtiness, hash of its own code);
- record.py: the per-job record at results/provenance/<first output under results/>.json;
- audit.py: ok / modified / missing / stale / unrecorded for every artifact in a lineage;
- graph.py: an artifact's lineage as a text tree or a Graphviz drawing;
- crate.py: the Provenance Run Crate (0.5) export and its offline validation;
- __main__.py: the command line, ``python -m sppo.provenance {audit,crate,record}``.
"""
