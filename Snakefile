# SPPO: split → generate → rank → winprob → reflogp → train → evaluate, repeated for each iteration.
# Usage: snakemake --cores all iter3   (README.md; config keys: config/README.md)

from snakemake.utils import min_version

from sppo.config import validate

min_version("9.0")


# The offline toy, unless the command line names config files: a config file is complete on its
# own (a key it leaves out takes the schema's default, the paper's value), wherever it runs from.
# The toy can be named too: --configfile config/config.yaml FILE puts FILE over it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"  # the landing page of `snakemake --report`


config = validate(config)  # fails before any job runs, naming the key


include: "rules/common.smk"
include: "rules/config.smk"
include: "rules/fetch.smk"
include: "rules/basemodel.smk"
include: "rules/split.smk"
include: "rules/generate.smk"
include: "rules/rank.smk"
include: "rules/winprob.smk"
include: "rules/reflogp.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/leaderboard.smk"
include: "rules/report.smk"
include: "rules/audit.smk"


# Targets iter1 … iterN: π_1 … π_n trained and every π_t (t ≤ n) evaluated against π_0; the last
# (the default target) also writes the summary. They stand here, not in an included file, because
# Snakemake ignores default_target in included files.
for n in range(1, ITERATIONS + 1):

    rule:
        name:
            f"iter{n}"
        default_target: n == ITERATIONS
        input:
            target_files(n),
