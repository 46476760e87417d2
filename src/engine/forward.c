/* The layer graph of GLM-4.7-Flash (model-spec §2-§4) against backend.h. Every op goes
 * through the backend table, so the same code drives the reference and the Vulkan paths.
 * Dumps (when asked) use the golden schema names of ARCHITECTURE.md.
 * Not here: the MTP block's own inputs and head (engine/mtp.c). */
#include "engine/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* q_a/kv_a norms: HF builds them without eps, i.e. with RMSNorm's default 1e-6 (§2.1). */
#define GLM_QKV_A_NORM_EPS_DEFAULT 1e-6f

#define B_(f) ((f)->b)
#define OPS(f) ((f)->b->ops)

static glm_status dump_t(glm_forward *f, glm_dump *d, const char *dir, const char *name, glm_dview v)
{
    if (!d)
        return GLM_OK;
    char full[96];
    snprintf(full, sizeof full, "%s%s", dir, name);
    return glm_dump_view(d, f->b, NULL, full, v);
}

static float qkv_eps(const glm_hparams *hp)
{
    return hp->qkv_a_norm_eps > 0 ? hp->qkv_a_norm_eps : GLM_QKV_A_NORM_EPS_DEFAULT;
}

/* Which folds (GLM_FOLD_*) this step uses: only when the backend has both fused ops and no
 * dump wants the intermediate values (attn_norm, q_a, attn_out, ffn_norm, ffn_out are never
 * materialized then). */
static unsigned folds(const glm_forward *f, const glm_dump *d)
{
    return OPS(f)->rms_norm_matmul && OPS(f)->matmul_add && !d ? f->fold : 0u;
}

/* Steps 1-5 with the norms folded: q_a and kv_a from RMSNorm(x) directly, the latent norm in
 * place on kva's first R columns when latent_norm (else the caller's kv_write_norm applies it);
 * the caller's q_b product takes RMSNorm(q_a) the same way. */
static glm_status attn_in_fused(glm_forward *f, const glm_layer *L, glm_dview x, glm_dview qa, glm_dview kva,
                                bool latent_norm)
{
    const glm_hparams *hp = &f->m->hp;
    const glm_backend_ops *o = OPS(f);
    glm_dview cc = glm_dview_cols(kva, 0, hp->kv_lora_rank);
    if (o->rms_norm_matmul2) { /* both products of the normed x at once where the backend can */
        GLM_TRY(o->rms_norm_matmul2(B_(f), qa, kva, x, L->attn_norm, hp->rms_norm_eps, L->attn_q_a, L->attn_kv_a_mqa));
    } else {
        GLM_TRY(o->rms_norm_matmul(B_(f), qa, x, L->attn_norm, hp->rms_norm_eps, L->attn_q_a, NULL, NULL));
        GLM_TRY(o->rms_norm_matmul(B_(f), kva, x, L->attn_norm, hp->rms_norm_eps, L->attn_kv_a_mqa, NULL, NULL));
    }
    return latent_norm ? o->rms_norm(B_(f), cc, cc, L->attn_kv_a_norm, qkv_eps(hp)) : GLM_OK;
}

/* t1 = MLA(RMSNorm(x)) (§2.2, §2.3), the residual add left to the caller; leaves attn_norm
 * in s.a and o_proj output in s.t1. With GLM_FOLD_ATTN: x += MLA(RMSNorm(x)) instead. */
