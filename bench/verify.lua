-- wrk script: POST /api/v1/keys/verify with a key of the sample for every request: a random one,
-- or with KEYWARD_KEY_ORDER=sequential the next one in order (the warm-up, so that a few seconds
-- touch every key once at least).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key),
-- KEYWARD_VERIFY_EXTRA (the body's members before the key; default `"scopes":["bench:read"]`).
-- Every request is formatted once, in init (where wrk has set the Host header), not per request:
-- formatting per request cost wrk a third more CPU per verify, on the cores it shares with the
-- server it measures. The key is the body's last member, so that a request's last 8 bytes differ
-- from key to key: OpenResty's LuaJIT (libluajit2, which bench/run.sh installs for wrk) hashes a
-- string of 128 bytes or more from 8-byte samples at random places plus its first and last 8
-- bytes; with the key in the middle, a million requests differing in no sampled place collide in
-- its string table, and loading them took minutes (100,000: 96 s; now 1,000,000: about 2 s).
-- All keys of a file have one length, so one head (request line, headers, Content-Length) holds.
local requests = {}
local count = 0
local sequential = os.getenv("KEYWARD_KEY_ORDER") == "sequential"
local next_request = 0

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = os.getenv("KEYWARD_VERIFIER") }
  local extra = os.getenv("KEYWARD_VERIFY_EXTRA") or '"scopes":["bench:read"]'
  local function body(key)
    return "{" .. extra .. ',"key":"' .. key .. '"}'
  end
  local head
  for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
    if not head then
      local sample = body(line)
      local whole = wrk.format("POST", nil, headers, sample)
      head = whole:sub(1, #whole - #sample)
    end
    count = count + 1
    requests[count] = head .. body(line)
  end
end

function request()
  local i
  if sequential then
    next_request = next_request % count + 1
    i = next_request
  else
    i = math.random(count)
  end
  return requests[i]
end
