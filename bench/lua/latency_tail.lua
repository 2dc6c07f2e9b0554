-- Prints how many requests took over 1 s and over 2 s: wrk --latency gives percentiles only.
-- The count is found by bisecting the percentile at which the latency crosses the limit.

local function over(latency, limit_us, total)
  if total == 0 or latency.max <= limit_us then
    return 0
  end
  local low, high = 0.0, 100.0
  for _ = 1, 50 do
    local middle = (low + high) / 2
    if latency:percentile(middle) > limit_us then
      high = middle
    else
      low = middle
    end
  end
  return math.max(1, math.floor((100.0 - high) / 100.0 * total))
end

function done(summary, latency, requests)
  local total = summary.requests
  io.write(string.format("over 1s: %d\n", over(latency, 1000000, total)))
  io.write(string.format("over 2s: %d\n", over(latency, 2000000, total)))
end
