/* Per-kernel parity report, Vulkan vs ref/ (see parity.h). The comparisons are those of
 * tests/test_vk_ops.c; the real sizes come from model-spec §1 (hidden 2048, q_lora 768,
 * kv_lora 512, 20 heads of qk_nope 192 + rope 64, v_head 256, 64 experts top-4 with
 * moe_inter 1536, dense inter 10240, vocab 154880, rope_theta 1e6, routed scale 1.8). */
#include "backend/vk/parity.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/vk/ops.h"
#include "ref/dequant.h"
#include "ref/ops.h"

/* GLM-4.7-Flash hyper-parameters the kernels take as scalars (model-spec §1). */
#define RMS_NORM_EPS 1e-5f
#define ROPE_THETA 1e6f
#define ROUTED_SCALING_FACTOR 1.8f
#define REPEAT_BELOW_US 1e5 /* time a second submit only for kernels under 100 ms */

#define MAX_TRACKED 16
#define GUARD 64 /* poisoned floats after every output */

/* A signalling-NaN pattern no kernel produces by arithmetic (as tests/util/testutil.c). */
static const uint32_t k_poison = 0x7fa5a5a5u;

static const char *const k_ops[] = { "rms_norm", "matvec",      "matvec_id", "get_rows", "rope",
                                     "add",      "swiglu",      "copy",      "moe_route", "moe_combine",
                                     "argmax",   "mla_attention", "matmul",  "matmul_id" };
#define N_OPS (sizeof k_ops / sizeof k_ops[0])

/* The 16 weight types every Vulkan matvec handles (tests/test_vk_ops.c k_all_types). */
static const glm_type k_types[] = { GLM_TYPE_F32,  GLM_TYPE_F16,  GLM_TYPE_BF16, GLM_TYPE_Q8_0,   GLM_TYPE_Q4_0,
                                    GLM_TYPE_Q4_1, GLM_TYPE_Q5_0, GLM_TYPE_Q5_1, GLM_TYPE_IQ4_NL, GLM_TYPE_MXFP4,
                                    GLM_TYPE_Q2_K, GLM_TYPE_Q3_K, GLM_TYPE_Q4_K, GLM_TYPE_Q5_K,   GLM_TYPE_Q6_K,
                                    GLM_TYPE_IQ4_XS };
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* One run's state: the RNG, the row being built, and the host/device allocations of the
 * current case (released together after each case). */
typedef struct pctx {
    glm_vk *vk;
    const glm_parity_options *o;
    glm_parity_report *rep;
    uint64_t rng;
    VkDeviceSize max_range;
    bool skip;
    glm_parity_row cur;
    void *mem[MAX_TRACKED];
    int nmem;
    glm_vk_buffer buf[MAX_TRACKED];
    int nbuf;
    double t0;
} pctx;

typedef struct pweight {
    uint8_t *host;
    glm_vk_weight w;
} pweight;

/* ---- random numbers (splitmix64, as tests/util/testutil.c) --------------------------- */

