-- wrk script: every request from a never-seen client address (an attacker rotating IPs),
-- sent as X-Forwarded-For by the trusted loopback load generator.
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
end
request = function()
  counter = counter + 1
  local n = counter * 4 + tid
  local ip = "10." .. (n >> 16 & 255) .. "." .. (n >> 8 & 255) .. "." .. (n & 255)
  if n >= 16777216 then ip = "11." .. (n >> 16 & 255) .. "." .. (n >> 8 & 255) .. "." .. (n & 255) end
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = ip })
end
