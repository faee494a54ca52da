-- wrk script: POST /api/v1/keys/verify with a key of the sample for every request: a random one,
-- or with KEYWARD_KEY_ORDER=sequential the next one in order (the warm-up, so that a few seconds
-- touch every key once at least).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key).
-- Every request is formatted once, at load: formatting one per request cost wrk a third more CPU
-- per verify, and wrk shares the machine's cores with the server it measures.
local verifier = os.getenv("KEYWARD_VERIFIER")
local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = verifier }
local requests = {}
for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
  requests[#requests + 1] = wrk.format("POST", nil, headers, '{"key":"' .. line .. '","scopes":["bench:read"]}')
end
local count = #requests
local sequential = os.getenv("KEYWARD_KEY_ORDER") == "sequential"
local next_request = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  if sequential then
    next_request = next_request % count + 1
    return requests[next_request]
  end
  return requests[math.random(count)]
end