static uint64_t sm_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float sm_uniform(uint64_t *state, float lo, float hi)
{
    double u = (double)(sm_next(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

static uint64_t rnext(pctx *p) { return sm_next(&p->rng); }
static float runi(pctx *p, float lo, float hi) { return sm_uniform(&p->rng, lo, hi); }

static void rfill(pctx *p, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = runi(p, lo, hi);
}

/* ---- allocations of one case ------------------------------------------------------------ */

static void *hmem(pctx *p, size_t bytes)
{
    GLM_ASSERT(p->nmem < MAX_TRACKED);
    void *m = calloc(1, bytes ? bytes : 1);
    if (!m) {
        glm_errorf(GLM_ERR_NOMEM, "parity: out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    p->mem[p->nmem++] = m;
    return m;
}

static glm_status fits(pctx *p, size_t bytes)
{
    if (bytes <= p->max_range)
        return GLM_OK;
    p->skip = true;
    return glm_errorf(GLM_ERR_UNSUPPORTED, "parity: %zu bytes exceed maxStorageBufferRange", bytes);
}

static glm_status dbuf(pctx *p, glm_vk_buffer **out, size_t bytes, bool host)
{
    GLM_ASSERT(p->nbuf < MAX_TRACKED);
    GLM_TRY(fits(p, bytes));
    GLM_TRY(glm_vk_buffer_create(p->vk, &p->buf[p->nbuf], bytes, host));
    *out = &p->buf[p->nbuf++];
    if (host && !(*out)->map)
        return glm_errorf(GLM_ERR_DEVICE, "parity: host-visible buffer is not mapped");
    return GLM_OK;
}

/* A device-local copy of `bytes` of src (padded to whole words). */
static glm_status dcopy(pctx *p, glm_vk_buffer **out, const void *src, size_t bytes)
{
    size_t n = (bytes + 3) & ~(size_t)3;
    GLM_TRY(dbuf(p, out, n, false));
    if (n == bytes)
        return glm_vk_upload(p->vk, *out, 0, src, n);
    uint8_t *tmp = hmem(p, n);
    if (!tmp)
        return GLM_ERR_NOMEM;
    memcpy(tmp, src, bytes);
    return glm_vk_upload(p->vk, *out, 0, tmp, n);
}

static void poison(void *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy((uint32_t *)x + i, &k_poison, 4);
}

/* A host-visible output of n 32-bit elements followed by the guard zone, all poisoned. */
static glm_status dout(pctx *p, glm_vk_buffer **out, size_t n)
{
    GLM_TRY(dbuf(p, out, (n + GUARD) * 4, true));
    poison((*out)->map, n + GUARD);
    return GLM_OK;
}

static void release(pctx *p)
{
    while (p->nmem > 0)
        free(p->mem[--p->nmem]);
    while (p->nbuf > 0)
        glm_vk_buffer_destroy(p->vk, &p->buf[--p->nbuf]);
}

static glm_vk_view view(const glm_vk_buffer *b, uint32_t rows, uint32_t cols)
{
    return (glm_vk_view){ b, 0, rows, cols, cols };
}

/* ---- random weights ------------------------------------------------------------------------ */

void glm_parity_random_blocks(uint8_t *dst, glm_type t, size_t nblocks, uint64_t *rng_state)
{
    static const struct {
        glm_type t;
        int off[2];
    } k_scales[] = {
        { GLM_TYPE_Q8_0, { 0, -1 } },  { GLM_TYPE_Q4_0, { 0, -1 } },   { GLM_TYPE_Q4_1, { 0, 2 } },
        { GLM_TYPE_Q5_0, { 0, -1 } },  { GLM_TYPE_Q5_1, { 0, 2 } },    { GLM_TYPE_IQ4_NL, { 0, -1 } },
        { GLM_TYPE_Q2_K, { 80, 82 } }, { GLM_TYPE_Q3_K, { 108, -1 } }, { GLM_TYPE_Q4_K, { 0, 2 } },
        { GLM_TYPE_Q5_K, { 0, 2 } },   { GLM_TYPE_Q6_K, { 208, -1 } }, { GLM_TYPE_IQ4_XS, { 0, -1 } },
    };
    const glm_type_traits *tr = glm_type_info(t);
    size_t bytes = nblocks * tr->bytes, i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t r = sm_next(rng_state);
        memcpy(dst + i, &r, 8);
    }
    for (; i < bytes; i++)
        dst[i] = (uint8_t)sm_next(rng_state);
    int si = -1;
    for (size_t k = 0; k < sizeof k_scales / sizeof k_scales[0]; k++)
        si = k_scales[k].t == t ? (int)k : si;
    for (size_t b = 0; b < nblocks; b++) {
        uint8_t *blk = dst + b * tr->bytes;
        float v = sm_uniform(rng_state, -1, 1);
        if (t == GLM_TYPE_F32)
            memcpy(blk, &v, 4);
        else if (t == GLM_TYPE_F16 || t == GLM_TYPE_BF16) {
            uint16_t h = t == GLM_TYPE_F16 ? glm_fp32_to_fp16(v) : glm_fp32_to_bf16(v);
            memcpy(blk, &h, 2);
        } else if (t == GLM_TYPE_MXFP4)
            blk[0] = (uint8_t)(118 + sm_next(rng_state) % 12);
        for (int j = 0; si >= 0 && j < 2; j++)
            if (k_scales[si].off[j] >= 0) {
                uint16_t h = glm_fp32_to_fp16(sm_uniform(rng_state, 0.001f, 0.05f));
                memcpy(blk + k_scales[si].off[j], &h, 2);
            }
    }
}

/* A random weight of `slabs` × [rows][cols] in type t: host bytes and a device copy. */
static glm_status make_weight(pctx *p, pweight *pw, glm_type t, uint32_t cols, uint32_t rows, uint32_t slabs)
{
    size_t rb = glm_row_bytes(t, cols), bytes = rb * rows * slabs;
    GLM_TRY(fits(p, bytes)); /* before filling hundreds of MB */
    if (!(pw->host = hmem(p, bytes)))
        return GLM_ERR_NOMEM;
    glm_parity_random_blocks(pw->host, t, bytes / glm_type_info(t)->bytes, &p->rng);
    glm_vk_buffer *b;
    GLM_TRY(dcopy(p, &b, pw->host, bytes));
    pw->w = (glm_vk_weight){ b, t, 0, cols, rows, slabs, (uint32_t)rb, (uint32_t)(rb * rows) };
    return GLM_OK;
}

/* y = W_slab · x with a double accumulator over the ref dequantized rows. */
static glm_status ref_matvec(pctx *p, float *y, const pweight *pw, uint32_t slab, const float *x)
{
    float *row = hmem(p, pw->w.ncols * sizeof(float));
    if (!row)
        return GLM_ERR_NOMEM;
    for (uint32_t r = 0; r < pw->w.nrows; r++) {
        glm_ref_dequant_row(row, pw->host + (size_t)slab * pw->w.slab_bytes + (size_t)r * pw->w.row_bytes, pw->w.type,
                            pw->w.ncols);
        double acc = 0;
        for (uint32_t i = 0; i < pw->w.ncols; i++)
            acc += (double)row[i] * x[i];
        y[r] = (float)acc;
    }
    return GLM_OK;
}

/* The tiled cases' reference: slab dequantized once into wf, then y = wf · x per token. */
static void ref_dequant_slab(float *wf, const pweight *pw, uint32_t slab)
{
    for (uint32_t r = 0; r < pw->w.nrows; r++)
        glm_ref_dequant_row(wf + (size_t)r * pw->w.ncols,
                            pw->host + (size_t)slab * pw->w.slab_bytes + (size_t)r * pw->w.row_bytes, pw->w.type,
                            pw->w.ncols);
}

static void ref_dot_rows(float *y, const float *wf, uint32_t nrows, uint32_t ncols, const float *x)
{
    for (uint32_t r = 0; r < nrows; r++) {
        double acc = 0;
        for (uint32_t i = 0; i < ncols; i++)
            acc += (double)wf[(size_t)r * ncols + i] * x[i];
        y[r] = (float)acc;
    }
}

/* ---- rows, comparisons, timing ------------------------------------------------------------ */

static void begin_row(pctx *p, const char *op, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void begin_row(pctx *p, const char *op, const char *type, const char *fmt, ...)
{
    memset(&p->cur, 0, sizeof p->cur);
    snprintf(p->cur.op, sizeof p->cur.op, "%s", op);
    snprintf(p->cur.type, sizeof p->cur.type, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->cur.shape, sizeof p->cur.shape, fmt, ap);
    va_end(ap);
    p->cur.written = true;
}

static bool guard_ok(const void *g)
{
    for (size_t i = 0; i < GUARD; i++)
        if (memcmp((const uint32_t *)g + i, &k_poison, 4) != 0)
            return false;
    return true;
}

/* Float outputs vs ref: NMSE, max-abs, fully written; bound 0 asks for bitwise equality. */
static void cmp_float(pctx *p, float *ref, const float *got, size_t n, double bound)
{
    glm_parity_row *r = &p->cur;
    if (p->o->ref_perturb != 0) {
        /* scaled by the reference's RMS where that exceeds 1, so that large outputs
         * (thousands of rows of big dot products) still show the perturbation */
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (double)ref[i] * ref[i];
        double rms = n ? sqrt(ss / (double)n) : 0;
        ref[0] += (float)(p->o->ref_perturb * (rms > 1 ? rms : 1));
    }
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &got[i], 4);
        if (bits == k_poison || !isfinite(got[i]))
            r->written = false;
        double d = (double)ref[i] - (double)got[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        mx = fabs(d) > mx || isnan(d) ? fabs(d) : mx;
        if (bound == 0 && memcmp(&ref[i], &got[i], 4) != 0)
            r->mismatches++;
    }
    r->written &= guard_ok(got + n);
    r->nmse = den > 0 ? num / den : (num > 0 ? INFINITY : 0);
    r->max_abs = mx;
    r->bound = bound;
    r->exact |= bound == 0;
}

/* Integer outputs vs ref: exact; every output written and in [0, limit). */
static void cmp_int(pctx *p, int32_t *ref, const int32_t *got, size_t n, int32_t limit)
{
    glm_parity_row *r = &p->cur;
    if (p->o->ref_perturb != 0)
        ref[0] ^= 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &got[i], 4);
        if (bits == k_poison || got[i] < 0 || got[i] >= limit)
            r->written = false;
        r->mismatches += got[i] != ref[i];
    }
    r->written &= guard_ok(got + n);
    r->exact = true;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static glm_status gpu_begin(pctx *p)
{
    p->t0 = now_us();
    return glm_vk_begin(p->vk);
}

/* Submit whatever was recorded (also after a rejected dispatch, to close the recording). */
static glm_status gpu_end(pctx *p, glm_status recorded)
{
    glm_status s = glm_vk_submit_wait(p->vk);
    p->cur.usec = now_us() - p->t0;
    return recorded != GLM_OK ? recorded : s;
}

static glm_status push_row(pctx *p)
{
    glm_parity_report *rep = p->rep;
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? 2 * rep->cap : 64;
        glm_parity_row *nr = realloc(rep->rows, cap * sizeof *nr);
        if (!nr)
            return glm_errorf(GLM_ERR_NOMEM, "parity: out of memory for the report");
        rep->rows = nr;
        rep->cap = cap;
    }
    glm_parity_row *r = &p->cur;
    bool float_ok = r->bound == 0 || r->nmse <= r->bound; /* NaN fails */
    r->pass = r->skipped || (r->written && float_ok && r->mismatches == 0);
    rep->rows[rep->n++] = *r;
    return GLM_OK;
}

/* End one case: a buffer over the device limit makes a skipped row, any other error ends
 * the run; allocations are released either way. */
static glm_status finish_case(pctx *p, glm_status s)
{
    release(p);
    if (s != GLM_OK && p->skip) {
        p->cur.skipped = true;
        s = GLM_OK;
        glm_error_clear();
    }
    p->skip = false;
    if (s != GLM_OK)
        return glm_error_prefix(s, "parity %s %s %s", p->cur.op, p->cur.type, p->cur.shape);
    return push_row(p);
}

#define NEW(ptr, count)                                  \
    do {                                                 \
        if (!((ptr) = hmem(p, (size_t)(count) * sizeof *(ptr)))) \
            return GLM_ERR_NOMEM;                        \
    } while (0)

/* Record and submit `call`; a repeatable call that took under 100 ms runs a second time
 * and the faster wall time is kept (a pipeline's first submit can include driver warm-up,
 * which matters only for short kernels). Outputs are compared after the last run; the
 * kernels are deterministic, so both runs write the same values. */
#define GPU_RUN(call, repeatable)                                      \
    do {                                                               \
        for (int rep_ = 0; rep_ < 1 || (rep_ == 1 && (repeatable) && p->cur.usec < REPEAT_BELOW_US); rep_++) { \
            double prev_ = p->cur.usec;                                \
            GLM_TRY(gpu_begin(p));                                     \
            GLM_TRY(gpu_end(p, p->o->test_no_dispatch ? GLM_OK : (call))); \
            if (rep_ > 0 && prev_ < p->cur.usec)                       \
                p->cur.usec = prev_;                                   \
        }                                                              \
    } while (0)

/* ---- cases --------------------------------------------------------------------------------- */

static glm_status case_rms_norm(pctx *p, uint32_t n, uint32_t rows, glm_type wt)
{
    begin_row(p, "rms_norm", glm_type_name(wt), "%u x%u", n, rows);
    size_t total = (size_t)n * rows;
    float *x, *ref, *wf;
    NEW(x, total);
    NEW(ref, total);
    NEW(wf, n);
    rfill(p, x, total, -3, 3);
    pweight w;
    GLM_TRY(make_weight(p, &w, wt, n, 1, 1));
    glm_ref_dequant_row(wf, w.host, wt, n);
    for (uint32_t i = 0; i < rows; i++)
        glm_ref_rms_norm(ref + (size_t)i * n, x + (size_t)i * n, wf, n, RMS_NORM_EPS);
    glm_vk_buffer *bx, *bo;
    GLM_TRY(dcopy(p, &bx, x, total * 4));
    GLM_TRY(dout(p, &bo, total));
    GPU_RUN(glm_vk_rms_norm(p->vk, view(bo, rows, n), view(bx, rows, n), &w.w, RMS_NORM_EPS), 1);
    cmp_float(p, ref, bo->map, total, GLM_PARITY_ELEMENTWISE_NMSE);
    return GLM_OK;
}

/* nvec vectors through slab `slabs-1` of a [slabs][nrows][ncols] weight. */
static glm_status case_matvec(pctx *p, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t nvec, uint32_t slabs)
{
    begin_row(p, "matvec", glm_type_name(t), "%u->%u x%u", ncols, nrows, nvec);
    pweight w;
    GLM_TRY(make_weight(p, &w, t, ncols, nrows, slabs));
    float *x, *ref;
    NEW(x, (size_t)ncols * nvec);
    NEW(ref, (size_t)nrows * nvec);
    rfill(p, x, (size_t)ncols * nvec, -2, 2);
    for (uint32_t v = 0; v < nvec; v++)
        GLM_TRY(ref_matvec(p, ref + (size_t)v * nrows, &w, slabs - 1, x + (size_t)v * ncols));
    glm_vk_buffer *bx, *by;
    GLM_TRY(dcopy(p, &bx, x, (size_t)ncols * nvec * 4));
    GLM_TRY(dout(p, &by, (size_t)nrows * nvec));
    GPU_RUN(glm_vk_matvec(p->vk, view(by, nvec, nrows), &w.w, slabs - 1, view(bx, nvec, ncols)), 1);
    cmp_float(p, ref, by->map, (size_t)nrows * nvec, GLM_PARITY_MATVEC_NMSE);
    return GLM_OK;
}

/* T tokens routed to k of E experts; x per token, or per (token, expert) pair. */
static glm_status case_matvec_id(pctx *p, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t E, uint32_t k,
                                 uint32_t T, bool per_pair)
{
    begin_row(p, "matvec_id", glm_type_name(t), "%u->%u E%u k%u T%u%s", ncols, nrows, E, k, T,
              per_pair ? " per-pair" : "");
    pweight w;
    GLM_TRY(make_weight(p, &w, t, ncols, nrows, E));
    uint32_t xrows = per_pair ? T * k : T;
    float *x, *ref;
    int32_t *ids;
    NEW(x, (size_t)xrows * ncols);
    NEW(ref, (size_t)T * k * nrows);
    NEW(ids, (size_t)T * k);
    rfill(p, x, (size_t)xrows * ncols, -1, 1);
    for (uint32_t i = 0; i < T * k; i++)
        ids[i] = (int32_t)(rnext(p) % E);
    for (uint32_t i = 0; i < T * k; i++)
        GLM_TRY(ref_matvec(p, ref + (size_t)i * nrows, &w, (uint32_t)ids[i], x + (size_t)(per_pair ? i : i / k) * ncols));
    glm_vk_buffer *bx, *bi, *by;
    GLM_TRY(dcopy(p, &bx, x, (size_t)xrows * ncols * 4));
    GLM_TRY(dcopy(p, &bi, ids, (size_t)T * k * 4));
    GLM_TRY(dout(p, &by, (size_t)T * k * nrows));
    GPU_RUN(glm_vk_matvec_id(p->vk, view(by, T * k, nrows), &w.w, view(bx, xrows, ncols), view(bi, T, k)), 1);
    cmp_float(p, ref, by->map, (size_t)T * k * nrows, GLM_PARITY_MATVEC_NMSE);
    return GLM_OK;
}

/* The tiled product (prefill): T token rows through slab `slabs-1`; the row's type names the
 * kernel variant ("+cm": tensor cores). */
static glm_status case_matmul(pctx *p, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T, uint32_t slabs)
{
    bool cm = glm_vk_coopmat_enabled(p->vk);
    begin_row(p, "matmul", glm_type_name(t), "%u->%u T%u%s", ncols, nrows, T, cm ? " tensor cores" : "");
    pweight w;
    GLM_TRY(make_weight(p, &w, t, ncols, nrows, slabs));
    float *x, *ref, *wf;
    NEW(x, (size_t)ncols * T);
    NEW(ref, (size_t)nrows * T);
    NEW(wf, (size_t)nrows * ncols);
    rfill(p, x, (size_t)ncols * T, -2, 2);
    ref_dequant_slab(wf, &w, slabs - 1);
    for (uint32_t v = 0; v < T; v++)
        ref_dot_rows(ref + (size_t)v * nrows, wf, nrows, ncols, x + (size_t)v * ncols);
    glm_vk_buffer *bx, *by;
    GLM_TRY(dcopy(p, &bx, x, (size_t)ncols * T * 4));
    GLM_TRY(dout(p, &by, (size_t)nrows * T));
    GPU_RUN(glm_vk_matmul(p->vk, view(by, T, nrows), &w.w, slabs - 1, view(bx, T, ncols)), 1);
    cmp_float(p, ref, by->map, (size_t)nrows * T, cm ? GLM_PARITY_MATMUL_CM_NMSE : GLM_PARITY_MATMUL_NMSE);
    return GLM_OK;
}

/* matvec_id's product for many tokens: pairs grouped by expert on the device, then tiles. */
static glm_status case_matmul_id(pctx *p, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t E, uint32_t k,
                                 uint32_t T, bool per_pair)
{
    bool cm = glm_vk_coopmat_enabled(p->vk);
    begin_row(p, "matmul_id", glm_type_name(t), "%u->%u E%u k%u T%u%s%s", ncols, nrows, E, k, T,
              per_pair ? " per-pair" : "", cm ? " tensor cores" : "");
    pweight w;
    GLM_TRY(make_weight(p, &w, t, ncols, nrows, E));
    uint32_t xrows = per_pair ? T * k : T;
    uint64_t ng = glm_vk_moe_group_ints(T, k, E);
    float *x, *ref, *wf;
    int32_t *ids;
    NEW(x, (size_t)xrows * ncols);
    NEW(ref, (size_t)T * k * nrows);
    NEW(ids, (size_t)T * k);
    NEW(wf, (size_t)nrows * ncols);
    rfill(p, x, (size_t)xrows * ncols, -1, 1);
    for (uint32_t i = 0; i < T * k; i++)
        ids[i] = (int32_t)(rnext(p) % E);
    for (uint32_t e = 0; e < E; e++) {
        ref_dequant_slab(wf, &w, e);
        for (uint32_t i = 0; i < T * k; i++)
            if ((uint32_t)ids[i] == e)
                ref_dot_rows(ref + (size_t)i * nrows, wf, nrows, ncols, x + (size_t)(per_pair ? i : i / k) * ncols);
    }
    glm_vk_buffer *bx, *bi, *by, *bg;
    GLM_TRY(dcopy(p, &bx, x, (size_t)xrows * ncols * 4));
    GLM_TRY(dcopy(p, &bi, ids, (size_t)T * k * 4));
    GLM_TRY(dout(p, &by, (size_t)T * k * nrows));
    GLM_TRY(dbuf(p, &bg, ng * 4, false));
    GPU_RUN(glm_vk_matmul_id(p->vk, view(by, T * k, nrows), &w.w, view(bx, xrows, ncols), view(bi, T, k),
                             view(bg, 1, (uint32_t)ng)), 1);
    cmp_float(p, ref, by->map, (size_t)T * k * nrows, cm ? GLM_PARITY_MATMUL_CM_NMSE : GLM_PARITY_MATMUL_NMSE);
    return GLM_OK;
}

/* Dequantization is deterministic: the rows must be bit-identical to ref's. */
static glm_status case_get_rows(pctx *p, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T)
{
    begin_row(p, "get_rows", glm_type_name(t), "%u rows of %u, T%u", nrows, ncols, T);
    pweight w;
    GLM_TRY(make_weight(p, &w, t, ncols, nrows, 1));
    int32_t *ids;
    float *ref;
    NEW(ids, T);
    NEW(ref, (size_t)T * ncols);
    for (uint32_t i = 0; i < T; i++) {
        ids[i] = (int32_t)(i == 0 ? nrows - 1 : rnext(p) % nrows); /* the last row too */
        glm_ref_dequant_row(ref + (size_t)i * ncols, w.host + (size_t)ids[i] * w.w.row_bytes, t, ncols);
    }
    glm_vk_buffer *bi, *by;
    GLM_TRY(dcopy(p, &bi, ids, (size_t)T * 4));
    GLM_TRY(dout(p, &by, (size_t)T * ncols));
    GPU_RUN(glm_vk_get_rows(p->vk, view(by, T, ncols), &w.w, view(bi, T, 1)), 1);
    cmp_float(p, ref, by->map, (size_t)T * ncols, 0);
    return GLM_OK;
}

/* In-place RoPE on the last dr channels of each of H heads of width hd (model-spec §2.4);
 * the other channels must stay bit-identical (counted as mismatches). */
static glm_status case_rope(pctx *p, uint32_t T, uint32_t H, uint32_t hd, uint32_t dr, uint32_t pos0)
{
    begin_row(p, "rope", "f32", "T%u H%u head %u rope %u pos %u", T, H, hd, dr, pos0);
    const uint32_t cols = H * hd, dn = hd - dr, positions = pos0 + T;
    size_t n = (size_t)T * cols;
    float *x, *ref, *cs;
    NEW(x, n);
    NEW(ref, n);
    NEW(cs, (size_t)positions * dr);
    rfill(p, x, n, -2, 2);
    memcpy(ref, x, n * 4);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t h = 0; h < H; h++)
            glm_ref_rope(ref + (size_t)t * cols + h * hd + dn, (int)dr, pos0 + t, ROPE_THETA);
    glm_vk_rope_table(cs, positions, dr, ROPE_THETA);
    int32_t *pos;
    NEW(pos, T);
    for (uint32_t t = 0; t < T; t++)
        pos[t] = (int32_t)(pos0 + t);
    glm_vk_buffer *bt, *bx, *bp;
    GLM_TRY(dcopy(p, &bt, cs, (size_t)positions * dr * 4));
    GLM_TRY(dcopy(p, &bp, pos, (size_t)T * 4));
    GLM_TRY(dout(p, &bx, n));
    memcpy(bx->map, x, n * 4);
    GPU_RUN(glm_vk_rope(p->vk, view(bx, T, cols), bt, positions, H, hd, dn, dr, view(bp, T, 1)), 0);
    const float *got = bx->map;
    cmp_float(p, ref, got, n, GLM_PARITY_ELEMENTWISE_NMSE);
    for (size_t i = 0; i < n; i++)
        p->cur.mismatches += (i % hd) < dn && memcmp(&x[i], &got[i], 4) != 0;
    return GLM_OK;
}

static glm_status case_eltwise(pctx *p, glm_vk_eltwise_op op, uint32_t rows, uint32_t cols)
{
    static const char *const names[] = { "add", "swiglu", "copy" };
    begin_row(p, names[op], "f32", "%u x%u", cols, rows);
    size_t n = (size_t)rows * cols;
    float *a, *b, *ref;
    NEW(a, n);
    NEW(b, n);
    NEW(ref, n);
    rfill(p, a, n, -4, 4);
    rfill(p, b, n, -4, 4);
    if (op == GLM_VK_ADD)
        glm_ref_add(ref, a, b, (int64_t)n);
    else if (op == GLM_VK_SWIGLU)
        glm_ref_swiglu(ref, a, b, (int64_t)n);
    else
        memcpy(ref, a, n * 4);
    glm_vk_buffer *ba, *bb, *by;
    GLM_TRY(dcopy(p, &ba, a, n * 4));
    GLM_TRY(dcopy(p, &bb, b, n * 4));
    GLM_TRY(dout(p, &by, n));
    GPU_RUN(glm_vk_eltwise(p->vk, op, view(by, rows, cols), view(ba, rows, cols), view(bb, rows, cols)), 1);
    cmp_float(p, ref, by->map, n, op == GLM_VK_COPY ? 0 : GLM_PARITY_ELEMENTWISE_NMSE);
    return GLM_OK;
}

/* Router (model-spec §3.2): ids exact, weights within the elementwise bound. */
static glm_status case_moe_route(pctx *p, uint32_t T, uint32_t E, uint32_t k, uint32_t ng, uint32_t tg, bool sig)
{
    begin_row(p, "moe_route", "f32", "E%u k%u groups %u/%u %s T%u", E, k, tg, ng, sig ? "sigmoid" : "softmax", T);
    glm_route_params rp = { (int)E, (int)k, (int)ng, (int)tg, sig, true, ROUTED_SCALING_FACTOR };
    float *logits, *bias, *wref, *scratch;
    int32_t *iref;
    NEW(logits, (size_t)T * E);
    NEW(bias, E);
    NEW(wref, (size_t)T * k);
    NEW(scratch, 2 * (size_t)E);
    NEW(iref, (size_t)T * k);
    rfill(p, logits, (size_t)T * E, -3, 3);
    rfill(p, bias, E, -0.5f, 0.5f);
    for (uint32_t t = 0; t < T; t++)
        if (!glm_ref_moe_route(iref + t * k, wref + t * k, logits + (size_t)t * E, bias, &rp, scratch))
            return glm_errorf(GLM_ERR_INVALID, "parity: ref router rejects the shape");
    glm_vk_buffer *bl, *bb, *bi, *bw;
    GLM_TRY(dcopy(p, &bl, logits, (size_t)T * E * 4));
    GLM_TRY(dcopy(p, &bb, bias, E * 4));
    GLM_TRY(dout(p, &bi, (size_t)T * k));
    GLM_TRY(dout(p, &bw, (size_t)T * k));
    glm_vk_weight wb = { bb, GLM_TYPE_F32, 0, E, 1, 1, E * 4, E * 4 };
    GPU_RUN(glm_vk_moe_route(p->vk, view(bi, T, k), view(bw, T, k), view(bl, T, E), &wb, k, ng, tg, sig,
            true, ROUTED_SCALING_FACTOR), 1);
    cmp_float(p, wref, bw->map, (size_t)T * k, GLM_PARITY_ELEMENTWISE_NMSE);
    cmp_int(p, iref, bi->map, (size_t)T * k, (int32_t)E);
    return GLM_OK;
}

static glm_status case_moe_combine(pctx *p, uint32_t T, uint32_t k, uint32_t N)
{
    begin_row(p, "moe_combine", "f32", "%u x%u T%u", N, k, T);
    float *x, *w, *ref;
    NEW(x, (size_t)T * k * N);
    NEW(w, (size_t)T * k);
    NEW(ref, (size_t)T * N);
    rfill(p, x, (size_t)T * k * N, -2, 2);
    rfill(p, w, (size_t)T * k, 0, 1);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t j = 0; j < k; j++)
            glm_ref_axpy(ref + (size_t)t * N, w[t * k + j], x + ((size_t)t * k + j) * N, N);
    glm_vk_buffer *bx, *bw, *by;
    GLM_TRY(dcopy(p, &bx, x, (size_t)T * k * N * 4));
    GLM_TRY(dcopy(p, &bw, w, (size_t)T * k * 4));
    GLM_TRY(dout(p, &by, (size_t)T * N));
    GPU_RUN(glm_vk_moe_combine(p->vk, view(by, T, N), view(bx, T * k, N), view(bw, T, k)), 1);
    cmp_float(p, ref, by->map, (size_t)T * N, GLM_PARITY_ELEMENTWISE_NMSE);
    return GLM_OK;
}

