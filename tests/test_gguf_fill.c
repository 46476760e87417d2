/* The GGUF writer's fill callback (a streaming writer) and the random-model plan:
 * - a file written through fill callbacks equals, byte for byte, the file written from
 *   referenced buffers (file and memory sinks), and reads back;
 * - a failing callback fails the write with its message and leaves no file or temporary;
 * - the full-size plan has gguf-spec §3.1-§3.3's counts: 844 tensors, Q4_K_M = f32 281,
 *   q4_K 470, q5_0 47, q6_K 46 (16.88 GiB, issue 7's llama.cpp file); Q8_0 = f32 281, q8_0 563;
 * - random weights drawn directly as blocks dequantize to the intended scale. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/random_model.h"
#include "ref/dequant.h"
#include "util/testutil.h"

typedef struct src {
    const uint8_t *data[3];
    int calls;
    int fail_at; /* -1: never */
} src;

static glm_status fill_copy(void *ctx, uint64_t index, void *dst, uint64_t nbytes)
{
    src *s = ctx;
    s->calls++;
    if ((int)index == s->fail_at)
        return glm_errorf(GLM_ERR_IO, "tensor %llu: the source failed", (unsigned long long)index);
    memcpy(dst, s->data[index], nbytes);
    return GLM_OK;
}

static const int64_t k_ne[3][2] = {{32, 3}, {64, 5}, {256, 2}};
static const glm_type k_type[3] = {GLM_TYPE_F32, GLM_TYPE_Q8_0, GLM_TYPE_Q4_K};

static uint64_t nbytes_of(int i) { return glm_row_bytes(k_type[i], k_ne[i][0]) * (uint64_t)k_ne[i][1]; }

/* Three tensors of seeded random bytes, added by reference (fill = NULL) or through fill. */
static glm_gguf_writer *make_writer(src *s, bool fill)
{
    glm_gguf_writer *w = NULL;
    ck_assert_int_eq(glm_gguf_writer_create(&w, 0), GLM_OK);
    ck_assert_int_eq(glm_gguf_writer_set_str(w, "general.architecture", "test"), GLM_OK);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        glm_status st = fill ? glm_gguf_writer_add_tensor_fill(w, name, k_type[i], 2, k_ne[i], nbytes_of(i), fill_copy, s)
                             : glm_gguf_writer_add_tensor(w, name, k_type[i], 2, k_ne[i], s->data[i], nbytes_of(i));
        ck_assert_int_eq(st, GLM_OK);
    }
    return w;
}

static uint8_t *random_bytes(tu_rng *r, uint64_t n)
{
    uint8_t *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    for (uint64_t i = 0; i < n; i++)
        p[i] = (uint8_t)tu_next(r);
    return p;
}

START_TEST(test_fill_equals_referenced)
{
    tu_rng r = {tu_seed("test_fill_equals_referenced")};
    src s = {.fail_at = -1};
    for (int i = 0; i < 3; i++)
        s.data[i] = random_bytes(&r, nbytes_of(i));
    float *f = (float *)s.data[0]; /* the F32 tensor: finite values */
    for (int i = 0; i < 96; i++)
        f[i] = tu_uniform(&r, -1, 1);
    glm_gguf_writer *a = make_writer(&s, false), *b = make_writer(&s, true);
    uint8_t *ma, *mb;
    size_t la, lb;
    ck_assert_int_eq(glm_gguf_writer_write_memory(a, &ma, &la), GLM_OK);
    ck_assert_int_eq(glm_gguf_writer_write_memory(b, &mb, &lb), GLM_OK);
    ck_assert_int_eq(s.calls, 3);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(ma, mb, la) == 0);
    char dir[] = "/tmp/glm47-fill-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    ck_assert_int_eq(glm_gguf_writer_write(b, path), GLM_OK);
    ck_assert_int_eq(s.calls, 6);
    glm_gguf *g = NULL;
    ck_assert_int_eq(glm_gguf_open(&g, path), GLM_OK);
    ck_assert_uint_eq(glm_gguf_file_size(g), la);
    for (int i = 0; i < 3; i++) {
        const glm_gguf_tensor *t = glm_gguf_tensor_at(g, (uint64_t)i);
        ck_assert_uint_eq(t->nbytes, nbytes_of(i));
        ck_assert(memcmp(t->data, s.data[i], t->nbytes) == 0);
    }
    glm_gguf_close(g);
    unlink(path);
    rmdir(dir);
    glm_gguf_writer_destroy(a);
    glm_gguf_writer_destroy(b);
    free(ma);
    free(mb);
    for (int i = 0; i < 3; i++)
        free((void *)s.data[i]);
}
END_TEST

