/* Reference sampler (ref/sampler.h): hand-computed cases per transform, greedy == argmax,
 * empirical frequencies of 200k seeded draws against the computed distribution (chi-square),
 * RNG reproducibility, and bad input. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/sampler.h"
#include "tolerances.h"
#include "util/testutil.h"

/* probs for `logits` under `params` and history; checks the output is fully written and sums to 1. */
static void probs_for(float *out, const float *logits, int32_t n, const glm_sampler_params *params,
                      const int32_t *hist, int32_t n_hist) {
    glm_sampler *s = NULL;
    ck_assert_int_eq(glm_sampler_create(&s, params, n), GLM_OK);
    float *p = tu_alloc_guarded((size_t)n);
    tu_poison(p, (size_t)n);
    ck_assert_int_eq(glm_sampler_probs(s, p, logits, hist, n_hist), GLM_OK);
    ck_assert(tu_all_written(p, (size_t)n));
    ck_assert(tu_guards_intact(p, (size_t)n));
    double sum = 0;
    for (int32_t i = 0; i < n; i++) {
        ck_assert(p[i] >= 0.0f);
        sum += p[i];
    }
    ck_assert_double_eq_tol(sum, 1.0, 1e-6);
    memcpy(out, p, (size_t)n * sizeof *out);
    tu_free_guarded(p);
    glm_sampler_destroy(s);
}

static void assert_probs(const float *got, const double *want, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) < TOL_SAMPLER_HAND, "p[%d] = %.9g, want %.9g", (int)i,
                      (double)got[i], want[i]);
}

START_TEST(test_argmax_and_rng)
{
    const float x[] = {1.0f, 3.0f, NAN, 3.0f, -INFINITY};
    ck_assert_int_eq(glm_sampler_argmax(x, 5), 1); /* tie → lower index, NaN skipped */
    const float y[] = {NAN, -2.0f};
    ck_assert_int_eq(glm_sampler_argmax(y, 2), 1);
    ck_assert_int_eq(glm_sampler_argmax(x, 0), -1);
    /* splitmix64 from 0: first output is the published 0xe220a8397b1dcdaf (Vigna's test vector). */
    glm_rng r;
    glm_rng_seed(&r, 0);
    ck_assert_uint_eq(r.s[0], 0xe220a8397b1dcdafull);
    glm_rng a, b;
    glm_rng_seed(&a, 12345);
    glm_rng_seed(&b, 12345);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(glm_rng_next(&a), glm_rng_next(&b));
    glm_rng_seed(&b, 12346);
    ck_assert_uint_ne(glm_rng_next(&a), glm_rng_next(&b));
    double mean = 0;
    for (int i = 0; i < 100000; i++) {
        double u = glm_rng_uniform(&a);
        ck_assert(u >= 0.0 && u < 1.0);
        mean += u;
    }
    /* mean of 1e5 uniforms: sd = sqrt(1/12/1e5) = 9.1e-4; 6 sd */
    ck_assert_double_eq_tol(mean / 100000, 0.5, 5.5e-3);
}
END_TEST

