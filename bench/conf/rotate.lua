-- wrk: every request is another of DG_USERS users, from another client
-- address (X-Real-IP, from the trusted 127.0.0.1), as the agents are.
local users = tonumber(os.getenv("DG_USERS") or "1000")
local base = tonumber(os.getenv("DG_USER_BASE") or "100000")
local path = os.getenv("DG_PATH") or "/finesse/api/User/"
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
local reqs = {}
-- made in init: only then does wrk know the Host header
init = function(args)
  for i = 1, users do
    local id = tostring(base + i)
    local ip = "10.9." .. math.floor(i / 250) .. "." .. (i % 250 + 1)
    reqs[i] = wrk.format("GET", path .. id, {
      ["Authorization"] = "Basic " .. b64(id .. ":pw-" .. id),
      ["X-Real-IP"] = ip,
    })
  end
end
local n = 0
request = function()
  n = n % users + 1
  return reqs[n]
end
