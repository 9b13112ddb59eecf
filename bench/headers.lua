-- GETs of BENCH_PATH with optional Accept-Encoding and If-None-Match from the environment.
local path = os.getenv("BENCH_PATH")
local headers = {}
if os.getenv("BENCH_AE") ~= nil and os.getenv("BENCH_AE") ~= "" then headers["Accept-Encoding"] = os.getenv("BENCH_AE") end
if os.getenv("BENCH_INM") ~= nil and os.getenv("BENCH_INM") ~= "" then headers["If-None-Match"] = os.getenv("BENCH_INM") end
request = function()
  return wrk.format("GET", path, headers)
end
