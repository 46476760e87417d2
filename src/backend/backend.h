/* The op interface between the layer graph (engine/forward.c) and whatever executes it
 * (ARCHITECTURE.md "The two paths"): a small table of operations on device buffers. The
 * reference backend (backend/ref.c) runs each op at once on host memory through ref/; a
 * Vulkan backend records the same ops, with the same arguments, into a command buffer.
 *
 * Activations are float32 (or int32 for expert ids) in device buffers addressed through
 * 2-D views (rows × cols with a row stride), so heads, the [c | kr] halves of kv_a and the
 * [enorm | hnorm] halves of the MTP input need no copies. Weights are passed as the model's
 * glm_tensor in its file form (quantized blocks or BF16); a backend dequantizes them itself.
 * Host pointers appear only in upload/download, in get_rows' token ids and in argmax's
 * result: everything else stays on the device.
 * Not here: the graph (engine/forward.c), the cache layout policy (engine/kvcache.c). */
#ifndef GLM_BACKEND_H
#define GLM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "ref/ops.h"
#include "util/status.h"

typedef struct glm_backend glm_backend;
typedef struct glm_dbuf glm_dbuf; /* one device allocation (backend-defined) */

typedef enum glm_dtype { GLM_DT_F32 = 0, GLM_DT_I32 = 1 } glm_dtype;

/* rows × cols elements of type dt starting at element `off` of buf, row r at off + r·ld. */
typedef struct glm_dview {
    glm_dbuf *buf;
    glm_dtype dt;
    int64_t off, rows, cols, ld;
} glm_dview;

static inline glm_dview glm_dview_rows(glm_dview v, int64_t r0, int64_t n)
{
    v.off += r0 * v.ld;
    v.rows = n;
    return v;
}
static inline glm_dview glm_dview_cols(glm_dview v, int64_t c0, int64_t n)
{
    v.off += c0;
    v.cols = n;
    return v;
}

