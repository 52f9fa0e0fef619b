#!/usr/bin/env python3
"""Mint the JWT verification fixtures in common/tests/fixtures/jwt/.

Regenerate with:
    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/mint-jwt-fixtures.py

Every run creates new keys and tokens, so regenerate only when the cases
change and commit the whole folder together. The Rust tests read the
committed files and never run Python.

PyJWT and cryptography sign the tokens, so the Rust verifier is checked
against an implementation other than the jsonwebtoken crate it is built on.
Times are fixed (valid tokens expire in 2100, expired ones in 2001) so the
fixtures stay valid. Cases that depend on the current time, such as leeway,
are minted inside the Rust tests instead.
"""

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "common" / "tests" / "fixtures" / "jwt"

ISSUER = "https://auth.sessionfold.test"
AUDIENCE = "sessionfold-api"
LEEWAY_SECS = 30

# 2023-11-14T22:13:20Z, a fixed issue time for every token.
ISSUED_AT = 1_700_000_000
# 2100-01-01T00:00:00Z, far enough ahead that valid fixtures never expire.
FAR_FUTURE_EXP = 4_102_444_800
# 2099-01-01T00:00:00Z, the not-before time of the not-yet-valid case.
FAR_FUTURE_NBF = 4_070_908_800
# 2001-09-09T01:46:40Z, long past, for the expired case.
PAST_EXP = 1_000_000_000

