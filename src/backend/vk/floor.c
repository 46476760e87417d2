/* The dispatch floor (bench --profile): the wall time per dispatch of a recording whose
 * dispatches do no work: one workgroup copying 64 floats. Chained: each copy reads the one
 * before it (a barrier before every dispatch, as in a decode step's dependent ops). Grouped:
 * runs of 8 copies into 8 buffers, a barrier between runs (as ops that may overlap). Not here:
 * the cost of any real kernel. */
#include "backend/vk/ops.h"
#include "ref/matmul.h"

#include <stdlib.h>
#include <string.h>
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

/* ---- matvec probe (bench --profile): one product shape timed alone, cold and hot ----------- */

/* Wall seconds of one recording of n products y = W_slab(i) · x, each with a barrier before it
 * (they all write y); with big, a big product (cold weights of its own) runs before each. */
static glm_status probe_run(glm_vk *vk, const glm_vk_weight *w, uint32_t slabs, const glm_vk_weight *big,
                            glm_vk_view x, glm_vk_view y, uint32_t n, double *secs)
{
    double t0 = wall_s();
    GLM_TRY(glm_vk_begin(vk));
    for (uint32_t i = 0; i < n; i++) {
        glm_status s = GLM_OK;
        if (big) {
            glm_vk_view yb = y;
            yb.cols = big->nrows;
            if (x.cols == big->ncols)
                s = glm_vk_matvec(vk, yb, big, i % big->nslabs, x);
            else { /* the 8-bit x: the slab as a weight of its own */
                glm_vk_weight b1 = *big;
                b1.offset += (i % big->nslabs) * big->slab_bytes;
                b1.nslabs = 1;
                s = glm_vk_matvec_x8(vk, yb, &b1, NULL, x, NULL, false, NULL);
            }
        }
        if (s == GLM_OK && w) {
            glm_vk_view ys = y;
            ys.cols = w->nrows;
            if (x.cols == w->ncols)
                s = glm_vk_matvec(vk, ys, w, i % slabs, x);
            else {
                glm_vk_weight w1 = *w;
                w1.offset += (i % slabs) * w->slab_bytes;
                w1.nslabs = 1;
                s = glm_vk_matvec_x8(vk, ys, &w1, NULL, x, NULL, false, NULL);
            }
        }
        if (s != GLM_OK) {
            glm_vk_submit_wait(vk);
            return s;
        }
    }
    GLM_TRY(glm_vk_submit_wait(vk));
    *secs = wall_s() - t0;
    return GLM_OK;
}

static glm_status probe_best(glm_vk *vk, const glm_vk_weight *w, uint32_t slabs, const glm_vk_weight *big,
                             glm_vk_view x, glm_vk_view y, uint32_t n, double *us)
{
    double t = 0, best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        GLM_TRY(probe_run(vk, w, slabs, big, x, y, n, &t));
        if (rep > 0 && t < best)
            best = t;
    }
    *us = 1e6 * best / n;
    return GLM_OK;
}

