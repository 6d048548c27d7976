"""resources.data.storage against the local filesystem and a real S3-compatible server (moto's server
process, the ``s3_server`` fixture): the same calls for both, and the training reader on top."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.training.datasets import read_table as read_training_table
from assets.training.training_data import DataProblem
from resources.data import storage
from resources.data.access import DataAccessPolicy, DataLocation

TENANT = "store-tenant"
FRAME = pd.DataFrame({"customer_id": ["c-1", "c-2", "c-3"], "total_orders": [3, 1, 7], "avg_order_value": [10.5, 99.0, 42.25]})


class Place:
    """One backend: where ``uri(name)`` points, a policy that grants it, and a writer of files."""

    def __init__(self, policy: DataAccessPolicy, root: str):
        self.policy, self.root = policy, root

    def uri(self, name: str) -> str:
        return f"{self.root}/{name}"

    def location(self, name: str) -> DataLocation:
        return self.policy.resolve(TENANT, self.uri(name))

    def _open(self, name: str):
        """The filesystem storage opens and the path; local parent directories made (S3 has none:
        pyarrow's create_dir would leave a "dir/" marker object)."""
        location = self.location(name)
        fs, path = storage.filesystem(location, self.policy)
        if not location.is_s3:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return fs, path

    def write_parquet(self, name: str, frame: pd.DataFrame) -> None:
        fs, path = self._open(name)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, filesystem=fs)

    def write_bytes(self, name: str, data: bytes) -> None:
        fs, path = self._open(name)
        with fs.open_output_stream(path) as stream:
            stream.write(data)


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path) -> Place:
    if request.param == "local":
        (tmp_path / "tenants" / TENANT).mkdir(parents=True)
        return Place(DataAccessPolicy(data_dir=str(tmp_path)), "files")  # relative: the tenant's area
    s3 = request.getfixturevalue("s3_server")
    bucket = s3.bucket("store")
    return Place(s3.policy(tmp_path, tenant_buckets={TENANT: [bucket]}), f"s3://{bucket}")


def test_parquet_file_round_trip(place):
    place.write_parquet("in/customers.parquet", FRAME)
    location = place.location("in/customers.parquet")
    assert storage.exists(location, place.policy)
    pdt.assert_frame_equal(storage.read_table(location, place.policy), FRAME)
    assert storage.parquet_rows(location, place.policy) == 3
    assert storage.parquet_files(location, place.policy) == [storage.filesystem(location, place.policy)[1]]


def test_a_directory_of_parquet_files_leaves_markers_and_staging_out(place):
    place.write_parquet("scored/part-0.parquet", FRAME.head(2))
    place.write_parquet("scored/sub/part-1.parquet", FRAME.tail(1))
    place.write_parquet("scored/_staging/part-9.parquet", FRAME)  # an unfinished write: never read
    place.write_bytes("scored/_SUCCESS", b'{"rows": 3}')
    place.write_bytes("scored/.hidden.parquet", b"not parquet")
    for name in ("scored", "scored/"):
        location = place.location(name)
        assert storage.exists(location, place.policy)
        files = storage.parquet_files(location, place.policy)
        assert [f.rsplit("/", 2)[-2:] for f in files] == [["scored", "part-0.parquet"], ["sub", "part-1.parquet"]]
        assert storage.parquet_rows(location, place.policy) == 3
        frame = storage.read_table(location, place.policy)
        assert sorted(frame["customer_id"]) == ["c-1", "c-2", "c-3"]


def test_csv_file(place):
    place.write_bytes("in/train.csv", FRAME.to_csv(index=False).encode())
    frame = storage.read_table(place.location("in/train.csv"), place.policy)
    pdt.assert_frame_equal(frame, FRAME)


def test_missing_files_are_file_not_found(place):
    for name in ("nothing-here.parquet", "nothing-here.csv", "no-dir"):
        location = place.location(name)
        assert not storage.exists(location, place.policy)
        with pytest.raises(FileNotFoundError):
            storage.read_table(location, place.policy)
        with pytest.raises(FileNotFoundError):
            storage.parquet_files(location, place.policy)
        with pytest.raises(FileNotFoundError):
            storage.parquet_rows(location, place.policy)


def test_a_directory_without_parquet_files_has_none(place):
    place.write_bytes("markers-only/_SUCCESS", b"{}")
    with pytest.raises(FileNotFoundError):
        storage.parquet_files(place.location("markers-only"), place.policy)


def test_the_training_reader_names_a_missing_file_and_a_broken_one(place):
    with pytest.raises(DataProblem, match=r"^data file not found: "):
        read_training_table(place.location("absent.parquet"), place.policy)
    place.write_bytes("broken.parquet", b"PAR1 this is not parquet")
    with pytest.raises(DataProblem, match=r"^cannot read .*broken\.parquet: "):
        read_training_table(place.location("broken.parquet"), place.policy)
    place.write_parquet("fine.parquet", FRAME)
    pdt.assert_frame_equal(read_training_table(place.location("fine.parquet"), place.policy), FRAME)


def test_s3_missing_bucket_is_file_not_found(s3_server, tmp_path):
    policy = s3_server.policy(tmp_path, tenant_buckets={TENANT: ["never-created"]})
    location = policy.resolve(TENANT, "s3://never-created/x.parquet")
    assert not storage.exists(location, policy)
    with pytest.raises(DataProblem, match=r"data file not found: s3://never-created/x\.parquet"):
        read_training_table(location, policy)


def test_what_storage_writes_to_s3_is_what_boto3_sees(s3_server, tmp_path):
    bucket = s3_server.bucket("seen")
    place = Place(s3_server.policy(tmp_path, tenant_buckets={TENANT: [bucket]}), f"s3://{bucket}")
    place.write_parquet("out/part-0.parquet", FRAME)
    assert s3_server.keys(bucket) == ["out/part-0.parquet"]
    s3_server.put_parquet(f"s3://{bucket}/out/part-1.parquet", FRAME)  # and the other way round
    assert storage.parquet_rows(place.location("out"), place.policy) == 6


def test_an_endpoint_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="MLSERVICE_S3_ENDPOINT_URL"):
        storage.s3_filesystem("127.0.0.1:9000")
