/* The reference backend: every op of backend.h runs at once on host memory by calling the
 * scalar kernels in ref/. Weights are dequantized one row at a time from the mapped file
 * (ref/dequant.h, ref/matmul.h) into a scratch row; nothing ever holds a whole weight matrix in float
 * except the per-head attention slabs (attn_k_b/attn_v_b, a few MB at full size).
 * Not here: the math itself (ref/), the graph (engine/forward.c). */
#include "backend/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/dequant.h"
#include "ref/matmul.h"

struct glm_dbuf {
    glm_dtype dt;
    int64_t n;
    void *data;
};

typedef struct ref_impl {
    float *scratch;
    size_t scratch_n;
    int64_t *pairs; /* matmul_id's (input row, output row) lists */
    size_t pairs_n;
} ref_impl;

static float *fptr(glm_dview v, int64_t r) { return (float *)v.buf->data + v.off + r * v.ld; }
static int32_t *iptr(glm_dview v, int64_t r) { return (int32_t *)v.buf->data + v.off + r * v.ld; }

/* Grow the scratch to n floats (growth only: the decode loop stops allocating after the
 * first step of each shape). */
static glm_status scratch(glm_backend *b, size_t n, float **out)
{
    ref_impl *im = b->impl;
    if (n > im->scratch_n) {
        float *p = realloc(im->scratch, n * sizeof *p);
        if (!p)
            return glm_errorf(GLM_ERR_NOMEM, "ref backend: cannot allocate %zu floats of scratch", n);
        im->scratch = p;
        im->scratch_n = n;
    }
    *out = im->scratch;
    return GLM_OK;
}

static glm_status check_view(glm_dview v, glm_dtype dt, const char *what)
{
    if (!v.buf || v.buf->dt != dt || v.dt != dt || v.off < 0 || v.rows < 0 || v.cols < 0 || v.ld < v.cols ||
        (v.rows > 0 && v.off + (v.rows - 1) * v.ld + v.cols > v.buf->n))
        return glm_errorf(GLM_ERR_INVALID, "ref backend: %s view out of its buffer or of the wrong type", what);
    return GLM_OK;
}

static glm_status check_weight(const glm_tensor *w, int64_t cols, const char *what)
{
    if (!w)
        return glm_errorf(GLM_ERR_INVALID, "ref backend: %s: missing weight", what);
    if (!glm_ref_dequant_supported(w->type))
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: type %s has no reference dequantizer", w->name,
                          glm_type_name(w->type));
    if (w->ne[0] != cols || glm_row_bytes(w->type, w->ne[0]) == 0)
        return glm_errorf(GLM_ERR_INVALID, "%s: %s expects rows of %lld, tensor has %lld", w->name, what,
                          (long long)cols, (long long)w->ne[0]);
    return GLM_OK;
}

static glm_status ref_alloc(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols)
{
    (void)b;
    if (rows <= 0 || cols <= 0 || rows > (INT64_C(1) << 40) / cols)
        return glm_errorf(GLM_ERR_INVALID, "ref backend: bad buffer shape %lld x %lld", (long long)rows,
                          (long long)cols);
    glm_dbuf *buf = calloc(1, sizeof *buf);
    void *data = calloc((size_t)(rows * cols), 4);
    if (!buf || !data) {
        free(buf), free(data);
        return glm_errorf(GLM_ERR_NOMEM, "ref backend: cannot allocate %lld x %lld", (long long)rows,
                          (long long)cols);
    }
    buf->dt = dt, buf->n = rows * cols, buf->data = data;
    *out = (glm_dview){ .buf = buf, .dt = dt, .off = 0, .rows = rows, .cols = cols, .ld = cols };
    return GLM_OK;
}

static void ref_free(glm_backend *b, glm_dbuf *buf)
{
    (void)b;
    if (buf)
        free(buf->data);
    free(buf);
}

