/* MTP draft verification (ref/speculative.h): greedy acceptance by hand, the exact
 * rejection-sampling rule preserving the target distribution over 500k seeded trials, and
 * whole runs with chains of 1..4 drafts on a tiny context-dependent vocabulary. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/speculative.h"
#include "tolerances.h"
#include "util/testutil.h"

enum { V = 8 };
#define GLM_SPEC_TEST_MAX_K 4

START_TEST(test_greedy_hand)
{
    /* rows' argmaxes: 3, 5, 1 */
    float l[3][V];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < V; i++)
            l[r][i] = (float)(i % 3) * 0.1f;
    l[0][3] = 2.0f;
    l[1][5] = 2.0f;
    l[2][1] = 2.0f;
    l[2][6] = 2.0f; /* tie with 1: the lower index wins */
    int32_t out[3] = {-9, -9, -9}, n = -1;
    const int32_t all[] = {3, 5};
    ck_assert_int_eq(glm_spec_accept_greedy(out, &n, &l[0][0], all, 2, V), GLM_OK);
    ck_assert_int_eq(n, 3); /* both accepted + bonus */
    ck_assert_int_eq(out[0], 3);
    ck_assert_int_eq(out[1], 5);
    ck_assert_int_eq(out[2], 1);
    const int32_t second_wrong[] = {3, 4};
    ck_assert_int_eq(glm_spec_accept_greedy(out, &n, &l[0][0], second_wrong, 2, V), GLM_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(out[0], 3);
    ck_assert_int_eq(out[1], 5); /* the correction */
    const int32_t first_wrong[] = {0, 5};
    ck_assert_int_eq(glm_spec_accept_greedy(out, &n, &l[0][0], first_wrong, 2, V), GLM_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(out[0], 3);
    ck_assert_int_eq(glm_spec_accept_greedy(out, &n, &l[0][0], NULL, 0, V), GLM_OK);
    ck_assert_int_eq(n, 1); /* no drafts: plain greedy step */
    ck_assert_int_eq(out[0], 3);
    const int32_t bad[] = {3, V};
    ck_assert_int_eq(glm_spec_accept_greedy(out, &n, &l[0][0], bad, 2, V), GLM_ERR_INVALID);
    ck_assert(strstr(glm_last_error(), "draft[1]") != NULL);
}
END_TEST

START_TEST(test_sampled_edge_cases)
{
    glm_rng r;
    glm_rng_seed(&r, 7);
    /* p one-hot at the draft: always accepted; p zero at the draft: always rejected and the
     * replacement comes from p with the draft removed */
    float p[2][V] = {{0}}, q[1][V] = {{0}};
    p[0][2] = 1.0f;
    p[1][4] = 1.0f;
    q[0][2] = 0.5f;
    q[0][6] = 0.5f;
    const int32_t d_ok[] = {2}, d_bad[] = {6};
    int32_t out[2], n;
    for (int t = 0; t < 100; t++) {
        ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &r, &p[0][0], &q[0][0], d_ok, 1, V), GLM_OK);
        ck_assert_int_eq(n, 2);
        ck_assert_int_eq(out[0], 2);
        ck_assert_int_eq(out[1], 4);
        ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &r, &p[0][0], &q[0][0], d_bad, 1, V), GLM_OK);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(out[0], 2);
        ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &r, &p[0][0], NULL, d_bad, 1, V), GLM_OK);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(out[0], 2);
    }
    const int32_t d_oob[] = {-1};
    ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &r, &p[0][0], NULL, d_oob, 1, V), GLM_ERR_INVALID);
    float zero[2][V] = {{0}};
    ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &r, &zero[0][0], NULL, d_ok, 1, V), GLM_ERR_INVALID);
}
END_TEST

static void random_dist(tu_rng *r, float *p, int n, float spread) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        p[i] = expf(tu_normal(r) * spread);
        s += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] = (float)(p[i] / s);
}

/* Chi-square of counts vs n*p (all p > 0 here) and the largest |freq − p|. */
static double chi2_of(const long *c, const float *p, long n, double *max_dev) {
    double x2 = 0;
    *max_dev = 0;
    for (int i = 0; i < V; i++) {
        double e = (double)n * p[i];
        x2 += (c[i] - e) * (c[i] - e) / e;
        double dev = fabs((double)c[i] / (double)n - p[i]);
        if (dev > *max_dev)
            *max_dev = dev;
    }
    return x2;
}

