/* Vulkan kernels against the reference path (ref/), one parity case per kernel over a shape
 * table (1, odd sizes, non-multiples of the 64-wide workgroup, block multiples) and every
 * weight type. Runs on whatever device glm_vk picks (Mesa's lavapipe in CI) with the Khronos
 * validation layer when installed: any validation report fails the test. Inputs are random
 * from a printed seed; outputs are poisoned first, followed by a guard zone, and must be
 * fully written. Tolerances: tests/tolerances.h. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vk/ops.h"
#include "backend/vk/parity.h"
#include "ref/dequant.h"
#include "ref/matmul.h"
#include "ref/ops.h"
#include "ref/quantize.h"
#include "tolerances.h"
#include "util/testutil.h"

static glm_vk *g_vk;
static tu_rng g_rng;

static void setup(void)
{
    /* created in the forked child, per STYLE.md */
    glm_vk_options o = { .device_index = -1, .validation = true };
    glm_status s = glm_vk_create(&g_vk, &o);
    ck_assert_msg(s == GLM_OK, "no Vulkan device: %s", glm_last_error());
    g_rng.s = tu_seed("vk_ops");
    printf("vk_ops: device %s, validation %s\n", glm_vk_device_name(g_vk),
           glm_vk_validation_enabled(g_vk) ? "on" : "not installed");
}

static void teardown(void)
{
    uint32_t msgs = glm_vk_validation_messages(g_vk);
    glm_vk_destroy(g_vk);
    ck_assert_msg(msgs == 0, "%u validation messages", msgs);
}

/* ---- buffers ------------------------------------------------------------------------- */

/* A device buffer holding a copy of `bytes` (rounded up to whole words). */
static glm_vk_buffer dev_copy(const void *src, size_t bytes)
{
    glm_vk_buffer b;
    size_t n = (bytes + 3) & ~(size_t)3;
    ck_assert(glm_vk_buffer_create(g_vk, &b, n, false) == GLM_OK);
    uint8_t *tmp = calloc(1, n);
    memcpy(tmp, src, bytes);
    ck_assert(glm_vk_upload(g_vk, &b, 0, tmp, n) == GLM_OK);
    free(tmp);
    return b;
}

/* A host-visible output of `n` elements followed by a guard zone, all poisoned. */
static glm_vk_buffer out_buf(size_t n)
{
    glm_vk_buffer b;
    ck_assert(glm_vk_buffer_create(g_vk, &b, (n + TU_GUARD) * sizeof(float), true) == GLM_OK);
    tu_poison(b.map, n + TU_GUARD);
    return b;
}

/* The guard after n elements of an out_buf untouched. */
static void check_guard(const glm_vk_buffer *b, size_t n, const char *what)
{
    float guard[TU_GUARD];
    tu_poison(guard, TU_GUARD);
    ck_assert_msg(memcmp(guard, (const float *)b->map + n, sizeof guard) == 0, "%s: write past the output", what);
}

/* Every one of the n outputs written and finite; the guard after them untouched. */
static void check_out(const glm_vk_buffer *b, size_t n, const char *what)
{
    ck_assert_msg(tu_all_written(b->map, n), "%s: output element not written or not finite", what);
    check_guard(b, n, what);
}

/* check_out, then the NMSE of the n outputs against ref within tol; returns the NMSE. */
static double check_close(const glm_vk_buffer *b, const float *ref, size_t n, double tol, const char *what)
{
    check_out(b, n, what);
    double e = tu_nmse(ref, b->map, n);
    ck_assert_msg(e <= tol, "%s: nmse %.3g", what, e);
    return e;
}

/* Destroys the n buffers of a test case. */
static void destroy_bufs(glm_vk_buffer *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        glm_vk_buffer_destroy(g_vk, b[i]);
}

static glm_vk_view view(const glm_vk_buffer *b, uint32_t rows, uint32_t cols)
{
    return (glm_vk_view){ b, 0, rows, cols, cols };
}

static void run(void) { ck_assert_msg(glm_vk_submit_wait(g_vk) == GLM_OK, "%s", glm_last_error()); }

/* ---- random weights -------------------------------------------------------------------- */

/* A random weight of `slabs` × [rows][cols] in type t: host bytes and a device copy. */
typedef struct test_weight {
    uint8_t *host;
    glm_vk_buffer dev;
    glm_vk_weight w;
} test_weight;

/* A random weight of `slabs` slabs at byte `lead` (a multiple of 4) of its device buffer. */
static void make_weight_at(test_weight *tw, glm_type t, uint32_t cols, uint32_t rows, uint32_t slabs, uint32_t lead)
{
    uint32_t rb = (uint32_t)glm_row_bytes(t, cols);
    size_t bytes = (size_t)rb * rows * slabs;
    tw->host = malloc(bytes);
    glm_parity_random_blocks(tw->host, t, bytes / glm_type_info(t)->bytes, &g_rng.s);
    uint8_t *dev = calloc(lead + bytes, 1);
    memcpy(dev + lead, tw->host, bytes);
    tw->dev = dev_copy(dev, lead + bytes);
    free(dev);
    tw->w = (glm_vk_weight){ &tw->dev, t, lead, cols, rows, slabs, rb, rb * rows };
}

static void make_weight(test_weight *tw, glm_type t, uint32_t cols, uint32_t rows, uint32_t slabs)
{
    make_weight_at(tw, t, cols, rows, slabs, 0);
}

static void free_weight(test_weight *tw)
{
    glm_vk_buffer_destroy(g_vk, &tw->dev);
    free(tw->host);
}

/* reference: y = W_slab · x with a double accumulator over the ref dequantized rows */
static void ref_matvec(float *y, const test_weight *tw, uint32_t slab, const float *x)
{
    float *row = malloc(tw->w.ncols * sizeof(float));
    for (uint32_t r = 0; r < tw->w.nrows; r++) {
        glm_ref_dequant_row(row, tw->host + (size_t)slab * tw->w.slab_bytes + (size_t)r * tw->w.row_bytes, tw->w.type,
                            tw->w.ncols);
        double acc = 0;
        for (uint32_t i = 0; i < tw->w.ncols; i++)
            acc += (double)row[i] * x[i];
        y[r] = (float)acc;
    }
    free(row);
}

static const glm_type k_all_types[] = { GLM_TYPE_F32,  GLM_TYPE_F16,  GLM_TYPE_BF16, GLM_TYPE_Q8_0,   GLM_TYPE_Q4_0,
                                        GLM_TYPE_Q4_1, GLM_TYPE_Q5_0, GLM_TYPE_Q5_1, GLM_TYPE_IQ4_NL, GLM_TYPE_MXFP4,
                                        GLM_TYPE_Q2_K, GLM_TYPE_Q3_K, GLM_TYPE_Q4_K, GLM_TYPE_Q5_K,   GLM_TYPE_Q6_K,
                                        GLM_TYPE_IQ4_XS };
#define N_TYPES (sizeof k_all_types / sizeof k_all_types[0])

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(test_upload_buffer)
{
    /* the step rows' buffer: the host writes it through its mapping, kernels read it, and it
     * is rewritten between recordings (a copy each time into a poisoned output) */
    enum { N = 777 };
    glm_vk_buffer up, out = out_buf(N);
    ck_assert_msg(glm_vk_buffer_create_upload(g_vk, &up, N * sizeof(float)) == GLM_OK, "%s", glm_last_error());
    ck_assert_msg(up.map != NULL, "upload buffer not mapped");
    float src[N];
    for (int round = 0; round < 2; round++) {
        tu_fill_uniform(&g_rng, src, N, -1, 1);
        memcpy(up.map, src, sizeof src);
        tu_poison(out.map, N);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        glm_vk_view v = { &up, 0, 1, N, N };
        ck_assert(glm_vk_eltwise(g_vk, GLM_VK_COPY, view(&out, 1, N), v, v) == GLM_OK);
        run();
        check_out(&out, N, "upload copy");
        ck_assert_msg(memcmp(out.map, src, sizeof src) == 0, "round %d: the device read other values", round);
    }
    glm_vk_buffer_destroy(g_vk, &up);
    glm_vk_buffer_destroy(g_vk, &out);
}
END_TEST

START_TEST(test_download)
{
    /* a download during a recording lands after the recorded work (a copy into a device-local
     * buffer, read back in the same submission); sizes grow so that the staging buffer is
     * replaced mid-recording; and one with no recording open */
    const size_t sizes[3] = { 300, 5000, 70000 };
    for (int i = 0; i < 3; i++) {
        size_t n = sizes[i];
        float *src = malloc(n * 4), *got = malloc(n * 4);
        tu_fill_uniform(&g_rng, src, n, -1, 1);
        glm_vk_buffer up, dev;
        ck_assert(glm_vk_buffer_create_upload(g_vk, &up, n * 4) == GLM_OK);
        ck_assert(glm_vk_buffer_create(g_vk, &dev, n * 4, false) == GLM_OK);
        memcpy(up.map, src, n * 4);
        glm_vk_view v = { &up, 0, 1, (uint32_t)n, (uint32_t)n };
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_eltwise(g_vk, GLM_VK_COPY, view(&dev, 1, (uint32_t)n), v, v) == GLM_OK);
        tu_poison(got, n);
        ck_assert_msg(glm_vk_download(g_vk, got, &dev, 0, n * 4) == GLM_OK, "%s", glm_last_error());
        ck_assert_msg(memcmp(got, src, n * 4) == 0, "download of %zu floats in a recording differs", n);
        tu_poison(got, n);
        ck_assert(glm_vk_download(g_vk, got + 1, &dev, 4, (n - 1) * 4) == GLM_OK);
        ck_assert_msg(memcmp(got + 1, src + 1, (n - 1) * 4) == 0, "download of %zu floats at an offset differs", n);
        glm_vk_buffer_destroy(g_vk, &up);
        glm_vk_buffer_destroy(g_vk, &dev);
        free(src), free(got);
    }
}
END_TEST

START_TEST(test_rms_norm)
{
    /* every n in both forms (the vec form takes the multiples of 4 up to 4096: 4096 fills its
     * four registers a lane, 4100 goes back to the scalar form), gains F32, BF16 and F16 */
    static const uint32_t ns[] = { 1, 7, 64, 65, 256, 300, 2048, 4096, 4100 };
    static const glm_type gts[] = { GLM_TYPE_F32, GLM_TYPE_BF16, GLM_TYPE_F16 };
    bool vec_default = glm_vk_rms_vec();
    double worst = 0;
    for (int vec = 0; vec < 2; vec++)
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (uint32_t rows = 1; rows <= 3; rows += 2)
            for (int bf = 0; bf < 3; bf++) {
                glm_vk_set_rms_vec(vec);
                uint32_t n = ns[a];
                size_t total = (size_t)n * rows;
                float *x = malloc(total * 4), *ref = malloc(total * 4), *wf = malloc(n * 4);
                tu_fill_uniform(&g_rng, x, total, -3.0f, 3.0f);
                test_weight tw;
                make_weight(&tw, gts[bf], n, 1, 1);
                glm_ref_dequant_row(wf, tw.host, tw.w.type, n);
                for (uint32_t i = 0; i < rows; i++)
                    glm_ref_rms_norm(ref + (size_t)i * n, x + (size_t)i * n, wf, n, 1e-5f);
                glm_vk_buffer bx = dev_copy(x, total * 4), bo = out_buf(total);
                ck_assert(glm_vk_begin(g_vk) == GLM_OK);
                ck_assert(glm_vk_rms_norm(g_vk, view(&bo, rows, n), view(&bx, rows, n), &tw.w, 1e-5f) == GLM_OK);
                run();
                check_out(&bo, total, "rms_norm");
                double e = tu_nmse(ref, bo.map, total);
                worst = e > worst ? e : worst;
                ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "rms_norm n=%u rows=%u gain %s vec %d nmse %.3g", n, rows,
                              glm_type_name(gts[bf]), vec, e);
                glm_vk_buffer_destroy(g_vk, &bx);
                glm_vk_buffer_destroy(g_vk, &bo);
                free_weight(&tw);
                free(x);
                free(ref);
                free(wf);
            }
    glm_vk_set_rms_vec(vec_default);
    printf("vk rms_norm: worst nmse %.3g\n", worst);
}
END_TEST

/* x += t written back, then y = rms_norm(x) ⊙ w, as add followed by rms_norm, in rms_norm.comp's
 * scalar form or (vec) its vec form */
static void add_rms_norm_case(bool vec)
{
    bool vec_default = glm_vk_rms_vec();
    glm_vk_set_rms_vec(vec);
    const uint32_t rows = 3, n = 300;
    size_t total = (size_t)rows * n;
    float *x = malloc(total * 4), *t = malloc(total * 4), *ref = malloc(total * 4), *wf = malloc(n * 4);
    tu_fill_uniform(&g_rng, x, total, -3.0f, 3.0f);
    tu_fill_uniform(&g_rng, t, total, -1.0f, 1.0f);
    test_weight tw;
    make_weight(&tw, GLM_TYPE_F32, n, 1, 1);
    glm_ref_dequant_row(wf, tw.host, tw.w.type, n);
    glm_vk_buffer bx = out_buf(total), bt = dev_copy(t, total * 4), bo = out_buf(total);
    memcpy(bx.map, x, total * 4);
    glm_ref_add(x, x, t, (int64_t)total);
    for (uint32_t i = 0; i < rows; i++)
        glm_ref_rms_norm(ref + (size_t)i * n, x + (size_t)i * n, wf, n, 1e-5f);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert(glm_vk_add_rms_norm(g_vk, view(&bo, rows, n), view(&bx, rows, n), view(&bt, rows, n), &tw.w, 1e-5f) ==
              GLM_OK);
    /* y on x's buffer is refused */
    ck_assert_int_eq(glm_vk_add_rms_norm(g_vk, view(&bx, rows, n), view(&bx, rows, n), view(&bt, rows, n), &tw.w, 1e-5f),
                     GLM_ERR_INVALID);
    run();
    check_out(&bo, total, "add_rms_norm");
    double e = tu_nmse(ref, bo.map, total), ex = tu_nmse(x, bx.map, total);
    ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE && ex <= TOL_VK_ELEMENTWISE_NMSE, "add_rms_norm (vec %d) nmse %.3g, x %.3g",
                  vec, e, ex);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &bt);
    glm_vk_buffer_destroy(g_vk, &bo);
    free_weight(&tw);
    free(x);
    free(t);
    free(ref);
    free(wf);
    glm_vk_set_rms_vec(vec_default);
}

START_TEST(test_add_rms_norm)
{
    add_rms_norm_case(false);
    add_rms_norm_case(true);
}
END_TEST

/* T rows of x through slab 1 of a random [2][nrows][ncols] weight of type t, by matvec or the
 * tiled matmul, against ref_matvec; every output must be written. With skew, x and y start one
 * element into their buffers and their rows are one element longer than the data (rows not on
 * 16 bytes: the tensor-core kernel's unaligned paths); the elements between rows must stay
 * untouched. Returns the NMSE. */
/* how: 0 matvec, 1 matmul (tiled), 2 matmul_f32 (the float32 tiled kernel, split where small) */
static double product_case(glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T, int how, bool skew)
{
    test_weight tw;
    make_weight_at(&tw, t, ncols, nrows, 2, skew ? 4 : 0); /* skewed: weight rows off 16 bytes too */
    uint32_t sk = skew ? 1 : 0, xld = ncols + sk, yld = nrows + sk;
    float *x = malloc((size_t)ncols * T * 4), *ref = malloc((size_t)nrows * T * 4);
    float *xs = calloc((size_t)xld * T + sk, 4), *got = malloc((size_t)nrows * T * 4);
    tu_fill_uniform(&g_rng, x, (size_t)ncols * T, -2, 2);
    for (uint32_t v = 0; v < T; v++) {
        ref_matvec(ref + (size_t)v * nrows, &tw, 1, x + (size_t)v * ncols);
        memcpy(xs + sk + (size_t)v * xld, x + (size_t)v * ncols, (size_t)ncols * 4);
    }
    size_t ny = (size_t)yld * T + sk, n = (size_t)nrows * T;
    glm_vk_buffer bx = dev_copy(xs, ((size_t)xld * T + sk) * 4), by = out_buf(ny);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    glm_vk_view vy = { &by, sk, T, nrows, yld }, vx = { &bx, sk, T, ncols, xld };
    glm_vk_weight w1 = tw.w; /* slab 1 */
    w1.offset += tw.w.slab_bytes;
    w1.nslabs = 1;
    ck_assert_msg((how == 2   ? glm_vk_matmul_f32(g_vk, vy, &w1, vx)
                   : how == 1 ? glm_vk_matmul(g_vk, vy, &tw.w, 1, vx)
                              : glm_vk_matvec(g_vk, vy, &tw.w, 1, vx)) == GLM_OK,
                  "%s", glm_last_error());
    run();
    const float *yb = by.map;
    float poison[1];
    tu_poison(poison, 1);
    for (uint32_t v = 0; v < T; v++) {
        memcpy(got + (size_t)v * nrows, yb + sk + (size_t)v * yld, (size_t)nrows * 4);
        if (skew) /* the element before each row */
            ck_assert_msg(memcmp(yb + (size_t)v * yld, poison, 4) == 0, "%s: write between rows", glm_type_name(t));
    }
    ck_assert_msg(tu_all_written(got, n), "%s rows=%u T=%u%s: output element not written or not finite",
                  glm_type_name(t), nrows, T, skew ? " skewed" : "");
    float guard[TU_GUARD];
    tu_poison(guard, TU_GUARD);
    ck_assert_msg(memcmp(guard, yb + ny, sizeof guard) == 0, "%s: write past the output", glm_type_name(t));
    double e = tu_nmse(ref, got, n);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &by);
    free_weight(&tw);
    free(x);
    free(xs);
    free(got);
    free(ref);
    return e;
}

START_TEST(test_matvec_all_types)
{
    static const uint32_t col_blocks[] = { 1, 3, 8 };
    static const uint32_t rows[] = { 1, 5, 67 };
    double worst = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        glm_type t = k_all_types[ti];
        const glm_type_traits *tr = glm_type_info(t);
        uint32_t blk = tr->block == 1 ? 32 : tr->block;
        for (size_t ci = 0; ci < 3; ci++)
            for (size_t ri = 0; ri < 3; ri++) {
                uint32_t ncols = blk * col_blocks[ci] + (tr->block == 1 ? 1 : 0), nrows = rows[ri];
                double e = product_case(t, ncols, nrows, 2, false, false);
                worst = e > worst ? e : worst;
                ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec %s rows=%u cols=%u nmse %.3g", tr->name, nrows, ncols, e);
            }
    }
    printf("vk matvec: worst nmse over all types and shapes %.3g\n", worst);
}
END_TEST

/* ref[v] = W · RMSNorm(x[v]; g, 1e-6) for nvec rows of ncols (malloc'd, nvec × W's rows). */
static float *ref_normed_products(const test_weight *tw, const test_weight *tg, const float *x, uint32_t nvec)
{
    const uint32_t ncols = tw->w.ncols, nrows = tw->w.nrows;
    float *xn = malloc((size_t)ncols * 4), *gf = malloc((size_t)ncols * 4), *ref = malloc((size_t)nrows * nvec * 4);
    glm_ref_dequant_row(gf, tg->host, tg->w.type, ncols);
    for (uint32_t v = 0; v < nvec; v++) {
        glm_ref_rms_norm(xn, x + (size_t)v * ncols, gf, ncols, 1e-6f);
        ref_matvec(ref + (size_t)v * nrows, tw, 0, xn);
    }
    free(xn), free(gf);
    return ref;
}

START_TEST(test_rms_norm_matvec)
{
    /* y = W · RMSNorm(x; g) in one dispatch vs ref rms_norm followed by the reference product;
     * gains in F32 and BF16, a plain type with a tail (F32, 289 columns) and the hot quantized
     * types, one and three vectors (each normed on its own) */
    static const glm_type types[] = { GLM_TYPE_F32, GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_Q5_0, GLM_TYPE_Q8_0 };
    double worst = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (uint32_t nvec = 1; nvec <= 3; nvec += 2) {
            glm_type t = types[ti];
            uint32_t ncols = t == GLM_TYPE_F32 ? 289 : 512, nrows = ti % 2 ? 37 : 70;
            test_weight tw, tg;
            make_weight(&tw, t, ncols, nrows, 1);
            make_weight(&tg, nvec == 1 ? GLM_TYPE_F32 : GLM_TYPE_BF16, ncols, 1, 1);
            float *x = malloc((size_t)ncols * nvec * 4);
            tu_fill_uniform(&g_rng, x, (size_t)ncols * nvec, -3, 3);
            float *ref = ref_normed_products(&tw, &tg, x, nvec);
            glm_vk_buffer bx = dev_copy(x, (size_t)ncols * nvec * 4), by = out_buf((size_t)nrows * nvec);
            ck_assert(glm_vk_begin(g_vk) == GLM_OK);
            ck_assert_msg(glm_vk_rms_norm_matvec(g_vk, view(&by, nvec, nrows), &tw.w, NULL, view(&bx, nvec, ncols), NULL,
                                                 &tg.w, 1e-6f) == GLM_OK,
                          "%s", glm_last_error());
            /* a gain of the wrong length is refused */
            tg.w.ncols--;
            ck_assert_int_eq(glm_vk_rms_norm_matvec(g_vk, view(&by, nvec, nrows), &tw.w, NULL, view(&bx, nvec, ncols),
                                                    NULL, &tg.w, 1e-6f),
                             GLM_ERR_INVALID);
            run();
            double e = check_close(&by, ref, (size_t)nrows * nvec, TOL_VK_MATVEC_NMSE, "rms_norm_matvec");
            worst = e > worst ? e : worst;
            /* x is left as it was */
            float *xb = malloc((size_t)ncols * nvec * 4);
            ck_assert(glm_vk_download(g_vk, xb, &bx, 0, (size_t)ncols * nvec * 4) == GLM_OK);
            ck_assert_msg(memcmp(xb, x, (size_t)ncols * nvec * 4) == 0, "rms_norm_matvec changed x");
            free(xb);
            glm_vk_buffer_destroy(g_vk, &bx);
            glm_vk_buffer_destroy(g_vk, &by);
            free_weight(&tw);
            free_weight(&tg);
            free(x);
            free(ref);
        }
    printf("vk rms_norm_matvec: worst nmse %.3g\n", worst);
}
END_TEST

