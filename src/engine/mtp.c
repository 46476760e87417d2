/* The MTP (next-token prediction) block of model-spec §5.2, vLLM's convention:
 *   e = Embed(t), u = W_eh · [RMSNorm(e; enorm) | RMSNorm(h; hnorm)]   (embedding half first)
 *   r = DecoderBlock(u) at the position of h, over the MTP block's own latent cache
 *   logits = W_head · RMSNorm(r; shared_head.norm)
 * h is the main model's hidden state after the final norm (§5.2 "Which h"). The block's
 * own embed/head copies are used when the file has them (vLLM does), else the main ones.
 * vLLM zeroes e on rows at position 0; golden.h5's MTP rows (transformers-based) do not,
 * and we match them (test_forward: mtp/eh_out NMSE ~1e-12 including row 0).
 * Also here: the speculative draft/verify loop (forward.h glm_mtp_*: a chain of drafts, greedy
 * and sampled acceptance through ref/speculative.h).
 * Not here: the sampler's transforms (ref/sampler.c). */
#include "engine/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/sampler.h"
#include "ref/speculative.h"

/* The block on the embeddings in s.x and the hidden states in s.fnorm (rows 0..T-1): eh_proj
 * of their norms, the decoder block over the MTP cache (rows r), and shared_head.norm into
 * s.fnorm. */
static glm_status mtp_body(glm_forward *f, int T, const glm_kv_rows *r, glm_dump *d)
{
    const glm_model *m = f->m;
    const glm_layer *L = m->mtp;
    const glm_hparams *hp = &m->hp;
    const glm_backend_ops *o = f->b->ops;
    glm_backend *b = f->b;
    const int64_t D = hp->hidden_size;
    glm_dview x = glm_dview_rows(f->s.x, 0, T), h = glm_dview_rows(f->s.fnorm, 0, T);
    glm_dview cat = glm_dview_rows(f->s.cat, 0, T);
    GLM_TRY(o->rms_norm(b, glm_dview_cols(cat, 0, D), x, L->nextn_enorm, hp->rms_norm_eps));
    GLM_TRY(o->rms_norm(b, glm_dview_cols(cat, D, D), h, L->nextn_hnorm, hp->rms_norm_eps));
    GLM_TRY(o->matmul(b, x, cat, L->nextn_eh_proj, 0));
    if (d)
        GLM_TRY(glm_dump_view(d, b, "mtp/", "eh_out", x));
    GLM_TRY(glm_fwd_block(f, L, f->mtp_pool->layers[0], T, r, d, "mtp/", -1));
    return o->rms_norm(b, h, x, L->nextn_shared_head_norm, hp->rms_norm_eps);
}

/* hout: NULL or host [hidden] ← the last row's output state after shared_head.norm, for a
 * chained draft. */
static glm_status mtp_chunk(glm_forward *f, const float *hidden, const int32_t *next, int T, float *logits,
                            bool all_logits, float *hout, glm_dump *d)
{
    const glm_model *m = f->m;
    const glm_layer *L = m->mtp;
    const glm_backend_ops *o = f->b->ops;
    glm_backend *b = f->b;
    glm_seq *sq = f->cur;
    glm_step_item it = { .seq = sq, .tokens = next, .n = T };
    glm_kv_rows r;
    GLM_TRY(glm_fwd_rows(f, &it, 1, true, &r));
    glm_dview x = glm_dview_rows(f->s.x, 0, T), h = glm_dview_rows(f->s.fnorm, 0, T);
    GLM_TRY(o->get_rows(b, x, L->nextn_embed_tokens ? L->nextn_embed_tokens : m->token_embd, next));
    GLM_TRY(o->upload(b, h, hidden));
    GLM_TRY(mtp_body(f, T, &r, d));
    glm_dview fn = glm_dview_rows(f->s.fnorm, 0, T), lg = glm_dview_rows(f->s.logits, 0, T);
    if (hout)
        GLM_TRY(o->download(b, hout, glm_dview_rows(fn, T - 1, 1)));
    if (logits || d) {
        glm_dview src = (all_logits || d) ? fn : glm_dview_rows(fn, T - 1, 1);
        glm_dview dst = glm_dview_rows(lg, 0, src.rows);
        GLM_TRY(o->matmul(b, dst, src, L->nextn_shared_head_head ? L->nextn_shared_head_head : m->output, 0));
        if (d)
            GLM_TRY(glm_dump_view(d, b, "mtp/", "logits", dst));
        GLM_TRY(glm_fwd_logits_out(f, dst, logits, all_logits));
    }
    sq->mtp.n += T;
    return GLM_OK;
}

