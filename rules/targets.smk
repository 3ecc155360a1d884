# Targets iter1 … iterN: π_1 … π_n trained and every π_t (t ≤ n) evaluated against π_0.
# The last one (default target) also writes the summary.
for n in range(1, ITERATIONS + 1):

    rule:
        name:
            f"iter{n}"
        default_target: n == ITERATIONS
        input:
            iteration_outputs(n),
            rules.summary.output if n == ITERATIONS else [],
