/* The MTP (next-token prediction) block of model-spec §5.2, vLLM's convention:
 *   e = Embed(t), u = W_eh · [RMSNorm(e; enorm) | RMSNorm(h; hnorm)]   (embedding half first)
 *   r = DecoderBlock(u) at the position of h, over the MTP block's own latent cache
 *   logits = W_head · RMSNorm(r; shared_head.norm)
 * h is the main model's hidden state after the final norm (§5.2 "Which h"). The block's
 * own embed/head copies are used when the file has them (vLLM does), else the main ones.
 * vLLM zeroes e on rows at position 0; golden.h5's MTP rows (transformers-based) do not,
 * and we match them (test_forward: mtp/eh_out NMSE ~1e-12 including row 0).
 * Not here: the draft/verify loop (cli/cmd_run.c), sampling. */
#include "engine/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/sampler.h"
#include "ref/speculative.h"

static glm_status mtp_chunk(glm_forward *f, const float *hidden, const int32_t *next, int T, float *logits,
                            bool all_logits, glm_dump *d)
{
    const glm_model *m = f->m;
    const glm_layer *L = m->mtp;
    const glm_hparams *hp = &m->hp;
    const glm_backend_ops *o = f->b->ops;
    glm_backend *b = f->b;
    const int64_t D = hp->hidden_size;
    glm_seq *sq = f->cur;
    glm_step_item it = { .seq = sq, .tokens = next, .n = T };
    glm_kv_rows r;
    GLM_TRY(glm_fwd_rows(f, &it, 1, true, &r));
    glm_dview x = glm_dview_rows(f->s.x, 0, T), h = glm_dview_rows(f->s.fnorm, 0, T);
    glm_dview cat = glm_dview_rows(f->s.cat, 0, T);
    GLM_TRY(o->get_rows(b, x, L->nextn_embed_tokens ? L->nextn_embed_tokens : m->token_embd, next));
    GLM_TRY(o->upload(b, h, hidden));
    GLM_TRY(o->rms_norm(b, glm_dview_cols(cat, 0, D), x, L->nextn_enorm, hp->rms_norm_eps));
    GLM_TRY(o->rms_norm(b, glm_dview_cols(cat, D, D), h, L->nextn_hnorm, hp->rms_norm_eps));
    GLM_TRY(o->matmul(b, x, cat, L->nextn_eh_proj, 0));
    if (d)
        GLM_TRY(glm_dump_view(d, b, "mtp/", "eh_out", x));
    GLM_TRY(glm_fwd_block(f, L, f->mtp_pool->layers[0], T, &r, d, "mtp/", -1));
    glm_dview fn = glm_dview_rows(f->s.fnorm, 0, T), lg = glm_dview_rows(f->s.logits, 0, T);
    GLM_TRY(o->rms_norm(b, fn, x, L->nextn_shared_head_norm, hp->rms_norm_eps));
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

glm_status glm_forward_mtp(glm_forward *f, const float *hidden, const int32_t *next_tokens, int T, float *logits,
                           bool all_logits, glm_dump *dump)
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
        GLM_TRY(mtp_chunk(f, hidden + (int64_t)done * D, next_tokens + done, n, lg, all_logits, dump));
        done += n;
    }
    return GLM_OK;
}

bool glm_forward_has_mtp(const glm_forward *f) { return f->m->mtp != NULL; }
int64_t glm_forward_mtp_n_past(const glm_forward *f) { return glm_seq_mtp_n_past(f->cur); }
glm_status glm_forward_mtp_truncate(glm_forward *f, int64_t n)
{
    if (!f->mtp_pool)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "mtp: the model has no MTP layer");
    return glm_kvseq_truncate(&f->cur->mtp, n);
}

/* ---- greedy draft/verify (§5.3) ---- */


static int32_t masked_argmax(const glm_mtp_greedy *g, float *row)
{
    const int64_t V = g->f->m->hp.vocab_size;
    for (int i = 0; i < g->n_mask; i++)
        if (g->mask[i] >= 0 && g->mask[i] < V)
            row[g->mask[i]] = -INFINITY;
    return (int32_t)glm_ref_argmax(row, V);
}

