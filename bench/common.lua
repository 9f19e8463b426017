-- common.lua -- loaded by every wrk script of bench/ (not run by itself).
--
-- done() prints one machine-readable line that bench/run and bench/soak
-- read instead of wrk's human table:
--
--   BENCH-JSON {"requests": N, "duration_us": N, "bytes": N,
--               "errors": {...}, "latency_us": {...}}
--
-- requests is what wrk completed (responses it read in full); requests
-- still in flight when wrk stops are not in it, although nginx may have
-- passed them to the app (bench/README.md, "Counting").

bench = {}

-- The directory of the script that loaded this file (with the slash).
function bench.dir()
   local src = debug.getinfo(2, "S").source
   return src:match("^@(.*/)") or "./"
end

-- Integer environment knob with a default.
function bench.env_int(name, default)
   local v = tonumber(os.getenv(name) or "")
   if v == nil then return default end
   return math.floor(v)
end

-- Threads get distinct ids from setup() (run in the main Lua state).
local next_tid = 0
function setup(thread)
   thread:set("bench_tid", next_tid)
   next_tid = next_tid + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
      '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