/* ties: values drawn from 50 levels, so the lower-index rule is exercised */
static glm_status case_argmax(pctx *p, uint32_t rows, uint32_t n, bool ties)
{
    begin_row(p, "argmax", "i32", "%u x%u%s", n, rows, ties ? " ties" : "");
    size_t total = (size_t)rows * n;
    float *x;
    int32_t *ref;
    NEW(x, total);
    NEW(ref, rows);
    for (size_t i = 0; i < total; i++)
        x[i] = ties ? (float)(rnext(p) % 50) : runi(p, -10, 10);
    for (uint32_t r = 0; r < rows; r++)
        ref[r] = (int32_t)glm_ref_argmax(x + (size_t)r * n, n);
    glm_vk_buffer *bx, *bi;
    GLM_TRY(dcopy(p, &bx, x, total * 4));
    GLM_TRY(dout(p, &bi, rows));
    GPU_RUN(glm_vk_argmax(p->vk, view(bi, rows, 1), view(bx, rows, n), NULL, 0), 1);
    cmp_int(p, ref, bi->map, rows, (int32_t)n);
    return GLM_OK;
}

void glm_parity_page_cache(float *pool, int32_t *pages, const float *c, const float *kr, uint32_t n, uint32_t rkv,
                           uint32_t dr, uint32_t page_size, uint64_t *rng_state)
{
    uint32_t np = (n + page_size - 1) / page_size + 1, w = rkv + dr;
    for (uint32_t i = 0; i < np; i++)
        pages[i] = (int32_t)i;
    for (uint32_t i = np - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)(sm_next(rng_state) % (i + 1));
        int32_t t = pages[i];
        pages[i] = pages[j], pages[j] = t;
    }
    for (size_t i = 0; i < (size_t)np * page_size * w; i++)
        pool[i] = NAN;
    for (uint32_t i = 0; i < n; i++) {
        float *row = pool + ((size_t)pages[i / page_size] * page_size + i % page_size) * w;
        memcpy(row, c + (size_t)i * rkv, (size_t)rkv * 4);
        memcpy(row + rkv, kr + (size_t)i * dr, (size_t)dr * 4);
    }
}

