"""Logging a fitted model to the active MLflow run, with its signature and without pickle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assets.training.training_data import TrainingData

SKLEARN_REQUIREMENTS = ["scikit-learn", "pandas", "numpy", "skops"]


def _sklearn_output(model: Any, frame):
    return model.predict_proba(frame) if hasattr(model, "predict_proba") else model.predict(frame)


EXAMPLE_ROWS = 50


def log_fitted_model(outcome: Any, data: TrainingData) -> Any:
    """Log ``outcome.model`` as ``model`` in the active run; returns MLflow's ModelInfo.

    scikit-learn models go through skops (MLflow's default): the types of an estimator we just
    trained ourselves are trusted explicitly. Torch models go as a state dict with a pyfunc
    wrapper loaded from code.
    """
    from mlflow.models import infer_signature

    # The input example doubles as the explanations' background (mlservice.inference.contributions
    # uses up to 50 rows): a seeded sample of the training rows, not the first validation rows.
    example = data.x_train.sample(n=min(EXAMPLE_ROWS, len(data.x_train)), random_state=0)
    if outcome.framework == "pytorch":
        from assets.training.torch_model import log_torch_model

        model = outcome.model
        output = model.predict_proba(example) if data.model_type == "classification" else model.predict(example)
        signature = infer_signature(example, output)
        return log_torch_model(outcome.model, name="model", signature=signature, input_example=example)

    import mlflow

    from resources.models.skops_import import skops_io

    skops = skops_io()  # before MLflow's sklearn flavor imports it (without torch: resources/models/skops_import.py)
    signature = infer_signature(example, _sklearn_output(outcome.model, example))
    trusted = skops.get_untrusted_types(data=skops.dumps(outcome.model))
    return mlflow.sklearn.log_model(
        outcome.model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=SKLEARN_REQUIREMENTS,
        skops_trusted_types=trusted,
    )