typedef struct glm_backend_ops {
    const char *name;
    void (*destroy)(glm_backend *b);
    /* A buffer of n elements of dtype, viewed as [rows][cols] contiguous. */
    glm_status (*alloc)(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols);
    void (*free)(glm_backend *b, glm_dbuf *buf);
    glm_status (*upload)(glm_backend *b, glm_dview dst, const void *host /*[rows][cols]*/);
    glm_status (*download)(glm_backend *b, void *host /*[rows][cols]*/, glm_dview src);
    /* Wait for everything recorded so far (a no-op for the reference backend). */
    glm_status (*sync)(glm_backend *b);

    /* y[t] = row ids[t] of w (token embedding lookup); ids are host ints, checked < ne[1]. */
    glm_status (*get_rows)(glm_backend *b, glm_dview y /*[T][ne0]*/, const glm_tensor *w, const int32_t *ids);
    /* y[t] = RMSNorm(x[t]; w, eps) (model-spec §2.1). */
    glm_status (*rms_norm)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, float eps);
    /* y[t] = W_slab · x[t]: W is slab `slab` of w (0 for 2-D), rows ne[1], cols ne[0]. */
    glm_status (*matmul)(glm_backend *b, glm_dview y /*[T][ne1]*/, glm_dview x /*[T][ne0]*/, const glm_tensor *w,
                         int64_t slab);
    /* Expert products: y[t·k+j] = W_{ids[t][j]} · x[t] when x has T rows, or · x[t·k+j] when
     * x has T·k rows (model-spec §3.2 step 7). ids is an I32 view [T][k]. */
    glm_status (*matmul_id)(glm_backend *b, glm_dview y /*[T*k][ne1]*/, glm_dview x, const glm_tensor *w,
                            glm_dview ids /*[T][k]*/);
    /* In place: for each row t and head h, rotate channels [h·head_dim + rope_off, +rope_dim)
     * by position pos0 + t (model-spec §2.4, adjacent pairs). */
    glm_status (*rope)(glm_backend *b, glm_dview x, int n_heads, int head_dim, int rope_off, int rope_dim,
                       int64_t pos0, float theta);
    /* MLA over the latent cache rows 0..pos0+T-1 (model-spec §2.3 naive / §2.5 absorbed);
     * k_b, v_b are attn_k_b [H][Rkv][dn] and attn_v_b [H][dv][Rkv]. */
    glm_status (*mla_attention)(glm_backend *b, glm_dview out /*[T][H*dv]*/, glm_dview q /*[T][H*(dn+dr)]*/,
                                glm_dview c /*[ctx][Rkv]*/, glm_dview kr /*[ctx][dr]*/, const glm_tensor *k_b,
                                const glm_tensor *v_b, const glm_mla_shape *s, bool absorbed);
    /* Router (model-spec §3.2): ids (I32, ascending) and weights [T][k] from logits [T][E];
     * bias is exp_probs_b or NULL. */
    glm_status (*moe_route)(glm_backend *b, glm_dview ids, glm_dview weights, glm_dview logits,
                            const glm_tensor *bias, const glm_route_params *p);
    /* y[t] = Σ_j w[t][j] · x[t·k+j] (the routed experts' mixture). */
    glm_status (*moe_combine)(glm_backend *b, glm_dview y /*[T][N]*/, glm_dview x /*[T*k][N]*/,
                              glm_dview w /*[T][k]*/);
    glm_status (*swiglu)(glm_backend *b, glm_dview y, glm_dview g, glm_dview u);
    glm_status (*add)(glm_backend *b, glm_dview y, glm_dview a, glm_dview c);
    glm_status (*copy)(glm_backend *b, glm_dview dst, glm_dview src); /* e.g. KV write */
    /* ids[t] = argmax of row t (ties → lower index), returned to the host. */
    glm_status (*argmax)(glm_backend *b, int32_t *ids /*[rows]*/, glm_dview x);

    /* Optional fused ops: NULL where a backend has none, and the engine runs the unfused ops.
     * y = SiLU(Wg·x) ⊙ (Wu·x), what matmul (ids NULL) or matmul_id (ids [T][k]) of wg and wu
     * followed by swiglu computes; y has the rows matmul / matmul_id would give. */
    glm_status (*matmul_swiglu)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *wg, const glm_tensor *wu,
                                const glm_dview *ids);
    /* y = moe_combine(x, w) + a: the routed mixture plus the shared expert, as moe_combine
     * followed by add computes it. */
    glm_status (*moe_combine_add)(glm_backend *b, glm_dview y /*[T][N]*/, glm_dview x /*[T*k][N]*/,
                                  glm_dview w /*[T][k]*/, glm_dview a /*[T][N]*/);
    /* x += t, then y = RMSNorm(x; w, eps): add followed by rms_norm (y apart from x). */
    glm_status (*add_rms_norm)(glm_backend *b, glm_dview y, glm_dview x, glm_dview t, const glm_tensor *w, float eps);
    /* y = W · RMSNorm(x; g, eps): rms_norm into a scratch view followed by matmul (ids NULL,
     * wu NULL), matmul_id (ids [T][k]) or matmul_swiglu (wu the up weight), without the
     * scratch; x is left as it was. */
    glm_status (*rms_norm_matmul)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *g, float eps,
                                  const glm_tensor *w, const glm_tensor *wu, const glm_dview *ids);
    /* y += W·x (slab 0 of w): matmul into a scratch view followed by add(y, y, scratch);
     * y must not share x's buffer. */
    glm_status (*matmul_add)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w);
} glm_backend_ops;

struct glm_backend {
    const glm_backend_ops *ops;
    const glm_model *model;
    void *impl;
};

/* The reference backend (host memory, ref/ kernels). */
glm_status glm_backend_ref_create(glm_backend **out, const glm_model *m);
/* By name: "auto" (or NULL: Vulkan when a GPU is present, else ref), "ref", "vulkan" (the best
 * device) or "vulkan:N" (device N). Unknown names fail with one line. */
glm_status glm_backend_create(glm_backend **out, const char *name, const glm_model *m);

/* Weight-loading progress: a backend that copies weights (Vulkan: to the GPU) reports each
 * tensor once it is copied. One process-wide hook, meant for a front end's progress bar;
 * none is set by default. Not thread-safe: set it before loading, clear it after. */
typedef void (*glm_load_progress_fn)(void *ctx, const glm_tensor *t);
void glm_load_progress_set(glm_load_progress_fn fn, void *ctx);
void glm_load_progress_report(const glm_tensor *t);
void glm_backend_destroy(glm_backend *b); /* NULL is a no-op */

#endif
