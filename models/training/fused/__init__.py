"""Training as compiled JAX programs: one model's epochs as one call each
(trainer, program), and trials of a search side by side in one vmapped
program (group_trainer, group_program, group_inputs)."""
