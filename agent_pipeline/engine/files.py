"""One atomic file write (issue 26): every file the package writes for a reader goes through here.

A reader sees the old content or the new one, whole, never half a file; and once a call returns, the new
content survives a crash or a power cut. The data go to a temp file in the target's folder (same file system,
so the rename is atomic), the temp is fsynced, renamed over the target, and the folder is fsynced so the
rename itself is on disk (rename(2) is atomic but not durable; see fsync(2) on directories). On any error the
temp is removed and the target is left as it was.

A writer killed half-way (SIGKILL, power cut) cannot remove its temp: the target keeps its old content whole
and the temp stays behind, named `.<target name>.<random>.tmp`. The choice is to name it so readers ignore
it, not to sweep it on the next write: a temp is hidden (a leading dot) and ends with `.tmp`, a suffix no
reader matches (series are `*.csv.gz`, strategies `*.yaml`, plots `*.png`; `ArtifactStore.put_tree` skips
`*.tmp`), whereas a sweep cannot tell a dead writer's temp from a live one's in another process or host
without a lock.

New files get the usual permissions (0o666 less the umask), as `open()` gives them; `mkstemp`'s 0o600 would
hide a model or a plot from a reader running as another user.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# The ending of every temp file: readers and uploads skip names that end with it.
TEMP_SUFFIX = ".tmp"
# errno values of a folder fsync that a platform or file system refuses (not an I/O failure): tolerated.
_FOLDER_SYNC_REFUSED = frozenset({errno.EINVAL, errno.EBADF, errno.EACCES, errno.EPERM, errno.ENOTSUP})


def atomic_write(target: Path, data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write `data` (a str is encoded as UTF-8) to `target` atomically and durably; returns `target`.

    Raises:
        FileExistsError: `overwrite` is False and `target` exists (nothing is written then).
        OSError: the folder cannot be created or written; `target` is left as it was.
    """
    payload = data.encode() if isinstance(data, str) else data
    return atomic_write_with(target, lambda handle: handle.write(payload), overwrite=overwrite)


def atomic_write_with(target: Path, write: Callable[[BinaryIO], object], *, overwrite: bool = True) -> Path:
    """Like `atomic_write`, for content too large to hold twice: `write(handle)` streams it into a binary handle.

    For example `atomic_write_with(path, lambda handle: torch.save(state, handle))`. Whatever `write` raises
    propagates, with the target untouched and the temp removed.
    """

    def fill(temp: Path) -> None:
        with temp.open("wb") as handle:
            write(handle)

    return atomic_fill(target, fill, overwrite=overwrite)


def atomic_fill(target: Path, fill: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Like `atomic_write`, for a writer that takes only a path: `fill(temp)` writes the file named `temp`.

    For example a downloader (`fs.get_file(key, temp)`). With `overwrite=False` the file is published with a
    hard link, which fails if `target` exists: two writers never overwrite each other, with no race.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    # O_EXCL: never another writer's temp (48 random bits); mode 0o666 less the umask, as open() gives.
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        fill(temp)
        _sync_file(temp)
        if overwrite:
            os.replace(temp, target)
        else:
            os.link(temp, target)  # FileExistsError if taken
            temp.unlink()
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)
    return target


def _sync_file(path: Path) -> None:
    """Flush the file's bytes to disk, before the rename makes them visible."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entries, so the rename survives a power cut; a platform that refuses is tolerated."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows opens no folder as a file
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FOLDER_SYNC_REFUSED:
            raise
    finally:
        os.close(fd)
