/*
 * config.h: the bridge configuration (configs/bridge.yaml) as a struct, loaded through one key
 * table that is also the documentation of every key. No sockets, no Kafka.
 */
#ifndef BRIDGE_CONFIG_H
#define BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "diag.h"

struct yml_doc;

/** One `kafka.properties` entry, passed to librdkafka as is (any YAML scalar, as its text). */
struct cfg_prop {
    char *name;
    char *value;
    int line, col; /* position of the name in cfg->file */
};

/** One `kafka.topics` entry: "namespace/flowId" → topic name (already checked to be legal). */
struct cfg_topic {
    char *flow_ref;
    char *topic;
    int line, col; /* position of the "namespace/flowId" key in cfg->file */
};

/** One `lag.flow_groups` entry: "namespace/flowId" → consumer groups whose lag is watched. */
struct cfg_flow_groups {
    char *flow_ref;
    char **groups;
    size_t ngroups;
    int line, col;
};

/** Where the config file set a key; line 0 when the key kept its default. */
struct cfg_pos {
    int line, col;
};

struct cfg {
    char *file;      /* the config file loaded, or NULL when running on defaults */
    char *listen;    /* "HOST:PORT"; default "127.0.0.1:8080" */
    char *admin_listen; /* /metrics, /health, /ready, /lag; default "127.0.0.1:8081"; "": off */
    char *flows_dir; /* relative paths are resolved against the config file's folder */
    char *tenant;    /* default "main" */
    char *log_level; /* "debug" | "info" | "warn" | "error"; default "info" */
    long kestra_compat; /* 1: Kestra 0.20-1.x rules (default); 2: Kestra 2.0 (EXPR_COMPAT_2) */

    struct {
        char *bootstrap_servers;  /* "" or "embedded": start the in-process mock cluster */
        char *topic_template;     /* default "webhooks.{namespace}.{flowId}" */
        long delivery_timeout_ms; /* librdkafka message.timeout.ms; default 10000 */
        char *state_topic;        /* execution-state events; default "webhook-bridge.execution-states" */
        char *triggers_topic;     /* compacted disabled-trigger records; "webhook-bridge.trigger-states" */
        long thread_nice;         /* nice of librdkafka's broker threads; default 10 */
        long sticky_ms;           /* how long messages stick to a group of partitions; 0 off */
        struct cfg_prop *properties;
        size_t nproperties;
        struct cfg_topic *topics;
        size_t ntopics;
    } kafka;

    struct {
        long max_body_bytes;     /* default 983040 (960 KiB, see config.c); <= message.max.bytes */
        long max_header_bytes;   /* all request headers together; default 16384 */
        long max_headers;        /* number of request headers; default 100 */
        long max_uri_bytes;      /* default 8192 */
        long header_timeout_ms;  /* request head, from its first byte; default 10000 */
        long body_timeout_ms;    /* request body, from the end of its head; default 30000 */
        long idle_timeout_ms;    /* kept-alive connection idle after an answer; default 75000 */
        long max_connections;    /* open client connections; default 10000 */
        long max_in_flight;       /* messages waiting for a delivery report; default 10000 */
        long max_in_flight_bytes; /* their bytes; default 64 MiB */
        long max_loop_delay_ms;   /* loop this far behind: 503 before parsing; 0 off; 100 */
        long request_timeout_ms; /* whole request, read to answer; default 30000 */
        long wait_timeout_ms;    /* wait: true, longest wait for the terminal state; 300000 */
    } limits;

    struct {
        long debounce_ms; /* quiet time after a flows_dir change before reloading; default 200 */
    } reload;

    struct {
        char **groups; /* consumer groups watched on every flow's topic */
        size_t ngroups;
        struct cfg_flow_groups *flow_groups; /* more groups for one flow's topic */
        size_t nflow_groups;
        long interval_ms; /* refresh period; default 5000 */
    } lag;

    struct cfg_pos *pos; /* one per key-table entry; read it through cfg_key_pos() */
};

