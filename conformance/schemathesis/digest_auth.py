"""schemathesis hook: HTTP Digest (RFC 7616, MD5, qop=auth) for the Ops Manager family.

Loaded with SCHEMATHESIS_HOOKS=digest_auth by `cargo xtask conformance`. It fetches a challenge
once, then signs each request with an increasing nonce count; when the server says the nonce is
stale it fetches a new one. The key pair is the "omowner" key of conformance/fixtures/opsmanager.sql.
"""

import hashlib
import os
import re
import threading

import requests
import schemathesis

USER = os.environ.get("INVITES_ST_DIGEST_USER", "omowner")
SECRET = os.environ.get("INVITES_ST_DIGEST_SECRET", "aaaaaaaa-1111-4111-8111-111111111111")


def _md5(text):
    return hashlib.md5(text.encode()).hexdigest()


@schemathesis.auth().apply_to(path_regex="^/api/public/v1.0/")
class Digest:
    def __init__(self):
        self.lock = threading.Lock()
        self.nc = 0

    def get(self, case, context):
        base = context.operation.base_url.rstrip("/")
        r = requests.get(base + "/api/public/v1.0/groups/000000000000000000000000/invites", timeout=10)
        challenge = r.headers.get("WWW-Authenticate", "")
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        return {"realm": fields["realm"], "nonce": fields["nonce"], "opaque": fields.get("opaque")}

    def set(self, case, data, context):
        with self.lock:
            self.nc += 1
            nc = f"{self.nc:08x}"
        uri = case.formatted_path
        if case.query:
            uri += "?" + requests.models.RequestEncodingMixin._encode_params(case.query)
        cnonce = hashlib.sha256(os.urandom(16)).hexdigest()[:16]
        ha1 = _md5(f"{USER}:{data['realm']}:{SECRET}")
        ha2 = _md5(f"{case.method.upper()}:{uri}")
        response = _md5(f"{ha1}:{data['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        header = (
            f'Digest username="{USER}", realm="{data["realm"]}", nonce="{data["nonce"]}", uri="{uri}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"'
        )
        if data.get("opaque"):
            header += f', opaque="{data["opaque"]}"'
        case.headers = case.headers or {}
        case.headers["Authorization"] = header
