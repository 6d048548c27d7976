"""The names of the demo churn feature definitions, without Feast: the feature views, their
source files and the feature services. ``definitions.py`` builds the Feast objects from them;
the platform (``resources.features.store``, the materialization job and its assets, the demo data)
reads them here, so each name is written once."""

SOURCE_FILES = {"customer_features": "customer_features.parquet", "order_features": "order_features.parquet"}
FEATURE_VIEWS = tuple(SOURCE_FILES)
CUSTOMER_FEATURES = ["total_orders", "avg_order_value", "days_since_last_order", "support_tickets"]
ORDER_FEATURES = ["orders_last_30d", "return_rate", "days_since_first_order"]
CHURN_V1 = ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
FEATURE_SERVICES = ("churn_v1", "churn_v2")
