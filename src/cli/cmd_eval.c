/* glm47 eval: one forward pass over a prompt with every named tensor dumped to HDF5 in the
 * golden schema (ARCHITECTURE.md), so `glm47 diff` can compare it with golden.h5 or with
 * another backend layer by layer. The dump appears only if the whole run succeeded.
 * Not here: generation (cmd_run.c), comparison (cmd_diff.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/cli.h"
#include "cli/prompt.h"
#include "engine/forward.h"

static const char k_usage[] =
    "usage: glm47 eval -m MODEL (--ids 1,2,3 | -p TEXT) --dump OUT.h5 [--backend auto|ref|vulkan] [--device N] [--mla auto|naive|absorbed]\n";

int glm_cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *ids_arg = NULL, *text = NULL, *out = NULL, *backend = "auto", *mla = "auto";
    const char *device = NULL;
    char device_backend[24];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "-m") ? &model
                           : !strcmp(a, "--ids") ? &ids_arg
                           : !strcmp(a, "-p") ? &text
                           : !strcmp(a, "--dump") ? &out
                           : !strcmp(a, "--backend") ? &backend
                           : !strcmp(a, "--mla") ? &mla
                           : !strcmp(a, "--device") ? &device
                                                 : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return fputs(k_usage, stdout), 0;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "glm47 eval: %s '%s'\n%s", dst ? "missing value for" : "unknown option", a, k_usage);
            return 2;
        }
        *dst = argv[++i];
    }
    if (device) {
        long long d;
        if (glm_cli_parse_int("--device", device, 0, 64, &d) != GLM_OK)
            return glm_cli_fail("eval");
        snprintf(device_backend, sizeof device_backend, "vulkan:%lld", d);
        backend = device_backend;
    }
    if (!model || !out || (!ids_arg == !text)) {
        fprintf(stderr, "glm47 eval: need -m MODEL, --dump OUT.h5 and one of --ids / -p\n%s", k_usage);
        return 2;
    }
    glm_mla_mode mode = !strcmp(mla, "naive") ? GLM_MLA_NAIVE : !strcmp(mla, "absorbed") ? GLM_MLA_ABSORBED
                                                                                       : GLM_MLA_AUTO;
    if (mode == GLM_MLA_AUTO && strcmp(mla, "auto")) {
        fprintf(stderr, "glm47 eval: --mla expects auto, naive or absorbed, got '%s'\n", mla);
        return 2;
    }
    glm_model *m = NULL;
    glm_backend *b = NULL;
    int32_t *ids = NULL;
    int n = 0;
    glm_status st = glm_model_open(&m, model);
    if (st == GLM_OK)
        st = glm_cli_prompt_tokens(m, ids_arg, text, GLM_CLI_TEXT_RAW, NULL, &ids, &n);
    if (st == GLM_OK)
        st = glm_cli_backend_create(&b, backend, m);
    if (st == GLM_OK)
        st = glm_dump_eval(m, b, ids, n, out, mode);
    free(ids);
    glm_backend_destroy(b);
    glm_model_close(m);
    if (st != GLM_OK)
        return glm_cli_fail("eval");
    fprintf(stderr, "glm47 eval: %d tokens -> %s\n", n, out);
    return 0;
}
