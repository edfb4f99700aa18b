"""Request bodies as the sink's OTLP/HTTP receiver reads them: gzip and zstd
decoded, never past the sink's size limit (no bomb gets through).

    gzip      one member or several, as gzip allows; inflated with zlib-ng,
              ~2.5x faster than zlib here (docs/performance.md): inflating is
              most of what a compressed request costs the sink
    zstd      one frame or several (zstandard, the reference library); a
              frame declaring its size is refused at its header when that is
              over the limit, one that does not is fed in small pieces
    identity  as sent
"""
from __future__ import annotations

import zstandard
from zlib_ng import zlib_ng

ENCODINGS = ("gzip", "zstd", "identity")
# A zstd frame of unknown size is fed this many bytes at a time: a block
# (3-byte header, 1-byte RLE payload) can stand for 128 KiB, so one piece
# stands for at most 8 MiB before the limit is checked again.
_PIECE = 256
_ZSTD = zstandard.ZstdDecompressor()


def decode(encoding: str, body: bytes, limit: int) -> bytes | None:
    """The body's contents; None past `limit` bytes; ValueError for a body
    that is not what its encoding says, or ends early."""
    if encoding == "gzip":
        return _inflate(body, limit)
    if encoding == "zstd":
        return _unzstd(body, limit)
    return body


def _inflate(body: bytes, limit: int) -> bytes | None:
    out: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib_ng.decompressobj(wbits=31)
        try:
            part = inflater.decompress(rest, limit - size + 1)
        except zlib_ng.error as exc:
            raise ValueError(str(exc)) from None
        size += len(part)
        if size > limit:
            return None
        if not inflater.eof:
            raise ValueError("it ends before the gzip stream does")
        out.append(part)
        rest = inflater.unused_data
    return b"".join(out)


def _unzstd(body: bytes, limit: int) -> bytes | None:
    out: list[bytes] = []
    size = 0
    rest = body
    while rest:
        try:
            declared = zstandard.get_frame_parameters(rest).content_size
            frame = _ZSTD.decompressobj()
            if declared != zstandard.CONTENTSIZE_UNKNOWN:
                if declared > limit - size:
                    return None
                # The decoder holds a frame to its declared size (a lying header is an error).
                part = frame.decompress(rest)
                size += len(part)
                out.append(part)
            else:
                at = 0
                while not frame.eof and at < len(rest):
                    part = frame.decompress(rest[at:at + _PIECE])
                    at += _PIECE
                    size += len(part)
                    if size > limit:
                        return None
                    out.append(part)
        except zstandard.ZstdError as exc:
            raise ValueError(str(exc)) from None
        if not frame.eof:
            raise ValueError("it ends before the zstd frame does")
        rest = frame.unused_data
    return b"".join(out)