START_TEST(test_matvec_add)
{
    /* y += W·x onto random y (the residual add folded into the product), vs y + ref product */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_F32 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t ncols = 512, nrows = 45, nvec = 2;
        test_weight tw;
        make_weight(&tw, types[ti], ncols, nrows, 1);
        size_t n = (size_t)nrows * nvec;
        float *x = malloc((size_t)ncols * nvec * 4), *y0 = malloc(n * 4), *ref = malloc(n * 4);
        tu_fill_uniform(&g_rng, x, (size_t)ncols * nvec, -2, 2);
        tu_fill_uniform(&g_rng, y0, n, -5, 5);
        for (uint32_t v = 0; v < nvec; v++)
            ref_matvec(ref + (size_t)v * nrows, &tw, 0, x + (size_t)v * ncols);
        glm_ref_add(ref, ref, y0, (int64_t)n);
        glm_vk_buffer bx = dev_copy(x, (size_t)ncols * nvec * 4), by = out_buf(n);
        memcpy(by.map, y0, n * 4);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_matvec_add(g_vk, view(&by, nvec, nrows), &tw.w, view(&bx, nvec, ncols)) == GLM_OK, "%s",
                      glm_last_error());
        /* y on x's buffer is refused */
        ck_assert_int_eq(glm_vk_matvec_add(g_vk, view(&bx, 1, nrows), &tw.w, view(&bx, 1, ncols)), GLM_ERR_INVALID);
        run();
        check_out(&by, n, "matvec_add");
        double e = tu_nmse(ref, by.map, n);
        ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec_add %s nmse %.3g", glm_type_name(types[ti]), e);
        printf("vk matvec_add %s: nmse %.3g\n", glm_type_name(types[ti]), e);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &by);
        free_weight(&tw);
        free(x);
        free(y0);
        free(ref);
    }
}
END_TEST

START_TEST(test_matvec_id)
{
    /* T tokens, k experts each out of E; x per token (mode 1) or per (token, expert) (mode 2);
     * Q4_K and Q6_K on matvec_fast.comp, Q4_0 on matvec.comp */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_Q4_0 };
    const uint32_t T = 3, k = 3, E = 6, ncols = 512, nrows = 37;
    for (int c = 0; c < 6; c++) {
        int per_pair = c & 1;
        test_weight tw;
        make_weight(&tw, types[c / 2], ncols, nrows, E);
        uint32_t xrows = per_pair ? T * k : T;
        float *x = malloc((size_t)xrows * ncols * 4), *ref = malloc((size_t)T * k * nrows * 4);
        tu_fill_uniform(&g_rng, x, (size_t)xrows * ncols, -1, 1);
        int32_t ids[9];
        for (uint32_t i = 0; i < T * k; i++)
            ids[i] = (int32_t)(tu_next(&g_rng) % E);
        for (uint32_t i = 0; i < T * k; i++)
            ref_matvec(ref + (size_t)i * nrows, &tw, (uint32_t)ids[i], x + (size_t)(per_pair ? i : i / k) * ncols);
        glm_vk_buffer bx = dev_copy(x, (size_t)xrows * ncols * 4), bi = dev_copy(ids, sizeof ids);
        glm_vk_buffer by = out_buf((size_t)T * k * nrows);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_matvec_id(g_vk, view(&by, T * k, nrows), &tw.w, view(&bx, xrows, ncols), view(&bi, T, k)) ==
                          GLM_OK,
                      "%s", glm_last_error());
        run();
        check_out(&by, (size_t)T * k * nrows, "matvec_id");
        double e = tu_nmse(ref, by.map, (size_t)T * k * nrows);
        ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec_id %s per_pair=%d nmse %.3g", glm_type_name(tw.w.type), per_pair,
                      e);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &by);
        free_weight(&tw);
        free(x);
        free(ref);
    }
}
END_TEST

START_TEST(test_matvec_id_combine)
{
    /* y[t] += Σ_j w[t][j] · W_{ids[t][j]} · x[t·k+j] in one dispatch (the routed down products
     * with their mixture, glm_vk_matvec_id_combine_add), against the reference and against the
     * two dispatches it replaces (glm_vk_matvec_id, glm_vk_moe_combine_add); rows of 16 and 48
     * tasks (fewer and more than a slice's lanes), k of 3 and 5 (the shared expert as the 5th),
     * the row rounds split over two slices (KS2) and not */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_Q5_0, GLM_TYPE_Q8_0 };
    const uint32_t E = 7, nrows = 70;
    uint32_t ks_default = glm_vk_matvec_ks_groups(g_vk);
    for (int c = 0; c < 16; c++) {
        glm_type t = types[c % 4];
        uint32_t ncols = c & 4 ? 1536 : 512, k = c & 8 ? 5 : 3, T = c & 8 ? 1 : 3;
        glm_vk_matvec_set_ks_groups(g_vk, c & 1 ? 0 : 1u << 20);
        test_weight tw;
        make_weight(&tw, t, ncols, nrows, E);
        float *x = malloc((size_t)T * k * ncols * 4), *w = malloc((size_t)T * k * 4);
        float *res = malloc((size_t)T * nrows * 4), *ref = malloc((size_t)T * nrows * 4), *p = malloc(nrows * 4);
        tu_fill_uniform(&g_rng, x, (size_t)T * k * ncols, -1, 1);
        tu_fill_uniform(&g_rng, w, (size_t)T * k, 0.1f, 1);
        tu_fill_uniform(&g_rng, res, (size_t)T * nrows, -4, 4);
        int32_t ids[15];
        for (uint32_t i = 0; i < T; i++) /* distinct experts a token, as the router gives them */
            for (uint32_t j = 0; j < k; j++) {
                int32_t e;
                int dup;
                do {
                    e = (int32_t)(tu_next(&g_rng) % E);
                    dup = 0;
                    for (uint32_t q = 0; q < j; q++)
                        dup |= ids[i * k + q] == e;
                } while (dup);
                ids[i * k + j] = e;
            }
        memcpy(ref, res, (size_t)T * nrows * 4);
        for (uint32_t i = 0; i < T * k; i++) {
            ref_matvec(p, &tw, (uint32_t)ids[i], x + (size_t)i * ncols);
            glm_ref_axpy(ref + (size_t)(i / k) * nrows, w[i], p, nrows);
        }
        ck_assert_msg(glm_vk_matvec_id_combine_fits(g_vk, &tw.w, (glm_vk_view){ NULL, 0, T * k, ncols, ncols }, k),
                      "%s: the fused product does not take this weight", glm_type_name(t));
        glm_vk_buffer bx = dev_copy(x, (size_t)T * k * ncols * 4), bi = dev_copy(ids, sizeof ids);
        glm_vk_buffer bw = dev_copy(w, (size_t)T * k * 4);
        glm_vk_buffer by = out_buf((size_t)T * nrows), by2 = out_buf((size_t)T * nrows);
        glm_vk_buffer bp = out_buf((size_t)T * k * nrows);
        memcpy(by.map, res, (size_t)T * nrows * 4);
        memcpy(by2.map, res, (size_t)T * nrows * 4);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_matvec_id_combine_add(g_vk, view(&by, T, nrows), &tw.w, view(&bx, T * k, ncols),
                                                   view(&bi, T, k), view(&bw, T, k)) == GLM_OK,
                      "%s", glm_last_error());
        ck_assert(glm_vk_matvec_id(g_vk, view(&bp, T * k, nrows), &tw.w, view(&bx, T * k, ncols), view(&bi, T, k)) ==
                  GLM_OK);
        ck_assert(glm_vk_moe_combine_add(g_vk, view(&by2, T, nrows), view(&bp, T * k, nrows), view(&bw, T, k),
                                         view(&by2, T, nrows)) == GLM_OK);
        run();
        double e = check_close(&by, ref, (size_t)T * nrows, TOL_VK_MATVEC_NMSE, "matvec_id_combine_add");
        double e2 = tu_nmse(by2.map, by.map, (size_t)T * nrows);
        ck_assert_msg(e2 <= TOL_VK_MATVEC_NMSE, "matvec_id_combine_add against the two dispatches: nmse %.3g", e2);
        printf("vk matvec_id_combine_add %s cols %u k %u T %u ks2 %s: nmse %.3g (against two dispatches %.3g)\n",
               glm_type_name(t), ncols, k, T, c & 1 ? "off" : "allowed", e, e2);
        glm_vk_buffer *bufs[] = { &bx, &bi, &bw, &by, &by2, &bp };
        destroy_bufs(bufs, sizeof bufs / sizeof bufs[0]);
        free_weight(&tw);
        free(x);
        free(w);
        free(res);
        free(ref);
        free(p);
    }
    glm_vk_matvec_set_ks_groups(g_vk, ks_default);
    /* refusals: more experts than the kernel holds, y sharing x's buffer */
    test_weight tw;
    make_weight(&tw, GLM_TYPE_Q4_K, 512, 8, 2);
    glm_vk_buffer bb = out_buf(4096);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert(glm_vk_matvec_id_combine_add(g_vk, view(&bb, 1, 8), &tw.w, view(&bb, 17, 512), view(&bb, 1, 17),
                                           view(&bb, 1, 17)) != GLM_OK);
    ck_assert(glm_vk_matvec_id_combine_add(g_vk, view(&bb, 1, 8), &tw.w, view(&bb, 2, 512), view(&bb, 1, 2),
                                           view(&bb, 1, 2)) != GLM_OK);
    run();
    glm_vk_buffer_destroy(g_vk, &bb);
    free_weight(&tw);
}
END_TEST

/* ---- tiled matmul (prefill) ---- */

/* The tiled kernels to test: the plain one (cm 0), the tensor-core one where the device has
 * it (1), and the workgroup-scope one (2, matmul_cm2) where the device has that too. */
static int matmul_kernels(void)
{
    return glm_vk_coopmat_available(g_vk) ? (glm_vk_cm2_available(g_vk) ? 3 : 2) : 1;
}
static double matmul_tol(int cm) { return cm ? TOL_VK_MATMUL_CM_NMSE : TOL_VK_MATMUL_NMSE; }
static const char *matmul_name(int cm) { return cm == 2 ? "_cm2" : cm ? "_cm" : ""; }
static void matmul_use(int cm)
{
    glm_vk_use_coopmat(g_vk, cm >= 1);
    glm_vk_use_cm2(g_vk, cm == 2);
}

START_TEST(test_matmul_all_types)
{
    /* token counts below, at and across the 64-row tile; weight rows likewise. The tensor-core
     * kernel also: 128-row weight tiles and 64- and 128-row token tiles (narrow and wide, each
     * over several tiles with a partial last one); skewed cases put x, y and weight rows off 16 bytes */
    static const uint32_t toks[] = { 9, 70, 140, 300 };
    static const uint32_t rows[] = { 5, 67, 200 };
    double worst[3] = { 0, 0, 0 };
    bool cm2_default = glm_vk_cm2_enabled(g_vk);
    uint32_t wide_default = glm_vk_coopmat_wide_groups(g_vk), gt = glm_vk_coopmat_grouped_tile(g_vk);
    uint32_t ahead = glm_vk_coopmat_ahead(g_vk), narrow = glm_vk_coopmat_narrow_groups(g_vk);
    for (int cm = 0; cm < matmul_kernels(); cm++) {
        matmul_use(cm);
        size_t nt = cm ? 4 : 2, nr = cm ? 3 : 2;
        /* tensor cores: token tiles of 64, 128 and 32 rows (wide % 3), each with the loads two
         * steps ahead, one, and steps of two chunks (wide / 3; all but the first two of these nine
         * only for the model's types, whose decodings cover every path of the kernel's loads: the
         * suite's time on the GPU; F32's 96 columns take one step ahead for two chunks);
         * matmul_cm2: the three tiles */
        for (int wide = 0; wide < (cm == 2 ? 3 : cm ? 9 : 1); wide++) {
            glm_vk_coopmat_set_wide_groups(g_vk, wide % 3 == 1 ? 0 : UINT32_MAX);
            glm_vk_coopmat_set_tiling(g_vk, gt, wide / 3 == 2 ? 0 : wide / 3 ? 1 : 2, wide % 3 == 2 ? UINT32_MAX : 0);
            for (size_t ti = 0; ti < N_TYPES; ti++) {
                glm_type t = k_all_types[ti];
                if (wide >= 2 && t != GLM_TYPE_F32 && t != GLM_TYPE_Q8_0 && t != GLM_TYPE_Q5_0 && t != GLM_TYPE_Q4_K &&
                    t != GLM_TYPE_Q6_K)
                    continue;
                const glm_type_traits *tr = glm_type_info(t);
                uint32_t ncols = tr->block == 1 ? 96 : 2 * tr->block < 256 ? 256 : 2 * tr->block;
                for (size_t ri = 0; ri < nr; ri++)
                    for (size_t ki = 0; ki < nt; ki++) {
                        uint32_t nrows = rows[ri], T = toks[ki];
                        bool skew = (ri + ki + ti) % 3 == 1;
                        double e = product_case(t, ncols, nrows, T, true, skew);
                        worst[cm] = e > worst[cm] ? e : worst[cm];
                        ck_assert_msg(e <= matmul_tol(cm), "matmul%s%s%s %s rows=%u cols=%u T=%u%s nmse %.3g",
                                      matmul_name(cm), wide % 3 == 1 ? " wide" : wide % 3 == 2 ? " narrow" : "",
                                      wide / 3 == 2 ? " 2-chunk" : wide / 3 ? " 1-ahead" : "", tr->name, nrows, ncols, T, skew ? " skewed" : "", e);
                    }
            }
        }
        printf("vk matmul%s: worst nmse over all types and shapes %.3g\n",
               cm == 2 ? "_cm2 (workgroup tensor cores; its four types, the others on matmul_cm)"
               : cm    ? "_cm (tensor cores)"
                       : "",
               worst[cm]);
    }
    glm_vk_coopmat_set_wide_groups(g_vk, wide_default);
    glm_vk_coopmat_set_tiling(g_vk, gt, ahead, narrow);
    glm_vk_use_coopmat(g_vk, true);
    glm_vk_use_cm2(g_vk, cm2_default);
}
END_TEST

/* y += W·x for a product that splits into column parts (glm_vk_matmul_add): y starts random,
 * and must end as y + the product of glm_vk_matmul, bit for bit. Returns false (nothing run)
 * where the product does not split. */
static bool matmul_add_case(glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T)
{
    test_weight tw;
    make_weight(&tw, t, ncols, nrows, 1);
    if (glm_vk_matmul_parts(g_vk, &tw.w, T) < 2) {
        free_weight(&tw);
        return false;
    }
    size_t n = (size_t)nrows * T;
    float *x = malloc((size_t)ncols * T * 4), *y0 = malloc(n * 4), *want = malloc(n * 4);
    tu_fill_uniform(&g_rng, x, (size_t)ncols * T, -2, 2);
    tu_fill_uniform(&g_rng, y0, n, -5, 5);
    glm_vk_buffer bx = dev_copy(x, (size_t)ncols * T * 4), bp = out_buf(n), by = out_buf(n);
    memcpy(by.map, y0, n * 4);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert_msg(glm_vk_matmul(g_vk, view(&bp, T, nrows), &tw.w, 0, view(&bx, T, ncols)) == GLM_OK, "%s",
                  glm_last_error());
    ck_assert_msg(glm_vk_matmul_add(g_vk, view(&by, T, nrows), &tw.w, view(&bx, T, ncols)) == GLM_OK, "%s",
                  glm_last_error());
    run();
    check_out(&bp, n, "matmul (for matmul_add)");
    const float *prod = bp.map;
    for (size_t i = 0; i < n; i++)
        want[i] = y0[i] + prod[i];
    ck_assert_msg(memcmp(by.map, want, n * 4) == 0, "matmul_add %s cols=%u: not y + the product, bit for bit",
                  glm_type_name(t), ncols);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &bp);
    glm_vk_buffer_destroy(g_vk, &by);
    free_weight(&tw);
    free(x), free(y0), free(want);
    return true;
}

START_TEST(test_matmul_split)
{
    /* plain products over whole 512-column parts: on tensor cores split 4 ways (2048 columns) and
     * 2 ways (5120), the parts summed by a second dispatch; with splitting off; the plain kernel */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_Q5_0, GLM_TYPE_Q8_0, GLM_TYPE_F32 };
    static const uint32_t shapes[][3] = { { 2048, 200, 70 }, { 5120, 67, 9 } }; /* ncols, nrows, T */
    uint32_t split_default = glm_vk_coopmat_split(g_vk);
    bool cm2_default = glm_vk_cm2_enabled(g_vk);
    for (int cm = 0; cm < (matmul_kernels() > 1 ? 2 : 1); cm++) {
        matmul_use(cm);
        for (uint32_t split = 4; split >= 1; split /= 4) {
            glm_vk_coopmat_set_split(g_vk, split);
            double worst = 0;
            for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
                for (size_t si = 0; si < 2; si++) {
                    double e = product_case(types[ti], shapes[si][0], shapes[si][1], shapes[si][2], true, (ti + si) % 2);
                    worst = e > worst ? e : worst;
                    ck_assert_msg(e <= matmul_tol(cm), "matmul%s split %u %s cols=%u nmse %.3g", matmul_name(cm), split,
                                  glm_type_name(types[ti]), shapes[si][0], e);
                }
            printf("vk matmul%s, splits up to %u: worst nmse %.3g\n", matmul_name(cm), split, worst);
            if (cm == 0)
                break; /* the plain kernel does not split */
            /* y += W·x through the parts' sum, where the product splits */
            unsigned adds = 0;
            for (size_t ti = 0; ti < 4; ti++)
                for (size_t si = 0; si < 2; si++)
                    adds += matmul_add_case(types[ti], shapes[si][0], shapes[si][1], shapes[si][2]);
            printf("vk matmul_add%s, splits up to %u: %u products split, each y + the product bit for bit\n",
                   matmul_name(cm), split, adds);
            ck_assert_msg(split == 1 || adds > 0, "matmul_add: no product split at splits up to %u", split);
        }
    }
    glm_vk_coopmat_set_split(g_vk, split_default);
    glm_vk_use_coopmat(g_vk, true);
    glm_vk_use_cm2(g_vk, cm2_default);
}
END_TEST

/* Begins a recording; where `half`, x (bx: xrows × ncols floats) also goes to float16 into a new
 * *bh first (glm_vk_to_half), whose view it returns (else an empty view). */
static glm_vk_view begin_half_x(bool half, glm_vk_buffer *bh, const glm_vk_buffer *bx, uint32_t xrows, uint32_t ncols)
{
    glm_vk_view xh = { 0 };
    if (half) {
        ck_assert(glm_vk_buffer_create(g_vk, bh, (size_t)xrows * ncols * 2, false) == GLM_OK);
        xh = view(bh, xrows, ncols / 2);
    }
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    if (half)
        ck_assert(glm_vk_to_half(g_vk, xh, view(bx, xrows, ncols)) == GLM_OK);
    return xh;
}

START_TEST(test_matmul_f32)
{
    /* the float32 tiled product wherever tensor cores are (the MoE router's logits): the router's
     * shape (64 experts, 2048 columns) at 512 tokens (split 16 ways) and 70 (split over 16 parts
     * too), a grid too large to split, and a skewed quantized case */
    static const struct { glm_type t; uint32_t ncols, nrows, T; bool skew; } cases[] = {
        { GLM_TYPE_F32, 2048, 64, 512, false }, { GLM_TYPE_F32, 2048, 64, 70, true },
        { GLM_TYPE_F32, 256, 300, 600, false }, { GLM_TYPE_Q4_K, 512, 67, 40, true },
    };
    double worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double e = product_case(cases[i].t, cases[i].ncols, cases[i].nrows, cases[i].T, 2, cases[i].skew);
        worst = e > worst ? e : worst;
        ck_assert_msg(e <= TOL_VK_MATMUL_NMSE, "matmul_f32 %s %ux%u T=%u nmse %.3g", glm_type_name(cases[i].t),
                      cases[i].nrows, cases[i].ncols, cases[i].T, e);
    }
    printf("vk matmul_f32: worst nmse %.3g\n", worst);
}
END_TEST

START_TEST(test_matmul_id_grouped)
{
    /* T tokens over two tiles, k slots out of E experts; expert 3 never chosen (an empty group),
     * in the first round expert 6 chosen by one pair only (a group of one row) and the others by
     * set numbers of pairs (tiles of 1 to 4 filled fragments), in the second
     * round repeated experts within a token (groups of 140 rows: three tiles, the last partial).
     * Tensor cores: tiles of 64 and 32 token rows, each with the loads two steps ahead, one, and
     * steps of two chunks. Rounds of 64-row tiles have 132 weight rows (two row tiles, the
     * second of 4 rows; rows in 4s, as matmul_gq takes Q4_K on float16 x), the others 67. */
    const uint32_t T = 70, k = 4, E = 7;
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q5_0, GLM_TYPE_Q6_K };
    uint32_t gt = glm_vk_coopmat_grouped_tile(g_vk), ahead = glm_vk_coopmat_ahead(g_vk);
    uint32_t narrow = glm_vk_coopmat_narrow_groups(g_vk), gt2 = glm_vk_cm2_grouped_tile(g_vk);
    bool cm2_default = glm_vk_cm2_enabled(g_vk);
    for (int cm = 0; cm < matmul_kernels(); cm++) {
        matmul_use(cm);
        double worst = 0;
        /* matmul_cm2: tiles of 64, 32 and 128 rows (round / 2) */
        for (int round = 0; round < (cm == 2 ? 6 : cm ? 12 : 2); round++)
            for (int per_pair = 0; per_pair < 2; per_pair++) {
                glm_vk_coopmat_set_tiling(g_vk, round / 2 % 2 ? 32 : 64, round / 4 == 2 ? 0 : round / 4 ? 1 : 2, narrow);
                glm_vk_cm2_set_grouped_tile(g_vk, round / 2 == 1 ? 32 : round / 2 == 2 ? 128 : 64);
                glm_type t = types[(size_t)(2 * round + per_pair) % 3];
                /* Q6_K rows of two blocks (the second 2 bytes past a word, 420-byte rows) */
                uint32_t ncols = t == GLM_TYPE_Q6_K ? 512 : 256, nrows = round / 2 % 2 ? 67 : 132;
                test_weight tw;
                make_weight(&tw, t, ncols, nrows, E);
                uint32_t xrows = per_pair ? T * k : T;
                float *x = malloc((size_t)xrows * ncols * 4), *ref = malloc((size_t)T * k * nrows * 4);
                tu_fill_uniform(&g_rng, x, (size_t)xrows * ncols, -1, 1);
                int32_t *ids = malloc((size_t)T * k * 4);
                for (uint32_t i = 0; i < T * k; i++) {
                    int32_t e = round % 2 ? (int32_t)(tu_next(&g_rng) % 2) : (int32_t)(tu_next(&g_rng) % (E - 2));
                    ids[i] = e >= 3 ? e + 1 : e;
                }
                if (round % 2 == 0) {
                    /* experts 0, 1, 2, 4 and 5 with 12, 28, 44, 60 and 136 pairs in a shuffled order, so
                     * that a 64-row tile holds 1, 2, 3 or 4 filled 16-row fragments (matmul_gq's and
                     * matmul_cm's product bodies for each count) and 136 takes three tiles */
                    static const uint32_t counts[5] = { 12, 28, 44, 60, 136 };
                    static const int32_t experts[5] = { 0, 1, 2, 4, 5 };
                    uint32_t at = 0;
                    for (int j = 0; j < 5; j++)
                        for (uint32_t c = 0; c < counts[j]; c++)
                            ids[at++] = experts[j];
                    ck_assert_uint_eq(at, T * k);
                    for (uint32_t i = T * k - 1; i > 0; i--) {
                        uint32_t j = (uint32_t)(tu_next(&g_rng) % (i + 1));
                        int32_t tmp = ids[i];
                        ids[i] = ids[j];
                        ids[j] = tmp;
                    }
                    ids[T * k / 2 + 1] = (int32_t)E - 1;
                }
                for (uint32_t i = 0; i < T * k; i++)
                    ref_matvec(ref + (size_t)i * nrows, &tw, (uint32_t)ids[i], x + (size_t)(per_pair ? i : i / k) * ncols);
                uint64_t ng = glm_vk_moe_group_ints(T, k, E);
                glm_vk_buffer bx = dev_copy(x, (size_t)xrows * ncols * 4), bi = dev_copy(ids, (size_t)T * k * 4);
                glm_vk_buffer by = out_buf((size_t)T * k * nrows), bg;
                ck_assert(glm_vk_buffer_create(g_vk, &bg, ng * 4, false) == GLM_OK);
                /* tensor cores, every other case: x also as float16 (glm_vk_matmul_id_half) */
                bool half = cm == 1 && (round + per_pair) % 2 == 1 && glm_vk_matmul_id_takes_half(g_vk, &tw.w);
                glm_vk_buffer bh = { 0 };
                glm_vk_view xh = begin_half_x(half, &bh, &bx, xrows, ncols);
                ck_assert_msg(glm_vk_matmul_id_half(g_vk, view(&by, T * k, nrows), &tw.w, view(&bx, xrows, ncols), xh,
                                                    view(&bi, T, k), view(&bg, 1, (uint32_t)ng), false) == GLM_OK,
                              "%s", glm_last_error());
                run();
                if (half)
                    glm_vk_buffer_destroy(g_vk, &bh);
                check_out(&by, (size_t)T * k * nrows, "matmul_id");
                double e = tu_nmse(ref, by.map, (size_t)T * k * nrows);
                worst = e > worst ? e : worst;
                ck_assert_msg(e <= matmul_tol(cm), "matmul_id%s%s %s round %d per_pair=%d (tile %u, %u ahead) nmse %.3g",
                              matmul_name(cm), half ? " float16 x" : "", glm_type_name(t), round, per_pair,
                              cm == 2 ? glm_vk_cm2_grouped_tile(g_vk) : glm_vk_coopmat_grouped_tile(g_vk),
                              glm_vk_coopmat_ahead(g_vk), e);
                glm_vk_buffer_destroy(g_vk, &bx);
                glm_vk_buffer_destroy(g_vk, &bi);
                glm_vk_buffer_destroy(g_vk, &by);
                glm_vk_buffer_destroy(g_vk, &bg);
                free_weight(&tw);
                free(x);
                free(ref);
                free(ids);
            }
        printf("vk matmul_id grouped%s: worst nmse %.3g\n", cm == 2 ? " (cm2)" : cm ? " (tensor cores)" : "", worst);
    }
    glm_vk_coopmat_set_tiling(g_vk, gt, ahead, narrow);
    glm_vk_cm2_set_grouped_tile(g_vk, gt2);
    glm_vk_use_coopmat(g_vk, true);
    glm_vk_use_cm2(g_vk, cm2_default);
}
END_TEST

