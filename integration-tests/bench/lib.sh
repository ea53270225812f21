# shellcheck shell=bash disable=SC2034
# lib.sh: shared pieces of the benchmark scripts (run, profile): building, starting and stopping
# the processes pinned with taskset, reading CPU and memory from /proc. Sourced, never run.
# Every process started here is recorded in BENCH_PIDS and ended by bench_cleanup, by its pid.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
BUILD=${BENCH_BUILD:-$REPO/build-bench}
SERVER_CPU=${BENCH_SERVER_CPU:-0}   # the receiver: bridge or ceiling, every thread of it
LOAD_CPU=${BENCH_LOAD_CPU:-1}       # wrk, openloop, mock-kafka and the helpers
BROKERS=${BENCH_BROKERS:-3}
PY=/usr/bin/python3                 # Debian's, for python3-confluent-kafka
GITHUB_PAYLOAD=$REPO/bridge/testdata/payloads/github-push.json
SMALL_PAYLOAD=$REPO/bridge/testdata/payloads/small.json
FLOW_NS=bench
FLOW_ID=github_push
FLOW_KEY=bench-key
TOPIC=webhooks.$FLOW_NS.$FLOW_ID
URL_PATH=/api/v1/main/executions/webhook/$FLOW_NS/$FLOW_ID/$FLOW_KEY
CLK_TCK=$(getconf CLK_TCK)

BENCH_PIDS=()
BENCH_FIFO_FD=

bench_die()
{
    echo "bench: $*" >&2
    exit 1
}

# Ends every process we started, TERM first, KILL after 5 s. Safe to call twice.
bench_cleanup()
{
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        bench_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
}

bench_forget()
{
    local pid=$1 kept=() p
    for p in "${BENCH_PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    BENCH_PIDS=("${kept[@]}")
}

