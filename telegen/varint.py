"""Protobuf base-128 varints, the one place telegen reads and writes them in
Python (record lengths in template streams, sink recordings and captures;
the padded bucket counts of imported exponential histograms), so that no
module leans on protobuf's private encoder and decoder.
"""
from __future__ import annotations

from collections.abc import Iterator

MAX_BYTES = 10  # a 64-bit value takes at most ten 7-bit groups
_MASK64 = (1 << 64) - 1


def encode_varint(value: int) -> bytes:
    """`value` (0 <= value < 2**64) as a minimal varint."""
    if 0 <= value < 0x80:
        return bytes((value,))
    if not 0 <= value <= _MASK64:
        raise ValueError(f"varint value {value} is outside [0, 2**64)")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_padded_varint(value: int) -> bytes:
    """`value` (0 <= value < 2**64) as a varint of exactly 10 bytes: valid
    protobuf (parsers read non-minimal varints), and wide enough that the
    send path can rewrite any count in place."""
    if not 0 <= value <= _MASK64:
        raise ValueError(f"varint value {value} is outside [0, 2**64)")
    return bytes(((value >> (7 * i)) & 0x7F) | 0x80 for i in range(MAX_BYTES - 1)) + bytes((value >> 63,))


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at buf[pos]. Raises ValueError
    when the buffer ends inside it or it runs past 10 bytes; like protobuf, a
    tenth byte's bits beyond 64 are dropped."""
    start, size = pos, len(buf)
    result = shift = 0
    while True:
        if pos >= size:
            raise ValueError(f"truncated varint at byte offset {start}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 7 * MAX_BYTES:
            raise ValueError(f"varint longer than {MAX_BYTES} bytes at byte offset {start}")


def iter_fields(buf: bytes | bytearray | memoryview, start: int = 0,
                end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) of each field of the
    message in buf[start:end], a length-delimited field's value being its
    payload. Raises ValueError where the bytes stop being protobuf (a field
    number 0, a wire type that is not 0, 1, 2 or 5, a value past the end)."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = decode_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte offset {pos}")
        value = pos
        if wire == 0:
            _, pos = decode_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, value = decode_varint(buf, pos)
            pos = value + length
        else:
            raise ValueError(f"wire type {wire} at byte offset {value}")
        if pos > end:
            raise ValueError(f"field {number} runs past the end at byte offset {value}")
        yield number, wire, value, pos
