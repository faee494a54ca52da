-- wrk script: POST /api/v1/keys/verify walking the sample in order, so that a warm-up of a few
-- seconds touches every key once at least (the random order of verify.lua would leave some cold).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key).
local keys = {}
for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
  keys[#keys + 1] = line
end
local verifier = os.getenv("KEYWARD_VERIFIER")
local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = verifier }
local next_key = 0

function request()
  next_key = next_key % #keys + 1
  return wrk.format("POST", nil, headers, '{"key":"' .. keys[next_key] .. '","scopes":["bench:read"]}')
end
