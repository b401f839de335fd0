"""Searches and folds: the space a job's trials are drawn from (space), how a
job's trials are planned into groups and ranked (trial_plan), and k-fold
splits and their summaries (folds)."""
