/* glm_logprobs_top (engine/logprobs.h) against a plain scalar computation in double: random
 * logits from a printed seed (with ties, -inf and NaN entries, several vocabulary sizes),
 * every k in 0..20, poisoned outputs that must all be written; and the error cases. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/logprobs.h"
#include "tolerances.h"
#include "util/testutil.h"

static const float *g_sort_logits;

/* qsort order of the reference: larger logit first (NaN as -inf), ties to the lower id */
static int by_rank(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float vx = g_sort_logits[x], vy = g_sort_logits[y];
    vx = isnan(vx) ? -INFINITY : vx;
    vy = isnan(vy) ? -INFINITY : vy;
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* log softmax by the definition, in double */
static double ref_lp(const float *l, int32_t n, int32_t v)
{
    if (!(l[v] > -INFINITY))
        return -INFINITY;
    double mx = -INFINITY, sum = 0;
    for (int32_t i = 0; i < n; i++)
        if (l[i] > mx)
            mx = l[i];
    for (int32_t i = 0; i < n; i++)
        if (l[i] > -INFINITY)
            sum += exp((double)l[i] - mx);
    return (double)l[v] - mx - log(sum);
}

START_TEST(test_against_scalar)
{
    uint64_t seed = tu_seed("logprobs_against_scalar");
    tu_rng r = { seed };
    const int32_t sizes[] = { 1, 2, 21, 333, 4096, 154880 };
    double worst = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int32_t V = sizes[si];
        float *l = malloc(sizeof(float) * (size_t)V);
        int32_t *order = malloc(sizeof(int32_t) * (size_t)V);
        ck_assert(l && order);
        for (int rep = 0; rep < 3; rep++) {
            float scale = rep == 0 ? 1.0f : rep == 1 ? 12.0f : 60.0f;
            for (int32_t v = 0; v < V; v++) {
                l[v] = scale * tu_normal(&r);
                uint64_t u = tu_next(&r) % 100;
                if (u < 5 && v > 0)
                    l[v] = l[tu_next(&r) % (uint64_t)v]; /* ties */
                else if (u < 7 && V > 1)
                    l[v] = -INFINITY;
                else if (u < 8 && V > 1)
                    l[v] = NAN;
            }
            l[tu_next(&r) % (uint64_t)V] = scale; /* at least one finite logit */
            for (int32_t v = 0; v < V; v++)
                order[v] = v;
            g_sort_logits = l;
            qsort(order, (size_t)V, sizeof *order, by_rank);
            for (int k = 0; k <= GLM_LOGPROBS_MAX_TOP && k <= V; k += (k < 3 ? 1 : 7)) {
                int32_t chosen = (int32_t)(tu_next(&r) % (uint64_t)V);
                int32_t ids[GLM_LOGPROBS_MAX_TOP + 2];
                float *lps = tu_alloc_guarded(GLM_LOGPROBS_MAX_TOP);
                float clp = NAN;
                tu_poison(lps, GLM_LOGPROBS_MAX_TOP);
                for (int i = 0; i < GLM_LOGPROBS_MAX_TOP + 2; i++)
                    ids[i] = -7;
                ck_assert_msg(glm_logprobs_top(l, V, chosen, k, &clp, ids, lps) == GLM_OK, "%s", glm_last_error());
                ck_assert(tu_guards_intact(lps, GLM_LOGPROBS_MAX_TOP));
                double want = ref_lp(l, V, chosen);
                if (isinf(want))
                    ck_assert(isinf(clp) && clp < 0);
                else {
                    ck_assert_msg(fabs(clp - want) <= TOL_LOGPROBS_ABS * (1 + fabs(want)),
                                  "seed=%llu V=%d chosen %d: %.9g vs %.9g", (unsigned long long)seed, (int)V,
                                  (int)chosen, (double)clp, want);
                    worst = fmax(worst, fabs(clp - want) / (1 + fabs(want)));
                }
                for (int i = 0; i < k; i++) {
                    ck_assert_msg(ids[i] == order[i], "seed=%llu V=%d k=%d: top[%d] = %d, want %d",
                                  (unsigned long long)seed, (int)V, k, i, (int)ids[i], (int)order[i]);
                    double w = ref_lp(l, V, ids[i]);
                    ck_assert(!isnan(lps[i]));
                    ck_assert(isinf(w) ? isinf(lps[i]) : fabs(lps[i] - w) <= TOL_LOGPROBS_ABS * (1 + fabs(w)));
                    if (i)
                        ck_assert(lps[i] <= lps[i - 1]);
                }
                for (int i = k; i < GLM_LOGPROBS_MAX_TOP + 2; i++)
                    ck_assert_int_eq(ids[i], -7); /* nothing written past k */
                tu_free_guarded(lps);
            }
        }
        free(l);
        free(order);
    }
    printf("logprobs: worst relative error %.3g\n", worst);
}
END_TEST

START_TEST(test_errors)
{
    float l[4] = { 1, 2, 3, 4 }, lp, lps[21];
    int32_t ids[21];
    ck_assert_int_eq(glm_logprobs_top(l, 4, 0, 21, &lp, ids, lps), GLM_ERR_INVALID);
    ck_assert_int_eq(glm_logprobs_top(l, 4, 0, 5, &lp, ids, lps), GLM_ERR_INVALID); /* k > vocab */
    ck_assert_int_eq(glm_logprobs_top(l, 4, 4, 1, &lp, ids, lps), GLM_ERR_INVALID);
    ck_assert_int_eq(glm_logprobs_top(l, 4, -1, 1, &lp, ids, lps), GLM_ERR_INVALID);
    float bad[3] = { -INFINITY, NAN, -INFINITY };
    ck_assert_int_eq(glm_logprobs_top(bad, 3, 0, 1, &lp, ids, lps), GLM_ERR_INVALID);
    /* uniform: every log p = -log 4 */
    float u[4] = { 0.5f, 0.5f, 0.5f, 0.5f };
    ck_assert_int_eq(glm_logprobs_top(u, 4, 2, 4, &lp, ids, lps), GLM_OK);
    ck_assert_double_eq_tol(lp, -log(4.0), 1e-7);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ids[i], i);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("logprobs");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_against_scalar);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
