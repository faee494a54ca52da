"""Drives every UserApi method of the published estuary-client (1.0.7, unmodified) against a
live keyward, with a login JWT and with a keyward key as the bearer.

Run by the Rust test `compat::published_estuary_client_works_unchanged`, which starts keyward
and passes: KEYWARD_URL, KEYWARD_JWT (a member), KEYWARD_OTHER_JWT (another member of the same
tenant), KEYWARD_EMAIL (the first member's email). Exits non-zero on the first failed check.
"""

import ast
import base64
import datetime
import hashlib
import json
import os
import sys

import estuary_client
from estuary_client.rest import ApiException

URL = os.environ["KEYWARD_URL"]
JWT = os.environ["KEYWARD_JWT"]
OTHER_JWT = os.environ["KEYWARD_OTHER_JWT"]
EMAIL = os.environ["KEYWARD_EMAIL"]


def api(token):
    """A UserApi whose bearer is `token` (None: no Authorization header at all)."""
    config = estuary_client.Configuration()
    config.host = URL
    # Configuration() is a shallow copy of one shared default: give each client its own dicts
    # rather than writing into the shared ones.
    config.api_key = {} if token is None else {"Authorization": token}
    config.api_key_prefix = {} if token is None else {"Authorization": "Bearer"}
    return estuary_client.UserApi(estuary_client.ApiClient(config))


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def error_of(call):
    """Runs `call`, which must fail; returns (status, parsed Estuary error body)."""
    try:
        call()
    except ApiException as e:
        return e.status, json.loads(e.body)["error"]
    check(False, "expected an error")


def token_hash(token):
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def as_doc(text):
    """UserApi types stats/export/delete as `str`: the client hands back the JSON's Python repr."""
    return ast.literal_eval(text)


def hashes(keys):
    return {k.token_hash for k in keys}


session = api(JWT)
other = api(OTHER_JWT)

# --- create with the JWT -------------------------------------------------------------------
before = session.user_api_keys_get()
check(isinstance(before, list), "user_api_keys_get returns a list")

a = session.user_api_keys_post(expiry="2h", perms="all")
check(a.token.startswith("kw_"), "the new key's plaintext is returned once")
check(a.token_hash == token_hash(a.token), "tokenHash is base64url(SHA-256(token)) without padding")
check(a.is_session is False, "isSession is false")
expiry = datetime.datetime.fromisoformat(a.expiry.replace("Z", "+00:00"))
check(expiry.tzinfo is not None, "expiry is an RFC 3339 time")

b = session.user_api_keys_post(expiry="false", perms="upload")
check(b.expiry is None, "expiry=false makes a key that never expires")
c = session.user_api_keys_post()
default_expiry = datetime.datetime.fromisoformat(c.expiry.replace("Z", "+00:00"))
check(abs((default_expiry - expiry).total_seconds() - (30 * 24 - 2) * 3600) < 120,
      "without expiry a key lives 30 days")

listed = session.user_api_keys_get()
check({a.token_hash, b.token_hash, c.token_hash} <= hashes(listed), "new keys are listed")
check(all(k.token == "" for k in listed), "listings never carry a plaintext")

# --- the key itself as the bearer ---------------------------------------------------------
by_key = api(a.token)
check(hashes(by_key.user_api_keys_get()) == hashes(listed), "a perms=all key lists the same keys")
d = by_key.user_api_keys_post(expiry="1h30m", perms="all")
check(d.token_hash == token_hash(d.token), "a perms=all key can create a key")

status, err = error_of(lambda: api(b.token).user_api_keys_get())
check(status == 403 and err["reason"] == "ERR_NOT_AUTHORIZED",
      "a perms=upload key cannot use the key API (403 ERR_NOT_AUTHORIZED)")

# --- stats and export -----------------------------------------------------------------------
for name, client in (("JWT", session), ("key", by_key)):
    stats = as_doc(client.user_stats_get())
    check(stats["keys"]["active"] >= 4 and stats["keys"]["total"] == stats["keys"]["active"],
          f"user_stats_get ({name}) counts the user's keys")
    check("last_24h" in stats["verifications"], f"user_stats_get ({name}) reports verifications")

    export = as_doc(client.user_export_get())
    check(export["user"]["email"] == EMAIL, f"user_export_get ({name}) carries the profile")
    exported = {k["id"] for k in export["api_keys"]}
    check(len(exported) >= 4, f"user_export_get ({name}) carries every key")
    text = json.dumps(export)
    check(a.token not in text and a.token_hash not in text and "argon2" not in text,
          f"user_export_get ({name}) carries no secret, digest or password hash")
    check(any(e["action"] == "api_key.create" for e in export["audit_log"]),
          f"user_export_get ({name}) carries the audit trail")

# --- delete by hash and by key ----------------------------------------------------------------
gone = as_doc(session.user_api_keys_key_or_hash_delete(c.token_hash))
check(gone["revoked"] is True, "user_api_keys_key_or_hash_delete by tokenHash revokes")
gone = as_doc(by_key.user_api_keys_key_or_hash_delete(d.token))
check(gone["tokenHash"] == d.token_hash, "user_api_keys_key_or_hash_delete by plaintext revokes")
left = hashes(session.user_api_keys_get())
check(c.token_hash not in left and d.token_hash not in left, "revoked keys are no longer listed")

status, err = error_of(lambda: session.user_api_keys_key_or_hash_delete(c.token_hash))
check(status == 404 and err["reason"] == "ERR_RECORD_NOT_FOUND", "deleting twice is a 404")

# Another user's key is never touched, by hash or by plaintext.
theirs = other.user_api_keys_post(perms="all")
for ref in (theirs.token_hash, theirs.token):
    status, _ = error_of(lambda: session.user_api_keys_key_or_hash_delete(ref))
    check(status == 404, "another user's key is a 404")
check(theirs.token_hash in hashes(other.user_api_keys_get()), "another user's key survives")
check(theirs.token_hash not in hashes(session.user_api_keys_get()), "another user's key is not listed")

# A revoked key stops authenticating.
session.user_api_keys_key_or_hash_delete(a.token)
status, err = error_of(lambda: by_key.user_api_keys_get())
check(status == 401 and err["reason"] == "ERR_INVALID_TOKEN", "a revoked key stops authenticating")

# --- bad input and bad auth ------------------------------------------------------------------
status, err = error_of(lambda: session.user_api_keys_post(expiry="soon"))
check(status == 400 and err["reason"] == "ERR_INVALID_INPUT" and "300h" in err["details"],
      "an unparsable expiry is a 400 saying what is accepted")
status, err = error_of(lambda: session.user_api_keys_post(expiry="-5m"))
check(status == 400, "a negative expiry is a 400")
status, err = error_of(lambda: session.user_api_keys_post(perms="root"))
check(status == 400 and "perms" in err["details"], "unknown perms is a 400")
status, err = error_of(lambda: api(None).user_api_keys_get())
check(status == 401 and err["reason"] == "ERR_AUTH_MISSING", "no Authorization is ERR_AUTH_MISSING")
status, err = error_of(lambda: api("kw_not_a_real_key").user_stats_get())
check(status == 401 and err["reason"] == "ERR_INVALID_TOKEN", "an unknown token is ERR_INVALID_TOKEN")
check(err["code"] == 401, "the error code is the HTTP status")

print("estuary-client: all UserApi methods pass")