START_TEST(test_penalties)
{
    glm_sampler_params p = glm_sampler_params_default();
    float out[4];
    /* repetition 2: seen positive 2 → 1, seen negative -2 → -4, unseen untouched, once per token */
    const float l[] = {2.0f, -2.0f, 1.0f, 0.0f};
    const int32_t h[] = {0, 1, 0};
    p.repetition_penalty = 2.0f;
    probs_for(out, l, 4, &p, h, 3);
    double e[] = {exp(1.0), exp(-4.0), exp(1.0), exp(0.0)}, z = e[0] + e[1] + e[2] + e[3];
    double want[4] = {e[0] / z, e[1] / z, e[2] / z, e[3] / z};
    assert_probs(out, want, 4);
    /* presence 0.25 + frequency 0.5: token 0 seen twice → -1.25, token 1 once → -0.75 */
    p = glm_sampler_params_default();
    p.presence_penalty = 0.25f;
    p.frequency_penalty = 0.5f;
    const float l2[] = {1.0f, 1.0f, 1.0f};
    const int32_t h2[] = {0, 0, 1};
    probs_for(out, l2, 3, &p, h2, 3);
    double f[] = {exp(-0.25), exp(0.25), exp(1.0)}, zf = f[0] + f[1] + f[2];
    double want2[3] = {f[0] / zf, f[1] / zf, f[2] / zf};
    assert_probs(out, want2, 3);
    /* greedy follows the penalised logits: token 0 wins unpenalised, loses with the penalty */
    p = glm_sampler_params_default();
    p.temperature = 0.0f;
    p.presence_penalty = 1.0f;
    const float l3[] = {2.0f, 1.5f};
    const int32_t h3[] = {0};
    glm_sampler *s = NULL;
    ck_assert_int_eq(glm_sampler_create(&s, &p, 2), GLM_OK);
    int32_t tok = -1;
    ck_assert_int_eq(glm_sampler_sample(s, &tok, l3, NULL, 0), GLM_OK);
    ck_assert_int_eq(tok, 0);
    ck_assert_int_eq(glm_sampler_sample(s, &tok, l3, h3, 1), GLM_OK);
    ck_assert_int_eq(tok, 1);
    /* the history counts reset between calls: the same call again gives the same answer */
    ck_assert_int_eq(glm_sampler_sample(s, &tok, l3, NULL, 0), GLM_OK);
    ck_assert_int_eq(tok, 0);
    glm_sampler_destroy(s);
}
END_TEST

START_TEST(test_temperature_topk)
{
    glm_sampler_params p = glm_sampler_params_default();
    float out[4];
    /* T=2 on [0, ln 4] → softmax([0, ln 2]) = [1/3, 2/3] */
    const float l[] = {0.0f, (float)log(4.0)};
    p.temperature = 2.0f;
    probs_for(out, l, 2, &p, NULL, 0);
    double want[] = {1.0 / 3.0, 2.0 / 3.0};
    assert_probs(out, want, 2);
    /* top-k 2 on [1,3,2,0] keeps ids 1, 2 */
    p = glm_sampler_params_default();
    p.top_k = 2;
    const float l2[] = {1.0f, 3.0f, 2.0f, 0.0f};
    probs_for(out, l2, 4, &p, NULL, 0);
    double z = exp(3.0) + exp(2.0);
    double want2[] = {0.0, exp(3.0) / z, exp(2.0) / z, 0.0};
    assert_probs(out, want2, 4);
    /* top-k ties: the lower ids survive */
    const float l3[] = {0.0f, 1.0f, 1.0f, 1.0f};
    probs_for(out, l3, 4, &p, NULL, 0);
    double want3[] = {0.0, 0.5, 0.5, 0.0};
    assert_probs(out, want3, 4);
    /* top-k larger than the vocab is a no-op */
    p.top_k = 100;
    probs_for(out, l2, 4, &p, NULL, 0);
    double z4 = exp(1.0) + exp(3.0) + exp(2.0) + 1.0;
    double want4[] = {exp(1.0) / z4, exp(3.0) / z4, exp(2.0) / z4, 1.0 / z4};
    assert_probs(out, want4, 4);
}
END_TEST