static glm_status mtp_rows(glm_forward *f, const float *hidden, const int32_t *next_tokens, int T, float *logits,
                           bool all_logits, float *hout, glm_dump *dump)
{
    if (!f->m->mtp || !f->mtp_pool)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: the model has no MTP layer", f->m->path);
    if (T <= 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: no rows to evaluate");
    if (f->cur->mtp.n + T > f->n_ctx)
        return glm_errorf(GLM_ERR_INVALID, "mtp: %lld + %d rows exceed the context of %lld",
                          (long long)f->cur->mtp.n, T, (long long)f->n_ctx);
    if (dump && T > f->n_batch)
        return glm_errorf(GLM_ERR_INVALID, "mtp: a dump needs all %d rows in one batch (n_batch %d)", T, f->n_batch);
    const int64_t V = f->m->hp.vocab_size, D = f->m->hp.hidden_size;
    GLM_TRY(glm_forward_check_ids(f, next_tokens, T));
    for (int done = 0; done < T;) {
        int n = T - done < f->n_batch ? T - done : f->n_batch;
        float *lg = NULL;
        if (logits && all_logits)
            lg = logits + (int64_t)done * V;
        else if (logits && done + n == T)
            lg = logits;
        bool end = done + n == T;
        GLM_TRY(mtp_chunk(f, hidden + (int64_t)done * D, next_tokens + done, n, lg, all_logits, end ? hout : NULL,
                          dump));
        done += n;
    }
    return GLM_OK;
}

glm_status glm_forward_mtp(glm_forward *f, const float *hidden, const int32_t *next_tokens, int T, float *logits,
                           bool all_logits, glm_dump *dump)
{
    return mtp_rows(f, hidden, next_tokens, T, logits, all_logits, NULL, dump);
}

bool glm_forward_has_mtp(const glm_forward *f) { return f->m->mtp != NULL; }
int64_t glm_forward_mtp_n_past(const glm_forward *f) { return glm_seq_mtp_n_past(f->cur); }
glm_status glm_forward_mtp_truncate(glm_forward *f, int64_t n)
{
    if (!f->mtp_pool)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "mtp: the model has no MTP layer");
    return glm_kvseq_truncate(&f->cur->mtp, n);
}

/* ---- draft/verify with a chain of n_draft drafts (§5.3 greedy, §5.4 sampled) ---- */

static void mask_row(const glm_mtp_greedy *g, float *row)
{
    const int64_t V = g->f->m->hp.vocab_size;
    for (int i = 0; i < g->n_mask; i++)
        if (g->mask[i] >= 0 && g->mask[i] < V)
            row[g->mask[i]] = -INFINITY;
}

/* Mask, then the sampler's distribution of one logits row (history = g->hist[0..n_hist)). */
static glm_status spec_probs(glm_mtp_greedy *g, float *probs, float *logits, int n_hist)
{
    mask_row(g, logits);
    return glm_sampler_probs(g->smp, probs, logits, g->hist, n_hist);
}

/* chain[i] from the MTP logits row: argmax (greedy) or a draw from q_i, kept in its probs row
 * (sampled; history: the final tokens, then chain[0..i)). */