void glm_parity_two_seq_cache(float *pool, int32_t *meta, const float *cA, const float *kA, uint32_t nA, uint32_t TA,
                              const float *cB, const float *kB, uint32_t nB, uint32_t rkv, uint32_t dr,
                              uint32_t page_size, uint64_t *rng_state)
{
    const uint32_t T = TA + 1, npA = glm_parity_pages(nA, page_size), npB = glm_parity_pages(nB, page_size);
    int32_t *pages = meta + 2 * T;
    glm_parity_page_cache(pool, pages, cA, kA, nA, rkv, dr, page_size, rng_state);
    glm_parity_page_cache(pool + (size_t)npA * page_size * (rkv + dr), pages + npA, cB, kB, nB, rkv, dr, page_size,
                          rng_state);
    for (uint32_t i = 0; i < npB; i++)
        pages[npA + i] += (int32_t)npA;
    for (uint32_t t = 0; t < TA; t++)
        meta[t] = (int32_t)(nA - TA + t), meta[T + t] = 0;
    meta[TA] = (int32_t)(nB - 1), meta[T + TA] = (int32_t)npA;
}

typedef struct mla_case {
    uint32_t H, dn, dr, dv, rkv, pos0, T;
} mla_case;

/* Absorbed MLA on the GPU vs the naive reference (model-spec §2.3 vs §2.5). */
static glm_status case_mla(pctx *p, const mla_case *m)
{
    begin_row(p, "mla_attention", "f32", "H%u nope %u rope %u v %u kv %u pos %u T%u", m->H, m->dn, m->dr, m->dv, m->rkv,
              m->pos0, m->T);
    const uint32_t n_kv = m->pos0 + m->T, qc = m->H * (m->dn + m->dr), oc = m->H * m->dv;
    glm_mla_shape s = { (int)m->T, (int)m->pos0, (int)m->H, (int)m->dn, (int)m->dr, (int)m->dv, (int)m->rkv };
    pweight kb, vb;
    GLM_TRY(make_weight(p, &kb, GLM_TYPE_F32, m->dn, m->rkv, m->H));
    GLM_TRY(make_weight(p, &vb, GLM_TYPE_F32, m->rkv, m->dv, m->H));
    float *q, *c, *kr, *ref, *scr;
    NEW(q, (size_t)m->T * qc);
    NEW(c, (size_t)n_kv * m->rkv);
    NEW(kr, (size_t)n_kv * m->dr);
    NEW(ref, (size_t)m->T * oc);
    NEW(scr, glm_ref_mla_scratch_floats(&s));
    rfill(p, q, (size_t)m->T * qc, -1, 1);
    rfill(p, c, (size_t)n_kv * m->rkv, -1, 1);
    rfill(p, kr, (size_t)n_kv * m->dr, -1, 1);
    glm_ref_mla_naive(ref, q, c, kr, (const float *)kb.host, (const float *)vb.host, &s, scr);
    /* the GPU reads the same cache through shuffled pages of 4 positions */
    const uint32_t P = 4, np = (n_kv + P - 1) / P + 1, w = m->rkv + m->dr;
    float *pool;
    int32_t *meta;
    NEW(pool, (size_t)np * P * w);
    NEW(meta, 2 * (size_t)m->T + np);
    glm_parity_page_cache(pool, meta + 2 * m->T, c, kr, n_kv, m->rkv, m->dr, P, &p->rng);
    for (uint32_t t = 0; t < m->T; t++)
        meta[t] = (int32_t)(m->pos0 + t), meta[m->T + t] = 0;
    glm_vk_buffer *bq, *bp, *bm, *bo, *bs, *bc;
    GLM_TRY(dcopy(p, &bq, q, (size_t)m->T * qc * 4));
    GLM_TRY(dcopy(p, &bp, pool, (size_t)np * P * w * 4));
    GLM_TRY(dcopy(p, &bm, meta, (2 * (size_t)m->T + np) * 4));
    GLM_TRY(dout(p, &bo, (size_t)m->T * oc));
    /* one item: tiled (its own kernels for many rows) past GLM_VK_MATMUL_MIN_ROWS rows */
    uint32_t run = m->T;
    glm_vk_kv_rows rows = { { bm, 0, m->T, 1, 1 },
                            { bm, m->T, m->T, 1, 1 },
                            { bm, 2 * m->T, 1, np, np },
                            P,
                            n_kv,
                            &run,
                            NULL,
                            1,
                            0,
                            glm_vk_mla_flash(p->vk) ? glm_vk_mla_flash_pass(p->vk) : 0,
                            glm_vk_mla_flash_split(p->vk) };
    glm_vk_view pc = { bp, 0, np * P, m->rkv, w }, pk = { bp, m->rkv, np * P, m->dr, w };
    GLM_TRY(dbuf(p, &bs, glm_vk_mla_scratch_floats(m->T, m->H, m->rkv, &rows) * 4, false));
    GLM_TRY(dbuf(p, &bc, glm_vk_mla_count_ints(m->T, m->H) * 4, true)); /* arrival counts: zeros */
    memset(bc->map, 0, glm_vk_mla_count_ints(m->T, m->H) * 4);
    GPU_RUN(glm_vk_mla_attention(p->vk, view(bo, m->T, oc), view(bq, m->T, qc), pc, pk, &kb.w, &vb.w, m->H, m->dn,
                                 m->dr, m->dv, &rows, bs, bc), 1);
    bool cm = glm_vk_coopmat_enabled(p->vk) && m->T > GLM_VK_MATMUL_MIN_ROWS; /* k_b / v_b on tensor cores */
    cmp_float(p, ref, bo->map, (size_t)m->T * oc, cm ? GLM_PARITY_MATMUL_CM_NMSE : GLM_PARITY_ATTENTION_NMSE);
    return GLM_OK;
}