START_TEST(test_fill_failure_leaves_nothing)
{
    tu_rng r = {tu_seed("test_fill_failure_leaves_nothing")};
    src s = {.fail_at = 1};
    for (int i = 0; i < 3; i++)
        s.data[i] = random_bytes(&r, nbytes_of(i));
    glm_gguf_writer *w = make_writer(&s, true);
    char dir[] = "/tmp/glm47-fill-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    ck_assert_int_eq(glm_gguf_writer_write(w, path), GLM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "tensor 1: the source failed"));
    ck_assert_int_eq(s.calls, 2); /* stopped at the failing tensor */
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    ck_assert_int_eq(entries, 0);
    uint8_t *m;
    size_t len;
    ck_assert_int_eq(glm_gguf_writer_write_memory(w, &m, &len), GLM_ERR_IO);
    ck_assert_ptr_null(m);
    rmdir(dir);
    int64_t ne[2] = {32, 1};
    ck_assert_int_eq(glm_gguf_writer_add_tensor_fill(w, "nofill", GLM_TYPE_F32, 2, ne, 128, NULL, NULL),
                     GLM_ERR_INVALID);
    ck_assert_int_eq(glm_gguf_writer_add_tensor_fill(w, "short", GLM_TYPE_F32, 2, ne, 64, fill_copy, &s),
                     GLM_ERR_INVALID);
    glm_gguf_writer_destroy(w);
    for (int i = 0; i < 3; i++)
        free((void *)s.data[i]);
}
END_TEST

START_TEST(test_full_size_plan)
{
    glm_random_model_report rep;
    glm_random_model_params p = {.ftype = GLM_FTYPE_Q4_K_M};
    ck_assert_int_eq(glm_random_model_plan(&p, &rep), GLM_OK);
    ck_assert_uint_eq(rep.n_tensors, 844);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_F32], 281);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_Q4_K], 470);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_Q5_0], 47);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_Q6_K], 46);
    ck_assert_uint_eq(rep.bytes, 18123246080ull); /* 16.88 GiB */
    p.ftype = GLM_FTYPE_Q8_0;
    ck_assert_int_eq(glm_random_model_plan(&p, &rep), GLM_OK);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_F32], 281);
    ck_assert_uint_eq(rep.type_count[GLM_TYPE_Q8_0], 563);
    p.mtp = true; /* + 18 MoE-layer and 6 nextn tensors */
    ck_assert_int_eq(glm_random_model_plan(&p, &rep), GLM_OK);
    ck_assert_uint_eq(rep.n_tensors, 868);
    p.n_layers = 48;
    ck_assert_int_eq(glm_random_model_plan(&p, &rep), GLM_ERR_INVALID);
    p.n_layers = -1;
    ck_assert_int_eq(glm_random_model_plan(&p, &rep), GLM_ERR_INVALID);
}
END_TEST

/* Directly drawn blocks dequantize to weights of mean ≈ 0 and std ≈ GLM_RANDOM_WEIGHT_STD,
 * every code level of a block is reachable, and types without a draw are refused. */
START_TEST(test_weight_row_scale)
{
    const glm_type types[] = {GLM_TYPE_Q8_0, GLM_TYPE_Q4_0, GLM_TYPE_Q5_0, GLM_TYPE_Q4_K, GLM_TYPE_Q5_K, GLM_TYPE_Q6_K};
    enum { N = 4096, ROWS = 16 };
    uint64_t seed = tu_seed("weight_row_scale");
    float *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(glm_row_bytes(GLM_TYPE_Q8_0, N));
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        double sum = 0, sum2 = 0, amax = 0;
        for (int r = 0; r < ROWS; r++) {
            ck_assert(glm_random_weight_row(q, types[t], N, seed + (uint64_t)r));
            ck_assert_int_eq(glm_ref_dequant_row_checked(y, q, types[t], N), GLM_OK);
            for (int i = 0; i < N; i++) {
                sum += y[i], sum2 += (double)y[i] * y[i];
                amax = fabs(y[i]) > amax ? fabs(y[i]) : amax;
            }
        }
        double mean = sum / (N * ROWS), sd = sqrt(sum2 / (N * ROWS) - mean * mean);
        printf("random weights %s: mean %.2e std %.5f max |w| %.4f\n", glm_type_name(types[t]), mean, sd, amax);
        ck_assert_msg(fabs(sd - GLM_RANDOM_WEIGHT_STD) < 0.05 * GLM_RANDOM_WEIGHT_STD, "%s std %g", glm_type_name(types[t]), sd);
        ck_assert_msg(fabs(mean) < 0.02 * GLM_RANDOM_WEIGHT_STD, "%s mean %g", glm_type_name(types[t]), mean);
        /* a Gaussian-like spread clipped at the levels, as fitted blocks are (Q8_0: ±2.3 std) */
        ck_assert(amax > 2 * GLM_RANDOM_WEIGHT_STD && amax < 8 * GLM_RANDOM_WEIGHT_STD);
    }
    /* the same stream gives the same bytes */
    uint8_t *q2 = malloc(glm_row_bytes(GLM_TYPE_Q4_K, N));
    ck_assert(glm_random_weight_row(q, GLM_TYPE_Q4_K, N, seed));
    ck_assert(glm_random_weight_row(q2, GLM_TYPE_Q4_K, N, seed));
    ck_assert(memcmp(q, q2, glm_row_bytes(GLM_TYPE_Q4_K, N)) == 0);
    ck_assert(!glm_random_weight_row(q, GLM_TYPE_F32, N, seed));
    ck_assert(!glm_random_weight_row(q, GLM_TYPE_IQ4_XS, N, seed));
    ck_assert(!glm_random_weight_row(q, GLM_TYPE_Q4_K, 100, seed));
    free(q2);
    free(q);
    free(y);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf_fill");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fill_equals_referenced);
    tcase_add_test(tc, test_weight_row_scale);
    tcase_add_test(tc, test_fill_failure_leaves_nothing);
    tcase_add_test(tc, test_full_size_plan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
