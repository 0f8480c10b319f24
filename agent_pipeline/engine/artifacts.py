"""The artifact store: models, checkpoints, backtest outputs, reports and strategies, addressed by URL (issue 16).

`KTRDR_ARTIFACTS_URL` names one root: `file:///.../artifacts` by default (the embedded run and a single host,
unchanged), `s3://bucket/prefix` on a cluster. Rows in the operations table record URLs under that root, so any
worker on any host reads what another wrote. Old rows that hold host paths still resolve (`local_copy`).

Why fsspec + s3fs rather than obstore: fsspec is one interface over `file://`, `s3://` (and gcs, azure with
their plug-ins), and s3fs builds its client with botocore, which reads the standard `AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_DEFAULT_REGION` as every S3 client does. obstore is
faster and lighter, but talks to a plain-HTTP endpoint (MinIO, moto) only with its own `AWS_ALLOW_HTTP`, and
the tests' moto server pulls botocore in anyway. Our objects are a few KB to a few MB, so speed is not the issue.

Writes are atomic: a local file is written beside its target and renamed; an S3 object appears whole on its
single PUT (or on CompleteMultipartUpload for a large one), so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from agent_pipeline.config import get_settings
from agent_pipeline.engine.files import atomic_fill, atomic_write
from agent_pipeline.errors import ArtifactNotFoundError, StoreError

logger = logging.getLogger(__name__)

# The URL schemes a store may use: local files, and S3 (AWS, MinIO, moto).
SCHEMES = ("file", "s3")
# Seconds to wait for an S3 endpoint to accept a connection: an unreachable store fails fast, with one line.
CONNECT_TIMEOUT_S = 5
# Attempts per S3 call (botocore retries); s3fs adds its own retries on throttling only.
S3_ATTEMPTS = 2


def is_url(ref: str) -> bool:
    """True for `scheme://...`; False for a plain host path, as old operation rows hold."""
    return "://" in ref


def scheme_of(url: str) -> str:
    return urlparse(url).scheme or "file"


def check_url(url: str) -> str:
    """The URL, without a trailing slash.

    Raises:
        ValueError: a scheme other than file:// or s3://, or an s3:// URL without a bucket.
    """
    parsed = urlparse(url)
    if parsed.scheme not in SCHEMES:
        raise ValueError("must be a file:// or s3:// URL")
    if parsed.scheme == "s3" and not parsed.netloc:
        raise ValueError("an s3:// URL names a bucket: s3://bucket/prefix")
    return url.rstrip("/")


def parent_of(ref: str) -> str:
    """The folder holding `ref` (a URL or a host path), in the same form."""
    return ref.rstrip("/").rsplit("/", 1)[0] if is_url(ref) else str(Path(ref).parent)


def child_of(ref: str, name: str) -> str:
    """The file `name` inside the folder `ref` (a URL or a host path), in the same form."""
    return f"{ref.rstrip('/')}/{name}" if is_url(ref) else str(Path(ref) / name)


def file_path(url: str) -> Path:
    """The host path of a file:// URL (or of a plain path)."""
    return Path(unquote(urlparse(url).path)) if is_url(url) else Path(url)


