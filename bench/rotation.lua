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
  local ip = "10." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
  if n >= 16777216 then ip = "11." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256) end
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = ip })
end
