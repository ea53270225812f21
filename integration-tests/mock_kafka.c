/*
 * mock_kafka.c: a librdkafka mock cluster in its own process for the integration tests. Prints
 * "BOOTSTRAP <list>" once, then takes fault-injection commands on stdin, one per line, and answers
 * each with "OK" or "ERR <text>". Test tooling only: never linked into the bridge.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_MAX_LINE 4096
#define MOCK_MAX_ARGS 8
#define MOCK_MAX_PUSH 100000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/*
 * librdkafka logs through stderr by default, which is fine, but the dummy producer has no
 * bootstrap.servers and would complain about it; keep stderr for real problems only.
 */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4) {
        fprintf(stderr, "mock-kafka: %s: %s\n", fac, buf);
    }
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* ==== Argument parsing ==== */

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * Error names are matched against librdkafka's own table, so every code it knows works: the bare
 * name from rd_kafka_err2name ("NOT_ENOUGH_REPLICAS", "_TRANSPORT"), the same with an "ERR_" or
 * "RD_KAFKA_RESP_ERR_" prefix, in any case, or the numeric code.
 */
static bool parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    long num;
    if (parse_long(s, INT_MIN, INT_MAX, &num)) {
        *out = (rd_kafka_resp_err_t)num;
        return true;
    }
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0) {
        s += 18;
    } else if (strncasecmp(s, "ERR_", 4) == 0) {
        s += 4;
    }
    const struct rd_kafka_err_desc *descs = NULL;
    size_t cnt = 0;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    return false;
}

static bool parse_broker(int brokers, const char *s, int32_t *out)
{
    long id;
    if (!parse_long(s, 1, brokers, &id)) {
        return false;
    }
    *out = (int32_t)id;
    return true;
}

/* ==== Commands ==== */

struct mock {
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;
};

static void answer_err(rd_kafka_resp_err_t err)
{
    if (err) {
        reply("ERR %s", rd_kafka_err2str(err));
    } else {
        reply("OK");
    }
}

static void cmd_broker_updown(struct mock *m, char **argv, int argc, bool up)
{
    int32_t id;
    if (argc != 2 || !parse_broker(m->brokers, argv[1], &id)) {
        reply("ERR usage: %s <broker-id 1..%d>", argv[0], m->brokers);
        return;
    }
    if (up) {
        answer_err(rd_kafka_mock_broker_set_up(m->mcluster, id));
    } else {
        answer_err(rd_kafka_mock_broker_set_down(m->mcluster, id));
    }
}

static void cmd_rtt(struct mock *m, char **argv, int argc)
{
    int32_t id;
    long ms;
    if (argc != 3 || !parse_broker(m->brokers, argv[1], &id) ||
        !parse_long(argv[2], 0, INT_MAX, &ms)) {
        reply("ERR usage: rtt <broker-id 1..%d> <ms>", m->brokers);
        return;
    }
    answer_err(rd_kafka_mock_broker_set_rtt(m->mcluster, id, (int)ms));
}

static void cmd_push_errors(struct mock *m, char **argv, int argc)
{
    long api_key;
    long cnt;
    rd_kafka_resp_err_t err;
    if (argc != 4 || !parse_long(argv[1], 0, INT16_MAX, &api_key) ||
        !parse_long(argv[2], 1, MOCK_MAX_PUSH, &cnt)) {
        reply("ERR usage: push-errors <ApiKey> <count 1..%d> <errname>", MOCK_MAX_PUSH);
        return;
    }
    if (!parse_err(argv[3], &err)) {
        reply("ERR unknown error name '%s'", argv[3]);
        return;
    }
    rd_kafka_resp_err_t *errs = calloc((size_t)cnt, sizeof(*errs));
    if (!errs) {
        reply("ERR out of memory");
        return;
    }
    for (long i = 0; i < cnt; i++) {
        errs[i] = err;
    }
    rd_kafka_mock_push_request_errors_array(m->mcluster, (int16_t)api_key, (size_t)cnt, errs);
    free(errs);
    reply("OK");
}

static void cmd_topic_error(struct mock *m, char **argv, int argc)
{
    rd_kafka_resp_err_t err;
    if (argc != 3) {
        reply("ERR usage: topic-error <topic> <errname>");
        return;
    }
    if (!parse_err(argv[2], &err)) {
        reply("ERR unknown error name '%s'", argv[2]);
        return;
    }
    rd_kafka_mock_topic_set_error(m->mcluster, argv[1], err);
    reply("OK");
}

/* Moves a partition's leadership: clients see NOT_LEADER_FOR_PARTITION and follow it. */
static void cmd_leader(struct mock *m, char **argv, int argc)
{
    long partition;
    int32_t id;
    if (argc != 4 || !parse_long(argv[2], 0, INT32_MAX, &partition) ||
        !parse_broker(m->brokers, argv[3], &id)) {
        reply("ERR usage: leader <topic> <partition> <broker-id 1..%d>", m->brokers);
        return;
    }
    answer_err(rd_kafka_mock_partition_set_leader(m->mcluster, argv[1], (int32_t)partition, id));
}

