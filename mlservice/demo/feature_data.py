"""Synthetic churn population for the feature store: order histories, feature snapshots, labels.

Deterministic for ``(n, seed, as_of)``; numpy and pandas only. Every customer ``cust-1`` ...
``cust-N`` has a latent engagement that drives how often they order, what they spend, how much
they return and how many support tickets they open; some customers lapse (stop ordering) before
``as_of``. From the raw orders and tickets, snapshots are taken every ``snapshot_every_days``
days back from ``as_of`` (midnight UTC), so a feature view holds a handful of rows per customer:

- ``customer_features``: total_orders, avg_order_value, days_since_last_order, and
  support_tickets (tickets opened in the last 90 days);
- ``order_features``: orders_last_30d, return_rate (returned / placed, lifetime),
  days_since_first_order.

Labels: one label time per customer (a day between 7 and 180 days before ``as_of``) with
``churned`` drawn through a logistic link of the features as they stood at that moment, plus
noise. The label time usually falls between two snapshots, so a training set built by a
point-in-time join sees the latest snapshot before the label, never one after it.

``as_of`` defaults to a fixed date so output is reproducible; a live demo passes today's date so
that the feature views' ttl windows cover the newest snapshots.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from resources.features.demo_names import CHURN_V1, SOURCE_FILES

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 365
TICKET_WINDOW_DAYS = 90
FILES = {**SOURCE_FILES, "churn_labels": "churn_labels.parquet"}


def _population(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-customer latent traits; times are in days relative to ``as_of`` (0 = as_of, negative = past)."""
    engagement = rng.normal(0.0, 1.0, n)
    first_order = -rng.uniform(HISTORY_DAYS * 0.1, HISTORY_DAYS * 1.5, n)  # some joined before the window
    lapse_p = 1 / (1 + np.exp(1.0 + 1.2 * engagement))
    lapsed = rng.random(n) < lapse_p
    active_until = np.where(lapsed, first_order + rng.uniform(0, 1, n) * (-first_order), 0.0)
    return {
        "first_order": first_order,
        "active_until": active_until,
        "order_rate": np.exp(np.log(1 / 30) + 0.5 * engagement + rng.normal(0, 0.3, n)),  # orders per day
        "value_mean": rng.lognormal(4.3, 0.4, n),
        "return_p": rng.beta(2, 18, n),
        "ticket_rate": np.exp(np.log(1.5 / 90) - 0.4 * engagement + rng.normal(0, 0.3, n)),  # per day
    }