static glm_status pick_draft(glm_mtp_greedy *g, int i)
{
    const int64_t V = g->f->m->hp.vocab_size;
    float *row = g->logits + (int64_t)(g->n_draft + 1) * V;
    if (!g->smp) {
        mask_row(g, row);
        g->chain[i] = (int32_t)glm_ref_argmax(row, V);
        return GLM_OK;
    }
    float *q = g->probs + (int64_t)(g->n_draft + 1 + i) * V;
    GLM_TRY(spec_probs(g, q, row, g->n_hist + i));
    g->chain[i] = glm_sample_from_probs(glm_sampler_rng(g->smp), q, (int32_t)V);
    if (g->chain[i] < 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: the draft distribution has no mass");
    g->hist[g->n_hist + i] = g->chain[i];
    return GLM_OK;
}

/* On the bound sequence, after the MTP rows of the newly final positions (the last row's
 * logits in the MTP logits row, its output state in hchain): draft the chain, as long as the
 * next verify fits the context and one step's rows (and, sampled, the history), then drop
 * the chain's MTP rows again. */
static glm_status draft_chain(glm_mtp_greedy *g)
{
    glm_forward *f = g->f;
    const int64_t V = f->m->hp.vocab_size, pos = glm_forward_n_past(f);
    int64_t room = glm_forward_n_ctx(f) - pos - 1;
    if (glm_forward_max_rows(f) - 1 < room)
        room = glm_forward_max_rows(f) - 1;
    if (g->smp && g->hist_cap - g->n_hist - 1 < room)
        room = g->hist_cap - g->n_hist - 1;
    g->n_chain = room < g->n_draft ? (room > 0 ? (int)room : 0) : g->n_draft;
    for (int i = 0; i < g->n_chain; i++) {
        if (i > 0) /* one MTP row: its own previous output state with the previous draft */
            GLM_TRY(mtp_rows(f, g->hchain, &g->chain[i - 1], 1, g->logits + (int64_t)(g->n_draft + 1) * V, false,
                             i + 1 < g->n_chain ? g->hchain : NULL, NULL));
        GLM_TRY(pick_draft(g, i));
    }
    g->draft = g->n_chain > 0 ? g->chain[0] : -1;
    return glm_forward_mtp_truncate(f, pos);
}

/* MTP rows (hidden[j], toks[j]) for j < n (the newly final positions), then the chain. */
static glm_status mtp_then_draft(glm_mtp_greedy *g, const int32_t *toks, int n)
{
    const int64_t V = g->f->m->hp.vocab_size;
    GLM_TRY(mtp_rows(g->f, g->hidden, toks, n, g->logits + (int64_t)(g->n_draft + 1) * V, false,
                     g->n_draft > 1 ? g->hchain : NULL, NULL));
    return draft_chain(g);
}

/* Buffers shared by the greedy and sampled loops. */
static glm_status spec_alloc(glm_mtp_greedy *g, glm_forward *f, int n, const int32_t *mask, int n_mask, int n_draft)
{
    memset(g, 0, sizeof *g);
    if (!f->m->mtp)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: speculative decoding needs an MTP layer (this model has none)",
                          f->m->path);
    if (n <= 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: empty prompt");
    if (n_draft < 1 || n_draft > GLM_MTP_MAX_DRAFT)
        return glm_errorf(GLM_ERR_INVALID, "mtp: draft length %d outside 1..%d", n_draft, GLM_MTP_MAX_DRAFT);
    const int64_t V = f->m->hp.vocab_size, D = f->m->hp.hidden_size;
    g->f = f, g->mask = mask, g->n_mask = n_mask, g->n_draft = n_draft;
    const char *fz = getenv("GLM_MTP_FUSED");
    g->fused_off = fz && strcmp(fz, "0") == 0;
    int rows = n > n_draft + 1 ? n : n_draft + 1;
    g->logits = malloc(sizeof(float) * (size_t)((n_draft + 2) * V));
    g->hidden = malloc(sizeof(float) * (size_t)(rows * D));
    g->hchain = malloc(sizeof(float) * (size_t)D);
    g->next = malloc(sizeof(int32_t) * (size_t)n);
    if (!g->logits || !g->hidden || !g->hchain || !g->next)
        return glm_errorf(GLM_ERR_NOMEM, "mtp: out of memory for a %d-token prompt", n);
    return GLM_OK;
}

/* Step 1 of §5.3 after the prefill logits are in logits row 0 and g->last is chosen: the MTP
 * rows (h_j, x_{j+1}) of the prompt, the last pairing with g->last, then the chain. */
static glm_status start_drafts(glm_mtp_greedy *g, const int32_t *prompt, int n)
{
    for (int j = 0; j + 1 < n; j++)
        g->next[j] = prompt[j + 1];
    g->next[n - 1] = g->last;
    return mtp_then_draft(g, g->next, n);
}

glm_status glm_mtp_greedy_start_n(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                  const int32_t *mask, int n_mask, int n_draft)
{
    GLM_TRY(spec_alloc(g, f, n, mask, n_mask, n_draft));
    const int64_t V = f->m->hp.vocab_size;
    GLM_TRY(glm_forward_eval(f, prompt, n, g->logits, false, g->hidden, NULL));
    mask_row(g, g->logits);
    g->last = (int32_t)glm_ref_argmax(g->logits, V);
    return start_drafts(g, prompt, n);
}

glm_status glm_mtp_greedy_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n, const int32_t *mask,
                                int n_mask)
{
    return glm_mtp_greedy_start_n(g, f, prompt, n, mask, n_mask, 1);
}