/*
 * The cluster-level error stacks are per ApiKey; there is no "clear all", so clear every key the
 * protocol defines (librdkafka 2.0.2 knows fewer than 70; 100 leaves room).
 */
static void cmd_clear_errors(struct mock *m, int argc)
{
    if (argc != 1) {
        reply("ERR usage: clear-errors");
        return;
    }
    for (int16_t key = 0; key < 100; key++) {
        rd_kafka_mock_clear_request_errors(m->mcluster, key);
    }
    reply("OK");
}

static void cmd_create_topic(struct mock *m, char **argv, int argc)
{
    long parts;
    long repl;
    if (argc != 4 || !parse_long(argv[2], 1, 10000, &parts) ||
        !parse_long(argv[3], 1, m->brokers, &repl)) {
        reply("ERR usage: create-topic <name> <partitions> <replication 1..%d>", m->brokers);
        return;
    }
    answer_err(rd_kafka_mock_topic_create(m->mcluster, argv[1], (int)parts, (int)repl));
}

static int split(char *line, char **argv)
{
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc == MOCK_MAX_ARGS) {
            return -1;
        }
        argv[argc++] = tok;
    }
    return argc;
}

/* Returns false when the command asks the process to stop. */
static bool run_command(struct mock *m, char *line)
{
    char *argv[MOCK_MAX_ARGS];
    int argc = split(line, argv);
    if (argc < 0) {
        reply("ERR too many arguments");
        return true;
    }
    if (argc == 0) {
        return true;
    }
    const char *cmd = argv[0];
    if (strcmp(cmd, "quit") == 0) {
        reply("OK");
        return false;
    } else if (strcmp(cmd, "broker-down") == 0) {
        cmd_broker_updown(m, argv, argc, false);
    } else if (strcmp(cmd, "broker-up") == 0) {
        cmd_broker_updown(m, argv, argc, true);
    } else if (strcmp(cmd, "rtt") == 0) {
        cmd_rtt(m, argv, argc);
    } else if (strcmp(cmd, "push-errors") == 0) {
        cmd_push_errors(m, argv, argc);
    } else if (strcmp(cmd, "topic-error") == 0) {
        cmd_topic_error(m, argv, argc);
    } else if (strcmp(cmd, "clear-errors") == 0) {
        cmd_clear_errors(m, argc);
    } else if (strcmp(cmd, "create-topic") == 0) {
        cmd_create_topic(m, argv, argc);
    } else if (strcmp(cmd, "leader") == 0) {
        cmd_leader(m, argv, argc);
    } else {
        reply("ERR unknown command '%s'", cmd);
    }
    return true;
}

/* ==== Main loop ==== */

/*
 * stdin is read with poll(2) and read(2), not stdio, so that SIGTERM is noticed within a poll
 * interval even while no command arrives.
 */
static int command_loop(struct mock *m)
{
    char buf[MOCK_MAX_LINE];
    size_t len = 0;
    bool discarding = false;
    while (!stop_requested) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            perror("mock-kafka: poll");
            return 1;
        }
        if (n == 0) {
            continue;
        }
        ssize_t got = read(STDIN_FILENO, buf + len, sizeof(buf) - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return 0; /* EOF (or a broken stdin): the test runner went away */
        }
        len += (size_t)got;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = '\0';
            bool go_on = true;
            if (discarding) {
                discarding = false;
                reply("ERR line too long");
            } else {
                go_on = run_command(m, buf);
            }
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used);
            len -= used;
            if (!go_on) {
                return 0;
            }
        }
        if (len == sizeof(buf)) {
            discarding = true;
            len = 0;
        }
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: mock-kafka [--brokers N]\n"
                 "Prints 'BOOTSTRAP <host:port,...>', then reads commands on stdin:\n"
                 "  broker-down <id> | broker-up <id> | rtt <id> <ms>\n"
                 "  push-errors <ApiKey> <count> <errname> | topic-error <topic> <errname>\n"
                 "  clear-errors | create-topic <name> <partitions> <replication>\n"
                 "  leader <topic> <partition> <broker-id> | quit\n");
}

int main(int argc, char **argv)
{
    long brokers = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            if (!parse_long(argv[++i], 1, 64, &brokers)) {
                fprintf(stderr, "mock-kafka: --brokers wants 1..64\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "mock-kafka: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    /*
     * librdkafka's defaults are what the tests rely on: brokers listen on 127.0.0.1 with ports
     * from the OS, auto-created topics get 4 partitions and min(3, N) replicas.
     */
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mcluster) {
        fprintf(stderr, "mock-kafka: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
    fflush(stdout);

    struct mock m = {.mcluster = mcluster, .brokers = (int)brokers};
    int rc = command_loop(&m);

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    return rc;
}
