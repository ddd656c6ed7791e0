"""Writing local files that hold secrets: whole or not at all, never readable by others."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data``: a temp file in the same folder, fsynced, then renamed.

    A reader (the AWS CLI, a second ``credential-process``) sees the old file or the new one,
    never half of either, and a crash leaves the old file intact. The temp file gets ``mode``
    before any byte is written, so a secret is never briefly readable by others.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
