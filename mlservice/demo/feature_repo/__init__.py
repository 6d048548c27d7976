"""The platform's Feast repository: declarative definitions (``definitions.py``) and a
``feature_store.yaml`` for the Feast CLI. The platform applies the same definitions per tenant
in process (``resources.features.store``)."""