class ArtifactStore:
    """One root URL and the few operations the pipeline needs on it."""

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self.scheme = scheme_of(self.url)
        self._fs: Any = None
        self._pid = 0

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, built on first use in each process (s3fs is imported only for s3://).

        s3fs's client is not fork-safe: a prefork child that inherits the parent's (built by the start-up check)
        builds its own.
        """
        if self._fs is None or self._pid != os.getpid():
            self._fs, self._pid = _filesystem(self.scheme), os.getpid()
        return self._fs

    @property
    def local_root(self) -> Path | None:
        """The root's host path for a file:// store (work happens in place); None for a remote one."""
        return file_path(self.url) if self.scheme == "file" else None

    def url_for(self, *parts: str) -> str:
        """The URL of `parts` joined under the root."""
        return "/".join([self.url, *(p.strip("/") for p in parts if p)])

    def owns(self, url: str) -> bool:
        return url == self.url or url.startswith(self.url + "/")

    def check(self) -> None:
        """Reach the store once: the endpoint answers, the bucket exists, the credentials are accepted.

        Raises:
            StoreError: one line naming the URL and the reason.
        """
        if self.scheme == "file":
            root = self.local_root
            assert root is not None
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"artifact store {self.url} is not writable: {exc.strerror}") from None
            return
        bucket = urlparse(self.url).netloc
        try:
            self.fs.ls(bucket, refresh=True)
        except FileNotFoundError:
            raise StoreError(f"artifact store {self.url}: bucket {bucket!r} does not exist") from None
        except PermissionError:
            raise StoreError(f"artifact store {self.url}: access denied (check AWS_ACCESS_KEY_ID/SECRET)") from None
        except Exception as exc:  # botocore's connection, credential and endpoint errors share no useful base
            raise StoreError(f"artifact store {self.url} unreachable: {_one_line(exc)}") from None

    def put_file(self, local: Path, url: str) -> str:
        """Copy a local file to `url`, atomically; returns the URL."""
        if self.scheme == "file":
            target = file_path(url)
            if target.resolve() != Path(local).resolve():
                _atomic_copy(Path(local), target)
            return url
        self._call(self.fs.put_file, str(local), _key(url))
        return url

    def put_bytes(self, data: bytes, url: str) -> str:
        """Write `data` to `url`, atomically; returns the URL."""
        if self.scheme == "file":
            atomic_write(file_path(url), data)
            return url
        self._call(self.fs.pipe_file, _key(url), data)
        return url

    def put_tree(self, local_dir: Path, url: str, *, suffix: str = "") -> list[str]:
        """Upload every file under `local_dir` (whose name ends with `suffix`) below `url`; returns their URLs."""
        urls = []
        for path in sorted(Path(local_dir).rglob(f"*{suffix}")):
            if path.is_file() and not path.name.endswith(".tmp"):
                urls.append(self.put_file(path, f"{url}/{path.relative_to(local_dir).as_posix()}"))
        return urls

    def get_tree(self, url: str, local_dir: Path) -> int:
        """Download every object below `url` into `local_dir` (atomically, file by file); returns the count."""
        names = self.list(url)
        for name in names:
            self.get_file(f"{url}/{name}", Path(local_dir) / name)
        return len(names)

    def list(self, url: str) -> list[str]:
        """Names (relative to `url`, with `/`) of every object below `url`; empty when there is none."""
        if self.scheme == "file":
            root = file_path(url)
            files = root.rglob("*") if root.is_dir() else iter(())
            return sorted(p.relative_to(root).as_posix() for p in files if p.is_file())
        key = _key(url)
        found = self._call(self.fs.find, key)
        return sorted(str(name)[len(key) + 1 :] for name in found if str(name).startswith(key + "/"))

    def get_file(self, url: str, local: Path) -> Path:
        """Download `url` to `local`, atomically.

        Raises:
            ArtifactNotFoundError: no object at `url` (the message names it).
        """
        if self.scheme == "file":
            source = file_path(url)
            if not source.is_file():
                raise ArtifactNotFoundError(f"artifact not found: {url}")
            if source.resolve() != Path(local).resolve():
                _atomic_copy(source, Path(local))
            return Path(local)
        try:
            return atomic_fill(Path(local), lambda temp: self._call(self.fs.get_file, _key(url), str(temp)))
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact not found: {url}") from None

    def read_bytes(self, url: str) -> bytes:
        """The object at `url`.

        Raises:
            ArtifactNotFoundError: no object at `url`.
        """
        try:
            if self.scheme == "file":
                return file_path(url).read_bytes()
            return bytes(self._call(self.fs.cat_file, _key(url)))
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact not found: {url}") from None

    def checksum(self, url: str) -> str | None:
        """A fingerprint that changes when the object changes (S3's ETag; size and mtime for a file); None if absent."""
        try:
            if self.scheme == "file":
                if not file_path(url).is_file():
                    return None
                stat = file_path(url).stat()
                return f"{stat.st_size}-{stat.st_mtime_ns}"
            info = self._call(self.fs.info, _key(url), refresh=True)
        except FileNotFoundError:
            return None
        if info.get("type") != "file":
            return None  # a prefix ("folder"), not an object
        return str(info.get("ETag") or info.get("etag") or info.get("size")).strip('"')

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one S3 call; a missing object stays FileNotFoundError, anything else becomes one StoreError line."""
        try:
            return method(*args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StoreError(f"artifact store {self.url}: {_one_line(exc)}") from None


def _filesystem(scheme: str) -> Any:
    import fsspec  # lazy: start-up cost (fsspec, and s3fs with botocore for s3://)

    if scheme == "file":
        return fsspec.filesystem("file")
    config = {"connect_timeout": CONNECT_TIMEOUT_S, "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"}}
    client: dict[str, Any] = {}
    if os.environ.get("AWS_ENDPOINT_URL"):
        client["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]  # botocore reads it too; older ones did not
    # No listings cache: another worker's new checkpoint must be seen on the next look.
    return fsspec.filesystem(
        "s3", client_kwargs=client, config_kwargs=config, use_listings_cache=False,
        skip_instance_cache=True,
    )  # fmt: skip


def _key(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.netloc}{parsed.path}".rstrip("/")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _atomic_copy(source: Path, target: Path) -> None:
    atomic_write(target, source.read_bytes())


@lru_cache(maxsize=8)
def open_store(url: str) -> ArtifactStore:
    """The process's store for a root URL (one s3fs client per root)."""
    return ArtifactStore(url)


