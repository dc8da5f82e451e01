-- wrk script for the bench: POST JSON bodies read from files given after `--`,
-- rotated round-robin (one file: the same body every time), and a machine-readable
-- summary printed by done() on one line starting with WRK_JSON (latencies in microseconds).
local requests_ = {}
local n = 0

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for _, path in ipairs(args) do
    local f = assert(io.open(path, "rb"))
    requests_[#requests_ + 1] = wrk.format("POST", nil, nil, f:read("*a"))
    f:close()
  end
  assert(#requests_ > 0, "post.lua: pass at least one body file after --")
end

function request()
  n = n % #requests_ + 1
  return requests_[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  local pct = {}
  for _, q in ipairs({50, 90, 95, 99}) do
    pct[#pct + 1] = string.format('"p%d": %d', q, latency:percentile(q))
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "max": %d, "mean": %.1f, %s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, table.concat(pct, ", ")))
end
