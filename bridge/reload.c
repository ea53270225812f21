/*
 * reload.c: SIGHUP and flows_dir changes (inotify, debounced) → load, validate, swap. Owns the
 * current config, flow set and route table. Loop thread only; no request logic, no Kafka calls.
 */
#include "reload.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "server.h"
#include "util.h"
#include "webhook.h"

/* As deep as flow.c searches; deeper folders are an error there anyway. */
#define WATCH_DEPTH_MAX 16
/*
 * What changes a flow set: files written, created, renamed, removed or touched (IN_ATTRIB, so
 * `touch` forces a reload), folders coming and going, and the watched folder itself vanishing.
 * Reads (IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE) are left out: our own reload reads every file.
 */
#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* A steady stream of changes still reloads this many debounce periods after its first event. */
#define DEBOUNCE_MAX_FACTOR 10
/* Per-flow lines of one reload; a template change can touch every flow, the summary counts all. */
#define LOG_FLOWS_MAX 100
/* Kubernetes mounts a ConfigMap as links into `..data`, itself a link it swaps on an update. */
#define K8S_DATA_LINK "..data"

struct reload {
    struct cfg *cfg;
    struct flow_set *fs; /* our reference; requests in flight may hold more */
    struct route_table *rt;
    struct hook_ctx *hook;
    struct srv *srv;
    reload_load_fn load;
    void *load_arg;
    struct event_base *base;
    struct event *ev_hup;
    struct event *ev_debounce;
    long long first_change_us; /* monotonic time of the first change not reloaded yet; 0: none */
    int ino_fd;
    struct event *ev_ino;
    char *watch_root; /* the flows_dir the inotify descriptor watches */
    bool stopped;
    struct reload_stats stats;
    void (*on_done)(void *arg, bool ok);
    void *on_done_arg;
};

/* ==== Comparing flow sets ==== */

static int cmp_flow(const void *pa, const void *pb)
{
    const struct flow *a = *(const struct flow *const *)pa;
    const struct flow *b = *(const struct flow *const *)pb;
    int c = strcmp(a->ns, b->ns);
    return c ? c : strcmp(a->id, b->id);
}

static const struct flow **sorted_flows(const struct flow_set *fs)
{
    const struct flow **v = xcalloc(fs->nflows + 1, sizeof(*v));
    for (size_t i = 0; i < fs->nflows; i++) {
        v[i] = &fs->flows[i];
    }
    if (fs->nflows > 1) {
        qsort(v, fs->nflows, sizeof(*v), cmp_flow);
    }
    return v;
}

static void log_flow(size_t *budget, const char *what, const struct flow *fl)
{
    if (*budget == 0) {
        return;
    }
    if (--*budget == 0) {
        log_kv(LOG_INFO, "more flow changes: see the reload summary", NULL);
        return;
    }
    log_kv(LOG_INFO, what, "namespace", fl->ns, "flow", fl->id, "file", fl->file, NULL);
}

/* A merge over both sets sorted by (namespace, id); logs each difference when asked. */
static void diff(const struct flow_set *old, const struct flow_set *cur, bool log,
                 struct reload_counts *out)
{
    size_t budget = log ? LOG_FLOWS_MAX : 0;
    const struct flow **a = sorted_flows(old);
    const struct flow **b = sorted_flows(cur);
    size_t i = 0;
    size_t j = 0;
    memset(out, 0, sizeof(*out));
    while (i < old->nflows || j < cur->nflows) {
        int c = i == old->nflows ? 1 : j == cur->nflows ? -1 : cmp_flow(&a[i], &b[j]);
        if (c < 0) {
            out->removed++;
            log_flow(&budget, "flow removed", a[i]);
            i++;
        } else if (c > 0) {
            out->added++;
            log_flow(&budget, "flow added", b[j]);
            j++;
        } else if (flow_same(a[i], old->compat, b[j], cur->compat)) {
            out->unchanged++;
            i++;
            j++;
        } else {
            out->changed++;
            log_flow(&budget, "flow changed", b[j]);
            i++;
            j++;
        }
    }
    xfree(a);
    xfree(b);
}