static glm_status ref_upload(glm_backend *b, glm_dview dst, const void *host)
{
    (void)b;
    GLM_TRY(check_view(dst, dst.dt, "upload"));
    for (int64_t r = 0; r < dst.rows; r++)
        memcpy((char *)dst.buf->data + 4 * (dst.off + r * dst.ld), (const char *)host + 4 * r * dst.cols,
               (size_t)dst.cols * 4);
    return GLM_OK;
}

static glm_status ref_download(glm_backend *b, void *host, glm_dview src)
{
    (void)b;
    GLM_TRY(check_view(src, src.dt, "download"));
    for (int64_t r = 0; r < src.rows; r++)
        memcpy((char *)host + 4 * r * src.cols, (const char *)src.buf->data + 4 * (src.off + r * src.ld),
               (size_t)src.cols * 4);
    return GLM_OK;
}

static glm_status ref_sync(glm_backend *b)
{
    (void)b;
    return GLM_OK;
}

static glm_status ref_get_rows(glm_backend *b, glm_dview y, const glm_tensor *w, const int32_t *ids)
{
    (void)b;
    GLM_TRY(check_view(y, GLM_DT_F32, "get_rows"));
    GLM_TRY(check_weight(w, y.cols, "get_rows"));
    for (int64_t t = 0; t < y.rows; t++) {
        if (ids[t] < 0 || ids[t] >= w->ne[1])
            return glm_errorf(GLM_ERR_INVALID, "token id %d at position %lld is outside the vocabulary [0, %lld)",
                              ids[t], (long long)t, (long long)w->ne[1]);
        glm_ref_dequant_row(fptr(y, t), glm_tensor_row(w, 0, ids[t]), w->type, w->ne[0]);
    }
    return GLM_OK;
}

static glm_status ref_rms_norm(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, float eps)
{
    GLM_TRY(check_view(y, GLM_DT_F32, "rms_norm y"));
    GLM_TRY(check_view(x, GLM_DT_F32, "rms_norm x"));
    GLM_TRY(check_weight(w, x.cols, "rms_norm"));
    if (y.rows != x.rows || y.cols != x.cols)
        return glm_errorf(GLM_ERR_INVALID, "%s: rms_norm shapes differ", w->name);
    float *wf;
    GLM_TRY(scratch(b, (size_t)x.cols, &wf));
    glm_ref_dequant_row(wf, glm_tensor_row(w, 0, 0), w->type, w->ne[0]);
    for (int64_t t = 0; t < x.rows; t++)
        glm_ref_rms_norm(fptr(y, t), fptr(x, t), wf, x.cols, eps);
    return GLM_OK;
}

/* y[i] = W_slab · x[i] through ref/matmul (each weight row dequantized once for all rows).
 * Rows are gathered into / scattered from contiguous scratch when the views are strided or
 * (matmul_id) indirect: xrow[i] / yrow[i] name the view rows, NULL meaning i. */
static glm_status matmul_rows(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, int64_t slab,
                              const int64_t *xrow, const int64_t *yrow, int64_t ny)
{
    const int64_t K = w->ne[0], N = w->ne[1];
    bool direct = !xrow && !yrow && x.ld == K && y.ld == N;
    float *sc;
    GLM_TRY(scratch(b, (size_t)(K + (direct ? 0 : ny * (K + N))), &sc));
    float *xs = direct ? fptr(x, 0) : sc + K, *ys = direct ? fptr(y, 0) : sc + K + ny * K;
    if (!direct)
        for (int64_t i = 0; i < ny; i++)
            memcpy(xs + i * K, fptr(x, xrow ? xrow[i] : i), (size_t)K * 4);
    GLM_TRY(glm_ref_matmul(ys, glm_tensor_slab(w, slab), glm_tensor_row_bytes(w), w->type, N, K, xs, ny, sc));
    if (!direct)
        for (int64_t i = 0; i < ny; i++)
            memcpy(fptr(y, yrow ? yrow[i] : i), ys + i * N, (size_t)N * 4);
    return GLM_OK;
}

