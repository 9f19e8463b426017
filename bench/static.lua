-- static.lua -- wrk's static request (the URL given on the command line,
-- built once, no per-request Lua) plus the BENCH-JSON summary. Used for the
-- ceiling and for /stats/.
local src = debug.getinfo(1, "S").source
dofile((src:match("^@(.*/)") or "./") .. "common.lua")
