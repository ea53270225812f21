/*
 * fuzz_config.c: libFuzzer target for the config path: YAML text → yml tree → struct cfg
 * through the key table, plus the cross-checks and error formatting. Must not crash, hang or leak.
 */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "util.h"
#include "yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag_list dl;
    diag_list_init(&dl);
    struct yml_doc *doc = yml_load_string("fuzz/bridge.yaml", (const char *)data, size, &dl);
    if (doc) {
        struct cfg *cfg = cfg_load_doc(doc, &dl);
        if (cfg) {
            cfg_validate(cfg, &dl);
            for (size_t i = 0; i < cfg_key_count(); i++) {
                xfree(cfg_get_text(cfg, cfg_key_name(i)));
            }
        }
        cfg_free(cfg);
        yml_doc_free(doc);
    }
    for (size_t i = 0; i < dl.n; i++) {
        xfree(diag_format(&dl.v[i]));
    }
    diag_list_deinit(&dl);
    return 0;
}