START_TEST(test_topp_minp)
{
    /* logits = log of [0.5, 0.3, 0.15, 0.05] (ids shuffled so sorting matters) */
    const float l[] = {(float)log(0.15), (float)log(0.5), (float)log(0.05), (float)log(0.3)};
    glm_sampler_params p = glm_sampler_params_default();
    float out[4];
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8 → keep 0.5, 0.3 */
    probs_for(out, l, 4, &p, NULL, 0);
    double w1[] = {0.0, 0.625, 0.0, 0.375};
    assert_probs(out, w1, 4);
    p.top_p = 0.9f; /* 0.8 < 0.9 <= 0.95 → keep three */
    probs_for(out, l, 4, &p, NULL, 0);
    double w2[] = {0.15 / 0.95, 0.5 / 0.95, 0.0, 0.3 / 0.95};
    assert_probs(out, w2, 4);
    p.top_p = 1e-6f; /* at least one token survives */
    probs_for(out, l, 4, &p, NULL, 0);
    double w3[] = {0.0, 1.0, 0.0, 0.0};
    assert_probs(out, w3, 4);
    p = glm_sampler_params_default();
    p.min_p = 0.5f; /* threshold 0.25 → keep 0.5, 0.3 */
    probs_for(out, l, 4, &p, NULL, 0);
    assert_probs(out, w1, 4);
    p.min_p = 0.2f; /* threshold 0.1 → keep 0.5, 0.3, 0.15 */
    probs_for(out, l, 4, &p, NULL, 0);
    assert_probs(out, w2, 4);
    p.min_p = 1.0f; /* only the max */
    probs_for(out, l, 4, &p, NULL, 0);
    assert_probs(out, w3, 4);
}
END_TEST

/* Brute force for one config: full sort (descending, ties to the lower id), softmax of l/T
 * over the top-k, top-p prefix, min-p prefix, renormalise; all in double. */
typedef struct bf_item {
    float l;
    int32_t id;
} bf_item;

