"""Training an iterative scikit-learn estimator one epoch at a time (for progress and early stopping)."""

from __future__ import annotations

import numpy as np

from resources.jobs.estimators import boosting_schedule, estimator_name, final_estimator


class EpochRunner:
    """Trains an ITERATIVE estimator one epoch at a time, in place on ``model``."""

    def __init__(self, model, trainer, x, y, classes, batch_size: int, seed: int | None = None) -> None:
        self.model = model
        self.name = estimator_name(trainer)
        self.classification = trainer.model_type == "classification"
        self.classes = np.asarray(classes) if classes is not None else None
        self.batch_size = max(1, int(batch_size))
        self.rng = np.random.default_rng(seed)
        if self.name == "gradient_boosting":
            total = int(trainer.hyperparameters.get("n_estimators", 100))
            self.schedule = boosting_schedule(total, trainer.epochs)
            self.x, self.y = x, y
        else:
            self.schedule = None
            if hasattr(model, "steps"):  # fit the scaler once, train the final step on scaled rows
                self.x = np.asarray(model[:-1].fit(x).transform(x))
            else:
                self.x = np.asarray(x)
            self.y = np.asarray(y)

    @property
    def epochs(self) -> int | None:
        """Epochs this estimator needs (gradient_boosting), None: as many as the trainer says."""
        return len(self.schedule) if self.schedule is not None else None

    def run_epoch(self, epoch: int) -> None:
        estimator = final_estimator(self.model)
        if self.schedule is not None:
            estimator.set_params(n_estimators=self.schedule[epoch - 1])
            estimator.fit(self.x, self.y)
            return
        order = self.rng.permutation(len(self.x))
        extra = {"classes": self.classes} if self.classification else {}
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            estimator.partial_fit(self.x[rows], self.y[rows], **extra)

    @property
    def learning_rate(self) -> float | None:
        params = final_estimator(self.model).get_params()
        value = params.get({"sgd": "eta0", "mlp": "learning_rate_init"}.get(self.name, "learning_rate"))
        return float(value) if isinstance(value, (int, float)) else None
