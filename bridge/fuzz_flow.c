/*
 * fuzz_flow.c: libFuzzer target for the flow path: YAML text → yml tree → struct flow (ids,
 * webhook triggers, key rendering with secrets) → topic naming and collision checks against a
 * second, fixed flow. Must not crash, hang or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "flow.h"
#include "log.h"
#include "util.h"
#include "yaml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cfg *cfg;
static struct yml_doc *fixed;

/* A secret the input can name, a kafka.topics override it can hit, a flow it can collide with. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char cfg_text[] = "kafka:\n    topics:\n        a/b: webhooks.a.c\n";
    static const char flow_text[] =
        "id: c\nnamespace: a\ntriggers:\n"
        "  - {id: t, type: io.kestra.plugin.core.trigger.Webhook, key: k}\n";
    struct diag_list dl;
    diag_list_init(&dl);
    log_setup(LOG_ERROR, false);
    setenv("SECRET_FUZZ", "ZnV6ei1zZWNyZXQ=", 1);
    setenv("SECRET_BAD", "!!", 1);
    struct yml_doc *doc = yml_load_string("bridge.yaml", cfg_text, sizeof(cfg_text) - 1, &dl);
    cfg = doc ? cfg_load_doc(doc, &dl) : NULL;
    yml_doc_free(doc);
    fixed = yml_load_string("fixed.yaml", flow_text, sizeof(flow_text) - 1, &dl);
    if (!cfg || !fixed || dl.n) {
        abort();
    }
    diag_list_deinit(&dl);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag_list dl;
    diag_list_init(&dl);
    struct yml_doc *doc = yml_load_string("fuzz/flow.yaml", (const char *)data, size, &dl);
    if (doc) {
        struct flow_set *fs = flow_set_new();
        flow_set_add_doc(fs, fixed, &dl);
        flow_set_add_doc(fs, doc, &dl);
        flow_set_finish(fs, cfg, &dl);
        flow_set_free(fs);
        struct flow fl;
        if (flow_parse_doc(doc, &fl, &dl) == 0) {
            flow_deinit(&fl);
        }
        yml_doc_free(doc);
    }
    /* The key template renderer on its own, with the raw input as the template. */
    char *tmpl = xstrndup((const char *)data, size);
    char err[256];
    int errcol = 0;
    size_t len = 0;
    xfree(flow_render_key(tmpl, "id", "ns", &len, err, sizeof(err), &errcol));
    char *topic = flow_topic_name(tmpl, "ns", "id", "main", err, sizeof(err));
    if (topic) {
        flow_topic_valid(topic);
    }
    xfree(topic);
    xfree(tmpl);
    for (size_t i = 0; i < dl.n; i++) {
        xfree(diag_format(&dl.v[i]));
    }
    diag_list_deinit(&dl);
    return 0;
}
