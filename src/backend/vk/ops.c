/* Shape and size validation, then one dispatch per op (see ops.h). Every check happens
 * before anything is recorded, and names the op and the offending size. */
#include "backend/vk/ops.h"

#include <math.h>

#include "ref/dequant.h"

#define WG 64u /* local_size_x of every kernel */

static uint32_t groups(uint32_t n) { return (n + WG - 1) / WG; }

/* Does the view lie inside its buffer (4-byte elements)? */
static bool view_ok(glm_vk_view v)
{
    if (!v.buf || v.rows == 0 || v.cols == 0 || (v.rows > 1 && v.ld < v.cols))
        return false;
    uint64_t end = (uint64_t)v.off + (uint64_t)(v.rows - 1) * v.ld + v.cols;
    return end * 4 <= v.buf->size;
}

static glm_status bad(const char *op, const char *what)
{
    return glm_errorf(GLM_ERR_INVALID, "vulkan %s: %s", op, what);
}

static bool weight_ok(const glm_vk_weight *w)
{
    uint64_t end = (uint64_t)w->offset + (uint64_t)w->slab_bytes * (w->nslabs ? w->nslabs - 1 : 0) +
                   (uint64_t)w->row_bytes * w->nrows;
    return w->buf && glm_ref_dequant_supported(w->type) && glm_row_bytes(w->type, w->ncols) == w->row_bytes &&
           w->row_bytes > 0 && w->offset % 4 == 0 && end <= w->buf->size && end <= UINT32_MAX;
}

static glm_status rms_norm_any(glm_vk *vk, glm_vk_view y, glm_vk_view x, const glm_vk_view *t, const glm_vk_weight *w,
                               float eps)
{
    if (!view_ok(x) || !view_ok(y) || y.rows != x.rows || y.cols != x.cols ||
        (t && (!view_ok(*t) || t->rows != x.rows || t->cols != x.cols || y.buf == x.buf)))
        return bad("rms_norm", "x, t and y views do not match or overrun their buffers");
    if (!weight_ok(w) || w->ncols != x.cols || glm_type_info(w->type)->block != 1)
        return bad("rms_norm", "weight is not a plain row of x.cols elements");
    glm_vk_rms_norm_push pc = { x.cols, x.rows, eps, (uint32_t)w->type, w->offset, x.off, x.ld, y.off, y.ld,
                                t != NULL, t ? t->off : 0, t ? t->ld : 0 };
    const glm_vk_buffer *b[4] = { x.buf, w->buf, y.buf, t ? t->buf : x.buf };
    return glm_vk_dispatch(vk, GLM_VK_RMS_NORM, b, 4, &pc, sizeof pc, x.rows, 1, 1);
}

glm_status glm_vk_rms_norm(glm_vk *vk, glm_vk_view y, glm_vk_view x, const glm_vk_weight *w, float eps)
{
    return rms_norm_any(vk, y, x, NULL, w, eps);
}

glm_status glm_vk_add_rms_norm(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view t, const glm_vk_weight *w,
                               float eps)
{
    return rms_norm_any(vk, y, x, &t, w, eps);
}

/* Is g a plain row (F32, F16 or BF16) of n elements? */
static bool gain_ok(const glm_vk_weight *g, uint32_t n)
{
    return weight_ok(g) && g->ncols == n && g->nrows == 1 && glm_type_info(g->type)->block == 1 &&
           (g->type == GLM_TYPE_F32 || g->type == GLM_TYPE_F16 || g->type == GLM_TYPE_BF16);
}

/* Threads per output row of matvec: the power of two in 8..min(64, subgroup size) that
 * wastes the fewest invocations on the row's 32-element chunks (ties to the larger); within
 * one subgroup the shader reduces with shuffles alone. (Wider slices, to give small products
 * more workgroups, were slower on the H100: bench/RESULTS.md.) */
