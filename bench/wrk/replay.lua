-- wrk script for `make bench` (bench/common.py): replay pre-generated raw HTTP
-- requests, each exactly once, in file order (records end with a NUL byte),
-- so that every notification, checkout and payment start is a distinct one.
-- Once the file is used up the requests go to /bench-exhausted/ (a 404) and
-- are counted apart: the round then had too few requests prepared.
-- done() prints one line, "BENCH-WRK <json>", for bench/common.py to read.
local threads = {}
local pool = {}
local next_index = 1
local EXHAUSTED = "GET /bench-exhausted/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local start = 1
  while true do
    local stop = string.find(data, "\0", start, true)
    if not stop then break end
    pool[#pool + 1] = string.sub(data, start, stop - 1)
    start = stop + 1
  end
  sent, exhausted, ok, s4xx, s5xx = 0, 0, 0, 0, 0
end

function request()
  if next_index > #pool then
    exhausted = exhausted + 1
    return EXHAUSTED
  end
  local raw = pool[next_index]
  next_index = next_index + 1
  sent = sent + 1
  return raw
end

function response(status, headers, body)
  if status < 400 then
    ok = ok + 1
  elseif status < 500 then
    s4xx = s4xx + 1
  else
    s5xx = s5xx + 1
  end
end

function done(summary, latency, requests)
  local total = {sent = 0, exhausted = 0, ok = 0, s4xx = 0, s5xx = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + thread:get(name)
    end
  end
  io.write(string.format(
    'BENCH-WRK {"duration_us": %d, "requests": %d, "sent": %d, "exhausted": %d, "ok": %d, "s4xx": %d, '
      .. '"s5xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p99_us": %d}\n',
    summary.duration, summary.requests, total.sent, total.exhausted, total.ok, total.s4xx, total.s5xx,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
