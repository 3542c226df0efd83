"""Google service-account key files for the pusher's tests (a fresh RSA key each)."""

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def service_account_file(
    path: Path, *, project_id: str = "offload-sandbox", token_uri: str = GOOGLE_TOKEN_URI
) -> Path:
    """Write a service-account JSON key to `path` whose grants go to `token_uri`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": f"pusher@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path
