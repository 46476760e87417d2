/* The whole forward pass against transformers: for golden/dev/hf every tensor of golden.h5
 * (prompt0..4: each layer's intermediates, router top-k, final norm, logits, MTP rows) and the
 * 24-token greedy continuation; for every golden/dev/dev-<T>.gguf the logits, final norm,
 * MTP rows and 16-token greedy continuation of expect-dev-<T>.h5 (transformers run on that
 * file's dequantized weights). Also: token-by-token decoding (absorbed MLA) equals one
 * prefill (naive MLA), and the MTP block fed row by row equals one batched call. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/forward.h"
#include "model/model.h"
#include "ref/sampler.h"
#include "tolerances.h"
#include "util/h5.h"
#include "util/mtp_check.h"
#include "util/testutil.h"

static glm_model *open_model(const char *rel)
{
    glm_model *m = NULL;
    glm_status st = glm_model_open(&m, tu_golden(rel));
    ck_assert_msg(st == GLM_OK, "%s: %s", rel, glm_last_error());
    return m;
}

static char *tmp_path(const char *tag)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/glm47-test-forward-%d-%s.h5", (int)getpid(), tag);
    return buf;
}

/* NMSE of dataset `name` of the dump against `gpath` of the golden file; -1 if absent. */
static double compare_f32(glm_h5 *gold, const char *gpath, glm_h5 *got, const char *name, double tol, bool need)
{
    if (!glm_h5_exists(gold, gpath)) {
        ck_assert_msg(!need, "golden %s missing", gpath);
        return -1;
    }
    float *e = NULL, *g = NULL;
    int64_t de[4], dg[4];
    int ne, ng;
    ck_assert_msg(glm_h5_read_f32(gold, gpath, &e, de, &ne) == GLM_OK, "%s", glm_last_error());
    ck_assert_msg(glm_h5_read_f32(got, name, &g, dg, &ng) == GLM_OK, "dump %s: %s", name, glm_last_error());
    size_t n = 1, n2 = 1;
    for (int i = 0; i < ne; i++)
        n *= (size_t)de[i];
    for (int i = 0; i < ng; i++)
        n2 *= (size_t)dg[i];
    ck_assert_msg(n == n2, "%s: %zu elements, golden has %zu", name, n2, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(g[i]), "%s[%zu] not finite", name, i);
    double nmse = tu_nmse(e, g, n);
    ck_assert_msg(nmse <= tol, "%s: NMSE %.3g > %.3g", gpath, nmse, tol);
    free(e), free(g);
    return nmse;
}

static void compare_i32(glm_h5 *gold, const char *gpath, glm_h5 *got, const char *name)
{
    int32_t *e = NULL, *g = NULL;
    int64_t de[4], dg[4];
    int ne, ng;
    ck_assert_msg(glm_h5_read_i32(gold, gpath, &e, de, &ne) == GLM_OK, "%s", glm_last_error());
    ck_assert_msg(glm_h5_read_i32(got, name, &g, dg, &ng) == GLM_OK, "dump %s: %s", name, glm_last_error());
    size_t n = 1;
    for (int i = 0; i < ne; i++)
        n *= (size_t)de[i];
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(e[i] == g[i], "%s[%zu]: %d, golden %d", gpath, i, g[i], e[i]);
    free(e), free(g);
}

static int32_t *read_ids(glm_h5 *h, const char *path, int *n)
{
    int32_t *ids = NULL;
    int64_t d[4];
    int nd;
    ck_assert_msg(glm_h5_read_i32(h, path, &ids, d, &nd) == GLM_OK, "%s: %s", path, glm_last_error());
    *n = (int)d[0];
    return ids;
}

/* Greedy continuation of n_gen tokens after a prefill, one decode step per token. The
 * fixtures were generated with EOS suppressed (min_new_tokens: "no EOS stop"), i.e. the
 * model's end-of-generation ids are masked to -inf before the argmax. */