static glm_status ref_matmul(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, int64_t slab)
{
    GLM_TRY(check_view(y, GLM_DT_F32, "matmul y"));
    GLM_TRY(check_view(x, GLM_DT_F32, "matmul x"));
    GLM_TRY(check_weight(w, x.cols, "matmul"));
    int64_t n_slabs = w->n_dims >= 3 ? w->ne[2] : 1;
    if (y.cols != w->ne[1] || y.rows != x.rows || slab < 0 || slab >= n_slabs)
        return glm_errorf(GLM_ERR_INVALID, "%s: matmul output [%lld][%lld] or slab %lld does not fit [%lld][%lld]x%lld",
                          w->name, (long long)y.rows, (long long)y.cols, (long long)slab, (long long)w->ne[1],
                          (long long)w->ne[0], (long long)n_slabs);
    return matmul_rows(b, y, x, w, slab, NULL, NULL, x.rows);
}

static glm_status ref_matmul_id(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, glm_dview ids)
{
    GLM_TRY(check_view(y, GLM_DT_F32, "matmul_id y"));
    GLM_TRY(check_view(x, GLM_DT_F32, "matmul_id x"));
    GLM_TRY(check_view(ids, GLM_DT_I32, "matmul_id ids"));
    GLM_TRY(check_weight(w, x.cols, "matmul_id"));
    const int64_t T = ids.rows, k = ids.cols, E = w->n_dims >= 3 ? w->ne[2] : 1;
    if (y.rows != T * k || y.cols != w->ne[1] || (x.rows != T && x.rows != T * k))
        return glm_errorf(GLM_ERR_INVALID, "%s: matmul_id shapes do not fit", w->name);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < k; j++)
            if (iptr(ids, t)[j] < 0 || iptr(ids, t)[j] >= E)
                return glm_errorf(GLM_ERR_INVALID, "%s: expert id %d out of range [0, %lld)", w->name,
                                  iptr(ids, t)[j], (long long)E);
    /* Gather, per expert, the (input row, output row) pairs routed to it: one pass over the
     * expert's rows serves all its tokens. */
    ref_impl *im = b->impl;
    if ((size_t)(2 * T * k) > im->pairs_n) {
        int64_t *p = realloc(im->pairs, sizeof(int64_t) * 2 * (size_t)(T * k));
        if (!p)
            return glm_errorf(GLM_ERR_NOMEM, "matmul_id: out of memory");
        im->pairs = p;
        im->pairs_n = (size_t)(2 * T * k);
    }
    int64_t *pairs = im->pairs;
    for (int64_t e = 0; e < E; e++) {
        int64_t n = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < k; j++)
                if (iptr(ids, t)[j] == e)
                    n++;
        if (!n)
            continue;
        int64_t m = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < k; j++)
                if (iptr(ids, t)[j] == e) {
                    pairs[m] = x.rows == T ? t : t * k + j;
                    pairs[n + m] = t * k + j;
                    m++;
                }
        GLM_TRY(matmul_rows(b, y, x, w, e, pairs, pairs + n, n));
    }
    return GLM_OK;
}

static glm_status ref_rope(glm_backend *b, glm_dview x, int n_heads, int head_dim, int rope_off, int rope_dim,
                           glm_dview pos, int64_t max_pos, float theta)
{
    (void)b;
    GLM_TRY(check_view(x, GLM_DT_F32, "rope"));
    GLM_TRY(check_view(pos, GLM_DT_I32, "rope positions"));
    if ((int64_t)n_heads * head_dim > x.cols || rope_off + rope_dim > head_dim || rope_dim % 2 || pos.rows != x.rows)
        return glm_errorf(GLM_ERR_INVALID, "rope: %d heads of %d with rope [%d, +%d) do not fit %lld columns",
                          n_heads, head_dim, rope_off, rope_dim, (long long)x.cols);
    for (int64_t t = 0; t < x.rows; t++)
        if (iptr(pos, t)[0] < 0 || iptr(pos, t)[0] >= max_pos)
            return glm_errorf(GLM_ERR_INVALID, "rope: position %d outside [0, %lld)", iptr(pos, t)[0],
                              (long long)max_pos);
    for (int64_t t = 0; t < x.rows; t++)
        for (int h = 0; h < n_heads; h++)
            glm_ref_rope(fptr(x, t) + (int64_t)h * head_dim + rope_off, rope_dim, iptr(pos, t)[0], theta);
    return GLM_OK;
}

