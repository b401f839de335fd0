"""Searches and folds: the space a job's trials are drawn from (space), how a
job's trials are planned into groups (trial_plan), the one order they are
ranked in (ranking), and k-fold splits and their summaries (folds)."""