static void check_greedy(const glm_model *m, glm_backend *b, const int32_t *tokens, int T, const int32_t *expect,
                         int n_gen, const char *what)
{
    glm_forward *f = NULL;
    ck_assert_msg(glm_forward_create(&f, m, b, T + n_gen, T) == GLM_OK, "%s", glm_last_error());
    const int64_t V = m->hp.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V);
    ck_assert(glm_forward_eval(f, tokens, T, lg, false, NULL, NULL) == GLM_OK);
    for (int i = 0; i < n_gen; i++) {
        for (int e = 0; e < m->n_eos; e++)
            lg[m->eos_ids[e]] = -INFINITY;
        int32_t t = (int32_t)glm_ref_argmax(lg, V);
        ck_assert_msg(t == expect[i], "%s: greedy token %d is %d, expected %d", what, i, t, expect[i]);
        if (i + 1 < n_gen)
            ck_assert_msg(glm_forward_eval(f, &t, 1, lg, false, NULL, NULL) == GLM_OK, "%s", glm_last_error());
    }
    free(lg);
    glm_forward_destroy(f);
}

/* The same continuation with each id from glm_forward_eval_argmax (the argmax and the
 * end-of-generation mask on the backend), and its refusals of bad sizes. */
static void check_greedy_device(const glm_model *m, glm_backend *b, const int32_t *tokens, int T, const int32_t *expect,
                                int n_gen)
{
    glm_forward *f = NULL;
    ck_assert_msg(glm_forward_create(&f, m, b, T + n_gen, T) == GLM_OK, "%s", glm_last_error());
    const int64_t V = m->hp.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V);
    ck_assert(glm_forward_eval(f, tokens, T, lg, false, NULL, NULL) == GLM_OK);
    for (int e = 0; e < m->n_eos; e++)
        lg[m->eos_ids[e]] = -INFINITY;
    int32_t t = (int32_t)glm_ref_argmax(lg, V), bad = 0;
    ck_assert(glm_forward_eval_argmax(f, &t, 0, NULL, 0, &bad) == GLM_ERR_INVALID);
    ck_assert(glm_forward_eval_argmax(f, &t, 1, m->eos_ids, GLM_ARGMAX_MASK + 1, &bad) == GLM_ERR_UNSUPPORTED);
    ck_assert_int_eq(glm_forward_n_past(f), T);
    for (int i = 0; i < n_gen; i++) {
        ck_assert_msg(t == expect[i], "device greedy token %d is %d, expected %d", i, t, expect[i]);
        if (i + 1 < n_gen)
            ck_assert_msg(glm_forward_eval_argmax(f, &t, 1, m->eos_ids, m->n_eos, &t) == GLM_OK, "%s",
                          glm_last_error());
    }
    ck_assert_int_eq(glm_forward_n_past(f), T + n_gen - 1);
    free(lg);
    glm_forward_destroy(f);
}

static const char *k_layer_f32[] = { "attn_norm", "q_a", "kv_latent", "attn_out", "ffn_norm",
                                     "router_logits", "topk_weights", "ffn_out", "out" };

/* Worst NMSE seen per tensor class, printed at the end of each test for tolerances.h. */
static double g_worst_layer, g_worst_logits, g_worst_mtp;