static int bf_cmp(const void *a, const void *b) {
    const bf_item *x = a, *y = b;
    if (x->l != y->l)
        return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* amb[id] ← 1 for tokens whose inclusion sits within rounding of a top-p / min-p boundary
 * (float vs double sums may legitimately decide them either way). */
static void brute_force(double *want, char *amb, const float *l, int32_t n, const glm_sampler_params *p) {
    bf_item *it = malloc((size_t)n * sizeof *it);
    for (int32_t i = 0; i < n; i++)
        it[i] = (bf_item){l[i], i};
    qsort(it, (size_t)n, sizeof *it, bf_cmp);
    int32_t k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    double *e = malloc((size_t)k * sizeof *e), z = 0;
    for (int32_t i = 0; i < k; i++)
        z += e[i] = exp(((double)it[i].l - it[0].l) / p->temperature);
    int32_t keep = k;
    memset(amb, 0, (size_t)n);
    const double eps = 1e-6;
    if (p->top_p < 1.0f) {
        double cum = 0;
        for (int32_t i = 0; i < k; i++) {
            double before = cum;
            cum += e[i] / z;
            if (fabs(cum - p->top_p) < eps || fabs(before - p->top_p) < eps)
                amb[it[i].id] = 1;
            if (cum >= p->top_p) {
                keep = i + 1;
                if (i + 1 < k && fabs(cum - p->top_p) < eps)
                    amb[it[i + 1].id] = 1;
                break;
            }
        }
    }
    for (int32_t i = 0; p->min_p > 0 && i < k; i++)
        if (fabs(e[i] - p->min_p) < eps)
            amb[it[i].id] = 1;
    int32_t mk = 1;
    while (p->min_p > 0 && mk < keep && e[mk] >= p->min_p)
        mk++;
    if (p->min_p > 0)
        keep = mk;
    double zk = 0;
    for (int32_t i = 0; i < keep; i++)
        zk += e[i];
    for (int32_t i = 0; i < n; i++)
        want[i] = 0;
    for (int32_t i = 0; i < keep; i++)
        want[it[i].id] = e[i] / zk;
    free(e);
    free(it);
}

/* Large vocabularies take the partial-selection paths (a nucleus beyond the first 256 and
 * beyond 2048 candidates, top-k larger than 256, min-p cutting inside the nucleus): the kept
 * set must be exactly the brute-force one, probabilities within TOL_SAMPLER_HAND. */
START_TEST(test_large_vocab_vs_brute_force)
{
    tu_rng r = {tu_seed("test_large_vocab_vs_brute_force")};
    enum { V = 20000 };
    float *l = malloc(V * sizeof *l), *got = malloc(V * sizeof *got);
    double *want = malloc(V * sizeof *want);
    char *amb = malloc(V);
    for (int i = 0; i < V; i++)
        l[i] = tu_normal(&r) * 0.5f;
    l[17] = l[18]; /* a tie */
    glm_sampler_params cfg[5];
    for (int c = 0; c < 5; c++)
        cfg[c] = glm_sampler_params_default();
    cfg[0].top_p = 0.95f;                      /* flat: nucleus ~ 19k */
    cfg[1].top_p = 0.5f;                       /* ~ 7k: the 2048 step is not enough */
    cfg[2].top_p = 0.05f;                      /* ~ 500: the 256 step is not enough */
    cfg[3].top_k = 3000, cfg[3].top_p = 0.6f;  /* sorted top-k path */
    cfg[4].top_p = 0.9f, cfg[4].min_p = 0.3f;  /* min-p cuts first */
    cfg[4].temperature = 0.8f;
    for (int c = 0; c < 5; c++) {
        glm_sampler *s = NULL;
        ck_assert_int_eq(glm_sampler_create(&s, &cfg[c], V), GLM_OK);
        tu_poison(got, V);
        ck_assert_int_eq(glm_sampler_probs(s, got, l, NULL, 0), GLM_OK);
        brute_force(want, amb, l, V, &cfg[c]);
        int kept = 0;
        for (int i = 0; i < V; i++) {
            ck_assert_msg(amb[i] || (got[i] > 0) == (want[i] > 0), "config %d: token %d kept %d vs brute force %d",
                          c, i, got[i] > 0, want[i] > 0);
            ck_assert_msg(fabs(got[i] - want[i]) < TOL_SAMPLER_HAND, "config %d: p[%d] %.9g vs %.9g", c, i,
                          (double)got[i], want[i]);
            kept += want[i] > 0;
        }
        printf("large vocab config %d: %d tokens kept\n", c, kept);
        glm_sampler_destroy(s);
    }
    free(l);
    free(got);
    free(want);
    free(amb);
}
END_TEST

START_TEST(test_greedy_equals_argmax)
{
    tu_rng r = {tu_seed("test_greedy_equals_argmax")};
    enum { V = 1000 };
    float *l = malloc(V * sizeof *l), *pr = malloc(V * sizeof *pr);
    glm_sampler_params p = glm_sampler_params_default();
    p.temperature = 0.0f;
    p.top_k = 5;    /* filters must not change greedy */
    p.top_p = 0.5f;
    glm_sampler *s = NULL;
    ck_assert_int_eq(glm_sampler_create(&s, &p, V), GLM_OK);
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < V; i++)
            l[i] = tu_normal(&r) * 3.0f;
        int32_t want = glm_sampler_argmax(l, V), tok = -1;
        ck_assert_int_eq(glm_sampler_sample(s, &tok, l, NULL, 0), GLM_OK);
        ck_assert_int_eq(tok, want);
        tu_poison(pr, V);
        ck_assert_int_eq(glm_sampler_probs(s, pr, l, NULL, 0), GLM_OK);
        for (int i = 0; i < V; i++)
            ck_assert(pr[i] == (i == want ? 1.0f : 0.0f));
    }
    /* a tiny positive temperature collapses onto the argmax too (the gap is at least ~1e-3
     * after division, so exp(-gap/T) underflows) */
    p.temperature = 1e-6f;
    ck_assert_int_eq(glm_sampler_reset(s, &p), GLM_OK);
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < V; i++)
            l[i] = (float)i * 0.01f;
        l[trial * 7] = 100.0f;
        int32_t tok = -1;
        ck_assert_int_eq(glm_sampler_sample(s, &tok, l, NULL, 0), GLM_OK);
        ck_assert_int_eq(tok, trial * 7);
    }
    glm_sampler_destroy(s);
    free(l);
    free(pr);
}
END_TEST

/* Pearson chi-square of `counts` against n*p over the categories with p > 0; fails if any
 * draw lands on a p == 0 token. *df ← categories - 1. */
static double chi_square(const long *counts, const float *p, int32_t n, long draws, int *df) {
    double x2 = 0;
    int k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (p[i] == 0.0f) {
            ck_assert_msg(counts[i] == 0, "token %d has p=0 but was drawn %ld times", (int)i, counts[i]);
            continue;
        }
        double e = (double)draws * p[i];
        x2 += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        k++;
    }
    *df = k - 1;
    return x2;
}