/* Buffers shared by the greedy and sampled loops. */
static glm_status spec_alloc(glm_mtp_greedy *g, glm_forward *f, int n, const int32_t *mask, int n_mask)
{
    memset(g, 0, sizeof *g);
    if (!f->m->mtp)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: speculative decoding needs an MTP layer (this model has none)",
                          f->m->path);
    if (n <= 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: empty prompt");
    const int64_t V = f->m->hp.vocab_size, D = f->m->hp.hidden_size;
    g->f = f, g->mask = mask, g->n_mask = n_mask;
    g->logits = malloc(sizeof(float) * (size_t)(3 * V));
    g->hidden = malloc(sizeof(float) * (size_t)((n > 2 ? n : 2) * D));
    g->next = malloc(sizeof(int32_t) * (size_t)n);
    if (!g->logits || !g->hidden || !g->next)
        return glm_errorf(GLM_ERR_NOMEM, "mtp: out of memory for a %d-token prompt", n);
    return GLM_OK;
}

glm_status glm_mtp_greedy_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n, const int32_t *mask,
                                int n_mask)
{
    GLM_TRY(spec_alloc(g, f, n, mask, n_mask));
    const int64_t V = f->m->hp.vocab_size;
    /* step 1: prefill, x_n, then MTP rows (h_j, x_{j+1}) for j < n; the last drafts */
    GLM_TRY(glm_forward_eval(f, prompt, n, g->logits, false, g->hidden, NULL));
    g->last = masked_argmax(g, g->logits);
    for (int j = 0; j + 1 < n; j++)
        g->next[j] = prompt[j + 1];
    g->next[n - 1] = g->last;
    GLM_TRY(glm_forward_mtp(f, g->hidden, g->next, n, g->logits + 2 * V, false, NULL));
    g->draft = masked_argmax(g, g->logits + 2 * V);
    return GLM_OK;
}

glm_status glm_mtp_verify_item(glm_mtp_greedy *g, glm_seq *s, glm_step_item *it)
{
    g->pos = glm_seq_n_past(s);
    if (glm_seq_mtp_n_past(s) != g->pos)
        return glm_errorf(GLM_ERR_INVALID, "mtp: caches out of step (main %lld, mtp %lld)", (long long)g->pos,
                          (long long)glm_seq_mtp_n_past(s));
    if (g->smp && g->n_hist + 2 > g->hist_cap)
        return glm_errorf(GLM_ERR_INVALID, "mtp: more tokens than the %d announced at start", g->hist_cap);
    /* step 2: main model on [last, draft] */
    g->in[0] = g->last, g->in[1] = g->draft;
    *it = (glm_step_item){ .seq = s, .tokens = g->in, .n = 2, .logits = g->logits, .all_logits = true,
                           .hidden = g->hidden };
    return GLM_OK;
}

/* glm_forward_mtp on sequence s (bound for the call). */
static glm_status mtp_rows(glm_mtp_greedy *g, glm_seq *s, const int32_t *next, int n)
{
    glm_forward *f = g->f;
    glm_seq *was = glm_forward_bound(f);
    glm_forward_bind(f, s);
    glm_status st = glm_forward_mtp(f, g->hidden, next, n, g->logits + 2 * f->m->hp.vocab_size, false, NULL);
    glm_forward_bind(f, was == &f->own ? NULL : was);
    return st;
}

static glm_status greedy_after(glm_mtp_greedy *g, glm_seq *s, int32_t out[2], int *n_out)
{
    const int64_t V = g->f->m->hp.vocab_size;
    int32_t n;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < g->n_mask; i++)
            if (g->mask[i] >= 0 && g->mask[i] < V)
                g->logits[r * V + g->mask[i]] = -INFINITY;
    /* step 3: greedy acceptance; a rejected draft's cache row is dropped */
    GLM_TRY(glm_spec_accept_greedy(out, &n, g->logits, &g->draft, 1, (int32_t)V));
    g->drafts++;
    if (n == 2)
        g->accepted++;
    else
        GLM_TRY(glm_seq_truncate(s, g->pos + 1));
    /* step 4: MTP rows for the newly final positions; the last one drafts again */
    GLM_TRY(mtp_rows(g, s, out, n));
    g->last = out[n - 1];
    g->draft = masked_argmax(g, g->logits + 2 * V);
    *n_out = n;
    return GLM_OK;
}

static glm_status sampled_after(glm_mtp_greedy *g, glm_seq *s, int32_t out[2], int *n_out);

glm_status glm_mtp_after_verify(glm_mtp_greedy *g, glm_seq *s, int32_t out[2], int *n_out)
{
    return g->smp ? sampled_after(g, s, out, n_out) : greedy_after(g, s, out, n_out);
}

