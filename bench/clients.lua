-- wrk script: each request comes from a random client address (sent as X-Forwarded-For from
-- the trusted loopback load generator), over a realistic mix of paths.
math.randomseed(42)
local paths = { "/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items?page=2", "/en/profile/" }
request = function()
  local ip = "10." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", paths[math.random(1, #paths)], { ["X-Forwarded-For"] = ip, ["Accept"] = "text/html" })
end