/* ---- the shape table ------------------------------------------------------------------------ */

#define CASE(call) GLM_TRY(finish_case(p, (call)))

static glm_status op_rms_norm(pctx *p)
{
    static const uint32_t small[][3] = { { 1, 1, 0 }, { 7, 3, 1 }, { 65, 1, 0 }, { 300, 3, 1 }, { 256, 2, 0 } };
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        CASE(case_rms_norm(p, small[i][0], small[i][1], small[i][2] ? GLM_TYPE_BF16 : GLM_TYPE_F32));
    if (p->o->full) {
        CASE(case_rms_norm(p, 2048, 1, GLM_TYPE_F32)); /* attn/ffn norm, decode */
        CASE(case_rms_norm(p, 2048, 7, GLM_TYPE_F32)); /* prefill */
        CASE(case_rms_norm(p, 768, 1, GLM_TYPE_F32));  /* q_a norm */
        CASE(case_rms_norm(p, 512, 1, GLM_TYPE_F32));  /* kv_a norm */
    }
    return GLM_OK;
}

static glm_status op_matvec(pctx *p)
{
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        glm_type t = k_types[ti];
        const glm_type_traits *tr = glm_type_info(t);
        uint32_t blk = tr->block == 1 ? 32 : (uint32_t)tr->block, odd = tr->block == 1 ? 1 : 0;
        /* one output row, four vectors: the NMSE of a single output is its relative error,
         * unbounded when that value happens to be near zero (seed-dependent failures) */
        CASE(case_matvec(p, t, blk + odd, 1, 4, 1));
        CASE(case_matvec(p, t, 3 * blk + odd, 67, 2, 2));
        if (p->o->full)
            CASE(case_matvec(p, t, 2048, 5120, 1, 1)); /* a 2048 -> 5120 projection */
    }
    if (p->o->full) {
        /* the remaining attention and dense-FFN projections of model-spec §2-§3, in q8_0 */
        static const uint32_t shapes[][2] = { { 2048, 768 }, { 768, 5120 }, { 2048, 576 }, { 5120, 2048 },
                                              { 2048, 10240 }, { 10240, 2048 } };
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            CASE(case_matvec(p, GLM_TYPE_Q8_0, shapes[i][0], shapes[i][1], 1, 1));
        CASE(case_matvec(p, GLM_TYPE_Q4_K, 2048, 5120, 7, 1)); /* a prefill of 7 tokens */
    }
    return GLM_OK;
}