START_TEST(test_matmul_swiglu)
{
    /* SiLU(G·x) * (U·x) in one tensor-core dispatch (glm_vk_matmul_swiglu): plain products of
     * token counts within and across tiles (200 rows: a partial last 64-row tile), and grouped
     * experts per token (mode 1, with and without float16 x) and per pair (mode 2), over the
     * tilings of test_matmul_id_grouped; gate and up are slabs 0..E-1 and E..2E-1 of one buffer.
     * Where the device has no tensor cores the fused product is refused (and the backend keeps
     * its two products and the SwiGLU). */
    const uint32_t E = 5, k = 4, nrows = 200;
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_Q5_0, GLM_TYPE_Q8_0 };
    uint32_t gt = glm_vk_coopmat_grouped_tile(g_vk), ahead = glm_vk_coopmat_ahead(g_vk);
    uint32_t narrow = glm_vk_coopmat_narrow_groups(g_vk);
    bool cm2_default = glm_vk_cm2_enabled(g_vk);
    matmul_use(1);
    double worst = 0;
    int cases = 0;
    for (int round = 0; round < 12; round++) {
        glm_vk_coopmat_set_tiling(g_vk, round / 2 % 2 ? 32 : 64, round / 4 == 2 ? 0 : round / 4 ? 1 : 2, narrow);
        glm_type t = types[(size_t)round % 4];
        uint32_t ncols = round % 3 == 2 ? 512 : 256, T = round % 2 ? 70 : 9 + 13 * (uint32_t)round;
        int mode = round % 3; /* 0 plain, 1 grouped per token, 2 grouped per pair */
        test_weight tw;
        make_weight(&tw, t, ncols, nrows, 2 * E);
        glm_vk_weight g = tw.w, u = tw.w;
        g.nslabs = u.nslabs = mode ? E : 1;
        u.offset += (mode ? E : 1) * tw.w.slab_bytes;
        if (!glm_vk_matmul_swiglu_fits(g_vk, &g, &u)) {
            ck_assert(!glm_vk_coopmat_enabled(g_vk) || glm_vk_cm2_enabled(g_vk));
            free_weight(&tw);
            continue;
        }
        uint32_t yrows = mode ? T * k : T, xrows = mode == 2 ? T * k : T;
        float *x = malloc((size_t)xrows * ncols * 4), *ref = malloc((size_t)yrows * nrows * 4);
        float *gr = malloc((size_t)nrows * 4), *ur = malloc((size_t)nrows * 4);
        tu_fill_uniform(&g_rng, x, (size_t)xrows * ncols, -1, 1);
        int32_t *ids = malloc((size_t)T * k * 4);
        for (uint32_t i = 0; i < T * k; i++)
            ids[i] = (int32_t)(tu_next(&g_rng) % (E - 1)); /* expert E-1 never chosen */
        for (uint32_t i = 0; i < yrows; i++) {
            uint32_t e = mode ? (uint32_t)ids[i] : 0, xr = mode == 1 ? i / k : i;
            ref_matvec(gr, &tw, e, x + (size_t)xr * ncols);
            ref_matvec(ur, &tw, e + (mode ? E : 1), x + (size_t)xr * ncols);
            glm_ref_swiglu(ref + (size_t)i * nrows, gr, ur, nrows);
        }
        uint64_t ng = glm_vk_moe_group_ints(T, k, E);
        glm_vk_buffer bx = dev_copy(x, (size_t)xrows * ncols * 4), bi = dev_copy(ids, (size_t)T * k * 4);
        glm_vk_buffer by = out_buf((size_t)yrows * nrows), bg, bh = { 0 };
        ck_assert(glm_vk_buffer_create(g_vk, &bg, ng * 4, false) == GLM_OK);
        bool half = mode && round % 2 == 0 && glm_vk_matmul_id_takes_half(g_vk, &g);
        glm_vk_view iv = view(&bi, T, k), xh = begin_half_x(half, &bh, &bx, xrows, ncols);
        ck_assert_msg(glm_vk_matmul_swiglu(g_vk, view(&by, yrows, nrows), &g, &u, view(&bx, xrows, ncols), xh,
                                           mode ? &iv : NULL, view(&bg, 1, (uint32_t)ng), false) == GLM_OK,
                      "%s", glm_last_error());
        run();
        check_out(&by, (size_t)yrows * nrows, "matmul_swiglu");
        double e = tu_nmse(ref, by.map, (size_t)yrows * nrows);
        worst = e > worst ? e : worst;
        cases++;
        ck_assert_msg(e <= TOL_VK_MATMUL_CM_NMSE, "matmul_swiglu %s mode %d T=%u cols=%u%s (tile %u, %u ahead) nmse %.3g",
                      glm_type_name(t), mode, T, ncols, half ? " float16 x" : "", glm_vk_coopmat_grouped_tile(g_vk),
                      glm_vk_coopmat_ahead(g_vk), e);
        if (half)
            glm_vk_buffer_destroy(g_vk, &bh);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &by);
        glm_vk_buffer_destroy(g_vk, &bg);
        free_weight(&tw);
        free(x);
        free(ref);
        free(gr);
        free(ur);
        free(ids);
    }
    if (cases)
        printf("vk matmul_swiglu (tensor cores): %d cases, worst nmse %.3g\n", cases, worst);
    else
        printf("vk matmul_swiglu: no tensor cores here, the fused product refused\n");
    glm_vk_coopmat_set_tiling(g_vk, gt, ahead, narrow);
    glm_vk_use_coopmat(g_vk, true);
    glm_vk_use_cm2(g_vk, cm2_default);
}
END_TEST

/* Weights as a quantizer writes them (rows of 0.02·(sum of 4 uniforms) around offsets of up to
 * ±0.03, glm_ref_quantize_row) and x exact in float16 (sixteenths in [-2, 2]): then a
 * tensor-core product's only error is the rounding of the weights it stages (and the float32
 * sums). Q4_K and Q6_K plain products (matmul_cm, codes decoded in float32: one rounding a
 * weight) held to TOL_VK_MATMUL_CM_W16_NMSE; grouped experts on float16 x (Q4_K on matmul_gq,
 * Q6_K on matmul_cm) with their codes decoded in float32 (the same bound); those and the plain
 * Q4_K product with their codes decoded in float16 pairs (TOL_VK_MATMUL_GQ_H2_NMSE). */
static void make_weight_quantized(test_weight *tw, glm_type t, uint32_t cols, uint32_t rows, uint32_t slabs)
{
    uint32_t rb = (uint32_t)glm_row_bytes(t, cols);
    tw->host = malloc((size_t)rb * rows * slabs);
    float *v = malloc((size_t)cols * 4);
    for (uint32_t r = 0; r < rows * slabs; r++) {
        float off = 0.01f * (float)(r % 7) - 0.03f; /* rows off centre: Q4_K mins of both signs' sizes */
        for (uint32_t i = 0; i < cols; i++) {
            float g = 0;
            for (int j = 0; j < 4; j++)
                g += tu_uniform(&g_rng, -1, 1);
            v[i] = off + 0.02f * g;
        }
        ck_assert(glm_ref_quantize_row(tw->host + (size_t)r * rb, v, t, cols) == GLM_OK);
    }
    free(v);
    tw->dev = dev_copy(tw->host, (size_t)rb * rows * slabs);
    tw->w = (glm_vk_weight){ &tw->dev, t, 0, cols, rows, slabs, rb, rb * rows };
}

static double weight_rounding_case(glm_type t, bool grouped)
{
    const uint32_t T = 70, k = 4, E = 5, ncols = 512, nrows = grouped ? 132 : 200;
    test_weight tw;
    make_weight_quantized(&tw, t, ncols, nrows, grouped ? E : 1);
    uint32_t yrows = grouped ? T * k : T;
    float *x = malloc((size_t)T * ncols * 4), *ref = malloc((size_t)yrows * nrows * 4);
    for (size_t i = 0; i < (size_t)T * ncols; i++)
        x[i] = (float)((int)(tu_next(&g_rng) % 65) - 32) / 16.0f;
    int32_t *ids = malloc((size_t)T * k * 4);
    for (uint32_t i = 0; i < T * k; i++)
        ids[i] = (int32_t)(tu_next(&g_rng) % E);
    for (uint32_t i = 0; i < yrows; i++)
        ref_matvec(ref + (size_t)i * nrows, &tw, grouped ? (uint32_t)ids[i] : 0, x + (size_t)(grouped ? i / k : i) * ncols);
    glm_vk_buffer bx = dev_copy(x, (size_t)T * ncols * 4), bi = dev_copy(ids, (size_t)T * k * 4);
    glm_vk_buffer by = out_buf((size_t)yrows * nrows), bg = { 0 }, bh = { 0 };
    if (grouped) {
        uint64_t ng = glm_vk_moe_group_ints(T, k, E);
        ck_assert(glm_vk_buffer_create(g_vk, &bg, ng * 4, false) == GLM_OK);
        bool half = glm_vk_coopmat_enabled(g_vk) && glm_vk_matmul_id_takes_half(g_vk, &tw.w);
        glm_vk_view xh = begin_half_x(half, &bh, &bx, T, ncols);
        ck_assert_msg(glm_vk_matmul_id_half(g_vk, view(&by, yrows, nrows), &tw.w, view(&bx, T, ncols), xh,
                                            view(&bi, T, k), view(&bg, 1, (uint32_t)ng), false) == GLM_OK,
                      "%s", glm_last_error());
        run();
        if (half)
            glm_vk_buffer_destroy(g_vk, &bh);
        glm_vk_buffer_destroy(g_vk, &bg);
    } else {
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_matmul(g_vk, view(&by, T, nrows), &tw.w, 0, view(&bx, T, ncols)) == GLM_OK, "%s",
                      glm_last_error());
        run();
    }
    check_out(&by, (size_t)yrows * nrows, grouped ? "matmul_id (weight rounding)" : "matmul (weight rounding)");
    double e = tu_nmse(ref, by.map, (size_t)yrows * nrows);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &bi);
    glm_vk_buffer_destroy(g_vk, &by);
    free_weight(&tw);
    free(x);
    free(ref);
    free(ids);
    return e;
}

START_TEST(test_matmul_weight_rounding)
{
    uint32_t gt = glm_vk_coopmat_grouped_tile(g_vk), ahead = glm_vk_coopmat_ahead(g_vk);
    uint32_t narrow = glm_vk_coopmat_narrow_groups(g_vk);
    bool h2 = glm_vk_h2(), cm = glm_vk_coopmat_enabled(g_vk);
    glm_vk_coopmat_set_tiling(g_vk, 64, ahead, narrow);
    static const struct { glm_type t; bool grouped, pairs; } cases[] = {
        { GLM_TYPE_Q4_K, false, true },  { GLM_TYPE_Q4_K, false, false }, { GLM_TYPE_Q6_K, false, false },
        { GLM_TYPE_Q4_K, true, true },   { GLM_TYPE_Q4_K, true, false },
        { GLM_TYPE_Q6_K, true, true },   { GLM_TYPE_Q6_K, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].pairs && !cm)
            continue;
        glm_vk_set_h2(cases[i].pairs);
        double e = weight_rounding_case(cases[i].t, cases[i].grouped);
        double tol = !cm ? TOL_VK_MATMUL_NMSE : cases[i].pairs ? TOL_VK_MATMUL_GQ_H2_NMSE : TOL_VK_MATMUL_CM_W16_NMSE;
        printf("vk matmul%s weight rounding, %s%s%s: nmse %.3g (bound %.3g)\n", cm ? "_cm" : "", glm_type_name(cases[i].t),
               cases[i].grouped ? " grouped on float16 x" : "", cases[i].pairs ? ", float16 pairs" : "", e, tol);
        ck_assert_msg(e <= tol, "matmul weight rounding %s%s%s: nmse %.3g", glm_type_name(cases[i].t),
                      cases[i].grouped ? " grouped" : "", cases[i].pairs ? " float16 pairs" : "", e);
    }
    glm_vk_set_h2(h2);
    glm_vk_coopmat_set_tiling(g_vk, gt, ahead, narrow);
}
END_TEST

START_TEST(test_get_rows)
{
    static const glm_type types[] = { GLM_TYPE_BF16, GLM_TYPE_Q8_0, GLM_TYPE_Q4_K, GLM_TYPE_Q6_K };
    for (size_t ti = 0; ti < 4; ti++) {
        const uint32_t ncols = 256, nrows = 50, T = 5;
        test_weight tw;
                make_weight(&tw, types[ti], ncols, nrows, 1);
        int32_t ids[5];
        float *ref = malloc((size_t)T * ncols * 4);
        for (uint32_t t = 0; t < T; t++) {
            ids[t] = (int32_t)(tu_next(&g_rng) % nrows);
            glm_ref_dequant_row(ref + (size_t)t * ncols, tw.host + (size_t)ids[t] * tw.w.row_bytes, types[ti], ncols);
        }
        glm_vk_buffer bi = dev_copy(ids, sizeof ids), by = out_buf((size_t)T * ncols);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_get_rows(g_vk, view(&by, T, ncols), &tw.w, view(&bi, T, 1)) == GLM_OK);
        run();
        check_out(&by, (size_t)T * ncols, "get_rows");
        /* dequantization is deterministic: identical floats */
        ck_assert_msg(memcmp(ref, by.map, (size_t)T * ncols * 4) == 0, "get_rows %s differs from ref",
                      glm_type_name(types[ti]));
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &by);
        free_weight(&tw);
        free(ref);
    }
}
END_TEST

START_TEST(test_rope)
{
    /* q-like rows: H heads of (dn + dr), rope on the last dr channels of each head; every
     * row at its own random position (rows of different sequences share a dispatch) */
    const uint32_t T = 5, H = 3, dn = 8, dr = 6, hd = dn + dr, cols = H * hd, positions = 1005;
    float *x = malloc((size_t)T * cols * 4), *ref = malloc((size_t)T * cols * 4);
    float *cs = malloc((size_t)positions * dr * 4);
    int32_t pos[T];
    tu_fill_uniform(&g_rng, x, (size_t)T * cols, -2, 2);
    memcpy(ref, x, (size_t)T * cols * 4);
    for (uint32_t t = 0; t < T; t++) {
        pos[t] = (int32_t)(tu_next(&g_rng) % positions);
        for (uint32_t h = 0; h < H; h++)
            glm_ref_rope(ref + (size_t)t * cols + h * hd + dn, (int)dr, pos[t], 1e6f);
    }
    glm_vk_rope_table(cs, positions, dr, 1e6f);
    glm_vk_buffer bt = dev_copy(cs, (size_t)positions * dr * 4), bp = dev_copy(pos, sizeof pos);
    glm_vk_buffer bx;
    ck_assert(glm_vk_buffer_create(g_vk, &bx, (size_t)T * cols * 4, true) == GLM_OK);
    memcpy(bx.map, x, (size_t)T * cols * 4);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert(glm_vk_rope(g_vk, view(&bx, T, cols), &bt, positions, H, hd, dn, dr, view(&bp, T, 1)) == GLM_OK);
    run();
    double e = tu_nmse(ref, bx.map, (size_t)T * cols);
    ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "rope nmse %.3g", e);
    /* the nope channels are untouched */
    for (uint32_t t = 0; t < T; t++)
        ck_assert(memcmp((float *)bx.map + (size_t)t * cols, x + (size_t)t * cols, dn * 4) == 0);
    glm_vk_buffer_destroy(g_vk, &bt);
    glm_vk_buffer_destroy(g_vk, &bp);
    glm_vk_buffer_destroy(g_vk, &bx);
    free(x);
    free(ref);
    free(cs);
}
END_TEST

/* The src row that a kv write with meta = pos[T], ptab[T], pages[..] and pages of P rows puts
 * in pool row `row`, or -1 when none does. */
static int kv_source_row(const int32_t *meta, uint32_t T, uint32_t P, uint32_t row)
{
    int hit = -1;
    for (uint32_t t = 0; t < T; t++) {
        const int32_t *pg = meta + 2 * T + meta[T + t];
        if ((uint32_t)(pg[meta[t] / (int32_t)P] * (int32_t)P + meta[t] % (int32_t)P) == row)
            hit = (int)t;
    }
    return hit;
}

START_TEST(test_kv_write)
{
    /* rows of two sequences scattered into a poisoned pool of pages of 4: each lands in the row
     * its page list names, and no other pool row changes. Plain: bit for bit. With the norm
     * (kv_write_norm, 8 of the 11 columns, BF16, F16 or F32 gain): the first 8 as ref rms_norm gives them,
     * the rest bit for bit, and src unchanged */
    const uint32_t P = 4, W = 11, n_pages = 9, T = 5, NN = 8;
    /* meta: pos[5], ptab[5], pages: seq A = {7, 2, 5}, seq B = {0, 8} */
    int32_t meta[] = { 0, 9, 10, 3, 4, /* pos */ 0, 0, 0, 3, 3, /* ptab */ 7, 2, 5, 0, 8 };
    float *src = malloc((size_t)T * W * 4), *want_n = malloc((size_t)T * W * 4), *gf = malloc(NN * 4);
    tu_fill_uniform(&g_rng, src, (size_t)T * W, -3, 3);
    /* plain, then normed with a BF16, an F16 and an F32 gain (one pipeline each) */
    static const glm_type gtypes[3] = { GLM_TYPE_BF16, GLM_TYPE_F16, GLM_TYPE_F32 };
    for (int pass = 0; pass < 4; pass++) {
        const int normed = pass > 0;
        test_weight tg;
        make_weight(&tg, gtypes[normed ? pass - 1 : 0], NN, 1, 1);
        glm_ref_dequant_row(gf, tg.host, tg.w.type, NN);
        memcpy(want_n, src, (size_t)T * W * 4);
        for (uint32_t t = 0; t < T; t++)
            glm_ref_rms_norm(want_n + (size_t)t * W, src + (size_t)t * W, gf, NN, 1e-6f);
        glm_vk_buffer bs = dev_copy(src, (size_t)T * W * 4), bm = dev_copy(meta, sizeof meta);
        glm_vk_buffer bp = out_buf((size_t)n_pages * P * W);
        glm_vk_kv_rows r = { { &bm, 0, T, 1, 1 }, { &bm, T, T, 1, 1 }, { &bm, 2 * T, 1, 5, 5 }, P, 11, NULL, NULL, 0, 0, 0, 0 };
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        glm_status st = normed ? glm_vk_kv_write_norm(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r, &tg.w,
                                                      1e-6f, NN)
                               : glm_vk_kv_write(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r);
        ck_assert_msg(st == GLM_OK, "%s", glm_last_error());
        if (normed) /* a gain shorter than the normed columns is refused */
            ck_assert_int_eq(glm_vk_kv_write_norm(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r, &tg.w, 1e-6f,
                                                  NN + 1),
                             GLM_ERR_INVALID);
        run();
        float *poison = malloc(W * 4);
        tu_poison(poison, W);
        const float *pool = bp.map;
        double worst = 0;
        for (uint32_t row = 0; row < n_pages * P; row++) {
            int hit = kv_source_row(meta, T, P, row);
            const float *got = pool + (size_t)row * W;
            if (hit < 0 || !normed) {
                const float *want = hit >= 0 ? src + (size_t)hit * W : poison;
                ck_assert_msg(memcmp(got, want, W * 4) == 0, "kv_write: pool row %u (row %d)", row, hit);
                continue;
            }
            const float *want = want_n + (size_t)hit * W;
            double e = tu_nmse(want, got, NN);
            worst = e > worst ? e : worst;
            ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "kv_write_norm: row %d nmse %.3g", hit, e);
            ck_assert_msg(memcmp(got + NN, want + NN, (W - NN) * 4) == 0, "kv_write_norm: row %d tail", hit);
        }
        if (normed) {
            float *sb = malloc((size_t)T * W * 4);
            ck_assert(glm_vk_download(g_vk, sb, &bs, 0, (size_t)T * W * 4) == GLM_OK);
            ck_assert_msg(memcmp(sb, src, (size_t)T * W * 4) == 0, "kv_write_norm changed src");
            free(sb);
            printf("vk kv_write_norm (%s gain): worst nmse %.3g\n", glm_type_name(tg.w.type), worst);
        }
        glm_vk_buffer_destroy(g_vk, &bs);
        glm_vk_buffer_destroy(g_vk, &bm);
        glm_vk_buffer_destroy(g_vk, &bp);
        free(poison);
        free_weight(&tg);
    }
    free(src), free(want_n), free(gf);
}
END_TEST