static glm_status attn_block(glm_forward *f, const glm_layer *L, glm_dview kvl, int T, const glm_kv_rows *r,
                             glm_dump *d, const char *dir)
{
    const glm_hparams *hp = &f->m->hp;
    const glm_backend_ops *o = OPS(f);
    glm_backend *b = B_(f);
    const int H = hp->num_attention_heads, dn = hp->qk_nope_head_dim, dr = hp->qk_rope_head_dim;
    const int R = hp->kv_lora_rank;
    glm_dview x = glm_dview_rows(f->s.x, 0, T), a = glm_dview_rows(f->s.a, 0, T);
    glm_dview qa = glm_dview_rows(f->s.qa, 0, T), q = glm_dview_rows(f->s.q, 0, T);
    glm_dview kva = glm_dview_rows(f->s.kva, 0, T), at = glm_dview_rows(f->s.attn, 0, T);
    glm_dview t1 = glm_dview_rows(f->s.t1, 0, T);
    glm_dview cc = glm_dview_cols(kva, 0, R);
    const bool fold = folds(f, d) & GLM_FOLD_ATTN;
    /* with the folds and kv_write_norm the latent norm happens on the way into the cache */
    const bool norm_in_write = fold && o->kv_write_norm;
    if (fold) {
        GLM_TRY(attn_in_fused(f, L, x, qa, kva, !norm_in_write));
    } else {
        GLM_TRY(o->rms_norm(b, a, x, L->attn_norm, hp->rms_norm_eps));
        GLM_TRY(dump_t(f, d, dir, "attn_norm", a));
        /* step 1-6: cq = RMSNorm(W_qa a; 1e-6), q = W_qb cq with RoPE on each head's last dr;
         * [c' | kr'] = W_kva a, c = RMSNorm(c'; 1e-6) and kr = RoPE(kr') in place, then the rows go
         * to their sequences' pages (interleaved so that a backend may overlap the independent ops) */
        GLM_TRY(o->matmul(b, qa, a, L->attn_q_a, 0));
        GLM_TRY(o->matmul(b, kva, a, L->attn_kv_a_mqa, 0));
        GLM_TRY(o->rms_norm(b, qa, qa, L->attn_q_a_norm, qkv_eps(hp)));
        GLM_TRY(dump_t(f, d, dir, "q_a", qa));
        GLM_TRY(o->rms_norm(b, cc, cc, L->attn_kv_a_norm, qkv_eps(hp)));
        GLM_TRY(dump_t(f, d, dir, "kv_latent", cc));
    }
    if (norm_in_write && o->kv_write_rope && o->rms_norm_matmul_rope) {
        /* q_b with the query's rope, then the latent norm, the cache write and the key's rope:
         * the two need nothing of each other (a backend may run them side by side) */
        GLM_TRY(o->rms_norm_matmul_rope(b, q, qa, L->attn_q_a_norm, qkv_eps(hp), L->attn_q_b, r, H, dn + dr, dn, dr,
                                        hp->rope_theta));
        GLM_TRY(o->kv_write_rope(b, kvl, kva, r, L->attn_kv_a_norm, qkv_eps(hp), R, q, 0, dn + dr, dn, dr,
                                 hp->rope_theta));
    } else if (norm_in_write && o->kv_write_rope) {
        /* q_b first, then one op for the latent norm, the cache write and both ropes */
        GLM_TRY(o->rms_norm_matmul(b, q, qa, L->attn_q_a_norm, qkv_eps(hp), L->attn_q_b, NULL, NULL));
        GLM_TRY(o->kv_write_rope(b, kvl, kva, r, L->attn_kv_a_norm, qkv_eps(hp), R, q, H, dn + dr, dn, dr,
                                 hp->rope_theta));
    } else {
        GLM_TRY(o->rope(b, kva, 1, R + dr, R, dr, r->pos, r->max_len, hp->rope_theta));
        if (norm_in_write)
            GLM_TRY(o->kv_write_norm(b, kvl, kva, r, L->attn_kv_a_norm, qkv_eps(hp), R));
        else
            GLM_TRY(o->kv_write(b, kvl, kva, r));
        if (fold)
            GLM_TRY(o->rms_norm_matmul(b, q, qa, L->attn_q_a_norm, qkv_eps(hp), L->attn_q_b, NULL, NULL));
        else
            GLM_TRY(o->matmul(b, q, qa, L->attn_q_b, 0));
        GLM_TRY(o->rope(b, q, H, dn + dr, dn, dr, r->pos, r->max_len, hp->rope_theta));
    }
    /* step 7-10 over the cache, naive or absorbed (§2.5) */
    glm_mla_shape sh = { .T = T, .pos0 = 0, .n_heads = H, .qk_nope = dn, .qk_rope = dr,
                         .v_head = hp->v_head_dim, .kv_lora = R };
    GLM_TRY(o->mla_attention(b, at, q, glm_dview_cols(kvl, 0, R), glm_dview_cols(kvl, R, dr), L->attn_k_b,
                             L->attn_v_b, &sh, r, f->mla_mode));
    /* step 11 (the residual add is the caller's, or folded into the product) */
    if (fold)
        return o->matmul_add(b, x, at, L->attn_output);
    GLM_TRY(o->matmul(b, t1, at, L->attn_output, 0));
    return dump_t(f, d, dir, "attn_out", t1);
}

/* s.t1 = W_down (SiLU(W_gate a) ⊙ W_up a) with the given buffers (§3.1). */
static glm_status swiglu_ffn(glm_forward *f, glm_dview out, glm_dview a, glm_dview g, glm_dview u,
                             const glm_tensor *wg, const glm_tensor *wu, const glm_tensor *wd)
{
    const glm_backend_ops *o = OPS(f);
    if (o->matmul_swiglu) {
        GLM_TRY(o->matmul_swiglu(f->b, g, a, wg, wu, NULL));
        return o->matmul(f->b, out, g, wd, 0);
    }
    GLM_TRY(o->matmul(f->b, g, a, wg, 0));
    GLM_TRY(o->matmul(f->b, u, a, wu, 0));
    GLM_TRY(o->swiglu(f->b, g, g, u));
    return o->matmul(f->b, out, g, wd, 0);
}

static glm_route_params route_params(const glm_hparams *hp)
{
    return (glm_route_params){ .n_routed_experts = hp->n_routed_experts, .num_experts_per_tok = hp->num_experts_per_tok,
                               .n_group = hp->n_group, .topk_group = hp->topk_group,
                               .sigmoid = hp->gating != GLM_GATING_SOFTMAX, .norm_topk_prob = hp->norm_topk_prob,
                               .routed_scaling_factor = hp->routed_scaling_factor };
}