static void check_prompt(const glm_model *m, glm_backend *b, glm_h5 *gold, const char *grp, bool layers, int n_greedy)
{
    char p[128], q[128];
    snprintf(p, sizeof p, "%s/tokens", grp);
    int T;
    int32_t *tokens = read_ids(gold, p, &T);
    const char *path = tmp_path(grp);
    ck_assert_msg(glm_dump_eval(m, b, tokens, T, path, GLM_MLA_AUTO) == GLM_OK, "%s", glm_last_error());
    glm_h5 *got = NULL;
    ck_assert(glm_h5_open(&got, path) == GLM_OK);
    compare_i32(gold, p, got, "tokens");
    if (layers) {
        for (int l = 0; l < m->hp.num_hidden_layers; l++) {
            for (size_t i = 0; i < sizeof k_layer_f32 / sizeof *k_layer_f32; i++) {
                snprintf(p, sizeof p, "%s/layer.%02d/%s", grp, l, k_layer_f32[i]);
                snprintf(q, sizeof q, "layer.%02d/%s", l, k_layer_f32[i]);
                double e = compare_f32(gold, p, got, q, TOL_GOLDEN_LAYER_NMSE, false);
                g_worst_layer = fmax(g_worst_layer, e);
            }
            if (m->layers[l].is_moe) {
                snprintf(p, sizeof p, "%s/layer.%02d/topk_ids", grp, l);
                snprintf(q, sizeof q, "layer.%02d/topk_ids", l);
                compare_i32(gold, p, got, q);
            }
        }
    }
    snprintf(p, sizeof p, "%s/final_norm", grp);
    g_worst_layer = fmax(g_worst_layer, compare_f32(gold, p, got, "final_norm", TOL_GOLDEN_LAYER_NMSE, true));
    snprintf(p, sizeof p, "%s/logits", grp);
    g_worst_logits = fmax(g_worst_logits, compare_f32(gold, p, got, "logits", TOL_GOLDEN_LOGITS_NMSE, true));
    if (m->mtp) {
        snprintf(p, sizeof p, "%s/mtp/next_tokens", grp);
        compare_i32(gold, p, got, "mtp/next_tokens");
        const char *mt[] = { "eh_out", "out", "logits" };
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/mtp/%s", grp, mt[i]);
            snprintf(q, sizeof q, "mtp/%s", mt[i]);
            g_worst_mtp = fmax(g_worst_mtp,
                               compare_f32(gold, p, got, q, i == 2 ? TOL_GOLDEN_LOGITS_NMSE : TOL_GOLDEN_LAYER_NMSE,
                                           true));
        }
    }
    glm_h5_close(got);
    remove(path);
    snprintf(p, sizeof p, "%s/greedy", grp);
    int n_g;
    int32_t *greedy = read_ids(gold, p, &n_g);
    ck_assert_int_ge(n_g, n_greedy);
    check_greedy(m, b, tokens, T, greedy, n_greedy, grp);
    free(greedy);
    free(tokens);
}

