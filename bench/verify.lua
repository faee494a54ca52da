-- wrk script: POST /api/v1/keys/verify with a key of the sample for every request: a random one,
-- or with KEYWARD_KEY_ORDER=sequential the next one in order (the warm-up, so that a few seconds
-- touch every key once at least).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key),
-- KEYWARD_VERIFY_EXTRA (the body's members after the key; default `"scopes":["bench:read"]`).
-- Every request is formatted once, in init (where wrk has set the Host header), not per request:
-- formatting per request cost wrk a third more CPU per verify, on the cores it shares with the
-- server it measures.
local requests = {}
local count = 0
local sequential = os.getenv("KEYWARD_KEY_ORDER") == "sequential"
local next_request = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = os.getenv("KEYWARD_VERIFIER") }
  local extra = os.getenv("KEYWARD_VERIFY_EXTRA") or '"scopes":["bench:read"]'
  for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
    requests[#requests + 1] = wrk.format("POST", nil, headers, '{"key":"' .. line .. '",' .. extra .. '}')
  end
  count = #requests
end

function request()
  if sequential then
    next_request = next_request % count + 1
    return requests[next_request]
  end
  return requests[math.random(count)]
end
