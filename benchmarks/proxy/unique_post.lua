-- wrk script: POST with a unique body and Idempotency-Key per request.
-- wrk -s unique_post.lua URL -- <run id> <body template file> <"Header: value">...
-- In the template, {key} becomes "<run id>-<thread>-<n>" and {amount} an amount in minor units.
-- The done() hook prints one JSON line (prefixed "WRK_JSON ") for bench_proxy.py to read.

local threads = {}
local next_id = 0

function setup(thread)
    next_id = next_id + 1
    thread:set("tid", next_id)
    table.insert(threads, thread)
end

local run_id, template, path
local counter = 0

function init(args)
    run_id = args[1]
    local f = assert(io.open(args[2], "rb"))
    template = f:read("*a")
    f:close()
    wrk.method = "POST"
    for i = 3, #args do
        local name, value = args[i]:match("^([^:]+):%s*(.*)$")
        wrk.headers[name] = value
    end
    path = wrk.path
end

function request()
    counter = counter + 1
    local key = run_id .. "-" .. tid .. "-" .. counter
    local body = template:gsub("{key}", key):gsub("{amount}", tostring(1000 + counter % 5000))
    wrk.headers["Idempotency-Key"] = key
    return wrk.format("POST", path, nil, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
        '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
        '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.mean, latency.max))
end
