"""DataAccessPolicy.resolve: which paths a tenant's jobs may read (and write)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.data.access import DataAccessPolicy
from resources.errors import InvalidRequest

TENANT = "tenant-a"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path.resolve()


@pytest.fixture
def tenant_area(data_dir) -> Path:
    area = data_dir / "tenants" / TENANT
    area.mkdir(parents=True)
    return area


@pytest.fixture
def shared_root(tmp_path) -> Path:
    root = tmp_path / "shared"
    root.mkdir()
    return root.resolve()


def policy(data_dir: Path, **kwargs) -> DataAccessPolicy:
    return DataAccessPolicy(data_dir=str(data_dir), **kwargs)


def assert_refused(pol: DataAccessPolicy, uri, tenant: str = TENANT) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        pol.resolve(tenant, uri)
    assert info.value.code == "INVALID_REQUEST"
    return info.value


# --- relative paths: the tenant's own area ------------------------------------------------


@pytest.mark.parametrize("rel", ["train.csv", "sub/dir/train.parquet", "./train.csv"])
def test_relative_path_resolves_under_tenant_area(data_dir, rel):
    loc = policy(data_dir).resolve(TENANT, rel)
    expected = data_dir / "tenants" / TENANT / rel
    assert loc.path == str(expected.resolve())
    assert loc.uri == loc.path
    assert loc.scheme == "file"
    assert not loc.is_s3


def test_relative_paths_of_two_tenants_do_not_overlap(data_dir):
    pol = policy(data_dir)
    assert pol.resolve("tenant-a", "x.csv").path != pol.resolve("tenant-b", "x.csv").path
    assert Path(pol.resolve("tenant-b", "x.csv").path).parent == data_dir / "tenants" / "tenant-b"


@pytest.mark.parametrize(
    "uri",
    ["../tenant-b/x.csv", "sub/../../tenant-b/x.csv", "..", "sub/.."],
)
def test_dotdot_segments_are_refused_in_relative_paths(data_dir, uri):
    assert_refused(policy(data_dir), uri)


def test_dotdot_segments_are_refused_even_inside_a_data_root(data_dir, shared_root):
    pol = policy(data_dir, data_roots=[str(shared_root)])
    assert_refused(pol, f"{shared_root}/sub/../x.csv")
    assert_refused(pol, f"file://{shared_root}/sub/../x.csv")
    assert_refused(pol, f"file://{shared_root}/sub/%2e%2e/x.csv")  # percent-encoded '..'


def test_symlink_leaving_the_tenant_area_is_refused(tmp_path, data_dir, tenant_area):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a,b\n")
    (tenant_area / "link").symlink_to(outside, target_is_directory=True)
    (tenant_area / "file-link.csv").symlink_to(outside / "secret.csv")

    pol = policy(data_dir)
    assert_refused(pol, "link/secret.csv")
    assert_refused(pol, "file-link.csv")


def test_symlink_into_another_tenants_area_is_refused(data_dir, tenant_area):
    other = data_dir / "tenants" / "tenant-b"
    other.mkdir(parents=True)
    (tenant_area / "peek").symlink_to(other, target_is_directory=True)
    assert_refused(policy(data_dir), "peek/x.csv")


def test_symlink_staying_inside_the_tenant_area_is_allowed(data_dir, tenant_area):
    (tenant_area / "real").mkdir()
    (tenant_area / "alias").symlink_to(tenant_area / "real", target_is_directory=True)
    loc = policy(data_dir).resolve(TENANT, "alias/x.csv")
    assert loc.path == str(tenant_area / "real" / "x.csv")


# --- absolute paths and file:// URIs: only under data_roots ------------------------------


def test_absolute_path_refused_without_data_roots(data_dir, tenant_area):
    # Even the tenant's own area is reachable only by a relative path.
    assert_refused(policy(data_dir), str(tenant_area / "x.csv"))
    assert_refused(policy(data_dir), "/etc/passwd")


def test_absolute_path_inside_data_root_allowed(data_dir, shared_root):
    pol = policy(data_dir, data_roots=[str(shared_root)])
    loc = pol.resolve(TENANT, str(shared_root / "sub" / "x.csv"))
    assert loc.path == str(shared_root / "sub" / "x.csv")
    assert loc.scheme == "file"


def test_absolute_path_outside_data_root_refused(tmp_path, data_dir, shared_root):
    pol = policy(data_dir, data_roots=[str(shared_root)])
    assert_refused(pol, "/etc/passwd")
    assert_refused(pol, str(tmp_path / "elsewhere" / "x.csv"))
    # A sibling whose name merely starts with the root's name is outside it.
    assert_refused(pol, f"{shared_root}-evil/x.csv")


def test_file_uri_follows_the_same_rules(data_dir, shared_root):
    pol = policy(data_dir, data_roots=[str(shared_root)])
    inside = shared_root / "x.csv"
    assert pol.resolve(TENANT, f"file://{inside}").path == str(inside)
    assert pol.resolve(TENANT, f"file://localhost{inside}").path == str(inside)
    assert pol.resolve(TENANT, f"FILE://{inside}").path == str(inside)
    assert_refused(pol, "file:///etc/passwd")


def test_file_uri_with_a_host_is_refused(data_dir, shared_root):
    pol = policy(data_dir, data_roots=[str(shared_root)])
    assert_refused(pol, f"file://otherhost{shared_root}/x.csv")


def test_relative_file_uri_is_refused(data_dir):
    assert_refused(policy(data_dir), "file:x.csv")


def test_symlink_leaving_a_data_root_is_refused(tmp_path, data_dir, shared_root):
    outside = tmp_path / "outside"
    outside.mkdir()
    (shared_root / "link").symlink_to(outside, target_is_directory=True)
    pol = policy(data_dir, data_roots=[str(shared_root)])
    assert_refused(pol, str(shared_root / "link" / "x.csv"))


def test_tenant_placeholder_in_data_roots_limits_to_callers_prefix(tmp_path, data_dir):
    root = tmp_path.resolve() / "root"
    pol = policy(data_dir, data_roots=[str(root / "{tenant}")])

    assert pol.resolve("tenant-a", str(root / "tenant-a" / "x.csv")).path == str(root / "tenant-a" / "x.csv")
    assert pol.resolve("tenant-b", str(root / "tenant-b" / "x.csv")).path == str(root / "tenant-b" / "x.csv")
    assert_refused(pol, str(root / "tenant-b" / "x.csv"), tenant="tenant-a")
    assert_refused(pol, str(root / "tenant-ab" / "x.csv"), tenant="tenant-a")  # prefix boundary
    assert_refused(pol, str(root / "x.csv"), tenant="tenant-a")


# --- s3:// --------------------------------------------------------------------------------


@pytest.fixture
def s3_policy(data_dir) -> DataAccessPolicy:
    return policy(data_dir, s3_buckets=["open", "lake/{tenant}"])


def test_s3_whole_bucket_entry_allows_any_key(s3_policy):
    loc = s3_policy.resolve(TENANT, "s3://open/any/key.parquet")
    assert loc.is_s3
    assert loc.scheme == "s3"
    assert loc.uri == "s3://open/any/key.parquet"
    assert loc.path == "open/any/key.parquet"


def test_s3_tenant_prefix_entry_allows_only_callers_prefix(s3_policy):
    assert s3_policy.resolve("tenant-a", "s3://lake/tenant-a/x.csv").path == "lake/tenant-a/x.csv"
    assert s3_policy.resolve("tenant-b", "s3://lake/tenant-b/x.csv").path == "lake/tenant-b/x.csv"
    assert_refused(s3_policy, "s3://lake/tenant-b/x.csv", tenant="tenant-a")
    assert_refused(s3_policy, "s3://lake/x.csv", tenant="tenant-a")


def test_s3_tenant_prefix_respects_the_segment_boundary(s3_policy):
    assert_refused(s3_policy, "s3://lake/tenant-ab/x.csv", tenant="tenant-a")
    assert_refused(s3_policy, "s3://lake/tenant-a-other/x.csv", tenant="tenant-a")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other/x.csv",  # bucket not configured
        "s3://open",  # no key
        "s3://open/",  # no key
        "s3:///x.csv",  # no bucket
        "s3://lake/tenant-a/../tenant-b/x.csv",
        "s3://lake/tenant-a/%2e%2e/tenant-b/x.csv",
        "s3://lake/tenant-a//x.csv",
        "s3://user@open/x.csv",
        "s3://openx/x.csv",
    ],
)
def test_s3_refusals(s3_policy, uri):
    assert_refused(s3_policy, uri)


def test_s3_refused_when_no_buckets_configured(data_dir):
    assert_refused(policy(data_dir), "s3://open/x.csv")


# --- s3:// grants to one tenant (MLSERVICE_S3_TENANT_BUCKETS) ------------------------------


@pytest.fixture
def granted(data_dir) -> DataAccessPolicy:
    """Whole buckets for tenant-a, a prefix for tenant-b, a shared bucket for everyone."""
    return policy(data_dir, s3_buckets=["shared"],
                  s3_tenant_buckets={"tenant-a": ["data", "predictions"], "tenant-b": ["data/b-only", "lake/{tenant}"]})


def test_tenant_grant_allows_whole_buckets_to_that_tenant_only(granted):
    loc = granted.resolve("tenant-a", "s3://data/customers_to_score.parquet")
    assert (loc.uri, loc.path, loc.is_s3) == ("s3://data/customers_to_score.parquet", "data/customers_to_score.parquet", True)
    assert granted.resolve("tenant-a", "s3://predictions/churn_scores/part-0.parquet").path == "predictions/churn_scores/part-0.parquet"
    for tenant in ("tenant-c", "tenant-ab", "tenant"):  # no grant at all, or a name sharing a prefix
        assert_refused(granted, "s3://data/customers_to_score.parquet", tenant=tenant)
        assert_refused(granted, "s3://predictions/x.parquet", tenant=tenant)


def test_tenant_grant_with_a_prefix_allows_only_that_prefix(granted):
    assert granted.resolve("tenant-b", "s3://data/b-only/x.parquet").path == "data/b-only/x.parquet"
    assert granted.resolve("tenant-b", "s3://data/b-only").path == "data/b-only"
    assert_refused(granted, "s3://data/customers_to_score.parquet", tenant="tenant-b")  # tenant-a's whole bucket
    assert_refused(granted, "s3://data/b-only-not/x.parquet", tenant="tenant-b")  # segment boundary
    assert_refused(granted, "s3://predictions/x.parquet", tenant="tenant-b")


def test_tenant_placeholder_in_a_tenant_grant(granted):
    assert granted.resolve("tenant-b", "s3://lake/tenant-b/x.csv").path == "lake/tenant-b/x.csv"
    assert_refused(granted, "s3://lake/tenant-a/x.csv", tenant="tenant-b")
    assert_refused(granted, "s3://lake/tenant-b/x.csv", tenant="tenant-a")  # tenant-a has no lake grant


def test_shared_buckets_still_apply_to_every_tenant_beside_tenant_grants(granted):
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        assert granted.resolve(tenant, "s3://shared/x.parquet").path == "shared/x.parquet"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://data/../predictions/x.parquet",
        "s3://data/sub/%2e%2e/x.parquet",
        "s3://data/sub//x.parquet",
        "s3://data",  # no key
        "s3://other/x.parquet",  # a bucket granted to nobody
        "s3://datax/x.parquet",
        "s3://user@data/x.parquet",
    ],
)
def test_tenant_grant_refusals(granted, uri):
    assert_refused(granted, uri, tenant="tenant-a")


def test_dotdot_cannot_leave_a_granted_prefix(granted):
    assert_refused(granted, "s3://data/b-only/../customers_to_score.parquet", tenant="tenant-b")
    assert_refused(granted, "s3://lake/tenant-b/../tenant-a/x.csv", tenant="tenant-b")


def test_refusal_names_both_settings(granted):
    err = assert_refused(granted, "s3://other/x.parquet", tenant="tenant-a")
    assert "MLSERVICE_S3_TENANT_BUCKETS" in err.message and err.details == {"path": "s3://other/x.parquet"}


# --- everything else ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["http://example.com/x.csv", "https://example.com/x.csv", "ftp://host/x.csv", "hdfs://nn/x.csv", "gs://b/x.csv"],
)
def test_other_schemes_are_refused(data_dir, shared_root, uri):
    pol = policy(data_dir, data_roots=[str(shared_root)], s3_buckets=["b", "host", "nn"])
    assert_refused(pol, uri)


@pytest.mark.parametrize("uri", ["", "   ", None])
def test_empty_path_is_refused(data_dir, uri):
    assert_refused(policy(data_dir), uri)


@pytest.mark.parametrize("uri", ["x\x00.csv", "s3://open/x\x00.csv"])
def test_nul_byte_is_refused(data_dir, uri):
    assert_refused(policy(data_dir, s3_buckets=["open"]), uri)


@pytest.mark.parametrize("tenant", ["", "../etc", "a/b", "a.b", "-lead", "x" * 65, None])
def test_invalid_tenant_is_refused(data_dir, tenant):
    with pytest.raises(InvalidRequest) as info:
        policy(data_dir).resolve(tenant, "x.csv")
    assert info.value.code == "INVALID_REQUEST"


def test_error_details_name_the_path(data_dir):
    uri = "http://example.com/x.csv"
    err = assert_refused(policy(data_dir), uri)
    assert err.details == {"path": uri}
    assert "not allowed" in err.message

    err = assert_refused(policy(data_dir), "../x.csv")
    assert err.details == {"path": "../x.csv"}
