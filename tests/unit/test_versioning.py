"""SemVer parsing/ordering and the model-version stage machine."""

from __future__ import annotations

import itertools

import pytest

from resources.errors import InvalidRequest, StageConflict
from resources.models.versioning import SemVer, check_transition

# --- SemVer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, parts",
    [
        ("0.0.0", (0, 0, 0, None)),
        ("1.2.3", (1, 2, 3, None)),
        ("10.20.30", (10, 20, 30, None)),
        ("1.2.3-rc.1", (1, 2, 3, "rc.1")),
        ("1.0.0-alpha", (1, 0, 0, "alpha")),
        ("1.0.0-0.3.7", (1, 0, 0, "0.3.7")),
        ("1.0.0-x-y.7z.92", (1, 0, 0, "x-y.7z.92")),
        ("1.0.0-01a", (1, 0, 0, "01a")),  # alphanumeric identifiers may start with 0
    ],
)
def test_parse_valid(text, parts):
    version = SemVer.parse(text)
    assert (version.major, version.minor, version.patch, version.prerelease) == parts
    assert SemVer.is_valid(text)
    assert str(version) == text  # round trip


@pytest.mark.parametrize(
    "text",
    [
        "01.0.0",
        "1.01.0",
        "1.0.01",
        "1.2",
        "1",
        "1.2.3.4",
        "v1.2.3",
        "1.2.3-",
        "1.2.3-rc..1",
        "1.2.3-rc.01",  # numeric identifiers take no leading zero
        "1.2.3-rc_1",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",  # trailing newline
        "1\u0662.0.0",  # ARABIC-INDIC DIGIT TWO: only ASCII digits are semver
        "-1.2.3",
        "",
        None,
    ],
)
def test_parse_invalid(text):
    assert not SemVer.is_valid(text)
    with pytest.raises(InvalidRequest) as info:
        SemVer.parse(text)
    assert info.value.code == "INVALID_REQUEST"
    assert info.value.details == {"version": text}


SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


def test_ordering_follows_semver_org():
    versions = [SemVer.parse(v) for v in SEMVER_ORG_ORDER]
    for lower, higher in itertools.combinations(versions, 2):
        assert lower < higher, f"{lower} < {higher}"
        assert higher > lower
        assert lower != higher
    assert [str(v) for v in sorted(reversed(versions))] == SEMVER_ORG_ORDER


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("1.0.0-rc.2", "1.0.0-rc.10"),  # numeric identifiers compare numerically
        ("1.0.0-9", "1.0.0-10"),
        ("1.0.0-999", "1.0.0-a"),  # numeric identifiers sort before alphanumeric ones
        ("1.0.0-Z", "1.0.0-a"),  # alphanumeric identifiers compare in ASCII order
        ("1.9.0", "1.10.0"),
        ("1.0.9", "1.0.10"),
        ("9.0.0", "10.0.0"),
        ("1.0.0", "1.0.1-alpha"),
        ("1.0.0-rc.1", "1.0.0-rc.1.0"),  # a longer set of identifiers is higher
    ],
)
def test_ordering_pairs(lower, higher):
    assert SemVer.parse(lower) < SemVer.parse(higher)
    assert not SemVer.parse(higher) < SemVer.parse(lower)
    assert max(SemVer.parse(lower), SemVer.parse(higher)) == SemVer.parse(higher)


def test_equality_and_hash():
    assert SemVer.parse("1.2.3-rc.1") == SemVer(1, 2, 3, "rc.1")
    assert SemVer.parse("1.2.3") != SemVer.parse("1.2.3-rc.1")
    assert len({SemVer.parse("1.2.3"), SemVer(1, 2, 3), SemVer.parse("1.2.4")}) == 2
    assert SemVer.parse("1.2.3") != "1.2.3"


@pytest.mark.parametrize(
    "start, part, expected",
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("0.9.9", "minor", "0.10.0"),
        ("1.2.3-rc.1", "patch", "1.2.4"),  # a bump drops the pre-release
        ("1.2.3-rc.1", "major", "2.0.0"),
    ],
)
def test_bump(start, part, expected):
    bumped = SemVer.parse(start).bump(part)
    assert str(bumped) == expected
    assert bumped > SemVer.parse(start)


def test_bump_unknown_part_is_refused():
    with pytest.raises(InvalidRequest):
        SemVer.parse("1.2.3").bump("build")


# --- stage machine ------------------------------------------------------------------------

STAGES = ["development", "staging", "production", "archived"]

# Written out from the issue, not derived from the module under test.
EXPECTED_ALLOWED = {
    ("development", "staging"),
    ("staging", "production"),
    ("production", "archived"),
    ("staging", "development"),
    ("archived", "staging"),
    ("development", "archived"),
    ("staging", "archived"),
}


@pytest.mark.parametrize("current, target", sorted(EXPECTED_ALLOWED))
def test_allowed_transitions_pass(current, target):
    check_transition(current, target, "1.0.0")  # raises nothing


@pytest.mark.parametrize(
    "current, target",
    [pair for pair in itertools.product(STAGES, STAGES) if pair not in EXPECTED_ALLOWED],
)
def test_every_other_transition_is_a_stage_conflict(current, target):
    with pytest.raises(StageConflict) as info:
        check_transition(current, target, "1.2.0")
    assert info.value.code == "STAGE_CONFLICT"
    assert info.value.details["version"] == "1.2.0"
    assert info.value.details["current_stage"] == current
    assert info.value.details["target_stage"] == target


def test_the_two_parametrizations_cover_all_sixteen_pairs():
    refused = [pair for pair in itertools.product(STAGES, STAGES) if pair not in EXPECTED_ALLOWED]
    assert len(EXPECTED_ALLOWED) == 7
    assert len(refused) == 9
    assert all((stage, stage) in refused for stage in STAGES)


def test_conflict_lists_the_allowed_targets():
    with pytest.raises(StageConflict) as info:
        check_transition("development", "production", "1.0.0")
    assert info.value.details["allowed_targets"] == ["archived", "staging"]


@pytest.mark.parametrize("target", ["deleted", "Production", "", "prod"])
def test_unknown_target_stage_is_invalid_request(target):
    with pytest.raises(InvalidRequest) as info:
        check_transition("staging", target, "1.0.0")
    assert not isinstance(info.value, StageConflict)
    assert info.value.code == "INVALID_REQUEST"