static uint32_t matvec_tpr(glm_vk *vk, uint32_t ncols)
{
    uint32_t n = (ncols + 31) / 32, sgs = glm_vk_subgroup_size(vk), top = sgs >= 64 ? 64 : sgs >= 8 ? sgs : 64;
    uint32_t best = top, waste = UINT32_MAX;
    if (glm_vk_matvec_tpr_forced(vk))
        return glm_vk_matvec_tpr_forced(vk);
    for (uint32_t t = top; t >= 8; t /= 2) {
        uint32_t wst = (n + t - 1) / t * t - n;
        if (wst < waste) {
            best = t;
            waste = wst;
        }
    }
    return best;
}

/* Optional parts of a matvec: heads (z dimension over slabs), a fused SwiGLU partner, an
 * RMSNorm of x in front (gain g) and accumulation into y. */
typedef struct matvec_extra {
    uint32_t heads, x_hs, y_hs;
    const glm_vk_weight *w2;
    const glm_vk_weight *g;
    float eps;
    bool accumulate;
} matvec_extra;

static glm_status matvec_any(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x,
                             const glm_vk_view *ids, const matvec_extra *e)
{
    if (!weight_ok(w))
        return glm_errorf(GLM_ERR_INVALID, "vulkan matvec: %s weight of %u columns is malformed or outside its buffer",
                          glm_type_name(w->type), w->ncols);
    if (!view_ok(x) || !view_ok(y) || x.cols != w->ncols || y.cols != w->nrows)
        return bad("matvec", "x or y view does not match the weight or overruns its buffer");
    uint32_t heads = e && e->heads ? e->heads : 1;
    glm_vk_matvec_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              x.off, x.ld, y.off, y.ld, 0, 0, 1, 0,
                              e ? e->x_hs : 0, e ? e->y_hs : 0, matvec_tpr(vk, w->ncols), w->offset, 0, 0,
                              0, 0, 0, 0 };
    const glm_vk_buffer *gb = w->buf; /* unused binding without a norm */
    if (e && e->g) {
        const glm_vk_weight *g = e->g;
        if (!gain_ok(g, w->ncols))
            return bad("rms_norm_matvec", "norm gain is not a plain row of x.cols elements");
        pc.norm = 1;
        pc.g_offset = g->offset;
        pc.g_type = (uint32_t)g->type;
        pc.eps = e->eps;
        gb = g->buf;
    }
    if (e && e->accumulate) {
        if (y.buf == x.buf)
            return bad("matvec_add", "y must not share x's buffer");
        pc.accumulate = 1;
    }
    if (e && e->w2) {
        const glm_vk_weight *u = e->w2;
        if (!weight_ok(u) || u->buf != w->buf || u->type != w->type || u->ncols != w->ncols || u->nrows != w->nrows ||
            u->nslabs != w->nslabs || u->slab_bytes != w->slab_bytes)
            return bad("matvec_swiglu", "gate and up weights differ in shape, type or buffer");
        pc.w2_offset = u->offset;
        pc.swiglu = 1;
    }
    const glm_vk_buffer *ib = x.buf; /* unused binding when there are no ids */
    if (ids) {
        if (!view_ok(*ids) || ids->cols == 0 || y.rows != ids->rows * ids->cols ||
            (x.rows != ids->rows && x.rows != y.rows))
            return bad("matvec_id", "ids, x and y row counts disagree");
        pc.ids_off = ids->off;
        pc.ids_ld = ids->ld;
        pc.k = ids->cols;
        pc.mode = x.rows == ids->rows && ids->cols > 1 ? 1 : (x.rows == y.rows ? 2 : 1);
        ib = ids->buf;
    } else {
        glm_vk_view xl = x, yl = y; /* the last head's views */
        xl.off += (heads - 1) * pc.x_zs;
        yl.off += (heads - 1) * pc.y_zs;
        if ((uint64_t)slab + heads > (w->nslabs ? w->nslabs : 1) || y.rows != x.rows || !view_ok(xl) || !view_ok(yl))
            return bad("matvec", "slab out of range, row counts differ or a head overruns its buffer");
        pc.w_offset += slab * w->slab_bytes;
        pc.w2_offset += slab * w->slab_bytes;
    }
    uint32_t rows_per_group = (GLM_VK_MATVEC_WG / pc.tpr) * GLM_VK_MATVEC_ROWS;
    const glm_vk_buffer *b[5] = { w->buf, x.buf, y.buf, ib, gb };
    return glm_vk_dispatch_variant(vk, GLM_VK_MATVEC, (uint32_t)w->type + 64 * pc.swiglu, b, 5, &pc, sizeof pc,
                                   (w->nrows + rows_per_group - 1) / rows_per_group, y.rows, heads);
}