/* Check the step's rows (r) against a pool of pool_rows rows: every position's page exists. */
static glm_status check_kv_rows(const glm_kv_rows *r, int64_t T, int64_t pool_rows)
{
    GLM_TRY(check_view(r->pos, GLM_DT_I32, "kv positions"));
    GLM_TRY(check_view(r->ptab, GLM_DT_I32, "kv page offsets"));
    GLM_TRY(check_view(r->pages, GLM_DT_I32, "kv pages"));
    if (r->pos.rows != T || r->ptab.rows != T || r->page_size <= 0 || r->pages.rows != 1)
        return glm_errorf(GLM_ERR_INVALID, "kv rows: %lld positions / page offsets for %lld rows", (long long)r->pos.rows,
                          (long long)T);
    for (int64_t t = 0; t < T; t++) {
        int64_t p = iptr(r->pos, t)[0], o = iptr(r->ptab, t)[0];
        int64_t last = o + p / r->page_size;
        if (p < 0 || p >= r->max_len || o < 0 || last >= r->pages.cols)
            return glm_errorf(GLM_ERR_INVALID, "kv rows: row %lld (position %lld) has no page", (long long)t, (long long)p);
        for (int64_t i = o; i <= last; i++) {
            int64_t id = iptr(r->pages, 0)[i];
            if (id < 0 || (id + 1) * r->page_size > pool_rows)
                return glm_errorf(GLM_ERR_INVALID, "kv rows: page id %lld outside the pool", (long long)id);
        }
    }
    return GLM_OK;
}

static int64_t pool_row(const glm_kv_rows *r, int64_t t, int64_t i)
{
    const int32_t *pg = iptr(r->pages, 0) + iptr(r->ptab, t)[0];
    return (int64_t)pg[i / r->page_size] * r->page_size + i % r->page_size;
}

static glm_status ref_kv_write(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r)
{
    (void)b;
    GLM_TRY(check_view(pool, GLM_DT_F32, "kv_write pool"));
    GLM_TRY(check_view(src, GLM_DT_F32, "kv_write src"));
    GLM_TRY(check_kv_rows(r, src.rows, pool.rows));
    if (pool.cols != src.cols)
        return glm_errorf(GLM_ERR_INVALID, "kv_write: rows of %lld into a pool of %lld", (long long)src.cols,
                          (long long)pool.cols);
    for (int64_t t = 0; t < src.rows; t++)
        memmove(fptr(pool, pool_row(r, t, iptr(r->pos, t)[0])), fptr(src, t), (size_t)src.cols * 4);
    return GLM_OK;
}

/* Dequantize all slabs of a 3-D attention weight into dst [ne2][ne1][ne0]. */
static void dequant_all(float *dst, const glm_tensor *w)
{
    for (int64_t s = 0; s < w->ne[2]; s++)
        for (int64_t r = 0; r < w->ne[1]; r++)
            glm_ref_dequant_row(dst + (s * w->ne[1] + r) * w->ne[0], glm_tensor_row(w, s, r), w->type, w->ne[0]);
}

/* Rows of one sequence at consecutive positions form a group: its keys are gathered from the
 * pages once and the contiguous ref/ kernels run on the group as a prefill/decode chunk. */