START_TEST(test_moe_gate_route)
{
    /* moe_gate_route: the router's product of RMSNorm(x) (F32 / F16 / BF16 rows and gains, row
     * lengths that are no multiple of the workgroup, one longer than a pass of the workgroup)
     * and the routing (sigmoid or softmax, with and without groups) in one dispatch, twice in
     * one recording (the second on other rows: the per-row counts must be back at zero). The
     * logits against ref rms_norm + dot; ids exactly and weights against ref routing of the
     * logits the GPU wrote (so that a near-tie in the last bit cannot pass or fail by luck).
     * The second dispatch also writes the normed x (xn), against ref rms_norm, and where its rows
     * are a multiple of 256 long also in 8 bits (xn8), against glm_ref_quant_x8. Odd cases route
     * into views of k + 1 columns: the last must hold id E with weight 1 (the shared expert). */
    static const int cases[][8] = {
        /* E, k, router type, gain type, n_group, topk_group, sigmoid, row length */
        { 64, 4, GLM_TYPE_F32, GLM_TYPE_BF16, 1, 1, 1, 300 },  { 6, 3, GLM_TYPE_F16, GLM_TYPE_F32, 1, 1, 1, 300 },
        { 256, 8, GLM_TYPE_BF16, GLM_TYPE_F32, 1, 1, 1, 300 }, { 64, 4, GLM_TYPE_F32, GLM_TYPE_F16, 8, 4, 1, 2100 },
        { 16, 4, GLM_TYPE_BF16, GLM_TYPE_BF16, 4, 2, 0, 302 }, { 65, 4, GLM_TYPE_F32, GLM_TYPE_F32, 1, 1, 1, 2048 },
        { 64, 4, GLM_TYPE_F16, GLM_TYPE_F32, 1, 1, 1, 512 }
    };
    /* the last case ties its experts in threes (equal router rows and biases, so equal logits
     * and selection scores; k = 4 then splits a group): the lower index must win */
    const size_t tie_case = sizeof cases / sizeof cases[0] - 1;
    const uint32_t T = 5;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t E = (uint32_t)cases[c][0], k = (uint32_t)cases[c][1], N = (uint32_t)cases[c][7];
        const uint32_t ng = (uint32_t)cases[c][4], kg = (uint32_t)cases[c][5];
        const bool sig = cases[c][6] != 0;
        glm_route_params rp = { (int)E, (int)k, (int)ng, (int)kg, sig, true, 2.5f };
        test_weight tw, tg, tb;
        make_weight(&tw, (glm_type)cases[c][2], N, E, 1);
        make_weight(&tg, (glm_type)cases[c][3], N, 1, 1);
        /* the bias in each class of the fused kernel: F32, F16, any type (Q8_0), BF16, F16 */
        static const glm_type btypes[7] = { GLM_TYPE_F32, GLM_TYPE_F16, GLM_TYPE_Q8_0, GLM_TYPE_BF16,
                                            GLM_TYPE_F16, GLM_TYPE_F32, GLM_TYPE_F32 };
        make_weight(&tb, btypes[c], E, 1, 1);
        if (c == tie_case) {
            for (uint32_t e = 0; e < E; e++)
                if (e % 3) {
                    memcpy(tw.host + (size_t)e * tw.w.row_bytes, tw.host + (size_t)(e - e % 3) * tw.w.row_bytes,
                           tw.w.row_bytes);
                    memcpy(tb.host + (size_t)e * 4, tb.host + (size_t)(e - e % 3) * 4, 4);
                }
            glm_vk_buffer_destroy(g_vk, &tw.dev);
            glm_vk_buffer_destroy(g_vk, &tb.dev);
            tw.dev = dev_copy(tw.host, (size_t)tw.w.row_bytes * E);
            tb.dev = dev_copy(tb.host, (size_t)E * 4);
        }
        float *x = malloc((size_t)2 * T * N * 4), *wr = malloc((size_t)E * N * 4), *gf = malloc(N * 4);
        float *xn = malloc((size_t)2 * T * N * 4), *want = malloc((size_t)2 * T * E * 4), *bias = malloc(E * 4);
        tu_fill_uniform(&g_rng, x, (size_t)2 * T * N, -2, 2);
        glm_ref_dequant_row(wr, tw.host, tw.w.type, (int64_t)E * N);
        glm_ref_dequant_row(gf, tg.host, tg.w.type, N);
        glm_ref_dequant_row(bias, tb.host, tb.w.type, E);
        for (uint32_t t = 0; t < 2 * T; t++) {
            float *xt = xn + (size_t)t * N;
            glm_ref_rms_norm(xt, x + (size_t)t * N, gf, N, 1e-6f);
            for (uint32_t e = 0; e < E; e++) {
                double d = 0;
                for (uint32_t i = 0; i < N; i++)
                    d += (double)wr[(size_t)e * N + i] * xt[i];
                want[(size_t)t * E + e] = (float)d;
            }
        }
        glm_vk_buffer bx = dev_copy(x, (size_t)2 * T * N * 4), bl = out_buf((size_t)2 * T * E);
        const uint32_t kk = k + (uint32_t)(c % 2); /* columns of the ids / weights views */
        glm_vk_buffer bi = out_buf((size_t)2 * T * kk), bw = out_buf((size_t)2 * T * kk);
        uint32_t zeros[2 * 5] = { 0 };
        glm_vk_buffer bc = dev_copy(zeros, sizeof zeros), bn = out_buf((size_t)T * N);
        const uint32_t nw8 = glm_ref_x8_words(N);
        const bool with8 = N % 256 == 0;
        glm_vk_buffer b8 = out_buf(with8 ? (size_t)T * nw8 : 1);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        for (uint32_t half = 0; half < 2; half++) {
            glm_vk_view xv = { &bx, half * T * N, T, N, N }, lv = { &bl, half * T * E, T, E, E };
            glm_vk_view iv = { &bi, half * T * kk, T, kk, kk }, wv = { &bw, half * T * kk, T, kk, kk };
            glm_vk_view nv = half ? view(&bn, T, N) : (glm_vk_view){ 0 };
            glm_vk_view n8 = half && with8 ? (glm_vk_view){ &b8, 0, T, nw8, nw8 } : (glm_vk_view){ 0 };
            glm_vk_moe_gate gate = { xv, &tw.w, &tg.w, 1e-6f, &bc, half * 2, nv, n8 };
            ck_assert_msg(glm_vk_moe_gate_route(g_vk, iv, wv, lv, &tb.w, k, ng, kg, sig, true, 2.5f, &gate) == GLM_OK,
                          "%s", glm_last_error());
        }
        run();
        check_out(&bl, (size_t)2 * T * E, "moe_gate_route logits");
        check_out(&bi, (size_t)2 * T * kk, "moe_gate_route ids");
        check_out(&bw, (size_t)2 * T * kk, "moe_gate_route weights");
        double e = tu_nmse(want, bl.map, (size_t)2 * T * E);
        ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "moe_gate_route case %zu logits nmse %.3g", c, e);
        for (uint32_t i = 0; c == tie_case && i < 2 * T * E; i++) /* the ties are there */
            ck_assert_msg(((const float *)bl.map)[i] == ((const float *)bl.map)[i - i % E % 3],
                          "moe_gate_route tie case: logit %u differs from its group's first", i);
        double en = check_close(&bn, xn + (size_t)T * N, (size_t)T * N, TOL_VK_ELEMENTWISE_NMSE, "moe_gate_route xn");
        if (with8) { /* xn8: the device's xn quantized as the reference quantizes it */
            check_guard(&b8, (size_t)T * nw8, "moe_gate_route xn8");
            uint32_t *r8 = malloc((size_t)nw8 * 4);
            size_t flips = 0;
            for (uint32_t t = 0; t < T; t++) {
                ck_assert(glm_ref_quant_x8(r8, (const float *)bn.map + (size_t)t * N, N) == GLM_OK);
                const uint32_t *g8 = (const uint32_t *)b8.map + (size_t)t * nw8;
                for (uint32_t i = 0; i < nw8; i++)
                    if (i < N / 4)
                        for (int b = 0; b < 4; b++) {
                            int d = (int)(int8_t)(g8[i] >> (8 * b)) - (int)(int8_t)(r8[i] >> (8 * b));
                            ck_assert_msg(d >= -1 && d <= 1, "moe_gate_route xn8 row %u word %u: code off by %d", t, i, d);
                            flips += d != 0;
                        }
                    else {
                        float a, r;
                        memcpy(&a, &g8[i], 4), memcpy(&r, &r8[i], 4);
                        ck_assert_msg(fabsf(a - r) <= 4e-6f * fabsf(r) + 1e-30f, "moe_gate_route xn8 row %u word %u: %g, "
                                      "reference %g", t, i, a, r);
                    }
            }
            ck_assert_msg(flips <= TOL_VK_X8_CODE_FLIPS * T * N, "moe_gate_route xn8: %zu codes off by one", flips);
            free(r8);
        }
        float scratch[512], wref[8];
        int32_t iref[8];
        double ew = 0;
        for (uint32_t t = 0; t < 2 * T; t++) {
            ck_assert(glm_ref_moe_route(iref, wref, (const float *)bl.map + (size_t)t * E, bias, &rp, scratch));
            ck_assert_msg(memcmp(iref, (const int32_t *)bi.map + (size_t)t * kk, k * 4) == 0,
                          "moe_gate_route case %zu row %u: expert ids differ", c, t);
            double r = tu_nmse(wref, (const float *)bw.map + (size_t)t * kk, k);
            ew = r > ew ? r : ew;
            if (kk > k) {
                int32_t xid = ((const int32_t *)bi.map)[(size_t)t * kk + k];
                float xw = ((const float *)bw.map)[(size_t)t * kk + k];
                ck_assert_msg(xid == (int32_t)E && xw == 1.0f, "moe_gate_route case %zu row %u: extra column %d / %g",
                              c, t, xid, xw);
            }
        }
        ck_assert_msg(ew <= TOL_VK_ELEMENTWISE_NMSE, "moe_gate_route case %zu weights nmse %.3g", c, ew);
        uint32_t cnt[2 * 5];
        ck_assert(glm_vk_download(g_vk, cnt, &bc, 0, sizeof cnt) == GLM_OK);
        ck_assert_msg(memcmp(cnt, zeros, sizeof cnt) == 0, "moe_gate_route left a count non-zero");
        printf("vk moe_gate_route E=%u k=%u groups %u/%u %s N=%u: logits nmse %.3g, weights nmse %.3g, xn nmse %.3g\n",
               E, k, kg, ng, sig ? "sigmoid" : "softmax", N, e, ew, en);
        /* refused: a quantized router, a count buffer too small for the rows */
        test_weight tq;
        make_weight(&tq, GLM_TYPE_Q8_0, 320, E, 1);
        ck_assert(!glm_vk_moe_gate_fits(&tq.w, &tg.w));
        glm_vk_moe_gate gate = { view(&bx, T, N), &tw.w, &tg.w, 1e-6f, &bc, 8, { 0 }, { 0 } };
        ck_assert_int_eq(glm_vk_moe_gate_route(g_vk, view(&bi, T, k), view(&bw, T, k), view(&bl, T, E), &tb.w, k, 1,
                                               1, true, true, 2.5f, &gate),
                         GLM_ERR_INVALID);
        /* refused: xn in x's buffer, or not x's shape */
        glm_vk_moe_gate gx = { view(&bx, T, N), &tw.w, &tg.w, 1e-6f, &bc, 0, { &bx, T * N, T, N, N }, { 0 } };
        ck_assert_int_eq(glm_vk_moe_gate_route(g_vk, view(&bi, T, k), view(&bw, T, k), view(&bl, T, E), &tb.w, k, 1,
                                               1, true, true, 2.5f, &gx),
                         GLM_ERR_INVALID);
        gx.xn = view(&bn, T - 1, N);
        ck_assert_int_eq(glm_vk_moe_gate_route(g_vk, view(&bi, T, k), view(&bw, T, k), view(&bl, T, E), &tb.w, k, 1,
                                               1, true, true, 2.5f, &gx),
                         GLM_ERR_INVALID);
        free_weight(&tq);
        free_weight(&tw);
        free_weight(&tg);
        free_weight(&tb);
        glm_vk_buffer_destroy(g_vk, &b8);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bl);
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &bw);
        glm_vk_buffer_destroy(g_vk, &bc);
        glm_vk_buffer_destroy(g_vk, &bn);
        free(x), free(wr), free(gf), free(xn), free(want), free(bias);
    }
}
END_TEST

START_TEST(test_rms_norm_matvec_rope)
{
    /* The query's product with its rope: y = W · RMSNorm(x; g), then each head's rope channels
     * rotated at the row's position, against ref rms_norm, the reference product and ref rope.
     * Q4_K of 256 columns (few lanes a row: the rope inside the product on any device), Q4_K of
     * 768 (the model's q_b: inside where the subgroup holds two slices of its lanes, else a rope
     * dispatch after it) and Q4_0 (matvec.comp, then the rope dispatch). Row 2's position is past
     * the table: it stays unrotated. */
    static const struct { glm_type t; uint32_t ncols; } cases[] = {
        { GLM_TYPE_Q4_K, 256 }, { GLM_TYPE_Q4_K, 768 }, { GLM_TYPE_Q4_0, 256 }
    };
    const uint32_t T = 5, H = 3, dn = 10, dr = 6, hd = dn + dr, nrows = H * hd, positions = 10;
    int32_t pos[] = { 0, 9, 10, 3, 4 };
    float *cs = malloc(positions * dr * 4);
    glm_vk_rope_table(cs, positions, dr, 1e6f);
    glm_vk_buffer bt = dev_copy(cs, (size_t)positions * dr * 4), bp = dev_copy(pos, sizeof pos);
    double worst = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t ncols = cases[c].ncols;
        test_weight tw, tg;
        make_weight(&tw, cases[c].t, ncols, nrows, 1);
        make_weight(&tg, GLM_TYPE_F32, ncols, 1, 1);
        float *x = malloc((size_t)T * ncols * 4);
        tu_fill_uniform(&g_rng, x, (size_t)T * ncols, -3, 3);
        float *ref = ref_normed_products(&tw, &tg, x, T);
        for (uint32_t t = 0; t < T; t++) {
            if ((uint32_t)pos[t] < positions)
                for (uint32_t h = 0; h < H; h++)
                    glm_ref_rope(ref + (size_t)t * nrows + h * hd + dn, (int)dr, pos[t], 1e6f);
        }
        glm_vk_buffer bx = dev_copy(x, (size_t)T * ncols * 4), by = out_buf((size_t)T * nrows);
        glm_vk_q_rope rope = { &bt, positions, H, hd, dn, dr, view(&bp, T, 1) };
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_rms_norm_matvec_rope(g_vk, view(&by, T, nrows), &tw.w, view(&bx, T, ncols), &tg.w, 1e-6f,
                                                  &rope) == GLM_OK,
                      "%s", glm_last_error());
        /* refused: heads that do not cover y, an odd rope width */
        glm_vk_q_rope bad = rope;
        bad.n_heads = H + 1;
        ck_assert_int_eq(glm_vk_rms_norm_matvec_rope(g_vk, view(&by, T, nrows), &tw.w, view(&bx, T, ncols), &tg.w,
                                                     1e-6f, &bad),
                         GLM_ERR_INVALID);
        bad = rope;
        bad.rope_dim = dr - 1;
        ck_assert_int_eq(glm_vk_rms_norm_matvec_rope(g_vk, view(&by, T, nrows), &tw.w, view(&bx, T, ncols), &tg.w,
                                                     1e-6f, &bad),
                         GLM_ERR_INVALID);
        run();
        double e = check_close(&by, ref, (size_t)T * nrows, TOL_VK_MATVEC_NMSE, "rms_norm_matvec_rope");
        worst = e > worst ? e : worst;
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &by);
        free_weight(&tw);
        free_weight(&tg);
        free(x), free(ref);
    }
    printf("vk rms_norm_matvec_rope: worst nmse %.3g\n", worst);
    glm_vk_buffer_destroy(g_vk, &bt);
    glm_vk_buffer_destroy(g_vk, &bp);
    free(cs);
}
END_TEST

START_TEST(test_kv_write_rope)
{
    /* kv_write_rope: rows of two sequences into a poisoned pool of pages of 4, each as
     * [RMSNorm(src[0, NN); g) | RoPE(src[NN, NN + dr)) at its position], src unchanged; the
     * query rows' heads (H of dn + dr, in a wider row) roped in place, their other channels
     * untouched. Row 2's position (10) is past the 10-position table: nothing of it rotates. */
    const uint32_t P = 4, NN = 8, dr = 4, W = NN + dr, n_pages = 9, T = 5, H = 3, dn = 2, hd = dn + dr, QC = H * hd + 3;
    const uint32_t positions = 10;
    int32_t meta[] = { 0, 9, 10, 3, 4, /* pos */ 0, 0, 0, 3, 3, /* ptab */ 7, 2, 5, 0, 8 };
    float *src = malloc((size_t)T * W * 4), *want = malloc((size_t)T * W * 4), *gf = malloc(NN * 4);
    float *q = malloc((size_t)T * QC * 4), *want_q = malloc((size_t)T * QC * 4), *cs = malloc(positions * dr * 4);
    tu_fill_uniform(&g_rng, src, (size_t)T * W, -3, 3);
    tu_fill_uniform(&g_rng, q, (size_t)T * QC, -2, 2);
    test_weight tg;
    make_weight(&tg, GLM_TYPE_F32, NN, 1, 1);
    glm_ref_dequant_row(gf, tg.host, tg.w.type, NN);
    memcpy(want, src, (size_t)T * W * 4);
    memcpy(want_q, q, (size_t)T * QC * 4);
    for (uint32_t t = 0; t < T; t++) {
        glm_ref_rms_norm(want + (size_t)t * W, src + (size_t)t * W, gf, NN, 1e-6f);
        if ((uint32_t)meta[t] >= positions)
            continue;
        glm_ref_rope(want + (size_t)t * W + NN, (int)dr, meta[t], 1e6f);
        for (uint32_t h = 0; h < H; h++)
            glm_ref_rope(want_q + (size_t)t * QC + h * hd + dn, (int)dr, meta[t], 1e6f);
    }
    glm_vk_rope_table(cs, positions, dr, 1e6f);
    glm_vk_buffer bs = dev_copy(src, (size_t)T * W * 4), bm = dev_copy(meta, sizeof meta);
    glm_vk_buffer bt = dev_copy(cs, (size_t)positions * dr * 4), bq;
    ck_assert(glm_vk_buffer_create(g_vk, &bq, (size_t)T * QC * 4, true) == GLM_OK);
    memcpy(bq.map, q, (size_t)T * QC * 4);
    glm_vk_buffer bp = out_buf((size_t)n_pages * P * W);
    glm_vk_kv_rows r = { { &bm, 0, T, 1, 1 }, { &bm, T, T, 1, 1 }, { &bm, 2 * T, 1, 5, 5 }, P, 11, NULL, NULL, 0, 0, 0, 0 };
    glm_vk_kv_rope rope = { &bt, positions, NN, dr, view(&bq, T, QC), H, hd, dn };
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    glm_status st = glm_vk_kv_write_rope(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r, &tg.w, 1e-6f, NN, &rope);
    ck_assert_msg(st == GLM_OK, "%s", glm_last_error());
    /* refused: rope columns past the row, a query row too narrow for its heads */
    glm_vk_kv_rope bad = rope;
    bad.kr_col = NN + 1;
    ck_assert_int_eq(glm_vk_kv_write_rope(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r, &tg.w, 1e-6f, NN, &bad),
                     GLM_ERR_INVALID);
    bad = rope;
    bad.n_heads = H + 1;
    ck_assert_int_eq(glm_vk_kv_write_rope(g_vk, view(&bp, n_pages * P, W), view(&bs, T, W), &r, &tg.w, 1e-6f, NN, &bad),
                     GLM_ERR_INVALID);
    run();
    float *poison = malloc(W * 4);
    tu_poison(poison, W);
    const float *pool = bp.map;
    double worst = 0;
    for (uint32_t row = 0; row < n_pages * P; row++) {
        int hit = kv_source_row(meta, T, P, row);
        const float *got = pool + (size_t)row * W;
        if (hit < 0) {
            ck_assert_msg(memcmp(got, poison, W * 4) == 0, "kv_write_rope: pool row %u written", row);
            continue;
        }
        double e = tu_nmse(want + (size_t)hit * W, got, W);
        worst = e > worst ? e : worst;
        ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "kv_write_rope: row %d nmse %.3g", hit, e);
        if ((uint32_t)meta[hit] >= positions)
            ck_assert_msg(memcmp(got + NN, src + (size_t)hit * W + NN, dr * 4) == 0, "kv_write_rope: row %d roped", hit);
    }
    double eq = tu_nmse(want_q, bq.map, (size_t)T * QC);
    ck_assert_msg(eq <= TOL_VK_ELEMENTWISE_NMSE, "kv_write_rope: q nmse %.3g", eq);
    for (uint32_t t = 0; t < T; t++) {
        const float *gq = (const float *)bq.map + (size_t)t * QC, *sq = q + (size_t)t * QC;
        for (uint32_t h = 0; h < H; h++)
            ck_assert_msg(memcmp(gq + h * hd, sq + h * hd, dn * 4) == 0, "kv_write_rope: q row %u head %u nope", t, h);
        ck_assert_msg(memcmp(gq + H * hd, sq + H * hd, (QC - H * hd) * 4) == 0, "kv_write_rope: q row %u tail", t);
        if ((uint32_t)meta[t] >= positions)
            ck_assert_msg(memcmp(gq, sq, QC * 4) == 0, "kv_write_rope: q row %u past the table roped", t);
    }
    float *sb = malloc((size_t)T * W * 4);
    ck_assert(glm_vk_download(g_vk, sb, &bs, 0, (size_t)T * W * 4) == GLM_OK);
    ck_assert_msg(memcmp(sb, src, (size_t)T * W * 4) == 0, "kv_write_rope changed src");
    printf("vk kv_write_rope: worst row nmse %.3g, q nmse %.3g\n", worst, eq);
    glm_vk_buffer_destroy(g_vk, &bs);
    glm_vk_buffer_destroy(g_vk, &bm);
    glm_vk_buffer_destroy(g_vk, &bt);
    glm_vk_buffer_destroy(g_vk, &bq);
    glm_vk_buffer_destroy(g_vk, &bp);
    free_weight(&tg);
    free(src), free(want), free(gf), free(q), free(want_q), free(cs), free(poison), free(sb);
}
END_TEST

