"""The one atomic file write (issue 26): whole content or the old one, fsynced file and folder, no temp left."""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from agent_pipeline.engine import files
from agent_pipeline.engine.data import available_pairs
from agent_pipeline.engine.files import TEMP_SUFFIX, atomic_fill, atomic_write, atomic_write_with

# Bytes the killed writer writes before it stops: large enough that the write is plainly half done.
HALF = 8 << 20
# Seconds to wait for the killed writer to reach its half-way point (a cold interpreter imports pandas).
WRITER_START_S = 60

KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent_pipeline.engine.files import atomic_write_with

    def write(handle):
        handle.write(b"n" * int(sys.argv[2]))
        handle.flush()
        print("half", flush=True)
        time.sleep(600)  # killed here
        handle.write(b"n" * int(sys.argv[2]))

    atomic_write_with(Path(sys.argv[1]), write)
    """
)


def leftovers(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX))


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[os.stat_result]]:
    """Record what each os.fsync call flushed (the fd's stat), then flush it for real."""
    calls: list[os.stat_result] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(os.fstat(fd))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield calls


def test_a_write_replaces_the_old_content_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_bytes(b"old content, longer than the new one")

    assert atomic_write(target, b"new") == target

    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path) == []


def test_text_is_written_as_utf8_and_missing_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "note.txt"

    atomic_write(target, "équité")

    assert target.read_bytes() == "équité".encode()


def test_a_new_file_gets_the_permissions_open_would_give_it(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "model.pt", b"weights")
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == 0o640  # 0o666 less the umask, not 0o600


def test_a_writer_that_fails_half_way_leaves_the_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "equity.csv"
    target.write_bytes(b"old")

    def write(handle: BinaryIO) -> None:
        handle.write(b"half of the new")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):
        atomic_write_with(target, write)

    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_failed_rename_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "strategy.yaml"
    target.write_bytes(b"old")

    def refuse(source: object, destination: object) -> None:
        raise PermissionError(errno.EACCES, "refused")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(target, b"new")

    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_the_file_then_its_folder_are_fsynced(tmp_path: Path, synced: list[os.stat_result]) -> None:
    target = atomic_write(tmp_path / "assessment.json", b"{}")

    flushed = [(entry.st_dev, entry.st_ino) for entry in synced]
    file_id, folder_id = [(os.stat(p).st_dev, os.stat(p).st_ino) for p in (target, tmp_path)]
    assert flushed == [file_id, folder_id]  # the bytes before the rename, the rename before returning


def test_a_folder_that_refuses_fsync_is_tolerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")  # as some network file systems answer
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "last.json", b"{}")

    assert (tmp_path / "last.json").read_bytes() == b"{}"


def test_a_folder_fsync_that_fails_on_io_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write(tmp_path / "last.json", b"{}")


def test_without_overwrite_a_taken_name_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "demo_20261127_061500.yaml"
    target.write_bytes(b"first")

    with pytest.raises(FileExistsError):
        atomic_write(target, b"second", overwrite=False)

    assert target.read_bytes() == b"first"
    assert leftovers(tmp_path) == []
    assert atomic_write(tmp_path / "demo_20261127_061500_1.yaml", b"second", overwrite=False).read_bytes() == (
        b"second"
    )


def test_a_path_writer_fills_the_temp_and_its_error_removes_it(tmp_path: Path) -> None:
    target = tmp_path / "EURUSD_1h.csv.gz"
    atomic_fill(target, lambda temp: temp.write_bytes(b"downloaded"))
    assert target.read_bytes() == b"downloaded"

    def fail(temp: Path) -> None:
        temp.write_bytes(b"half a download")
        raise FileNotFoundError("no such object")

    with pytest.raises(FileNotFoundError):
        atomic_fill(target, fail)

    assert target.read_bytes() == b"downloaded"
    assert leftovers(tmp_path) == []


def test_a_write_killed_half_way_leaves_the_old_content_whole_and_a_temp_readers_ignore(tmp_path: Path) -> None:
    # Given a stored series, and a writer replacing it that is SIGKILLed with half of the new file written
    target = tmp_path / "KILLED_1h.csv.gz"
    old = b"o" * 4096
    target.write_bytes(old)
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target), str(HALF)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        ready, _, _ = select.select([writer.stdout], [], [], WRITER_START_S)
        assert ready, "the writer never reached half-way"
        assert writer.stdout.readline().strip() == "half"  # EOF ("") if the writer died first
        [temp] = leftovers(tmp_path)
        assert temp.stat().st_size == HALF
    finally:
        writer.kill()
        writer.wait(timeout=WRITER_START_S)
    assert writer.returncode == -signal.SIGKILL

    # Then the target holds the old content whole
    assert target.read_bytes() == old
    # And the dead writer's temp stays (no sweep: a live writer's temp looks the same), named so readers skip it:
    # hidden, and ending in .tmp, a suffix no listing matches
    assert leftovers(tmp_path) == [temp]
    assert temp.name.startswith(f".{target.name}.")
    assert ("KILLED", "1h") in available_pairs(tmp_path)
    assert {path.name for path in tmp_path.glob("*.csv.gz")} == {target.name}

    # When the next write comes, it replaces the target whole
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