static glm_status op_matvec_id(pctx *p)
{
    CASE(case_matvec_id(p, GLM_TYPE_Q4_K, 512, 37, 6, 3, 3, false));
    CASE(case_matvec_id(p, GLM_TYPE_Q8_0, 96, 37, 6, 3, 3, true));
    if (p->o->full) {
        CASE(case_matvec_id(p, GLM_TYPE_Q4_K, 2048, 1536, 64, 4, 2, false)); /* gate/up */
        CASE(case_matvec_id(p, GLM_TYPE_Q4_K, 1536, 2048, 64, 4, 2, true));  /* down */
    }
    return GLM_OK;
}

static glm_status op_matmul(pctx *p)
{
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        glm_type t = k_types[ti];
        const glm_type_traits *tr = glm_type_info(t);
        uint32_t ncols = tr->block == 1 ? 96 : tr->block < 128 ? 256 : 2 * (uint32_t)tr->block;
        CASE(case_matmul(p, t, ncols, 67, 70, 2));
    }
    if (p->o->full) {
        /* prefill of 512 tokens through the projections of the Q4_K_M mix */
        CASE(case_matmul(p, GLM_TYPE_Q4_K, 2048, 5120, 512, 1));
        CASE(case_matmul(p, GLM_TYPE_Q5_0, 2048, 576, 512, 1));
        CASE(case_matmul(p, GLM_TYPE_Q6_K, 10240, 2048, 128, 1));
        CASE(case_matmul(p, GLM_TYPE_Q8_0, 5120, 2048, 128, 1));
        CASE(case_matmul(p, GLM_TYPE_Q5_K, 2048, 768, 128, 1));
    }
    return GLM_OK;
}

