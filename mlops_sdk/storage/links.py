"""Putting a stored object at a destination path: reflink, hardlink, symlink or copy.

Objects in a local store are read-only, so a hard-linked or symlinked
checkout cannot be edited in place into corrupting the store (an editor that
writes a new file and renames it over the old one works as usual).
``auto`` tries a reflink (a copy-on-write clone, instant on btrfs/XFS/APFS)
and falls back to a plain copy, like DVC's default ``reflink,copy``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from mlops_sdk.errors import InvalidValue

# ioctl FICLONE from linux/fs.h: clone the whole of src into dst (copy on write).
_FICLONE = 0x40049409
_NO_REFLINK = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.EPERM}


class LinkUnsupported(OSError):
    """The file system cannot make this kind of link here."""


def reflink(src: Path, dst: Path) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        try:
            fcntl.ioctl(fo.fileno(), _FICLONE, fi.fileno())
        except OSError as exc:
            if exc.errno in _NO_REFLINK:
                raise LinkUnsupported(exc.errno, f"reflink not supported: {exc.strerror}") from exc
            raise


def place(src: Path, dst: Path, mode: str) -> str:
    """Create ``dst`` (which must not exist) from ``src``; returns the mode used."""
    if mode == "copy":
        shutil.copyfile(src, dst)
        return "copy"
    if mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise LinkUnsupported(exc.errno, f"cannot hard-link {src} to {dst}: {exc.strerror}") from exc
            raise
        return "hardlink"
    if mode == "symlink":
        os.symlink(src, dst)
        return "symlink"
    if mode == "reflink":
        reflink(src, dst)
        return "reflink"
    if mode == "auto":
        try:
            reflink(src, dst)
            return "reflink"
        except LinkUnsupported:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dst)
            shutil.copyfile(src, dst)
            return "copy"
    raise InvalidValue(f"unknown link mode {mode!r}; use one of auto, reflink, hardlink, symlink, copy")
