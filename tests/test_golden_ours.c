/* The engine against transformers on the project's own tiny models (golden/ours/<name>/,
 * made by golden/gen/make_golden.py): "odd" (odd sizes, n_group 4 / topk_group 2 routing,
 * routed_scaling_factor 2.5) and "wide" (n_group 1, two dense layers, norm_topk_prob false,
 * two shared experts, rope theta 5e5, rms eps 1e-6). For the reference backend and the Vulkan
 * backend (lavapipe in CI): every tensor of golden.h5 per prompt (each layer's
 * intermediates, router logits, top-k ids exactly, top-k weights, final norm, logits, the
 * MTP block's rows and its layer tensors) and the 24-token greedy continuation with the
 * end-of-generation ids masked (FIXTURES.md), plain and (prompt0) with MTP chains of 1..4
 * drafts. Also: on "odd" the group limit really decides
 * some routes, so the files exercise it. Tolerances: tests/tolerances.h. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/vk/backend_vk.h"
#include "backend/vk/vk.h"
#include "engine/forward.h"
#include "model/model.h"
#include "ref/ops.h"
#include "tokenizer/bpe.h"
#include "tolerances.h"
#include "util/h5.h"
#include "util/mtp_check.h"
#include "util/testutil.h"

#define N_PROMPTS 4
#define N_GREEDY 24

static const char *k_dirs[] = { "ours/odd", "ours/wide" };
#define N_DIRS (int)(sizeof k_dirs / sizeof *k_dirs)

static const char *k_layer_f32[] = { "attn_norm", "q_a", "kv_latent", "attn_out", "ffn_norm",
                                     "router_logits", "topk_weights", "ffn_out", "out" };
#define N_LAYER_F32 (int)(sizeof k_layer_f32 / sizeof *k_layer_f32)

typedef struct tol {
    double layer, logits;
} tol;

typedef struct worst {
    double layer, logits, mtp;
} worst;

static void golden_path(char *buf, size_t n, const char *dir, const char *file)
{
    snprintf(buf, n, "%s/%s", tu_golden(dir), file);
}

/* Element count of a dataset, checking that golden and dump have the same shape. */
static size_t same_shape(const char *what, const int64_t *de, int ne, const int64_t *dg, int ng)
{
    ck_assert_msg(ne == ng, "%s: rank %d, golden %d", what, ng, ne);
    size_t n = 1;
    for (int i = 0; i < ne; i++) {
        ck_assert_msg(de[i] == dg[i], "%s: dim %d is %lld, golden %lld", what, i, (long long)dg[i], (long long)de[i]);
        n *= (size_t)de[i];
    }
    return n;
}

/* NMSE of dump dataset `name` against golden `gpath`; -1 when the golden file lacks it. */
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
    size_t n = same_shape(gpath, de, ne, dg, ng);
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
    ck_assert_msg(glm_h5_read_i32(gold, gpath, &e, de, &ne) == GLM_OK, "%s: %s", gpath, glm_last_error());
    ck_assert_msg(glm_h5_read_i32(got, name, &g, dg, &ng) == GLM_OK, "dump %s: %s", name, glm_last_error());
    size_t n = same_shape(gpath, de, ne, dg, ng);
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

/* Greedy continuation, one decode step per token, the model's end-of-generation ids masked
 * to -inf before the argmax (FIXTURES.md: the golden continuations never stop early). */
static void check_greedy(const glm_model *m, glm_backend *b, const int32_t *tokens, int T, const int32_t *expect,
                         int n_gen, const char *what)
{
    glm_forward *f = NULL;
    ck_assert_msg(glm_forward_create(&f, m, b, T + n_gen, T) == GLM_OK, "%s", glm_last_error());
    const int64_t V = m->hp.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)V);
    tu_poison(lg, (size_t)V);
    ck_assert_msg(glm_forward_eval(f, tokens, T, lg, false, NULL, NULL) == GLM_OK, "%s", glm_last_error());
    ck_assert_msg(tu_all_written(lg, (size_t)V), "%s: logits not all written", what);
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

