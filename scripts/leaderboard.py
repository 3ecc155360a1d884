"""lm-eval benchmarks of π_t, normalised as the Open LLM Leaderboard v2 does. Run by rule leaderboard:

snakemake --cores all results/iter1/leaderboard/results.json   (settings: config key leaderboard)
"""

import lm_eval

from sppo import io, job, leaderboard, lm_eval_tasks, models

snakemake = snakemake  # noqa: F821 (provided by Snakemake)
log = job.start(snakemake.log[0], snakemake.threads, gpus=snakemake.resources.gpu)
settings = snakemake.params.settings

# Tasks first: an unknown name or an unreachable dataset fails before the model load and evaluation.
manager = lm_eval_tasks.task_manager(settings["include_path"])
lm_eval_tasks.check_tasks(settings["tasks"], manager)
log.info("lm-eval %s, tasks %s", lm_eval.__version__, ", ".join(settings["tasks"]))
tasks = lm_eval_tasks.load_tasks(settings["tasks"], manager)

model, tokenizer = models.load_policy(snakemake.params.model, snakemake.params.model_config)
raw = leaderboard.run(model, tokenizer, tasks, manager, settings)

results = leaderboard.report(raw, settings, lm_eval.__version__)
results["model"] = snakemake.params.name
for key, benchmark in results["benchmarks"].items():
    log.info("%s (%s): %.2f normalised", benchmark["name"], key, benchmark["normalized"])
log.info("average: %.2f", results["average"])
io.write_json(snakemake.output[0], results)
job.finish(snakemake)