START_TEST(test_golden_hf)
{
    glm_model *m = open_model("dev/hf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    glm_h5 *gold = NULL;
    ck_assert(glm_h5_open(&gold, tu_golden("dev/golden.h5")) == GLM_OK);
    g_worst_layer = g_worst_logits = g_worst_mtp = 0;
    for (int i = 0; i < 5; i++) {
        char grp[32];
        snprintf(grp, sizeof grp, "prompt%d", i);
        check_prompt(m, b, gold, grp, true, 24);
    }
    printf("golden hf: worst NMSE layers %.3g logits %.3g mtp %.3g\n", g_worst_layer, g_worst_logits, g_worst_mtp);
    glm_h5_close(gold);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

static const char *k_ggufs[] = { "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0",
                                 "Q5_0", "Q3_K_M", "Q2_K", "IQ4_XS", "MXFP4_MOE" };

START_TEST(test_expect_gguf)
{
    const char *t = k_ggufs[_i];
    char rel[128], erel[128];
    snprintf(rel, sizeof rel, "dev/dev-%s.gguf", t);
    snprintf(erel, sizeof erel, "dev/expect-dev-%s.h5", t);
    glm_model *m = open_model(rel);
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    glm_h5 *gold = NULL;
    ck_assert(glm_h5_open(&gold, tu_golden(erel)) == GLM_OK);
    g_worst_layer = g_worst_logits = g_worst_mtp = 0;
    for (int i = 0; i < 4; i++) {
        char grp[32];
        snprintf(grp, sizeof grp, "prompt%d", i);
        check_prompt(m, b, gold, grp, false, 16);
    }
    printf("%s: worst NMSE final_norm %.3g logits %.3g mtp %.3g\n", t, g_worst_layer, g_worst_logits, g_worst_mtp);
    glm_h5_close(gold);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST


/* logits of tokens[T] from one forward (batch n_batch, MLA mode), all rows, plus hidden. */
static void run_logits(const glm_model *m, glm_backend *b, const int32_t *tokens, int T, int n_batch, int step,
                       glm_mla_mode mode, float *logits, float *hidden)
{
    glm_forward *f = NULL;
    ck_assert(glm_forward_create(&f, m, b, T, n_batch) == GLM_OK);
    glm_forward_set_mla_mode(f, mode);
    const int64_t V = m->hp.vocab_size, D = m->hp.hidden_size;
    for (int i = 0; i < T; i += step) {
        int n = T - i < step ? T - i : step;
        ck_assert_msg(glm_forward_eval(f, tokens + i, n, logits + i * V, true, hidden ? hidden + i * D : NULL,
                                       NULL) == GLM_OK, "%s", glm_last_error());
    }
    ck_assert_int_eq(glm_forward_n_past(f), T);
    glm_forward_destroy(f);
}

START_TEST(test_decode_equals_prefill)
{
    /* one prefill (naive MLA) vs token-by-token decode (absorbed MLA), chunked prefill
     * (n_batch 5), and steps of 3: the cache, positions and both MLA forms must agree */
    glm_model *m = open_model("dev/dev-Q8_0.gguf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    tu_rng r = { tu_seed("decode_equals_prefill") };
    const int T = 23;
    const int64_t V = m->hp.vocab_size;
    int32_t tokens[23];
    for (int i = 0; i < T; i++)
        tokens[i] = (int32_t)(tu_next(&r) % (uint64_t)V);
    float *a = malloc(sizeof(float) * T * V), *c = malloc(sizeof(float) * T * V);
    run_logits(m, b, tokens, T, T, T, GLM_MLA_NAIVE, a, NULL);
    struct { int n_batch, step; glm_mla_mode mode; const char *what; } v[] = {
        { T, 1, GLM_MLA_AUTO, "decode 1 by 1" },
        { 5, T, GLM_MLA_AUTO, "chunked prefill" },
        { T, 3, GLM_MLA_ABSORBED, "steps of 3, absorbed" },
        { T, T, GLM_MLA_ABSORBED, "prefill absorbed" },
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        run_logits(m, b, tokens, T, v[i].n_batch, v[i].step, v[i].mode, c, NULL);
        double e = tu_nmse(a, c, (size_t)T * V);
        printf("decode vs prefill (%s): NMSE %.3g\n", v[i].what, e);
        ck_assert_msg(e < TOL_DECODE_VS_PREFILL_NMSE, "%s: NMSE %.3g", v[i].what, e);
    }
    free(a), free(c);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

START_TEST(test_mtp_rows_and_truncate)
{
    /* MTP rows fed one at a time equal one batched call; truncating both caches and
     * re-running the tail gives the same logits (the speculative rejection path) */
    glm_model *m = open_model("dev/dev-Q8_0.gguf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    tu_rng r = { tu_seed("mtp_rows") };
    const int T = 12;
    const int64_t V = m->hp.vocab_size, D = m->hp.hidden_size;
    int32_t tokens[12], next[12];
    for (int i = 0; i < T; i++)
        tokens[i] = (int32_t)(tu_next(&r) % (uint64_t)V);
    for (int i = 0; i < T; i++)
        next[i] = i + 1 < T ? tokens[i + 1] : 7;
    float *hid = malloc(sizeof(float) * T * D), *lg = malloc(sizeof(float) * T * V);
    float *a = malloc(sizeof(float) * T * V), *c = malloc(sizeof(float) * T * V);
    glm_forward *f = NULL;
    ck_assert(glm_forward_create(&f, m, b, T, T) == GLM_OK);
    ck_assert(glm_forward_has_mtp(f));
    ck_assert(glm_forward_eval(f, tokens, T, lg, true, hid, NULL) == GLM_OK);
    ck_assert(glm_forward_mtp(f, hid, next, T, a, true, NULL) == GLM_OK);
    ck_assert(glm_forward_mtp_truncate(f, 0) == GLM_OK);
    for (int i = 0; i < T; i++)
        ck_assert(glm_forward_mtp(f, hid + i * D, next + i, 1, c + i * V, false, NULL) == GLM_OK);
    double e = tu_nmse(a, c, (size_t)T * V);
    printf("mtp batched vs row by row: NMSE %.3g\n", e);
    ck_assert(e < TOL_DECODE_VS_PREFILL_NMSE);
    /* truncate the main cache to 7 and redo the tail: same logits */
    ck_assert(glm_forward_truncate(f, 7) == GLM_OK);
    ck_assert(glm_forward_truncate(f, 8) != GLM_OK);
    ck_assert(glm_forward_eval(f, tokens + 7, T - 7, c, true, NULL, NULL) == GLM_OK);
    e = tu_nmse(lg + 7 * V, c, (size_t)(T - 7) * V);
    ck_assert_msg(e < TOL_DECODE_VS_PREFILL_NMSE, "after truncate: NMSE %.3g", e);
    /* past the context: a clear error, no write */
    ck_assert(glm_forward_eval(f, tokens, 1, c, false, NULL, NULL) != GLM_OK);
    ck_assert(strstr(glm_last_error(), "context") != NULL);
    glm_forward_destroy(f);
    free(hid), free(lg), free(a), free(c);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

START_TEST(test_bad_inputs)
{
    glm_model *m = open_model("dev/dev-Q8_0.gguf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "nope", m) != GLM_OK);
    ck_assert(strstr(glm_last_error(), "nope") != NULL);
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    glm_forward *f = NULL;
    ck_assert(glm_forward_create(&f, m, b, 0, 1) != GLM_OK);
    ck_assert(glm_forward_create(&f, m, b, 8, 8) == GLM_OK);
    int32_t bad[2] = { 3, (int32_t)m->hp.vocab_size };
    ck_assert(glm_forward_eval(f, bad, 2, NULL, false, NULL, NULL) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "vocabulary") != NULL, "%s", glm_last_error());
    ck_assert(glm_forward_eval(f, bad, 0, NULL, false, NULL, NULL) != GLM_OK);
    /* a bad id in a later chunk fails before anything runs: the cache stays empty */
    glm_forward_destroy(f);
    ck_assert(glm_forward_create(&f, m, b, 8, 1) == GLM_OK);
    ck_assert(glm_forward_eval(f, bad, 2, NULL, false, NULL, NULL) != GLM_OK);
    ck_assert_int_eq(glm_forward_n_past(f), 0);
    glm_forward_destroy(f);
    /* a dump that fails leaves no file behind */
    const char *path = tmp_path("bad");
    ck_assert(glm_dump_eval(m, b, bad, 2, path, GLM_MLA_AUTO) != GLM_OK);
    ck_assert(access(path, F_OK) != 0);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

START_TEST(test_mtp_greedy_equals_plain)
{
    /* §5.3 draft/verify must reproduce plain greedy decoding exactly for every draft length,
     * whether the drafts are the MTP block's own chain (random weights: mostly rejected),
     * forced to the true next tokens (always accepted: the bonus token and the longest runs)
     * or a mix (every accepted length). */
    glm_model *m = open_model("dev/dev-Q8_0.gguf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    glm_h5 *gold = NULL;
    ck_assert(glm_h5_open(&gold, tu_golden("dev/expect-dev-Q8_0.h5")) == GLM_OK);
    int T, n_g;
    int32_t *tokens = read_ids(gold, "prompt1/tokens", &T);
    int32_t *greedy = read_ids(gold, "prompt1/greedy", &n_g);
    check_greedy(m, b, tokens, T, greedy, n_g, "plain");
    check_greedy_device(m, b, tokens, T, greedy, n_g);
    const int lens[] = { 1, 2, 3, 4, GLM_MTP_MAX_DRAFT };
    for (int li = 0; li < 5; li++)
        for (int mode = TU_DRAFT_OWN; mode <= TU_DRAFT_MIXED; mode++)
            tu_mtp_check_greedy(m, b, tokens, T, greedy, n_g, lens[li], (tu_draft_mode)mode, "dev Q8_0");
    /* a draft length outside 1..GLM_MTP_MAX_DRAFT is refused with one line */
    glm_forward *f = NULL;
    ck_assert(glm_forward_create(&f, m, b, T + 4, T) == GLM_OK);
    glm_mtp_greedy g;
    ck_assert(glm_mtp_greedy_start_n(&g, f, tokens, T, NULL, 0, GLM_MTP_MAX_DRAFT + 1) == GLM_ERR_INVALID);
    ck_assert_msg(strstr(glm_last_error(), "draft length") != NULL, "%s", glm_last_error());
    glm_mtp_greedy_free(&g);
    ck_assert(glm_mtp_greedy_start_n(&g, f, tokens, T, NULL, 0, 0) == GLM_ERR_INVALID);
    glm_mtp_greedy_free(&g);
    /* near the end of the context the chain shortens: never a verify past it */
    glm_forward_destroy(f);
    ck_assert(glm_forward_create(&f, m, b, T + 5, T) == GLM_OK);
    ck_assert(glm_mtp_greedy_start_n(&g, f, tokens, T, m->eos_ids, m->n_eos, GLM_MTP_MAX_DRAFT) == GLM_OK);
    ck_assert_int_eq(g.n_chain, 4); /* verify rows at T .. T+4 */
    int32_t out[GLM_MTP_MAX_DRAFT + 1];
    int k;
    for (int i = 0; i < 4; i++)
        g.chain[i] = i < 3 ? greedy[1 + i] : (greedy[1 + i] + 1) % (int32_t)m->hp.vocab_size;
    g.draft = g.chain[0];
    ck_assert(glm_mtp_greedy_step(&g, out, &k) == GLM_OK);
    ck_assert_int_eq(k, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(out[i], greedy[1 + i]);
    ck_assert_int_eq(g.n_chain, 0);
    ck_assert_int_eq(glm_forward_n_past(f), T + 4);
    ck_assert_int_eq(glm_forward_mtp_n_past(f), T + 4);
    ck_assert(glm_mtp_greedy_step(&g, out, &k) == GLM_OK); /* a plain step fills the last position */
    ck_assert_int_eq(k, 1);
    ck_assert_int_eq(out[0], greedy[5]);
    ck_assert(glm_mtp_greedy_step(&g, out, &k) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "context") != NULL, "%s", glm_last_error());
    glm_mtp_greedy_free(&g);
    glm_forward_destroy(f);
    free(tokens), free(greedy);
    glm_h5_close(gold);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

/* The top-k 3 successors of prompt + ctx[0..n) and their sampler probabilities. */
static void successors(glm_forward *f, glm_sampler *smp, const int32_t *prompt, int T, const int32_t *ctx, int n,
                       int32_t ids[3], double p[3])
{
    const int64_t V = glm_forward_model(f)->hp.vocab_size;
    float *lg = malloc(sizeof(float) * V), *pr = malloc(sizeof(float) * V);
    int32_t hist[16];
    memcpy(hist, prompt, sizeof(int32_t) * T);
    memcpy(hist + T, ctx, sizeof(int32_t) * n);
    ck_assert(glm_forward_truncate(f, 0) == GLM_OK);
    ck_assert(glm_forward_eval(f, hist, T + n, lg, false, NULL, NULL) == GLM_OK);
    ck_assert(glm_sampler_probs(smp, pr, lg, hist, T + n) == GLM_OK);
    int c = 0;
    for (int64_t v = 0; v < V; v++)
        if (pr[v] > 0) {
            ck_assert_int_lt(c, 3);
            ids[c] = (int32_t)v;
            p[c++] = pr[v];
        }
    ck_assert_int_eq(c, 3);
    free(lg), free(pr);
}

static int index_of(const int32_t ids[3], int32_t t)
{
    for (int i = 0; i < 3; i++)
        if (ids[i] == t)
            return i;
    return -1;
}

/* q row ← uniform over ids[3]; returns a draw from it. */
static int32_t inject_q(float *q, int64_t V, const int32_t ids[3], glm_sampler *smp)
{
    for (int64_t v = 0; v < V; v++)
        q[v] = 0;
    for (int j = 0; j < 3; j++)
        q[ids[j]] = 1.0f / 3;
    return glm_sample_from_probs(glm_sampler_rng(smp), q, (int32_t)V);
}

START_TEST(test_mtp_sampled_distribution)
{
    /* §5.4: speculative sampling must leave the distribution of the output unchanged, for
     * every draft length. With top-k 3 the first three generated tokens take at most 27
     * values; their exact joint probability p(x1)·p(x2|x1)·p(x3|x1,x2) comes from plain
     * forwards, and seeded sampled-MTP runs with n_draft 1, 2 and 4 must each match it
     * (Pearson chi-square, cells expecting fewer than 5 pooled). Half the runs use the MTP
     * block's own chain q, half inject q_1 = uniform over x1's successors and q_2 = uniform
     * over (x1, d_1)'s (below), so accepted runs, rejections with residual draws and the
     * bonus token all occur (its own later drafts are rarely right: no bonus for n_draft 4). */
    glm_model *m = open_model("dev/dev-Q8_0.gguf");
    glm_backend *b = NULL;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    const int32_t prompt[6] = { 51, 267, 264, 77, 70, 320 };
    const int T = 6;
    const int64_t V = m->hp.vocab_size;
    glm_sampler_params sp = glm_sampler_params_default();
    sp.top_k = 3;
    glm_sampler *smp = NULL;
    ck_assert(glm_sampler_create(&smp, &sp, (int32_t)V) == GLM_OK);
    int32_t x1s[3], x2s[3][3], x3s[3][3][3];
    double p1[3], p2[3][3], p3[3][3][3], pj[27];
    glm_forward *f = NULL;
    ck_assert(glm_forward_create(&f, m, b, T + 2, T + 2) == GLM_OK);
    successors(f, smp, prompt, T, NULL, 0, x1s, p1);
    for (int i = 0; i < 3; i++) {
        successors(f, smp, prompt, T, &x1s[i], 1, x2s[i], p2[i]);
        for (int j = 0; j < 3; j++) {
            int32_t c[2] = { x1s[i], x2s[i][j] };
            successors(f, smp, prompt, T, c, 2, x3s[i][j], p3[i][j]);
            for (int l = 0; l < 3; l++)
                pj[(i * 3 + j) * 3 + l] = p1[i] * p2[i][j] * p3[i][j][l];
        }
    }
    glm_forward_destroy(f);
    const int lens[3] = { 1, 2, 4 }, N = 500;
    for (int li = 0; li < 3; li++) {
        const int k = lens[li];
        long cnt[27] = { 0 };
        long long acc = 0, drafts = 0, bonus = 0;
        for (int it = 0; it < N; it++) {
            sp.seed = (uint64_t)(it + li * N) * 7919u + 1;
            ck_assert(glm_sampler_reset(smp, &sp) == GLM_OK);
            ck_assert(glm_forward_create(&f, m, b, T + 8, T) == GLM_OK);
            glm_mtp_greedy g;
            ck_assert_msg(glm_mtp_sampled_start_n(&g, f, prompt, T, NULL, 0, smp, 4, k) == GLM_OK, "%s",
                          glm_last_error());
            int i1 = index_of(x1s, g.last);
            ck_assert_int_ge(i1, 0);
            if (it % 2) {
                /* exact speculative sampling holds for any q as long as each draft is drawn
                 * from the q it is checked against; these overlap p, so accepts happen */
                g.draft = g.chain[0] = inject_q(g.probs + (k + 1) * V, V, x2s[i1], smp);
                if (k > 1)
                    g.chain[1] = inject_q(g.probs + (k + 2) * V, V, x3s[i1][index_of(x2s[i1], g.chain[0])], smp);
            }
            int32_t got[16], out[GLM_MTP_MAX_DRAFT + 1];
            int n = 0, nk;
            while (n < 2) {
                ck_assert(glm_mtp_greedy_step(&g, out, &nk) == GLM_OK);
                bonus += nk == k + 1;
                for (int i = 0; i < nk; i++)
                    got[n++] = out[i];
            }
            int i2 = index_of(x2s[i1], got[0]);
            ck_assert_msg(i2 >= 0, "x2 = %d has probability 0", got[0]);
            int i3 = index_of(x3s[i1][i2], got[1]);
            ck_assert_msg(i3 >= 0, "x3 = %d has probability 0", got[1]);
            cnt[(i1 * 3 + i2) * 3 + i3]++;
            acc += g.accepted, drafts += g.drafts;
            glm_mtp_greedy_free(&g);
            glm_forward_destroy(f);
        }
        double want[27];
        for (int c = 0; c < 27; c++)
            want[c] = pj[c] * N;
        int dfi;
        const double chi2 = tu_chi2_pooled(cnt, want, 27, &dfi), df = dfi;
        const double bound = df + TOL_CHI2_SIGMAS * sqrt(2 * df);
        printf("mtp sampled n_draft %d: chi2 %.2f (df %.0f, bound %.1f), %lld of %lld drafts accepted, %lld "
               "all-accepted steps\n", k, chi2, df, bound, acc, drafts, bonus);
        fflush(stdout);
        ck_assert(chi2 < bound);
        ck_assert(acc > 0 && acc < drafts); /* accepts and rejections both ran */
        if (k <= 2) /* and the bonus draw (longer chains: the block's own later drafts) */
            ck_assert(bonus > 0);
    }
    glm_sampler_destroy(smp);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_golden_hf);
    tcase_add_test(tc, test_decode_equals_prefill);
    tcase_add_test(tc, test_mtp_rows_and_truncate);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_mtp_greedy_equals_plain);
    tcase_add_test(tc, test_mtp_sampled_distribution);
    tcase_add_loop_test(tc, test_expect_gguf, 0, (int)(sizeof k_ggufs / sizeof *k_ggufs));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
