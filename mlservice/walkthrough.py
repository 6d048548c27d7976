"""The API reference's examples, one after another, against a running platform (``make
reference-walkthrough`` after ``make up``; the integration tier runs it too).

Every request is the reference's own body with only its placeholders replaced: model ids and
versions taken from earlier answers, and names that must be new (a model, an ensemble) suffixed so
the walkthrough can run again. Two requests are setup the reference leaves out (a version for the
registered model, from the demo's training run; the tuning job cancelled once it runs, since 50
trials take long on 2 cores), and one step sends the reference's stage change as documented: from
development it is 409 naming the next stages, then one request with ``"via": "staging"``. Each step
prints its status and what did not match the documented status or response shape."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from resources.vocabulary import TERMINAL_STATUSES

DEMO_MODEL = "customer_churn_predictor"  # mlservice.demo.seed.DEMO_MODEL (not imported: that module imports the platform)
FEATURES = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.50, "support_tickets": 3}


@dataclass
class Step:
    name: str
    method: str
    path: str
    status: int | None = None
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and not self.problems

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"{mark} {self.status or '---'} {self.method:6} {self.path}  ({self.name})"
        if self.note:
            text += f"  {self.note}"
        return text + "".join(f"\n       - {problem}" for problem in self.problems)


def missing_keys(body: Any, keys: tuple[str, ...], where: str = "body") -> list[str]:
    if not isinstance(body, dict):
        return [f"{where} is not an object: {str(body)[:200]}"]
    return [f"{where} lacks {key!r}" for key in keys if key not in body]


class Walkthrough:
    def __init__(self, api: str, token: str, *, echo: Callable[[str], None] = print, job_timeout_s: float = 900,
                 suffix: str | None = None) -> None:
        self.api = api.rstrip("/")
        self.http = httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {token}"},
                                 trust_env=False, timeout=60)
        self.echo, self.job_timeout_s = echo, job_timeout_s
        self.suffix = suffix or uuid.uuid4().hex[:6]
        self.steps: list[Step] = []
        self.ids: dict[str, Any] = {}

    # -- plumbing -------------------------------------------------------------------------------
    def send(self, name: str, method: str, path: str, expected: tuple[int, ...], keys: tuple[str, ...] = (),
             body: dict | None = None, check: Callable[[Any], list[str]] | None = None) -> Any:
        step = Step(name, method, path)
        self.steps.append(step)
        try:
            reply = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            step.problems.append(f"no answer: {type(exc).__name__}: {exc}")
            self.echo(step.line())
            return None
        step.status = reply.status_code
        try:
            answer = reply.json() if reply.content else None
        except ValueError:
            answer = reply.text
        if reply.status_code not in expected:
            step.problems.append(f"status {reply.status_code}, documented {'/'.join(map(str, expected))}: {str(answer)[:300]}")
        else:
            step.problems += missing_keys(answer, keys)
            if check is not None and not step.problems:
                step.problems += check(answer)
        self.echo(step.line())
        return answer if step.ok else None

    def follow(self, name: str, path: str, want: str = "succeeded", keys: tuple[str, ...] = ()) -> dict | None:
        """Poll a job until it ends; the step is ok when it ended ``want`` with the documented keys."""
        step = Step(name, "GET", path)
        self.steps.append(step)
        deadline, answer = time.monotonic() + self.job_timeout_s, None
        while time.monotonic() < deadline:
            reply = self.http.get(path)
            step.status, answer = reply.status_code, reply.json()
            if reply.status_code != 200 or answer.get("status") in TERMINAL_STATUSES:
                break
            time.sleep(2)
        if step.status != 200:
            step.problems.append(f"status {step.status}: {str(answer)[:300]}")
        elif (answer or {}).get("status") != want:
            step.problems.append(f"ended {answer.get('status')!r}, not {want!r}: {answer.get('error')}")
        else:
            step.problems += missing_keys(answer, keys)
            step.note = f"-> {want}"
        self.echo(step.line())
        return answer if step.ok else None

    def skip(self, name: str, method: str, path: str, because: str) -> None:
        step = Step(name, method, path, problems=[f"not sent: {because}"])
        self.steps.append(step)
        self.echo(step.line())

    # -- the reference, in order ----------------------------------------------------------------
    def run(self) -> list[Step]:
        try:
            self._models()
            self._predictions()
            self._jobs()
            self._ensembles()
            self._features()
            self._monitoring()
            self._deployment()
        finally:
            self.http.close()
        failed = [s for s in self.steps if not s.ok]
        self.echo(f"{len(self.steps) - len(failed)} of {len(self.steps)} steps as documented")
        return self.steps

    def _models(self) -> None:
        demo = self.send("the demo model (setup)", "GET", f"/api/v1/models?name_prefix={DEMO_MODEL}", (200,), ("data",),
                         check=lambda a: [] if a["data"] else ["the demo model is not seeded (make up seeds it)"])
        if demo:
            self.ids["demo"] = demo["data"][0]["model_id"]
            versions = self.send("the demo model's versions (setup)", "GET", f"/api/v1/models/{self.ids['demo']}/versions",
                                 (200,), ("data",))
            self.ids["demo_run"] = versions["data"][0]["run_id"] if versions else None
        name = f"{DEMO_MODEL}_{self.suffix}"
        created = self.send("register", "POST", "/api/v1/models", (201,),
                            ("model_id", "name", "tenant_id", "current_version", "stage", "created_at"),
                            {"name": name, "description": "...", "model_type": "classification", "framework": "sklearn",
                             "tags": {"team": "customer-analytics", "use_case": "churn"}})
        self.send("list", "GET", "/api/v1/models?stage=production&framework=sklearn&limit=20", (200,), ("data",),
                  check=lambda a: [] if any(m["model_id"] == self.ids.get("demo") for m in a["data"])
                  else ["the demo's production model is not listed"])
        if not created:
            return
        model_id = self.ids["model"] = created["model_id"]
        self.send("get", "GET", f"/api/v1/models/{model_id}", (200,), ("model_id", "name", "current_version", "stage"))
        if not self.ids.get("demo_run"):
            return self.skip("a version (setup)", "POST", f"/api/v1/models/{model_id}/versions", "no demo run")
        added = self.send("a version from the demo's run (setup)", "POST", f"/api/v1/models/{model_id}/versions", (201,),
                          ("version",), {"source": {"run_id": self.ids["demo_run"]}})
        if not added:
            return
        version = self.ids["version"] = added["version"]
        stage = {"version": version, "target_stage": "production"}
        self.send("stage change from development (409 names the next stages)", "PUT", f"/api/v1/models/{model_id}/stage",
                  (409,), ("error",), stage, check=lambda a: [] if "staging" in a["error"]["message"]
                  else [f"the 409 does not name staging: {a['error']['message']}"])
        self.send("stage change via staging", "PUT", f"/api/v1/models/{model_id}/stage", (200,), (), {**stage, "via": "staging"})

    def _predictions(self) -> None:
        model_id, version = self.ids.get("model"), self.ids.get("version")
        if not version:
            return self.skip("single prediction", "POST", "/api/v1/predictions", "no registered version")
        self.send("single prediction", "POST", "/api/v1/predictions", (200,),
                  ("request_id", "model_id", "version", "prediction", "probabilities", "confidence", "latency_ms"),
                  {"model_id": model_id, "version": version, "features": FEATURES,
                   "options": {"return_probabilities": True, "return_explanation": False}})
        # a second walkthrough on the same platform finds the output path taken: the documented 409
        batch = self.send("batch prediction", "POST", "/api/v1/predictions/batch", (202, 409), (),
                          {"model_id": model_id, "input_path": "s3://data/customers_to_score.parquet",
                           "output_path": "s3://predictions/churn_scores/", "batch_size": 1000},
                          check=lambda a: missing_keys(a, ("job_id", "status", "estimated_completion")) if "job_id" in a
                          else [] if a["error"]["code"] == "OUTPUT_EXISTS" else [f"409 {a['error']}"])
        if batch and "job_id" in batch:
            self.follow("batch prediction ran", f"/api/v1/predictions/batch/{batch['job_id']}")

    def _jobs(self) -> None:
        training = self.send("training", "POST", "/api/v1/training", (202,), ("job_id", "status", "model_name"), {
            "model_name": "customer_churn_v2", "framework": "sklearn",
            "data_config": {"train_path": "s3://data/train.parquet", "validation_path": "s3://data/val.parquet",
                            "target_column": "churned", "batch_size": 64},
            "training_config": {"strategy": "data_parallel", "num_workers": 2, "use_gpu": False, "epochs": 50,
                                "learning_rate": 0.001, "early_stopping": True, "patience": 5},
            "hyperparameters": {"n_estimators": 100, "max_depth": 10, "min_samples_split": 5}})
        if training:
            done = self.follow("training status", f"/api/v1/training/{training['job_id']}",
                               keys=("progress", "metrics", "resources"))
            if done:
                self.ids["trained"] = done.get("model_id")
        tuning = self.send("tuning", "POST", "/api/v1/tuning", (202,), ("job_id", "status"), {
            "model_name": "customer_churn_v2",
            "search_space": {"n_estimators": {"type": "choice", "values": [50, 100, 200, 500]},
                             "max_depth": {"type": "randint", "min": 3, "max": 20},
                             "learning_rate": {"type": "loguniform", "min": 0.0001, "max": 0.1},
                             "min_samples_split": {"type": "choice", "values": [2, 5, 10]}},
            "objective_metric": "val_accuracy", "mode": "max", "num_trials": 50, "algorithm": "bayesian",
            "max_concurrent_trials": 4})
        if tuning:
            path = f"/api/v1/tuning/{tuning['job_id']}"
            self.send("tuning status", "GET", path, (200,), ("job_id", "status", "trials_total"))
            self.send("tuning cancelled (setup: 50 trials take long on 2 cores)", "POST", f"{path}/cancel", (200,), ("status",))
            self.follow("tuning ended", path, want="cancelled")

    def _ensembles(self) -> None:
        members = [self.ids.get(k) for k in ("demo", "model", "trained")]
        if not all(members):
            return self.skip("ensemble create", "POST", "/api/v1/ensembles", "fewer than three models above")
        created = self.send("ensemble create", "POST", "/api/v1/ensembles", (201,), ("ensemble_id", "name", "models"), {
            "name": f"churn_ensemble_{self.suffix}", "method": "voting_soft",
            "models": [{"model_id": m, "weight": w} for m, w in zip(members, (0.4, 0.35, 0.25), strict=True)],
            "parallel_inference": True, "fail_on_partial": False, "min_models_required": 2})
        if created:
            self.send("ensemble predict", "POST", f"/api/v1/ensembles/{created['ensemble_id']}/predict", (200,),
                      ("prediction",), {"features": FEATURES})

    def _features(self) -> None:
        self.send("online features", "POST", "/api/v1/features/online", (200,), ("results",), {
            "feature_refs": ["customer_features:total_orders", "customer_features:avg_order_value",
                             "customer_features:days_since_last_order"],
            "entity_rows": [{"customer_id": "cust-123"}, {"customer_id": "cust-456"}]},
            check=lambda a: [] if [r.get("customer_id") for r in a["results"]] == ["cust-123", "cust-456"]
            else [f"results: {a['results']}"])
        accepted = self.send("materialization", "POST", "/api/v1/features/materialize", (202,), ("job_id", "status"),
                             {"feature_views": ["customer_features", "order_features"], "incremental": True})
        if accepted:
            self.follow("materialization ran", f"/api/v1/jobs/{accepted['job_id']}")

    def _monitoring(self) -> None:
        demo = self.ids.get("demo")
        if not demo:
            return self.skip("drift", "GET", "/api/v1/monitoring/{model_id}/drift", "no demo model")

        def per_feature(answer: dict) -> list[str]:
            problems = [] if set(answer["results"]) == {"total_orders", "avg_order_value"} else [f"results for {sorted(answer['results'])}"]
            for feature, result in answer["results"].items():
                problems += missing_keys(result, ("drifted", "statistic", "p_value", "method"), f"results.{feature}")
            return problems

        self.send("drift", "GET", f"/api/v1/monitoring/{demo}/drift?features=total_orders,avg_order_value", (200,),
                  ("model_id", "overall_drift", "features_checked", "features_drifted", "results"), check=per_feature)
        self.send("performance", "GET", f"/api/v1/monitoring/{demo}/performance?period_hours=24", (200,), ("model_id",))

    def _deployment(self) -> None:
        model_id, version = self.ids.get("model"), self.ids.get("version")
        if not version:
            return self.skip("deployment", "POST", "/api/v1/deployments", "no registered version")
        body = {"model_id": model_id, "version": version, "runtime": "ray_serve", "num_replicas": 2,
                "autoscaling": {"min_replicas": 1, "max_replicas": 10, "target_requests_per_replica": 5},
                "resources": {"cpu": 2, "memory_gb": 4, "gpu": 0}}
        # 202 on a cluster that holds 2 replicas of 2 CPUs and 4 GiB; on a smaller one (the 2-core
        # default) the documented 400 that names what the cluster has
        answer = self.send("deployment (the reference's body)", "POST", "/api/v1/deployments", (202, 400), (), body,
                           check=lambda a: [] if "deployment_id" in a or "the cluster has" in a["error"]["message"]
                           else [f"neither accepted nor a 400 naming the cluster: {a}"])
        if answer and "deployment_id" in answer:
            self.send("deployment removed (setup)", "DELETE", f"/api/v1/deployments/{answer['deployment_id']}", (202,))
        elif answer:
            self.echo(f"       {answer['error']['message']}")


def main(api: str, token: str, echo: Callable[[str], None] = print) -> int:
    steps = Walkthrough(api, token, echo=echo).run()
    return 0 if all(step.ok for step in steps) else 1
