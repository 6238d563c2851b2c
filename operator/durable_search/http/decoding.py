"""Content-Encoding, decoded incrementally and never past a bound.

A site chooses how its answer is compressed; it must never choose how much memory we spend on
it. httpx's own decoders run ``decompress`` without a bound and stack one decoder per listed
coding, so 590 bytes of ``Content-Encoding: gzip, gzip`` grew the operator by 720 MiB. Here:

- we offer ``gzip, deflate`` and decode at most one layer of either, with
  ``decompressobj().decompress(chunk, max_length)``: output stops at the cap whatever the input;
- any other coding, or a second layer, is kept as received (the body is stored as base64 and
  the response records the coding it was not decoded from);
- the compressed input read is bounded too, so a stream that decodes to nothing ends.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

ACCEPT_ENCODING = "gzip, deflate"
_GZIP = ("gzip", "x-gzip")
_DEFLATE = ("deflate",)
# Compressed bytes read per exchange at most, whatever they decode to.
MAX_ENCODED_INPUT = 8 * 1024 * 1024


def content_codings(header: str | None) -> tuple[str, ...]:
    """The codings a ``Content-Encoding`` header lists, in order, ``identity`` left out."""
    if not header:
        return ()
    codings = (c.strip().lower() for c in header.split(","))
    return tuple(c for c in codings if c and c != "identity")


@dataclass
class BoundedBody:
    """Collects at most ``limit`` bytes of a body from raw (possibly encoded) chunks.

    ``feed`` returns False once nothing more is wanted (the cap is reached, or the encoded input
    is exhausted); ``data`` then holds the decoded bytes, ``more`` whether there were more.
    """

    limit: int
    coding: str | None = None  # the one coding decoded, or None
    undecoded: str | None = None  # the codings we did not decode (kept as received)
    data: bytearray = field(default_factory=bytearray)
    more: bool = False
    encoded_read: int = 0
    error: str | None = None
    _raw: bytearray = field(default_factory=bytearray)  # as received, for a body we cannot decode
    _decoder: zlib._Decompress | None = None
    _members: int = 0

    @classmethod
    def for_codings(cls, codings: tuple[str, ...], limit: int) -> BoundedBody:
        if not codings:
            return cls(limit)
        if len(codings) == 1 and codings[0] in _GZIP + _DEFLATE:
            return cls(limit, coding=codings[0])
        return cls(limit, undecoded=", ".join(codings))

    def feed(self, chunk: bytes) -> bool:
        if self.coding is None or self.error is not None:
            return self._keep(chunk)
        self.encoded_read += len(chunk)
        self._raw += chunk[: max(self.limit - len(self._raw), 0)]
        try:
            self._decode(chunk)
        except zlib.error as error:
            if self._members:
                return False  # trailing bytes after a complete body: ignore them, as gzip does
            # Not what it claims to be: keep it as received, and say why.
            self.error = f"the {self.coding} body could not be decoded ({error}): kept as received"
            self.data, self.undecoded, self.coding = self._raw, self.coding, None
            self.more = self.encoded_read > len(self._raw)
            return False
        if self.more:
            return False
        return self.encoded_read < MAX_ENCODED_INPUT

    def _keep(self, chunk: bytes) -> bool:
        room = self.limit - len(self.data)
        self.data += chunk[:room]
        if len(chunk) > room:
            self.more = True
            return False
        return True

    def _decode(self, chunk: bytes) -> None:
        pending = chunk
        while pending and not self.more:
            decoder = self._decoder or self._new_decoder(pending)
            room = self.limit - len(self.data)
            # One byte past the room tells "there was more" without decoding it all.
            self.data += decoder.decompress(pending, room + 1)
            if len(self.data) > self.limit:
                del self.data[self.limit :]
                self.more = True
                return
            if decoder.eof:
                # Concatenated gzip members are one body (RFC 1952 §2.2): start the next one.
                self._members += 1
                pending = decoder.unused_data
                self._decoder = None
            else:
                pending = decoder.unconsumed_tail

    def _new_decoder(self, first: bytes) -> zlib._Decompress:
        if self.coding in _GZIP:
            wbits = 16 + zlib.MAX_WBITS
        else:
            # "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2); many servers send it
            # raw. A zlib stream starts with a header whose first nibble is 8 (deflate).
            raw = not first or (first[0] & 0x0F) != 8
            wbits = -zlib.MAX_WBITS if raw else zlib.MAX_WBITS
        self._decoder = zlib.decompressobj(wbits)
        return self._decoder
