"""The artifact store (issue 16): one API over file:// and s3:// (moto's real S3 protocol), atomic writes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_pipeline.config import ConfigurationError, get_settings, reset_settings
from agent_pipeline.engine import artifacts
from agent_pipeline.engine.artifacts import ArtifactStore, local_copy, open_store
from agent_pipeline.errors import ArtifactNotFoundError, StoreError
from tests.s3_server import S3Server, running_s3

BUCKET = "ktrdr-unit"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    open_store.cache_clear()
    return s3


def test_default_artifacts_url_is_the_artifacts_folder_as_file_url(isolated_settings: Path) -> None:
    settings = get_settings()
    assert settings.artifacts_dir is not None
    assert settings.artifacts_url == settings.artifacts_dir.resolve().as_uri()
    assert artifacts.artifact_store().local_root == settings.artifacts_dir.resolve()


@pytest.mark.parametrize("url", ["ftp://host/x", "s3://", "/plain/path"])
def test_a_store_url_that_is_not_file_or_s3_is_refused_at_start(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_ARTIFACTS_URL", url)
    reset_settings()
    with pytest.raises(ConfigurationError, match="artifacts_url"):
        get_settings()


def test_file_store_round_trips_a_tree_in_place(tmp_path: Path) -> None:
    store = ArtifactStore((tmp_path / "root").as_uri())
    source = tmp_path / "work"
    (source / "fold_1").mkdir(parents=True)
    (source / "model.pt").write_bytes(b"final")
    (source / "fold_1" / "model.pt").write_bytes(b"fold")
    urls = store.put_tree(source, store.url_for("models", "op_1"))
    assert urls[0].startswith("file://") and len(urls) == 2
    assert store.list(store.url_for("models", "op_1")) == ["fold_1/model.pt", "model.pt"]
    assert local_copy(store.url_for("models", "op_1", "model.pt"), tmp_path / "cache").read_bytes() == b"final"


def test_an_old_rows_host_path_still_resolves(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"w")
    assert local_copy(str(model), tmp_path / "cache") == model


def test_a_local_write_that_fails_leaves_neither_the_target_nor_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path.as_uri())

    def broken_replace(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.put_bytes(b"half a model", store.url_for("m", "model.pt"))
    assert list((tmp_path / "m").iterdir()) == []


def test_s3_store_round_trips_files_and_trees(s3_env: S3Server, tmp_path: Path) -> None:
    store = ArtifactStore(f"s3://{BUCKET}/prefix")
    store.check()
    source = tmp_path / "work"
    (source / "fold_1").mkdir(parents=True)
    (source / "model.pt").write_bytes(b"final")
    (source / "fold_1" / "checkpoint.pt").write_bytes(b"ckpt")
    url = store.url_for("models", "op_1")
    assert store.put_tree(source, url, suffix="checkpoint.pt") == [f"{url}/fold_1/checkpoint.pt"]
    store.put_tree(source, url)
    assert store.list(url) == ["fold_1/checkpoint.pt", "model.pt"]
    assert store.get_tree(url, tmp_path / "other_host") == 2
    assert (tmp_path / "other_host" / "fold_1" / "checkpoint.pt").read_bytes() == b"ckpt"
    assert local_copy(url, tmp_path / "cache").joinpath("model.pt").read_bytes() == b"final"


def test_s3_checksum_changes_when_the_object_changes(s3_env: S3Server) -> None:
    store = ArtifactStore(f"s3://{BUCKET}")
    url = store.url_for("data", "EURUSD_1h.csv")
    store.put_bytes(b"a,b\n1,2\n", url)
    first = store.checksum(url)
    store.put_bytes(b"a,b\n1,3\n", url)
    assert first and store.checksum(url) not in (None, first)
    assert store.checksum(store.url_for("data", "missing.csv")) is None


def test_a_missing_model_object_names_its_url(s3_env: S3Server, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/models/op_gone/s/model.pt"
    with pytest.raises(ArtifactNotFoundError, match=url):
        local_copy(url, tmp_path)
    assert not any(tmp_path.rglob("*.tmp"))  # a failed download leaves no partial file


def test_a_missing_bucket_is_one_line_naming_it(s3_env: S3Server) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist") as caught:
        ArtifactStore("s3://no-such-bucket/x").check()
    assert "\n" not in str(caught.value)


def test_an_unreachable_endpoint_is_one_line_and_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.private_servers import free_port
    from tests.s3_server import S3_ENV

    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="unreachable") as caught:
        ArtifactStore(f"s3://{BUCKET}").check()
    assert "\n" not in str(caught.value)


def test_a_series_is_fetched_once_and_again_only_when_it_changes(
    s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.engine.datastore import publish_series, synced_data_dir

    # Given a series published to the data store from one host
    monkeypatch.setenv("KTRDR_DATA_URL", f"s3://{BUCKET}/data")
    reset_settings()
    source = tmp_path / "importer" / "TEST_1d.csv.gz"
    source.parent.mkdir()
    source.write_bytes(b"v1")
    assert publish_series(source) == f"s3://{BUCKET}/data/TEST_1d.csv.gz"
    # When a worker syncs twice, then after the series changed
    folder = synced_data_dir()
    assert folder is not None and (folder / "TEST_1d.csv.gz").read_bytes() == b"v1"
    (folder / "TEST_1d.csv.gz").write_bytes(b"local mark")  # an unchanged series is not downloaded again
    synced_data_dir()
    assert (folder / "TEST_1d.csv.gz").read_bytes() == b"local mark"
    source.write_bytes(b"v2")
    publish_series(source)
    synced_data_dir()
    # Then the changed series is fetched again
    assert (folder / "TEST_1d.csv.gz").read_bytes() == b"v2"


def test_without_a_data_url_data_stays_local(isolated_settings: Path) -> None:
    from agent_pipeline.engine.datastore import publish_series, synced_data_dir

    assert publish_series(isolated_settings / "x.csv.gz") is None
    assert synced_data_dir() == get_settings().data_dir


def test_trigger_refuses_an_unreachable_store_with_one_line_and_no_row(
    s3_env: S3Server, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import get_store

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("KTRDR_ARTIFACTS_URL", "s3://no-such-bucket/x")
    reset_settings()
    store = get_store()
    store.upgrade()
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        cycle.trigger(store=store)
    assert store.list(limit=5) == []
