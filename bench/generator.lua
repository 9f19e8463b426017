-- generator.lua -- the same kind of URLs a test run sends (docs/API.md 4):
-- /api/ then 1 to 6 segments and a trailing slash, every segment one of a
-- pool of three distinct 6-character strings from [a-z0-9]; depth and
-- segments uniformly random. The pool comes from BENCH_SEED (same in every
-- thread); each thread draws its URLs from its own seeded sequence, so a
-- run is reproducible.
local src = debug.getinfo(1, "S").source
dofile((src:match("^@(.*/)") or "./") .. "common.lua")

local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
local seed = bench.env_int("BENCH_SEED", 20261128)
local pool = {}

local function draw_pool()
   math.randomseed(seed)
   pool = {}
   while #pool < 3 do
      local s = {}
      for j = 1, 6 do
         local k = math.random(1, #alphabet)
         s[j] = alphabet:sub(k, k)
      end
      local cand = table.concat(s)
      local dup = false
      for _, p in ipairs(pool) do dup = dup or p == cand end
      if not dup then pool[#pool + 1] = cand end
   end
end

function init(args)
   draw_pool()
   math.randomseed(seed + 1 + (bench_tid or 0))
end

function request()
   local parts = {"/api"}
   for d = 1, math.random(1, 6) do
      parts[d + 1] = pool[math.random(1, 3)]
   end
   return wrk.format("GET", table.concat(parts, "/") .. "/")
end
