-- wrk script for F1: each request tags another generated SessionM user
-- (engine sandbox --generated-users) with a new Idempotency-Key, as a Braze
-- webhook campaign would. USERS and AUTH come from the environment.
local counter = 0
local started = 0

-- setup runs in wrk's main Lua state, once per thread, before any runs:
-- each thread gets its number, and THREADS (wrk -t) spreads the users.
function setup(thread)
  thread:set("tid", started)
  started = started + 1
end

function init(args)
  users = tonumber(os.getenv("USERS") or "200000")
  threads = tonumber(os.getenv("THREADS") or "2")
  auth = os.getenv("AUTH")
  run = os.time()
end

request = function()
  counter = counter + 1
  local n = (counter * threads + tid) % users
  local path = string.format("/hooks/braze/tags/%08x-32f5-11ef-8000-%012x", n, n)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%d-%d-%d", run, tid, counter),
  }
  if auth then headers["Authorization"] = auth end
  return wrk.format("POST", path, headers, '{"tags":["bench"],"ttl":2592000}')
end