glm_status glm_vk_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x)
{
    return matvec_any(vk, y, w, slab, x, NULL, NULL);
}

glm_status glm_vk_matvec_id(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view ids)
{
    return matvec_any(vk, y, w, 0, x, &ids, NULL);
}

glm_status glm_vk_matvec_heads(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab0, glm_vk_view x,
                               uint32_t heads, uint32_t x_hs, uint32_t y_hs)
{
    if (heads == 0)
        return bad("matvec_heads", "no heads");
    matvec_extra e = { heads, x_hs, y_hs, NULL, NULL, 0, false };
    return matvec_any(vk, y, w, slab0, x, NULL, &e);
}

glm_status glm_vk_matvec_swiglu(glm_vk *vk, glm_vk_view y, const glm_vk_weight *wg, const glm_vk_weight *wu,
                                glm_vk_view x, const glm_vk_view *ids)
{
    matvec_extra e = { 1, 0, 0, wu, NULL, 0, false };
    return matvec_any(vk, y, wg, 0, x, ids, &e);
}

glm_status glm_vk_rms_norm_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, const glm_vk_weight *wu,
                                  glm_vk_view x, const glm_vk_view *ids, const glm_vk_weight *g, float eps)
{
    if (!g)
        return bad("rms_norm_matvec", "no norm gain");
    matvec_extra e = { 1, 0, 0, wu, g, eps, false };
    return matvec_any(vk, y, w, 0, x, ids, &e);
}

glm_status glm_vk_matvec_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x)
{
    matvec_extra e = { 1, 0, 0, NULL, NULL, 0, true };
    return matvec_any(vk, y, w, 0, x, NULL, &e);
}

glm_status glm_vk_get_rows(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view ids)
{
    if (!weight_ok(w) || !view_ok(y) || !view_ok(ids) || y.cols != w->ncols || ids.rows != y.rows)
        return bad("get_rows", "shapes disagree or overrun their buffers");
    glm_vk_get_rows_push pc = { (uint32_t)w->type, w->ncols, w->row_bytes, w->offset, ids.off, y.off, y.ld, y.rows };
    const glm_vk_buffer *b[3] = { w->buf, ids.buf, y.buf };
    return glm_vk_dispatch(vk, GLM_VK_GET_ROWS, b, 3, &pc, sizeof pc, groups(y.cols), y.rows, 1);
}

glm_status glm_vk_rope(glm_vk *vk, glm_vk_view x, const glm_vk_buffer *table, uint32_t table_positions,
                       uint32_t n_heads, uint32_t head_dim, uint32_t rope_off, uint32_t rope_dim, glm_vk_view pos)
{
    if (!view_ok(x) || rope_dim % 2 || rope_off + rope_dim > head_dim || (uint64_t)n_heads * head_dim > x.cols)
        return bad("rope", "head layout does not fit the view");
    if (!view_ok(pos) || pos.rows != x.rows || pos.cols != 1)
        return bad("rope", "positions are not an int32 view [rows][1]");
    if ((uint64_t)table_positions * rope_dim * 4 > table->size)
        return bad("rope", "cos/sin table smaller than its positions");
    glm_vk_rope_push pc = { x.off, x.ld, x.rows, n_heads, head_dim, rope_off, rope_dim, pos.off, pos.ld,
                            table_positions, { 0 } };
    const glm_vk_buffer *b[3] = { x.buf, table, pos.buf };
    return glm_vk_dispatch(vk, GLM_VK_ROPE, b, 3, &pc, sizeof pc, groups(n_heads * rope_dim / 2), x.rows, 1);
}

/* Are the kv rows' int32 views well formed for T query rows? */
static bool kv_rows_ok(const glm_vk_kv_rows *r, uint32_t T)
{
    return view_ok(r->pos) && view_ok(r->ptab) && view_ok(r->pages) && r->pos.rows == T && r->ptab.rows == T &&
           r->pos.cols == 1 && r->ptab.cols == 1 && r->pages.rows == 1 && r->page_size > 0 && r->max_len > 0;
}

