"""Budgets: what a run may spend, parameter-matched sizes, and whether a time budget holds one step."""