glm_status glm_mtp_greedy_step(glm_mtp_greedy *g, int32_t out[2], int *n_out)
{
    glm_seq *s = glm_forward_bound(g->f);
    glm_step_item it;
    GLM_TRY(glm_mtp_verify_item(g, s, &it));
    GLM_TRY(glm_forward_step(g->f, &it, 1));
    return glm_mtp_after_verify(g, s, out, n_out);
}

/* Mask, then the sampler's distribution of one logits row (history = g->hist[0..n_hist)). */
static glm_status spec_probs(glm_mtp_greedy *g, float *probs, float *logits, int n_hist)
{
    const int64_t V = g->f->m->hp.vocab_size;
    for (int i = 0; i < g->n_mask; i++)
        if (g->mask[i] >= 0 && g->mask[i] < V)
            logits[g->mask[i]] = -INFINITY;
    return glm_sampler_probs(g->smp, probs, logits, g->hist, n_hist);
}

/* g->draft ← a draw from q (MTP row in logits[2]), kept in probs[2] for the next verify. */
static glm_status spec_draft(glm_mtp_greedy *g)
{
    const int64_t V = g->f->m->hp.vocab_size;
    GLM_TRY(spec_probs(g, g->probs + 2 * V, g->logits + 2 * V, g->n_hist));
    g->draft = glm_sample_from_probs(glm_sampler_rng(g->smp), g->probs + 2 * V, (int32_t)V);
    if (g->draft < 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: the draft distribution has no mass");
    return GLM_OK;
}

glm_status glm_mtp_sampled_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                 const int32_t *mask, int n_mask, glm_sampler *smp, int max_new)
{
    GLM_TRY(spec_alloc(g, f, n, mask, n_mask));
    const int64_t V = f->m->hp.vocab_size;
    g->smp = smp;
    g->hist_cap = n + (max_new > 0 ? max_new : 0) + 4;
    g->probs = malloc(sizeof(float) * (size_t)(3 * V));
    g->hist = malloc(sizeof(int32_t) * (size_t)g->hist_cap);
    if (!g->probs || !g->hist)
        return glm_errorf(GLM_ERR_NOMEM, "mtp: out of memory");
    memcpy(g->hist, prompt, sizeof(int32_t) * (size_t)n);
    g->n_hist = n;
    /* as the greedy start, with x_n drawn from p and the draft drawn from q */
    GLM_TRY(glm_forward_eval(f, prompt, n, g->logits, false, g->hidden, NULL));
    GLM_TRY(spec_probs(g, g->probs, g->logits, g->n_hist));
    g->last = glm_sample_from_probs(glm_sampler_rng(smp), g->probs, (int32_t)V);
    if (g->last < 0)
        return glm_errorf(GLM_ERR_INVALID, "mtp: the target distribution has no mass");
    g->hist[g->n_hist++] = g->last;
    for (int j = 0; j + 1 < n; j++)
        g->next[j] = prompt[j + 1];
    g->next[n - 1] = g->last;
    GLM_TRY(glm_forward_mtp(f, g->hidden, g->next, n, g->logits + 2 * V, false, NULL));
    return spec_draft(g);
}

static glm_status sampled_after(glm_mtp_greedy *g, glm_seq *s, int32_t out[2], int *n_out)
{
    const int64_t V = g->f->m->hp.vocab_size;
    int32_t n;
    /* p at the draft's position, and p after it (history includes the draft) */
    GLM_TRY(spec_probs(g, g->probs, g->logits, g->n_hist));
    g->hist[g->n_hist] = g->draft;
    GLM_TRY(spec_probs(g, g->probs + V, g->logits + V, g->n_hist + 1));
    GLM_TRY(glm_spec_accept_sampled(out, &n, glm_sampler_rng(g->smp), g->probs, g->probs + 2 * V, &g->draft, 1,
                                    (int32_t)V));
    g->drafts++;
    if (n == 2)
        g->accepted++;
    else
        GLM_TRY(glm_seq_truncate(s, g->pos + 1));
    for (int i = 0; i < n; i++)
        g->hist[g->n_hist++] = out[i];
    GLM_TRY(mtp_rows(g, s, out, n));
    g->last = out[n - 1];
    *n_out = n;
    return spec_draft(g);
}

void glm_mtp_greedy_free(glm_mtp_greedy *g)
{
    free(g->logits), free(g->hidden), free(g->next), free(g->probs), free(g->hist);
    g->logits = g->hidden = g->probs = NULL;
    g->next = g->hist = NULL;
}