static glm_status kv_write_any(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                               const glm_vk_weight *g, float eps, uint32_t n_norm)
{
    if (!view_ok(pool) || !view_ok(src) || pool.cols != src.cols || !kv_rows_ok(r, src.rows))
        return bad("kv_write", "pool, rows or page views disagree or overrun their buffers");
    if (g && (n_norm == 0 || n_norm > src.cols || !gain_ok(g, n_norm)))
        return bad("kv_write_norm", "norm gain is not a plain row of n_norm <= cols elements");
    glm_vk_kv_write_push pc = { src.rows, src.cols, src.off, src.ld, pool.off, pool.ld, r->pos.off, r->pos.ld,
                                r->ptab.off, r->ptab.ld, r->pages.off, r->page_size, g ? n_norm : 0,
                                g ? g->offset : 0, g ? (uint32_t)g->type : 0, eps };
    const glm_vk_buffer *b[6] = { src.buf, r->pos.buf, r->ptab.buf, r->pages.buf, pool.buf, g ? g->buf : src.buf };
    return glm_vk_dispatch(vk, GLM_VK_KV_WRITE, b, 6, &pc, sizeof pc, groups(src.cols), src.rows, 1);
}

glm_status glm_vk_kv_write(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r)
{
    return kv_write_any(vk, pool, src, r, NULL, 0, 0);
}

glm_status glm_vk_kv_write_norm(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                                const glm_vk_weight *g, float eps, uint32_t n_norm)
{
    if (!g)
        return bad("kv_write_norm", "no norm gain");
    return kv_write_any(vk, pool, src, r, g, eps, n_norm);
}

glm_status glm_vk_eltwise(glm_vk *vk, glm_vk_eltwise_op op, glm_vk_view y, glm_vk_view a, glm_vk_view b)
{
    if (op == GLM_VK_COPY)
        b = a;
    if (!view_ok(y) || !view_ok(a) || !view_ok(b) || a.rows != y.rows || a.cols != y.cols || b.rows != y.rows ||
        b.cols != y.cols)
        return bad("eltwise", "views disagree or overrun their buffers");
    glm_vk_eltwise_push pc = { (uint32_t)op, y.rows, y.cols, 0, a.off, a.ld, b.off, b.ld, y.off, y.ld, 0, 0 };
    const glm_vk_buffer *bb[3] = { a.buf, b.buf, y.buf };
    return glm_vk_dispatch(vk, GLM_VK_ELTWISE, bb, 3, &pc, sizeof pc, groups(y.cols), y.rows, 1);
}

glm_status glm_vk_moe_route(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                            const glm_vk_weight *bias, uint32_t k, uint32_t n_group, uint32_t topk_group, bool sigmoid,
                            bool norm_topk, float scale)
{
    uint32_t E = logits.cols;
    if (!view_ok(ids) || !view_ok(weights) || !view_ok(logits) || ids.cols != k || weights.cols != k ||
        ids.rows != logits.rows || weights.rows != logits.rows)
        return bad("moe_route", "views disagree or overrun their buffers");
    if (E > 256 || k == 0 || k > 8 || k > E || n_group == 0 || n_group > 32 || E % n_group || topk_group == 0 ||
        topk_group > n_group || (uint64_t)topk_group * (E / n_group) < k)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan moe_route: %u experts, top-%u, %u groups (keep %u) not supported",
                          E, k, n_group, topk_group);
    if (bias && (!weight_ok(bias) || bias->ncols != E))
        return bad("moe_route", "bias is not a row of n_experts values");
    glm_vk_moe_route_push pc = { E,           k,          n_group,        topk_group,
                                 sigmoid,     norm_topk,  bias != NULL,   bias ? (uint32_t)bias->type : 0,
                                 bias ? bias->offset : 0, logits.off, logits.ld, logits.rows,
                                 ids.off,     ids.ld,     weights.off,    weights.ld,
                                 scale,       { 0 } };
    const glm_vk_buffer *b[4] = { logits.buf, bias ? bias->buf : logits.buf, ids.buf, weights.buf };
    return glm_vk_dispatch(vk, GLM_VK_MOE_ROUTE, b, 4, &pc, sizeof pc, logits.rows, 1, 1);
}

