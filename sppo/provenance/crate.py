"""Export a finished run as a Workflow Run RO-Crate following the Provenance Run Crate profile 0.5.

The crate holds the workflow (the Snakefile as main entity: a ComputationalWorkflow in Snakemake
with one HowToStep and one tool, a SoftwareApplication, per rule), the code the jobs ran, every
recorded artifact (copied, models included) with its sha256, and the provenance records. Each job
is a CreateAction (instrument: its rule's tool; object: its inputs and params; result: its
outputs; start and end times; subjectOf: its record), tied to its step by a ControlAction; the
OrganizeAction of the Snakemake engine holds those and results in the CreateAction of the run.

It is RO-Crate 1.1, which the Workflow Run Crate 0.5 profiles build on. ro-crate-1.1-context.jsonld
beside this file is that version's JSON-LD context (CC0; taken from rocrate 0.9.0's
rocrate/data/ro-crate.jsonld, sha256 bb5dd0a7…d2222a): roc-validator fetches a crate's @context
over HTTP, so ``validate`` serves it this copy to run offline.
"""

from __future__ import annotations

import io
import mimetypes
import os
import tempfile
from pathlib import Path

from sppo.provenance import record as records_
from sppo.provenance.code import PACKAGE_DIR, workflow_of

RO_CRATE_VERSION = "1.1"
CONTEXT_FILE = Path(__file__).with_name("ro-crate-1.1-context.jsonld")
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
DESCRIPTION = (
    "A run of the SPPO (Self-Play Preference Optimization) Snakemake workflow: sampling, judging, "
    "win probabilities, reference log-probabilities, SPPO training and evaluation per iteration."
)


def _one_or_many(items: list):
    return items[0] if len(items) == 1 else items


def _entity(crate, ident: str, type_, **props):
    from rocrate.model.contextentity import ContextEntity

    return crate.get(ident) or crate.add(ContextEntity(crate, ident, properties={"@type": type_, **props}))


def _data(crate, path: str, entry: dict | None = None, **props):
    """The File or Dataset entity of ``path`` (copied into the crate)."""
    if crate.get(path) is not None:
        return crate.get(path)
    if entry:
        props["sha256"] = entry["sha256"]
    if os.path.isdir(path):
        return crate.add_dataset(path, path, properties=props)
    props["contentSize"] = str(os.path.getsize(path))
    props["encodingFormat"] = mimetypes.guess_type(path)[0] or (
        "application/jsonl" if path.endswith(".jsonl") else "text/plain"
    )
    return crate.add_file(path, path, properties=props)


def _add_code(crate, records: dict, workflow: Path) -> None:
    """The code files the jobs ran (as recorded, from the workflow directory ``workflow``), the config
    and the environments."""
    for rel in sorted({rel for rec in records.values() for rel in rec["code"]["files"]} - {"Snakefile"}):
        source = PACKAGE_DIR.parent / rel if rel.startswith("sppo/") else workflow / rel
        if source.is_file():
            crate.add_file(source, rel, properties={"@type": ["File", "SoftwareSourceCode"]})
    if Path("config/config.yaml").is_file():
        _data(crate, "config/config.yaml")
    for path in sorted((workflow / "envs").glob("*.yaml")):
        size, kind = str(path.stat().st_size), mimetypes.guess_type(path.name)[0] or "text/plain"
        crate.add_file(path, f"envs/{path.name}", properties={"contentSize": size, "encodingFormat": kind})


def _tool(crate, workflow, rec: dict):
    """The tool (SoftwareApplication) and workflow step (HowToStep) of ``rec``'s rule."""
    rule = rec["rule"]
    tool = _entity(crate, f"#rule/{rule}", "SoftwareApplication", name=f"rule {rule}")
    if crate.get(f"#step/{rule}") is None:
        code = [crate.get(p) for p in rec["code"]["files"] if p.startswith(("rules/", "scripts/"))]
        tool["hasPart"] = _one_or_many([c for c in code if c is not None])
        position = str(len(workflow.get("step", [])))
        step = _entity(crate, f"#step/{rule}", "HowToStep", name=rule, position=position, workExample=tool)
        workflow.append_to("hasPart", tool)
        workflow.append_to("step", step)
    have = {s.id for s in tool.get("softwareRequirements", [])}
    for name, version in sorted(rec["software"].items()):
        if f"#software/{name}/{version}" not in have:
            software = _entity(
                crate, f"#software/{name}/{version}", "SoftwareApplication", name=name, version=version
            )
            tool.append_to("softwareRequirements", software)
    return tool, crate.get(f"#step/{rule}")


