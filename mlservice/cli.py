"""The ``mlservice`` command: ``up``, ``token``, ``api``, ``seed-demo``, ``walkthrough``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def _settings():
    from mlservice.config.settings import get_settings

    return get_settings()


# The token `mlservice up` prints; shorter when MLSERVICE_MAX_TOKEN_LIFETIME_S is.
BANNER_TOKEN_TTL_S = 12 * 3600


def cmd_token(args: argparse.Namespace) -> int:
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, KeyNotConfigured, issue_token

    scopes = tuple(args.scope.split()) if args.scope else DEFAULT_TOKEN_SCOPES
    try:  # issue_token refuses a --ttl beyond settings.max_token_lifetime_s (the API would refuse the token)
        token = issue_token(_settings(), tenant_id=args.tenant, subject=args.subject or f"dev@{args.tenant}", scopes=scopes, ttl_s=args.ttl)
    except (KeyNotConfigured, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_seed_demo(_args: argparse.Namespace) -> int:
    from mlservice.demo.seed import seed_demo

    seed_demo(_settings())
    return 0


def cmd_verify_artifacts(_args: argparse.Namespace) -> int:
    """Inspect and record versions registered before artifact records existed (after an upgrade)."""
    from mlservice.config.wiring import build_registry, build_state_store
    from resources.models.artifact_backfill import backfill_artifact_records

    settings = _settings()
    report = backfill_artifact_records(build_registry(settings, build_state_store(settings)))
    for label in report.recorded:
        print(f"recorded  {label}")
    for label, reason in report.refused.items():
        print(f"refused   {label}: {reason}")
    print(f"{len(report.recorded)} recorded, {len(report.refused)} refused (never loaded), {report.already} already recorded")
    return 0


def cmd_walkthrough(args: argparse.Namespace) -> int:
    """The API reference's examples in order against the running platform (``make up``), as the demo tenant."""
    from mlservice.demo.seed import DEMO_TENANT
    from mlservice.walkthrough import main as walkthrough
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

    settings = _settings()
    token = issue_token(settings, tenant_id=DEMO_TENANT, subject=f"walkthrough@{DEMO_TENANT}",
                        scopes=DEFAULT_TOKEN_SCOPES, ttl_s=3600)
    return walkthrough(args.api or f"http://127.0.0.1:{settings.api_port}", token)


def cmd_api(_args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    uvicorn.run("serving_api.main:create_app", factory=True, host=settings.api_host, port=settings.api_port, access_log=False)
    return 0


DEMO_FEATURES = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.50, "support_tickets": 3}


def _demo_model_id(api: str, token: str) -> str | None:
    """The demo model's id, for a prediction curl line (None when the demo was not seeded)."""
    import httpx

    from mlservice.demo.seed import DEMO_MODEL

    try:
        response = httpx.get(f"{api}/api/v1/models", params={"name_prefix": DEMO_MODEL},
                             headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=10)
        models = [m for m in response.json().get("data", []) if m["name"] == DEMO_MODEL]
    except (httpx.HTTPError, ValueError):
        return None
    return models[0]["model_id"] if models else None


def _s3_lines(platform) -> list[str]:
    """Where S3 paths go: the embedded server (in memory) or the configured endpoint."""
    from mlservice.launcher import embedded_s3

    s = platform.settings
    if platform.start_s3:
        return [f"  S3 (embedded)  {embedded_s3.endpoint_url(s)}   (in memory: what is written there is lost at stop; "
                f"buckets {', '.join(embedded_s3.BUCKETS)}, e.g. s3://data/customers_to_score.parquet)"]
    return [f"  S3             {s.s3_endpoint_url or 'AWS S3'}"]