/* s.t1 = Σ_k w_k Expert_k(a) + SharedExpert(a) (§3.2). */
static glm_status moe_ffn(glm_forward *f, const glm_layer *L, int T, glm_dump *d, const char *dir)
{
    const glm_hparams *hp = &f->m->hp;
    const glm_backend_ops *o = OPS(f);
    glm_backend *b = B_(f);
    const int k = hp->num_experts_per_tok;
    glm_dview a = glm_dview_rows(f->s.a, 0, T), t1 = glm_dview_rows(f->s.t1, 0, T);
    glm_dview rl = glm_dview_rows(f->s.rl, 0, T), ids = glm_dview_cols(glm_dview_rows(f->s.ids, 0, T), 0, k);
    glm_dview rw = glm_dview_cols(glm_dview_rows(f->s.rw, 0, T), 0, k);
    glm_dview eg = glm_dview_rows(f->s.eg, 0, T * k), eu = glm_dview_rows(f->s.eu, 0, T * k);
    glm_dview ed = glm_dview_rows(f->s.ed, 0, T * k);
    glm_dview sd = glm_dview_rows(f->s.sd, 0, T);
    /* the shared expert first: it needs only `a`, so a backend may overlap it with the router */
    if (L->ffn_gate_shexp)
        GLM_TRY(swiglu_ffn(f, sd, a, glm_dview_rows(f->s.sg, 0, T), glm_dview_rows(f->s.su, 0, T), L->ffn_gate_shexp,
                           L->ffn_up_shexp, L->ffn_down_shexp));
    GLM_TRY(o->matmul(b, rl, a, L->ffn_gate_inp, 0));
    GLM_TRY(dump_t(f, d, dir, "router_logits", rl));
    glm_route_params rp = route_params(hp);
    GLM_TRY(o->moe_route(b, ids, rw, rl, L->exp_probs_b, &rp));
    GLM_TRY(dump_t(f, d, dir, "topk_ids", ids));
    GLM_TRY(dump_t(f, d, dir, "topk_weights", rw));
    if (o->matmul_swiglu) {
        GLM_TRY(o->matmul_swiglu(b, eg, a, L->ffn_gate_exps, L->ffn_up_exps, &ids));
    } else {
        GLM_TRY(o->matmul_id(b, eg, a, L->ffn_gate_exps, ids));
        GLM_TRY(o->matmul_id(b, eu, a, L->ffn_up_exps, ids));
        GLM_TRY(o->swiglu(b, eg, eg, eu));
    }
    GLM_TRY(o->matmul_id(b, ed, eg, L->ffn_down_exps, ids));
    /* HF adds the shared expert after the routed mixture */
    if (L->ffn_gate_shexp && o->moe_combine_add)
        return o->moe_combine_add(b, t1, ed, rw, sd);
    GLM_TRY(o->moe_combine(b, t1, ed, rw));
    if (!L->ffn_gate_shexp)
        return GLM_OK;
    return o->add(b, t1, t1, sd);
}

/* x += FFN(RMSNorm(x; ffn_norm)) with the norm folded into every product that reads it and the
 * residual adds into the last products (GLM_FOLD_FFN): the products of the normed x (shared
 * gate/up, router, routed gate/up) all run before anything is added to x. */
static glm_status ffn_fused(glm_forward *f, const glm_layer *L, int T)
{
    const glm_hparams *hp = &f->m->hp;
    const glm_backend_ops *o = OPS(f);
    glm_backend *b = B_(f);
    const int k = hp->num_experts_per_tok;
    const float eps = hp->rms_norm_eps;
    glm_dview x = glm_dview_rows(f->s.x, 0, T);
    if (!L->is_moe) {
        glm_dview g = glm_dview_rows(f->s.dg, 0, T);
        GLM_TRY(o->rms_norm_matmul(b, g, x, L->ffn_norm, eps, L->ffn_gate, L->ffn_up, NULL));
        return o->matmul_add(b, x, g, L->ffn_down);
    }
    /* the shared expert as expert E of the routed products (the backend holds its weights as
     * one more slab of the routed ones): the router writes a (k+1)-th column (id E, weight 1),
     * and the routed products and the mixture take it with the others */
    const bool shared_slab = L->ffn_gate_shexp && o->moe_shared_slab && o->moe_gate_route && o->matmul_swiglu &&
                             o->moe_combine_add && o->moe_shared_slab(b, L);
    const int kk = k + (shared_slab ? 1 : 0);
    glm_dview rl = glm_dview_rows(f->s.rl, 0, T), ids = glm_dview_cols(glm_dview_rows(f->s.ids, 0, T), 0, kk);
    glm_dview rw = glm_dview_cols(glm_dview_rows(f->s.rw, 0, T), 0, kk), sg = glm_dview_rows(f->s.sg, 0, T);
    glm_dview eg = glm_dview_rows(f->s.eg, 0, T * kk), ed = glm_dview_rows(f->s.ed, 0, T * kk);
    glm_route_params rp = route_params(hp);
    if (shared_slab) {
        glm_dview a = glm_dview_rows(f->s.a, 0, T);
        GLM_TRY(o->moe_gate_route(b, ids, rw, rl, x, L->ffn_norm, eps, L->ffn_gate_inp, L->exp_probs_b, &rp, &a));
        GLM_TRY(o->matmul_swiglu(b, eg, a, L->ffn_gate_exps, L->ffn_up_exps, &ids));
        if (o->matmul_id_combine_add) /* the down products and the mixture in one */
            return o->matmul_id_combine_add(b, x, eg, L->ffn_down_exps, ids, rw, ed);
        GLM_TRY(o->matmul_id(b, ed, eg, L->ffn_down_exps, ids));
        return o->moe_combine_add(b, x, ed, rw, x); /* x = Σ w·expert (shared last, weight 1) + x */
    }
    if (L->ffn_gate_shexp)
        GLM_TRY(o->rms_norm_matmul(b, sg, x, L->ffn_norm, eps, L->ffn_gate_shexp, L->ffn_up_shexp, NULL));
    if (o->moe_gate_route && o->matmul_swiglu) {
        /* the router also writes RMSNorm(x) to s.a (free here), which the routed gate/up read */
        glm_dview a = glm_dview_rows(f->s.a, 0, T);
        GLM_TRY(o->moe_gate_route(b, ids, rw, rl, x, L->ffn_norm, eps, L->ffn_gate_inp, L->exp_probs_b, &rp, &a));
        GLM_TRY(o->matmul_swiglu(b, eg, a, L->ffn_gate_exps, L->ffn_up_exps, &ids));
    } else {
        if (o->moe_gate_route) {
            GLM_TRY(o->moe_gate_route(b, ids, rw, rl, x, L->ffn_norm, eps, L->ffn_gate_inp, L->exp_probs_b, &rp, NULL));
        } else {
            GLM_TRY(o->rms_norm_matmul(b, rl, x, L->ffn_norm, eps, L->ffn_gate_inp, NULL, NULL));
            GLM_TRY(o->moe_route(b, ids, rw, rl, L->exp_probs_b, &rp));
        }
        GLM_TRY(o->rms_norm_matmul(b, eg, x, L->ffn_norm, eps, L->ffn_gate_exps, L->ffn_up_exps, &ids));
    }
    GLM_TRY(o->matmul_id(b, ed, eg, L->ffn_down_exps, ids));
    if (L->ffn_gate_shexp)
        GLM_TRY(o->matmul_add(b, x, sg, L->ffn_down_shexp));
    if (o->moe_combine_add) /* x = mixture + x, element by element in place */
        return o->moe_combine_add(b, x, ed, rw, x);
    glm_dview t1 = glm_dview_rows(f->s.t1, 0, T);
    GLM_TRY(o->moe_combine(b, t1, ed, rw));
    return o->add(b, x, x, t1);
}

