/* The dispatch floor (bench --profile): the wall time per dispatch of a recording whose
 * dispatches do no work: one workgroup copying 64 floats. Chained: each copy reads the one
 * before it (a barrier before every dispatch, as in a decode step's dependent ops). Grouped:
 * runs of 8 copies into 8 buffers, a barrier between runs (as ops that may overlap). Not here:
 * the cost of any real kernel. */
#include "backend/vk/ops.h"

#include <time.h>

#define FLOOR_BUFS 9 /* the source and 8 destinations */

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One recording of n copies; chained: buffer i%2 → (i+1)%2, else 0 → 1 + i%8. */
static glm_status record(glm_vk *vk, glm_vk_buffer *b, uint32_t n, bool chained, double *secs)
{
    glm_vk_eltwise_push pc = { .op = 2, .rows = 1, .cols = 64, .a_ld = 64, .b_ld = 64, .y_ld = 64 };
    double t0 = wall_s();
    GLM_TRY(glm_vk_begin(vk));
    for (uint32_t i = 0; i < n; i++) {
        const glm_vk_buffer *src = chained ? &b[i % 2] : &b[0], *dst = chained ? &b[(i + 1) % 2] : &b[1 + i % 8];
        const glm_vk_buffer *bb[3] = { src, src, dst };
        glm_status s = glm_vk_dispatch(vk, GLM_VK_ELTWISE, bb, 3, &pc, sizeof pc, 1, 1, 1);
        if (s != GLM_OK) {
            glm_vk_submit_wait(vk);
            return s;
        }
    }
    GLM_TRY(glm_vk_submit_wait(vk));
    *secs = wall_s() - t0;
    return GLM_OK;
}

glm_status glm_vk_dispatch_floor(glm_vk *vk, uint32_t n, double *chained_us, double *grouped_us)
{
    glm_vk_buffer b[FLOOR_BUFS] = {0};
    glm_status s = GLM_OK;
    for (int i = 0; s == GLM_OK && i < FLOOR_BUFS; i++)
        s = glm_vk_buffer_create(vk, &b[i], 64 * sizeof(float), false);
    double t = 0, best[2] = { 1e30, 1e30 };
    /* a warm-up recording of each, then the best of 3 */
    for (int rep = 0; s == GLM_OK && rep < 4; rep++)
        for (int c = 0; s == GLM_OK && c < 2; c++)
            if ((s = record(vk, b, n, c == 0, &t)) == GLM_OK && rep > 0 && t < best[c])
                best[c] = t;
    for (int i = 0; i < FLOOR_BUFS; i++)
        glm_vk_buffer_destroy(vk, &b[i]);
    if (s == GLM_OK) {
        *chained_us = 1e6 * best[0] / n;
        *grouped_us = 1e6 * best[1] / n;
    }
    return s;
}