/* The layer tensors of one block: golden "<grp>/<prefix><name>", dump "<prefix><name>". */
static void check_block(glm_h5 *gold, glm_h5 *got, const char *grp, const char *prefix, bool moe, tol t, double *w)
{
    char p[160], q[160];
    for (int i = 0; i < N_LAYER_F32; i++) {
        bool routed = !strcmp(k_layer_f32[i], "router_logits") || !strcmp(k_layer_f32[i], "topk_weights");
        if (routed && !moe)
            continue;
        snprintf(p, sizeof p, "%s/%s%s", grp, prefix, k_layer_f32[i]);
        snprintf(q, sizeof q, "%s%s", prefix, k_layer_f32[i]);
        *w = fmax(*w, compare_f32(gold, p, got, q, t.layer, true));
    }
    snprintf(p, sizeof p, "%s/%stopk_ids", grp, prefix);
    snprintf(q, sizeof q, "%stopk_ids", prefix);
    if (moe)
        compare_i32(gold, p, got, q);
}

static void check_prompt(const glm_model *m, glm_backend *b, glm_h5 *gold, const char *grp, tol t, worst *w,
                         const char *what)
{
    char p[160], q[160], path[160];
    snprintf(p, sizeof p, "%s/tokens", grp);
    int T;
    int32_t *tokens = read_ids(gold, p, &T);
    snprintf(path, sizeof path, "/tmp/glm47-test-ours-%d-%s.h5", (int)getpid(), grp);
    ck_assert_msg(glm_dump_eval(m, b, tokens, T, path, GLM_MLA_AUTO) == GLM_OK, "%s", glm_last_error());
    glm_h5 *got = NULL;
    ck_assert(glm_h5_open(&got, path) == GLM_OK);
    compare_i32(gold, p, got, "tokens");
    for (int l = 0; l < m->hp.num_hidden_layers; l++) {
        snprintf(q, sizeof q, "layer.%02d/", l);
        check_block(gold, got, grp, q, m->layers[l].is_moe, t, &w->layer);
    }
    snprintf(p, sizeof p, "%s/final_norm", grp);
    w->layer = fmax(w->layer, compare_f32(gold, p, got, "final_norm", t.layer, true));
    snprintf(p, sizeof p, "%s/logits", grp);
    w->logits = fmax(w->logits, compare_f32(gold, p, got, "logits", t.logits, true));
    ck_assert_msg(m->mtp != NULL, "%s: no MTP layer", what);
    snprintf(p, sizeof p, "%s/mtp/next_tokens", grp);
    compare_i32(gold, p, got, "mtp/next_tokens");
    check_block(gold, got, grp, "mtp/", true, t, &w->mtp);
    const char *mt[] = { "eh_out", "out", "logits" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/mtp/%s", grp, mt[i]);
        snprintf(q, sizeof q, "mtp/%s", mt[i]);
        w->mtp = fmax(w->mtp, compare_f32(gold, p, got, q, i == 2 ? t.logits : t.layer, true));
    }
    glm_h5_close(got);
    remove(path);
    snprintf(p, sizeof p, "%s/greedy", grp);
    int n_g;
    int32_t *greedy = read_ids(gold, p, &n_g);
    ck_assert_int_eq(n_g, N_GREEDY);
    check_greedy(m, b, tokens, T, greedy, N_GREEDY, what);
    if (!strcmp(grp, "prompt0")) {
        /* MTP speculative decoding gives the same continuation for every draft length (all
         * draft modes on ref, a subset on lavapipe; see test_vk_model) */
        bool vk = strstr(what, "vulkan") != NULL;
        for (int k = 1; k <= 4; k++)
            for (int mode = TU_DRAFT_OWN; mode <= TU_DRAFT_MIXED; mode++)
                if (!vk || (k == 2 && mode == TU_DRAFT_MIXED) || (k == 4 && mode == TU_DRAFT_ORACLE))
                    tu_mtp_check_greedy(m, b, tokens, T, greedy, N_GREEDY, k, (tu_draft_mode)mode, what);
    }
    free(greedy);
    free(tokens);
}

