-- wrk script: POST /api/v1/keys/verify with a random key of the sample for every request.
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key).
local keys = {}
for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
  keys[#keys + 1] = line
end
local verifier = os.getenv("KEYWARD_VERIFIER")
local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = verifier }

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local key = keys[math.random(#keys)]
  return wrk.format("POST", nil, headers, '{"key":"' .. key .. '","scopes":["bench:read"]}')
end
