"""The scale profile (``MLSERVICE_PROFILE=scale``): the same platform on PostgreSQL and Redis.

``mlservice up`` then also runs, before every other part, a PostgreSQL (``mlservice.launcher.postgres``:
its cluster under ``$MLSERVICE_DATA_DIR/postgres``) and a Redis (``mlservice.launcher.redis_server``: under
``$MLSERVICE_DATA_DIR/redis``), on loopback, each with a generated password kept in the secrets
folder, and gives the parts:

- the API's state (job records, idempotency keys, leases, the prediction log, audit, feedback,
  monitoring, deployments) in the ``mlservice`` database (``MLSERVICE_DATABASE_URL``), unless a
  database URL is configured;
- Dagster's run, event and schedule storage in the ``dagster`` database (dagster-postgres; the
  rendered dagster.yaml reads ``MLSERVICE_DAGSTER_POSTGRES_URL``);
- MLflow's backend store in the ``mlflow`` database (``MLFLOW_BACKEND_STORE_URI``, read by
  ``mlflow server``: not on its command line, where every user could read the password);
  artifacts stay on the local artifact store;
- Redis db 0 for state the API processes share (``MLSERVICE_REDIS_URL``: rate-limit buckets,
  model change counters), db 1 for Feast's online store of every tenant, unless configured.

The API runs ``MLSERVICE_API_WORKERS`` processes (default: the machine's cores).
"""

from __future__ import annotations

from mlservice.config.settings import Settings
from mlservice.launcher.postgres import LocalPostgres
from mlservice.launcher.redis_server import LocalRedis

DATABASES = ("mlservice", "dagster", "mlflow")


class ScaleServers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres = LocalPostgres(home=settings.data_dir / "postgres", port=settings.postgres_port,
                                      password_path=settings.secrets_dir / "postgres_password")
        self.redis = LocalRedis(home=settings.data_dir / "redis", port=settings.redis_port,
                                password_path=settings.secrets_dir / "redis_password")

    def environment(self) -> dict[str, str]:
        """What every part of the platform is given (the servers' passwords included: every part
        that reads or writes state needs them)."""
        s, pg, redis = self.settings, self.postgres, self.redis
        return {
            "MLSERVICE_DATABASE_URL": s.database_url or pg.url("mlservice"),
            # psycopg2 by name: dagster-postgres sends "NOTIFY run_events, %s", which psycopg 3 (SQLAlchemy
            # 2.1's default for postgresql://) binds on the server, where NOTIFY takes no parameter
            "MLSERVICE_DAGSTER_POSTGRES_URL": pg.url("dagster", driver="postgresql+psycopg2"),
            "MLFLOW_BACKEND_STORE_URI": pg.url("mlflow"),
            "MLSERVICE_REDIS_URL": s.redis_url or redis.url(0),
            "MLSERVICE_FEAST_ONLINE_STORE": "redis" if s.feast_online_store == "sqlite" else s.feast_online_store,
            "MLSERVICE_FEAST_ONLINE_STORE_URL": s.feast_online_store_url or redis.url(1),
        }

    def prepare(self) -> None:
        """The PostgreSQL cluster initialised (once) and Redis's configuration written."""
        self.postgres.init()
        self.redis.write_config()

    def ready(self) -> bool:
        return self.postgres.ready() and self.redis.ready()

    def create_databases(self) -> None:
        self.postgres.ensure_databases(*DATABASES)
