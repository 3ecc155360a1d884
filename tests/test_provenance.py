"""Provenance: a record per job, the audit (ok / modified / missing / stale), lineage views, the RO-Crate."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sppo.provenance import audit, crate, hashing, record

AUDITED = "results/iter1/rank/shard0.jsonl"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance(run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sppo.provenance", *args]
    return subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=600)


def snakemake_audit(run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`snakemake audit` (the final target's artifacts, with this run's config); stdout: its log."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args, "audit"]
    proc = subprocess.run(cmd, cwd=run, capture_output=True, text=True, timeout=600)
    log = (run / "logs/audit/audit.log").read_text()
    return subprocess.CompletedProcess(cmd, proc.returncode, log, proc.stderr)


def lines_about(proc: subprocess.CompletedProcess[str], path: str) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.split(":")[0].split()[-1:] == [path]]


# ---- the directory hash


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_directory_hash_is_sha256_over_sorted_path_and_file_hashes(tmp_path):
    files = {"b.txt": b"bee", "a/z.bin": b"\x00\x01", ".hidden": b"h", "a/b/c.json": b"{}"}
    d = write_files(tmp_path / "d", files)
    lines = "".join(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n" for rel in sorted(files))
    entry = hashing.entry(d)
    assert entry["type"] == "directory"
    assert entry["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert sorted(entry["files"]) == sorted(files)  # hidden and nested files count
    assert entry["files"]["b.txt"]["sha256"] == hashlib.sha256(b"bee").hexdigest()


def test_directory_hash_depends_on_contents_and_names_only(tmp_path):
    one = write_files(tmp_path / "one", {"x": b"1", "y/z": b"2"})
    two = write_files(tmp_path / "two", {"y/z": b"2", "x": b"1"})  # other order, other mtimes
    (two / hashing.SNAKEMAKE_MARKER).touch()  # Snakemake's marker, added after the job
    (two / "empty").mkdir()  # empty directories add nothing
    assert hashing.entry(one)["sha256"] == hashing.entry(two)["sha256"]
    renamed = write_files(tmp_path / "renamed", {"x2": b"1", "y/z": b"2"})
    changed = write_files(tmp_path / "changed", {"x": b"1", "y/z": b"3"})
    digests = {hashing.entry(p)["sha256"] for p in (one, renamed, changed)}
    assert len(digests) == 3
    assert hashing.differences(hashing.entry(one), hashing.entry(changed)) == ["y/z: modified"]
    assert hashing.differences(hashing.entry(one), hashing.entry(renamed)) == ["x: missing", "x2: added"]
    assert hashing.entry(tmp_path / "nothing") is None


def test_a_recorded_hash_is_reused_only_while_size_and_mtime_match(tmp_path):
    path = write_files(tmp_path, {"f": b"data"}) / "f"
    known = dict(hashing.entry(path), sha256="recorded")
    assert hashing.entry(path, known=known)["sha256"] == "recorded"
    os.utime(path, ns=(known["mtime_ns"] + 1, known["mtime_ns"] + 1))
    assert hashing.entry(path, known=known)["sha256"] == hashlib.sha256(b"data").hexdigest()


# ---- records


def test_record_contents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_files(
        tmp_path, {"data/in.txt": b"prompt", "results/x/out.jsonl": b"{}\n", "results/x/m/w.bin": b"w"}
    )
    params = {"settings": {"seed": 7, "k": 2}, "seed": 42, "model": "results/x/m"}
    rec = record.build(
        "rank", ["data/in.txt", "data/in.txt"], ["results/x/out.jsonl", "results/x/m"], params, {"t": "1"}
    )
    path = record.write(rec)
    assert path == Path("results/provenance/x/out.jsonl.json")
    stored = json.loads(path.read_text())
    for key in ("rule", "outputs", "inputs", "params", "params_sha256", "code", "software", "host", "seeds"):
        assert key in stored, key
    assert stored["outputs"]["results/x/out.jsonl"]["sha256"] == sha256(tmp_path / "results/x/out.jsonl")
    assert stored["outputs"]["results/x/m"]["files"]["w.bin"]["sha256"] == hashlib.sha256(b"w").hexdigest()
    assert list(stored["inputs"]) == ["data/in.txt"]  # hashed once
    assert stored["inputs"]["data/in.txt"]["sha256"] == hashlib.sha256(b"prompt").hexdigest()
    assert stored["params"] == params and stored["seeds"] == {"seed": 42, "settings.seed": 7}
    assert stored["params_sha256"] == hashlib.sha256(record.canonical_json(params).encode()).hexdigest()
    assert set(stored["code"]) >= {"git_commit", "git_dirty", "sha256", "files"}
    assert stored["software"]["python"] and stored["software"]["snakemake"] and stored["software"]["peft"]
    assert set(stored["host"]) == {"hostname", "platform", "gpus", "slurm_job_id"}
    assert stored["finished"] and stored["rule"] == "rank" and stored["wildcards"] == {"t": "1"}


def test_every_artifact_of_the_run_is_recorded(finished_run, monkeypatch):
    """Every file under results/ is a job's output with a record, but for results/config.yaml: the
    run's own note of its configuration (sppo.runconfig), which no job makes."""
    monkeypatch.chdir(finished_run)
    made = record.producers(record.load_all())
    results = finished_run / "results"
    artifacts = {
        str(p.relative_to(finished_run))
        for p in results.rglob("*")
        if p.is_file() and "provenance" not in p.parts and "model" not in p.parts
    } | {str(p.relative_to(finished_run)) for p in results.glob("iter*/model")}
    assert artifacts - set(made) == {"results/config.yaml"}
    ranked = made[AUDITED]
    assert ranked["rule"] == "rank" and ranked["wildcards"] == {"s": "0", "t": "1"}
    assert ranked["outputs"][AUDITED]["sha256"] == sha256(finished_run / AUDITED)
    generated = "results/iter1/generate/shard0.jsonl"
    assert ranked["inputs"][generated]["sha256"] == sha256(finished_run / generated)
    assert "scripts/rank.py" in ranked["code"]["files"] and ranked["params"]["judge"]["train"]
    trained = made["results/iter2/model"]  # rule train (shell): its process 0 records
    assert trained["rule"] == "train" and trained["params"]["settings"]["eta"] and trained["started"]
    assert (
        trained["outputs"]["results/iter2/model"]["sha256"]
        == hashing.entry(finished_run / "results/iter2/model")["sha256"]
    )
    assert set(trained["inputs"]) == {"results/iter2/reflogp/pairs.jsonl", "results/iter1/model"}


