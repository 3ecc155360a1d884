"""The run's report beyond the summary table (rules/report.smk): training curves, score and length
distributions, time and memory per stage, held-out answers side by side, and the run card. Each
module reads the run's files and writes a TSV or JSON and a figure under results/summary/."""
