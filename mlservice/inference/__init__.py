"""The model core: what the API, batch scoring actors, Serve replicas and drift reports share.

Loading a registered version through the registry (``loaded.load_version``: resolution on the
registry, the artifact checked against its recorded digest, read with the platform's own code),
``LoadedModel``, the signature (``signature``) and feature validation (``validation``), the
verified fast predictors (``fast_paths``), value bounds (``bounds``) and explanations
(``explain``). It imports ``resources`` and no web framework; what is online-only (the model
cache, the micro-batcher, response shaping) lives in ``serving_api``.
"""
