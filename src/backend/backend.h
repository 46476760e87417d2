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
 * The latent KV cache is paged (engine/kvcache.h): one step may hold rows of several
 * sequences, each row at its own position and reading its own sequence's pages, all given
 * in device I32 buffers (glm_kv_rows), so nothing about positions is baked into a recording.
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

/* The rows of one step over a paged cache. Row t sits at position pos[t] of its sequence,
 * whose page ids start at element ptab[t] of `pages`; position i of that sequence lives in
 * pool row pages[ptab[t] + i / page_size]·page_size + i % page_size. Attention for row t
 * covers positions 0..pos[t] of its sequence (causal). The host-side bounds size dispatches. */
typedef struct glm_kv_rows {
    glm_dview pos;   /* I32 [T][1] */
    glm_dview ptab;  /* I32 [T][1] */
    glm_dview pages; /* I32 [1][n]: the page lists of the step, one after another */
    int page_size;
    int64_t max_len; /* ≥ pos[t] + 1 for every row */
} glm_kv_rows;

/* Which MLA form a backend uses (model-spec §2.5). AUTO: naive for a run of rows of one
 * sequence that starts at position 0 with more than one row, absorbed otherwise. A backend
 * may use the absorbed form for every row (it is the same function; Vulkan does). */
typedef enum glm_mla_mode {
    GLM_MLA_AUTO = 0,
    GLM_MLA_NAIVE,
    GLM_MLA_ABSORBED
} glm_mla_mode;

