"""Synthetic churn customers: the four churn features of the seed and a noisy label.

Deterministic for a seed. Churn grows with days since the last order and support tickets, and
falls with order count and order value, through a logistic link with noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHURN_FEATURES = ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
TARGET = "churned"


def churn_customers(n: int = 5000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    total_orders = rng.poisson(12, n) + 1
    days_since_last_order = np.minimum(rng.exponential(40, n).round().astype(int), 365)
    avg_order_value = np.round(rng.lognormal(4.3, 0.5, n), 2)
    support_tickets = rng.poisson(1.5, n)
    logit = (
        -1.2
        + 0.035 * days_since_last_order
        + 0.45 * support_tickets
        - 0.09 * total_orders
        - 0.006 * avg_order_value
        + rng.normal(0, 0.8, n)
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{i}" for i in range(1, n + 1)],
            "total_orders": total_orders.astype("int64"),
            "days_since_last_order": days_since_last_order.astype("int64"),
            "avg_order_value": avg_order_value.astype("float64"),
            "support_tickets": support_tickets.astype("int64"),
            TARGET: churned,
        }
    )
