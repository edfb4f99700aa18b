"""telegen.varint, held to protobuf's own varint coding (its private encoder
and decoder serve as the oracle here, and only here)."""
from __future__ import annotations

import pytest
from google.protobuf.internal.decoder import _DecodeVarint
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import given
from hypothesis import strategies as st

from telegen.varint import decode_varint, encode_padded_varint, encode_varint

U64 = st.integers(min_value=0, max_value=2**64 - 1)


@given(U64, st.binary(max_size=4))
def test_encoding_and_decoding_match_protobuf(value, prefix):
    encoded = encode_varint(value)
    assert encoded == _VarintBytes(value)
    buf = prefix + encoded + b"\x01"
    assert decode_varint(buf, len(prefix)) == _DecodeVarint(buf, len(prefix)) == (value, len(prefix) + len(encoded))
    assert decode_varint(memoryview(buf), len(prefix)) == (value, len(prefix) + len(encoded))


@given(U64)
def test_padded_varints_are_ten_bytes_protobuf_reads_back(value):
    padded = encode_padded_varint(value)
    assert len(padded) == 10
    assert decode_varint(padded, 0) == _DecodeVarint(padded, 0) == (value, 10)


@pytest.mark.parametrize(("buf", "message"), [
    (b"", "truncated varint at byte offset 0"),
    (b"\x05\x80\x80", "truncated varint at byte offset 1"),
    (b"\x80" * 10 + b"\x01", "varint longer than 10 bytes at byte offset 0"),
])
def test_bad_varints_raise_value_error(buf, message):
    at = 1 if buf.startswith(b"\x05") else 0
    with pytest.raises(ValueError, match=message):
        decode_varint(buf, at)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_values_outside_64_bits_are_refused(value):
    for encode in (encode_varint, encode_padded_varint):
        with pytest.raises(ValueError, match="outside"):
            encode(value)