START_TEST(test_eltwise)
{
    const uint32_t rows = 3, cols = 131;
    size_t n = (size_t)rows * cols;
    float *a = malloc(n * 4), *b = malloc(n * 4), *ref = malloc(n * 4);
    tu_fill_uniform(&g_rng, a, n, -4, 4);
    tu_fill_uniform(&g_rng, b, n, -4, 4);
    glm_vk_buffer ba = dev_copy(a, n * 4), bb = dev_copy(b, n * 4);
    /* shape 0: rows of 131 (one element an invocation); shape 1: rows of 128 from float 4 on,
     * every offset and stride a multiple of 4 (the vec form, four elements an invocation) */
    for (int shape = 0; shape < 2; shape++) {
        uint32_t c = shape ? 128 : cols, off = shape ? 4 : 0;
        size_t m = (size_t)rows * c;
        for (int op = 0; op < 3; op++) {
            for (uint32_t r = 0; r < rows; r++) {
                float *y = ref + (size_t)r * c;
                const float *ar = a + off + (size_t)r * c, *br = b + off + (size_t)r * c;
                if (op == GLM_VK_ADD)
                    glm_ref_add(y, ar, br, c);
                else if (op == GLM_VK_SWIGLU)
                    glm_ref_swiglu(y, ar, br, c);
                else
                    memcpy(y, ar, c * 4);
            }
            glm_vk_buffer by = out_buf(m);
            glm_vk_view va = view(&ba, rows, c), vb = view(&bb, rows, c);
            va.off = vb.off = off;
            ck_assert(glm_vk_begin(g_vk) == GLM_OK);
            ck_assert(glm_vk_eltwise(g_vk, (glm_vk_eltwise_op)op, view(&by, rows, c), va, vb) == GLM_OK);
            run();
            check_out(&by, m, "eltwise");
            double e = tu_nmse(ref, by.map, m);
            ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "eltwise op %d cols %u nmse %.3g", op, c, e);
            glm_vk_buffer_destroy(g_vk, &by);
        }
    }
    /* to float16, two to a word: rows of 130 of the 131 columns (65 words), from column 1 on;
     * then (the vec form) rows of 128 of them (64 words) from column 4 on */
    const uint32_t hw = (cols - 1) / 2;
    glm_vk_buffer bh = out_buf((size_t)rows * hw);
    int worst = 0;
    glm_vk_buffer bh4 = out_buf((size_t)rows * 64);
    for (int shape = 0; shape < 2; shape++) {
        uint32_t w = shape ? 64 : hw, off = shape ? 4 : 1;
        glm_vk_buffer *out = shape ? &bh4 : &bh;
        glm_vk_view av = view(&ba, rows, 2 * w);
        av.off = off, av.ld = shape ? 128 : cols; /* rows 128 apart for the vec form */
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_to_half(g_vk, view(out, rows, w), av) == GLM_OK);
        run();
        check_guard(out, (size_t)rows * w, "to_half");
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t i = 0; i < 2 * w; i++) {
                uint16_t got = ((const uint16_t *)out->map)[(size_t)r * 2 * w + i];
                uint16_t want = glm_fp32_to_fp16(a[(size_t)r * av.ld + off + i]);
                int d = (got & 0x8000) == (want & 0x8000) ? abs((int)(got & 0x7fff) - (int)(want & 0x7fff)) : 1 << 16;
                worst = d > worst ? d : worst;
                ck_assert_msg(d <= TOL_VK_TO_HALF_ULPS, "to_half row %u col %u (words %u): 0x%04x, want 0x%04x", r, i,
                              w, got, want);
            }
    }
    printf("vk to_half: worst %d ulp\n", worst);
    glm_vk_buffer_destroy(g_vk, &bh4);
    /* the sum of 3 parts: rows of 20 columns, parts 70 floats apart inside a from float 2 on; then
     * (the vec form) 72 apart from float 4 on */
    for (int shape = 0; shape < 2; shape++) {
        const uint32_t pr = 3, pc = 20, stride = shape ? 72 : 70, off = shape ? 4 : 2;
        float want[60];
        for (uint32_t r = 0; r < pr; r++)
            for (uint32_t i = 0; i < pc; i++) {
                float acc = 0;
                for (uint32_t z = 0; z < 3; z++)
                    acc += a[off + z * stride + r * pc + i];
                want[r * pc + i] = acc;
            }
        glm_vk_buffer bs = out_buf(pr * pc);
        glm_vk_view p0 = { &ba, off, pr, pc, pc };
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_sum_parts(g_vk, view(&bs, pr, pc), p0, 3, stride) == GLM_OK);
        run();
        check_close(&bs, want, pr * pc, TOL_VK_ELEMENTWISE_NMSE, "sum_parts");
        /* y += the sum: y's old value plus the sum, as an add after the sum would give */
        float *y0 = bs.map, add_want[60];
        tu_fill_uniform(&g_rng, y0, pr * pc, -3, 3);
        for (uint32_t i = 0; i < pr * pc; i++)
            add_want[i] = y0[i] + want[i];
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_sum_parts_add(g_vk, view(&bs, pr, pc), p0, 3, stride) == GLM_OK);
        run();
        ck_assert_msg(memcmp(bs.map, add_want, sizeof add_want) == 0, "sum_parts_add: not y + the sum, bit for bit");
        p0.off = (uint32_t)n - 50; /* the last part past a's end */
        ck_assert(glm_vk_sum_parts(g_vk, view(&bs, pr, pc), p0, 3, stride) != GLM_OK);
        ck_assert(glm_vk_sum_parts_add(g_vk, view(&bs, pr, pc), p0, 3, stride) != GLM_OK);
        glm_vk_buffer_destroy(g_vk, &bs);
    }
    ck_assert(glm_vk_to_half(g_vk, view(&bh, rows, hw), view(&ba, rows, cols)) != GLM_OK); /* odd columns */
    glm_vk_buffer_destroy(g_vk, &bh);
    glm_vk_buffer_destroy(g_vk, &ba);
    glm_vk_buffer_destroy(g_vk, &bb);
    free(a);
    free(b);
    free(ref);
}
END_TEST

START_TEST(test_moe_route)
{
    /* (E, k, n_group, topk_group, sigmoid, ties): the model's shape, the dev fixture's, a grouped
     * case, softmax, the largest supported, and logits of three levels with no bias (many ties,
     * which go to the lower index) */
    static const int cases[][6] = { { 64, 4, 1, 1, 1, 0 },  { 6, 3, 1, 1, 1, 0 },   { 16, 4, 4, 2, 1, 0 },
                                    { 8, 2, 1, 1, 0, 0 },   { 256, 8, 1, 1, 1, 0 }, { 64, 4, 1, 1, 1, 1 },
                                    { 200, 8, 8, 3, 1, 1 } };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint32_t T = 9, E = (uint32_t)cases[c][0], k = (uint32_t)cases[c][1];
        glm_route_params rp = { (int)E, (int)k, cases[c][2], cases[c][3], cases[c][4] != 0, true, 1.8f };
        float *logits = malloc((size_t)T * E * 4), *bias = malloc(E * 4), *wref = malloc((size_t)T * k * 4);
        float *scratch = malloc(2 * E * 4);
        int32_t *iref = malloc((size_t)T * k * 4);
        tu_fill_uniform(&g_rng, logits, (size_t)T * E, -3, 3);
        tu_fill_uniform(&g_rng, bias, E, -0.5f, 0.5f);
        if (cases[c][5]) {
            for (size_t i = 0; i < (size_t)T * E; i++)
                logits[i] = logits[i] < -1 ? -1.0f : logits[i] < 1 ? 0.0f : 1.0f;
            for (uint32_t e = 0; e < E; e++)
                bias[e] = 0.25f;
        }
        for (uint32_t t = 0; t < T; t++)
            ck_assert(glm_ref_moe_route(iref + t * k, wref + t * k, logits + (size_t)t * E, bias, &rp, scratch));
        glm_vk_buffer bl = dev_copy(logits, (size_t)T * E * 4), bb = dev_copy(bias, E * 4);
        glm_vk_weight wb = { &bb, GLM_TYPE_F32, 0, E, 1, 1, E * 4, E * 4 };
        /* odd cases: views of k + 1 columns, the last of which must get id E with weight 1 */
        const uint32_t kk = k + (uint32_t)(c % 2);
        glm_vk_buffer bi = out_buf((size_t)T * kk), bw = out_buf((size_t)T * kk);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_moe_route(g_vk, view(&bi, T, kk), view(&bw, T, kk), view(&bl, T, E), &wb, k,
                                       (uint32_t)rp.n_group, (uint32_t)rp.topk_group, rp.sigmoid, true, 1.8f) == GLM_OK,
                      "%s", glm_last_error());
        run();
        check_out(&bi, (size_t)T * kk, "moe_route ids");
        check_out(&bw, (size_t)T * kk, "moe_route weights");
        float *got = malloc((size_t)T * k * 4);
        for (uint32_t t = 0; t < T; t++) {
            const int32_t *gi = (const int32_t *)bi.map + (size_t)t * kk;
            const float *gw = (const float *)bw.map + (size_t)t * kk;
            ck_assert_msg(memcmp(iref + t * k, gi, k * 4) == 0, "moe_route case %zu row %u: expert ids differ", c, t);
            memcpy(got + (size_t)t * k, gw, k * 4);
            if (kk > k)
                ck_assert_msg(gi[k] == (int32_t)E && gw[k] == 1.0f, "moe_route case %zu row %u: extra column %d / %g",
                              c, t, gi[k], gw[k]);
        }
        double e = tu_nmse(wref, got, (size_t)T * k);
        free(got);
        ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "moe_route case %zu weights nmse %.3g", c, e);
        glm_vk_buffer_destroy(g_vk, &bl);
        glm_vk_buffer_destroy(g_vk, &bb);
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &bw);
        free(logits);
        free(bias);
        free(wref);
        free(iref);
        free(scratch);
    }
}
END_TEST

START_TEST(test_moe_combine)
{
    /* the mixture alone, then with an addend (the shared expert) as moe_combine + add */
    const uint32_t T = 4, k = 3, N = 100;
    for (int with_add = 0; with_add < 2; with_add++) {
        float *x = malloc((size_t)T * k * N * 4), *w = malloc((size_t)T * k * 4), *ref = calloc((size_t)T * N, 4);
        float *a = malloc((size_t)T * N * 4);
        tu_fill_uniform(&g_rng, x, (size_t)T * k * N, -2, 2);
        tu_fill_uniform(&g_rng, w, (size_t)T * k, 0, 1);
        tu_fill_uniform(&g_rng, a, (size_t)T * N, -1, 1);
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t j = 0; j < k; j++)
                glm_ref_axpy(ref + (size_t)t * N, w[t * k + j], x + ((size_t)t * k + j) * N, N);
        if (with_add)
            glm_ref_add(ref, ref, a, (int64_t)T * N);
        glm_vk_buffer bx = dev_copy(x, (size_t)T * k * N * 4), bw = dev_copy(w, (size_t)T * k * 4);
        glm_vk_buffer ba = dev_copy(a, (size_t)T * N * 4), by = out_buf((size_t)T * N);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        if (with_add)
            ck_assert(glm_vk_moe_combine_add(g_vk, view(&by, T, N), view(&bx, T * k, N), view(&bw, T, k),
                                             view(&ba, T, N)) == GLM_OK);
        else
            ck_assert(glm_vk_moe_combine(g_vk, view(&by, T, N), view(&bx, T * k, N), view(&bw, T, k)) == GLM_OK);
        run();
        check_out(&by, (size_t)T * N, "moe_combine");
        double e = tu_nmse(ref, by.map, (size_t)T * N);
        ck_assert_msg(e <= TOL_VK_ELEMENTWISE_NMSE, "moe_combine (add %d) nmse %.3g", with_add, e);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bw);
        glm_vk_buffer_destroy(g_vk, &ba);
        glm_vk_buffer_destroy(g_vk, &by);
        free(x);
        free(w);
        free(a);
        free(ref);
    }
}
END_TEST

START_TEST(test_argmax)
{
    static const uint32_t ns[] = { 1, 63, 64, 65, 512, 1000 };
    for (size_t a = 0; a < 6; a++) {
        const uint32_t rows = 4, n = ns[a];
        float *x = malloc((size_t)rows * n * 4);
        for (size_t i = 0; i < (size_t)rows * n; i++)
            x[i] = (float)(tu_next(&g_rng) % 50); /* many ties: the lower index must win */
        glm_vk_buffer bx = dev_copy(x, (size_t)rows * n * 4), bi = out_buf(rows);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        /* odd cases mask the row's argmax and two more columns (one past the row) */
        int32_t mask[3] = { -1, (int32_t)(n / 2), (int32_t)n + 5 };
        uint32_t n_mask = a % 2 ? 3 : 0;
        if (n_mask)
            mask[0] = (int32_t)glm_ref_argmax(x, n);
        ck_assert(glm_vk_argmax(g_vk, view(&bi, rows, 1), view(&bx, rows, n), n_mask ? mask : NULL, n_mask) == GLM_OK);
        run();
        for (uint32_t r = 0; r < rows; r++) {
            float *row = x + (size_t)r * n;
            for (uint32_t k = 0; k < n_mask; k++)
                if (mask[k] >= 0 && (uint32_t)mask[k] < n)
                    row[mask[k]] = -INFINITY;
            ck_assert_int_eq(((int32_t *)bi.map)[r], (int32_t)glm_ref_argmax(row, n));
        }
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bi);
        free(x);
    }
}
END_TEST

/* y8 (rows of the 8-bit form) against glm_ref_quant_x8 of the float rows y: codes within 1,
 * scales and sums to float32 rounding. */
static void check_y8(const uint32_t *y8, const float *y, uint32_t rows, uint32_t n, const char *what)
{
    uint32_t nw = glm_ref_x8_words(n), *r8 = malloc((size_t)nw * 4);
    size_t flips = 0;
    for (uint32_t t = 0; t < rows; t++) {
        ck_assert(glm_ref_quant_x8(r8, y + (size_t)t * n, n) == GLM_OK);
        const uint32_t *g8 = y8 + (size_t)t * nw;
        for (uint32_t i = 0; i < nw; i++)
            if (i < n / 4)
                for (int b = 0; b < 4; b++) {
                    int d = (int)(int8_t)(g8[i] >> (8 * b)) - (int)(int8_t)(r8[i] >> (8 * b));
                    ck_assert_msg(d >= -1 && d <= 1, "%s row %u word %u: code off by %d", what, t, i, d);
                    flips += d != 0;
                }
            else {
                float a, r;
                memcpy(&a, &g8[i], 4), memcpy(&r, &r8[i], 4);
                ck_assert_msg(fabsf(a - r) <= 4e-6f * fabsf(r) + 1e-30f, "%s row %u word %u: %g, reference %g", what,
                              t, i, a, r);
            }
    }
    ck_assert_msg(flips <= TOL_VK_X8_CODE_FLIPS * rows * n, "%s: %zu codes off by one", what, flips);
    free(r8);
}

START_TEST(test_mla_attention)
{
    /* small shapes of the real layout: H heads, dn nope, dr rope, dv value, Rkv latent. One
     * call holds rows of two sequences, each read through its own shuffled pages of 4
     * positions: sequence A's rows pos0..pos0+T-1 (a prefill chunk) and one decode row of B at
     * posB. Rows of at most 16 keys are one split that writes its own result (lengths 1, 6,
     * 16 and the short rows of the first case, beside longer rows whose splits the combine
     * merges); past 16 keys the split over the sequence is 16-key passes, one per split up to
     * 1024 keys (1024: 64 exactly), then at most 64 splits of a few passes (1025: 33 of 32
     * keys, 1100: 35, 9000: 63 of 144; the model's width at 2101 keys: 44 of 48, three
     * passes each, whose pool rows are loaded a pass ahead); H 3, 5, 13 and 20 make groups of
     * up to 2 heads (2 + 1; 2 + 2 + 1; 6 of 2 + 1; 10 of 2), Rkv 512 / dr 64 is the model's
     * latent width. A
     * chunk of more than 8 rows runs tiled (its rows × positions as 64 × 64 tiles, here more
     * than one each way; head sizes of whole 32-column chunks, so that k_b and v_b run as
     * tiled products, and an odd rope size, so that most heads start at unaligned columns and
     * the split kernel reads keys element by element), while B's row beside it still takes the
     * per-row kernels; in the last case B is longer than A and A has no key bound of its own,
     * so its scores are laid out wider than its keys. Rkv 74 pads the split partials. The last
     * two run tiled with every width a multiple of 4 (the tensor-core kernels' vec4 fetches),
     * with 88 and 89 keys (the mix's probabilities as vec4s, or element by element); the
     * one after them has rows longer than the softmax keeps in registers (6,144); then the
     * model's width at 2101 keys (above) and a chunk of 12 rows at the model's width over 2,012
     * keys (k_b / v_b on 32-row tiles in some passes), then two decode rows at the model's
     * width over 4,001 and 3,001 keys (mla_flash: 128 splits of several passes). The cases after
     * it give a threshold of
     * keys (the last column; 0 in the others: never) from which an item of few rows runs tiled
     * (decode at depth): A's two rows over 302 keys and B's over 5001 (H 13) or, at the
     * model's width, 1101 keys, their scores from mla_scores_rows (also the 20-row and 9-row
     * prefill chunks above: at most 64 query rows) and their mix split over the keys into
     * partial sums that mla_reduce adds up (so are the mixes of the chunks of 20, 24 and 30
     * rows), beside a short B or A on the per-row kernels. Columns:
     * pos0, TA, posB, H, dn, dr, dv, Rkv, long_keys. */
    static const uint32_t cases[][9] = { { 0, 7, 70, 3, 16, 8, 12, 40 },       { 300, 2, 5, 3, 16, 8, 12, 40 },
                                         { 5, 3, 1100, 3, 16, 8, 12, 40 },     { 40, 30, 70, 3, 32, 9, 36, 64 },
                                         { 100, 20, 150, 3, 32, 9, 36, 64 },   { 20, 2, 9000, 13, 16, 8, 12, 40 },
                                         { 40, 1, 200, 20, 16, 64, 12, 512 }, { 10, 2, 300, 3, 16, 6, 12, 74 },
                                         { 15, 2, 0, 20, 16, 64, 12, 512 },   { 1023, 1, 1024, 5, 16, 8, 12, 40 },
                                         { 64, 24, 10, 4, 32, 8, 16, 64 },     { 65, 24, 10, 4, 32, 8, 16, 64 },
                                         { 6200, 9, 3, 2, 16, 8, 12, 40 },     { 3, 1, 2100, 20, 16, 64, 12, 512 },
                                         { 2000, 12, 5, 20, 16, 64, 12, 512 }, { 4000, 1, 3000, 20, 16, 64, 12, 512 },
                                         { 300, 2, 5, 3, 16, 8, 12, 40, 64 },  { 9, 3, 5000, 13, 16, 8, 12, 40, 512 },
                                         { 20, 1, 1100, 20, 16, 64, 12, 512, 1024 }, { 40, 1, 200, 16, 16, 8, 16, 64 } };
    unsigned x8_checked = 0; /* calls whose v_b products also wrote the 8-bit form (H·dv = 256) */
    uint32_t wide_default = glm_vk_coopmat_wide_groups(g_vk), gt = glm_vk_coopmat_grouped_tile(g_vk);
    uint32_t ahead = glm_vk_coopmat_ahead(g_vk), narrow = glm_vk_coopmat_narrow_groups(g_vk);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        /* tensor cores: all three token tiles of k_b / v_b (32 rows in even cases 2 mod 3) */
        glm_vk_coopmat_set_wide_groups(g_vk, ci % 2 ? 0 : wide_default);
        glm_vk_coopmat_set_tiling(g_vk, gt, ahead, ci % 3 == 2 ? UINT32_MAX : narrow);
        const uint32_t H = cases[ci][3], dn = cases[ci][4], dr = cases[ci][5], dv = cases[ci][6], rkv = cases[ci][7];
        const uint32_t P = 4, W = rkv + dr;
        const uint32_t pos0 = cases[ci][0], TA = cases[ci][1], posB = cases[ci][2], T = TA + 1;
        const uint32_t nA = pos0 + TA, nB = posB + 1, npA = (nA + P - 1) / P + 1, npB = (nB + P - 1) / P + 1;
        glm_mla_shape sA = { (int)TA, (int)pos0, (int)H, (int)dn, (int)dr, (int)dv, (int)rkv };
        glm_mla_shape sB = { 1, (int)posB, (int)H, (int)dn, (int)dr, (int)dv, (int)rkv };
        test_weight kb, vb;
        make_weight(&kb, GLM_TYPE_F32, dn, rkv, H);
        make_weight(&vb, GLM_TYPE_F32, rkv, dv, H);
        const size_t qc = (size_t)H * (dn + dr), oc = (size_t)H * dv;
        float *q = malloc((size_t)T * qc * 4), *ref = malloc((size_t)T * oc * 4);
        float *cA = malloc((size_t)nA * rkv * 4), *kA = malloc((size_t)nA * dr * 4);
        float *cB = malloc((size_t)nB * rkv * 4), *kB = malloc((size_t)nB * dr * 4);
        float *pool = malloc((size_t)(npA + npB) * P * W * 4);
        int32_t *meta = malloc((2 * (size_t)T + npA + npB) * 4);
        size_t nscr = glm_ref_mla_scratch_floats(&sA) > glm_ref_mla_scratch_floats(&sB) ? glm_ref_mla_scratch_floats(&sA)
                                                                                       : glm_ref_mla_scratch_floats(&sB);
        float *scr = malloc(nscr * 4);
        tu_fill_uniform(&g_rng, q, (size_t)T * qc, -1, 1);
        tu_fill_uniform(&g_rng, cA, (size_t)nA * rkv, -1, 1);
        tu_fill_uniform(&g_rng, kA, (size_t)nA * dr, -1, 1);
        tu_fill_uniform(&g_rng, cB, (size_t)nB * rkv, -1, 1);
        tu_fill_uniform(&g_rng, kB, (size_t)nB * dr, -1, 1);
        glm_ref_mla_naive(ref, q, cA, kA, (const float *)kb.host, (const float *)vb.host, &sA, scr);
        glm_ref_mla_naive(ref + (size_t)TA * oc, q + (size_t)TA * qc, cB, kB, (const float *)kb.host,
                          (const float *)vb.host, &sB, scr);
        glm_parity_two_seq_cache(pool, meta, cA, kA, nA, TA, cB, kB, nB, rkv, dr, P, &g_rng.s);
        glm_vk_buffer bq = dev_copy(q, (size_t)T * qc * 4), bp = dev_copy(pool, (size_t)(npA + npB) * P * W * 4);
        glm_vk_buffer bm = dev_copy(meta, (2 * (size_t)T + npA + npB) * 4);
        uint32_t max_len = nA > nB ? nA : nB, prow = (npA + npB) * P, runs[2] = { TA, 1 }, lens[2] = { nA, nB };
        /* odd cases and those of a long-key threshold give each item's own key bound, the others
         * only max_len */
        const uint32_t long_keys = cases[ci][8];
        glm_vk_kv_rows r = { { &bm, 0, T, 1, 1 }, { &bm, T, T, 1, 1 }, { &bm, 2 * T, 1, npA + npB, npA + npB }, P,
                             max_len, runs, ci % 2 || long_keys ? lens : NULL, 2, long_keys, 0, 0 };
        /* the per-row core as mla_split, then as mla_flash with the device's pass and at most
         * 128 splits (one-pass splits up to 128 passes of keys), then with 2 (several passes a
         * split), then (tensor cores) as mla_flash_cm where the shape fits (the model's width):
         * with its default cut (one 32-key block a split up to 8,192 keys), at most 3 splits
         * (splits of several blocks, their accumulators rescaled per head between blocks) and
         * 1 split (a whole row of up to 126 blocks in one workgroup, no combine) */
        for (int flash = 0; flash < 6; flash++) {
        bool fcm = flash >= 3 && glm_vk_coopmat_enabled(g_vk) && H <= 32 && rkv == 512 && dr == 64;
        if (flash >= 3 && !fcm)
            continue;
        glm_vk_set_mla_flash_cm(fcm ? 1 : 0);
        glm_vk_set_mla_flash_cm_split(flash == 4 ? 3 : flash == 5 ? 1 : 0);
        r.flash_pass = flash ? glm_vk_mla_flash_pass(g_vk) : 0;
        r.flash_split = flash == 1 || flash >= 3 ? GLM_VK_MLA_FLASH_SPLIT : flash == 2 ? 2 : 0;
        glm_vk_buffer bo = out_buf((size_t)T * oc), bs, bc;
        ck_assert(glm_vk_buffer_create(g_vk, &bs, glm_vk_mla_scratch_floats(T, H, rkv, &r) * 4, false) == GLM_OK);
        const uint64_t ncount = glm_vk_mla_count_ints(T, H); /* the split kernel's arrival counts: zeros */
        ck_assert(glm_vk_buffer_create(g_vk, &bc, ncount * 4, true) == GLM_OK);
        memset(bc.map, 0, ncount * 4);
        glm_vk_view pc = { &bp, 0, prow, rkv, W }, pk = { &bp, rkv, prow, dr, W };
        /* where H·dv is a multiple of 256, v_b's products also write out in 8 bits */
        const bool w8 = oc % 256 == 0 && glm_vk_idot_available(g_vk);
        const uint32_t n8 = glm_ref_x8_words((int64_t)oc);
        glm_vk_buffer b8 = out_buf(w8 ? (size_t)T * n8 : 1);
        glm_vk_x8_out o8 = { { &b8, 0, T, n8, n8 }, false };
        bool wrote8 = false;
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert_msg(glm_vk_mla_attention_x8(g_vk, view(&bo, T, (uint32_t)oc), view(&bq, T, (uint32_t)qc), pc, pk,
                                              &kb.w, &vb.w, H, dn, dr, dv, &r, &bs, &bc, w8 ? &o8 : NULL, &wrote8) ==
                          GLM_OK,
                      "%s", glm_last_error());
        run();
        check_out(&bo, (size_t)T * oc, "mla_attention");
        if (wrote8) {
            check_guard(&b8, (size_t)T * n8, "mla_attention x8");
            check_y8(b8.map, bo.map, T, (uint32_t)oc, "mla_attention x8");
            x8_checked++;
        }
        glm_vk_buffer_destroy(g_vk, &b8);
        for (uint64_t i = 0; i < ncount; i++) /* left zero for the next call */
            ck_assert_msg(((const uint32_t *)bc.map)[i] == 0, "mla case %zu: arrival count %u is %u", ci, (unsigned)i,
                          ((const uint32_t *)bc.map)[i]);
        double e = tu_nmse(ref, bo.map, (size_t)T * oc);
        /* k_b / v_b, or the scores and mix, on tensor cores */
        bool tiled = TA > GLM_VK_MATMUL_MIN_ROWS || (long_keys && (nA >= long_keys || nB >= long_keys));
        bool cm = glm_vk_coopmat_enabled(g_vk) && (tiled || fcm);
        double bound = cm ? TOL_VK_ATTENTION_CM_NMSE : TOL_VK_ATTENTION_NMSE;
        ck_assert_msg(e <= bound, "mla case %zu nmse %.3g", ci, e);
        printf("vk paged mla (H %u Rkv %u dr %u; A: pos0 %u T %u, B: pos %u; tiled from %u keys; per-row core %s): "
               "nmse vs ref naive %.3g\n",
               H, rkv, dr, pos0, TA, posB, long_keys,
               !flash ? "mla_split" : flash == 3 ? "mla_flash_cm (tensor cores)" : flash == 4 ? "mla_flash_cm, at most 3 splits" : fcm ? "mla_flash_cm, one split" : r.flash_split == 2 ? "mla_flash where it fits, 2 splits" : "mla_flash where it fits", e);
        glm_vk_buffer_destroy(g_vk, &bo);
        glm_vk_buffer_destroy(g_vk, &bs);
        glm_vk_buffer_destroy(g_vk, &bc);
        }
        glm_vk_buffer_destroy(g_vk, &bq);
        glm_vk_buffer_destroy(g_vk, &bp);
        glm_vk_buffer_destroy(g_vk, &bm);
        free_weight(&kb);
        free_weight(&vb);
        free(q), free(ref), free(cA), free(kA), free(cB), free(kB), free(pool), free(meta), free(scr);
    }
    glm_vk_coopmat_set_wide_groups(g_vk, wide_default);
    glm_vk_coopmat_set_tiling(g_vk, gt, ahead, narrow);
    glm_vk_set_mla_flash_cm(-1);
    glm_vk_set_mla_flash_cm_split(0);
    if (glm_vk_idot_available(g_vk))
        ck_assert_msg(x8_checked > 0, "no case wrote v_b's products in 8 bits");
    printf("vk paged mla: %u calls also wrote v_b's products in 8 bits, against glm_ref_quant_x8\n", x8_checked);
}
END_TEST

