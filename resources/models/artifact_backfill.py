"""Recording the artifacts of versions registered before the platform kept artifact records.

A version without a record is never loaded (``MODEL_NOT_VERIFIED``). After an upgrade, an
operator runs ``mlservice verify-artifacts`` once: every platform version without a record is
inspected with the same rules as a new registration, and recorded only if it passes; the ones
refused stay unloadable and are listed with the reason. Run it only over a store you trust as it
is now: it vouches for the files present at the time it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resources.errors import DomainError

if TYPE_CHECKING:
    from resources.models.registry import ModelRegistry


@dataclass
class BackfillReport:
    recorded: list[str] = field(default_factory=list)  # "<mlflow name> v<version>"
    refused: dict[str, str] = field(default_factory=dict)
    already: int = 0


def backfill_artifact_records(registry: ModelRegistry) -> BackfillReport:
    from resources.models.artifact_records import ArtifactRecord
    from resources.vocabulary import T_MODEL_ID, T_SEMVER, T_TENANT

    report = BackfillReport()
    records = registry.artifacts
    client = registry.client
    token = None
    while True:
        page = client.search_registered_models(filter_string=f"tags.`{T_TENANT}` != ''", max_results=100, page_token=token)
        for model in page:
            tenant_id, model_id = model.tags.get(T_TENANT), model.tags.get(T_MODEL_ID)
            if not tenant_id or not model_id:
                continue
            for version in client.search_model_versions(f"name = '{model.name}'"):
                label = f"{model.name} v{version.version}"
                if T_SEMVER not in version.tags:
                    continue
                if records.get(model.name, int(version.version)) is not None:
                    report.already += 1
                    continue
                try:
                    inspected = registry.inspect(version.source)
                except DomainError as exc:
                    report.refused[label] = exc.message
                    continue
                records.put(ArtifactRecord(
                    mlflow_name=model.name, mlflow_version=int(version.version), tenant_id=tenant_id, model_id=model_id,
                    kind=inspected.kind, digest=inspected.digest, files=inspected.files, features=inspected.features,
                    classes=inspected.classes,
                ))
                report.recorded.append(label)
        token = page.token
        if not token:
            return report
