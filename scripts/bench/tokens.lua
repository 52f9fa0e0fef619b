-- wrk script: each request carries one of the tokens listed in the file
-- named by the TOKENS_FILE environment variable, round robin per thread.
local tokens = {}
local next_index = 1

function init(args)
  local file = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
  for line in file:lines() do
    if #line > 0 then table.insert(tokens, line) end
  end
  file:close()
end

function request()
  local token = tokens[next_index]
  next_index = next_index % #tokens + 1
  return wrk.format("GET", "/auth/session", { ["Authorization"] = "Bearer " .. token })
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.0f p50_us=%d p99_us=%d\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