glm_status glm_vk_matvec_probe(glm_vk *vk, glm_vk_probe *out)
{
    /* one 128 MiB weight buffer of random bytes: the small product's slabs cycle through 120 MB
     * of it (more than the L2), the big one's two slabs through 94 MB */
    const uint64_t bytes = 128ull << 20;
    const uint32_t cols = 5120, rows = 2048, big_rows = 16384;
    uint32_t rb = (uint32_t)glm_row_bytes(GLM_TYPE_Q4_K, cols);
    glm_vk_buffer wb = {0}, xb = {0}, yb = {0}, qb = {0};
    bool x8 = glm_vk_matvec_probe_x8();
    glm_status s = glm_vk_buffer_create(vk, &wb, bytes, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &xb, cols * sizeof(float), false);
    if (s == GLM_OK && x8)
        s = glm_vk_buffer_create(vk, &qb, glm_ref_x8_words(cols) * sizeof(uint32_t), false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &yb, big_rows * sizeof(float), false);
    uint32_t *host = s == GLM_OK ? malloc(bytes) : NULL;
    if (s == GLM_OK && !host)
        s = glm_errorf(GLM_ERR_NOMEM, "matvec probe: out of memory");
    if (s == GLM_OK) {
        uint64_t st = 0x9E3779B97F4A7C15ull;
        for (uint64_t i = 0; i < bytes / 4; i++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            /* small codes in every f16 (scales stay finite): the top bit of each half clear */
            host[i] = (uint32_t)st & 0x3BFF3BFFu;
        }
        s = glm_vk_upload(vk, &wb, 0, host, bytes);
    }
    if (s == GLM_OK) {
        float xs[5120];
        for (uint32_t i = 0; i < cols; i++)
            xs[i] = (float)((i * 2654435761u) >> 16) / 65536.0f - 0.5f;
        s = glm_vk_upload(vk, &xb, 0, xs, sizeof xs);
    }
    free(host);
    glm_vk_weight w = { &wb, GLM_TYPE_Q4_K, 0, cols, rows, 0, rb, rb * rows };
    w.nslabs = (uint32_t)(bytes / w.slab_bytes);
    glm_vk_weight big = { &wb, GLM_TYPE_Q4_K, 0, cols, big_rows, 0, rb, rb * big_rows };
    big.nslabs = (uint32_t)(bytes / big.slab_bytes);
    glm_vk_view x = { &xb, 0, 1, cols, cols }, y = { &yb, 0, 1, big_rows, big_rows };
    if (s == GLM_OK && x8) { /* the products read x in 8 bits, quantized once here */
        glm_vk_view q = { &qb, 0, 1, glm_ref_x8_words(cols), glm_ref_x8_words(cols) };
        s = glm_vk_begin(vk);
        if (s == GLM_OK)
            s = glm_vk_quant_x8(vk, q, x);
        if (s == GLM_OK)
            s = glm_vk_submit_wait(vk);
        x = q;
    }
    out->small_bytes = w.slab_bytes;
    out->big_bytes = big.slab_bytes;
    if (s == GLM_OK)
        s = probe_best(vk, &w, w.nslabs, NULL, x, y, 240, &out->cold_us);
    if (s == GLM_OK)
        s = probe_best(vk, &w, 1, NULL, x, y, 240, &out->hot_us);
    if (s == GLM_OK)
        s = probe_best(vk, NULL, 1, &big, x, y, 60, &out->big_us);
    if (s == GLM_OK)
        s = probe_best(vk, &w, w.nslabs, &big, x, y, 60, &out->pair_us);
    glm_vk_buffer_destroy(vk, &wb);
    glm_vk_buffer_destroy(vk, &xb);
    glm_vk_buffer_destroy(vk, &yb);
    glm_vk_buffer_destroy(vk, &qb);
    return s;
}

/* The product probes' inputs: wb's wbytes of random words with finite float16 halves (every Q4_K
 * scale finite) and xb's xn floats uniform in [-0.5, 0.5), from the xorshift state *st, through
 * host (room for the larger of the two). */
static glm_status probe_fill(glm_vk *vk, uint64_t *st, uint32_t *host, glm_vk_buffer *wb, uint64_t wbytes,
                             glm_vk_buffer *xb, uint64_t xn)
{
#define FILL_NEXT() (*st ^= *st << 13, *st ^= *st >> 7, *st ^= *st << 17, (uint32_t)*st)
    for (uint64_t i = 0; i < wbytes / 4; i++)
        host[i] = FILL_NEXT() & 0x3BFF3BFFu; /* finite scales: the top bit of each half clear */
    GLM_TRY(glm_vk_upload(vk, wb, 0, host, wbytes));
    float *xf = (float *)host;
    for (uint64_t i = 0; i < xn; i++)
        xf[i] = (float)(FILL_NEXT() >> 8) / 16777216.0f - 0.5f;
#undef FILL_NEXT
    return glm_vk_upload(vk, xb, 0, xf, xn * 4);
}