/* ref of one weight slab at a byte offset inside `host` (rows of row_bytes) */
static void ref_rows(float *y, const uint8_t *host, glm_type t, uint32_t ncols, uint32_t nrows, uint32_t rb, const float *x)
{
    float *row = malloc(ncols * sizeof(float));
    for (uint32_t r = 0; r < nrows; r++) {
        glm_ref_dequant_row(row, host + (size_t)r * rb, t, ncols);
        double acc = 0;
        for (uint32_t i = 0; i < ncols; i++)
            acc += (double)row[i] * x[i];
        y[r] = (float)acc;
    }
    free(row);
}

START_TEST(test_matvec_heads)
{
    /* H heads in one dispatch: head h reads x columns [h·x_hs, +ncols) and writes y columns
     * [h·nrows, +nrows) of each of the T rows, with slab h */
    static const glm_type types[] = { GLM_TYPE_Q5_0, GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_F32 };
    const uint32_t H = 3, T = 2, nrows = 37;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t ncols = types[ti] == GLM_TYPE_Q5_0 ? 192 : 256, x_hs = ncols + 64, xld = H * x_hs, yld = H * nrows;
        test_weight tw;
        make_weight(&tw, types[ti], ncols, nrows, H);
        float *x = malloc((size_t)T * xld * 4), *ref = malloc((size_t)T * yld * 4);
        tu_fill_uniform(&g_rng, x, (size_t)T * xld, -1, 1);
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t h = 0; h < H; h++)
                ref_matvec(ref + (size_t)t * yld + h * nrows, &tw, h, x + (size_t)t * xld + h * x_hs);
        glm_vk_buffer bx = dev_copy(x, (size_t)T * xld * 4), by = out_buf((size_t)T * yld);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        glm_vk_view xv = { &bx, 0, T, ncols, xld }, yv = { &by, 0, T, nrows, yld };
        ck_assert_msg(glm_vk_matvec_heads(g_vk, yv, &tw.w, 0, xv, H, x_hs, nrows) == GLM_OK, "%s", glm_last_error());
        /* the last head past the slabs or the buffer is refused */
        ck_assert_int_eq(glm_vk_matvec_heads(g_vk, yv, &tw.w, 1, xv, H, x_hs, nrows), GLM_ERR_INVALID);
        ck_assert_int_eq(glm_vk_matvec_heads(g_vk, yv, &tw.w, 0, xv, H, x_hs + 64, nrows), GLM_ERR_INVALID);
        run();
        check_out(&by, (size_t)T * yld, "matvec_heads");
        double e = tu_nmse(ref, by.map, (size_t)T * yld);
        ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec_heads %s nmse %.3g", glm_type_name(types[ti]), e);
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &by);
        free_weight(&tw);
        free(x);
        free(ref);
    }
}
END_TEST

START_TEST(test_matvec_swiglu)
{
    /* y = SiLU(Wg·x) ⊙ (Wu·x) with Wg, Wu in one buffer (Wu 256 bytes after Wg), dense and
     * routed (ids [T][k] over E slabs); normed: x replaced by RMSNorm(x; gain) in the same
     * dispatch (glm_vk_rms_norm_matvec) */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q8_0 };
    const uint32_t T = 2, k = 3, E = 4, ncols = 512, nrows = 70;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int variant = 0; variant < 4; variant++) {
            int routed = variant & 1, normed = variant >> 1;
            glm_type t = types[ti];
            uint32_t rb = (uint32_t)glm_row_bytes(t, ncols), slab = rb * nrows, slabs = routed ? E : 1;
            uint32_t wbytes = slab * slabs, uoff = (wbytes + 255) & ~255u;
            uint8_t *host = malloc(uoff + wbytes);
            glm_parity_random_blocks(host, t, wbytes / glm_type_info(t)->bytes, &g_rng.s);
            memset(host + wbytes, 0, uoff - wbytes);
            glm_parity_random_blocks(host + uoff, t, wbytes / glm_type_info(t)->bytes, &g_rng.s);
            glm_vk_buffer bw = dev_copy(host, uoff + wbytes);
            glm_vk_weight wg = { &bw, t, 0, ncols, nrows, slabs, rb, slab }, wu = wg;
            wu.offset = uoff;
            uint32_t nout = routed ? T * k : T;
            float *x = malloc((size_t)T * ncols * 4), *ref = malloc((size_t)nout * nrows * 4);
            float *g = malloc(nrows * 4), *u = malloc(nrows * 4);
            tu_fill_uniform(&g_rng, x, (size_t)T * ncols, -1, 1);
            test_weight tg;
            make_weight(&tg, GLM_TYPE_F32, ncols, 1, 1);
            float *xn = malloc((size_t)T * ncols * 4), *gf = malloc((size_t)ncols * 4);
            glm_ref_dequant_row(gf, tg.host, GLM_TYPE_F32, ncols);
            for (uint32_t i = 0; i < T; i++)
                if (normed)
                    glm_ref_rms_norm(xn + (size_t)i * ncols, x + (size_t)i * ncols, gf, ncols, 1e-5f);
                else
                    memcpy(xn + (size_t)i * ncols, x + (size_t)i * ncols, (size_t)ncols * 4);
            int32_t ids[6];
            for (uint32_t i = 0; i < T * k; i++)
                ids[i] = (int32_t)(tu_next(&g_rng) % E);
            for (uint32_t i = 0; i < nout; i++) {
                uint32_t sl = routed ? (uint32_t)ids[i] : 0;
                const float *xi = xn + (size_t)(routed ? i / k : i) * ncols;
                ref_rows(g, host + (size_t)sl * slab, t, ncols, nrows, rb, xi);
                ref_rows(u, host + uoff + (size_t)sl * slab, t, ncols, nrows, rb, xi);
                glm_ref_swiglu(ref + (size_t)i * nrows, g, u, nrows);
            }
            glm_vk_buffer bx = dev_copy(x, (size_t)T * ncols * 4), bi = dev_copy(ids, sizeof ids);
            glm_vk_buffer by = out_buf((size_t)nout * nrows);
            glm_vk_view iv = view(&bi, T, k);
            ck_assert(glm_vk_begin(g_vk) == GLM_OK);
            glm_status st = normed ? glm_vk_rms_norm_matvec(g_vk, view(&by, nout, nrows), &wg, &wu, view(&bx, T, ncols),
                                                            routed ? &iv : NULL, &tg.w, 1e-5f)
                                   : glm_vk_matvec_swiglu(g_vk, view(&by, nout, nrows), &wg, &wu, view(&bx, T, ncols),
                                                          routed ? &iv : NULL);
            ck_assert_msg(st == GLM_OK, "%s", glm_last_error());
            run();
            check_out(&by, (size_t)nout * nrows, "matvec_swiglu");
            double e = tu_nmse(ref, by.map, (size_t)nout * nrows);
            ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec_swiglu %s routed=%d normed=%d nmse %.3g", glm_type_name(t),
                          routed, normed, e);
            if (normed)
                printf("vk rms_norm_matvec swiglu %s routed=%d: nmse %.3g\n", glm_type_name(t), routed, e);
            free_weight(&tg);
            free(xn);
            free(gf);
            glm_vk_buffer_destroy(g_vk, &bx);
            glm_vk_buffer_destroy(g_vk, &bi);
            glm_vk_buffer_destroy(g_vk, &by);
            glm_vk_buffer_destroy(g_vk, &bw);
            free(host);
            free(x);
            free(ref);
            free(g);
            free(u);
        }
}
END_TEST

START_TEST(test_matvec_unaligned)
{
    /* weights at byte offsets 4, 8 and 12 (not 16-aligned): the word-load path */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q5_K, GLM_TYPE_Q6_K, GLM_TYPE_Q8_0, GLM_TYPE_Q5_0 };
    const uint32_t ncols = 512, nrows = 9;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (uint32_t off = 4; off < 16; off += 4) {
            glm_type t = types[ti];
            uint32_t rb = (uint32_t)glm_row_bytes(t, ncols), bytes = rb * nrows;
            uint8_t *host = calloc(1, off + bytes);
            glm_parity_random_blocks(host + off, t, bytes / glm_type_info(t)->bytes, &g_rng.s);
            glm_vk_buffer bw = dev_copy(host, off + bytes);
            glm_vk_weight w = { &bw, t, off, ncols, nrows, 1, rb, bytes };
            float *x = malloc(ncols * 4), ref[9];
            tu_fill_uniform(&g_rng, x, ncols, -1, 1);
            ref_rows(ref, host + off, t, ncols, nrows, rb, x);
            glm_vk_buffer bx = dev_copy(x, ncols * 4), by = out_buf(nrows);
            ck_assert(glm_vk_begin(g_vk) == GLM_OK);
            ck_assert(glm_vk_matvec(g_vk, view(&by, 1, nrows), &w, 0, view(&bx, 1, ncols)) == GLM_OK);
            run();
            check_out(&by, nrows, "matvec unaligned");
            double e = tu_nmse(ref, by.map, nrows);
            ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec %s at offset %u nmse %.3g", glm_type_name(t), off, e);
            glm_vk_buffer_destroy(g_vk, &bx);
            glm_vk_buffer_destroy(g_vk, &by);
            glm_vk_buffer_destroy(g_vk, &bw);
            free(host);
            free(x);
        }
}
END_TEST

/* A dependent chain in one recording, longer than one command buffer: y1 = W·x, y2 = y1 + y1,
 * y1 = W·y2' (a write after the add read y1), then 300 adds y2 += x; checked against the host. */
static void chain(glm_vk *vk)
{
    const uint32_t n = 256, adds = 300;
    test_weight tw;
    uint32_t rb = (uint32_t)glm_row_bytes(GLM_TYPE_Q8_0, n);
    tw.host = malloc((size_t)rb * n);
    glm_parity_random_blocks(tw.host, GLM_TYPE_Q8_0, (size_t)rb * n / 34, &g_rng.s);
    glm_vk_buffer bw;
    ck_assert(glm_vk_buffer_create(vk, &bw, (size_t)rb * n, false) == GLM_OK);
    ck_assert(glm_vk_upload(vk, &bw, 0, tw.host, (size_t)rb * n) == GLM_OK);
    tw.w = (glm_vk_weight){ &bw, GLM_TYPE_Q8_0, 0, n, n, 1, rb, rb * n };
    float *x = malloc(n * 4), *y1 = malloc(n * 4), *y2 = malloc(n * 4), *y3 = malloc(n * 4);
    tu_fill_uniform(&g_rng, x, n, -1, 1);
    ref_matvec(y1, &tw, 0, x);
    for (uint32_t i = 0; i < n; i++)
        y2[i] = y1[i] + y1[i];
    ref_matvec(y3, &tw, 0, y2);
    for (uint32_t a = 0; a < adds; a++)
        for (uint32_t i = 0; i < n; i++)
            y2[i] += x[i];
    glm_vk_buffer bx, b1, b2;
    ck_assert(glm_vk_buffer_create(vk, &bx, n * 4, true) == GLM_OK);
    ck_assert(glm_vk_buffer_create(vk, &b1, n * 4, true) == GLM_OK);
    ck_assert(glm_vk_buffer_create(vk, &b2, n * 4, true) == GLM_OK);
    memcpy(bx.map, x, n * 4);
    tu_poison(b1.map, n);
    tu_poison(b2.map, n);
    ck_assert(glm_vk_begin(vk) == GLM_OK);
    ck_assert(glm_vk_matvec(vk, view(&b1, 1, n), &tw.w, 0, view(&bx, 1, n)) == GLM_OK);
    ck_assert(glm_vk_eltwise(vk, GLM_VK_ADD, view(&b2, 1, n), view(&b1, 1, n), view(&b1, 1, n)) == GLM_OK);
    ck_assert(glm_vk_matvec(vk, view(&b1, 1, n), &tw.w, 0, view(&b2, 1, n)) == GLM_OK);
    for (uint32_t a = 0; a < adds; a++)
        ck_assert(glm_vk_eltwise(vk, GLM_VK_ADD, view(&b2, 1, n), view(&b2, 1, n), view(&bx, 1, n)) == GLM_OK);
    ck_assert_msg(glm_vk_submit_wait(vk) == GLM_OK, "%s", glm_last_error());
    double e1 = tu_nmse(y3, b1.map, n), e2 = tu_nmse(y2, b2.map, n);
    ck_assert_msg(e1 <= TOL_VK_MATVEC_NMSE && e2 <= TOL_VK_MATVEC_NMSE, "chain nmse %.3g %.3g", e1, e2);
    glm_vk_buffer_destroy(vk, &bx);
    glm_vk_buffer_destroy(vk, &b1);
    glm_vk_buffer_destroy(vk, &b2);
    glm_vk_buffer_destroy(vk, &bw);
    free(tw.host);
    free(x);
    free(y1);
    free(y2);
    free(y3);
}

/* Was a matvec_fast dispatch of `variant` recorded since the last profile reset? Where rows may
 * be split over two slices (glm_vk_matvec_ks_groups between 1 and UINT32_MAX - 1) with or
 * without that split (+65536) matches; at 0 only without, at UINT32_MAX only with. */
static bool fast_variant_ran(uint32_t variant)
{
    const glm_vk_prof_shape *sh;
    uint32_t n = glm_vk_profile_shapes(g_vk, &sh), ks = glm_vk_matvec_ks_groups(g_vk);
    uint32_t mask = ks == 0 || ks == UINT32_MAX ? ~0u : ~65536u;
    variant |= ks == UINT32_MAX ? 65536u : 0u;
    for (uint32_t i = 0; i < n; i++)
        if (sh[i].kernel == GLM_VK_MATVEC_FAST && (sh[i].variant & mask) == (variant & mask) && sh[i].count)
            return true;
    return false;
}

/* matvec_fast at one shape, T vectors of ncols: the plain product, a SwiGLU pair (gate = up)
 * and a SwiGLU pair of RMSNorm(x; gain), each against the reference and required to have run
 * as matvec_fast variant `variant` (+64 SwiGLU, +256 normed). */
static void fast_case(glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T, uint32_t variant)
{
    glm_vk_profile_reset(g_vk);
    double e = product_case(t, ncols, nrows, T, false, false);
    ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec_fast %s nmse %.3g", glm_type_name(t), e);
    ck_assert_msg(fast_variant_ran(variant), "%s: no matvec_fast dispatch of variant %u", glm_type_name(t), variant);

    test_weight tw, tg;
    make_weight(&tw, t, ncols, nrows, 1);
    make_weight(&tg, GLM_TYPE_BF16, ncols, 1, 1);
    float *x = malloc((size_t)ncols * T * 4), *g = malloc(nrows * 4), *ref = malloc((size_t)nrows * T * 4);
    float *refn = malloc((size_t)nrows * T * 4), *gf = malloc((size_t)ncols * 4), *xn = malloc((size_t)ncols * 4);
    tu_fill_uniform(&g_rng, x, (size_t)ncols * T, -1, 1);
    glm_ref_dequant_row(gf, tg.host, GLM_TYPE_BF16, ncols);
    for (uint32_t v = 0; v < T; v++) {
        ref_matvec(g, &tw, 0, x + (size_t)v * ncols);
        glm_ref_swiglu(ref + (size_t)v * nrows, g, g, nrows);
        glm_ref_rms_norm(xn, x + (size_t)v * ncols, gf, ncols, 1e-5f);
        ref_matvec(g, &tw, 0, xn);
        glm_ref_swiglu(refn + (size_t)v * nrows, g, g, nrows);
    }
    glm_vk_buffer bx = dev_copy(x, (size_t)ncols * T * 4), by = out_buf((size_t)nrows * T);
    double en = 0, es = 0;
    for (int normed = 0; normed < 2; normed++) {
        tu_poison(by.map, (size_t)nrows * T);
        glm_vk_profile_reset(g_vk);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        glm_status st = normed ? glm_vk_rms_norm_matvec(g_vk, view(&by, T, nrows), &tw.w, &tw.w, view(&bx, T, ncols),
                                                        NULL, &tg.w, 1e-5f)
                               : glm_vk_matvec_swiglu(g_vk, view(&by, T, nrows), &tw.w, &tw.w, view(&bx, T, ncols), NULL);
        ck_assert_msg(st == GLM_OK, "%s", glm_last_error());
        run();
        *(normed ? &en : &es) = check_close(&by, normed ? refn : ref, (size_t)nrows * T, TOL_VK_MATVEC_SWIGLU_NMSE,
                                            normed ? "matvec_fast normed swiglu" : "matvec_fast swiglu");
        uint32_t vv = variant + 64 + 256 * (uint32_t)normed;
        ck_assert_msg(fast_variant_ran(vv), "%s: no matvec_fast dispatch of variant %u", glm_type_name(t), vv);
    }
    printf("vk matvec_fast %s, %u rows x %u cols x %u: nmse %.3g, swiglu %.3g, normed swiglu %.3g\n", glm_type_name(t),
           nrows, ncols, T, e, es, en);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &by);
    free_weight(&tw);
    free_weight(&tg);
    free(x);
    free(g);
    free(ref);
    free(refn);
    free(gf);
    free(xn);
}

