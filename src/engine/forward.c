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

/* Is every RMSNorm folded into the product after it and every residual add into the product
 * in front of it? Only when the backend has both fused ops and no dump wants the
 * intermediate values (attn_norm, q_a, attn_out, ffn_norm, ffn_out are never materialized). */
static bool fold_norms(const glm_forward *f, const glm_dump *d)
{
    return OPS(f)->rms_norm_matmul && OPS(f)->matmul_add && !d;
}

/* Steps 1-6 with the norms folded: q_a and kv_a from RMSNorm(x) directly, q = W_qb RMSNorm(q_a);
 * the latent norm and kr copy go to the cache rows cc, kk as in the unfused path. */
static glm_status attn_in_fused(glm_forward *f, const glm_layer *L, glm_dview x, glm_dview qa, glm_dview kva,
                                glm_dview q, glm_dview cc, glm_dview kk)
{
    const glm_hparams *hp = &f->m->hp;
    const glm_backend_ops *o = OPS(f);
    const int R = hp->kv_lora_rank;
    GLM_TRY(o->rms_norm_matmul(B_(f), qa, x, L->attn_norm, hp->rms_norm_eps, L->attn_q_a, NULL, NULL));
    GLM_TRY(o->rms_norm_matmul(B_(f), kva, x, L->attn_norm, hp->rms_norm_eps, L->attn_kv_a_mqa, NULL, NULL));
    GLM_TRY(o->rms_norm(B_(f), cc, glm_dview_cols(kva, 0, R), L->attn_kv_a_norm, qkv_eps(hp)));
    GLM_TRY(o->copy(B_(f), kk, glm_dview_cols(kva, R, hp->qk_rope_head_dim)));
    return o->rms_norm_matmul(B_(f), q, qa, L->attn_q_a_norm, qkv_eps(hp), L->attn_q_b, NULL, NULL);
}

/* t1 = MLA(RMSNorm(x)) (§2.2, §2.3), the residual add left to the caller; leaves attn_norm
 * in s.a and o_proj output in s.t1. With fold_norms: x += MLA(RMSNorm(x)) instead. */