/* The product probes' timing: n calls of op(ctx) recorded together (each behind the barrier its
 * hazard brings), the wall time of the best of 5 recordings after an untimed one, µs a call. */
typedef glm_status (*probe_op)(glm_vk *vk, const void *ctx);
static glm_status probe_time(glm_vk *vk, uint32_t n, probe_op op, const void *ctx, double *us)
{
    double best = 1e30;
    glm_status s = GLM_OK;
    for (int rep = 0; s == GLM_OK && rep < 6; rep++) {
        double t0 = wall_s();
        s = glm_vk_begin(vk);
        for (uint32_t i = 0; s == GLM_OK && i < n; i++)
            s = op(vk, ctx);
        glm_status ws = glm_vk_submit_wait(vk);
        s = s == GLM_OK ? ws : s;
        double t = wall_s() - t0;
        if (rep > 0 && t < best)
            best = t;
    }
    if (s == GLM_OK)
        *us = 1e6 * best / n;
    return s;
}

typedef struct {
    glm_vk_view y, x, xh, ids, group;
    const glm_vk_weight *w;
} probe_args;

static glm_status probe_grouped_op(glm_vk *vk, const void *ctx)
{
    const probe_args *a = ctx;
    return glm_vk_matmul_id_half(vk, a->y, a->w, a->x, a->xh, a->ids, a->group, false);
}

static glm_status probe_dense_op(glm_vk *vk, const void *ctx)
{
    const probe_args *a = ctx;
    return glm_vk_matmul(vk, a->y, a->w, 0, a->x);
}

/* ---- grouped-product probe (bench --profile): the routed gate product of a 512-token prefill -- */

glm_status glm_vk_matmul_id_probe(glm_vk *vk, uint32_t n, double *us)
{
    const uint32_t T = 512, k = 5, E = 65, cols = 2048, rows = 1536;
    if (n == 0 || n > 1000)
        return glm_errorf(GLM_ERR_INVALID, "grouped-product probe: %u products out of range", n);
    uint32_t rb = (uint32_t)glm_row_bytes(GLM_TYPE_Q4_K, cols);
    uint64_t wbytes = (uint64_t)rb * rows * E, ng = glm_vk_moe_group_ints(T, k, E);
    glm_vk_buffer wb = {0}, xb = {0}, yb = {0}, ib = {0}, gb = {0};
    glm_status s = glm_vk_buffer_create(vk, &wb, wbytes, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &xb, (uint64_t)T * cols * 4, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &yb, (uint64_t)T * k * rows * 4, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &ib, (uint64_t)T * k * 4, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &gb, ng * 4, false);
    uint32_t *host = s == GLM_OK ? malloc(wbytes > (uint64_t)T * cols * 4 ? wbytes : (uint64_t)T * cols * 4) : NULL;
    if (s == GLM_OK && !host)
        s = glm_errorf(GLM_ERR_NOMEM, "grouped-product probe: out of memory");
    uint64_t st = 0x2545F4914F6CDD1Dull;
    if (s == GLM_OK)
        s = probe_fill(vk, &st, host, &wb, wbytes, &xb, (uint64_t)T * cols);
#define PROBE_NEXT() (st ^= st << 13, st ^= st >> 7, st ^= st << 17, (uint32_t)st)
    if (s == GLM_OK) {
        int32_t *ids = (int32_t *)host;
        for (uint32_t t = 0; t < T; t++) {
            for (uint32_t j = 0; j + 1 < k; j++) {
                int32_t e, dup;
                do {
                    e = (int32_t)(PROBE_NEXT() % (E - 1));
                    dup = 0;
                    for (uint32_t i = 0; i < j; i++)
                        dup |= ids[t * k + i] == e;
                } while (dup);
                ids[t * k + j] = e;
            }
            ids[t * k + k - 1] = (int32_t)E - 1; /* the shared expert */
        }
        s = glm_vk_upload(vk, &ib, 0, ids, (uint64_t)T * k * 4);
    }
#undef PROBE_NEXT
    free(host);
    glm_vk_weight w = { &wb, GLM_TYPE_Q4_K, 0, cols, rows, 0, rb, rb * rows };
    w.nslabs = E;
    glm_vk_view x = { &xb, 0, T, cols, cols }, y = { &yb, 0, T * k, rows, rows }, ids = { &ib, 0, T, k, k };
    glm_vk_view group = { &gb, 0, 1, (uint32_t)ng, (uint32_t)ng }, xh = { 0 };
    glm_vk_buffer hb = {0};
    if (s == GLM_OK && glm_vk_matmul_id_takes_half(vk, &w)) { /* x as float16, converted once */
        s = glm_vk_buffer_create(vk, &hb, (uint64_t)T * cols * 2, false);
        xh = (glm_vk_view){ &hb, 0, T, cols / 2, cols / 2 };
        if (s == GLM_OK)
            s = glm_vk_begin(vk);
        if (s == GLM_OK) {
            s = glm_vk_to_half(vk, xh, x);
            glm_status ws = glm_vk_submit_wait(vk);
            s = s == GLM_OK ? ws : s;
        }
    }
    probe_args a = { y, x, xh, ids, group, &w };
    if (s == GLM_OK)
        s = probe_time(vk, n, probe_grouped_op, &a, us);
    glm_vk_buffer_destroy(vk, &wb);
    glm_vk_buffer_destroy(vk, &xb);
    glm_vk_buffer_destroy(vk, &yb);
    glm_vk_buffer_destroy(vk, &ib);
    glm_vk_buffer_destroy(vk, &gb);
    glm_vk_buffer_destroy(vk, &hb);
    return s;
}

