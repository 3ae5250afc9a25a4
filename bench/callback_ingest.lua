-- wrk script of bench/callback_ingest.py: walks through pre-built, signed callbacks.
--
-- The requests file holds one request a line: "<path>\t<body>" (the bodies have no tab
-- or newline). Each wrk thread sends the lines whose number modulo the thread count is
-- its own, each once, in order, then stops; with WRAP=1 it starts over instead (the bare
-- endpoint, which records nothing, needs more requests than a file holds).
--
-- Environment: REQUESTS (the file), THREADS (wrk's -t), WRAP (0/1), REPORT (a file the
-- summary is written to as "key value" lines: sent (in all, and per thread as sent_tN),
-- answered, non-200 and latency percentiles in microseconds). There is no response()
-- function: with one, wrk parses every answer's headers and body in Lua, which would slow
-- the load generator (most of all on the bare run); its summary counts both already
-- (`requests`, and `errors.status`: answers with a status of 400 or more).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local lines = {}
local next_line = 1
local wrap = false
-- Globals: done() reads them from each thread (thread:get).
sent = 0
exhausted = 0
local headers = { ["Content-Type"] = "text/xml" }

function init(args)
  local nthreads = tonumber(os.getenv("THREADS") or "1")
  wrap = os.getenv("WRAP") == "1"
  local n = 0
  for line in io.lines(os.getenv("REQUESTS")) do
    if n % nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      table.insert(lines, wrk.format("POST", string.sub(line, 1, tab - 1), headers,
                                     string.sub(line, tab + 1)))
    end
    n = n + 1
  end
end

function request()
  if next_line > #lines then
    if not wrap then
      -- Nothing left to send: stop this thread (wrk still runs to the end of -d, so the
      -- run's rate is then wrong: the bench reports it). wrk still wants a request; this
      -- health check may go out before the thread stops.
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
    end
    next_line = 1
  end
  local req = lines[next_line]
  next_line = next_line + 1
  sent = sent + 1
  return req
end

function done(summary, latency, requests)
  local sent_total = 0
  local out = io.open(os.getenv("REPORT"), "w")
  for _, thread in ipairs(threads) do
    out:write(string.format("sent_t%d %d\n", thread:get("tid"), thread:get("sent")))
    sent_total = sent_total + thread:get("sent")
  end
  local exhausted_total = 0
  for _, thread in ipairs(threads) do
    exhausted_total = exhausted_total + thread:get("exhausted")
  end
  out:write(string.format("exhausted %d\n", exhausted_total))
  out:write(string.format("sent %d\n", sent_total))
  out:write(string.format("answered %d\n", summary.requests))
  out:write(string.format("non200 %d\n", summary.errors.status))
  out:write(string.format("duration_us %d\n", summary.duration))
  out:write(string.format("socket_errors %d\n",
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    out:write(string.format("p%s_us %d\n", p, latency:percentile(p)))
  end
  out:write(string.format("max_us %d\n", latency.max))
  out:close()
end