static glm_status ref_mla_attention(glm_backend *b, glm_dview out, glm_dview q, glm_dview c, glm_dview kr,
                                    const glm_tensor *k_b, const glm_tensor *v_b, const glm_mla_shape *s,
                                    const glm_kv_rows *r, glm_mla_mode mode)
{
    const int H = s->n_heads, dqk = s->qk_nope + s->qk_rope, R = s->kv_lora, dr = s->qk_rope;
    GLM_TRY(check_view(out, GLM_DT_F32, "mla out"));
    GLM_TRY(check_view(q, GLM_DT_F32, "mla q"));
    GLM_TRY(check_view(c, GLM_DT_F32, "mla c"));
    GLM_TRY(check_view(kr, GLM_DT_F32, "mla kr"));
    GLM_TRY(check_weight(k_b, s->qk_nope, "attn_k_b"));
    GLM_TRY(check_weight(v_b, s->kv_lora, "attn_v_b"));
    if (q.rows != s->T || q.cols != (int64_t)H * dqk || q.ld != q.cols || out.rows != s->T ||
        out.cols != (int64_t)H * s->v_head || out.ld != out.cols || c.cols != R || kr.cols != dr ||
        kr.rows != c.rows || k_b->ne[1] != R || k_b->ne[2] != H || v_b->ne[1] != s->v_head || v_b->ne[2] != H)
        return glm_errorf(GLM_ERR_INVALID, "mla_attention: shapes do not fit (T %d, pool %lld rows)", s->T,
                          (long long)c.rows);
    GLM_TRY(check_kv_rows(r, s->T, c.rows));
    glm_mla_shape full = *s;
    full.T = 1, full.pos0 = (int)r->max_len - 1;
    size_t nk = (size_t)H * R * s->qk_nope, nv = (size_t)H * s->v_head * R;
    size_t ng = (size_t)r->max_len * (size_t)(R + dr);
    float *sc;
    GLM_TRY(scratch(b, nk + nv + ng + glm_ref_mla_scratch_floats(&full), &sc));
    dequant_all(sc, k_b);
    dequant_all(sc + nk, v_b);
    float *gc = sc + nk + nv, *gkr = gc + (size_t)r->max_len * R, *work = gc + ng;
    for (int64_t t0 = 0; t0 < s->T;) {
        int64_t t1 = t0 + 1;
        while (t1 < s->T && iptr(r->ptab, t1)[0] == iptr(r->ptab, t0)[0] &&
               iptr(r->pos, t1)[0] == iptr(r->pos, t1 - 1)[0] + 1)
            t1++;
        glm_mla_shape g = *s;
        g.T = (int)(t1 - t0), g.pos0 = iptr(r->pos, t0)[0];
        const int32_t *pg = iptr(r->pages, 0) + iptr(r->ptab, t0)[0];
        int64_t n_kv = (int64_t)g.pos0 + g.T;
        glm_ref_paged_gather(gc, fptr(c, 0), c.ld, R, pg, r->page_size, n_kv);
        glm_ref_paged_gather(gkr, fptr(kr, 0), kr.ld, dr, pg, r->page_size, n_kv);
        bool absorbed = mode == GLM_MLA_ABSORBED || (mode == GLM_MLA_AUTO && (g.pos0 > 0 || g.T == 1));
        (absorbed ? glm_ref_mla_absorbed : glm_ref_mla_naive)(fptr(out, t0), fptr(q, t0), gc, gkr, sc, sc + nk, &g,
                                                              work);
        t0 = t1;
    }
    return GLM_OK;
}

