/* Backend selection by name (--backend ref|vulkan) and the common destroy.
 * Not here: any op (backend/ref.c, backend/vk/). */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

#include "backend/vk/backend_vk.h"
#include "backend/vk/vk.h"

glm_status glm_backend_create(glm_backend **out, const char *name, const glm_model *m)
{
    *out = NULL;
    /* auto: the Vulkan path when a GPU is present, the reference path otherwise (a CPU
     * Vulkan implementation such as lavapipe is slower than ref/, so it is only used when
     * asked for by name) */
    if (!name || !strcmp(name, "auto"))
        name = glm_vk_gpu_present() ? "vulkan" : "ref";
    if (!strcmp(name, "ref"))
        return glm_backend_ref_create(out, m);
    if (!strcmp(name, "vulkan") || !strcmp(name, "vk"))
        return glm_backend_vk_create(out, m, -1, false);
    if (!strncmp(name, "vulkan:", 7)) {
        /* vulkan:N picks device N (the order `glm47 parity` and vulkaninfo list) */
        char *end;
        long dev = strtol(name + 7, &end, 10);
        if (end == name + 7 || *end || dev < 0 || dev > 64)
            return glm_errorf(GLM_ERR_INVALID, "--backend %s: expected vulkan:N with a device index N", name);
        return glm_backend_vk_create(out, m, (int)dev, false);
    }
    return glm_errorf(GLM_ERR_UNSUPPORTED, "--backend %s: unknown backend (available: auto, ref, vulkan)", name);
}

void glm_backend_destroy(glm_backend *b)
{
    if (b)
        b->ops->destroy(b);
}

static glm_load_progress_fn g_progress;
static void *g_progress_ctx;

void glm_load_progress_set(glm_load_progress_fn fn, void *ctx)
{
    g_progress = fn;
    g_progress_ctx = ctx;
}

void glm_load_progress_report(const glm_tensor *t)
{
    if (g_progress)
        g_progress(g_progress_ctx, t);
}
