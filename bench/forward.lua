-- wrk script: GET /api/v1/auth/forward as a proxy would send it, with a random key of the
-- sample in X-API-Key and the proxy's verifier credential in X-Keyward-Verifier.
local keys = {}
for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
  keys[#keys + 1] = line
end
local verifier = os.getenv("KEYWARD_VERIFIER")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local key = keys[math.random(#keys)]
  return wrk.format("GET", nil, { ["X-Keyward-Verifier"] = verifier, ["X-API-Key"] = key })
end