START_TEST(test_frequencies_match_probs)
{
    uint64_t seed = tu_seed("test_frequencies_match_probs");
    tu_rng r = {seed};
    enum { V = 64 };
    const long draws = 200000;
    float l[V], pr[V];
    long counts[V];
    for (int i = 0; i < V; i++)
        l[i] = tu_normal(&r) * 1.5f;
    const int32_t hist[] = {3, 3, 10, 20, 33, 3};
    glm_sampler_params configs[3];
    for (int c = 0; c < 3; c++)
        configs[c] = glm_sampler_params_default();
    configs[0].temperature = 1.0f; /* plain softmax */
    configs[1].temperature = 0.7f; /* everything on */
    configs[1].top_k = 40;
    configs[1].top_p = 0.9f;
    configs[1].min_p = 0.02f;
    configs[1].repetition_penalty = 1.3f;
    configs[1].presence_penalty = 0.2f;
    configs[1].frequency_penalty = 0.1f;
    configs[2].temperature = 1.5f; /* hot, top-k only */
    configs[2].top_k = 10;
    for (int c = 0; c < 3; c++) {
        configs[c].seed = seed + (uint64_t)c;
        glm_sampler *s = NULL;
        ck_assert_int_eq(glm_sampler_create(&s, &configs[c], V), GLM_OK);
        ck_assert_int_eq(glm_sampler_probs(s, pr, l, hist, 6), GLM_OK);
        memset(counts, 0, sizeof counts);
        for (long d = 0; d < draws; d++) {
            int32_t tok = -1;
            ck_assert_int_eq(glm_sampler_sample(s, &tok, l, hist, 6), GLM_OK);
            ck_assert(tok >= 0 && tok < V);
            counts[tok]++;
        }
        int df = 0;
        double x2 = chi_square(counts, pr, V, draws, &df);
        double bound = df + TOL_CHI2_SIGMAS * sqrt(2.0 * df);
        printf("sampler config %d: chi2 = %.1f, df = %d, bound = %.1f\n", c, x2, df, bound);
        /* df 0: the transforms left one token with all the mass; every draw must be it */
        ck_assert_msg(df >= 1 ? x2 < bound : x2 == 0.0, "config %d: chi2 %.1f over %.1f (df %d)", c, x2, bound, df);
        glm_sampler_destroy(s);
    }
}
END_TEST

START_TEST(test_sample_from_probs)
{
    uint64_t seed = tu_seed("test_sample_from_probs");
    glm_rng r;
    glm_rng_seed(&r, seed);
    const float p[] = {0.1f, 0.0f, 0.4f, -1.0f, 0.2f, NAN, 0.3f};
    const float clean[] = {0.1f, 0.0f, 0.4f, 0.0f, 0.2f, 0.0f, 0.3f};
    long counts[7] = {0};
    const long draws = 200000;
    for (long d = 0; d < draws; d++)
        counts[glm_sample_from_probs(&r, p, 7)]++;
    int df = 0;
    double x2 = chi_square(counts, clean, 7, draws, &df);
    ck_assert_msg(x2 < df + TOL_CHI2_SIGMAS * sqrt(2.0 * df), "chi2 %.1f", x2);
    const float z[] = {0.0f, -1.0f};
    ck_assert_int_eq(glm_sample_from_probs(&r, z, 2), -1);
}
END_TEST