START_TEST(test_matvec_fast_variants)
{
    /* each hot type through the variants the host picks: products of many workgroups take 2 rows
     * per slice (here from 256 workgroups, by default from GLM_VK_MATVEC_FAST_FEW; the small shapes
     * of the other tests take 1); x staged in shared memory (+512;
     * rows of up to GLM_VK_MATVEC_FAST_XCOLS columns, products of up to
     * glm_vk_matvec_stage_groups workgroups, here all or none) or read from global memory;
     * both with 2 rows per slice and with 1 */
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q5_K, GLM_TYPE_Q6_K,
                                      GLM_TYPE_Q8_0, GLM_TYPE_Q5_0, GLM_TYPE_F32 };
    const uint32_t longc = GLM_VK_MATVEC_FAST_XCOLS + 256;
    ck_assert(glm_vk_set_profiling(g_vk, true) == GLM_OK);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0] + 2; ti++) {
        /* Q4_K and Q5_K twice: tasks as columns of 4 code bytes (+32768, the default), then as runs of 16 */
        bool again = ti >= sizeof types / sizeof types[0];
        glm_type ty = again ? types[ti - sizeof types / sizeof types[0]] : types[ti];
        glm_vk_matvec_set_xc(g_vk, !again);
        glm_vk_matvec_set_ks_groups(g_vk, again ? 0 : GLM_VK_MATVEC_KS_WG);
        uint32_t t = (uint32_t)ty + (!again && (ty == GLM_TYPE_Q4_K || ty == GLM_TYPE_Q5_K) ? 32768u : 0u);
        /* the default: 1 row per slice up to GLM_VK_MATVEC_FAST_FEW workgroups */
        glm_vk_matvec_set_stage_groups(g_vk, 0);
        fast_case(ty, 256, 4100, 4, t + 128);
        glm_vk_matvec_set_few_groups(g_vk, 256); /* 2 rows from 256 workgroups */
        glm_vk_matvec_set_stage_groups(g_vk, UINT32_MAX);
        fast_case(ty, 256, 4100, 4, t + 512);
        fast_case(ty, GLM_VK_MATVEC_FAST_XCOLS - 256, 40, 1, t + 128 + 512); /* staged in two rounds */
        fast_case(ty, longc, 2100, 4, t);
        fast_case(ty, longc, 40, 1, t + 128);
        glm_vk_matvec_set_stage_groups(g_vk, 0);
        fast_case(ty, 256, 4100, 4, t);
        fast_case(ty, 512, 40, 1, t + 128);
        glm_vk_matvec_set_few_groups(g_vk, GLM_VK_MATVEC_FAST_FEW);
    }
    /* rows split over two slices wherever a row has two rounds of tasks: 1 and 2 rows a slice,
     * x staged and not */
    glm_vk_matvec_set_xc(g_vk, GLM_VK_MATVEC_XC);
    glm_vk_matvec_set_ks_groups(g_vk, UINT32_MAX);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t t = (uint32_t)types[ti] +
                     (types[ti] == GLM_TYPE_Q4_K || types[ti] == GLM_TYPE_Q5_K ? 32768u : 0u);
        glm_vk_matvec_set_stage_groups(g_vk, UINT32_MAX);
        fast_case(types[ti], GLM_VK_MATVEC_FAST_XCOLS - 256, 40, 1, t + 128 + 512);
        glm_vk_matvec_set_stage_groups(g_vk, 0);
        fast_case(types[ti], longc, 40, 1, t + 128);
        glm_vk_matvec_set_few_groups(g_vk, 256);
        fast_case(types[ti], longc, 2100, 4, t);
        glm_vk_matvec_set_few_groups(g_vk, GLM_VK_MATVEC_FAST_FEW);
    }
    glm_vk_matvec_set_ks_groups(g_vk, GLM_VK_MATVEC_KS_WG);
    glm_vk_matvec_set_stage_groups(g_vk, GLM_VK_MATVEC_FAST_STAGE_WG);
    ck_assert(glm_vk_set_profiling(g_vk, false) == GLM_OK);
}
END_TEST

/* ---- 8-bit x (quant_x8.comp, matvec_q8.comp) ---- */

static bool q8_ran(void)
{
    const glm_vk_prof_shape *sh;
    uint32_t n = glm_vk_profile_shapes(g_vk, &sh);
    for (uint32_t i = 0; i < n; i++)
        if (sh[i].kernel == GLM_VK_MATVEC_Q8 && sh[i].count)
            return true;
    return false;
}

/* x8 = quant_x8(x) on the device against glm_ref_quant_x8: scales to float32 rounding, codes within 1 (the device's 127 / max may differ from the host's in the last
 * place), and at most TOL_VK_X8_CODE_FLIPS of them off at all. Returns the device's words. */
static size_t g_x8_flips; /* codes off by one in the last x8_case */
static uint32_t *x8_case(const float *x, uint32_t rows, uint32_t n, glm_vk_buffer *bq)
{
    uint32_t nw = glm_ref_x8_words(n);
    glm_vk_buffer bx = dev_copy(x, (size_t)rows * n * 4);
    ck_assert(glm_vk_buffer_create(g_vk, bq, ((size_t)rows * nw + TU_GUARD) * 4, true) == GLM_OK);
    tu_poison(bq->map, (size_t)rows * nw + TU_GUARD);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert_msg(glm_vk_quant_x8(g_vk, view(bq, rows, nw), view(&bx, rows, n)) == GLM_OK, "%s", glm_last_error());
    run();
    check_guard(bq, (size_t)rows * nw, "quant_x8");
    uint32_t *ref = malloc((size_t)nw * 4), *got = malloc((size_t)rows * nw * 4);
    memcpy(got, bq->map, (size_t)rows * nw * 4);
    size_t flips = 0;
    for (uint32_t t = 0; t < rows; t++) {
        ck_assert(glm_ref_quant_x8(ref, x + (size_t)t * n, n) == GLM_OK);
        const uint32_t *g = got + (size_t)t * nw;
        for (uint32_t i = 0; i < n / 4; i++)
            for (int b = 0; b < 4; b++) {
                int d = (int)(int8_t)(uint8_t)(g[i] >> (8 * b)) - (int)(int8_t)(uint8_t)(ref[i] >> (8 * b));
                ck_assert_msg(d >= -1 && d <= 1, "quant_x8 row %u word %u byte %d: code off by %d", t, i, b, d);
                flips += d != 0;
            }
        for (uint32_t i = n / 4; i < nw; i++) {
            float a, r;
            memcpy(&a, &g[i], 4);
            memcpy(&r, &ref[i], 4);
            ck_assert_msg(isfinite(a) && fabsf(a - r) <= 4e-6f * fabsf(r) + 1e-30f,
                          "quant_x8 row %u: scale %u is %g, reference %g", t, i - n / 4, a, r);
        }
    }
    ck_assert_msg(flips <= TOL_VK_X8_CODE_FLIPS * (size_t)rows * n, "quant_x8: %zu of %zu codes off by one", flips,
                  (size_t)rows * n);
    g_x8_flips = flips;
    glm_vk_buffer_destroy(g_vk, &bx);
    free(ref);
    return got;
}

START_TEST(test_quant_x8)
{
    /* rows with runs of zeros, a lone large value, and tiny values */
    if (glm_vk_device_is_cpu(g_vk))
        ck_assert_msg(glm_vk_idot_available(g_vk), "lavapipe offers the integer dot product");
    const uint32_t rows = 3, n = 1024;
    float *x = malloc((size_t)rows * n * 4);
    tu_fill_uniform(&g_rng, x, (size_t)rows * n, -3, 3);
    for (uint32_t k = 0; k < 32; k++)
        x[64 + k] = 0.0f, x[n + 96 + k] *= 1e-6f, x[2 * n + 512 + k] = k == 7 ? 4e3f : x[2 * n + 512 + k];
    glm_vk_buffer bq;
    uint32_t *got = x8_case(x, rows, n, &bq);
    /* the form stands for x to within half a step of each word of 4 */
    float *xd = malloc(n * 4);
    for (uint32_t t = 0; t < rows; t++) {
        glm_ref_x8_dequant(xd, got + (size_t)t * glm_ref_x8_words(n), n);
        for (uint32_t k = 0; k < n; k++) {
            float m = 0;
            for (uint32_t j = k / 4 * 4; j < k / 4 * 4 + 4; j++)
                m = fmaxf(m, fabsf(x[(size_t)t * n + j]));
            ck_assert_msg(fabsf(xd[k] - x[(size_t)t * n + k]) <= 0.51f * m / 127.0f + 1e-30f,
                          "x8 row %u column %u: %g stands for %g", t, k, xd[k], x[(size_t)t * n + k]);
        }
    }
    printf("vk quant_x8 %u x %u: codes and scales match the reference (%zu codes off by one)\n", rows, n, g_x8_flips);
    glm_vk_buffer_destroy(g_vk, &bq);
    free(got);
    free(xd);
    free(x);
}
END_TEST

/* One product on matvec_q8.comp: W (slabs E, or 1) against x8 rows made on the device; the
 * reference is the double-accumulated product of the dequantized W and the dequantized x8
 * (what the kernel computes, to float32 rounding). mode: 0 plain, 1 SwiGLU pair, 2 accumulate,
 * 3 routed (x per token), 4 routed (x per pair), 5 routed (x per pair) with the mixture added to
 * y (glm_vk_matvec_x8_combine_add, distinct experts a token). Returns the NMSE against the
 * product with the float32 x (the 8-bit rounding of x). */
static double q8_case(glm_type t, uint32_t ncols, uint32_t nrows, uint32_t T, int mode)
{
    const uint32_t k = 3, E = 5;
    bool routed = mode >= 3, comb = mode == 5;
    uint32_t xrows = mode >= 4 ? T * k : T, yrows = comb ? T : routed ? T * k : T, nw = glm_ref_x8_words(ncols);
    /* gate and up: the two halves of one buffer's slabs */
    uint32_t S = routed ? E : 1;
    test_weight tw, tu;
    make_weight(&tw, t, ncols, nrows, 2 * S);
    tw.w.nslabs = S;
    tu = tw;
    tu.host += (size_t)S * tw.w.slab_bytes;
    tu.w.offset += S * tw.w.slab_bytes;
    float *x = malloc((size_t)xrows * ncols * 4), *xd = malloc((size_t)xrows * ncols * 4);
    tu_fill_uniform(&g_rng, x, (size_t)xrows * ncols, -1, 1);
    glm_vk_buffer bq;
    uint32_t *x8 = x8_case(x, xrows, ncols, &bq);
    for (uint32_t v = 0; v < xrows; v++)
        glm_ref_x8_dequant(xd + (size_t)v * ncols, x8 + (size_t)v * nw, ncols);
    int32_t ids[64];
    float wts[64];
    for (uint32_t i = 0; i < T * k; i++) {
        int dup;
        do { /* (distinct experts a token) */
            ids[i] = (int32_t)(tu_next(&g_rng) % E);
            dup = 0;
            for (uint32_t q = i - i % k; q < i; q++)
                dup |= ids[q] == ids[i];
        } while (dup);
    }
    tu_fill_uniform(&g_rng, wts, T * k, 0.1f, 1);
    size_t ny = (size_t)yrows * nrows;
    float *ref = malloc(ny * 4), *reff = malloc(ny * 4), *g = malloc(nrows * 4), *u = malloc(nrows * 4);
    float *init = malloc(ny * 4);
    tu_fill_uniform(&g_rng, init, ny, -1, 1);
    for (int pass = 0; pass < 2; pass++) { /* pass 0: x8's own values; 1: the float32 x */
        float *xs = pass ? x : xd, *out = pass ? reff : ref;
        if (comb) { /* init + Σ_j w · W_{ids} · x[t·k + j], in pair order */
            memcpy(out, init, ny * 4);
            for (uint32_t i = 0; i < T * k; i++) {
                ref_matvec(g, &tw, (uint32_t)ids[i], xs + (size_t)i * ncols);
                glm_ref_axpy(out + (size_t)(i / k) * nrows, wts[i], g, nrows);
            }
            continue;
        }
        for (uint32_t v = 0; v < yrows; v++) {
            uint32_t slab = routed ? (uint32_t)ids[v] : 0, xr = mode == 4 ? v : routed ? v / k : v;
            ref_matvec(g, &tw, slab, xs + (size_t)xr * ncols);
            if (mode == 1) {
                ref_matvec(u, &tu, slab, xs + (size_t)xr * ncols);
                glm_ref_swiglu(out + (size_t)v * nrows, g, u, nrows);
            } else
                for (uint32_t r = 0; r < nrows; r++)
                    out[(size_t)v * nrows + r] = g[r] + (mode == 2 ? init[(size_t)v * nrows + r] : 0.0f);
        }
    }
    glm_vk_buffer by = out_buf(ny), bi = dev_copy(ids, sizeof ids), bw = dev_copy(wts, sizeof wts);
    if (mode == 2 || comb)
        memcpy(by.map, init, ny * 4);
    else
        tu_poison(by.map, ny);
    glm_vk_view iv = view(&bi, T, k);
    glm_vk_profile_reset(g_vk);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    if (comb)
        ck_assert_msg(glm_vk_matvec_x8_combine_add(g_vk, view(&by, yrows, nrows), &tw.w, view(&bq, xrows, nw), iv,
                                                   view(&bw, T, k)) == GLM_OK,
                      "%s", glm_last_error());
    else
        ck_assert_msg(glm_vk_matvec_x8(g_vk, view(&by, yrows, nrows), &tw.w, mode == 1 ? &tu.w : NULL,
                                       view(&bq, xrows, nw), routed ? &iv : NULL, mode == 2, NULL) == GLM_OK,
                      "%s", glm_last_error());
    run();
    ck_assert_msg(q8_ran(), "%s: no matvec_q8 dispatch", glm_type_name(t));
    char what[96];
    snprintf(what, sizeof what, "matvec_q8 %s %ux%u T%u mode %d", glm_type_name(t), nrows, ncols, T, mode);
    check_close(&by, ref, ny, mode == 1 ? TOL_VK_MATVEC_SWIGLU_NMSE : TOL_VK_MATVEC_NMSE, what);
    /* the 8-bit rounding of x, on the linear products (a SwiGLU of these random rows, whose
     * gates sit far below 0, magnifies a small error in g by |g|: not held to the bound) */
    double eq = tu_nmse(reff, by.map, ny);
    if (mode != 1)
        ck_assert_msg(eq <= TOL_VK_X8_ROUNDING_NMSE, "%s: nmse %.3g against the float32 x", what, eq);
    glm_vk_buffer_destroy(g_vk, &by);
    glm_vk_buffer_destroy(g_vk, &bi);
    glm_vk_buffer_destroy(g_vk, &bw);
    glm_vk_buffer_destroy(g_vk, &bq);
    free_weight(&tw);
    free(x);
    free(xd);
    free(x8);
    free(ref);
    free(reff);
    free(g);
    free(u);
    free(init);
    return eq;
}

START_TEST(test_matvec_q8)
{
    /* Q4_K and Q5_K (XC) and Q6_K: plain, SwiGLU pairs, accumulate, routed x per token and per
     * pair, routed with the mixture (COMB); 1 and 2 rows a slice (few and many workgroups), KS2
     * forced on and off */
    if (!glm_vk_idot_available(g_vk)) {
        ck_assert_msg(!glm_vk_device_is_cpu(g_vk), "lavapipe offers the integer dot product");
        printf("vk matvec_q8: skipped, no integer dot product on this device\n");
        return;
    }
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q5_K, GLM_TYPE_Q6_K };
    ck_assert(glm_vk_set_profiling(g_vk, true) == GLM_OK);
    for (size_t ti = 0; ti < 3; ti++)
        for (int ks = 0; ks < 2; ks++) {
            glm_vk_matvec_set_ks_groups(g_vk, ks ? UINT32_MAX : 0);
            double worst = 0;
            for (int mode = 0; mode < 6; mode++) {
                double e = q8_case(types[ti], mode & 1 ? 1536 : 2048, mode == 0 ? 37 : 40, mode >= 3 ? 2 : 1, mode);
                worst = e > worst && mode != 1 ? e : worst;
            }
            glm_vk_matvec_set_few_groups(g_vk, 16); /* 2 rows a slice */
            double e = q8_case(types[ti], 5120, 300, 2, 0);
            worst = e > worst ? e : worst;
            glm_vk_matvec_set_few_groups(g_vk, GLM_VK_MATVEC_FAST_FEW);
            printf("vk matvec_q8 %s (KS2 %s): matches the dequantized x8; worst nmse of the linear products against the "
                   "float32 x %.3g\n",
                   glm_type_name(types[ti]), ks ? "forced" : "off", worst);
        }
    glm_vk_matvec_set_ks_groups(g_vk, GLM_VK_MATVEC_KS_WG);
    ck_assert(glm_vk_set_profiling(g_vk, false) == GLM_OK);
}
END_TEST

START_TEST(test_matvec_x8_out)
{
    /* products that also write y in 8 bits (the form the next product reads): routed SwiGLU
     * pairs on matvec_q8 (the experts' gate/up) and plain products on matvec_fast, with 1 and
     * 2 rows a slice, KS2 allowed and not (it gives way where it would leave a workgroup two
     * rows), and short rows (few lanes a row: one workgroup holds 32 rows); each twice in one
     * recording into other outputs, y8 against glm_ref_quant_x8 of the y the device wrote */
    if (!glm_vk_idot_available(g_vk)) {
        ck_assert_msg(!glm_vk_device_is_cpu(g_vk), "lavapipe offers the integer dot product");
        printf("vk matvec x8 out: skipped, no integer dot product on this device\n");
        return;
    }
    static const struct { glm_type t; uint32_t ncols, nrows; int routed, few16, ks; } cases[] = {
        { GLM_TYPE_Q4_K, 2048, 1536, 1, 0, 0 }, { GLM_TYPE_Q4_K, 2048, 1536, 1, 0, 1 },
        { GLM_TYPE_Q6_K, 512, 768, 0, 0, 0 },   { GLM_TYPE_Q4_K, 256, 512, 0, 1, 0 },
        { GLM_TYPE_Q5_0, 4096, 256, 0, 1, 1 },  { GLM_TYPE_Q8_0, 1024, 1536, 0, 0, 1 },
    };
    const uint32_t T = 2, k = 3, E = 5;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        glm_type t = cases[c].t;
        uint32_t ncols = cases[c].ncols, nrows = cases[c].nrows, routed = (uint32_t)cases[c].routed;
        uint32_t yrows = routed ? T * k : T, nx = glm_ref_x8_words(ncols), ny = glm_ref_x8_words(nrows);
        glm_vk_matvec_set_ks_groups(g_vk, cases[c].ks ? UINT32_MAX : 0);
        glm_vk_matvec_set_few_groups(g_vk, cases[c].few16 ? 16 : GLM_VK_MATVEC_FAST_FEW);
        test_weight tw, tu;
        make_weight(&tw, t, ncols, nrows, routed ? 2 * E : 2);
        tw.w.nslabs = routed ? E : 1;
        tu = tw;
        tu.host += (size_t)(routed ? E : 1) * tw.w.slab_bytes;
        tu.w.offset += (routed ? E : 1) * tw.w.slab_bytes;
        float *x = malloc((size_t)T * ncols * 4);
        tu_fill_uniform(&g_rng, x, (size_t)T * ncols, -1, 1);
        glm_vk_buffer bx = dev_copy(x, (size_t)T * ncols * 4), bq;
        uint32_t *xq = routed ? x8_case(x, T, ncols, &bq) : NULL;
        int32_t ids[6];
        for (uint32_t i = 0; i < T * k; i++)
            ids[i] = (int32_t)(tu_next(&g_rng) % E);
        glm_vk_buffer bi = dev_copy(ids, sizeof ids), by = out_buf((size_t)2 * yrows * nrows);
        glm_vk_buffer b8 = out_buf((size_t)2 * yrows * ny);
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        for (uint32_t rep = 0; rep < 2; rep++) {
            glm_vk_view yv = { &by, rep * yrows * nrows, yrows, nrows, nrows }, iv = view(&bi, T, k);
            glm_vk_x8_out o8 = { { &b8, rep * yrows * ny, yrows, ny, ny }, false };
            glm_status st = routed ? glm_vk_matvec_x8(g_vk, yv, &tw.w, &tu.w, view(&bq, T, nx), &iv, false, &o8)
                                   : glm_vk_matvec_x8_out(g_vk, yv, &tw.w, view(&bx, T, ncols), &o8);
            ck_assert_msg(st == GLM_OK, "%s", glm_last_error());
            ck_assert_msg(o8.written, "case %zu: the 8-bit form was not written", c);
        }
        run();
        check_out(&by, (size_t)2 * yrows * nrows, "matvec x8 out: y");
        check_guard(&b8, (size_t)2 * yrows * ny, "matvec x8 out: y8");
        char what[80];
        for (uint32_t rep = 0; rep < 2; rep++) {
            snprintf(what, sizeof what, "matvec x8 out case %zu (%s) rep %u", c, glm_type_name(t), rep);
            check_y8((const uint32_t *)b8.map + (size_t)rep * yrows * ny, (const float *)by.map + (size_t)rep * yrows * nrows,
                     yrows, nrows, what);
        }
        printf("vk matvec x8 out %s %ux%u%s: y8 matches the reference quantization of y\n", glm_type_name(t), nrows,
               ncols, routed ? " (routed SwiGLU, 8-bit x)" : "");
        if (routed) {
            glm_vk_buffer_destroy(g_vk, &bq);
            free(xq);
        }
        glm_vk_buffer_destroy(g_vk, &bx);
        glm_vk_buffer_destroy(g_vk, &bi);
        glm_vk_buffer_destroy(g_vk, &by);
        glm_vk_buffer_destroy(g_vk, &b8);
        free_weight(&tw);
        free(x);
    }
    glm_vk_matvec_set_ks_groups(g_vk, GLM_VK_MATVEC_KS_WG);
    glm_vk_matvec_set_few_groups(g_vk, GLM_VK_MATVEC_FAST_FEW);
}
END_TEST

