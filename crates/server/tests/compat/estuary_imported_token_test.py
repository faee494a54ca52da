"""Drives the published estuary-client (1.0.7, unmodified) with an Estuary token that keyward
never issued but imported (`POST /api/v1/api-keys/import?format=estuary`): it lists, creates,
reads stats and revokes itself exactly as it did against Estuary.

Run by the Rust test `compat::published_estuary_client_uses_an_imported_token`, which passes
KEYWARD_URL and KEYWARD_TOKEN (the imported `EST…ARY` token). Exits non-zero on a failed check.
"""

import ast
import base64
import hashlib
import json
import os
import sys

import estuary_client
from estuary_client.rest import ApiException

URL = os.environ["KEYWARD_URL"]
TOKEN = os.environ["KEYWARD_TOKEN"]


def api(token):
    config = estuary_client.Configuration()
    config.host = URL
    config.api_key = {"Authorization": token}
    config.api_key_prefix = {"Authorization": "Bearer"}
    return estuary_client.UserApi(estuary_client.ApiClient(config))


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def token_hash(token):
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


imported = api(TOKEN)
listed = imported.user_api_keys_get()
check(token_hash(TOKEN) in {k.token_hash for k in listed},
      "the imported token lists itself by its tokenHash")
fresh = imported.user_api_keys_post(expiry="1h", perms="all")
check(fresh.token.startswith("kw_"), "the imported token makes a native key")
stats = ast.literal_eval(imported.user_stats_get())
check(stats["keys"]["active"] >= 2, "user_stats_get counts the imported key")
imported.user_api_keys_key_or_hash_delete(TOKEN)
try:
    imported.user_api_keys_get()
    check(False, "a revoked imported token is refused")
except ApiException as e:
    check(e.status == 401 and json.loads(e.body)["error"]["reason"] == "ERR_INVALID_TOKEN",
          "a revoked imported token is refused (401 ERR_INVALID_TOKEN)")
check(len(api(fresh.token).user_api_keys_get()) >= 1, "the native key lives on")
print("estuary-client: an imported token works unchanged")
