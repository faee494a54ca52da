"""README's tour through the Python client that openapi-python-client generated from the document
a live keyward serves (crates/server/tests/api/clients.rs generates it as `keyward_client` and
runs this): the admin signs in, makes a tenant and a member; the member signs in, creates a key,
lists it, verifies it, rotates it with a grace period, and revokes it. Every step's answer is
asserted. Environment: KEYWARD_URL, KEYWARD_ADMIN_EMAIL, KEYWARD_ADMIN_PASSWORD.
"""

import os

from keyward_client import AuthenticatedClient, Client
from keyward_client.api.api_keys import create_api_key, list_api_keys, revoke_api_key, rotate_api_key
from keyward_client.api.auth import login
from keyward_client.api.tenants import create_tenant
from keyward_client.api.users import create_user, get_current_user
from keyward_client.api.verify import verify_key
from keyward_client.models import (
    ApiKey,
    ApiKeyCreated,
    CreateApiKeyInput,
    CreateTenantInput,
    CreateUserInput,
    CreateUserInputRoleType1,
    LoginInput,
    LoginResponse,
    RotateApiKeyInput,
    TenantView,
    UserView,
    VerifyKeyInput,
    VerifyKeyResponse,
)

BASE = os.environ["KEYWARD_URL"]


def signed_in(email, password):
    anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)
    answer = login.sync_detailed(client=anonymous, body=LoginInput(email=email, password=password))
    assert answer.status_code == 200, (answer.status_code, answer.content)
    assert isinstance(answer.parsed, LoginResponse) and answer.parsed.token_type == "Bearer", answer.parsed
    return AuthenticatedClient(base_url=BASE, token=answer.parsed.access_token, raise_on_unexpected_status=True)


def verify(verifier, key, scopes):
    answer = verify_key.sync_detailed(client=verifier, body=VerifyKeyInput(key=key, scopes=scopes))
    assert answer.status_code == 200, (answer.status_code, answer.content)
    assert isinstance(answer.parsed, VerifyKeyResponse), answer.parsed
    return answer.parsed


admin = signed_in(os.environ["KEYWARD_ADMIN_EMAIL"], os.environ["KEYWARD_ADMIN_PASSWORD"])
tenant = create_tenant.sync_detailed(client=admin, body=CreateTenantInput(name="Acme", slug="acme"))
assert tenant.status_code == 201 and isinstance(tenant.parsed, TenantView), (tenant.status_code, tenant.content)
ann = create_user.sync_detailed(
    client=admin,
    body=CreateUserInput(
        email="ann@example.com",
        password="a long member password",
        role=CreateUserInputRoleType1.MEMBER,
        tenant_id=tenant.parsed.id,
    ),
)
assert ann.status_code == 201 and isinstance(ann.parsed, UserView), (ann.status_code, ann.content)
assert ann.parsed.tenant_id == tenant.parsed.id

member = signed_in("ann@example.com", "a long member password")
created = create_api_key.sync_detailed(
    client=member,
    body=CreateApiKeyInput(name="ci", scopes=["keyward:read", "keyward:verify", "orders:read"], expires_in="90d"),
)
assert created.status_code == 201 and isinstance(created.parsed, ApiKeyCreated), (created.status_code, created.content)
key = created.parsed
assert key.key.startswith(key.prefix), key

listed = list_api_keys.sync_detailed(client=member)
assert listed.status_code == 200, (listed.status_code, listed.content)
assert [k.id for k in listed.parsed] == [key.id], listed.parsed
assert all(isinstance(k, ApiKey) for k in listed.parsed)
assert key.key not in listed.content.decode(), "a listing never holds the plaintext"

# The key acts as its owner, sent as X-API-Key.
by_key = AuthenticatedClient(base_url=BASE, token=key.key, auth_header_name="X-API-Key", prefix="", raise_on_unexpected_status=True)
me = get_current_user.sync_detailed(client=by_key)
assert me.status_code == 200 and me.parsed.email == "ann@example.com", (me.status_code, me.content)

valid = verify(by_key, key.key, ["orders:read"])
assert valid.valid and valid.code == "VALID" and valid.key_id == key.id, valid
lacking = verify(by_key, key.key, ["orders:write"])
assert not lacking.valid and lacking.code == "INSUFFICIENT_SCOPES", lacking

rotated = rotate_api_key.sync_detailed(key.id, client=member, body=RotateApiKeyInput(grace_period="10m"))
assert rotated.status_code == 201 and isinstance(rotated.parsed, ApiKeyCreated), (rotated.status_code, rotated.content)
successor = rotated.parsed
assert successor.id != key.id and successor.key != key.key
assert verify(by_key, key.key, ["orders:read"]).code == "VALID", "the old key works during its grace period"
assert verify(by_key, successor.key, ["orders:read"]).code == "VALID"

revoked = revoke_api_key.sync_detailed(key.id, client=member)
assert revoked.status_code == 204, (revoked.status_code, revoked.content)
by_successor = AuthenticatedClient(base_url=BASE, token=successor.key, auth_header_name="X-API-Key", prefix="", raise_on_unexpected_status=True)
gone = verify(by_successor, key.key, ["orders:read"])
assert not gone.valid and gone.code == "REVOKED", gone
print("python client tour: ok")
