-- wrk script: requests from a pool of client addresses (sent as X-Forwarded-For by the trusted
-- loopback load generator) over a realistic mix of paths.
--   wrk ... -s bench/clients.lua URL -- POOL
-- POOL (default 100000): distinct clients, picked at random (returning visitors); 0: every
-- request from an address never seen before (an attacker rotating addresses).
--   wrk -t2 ... -s bench/clients.lua URL -- POOL sweep [THREADS] [FROM]
-- walks the pool in order instead, from the FROM-th address (default 0), the THREADS threads
-- (default 2, as -t2) taking turns: a warm-up that has every client of the pool seen, so that
-- measured rounds are of returning visitors (drawn at random, 100,000 addresses take ~1.2
-- million requests before each has been seen).
local paths = { "/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/en/profile/" }
local pool = 100000
local sweep = false
local step = 2
local from = 0
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  pool = tonumber(args[1]) or 100000
  sweep = args[2] == "sweep"
  step = tonumber(args[3]) or 2
  from = tonumber(args[4]) or 0
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(42 + tid)
end
request = function()
  local n
  if sweep and pool > 0 then
    n = (from + counter * step + tid) % pool + 1
    counter = counter + 1
  elseif pool > 0 then
    n = math.random(1, pool)
  else
    counter = counter + 1
    n = counter * 8 + tid
  end
  local ip = "10." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
  return wrk.format("GET", paths[math.random(1, #paths)], { ["X-Forwarded-For"] = ip, ["Accept"] = "text/html" })
end
