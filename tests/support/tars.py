"""Archives built by hand with tarfile and gzip, never with dagsync's own builder: the way someone bypassing the
CLI (or attacking the gate) would write them. Bytes are deterministic (gzip mtime 0)."""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

# (name, bytes): a regular file; a TarInfo alone: an entry without data (a folder, a link, a device, an empty
# file); (TarInfo, bytes): that header with that data (its size is set from the data).
Entry = tuple[str, bytes] | tarfile.TarInfo | tuple[tarfile.TarInfo, bytes | None]


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: Any) -> tarfile.TarInfo:
    """A header: `member("l", tarfile.SYMTYPE, linkname="/etc")`, `member("run.sh", mode=0o4755)`."""
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def tar(*entries: Entry, fmt: int = tarfile.PAX_FORMAT, pax: dict[str, str] | None = None) -> bytes:
    """A plain (uncompressed) tar of `entries`, in `fmt` (PAX, GNU or USTAR), with global `pax` headers.
    Names are written as given, undecodable bytes included (surrogateescape)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt, pax_headers=pax or {}, encoding="utf-8",
                      errors="surrogateescape") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
                continue
            head, data = entry
            info = tarfile.TarInfo(head) if isinstance(head, str) else head
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return raw.getvalue()


def tar_gz(*entries: Entry, fmt: int = tarfile.PAX_FORMAT, pax: dict[str, str] | None = None,
           level: int = 6) -> bytes:
    """`tar(...)` gzipped at `level` (1 for the large ones)."""
    return gzip.compress(tar(*entries, fmt=fmt, pax=pax), compresslevel=level, mtime=0)