glm_status glm_fwd_block(glm_forward *f, const glm_layer *L, glm_dview kv, int T, const glm_kv_rows *r, glm_dump *d,
                         const char *prefix, int layer_idx)
{
    const glm_hparams *hp = &f->m->hp;
    char dir[48];
    if (layer_idx >= 0)
        snprintf(dir, sizeof dir, "%slayer.%02d/", prefix, layer_idx);
    else
        snprintf(dir, sizeof dir, "%s", prefix);
    GLM_TRY(attn_block(f, L, kv, T, r, d, dir));
    const unsigned fo = folds(f, d);
    glm_dview x = glm_dview_rows(f->s.x, 0, T), a = glm_dview_rows(f->s.a, 0, T);
    glm_dview t1 = glm_dview_rows(f->s.t1, 0, T);
    if (fo & GLM_FOLD_FFN) {
        if (!(fo & GLM_FOLD_ATTN))
            GLM_TRY(OPS(f)->add(f->b, x, x, t1));
        return ffn_fused(f, L, T);
    }
    /* x += attention (unless folded into o_proj), then the FFN's norm */
    if (fo & GLM_FOLD_ATTN) {
        GLM_TRY(OPS(f)->rms_norm(f->b, a, x, L->ffn_norm, hp->rms_norm_eps));
    } else if (OPS(f)->add_rms_norm) {
        GLM_TRY(OPS(f)->add_rms_norm(f->b, a, x, t1, L->ffn_norm, hp->rms_norm_eps));
    } else {
        GLM_TRY(OPS(f)->add(f->b, x, x, t1));
        GLM_TRY(OPS(f)->rms_norm(f->b, a, x, L->ffn_norm, hp->rms_norm_eps));
    }
    GLM_TRY(dump_t(f, d, dir, "ffn_norm", a));
    if (L->is_moe)
        GLM_TRY(moe_ffn(f, L, T, d, dir));
    else
        GLM_TRY(swiglu_ffn(f, t1, a, glm_dview_rows(f->s.dg, 0, T), glm_dview_rows(f->s.du, 0, T), L->ffn_gate,
                           L->ffn_up, L->ffn_down));
    GLM_TRY(dump_t(f, d, dir, "ffn_out", t1));
    GLM_TRY(OPS(f)->add(f->b, x, x, t1));
    return dump_t(f, d, dir, "out", x);
}

glm_status glm_fwd_logits_out(glm_forward *f, glm_dview lg, float *logits, bool all_logits)
{
    if (!logits)
        return GLM_OK;
    if (all_logits)
        return OPS(f)->download(f->b, logits, lg);
    return OPS(f)->download(f->b, logits, glm_dview_rows(lg, lg.rows - 1, 1));
}

glm_status glm_forward_check_ids(const glm_forward *f, const int32_t *ids, int n)
{
    const int64_t V = f->m->token_embd ? f->m->token_embd->ne[1] : f->m->hp.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return glm_errorf(GLM_ERR_INVALID, "token id %d at position %d is outside the vocabulary [0, %lld)", ids[i],
                              i, (long long)V);
    return GLM_OK;
}

/* Grow the device step-rows buffer *meta to n elements (between steps only). */
static glm_status ensure_meta(glm_forward *f, glm_dview *meta, int64_t n)
{
    if (meta->buf && meta->cols >= n)
        return GLM_OK;
    int64_t cap = meta->buf ? meta->cols : 256;
    while (cap < n)
        cap *= 2;
    if (meta->buf)
        f->b->ops->free(f->b, meta->buf);
    meta->buf = NULL;
    return f->b->ops->alloc_host(f->b, meta, GLM_DT_I32, 1, cap);
}

