"""Training as compiled JAX programs: one model's epochs as one call each
(trainer, program), and trials of a search side by side in one vmapped
program (group_trainer, which runs group_program from group_inputs, keeps its
state in group_state, stops trials by halving and saves group_checkpoints)."""