/* Two drafts from q0, q1 (sampled, or greedy = argmax q when `greedy`), target rows p0, p1, p2
 * independent of context, so the emitted first token must follow p0 and, when the first draft
 * was accepted, the second emitted token must follow p1. */
static void run_preservation(uint64_t seed, int greedy) {
    tu_rng tr = {seed};
    float p[3][V], q[2][V];
    for (int r = 0; r < 3; r++)
        random_dist(&tr, p[r], V, 1.0f);
    for (int r = 0; r < 2; r++)
        random_dist(&tr, q[r], V, 1.0f);
    glm_rng rng;
    glm_rng_seed(&rng, seed ^ 0x5eed);
    long first[V] = {0}, second[V] = {0}, n_second = 0, accepted0 = 0;
    for (long t = 0; t < TOL_SPEC_TRIALS; t++) {
        int32_t d[2], out[3], n = 0;
        for (int r = 0; r < 2; r++)
            d[r] = greedy ? glm_sampler_argmax(q[r], V) : glm_sample_from_probs(&rng, q[r], V);
        ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &rng, &p[0][0], greedy ? NULL : &q[0][0],
                                                 d, 2, V), GLM_OK);
        ck_assert(n >= 1 && n <= 3);
        first[out[0]]++;
        if (n >= 2) { /* out[0] was the accepted draft; out[1] is the next emitted token */
            second[out[1]]++;
            n_second++;
            accepted0++;
        }
    }
    double dev1, dev2;
    double x1 = chi2_of(first, p[0], TOL_SPEC_TRIALS, &dev1);
    double x2 = chi2_of(second, p[1], n_second, &dev2);
    double bound = (V - 1) + TOL_CHI2_SIGMAS * sqrt(2.0 * (V - 1));
    /* acceptance of the first draft: Σ min(p, q) (sampled) or p(argmax q) (greedy) */
    double want_acc = 0;
    int32_t g = glm_sampler_argmax(q[0], V);
    for (int i = 0; i < V; i++)
        want_acc += greedy ? (i == g ? p[0][i] : 0.0) : fmin(p[0][i], q[0][i]);
    double acc = (double)accepted0 / TOL_SPEC_TRIALS;
    double acc_sd = sqrt(want_acc * (1 - want_acc) / TOL_SPEC_TRIALS);
    printf("%s drafts: first chi2 %.2f max|f-p| %.2e; second (n=%ld) chi2 %.2f max|f-p| %.2e; "
           "bound %.1f; acceptance %.4f (expected %.4f)\n", greedy ? "greedy" : "sampled", x1, dev1,
           n_second, x2, dev2, bound, acc, want_acc);
    ck_assert_msg(x1 < bound, "first token chi2 %.2f over %.2f", x1, bound);
    ck_assert_msg(x2 < bound, "second token chi2 %.2f over %.2f", x2, bound);
    ck_assert_msg(dev1 < TOL_SPEC_MAX_DEV, "first token max|f-p| %.3e", dev1);
    ck_assert_msg(fabs(acc - want_acc) < TOL_CHI2_SIGMAS * acc_sd + 1e-9, "acceptance %.4f vs %.4f",
                  acc, want_acc);
}

START_TEST(test_sampled_preserves_target)
{
    run_preservation(tu_seed("test_sampled_preserves_target"), 0);
}
END_TEST

START_TEST(test_greedy_draft_preserves_target)
{
    run_preservation(tu_seed("test_greedy_draft_preserves_target"), 1);
}
END_TEST

/* The test above must be able to fail: a broken rule (always accept the draft) is caught. */
START_TEST(test_detects_always_accept)
{
    tu_rng tr = {tu_seed("test_detects_always_accept")};
    float p[V], q[V];
    random_dist(&tr, p, V, 1.0f);
    random_dist(&tr, q, V, 1.0f);
    glm_rng rng;
    glm_rng_seed(&rng, 3);
    long c[V] = {0};
    for (long t = 0; t < TOL_SPEC_TRIALS; t++)
        c[glm_sample_from_probs(&rng, q, V)]++; /* what "always accept" would emit */
    double dev, x = chi2_of(c, p, TOL_SPEC_TRIALS, &dev);
    double l1 = 0;
    for (int i = 0; i < V; i++)
        l1 += fabs(p[i] - q[i]);
    if (l1 > 0.05) /* random p, q over 8 tokens differ by far more than this */
        ck_assert_msg(x > (V - 1) + TOL_CHI2_SIGMAS * sqrt(2.0 * (V - 1)), "chi2 %.1f", x);
}
END_TEST

