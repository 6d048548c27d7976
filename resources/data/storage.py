"""Reading and writing the data a job names: local paths and ``s3://`` through one pyarrow filesystem.

Every reader and writer of tenant data (training sets, batch scoring input and output, drift
references) opens a checked ``DataLocation`` (``resources.data.access``) through ``filesystem``:
a local path on pyarrow's local filesystem, an ``s3://bucket/key`` on pyarrow's S3 filesystem
against ``MLSERVICE_S3_ENDPOINT_URL`` (any S3-compatible server: the embedded one that ``make up``
starts, MinIO, or AWS S3 when unset). Credentials and region come from the usual AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``
or ``AWS_REGION``; default region ``us-east-1``). No s3fs: pandas reads through the filesystem
object, and Feast's file offline store (dask, which opens paths through fsspec) gets this same
filesystem under fsspec's ``s3`` protocol (``use_for_fsspec_s3``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.fs as pafs

    from resources.data.access import DataAccessPolicy, DataLocation

DEFAULT_REGION = "us-east-1"


def filesystem(location: DataLocation, policy: DataAccessPolicy) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``location`` and the path to give it (``bucket/key`` on S3, no trailing slash)."""
    if location.is_s3:
        return s3_filesystem(policy.s3_endpoint_url), location.path.rstrip("/")
    return local_filesystem(), location.path


def local_filesystem() -> pafs.LocalFileSystem:
    import pyarrow.fs as pafs

    return pafs.LocalFileSystem()


def s3_filesystem(endpoint_url: str | None) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for ``endpoint_url`` (None: AWS) with the AWS variables' credentials."""
    env = os.environ
    return _s3(endpoint_url, env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN"),
               env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)


@functools.lru_cache(maxsize=8)
def _s3(endpoint_url: str | None, access_key: str | None, secret_key: str | None, session_token: str | None,
        region: str) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    options: dict[str, object] = {"region": region}
    if access_key and secret_key:
        options.update(access_key=access_key, secret_key=secret_key, session_token=session_token)
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"MLSERVICE_S3_ENDPOINT_URL must be http(s)://host[:port], not {endpoint_url!r}")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    return pafs.S3FileSystem(**options)


@functools.cache
def use_for_fsspec_s3() -> None:
    """Serve fsspec's ``s3://`` (what dask, and so Feast's file offline store, reads sources through)
    with ``s3_filesystem``: the same endpoint and credentials as every other reader here, and no
    s3fs (its aiobotocore pins an older botocore than boto3's). Once per process, before Feast reads
    an s3:// source; the endpoint comes from the storage options Feast passes (its source's
    ``s3_endpoint_override``)."""
    import fsspec
    from fsspec.implementations.arrow import ArrowFSWrapper

    class ArrowS3(ArrowFSWrapper):
        protocol = "s3"

        def __init__(self, client_kwargs: dict | None = None, **kwargs) -> None:
            for ignored in ("key", "secret", "token", "anon"):  # credentials come from the AWS variables
                kwargs.pop(ignored, None)
            super().__init__(fs=s3_filesystem((client_kwargs or {}).get("endpoint_url")), **kwargs)

    fsspec.register_implementation("s3", ArrowS3, clobber=True)


def exists(location: DataLocation, policy: DataAccessPolicy) -> bool:
    """Whether a file or a directory (a non-empty prefix on S3) is there."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, policy)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_table(location: DataLocation, policy: DataAccessPolicy) -> pd.DataFrame:
    """A parquet file or directory (or a ``.csv`` file) as a DataFrame. FileNotFoundError when absent."""
    import pyarrow.parquet as pq

    fs, path = filesystem(location, policy)
    if path.lower().endswith(".csv"):
        import pyarrow.csv as pacsv

        with fs.open_input_stream(path) as stream:
            return pacsv.read_csv(stream).to_pandas()
    return pq.read_table(path, filesystem=fs).to_pandas()


def parquet_files(location: DataLocation, policy: DataAccessPolicy) -> list[str]:
    """The parquet files at ``location``: the file itself, or every ``*.parquet`` below a directory
    (prefix), sorted; names starting with ``_`` or ``.`` (markers, staging) are left out.
    FileNotFoundError when nothing is there."""
    fs, path = filesystem(location, policy)
    files = parquet_files_on(fs, path)
    if not files:
        raise FileNotFoundError(location.uri)
    return files


def parquet_files_on(fs: pafs.FileSystem, path: str) -> list[str]:
    """``parquet_files`` on a filesystem path ([] when nothing is there)."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [path]
    if info.type == pafs.FileType.NotFound:
        return []
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(".parquet")
                  and not any(part.startswith(("_", ".")) for part in f.path[len(path):].split("/")))


def parquet_rows(location: DataLocation, policy: DataAccessPolicy) -> int:
    """Rows of the parquet file or directory at ``location``, from the footers only (no data read)."""
    return parquet_footers(location, policy).rows


@dataclass(frozen=True)
class ParquetFooters:
    files: list[str]  # in name order
    rows: int
    bytes: int  # the row groups' uncompressed size: about the data's size in memory
    schema: pa.Schema | None  # the first file's


def parquet_footers(location: DataLocation, policy: DataAccessPolicy) -> ParquetFooters:
    """The parquet file or directory at ``location`` from its footers: the files listed once and
    nothing but the footers read. FileNotFoundError when nothing is there."""
    fs, path = filesystem(location, policy)
    footers = parquet_footers_on(fs, path)
    if not footers.files:
        raise FileNotFoundError(location.uri)
    return footers


def parquet_footers_on(fs: pafs.FileSystem, path: str) -> ParquetFooters:
    """``parquet_footers`` on a filesystem path (no files, 0 rows and no schema when nothing is there)."""
    import pyarrow.parquet as pq

    files = parquet_files_on(fs, path)
    rows = size = 0
    schema = None
    for name in files:
        with fs.open_input_file(name) as handle:
            footer = pq.ParquetFile(handle)
            meta = footer.metadata
            rows += meta.num_rows
            size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            schema = schema if schema is not None else footer.schema_arrow
    return ParquetFooters(files, rows, size, schema)


def ensure_dir(fs: pafs.FileSystem, path: str) -> None:
    """Create a local directory (and its parents); nothing on object stores, where folders are key
    prefixes (pyarrow's create_dir would leave a ``path/`` marker object behind)."""
    if fs.type_name == "local":
        fs.create_dir(path, recursive=True)