void reload_diff(const struct flow_set *old, const struct flow_set *cur, struct reload_counts *out)
{
    diff(old, cur, false, out);
}

/* ==== Watching flows_dir ==== */

static void close_watch(struct reload *rl)
{
    if (rl->ev_ino) {
        event_free(rl->ev_ino);
        rl->ev_ino = NULL;
    }
    if (rl->ino_fd >= 0) {
        close(rl->ino_fd);
        rl->ino_fd = -1;
    }
    xfree(rl->watch_root);
    rl->watch_root = NULL;
}

/*
 * Watches dir and every folder below it, as flow.c searches them (dot-folders skipped). Adding a
 * folder watched already only refreshes its mask, and the kernel drops the watch of a folder
 * that is removed, so walking the whole tree again on each reload keeps the watches exact.
 */
static void watch_tree(struct reload *rl, const char *dir, int depth)
{
    if (depth > WATCH_DEPTH_MAX) {
        return;
    }
    if (inotify_add_watch(rl->ino_fd, dir, WATCH_MASK) < 0) {
        log_kv(LOG_WARN, "cannot watch a flows folder; SIGHUP still reloads", "dir", dir, "error",
               strerror(errno), NULL);
        return;
    }
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            watch_tree(rl, path, depth + 1);
        }
        xfree(path);
    }
    closedir(d);
}

static bool is_flow_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

/* Editor swap and backup files (.x.swp, x.yaml~, 4913) change nothing until the real rename. */
static bool relevant(const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        return true; /* events were lost: assume the worst */
    }
    if (ev->mask & IN_IGNORED) {
        return false;
    }
    if (ev->len == 0 || ev->name[0] == '\0') {
        return true; /* the watched folder itself: removed, moved, changed */
    }
    if (strcmp(ev->name, K8S_DATA_LINK) == 0) {
        return true;
    }
    if (ev->name[0] == '.') {
        return false;
    }
    return (ev->mask & IN_ISDIR) || is_flow_name(ev->name);
}

/*
 * Trailing-edge debounce: every change restarts the quiet period, so the several steps of one
 * save are one reload. A stream that never goes quiet still reloads DEBOUNCE_MAX_FACTOR periods
 * after its first change.
 */
static void note_change(struct reload *rl)
{
    long long now = util_now_us();
    long ms = rl->cfg->reload.debounce_ms;
    if (rl->first_change_us == 0) {
        rl->first_change_us = now;
    } else if (now - rl->first_change_us >= (long long)ms * 1000 * DEBOUNCE_MAX_FACTOR) {
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(rl->ev_debounce, &tv);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct reload *rl = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    (void)what;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            changed = changed || relevant(ev);
            p += sizeof(*ev) + ev->len;
        }
    }
    if (changed) {
        note_change(rl);
    }
}

/* Follows cfg's flows_dir: a new descriptor when the folder moved, else a fresh walk. */
static void open_watch(struct reload *rl, const char *root)
{
    if (rl->ino_fd >= 0 && strcmp(rl->watch_root, root) == 0) {
        watch_tree(rl, root, 0);
        return;
    }
    close_watch(rl);
    rl->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (rl->ino_fd < 0) {
        log_kv(LOG_WARN, "inotify unavailable: flows_dir is not watched; SIGHUP still reloads",
               "error", strerror(errno), NULL);
        return;
    }
    rl->ev_ino = event_new(rl->base, rl->ino_fd, EV_READ | EV_PERSIST, on_inotify, rl);
    if (!rl->ev_ino || event_add(rl->ev_ino, NULL) < 0) {
        log_kv(LOG_WARN, "cannot register the flows_dir watch; SIGHUP still reloads", NULL);
        close_watch(rl);
        return;
    }
    rl->watch_root = xstrdup(root);
    watch_tree(rl, root, 0);
}

/* ==== Reloading ==== */

