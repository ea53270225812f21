-- post.lua: wrk script of the benchmark. POSTs one file as the body of every request, with the
-- headers a GitHub push delivery carries, and prints one machine-readable line at the end:
--   WRK {"requests":N,"duration_us":N,"non2xx":N,...,"p50_us":N,"p99_us":N,...}
-- Usage: wrk ... -s post.lua URL -- BODY_FILE
-- With WRK_COUNT_STATUS=1 it also counts answers by status (2xx, 503, other). That makes wrk
-- copy every answer into Lua, which costs it CPU, so run.sh only asks for it under overload.

local body_file

function init(args)
   body_file = args[1]
   local f = assert(io.open(body_file, "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"
   wrk.headers["X-GitHub-Event"] = "push"
   wrk.headers["X-GitHub-Delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
end

c2xx, c503, cother = 0, 0, 0

if os.getenv("WRK_COUNT_STATUS") == "1" then
   function response(status, headers, body)
      if status >= 200 and status < 300 then
         c2xx = c2xx + 1
      elseif status == 503 then
         c503 = c503 + 1
      else
         cother = cother + 1
      end
   end
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- utime + stime of wrk itself, in clock ticks, from /proc/self/stat (fields 14 and 15; the
-- command name in field 2 is in parentheses and holds no ')' for wrk).
local function self_cpu_ticks()
   local f = io.open("/proc/self/stat", "r")
   if not f then
      return -1
   end
   local s = f:read("*a")
   f:close()
   local rest = s:match("%) (.*)")
   local fields = {}
   for w in rest:gmatch("%S+") do
      table.insert(fields, w)
   end
   -- rest starts at field 3 (state): utime is field 14, stime field 15.
   return tonumber(fields[12]) + tonumber(fields[13])
end

function done(summary, latency, requests)
   local n2xx, n503, nother = 0, 0, 0
   for _, t in ipairs(threads) do
      n2xx = n2xx + t:get("c2xx")
      n503 = n503 + t:get("c503")
      nother = nother + t:get("cother")
   end
   local e = summary.errors
   io.write(string.format(
      'WRK {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,' ..
      '"counted":%s,"c2xx":%d,"c503":%d,"cother":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"cpu_ticks":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.status,
      e.connect, e.read, e.write, e.timeout,
      tostring(os.getenv("WRK_COUNT_STATUS") == "1"), n2xx, n503, nother,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      self_cpu_ticks()))
end