START_TEST(test_matvec_wide_slices)
{
    /* 64 invocations per row: wider than lavapipe's subgroups, so the partial sums also go
     * through shared memory (the path for devices with small subgroups) */
    glm_vk *vk2;
    glm_vk_options o = { .device_index = -1, .validation = true, .matvec_tpr = 64 };
    ck_assert_msg(glm_vk_create(&vk2, &o) == GLM_OK, "%s", glm_last_error());
    static const glm_type types[] = { GLM_TYPE_Q4_K, GLM_TYPE_Q6_K, GLM_TYPE_F32 };
    const uint32_t ncols = 2048 + 32, nrows = 37;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        glm_type t = types[ti];
        uint32_t nc = glm_type_info(t)->block == 1 ? ncols + 1 : ncols / 256 * 256;
        uint32_t rb = (uint32_t)glm_row_bytes(t, nc);
        uint8_t *host = malloc((size_t)rb * nrows);
        glm_parity_random_blocks(host, t, (size_t)rb * nrows / glm_type_info(t)->bytes, &g_rng.s);
        glm_vk_buffer bw, bx, by;
        ck_assert(glm_vk_buffer_create(vk2, &bw, ((size_t)rb * nrows + 3) & ~(size_t)3, true) == GLM_OK);
        memcpy(bw.map, host, (size_t)rb * nrows);
        glm_vk_weight w = { &bw, t, 0, nc, nrows, 1, rb, rb * nrows };
        float *x = malloc(nc * 4), ref[37];
        tu_fill_uniform(&g_rng, x, nc, -1, 1);
        ref_rows(ref, host, t, nc, nrows, rb, x);
        ck_assert(glm_vk_buffer_create(vk2, &bx, nc * 4, true) == GLM_OK);
        ck_assert(glm_vk_buffer_create(vk2, &by, (nrows + TU_GUARD) * 4, true) == GLM_OK);
        memcpy(bx.map, x, nc * 4);
        tu_poison(by.map, nrows + TU_GUARD);
        ck_assert(glm_vk_begin(vk2) == GLM_OK);
        ck_assert(glm_vk_matvec(vk2, view(&by, 1, nrows), &w, 0, view(&bx, 1, nc)) == GLM_OK);
        ck_assert_msg(glm_vk_submit_wait(vk2) == GLM_OK, "%s", glm_last_error());
        check_out(&by, nrows, "matvec wide");
        double e = tu_nmse(ref, by.map, nrows);
        ck_assert_msg(e <= TOL_VK_MATVEC_NMSE, "matvec %s, 64 per row: nmse %.3g", glm_type_name(t), e);
        glm_vk_buffer_destroy(vk2, &bw);
        glm_vk_buffer_destroy(vk2, &bx);
        glm_vk_buffer_destroy(vk2, &by);
        free(host);
        free(x);
    }
    uint32_t msgs = glm_vk_validation_messages(vk2);
    glm_vk_destroy(vk2);
    ck_assert_msg(msgs == 0, "%u validation messages", msgs);
}
END_TEST

START_TEST(test_dependency_chain)
{
    chain(g_vk);
    /* the same through descriptor sets from a pool instead of push descriptors */
    glm_vk *vk2;
    glm_vk_options o = { .device_index = -1, .validation = true, .no_push_descriptors = true };
    ck_assert_msg(glm_vk_create(&vk2, &o) == GLM_OK, "%s", glm_last_error());
    chain(vk2);
    uint32_t msgs = glm_vk_validation_messages(vk2);
    glm_vk_destroy(vk2);
    ck_assert_msg(msgs == 0, "%u validation messages", msgs);
}
END_TEST

START_TEST(test_profiling)
{
    /* timestamp queries credit each dispatch to its kernel: 3 matvecs and 2 eltwise adds */
    ck_assert_msg(glm_vk_set_profiling(g_vk, true) == GLM_OK, "%s", glm_last_error());
    test_weight tw;
    make_weight(&tw, GLM_TYPE_Q8_0, 1024, 512, 1);
    float *x = malloc(1024 * 4);
    tu_fill_uniform(&g_rng, x, 1024, -1, 1);
    glm_vk_buffer bx = dev_copy(x, 1024 * 4), by = out_buf(512);
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    for (int i = 0; i < 3; i++)
        ck_assert(glm_vk_matvec(g_vk, view(&by, 1, 512), &tw.w, 0, view(&bx, 1, 1024)) == GLM_OK);
    for (int i = 0; i < 2; i++)
        ck_assert(glm_vk_eltwise(g_vk, GLM_VK_ADD, view(&by, 1, 512), view(&by, 1, 512), view(&by, 1, 512)) == GLM_OK);
    run();
    uint64_t ns, count, ns_add, count_add, ns_old, count_old;
    glm_vk_profile(g_vk, GLM_VK_MATVEC_FAST, &ns, &count); /* Q8_0 takes matvec_fast */
    glm_vk_profile(g_vk, GLM_VK_MATVEC, &ns_old, &count_old);
    glm_vk_profile(g_vk, GLM_VK_ELTWISE, &ns_add, &count_add);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq(count_old, 0);
    ck_assert_uint_eq(count_add, 2);
    ck_assert_msg(ns > 0, "three 512x1024 matvecs took no device time");
    printf("vk profile: matvec %.1f us per dispatch, add %.1f us\n", ns / 3e3, ns_add / 2e3);
    glm_vk_profile_reset(g_vk);
    glm_vk_profile(g_vk, GLM_VK_MATVEC_FAST, &ns, &count);
    ck_assert_uint_eq(count, 0);
    ck_assert(glm_vk_set_profiling(g_vk, false) == GLM_OK);
    glm_vk_buffer_destroy(g_vk, &bx);
    glm_vk_buffer_destroy(g_vk, &by);
    free_weight(&tw);
    free(x);
}
END_TEST

START_TEST(test_rejects_bad_shapes)
{
    glm_vk_buffer b;
    ck_assert(glm_vk_buffer_create(g_vk, &b, 1024, true) == GLM_OK);
    glm_vk_weight w = { &b, GLM_TYPE_Q8_0, 0, 256, 64, 1, 272, 272 * 64 };
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    /* 64 rows of 272 bytes do not fit in 1024 bytes */
    ck_assert_int_eq(glm_vk_matvec(g_vk, view(&b, 1, 64), &w, 0, view(&b, 1, 256)), GLM_ERR_INVALID);
    /* 100 columns is not a whole number of Q8_0 blocks */
    w = (glm_vk_weight){ &b, GLM_TYPE_Q8_0, 0, 100, 2, 1, 0, 0 };
    ck_assert_int_eq(glm_vk_matvec(g_vk, view(&b, 1, 2), &w, 0, view(&b, 1, 100)), GLM_ERR_INVALID);
    w = (glm_vk_weight){ &b, GLM_TYPE_IQ2_XXS, 0, 256, 1, 1, 66, 66 };
    ck_assert_int_eq(glm_vk_matvec(g_vk, view(&b, 1, 1), &w, 0, view(&b, 1, 256)), GLM_ERR_INVALID);
    /* the tiled path takes whole 32-column chunks only */
    w = (glm_vk_weight){ &b, GLM_TYPE_F32, 0, 40, 2, 1, 160, 320 };
    ck_assert_int_eq(glm_vk_matmul(g_vk, view(&b, 2, 2), &w, 0, view(&b, 2, 40)), GLM_ERR_INVALID);
    /* a view past the end of its buffer */
    ck_assert_int_eq(glm_vk_eltwise(g_vk, GLM_VK_ADD, view(&b, 2, 200), view(&b, 2, 200), view(&b, 2, 200)),
                     GLM_ERR_INVALID);
    /* attention whose item runs do not add up to its 4 rows, or whose key bound is shorter
     * than the item's rows */
    glm_vk_weight kb = { &b, GLM_TYPE_F32, 0, 8, 8, 1, 32, 256 }, vb = kb;
    uint32_t runs[2] = { 1, 2 }, lens[2] = { 2, 3 }, runs4[2] = { 1, 3 }, short_len[2] = { 2, 2 };
    glm_vk_kv_rows r = { { &b, 0, 4, 1, 1 }, { &b, 4, 4, 1, 1 }, { &b, 8, 1, 4, 4 }, 4, 3, runs, lens, 2, 0, 0, 0 };
    ck_assert_int_eq(glm_vk_mla_attention(g_vk, view(&b, 4, 8), view(&b, 4, 16), view(&b, 8, 8), view(&b, 8, 8), &kb,
                                          &vb, 1, 8, 8, 8, &r, &b, &b),
                     GLM_ERR_INVALID);
    r.runs = runs4, r.run_len = short_len;
    ck_assert_int_eq(glm_vk_mla_attention(g_vk, view(&b, 4, 8), view(&b, 4, 16), view(&b, 8, 8), view(&b, 8, 8), &kb,
                                          &vb, 1, 8, 8, 8, &r, &b, &b),
                     GLM_ERR_INVALID);
    run();
    glm_vk_buffer_destroy(g_vk, &b);
}
END_TEST

/* The grid-barrier probe (bench's measurement): one workgroup crosses 8 barriers of its grid;
 * a grid of 2 of which only 1 is dispatched times out and stops instead of waiting forever. */
START_TEST(test_grid_probe)
{
    uint32_t out[3];
    ck_assert(glm_vk_grid_probe_run(g_vk, 1, 1, 8, 100000, out) == GLM_OK);
    ck_assert_msg(out[0] == 8 && out[1] == 0 && out[2] == 1, "grid probe, one workgroup: %u arrivals, flag %u, %u done",
                  out[0], out[1], out[2]);
    ck_assert(glm_vk_grid_probe_run(g_vk, 2, 1, 8, 1000, out) == GLM_OK);
    ck_assert_msg(out[0] == 1 && out[1] == 1 && out[2] == 0, "grid probe, one of two: %u arrivals, flag %u, %u done",
                  out[0], out[1], out[2]);
    bool resident = false;
    double us = -1;
    ck_assert(glm_vk_grid_probe(g_vk, 1, 20, 100000, &resident, &us) == GLM_OK);
    ck_assert_msg(resident, "grid probe: one workgroup not resident");
    printf("vk grid probe: one workgroup through 8 barriers; a missing one timed out; %.2f us a barrier\n", us);
}
END_TEST

/* The element map of 16 × 16 cooperative matrices (glm_vk_cm_layout), where the device has them:
 * each of A, B (loaded column-major) and the float accumulator must hold every one of its 256
 * elements exactly once across the subgroup's invocations; the maps are printed (the layout that
 * a kernel building fragments in registers would rely on). Elsewhere the call must refuse. */
START_TEST(test_cm_layout)
{
    float *out = malloc(97 * 16 * sizeof(float));
    for (size_t i = 0; i < 97 * 16; i++)
        out[i] = -7.0f; /* poison */
    glm_status s = glm_vk_cm_layout(g_vk, out);
    if (!glm_vk_coopmat_available(g_vk) || glm_vk_subgroup_size(g_vk) != 32) {
        ck_assert_msg(s != GLM_OK, "cm_layout ran without cooperative matrices on subgroups of 32");
        printf("vk cm_layout: no 16x16 cooperative matrices here (refused: %s)\n", glm_last_error());
        free(out);
        return;
    }
    ck_assert_msg(s == GLM_OK, "%s", glm_last_error());
    static const char *names[3] = { "A (row-major)", "B (column-major: value 16n + k)", "accumulator" };
    for (int m = 0; m < 3; m++) {
        int len = (int)out[96 * 16 + m], seen[256] = { 0 };
        ck_assert_msg(len >= 1 && len <= 16, "cm_layout: matrix %d length %d", m, len);
        for (int l = 0; l < 32; l++)
            for (int e = 0; e < 16; e++) {
                float v = out[(m * 32 + l) * 16 + e];
                if (e >= len) {
                    ck_assert_msg(v == -1.0f, "cm_layout: matrix %d lane %d element %d past the length not marked", m, l, e);
                    continue;
                }
                ck_assert_msg(v >= 0 && v < 256 && v == (float)(int)v, "cm_layout: matrix %d lane %d element %d = %g", m,
                              l, e, v);
                seen[(int)v]++;
            }
        for (int i = 0; i < 256; i++)
            ck_assert_msg(seen[i] == 32 * len / 256, "cm_layout: matrix %d element (%d, %d) held %d times, not %d", m,
                          i / 16, i % 16, seen[i], 32 * len / 256);
        printf("vk cm_layout %s, %d elements an invocation; invocation: its elements as row.col\n", names[m], len);
        for (int l = 0; l < 32; l++) {
            printf("  %2d:", l);
            for (int e = 0; e < len; e++) {
                int v = (int)out[(m * 32 + l) * 16 + e];
                printf(" %d.%d", v / 16, v % 16);
            }
            printf("\n");
        }
    }
    free(out);
}
END_TEST

/* The float16 operands of the tensor-core MLA core, checked here on any device: softmax's
 * pack (rows written as float16 pairs over their own storage, an odd row's last pair padded
 * with 0) and mla_pack16 (key rows through a shuffled page table, zero past n_kv and past the
 * row's width; query rows [qlat | q_rope]). Both against the host's float16 rounding. */
START_TEST(test_mla_pack16)
{
    /* softmax rows of 517 (odd) and 6,144 (all the registers) entries, with masked tails; a
     * workgroup a row, and a subgroup a row (9 rows) where a row fits its lanes' registers */
    static const uint32_t lens[] = { 517, 6144, 40, 191 };
    uint32_t sgs = glm_vk_subgroup_size(g_vk);
    for (size_t c = 0; c < 2 * sizeof lens / sizeof lens[0]; c++) {
        uint32_t n = lens[c / 2], sub = c % 2, R = sub ? 9 : 3, off = 8;
        if (sub && n > GLM_VK_SOFTMAX_NPT * sgs)
            continue;
        size_t total = off + (size_t)R * n;
        glm_vk_buffer b = out_buf(total);
        float *x = b.map;
        double *ref = malloc(sizeof(double) * R * n);
        for (uint32_t r = 0; r < R; r++) {
            uint32_t live = n - r * (n / (2 * R + 1)); /* the rest masked: −inf */
            double m = -INFINITY, sum = 0;
            for (uint32_t j = 0; j < n; j++) {
                x[off + r * n + j] = j < live ? 4.0f * tu_normal(&g_rng) : -INFINITY;
                m = fmax(m, (double)x[off + r * n + j]);
            }
            for (uint32_t j = 0; j < n; j++)
                sum += ref[r * n + j] = j < live ? exp((double)x[off + r * n + j] - m) : 0.0;
            for (uint32_t j = 0; j < n; j++)
                ref[r * n + j] /= sum;
        }
        glm_vk_softmax_push xp = { R, n, off, 1, sub };
        const glm_vk_buffer *xb[1] = { &b };
        ck_assert(glm_vk_begin(g_vk) == GLM_OK);
        ck_assert(glm_vk_dispatch(g_vk, GLM_VK_SOFTMAX, xb, 1, &xp, sizeof xp, sub ? (R * sgs + 255) / 256 : R, 1,
                                  1) == GLM_OK);
        run();
        float *got = malloc(sizeof(float) * R * n), *want = malloc(sizeof(float) * R * n);
        const uint32_t *u = b.map;
        for (uint32_t r = 0; r < R; r++) {
            for (uint32_t j = 0; j < n; j++) {
                uint32_t w = u[off + r * n + j / 2];
                got[r * n + j] = glm_fp16_to_fp32((uint16_t)(j % 2 ? w >> 16 : w & 0xffff));
                want[r * n + j] = glm_fp16_to_fp32(glm_fp32_to_fp16((float)ref[r * n + j]));
            }
            if (n % 2)
                ck_assert_msg(u[off + r * n + n / 2] >> 16 == 0, "softmax pack: pad half of row %u not 0", r);
        }
        ck_assert_msg(tu_all_written(got, (size_t)R * n), "softmax pack: entries not written or not finite");
        double e = tu_nmse(want, got, (size_t)R * n);
        printf("vk softmax pack (%u rows of %u, a %s a row): nmse vs host float16 %.3g\n", R, n,
               sub ? "subgroup" : "workgroup", e);
        ck_assert_msg(e <= TOL_VK_PACK16_NMSE, "softmax pack: nmse %.3g", e);
        check_guard(&b, total, "softmax pack");
        free(got), free(want), free(ref);
        glm_vk_buffer_destroy(g_vk, &b);
    }

    /* mla_pack16: T rows at pos0 of one sequence, H heads, keys in shuffled pages of 4 */
    const uint32_t T = 5, H = 3, rkv = 40, dr = 8, dn = 16, dqk = dn + dr, pos0 = 20, ps = 4, P = 32;
    const uint32_t L = 32, ld16 = (rkv + dr + 31) / 32 * 16, c_ld = rkv + 3, kr_ld = dr + 1;
    const uint32_t qlat_off = 4, k16_off = 4 + T * H * rkv + 4, q16_off = k16_off + L * ld16;
    const uint32_t n_kv = pos0 + T, scratch_n = q16_off + T * H * ld16;
    float *q = malloc(sizeof(float) * T * H * dqk), *cc = malloc(sizeof(float) * P * c_ld);
    float *kr = malloc(sizeof(float) * P * kr_ld), *sc = malloc(sizeof(float) * scratch_n);
    tu_fill_uniform(&g_rng, q, (size_t)T * H * dqk, -3, 3);
    tu_fill_uniform(&g_rng, cc, (size_t)P * c_ld, -3, 3);
    tu_fill_uniform(&g_rng, kr, (size_t)P * kr_ld, -3, 3);
    tu_poison(sc, scratch_n);
    tu_fill_uniform(&g_rng, sc + qlat_off, (size_t)T * H * rkv, -3, 3);
    int32_t meta[3 + 32 / 4] = { (int32_t)pos0, 0, 0 }; /* pos, ptab (page list at 3), pages of P / ps */
    for (uint32_t i = 0; i < P / ps; i++)
        meta[3 + i] = (int32_t)((i * 5 + 3) % (P / ps)); /* a permutation of the 8 pages */
    glm_vk_buffer bq = dev_copy(q, sizeof(float) * T * H * dqk), bc = dev_copy(cc, sizeof(float) * P * c_ld);
    glm_vk_buffer bk = dev_copy(kr, sizeof(float) * P * kr_ld), bm = dev_copy(meta, sizeof meta);
    glm_vk_buffer bs = out_buf(scratch_n);
    memcpy(bs.map, sc, sizeof(float) * scratch_n);
    glm_vk_mla_pack16_push pp = { T, H, rkv, dr, dqk, dn, 0, H * dqk, 0, c_ld, 0, kr_ld, qlat_off, 0, 1, 3, ps, L,
                                  k16_off, q16_off, ld16, { 0 } };
    const glm_vk_buffer *pb[7] = { &bs, &bq, &bc, &bk, &bm, &bm, &bm };
    uint32_t wgs = ((L + T * H) * ld16 + 255) / 256;
    ck_assert(glm_vk_begin(g_vk) == GLM_OK);
    ck_assert(glm_vk_dispatch(g_vk, GLM_VK_MLA_PACK16, pb, 7, &pp, sizeof pp, wgs, 1, 1) == GLM_OK);
    run();
    uint32_t nk = L * ld16 * 2, nq = T * H * ld16 * 2;
    float *got = malloc(sizeof(float) * (nk + nq)), *want = malloc(sizeof(float) * (nk + nq));
    const uint32_t *u = bs.map;
    for (uint32_t i = 0; i < nk + nq; i++) {
        bool key = i < nk;
        uint32_t e = key ? i : i - nk, row = e / (2 * ld16), k = e % (2 * ld16);
        uint32_t w = u[(key ? k16_off : q16_off) + e / 2];
        got[i] = glm_fp16_to_fp32((uint16_t)(e % 2 ? w >> 16 : w & 0xffff));
        float v = 0;
        if (key && row < n_kv) {
            uint32_t prow = (uint32_t)meta[3 + row / ps] * ps + row % ps;
            v = k < rkv ? cc[prow * c_ld + k] : k < rkv + dr ? kr[prow * kr_ld + k - rkv] : 0.0f;
        } else if (!key) {
            uint32_t t = row / H, h = row % H;
            v = k < rkv ? sc[qlat_off + row * rkv + k] : k < rkv + dr ? q[t * H * dqk + h * dqk + dn + k - rkv] : 0.0f;
        }
        want[i] = glm_fp16_to_fp32(glm_fp32_to_fp16(v));
        if (v == 0.0f)
            ck_assert_msg(got[i] == 0.0f, "mla_pack16: %s row %u column %u not 0", key ? "key" : "query", row, k);
    }
    double e = tu_nmse(want, got, nk + nq);
    printf("vk mla_pack16 (T %u H %u Rkv %u dr %u, %u keys of %u): nmse vs host float16 %.3g\n", T, H, rkv, dr, n_kv,
           L, e);
    ck_assert_msg(e <= TOL_VK_PACK16_NMSE, "mla_pack16: nmse %.3g", e);
    /* what lies between and after the packed rows keeps its poison */
    ck_assert_msg(memcmp((float *)bs.map + qlat_off + T * H * rkv, sc + qlat_off + T * H * rkv,
                         sizeof(float) * (k16_off - qlat_off - T * H * rkv)) == 0, "mla_pack16: wrote before K16");
    check_guard(&bs, scratch_n, "mla_pack16");
    free(q), free(cc), free(kr), free(sc), free(got), free(want);
    glm_vk_buffer_destroy(g_vk, &bq), glm_vk_buffer_destroy(g_vk, &bc), glm_vk_buffer_destroy(g_vk, &bk);
    glm_vk_buffer_destroy(g_vk, &bm), glm_vk_buffer_destroy(g_vk, &bs);
}
END_TEST

/* One test case per test, named after it, so that one can run alone on a slow device or a
 * device call with little time: CK_RUN_CASE=test_mla_attention build/tests/test_vk_ops. */
#define ADD_CASE(fn)                                                                                                   \
    do {                                                                                                               \
        TCase *tc = tcase_create(#fn);                                                                                 \
        tcase_add_checked_fixture(tc, setup, teardown);                                                                \
        tcase_set_timeout(tc, 300);                                                                                    \
        tcase_add_test(tc, fn);                                                                                        \
        suite_add_tcase(s, tc);                                                                                        \
    } while (0)

int main(void)
{
    Suite *s = suite_create("vk_ops");
    ADD_CASE(test_upload_buffer);
    ADD_CASE(test_download);
    ADD_CASE(test_rms_norm);
    ADD_CASE(test_add_rms_norm);
    ADD_CASE(test_matvec_all_types);
    ADD_CASE(test_matvec_id);
    ADD_CASE(test_matvec_id_combine);
    ADD_CASE(test_rms_norm_matvec);
    ADD_CASE(test_matvec_add);
    ADD_CASE(test_matmul_all_types);
    ADD_CASE(test_matmul_split);
    ADD_CASE(test_matmul_f32);
    ADD_CASE(test_matmul_id_grouped);
    ADD_CASE(test_matmul_swiglu);
    ADD_CASE(test_matmul_weight_rounding);
    ADD_CASE(test_matvec_heads);
    ADD_CASE(test_matvec_swiglu);
    ADD_CASE(test_matvec_unaligned);
    ADD_CASE(test_matvec_wide_slices);
    ADD_CASE(test_matvec_fast_variants);
    ADD_CASE(test_quant_x8);
    ADD_CASE(test_matvec_q8);
    ADD_CASE(test_matvec_x8_out);
    ADD_CASE(test_dependency_chain);
    ADD_CASE(test_get_rows);
    ADD_CASE(test_rope);
    ADD_CASE(test_eltwise);
    ADD_CASE(test_moe_route);
    ADD_CASE(test_kv_write_rope);
    ADD_CASE(test_rms_norm_matvec_rope);
    ADD_CASE(test_moe_gate_route);
    ADD_CASE(test_moe_combine);
    ADD_CASE(test_argmax);
    ADD_CASE(test_mla_attention);
    ADD_CASE(test_mla_pack16);
    ADD_CASE(test_grid_probe);
    ADD_CASE(test_cm_layout);
    ADD_CASE(test_kv_write);
    ADD_CASE(test_profiling);
    ADD_CASE(test_rejects_bad_shapes);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