RSA_KID = "rsa-1"
EC_KID = "ec-1"
ED_KID = "ed-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def private_pem(key) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def claims(**overrides) -> dict:
    """Build the claims of a valid token, then apply overrides (None removes a claim)."""
    base = {
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": ISSUED_AT,
        "exp": FAR_FUTURE_EXP,
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def hs256_by_hand(payload: dict, secret: bytes, header: dict | None = None) -> str:
    """Sign HS256 without PyJWT, which refuses PEM-looking HMAC secrets."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def accept(token: str, key_set: str, payload: dict) -> dict:
    return {
        "token": token,
        "key_set": key_set,
        "expect": "accept",
        "subject": payload["sub"],
        "expires_at": payload["exp"],
        "issued_at": payload.get("iat"),
        "token_version": payload.get("tv", 0),
        "token_id": payload.get("jti"),
    }


def reject(token: str, key_set: str, code: str) -> dict:
    return {"token": token, "key_set": key_set, "expect": code}


def main() -> None:
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)

    hs_secret = secrets.token_urlsafe(48).encode("ascii")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()

    (FIXTURE_DIR / "hs256.secret").write_bytes(hs_secret)
    (FIXTURE_DIR / "rsa_private.pem").write_bytes(private_pem(rsa_key))
    (FIXTURE_DIR / "rsa_public.pem").write_bytes(public_pem(rsa_key))
    (FIXTURE_DIR / "ec_private.pem").write_bytes(private_pem(ec_key))
    (FIXTURE_DIR / "ec_public.pem").write_bytes(public_pem(ec_key))
    (FIXTURE_DIR / "ed25519_private.pem").write_bytes(private_pem(ed_key))
    (FIXTURE_DIR / "ed25519_public.pem").write_bytes(public_pem(ed_key))

    jwks_keys = []
    for algorithm, key, kid, alg in (
        (RSAAlgorithm, rsa_key, RSA_KID, "RS256"),
        (ECAlgorithm, ec_key, EC_KID, "ES256"),
        (OKPAlgorithm, ed_key, ED_KID, "EdDSA"),
    ):
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        jwks_keys.append(jwk)
    (FIXTURE_DIR / "jwks.json").write_text(json.dumps({"keys": jwks_keys}, indent=2) + "\n")

    rsa_public_pem = public_pem(rsa_key)
    cases = {}

    def add_accept(name, key_set, payload, key, algorithm, headers=None):
        token = jwt.encode(payload, key, algorithm=algorithm, headers=headers)
        cases[name] = accept(token, key_set, payload)

    def add_reject(name, key_set, code, payload, key, algorithm, headers=None):
        token = jwt.encode(payload, key, algorithm=algorithm, headers=headers)
        cases[name] = reject(token, key_set, code)

    # One valid token per algorithm and key source.
    add_accept("hs256_valid", "hs256", claims(), hs_secret, "HS256")
    add_accept("rs256_valid_pem", "rs256_pem", claims(), rsa_key, "RS256")
    add_accept("es256_valid_pem", "es256_pem", claims(), ec_key, "ES256")
    add_accept("eddsa_valid_pem", "eddsa_pem", claims(), ed_key, "EdDSA")
    add_accept("rs256_valid_jwks", "jwks", claims(), rsa_key, "RS256", {"kid": RSA_KID})
    add_accept("es256_valid_jwks", "jwks", claims(), ec_key, "ES256", {"kid": EC_KID})
    add_accept("eddsa_valid_jwks", "jwks", claims(), ed_key, "EdDSA", {"kid": ED_KID})
    # Without a kid the verifier tries every JWKS key pinned to ES256.
    add_accept("es256_jwks_without_kid", "jwks", claims(), ec_key, "ES256")

    # Optional claims that end up in the verified token.
    add_accept("token_version_present", "hs256", claims(tv=3), hs_secret, "HS256")
    add_accept("token_id_present", "hs256", claims(jti="jti-7f3a"), hs_secret, "HS256")
    add_accept(
        "audience_array_contains_configured",
        "hs256",
        claims(aud=["other-service", AUDIENCE]),
        hs_secret,
        "HS256",
    )
    add_accept("issued_at_absent", "hs256", claims(iat=None), hs_secret, "HS256")

    # Time claims.
    add_reject(
        "expired",
        "hs256",
        "token_expired",
        claims(iat=PAST_EXP - 3600, exp=PAST_EXP),
        hs_secret,
        "HS256",
    )
    add_reject(
        "not_yet_valid",
        "hs256",
        "token_not_yet_valid",
        claims(nbf=FAR_FUTURE_NBF),
        hs_secret,
        "HS256",
    )
    add_reject("missing_exp", "hs256", "missing_expiry", claims(exp=None), hs_secret, "HS256")
    add_reject("exp_is_string", "hs256", "token_malformed", claims(exp="4102444800"), hs_secret, "HS256")
    add_reject("iat_is_string", "hs256", "token_malformed", claims(iat="yesterday"), hs_secret, "HS256")

    # Issuer, audience and subject.
    add_reject("wrong_issuer", "hs256", "invalid_issuer", claims(iss="https://evil.test"), hs_secret, "HS256")
    add_reject("missing_issuer", "hs256", "missing_issuer", claims(iss=None), hs_secret, "HS256")
    add_reject("wrong_audience", "hs256", "invalid_audience", claims(aud="other-service"), hs_secret, "HS256")
    add_reject(
        "audience_array_without_configured",
        "hs256",
        "invalid_audience",
        claims(aud=["other-service", "third-service"]),
        hs_secret,
        "HS256",
    )
    add_reject("missing_audience", "hs256", "missing_audience", claims(aud=None), hs_secret, "HS256")
    add_reject("missing_subject", "hs256", "missing_subject", claims(sub=None), hs_secret, "HS256")
    add_reject("empty_subject", "hs256", "missing_subject", claims(sub=""), hs_secret, "HS256")
    add_reject("subject_is_number", "hs256", "token_malformed", claims(sub=42), hs_secret, "HS256")

    # The `tv` (token version) claim.
    add_reject("token_version_negative", "hs256", "token_malformed", claims(tv=-1), hs_secret, "HS256")
    add_reject("token_version_string", "hs256", "token_malformed", claims(tv="3"), hs_secret, "HS256")
    add_reject("token_version_fraction", "hs256", "token_malformed", claims(tv=3.5), hs_secret, "HS256")
    add_reject("token_id_is_number", "hs256", "token_malformed", claims(jti=7), hs_secret, "HS256")

    # Algorithm pinning.
    cases["alg_none"] = reject(jwt.encode(claims(), None, algorithm="none"), "hs256", "algorithm_not_allowed")
    cases["alg_none_against_jwks"] = reject(
        jwt.encode(claims(), None, algorithm="none", headers={"kid": RSA_KID}),
        "jwks",
        "algorithm_not_allowed",
    )
    # HS/RS confusion: the RSA public key PEM, which an attacker can read, is used as the HMAC secret.
    cases["hs256_signed_with_rsa_public_pem"] = reject(
        hs256_by_hand(claims(), rsa_public_pem), "rs256_pem", "algorithm_not_allowed"
    )
    cases["hs256_signed_with_rsa_public_pem_via_jwks"] = reject(
        hs256_by_hand(claims(), rsa_public_pem, {"alg": "HS256", "typ": "JWT", "kid": RSA_KID}),
        "jwks",
        "algorithm_not_allowed",
    )
    add_reject("rs384_against_rs256_key", "rs256_pem", "algorithm_not_allowed", claims(), rsa_key, "RS384")
    add_reject(
        "es256_token_naming_rsa_kid",
        "jwks",
        "algorithm_not_allowed",
        claims(),
        ec_key,
        "ES256",
        {"kid": RSA_KID},
    )

    # Signatures and key selection.
    add_reject("hs256_wrong_secret", "hs256", "invalid_signature", claims(), b"x" * 48, "HS256")
    valid_rs256 = cases["rs256_valid_pem"]["token"]
    header_b64, _, signature_b64 = valid_rs256.split(".")
    tampered = f"{header_b64}.{b64url_json(claims(sub='admin'))}.{signature_b64}"
    cases["rs256_tampered_payload"] = reject(tampered, "rs256_pem", "invalid_signature")
    add_reject("unknown_kid", "jwks", "unknown_key", claims(), rsa_key, "RS256", {"kid": "rsa-retired"})
    add_reject(
        "eddsa_signed_by_other_key",
        "eddsa_pem",
        "invalid_signature",
        claims(),
        ed25519.Ed25519PrivateKey.generate(),
        "EdDSA",
    )

    # Structure.
    add_reject(
        "oversized_token",
        "hs256",
        "token_malformed",
        claims(padding="p" * 9000),
        hs_secret,
        "HS256",
    )
    add_reject(
        "critical_header_extension",
        "hs256",
        "token_malformed",
        claims(),
        hs_secret,
        "HS256",
        {"crit": ["x-unknown"], "x-unknown": "1"},
    )

    document = {
        "generated_by": "scripts/mint-jwt-fixtures.py",
        "pyjwt_version": jwt.__version__,
        "verifier": {"issuer": ISSUER, "audience": [AUDIENCE], "leeway_secs": LEEWAY_SECS},
        "kids": {"rsa": RSA_KID, "ec": EC_KID, "ed": ED_KID},
        "cases": cases,
    }
    (FIXTURE_DIR / "tokens.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} cases to {FIXTURE_DIR}")


if __name__ == "__main__":
    main()