def _events(pop: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders (customer, day, value, returned) and tickets (customer, day), sorted by customer and day."""
    n = len(pop["first_order"])
    span = pop["active_until"] - pop["first_order"]
    extra = rng.poisson(pop["order_rate"] * span)
    counts = 1 + extra  # the first order opens the history
    customer = np.repeat(np.arange(n), counts)
    offset = rng.uniform(0, 1, counts.sum()) * np.repeat(span, counts)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    offset[first] = 0.0
    day = np.repeat(pop["first_order"], counts) + offset
    value = np.round(np.repeat(pop["value_mean"], counts) * rng.lognormal(0, 0.3, counts.sum()), 2)
    returned = rng.random(counts.sum()) < np.repeat(pop["return_p"], counts)
    orders = pd.DataFrame({"customer": customer, "day": day, "value": value, "returned": returned})

    ticket_span = -pop["first_order"]
    tcounts = rng.poisson(pop["ticket_rate"] * ticket_span)
    tcustomer = np.repeat(np.arange(n), tcounts)
    tday = np.repeat(pop["first_order"], tcounts) + rng.uniform(0, 1, tcounts.sum()) * np.repeat(ticket_span, tcounts)
    tickets = pd.DataFrame({"customer": tcustomer, "day": tday})
    return orders.sort_values(["customer", "day"], kind="stable"), tickets


def _features_at(orders: pd.DataFrame, tickets: pd.DataFrame, at: np.ndarray) -> pd.DataFrame:
    """All seven features for every customer at their own moment ``at[customer]`` (days)."""
    n = len(at)
    o = orders[orders["day"].to_numpy() <= at[orders["customer"].to_numpy()]]
    c = o["customer"].to_numpy()
    day = o["day"].to_numpy()
    total = np.bincount(c, minlength=n)
    spent = np.bincount(c, weights=o["value"].to_numpy(), minlength=n)
    returns = np.bincount(c, weights=o["returned"].to_numpy().astype(float), minlength=n)
    recent = np.bincount(c, weights=(day > at[c] - 30).astype(float), minlength=n)
    last = np.full(n, -np.inf)
    np.maximum.at(last, c, day)
    first = np.full(n, np.inf)
    np.minimum.at(first, c, day)
    t = tickets[(tickets["day"].to_numpy() <= at[tickets["customer"].to_numpy()])
                & (tickets["day"].to_numpy() > at[tickets["customer"].to_numpy()] - TICKET_WINDOW_DAYS)]
    support = np.bincount(t["customer"].to_numpy(), minlength=n)
    safe_total = np.maximum(total, 1)
    return pd.DataFrame({
        "has_orders": total > 0,
        "total_orders": total.astype("int64"),
        "avg_order_value": np.round(spent / safe_total, 2),
        "days_since_last_order": np.floor(np.where(total > 0, at - last, 0)).astype("int64"),
        "support_tickets": support.astype("int64"),
        "orders_last_30d": recent.astype("int64"),
        "return_rate": np.round(returns / safe_total, 4),
        "days_since_first_order": np.floor(np.where(total > 0, at - first, 0)).astype("int64"),
    })


# Terms of the churn link that a frame may lack (the demo model sees four features): typical values.
TYPICAL = {"orders_last_30d": 1.0, "return_rate": 0.1}


def churn_draw(f: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Churned (0/1) per row, drawn through the population's logistic link of the features;
    columns the frame lacks count at their ``TYPICAL`` values."""
    def term(name: str):
        return f[name] if name in f.columns else TYPICAL[name]

    logit = (
        -2.0
        + 0.03 * f["days_since_last_order"]
        + 0.4 * f["support_tickets"]
        - 0.06 * f["total_orders"]
        - 0.005 * f["avg_order_value"]
        - 0.3 * term("orders_last_30d")
        + 2.0 * term("return_rate")
        + rng.normal(0, 0.8, len(f))
    ).to_numpy(dtype=float)
    return (rng.random(len(f)) < 1 / (1 + np.exp(-np.clip(logit, -30, 30)))).astype("int64")


def _labelled(orders: pd.DataFrame, tickets: pd.DataFrame, n: int, rng: np.random.Generator):
    """Each customer's label time (days), the features as they stood then, and the churn drawn from them."""
    label_day = -rng.integers(7, 181, n).astype(float)
    f = _features_at(orders, tickets, label_day)
    return label_day, f, churn_draw(f, rng)


def churn_feature_tables(
    n: int = 20_000, seed: int = 7, as_of: datetime = AS_OF, snapshots: int = 12, snapshot_every_days: int = 30,
) -> dict[str, pd.DataFrame]:
    """The three tables: ``customer_features``, ``order_features`` and ``churn_labels``."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    rng = np.random.default_rng(seed)
    pop = _population(n, rng)
    orders, tickets = _events(pop, rng)
    ids = np.array([f"cust-{i}" for i in range(1, n + 1)], dtype=object)

    customer_parts, order_parts = [], []
    for k in range(snapshots):
        at_day = -float(k * snapshot_every_days)
        f = _features_at(orders, tickets, np.full(n, at_day))
        keep = f["has_orders"].to_numpy()
        ts = as_of + pd.Timedelta(days=at_day)
        base = pd.DataFrame({"customer_id": ids[keep], "event_timestamp": ts})
        customer_parts.append(base.assign(**{c: f.loc[keep, c].to_numpy() for c in
                                             ("total_orders", "avg_order_value", "days_since_last_order", "support_tickets")}))
        order_parts.append(base.assign(**{c: f.loc[keep, c].to_numpy() for c in
                                          ("orders_last_30d", "return_rate", "days_since_first_order")}))

    label_day, f, churned = _labelled(orders, tickets, n, rng)
    keep = f["has_orders"].to_numpy()
    labels = pd.DataFrame({
        "customer_id": ids[keep],
        "event_timestamp": as_of + pd.to_timedelta(label_day[keep], unit="D"),
        "churned": churned[keep],
    })

    def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
        frame = pd.concat(frames, ignore_index=True)
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        return frame.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)

    return {"customer_features": tidy(customer_parts), "order_features": tidy(order_parts), "churn_labels": tidy([labels])}


def churn_flat_frames(n: int = 20_000, seed: int = 7) -> dict[str, pd.DataFrame]:
    """The population of ``churn_feature_tables(n, seed)`` as two flat frames without timestamps,
    for files a job reads directly (no feature store), columns ``customer_id`` and the four
    features of ``churn_v1`` (``resources.features.demo_names.CHURN_V1``):

    - ``labelled``: the features as they stood at each customer's label time and ``churned``, the
      same labels as ``churn_labels`` (the demo model's training data, without the point-in-time join);
    - ``current``: the features at ``as_of``, equal to the newest ``customer_features`` snapshot
      (what the online store serves after materialization): customers to score.
    """
    rng = np.random.default_rng(seed)
    orders, tickets = _events(_population(n, rng), rng)
    ids = np.array([f"cust-{i}" for i in range(1, n + 1)], dtype=object)
    _, at_label, churned = _labelled(orders, tickets, n, rng)
    now = _features_at(orders, tickets, np.zeros(n))

    def flat(f: pd.DataFrame) -> pd.DataFrame:
        keep = f["has_orders"].to_numpy()
        return pd.DataFrame({"customer_id": ids[keep], **{c: f.loc[keep, c].to_numpy() for c in CHURN_V1}})

    labelled = flat(at_label).assign(churned=churned[at_label["has_orders"].to_numpy()])
    return {"labelled": labelled, "current": flat(now)}


def write_feature_data(
    directory: str | Path, n: int = 20_000, seed: int = 7, as_of: datetime = AS_OF, **options: int,
) -> dict[str, Path]:
    """Write ``customer_features.parquet``, ``order_features.parquet`` and ``churn_labels.parquet``
    into ``directory`` (created if needed); returns their paths by table name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tables = churn_feature_tables(n=n, seed=seed, as_of=as_of, **options)
    paths = {}
    for name, frame in tables.items():
        path = directory / FILES[name]
        frame.to_parquet(path, index=False)
        paths[name] = path
    return paths
