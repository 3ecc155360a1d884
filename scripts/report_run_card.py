"""The run card: config, provenance audit, code, software and machines. Run by rule run_card."""

from sppo import io, job
from sppo.provenance import record
from sppo.report import runcard

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0])

params = snakemake.params
audited_at = runcard.utc_now()
audit = runcard.run_audit(params.snakefile, params.config, list(snakemake.input))
log.info("provenance audit: exit status %d\n%s", *audit)
card = runcard.build(params.config, record.load_all(), audit, audited_at)
io.write_json(snakemake.output.card, card)
with io.atomic_path(snakemake.output.page) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write(runcard.to_html(card))
job.finish(snakemake)