/**
 * A config holding every default (file NULL); flows_dir is "flows" relative to the working
 * directory. The caller owns the result. Every field is also settable by hand (cfg_set_str), for
 * tests; cfg_validate() then applies the cross-checks.
 */
struct cfg *cfg_new_defaults(void);

/**
 * Loads `path` over the defaults. Unknown keys, wrong types and out-of-range values are appended
 * to dl with their position ("bridge.yaml:4:5: unknown key 'kafka.bogus'"), every error of the
 * file, not just the first; on any error returns NULL. A relative flows_dir is resolved against
 * the folder of `path`. cfg_validate() has already run on the result (running it again finds
 * nothing new). An empty file gives the defaults. The result is owned by the caller.
 */
struct cfg *cfg_load(const char *path, struct diag_list *dl);

/**
 * Same as cfg_load for a document already parsed (doc is borrowed; doc->file is the config path
 * for errors and for resolving flows_dir). For tests and fuzzers.
 */
struct cfg *cfg_load_doc(const struct yml_doc *doc, struct diag_list *dl);

/** Frees cfg and everything in it; NULL is a no-op. */
void cfg_free(struct cfg *cfg);

/** Replaces *field (a char * member of cfg) with a copy of value; the old value is freed. */
void cfg_set_str(char **field, const char *value);

/** Appends a copy of group to cfg->lag.groups unless it is already there (--lag-group). */
void cfg_add_lag_group(struct cfg *cfg, const char *group);

/** True when the bootstrap list asks for the embedded mock cluster ("" or "embedded"). */
bool cfg_kafka_embedded(const struct cfg *cfg);

/** Looks up a kafka.properties value by name, or NULL. Borrowed from cfg. */
const char *cfg_kafka_prop(const struct cfg *cfg, const char *name);

/**
 * Cross-checks that need the whole config. Appends errors to dl and returns their number:
 * - limits.max_body_bytes > message.max.bytes (kafka.properties, else librdkafka's 1000000);
 * - kafka.delivery_timeout_ms >= limits.request_timeout_ms;
 * - kafka.properties acks / request.required.acks other than "all"/"-1", enable.idempotence
 *   other than true, and bootstrap.servers, metadata.broker.list, message.timeout.ms,
 *   delivery.timeout.ms (each has a key of its own), at the property's position.
 */
int cfg_validate(const struct cfg *cfg, struct diag_list *dl);

/** Writes every key of the key table with its default and description, in bridge.yaml form. */
void cfg_print_reference(FILE *out);

/** Where cfg->file set the dotted key `name` ("limits.max_body_bytes"); false if it did not. */
bool cfg_key_pos(const struct cfg *cfg, const char *name, int *line, int *col);

/** True when a reload applies key `name`; false when it needs a restart (or is unknown). */
bool cfg_key_live(const char *name);

/**
 * For a reload: every key that needs a restart and whose value in `next` differs from the running
 * `cur` gets the running value back in `next`, and a note in `notes` at the key's position in
 * next->file ("bridge.yaml:3:9: 'listen' changed: needs a restart; the running value stays").
 * Returns how many keys were reverted. Run cfg_validate() on `next` afterwards: the mix of new
 * and running values may break a cross-check (request_timeout_ms against delivery_timeout_ms).
 */
int cfg_keep_restart_keys(struct cfg *next, const struct cfg *cur, struct diag_list *notes);

/** The key table, for tools and tests: cfg_key_name(i) for i < cfg_key_count(), else NULL. */
size_t cfg_key_count(void);
const char *cfg_key_name(size_t i);

/**
 * The value of key `name` as text: strings as they are, integers in decimal, maps as
 * {"a": "b", ...}. A new string owned by the caller; NULL for an unknown name. May print
 * kafka.properties values (passwords): never log it.
 */
char *cfg_get_text(const struct cfg *cfg, const char *name);

/** True when name is a legal Kafka topic name: 1..249 chars of [A-Za-z0-9._-], not "." or "..". */
bool cfg_topic_name_valid(const char *name);

#endif