typedef struct glm_backend_ops {
    const char *name;
    void (*destroy)(glm_backend *b);
    /* A buffer of n elements of dtype, viewed as [rows][cols] contiguous. */
    glm_status (*alloc)(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols);
    /* The same for a small buffer the host rewrites every step (step rows, page lists): kept
     * in host-visible memory where the backend has it, so an upload is a plain copy. */
    glm_status (*alloc_host)(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols);
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
     * by position pos[t] (I32 [T][1]; every pos[t] < max_pos) (model-spec §2.4, adjacent pairs). */
    glm_status (*rope)(glm_backend *b, glm_dview x, int n_heads, int head_dim, int rope_off, int rope_dim,
                       glm_dview pos, int64_t max_pos, float theta);
    /* Scatter: src row t goes to the pool row of position pos[t] of its sequence (r). */
    glm_status (*kv_write)(glm_backend *b, glm_dview pool /*[rows][W]*/, glm_dview src /*[T][W]*/,
                           const glm_kv_rows *r);
    /* MLA of rows t = 0..s->T-1 over their sequences' cached positions 0..pos[t] (model-spec
     * §2.3 naive / §2.5 absorbed); c and kr view the pool ([rows][Rkv], [rows][dr], any
     * stride); k_b, v_b are attn_k_b [H][Rkv][dn] and attn_v_b [H][dv][Rkv]; s->pos0 unused. */
    glm_status (*mla_attention)(glm_backend *b, glm_dview out /*[T][H*dv]*/, glm_dview q /*[T][H*(dn+dr)]*/,
                                glm_dview c, glm_dview kr, const glm_tensor *k_b, const glm_tensor *v_b,
                                const glm_mla_shape *s, const glm_kv_rows *r, glm_mla_mode mode);
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
    /* y += Σ_j w[t][j] · W_{ids[t][j]} · x[t·k+j] in place: matmul_id of x (T·k rows) into tmp
     * followed by moe_combine_add(y, tmp, w, y), where tmp ([T·k][ne1]) is scratch the backend
     * may use for the rows it does not fuse. */
    glm_status (*matmul_id_combine_add)(glm_backend *b, glm_dview y /*[T][ne1]*/, glm_dview x /*[T*k][ne0]*/,
                                        const glm_tensor *w, glm_dview ids /*[T][k]*/, glm_dview wts /*[T][k]*/,
                                        glm_dview tmp);
    /* x += t, then y = RMSNorm(x; w, eps): add followed by rms_norm (y apart from x). */
    glm_status (*add_rms_norm)(glm_backend *b, glm_dview y, glm_dview x, glm_dview t, const glm_tensor *w, float eps);
    /* y = W · RMSNorm(x; g, eps): rms_norm into a scratch view followed by matmul (ids NULL,
     * wu NULL), matmul_id (ids [T][k]) or matmul_swiglu (wu the up weight), without the
     * scratch; x is left as it was. */
    glm_status (*rms_norm_matmul)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *g, float eps,
                                  const glm_tensor *w, const glm_tensor *wu, const glm_dview *ids);
    /* rms_norm_matmul of one x and gain into two products (ids, wu NULL): y1 = W1·RMSNorm(x),
     * y2 = W2·RMSNorm(x). A backend may compute them as one product where y2's columns follow
     * y1's in one buffer and its copies of W2's rows follow W1's (the attention's q_a and kv_a). */
    glm_status (*rms_norm_matmul2)(glm_backend *b, glm_dview y1, glm_dview y2, glm_dview x, const glm_tensor *g,
                                   float eps, const glm_tensor *w1, const glm_tensor *w2);
    /* y += W·x (slab 0 of w): matmul into a scratch view followed by add(y, y, scratch);
     * y must not share x's buffer. */
    glm_status (*matmul_add)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w);
    /* kv_write of src with its first n_norm columns written as RMSNorm(them; g, eps): rms_norm
     * of those columns in place followed by kv_write, except that src is left as it was. */
    glm_status (*kv_write_norm)(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r,
                                const glm_tensor *g, float eps, int n_norm);
    /* kv_write_norm with both ropes of the attention folded in: src columns [n_norm, n_norm +
     * rope_dim) rotated at pos[t] on the way into the cache (src left as it was), and
     * rope(q, n_heads, head_dim, rope_off, rope_dim, r->pos, r->max_len, theta) in place. */
    /* moe_route of the router's product with the norm folded in: logits = W · RMSNorm(x; g, eps)
     * (also left in logits), then ids and weights as moe_route gives them. xn (NULL: none; not
     * x's buffer): RMSNorm(x; g, eps) itself written there too, for the products that follow. */
    glm_status (*moe_gate_route)(glm_backend *b, glm_dview ids, glm_dview weights, glm_dview logits, glm_dview x,
                                 const glm_tensor *g, float eps, const glm_tensor *w, const glm_tensor *bias,
                                 const glm_route_params *p, const glm_dview *xn);
    /* rms_norm_matmul (ids NULL, wu NULL) followed by rope(y, n_heads, head_dim, rope_off,
     * rope_dim, r->pos, r->max_len, theta): the query's product and rope (the caller then passes
     * n_heads 0 to kv_write_rope, which leaves q alone). */
    glm_status (*rms_norm_matmul_rope)(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *g, float eps,
                                       const glm_tensor *w, const glm_kv_rows *r, int n_heads, int head_dim,
                                       int rope_off, int rope_dim, float theta);
    /* true when this backend holds layer L's shared expert as one more slab of its routed
     * ffn_{gate,up,down}_exps, at index E = n_routed_experts: then moe_gate_route takes ids and
     * weights views of k + 1 columns and writes id E with weight 1 into the last, and the routed
     * products and moe_combine_add compute the shared expert with the others. */
    bool (*moe_shared_slab)(glm_backend *b, const glm_layer *L);
    glm_status (*kv_write_rope)(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r,
                                const glm_tensor *g, float eps, int n_norm, glm_dview q, int n_heads, int head_dim,
                                int rope_off, int rope_dim, float theta);

    /* Optional (NULL: the backend's products are row by row whatever the row count). The rows
     * of the products that follow (matmul, matmul_id (k pairs a row), matmul_swiglu,
     * rms_norm_matmul, matmul_add and mla_attention) come as runs[0..n_runs) rows of one item
     * each, one after another; n_runs 0 forgets them. A backend with kernels for many rows (tiled) uses them only for the rows
     * of items of more than GLM_FEW_ROWS rows, and computes every other row exactly as a
     * product of that item alone would, so that a row's result never depends on the other
     * items of its step (the forward sets the runs of each step and of its lm_head rows).
     * A product whose rows do not add up to the runs is treated as one item. ends: NULL, or
     * each item's key bound (its last position + 1, a host bound like glm_kv_rows.max_len),
     * which sizes that item's attention. The arrays are copied. */
    glm_status (*set_runs)(glm_backend *b, const int32_t *runs, const int64_t *ends, int n_runs);

    /* Optional (NULL: none), for steps whose token ids never leave the device (greedy MTP
     * drafting, engine/mtp.c): ids (I32 [rows][1]) ← argmax of each row of x (ties to the lower
     * index) with the columns mask[0 .. n_mask) counting as -inf, at most GLM_ARGMAX_MASK of
     * them, left on the device; and get_rows with such device ids (each < ne[1]: the caller's
     * rows are argmaxes over at most ne[1] columns). */
    glm_status (*argmax_rows)(glm_backend *b, glm_dview ids, glm_dview x, const int32_t *mask, int n_mask);
    glm_status (*get_rows_dev)(glm_backend *b, glm_dview y, const glm_tensor *w, glm_dview ids);
} glm_backend_ops;

#define GLM_ARGMAX_MASK 8

/* Items of at most this many rows (decode, MTP verify of up to 7 drafts) are computed row by
 * row by every backend. */
#define GLM_FEW_ROWS 8

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
