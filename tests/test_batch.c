/* The paged KV cache and continuous batching: page allocation, release, exhaustion, shared
 * prefixes with copy-on-write; the reference backend's paged attention equals contiguous
 * attention exactly; a sequence's greedy tokens are identical alone or batched with other
 * sequences that join and leave mid-way (reference and Vulkan backends; one prompt is long
 * enough to split its keys on Vulkan), including a
 * sequence that feeds 2 rows per step (an MTP verify) and MTP draft/verify decoding batched with
 * a plain sequence; a decode row and verify rows beside a long prompt chunk give bit-identical
 * logits (the rows of short items never take the kernels for many rows); the context bound. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/vk/parity.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "model/model.h"
#include "ref/dequant.h"
#include "ref/ops.h"
#include "tolerances.h"
#include "util/testutil.h"

#define DEV_MODEL "dev/dev-Q8_0.gguf"

static glm_model *open_model(void)
{
    glm_model *m = NULL;
    ck_assert_msg(glm_model_open(&m, tu_golden(DEV_MODEL)) == GLM_OK, "%s", glm_last_error());
    return m;
}

/* Pool row r of layer l, downloaded. */
static void pool_row(glm_kvpool *p, int l, int64_t r, float *out)
{
    ck_assert(p->b->ops->download(p->b, out, glm_dview_rows(p->layers[l], r, 1)) == GLM_OK);
}

START_TEST(test_pages)
{
    glm_model *m = open_model();
    glm_backend *b;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    tu_rng r = { tu_seed("pages") };
    const int P = 4, W = 5; /* rank 3 + rope 2 */
    glm_kvpool *p;
    ck_assert(glm_kvpool_create(&p, b, 2, 5, P, 3, 2) == GLM_OK);
    float *data = malloc(sizeof(float) * 5 * P * W);
    for (int l = 0; l < 2; l++) { /* random rows everywhere */
        tu_fill_uniform(&r, data, (size_t)5 * P * W, -1, 1);
        ck_assert(b->ops->upload(b, p->layers[l], data) == GLM_OK);
    }
    glm_kvseq a, c;
    ck_assert(glm_kvseq_init(&a, p, 20) == GLM_OK);
    ck_assert(glm_kvseq_init(&c, p, 12) == GLM_OK);
    /* allocation in whole pages, nothing more */
    ck_assert(glm_kvseq_reserve(&a, 9) == GLM_OK);
    ck_assert_int_eq(a.n_held, 3);
    ck_assert_int_eq(glm_kvpool_pages_used(p), 3);
    a.n = 9;
    /* exhaustion: a one-line error, the other sequence keeps what it held */
    ck_assert(glm_kvseq_reserve(&c, 12) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "exhausted") != NULL, "%s", glm_last_error());
    ck_assert_int_eq(c.n_held, 0);
    ck_assert_int_eq(glm_kvpool_pages_used(p), 3);
    /* the context bound of a sequence */
    ck_assert(glm_kvseq_reserve(&c, 13) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "context") != NULL, "%s", glm_last_error());
    /* sharing 6 positions: the full page is shared, the partial one copied */
    ck_assert(glm_kvseq_share_prefix(&c, &a, 6) == GLM_OK);
    ck_assert_int_eq(c.n, 6);
    ck_assert_int_eq(c.pages[0], a.pages[0]);
    ck_assert_int_ne(c.pages[1], a.pages[1]);
    ck_assert_int_eq(p->refs[a.pages[0]], 2);
    ck_assert_int_eq(glm_kvpool_pages_used(p), 4);
    float x[8], y[8];
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 6; i++) {
            pool_row(p, l, (int64_t)a.pages[i / P] * P + i % P, x);
            pool_row(p, l, (int64_t)c.pages[i / P] * P + i % P, y);
            ck_assert_msg(memcmp(x, y, W * 4) == 0, "shared prefix row %d of layer %d differs", i, l);
        }
    /* truncating into a shared page copies it first: a's rows stay as they were */
    glm_kvseq d;
    ck_assert(glm_kvseq_init(&d, p, 20) == GLM_OK);
    ck_assert(glm_kvseq_truncate(&a, 8) == GLM_OK);
    ck_assert_int_eq(a.n_held, 2);
    ck_assert_int_eq(glm_kvpool_pages_used(p), 3);
    ck_assert(glm_kvseq_share_prefix(&d, &a, 8) == GLM_OK); /* both pages shared */
    ck_assert_int_eq(glm_kvpool_pages_used(p), 3);
    int32_t shared = a.pages[1];
    ck_assert(glm_kvseq_truncate(&d, 5) == GLM_OK);
    ck_assert_int_ne(d.pages[1], shared);
    ck_assert_int_eq(p->refs[shared], 1);
    pool_row(p, 1, (int64_t)shared * P, x);
    pool_row(p, 1, (int64_t)d.pages[1] * P, y);
    ck_assert(memcmp(x, y, W * 4) == 0);
    /* bad truncation */
    ck_assert(glm_kvseq_truncate(&d, 6) != GLM_OK);
    /* everything goes back */
    glm_kvseq_release(&a);
    glm_kvseq_release(&c);
    glm_kvseq_release(&d);
    ck_assert_int_eq(glm_kvpool_pages_used(p), 0);
    for (int64_t i = 0; i < p->n_pages; i++)
        ck_assert_int_eq(p->refs[i], 0);
    glm_kvpool_destroy(p);
    free(data);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

