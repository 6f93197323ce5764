"""The round model's code file (MLflow's "models from code"): MLflow runs this file to get the model, so nothing is
pickled into the model and loading it runs only bpsrun's own code."""

from mlflow.models import set_model

from bpsrun.serve.pyfunc import RoundModel

set_model(RoundModel())