/* A whole speculative decoding run on a tiny vocabulary where both models depend on the
 * context: target p(x | prev) and draft q(x | prev) are Markov chains over VS tokens (plus a
 * start state). Each step drafts a chain d_1..d_k (d_{i+1} from q(. | d_i), sampled or
 * greedy), verifies it against the target rows p(. | last), p(. | d_1) .. p(. | d_k) and
 * continues from the last emitted token, as engine/mtp.c does. The joint distribution of the
 * first three emitted tokens must be p(x1 | start) p(x2 | x1) p(x3 | x2) for every k. */
enum { VS = 4, NJ = VS * VS * VS };

static void run_chain(uint64_t seed, int k, int greedy) {
    tu_rng tr = {seed};
    float p[VS + 1][VS], q[VS + 1][VS];
    for (int r = 0; r <= VS; r++) {
        random_dist(&tr, p[r], VS, 1.0f);
        random_dist(&tr, q[r], VS, 1.0f);
    }
    glm_rng rng;
    glm_rng_seed(&rng, seed ^ 0xc4a1);
    long cnt[NJ] = {0}, steps = 0, accepted = 0, bonus = 0;
    const long trials = TOL_SPEC_TRIALS / 5;
    for (long t = 0; t < trials; t++) {
        int32_t got[3 + GLM_SPEC_TEST_MAX_K + 1], n_got = 0, last = VS; /* the start state */
        while (n_got < 3) {
            float pr[GLM_SPEC_TEST_MAX_K + 1][VS], qr[GLM_SPEC_TEST_MAX_K][VS];
            int32_t d[GLM_SPEC_TEST_MAX_K], out[GLM_SPEC_TEST_MAX_K + 1], n = 0, prev = last;
            for (int i = 0; i < k; i++) {
                memcpy(qr[i], q[prev], sizeof qr[i]);
                d[i] = greedy ? glm_sampler_argmax(qr[i], VS) : glm_sample_from_probs(&rng, qr[i], VS);
                prev = d[i];
            }
            memcpy(pr[0], p[last], sizeof pr[0]);
            for (int i = 0; i < k; i++)
                memcpy(pr[i + 1], p[d[i]], sizeof pr[i + 1]);
            ck_assert_int_eq(glm_spec_accept_sampled(out, &n, &rng, &pr[0][0], greedy ? NULL : &qr[0][0], d, k, VS),
                             GLM_OK);
            ck_assert(n >= 1 && n <= k + 1);
            for (int i = 0; i + 1 < n; i++)
                ck_assert_int_eq(out[i], d[i]); /* the kept drafts come first */
            steps++, accepted += n - 1, bonus += n == k + 1;
            for (int i = 0; i < n; i++)
                got[n_got++] = out[i];
            last = out[n - 1];
        }
        cnt[(got[0] * VS + got[1]) * VS + got[2]]++;
    }
    double want[NJ];
    for (int c = 0; c < NJ; c++) {
        int x1 = c / (VS * VS), x2 = c / VS % VS, x3 = c % VS;
        want[c] = (double)trials * p[VS][x1] * p[x1][x2] * p[x2][x3];
    }
    int dfi;
    double chi2 = tu_chi2_pooled(cnt, want, NJ, &dfi), df = dfi, bound = df + TOL_CHI2_SIGMAS * sqrt(2.0 * df);
    printf("chain k %d %s drafts: joint of 3 tokens chi2 %.2f (df %.0f, bound %.1f); %.3f tokens per step, "
           "%ld all-accepted steps\n", k, greedy ? "greedy" : "sampled", chi2, df, bound,
           (double)(steps + accepted) / (double)steps, bonus);
    fflush(stdout);
    ck_assert_msg(chi2 < bound, "k %d: chi2 %.2f over %.2f", k, chi2, bound);
    ck_assert(accepted > 0 && bonus > 0);
}

START_TEST(test_chain_preserves_target)
{
    uint64_t seed = tu_seed("test_chain_preserves_target");
    for (int k = 1; k <= GLM_SPEC_TEST_MAX_K; k++) {
        run_chain(seed + (uint64_t)k, k, 0);
        run_chain(seed + (uint64_t)k, k, 1);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("speculative");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_greedy_hand);
    tcase_add_test(tc, test_sampled_edge_cases);
    tcase_add_test(tc, test_sampled_preserves_target);
    tcase_add_test(tc, test_greedy_draft_preserves_target);
    tcase_add_test(tc, test_detects_always_accept);
    tcase_add_test(tc, test_chain_preserves_target);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
