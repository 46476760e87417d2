/* MLA attention over the latent cache (model-spec §2.3 naive, §2.5 absorbed). Both forms
 * read the same cache (c after kv_a_norm, kr after RoPE) and the same per-head weights in
 * the GGUF layout; they differ only in where the up-projections happen, so they agree up to
 * rounding (tests/test_ops.c checks that). Scores and softmax in fp32; masked (future)
 * positions are simply not visited, which equals a -inf score.
 * Not here: the projections around attention (q_a/q_b/kv_a/o: engine/forward.c), RoPE. */
#include "ref/ops.h"

#include <math.h>
#include <string.h>

size_t glm_ref_mla_scratch_floats(const glm_mla_shape *s)
{
    size_t n_kv = (size_t)s->pos0 + (size_t)s->T;
    size_t naive = n_kv * ((size_t)s->qk_nope + (size_t)s->v_head + 1);
    size_t absorbed = n_kv + 2 * (size_t)s->kv_lora;
    return naive > absorbed ? naive : absorbed;
}

/* p[0..n) ← softmax(p[0..n)), fp32, max-subtracted as torch does. */
static void softmax_inplace(float *p /*[n]*/, int n)
{
    float mx = p[0];
    for (int j = 1; j < n; j++)
        mx = p[j] > mx ? p[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < n; j++)
        p[j] /= sum;
}

void glm_ref_mla_naive(float *out /*[T][H*dv]*/, const float *q /*[T][H*(dn+dr)]*/,
                       const float *c /*[pos0+T][Rkv]*/, const float *kr /*[pos0+T][dr]*/,
                       const float *wk /*[H][Rkv][dn]*/, const float *wv /*[H][dv][Rkv]*/,
                       const glm_mla_shape *s, float *scratch)
{
    const int H = s->n_heads, dn = s->qk_nope, dr = s->qk_rope, dv = s->v_head, R = s->kv_lora;
    const int dqk = dn + dr, n_kv = s->pos0 + s->T;
    const float scale = (float)(1.0 / sqrt((double)dqk)); /* §2.3 step 8: 1/sqrt(dn+dr) */
    float *kn = scratch;                              /* [n_kv][dn] */
    float *v = kn + (size_t)n_kv * dn;                /* [n_kv][dv] */
    float *p = v + (size_t)n_kv * dv;                 /* [n_kv] */
    for (int h = 0; h < H; h++) {
        const float *wkh = wk + (size_t)h * R * dn;   /* [Rkv][dn] */
        const float *wvh = wv + (size_t)h * dv * R;   /* [dv][Rkv] */
        /* step 7: kn_j = W_UK c_j, v_j = W_UV c_j for every cached position */
        for (int j = 0; j < n_kv; j++) {
            const float *cj = c + (size_t)j * R;
            for (int i = 0; i < dn; i++) {
                float acc = 0.0f;
                for (int k = 0; k < R; k++)
                    acc += wkh[(size_t)k * dn + i] * cj[k];
                kn[(size_t)j * dn + i] = acc;
            }
            for (int d = 0; d < dv; d++) {
                float acc = 0.0f;
                for (int k = 0; k < R; k++)
                    acc += wvh[(size_t)d * R + k] * cj[k];
                v[(size_t)j * dv + d] = acc;
            }
        }
        for (int t = 0; t < s->T; t++) {
            const float *qh = q + ((size_t)t * H + h) * dqk; /* [dn | dr] */
            int n_vis = s->pos0 + t + 1;                  /* causal: keys 0..pos0+t */
            for (int j = 0; j < n_vis; j++) {
                float dot = 0.0f;
                for (int i = 0; i < dn; i++)
                    dot += qh[i] * kn[(size_t)j * dn + i];
                for (int i = 0; i < dr; i++)
                    dot += qh[dn + i] * kr[(size_t)j * dr + i];
                p[j] = dot * scale;
            }
            softmax_inplace(p, n_vis);
            float *o = out + ((size_t)t * H + h) * dv;
            for (int d = 0; d < dv; d++) {
                float acc = 0.0f;
                for (int j = 0; j < n_vis; j++)
                    acc += p[j] * v[(size_t)j * dv + d];
                o[d] = acc;
            }
        }
    }
}

void glm_ref_mla_absorbed(float *out /*[T][H*dv]*/, const float *q /*[T][H*(dn+dr)]*/,
                          const float *c /*[pos0+T][Rkv]*/, const float *kr /*[pos0+T][dr]*/,
                          const float *wk /*[H][Rkv][dn]*/, const float *wv /*[H][dv][Rkv]*/,
                          const glm_mla_shape *s, float *scratch)
{
    const int H = s->n_heads, dn = s->qk_nope, dr = s->qk_rope, dv = s->v_head, R = s->kv_lora;
    const int dqk = dn + dr;
    const float scale = (float)(1.0 / sqrt((double)dqk)); /* §2.5: still 1/sqrt(dn+dr) */
    float *qlat = scratch;                   /* [Rkv] */
    float *u = qlat + R;                     /* [Rkv] */
    float *p = u + R;                        /* [n_kv] */
    for (int t = 0; t < s->T; t++) {
        int n_vis = s->pos0 + t + 1;
        for (int h = 0; h < H; h++) {
            const float *qh = q + ((size_t)t * H + h) * dqk;
            const float *wkh = wk + (size_t)h * R * dn;
            const float *wvh = wv + (size_t)h * dv * R;
            /* qlat[k] = Σ_i W_UK[i][k] qn[i] = Σ_i wk[h][k][i] qn[i] */
            for (int k = 0; k < R; k++) {
                float acc = 0.0f;
                for (int i = 0; i < dn; i++)
                    acc += wkh[(size_t)k * dn + i] * qh[i];
                qlat[k] = acc;
            }
            for (int j = 0; j < n_vis; j++) {
                const float *cj = c + (size_t)j * R;
                float dot = 0.0f;
                for (int k = 0; k < R; k++)
                    dot += qlat[k] * cj[k];
                for (int i = 0; i < dr; i++)
                    dot += qh[dn + i] * kr[(size_t)j * dr + i];
                p[j] = dot * scale;
            }
            softmax_inplace(p, n_vis);
            /* u = Σ_j P_j c_j: the probability-weighted latent */
            for (int k = 0; k < R; k++)
                u[k] = 0.0f;
            for (int j = 0; j < n_vis; j++)
                glm_ref_axpy(u, p[j], c + (size_t)j * R, R);
            float *o = out + ((size_t)t * H + h) * dv;
            for (int d = 0; d < dv; d++) {
                float acc = 0.0f;
                for (int k = 0; k < R; k++)
                    acc += wvh[(size_t)d * R + k] * u[k];
                o[d] = acc;
            }
        }
    }
}

void glm_ref_paged_gather(float *dst /*[n][cols]*/, const float *pool, int64_t ld, int64_t cols,
                          const int32_t *pages, int page_size, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t row = (int64_t)pages[i / page_size] * page_size + i % page_size;
        memcpy(dst + i * cols, pool + row * ld, (size_t)cols * sizeof(float));
    }
}
