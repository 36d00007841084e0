"""Per-sample predictions as binary bundle members (bundle format 2): one ``.npy`` block holds
many results' float16 probability arrays of one shape, laid out so zip's DEFLATE finds what they
share.

Layout of a block holding R arrays of shape (N, K): ``uint8`` of shape (2, R, K, N), the high and
the low byte of each float16 value (its little-endian bit pattern), every array transposed so
each class's column over the N samples is contiguous. Byte planes and class columns let DEFLATE
see the near-constant high bytes (sign and exponent) apart from the noisy low mantissa bytes and
match columns of neighbouring results (the exporter orders results by cell): the shipped v2
study's predictions take 9.6 MB instead of 16.1 MB as base64 inside JSON, the float16 values
unchanged bit for bit (docs/BENCHMARKS.md, "Bundle format 2").

:func:`unpack` trusts nothing: version-1 ``.npy`` only, header at most :data:`MAX_HEADER_BYTES`
(parsed by numpy's literal parser, never unpickled: ``allow_pickle=False``), dtype ``|u1`` in C
order, the shape's size exactly the bytes that follow, every value finite.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from lthvp.results.predictions import MAX_PREDICTION_VALUES

MAGIC = b"\x93NUMPY\x01\x00"  # .npy format 1.0: a 2-byte header length
MAX_HEADER_BYTES = 512  # numpy writes ~118 bytes for a 4-d uint8 array
BLOCK_BYTES = 8 * 1024 * 1024  # the exporter starts a new block once one holds this much (well under the member limit)


class BlockError(ValueError):
    """A malformed prediction block (the bundle reader names the member)."""


def pack(arrays: list[np.ndarray]) -> bytes:
    """The ``.npy`` bytes of one block: ``arrays`` are float16 (N, K), all of one shape."""
    stacked = np.stack([np.asarray(a, dtype="<f2").T for a in arrays])  # (R, K, N)
    bits = np.ascontiguousarray(stacked).view("<u2")
    planes = np.stack([(bits >> 8).astype(np.uint8), (bits & 0xFF).astype(np.uint8)])
    out = io.BytesIO()
    np.lib.format.write_array(out, planes, version=(1, 0), allow_pickle=False)
    return out.getvalue()


def _header(data: bytes) -> tuple[tuple[int, ...], int]:
    """(shape, offset of the data), read without trusting the header."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 2:
        raise BlockError("is not a version-1.0 .npy file")
    (length,) = struct.unpack("<H", data[len(MAGIC):len(MAGIC) + 2])
    if length > MAX_HEADER_BYTES:
        raise BlockError(f"has a {length}-byte .npy header (at most {MAX_HEADER_BYTES})")
    fp = io.BytesIO(data[:len(MAGIC) + 2 + length])
    fp.seek(len(MAGIC))
    try:
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
    except (ValueError, SyntaxError, TypeError) as err:  # numpy's literal parser: never evaluates code
        raise BlockError(f"has a malformed .npy header ({str(err)[:120]})") from None
    if dtype != np.dtype("u1") or fortran:
        raise BlockError(f"must hold uint8 byte planes in C order, got dtype {dtype.str!r}"
                         f"{' in Fortran order' if fortran else ''}")
    if len(shape) != 4 or shape[0] != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise BlockError(f"must have shape (2, results, classes, samples), got {shape}")
    if shape[2] * shape[3] > MAX_PREDICTION_VALUES:
        raise BlockError(f"holds {shape[3]}x{shape[2]} arrays (at most {MAX_PREDICTION_VALUES} values each)")
    offset = len(MAGIC) + 2 + length
    if len(data) - offset != shape[0] * shape[1] * shape[2] * shape[3]:
        raise BlockError(f"holds {len(data) - offset} bytes of data, its shape {shape} needs "
                         f"{shape[0] * shape[1] * shape[2] * shape[3]}")
    return shape, offset


def unpack(data: bytes) -> np.ndarray:
    """The block's float16 values, shape (R, K, N); :class:`BlockError` says what is wrong."""
    _header(data)  # every check numpy would not make, before numpy reads anything
    planes = np.load(io.BytesIO(data), allow_pickle=False)
    bits = (planes[0].astype(np.uint16) << 8) | planes[1]
    values = bits.astype("<u2").view("<f2")
    if not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values).reshape(len(values), -1).all(axis=1))[0, 0])
        raise BlockError(f"holds non-finite values (NaN or infinity) in row {bad}")
    return values


def array_at(block: np.ndarray, row: int) -> np.ndarray:
    """Row ``row`` of an unpacked block as the (N, K) float16 array it was packed from."""
    return np.ascontiguousarray(block[row].T).astype(np.float16)
