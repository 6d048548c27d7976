"""Where every part of the platform lives: ``settings`` (``MLSERVICE_*`` variables) and ``wiring``
(resources built from them). Neutral ground: the API (``serving_api``), the Dagster code
location (``pipelines``) and the launcher (``mlservice``) all import it; it imports only
``resources``."""
