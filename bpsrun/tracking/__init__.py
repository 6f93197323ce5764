"""MLflow: one experiment per dataset, one parent run per campaign, one child run per round.

`store` talks to the MLflow store, `runs` lays a campaign's runs out in it, `figures` draws a round's PNG artifacts.
"""
