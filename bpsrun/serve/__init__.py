"""Using a campaign's model: each round's model as an MLflow pyfunc model in the registry, and `bpsrun predict`."""