glm_status glm_mtp_sampled_start_n(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                   const int32_t *mask, int n_mask, glm_sampler *smp, int max_new, int n_draft)
{
    GLM_TRY(spec_alloc(g, f, n, mask, n_mask, n_draft));
    const int64_t V = f->m->hp.vocab_size;
    g->smp = smp;
    g->hist_cap = n + (max_new > 0 ? max_new : 0) + n_draft + 4;
    g->probs = malloc(sizeof(float) * (size_t)((2 * n_draft + 1) * V));
    g->hist = malloc(sizeof(int32_t) * (size_t)g->hist_cap);
    if (!g->probs || !g->hist)
        return glm_errorf(GLM_ERR_NOMEM, "mtp: out of memory");
    memcpy(g->hist, prompt, sizeof(int32_t) * (size_t)n);
    g->n_hist = n;
    /* as the greedy start, with x_n drawn from p and the drafts drawn from their q */
    GLM_TRY(glm_forward_eval(f, prompt, n, g->logits, false, g->hidden, NULL));
    GLM_TRY(spec_probs(g, g->probs, g->logits, g->n_hist));
    g->last = glm_sample_from_probs(glm_sampler_rng(smp), g->probs, (int32_t)V);
    if (g->last < 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: the target distribution has no mass");
    g->hist[g->n_hist++] = g->last;
    return start_drafts(g, prompt, n);
}

glm_status glm_mtp_sampled_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                 const int32_t *mask, int n_mask, glm_sampler *smp, int max_new)
{
    return glm_mtp_sampled_start_n(g, f, prompt, n, mask, n_mask, smp, max_new, 1);
}

glm_status glm_mtp_verify_item(glm_mtp_greedy *g, glm_seq *s, glm_step_item *it)
{
    const int k = g->n_chain;
    g->pos = glm_seq_n_past(s);
    if (glm_seq_mtp_n_past(s) != g->pos)
        return glm_errorf(GLM_ERR_INVALID, "mtp: caches out of step (main %lld, mtp %lld)", (long long)g->pos,
                          (long long)glm_seq_mtp_n_past(s));
    if (g->smp && g->n_hist + k + 1 > g->hist_cap)
        return glm_errorf(GLM_ERR_INVALID, "mtp: more tokens than the %d announced at start", g->hist_cap);
    /* step 2: the main model on [last, d_1 .. d_k] */
    if (k > 0)
        g->chain[0] = g->draft;
    g->in[0] = g->last;
    memcpy(g->in + 1, g->chain, sizeof(int32_t) * (size_t)k);
    *it = (glm_step_item){ .seq = s, .tokens = g->in, .n = k + 1, .logits = g->logits, .all_logits = true,
                           .hidden = g->hidden };
    return GLM_OK;
}

