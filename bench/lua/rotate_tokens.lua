-- Sends a different valid access token on every request, so the gateway cannot answer from its
-- verified-token cache and verifies a signature each time.
-- Arguments (after `--`): the file with one token per line, and the number of wrk threads.
-- Each thread takes its own slice of the file (every n-th token), so no two threads send the
-- same token, and cycles through it; requests are formatted once, in init.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local threads = tonumber(args[2]) or 1
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  requests = {}
  local line_number = 0
  for token in io.lines(args[1]) do
    if line_number % threads == id then
      headers["Authorization"] = "Bearer " .. token
      requests[#requests + 1] = wrk.format(nil, nil, headers)
    end
    line_number = line_number + 1
  end
  position = 0
end

function request()
  position = position % #requests + 1
  return requests[position]
end
