"""Semantic versions and the stage machine of model versions.

Stages: development -> staging -> production -> archived; staging -> development;
archived -> staging; anything -> archived. A model has at most one production version.
"""

from __future__ import annotations

import re
from functools import total_ordering

from resources.errors import InvalidRequest, StageConflict
from resources.vocabulary import STAGES

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("development", "staging"),
        ("staging", "production"),
        ("production", "archived"),
        ("staging", "development"),
        ("archived", "staging"),
        ("development", "archived"),
        ("staging", "archived"),
    }
)

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?\Z",
    re.ASCII,
)


@total_ordering
class SemVer:
    """MAJOR.MINOR.PATCH with an optional pre-release, ordered as semver.org says."""

    __slots__ = ("major", "minor", "patch", "prerelease")

    def __init__(self, major: int, minor: int, patch: int, prerelease: str | None = None):
        self.major, self.minor, self.patch, self.prerelease = major, minor, patch, prerelease

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _SEMVER.match(text or "")
        if not match:
            raise InvalidRequest(
                f"'{text}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)",
                {"version": text},
            )
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre)

    @staticmethod
    def is_valid(text: str) -> bool:
        return bool(_SEMVER.match(text or ""))

    def bump(self, part: str) -> SemVer:
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        if part == "patch":
            return SemVer(self.major, self.minor, self.patch + 1)
        raise InvalidRequest(f"unknown version bump '{part}' (major, minor or patch)")

    def _key(self):
        pre = self.prerelease
        if pre is None:
            pre_key: tuple = (1,)
        else:
            pre_key = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
        return (self.major, self.minor, self.patch, pre_key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.prerelease}" if self.prerelease else base

    __repr__ = __str__


FIRST_VERSION = SemVer(1, 0, 0)


def check_transition(current: str, target: str, version: str) -> None:
    """Raise StageConflict unless ``current -> target`` is an edge of the stage machine."""
    if target not in STAGES:
        raise InvalidRequest(f"unknown stage '{target}'", {"allowed": list(STAGES)})
    if current == target:
        raise StageConflict(
            f"version {version} is already in stage '{current}'",
            {"version": version, "current_stage": current, "target_stage": target},
        )
    if (current, target) not in ALLOWED_TRANSITIONS:
        allowed = sorted(t for c, t in ALLOWED_TRANSITIONS if c == current)
        through = sorted(v for v in allowed if (v, target) in ALLOWED_TRANSITIONS)
        hint = f"; or send \"via\": \"{through[0]}\" to pass through it in one request" if through else ""
        raise StageConflict(
            f"version {version} cannot move from '{current}' to '{target}': the allowed next stages are "
            f"{', '.join(allowed) or 'none'}{hint}",
            {"version": version, "current_stage": current, "target_stage": target, "allowed_targets": allowed,
             "via": through},
        )