glm_status glm_fwd_rows(glm_forward *f, const glm_step_item *items, int n_items, bool mtp, glm_kv_rows *r)
{
    int64_t T = 0, n_pages = 0, max_len = 0;
    int reserved = 0;
    glm_status st = GLM_OK;
    for (int i = 0; i < n_items && st == GLM_OK; i++) {
        glm_kvseq *kv = mtp ? &items[i].seq->mtp : &items[i].seq->kv;
        int64_t end = kv->n + items[i].n;
        if ((st = glm_kvseq_reserve(kv, end)) != GLM_OK)
            break;
        reserved = i + 1;
        T += items[i].n;
        n_pages += kv->n_held;
        max_len = end > max_len ? end : max_len;
    }
    if (st != GLM_OK) { /* give back what this step reserved */
        for (int i = 0; i < reserved; i++) {
            glm_kvseq *kv = mtp ? &items[i].seq->mtp : &items[i].seq->kv;
            glm_kvseq_truncate(kv, kv->n);
        }
        return st;
    }
    int64_t need = 2 * T + n_pages;
    if (need > f->meta_cap) {
        int32_t *p = realloc(f->h_meta, sizeof(int32_t) * (size_t)need);
        if (!p)
            return glm_errorf(GLM_ERR_NOMEM, "forward: out of memory for %lld step rows", (long long)need);
        f->h_meta = p;
        f->meta_cap = need;
    }
    glm_dview *meta = mtp ? &f->s.mtp_meta : &f->s.meta;
    GLM_TRY(ensure_meta(f, meta, need));
    int32_t *pos = f->h_meta, *ptab = pos + T, *pages = ptab + T;
    int64_t t = 0, pg = 0;
    for (int i = 0; i < n_items; i++) {
        glm_kvseq *kv = mtp ? &items[i].seq->mtp : &items[i].seq->kv;
        for (int j = 0; j < items[i].n; j++, t++) {
            pos[t] = (int32_t)(kv->n + j);
            ptab[t] = (int32_t)pg;
        }
        memcpy(pages + pg, kv->pages, sizeof(int32_t) * (size_t)kv->n_held);
        pg += kv->n_held;
    }
    GLM_TRY(f->b->ops->upload(f->b, glm_dview_cols(*meta, 0, need), f->h_meta));
    glm_dview m1 = glm_dview_cols(*meta, 0, 1);
    m1.rows = T, m1.ld = 1;
    *r = (glm_kv_rows){ .pos = m1, .ptab = m1, .pages = glm_dview_cols(*meta, 2 * T, n_pages),
                        .page_size = f->pool->page_size, .max_len = max_len };
    r->ptab.off += T;
    for (int i = 0; i < n_items; i++) {
        f->h_runs[i] = items[i].n;
        f->h_ends[i] = (mtp ? items[i].seq->mtp.n : items[i].seq->kv.n) + items[i].n;
    }
    return glm_fwd_set_runs(f, f->h_runs, f->h_ends, n_items);
}

glm_status glm_fwd_set_runs(glm_forward *f, const int32_t *runs, const int64_t *ends, int n)
{
    return f->b->ops->set_runs ? f->b->ops->set_runs(f->b, runs, ends, n) : GLM_OK;
}

/* Rows of the logits the items want (all, or the last of each) through lm_head, to the host. */
static glm_status step_logits(glm_forward *f, const glm_step_item *items, int n_items, glm_dview fn, glm_dump *d)
{
    const glm_backend_ops *o = OPS(f);
    const int64_t V = f->m->hp.vocab_size;
    glm_dview lg = f->s.logits;
    if (n_items == 1) {
        const glm_step_item *it = &items[0];
        if (!it->logits && !d)
            return GLM_OK;
        /* only the rows someone reads go through lm_head */
        glm_dview src = (it->all_logits || d) ? fn : glm_dview_rows(fn, fn.rows - 1, 1);
        glm_dview dst = glm_dview_rows(lg, 0, src.rows);
        GLM_TRY(o->matmul(f->b, dst, src, f->m->output, 0));
        GLM_TRY(dump_t(f, d, "", "logits", dst));
        return glm_fwd_logits_out(f, dst, it->logits, it->all_logits);
    }
    /* gather the wanted rows into s.a (free after the last layer), then one lm_head whose
     * runs are each item's wanted rows (so each is computed as that item's alone would be) */
    int64_t n = 0, t = 0;
    int nr = 0;
    for (int i = 0; i < n_items; t += items[i].n, i++) {
        if (!items[i].logits)
            continue;
        int64_t k = items[i].all_logits ? items[i].n : 1, from = t + items[i].n - k;
        GLM_TRY(o->copy(f->b, glm_dview_rows(f->s.a, n, k), glm_dview_rows(fn, from, k)));
        f->h_runs[nr++] = (int32_t)k;
        n += k;
    }
    if (!n)
        return GLM_OK;
    GLM_TRY(glm_fwd_set_runs(f, f->h_runs, NULL, nr));
    GLM_TRY(o->matmul(f->b, glm_dview_rows(lg, 0, n), glm_dview_rows(f->s.a, 0, n), f->m->output, 0));
    /* one transfer for the whole step, then each item's rows from it */
    if (n * V > f->h_logits_n) {
        float *p = realloc(f->h_logits, sizeof(float) * (size_t)(n * V));
        if (!p)
            return glm_errorf(GLM_ERR_NOMEM, "forward: out of memory for %lld logits rows", (long long)n);
        f->h_logits = p;
        f->h_logits_n = n * V;
    }
    GLM_TRY(o->download(f->b, f->h_logits, glm_dview_rows(lg, 0, n)));
    n = 0;
    for (int i = 0; i < n_items; i++) {
        if (!items[i].logits)
            continue;
        int64_t k = items[i].all_logits ? items[i].n : 1;
        memcpy(items[i].logits, f->h_logits + n * V, sizeof(float) * (size_t)(k * V));
        n += k;
    }
    return GLM_OK;
}