def cmd_up(args: argparse.Namespace) -> int:
    from mlservice.demo.seed import DEMO_MODEL, DEMO_TENANT
    from mlservice.launcher.up import Platform
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

    settings = _settings()
    platform = Platform(settings, seed_demo=not args.no_demo, echo=lambda line: print(line, flush=True))

    def banner() -> None:
        s = platform.settings
        ttl_s = min(BANNER_TOKEN_TTL_S, s.max_token_lifetime_s)
        token = issue_token(s, tenant_id=DEMO_TENANT, subject=f"dev@{DEMO_TENANT}",
                            scopes=DEFAULT_TOKEN_SCOPES, ttl_s=ttl_s)
        api = f"http://127.0.0.1:{s.api_port}"
        lines = [
            "",
            "mlservice is up (Ctrl-C stops everything)",
            f"  API            {api}   (docs {api}/docs, readiness {api}/health/ready)",
            f"  Dagster UI     {s.effective_dagster_url}",
            f"  MLflow UI      {platform.environment()['MLSERVICE_MLFLOW_TRACKING_URI']}",
            f"  Ray dashboard  {s.effective_ray_dashboard_url}   (cluster {s.effective_ray_address}, token auth)",
            *_s3_lines(platform),
            *([f"  PostgreSQL     127.0.0.1:{s.postgres_port}   (API state, Dagster, MLflow; scale profile, "
               f"{s.effective_api_workers} API processes)",
               f"  Redis          127.0.0.1:{s.redis_port}   (Feast online store, shared rate limits and model changes)"]
              if platform.scale is not None else []),
            f"  data directory {s.data_dir}   (logs in {s.logs_dir})",
            "",
            f"development token for tenant {DEMO_TENANT} ({ttl_s / 3600:g} h):",
            f"  export TOKEN={token}",
            "try:",
            f"  curl -s -H \"Authorization: Bearer $TOKEN\" {shlex.quote(api + '/api/v1/models?name_prefix=' + DEMO_MODEL)}",
        ]
        model_id = _demo_model_id(api, token)
        if model_id:
            body = json.dumps({"model_id": model_id, "features": DEMO_FEATURES,
                               "options": {"return_probabilities": True, "return_explanation": True}})
            lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                         f"-d {shlex.quote(body)} {api}/api/v1/predictions")
            by_entity = json.dumps({"model_id": model_id, "entity": {"customer_id": "cust-123"}})
            lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                         f"-d {shlex.quote(by_entity)} {api}/api/v1/predictions")
            lookup = json.dumps({"feature_refs": [f"customer_features:{name}" for name in DEMO_FEATURES][:3],
                                 "entity_rows": [{"customer_id": "cust-123"}, {"customer_id": "cust-456"}]})
            lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                         f"-d {shlex.quote(lookup)} {api}/api/v1/features/online")
            monitoring = f"{api}/api/v1/monitoring/{model_id}"
            lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" {monitoring}/drift")
            lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" {shlex.quote(monitoring + '/performance?period_hours=24')}")
            if platform.start_s3:  # the reference's batch request: the embedded S3 holds its input
                batch = json.dumps({"model_id": model_id, "input_path": "s3://data/customers_to_score.parquet",
                                    "output_path": "s3://predictions/churn_scores/", "batch_size": 1000})
                lines.append(f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
                             f"-d {shlex.quote(batch)} {api}/api/v1/predictions/batch")
        lines.append("")
        print("\n".join(lines), flush=True)

    return platform.run(banner)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlservice", description="Self-hosted multi-tenant ML platform")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded platform on loopback and block")
    up.add_argument("--no-demo", action="store_true", help="do not seed the demo tenant")
    up.set_defaults(func=cmd_up)

    token = sub.add_parser("token", help="print a JWT signed with the configured key")
    token.add_argument("--tenant", required=True)
    token.add_argument("--scope", default=None, help='space-separated scopes (default: all but admin)')
    token.add_argument("--ttl", type=int, default=3600,
                       help="lifetime in seconds (default 3600; at most MLSERVICE_MAX_TOKEN_LIFETIME_S, 86400)")
    token.add_argument("--subject", default=None, help="the sub claim (default dev@<tenant>)")
    token.set_defaults(func=cmd_token)

    api = sub.add_parser("api", help="run only the API (parts configured by MLSERVICE_* variables)")
    api.set_defaults(func=cmd_api)

    verify = sub.add_parser("verify-artifacts", help="inspect and record model versions older than artifact records")
    verify.set_defaults(func=cmd_verify_artifacts)

    walk = sub.add_parser("walkthrough", help="send the API reference's examples in order to the running platform")
    walk.add_argument("--api", default=None, help="the API's URL (default http://127.0.0.1:MLSERVICE_API_PORT)")
    walk.set_defaults(func=cmd_walkthrough)

    seed = sub.add_parser("seed-demo", help="seed the demo tenant unless it exists")
    seed.set_defaults(func=cmd_seed_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