static glm_status ref_moe_route(glm_backend *b, glm_dview ids, glm_dview weights, glm_dview logits,
                                const glm_tensor *bias, const glm_route_params *p)
{
    GLM_TRY(check_view(ids, GLM_DT_I32, "moe_route ids"));
    GLM_TRY(check_view(weights, GLM_DT_F32, "moe_route weights"));
    GLM_TRY(check_view(logits, GLM_DT_F32, "moe_route logits"));
    const int E = p->n_routed_experts, k = p->num_experts_per_tok;
    if (logits.cols != E || ids.cols != k || weights.cols != k || ids.rows != logits.rows ||
        weights.rows != logits.rows)
        return glm_errorf(GLM_ERR_INVALID, "moe_route: shapes do not fit %d experts, top-%d", E, k);
    float *sc;
    GLM_TRY(scratch(b, (size_t)3 * E, &sc));
    float *bf = NULL;
    if (bias) {
        GLM_TRY(check_weight(bias, E, "exp_probs_b"));
        bf = sc + 2 * E;
        glm_ref_dequant_row(bf, glm_tensor_row(bias, 0, 0), bias->type, E);
    }
    for (int64_t t = 0; t < logits.rows; t++)
        if (!glm_ref_moe_route(iptr(ids, t), fptr(weights, t), fptr(logits, t), bf, p, sc))
            return glm_errorf(GLM_ERR_INVALID, "moe_route: invalid routing setup (%d experts, top-%d, %d groups, keep %d)",
                              E, k, p->n_group, p->topk_group);
    return GLM_OK;
}

static glm_status ref_moe_combine(glm_backend *b, glm_dview y, glm_dview x, glm_dview w)
{
    (void)b;
    GLM_TRY(check_view(y, GLM_DT_F32, "moe_combine y"));
    GLM_TRY(check_view(x, GLM_DT_F32, "moe_combine x"));
    GLM_TRY(check_view(w, GLM_DT_F32, "moe_combine w"));
    if (x.rows != y.rows * w.cols || w.rows != y.rows || x.cols != y.cols)
        return glm_errorf(GLM_ERR_INVALID, "moe_combine: shapes do not fit");
    for (int64_t t = 0; t < y.rows; t++) {
        float *yt = fptr(y, t);
        for (int64_t i = 0; i < y.cols; i++)
            yt[i] = 0.0f;
        for (int64_t j = 0; j < w.cols; j++)
            glm_ref_axpy(yt, fptr(w, t)[j], fptr(x, t * w.cols + j), y.cols);
    }
    return GLM_OK;
}

static glm_status same_shape(glm_dview a, glm_dview c, const char *what)
{
    GLM_TRY(check_view(a, GLM_DT_F32, what));
    GLM_TRY(check_view(c, GLM_DT_F32, what));
    if (a.rows != c.rows || a.cols != c.cols)
        return glm_errorf(GLM_ERR_INVALID, "%s: shapes differ ([%lld][%lld] vs [%lld][%lld])", what,
                          (long long)a.rows, (long long)a.cols, (long long)c.rows, (long long)c.cols);
    return GLM_OK;
}

static glm_status ref_swiglu(glm_backend *b, glm_dview y, glm_dview g, glm_dview u)
{
    (void)b;
    GLM_TRY(same_shape(y, g, "swiglu"));
    GLM_TRY(same_shape(y, u, "swiglu"));
    for (int64_t t = 0; t < y.rows; t++)
        glm_ref_swiglu(fptr(y, t), fptr(g, t), fptr(u, t), y.cols);
    return GLM_OK;
}

static glm_status ref_add(glm_backend *b, glm_dview y, glm_dview a, glm_dview c)
{
    (void)b;
    GLM_TRY(same_shape(y, a, "add"));
    GLM_TRY(same_shape(y, c, "add"));
    for (int64_t t = 0; t < y.rows; t++)
        glm_ref_add(fptr(y, t), fptr(a, t), fptr(c, t), y.cols);
    return GLM_OK;
}

static glm_status ref_copy(glm_backend *b, glm_dview dst, glm_dview src)
{
    (void)b;
    GLM_TRY(same_shape(dst, src, "copy"));
    for (int64_t t = 0; t < dst.rows; t++)
        memmove(fptr(dst, t), fptr(src, t), (size_t)dst.cols * 4);
    return GLM_OK;
}