static glm_status run_step(glm_forward *f, const glm_step_item *items, int n_items, glm_dump *d)
{
    const glm_model *m = f->m;
    const glm_backend_ops *o = OPS(f);
    int64_t T = 0;
    for (int i = 0; i < n_items; i++) {
        if (items[i].n <= 0 || !items[i].seq || items[i].seq->f != f)
            return glm_errorf(GLM_ERR_INVALID, "forward: step item %d has no rows or a foreign sequence", i);
        for (int k = 0; k < i; k++)
            if (items[k].seq == items[i].seq)
                return glm_errorf(GLM_ERR_INVALID, "forward: a sequence appears twice in one step");
        if (items[i].seq->kv.n + items[i].n > f->n_ctx)
            return glm_errorf(GLM_ERR_INVALID, "forward: %lld + %d tokens exceed the context of %lld",
                              (long long)items[i].seq->kv.n, items[i].n, (long long)f->n_ctx);
        GLM_TRY(glm_forward_check_ids(f, items[i].tokens, items[i].n));
        if (T + items[i].n > f->n_batch)
            return glm_errorf(GLM_ERR_INVALID, "forward: more than %d rows in one step", f->n_batch);
        memcpy(f->h_tok + T, items[i].tokens, sizeof(int32_t) * (size_t)items[i].n);
        T += items[i].n;
    }
    glm_kv_rows r;
    GLM_TRY(glm_fwd_rows(f, items, n_items, false, &r));
    glm_dview x = glm_dview_rows(f->s.x, 0, T);
    glm_status st = o->get_rows(f->b, x, m->token_embd, f->h_tok);
    for (int l = 0; st == GLM_OK && l < m->hp.num_hidden_layers; l++)
        st = glm_fwd_block(f, &m->layers[l], f->pool->layers[l], (int)T, &r, d, "", l);
    /* §4: final norm, lm_head */
    glm_dview fn = glm_dview_rows(f->s.fnorm, 0, T);
    if (st == GLM_OK)
        st = o->rms_norm(f->b, fn, x, m->output_norm, m->hp.rms_norm_eps);
    if (st == GLM_OK)
        st = dump_t(f, d, "", "final_norm", fn);
    for (int i = 0, t = 0; st == GLM_OK && i < n_items; t += items[i].n, i++)
        if (items[i].hidden)
            st = o->download(f->b, items[i].hidden, glm_dview_rows(fn, t, items[i].n));
    if (st == GLM_OK)
        st = step_logits(f, items, n_items, fn, d);
    glm_status cl = glm_fwd_set_runs(f, NULL, NULL, 0);
    if (st == GLM_OK)
        st = cl;
    for (int i = 0; i < n_items; i++) {
        glm_kvseq *kv = &items[i].seq->kv;
        if (st == GLM_OK)
            kv->n += items[i].n;
        else
            glm_kvseq_truncate(kv, kv->n); /* the rows written are past n: as if never run */
    }
    return st;
}

glm_status glm_forward_step(glm_forward *f, const glm_step_item *items, int n_items)
{
    if (n_items <= 0)
        return glm_errorf(GLM_ERR_INVALID, "forward: an empty step");
    if (n_items > f->n_batch)
        return glm_errorf(GLM_ERR_INVALID, "forward: more than %d rows in one step", f->n_batch);
    /* items of few rows first, then the longer ones (each in the given order): a backend then
     * runs each product as at most one row-by-row and one tiled stretch. Every item's results
     * go to its own buffers, so the order of the rows in the step is free. */
    int n = 0;
    for (int i = 0; i < n_items; i++)
        if (items[i].n <= GLM_FEW_ROWS)
            f->h_items[n++] = items[i];
    for (int i = 0; i < n_items; i++)
        if (items[i].n > GLM_FEW_ROWS)
            f->h_items[n++] = items[i];
    return run_step(f, f->h_items, n_items, NULL);
}

glm_status glm_forward_eval(glm_forward *f, const int32_t *tokens, int T, float *logits, bool all_logits,
                            float *hidden, glm_dump *dump)
{
    if (T <= 0)
        return glm_errorf(GLM_ERR_INVALID, "forward: no tokens to evaluate");
    if (f->cur->kv.n + T > f->n_ctx)
        return glm_errorf(GLM_ERR_INVALID, "forward: %lld + %d tokens exceed the context of %lld",
                          (long long)f->cur->kv.n, T, (long long)f->n_ctx);
    if (dump && T > f->n_batch)
        return glm_errorf(GLM_ERR_INVALID, "forward: a dump needs all %d tokens in one batch (n_batch %d)", T,
                          f->n_batch);
    const int64_t V = f->m->hp.vocab_size, D = f->m->hp.hidden_size;
    /* every id checked before any chunk runs, so a bad one leaves the cache as it was */
    GLM_TRY(glm_forward_check_ids(f, tokens, T));
    for (int done = 0; done < T;) {
        int n = T - done < f->n_batch ? T - done : f->n_batch;
        bool last = done + n == T;
        glm_step_item it = { .seq = f->cur, .tokens = tokens + done, .n = n, .all_logits = all_logits,
                             .hidden = hidden ? hidden + (int64_t)done * D : NULL };
        if (logits && all_logits)
            it.logits = logits + (int64_t)done * V;
        else if (logits && last)
            it.logits = logits;
        GLM_TRY(run_step(f, &it, 1, dump));
        done += n;
    }
    return GLM_OK;
}

bool glm_forward_can_argmax(const glm_forward *f, int n_mask)
{
    return OPS(f)->argmax_rows && n_mask >= 0 && n_mask <= GLM_ARGMAX_MASK;
}

glm_status glm_forward_eval_argmax(glm_forward *f, const int32_t *tokens, int T, const int32_t *mask, int n_mask,
                                   int32_t *id)
{
    const glm_backend_ops *o = OPS(f);
    if (!glm_forward_can_argmax(f, n_mask))
        return glm_errorf(GLM_ERR_UNSUPPORTED, "forward: the %s backend has no device argmax (or %d masked ids)",
                          o->name, n_mask);
    if (T <= 0 || T > f->n_batch)
        return glm_errorf(GLM_ERR_INVALID, "forward: %d tokens for one greedy step (1 .. %d)", T, f->n_batch);
    if (!f->s.amax.buf)
        GLM_TRY(o->alloc_host(f->b, &f->s.amax, GLM_DT_I32, 1, 1));
    glm_step_item it = { .seq = f->cur, .tokens = tokens, .n = T };
    GLM_TRY(glm_forward_step(f, &it, 1)); /* no logits asked: nothing downloaded */
    glm_dview fn = glm_dview_rows(f->s.fnorm, T - 1, 1), lg = glm_dview_rows(f->s.logits, 0, 1);
    glm_status st = o->matmul(f->b, lg, fn, f->m->output, 0);
    if (st == GLM_OK)
        st = o->argmax_rows(f->b, f->s.amax, lg, mask, n_mask);
    if (st == GLM_OK)
        st = o->download(f->b, id, f->s.amax);
    if (st != GLM_OK) /* as if the step never ran */
        glm_kvseq_truncate(&f->cur->kv, f->cur->kv.n - T);
    return st;
}