/* ---- dense-product probe (bench --profile): prefill's o_proj ---------------------------------- */

glm_status glm_vk_matmul_dense_probe(glm_vk *vk, uint32_t T, uint32_t n, double *us)
{
    const uint32_t cols = 5120, rows = 2048;
    if (T == 0 || T > 4096 || n == 0 || n > 1000)
        return glm_errorf(GLM_ERR_INVALID, "dense-product probe: %u token rows or %u products out of range", T, n);
    uint32_t rb = (uint32_t)glm_row_bytes(GLM_TYPE_Q4_K, cols);
    uint64_t wbytes = (uint64_t)rb * rows, xbytes = (uint64_t)T * cols * 4;
    glm_vk_buffer wb = {0}, xb = {0}, yb = {0};
    glm_status s = glm_vk_buffer_create(vk, &wb, wbytes, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &xb, xbytes, false);
    if (s == GLM_OK)
        s = glm_vk_buffer_create(vk, &yb, (uint64_t)T * rows * 4, false);
    uint32_t *host = s == GLM_OK ? malloc(wbytes > xbytes ? wbytes : xbytes) : NULL;
    if (s == GLM_OK && !host)
        s = glm_errorf(GLM_ERR_NOMEM, "dense-product probe: out of memory");
    uint64_t st = 0x9E3779B97F4A7C15ull;
    if (s == GLM_OK)
        s = probe_fill(vk, &st, host, &wb, wbytes, &xb, (uint64_t)T * cols);
    free(host);
    glm_vk_weight w = { &wb, GLM_TYPE_Q4_K, 0, cols, rows, 0, rb, rb * rows };
    glm_vk_view x = { &xb, 0, T, cols, cols }, y = { &yb, 0, T, rows, rows };
    probe_args a = { y, x, { 0 }, { 0 }, { 0 }, &w };
    if (s == GLM_OK)
        s = probe_time(vk, n, probe_dense_op, &a, us);
    glm_vk_buffer_destroy(vk, &wb);
    glm_vk_buffer_destroy(vk, &xb);
    glm_vk_buffer_destroy(vk, &yb);
    return s;
}

/* ---- grid-barrier probe (bench --profile): co-residency and the cost of a barrier over a grid -- */

