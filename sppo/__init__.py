"""Self-Play Preference Optimization (SPPO) as a Snakemake workflow: the logic behind each stage."""

__version__ = "0.1.0"