def store_for(url: str) -> ArtifactStore:
    """The store whose root holds `url`: its scheme and bucket are enough to read it."""
    parsed = urlparse(url)
    return open_store(f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme == "s3" else "file:///")


def local_copy(ref: str, cache_dir: Path) -> Path:
    """A host path holding the file or folder `ref` (a URL, or an old row's host path).

    A plain path or a file:// URL is used in place; an s3:// object (or every object below an s3:// prefix)
    is downloaded under `cache_dir`, mirroring its key.

    Raises:
        ArtifactNotFoundError: nothing at `ref` (the message names it).
    """
    if not is_url(ref) or scheme_of(ref) == "file":
        path = file_path(ref)
        if not path.exists():
            raise ArtifactNotFoundError(f"artifact not found: {ref}")
        return path
    store = store_for(ref)
    target = Path(cache_dir) / _key(ref)
    if store.checksum(ref) is not None:
        return store.get_file(ref, target)
    if store.get_tree(ref, target) == 0:
        raise ArtifactNotFoundError(f"artifact not found: {ref}")
    return target


def artifact_store() -> ArtifactStore:
    """The store named by KTRDR_ARTIFACTS_URL."""
    return open_store(get_settings().artifacts_url or get_settings().home.resolve().as_uri())


def work_folder(*parts: str) -> Path:
    """Where this host writes an artifact folder: in the store itself for file://, else the local working folder."""
    root = artifact_store().local_root
    return (root if root is not None else get_settings().work_dir).joinpath(*parts)


def publish_folder(local: Path, *parts: str) -> str:
    """Upload `local` (written under `work_folder(*parts)`) to the store; returns the folder's URL for the rows."""
    store = artifact_store()
    url = store.url_for(*parts)
    if store.local_root is None:
        store.put_tree(local, url)
    return url


def publish_strategy(path: Path | str) -> str:
    """Copy a saved strategy file into the store (`strategies/<file name>`); returns its URL for the rows."""
    store = artifact_store()
    return store.put_file(Path(path), store.url_for("strategies", Path(path).name))


def fetch(ref: str) -> Path:
    """`local_copy` into this host's cache (`KTRDR_HOME/work/cache`)."""
    return local_copy(ref, get_settings().work_dir / "cache")


def digest(path: Path) -> str:
    """The SHA-256 of a local file (market data's cache key)."""
    sha = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()