START_TEST(test_ours)
{
    const char *dir = k_dirs[_i / 2];
    const bool vk = _i % 2 == 1;
    glm_model *m = NULL;
    ck_assert_msg(glm_model_open(&m, tu_golden(dir)) == GLM_OK, "%s: %s", dir, glm_last_error());
    glm_backend *b = NULL;
    if (vk)
        ck_assert_msg(glm_backend_vk_create(&b, m, -1, true) == GLM_OK, "%s", glm_last_error());
    else
        ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    char gp[256];
    golden_path(gp, sizeof gp, dir, "golden.h5");
    glm_h5 *gold = NULL;
    ck_assert_msg(glm_h5_open(&gold, gp) == GLM_OK, "%s", glm_last_error());
    /* ref: transformers' float32 to rounding; Vulkan: the whole-model bound vs golden */
    double vt = vk && glm_vk_coopmat_enabled(glm_backend_vk_context(b)) ? TOL_VK_MODEL_LOGITS_CM_NMSE
                                                                          : TOL_VK_MODEL_LOGITS_NMSE;
    tol t = vk ? (tol){ vt, vt }
               : (tol){ TOL_GOLDEN_LAYER_NMSE, TOL_GOLDEN_LOGITS_NMSE };
    worst w = { 0, 0, 0 };
    for (int i = 0; i < N_PROMPTS; i++) {
        char grp[32], what[96];
        snprintf(grp, sizeof grp, "prompt%d", i);
        snprintf(what, sizeof what, "%s %s %s", dir, vk ? "vulkan" : "ref", grp);
        check_prompt(m, b, gold, grp, t, &w, what);
    }
    printf("%s %s: worst NMSE layers %.3g logits %.3g mtp %.3g; top-k ids and greedy identical\n", dir,
           vk ? "vulkan" : "ref", w.layer, w.logits, w.mtp);
    glm_h5_close(gold);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

/* Rows of one MoE layer's golden router logits whose top-k changes when the group limit is
 * dropped (n_group 1), after checking that the reference router reproduces the golden ids
 * and weights from the golden logits alone. */
static int group_limited_rows(const glm_model *m, const glm_layer *L, glm_h5 *gold, const char *gprefix)
{
    char p[160];
    float *z = NULL, *gw = NULL;
    int32_t *gid = NULL;
    int64_t d[4], dk[4];
    int nd;
    snprintf(p, sizeof p, "%srouter_logits", gprefix);
    ck_assert_msg(glm_h5_read_f32(gold, p, &z, d, &nd) == GLM_OK, "%s", glm_last_error());
    snprintf(p, sizeof p, "%stopk_ids", gprefix);
    ck_assert_msg(glm_h5_read_i32(gold, p, &gid, dk, &nd) == GLM_OK, "%s", glm_last_error());
    snprintf(p, sizeof p, "%stopk_weights", gprefix);
    ck_assert_msg(glm_h5_read_f32(gold, p, &gw, dk, &nd) == GLM_OK, "%s", glm_last_error());
    const glm_hparams *hp = &m->hp;
    const int E = hp->n_routed_experts, k = hp->num_experts_per_tok;
    ck_assert_int_eq(d[1], E);
    ck_assert_int_eq(dk[1], k);
    ck_assert_int_eq(L->exp_probs_b->type, GLM_TYPE_F32);
    const float *bias = (const float *)glm_tensor_row(L->exp_probs_b, 0, 0);
    glm_route_params rp = { E, k, hp->n_group, hp->topk_group, true, hp->norm_topk_prob, hp->routed_scaling_factor };
    glm_route_params flat = rp;
    flat.n_group = flat.topk_group = 1;
    int changed = 0;
    for (int64_t r = 0; r < d[0]; r++) {
        int32_t ids[64], ids1[64];
        float wt[64], wt1[64], scratch[2 * 64];
        ck_assert(glm_ref_moe_route(ids, wt, z + r * E, bias, &rp, scratch));
        ck_assert(glm_ref_moe_route(ids1, wt1, z + r * E, bias, &flat, scratch));
        for (int j = 0; j < k; j++) {
            ck_assert_msg(ids[j] == gid[r * k + j], "%s row %lld: id %d, golden %d", gprefix, (long long)r, ids[j],
                          gid[r * k + j]);
            ck_assert_msg(fabsf(wt[j] - gw[r * k + j]) <= 1e-5f * fabsf(gw[r * k + j]) + 1e-7f,
                          "%s row %lld: weight %g, golden %g", gprefix, (long long)r, wt[j], gw[r * k + j]);
        }
        changed += memcmp(ids, ids1, sizeof(int32_t) * (size_t)k) != 0;
    }
    free(z), free(gid), free(gw);
    return changed;
}

START_TEST(test_group_limit_exercised)
{
    /* The point of "odd": with n_group 4 / topk_group 2 the group limit must decide some
     * routes, or the files would not test it. The router alone (ref/moe.c) on the golden
     * logits must reproduce the golden ids. */
    glm_model *m = NULL;
    ck_assert_msg(glm_model_open(&m, tu_golden("ours/odd")) == GLM_OK, "%s", glm_last_error());
    ck_assert_int_eq(m->hp.n_group, 4);
    ck_assert_int_eq(m->hp.topk_group, 2);
    ck_assert_msg(m->hp.n_routed_experts <= 64, "test scratch holds 64 experts");
    char gp[256];
    golden_path(gp, sizeof gp, "ours/odd", "golden.h5");
    glm_h5 *gold = NULL;
    ck_assert_msg(glm_h5_open(&gold, gp) == GLM_OK, "%s", glm_last_error());
    int changed = 0, rows = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        char pre[64];
        for (int l = 0; l <= m->hp.num_hidden_layers; l++) {
            const glm_layer *L = l < m->hp.num_hidden_layers ? &m->layers[l] : m->mtp;
            if (!L->is_moe)
                continue;
            if (l < m->hp.num_hidden_layers)
                snprintf(pre, sizeof pre, "prompt%d/layer.%02d/", i, l);
            else
                snprintf(pre, sizeof pre, "prompt%d/mtp/", i);
            changed += group_limited_rows(m, L, gold, pre);
            rows++;
        }
    }
    printf("ours/odd: group limit changed the top-k of %d rows (%d layer-prompts)\n", changed, rows);
    ck_assert_int_gt(changed, 0);
    glm_h5_close(gold);
    glm_model_close(m);
}
END_TEST

