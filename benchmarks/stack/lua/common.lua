-- Shared by every wrk script of the stack benchmark: a thread number for unique ids, and
-- one JSON line with the summary (BENCH_JSON ...) that benchmarks/stack/wrk.py reads.
local threads = {}
local next_tid = 0

function setup(thread)
   next_tid = next_tid + 1
   thread:set("tid", next_tid)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local e = summary.errors
   local q = {}
   for _, p in ipairs({50, 90, 95, 99}) do
      q[#q + 1] = string.format('"p%d_ms":%.3f', p, latency:percentile(p) / 1000)
   end
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_s":%.6f,"bytes":%d,"errors_connect":%d,' ..
      '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
      '"max_ms":%.3f,"mean_ms":%.3f,%s}\n',
      summary.requests, summary.duration / 1e6, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency.max / 1000, latency.mean / 1000, table.concat(q, ",")))
end