static void log_notes(const struct diag_list *notes)
{
    for (size_t i = 0; i < notes->n; i++) {
        char *s = diag_format(&notes->v[i]);
        log_kv(LOG_WARN, "config change not applied: needs a restart", "warning", s, NULL);
        xfree(s);
    }
}

/* Every error with its position, then one line saying what happened; then the counters. */
static void log_failure(struct reload *rl, const struct diag_list *dl, const char *why)
{
    for (size_t i = 0; i < dl->n; i++) {
        const struct diag *d = &dl->v[i];
        char *s = diag_format(d);
        char line[16];
        char col[16];
        snprintf(line, sizeof(line), "%d", d->line);
        snprintf(col, sizeof(col), "%d", d->col);
        log_kv(LOG_ERROR, "reload error", "error", s, "file", d->file ? d->file : "", "line", line,
               "col", col, NULL);
        if (i == 0) {
            snprintf(rl->stats.last_error, sizeof(rl->stats.last_error), "%s", s);
        }
        xfree(s);
    }
    if (dl->n == 0) {
        snprintf(rl->stats.last_error, sizeof(rl->stats.last_error), "unknown error");
    }
    char n[32];
    snprintf(n, sizeof(n), "%zu", dl->n);
    log_kv(LOG_ERROR, "reload failed: the running flows and config stay", "trigger", why, "errors",
           n, NULL);
    rl->stats.failed++;
}

static void log_success(const struct reload *rl, const struct reload_counts *c, const char *why,
                        long long t0)
{
    char nf[32], add[32], rem[32], chg[32], same[32], ms[32];
    snprintf(nf, sizeof(nf), "%zu", rl->fs->nflows);
    snprintf(add, sizeof(add), "%zu", c->added);
    snprintf(rem, sizeof(rem), "%zu", c->removed);
    snprintf(chg, sizeof(chg), "%zu", c->changed);
    snprintf(same, sizeof(same), "%zu", c->unchanged);
    snprintf(ms, sizeof(ms), "%.1f", (double)(util_now_us() - t0) / 1000.0);
    log_kv(LOG_INFO, "reloaded", "trigger", why, "flows", nf, "added", add, "removed", rem,
           "changed", chg, "unchanged", same, "ms", ms, NULL);
}

/*
 * The swap, between two requests (one thread): the hook context routes the next request with
 * the new table, the server checks it against the new limits. The old table goes at once (no
 * request keeps it past hook_process); the old set goes with the last request holding it.
 */
static void swap_in(struct reload *rl, struct cfg *cfg, struct flow_set *fs,
                    struct reload_counts *c)
{
    struct route_table *rt = route_table_new(fs, cfg->tenant);
    diff(rl->fs, fs, true, c);
    if (rl->hook) {
        hook_ctx_set_routes(rl->hook, rt, fs);
    }
    if (rl->srv) {
        srv_set_cfg(rl->srv, cfg);
    }
    int lvl = log_level_parse(cfg->log_level);
    if (lvl >= 0 && strcmp(cfg->log_level, rl->cfg->log_level) != 0) {
        log_set_level((enum log_level)lvl);
    }
    route_table_free(rl->rt);
    flow_set_free(rl->fs);
    cfg_free(rl->cfg);
    rl->rt = rt;
    rl->fs = fs;
    rl->cfg = cfg;
}

