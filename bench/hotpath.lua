-- hotpath.lua -- GET /api/... over many distinct paths, deterministically.
--
-- Request i of the run (counted over all threads: thread t sends
-- i = t, t + T, t + 2T, ...) asks for
--
--     <BENCH_PATH_PREFIX><(i * 7919 + BENCH_PATH_OFFSET) mod BENCH_PATHS>/
--
-- 7919 is prime, so with BENCH_PATHS not a multiple of it the first
-- BENCH_PATHS requests of a run hit BENCH_PATHS distinct paths, in a
-- scattered order (no two neighbours share a hash bucket by accident).
--
-- Environment: BENCH_PATHS (default 100000), BENCH_PATH_PREFIX (default
-- /api/bench/), BENCH_PATH_OFFSET (default 0), BENCH_WRK_THREADS (set by
-- benchlib.wrk: the -t value).
local src = debug.getinfo(1, "S").source
dofile((src:match("^@(.*/)") or "./") .. "common.lua")

local paths = bench.env_int("BENCH_PATHS", 100000)
local offset = bench.env_int("BENCH_PATH_OFFSET", 0)
local prefix = os.getenv("BENCH_PATH_PREFIX") or "/api/bench/"
local nthreads = bench.env_int("BENCH_WRK_THREADS", 1)
local i = 0

function init(args)
   i = bench_tid or 0
end

function request()
   local n = (i * 7919 + offset) % paths
   i = i + nthreads
   return wrk.format("GET", prefix .. n .. "/")
end
