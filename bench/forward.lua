-- wrk script: GET with a random key of the sample in a header, as a client (or a proxy) sends it:
-- forward auth (the key in X-API-Key, the proxy's verifier in X-Keyward-Verifier), and the
-- peers' rows (bench/peers.sh: the key in the header the peer reads, no verifier).
-- Env: KEYWARD_KEYS_FILE (one key per line); KEYWARD_KEY_HEADER (default X-API-Key);
-- KEYWARD_VERIFIER (sent in X-Keyward-Verifier when set and not empty).
-- Every request is formatted once, in init (as in verify.lua). The key's header is the last one,
-- so that requests differ in their last 8 bytes, which OpenResty's LuaJIT always hashes (see
-- verify.lua).
local requests = {}
local count = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local verifier = os.getenv("KEYWARD_VERIFIER") or ""
  local header = os.getenv("KEYWARD_KEY_HEADER") or "X-API-Key"
  local headers = {}
  if verifier ~= "" then
    headers["X-Keyward-Verifier"] = verifier
  end
  -- The request line and the other headers, without the blank line that ends the head.
  local whole = wrk.format("GET", nil, headers)
  local head = whole:sub(1, #whole - 2) .. header .. ": "
  for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
    count = count + 1
    requests[count] = head .. line .. "\r\n\r\n"
  end
end

function request()
  return requests[math.random(count)]
end