static glm_status moe_combine_any(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view w, const glm_vk_view *a)
{
    if (!view_ok(y) || !view_ok(x) || !view_ok(w) || w.rows != y.rows || x.rows != y.rows * w.cols || x.cols != y.cols ||
        (a && (!view_ok(*a) || a->rows != y.rows || a->cols != y.cols)))
        return bad("moe_combine", "views disagree or overrun their buffers");
    glm_vk_moe_combine_push pc = { y.rows, y.cols, w.cols, a != NULL, x.off, x.ld, w.off, w.ld,
                                   y.off,  y.ld,   a ? a->off : 0, a ? a->ld : 0 };
    const glm_vk_buffer *b[4] = { x.buf, w.buf, y.buf, a ? a->buf : x.buf };
    return glm_vk_dispatch(vk, GLM_VK_MOE_COMBINE, b, 4, &pc, sizeof pc, groups(y.cols), y.rows, 1);
}

glm_status glm_vk_moe_combine(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view w)
{
    return moe_combine_any(vk, y, x, w, NULL);
}

glm_status glm_vk_moe_combine_add(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view w, glm_vk_view a)
{
    return moe_combine_any(vk, y, x, w, &a);
}

glm_status glm_vk_argmax(glm_vk *vk, glm_vk_view ids, glm_vk_view x)
{
    if (!view_ok(ids) || !view_ok(x) || ids.rows != x.rows || ids.cols != 1 || ids.ld != 1)
        return bad("argmax", "ids must be a contiguous [rows][1] view");
    glm_vk_argmax_push pc = { x.rows, x.cols, x.off, x.ld };
    const glm_vk_buffer *b[2] = { x.buf, ids.buf };
    /* ids.off is applied by binding nothing else: write ids at [0, rows) of a dedicated view */
    if (ids.off != 0)
        return bad("argmax", "ids view must start at element 0");
    return glm_vk_dispatch(vk, GLM_VK_ARGMAX, b, 2, &pc, sizeof pc, x.rows, 1, 1);
}

void glm_vk_rope_table(float *cs, uint32_t positions, uint32_t rope_dim, float theta)
{
    for (uint32_t pos = 0; pos < positions; pos++)
        for (uint32_t i = 0; i < rope_dim / 2; i++) {
            /* the same expressions as glm_ref_rope (ref/rope.c) */
            float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)rope_dim);
            float ang = (float)pos * inv_freq;
            cs[((size_t)pos * (rope_dim / 2) + i) * 2] = (float)cos((double)ang);
            cs[((size_t)pos * (rope_dim / 2) + i) * 2 + 1] = (float)sin((double)ang);
        }
}

/* Splits the dispatch needs for keys up to max_len (mla_split.comp's nsplit of the longest row). */
static uint32_t split_count(uint32_t max_len)
{
    uint32_t n = (max_len + GLM_VK_MLA_MIN_CHUNK - 1) / GLM_VK_MLA_MIN_CHUNK;
    return n < GLM_VK_MLA_MAX_SPLIT ? n : GLM_VK_MLA_MAX_SPLIT;
}

/* Query rows per split/combine block: the partials of a block stay within 8 M floats. */
static uint32_t block_rows(uint32_t T, uint32_t H, uint32_t rkv, uint32_t max_len)
{
    uint64_t per_row = (uint64_t)H * split_count(max_len) * (rkv + 2u);
    uint64_t tb = (8ull << 20) / per_row;
    return tb < 1 ? 1 : (tb > T ? T : (uint32_t)tb);
}

uint64_t glm_vk_mla_scratch_floats(uint32_t T, uint32_t H, uint32_t rkv, uint32_t max_len)
{
    /* qlat [T·H][Rkv], u [T·H][Rkv], partials [block·H][splits][Rkv + 2] */
    return (uint64_t)T * H * 2ull * rkv +
           (uint64_t)block_rows(T, H, rkv, max_len) * H * split_count(max_len) * (rkv + 2u);
}

