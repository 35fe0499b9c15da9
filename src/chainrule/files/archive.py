"""Reading the members of an `.npz` archive from a stranger, bounded by what the archive declares.

A member is read only when asked for by name, and only after its declared size (from the zip
directory) and its `.npy` header (shape and dtype) have been checked against what the caller
expects: a member that inflates to gigabytes, or a header that promises one array and holds
another, is refused before anything is allocated. Object dtypes are never read, so no pickle
ever runs. A compressed member may inflate to at most INFLATION times its stored size (chainrule
writes members uncompressed; a trained model's numbers compress little): a small file cannot make
the reader allocate and fill far more memory than the file holds. Every member name is unique.
"""

from __future__ import annotations

import math
import zipfile
from typing import BinaryIO

import numpy as np

HEADER_LIMIT = 10_000  # bytes of an .npy header, as NumPy's own default
INFLATION = 32  # the most a compressed member may grow when read (beyond SMALL_MEMBER bytes)
SMALL_MEMBER = 1 << 20
READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class Archive:
    """The `.npy` members of a zip archive by name (without `.npy`), read on request only."""

    def __init__(self, stream: BinaryIO) -> None:
        try:
            self.zip = zipfile.ZipFile(stream)
        except zipfile.BadZipFile as error:
            raise ValueError("it is not an .npz archive") from error
        self.members = {info.filename.removesuffix(".npy"): info for info in self.zip.infolist()}
        if len(self.members) != len(self.zip.infolist()):
            seen: set[str] = set()
            for info in self.zip.infolist():
                name = info.filename.removesuffix(".npy")
                if name in seen:
                    raise ValueError(f"it holds the member {name!r} more than once")
                seen.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def read(
        self, name: str, *, kinds: str = "f", shape: tuple[int, ...] | None = None, max_bytes: int | None = None
    ) -> np.ndarray:
        """The array `name`, if its dtype kind is one of `kinds` (f: float, u/i: integers), its shape
        is `shape` (when given) and its data at most `max_bytes` (when given)."""
        if name not in self.members:
            raise ValueError(f"the member {name} is missing")
        info = self.members[name]
        with self.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in READERS:
                raise ValueError(f"the member {name} has .npy format version {version}; expected 1.0 or 2.0")
            try:
                found_shape, fortran_order, dtype = READERS[version](member, max_header_size=HEADER_LIMIT)
            except ValueError as error:
                raise ValueError(
                    f"the member {name} has a malformed .npy header, or one over {HEADER_LIMIT} bytes"
                ) from error
            if dtype.hasobject or dtype.kind not in kinds or dtype.byteorder not in "=|<":
                raise ValueError(f"the member {name} holds {dtype}; expected a plain numeric array")
            if shape is not None and found_shape != shape:
                raise ValueError(f"the member {name} has shape {found_shape}; expected {shape}")
            size = math.prod(found_shape) * dtype.itemsize
            if max_bytes is not None and size > max_bytes:
                raise ValueError(f"the member {name} holds {size} bytes; at most {max_bytes} are allowed")
            if info.compress_type != zipfile.ZIP_STORED and size > max(SMALL_MEMBER, INFLATION * info.compress_size):
                raise ValueError(
                    f"the member {name} inflates {info.compress_size} stored bytes to {size}, "
                    f"more than {INFLATION} times"
                )
            if info.file_size != member.tell() + size:
                raise ValueError(f"the member {name} declares {info.file_size} bytes but its header says otherwise")
            array = np.empty(found_shape, dtype=dtype, order="F" if fortran_order else "C")
            view = array.reshape(-1, order="A").view(np.uint8)
            if member.readinto(view) != size:  # type: ignore[attr-defined]  # a ZipExtFile
                raise ValueError(f"the member {name} is truncated")
        return array
