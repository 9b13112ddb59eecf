-- Random single-range GETs of WINDOW bytes across a file of SIZE bytes (both from the environment).
local path = os.getenv("BENCH_PATH")
local size = tonumber(os.getenv("BENCH_SIZE"))
local window = tonumber(os.getenv("BENCH_WINDOW"))
math.randomseed(os.time())
request = function()
  local first = math.random(0, size - window)
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. first .. "-" .. (first + window - 1) })
end