static glm_status attn_block(glm_forward *f, const glm_layer *L, glm_kv_layer *kv, int T, int64_t pos0,
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
    glm_dview cc = glm_dview_rows(kv->c, pos0, T), kk = glm_dview_rows(kv->kr, pos0, T);
    if (fold_norms(f, d)) {
        GLM_TRY(attn_in_fused(f, L, x, qa, kva, q, cc, kk));
    } else {
        GLM_TRY(o->rms_norm(b, a, x, L->attn_norm, hp->rms_norm_eps));
        GLM_TRY(dump_t(f, d, dir, "attn_norm", a));
        /* step 1-6: cq = RMSNorm(W_qa a; 1e-6), q = W_qb cq with RoPE on each head's last dr;
         * [c' | kr'] = W_kva a, c = RMSNorm(c'; 1e-6) and kr = RoPE(kr') straight into the latent
         * cache rows pos0.. (interleaved so that a backend may overlap the independent ops) */
        GLM_TRY(o->matmul(b, qa, a, L->attn_q_a, 0));
        GLM_TRY(o->matmul(b, kva, a, L->attn_kv_a_mqa, 0));
        GLM_TRY(o->rms_norm(b, qa, qa, L->attn_q_a_norm, qkv_eps(hp)));
        GLM_TRY(dump_t(f, d, dir, "q_a", qa));
        GLM_TRY(o->rms_norm(b, cc, glm_dview_cols(kva, 0, R), L->attn_kv_a_norm, qkv_eps(hp)));
        GLM_TRY(dump_t(f, d, dir, "kv_latent", cc));
        GLM_TRY(o->copy(b, kk, glm_dview_cols(kva, R, dr)));
        GLM_TRY(o->matmul(b, q, qa, L->attn_q_b, 0));
    }
    GLM_TRY(o->rope(b, kk, 1, dr, 0, dr, pos0, hp->rope_theta));
    GLM_TRY(o->rope(b, q, H, dn + dr, dn, dr, pos0, hp->rope_theta));
    /* step 7-10 over the cache, naive or absorbed (§2.5) */
    glm_mla_shape sh = { .T = T, .pos0 = (int)pos0, .n_heads = H, .qk_nope = dn, .qk_rope = dr,
                         .v_head = hp->v_head_dim, .kv_lora = R };
    bool absorbed = f->mla_mode == GLM_MLA_ABSORBED || (f->mla_mode == GLM_MLA_AUTO && (pos0 > 0 || T == 1));
    GLM_TRY(o->mla_attention(b, at, q, kv->c, kv->kr, L->attn_k_b, L->attn_v_b, &sh, absorbed));
    /* step 11 and the residual */
    if (fold_norms(f, d))
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
    glm_dview rl = glm_dview_rows(f->s.rl, 0, T), ids = glm_dview_rows(f->s.ids, 0, T);
    glm_dview rw = glm_dview_rows(f->s.rw, 0, T);
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
 * residual adds into the last products (fold_norms): the products of the normed x (shared
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
    glm_dview rl = glm_dview_rows(f->s.rl, 0, T), ids = glm_dview_rows(f->s.ids, 0, T);
    glm_dview rw = glm_dview_rows(f->s.rw, 0, T), sg = glm_dview_rows(f->s.sg, 0, T);
    glm_dview eg = glm_dview_rows(f->s.eg, 0, T * k), ed = glm_dview_rows(f->s.ed, 0, T * k);
    if (L->ffn_gate_shexp)
        GLM_TRY(o->rms_norm_matmul(b, sg, x, L->ffn_norm, eps, L->ffn_gate_shexp, L->ffn_up_shexp, NULL));
    GLM_TRY(o->rms_norm_matmul(b, rl, x, L->ffn_norm, eps, L->ffn_gate_inp, NULL, NULL));
    glm_route_params rp = route_params(hp);
    GLM_TRY(o->moe_route(b, ids, rw, rl, L->exp_probs_b, &rp));
    GLM_TRY(o->rms_norm_matmul(b, eg, x, L->ffn_norm, eps, L->ffn_gate_exps, L->ffn_up_exps, &ids));
    GLM_TRY(o->matmul_id(b, ed, eg, L->ffn_down_exps, ids));
    if (L->ffn_gate_shexp)
        GLM_TRY(o->matmul_add(b, x, sg, L->ffn_down_shexp));
    if (o->moe_combine_add) /* x = mixture + x, element by element in place */
        return o->moe_combine_add(b, x, ed, rw, x);
    glm_dview t1 = glm_dview_rows(f->s.t1, 0, T);
    GLM_TRY(o->moe_combine(b, t1, ed, rw));
    return o->add(b, x, x, t1);
}

glm_status glm_fwd_block(glm_forward *f, const glm_layer *L, glm_kv_layer *kv, int T, int64_t pos0, glm_dump *d,
                         const char *prefix, int layer_idx)
{
    const glm_hparams *hp = &f->m->hp;
    char dir[48];
    if (layer_idx >= 0)
        snprintf(dir, sizeof dir, "%slayer.%02d/", prefix, layer_idx);
    else
        snprintf(dir, sizeof dir, "%s", prefix);
    GLM_TRY(attn_block(f, L, kv, T, pos0, d, dir));
    if (fold_norms(f, d))
        return ffn_fused(f, L, T);
    glm_dview x = glm_dview_rows(f->s.x, 0, T), a = glm_dview_rows(f->s.a, 0, T);
    glm_dview t1 = glm_dview_rows(f->s.t1, 0, T);
    /* x += attention, then the FFN's norm */
    if (OPS(f)->add_rms_norm) {
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

/* One chunk of at most n_batch tokens of the main model. */
static glm_status eval_chunk(glm_forward *f, const int32_t *tokens, int T, float *logits, bool all_logits,
                             float *hidden, glm_dump *d)
{
    const glm_model *m = f->m;
    const glm_backend_ops *o = OPS(f);
    int64_t pos0 = f->kv->n;
    glm_dview x = glm_dview_rows(f->s.x, 0, T);
    GLM_TRY(o->get_rows(f->b, x, m->token_embd, tokens));
    for (int l = 0; l < m->hp.num_hidden_layers; l++)
        GLM_TRY(glm_fwd_block(f, &m->layers[l], &f->kv->layers[l], T, pos0, d, "", l));
    /* §4: final norm, lm_head */
    glm_dview fn = glm_dview_rows(f->s.fnorm, 0, T), lg = glm_dview_rows(f->s.logits, 0, T);
    GLM_TRY(o->rms_norm(f->b, fn, x, m->output_norm, m->hp.rms_norm_eps));
    GLM_TRY(dump_t(f, d, "", "final_norm", fn));
    if (hidden)
        GLM_TRY(o->download(f->b, hidden, fn));
    if (logits || d) {
        /* only the rows someone reads go through lm_head */
        glm_dview src = (all_logits || d) ? fn : glm_dview_rows(fn, T - 1, 1);
        glm_dview dst = glm_dview_rows(lg, 0, src.rows);
        GLM_TRY(o->matmul(f->b, dst, src, m->output, 0));
        GLM_TRY(dump_t(f, d, "", "logits", dst));
        GLM_TRY(glm_fwd_logits_out(f, dst, logits, all_logits));
    }
    f->kv->n = pos0 + T;
    return GLM_OK;
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

glm_status glm_forward_eval(glm_forward *f, const int32_t *tokens, int T, float *logits, bool all_logits,
                            float *hidden, glm_dump *dump)
{
    if (T <= 0)
        return glm_errorf(GLM_ERR_INVALID, "forward: no tokens to evaluate");
    if (f->kv->n + T > f->kv->n_ctx)
        return glm_errorf(GLM_ERR_INVALID, "forward: %lld + %d tokens exceed the context of %lld",
                          (long long)f->kv->n, T, (long long)f->kv->n_ctx);
    if (dump && T > f->n_batch)
        return glm_errorf(GLM_ERR_INVALID, "forward: a dump needs all %d tokens in one batch (n_batch %d)", T,
                          f->n_batch);
    const int64_t V = f->m->hp.vocab_size, D = f->m->hp.hidden_size;
    /* every id checked before any chunk runs, so a bad one leaves the cache as it was */
    GLM_TRY(glm_forward_check_ids(f, tokens, T));
    for (int done = 0; done < T;) {
        int n = T - done < f->n_batch ? T - done : f->n_batch;
        bool last = done + n == T;
        float *lg = NULL;
        if (logits && all_logits)
            lg = logits + (int64_t)done * V;
        else if (logits && last)
            lg = logits;
        GLM_TRY(eval_chunk(f, tokens + done, n, lg, all_logits, hidden ? hidden + (int64_t)done * D : NULL, dump));
        done += n;
    }
    return GLM_OK;
}

int64_t glm_forward_n_past(const glm_forward *f) { return f->kv->n; }
glm_status glm_forward_truncate(glm_forward *f, int64_t n) { return glm_kvcache_truncate(f->kv, n); }
void glm_forward_set_mla_mode(glm_forward *f, glm_mla_mode mode) { f->mla_mode = mode; }
const glm_model *glm_forward_model(const glm_forward *f) { return f->m; }

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
        { &f->s.ids, GLM_DT_I32, B, k },
        { &f->s.rw, GLM_DT_F32, B, k },
        { &f->s.eg, GLM_DT_F32, B * k, Im },
        { &f->s.eu, GLM_DT_F32, B * k, Im },
        { &f->s.ed, GLM_DT_F32, B * k, D },
        { &f->s.sg, GLM_DT_F32, B, Ish },
        { &f->s.su, GLM_DT_F32, B, Ish },
        { &f->s.sd, GLM_DT_F32, B, D },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        GLM_TRY(b->ops->alloc(b, t[i].v, t[i].dt, t[i].rows, t[i].cols));
    return GLM_OK;
}

static void free_bufs(glm_forward *f)
{
    glm_dview *v = (glm_dview *)&f->s;
    for (size_t i = 0; i < sizeof f->s / sizeof(glm_dview); i++)
        if (v[i].buf)
            f->b->ops->free(f->b, v[i].buf);
}

glm_status glm_forward_create(glm_forward **out, const glm_model *m, glm_backend *b, int64_t n_ctx, int n_batch)
{
    *out = NULL;
    const glm_hparams *hp = &m->hp;
    if (n_ctx <= 0 || n_batch <= 0)
        return glm_errorf(GLM_ERR_INVALID, "forward: bad context %lld or batch %d", (long long)n_ctx, n_batch);
    if (n_batch > n_ctx)
        n_batch = (int)n_ctx;
    glm_forward *f = calloc(1, sizeof *f);
    if (!f)
        return glm_errorf(GLM_ERR_NOMEM, "forward: out of memory");
    f->m = m, f->b = b, f->n_batch = n_batch;
    glm_status st = glm_kvcache_create(&f->kv, b, hp->num_hidden_layers, n_ctx, hp->kv_lora_rank,
                                       hp->qk_rope_head_dim);
    if (st == GLM_OK && m->mtp)
        st = glm_kvcache_create(&f->mtp_kv, b, 1, n_ctx, hp->kv_lora_rank, hp->qk_rope_head_dim);
    if (st == GLM_OK)
        st = alloc_bufs(f);
    if (st != GLM_OK) {
        glm_forward_destroy(f);
        return st;
    }
    *out = f;
    return GLM_OK;
}

void glm_forward_destroy(glm_forward *f)
{
    if (!f)
        return;
    free_bufs(f);
    glm_kvcache_destroy(f->kv);
    glm_kvcache_destroy(f->mtp_kv);
    free(f);
}