START_TEST(test_same_seed_same_sequence)
{
    uint64_t seed = tu_seed("test_same_seed_same_sequence");
    tu_rng r = {seed};
    enum { V = 300, N = 500 };
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = tu_normal(&r);
    glm_sampler_params p = glm_sampler_params_default();
    p.top_p = 0.95f;
    p.seed = seed;
    glm_sampler *a = NULL, *b = NULL;
    ck_assert_int_eq(glm_sampler_create(&a, &p, V), GLM_OK);
    ck_assert_int_eq(glm_sampler_create(&b, &p, V), GLM_OK);
    int32_t seq[N];
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        int32_t ta = -1, tb = -2;
        ck_assert_int_eq(glm_sampler_sample(a, &ta, l, seq, i), GLM_OK);
        ck_assert_int_eq(glm_sampler_sample(b, &tb, l, seq, i), GLM_OK);
        ck_assert_int_eq(ta, tb);
        distinct += i > 0 && ta != seq[i - 1];
        seq[i] = ta;
    }
    ck_assert_int_gt(distinct, N / 2); /* really sampling, not stuck */
    /* reset replays the same stream */
    ck_assert_int_eq(glm_sampler_reset(a, &p), GLM_OK);
    for (int i = 0; i < N; i++) {
        int32_t t = -1;
        ck_assert_int_eq(glm_sampler_sample(a, &t, l, seq, i), GLM_OK);
        ck_assert_int_eq(t, seq[i]);
    }
    glm_sampler_destroy(a);
    glm_sampler_destroy(b);
}
END_TEST

START_TEST(test_bad_input)
{
    glm_sampler_params p = glm_sampler_params_default();
    glm_sampler *s = NULL;
    ck_assert_int_eq(glm_sampler_create(&s, &p, 0), GLM_ERR_INVALID);
    ck_assert_ptr_null(s);
    glm_sampler_params bad = p;
    bad.temperature = -1.0f;
    ck_assert_int_eq(glm_sampler_create(&s, &bad, 4), GLM_ERR_INVALID);
    bad = p;
    bad.top_p = 0.0f;
    ck_assert_int_eq(glm_sampler_create(&s, &bad, 4), GLM_ERR_INVALID);
    bad = p;
    bad.min_p = NAN;
    ck_assert_int_eq(glm_sampler_create(&s, &bad, 4), GLM_ERR_INVALID);
    bad = p;
    bad.repetition_penalty = 0.0f;
    ck_assert_int_eq(glm_sampler_create(&s, &bad, 4), GLM_ERR_INVALID);
    ck_assert(strstr(glm_last_error(), "repetition_penalty") != NULL);

    ck_assert_int_eq(glm_sampler_create(&s, &p, 4), GLM_OK);
    const float l[] = {1.0f, 2.0f, 3.0f, 4.0f};
    const int32_t h[] = {1, 4};
    int32_t tok = -1;
    float pr[4];
    ck_assert_int_eq(glm_sampler_sample(s, &tok, l, h, 2), GLM_ERR_INVALID);
    ck_assert(strstr(glm_last_error(), "history[1]") != NULL);
    const int32_t hneg[] = {-1};
    ck_assert_int_eq(glm_sampler_probs(s, pr, l, hneg, 1), GLM_ERR_INVALID);
    const float dead[] = {NAN, -INFINITY, NAN, -INFINITY};
    ck_assert_int_eq(glm_sampler_sample(s, &tok, dead, NULL, 0), GLM_ERR_INVALID);
    p.temperature = 0.0f;
    ck_assert_int_eq(glm_sampler_reset(s, &p), GLM_OK);
    ck_assert_int_eq(glm_sampler_probs(s, pr, dead, NULL, 0), GLM_ERR_INVALID);
    /* NaN logits are never chosen */
    const float some_nan[] = {NAN, 1.0f, NAN, 0.5f};
    ck_assert_int_eq(glm_sampler_sample(s, &tok, some_nan, NULL, 0), GLM_OK);
    ck_assert_int_eq(tok, 1);
    glm_sampler_destroy(s);
    glm_sampler_destroy(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_argmax_and_rng);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_temperature_topk);
    tcase_add_test(tc, test_topp_minp);
    tcase_add_test(tc, test_large_vocab_vs_brute_force);
    tcase_add_test(tc, test_greedy_equals_argmax);
    tcase_add_test(tc, test_frequencies_match_probs);
    tcase_add_test(tc, test_sample_from_probs);
    tcase_add_test(tc, test_same_seed_same_sequence);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