static glm_status op_matmul_id(pctx *p)
{
    CASE(case_matmul_id(p, GLM_TYPE_Q4_K, 256, 67, 7, 4, 70, false));
    CASE(case_matmul_id(p, GLM_TYPE_Q8_0, 96, 37, 6, 3, 30, true));
    if (p->o->full) {
        CASE(case_matmul_id(p, GLM_TYPE_Q4_K, 2048, 1536, 64, 4, 256, false)); /* gate/up */
        CASE(case_matmul_id(p, GLM_TYPE_Q6_K, 1536, 2048, 64, 4, 256, true));  /* down */
    }
    return GLM_OK;
}

static glm_status op_get_rows(pctx *p)
{
    static const glm_type types[] = { GLM_TYPE_BF16, GLM_TYPE_Q8_0, GLM_TYPE_Q4_K, GLM_TYPE_Q6_K };
    for (size_t i = 0; i < 4; i++)
        CASE(case_get_rows(p, types[i], 256, 50, 5));
    if (p->o->full) /* token_embd; q8_0 exceeds 128 MiB buffers (lavapipe): skipped there */
        for (size_t i = 0; i < 2; i++)
            CASE(case_get_rows(p, i ? GLM_TYPE_Q8_0 : GLM_TYPE_Q2_K, 2048, 154880, 4));
    return GLM_OK;
}

static glm_status op_rope(pctx *p)
{
    CASE(case_rope(p, 5, 3, 14, 6, 1000)); /* q-like: heads of nope + rope */
    CASE(case_rope(p, 3, 1, 10, 8, 0));    /* k-like: [c | kr] with rope on kr */
    if (p->o->full) {
        CASE(case_rope(p, 7, 20, 256, 64, 4096)); /* q: 20 heads of 192 + 64 */
        CASE(case_rope(p, 7, 1, 576, 64, 4096));  /* kv_a output: 512 latent + 64 rope */
    }
    return GLM_OK;
}

static glm_status op_eltwise(pctx *p, glm_vk_eltwise_op op)
{
    CASE(case_eltwise(p, op, 3, 131));
    CASE(case_eltwise(p, op, 1, 1));
    if (p->o->full) {
        CASE(case_eltwise(p, op, 7, op == GLM_VK_SWIGLU ? 10240 : 2048));
        if (op == GLM_VK_SWIGLU)
            CASE(case_eltwise(p, op, 8, 1536)); /* 2 tokens × 4 experts of moe_inter */
    }
    return GLM_OK;
}

static glm_status op_moe_route(pctx *p)
{
    CASE(case_moe_route(p, 9, 6, 3, 1, 1, true));
    CASE(case_moe_route(p, 9, 16, 4, 4, 2, true));
    CASE(case_moe_route(p, 9, 8, 2, 1, 1, false));
    if (p->o->full)
        CASE(case_moe_route(p, 16, 64, 4, 1, 1, true));
    return GLM_OK;
}

static glm_status op_moe_combine(pctx *p)
{
    CASE(case_moe_combine(p, 4, 3, 100));
    if (p->o->full)
        CASE(case_moe_combine(p, 7, 4, 2048));
    return GLM_OK;
}

static glm_status op_argmax(pctx *p)
{
    static const uint32_t ns[] = { 1, 63, 65, 1000 };
    for (size_t i = 0; i < 4; i++)
        CASE(case_argmax(p, 4, ns[i], true));
    if (p->o->full) {
        CASE(case_argmax(p, 1, 154880, false));
        CASE(case_argmax(p, 4, 154880, true));
    }
    return GLM_OK;
}

static glm_status op_mla(pctx *p)
{
    /* the last small case and the last full one are items of many rows: the tiled core */
    static const mla_case small[] = { { 3, 16, 8, 12, 40, 0, 7 },
                                      { 3, 16, 8, 12, 40, 70, 1 },
                                      { 3, 16, 8, 12, 40, 5, 3 },
                                      { 3, 32, 9, 36, 64, 40, 30 } };
    for (size_t i = 0; i < 4; i++)
        CASE(case_mla(p, &small[i]));
    if (p->o->full) {
        static const mla_case full[] = { { 20, 192, 64, 256, 512, 0, 8 },
                                         { 20, 192, 64, 256, 512, 127, 1 },
                                         { 20, 192, 64, 256, 512, 100, 64 } };
        for (size_t i = 0; i < 3; i++)
            CASE(case_mla(p, &full[i]));
    }
    return GLM_OK;
}

/* ---- selection and the run ----------------------------------------------------------------- */

const char *const *glm_parity_op_names(size_t *n)
{
    *n = N_OPS;
    return k_ops;
}

/* Is `name` in the comma list (NULL or empty: every op)? */
static bool selected(const char *ops, const char *name)
{
    if (!ops || !*ops)
        return true;
    size_t len = strlen(name);
    for (const char *s = ops; *s;) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == len && !strncmp(s, name, l))
            return true;
        s += l + (e ? 1 : 0);
    }
    return false;
}