int64_t glm_forward_n_past(const glm_forward *f) { return f->cur->kv.n; }
glm_status glm_forward_truncate(glm_forward *f, int64_t n) { return glm_kvseq_truncate(&f->cur->kv, n); }
void glm_forward_set_mla_mode(glm_forward *f, glm_mla_mode mode) { f->mla_mode = mode; }
void glm_forward_set_folds(glm_forward *f, unsigned fold) { f->fold = fold & (GLM_FOLD_ATTN | GLM_FOLD_FFN); }
const glm_model *glm_forward_model(const glm_forward *f) { return f->m; }
void glm_forward_bind(glm_forward *f, glm_seq *s) { f->cur = s ? s : &f->own; }
glm_seq *glm_forward_bound(const glm_forward *f) { return f->cur; }
int glm_forward_max_rows(const glm_forward *f) { return f->n_batch; }
int64_t glm_forward_n_ctx(const glm_forward *f) { return f->n_ctx; }
int64_t glm_forward_pages_used(const glm_forward *f) { return glm_kvpool_pages_used(f->pool); }
int64_t glm_forward_pages_total(const glm_forward *f) { return f->pool->n_pages; }

/* ---- sequences ---- */

static glm_status seq_init(glm_forward *f, glm_seq *s)
{
    s->f = f;
    GLM_TRY(glm_kvseq_init(&s->kv, f->pool, f->n_ctx));
    if (f->mtp_pool)
        GLM_TRY(glm_kvseq_init(&s->mtp, f->mtp_pool, f->n_ctx));
    return GLM_OK;
}

static void seq_fini(glm_seq *s)
{
    glm_kvseq_release(&s->kv);
    if (s->mtp.pool)
        glm_kvseq_release(&s->mtp);
}