/* Steps 3-4 on the bound sequence: acceptance, the caches cut back, MTP rows, the next chain. */
static glm_status after_verify(glm_mtp_greedy *g, int32_t *out, int *n_out)
{
    glm_forward *f = g->f;
    const int64_t V = f->m->hp.vocab_size;
    const int k = g->n_chain;
    int32_t n;
    /* the longest agreeing prefix (greedy) or the §5.4 rule (sampled); target row r sees the
     * final tokens and d_1 .. d_r */
    if (!g->smp) {
        for (int r = 0; r <= k; r++)
            mask_row(g, g->logits + (int64_t)r * V);
        GLM_TRY(glm_spec_accept_greedy(out, &n, g->logits, g->chain, k, (int32_t)V));
    } else {
        memcpy(g->hist + g->n_hist, g->chain, sizeof(int32_t) * (size_t)k);
        for (int r = 0; r <= k; r++)
            GLM_TRY(spec_probs(g, g->probs + (int64_t)r * V, g->logits + (int64_t)r * V, g->n_hist + r));
        GLM_TRY(glm_spec_accept_sampled(out, &n, glm_sampler_rng(g->smp), g->probs,
                                        g->probs + (int64_t)(g->n_draft + 1) * V, g->chain, k, (int32_t)V));
        memcpy(g->hist + g->n_hist, out, sizeof(int32_t) * (size_t)n);
        g->n_hist += n;
    }
    g->steps++;
    g->drafts += k;
    g->accepted += n - 1;
    /* rejected drafts' cache rows go: the cache keeps last and the accepted drafts */
    if (n - 1 < k)
        GLM_TRY(glm_forward_truncate(f, g->pos + n));
    g->last = out[n - 1];
    *n_out = n;
    return mtp_then_draft(g, out, n);
}

glm_status glm_mtp_after_verify(glm_mtp_greedy *g, glm_seq *s, int32_t *out, int *n_out)
{
    glm_forward *f = g->f;
    glm_seq *was = glm_forward_bound(f);
    glm_forward_bind(f, s);
    glm_status st = after_verify(g, out, n_out);
    glm_forward_bind(f, was == &f->own ? NULL : was);
    return st;
}

/* ---- greedy steps whose token ids stay on the device: one wait a step ---- */

/* Greedy, one draft a step, few masked ids, and a backend with device argmax and device-id
 * lookups (GLM_MTP_FUSED=0 at start, or fused_off, keeps the step of two waits). */
static bool fused_ok(const glm_mtp_greedy *g)
{
    const glm_backend_ops *o = g->f->b->ops;
    return !g->fused_off && !g->smp && g->n_draft == 1 && g->n_chain == 1 && g->n_mask <= GLM_ARGMAX_MASK &&
           o->argmax_rows && o->get_rows_dev;
}

/* One step of glm_mtp_greedy_step recorded whole, with one wait at its end: the verify rows
 * [last, d] through the main model, lm_head and the masked argmax of both rows (t_0, t_1) on
 * the device; then the MTP block on both rows, fed the verify's final-normed states (left in
 * s.fnorm) and the tokens t_0, t_1 (device ids), and the masked argmax of its lm_head (m_0,
 * m_1). The host then takes t_0, and t_1 too when t_0 = d; the MTP row at a position holds
 * the final token after it exactly when that row is kept (row 0 always: t_0 is final; row 1
 * when d was accepted, t_1 then final), so cutting both caches back to the kept rows leaves
 * the same state as the step of two waits, and the next draft is m of the last kept row. */