static glm_status ref_argmax(glm_backend *b, int32_t *ids, glm_dview x)
{
    (void)b;
    GLM_TRY(check_view(x, GLM_DT_F32, "argmax"));
    for (int64_t t = 0; t < x.rows; t++)
        ids[t] = (int32_t)glm_ref_argmax(fptr(x, t), x.cols);
    return GLM_OK;
}

static float masked_at(const float *row, int64_t i, const int32_t *mask, int n_mask)
{
    for (int k = 0; k < n_mask; k++)
        if (mask[k] == i)
            return -INFINITY;
    return row[i];
}

static glm_status ref_argmax_rows(glm_backend *b, glm_dview ids, glm_dview x, const int32_t *mask, int n_mask)
{
    (void)b;
    GLM_TRY(check_view(x, GLM_DT_F32, "argmax_rows x"));
    GLM_TRY(check_view(ids, GLM_DT_I32, "argmax_rows ids"));
    if (ids.rows != x.rows || ids.cols != 1 || n_mask < 0 || n_mask > GLM_ARGMAX_MASK)
        return glm_errorf(GLM_ERR_INVALID, "argmax_rows: ids must be [%lld][1], at most %d masked ids",
                          (long long)x.rows, GLM_ARGMAX_MASK);
    for (int64_t t = 0; t < x.rows; t++) {
        const float *row = fptr(x, t);
        /* glm_ref_argmax over the row with the masked columns at -inf */
        int64_t best = 0;
        for (int64_t i = 1; i < x.cols; i++) {
            float v = masked_at(row, i, mask, n_mask), vb = masked_at(row, best, mask, n_mask);
            if (v > vb || (isnan(vb) && !isnan(v)))
                best = i;
        }
        *iptr(ids, t) = (int32_t)best;
    }
    return GLM_OK;
}

static glm_status ref_get_rows_dev(glm_backend *b, glm_dview y, const glm_tensor *w, glm_dview ids)
{
    GLM_TRY(check_view(ids, GLM_DT_I32, "get_rows_dev ids"));
    if (ids.rows != y.rows || ids.cols != 1)
        return glm_errorf(GLM_ERR_INVALID, "get_rows_dev: ids must be [%lld][1]", (long long)y.rows);
    for (int64_t t = 0; t < y.rows; t++) {
        int32_t id = *iptr(ids, t);
        GLM_TRY(ref_get_rows(b, glm_dview_rows(y, t, 1), w, &id));
    }
    return GLM_OK;
}

static void ref_destroy(glm_backend *b)
{
    ref_impl *im = b->impl;
    free(im->scratch);
    free(im->pairs);
    free(im);
    free(b);
}

static const glm_backend_ops k_ref_ops = {
    .name = "ref",
    .destroy = ref_destroy,
    .alloc = ref_alloc,
    .alloc_host = ref_alloc,
    .free = ref_free,
    .upload = ref_upload,
    .download = ref_download,
    .sync = ref_sync,
    .get_rows = ref_get_rows,
    .rms_norm = ref_rms_norm,
    .matmul = ref_matmul,
    .matmul_id = ref_matmul_id,
    .rope = ref_rope,
    .kv_write = ref_kv_write,
    .mla_attention = ref_mla_attention,
    .moe_route = ref_moe_route,
    .moe_combine = ref_moe_combine,
    .swiglu = ref_swiglu,
    .add = ref_add,
    .copy = ref_copy,
    .argmax = ref_argmax,
    .argmax_rows = ref_argmax_rows,
    .get_rows_dev = ref_get_rows_dev,
};

glm_status glm_backend_ref_create(glm_backend **out, const glm_model *m)
{
    *out = NULL;
    glm_backend *b = calloc(1, sizeof *b);
    ref_impl *im = calloc(1, sizeof *im);
    if (!b || !im) {
        free(b), free(im);
        return glm_errorf(GLM_ERR_NOMEM, "ref backend: out of memory");
    }
    b->ops = &k_ref_ops;
    b->model = m;
    b->impl = im;
    *out = b;
    return GLM_OK;
}
