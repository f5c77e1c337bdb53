"""Behaviour of backbone.security: ids, addresses, signatures, challenges, tokens, passwords,
at-rest encryption."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from nacl.signing import SigningKey

from backbone.security.addresses import address_domain, address_from_public_key, is_valid_address
from backbone.security.challenges import (
    CHALLENGE_EXPIRED,
    CHALLENGE_INVALID,
    SIGNATURE_INVALID,
    Challenge,
    ChallengeError,
    ChallengeIssuer,
)
from backbone.security.ids import ALPHABET, is_valid_id, new_id
from backbone.security.logcrypto import DecryptionError, MasterKey, new_data_key, open_sealed, seal
from backbone.security.passwords import hash_password, verify_password
from backbone.security.tokens import InvalidToken, TokenIssuer
from schemas.signatures import (
    b64url_encode,
    parse_public_key,
    parse_signature,
    serialize_public_key,
    serialize_signature,
    verify,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _wire(obj: object, *, urlsafe: bool = True) -> str:
    raw = json.dumps(obj).encode()
    return b64url_encode(raw) if urlsafe else base64.b64encode(raw).decode()


# ids


def test_ids_have_the_enmeshed_format_and_do_not_repeat() -> None:
    ids = [new_id("DVC") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert re.fullmatch(r"DVC[A-Za-z0-9]{17}", value)
        assert is_valid_id(value, "DVC")
    # the whole alphabet is in use, so the ids carry the entropy they claim
    assert set("".join(i[3:] for i in ids)) == set(ALPHABET)


def test_id_validation_rejects_wrong_prefix_length_and_characters() -> None:
    value = new_id("USR")
    assert not is_valid_id(value, "DVC")
    assert not is_valid_id(value[:-1], "USR")
    assert not is_valid_id(value + "A", "USR")
    assert not is_valid_id(value[:-1] + "-", "USR")
    with pytest.raises(ValueError):
        new_id("dv")


# addresses


def test_address_is_derived_as_enmeshed_does() -> None:
    key = bytes(range(32))
    hashed = hashlib.sha256(hashlib.sha512(key).digest()).digest()[:10].hex()
    main = f"did:e:localhost:dids:{hashed}"
    expected = main + hashlib.sha256(main.encode()).hexdigest()[:2]
    assert address_from_public_key(key, "localhost") == expected
    assert address_from_public_key(key, "localhost") == expected  # deterministic
    assert is_valid_address(expected)
    assert address_domain(expected) == "localhost"


def test_addresses_differ_per_key_and_domain() -> None:
    a = address_from_public_key(b"\x01" * 32, "localhost")
    b = address_from_public_key(b"\x02" * 32, "localhost")
    c = address_from_public_key(b"\x01" * 32, "backbone.example.org")
    assert len({a, b, c}) == 3
    assert all(is_valid_address(x) for x in (a, b, c))
    assert c.startswith("did:e:backbone.example.org:dids:")


def test_checksum_detects_a_flipped_character() -> None:
    address = address_from_public_key(bytes(range(32)), "localhost")
    start = len("did:e:localhost:dids:")
    # every position of the identity part and of the checksum, each changed to another digit
    # (a one-byte checksum misses 1 in 256 random changes; none of these, for this key)
    for i in range(start, len(address)):
        replacement = "0" if address[i] != "0" else "1"
        assert not is_valid_address(address[:i] + replacement + address[i + 1 :]), i
    # and a change in the domain part is caught as well
    assert not is_valid_address(address.replace("localhost", "localhosd"))


def test_malformed_addresses_and_inputs_are_rejected() -> None:
    good = address_from_public_key(b"\x05" * 32, "localhost")
    assert not is_valid_address(good.upper())
    assert not is_valid_address(good + "0")
    assert not is_valid_address(good.replace("did:e:", "did:x:"))
    assert not is_valid_address("")
    with pytest.raises(ValueError):
        address_from_public_key(b"\x05" * 31, "localhost")
    with pytest.raises(ValueError):
        address_from_public_key(b"\x05" * 32, "Local_Host")


# signatures


def test_verify_accepts_the_signer_and_rejects_wrong_key_and_tampering() -> None:
    key = SigningKey.generate()
    other = SigningKey.generate()
    message = b"challenge"
    sig = key.sign(message).signature
    assert verify(key.verify_key.encode(), message, sig)
    assert not verify(other.verify_key.encode(), message, sig)
    assert not verify(key.verify_key.encode(), b"challengE", sig)
    assert not verify(key.verify_key.encode(), message, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not verify(key.verify_key.encode(), message, sig[:63])
    with pytest.raises(ValueError):
        verify(b"\x00" * 31, message, sig)


def test_wire_forms_round_trip_and_match_the_nmshd_crypto_shape() -> None:
    key = SigningKey.generate()
    pub = key.verify_key.encode()
    sig = key.sign(b"m").signature

    wire_pub = serialize_public_key(pub)
    assert "=" not in wire_pub and "+" not in wire_pub and "/" not in wire_pub
    decoded = json.loads(base64.urlsafe_b64decode(wire_pub + "=" * (-len(wire_pub) % 4)))
    assert decoded == {"pub": b64url_encode(pub), "alg": 3, "@type": "CryptoSignaturePublicKey"}
    assert parse_public_key(wire_pub) == pub
    assert parse_public_key(serialize_public_key(pub, verbose=False)) == pub

    wire_sig = serialize_signature(sig)
    decoded = json.loads(base64.urlsafe_b64decode(wire_sig + "=" * (-len(wire_sig) % 4)))
    assert decoded == {"sig": b64url_encode(sig), "alg": 2, "@type": "CryptoSignature"}
    assert parse_signature(wire_sig) == sig

    # standard, padded base64 is read too, as the Enmeshed Backbone does
    assert parse_public_key(_wire({"pub": b64url_encode(pub), "alg": 3}, urlsafe=False)) == pub
    assert parse_signature(_wire({"sig": b64url_encode(sig), "alg": 1, "kid": "k"})) == sig


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "not base64!",
        "A",
        b64url_encode(b"not json"),
        b64url_encode(b"\xff\xfe"),
        _wire(["pub", "alg"]),
        _wire({"pub": b64url_encode(b"\x01" * 32)}),
        _wire({"pub": b64url_encode(b"\x01" * 32), "alg": 1}),
        _wire({"pub": b64url_encode(b"\x01" * 32), "alg": True}),
        _wire({"pub": b64url_encode(b"\x01" * 32), "alg": "3"}),
        _wire({"pub": b64url_encode(b"\x01" * 31), "alg": 3}),
        _wire({"pub": b64url_encode(b"\x01" * 33), "alg": 3}),
        _wire({"pub": "***", "alg": 3}),
        _wire({"pub": 5, "alg": 3}),
        _wire({"pub": b64url_encode(b"\x01" * 32), "alg": 3, "@type": "CryptoSignature"}),
        b64url_encode(b'{"pub":"' + b64url_encode(b"\x01" * 32).encode() + b'","alg":3,"alg":3}'),
    ],
)
def test_malformed_public_keys_raise_value_error(wire: str) -> None:
    with pytest.raises(ValueError):
        parse_public_key(wire)


@pytest.mark.parametrize(
    "wire",
    [
        "%%%",
        _wire({"sig": b64url_encode(b"\x01" * 63), "alg": 2}),
        _wire({"sig": b64url_encode(b"\x01" * 64), "alg": 9}),
        _wire({"sig": b64url_encode(b"\x01" * 64)}),
        _wire({"alg": 2}),
        _wire({"sig": b64url_encode(b"\x01" * 64), "alg": 2, "@type": "CryptoSignaturePublicKey"}),
    ],
)
def test_malformed_signatures_raise_value_error(wire: str) -> None:
    with pytest.raises(ValueError):
        parse_signature(wire)


def test_serializers_refuse_wrong_lengths() -> None:
    with pytest.raises(ValueError):
        serialize_public_key(b"\x00" * 31)
    with pytest.raises(ValueError):
        serialize_signature(b"\x00" * 65)


# challenges


@pytest.fixture
def issuer() -> ChallengeIssuer:
    return ChallengeIssuer(SigningKey.generate(), ttl_seconds=600)


def test_issued_challenge_has_the_enmeshed_shapes(issuer: ChallengeIssuer) -> None:
    challenge = issuer.issue(NOW)
    assert is_valid_id(challenge.id, "CHL")
    assert challenge.expires_at == NOW + timedelta(minutes=10)
    assert challenge.to_dto() == {
        "id": challenge.id,
        "expiresAt": "2025-03-01T12:10:00.000Z",
        "createdBy": None,
        "createdByDevice": None,
    }
    assert challenge.canonical_json() == (
        f'{{"id":"{challenge.id}","expiresAt":"2025-03-01T12:10:00.000Z","type":"Identity"}}'
    )
    assert len({issuer.issue(NOW).id for _ in range(100)}) == 100


def test_signed_challenge_verifies_in_every_form_a_client_may_sign(
    issuer: ChallengeIssuer,
) -> None:
    identity = SigningKey.generate()
    pub = identity.verify_key.encode()
    address = address_from_public_key(pub, "localhost")
    device = new_id("DVC")
    anonymous = issuer.issue(NOW)
    authenticated = issuer.issue(NOW, created_by=address, created_by_device=device)
    later = NOW + timedelta(minutes=9)
    for text in (
        anonymous.canonical_json(),  # what nmshd/runtime signs
        json.dumps(anonymous.to_dto()),  # a client that signs the DTO it was given
        authenticated.canonical_json("Device"),
        json.dumps(authenticated.to_dto()),
        # another offset, and the backbone's case-insensitive reading
        json.dumps({"ID": anonymous.id, "ExpiresAt": "2025-03-01T13:10:00+01:00"}),
    ):
        signature = identity.sign(text.encode()).signature
        result = issuer.verify_signed_challenge(text, signature, pub, later)
        assert result.id in (anonymous.id, authenticated.id)
        assert issuer.verify_backbone_signature(text, later) == result
    assert issuer.verify_backbone_signature(authenticated.canonical_json(), later) == authenticated


def test_another_backbones_challenge_is_invalid(issuer: ChallengeIssuer) -> None:
    foreign = ChallengeIssuer(SigningKey.generate()).issue(NOW)
    with pytest.raises(ChallengeError) as err:
        issuer.verify_backbone_signature(foreign.canonical_json(), NOW)
    assert err.value.code == CHALLENGE_INVALID


def test_expired_challenge_is_rejected_with_the_expired_code(issuer: ChallengeIssuer) -> None:
    identity = SigningKey.generate()
    text = issuer.issue(NOW).canonical_json()
    signature = identity.sign(text.encode()).signature
    for moment in (NOW + timedelta(minutes=10), NOW + timedelta(days=1)):
        with pytest.raises(ChallengeError) as err:
            issuer.verify_signed_challenge(text, signature, identity.verify_key.encode(), moment)
        assert err.value.code == CHALLENGE_EXPIRED
        assert err.value.status == 400


def test_tampered_challenges_are_rejected_with_the_invalid_code(issuer: ChallengeIssuer) -> None:
    device = new_id("DVC")
    challenge = issuer.issue(NOW, created_by="did:e:localhost:dids:0000", created_by_device=device)
    dto = challenge.to_dto()
    last = challenge.id[-1]
    tampered = [
        {**dto, "expiresAt": "2025-03-01T13:10:00.000Z"},  # extended lifetime
        {**dto, "id": challenge.id[:-1] + ("A" if last != "A" else "B")},
        {
            **dto,
            "id": challenge.id[:5] + ("x" if challenge.id[5] != "x" else "y") + challenge.id[6:],
        },
        {**dto, "createdBy": None},
        {**dto, "createdByDevice": new_id("DVC")},
        {**dto, "id": new_id("CHL")},
        {**dto, "id": 5},
        {**dto, "expiresAt": "tomorrow"},
        {**dto, "expiresAt": "2025-03-01T12:10:00"},  # no zone
        {"id": challenge.id},
    ]
    texts = [json.dumps(t) for t in tampered] + [
        "",
        "[]",
        "not json",
        json.dumps(dto) + "x",
        json.dumps({**dto, "ID": challenge.id}),  # two spellings of one field
    ]
    for text in texts:
        with pytest.raises(ChallengeError) as err:
            issuer.verify_backbone_signature(text, NOW)
        assert err.value.code == CHALLENGE_INVALID, text


def test_challenge_signed_by_the_wrong_key_or_altered_after_signing_is_refused(
    issuer: ChallengeIssuer,
) -> None:
    identity, intruder = SigningKey.generate(), SigningKey.generate()
    text = issuer.issue(NOW).canonical_json("Identity")
    signature = identity.sign(text.encode()).signature
    pub = identity.verify_key.encode()
    cases = [
        (text, intruder.sign(text.encode()).signature, pub),
        (text, signature, intruder.verify_key.encode()),
        (text.replace('"Identity"', '"Device"'), signature, pub),
    ]
    for challenge_text, sig, key in cases:
        with pytest.raises(ChallengeError) as err:
            issuer.verify_signed_challenge(challenge_text, sig, key, NOW)
        assert err.value.code == SIGNATURE_INVALID


def test_challenge_issuer_demands_aware_times_and_hides_its_key() -> None:
    key = SigningKey.generate()
    issuer = ChallengeIssuer(key)
    with pytest.raises(ValueError):
        issuer.issue(datetime(2025, 1, 1))  # naive: refused
    assert isinstance(issuer.issue(), Challenge)
    issued = issuer.issue(datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    assert issued.expires_at == NOW + timedelta(minutes=10)
    assert bytes(key).hex() not in repr(issuer)
    assert base64.b64encode(bytes(key)).decode() not in repr(issuer)


# tokens


def test_token_verifies_until_it_expires() -> None:
    tokens = TokenIssuer(b"s" * 32, ttl_seconds=900)
    token, expires_in = tokens.issue("did:e:localhost:dids:00", "DVCabc", NOW)
    assert expires_in == 900
    claims = tokens.verify(token, NOW + timedelta(seconds=899))
    assert (claims.address, claims.device_id) == ("did:e:localhost:dids:00", "DVCabc")
    assert claims.expires_at == NOW + timedelta(seconds=900)
    with pytest.raises(InvalidToken) as err:
        tokens.verify(token, NOW + timedelta(seconds=900))
    assert err.value.reason == "expired"


def test_tokens_are_unique_opaque_and_secret_free() -> None:
    secret = b"k" * 32
    tokens = TokenIssuer(secret)
    issued = {tokens.issue("a", "d", NOW)[0] for _ in range(100)}
    assert len(issued) == 100
    token = issued.pop()
    assert secret.decode() not in token and base64.urlsafe_b64encode(secret).decode() not in token
    assert secret.decode() not in repr(tokens) and "redacted" in repr(tokens)


def test_tampered_and_foreign_tokens_are_rejected() -> None:
    tokens = TokenIssuer(b"1" * 32)
    token, _ = tokens.issue("did:e:localhost:dids:00", "DVCabc", NOW)
    payload, tag = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"v": 1, "a": "did:e:x", "d": "DVCabc", "e": 9_999_999_999, "n": "x"}
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    candidates = [
        TokenIssuer(b"2" * 32).issue("did:e:localhost:dids:00", "DVCabc", NOW)[0],
        f"{forged_payload}.{tag}",
        f"{flipped}.{tag}",
        f"{payload}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}",
        f"{payload}.{tag}=",
        f"{payload}.{tag}.x",
        payload,
        "",
        "é." + tag,
        "x" * 5000,
    ]
    for candidate in candidates:
        with pytest.raises(InvalidToken):
            tokens.verify(candidate, NOW)
    with pytest.raises(ValueError):
        TokenIssuer(b"short")


# passwords


def test_password_verifies_and_a_wrong_one_is_just_false() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapler")
    assert not verify_password(stored, "")
    assert not verify_password("garbage", "x")
    assert not verify_password(stored, "\ud800")  # unencodable text
    assert hash_password("p") != hash_password("p")  # salted


# at-rest encryption


def test_seal_round_trip_and_every_tamper_fails() -> None:
    key = new_data_key()
    sealed = seal(key, b"event body", b"aad")
    assert open_sealed(key, sealed, b"aad") == b"event body"
    assert seal(key, b"event body", b"aad") != sealed  # fresh nonce every time
    with pytest.raises(DecryptionError):
        open_sealed(key, sealed, b"other")
    with pytest.raises(DecryptionError):
        open_sealed(new_data_key(), sealed, b"aad")
    for i in (0, 30, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[i] ^= 0x80
        with pytest.raises(DecryptionError):
            open_sealed(key, bytes(damaged), b"aad")
    with pytest.raises(DecryptionError):
        open_sealed(key, sealed[:20], b"aad")


def test_master_key_binds_wrapped_keys_to_their_id_and_hides_itself() -> None:
    raw = new_data_key()
    master = MasterKey.from_base64(base64.b64encode(raw).decode())
    data_key = new_data_key()
    wrapped = master.wrap(data_key, "identity-1")
    assert master.unwrap(wrapped, "identity-1") == data_key
    with pytest.raises(DecryptionError):
        master.unwrap(wrapped, "identity-2")
    with pytest.raises(DecryptionError):
        MasterKey.generate().unwrap(wrapped, "identity-1")
    for text in (repr(master), str(master)):
        assert raw.hex() not in text
        assert base64.b64encode(raw).decode() not in text
        assert "redacted" in text
    with pytest.raises(ValueError):
        MasterKey(b"short")