/* The reference backend's paged op (rows of two sequences, shuffled pages) equals the
 * contiguous ref/ kernels bit for bit, in both forms. */
START_TEST(test_ref_paged_attention)
{
    glm_model *m = open_model();
    glm_backend *b;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    const glm_layer *L = &m->layers[0];
    const glm_hparams *hp = &m->hp;
    const int H = hp->num_attention_heads, dn = hp->qk_nope_head_dim, dr = hp->qk_rope_head_dim;
    const int dv = hp->v_head_dim, R = hp->kv_lora_rank, W = R + dr, P = 4;
    tu_rng r = { tu_seed("ref_paged_attention") };
    for (int mode = GLM_MLA_NAIVE; mode <= GLM_MLA_ABSORBED; mode++) {
        const uint32_t pos0 = 9, TA = 5, posB = 21, T = TA + 1, nA = pos0 + TA, nB = posB + 1;
        const uint32_t npA = (nA + P - 1) / P + 1, npB = (nB + P - 1) / P + 1;
        float *q = malloc(sizeof(float) * T * H * (dn + dr)), *cA = malloc(sizeof(float) * nA * R);
        float *kA = malloc(sizeof(float) * nA * dr), *cB = malloc(sizeof(float) * nB * R);
        float *kB = malloc(sizeof(float) * nB * dr), *pool = malloc(sizeof(float) * (npA + npB) * P * W);
        int32_t *meta = malloc(sizeof(int32_t) * (2 * T + npA + npB));
        tu_fill_uniform(&r, q, (size_t)T * H * (dn + dr), -1, 1);
        tu_fill_uniform(&r, cA, (size_t)nA * R, -1, 1);
        tu_fill_uniform(&r, kA, (size_t)nA * dr, -1, 1);
        tu_fill_uniform(&r, cB, (size_t)nB * R, -1, 1);
        tu_fill_uniform(&r, kB, (size_t)nB * dr, -1, 1);
        glm_parity_two_seq_cache(pool, meta, cA, kA, nA, TA, cB, kB, nB, R, dr, P, &r.s);
        glm_dview dq, dpool, dmeta, dout;
        ck_assert(b->ops->alloc(b, &dq, GLM_DT_F32, T, H * (dn + dr)) == GLM_OK);
        ck_assert(b->ops->alloc(b, &dpool, GLM_DT_F32, (npA + npB) * P, W) == GLM_OK);
        ck_assert(b->ops->alloc(b, &dmeta, GLM_DT_I32, 1, 2 * T + npA + npB) == GLM_OK);
        ck_assert(b->ops->alloc(b, &dout, GLM_DT_F32, T, H * dv) == GLM_OK);
        ck_assert(b->ops->upload(b, dq, q) == GLM_OK);
        ck_assert(b->ops->upload(b, dpool, pool) == GLM_OK);
        ck_assert(b->ops->upload(b, dmeta, meta) == GLM_OK);
        float *got = malloc(sizeof(float) * T * H * dv);
        tu_poison(got, (size_t)T * H * dv);
        ck_assert(b->ops->upload(b, dout, got) == GLM_OK);
        glm_dview m1 = glm_dview_cols(dmeta, 0, 1);
        m1.rows = T, m1.ld = 1;
        glm_kv_rows rows = { .pos = m1, .ptab = m1, .pages = glm_dview_cols(dmeta, 2 * T, npA + npB),
                             .page_size = P, .max_len = nB };
        rows.ptab.off += T;
        glm_mla_shape sh = { .T = (int)T, .n_heads = H, .qk_nope = dn, .qk_rope = dr, .v_head = dv, .kv_lora = R };
        ck_assert_msg(b->ops->mla_attention(b, dout, dq, glm_dview_cols(dpool, 0, R), glm_dview_cols(dpool, R, dr),
                                            L->attn_k_b, L->attn_v_b, &sh, &rows, (glm_mla_mode)mode) == GLM_OK,
                      "%s", glm_last_error());
        ck_assert(b->ops->download(b, got, dout) == GLM_OK);
        ck_assert(tu_all_written(got, (size_t)T * H * dv));
        /* contiguous reference with the same dequantized weights */
        float *wk = malloc(sizeof(float) * H * R * dn), *wv = malloc(sizeof(float) * H * dv * R);
        float *want = malloc(sizeof(float) * T * H * dv);
        for (int h = 0; h < H; h++) {
            for (int k = 0; k < R; k++)
                glm_ref_dequant_row(wk + ((size_t)h * R + k) * dn, glm_tensor_row(L->attn_k_b, h, k), L->attn_k_b->type, dn);
            for (int d = 0; d < dv; d++)
                glm_ref_dequant_row(wv + ((size_t)h * dv + d) * R, glm_tensor_row(L->attn_v_b, h, d), L->attn_v_b->type, R);
        }
        glm_mla_shape sA = sh, sB = sh;
        sA.T = (int)TA, sA.pos0 = (int)pos0, sB.T = 1, sB.pos0 = (int)posB;
        float *scr = malloc(sizeof(float) * glm_ref_mla_scratch_floats(&sB) * 2);
        void (*fn)(float *, const float *, const float *, const float *, const float *, const float *,
                   const glm_mla_shape *, float *) = mode == GLM_MLA_NAIVE ? glm_ref_mla_naive : glm_ref_mla_absorbed;
        fn(want, q, cA, kA, wk, wv, &sA, scr);
        fn(want + (size_t)TA * H * dv, q + (size_t)TA * H * (dn + dr), cB, kB, wk, wv, &sB, scr);
        ck_assert_msg(memcmp(want, got, sizeof(float) * T * H * dv) == 0, "paged attention (mode %d) differs", mode);
        for (glm_dview *v = (glm_dview[]){ dq, dpool, dmeta, dout }, *e = v + 4; v < e; v++)
            b->ops->free(b, v->buf);
        free(q), free(cA), free(kA), free(cB), free(kB), free(pool), free(meta), free(got), free(wk), free(wv);
        free(want), free(scr);
    }
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

#define N_SEQ 4
#define MAX_GEN 12

/* Greedy next token (ties to the lower index). */
static int32_t pick(const float *lg, int64_t V) { return (int32_t)glm_ref_argmax(lg, V); }

/* Sequence i alone: prompt, then n_gen greedy tokens, one decode step each. */
static void alone(const glm_model *m, glm_backend *b, const int32_t *prompt, int n, int n_gen, int32_t *out)
{
    glm_forward *f;
    ck_assert(glm_forward_create(&f, m, b, n + n_gen + 2, 96) == GLM_OK);
    const int64_t V = m->hp.vocab_size;
    float *lg = malloc(sizeof(float) * V);
    ck_assert_msg(glm_forward_eval(f, prompt, n, lg, false, NULL, NULL) == GLM_OK, "%s", glm_last_error());
    for (int i = 0; i < n_gen; i++) {
        out[i] = pick(lg, V);
        ck_assert(glm_forward_eval(f, &out[i], 1, lg, false, NULL, NULL) == GLM_OK);
    }
    free(lg);
    glm_forward_destroy(f);
}

/* Four sequences of different lengths join at different steps and leave when done; the last
 * one feeds 2 known tokens per step (an MTP verify pair) and checks both rows' predictions. */
static void batched_identity(const char *backend)
{
    glm_model *m = open_model();
    glm_backend *b;
    glm_status st = glm_backend_create(&b, backend, m);
    ck_assert_msg(st == GLM_OK, "%s: %s", backend, glm_last_error());
    const int64_t V = m->hp.vocab_size;
    tu_rng r = { tu_seed("batched_identity") };
    static const int plen[N_SEQ] = { 5, 13, 3, 70 }, ngen[N_SEQ] = { 12, 5, 9, 10 }, join[N_SEQ] = { 0, 0, 3, 2 };
    int32_t prompt[N_SEQ][72], ref[N_SEQ][MAX_GEN + 2], got[N_SEQ][MAX_GEN + 2];
    for (int s = 0; s < N_SEQ; s++) {
        for (int i = 0; i < plen[s]; i++)
            prompt[s][i] = (int32_t)(tu_next(&r) % (uint64_t)V);
        alone(m, b, prompt[s], plen[s], ngen[s] + 1, ref[s]);
    }
    glm_forward *f;
    ck_assert(glm_forward_create_pool(&f, m, b, 96, 96, 4 * 96) == GLM_OK);
    glm_seq *seq[N_SEQ] = { 0 };
    int done[N_SEQ] = { 0 }; /* tokens produced */
    bool live[N_SEQ] = { 0 }, fin[N_SEQ] = { 0 };
    float *lg = malloc(sizeof(float) * V * (N_SEQ + 1) * 2);
    int32_t feed[N_SEQ][2];
    for (int step = 0; step < 64; step++) {
        glm_step_item it[N_SEQ];
        int idx[N_SEQ], n = 0;
        for (int s = 0; s < N_SEQ; s++) {
            if (fin[s] || step < join[s])
                continue;
            glm_step_item x = { .logits = lg + (size_t)n * 2 * V };
            if (!live[s]) { /* joins: its whole prompt in this step */
                ck_assert(glm_seq_create(f, &seq[s]) == GLM_OK);
                live[s] = true;
                x.tokens = prompt[s], x.n = plen[s];
            } else if (s == 3) { /* two rows: the last token and the next one (a draft) */
                feed[s][0] = got[s][done[s] - 1], feed[s][1] = ref[s][done[s]];
                x.tokens = feed[s], x.n = 2, x.all_logits = true;
            } else {
                feed[s][0] = got[s][done[s] - 1];
                x.tokens = feed[s], x.n = 1;
            }
            x.seq = seq[s];
            idx[n] = s;
            it[n++] = x;
        }
        if (!n)
            break;
        ck_assert_msg(glm_forward_step(f, it, n) == GLM_OK, "%s", glm_last_error());
        for (int k = 0; k < n; k++) {
            int s = idx[k];
            const float *l = it[k].logits;
            if (it[k].n == 2) { /* the draft row predicts the token after it */
                got[s][done[s]] = ref[s][done[s]];
                ck_assert_msg(pick(l, V) == ref[s][done[s]], "seq %d: verify row 0 at token %d", s, done[s]);
                done[s]++;
                got[s][done[s]++] = pick(l + V, V);
            } else {
                got[s][done[s]++] = pick(l, V);
            }
            if (done[s] >= ngen[s]) { /* leaves */
                glm_seq_destroy(seq[s]);
                seq[s] = NULL;
                fin[s] = true;
            }
        }
    }
    for (int s = 0; s < N_SEQ; s++) {
        ck_assert_msg(fin[s], "seq %d never finished", s);
        for (int i = 0; i < ngen[s]; i++)
            ck_assert_msg(got[s][i] == ref[s][i], "%s: seq %d token %d: batched %d, alone %d", backend, s, i,
                          got[s][i], ref[s][i]);
    }
    ck_assert_int_eq(glm_forward_pages_used(f), 0);
    printf("%s: %d sequences, batched greedy identical to alone\n", backend, N_SEQ);
    free(lg);
    glm_forward_destroy(f);
    glm_backend_destroy(b);
    glm_model_close(m);
}

START_TEST(test_batched_equals_alone_ref) { batched_identity("ref"); }
END_TEST

START_TEST(test_batched_equals_alone_vulkan) { batched_identity("vulkan"); }
END_TEST

/* MTP draft/verify of one sequence with its 2 verify rows in the same steps as another
 * sequence's plain decoding: both give their alone greedy tokens. */
static void mtp_batched(const char *backend)
{
    glm_model *m = open_model();
    ck_assert(m->mtp != NULL);
    glm_backend *b;
    ck_assert_msg(glm_backend_create(&b, backend, m) == GLM_OK, "%s: %s", backend, glm_last_error());
    const int64_t V = m->hp.vocab_size;
    tu_rng r = { tu_seed("mtp_batched") };
    enum { NA = 9, NB = 6, GEN = 14 };
    int32_t pa[NA], pb[NB], ra[GEN + 2], rb[GEN + 2], ga[GEN + 2], gb[GEN + 2];
    for (int i = 0; i < NA; i++)
        pa[i] = (int32_t)(tu_next(&r) % (uint64_t)V);
    for (int i = 0; i < NB; i++)
        pb[i] = (int32_t)(tu_next(&r) % (uint64_t)V);
    alone(m, b, pa, NA, GEN + 1, ra);
    alone(m, b, pb, NB, GEN + 1, rb);
    glm_forward *f;
    ck_assert(glm_forward_create_pool(&f, m, b, 64, 64, 4 * 64) == GLM_OK);
    glm_seq *sa, *sb;
    ck_assert(glm_seq_create(f, &sa) == GLM_OK);
    ck_assert(glm_seq_create(f, &sb) == GLM_OK);
    glm_mtp_greedy g;
    glm_forward_bind(f, sa);
    ck_assert_msg(glm_mtp_greedy_start(&g, f, pa, NA, NULL, 0) == GLM_OK, "%s", glm_last_error());
    glm_forward_bind(f, NULL);
    float *lg = malloc(sizeof(float) * V);
    glm_step_item bi = { .seq = sb, .tokens = pb, .n = NB, .logits = lg };
    ck_assert(glm_forward_step(f, &bi, 1) == GLM_OK);
    int na = 0, nb = 0;
    ga[na++] = g.last;
    gb[nb++] = pick(lg, V);
    for (int k = 0; na < GEN || nb < GEN; k++) {
        glm_step_item it[2];
        int ni = 0;
        if (na < GEN) {
            if (k % 2 == 0) /* every other step drafts the right token: the accept path runs too */
                g.draft = ra[na];
            ck_assert(glm_mtp_verify_item(&g, sa, &it[ni++]) == GLM_OK);
        }
        if (nb < GEN)
            it[ni++] = (glm_step_item){ .seq = sb, .tokens = &gb[nb - 1], .n = 1, .logits = lg };
        ck_assert_msg(glm_forward_step(f, it, ni) == GLM_OK, "%s", glm_last_error());
        if (na < GEN) {
            int32_t out[2];
            int n = 0;
            ck_assert_msg(glm_mtp_after_verify(&g, sa, out, &n) == GLM_OK, "%s", glm_last_error());
            for (int i = 0; i < n; i++)
                ga[na++] = out[i];
        }
        if (it[ni - 1].seq == sb)
            gb[nb++] = pick(lg, V);
    }
    for (int i = 0; i < GEN; i++) {
        ck_assert_msg(ga[i] == ra[i], "%s: mtp seq token %d: batched %d, alone %d", backend, i, ga[i], ra[i]);
        ck_assert_msg(gb[i] == rb[i], "%s: plain seq token %d: batched %d, alone %d", backend, i, gb[i], rb[i]);
    }
    ck_assert(g.accepted >= 1 && g.accepted < g.drafts);
    printf("%s: MTP verify rows batched with another sequence: greedy identical (%lld of %lld drafts accepted)\n",
           backend, g.accepted, g.drafts);
    glm_mtp_greedy_free(&g);
    glm_seq_destroy(sa);
    glm_seq_destroy(sb);
    free(lg);
    glm_forward_destroy(f);
    glm_backend_destroy(b);
    glm_model_close(m);
}

START_TEST(test_mtp_batched_ref) { mtp_batched("ref"); }
END_TEST

START_TEST(test_mtp_batched_vulkan) { mtp_batched("vulkan"); }
END_TEST

/* One step of items on fresh sequences of f (each first gets its own prefix alone, when it
 * has one): the logits of each item land in its own buffer. */
typedef struct bit_item {
    const int32_t *prefix, *tokens;
    int n_prefix, n;
    float *logits;
} bit_item;

static void bit_step(glm_forward *f, bit_item *x, int n_items)
{
    glm_seq *sq[3];
    glm_step_item it[3];
    for (int i = 0; i < n_items; i++) {
        ck_assert(glm_seq_create(f, &sq[i]) == GLM_OK);
        if (x[i].n_prefix) {
            glm_step_item p = { .seq = sq[i], .tokens = x[i].prefix, .n = x[i].n_prefix };
            ck_assert_msg(glm_forward_step(f, &p, 1) == GLM_OK, "%s", glm_last_error());
        }
        it[i] = (glm_step_item){ .seq = sq[i], .tokens = x[i].tokens, .n = x[i].n, .logits = x[i].logits,
                                 .all_logits = x[i].n <= 3 };
    }
    ck_assert_msg(glm_forward_step(f, it, n_items) == GLM_OK, "%s", glm_last_error());
    for (int i = 0; i < n_items; i++)
        glm_seq_destroy(sq[i]);
}

/* The identity rule bit for bit: a decode row (1 row after a 5-token prompt) and an MTP-like
 * verify item (3 rows after another prompt) stepped together with a 40-row prompt chunk give
 * the same logits, every bit, as each of them stepped alone, and so does the chunk's last row.
 * A backend with kernels for many rows (Vulkan: tiled) must keep the short items' rows on the
 * row-by-row kernels; without the item runs (set_runs removed) the decode row takes the tiled
 * kernel with the chunk and its logits differ, which shows that the comparison can fail.
 * Checked with the norms and residual adds folded into the products (the default) and
 * without (glm_forward_set_folds 0): the folded ops keep to the item runs as well. */
static void prefill_beside(const char *backend)
{
    glm_model *m = open_model();
    glm_backend *b;
    ck_assert_msg(glm_backend_create(&b, backend, m) == GLM_OK, "%s: %s", backend, glm_last_error());
    const int64_t V = m->hp.vocab_size;
    tu_rng r = { tu_seed("prefill_beside") };
    enum { NP = 5, NC = 40 };
    int32_t pa[NP], pc[NP], chunk[NC], da[1], dc[3];
    int32_t *all[5] = { pa, pc, chunk, da, dc };
    const int len[5] = { NP, NP, NC, 1, 3 };
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < len[k]; i++)
            all[k][i] = (int32_t)(tu_next(&r) % (uint64_t)V);
    float *lg = malloc(sizeof(float) * (size_t)V * 15); /* 3 items × (1 + 3 + 1) rows: alone, batched, no runs */
    float *alone_l = lg, *batch_l = lg + 5 * V, *loose_l = lg + 10 * V;
    glm_forward *f;
    ck_assert(glm_forward_create_pool(&f, m, b, 64, 64, 4 * 64) == GLM_OK);
    static const unsigned fold_choices[2] = { GLM_FOLD_ATTN | GLM_FOLD_FFN, 0 };
    for (int fi = 0; fi < 2; fi++) {
        unsigned fold = fold_choices[fi];
        glm_forward_set_folds(f, fold);
        tu_poison(lg, (size_t)V * 15);
        /* alone: each item in a step of its own */
        bit_item a = { pa, da, NP, 1, alone_l }, c = { pc, dc, NP, 3, alone_l + V },
                 ch = { NULL, chunk, 0, NC, alone_l + 4 * V };
        bit_step(f, &a, 1);
        bit_step(f, &c, 1);
        bit_step(f, &ch, 1);
        /* together, the long chunk given first */
        bit_item tog[3] = { { NULL, chunk, 0, NC, batch_l + 4 * V },
                            { pa, da, NP, 1, batch_l },
                            { pc, dc, NP, 3, batch_l + V } };
        bit_step(f, tog, 3);
        ck_assert_msg(tu_all_written(alone_l, (size_t)V * 5) && tu_all_written(batch_l, (size_t)V * 5),
                      "%s fold %u: logits not all written", backend, fold);
        ck_assert_msg(!memcmp(alone_l, batch_l, sizeof(float) * V),
                      "%s fold %u: the decode row's logits changed beside a prompt", backend, fold);
        ck_assert_msg(!memcmp(alone_l + V, batch_l + V, sizeof(float) * 3 * V),
                      "%s fold %u: the verify rows' logits changed beside a prompt", backend, fold);
        ck_assert_msg(!memcmp(alone_l + 4 * V, batch_l + 4 * V, sizeof(float) * V),
                      "%s fold %u: the prompt chunk's logits changed beside short items", backend, fold);
        if (b->ops->set_runs && fi == 0) {
            glm_backend_ops loose = *b->ops;
            const glm_backend_ops *own = b->ops;
            loose.set_runs = NULL;
            b->ops = &loose;
            for (int i = 0; i < 3; i++)
                tog[i].logits = loose_l + (tog[i].logits - batch_l);
            bit_step(f, tog, 3);
            b->ops = own;
            ck_assert_msg(memcmp(alone_l, loose_l, sizeof(float) * V) != 0,
                          "%s: without item runs the decode row still gave its alone logits: the check cannot fail",
                          backend);
        }
    }
    printf("%s: a decode row and 3 verify rows beside a %d-row prompt chunk: logits bit-identical to alone\n", backend,
           NC);
    ck_assert_int_eq(glm_forward_pages_used(f), 0);
    free(lg);
    glm_forward_destroy(f);
    glm_backend_destroy(b);
    glm_model_close(m);
}