# bench_wait_gone PID SECONDS: 0 once PID has exited (and been reaped when it is our child).
bench_wait_gone()
{
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        # A child that exited stays a zombie until waited for.
        if [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; then
            wait "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    return 0
}

# bench_stop PID: TERM, up to 15 s (the bridge flushes its producer), then KILL.
bench_stop()
{
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    if ! bench_wait_gone "$pid" 15; then
        echo "bench: pid $pid ignored SIGTERM for 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        bench_wait_gone "$pid" 5 || true
    fi
    bench_forget "$pid"
}

# ==== Build ====

bench_build()
{
    local work=$1 with_meson=${2:-1}
    if ((with_meson)); then
        if [[ ! -f $BUILD/build.ninja ]]; then
            meson setup "$BUILD" "$REPO" --buildtype=release -Dtests=disabled >"$work/meson-setup.log" 2>&1 ||
                { cat "$work/meson-setup.log" >&2; bench_die "meson setup failed"; }
        fi
        meson compile -C "$BUILD" >"$work/meson-compile.log" 2>&1 ||
            { tail -30 "$work/meson-compile.log" >&2; bench_die "meson compile failed"; }
    fi
    local flags=(-O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror)
    # shellcheck disable=SC2046 # pkg-config's flags are words
    cc "${flags[@]}" -o "$work/ceiling" "$BENCH_DIR/ceiling.c" $(pkg-config --cflags --libs libevent) ||
        bench_die "cannot build ceiling.c"
    cc "${flags[@]}" -o "$work/openloop" "$BENCH_DIR/openloop.c" || bench_die "cannot build openloop.c"
    BRIDGE_BIN=$BUILD/bridge/webhook-bridge
    MOCK_BIN=$BUILD/integration-tests/mock-kafka
    CEILING_BIN=$work/ceiling
    OPENLOOP_BIN=$work/openloop
    [[ -x $BRIDGE_BIN && -x $MOCK_BIN ]] || bench_die "no webhook-bridge or mock-kafka in $BUILD"
}

# ==== Processes ====

# bench_start_mock DIR: sets MOCK_PID and BOOTSTRAP. Its stdin is a fifo we hold open: mock-kafka
# exits at EOF on stdin.
bench_start_mock()
{
    local dir=$1
    rm -f "$dir/mock.in"
    mkfifo "$dir/mock.in"
    taskset -c "$LOAD_CPU" "$MOCK_BIN" --brokers "$BROKERS" <"$dir/mock.in" >"$dir/mock.out" 2>"$dir/mock.err" &
    MOCK_PID=$!
    BENCH_PIDS+=("$MOCK_PID")
    exec {BENCH_FIFO_FD}>"$dir/mock.in"
    local deadline=$((SECONDS + 10))
    BOOTSTRAP=
    while [[ -z $BOOTSTRAP ]]; do
        BOOTSTRAP=$(sed -n 's/^BOOTSTRAP //p' "$dir/mock.out" 2>/dev/null | head -1)
        ((SECONDS < deadline)) || bench_die "mock-kafka printed no BOOTSTRAP line: $(cat "$dir/mock.err")"
        [[ -n $BOOTSTRAP ]] || sleep 0.05
    done
}

bench_stop_mock()
{
    if [[ -n $BENCH_FIFO_FD ]]; then
        exec {BENCH_FIFO_FD}>&-
        BENCH_FIFO_FD=
    fi
    bench_stop "$MOCK_PID"
}

# The flow: one webhook trigger with one condition on the body, true for both payloads.
bench_write_config()
{
    local dir=$1
    mkdir -p "$dir/flows"
    cat >"$dir/flows/github_push.yaml" <<EOF
id: $FLOW_ID
namespace: $FLOW_NS
tasks:
  - id: log_push
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.ref }}"
triggers:
  - id: github
    type: io.kestra.plugin.core.trigger.Webhook
    key: $FLOW_KEY
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ trigger.body.ref == 'refs/heads/main' }}"
EOF
    # No admin listener: its default port would collide between bridges (BENCH_SERVERS, other
    # runs), and bench_port_of must find the webhook port alone. Metrics are counted all the same.
    {
        printf 'listen: "127.0.0.1:0"\nadmin_listen: \"\"\nflows_dir: "flows"\nlog_level: "warn"\n'
        if [[ -n ${BENCH_LIMITS:-} ]]; then
            # BENCH_LIMITS="max_in_flight=64": keys of the config's limits section to try.
            printf 'limits:\n'
            local lim
            for lim in ${BENCH_LIMITS//,/ }; do
                printf '    %s: %s\n' "${lim%%=*}" "${lim#*=}"
            done
        fi
        printf 'kafka:\n    bootstrap_servers: ""\n'
        if [[ -n ${BENCH_STICKY_MS:-} ]]; then
            # BENCH_STICKY_MS=0: execution ids spread over every partition (no sticky groups).
            printf '    sticky_ms: %s\n' "$BENCH_STICKY_MS"
        fi
        if [[ -n ${BENCH_THREAD_NICE:-} ]]; then
            # BENCH_THREAD_NICE=0: librdkafka's broker threads at the loop's priority.
            printf '    thread_nice: %s\n' "$BENCH_THREAD_NICE"
        fi
        if [[ -z ${BENCH_KAFKA_PROPS:-} ]]; then
            printf '    properties: {}\n'
        else
            # BENCH_KAFKA_PROPS="linger.ms=5,batch.num.messages=100": librdkafka properties to try.
            printf '    properties:\n'
            local kv
            for kv in ${BENCH_KAFKA_PROPS//,/ }; do
                printf '        %s: "%s"\n' "${kv%%=*}" "${kv#*=}"
            done
        fi
    } >"$dir/bridge.yaml"
}

# The port a process of ours listens on (the bridge logs no "listening" line at log_level warn).
bench_port_of()
{
    local pid=$1 deadline=$((SECONDS + 10)) port=
    while [[ -z $port ]]; do
        port=$(ss -Htlnp 2>/dev/null | awk -v p="pid=$pid," 'index($0, p) {n = split($4, a, ":"); print a[n]; exit}')
        if [[ -z $port ]]; then
            kill -0 "$pid" 2>/dev/null || return 1
            ((SECONDS < deadline)) || return 1
            sleep 0.05
        fi
    done
    echo "$port"
}

# bench_start_server ceiling|bridge DIR: sets SRV_PID, SRV_PIDS and SRV_PORT. With BENCH_SERVERS=N
# (default 1) it starts N processes on one port (SO_REUSEPORT: the kernel spreads connections),
# the model for using several cores; SRV_PID is the first, SRV_PIDS all of them.
bench_start_server()
{
    local kind=$1 dir=$2 i listen=127.0.0.1:0
    SRV_PIDS=()
    for ((i = 0; i < ${BENCH_SERVERS:-1}; i++)); do
        if [[ $kind == ceiling ]]; then
            taskset -c "$SERVER_CPU" "$CEILING_BIN" --listen "$listen" 2>"$dir/server$i.log" &
        else
            bench_write_config "$dir"
            taskset -c "$SERVER_CPU" "$BRIDGE_BIN" --config "$dir/bridge.yaml" --listen "$listen" \
                --bootstrap-servers "$BOOTSTRAP" 2>"$dir/server$i.log" &
        fi
        SRV_PIDS+=("$!")
        BENCH_PIDS+=("$!")
        if ((i == 0)); then
            SRV_PID=$!
            SRV_PORT=$(bench_port_of "$SRV_PID") || bench_die "$kind did not listen: $(tail -5 "$dir/server0.log")"
            listen=127.0.0.1:$SRV_PORT
        else
            bench_port_of "$!" >/dev/null || bench_die "$kind $i did not listen: $(tail -5 "$dir/server$i.log")"
        fi
    done
}

# CPU ticks and peak RSS (KiB) of every server process, summed.
bench_srv_cpu_ticks()
{
    local pid sum=0
    for pid in "${SRV_PIDS[@]}"; do
        sum=$((sum + $(bench_cpu_ticks "$pid")))
    done
    echo "$sum"
}

bench_srv_peak_rss_kb()
{
    local pid sum=0
    for pid in "${SRV_PIDS[@]}"; do
        sum=$((sum + $(bench_peak_rss_kb "$pid")))
    done
    echo "$sum"
}

bench_stop_servers()
{
    local pid
    for pid in "${SRV_PIDS[@]}"; do
        bench_stop "$pid"
    done
}

# ==== Measuring ====

# utime + stime of a process, every thread, in clock ticks.
bench_cpu_ticks()
{
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# "busy_ticks total_ticks" of the whole machine (user+nice+system; irq, softirq, steal apart).
bench_sys_ticks()
{
    awk '/^cpu / {print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

bench_steal_ticks()
{
    awk '/^cpu / {print $9}' /proc/stat
}

# Peak resident set of a process, in KiB.
bench_peak_rss_kb()
{
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

bench_watermark()
{
    local settle=${1:-0}
    timeout 30 taskset -c "$LOAD_CPU" "$PY" "$BENCH_DIR/watermarks.py" "$BOOTSTRAP" "$TOPIC" --settle "$settle" ||
        echo -1
}

# bench_wrk CONNS SECONDS BODY OUT [count]: wrk pinned to the load core, 2 threads.
bench_wrk()
{
    local conns=$1 secs=$2 body=$3 out=$4 count=${5:-}
    WRK_COUNT_STATUS=$([[ $count == count ]] && echo 1 || echo 0) \
        timeout $((secs + 30)) taskset -c "$LOAD_CPU" wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s \
        -s "$BENCH_DIR/post.lua" "http://127.0.0.1:$SRV_PORT$URL_PATH" -- "$body" >"$out" 2>&1 ||
        { cat "$out" >&2; bench_die "wrk failed"; }
}

# A numeric field of the "PREFIX {json}" line in FILE (every field the helpers print is a number).
bench_field()
{
    local file=$1 prefix=$2 key=$3
    sed -n "/^$prefix /{s/.*\"$key\":\([-0-9.e+]*\).*/\1/p;q}" "$file"
}
