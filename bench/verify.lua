-- wrk script: POST /api/v1/keys/verify with a key of the sample for every request: a random one,
-- or with KEYWARD_KEY_ORDER=sequential the next one in order (the warm-up, so that a few seconds
-- touch every key once at least).
-- Env: KEYWARD_KEYS_FILE (one plaintext key per line), KEYWARD_VERIFIER (a keyward:verify key),
-- KEYWARD_VERIFY_EXTRA (the body's members after the key; default `"scopes":["bench:read"]`).
-- Every request is formatted once, in init (where wrk has set the Host header), not per request:
-- formatting per request cost wrk a third more CPU per verify, on the cores it shares with the
-- server it measures.
-- Above PREFORMAT_MAX keys (the cold-keys row's 1,000,000), requests are not preformatted:
-- LuaJIT (wrk's) hashes a long string from four sampled places (its first and last 4 bytes, and
-- 4 at a quarter and at half of its length), where these requests differ in none, so a million
-- of them collide in its string table and loading them never ends. Then each request is the
-- same head (request line and headers) and its own body, joined per request, with white space
-- after the JSON so that the request's middle falls in the key (else every request joined
-- collides with the last ones, and wrk, not keyward, sets the pace). All keys of a file have one
-- length, so one Content-Length holds.
local PREFORMAT_MAX = 200000
local requests = {}
local keys = {}
local head, extra
local padding = ""
local count = 0
local sequential = os.getenv("KEYWARD_KEY_ORDER") == "sequential"
local next_request = 0

local function body(key)
  return '{"key":"' .. key .. '",' .. extra .. '}'
end

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = os.getenv("KEYWARD_VERIFIER") }
  extra = os.getenv("KEYWARD_VERIFY_EXTRA") or '"scopes":["bench:read"]'
  for line in io.lines(os.getenv("KEYWARD_KEYS_FILE")) do
    count = count + 1
    keys[count] = line
  end
  if count <= PREFORMAT_MAX then
    for i = 1, count do
      requests[i] = wrk.format("POST", nil, headers, body(keys[i]))
    end
  else
    local sample = body(keys[1])
    local key_at = #'{"key":"'
    local pad = ""
    while true do
      local whole = wrk.format("POST", nil, headers, sample .. pad)
      head = whole:sub(1, #whole - #sample - #pad)
      local middle = math.floor(#whole / 2) - 2 - #head
      if middle >= key_at + 8 and middle + 4 <= key_at + #keys[1] then
        break
      end
      pad = pad .. " "
    end
    padding = pad
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
  return requests[i] or (head .. body(keys[i]) .. padding)
end