glm_status glm_seq_create(glm_forward *f, glm_seq **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return glm_errorf(GLM_ERR_NOMEM, "forward: out of memory for a sequence");
    glm_status st = seq_init(f, *out);
    if (st != GLM_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

void glm_seq_destroy(glm_seq *s)
{
    if (!s)
        return;
    if (s->f->cur == s)
        s->f->cur = &s->f->own;
    seq_fini(s);
    free(s);
}

int64_t glm_seq_n_past(const glm_seq *s) { return s->kv.n; }
int64_t glm_seq_mtp_n_past(const glm_seq *s) { return s->mtp.pool ? s->mtp.n : 0; }

glm_status glm_seq_reserve(glm_seq *s, int64_t n) { return glm_kvseq_reserve(&s->kv, n); }

glm_status glm_seq_truncate(glm_seq *s, int64_t n)
{
    GLM_TRY(glm_kvseq_truncate(&s->kv, n));
    if (s->mtp.pool && s->mtp.n > n)
        GLM_TRY(glm_kvseq_truncate(&s->mtp, n));
    return GLM_OK;
}

glm_status glm_seq_share_prefix(glm_seq *dst, const glm_seq *src, int64_t n)
{
    if (dst->kv.n_held || (dst->mtp.pool && dst->mtp.n_held)) {
        seq_fini(dst);
        GLM_TRY(seq_init(dst->f, dst));
    }
    GLM_TRY(glm_kvseq_share_prefix(&dst->kv, &src->kv, n));
    if (dst->mtp.pool) {
        glm_status st = glm_kvseq_share_prefix(&dst->mtp, &src->mtp, src->mtp.n < n ? src->mtp.n : n);
        if (st != GLM_OK) {
            glm_kvseq_release(&dst->kv);
            return st;
        }
    }
    return GLM_OK;
}

glm_status glm_forward_check_ctx(const glm_model *m, int64_t n_ctx)
{
    if (n_ctx <= 0)
        return glm_errorf(GLM_ERR_INVALID, "context %lld must be positive", (long long)n_ctx);
    if (m->hp.max_position_embeddings > 0 && n_ctx > m->hp.max_position_embeddings)
        return glm_errorf(GLM_ERR_INVALID, "context %lld exceeds the model's context length of %d", (long long)n_ctx,
                          m->hp.max_position_embeddings);
    return GLM_OK;
}

static glm_status alloc_bufs(glm_forward *f)
{
    const glm_hparams *hp = &f->m->hp;
    glm_backend *b = f->b;
    const int64_t B = f->n_batch, D = hp->hidden_size, H = hp->num_attention_heads;
    const int64_t k = hp->num_experts_per_tok > 0 ? hp->num_experts_per_tok : 1;
    const int64_t E = hp->n_routed_experts > 0 ? hp->n_routed_experts : 1;
    const int64_t Im = hp->moe_intermediate_size > 0 ? hp->moe_intermediate_size : 1;
    const int64_t Ish = Im * (hp->n_shared_experts > 0 ? hp->n_shared_experts : 1);
    const int64_t Id = hp->intermediate_size > 0 ? hp->intermediate_size : 1;
    struct {
        glm_dview *v;
        glm_dtype dt;
        int64_t rows, cols;
    } t[] = {
        { &f->s.x, GLM_DT_F32, B, D },
        { &f->s.a, GLM_DT_F32, B, D },
        { &f->s.qa, GLM_DT_F32, B, hp->q_lora_rank },
        { &f->s.q, GLM_DT_F32, B, H * (hp->qk_nope_head_dim + hp->qk_rope_head_dim) },
        { &f->s.kva, GLM_DT_F32, B, hp->kv_lora_rank + hp->qk_rope_head_dim },
        { &f->s.attn, GLM_DT_F32, B, H * hp->v_head_dim },
        { &f->s.t1, GLM_DT_F32, B, D },
        { &f->s.fnorm, GLM_DT_F32, B, D },
        { &f->s.cat, GLM_DT_F32, B, 2 * D },
        { &f->s.logits, GLM_DT_F32, B, hp->vocab_size },
        { &f->s.dg, GLM_DT_F32, B, Id },
        { &f->s.du, GLM_DT_F32, B, Id },
        { &f->s.rl, GLM_DT_F32, B, E },
        /* k + 1: the shared expert as one more routed column where the backend holds it so */
        { &f->s.ids, GLM_DT_I32, B, k + 1 },
        { &f->s.rw, GLM_DT_F32, B, k + 1 },
        { &f->s.eg, GLM_DT_F32, B * (k + 1), Im },
        { &f->s.eu, GLM_DT_F32, B * k, Im },
        { &f->s.ed, GLM_DT_F32, B * (k + 1), D },
        { &f->s.sg, GLM_DT_F32, B, Ish },
        { &f->s.su, GLM_DT_F32, B, Ish },
        { &f->s.sd, GLM_DT_F32, B, D },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        GLM_TRY(b->ops->alloc(b, t[i].v, t[i].dt, t[i].rows, t[i].cols));
    if (b->ops->rms_norm_matmul2) { /* q_a's and kv_a's outputs side by side in one buffer */
        const int64_t ql = hp->q_lora_rank, kvl = hp->kv_lora_rank + hp->qk_rope_head_dim;
        b->ops->free(b, f->s.qa.buf);
        b->ops->free(b, f->s.kva.buf);
        f->s.qa.buf = f->s.kva.buf = NULL;
        GLM_TRY(b->ops->alloc(b, &f->s.qkva, GLM_DT_F32, B, ql + kvl));
        f->s.qa = glm_dview_cols(f->s.qkva, 0, ql);
        f->s.kva = glm_dview_cols(f->s.qkva, ql, kvl);
    }
    return GLM_OK;
}

static void free_bufs(glm_forward *f)
{
    glm_dview *v = (glm_dview *)&f->s;
    for (size_t i = 0; i < sizeof f->s / sizeof(glm_dview); i++) {
        bool seen = false; /* views sharing a buffer (qa, kva in qkva) free it once */
        for (size_t j = 0; j < i; j++)
            seen |= v[j].buf == v[i].buf;
        if (v[i].buf && !seen)
            f->b->ops->free(f->b, v[i].buf);
    }
}

glm_status glm_forward_create_pool(glm_forward **out, const glm_model *m, glm_backend *b, int64_t n_ctx, int n_batch,
                                   int64_t pool_positions)
{
    *out = NULL;
    const glm_hparams *hp = &m->hp;
    if (n_ctx <= 0 || n_batch <= 0 || pool_positions <= 0)
        return glm_errorf(GLM_ERR_INVALID, "forward: bad context %lld, batch %d or pool %lld", (long long)n_ctx,
                          n_batch, (long long)pool_positions);
    glm_forward *f = calloc(1, sizeof *f);
    if (!f)
        return glm_errorf(GLM_ERR_NOMEM, "forward: out of memory");
    f->m = m, f->b = b, f->n_batch = n_batch, f->n_ctx = n_ctx;
    f->fold = GLM_FOLD_ATTN | GLM_FOLD_FFN;
    int64_t n_pages = (pool_positions + GLM_KV_PAGE - 1) / GLM_KV_PAGE;
    glm_status st = glm_kvpool_create(&f->pool, b, hp->num_hidden_layers, n_pages, GLM_KV_PAGE, hp->kv_lora_rank,
                                      hp->qk_rope_head_dim);
    if (st == GLM_OK && m->mtp)
        st = glm_kvpool_create(&f->mtp_pool, b, 1, n_pages, GLM_KV_PAGE, hp->kv_lora_rank, hp->qk_rope_head_dim);
    if (st == GLM_OK)
        st = seq_init(f, &f->own);
    f->cur = &f->own;
    if (st == GLM_OK && (!(f->h_tok = malloc(sizeof(int32_t) * (size_t)n_batch)) ||
                         !(f->h_items = malloc(sizeof(glm_step_item) * (size_t)n_batch)) ||
                         !(f->h_runs = malloc(sizeof(int32_t) * (size_t)n_batch)) ||
                         !(f->h_ends = malloc(sizeof(int64_t) * (size_t)n_batch))))
        st = glm_errorf(GLM_ERR_NOMEM, "forward: out of memory");
    if (st == GLM_OK)
        st = alloc_bufs(f);
    if (st != GLM_OK) {
        glm_forward_destroy(f);
        return st;
    }
    *out = f;
    return GLM_OK;
}

glm_status glm_forward_create(glm_forward **out, const glm_model *m, glm_backend *b, int64_t n_ctx, int n_batch)
{
    if (n_batch > n_ctx)
        n_batch = (int)n_ctx;
    return glm_forward_create_pool(out, m, b, n_ctx, n_batch, n_ctx);
}

void glm_forward_destroy(glm_forward *f)
{
    if (!f)
        return;
    free_bufs(f);
    if (f->pool)
        seq_fini(&f->own);
    glm_kvpool_destroy(f->pool);
    glm_kvpool_destroy(f->mtp_pool);
    free(f->h_meta);
    free(f->h_tok);
    free(f->h_items);
    free(f->h_runs);
    free(f->h_ends);
    free(f->h_logits);
    free(f);
}
