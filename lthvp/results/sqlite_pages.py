"""SQLite's file format, read directly: finding the page size of a file whose header is gone,
writing a header (or a whole first page) back, and reading table rows straight from leaf pages.

Used by :mod:`lthvp.results.db_salvage` when SQLite itself cannot reach rows: a zeroed header
(SQLite says "file is not a database"), a zeroed first page (the schema is gone), garbage over an
interior page (every row below it is unreachable through the b-tree although its leaf is intact).
Format reference: https://www.sqlite.org/fileformat2.html (b-tree pages, cells, overflow chains,
record format). Nothing here writes to the damaged file; callers patch a copy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"SQLite format 3\x00"
PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX = 0x0D, 0x05, 0x0A, 0x02


def header_page_size(data: bytes) -> int | None:
    """The page size the header states, None when the header is not SQLite's."""
    if data[:16] != MAGIC or len(data) < 100:
        return None
    size = struct.unpack(">H", data[16:18])[0]
    size = 65536 if size == 1 else size
    return size if size in PAGE_SIZES else None


def _looks_like_btree(data: bytes, offset: int, page_size: int) -> bool:
    kind = data[offset]
    if kind not in (LEAF_TABLE, INTERIOR_TABLE, LEAF_INDEX, INTERIOR_INDEX):
        return False
    cells = struct.unpack(">H", data[offset + 3:offset + 5])[0]
    start = struct.unpack(">H", data[offset + 5:offset + 7])[0] or 65536
    header = 8 if kind in (LEAF_TABLE, LEAF_INDEX) else 12
    return header + 2 * cells <= start <= page_size


def guess_page_size(data: bytes) -> int:
    """The smallest page size at whose boundaries (page 1 aside) nearly as many b-tree pages start as
    at the best one: at a multiple of the true size the boundaries are pages too, below it most
    fall inside pages. 4096 (SQLite's default) when nothing stands out."""
    scores = {}
    for size in PAGE_SIZES:
        pages = len(data) // size
        if pages >= 2 and len(data) % size == 0:
            scores[size] = sum(_looks_like_btree(data, n * size, size) for n in range(1, pages)) / (pages - 1)
    best = max(scores.values(), default=0.0)
    if best == 0.0:
        return 4096
    return min(size for size, score in scores.items() if score >= best - 0.05)


def patch_first_page(data: bytearray, template: bytes, page_size: int) -> str:
    """Give ``data`` (a copy) a valid header, and the template's whole first page (the schema) when
    its own is unreadable too; returns what was done. The template is page 1 of a fresh database of
    the same kind and page size, so its schema names the same root pages."""
    own_btree = len(data) > 100 and _looks_like_btree(bytes(data[:page_size]), 100, page_size)
    count = len(data) // page_size
    if own_btree:
        data[:100] = template[:100]
        done = "wrote a fresh 100-byte header"
    else:
        data[:page_size] = template[:page_size]
        done = "wrote a fresh first page (header and schema)"
    # the page count comes from the file; the freelist is unknown (none); change counter = valid-for
    data[28:32] = struct.pack(">I", count)
    data[32:40] = bytes(8)
    data[92:96] = data[24:28]
    return f"{done} (page size {page_size}, {count} pages)"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError("bad varint")


def _value(serial: int, buf: bytes, pos: int):
    sizes = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}
    if serial in sizes:
        n = sizes[serial]
        raw = buf[pos:pos + n]
        if len(raw) != n:
            raise ValueError("record ends early")
        if serial == 0:
            return None, pos
        if serial in (8, 9):
            return serial - 8, pos
        if serial == 7:
            return struct.unpack(">d", raw)[0], pos + n
        return int.from_bytes(raw, "big", signed=True), pos + n
    if serial < 12:
        raise ValueError(f"reserved serial type {serial}")
    n = (serial - 12) // 2
    raw = buf[pos:pos + n]
    if len(raw) != n:
        raise ValueError("record ends early")
    return (bytes(raw) if serial % 2 == 0 else raw.decode("utf-8")), pos + n


def parse_record(payload: bytes) -> list:
    """The columns of one record (SQLite's record format, UTF-8 text)."""
    size, pos = _varint(payload, 0)
    serials = []
    while pos < size:
        serial, pos = _varint(payload, pos)
        serials.append(serial)
    values, pos = [], size
    for serial in serials:
        value, pos = _value(serial, payload, pos)
        values.append(value)
    return values


@dataclass
class Cell:
    page: int
    rowid: int
    columns: list


def _payload(data: bytes, page_size: int, usable: int, start: int, length: int, pages: int) -> bytes:
    """A cell's whole payload: its local part, then its overflow chain (bounded, loop-safe)."""
    limit = usable - 35
    if length <= limit:
        local = length
    else:
        least = (usable - 12) * 32 // 255 - 23
        local = least + (length - least) % (usable - 4)
        local = local if local <= limit else least
    out = bytearray(data[start:start + local])
    if local < length:
        (following,) = struct.unpack(">I", data[start + local:start + local + 4])
        seen = set()
        while len(out) < length:
            if not 2 <= following <= pages or following in seen:
                raise ValueError("broken overflow chain")
            seen.add(following)
            offset = (following - 1) * page_size
            (following,) = struct.unpack(">I", data[offset:offset + 4])
            out += data[offset + 4:offset + usable][:length - len(out)]
    return bytes(out)


def table_cells(data: bytes, page_size: int, reserved: int = 0, skip: frozenset = frozenset()) -> list[Cell]:
    """Every cell readable on every table leaf page (those in ``skip``, e.g. free pages, aside):
    what SQLite's b-tree would return, whether or not the pages above it can still be read."""
    pages, usable, cells = len(data) // page_size, page_size - reserved, []
    for page in range(1, pages + 1):
        base = (page - 1) * page_size
        head = base + (100 if page == 1 else 0)
        if page in skip or data[head] != LEAF_TABLE or not _looks_like_btree(data, head, page_size):
            continue
        count = struct.unpack(">H", data[head + 3:head + 5])[0]
        for i in range(count):
            (pointer,) = struct.unpack(">H", data[head + 8 + 2 * i:head + 10 + 2 * i])
            if not head - base + 8 + 2 * count <= pointer < usable:
                continue
            try:
                length, pos = _varint(data, base + pointer)
                rowid, pos = _varint(data, pos)
                columns = parse_record(_payload(data, page_size, usable, pos, length, pages))
            except (ValueError, IndexError, UnicodeDecodeError, struct.error):
                continue  # this cell, or its overflow chain, is damaged
            cells.append(Cell(page, rowid, columns))
    return cells


def free_pages(data: bytes, page_size: int) -> frozenset:
    """Pages on the freelist named by a sound header (their cells are deleted rows); empty otherwise."""
    if header_page_size(data) != page_size:
        return frozenset()
    (trunk,) = struct.unpack(">I", data[32:36])
    pages, found, seen = len(data) // page_size, set(), set()
    while 2 <= trunk <= pages and trunk not in seen:
        seen.add(trunk)
        found.add(trunk)
        base = (trunk - 1) * page_size
        following, count = struct.unpack(">II", data[base:base + 8])
        for i in range(min(count, page_size // 4 - 2)):
            (leaf,) = struct.unpack(">I", data[base + 8 + 4 * i:base + 12 + 4 * i])
            found.add(leaf)
        trunk = following
    return frozenset(found)