int reload_run(struct reload *rl, const char *why)
{
    struct diag_list dl;
    struct diag_list notes;
    struct cfg *cfg = NULL;
    struct flow_set *fs = NULL;
    int rc = -EINVAL;

    if (!rl->load || rl->stopped) {
        return -EAGAIN;
    }
    long long t0 = util_now_us();
    diag_list_init(&dl);
    diag_list_init(&notes);
    cfg = rl->load(rl->load_arg, &dl);
    if (!cfg) {
        goto out;
    }
    cfg_keep_restart_keys(cfg, rl->cfg, &notes);
    log_notes(&notes);
    if (cfg_validate(cfg, &dl) > 0) {
        goto out;
    }
    /* Watch first, read after: a change made while we read still triggers the next reload. */
    if (rl->base) {
        open_watch(rl, cfg->flows_dir);
    }
    fs = flow_set_load(cfg, &dl);
    if (!fs) {
        goto out;
    }
    struct reload_counts c;
    swap_in(rl, cfg, fs, &c);
    cfg = NULL;
    fs = NULL;
    rl->stats.ok++;
    rl->stats.last_ok_unix = (long long)time(NULL);
    log_success(rl, &c, why, t0);
    rc = 0;
out:
    if (rc < 0) {
        log_failure(rl, &dl, why);
    }
    if (rl->on_done) {
        rl->on_done(rl->on_done_arg, rc == 0);
    }
    flow_set_free(fs);
    cfg_free(cfg);
    diag_list_deinit(&notes);
    diag_list_deinit(&dl);
    return rc;
}

/* ==== Events ==== */

static void on_debounce(evutil_socket_t fd, short what, void *arg)
{
    struct reload *rl = arg;
    (void)fd;
    (void)what;
    rl->first_change_us = 0;
    reload_run(rl, "flows_dir changed");
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct reload *rl = arg;
    (void)sig;
    (void)what;
    if (rl->stopped) {
        log_kv(LOG_WARN, "SIGHUP ignored: shutting down", NULL);
        return;
    }
    /* A change waiting for its quiet period is covered by this reload. */
    evtimer_del(rl->ev_debounce);
    rl->first_change_us = 0;
    reload_run(rl, "SIGHUP");
}

/* ==== Life cycle ==== */

struct reload *reload_new_take(struct cfg *cfg, struct flow_set *fs)
{
    struct reload *rl = xcalloc(1, sizeof(*rl));
    rl->cfg = cfg;
    rl->fs = fs;
    rl->rt = route_table_new(fs, cfg->tenant);
    rl->ino_fd = -1;
    return rl;
}

const struct cfg *reload_cfg(const struct reload *rl)
{
    return rl->cfg;
}

struct flow_set *reload_flows(const struct reload *rl)
{
    return rl->fs;
}

const struct route_table *reload_routes(const struct reload *rl)
{
    return rl->rt;
}

void reload_on_done(struct reload *rl, void (*fn)(void *arg, bool ok), void *arg)
{
    rl->on_done = fn;
    rl->on_done_arg = arg;
}

const struct reload_stats *reload_stats(const struct reload *rl)
{
    return &rl->stats;
}

void reload_attach(struct reload *rl, struct hook_ctx *hook, struct srv *srv)
{
    rl->hook = hook;
    rl->srv = srv;
    if (hook) {
        hook_ctx_set_routes(hook, rl->rt, rl->fs);
    }
    if (srv) {
        srv_set_cfg(srv, rl->cfg);
    }
}

int reload_start(struct reload *rl, struct event_base *base, reload_load_fn load, void *arg)
{
    rl->base = base;
    rl->load = load;
    rl->load_arg = arg;
    rl->ev_debounce = evtimer_new(base, on_debounce, rl);
    rl->ev_hup = evsignal_new(base, SIGHUP, on_hup, rl);
    if (!rl->ev_debounce || !rl->ev_hup || evsignal_add(rl->ev_hup, NULL) < 0) {
        return -ENOMEM;
    }
    open_watch(rl, rl->cfg->flows_dir);
    return 0;
}

void reload_stop(struct reload *rl)
{
    rl->stopped = true;
    if (rl->ev_debounce) {
        evtimer_del(rl->ev_debounce);
    }
    close_watch(rl);
}

void reload_free(struct reload *rl)
{
    if (!rl) {
        return;
    }
    close_watch(rl);
    if (rl->ev_hup) {
        event_free(rl->ev_hup);
    }
    if (rl->ev_debounce) {
        event_free(rl->ev_debounce);
    }
    route_table_free(rl->rt);
    flow_set_free(rl->fs);
    cfg_free(rl->cfg);
    xfree(rl);
}