glm_status glm_parity_check_ops(const char *ops)
{
    if (!ops)
        return GLM_OK;
    for (const char *s = ops; *s;) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        bool known = false;
        for (size_t i = 0; i < N_OPS; i++)
            known |= strlen(k_ops[i]) == l && !strncmp(s, k_ops[i], l);
        if (!known)
            return glm_errorf(GLM_ERR_INVALID, "unknown op '%.*s' (known: rms_norm, matvec, matvec_id, get_rows, rope, "
                                               "add, swiglu, copy, moe_route, moe_combine, argmax, mla_attention, matmul, "
                                               "matmul_id)",
                              (int)(l > 40 ? 40 : l), s);
        s += l + (e ? 1 : 0);
    }
    return GLM_OK;
}

static void describe_device(glm_vk *vk, char *out, size_t cap)
{
    VkPhysicalDevice phys = glm_vk_physical_device(vk);
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(phys, &pr);
    VkPhysicalDeviceDriverProperties drv = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv };
    bool has_drv = pr.apiVersion >= VK_API_VERSION_1_2;
    if (has_drv)
        vkGetPhysicalDeviceProperties2(phys, &p2);
    snprintf(out, cap, "%.120s; driver %.60s %.120s (version 0x%x); Vulkan %u.%u.%u", pr.deviceName, has_drv ? drv.driverName : "?",
             has_drv ? drv.driverInfo : "", pr.driverVersion, VK_API_VERSION_MAJOR(pr.apiVersion),
             VK_API_VERSION_MINOR(pr.apiVersion), VK_API_VERSION_PATCH(pr.apiVersion));
}

glm_status glm_parity_run(glm_vk *vk, const glm_parity_options *opt, glm_parity_report *rep)
{
    GLM_TRY(glm_parity_check_ops(opt->ops));
    pctx p = { .vk = vk, .o = opt, .rep = rep, .rng = opt->seed };
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(glm_vk_physical_device(vk), &pr);
    p.max_range = pr.limits.maxStorageBufferRange;
    rep->seed = opt->seed;
    describe_device(vk, rep->device, sizeof rep->device);
    glm_status s = GLM_OK;
    for (size_t i = 0; i < N_OPS && s == GLM_OK; i++) {
        if (!selected(opt->ops, k_ops[i]))
            continue;
        switch (i) {
        case 0: s = op_rms_norm(&p); break;
        case 1: s = op_matvec(&p); break;
        case 2: s = op_matvec_id(&p); break;
        case 3: s = op_get_rows(&p); break;
        case 4: s = op_rope(&p); break;
        case 5: s = op_eltwise(&p, GLM_VK_ADD); break;
        case 6: s = op_eltwise(&p, GLM_VK_SWIGLU); break;
        case 7: s = op_eltwise(&p, GLM_VK_COPY); break;
        case 8: s = op_moe_route(&p); break;
        case 9: s = op_moe_combine(&p); break;
        case 10: s = op_argmax(&p); break;
        case 11: s = op_mla(&p); break;
        case 12: s = op_matmul(&p); break;
        default: s = op_matmul_id(&p); break;
        }
    }
    release(&p);
    return s;
}

void glm_parity_report_free(glm_parity_report *rep)
{
    free(rep->rows);
    rep->rows = NULL;
    rep->n = rep->cap = 0;
}

size_t glm_parity_failures(const glm_parity_report *rep)
{
    size_t f = 0;
    for (size_t i = 0; i < rep->n; i++)
        f += !rep->rows[i].pass;
    return f;
}

/* ---- output --------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || b->n + (size_t)need + 1 > b->cap) {
        size_t cap = (b->cap + (size_t)(need < 0 ? 0 : need) + 1) * 2;
        char *ns = need < 0 ? NULL : realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

static void md_row(sbuf *b, const glm_parity_row *r)
{
    sb_printf(b, "| %s | %s | %s | ", r->op, r->type, r->shape);
    if (r->skipped) {
        sb_printf(b, "- | - | - | - | - | skipped (buffer > device limit) | - |\n");
        return;
    }
    if (strcmp(r->type, "i32") != 0) /* a float output exists */
        sb_printf(b, "%.3g | %.3g | ", r->nmse, r->max_abs);
    else
        sb_printf(b, "- | - | ");
    if (r->bound > 0)
        sb_printf(b, "%.0e | ", r->bound);
    else
        sb_printf(b, "exact | ");
    if (r->exact)
        sb_printf(b, "%llu | ", (unsigned long long)r->mismatches);
    else
        sb_printf(b, "- | ");
    sb_printf(b, "%s | %s | %.0f |\n", r->written ? "yes" : "NO", r->pass ? "pass" : "FAIL", r->usec);
}

char *glm_parity_markdown(const glm_parity_report *rep)
{
    sbuf b = { 0 };
    sb_printf(&b, "# glm47 parity: Vulkan kernels vs the reference path\n\n");
    sb_printf(&b, "device: %s; seed %llu; %zu rows, %zu failed\n\n", rep->device, (unsigned long long)rep->seed, rep->n,
              glm_parity_failures(rep));
    sb_printf(&b, "| op | type | shape | NMSE | max-abs | NMSE bound | mismatches | written | result | us |\n");
    sb_printf(&b, "|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < rep->n; i++)
        md_row(&b, &rep->rows[i]);
    sb_printf(&b, "\nNMSE = sum (ref - gpu)^2 / sum ref^2; exact rows count differing values (ids, or bits for "
                  "get_rows/copy/untouched rope channels); written = every output poison overwritten with a finite value, guard "
                  "intact; us = wall time of record + submit + fence wait (faster of two submits when under 100 ms).\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *glm_parity_json(const glm_parity_report *rep)
{
    cJSON *o = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(o, "rows");
    cJSON_AddStringToObject(o, "device", rep->device);
    cJSON_AddNumberToObject(o, "seed", (double)rep->seed);
    cJSON_AddNumberToObject(o, "failures", (double)glm_parity_failures(rep));
    for (size_t i = 0; i < rep->n && rows; i++) {
        const glm_parity_row *r = &rep->rows[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "op", r->op);
        cJSON_AddStringToObject(j, "type", r->type);
        cJSON_AddStringToObject(j, "shape", r->shape);
        cJSON_AddNumberToObject(j, "nmse", r->nmse);
        cJSON_AddNumberToObject(j, "max_abs", r->max_abs);
        cJSON_AddNumberToObject(j, "bound", r->bound);
        cJSON_AddBoolToObject(j, "exact", r->exact);
        cJSON_AddNumberToObject(j, "mismatches", (double)r->mismatches);
        cJSON_AddBoolToObject(j, "written", r->written);
        cJSON_AddBoolToObject(j, "skipped", r->skipped);
        cJSON_AddBoolToObject(j, "pass", r->pass);
        cJSON_AddNumberToObject(j, "usec", r->usec);
        cJSON_AddItemToArray(rows, j);
    }
    char *s = rows ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    return s;
}
