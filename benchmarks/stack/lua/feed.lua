-- GET pages of the feed from random cursors, each page full (BENCH_PAGE events).
-- Environment: BENCH_KEY (orders:read), BENCH_LAST (the feed's last seq), BENCH_PAGE.
local key = os.getenv("BENCH_KEY")
local last = tonumber(os.getenv("BENCH_LAST"))
local page = tonumber(os.getenv("BENCH_PAGE"))

function init(args)
   math.randomseed(os.time() * 1000 + tid)
end

function request()
   local after = math.random(0, last - page)
   local target = string.format("/api/v1/feed?after=%d&limit=%d", after, page)
   return wrk.format("GET", target, {["Authorization"] = "Bearer " .. key})
end