START_TEST(test_prefill_beside_ref) { prefill_beside("ref"); }
END_TEST

START_TEST(test_prefill_beside_vulkan) { prefill_beside("vulkan"); }
END_TEST

/* A step that cannot get its pages fails whole: no sequence changes. */
START_TEST(test_step_pool_exhausted)
{
    glm_model *m = open_model();
    glm_backend *b;
    ck_assert(glm_backend_create(&b, "ref", m) == GLM_OK);
    glm_forward *f;
    ck_assert(glm_forward_create_pool(&f, m, b, 48, 64, 3 * GLM_KV_PAGE) == GLM_OK);
    ck_assert_int_eq(glm_forward_pages_total(f), 3);
    glm_seq *a, *c;
    ck_assert(glm_seq_create(f, &a) == GLM_OK);
    ck_assert(glm_seq_create(f, &c) == GLM_OK);
    int32_t tok[40] = { 0 };
    for (int i = 0; i < 40; i++)
        tok[i] = i + 1;
    glm_step_item it[2] = { { .seq = a, .tokens = tok, .n = 20 }, { .seq = c, .tokens = tok, .n = 20 } };
    ck_assert(glm_forward_step(f, it, 2) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "exhausted") != NULL, "%s", glm_last_error());
    ck_assert_int_eq(glm_seq_n_past(a), 0);
    ck_assert_int_eq(glm_forward_pages_used(f), 0);
    ck_assert(glm_forward_step(f, it, 1) == GLM_OK);
    ck_assert_int_eq(glm_seq_n_past(a), 20);
    ck_assert_int_eq(glm_forward_pages_used(f), 2);
    /* a sequence twice in one step, or past its context */
    glm_step_item twice[2] = { { .seq = c, .tokens = tok, .n = 1 }, { .seq = c, .tokens = tok, .n = 1 } };
    ck_assert(glm_forward_step(f, twice, 2) != GLM_OK);
    glm_step_item longer = { .seq = a, .tokens = tok, .n = 40 };
    ck_assert(glm_forward_step(f, &longer, 1) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "context") != NULL, "%s", glm_last_error());
    glm_seq_destroy(a);
    glm_seq_destroy(c);
    ck_assert_int_eq(glm_forward_pages_used(f), 0);
    glm_forward_destroy(f);
    glm_backend_destroy(b);
    glm_model_close(m);
}
END_TEST

START_TEST(test_context_bound)
{
    glm_model *m = open_model();
    int64_t max = m->hp.max_position_embeddings;
    ck_assert(max > 0);
    ck_assert(glm_forward_check_ctx(m, max) == GLM_OK);
    ck_assert(glm_forward_check_ctx(m, max + 1) != GLM_OK);
    ck_assert_msg(strstr(glm_last_error(), "context length") != NULL, "%s", glm_last_error());
    ck_assert(glm_forward_check_ctx(m, 0) != GLM_OK);
    glm_model_close(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_pages);
    tcase_add_test(tc, test_ref_paged_attention);
    tcase_add_test(tc, test_step_pool_exhausted);
    tcase_add_test(tc, test_context_bound);
    tcase_add_test(tc, test_batched_equals_alone_ref);
    tcase_add_test(tc, test_batched_equals_alone_vulkan);
    tcase_add_test(tc, test_mtp_batched_ref);
    tcase_add_test(tc, test_mtp_batched_vulkan);
    tcase_add_test(tc, test_prefill_beside_ref);
    tcase_add_test(tc, test_prefill_beside_vulkan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