/* One dispatch of the probe; its counters read back after it. */
static glm_status grid_run(glm_vk *vk, glm_vk_buffer *cnt, uint32_t groups, uint32_t rounds, uint32_t limit,
                           uint32_t dispatched, uint32_t out[3], double *secs)
{
    uint32_t zero[4] = { 0, 0, 0, 0 };
    GLM_TRY(glm_vk_upload(vk, cnt, 0, zero, sizeof zero));
    uint32_t pc[4] = { groups, rounds, limit, 0 };
    const glm_vk_buffer *bb[1] = { cnt };
    double t0 = wall_s();
    GLM_TRY(glm_vk_begin(vk));
    glm_status s = glm_vk_dispatch(vk, GLM_VK_GRID_PROBE, bb, 1, pc, sizeof pc, dispatched, 1, 1);
    if (s != GLM_OK) {
        glm_vk_submit_wait(vk);
        return s;
    }
    GLM_TRY(glm_vk_submit_wait(vk));
    *secs = wall_s() - t0;
    return glm_vk_download(vk, out, cnt, 0, 3 * sizeof(uint32_t));
}

glm_status glm_vk_grid_probe_run(glm_vk *vk, uint32_t groups, uint32_t dispatched, uint32_t rounds, uint32_t limit,
                                 uint32_t out[3])
{
    glm_vk_buffer cnt = {0};
    double t = 0;
    glm_status s = glm_vk_buffer_create(vk, &cnt, 4 * sizeof(uint32_t), false);
    if (s == GLM_OK)
        s = grid_run(vk, &cnt, groups, rounds, limit, dispatched, out, &t);
    glm_vk_buffer_destroy(vk, &cnt);
    return s;
}

glm_status glm_vk_grid_probe(glm_vk *vk, uint32_t groups, uint32_t rounds, uint32_t limit, bool *resident, double *us)
{
    glm_vk_buffer cnt = {0}; /* device memory: the counters' atomics stay in the GPU's L2 */
    glm_status s = glm_vk_buffer_create(vk, &cnt, 4 * sizeof(uint32_t), false);
    double best[2] = { 1e30, 1e30 }, t = 0;
    uint32_t out[3] = { 0, 0, 0 };
    bool all = true;
    /* a warm-up of each, then the best of 3: with no rounds, and with `rounds` */
    for (int rep = 0; s == GLM_OK && rep < 4; rep++)
        for (int c = 0; s == GLM_OK && c < 2; c++) {
            s = grid_run(vk, &cnt, groups, c ? rounds : 0, limit, groups, out, &t);
            if (s == GLM_OK && c)
                all = all && out[1] == 0 && out[2] == groups && out[0] == groups * rounds;
            if (s == GLM_OK && rep > 0 && t < best[c])
                best[c] = t;
        }
    glm_vk_buffer_destroy(vk, &cnt);
    if (s == GLM_OK) {
        *resident = all;
        *us = rounds ? 1e6 * (best[1] - best[0]) / rounds : 0;
    }
    return s;
}

/* ---- the element map of 16 × 16 cooperative matrices (cm_layout.comp) ---- */

glm_status glm_vk_cm_layout(glm_vk *vk, float *out)
{
    if (!glm_vk_coopmat_available(vk) || glm_vk_subgroup_size(vk) != 32)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan cm_layout: no 16x16 cooperative matrices on subgroups of 32");
    glm_vk_buffer ob = {0};
    const size_t bytes = 97 * 16 * sizeof(float);
    GLM_TRY(glm_vk_buffer_create(vk, &ob, bytes, false));
    const glm_vk_buffer *bb[1] = { &ob };
    glm_status s = glm_vk_begin(vk);
    if (s == GLM_OK) {
        s = glm_vk_dispatch(vk, GLM_VK_CM_LAYOUT, bb, 1, NULL, 0, 1, 1, 1);
        glm_status w = glm_vk_submit_wait(vk);
        s = s != GLM_OK ? s : w;
    }
    if (s == GLM_OK)
        s = glm_vk_download(vk, out, &ob, 0, bytes);
    glm_vk_buffer_destroy(vk, &ob);
    return s;
}