# ---- the audit


def test_a_clean_run_audits_clean(copy_run):
    run = copy_run()
    start = time.perf_counter()
    proc = snakemake_audit(run)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    last = proc.stdout.splitlines()[-1]
    n = int(last.split()[1])
    assert f"{n} ok" in last and n > 30, last
    assert lines_about(proc, "data/prompts.jsonl") and lines_about(proc, "results/iter3/model")
    assert lines_about(proc, "results/summary/winrate.png")  # the final target's own files
    print(f"\nsnakemake audit of the default iter3 run: {seconds:.1f} s ({n} artifacts)")
    cli = provenance(run, "audit", "results/iter1/winprob/pairs.jsonl")
    assert cli.returncode == 0 and cli.stdout.splitlines()[-1].startswith("audit: ")
    assert "snakemake --cores 1 audit" in provenance(run, "audit").stderr  # no default list of its own


def test_a_flipped_byte_is_reported_as_modified(copy_run):
    run = copy_run()
    shard = run / AUDITED
    stat = shard.stat()
    data = bytearray(shard.read_bytes())
    data[100] ^= 0x01
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # caught by its hash, not its timestamp
    proc = snakemake_audit(run)
    assert proc.returncode == 1
    (line,) = lines_about(proc, AUDITED)
    assert line.startswith("MODIFIED") and "recorded" in line
    (winprob,) = lines_about(proc, "results/iter1/winprob/pairs.jsonl")
    assert winprob.startswith("STALE") and f"input {AUDITED} differs" in winprob


def test_a_deleted_artifact_is_reported_as_missing(copy_run):
    run = copy_run()
    (run / "results/iter2/reflogp/pairs.jsonl").unlink()
    (run / "results/iter1/model/config.json").unlink()
    proc = snakemake_audit(run)
    assert proc.returncode == 1
    (line,) = lines_about(proc, "results/iter2/reflogp/pairs.jsonl")
    assert line.startswith("MISSING")
    (model,) = lines_about(proc, "results/iter1/model")
    assert model.startswith("MODIFIED") and "config.json: missing" in model


