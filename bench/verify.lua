-- wrk script: POST /api/v1/keys/verify with a key of the sample for every request: a random one,
-- or with KEYWARD_KEY_ORDER=sequential the next one in order (the warm-up, so that a few seconds
-- touch every key once at least).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key).
local keys = {}
for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
  keys[#keys + 1] = line
end
local verifier = os.getenv("KEYWARD_VERIFIER")
local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = verifier }
local sequential = os.getenv("KEYWARD_KEY_ORDER") == "sequential"
local next_key = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

local function pick()
  if sequential then
    next_key = next_key % #keys + 1
    return keys[next_key]
  end
  return keys[math.random(#keys)]
end

function request()
  return wrk.format("POST", nil, headers, '{"key":"' .. pick() .. '","scopes":["bench:read"]}')
end
