"""Writing output files atomically, with a named error for every way a path can be wrong.

A report, figure or export is written to a temporary file in the target's folder and
renamed over the target (``os.replace``), so a reader never sees a truncated file and
a failure (a full disk, a permission) leaves the previous file, or none, in place.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from initlab.errors import InitlabError


def checked_target(path: str | os.PathLike[str], where: str, argument: str) -> Path:
    """``path`` as a Path, after checking it can be written as a file.

    Raises:
        InitlabError: the folder does not exist, or the path is a folder.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InitlabError(
            f"{where}: {argument}={str(path)!r} is invalid: the folder {str(folder)!r} does not exist; "
            "expected a file path in an existing folder."
        )
    if target.is_dir():
        raise InitlabError(f"{where}: {argument}={str(path)!r} is invalid: it is a folder; expected a file path.")
    return target


def make_folder(folder: str | os.PathLike[str], where: str, argument: str) -> Path:
    """Create ``folder`` (and its parents) if needed; an OSError becomes a named InitlabError."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InitlabError(
            f"{where}: {argument}={str(folder)!r} is invalid: the folder cannot be created "
            f"({error.strerror or error}); expected a folder that exists or can be created."
        ) from error
    return target


def write_atomically(path: str | os.PathLike[str], content: str | bytes, where: str, argument: str) -> Path:
    """Write ``content`` (text as UTF-8) to ``path`` through a temporary file and a rename.

    Args:
        path: the file to write (replaced if it exists).
        content: the whole file.
        where: what is writing (e.g. ``"initlab audit"``), for the error message.
        argument: the argument that named the path (e.g. ``"--html"``).

    Returns:
        The path written.

    Raises:
        InitlabError: the path is invalid or the write failed (permission, full disk, ...);
            no partial file is left behind.
    """
    target = checked_target(path, where, argument)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        handle, temporary = tempfile.mkstemp(
            dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise _write_error(path, where, argument, error) from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _write_error(path, where, argument, error) from error
    return target


def _write_error(path: str | os.PathLike[str], where: str, argument: str, error: OSError) -> InitlabError:
    reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
    return InitlabError(f"{where}: could not write {argument}={str(path)!r}: {reason}; nothing was written.")
