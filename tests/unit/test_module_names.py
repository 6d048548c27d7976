"""Names that say what they hold: within one room (a package and its modules), no two modules
whose names differ by a plural or by a word added before or after (``prediction_record`` beside
``prediction_records``, ``jobs`` beside ``job_routes``): a reader must tell them apart by name."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("resources", "serving_api", "assets", "pipelines", "mlservice")


def look_alike(a: str, b: str) -> bool:
    singular = a.removesuffix("s")
    return a != b and (b in (a + "s", a + "es") or b.startswith(a + "_") or b.endswith("_" + a)
                       or (singular != a and (b.startswith(singular + "_") or b.endswith("_" + singular))))


def look_alikes(root: Path, packages: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for package in packages:
        for folder in [root / package, *(d for d in (root / package).rglob("*") if (d / "__init__.py").exists())]:
            if "migrations" in folder.parts:
                continue
            names = sorted(p.stem for p in folder.glob("*.py") if p.name != "__init__.py")
            names += sorted(d.name for d in folder.iterdir() if (d / "__init__.py").exists())
            found += [(f"{folder.relative_to(root)}/{a}", b) for a in names for b in names if look_alike(a, b)]
    return found


def test_no_two_modules_of_a_room_look_alike():
    assert look_alikes(REPO, PACKAGES) == []


def test_the_check_finds_the_look_alikes_it_names(tmp_path):
    room = tmp_path / "pkg"
    room.mkdir()
    for name in ("__init__", "prediction_record", "prediction_records", "jobs", "job_routes", "routes", "kind_routes", "log"):
        (room / f"{name}.py").write_text("")
    assert sorted(look_alikes(tmp_path, ("pkg",))) == [
        ("pkg/jobs", "job_routes"), ("pkg/prediction_record", "prediction_records"), ("pkg/routes", "job_routes"),
        ("pkg/routes", "kind_routes")]
