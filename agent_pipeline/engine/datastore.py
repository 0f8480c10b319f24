"""Market data from the store (issue 16): series published under `KTRDR_DATA_URL`, fetched once per host.

`ktrdr data import` and `ktrdr data synth` write a series to the local data folder as before and, when
`KTRDR_DATA_URL` is set (`s3://bucket/data`, or a `file://` folder every host mounts), publish it there.
A worker syncs before it reads data: one listing of the store, and a download only of the series whose checksum
(S3's ETag) differs from the one this host last fetched. The checksums live in a small manifest beside the
files, so a changed series is fetched again and an unchanged one never is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import ArtifactStore, open_store
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.errors import ArtifactNotFoundError

logger = logging.getLogger(__name__)

# The manifest of what this host fetched: {file name: checksum}. Hidden, so the data listing ignores it.
MANIFEST = ".store-checksums.json"
# Files the store holds: series (engine.data stores `<SYMBOL>_<timeframe>.csv.gz`), synth sidecars, and the records
# of appended ranges (`engine.append`: a worker tells forward bars from research bars by them).
SERIES_SUFFIXES = (".csv.gz", ".csv", ".synth.json", ".appended.json")


def data_store() -> ArtifactStore | None:
    """The store named by KTRDR_DATA_URL; None when unset (data stays local)."""
    url = get_settings().data_url
    return open_store(url) if url else None


def publish_series(path: Path) -> str | None:
    """Upload a stored series file to KTRDR_DATA_URL (atomic whole-object put); returns its URL, None if unset."""
    store = data_store()
    if store is None:
        return None
    url = store.put_file(Path(path), store.url_for(Path(path).name))
    logger.info("series published", extra={"url": url})
    return url


def publish_changed(path: Path) -> str | None:
    """`publish_series` when the store's copy of the file differs from it (or it has none); returns the URL then.

    What a local write left unpublished (its publish failed) is published by the next command that calls this,
    even one that writes nothing new itself.

    Raises:
        StoreError: the data store cannot be read or written.
    """
    store = data_store()
    if store is None or not Path(path).is_file():
        return None
    return publish_series(path) if differs_from_store(store, Path(path)) else None


def differs_from_store(store: ArtifactStore, path: Path) -> bool:
    """Whether the store holds no copy of the local file `path`, or one with other bytes."""
    try:
        return store.read_bytes(store.url_for(path.name)) != path.read_bytes()
    except ArtifactNotFoundError:
        return True


def synced_data_dir() -> Path | None:
    """The data folder, after fetching every new or changed series from KTRDR_DATA_URL into it.

    Raises:
        StoreError: the data store cannot be listed or read.
    """
    folder = get_settings().data_dir
    store = data_store()
    if store is None or folder is None:
        return folder
    sync_series(store, Path(folder))
    return folder


def sync_series(store: ArtifactStore, folder: Path) -> list[str]:
    """Download the series under `store.url` whose checksum this folder has not seen; returns their names."""
    manifest_path = folder / MANIFEST
    seen: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    fetched = []
    for name in store.list(store.url):
        if "/" in name or not name.endswith(SERIES_SUFFIXES):
            continue
        url = store.url_for(name)
        checksum = store.checksum(url)
        if checksum is None or (seen.get(name) == checksum and (folder / name).is_file()):
            continue
        store.get_file(url, folder / name)
        seen[name] = checksum
        fetched.append(name)
    if fetched:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(manifest_path, json.dumps(seen, indent=1, sort_keys=True))
        logger.info("fetched %d series from the data store", len(fetched), extra={"series": fetched})
    return fetched
