-- wrk script: requests from a pool of client addresses (sent as X-Forwarded-For by the trusted
-- loopback load generator) over a realistic mix of paths.
--   wrk ... -s bench/clients.lua URL -- POOL
-- POOL (default 100000): distinct clients, picked at random (returning visitors); 0: every
-- request from an address never seen before (an attacker rotating addresses).
local paths = { "/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/en/profile/" }
local pool = 100000
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  pool = tonumber(args[1]) or 100000
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(42 + tid)
end
request = function()
  local n
  if pool > 0 then
    n = math.random(1, pool)
  else
    counter = counter + 1
    n = counter * 8 + tid
  end
  local ip = "10." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", paths[math.random(1, #paths)], { ["X-Forwarded-For"] = ip, ["Accept"] = "text/html" })
end
