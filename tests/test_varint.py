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


def test_fields_of_a_message_as_protobuf_wrote_them():
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from telegen.varint import iter_fields

    span = Span(trace_id=b"\x01" * 16, name="GET /", kind=2, start_time_unix_nano=7, dropped_events_count=3,
                attributes=[KeyValue(key="k", value=AnyValue(int_value=5))])
    data = span.SerializeToString()
    found = [(number, wire, data[start:end]) for number, wire, start, end in iter_fields(data)]
    assert found == [(1, 2, b"\x01" * 16), (5, 2, b"GET /"), (6, 0, b"\x02"), (7, 1, (7).to_bytes(8, "little")),
                     (9, 2, span.attributes[0].SerializeToString()), (12, 0, b"\x03")]
    for bad in (data[:-1], b"\x00\x01", b"\x0b\x00"):  # cut short, field 0, wire type 3
        with pytest.raises(ValueError):
            list(iter_fields(bad))
