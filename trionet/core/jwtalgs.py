"""Which JWT algorithm a public key is for (pure: no I/O).

RSA of 2048 bits or more verifies RS256, an EC P-256 key ES256, an Ed25519 key EdDSA; each key
verifies its one algorithm only (trionet.jwtkeys), never an HMAC.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = ["parse_public_key", "public_key_algorithm"]


def public_key_algorithm(key: Any) -> str:
    """The JWT algorithm of a public key; ValueError for a kind trionet does not take."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"an RSA key of {key.key_size} bits is too weak (2048 at least)")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must be on P-256 (ES256), not {key.curve.name}")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError("the key must be an RSA, EC P-256 or Ed25519 public key")


def parse_public_key(data: bytes, source: str) -> tuple[Any, str]:
    """A PEM public key and its algorithm; ValueError naming what is wrong with ``source``."""
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise ValueError(f"{source} holds no PEM public key") from None
    return key, public_key_algorithm(key)
