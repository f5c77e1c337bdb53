"""Byte fields read in either alphabet: what /api/v1 and /api/v2 write decodes the same."""

from __future__ import annotations

import base64

import pytest

from schemas import byte_fields


@pytest.mark.parametrize("raw", [b"", b"\xfb\xff", b"\xfb\xef\xbe", bytes(range(256))])
def test_every_form_decodes_to_the_same_bytes(raw: bytes) -> None:
    forms = {
        byte_fields.encode(raw),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
    }
    assert {byte_fields.decode(f) for f in forms} == {raw}


def test_the_written_form_is_base64url_without_padding() -> None:
    assert byte_fields.encode(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize("text", ["a+b-", "not base64!", "abcde"])
def test_what_is_not_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        byte_fields.decode(text)
