// README's tour through a TypeScript client: types from openapi-typescript, generated from the
// document a live keyward serves, and openapi-fetch (crates/server/tests/api/clients.rs generates
// `schema.d.ts` beside this file, type-checks it with `tsc --strict` and runs it with Node). The
// admin signs in, makes a tenant and a member; the member signs in, creates a key, lists it,
// verifies it, rotates it with a grace period, and revokes it. Every step's answer is asserted.
// Environment: KEYWARD_URL, KEYWARD_ADMIN_EMAIL, KEYWARD_ADMIN_PASSWORD.
import assert from "node:assert/strict";
import process from "node:process";
import createClient from "openapi-fetch";
import type { paths, components } from "./schema.js";

type VerifyAnswer = components["schemas"]["VerifyKeyResponse"];

const baseUrl = process.env.KEYWARD_URL!;

async function signedIn(email: string, password: string) {
  const anonymous = createClient<paths>({ baseUrl });
  const { data, error, response } = await anonymous.POST("/api/v1/auth/login", {
    body: { email, password },
  });
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  assert.equal(data.token_type, "Bearer");
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${data.access_token}` } });
}

function byKey(key: string) {
  return createClient<paths>({ baseUrl, headers: { "X-API-Key": key } });
}

async function verify(verifier: ReturnType<typeof byKey>, key: string, scopes: string[]): Promise<VerifyAnswer> {
  const { data, error, response } = await verifier.POST("/api/v1/keys/verify", { body: { key, scopes } });
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  return data;
}

const admin = await signedIn(process.env.KEYWARD_ADMIN_EMAIL!, process.env.KEYWARD_ADMIN_PASSWORD!);
const tenant = await admin.POST("/api/v1/tenants", { body: { name: "Acme", slug: "acme" } });
assert.equal(tenant.response.status, 201, JSON.stringify(tenant.error));
assert.ok(tenant.data);
const ann = await admin.POST("/api/v1/users", {
  body: { email: "ann@example.com", password: "a long member password", role: "member", tenant_id: tenant.data.id },
});
assert.equal(ann.response.status, 201, JSON.stringify(ann.error));
assert.equal(ann.data?.tenant_id, tenant.data.id);

const member = await signedIn("ann@example.com", "a long member password");
const created = await member.POST("/api/v1/api-keys", {
  body: { name: "ci", scopes: ["keyward:read", "keyward:verify", "orders:read"], expires_in: "90d" },
});
assert.equal(created.response.status, 201, JSON.stringify(created.error));
const key = created.data!;
assert.ok(key.key.startsWith(key.prefix));

const listed = await member.GET("/api/v1/api-keys");
assert.equal(listed.response.status, 200, JSON.stringify(listed.error));
assert.deepEqual(listed.data?.map((k) => k.id), [key.id]);
assert.ok(!JSON.stringify(listed.data).includes(key.key), "a listing never holds the plaintext");

const asKey = byKey(key.key);
const me = await asKey.GET("/api/v1/users/me");
assert.equal(me.data?.email, "ann@example.com", JSON.stringify(me.error));

const valid = await verify(asKey, key.key, ["orders:read"]);
assert.equal(valid.valid, true);
assert.equal(valid.code, "VALID");
assert.equal(valid.key_id, key.id);
assert.equal((await verify(asKey, key.key, ["orders:write"])).code, "INSUFFICIENT_SCOPES");

const rotated = await member.POST("/api/v1/api-keys/{id}/rotate", {
  params: { path: { id: key.id } },
  body: { grace_period: "10m" },
});
assert.equal(rotated.response.status, 201, JSON.stringify(rotated.error));
const successor = rotated.data!;
assert.notEqual(successor.id, key.id);
assert.equal((await verify(asKey, key.key, ["orders:read"])).code, "VALID", "the old key works during its grace period");
assert.equal((await verify(asKey, successor.key, ["orders:read"])).code, "VALID");

const revoked = await member.DELETE("/api/v1/api-keys/{id}", { params: { path: { id: key.id } } });
assert.equal(revoked.response.status, 204, JSON.stringify(revoked.error));
const gone = await verify(byKey(successor.key), key.key, ["orders:read"]);
assert.equal(gone.valid, false);
assert.equal(gone.code, "REVOKED");
console.log("typescript client tour: ok");