def _add_job(crate, workflow, record_path: Path, rec: dict):
    """The CreateAction of one job and the ControlAction that ties it to its step."""
    tool, step = _tool(crate, workflow, rec)
    first = next(iter(rec["outputs"]))
    params = [
        _entity(crate, f"#job/{first}/param/{k}", "PropertyValue", name=k, value=records_.canonical_json(v))
        for k, v in rec["params"].items()
    ]
    wildcards = " ".join(f"{k}={v}" for k, v in rec["wildcards"].items())
    name = f"{rec['rule']} {wildcards}".strip()
    props = {
        "name": name,
        "description": f"Job {name} on {rec['host']['hostname']}; its provenance record is {record_path}.",
        "actionStatus": "http://schema.org/CompletedActionStatus",
        "endTime": rec["finished"],
        **({"startTime": rec["started"]} if rec["started"] else {}),
    }
    inputs = [_data(crate, p, e) for p, e in rec["inputs"].items() if os.path.exists(p)]
    outputs = [_data(crate, p, e) for p, e in rec["outputs"].items() if os.path.exists(p)]
    action = crate.add_action(tool, f"#job/{first}", properties=props)
    action["object"] = _one_or_many(inputs + params)
    action["result"] = _one_or_many(outputs)
    action["subjectOf"] = _data(crate, str(record_path))
    control = _entity(
        crate, f"#control/{first}", "ControlAction", name=f"orchestrate {name}", instrument=step
    )
    control["object"] = action
    return action, control


def export(out_dir: str | os.PathLike) -> Path:
    """Write the crate of the run in the current directory to ``out_dir``."""
    from rocrate.rocrate import ROCrate

    records = records_.load_all()
    if not records:
        raise SystemExit(f"no provenance records under {records_.RECORDS}/: nothing to export")
    crate = ROCrate(version=RO_CRATE_VERSION)
    crate.metadata.extra_terms["sha256"] = "http://schema.org/sha256"  # in RO-Crate's context from 1.2 on
    crate.name, crate.description = "SPPO workflow run", DESCRIPTION
    crate.root_dataset["license"] = "See the repository of the SPPO workflow"
    for ident, (name, version) in PROFILES.items():
        profile = _entity(crate, ident, ["CreativeWork", "Profile"], name=name, version=version)
        crate.root_dataset.append_to("conformsTo", profile)

    any_record = next(iter(records.values()))
    types = ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]  # HowTo: it has steps
    workflow_dir = workflow_of(records)
    workflow = crate.add_workflow(
        workflow_dir / "Snakefile", "Snakefile", main=True, lang="snakemake", properties={"@type": types}
    )
    workflow["version"] = any_record["code"]["git_commit"] or "unversioned"
    snakemake_version = any_record["software"].get("snakemake", "unknown")
    workflow["programmingLanguage"]["version"] = snakemake_version
    engine = _entity(crate, "#snakemake", "SoftwareApplication", name="Snakemake", version=snakemake_version)
    _add_code(crate, records, workflow_dir)

    order = sorted(
        records.items(), key=lambda item: (item[1]["started"] or item[1]["finished"], str(item[0]))
    )
    actions, controls = zip(*(_add_job(crate, workflow, path, rec) for path, rec in order), strict=True)

    consumed = {p for rec in records.values() for p in rec["inputs"]}
    sources = [crate.get(p) for p in sorted(consumed) if not p.startswith("results/") and crate.get(p)]
    finals = [crate.get(p) for _, rec in order for p in rec["outputs"] if p not in consumed and crate.get(p)]
    times = {"startTime": min(r["started"] or r["finished"] for r in records.values())}
    times["endTime"] = max(r["finished"] for r in records.values())
    run = crate.add_action(workflow, "#run", properties={"name": "SPPO workflow run", **times})
    run["object"] = [*sources, crate.get("config/config.yaml")]
    run["result"] = finals
    organize = _entity(
        crate, "#engine-run", "OrganizeAction", name="Snakemake run", instrument=engine, **times
    )
    organize["object"] = list(controls)
    organize["result"] = run
    crate.root_dataset["mentions"] = [run, *actions]
    out = Path(out_dir)
    crate.write(out)
    return out


def _seeded_cache(directory: Path) -> Path:
    """An HTTP cache (requests-cache, as roc-validator uses) holding the RO-Crate 1.1 context."""
    import urllib3
    from requests import Request
    from requests.adapters import HTTPAdapter
    from requests_cache import CachedSession

    url = f"https://w3id.org/ro/crate/{RO_CRATE_VERSION}/context"
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(CONTEXT_FILE.read_bytes()),
        headers={"Content-Type": "application/ld+json"},
        status=200,
        preload_content=False,
        request_url=url,
    )
    response = HTTPAdapter().build_response(Request("GET", url).prepare(), raw)
    _ = response.content  # read the body before caching it
    cache = directory / "http-cache"
    session = CachedSession(cache_name=str(cache), backend="sqlite", expire_after=-1)
    session.cache.save_response(response)
    session.close()
    return cache


def validate(crate_dir: str | os.PathLike, profile: str = "provenance-run-crate-0.5") -> list[str]:
    """Validate the crate with roc-validator against ``profile`` (its REQUIRED checks); the issues.

    roc-validator's profiles ship with it, but it fetches the crate's JSON-LD @context over HTTP;
    in offline mode with a cache seeded from CONTEXT_FILE it runs without a network.
    """
    from rocrate_validator import services
    from rocrate_validator.models import Severity, ValidationSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = ValidationSettings(
            rocrate_uri=Path(crate_dir).resolve(),
            profile_identifier=profile,
            requirement_severity=Severity.REQUIRED,
            offline=True,
            cache_path=_seeded_cache(Path(tmp)),
        )
        result = services.validate(settings)
        return [f"{issue.check.identifier}: {issue.message}" for issue in result.get_issues()]