START_TEST(test_prompt_tokens)
{
    /* the text prompts' ids came from HF tokenizers with the copied tokenizer.json: the
     * engine's tokenizer, opened from the model dir, must give the same ids */
    const char *dir = k_dirs[_i];
    glm_tokenizer *tk = NULL;
    ck_assert_msg(glm_tokenizer_open(&tk, tu_golden(dir)) == GLM_OK, "%s", glm_last_error());
    char gp[256];
    golden_path(gp, sizeof gp, dir, "golden.h5");
    glm_h5 *gold = NULL;
    ck_assert_msg(glm_h5_open(&gold, gp) == GLM_OK, "%s", glm_last_error());
    int n_text = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        char grp[32], p[64];
        snprintf(grp, sizeof grp, "prompt%d", i);
        char *text = NULL;
        size_t len = 0;
        if (glm_h5_read_attr_str(gold, grp, "utf8", &text, &len) != GLM_OK)
            continue; /* the random-id prompt has no text */
        snprintf(p, sizeof p, "%s/tokens", grp);
        int T;
        int32_t *want = read_ids(gold, p, &T), *got = NULL;
        size_t n = 0;
        ck_assert_msg(glm_tokenizer_encode(tk, text, len, 0, &got, &n) == GLM_OK, "%s", glm_last_error());
        ck_assert_msg((int)n == T, "%s %s: %zu ids, HF %d", dir, grp, n, T);
        for (int j = 0; j < T; j++)
            ck_assert_msg(got[j] == want[j], "%s %s: id %d is %d, HF %d", dir, grp, j, got[j], want[j]);
        free(text), free(want), free(got);
        n_text++;
    }
    ck_assert_int_eq(n_text, 3);
    glm_h5_close(gold);
    glm_tokenizer_destroy(tk);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("golden_ours");
    TCase *tc = tcase_create("ours");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_ours, 0, 2 * N_DIRS);
    tcase_add_test(tc, test_group_limit_exercised);
    tcase_add_loop_test(tc, test_prompt_tokens, 0, N_DIRS);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
