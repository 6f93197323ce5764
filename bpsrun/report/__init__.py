"""Sweep reports: learning curves and summary tables across the campaigns of a Hydra multirun."""