def test_a_changed_param_without_a_rerun_is_stale(copy_run):
    run = copy_run()
    config = run / "config/config.yaml"
    config.write_text(config.read_text().replace("temperature: 0.7", "temperature: 0.9"))
    proc = snakemake_audit(run)
    assert proc.returncode == 1
    (line,) = lines_about(proc, "results/iter1/generate/shard0.jsonl")
    assert line.startswith("STALE") and "params differ" in line
    assert lines_about(proc, "results/split/iter1.jsonl")[0].startswith("ok")


def test_changed_code_without_a_rerun_is_stale(copy_run):
    run = copy_run()
    script = run / "scripts/winprob.py"
    script.write_text(script.read_text() + "# changed\n")
    proc = provenance(run, "audit", "results/iter1/winprob/pairs.jsonl")
    assert proc.returncode == 1
    (line,) = lines_about(proc, "results/iter1/winprob/pairs.jsonl")
    assert line.startswith("STALE") and "code changed: scripts/winprob.py" in line


def test_a_variant_the_config_lacks_is_a_problem(tmp_path):
    """Artifacts under results/NAME/iterT/ belong to variant NAME: audited with a config without it
    (Snakemake's --summary cannot plan them, so their params went unchecked) the audit says so; with
    the variants config it does not (the config files given replace config/config.yaml, as in a run)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("seed: 1\n")
    variants = tmp_path / "variants.yaml"
    variants.write_text("variants:\n  dpo: {loss: dpo}\n  sppo: {}\n")
    paths = ["results/dpo/iter1/train/policy", "results/dpo/iter2/winprob/pairs.jsonl", "results/iter1/split"]
    assert audit.configured_variants(tmp_path) == set()
    assert audit.configured_variants(tmp_path, [str(variants)]) == {"dpo", "sppo"}
    lines = audit.foreign_variants(paths, audit.configured_variants(tmp_path))
    assert lines == [
        "variant dpo (2 artifacts, e.g. results/dpo/iter1/train/policy) is not in the config given"
        " (variants: none): give the run's config with --configfile"
    ]
    assert audit.foreign_variants(paths, audit.configured_variants(tmp_path, [str(variants)])) == []
    assert audit.foreign_variants(["results/summary/metrics.tsv", "results/iter3/evaluate"], set()) == []


def test_lineage_tree_and_drawing(finished_run, tmp_path):
    proc = provenance(finished_run, "audit", "--tree", "results/iter1/winprob/pairs.jsonl")
    assert proc.returncode == 0, proc.stderr
    tree = proc.stdout
    assert tree.splitlines()[0].startswith("results/iter1/winprob/pairs.jsonl  [winprob t=1]")
    for part in ("├── results/iter1/rank/shard0.jsonl  [rank s=0, t=1]", "results/iter0/model  [basemodel]"):
        assert part in tree
    assert "data/prompts.jsonl  [source]" in tree
    out = tmp_path / "lineage.dot"
    assert (
        provenance(finished_run, "audit", "--dot", "results/iter1/winprob/pairs.jsonl", str(out)).returncode
        == 0
    )
    dot = out.read_text()
    assert dot.startswith("digraph lineage {")
    assert '"results/iter1/generate/shard0.jsonl" -> "results/iter1/rank/shard0.jsonl";' in dot


# ---- the RO-Crate


def test_the_run_exports_a_valid_provenance_run_crate(finished_run, tmp_path):
    out = tmp_path / "crate"
    proc = provenance(finished_run, "crate", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    graph = {e["@id"]: e for e in json.loads((out / "ro-crate-metadata.json").read_text())["@graph"]}
    workflow = graph[graph["./"]["mainEntity"]["@id"]]
    assert "ComputationalWorkflow" in workflow["@type"]
    assert graph[workflow["programmingLanguage"]["@id"]]["name"] == "Snakemake"
    jobs = [e for e in graph.values() if e["@type"] == "CreateAction" and e["@id"].startswith("#job/")]
    assert len(jobs) == len(list((finished_run / "results/provenance").rglob("*.json")))
    for job in jobs:
        assert {"instrument", "object", "result", "startTime", "endTime"} <= set(job), job["@id"]
    ranked = graph[f"#job/{AUDITED}"]
    assert graph[AUDITED]["sha256"] == sha256(finished_run / AUDITED)
    assert {"@id": AUDITED} in ranked["result"]
    assert (out / AUDITED).read_bytes() == (finished_run / AUDITED).read_bytes()
    assert crate.validate(out) == []
