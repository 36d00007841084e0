"""Output files written without trusting what lies at their path, and untrusted names made printable.

``export OUT`` used to write ``OUT.tmp`` and rename it: a symlink planted at ``OUT.tmp`` had its
target overwritten, and as root ``export /dev/full`` replaced the device node with a zip.
:func:`write_atomically` creates its temporary file with ``mkstemp`` in the target's directory (a
fresh random name, ``O_CREAT | O_EXCL``: never an existing file, never through a link), refuses a
target that exists and is not a regular file, fsyncs and checks the size, and only then renames
it over the target; any failure removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


class OutputError(ValueError):
    """An output that cannot be written safely; the target was left as it was."""


def printable(text) -> str:
    """``text`` with every non-printable character (terminal escapes, newlines, bidi overrides)
    written as its escape, so a hostile bundle member name prints as one inert line. Idempotent."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


def check_target(path: str | os.PathLike) -> Path:
    """``path`` if it is absent or a regular file (never followed if it is a link); else OutputError."""
    if not str(path).strip():
        raise OutputError("the output path is empty")
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as err:
        raise OutputError(f"cannot write {printable(path)}: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        hint = f" (name a file in it, e.g. {printable(path / 'bundle.zip')})" if stat.S_ISDIR(mode) else ""
        raise OutputError(f"cannot write {printable(path)}: it is {kind}, not a regular file{hint}")
    return path


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(file)`` on a fresh temporary file beside it, then rename."""
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"cannot write {printable(path)}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            size = f.tell()
            os.fsync(f.fileno())
            if os.fstat(f.fileno()).st_size != size:
                raise OutputError(f"cannot write {printable(path)}: {os.fstat(f.fileno()).st_size} of {size} bytes "
                                  f"reached the disk")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600, widened to what a plain open() would have made
        check_target(path)  # again, just before the rename: a directory or device may have appeared meanwhile
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {printable(path)}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself survives a crash once the directory entry is on disk
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path
