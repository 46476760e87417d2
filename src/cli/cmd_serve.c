/* glm47 serve: options → server/server.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/prompt.h"
#include "engine/forward.h"
#include "server/server.h"

static const char k_serve_usage[] =
    "usage: glm47 serve -m MODEL [--host H] [--port P] [--api-key K] [--ctx N] [--model-name NAME]\n"
    "                   [--backend auto|ref|vulkan] [--device N] [--queue N] [--max-batch N] [--max-body BYTES] [--mtp]\n"
    "                   [--draft N]\n"
    "  --host H        IPv4 address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
    "  --port P        TCP port (default 8080; 0 picks a free one, printed on stderr)\n"
    "  --api-key K     require 'Authorization: Bearer K' (also read from GLM47_API_KEY)\n"
    "  --ctx N         positions per request, prompt + generated (default min(4096, model's))\n"
    "  --model-name S  the model id clients name (default: the file's base name)\n"
    "  --queue N       waiting + running requests before 503 (default 256)\n"
    "  --max-batch N   requests decoded together in one forward step (default 8)\n"
    "  --max-body B    request body bytes before 413 (default 1048576)\n"
    "  --mtp           speculative decoding with the model's MTP layer: the same greedy tokens,\n"
    "                  the same sampling distribution; counted in /metrics\n"
    "  --draft N       MTP drafts verified per step, 1..8 (default 1; implies --mtp)\n";

int glm_cmd_serve(int argc, char **argv)
{
    glm_server_opts o = { .port = 8080, .backend_create = glm_cli_backend_create };
    long long x;
    char device_backend[24];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return fputs(k_serve_usage, stdout), 0;
        if (!strcmp(a, "--mtp")) {
            o.mtp = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "glm47 serve: unknown option or missing value: '%s'\n%s", a, k_serve_usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "-m"))
            o.model_path = v;
        else if (!strcmp(a, "--host"))
            o.host = v;
        else if (!strcmp(a, "--api-key"))
            o.api_key = v;
        else if (!strcmp(a, "--model-name"))
            o.model_name = v;
        else if (!strcmp(a, "--backend"))
            o.backend = v;
        else if (!strcmp(a, "--device")) {
            if (glm_cli_parse_int(a, v, 0, 64, &x) != GLM_OK)
                return glm_cli_fail("serve");
            snprintf(device_backend, sizeof device_backend, "vulkan:%lld", x);
            o.backend = device_backend;
        }
        else if (!strcmp(a, "--port")) {
            if (glm_cli_parse_int(a, v, 0, 65535, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.port = (int)x;
        } else if (!strcmp(a, "--ctx")) {
            if (glm_cli_parse_int(a, v, 2, 1 << 24, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.n_ctx = x;
        } else if (!strcmp(a, "--queue")) {
            if (glm_cli_parse_int(a, v, 1, 1 << 20, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.queue_max = (int)x;
        } else if (!strcmp(a, "--max-batch")) {
            if (glm_cli_parse_int(a, v, 1, 256, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.max_batch = (int)x;
        } else if (!strcmp(a, "--draft")) {
            if (glm_cli_parse_int(a, v, 1, GLM_MTP_MAX_DRAFT, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.n_draft = (int)x;
            o.mtp = true;
        } else if (!strcmp(a, "--max-body")) {
            if (glm_cli_parse_int(a, v, 1024, 1 << 30, &x) != GLM_OK)
                return glm_cli_fail("serve");
            o.body_max = (size_t)x;
        } else {
            fprintf(stderr, "glm47 serve: unknown option '%s'\n%s", a, k_serve_usage);
            return 2;
        }
    }
    if (!o.model_path) {
        fprintf(stderr, "glm47 serve: need -m MODEL\n%s", k_serve_usage);
        return 2;
    }
    if (!o.api_key) {
        const char *env = getenv("GLM47_API_KEY");
        o.api_key = env && env[0] ? env : NULL;
    }
    if (o.model_name && !o.model_name[0]) {
        fprintf(stderr, "glm47 serve: --model-name must not be empty\n");
        return 2;
    }
    return glm_server_run(&o) == GLM_OK ? 0 : glm_cli_fail("serve");
}
