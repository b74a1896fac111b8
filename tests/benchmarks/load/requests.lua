-- wrk script for the capacity measurement: GETs the paths listed one per line in the file
-- CAPACITY_PATHS, in turn (each thread from its own starting point), with the Accept header
-- CAPACITY_ACCEPT and, when set, the Authorization header CAPACITY_AUTHORIZATION; writes
-- wrk's figures as JSON to CAPACITY_OUT when done.

local paths = {}
for line in io.lines(os.getenv("CAPACITY_PATHS")) do
  paths[#paths + 1] = line
end

local headers = {
  ["Accept"] = os.getenv("CAPACITY_ACCEPT"),
  ["Accept-Encoding"] = "gzip, deflate, br",
}
local authorization = os.getenv("CAPACITY_AUTHORIZATION")
if authorization and authorization ~= "" then
  headers["Authorization"] = authorization
end

local counter = 0

function init(args)
  counter = math.random(#paths)
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter], headers)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("CAPACITY_OUT"), "w")
  local errors = summary.errors
  out:write(string.format(
    '{"requests": %d, "microseconds": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(95), latency:percentile(99)))
  out:close()
end
