/* Scalar reference kernels of the GLM-4.7-Flash forward pass (model-spec §2-§5): RMSNorm,
 * RoPE on adjacent pairs, MLA attention in its naive and absorbed forms, sigmoid top-k
 * routing, SwiGLU, residual add, argmax. Plain loops over float32 host arrays; every pointer
 * carries its shape in a comment; no allocation (callers pass scratch).
 * Not here: dequantization (ref/dequant.h), products with quantized weights (ref/matmul.h),
 * sampling (ref/sampler.h), files, tokens or tensors by name. */
#ifndef GLM_REF_OPS_H
#define GLM_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* y = w ⊙ x / sqrt(mean(x²) + eps)   (model-spec §2.1). y may alias x. */
void glm_ref_rms_norm(float *y /*[n]*/, const float *x /*[n]*/, const float *w /*[n]*/, int64_t n, float eps);

/* Rotate the `dim` channels of x as dim/2 adjacent pairs (x[2i], x[2i+1]) by the angle
 * pos · theta^(-2i/dim), in place (model-spec §2.4, rope_interleave = true; GPT-J/NORM). */
void glm_ref_rope(float *x /*[dim]*/, int dim, int64_t pos, float theta);

/* Shapes of one MLA attention call (model-spec §2.3/§2.5). Queries are rows t = 0..T-1 at
 * positions pos0 + t; the latent cache holds positions 0..pos0+T-1; row t sees keys j ≤ pos0+t. */
typedef struct glm_mla_shape {
    int T, pos0;
    int n_heads;      /* H */
    int qk_nope;      /* dn */
    int qk_rope;      /* dr */
    int v_head;       /* dv */
    int kv_lora;      /* Rkv */
} glm_mla_shape;

/* Floats of scratch either form needs for a cache of n_kv = pos0 + T positions. */
size_t glm_ref_mla_scratch_floats(const glm_mla_shape *s);

/* Naive MLA (HF's computation, §2.3 steps 7-10): per head expand kn = W_UK c and v = W_UV c
 * for every cached position, scores scale·(qn·kn + qr·kr), causal softmax in fp32, o = Σ P v.
 * wk is attn_k_b as stored in GGUF (wk[h][k][i] = W_UK^h[i][k]), wv is attn_v_b
 * (wv[h][d][k] = W_UV^h[d][k]). scale = 1/sqrt(dn+dr). */
void glm_ref_mla_naive(float *out /*[T][H*dv]*/, const float *q /*[T][H*(dn+dr)], rope applied*/,
                       const float *c /*[pos0+T][Rkv]*/, const float *kr /*[pos0+T][dr], rope applied*/,
                       const float *wk /*[H][Rkv][dn]*/, const float *wv /*[H][dv][Rkv]*/,
                       const glm_mla_shape *s, float *scratch /*[glm_ref_mla_scratch_floats]*/);

/* Absorbed MLA (§2.5): qlat_h = W_UK^hᵀ qn_h, scores scale·([qlat|qr]·[c|kr]) (one shared KV
 * head of width Rkv+dr, scale still 1/sqrt(dn+dr)), u_h = Σ P c, o_h = W_UV^h u_h.
 * Same arguments and result as glm_ref_mla_naive up to rounding. */
void glm_ref_mla_absorbed(float *out /*[T][H*dv]*/, const float *q /*[T][H*(dn+dr)]*/,
                          const float *c /*[pos0+T][Rkv]*/, const float *kr /*[pos0+T][dr]*/,
                          const float *wk /*[H][Rkv][dn]*/, const float *wv /*[H][dv][Rkv]*/,
                          const glm_mla_shape *s, float *scratch /*[glm_ref_mla_scratch_floats]*/);

/* Positions 0..n-1 of one sequence of a paged cache, gathered contiguously: row i of dst
 * [n][cols] is pool row pages[i / page_size]·page_size + i % page_size (stride ld), which is
 * how every backend addresses the cache (engine/kvcache.h); the gathered rows then feed the
 * contiguous functions above, so paged attention equals contiguous attention exactly. */
void glm_ref_paged_gather(float *dst /*[n][cols]*/, const float *pool, int64_t ld, int64_t cols,
                          const int32_t *pages, int page_size, int64_t n);

/* Router settings (model-spec §3.2), HF config names. */
typedef struct glm_route_params {
    int n_routed_experts;       /* E */
    int num_experts_per_tok;    /* k */
    int n_group, topk_group;    /* group limit; 1/1 disables it */
    bool sigmoid;               /* true: σ(z) (GLM-4.7-Flash); false: softmax over E */
    bool norm_topk_prob;
    float routed_scaling_factor;
} glm_route_params;

/* Route one token: scores s = σ(z) (or softmax), selection on s + bias (bias may be NULL),
 * group limit (groups outside the topk_group best, by the sum of their two largest selection
 * scores, drop to -inf), top-k with ties to the lower index, weights from the unbiased s,
 * normalized over the k (+1e-20, as HF) when norm_topk_prob, then × routed_scaling_factor.
 * ids come out ascending, weights in the same order. Returns false on a bad shape
 * (k > E, E % n_group != 0, topk_group out of range, or too few experts in the kept groups). */
bool glm_ref_moe_route(int32_t *ids /*[k]*/, float *weights /*[k]*/, const float *logits /*[E]*/,
                       const float *bias /*[E] or NULL*/, const glm_route_params *p,
                       float *scratch /*[2*E]*/);

/* y = SiLU(g) ⊙ u, SiLU(z) = z·σ(z)   (model-spec §3.1). y may alias g or u. */
void glm_ref_swiglu(float *y /*[n]*/, const float *g /*[n]*/, const float *u /*[n]*/, int64_t n);

/* y = a + b (residual add). y may alias a or b. */
void glm_ref_add(float *y /*[n]*/, const float *a /*[n]*/, const float *b /*[n]*/, int64_t n);

/* y += alpha · x */
void glm_ref_axpy(float *y /*[n]*/, float alpha, const float *x /*[n]*/, int64_t n);

/* Index of the largest element; ties go to the lower index; NaN never wins. n ≥ 1. */
int64_t glm_ref_argmax(const float *x /*[n]*/, int64_t n);

#endif
