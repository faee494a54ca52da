-- wrk script: GET /api/v1/auth/forward as a proxy would send it, with a random key of the
-- sample in X-API-Key and the proxy's verifier credential in X-Keyward-Verifier.
-- Every request is formatted once, in init (as in verify.lua).
local requests = {}
local count = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local verifier = os.getenv("KEYWARD_VERIFIER")
  for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", nil, { ["X-Keyward-Verifier"] = verifier, ["X-API-Key"] = line })
  end
  count = #requests
end

function request()
  return requests[math.random(count)]
end