static glm_status fused_step(glm_mtp_greedy *g, int32_t *out, int *n_out)
{
    glm_forward *f = g->f;
    const glm_model *m = f->m;
    const glm_layer *L = m->mtp;
    const glm_backend_ops *o = f->b->ops;
    glm_backend *b = f->b;
    glm_seq *s = f->cur;
    const int T = 2;
    g->pos = glm_seq_n_past(s);
    if (glm_seq_mtp_n_past(s) != g->pos)
        return glm_errorf(GLM_ERR_INVALID, "mtp: caches out of step (main %lld, mtp %lld)", (long long)g->pos,
                          (long long)glm_seq_mtp_n_past(s));
    if (!g->dev_t.buf) {
        GLM_TRY(o->alloc_host(b, &g->dev_t, GLM_DT_I32, T, 1));
        GLM_TRY(o->alloc_host(b, &g->dev_m, GLM_DT_I32, T, 1));
    }
    g->chain[0] = g->draft;
    g->in[0] = g->last;
    g->in[1] = g->draft;
    /* the MTP rows' step rows first: uploading them later would wait for the recorded verify */
    glm_step_item mit = { .seq = s, .tokens = g->in, .n = T };
    glm_kv_rows mr;
    GLM_TRY(glm_fwd_rows(f, &mit, 1, true, &mr));
    glm_step_item it = { .seq = s, .tokens = g->in, .n = T };
    glm_status st = glm_forward_step(f, &it, 1);
    if (st != GLM_OK) {
        glm_kvseq_truncate(&s->mtp, s->mtp.n);
        return st;
    }
    glm_dview fn = glm_dview_rows(f->s.fnorm, 0, T), lg = glm_dview_rows(f->s.logits, 0, T);
    int32_t runs = T;
    int64_t end = s->mtp.n + T;
    if ((st = o->matmul(b, lg, fn, m->output, 0)) == GLM_OK)
        st = o->argmax_rows(b, g->dev_t, lg, g->mask, g->n_mask);
    if (st == GLM_OK)
        st = o->get_rows_dev(b, glm_dview_rows(f->s.x, 0, T), L->nextn_embed_tokens ? L->nextn_embed_tokens : m->token_embd,
                             g->dev_t);
    if (st == GLM_OK)
        st = glm_fwd_set_runs(f, &runs, &end, 1);
    if (st == GLM_OK)
        st = mtp_body(f, T, &mr, NULL);
    if (st == GLM_OK)
        st = o->matmul(b, lg, fn, L->nextn_shared_head_head ? L->nextn_shared_head_head : m->output, 0);
    if (st == GLM_OK)
        st = o->argmax_rows(b, g->dev_m, lg, g->mask, g->n_mask);
    glm_status cl = glm_fwd_set_runs(f, NULL, NULL, 0);
    int32_t t[2], dm[2];
    if (st == GLM_OK)
        st = cl;
    if (st == GLM_OK) /* the step's one wait */
        st = o->download(b, t, g->dev_t);
    if (st == GLM_OK)
        st = o->download(b, dm, g->dev_m);
    if (st != GLM_OK) { /* as if the step never ran */
        glm_forward_truncate(f, g->pos);
        glm_kvseq_truncate(&s->mtp, s->mtp.n);
        return st;
    }
    s->mtp.n += T;
    int n = t[0] == g->draft ? 2 : 1;
    out[0] = t[0];
    out[1] = t[1];
    g->steps++;
    g->drafts += 1;
    g->accepted += n - 1;
    if (n < 2)
        GLM_TRY(glm_forward_truncate(f, g->pos + n));
    GLM_TRY(glm_forward_mtp_truncate(f, g->pos + n));
    g->last = out[n - 1];
    *n_out = n;
    /* the next step's chain, as draft_chain bounds it */
    int64_t pos = glm_forward_n_past(f), room = glm_forward_n_ctx(f) - pos - 1;
    if (glm_forward_max_rows(f) - 1 < room)
        room = glm_forward_max_rows(f) - 1;
    g->n_chain = room > 0 ? 1 : 0;
    g->draft = g->chain[0] = g->n_chain ? dm[n - 1] : -1;
    return GLM_OK;
}

glm_status glm_mtp_greedy_step(glm_mtp_greedy *g, int32_t *out, int *n_out)
{
    if (fused_ok(g))
        return fused_step(g, out, n_out);
    glm_seq *s = glm_forward_bound(g->f);
    glm_step_item it;
    GLM_TRY(glm_mtp_verify_item(g, s, &it));
    GLM_TRY(glm_forward_step(g->f, &it, 1));
    return glm_mtp_after_verify(g, s, out, n_out);
}

void glm_mtp_greedy_free(glm_mtp_greedy *g)
{
    if (g->f && g->dev_t.buf)
        g->f->b->ops->free(g->f->b, g->dev_t.buf);
    if (g->f && g->dev_m.buf)
        g->f->b->ops->free(g->f->b, g->dev_m.buf);
    g->dev_t.buf = g->dev_m.buf = NULL;
    free(g->logits), free(g->hidden), free(g->hchain), free(g->next), free(g->probs), free(g->hist);
    g->logits = g->hidden = g->hchain = g->probs = NULL;
    g->next = g->hist = NULL;
}

void glm_mtp_summary(char *buf, size_t cap, long long drafts, long long accepted, long long steps)
{
    snprintf(buf, cap, "; mtp accepted %lld of %lld drafts (%.1f%%), %.2f tokens per forward", accepted, drafts,
             drafts ? 100.0 * (double)accepted / (double)drafts : 0.0,
             steps ? (double)(steps + accepted) / (double)steps : 0.0);
}
