"""Content-Encoding decoded incrementally, one layer at most, never past the cap."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from durable_search.http.decoding import BoundedBody, content_codings


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes, coding: str | None, limit: int) -> BoundedBody:
    body = BoundedBody.for_codings(content_codings(coding), limit)
    for chunk in chunks(data):
        if not body.feed(chunk):
            break
    return body


def zeros_gzipped(megabytes: int, layers: int = 1) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    data = b"".join(compressor.compress(block) for _ in range(megabytes)) + compressor.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def test_a_gzip_bomb_decodes_only_up_to_the_cap() -> None:
    bomb = zeros_gzipped(256)  # 256 MiB of zeros in about 260 KB
    tracemalloc.start()
    body = read(bomb, "gzip", 262144)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (len(body.data), body.more, body.undecoded) == (262144, True, None)
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while decoding"
    assert body.encoded_read < len(bomb), "reading stopped at the cap"


def test_a_second_layer_is_kept_as_received() -> None:
    # 590 bytes of "gzip, gzip" grew the operator by 720 MiB through httpx's decoders.
    double = zeros_gzipped(8, layers=2)
    body = read(double, "gzip, gzip", 262144)
    assert body.undecoded == "gzip, gzip"
    assert bytes(body.data) == double[:262144]


def test_codings_we_did_not_offer_are_kept_as_received() -> None:
    body = read(b"\x1b\x00br-bytes", "br", 100)
    assert (body.undecoded, bytes(body.data)) == ("br", b"\x1b\x00br-bytes")


def test_identity_and_no_coding_read_the_raw_bytes_up_to_the_cap() -> None:
    assert content_codings("identity") == ()
    body = read(b"x" * 1000, None, 100)
    assert (len(body.data), body.more) == (100, True)


def test_deflate_is_decoded_wrapped_or_raw() -> None:
    wrapped = zlib.compress(b"hello deflate")
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    bare = raw.compress(b"hello raw") + raw.flush()
    assert bytes(read(wrapped, "deflate", 100).data) == b"hello deflate"
    assert bytes(read(bare, "deflate", 100).data) == b"hello raw"


def test_concatenated_gzip_members_are_one_body() -> None:
    assert bytes(read(gzip.compress(b"one ") + gzip.compress(b"two"), "gzip", 100).data) == (
        b"one two"
    )


def test_a_body_that_is_not_what_it_claims_is_kept_as_received_with_a_note() -> None:
    body = read(b"this is not gzip at all", "gzip", 100)
    assert body.undecoded == "gzip"
    assert bytes(body.data) == b"this is not gzip at all"
    assert body.error is not None and "could not be decoded" in body.error


@given(payload=st.binary(max_size=5000), limit=st.integers(min_value=0, max_value=6000))
def test_decoding_returns_the_payloads_prefix_up_to_the_cap(payload: bytes, limit: int) -> None:
    body = read(gzip.compress(payload), "gzip", limit)
    assert bytes(body.data) == payload[:limit]
    assert body.more == (len(payload) > limit)