uint32_t glm_vk_mla_dispatches(uint32_t T, uint32_t H, uint32_t rkv, uint32_t max_len)
{
    uint32_t tb = block_rows(T, H, rkv, max_len);
    return 2 + 2 * ((T + tb - 1) / tb); /* k_b and v_b products, split + combine per block */
}

glm_status glm_vk_mla_attention(glm_vk *vk, glm_vk_view out, glm_vk_view q, glm_vk_view c, glm_vk_view kr,
                                const glm_vk_weight *k_b, const glm_vk_weight *v_b, uint32_t H, uint32_t dn, uint32_t dr,
                                uint32_t dv, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch)
{
    uint32_t T = q.rows, rkv = c.cols;
    if (k_b->nslabs != H || k_b->ncols != dn || k_b->nrows != rkv || v_b->nslabs != H || v_b->ncols != rkv ||
        v_b->nrows != dv || out.rows != T || out.cols != H * dv || q.cols != H * (dn + dr))
        return bad("mla_attention", "k_b / v_b / q / out shapes disagree with the heads");
    if (!view_ok(q) || !view_ok(c) || !view_ok(kr) || kr.cols != dr || kr.rows != c.rows || !kv_rows_ok(r, T))
        return bad("mla_attention", "cache or page views disagree or overrun their buffers");
    if (rkv > 512 || dr > 128)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan mla_attention: kv_lora_rank %u / rope dim %u above 512 / 128",
                          rkv, dr);
    if (glm_vk_mla_scratch_floats(T, H, rkv, r->max_len) * 4 > scratch->size)
        return bad("mla_attention", "scratch buffer too small");
    uint32_t qh = dn + dr;
    glm_vk_view u = { scratch, T * H * rkv, T * H, rkv, rkv };
    uint32_t part_off = 2 * T * H * rkv, ns = split_count(r->max_len), tb = block_rows(T, H, rkv, r->max_len);
    /* qlat[t][h] = k_b[h] · qn[t][h] for every head in one dispatch: rows of qlat for head h
     * are t·H + h */
    glm_vk_view qn = { q.buf, q.off, T, dn, q.ld };
    glm_vk_view ql = { scratch, 0, T, rkv, H * rkv };
    GLM_TRY(glm_vk_matvec_heads(vk, ql, k_b, 0, qn, H, qh, rkv));
    for (uint32_t row0 = 0; row0 < T; row0 += tb) {
        uint32_t rows = T - row0 < tb ? T - row0 : tb;
        glm_vk_mla_split_push sp = { rows,        H,          rkv,           dr,          qh,         dn,
                                     q.off,       q.ld,       c.off,         c.ld,        kr.off,     kr.ld,
                                     0,           part_off,   r->pos.off,    r->pos.ld,   r->ptab.off, r->ptab.ld,
                                     r->pages.off, r->page_size, GLM_VK_MLA_MAX_SPLIT, ns, row0,
                                     1.0f / sqrtf((float)qh) };
        const glm_vk_buffer *sb[8] = { scratch, q.buf, c.buf, kr.buf, r->pos.buf, r->ptab.buf, r->pages.buf, scratch };
        /* one workgroup per (split, row, group of 4 heads): the heads share each c row read */
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_SPLIT, sb, 8, &sp, sizeof sp, ns, rows * ((H + 3) / 4), 1));
        glm_vk_mla_combine_push cp = { rows, H, rkv, GLM_VK_MLA_MAX_SPLIT, ns, part_off, u.off, r->pos.off, r->pos.ld,
                                       row0, { 0 } };
        const glm_vk_buffer *cb[3] = { scratch, r->pos.buf, scratch };
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_COMBINE, cb, 3, &cp, sizeof cp, groups(rkv), rows * H, 1));
    }
    glm_vk_view uh = { scratch, u.off, T, rkv, H * rkv };
    glm_vk_view oh = { out.buf, out.off, T, dv, out.ld };
    return glm_vk_matvec_heads(vk, oh, v_b, 0, uh, H, rkv, dv);
}
