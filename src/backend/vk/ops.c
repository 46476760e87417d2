/* Shape and size validation, then one dispatch per op (see ops.h). Every check happens
 * before anything is recorded, and names the op and the offending size. */
#include "backend/vk/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/dequant.h"
#include "ref/matmul.h"

#define WG 64u /* local_size_x of every kernel */

static uint32_t groups(uint32_t n) { return (n + WG - 1) / WG; }

static uint64_t env_u64(const char *name, int64_t *cache, int64_t dflt);

/* eltwise.comp's vec form (4 elements an invocation, 16-byte loads and stores) where pc's columns,
 * offsets and strides allow it (GLM_VK_ELT_VEC=0: one element an invocation); its grid's x. */
static uint32_t eltwise_vec(glm_vk_eltwise_push *pc)
{
    static int64_t on = -1;
    bool a4 = pc->a_off % 4 == 0 && pc->a_ld % 4 == 0;
    bool ok;
    if (pc->op == 3) /* y's words two at a time: a's floats four at a time */
        ok = a4 && pc->cols % 2 == 0 && pc->y_off % 2 == 0 && pc->y_ld % 2 == 0;
    else
        ok = a4 && pc->cols % 4 == 0 && pc->y_off % 4 == 0 && pc->y_ld % 4 == 0 &&
             (pc->op == 2 || pc->b_off % 4 == 0) && (pc->op == 2 || pc->op == 4 || pc->b_ld % 4 == 0);
    pc->pad1 = ok && env_u64("GLM_VK_ELT_VEC", &on, 1) != 0 ? 1u : 0u;
    if (!pc->pad1)
        return groups(pc->cols);
    return groups(pc->op == 3 ? pc->cols / 2 : pc->cols / 4);
}

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

static int64_t rms_vec = -1;
bool glm_vk_rms_vec(void) { return env_u64("GLM_VK_RMS_VEC", &rms_vec, 0) != 0; }
void glm_vk_set_rms_vec(bool on) { rms_vec = on ? 1 : 0; }

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
    /* + 2: rms_norm.comp's vec form (4 elements at a time, the row kept in registers) where the
     * shapes allow it and GLM_VK_RMS_VEC=1 (glm_vk_set_rms_vec) */
    bool gal = w->type == GLM_TYPE_F32 ? w->offset % 16 == 0
                                       : (w->type == GLM_TYPE_F16 || w->type == GLM_TYPE_BF16) && w->offset % 8 == 0;
    if (glm_vk_rms_vec() && gal && x.cols % 4 == 0 && x.cols <= 4096 && (x.off | x.ld | y.off | y.ld) % 4 == 0 &&
        (!t || (t->off | t->ld) % 4 == 0))
        pc.has_add |= 2u;
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

/* Measurement switch, read once: GLM_VK_MATVEC_ROUTED_FAST=0 keeps routed Q4_K SwiGLU pairs
 * on matvec.comp, 1 (the default) takes those of a plain x to matvec_fast.comp, 2 those with the
 * norm folded in too. (GLM_VK_MATVEC_FEW: glm_vk_matvec_set_few_groups; GLM_VK_MATVEC_STAGE:
 * glm_vk_matvec_set_stage_groups.) */
static uint64_t env_u64(const char *name, int64_t *cache, int64_t dflt)
{
    if (*cache < 0) {
        const char *e = getenv(name);
        long long v = e && *e ? strtoll(e, NULL, 10) : dflt;
        *cache = v < 0 ? dflt : v;
    }
    return (uint64_t)*cache;
}

static uint64_t routed_fast(void)
{
    static int64_t c = -1;
    return env_u64("GLM_VK_MATVEC_ROUTED_FAST", &c, 1);
}

/* Lanes per row of matvec_fast.comp, or 0 where the product stays on matvec.comp: the hot
 * types (F32 with a multiple of 4 columns), x at offsets of whole vec4s, weights (16-byte
 * aligned for Q4_K, Q5_K and F32, even otherwise) and norm gain (16-byte) aligned as the
 * shader reads them, and no forced slice width. The fewest lanes (a power of two up to the subgroup size, at most 32) whose task
 * groups cover the row in one pass, so that short rows pack several rows into a subgroup. */
static uint32_t matvec_fast_lanes(glm_vk *vk, const glm_vk_weight *w, const glm_vk_matvec_push *pc)
{
    glm_type t = w->type;
    bool hot = t == GLM_TYPE_Q4_K || t == GLM_TYPE_Q5_K || t == GLM_TYPE_Q6_K || t == GLM_TYPE_Q8_0 ||
               t == GLM_TYPE_Q5_0 || (t == GLM_TYPE_F32 && w->ncols % 4 == 0);
    bool vec16 = t == GLM_TYPE_Q4_K || t == GLM_TYPE_Q5_K || t == GLM_TYPE_F32; /* read as 16-byte vectors */
    uint32_t wa = pc->w_offset | pc->w2_offset | pc->row_bytes | pc->slab_bytes;
    /* routed Q4_K SwiGLU pairs with the norm folded in measured faster on matvec.comp
     * (bench/RESULTS.md); those of a plain x (normed by moe_gate_route) come here */
    if (t == GLM_TYPE_Q4_K && pc->mode != 0 && pc->swiglu && routed_fast() < (pc->norm ? 2u : 1u))
        return 0;
    if (!hot || glm_vk_matvec_tpr_forced(vk) || ((pc->x_off | pc->x_ld | pc->x_zs) & 3) || (wa & (vec16 ? 15 : 1)) ||
        (pc->norm && (pc->g_offset & 15)))
        return 0;
    /* lanes for two tasks a lane (eight for F32; GLM_VK_MATVEC_TASKS=N: N), which the shader
     * takes in rounds of one */
    static int64_t tasks_env = -1;
    uint32_t per_task = t == GLM_TYPE_F32 ? 4 : 32;
    uint32_t group = t == GLM_TYPE_F32 ? 8 : (uint32_t)env_u64("GLM_VK_MATVEC_TASKS", &tasks_env, 2);
    if (group == 0)
        group = 1;
    static int64_t cap = -1; /* GLM_VK_MATVEC_FAST_LANES: at most this many lanes a row */
    uint32_t lanes_cap = (uint32_t)env_u64("GLM_VK_MATVEC_FAST_LANES", &cap, 32);
    uint32_t tasks = w->ncols / per_task, sgs = glm_vk_subgroup_size(vk), top = sgs < lanes_cap ? sgs : lanes_cap, n = 1;
    while (n < top && n * group < tasks)
        n *= 2;
    return n;
}

/* Optional parts of a matvec: heads (z dimension over slabs), a fused SwiGLU partner, an
 * RMSNorm of x in front (gain g) and accumulation into y. */
typedef struct matvec_extra {
    uint32_t heads, x_hs, y_hs;
    const glm_vk_weight *w2;
    const glm_vk_weight *g;
    float eps;
    bool accumulate;
    const glm_vk_q_rope *rope;
    bool x8; /* x in glm_vk_quant_x8's form: matvec_q8.comp */
    glm_vk_x8_out *out; /* y in that form too where it can be (NULL: not) */
    const glm_vk_view *comb; /* the mixture's weights [T][k]: y[t] += Σ_j w·product (COMB) */
} matvec_extra;

/* Measurement switches of matvec_fast.comp (its EXP constant): set by bench's probe only. */
static uint32_t probe_bits, probe_set;
void glm_vk_matvec_probe_bits(uint32_t bits) { probe_bits = bits, probe_set = 1; }
static uint32_t matvec_exp(void)
{
    static int64_t c = -1;
    return probe_set ? probe_bits & 15u : (uint32_t)env_u64("GLM_VK_MATVEC_EXP", &c, 0) & 15u;
}
/* Probe switch 16: the products take an 8-bit x (glm_vk_matvec_x8). */
bool glm_vk_matvec_probe_x8(void) { return probe_set && (probe_bits & 16u); }

/* Measurement switches of matmul_cm.comp (its EXP bits; bit 4: NOBAR): set by bench's grouped-product probe only. */
static uint32_t cm_probe_bits;
void glm_vk_matmul_probe_bits(uint32_t bits) { cm_probe_bits = bits; }

static glm_status matvec_any(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x,
                             const glm_vk_view *ids, const matvec_extra *e)
{
    if (!weight_ok(w))
        return glm_errorf(GLM_ERR_INVALID, "vulkan matvec: %s weight of %u columns is malformed or outside its buffer",
                          glm_type_name(w->type), w->ncols);
    bool x8 = e && e->x8;
    if (!view_ok(x) || !view_ok(y) || x.cols != (x8 ? glm_ref_x8_words(w->ncols) : w->ncols) || y.cols != w->nrows)
        return bad("matvec", "x or y view does not match the weight or overruns its buffer");
    if (x8 && (!glm_vk_matvec_x8_ok(vk, w) || (e && (e->g || e->rope || e->heads > 1)) || ((x.off | x.ld) & 3)))
        return bad("matvec_x8", "weight type, shape, device or view alignment unfit for an 8-bit x");
    uint32_t heads = e && e->heads ? e->heads : 1;
    glm_vk_matvec_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              x.off, x.ld, y.off, y.ld, 0, 0, 1, 0,
                              e ? e->x_hs : 0, e ? e->y_hs : 0, matvec_tpr(vk, w->ncols), w->offset, 0, 0,
                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
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
    const glm_vk_view *comb = e ? e->comb : NULL;
    if (comb) {
        if (!ids || !view_ok(*ids) || !view_ok(*comb) || ids->cols == 0 || ids->cols > GLM_VK_COMB_KMAX ||
            y.rows != ids->rows || x.rows != ids->rows * ids->cols || comb->rows != ids->rows ||
            comb->cols != ids->cols || y.buf == x.buf || pc.norm || pc.swiglu || pc.accumulate || heads != 1 || e->rope || e->out)
            return bad("matvec_id_combine_add", "ids, weights, x and y row counts disagree or an unsupported option");
        pc.ids_off = ids->off;
        pc.ids_ld = ids->ld;
        pc.k = ids->cols;
        pc.mode = 2;
        pc.accumulate = 1;
        pc.g_offset = comb->off; /* the weights: floats at g_offset + t · g_type of binding 4 */
        pc.g_type = comb->ld;
        ib = ids->buf;
        gb = comb->buf;
    } else if (ids) {
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
    /* the rope's pos and table bindings take buffers the dispatch uses anyway without one */
    const glm_vk_q_rope *rope = e ? e->rope : NULL;
    const glm_vk_buffer *b[8] = { w->buf, x.buf, y.buf, ib, gb, rope ? rope->pos.buf : x.buf,
                                  rope ? rope->table : x.buf, y.buf };
    uint32_t lanes = matvec_fast_lanes(vk, w, &pc);
    if (comb && !lanes)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan matvec_id_combine_add: %s weight or views unfit for matvec_fast",
                          glm_type_name(w->type));
    if (x8 && !lanes)
        return bad("matvec_x8", "weights or views misaligned for the 8-bit x product");
    glm_vk_x8_out *out = e ? e->out : NULL;
    if (out) {
        uint32_t n8 = heads * w->nrows;
        glm_vk_view y8 = out->y8;
        out->written = false;
        if (!view_ok(y8) || y8.rows != y.rows || y8.cols != glm_ref_x8_words(n8) || ((y8.off | y8.ld) & 3))
            return bad("matvec x8 out", "the 8-bit view does not fit y's rows (heads back to back)");
        if (!lanes || w->nrows % 4 || n8 % 256 || (heads > 1 && pc.y_zs != w->nrows) || (e && e->rope))
            out = NULL; /* this product writes y only */
        else {
            pc.y8_off = y8.off;
            pc.y8_ld = y8.ld;
        }
    }
    if (lanes) {
        /* matvec_fast.comp: variant type + 64·(swiglu + 2·(one row per slice) + 4·norm + 8·staged x
         * + 16·rope + 32·measurement switches + 512·XC layout + 1024·KS2 + 2048·Q8OUT + 4096·COMB) */
        pc.tpr = lanes;
        uint32_t rows2 = GLM_VK_MATVEC_FAST_WG / lanes * 2, gx = (w->nrows + rows2 - 1) / rows2;
        bool one = comb || (uint64_t)gx * y.rows * heads < glm_vk_matvec_few_groups(vk);
        if (one)
            gx = (w->nrows + rows2 / 2 - 1) / (rows2 / 2);
        /* KS2: a row's rounds of tasks split over two slices of the workgroup where each gets
         * one and the doubled grid stays within glm_vk_matvec_ks_groups */
        uint32_t per_task = w->type == GLM_TYPE_F32 ? 4 : 32, wrows = GLM_VK_MATVEC_FAST_WG / lanes * (one ? 1 : 2);
        bool ks2 = wrows >= 2 && w->ncols / per_task * (comb ? pc.k : 1) > lanes &&
                   (uint64_t)((w->nrows + wrows / 2 - 1) / (wrows / 2)) * y.rows * heads <= glm_vk_matvec_ks_groups(vk);
        static int64_t comb_ks = -1; /* GLM_VK_COMB_KS2=0: not for COMB (a measurement switch) */
        if (comb && env_u64("GLM_VK_COMB_KS2", &comb_ks, 1) == 0)
            ks2 = false;
        if (ks2 && out && wrows / 2 < 4)
            ks2 = false; /* Q8OUT: a workgroup's rows whole words of 4 */
        if (ks2)
            gx = (w->nrows + wrows / 2 - 1) / (wrows / 2);
        uint32_t stage = !x8 && !comb && w->ncols <= GLM_VK_MATVEC_FAST_XCOLS &&
                         (uint64_t)gx * y.rows * heads <= glm_vk_matvec_stage_groups(vk);
        /* the rope in the product: one row a slice, a pair's two rows in neighbouring slices of
         * one subgroup (lanes l and l ^ tpr), no heads or ids */
        uint32_t in_rope = rope && one && 2 * lanes <= glm_vk_subgroup_size(vk) && heads == 1 && !ids && !pc.swiglu;
        if (in_rope) {
            pc.pos_off = rope->pos.off;
            pc.pos_ld = rope->pos.ld;
            pc.head_dim = rope->head_dim;
            pc.rope_off = rope->rope_off;
            pc.rope_dim = rope->rope_dim;
            pc.table_positions = rope->table_positions;
        }
        if (out)
            b[7] = out->y8.buf;
        if (out)
            out->written = true;
        GLM_TRY(glm_vk_dispatch_variant(
            vk, x8 ? GLM_VK_MATVEC_Q8 : GLM_VK_MATVEC_FAST,
            (uint32_t)w->type + 64 * (pc.swiglu + 2 * one + 4 * pc.norm + 8 * stage + 16 * in_rope + 32 * matvec_exp() +
                                      512 * (uint32_t)((w->type == GLM_TYPE_Q4_K || w->type == GLM_TYPE_Q5_K) && glm_vk_matvec_xc(vk)) +
                                      1024 * ks2 + 2048 * (out != NULL) + 4096 * (comb != NULL)),
            b, 8, &pc, sizeof pc, gx, y.rows, heads));
        if (!rope || in_rope)
            return GLM_OK;
        return glm_vk_rope(vk, y, rope->table, rope->table_positions, rope->n_heads, rope->head_dim, rope->rope_off,
                           rope->rope_dim, rope->pos);
    }
    uint32_t rows_per_group = (GLM_VK_MATVEC_WG / pc.tpr) * GLM_VK_MATVEC_ROWS;
    GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MATVEC, (uint32_t)w->type + 64 * pc.swiglu, b, 5, &pc, sizeof pc,
                                    (w->nrows + rows_per_group - 1) / rows_per_group, y.rows, heads));
    if (!rope)
        return GLM_OK;
    return glm_vk_rope(vk, y, rope->table, rope->table_positions, rope->n_heads, rope->head_dim, rope->rope_off,
                       rope->rope_dim, rope->pos);
}

glm_status glm_vk_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x)
{
    return matvec_any(vk, y, w, slab, x, NULL, NULL);
}

glm_status glm_vk_matvec_id(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view ids)
{
    return matvec_any(vk, y, w, 0, x, &ids, NULL);
}

bool glm_vk_matvec_id_combine_fits(glm_vk *vk, const glm_vk_weight *w, glm_vk_view x, uint32_t k)
{
    glm_vk_matvec_push pc = { .type = (uint32_t)w->type, .ncols = w->ncols, .nrows = w->nrows,
                              .row_bytes = w->row_bytes, .w_offset = w->offset, .slab_bytes = w->slab_bytes,
                              .x_off = x.off, .x_ld = x.ld, .mode = 2, .w2_offset = w->offset };
    return weight_ok(w) && k > 0 && k <= GLM_VK_COMB_KMAX && matvec_fast_lanes(vk, w, &pc) > 0;
}

glm_status glm_vk_matvec_id_combine_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                        glm_vk_view ids, glm_vk_view wts)
{
    matvec_extra e = { 1, 0, 0, NULL, NULL, 0, false, NULL, false, NULL, &wts };
    return matvec_any(vk, y, w, 0, x, &ids, &e);
}

glm_status glm_vk_matvec_x8_combine_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x8,
                                        glm_vk_view ids, glm_vk_view wts)
{
    matvec_extra e = { 1, 0, 0, NULL, NULL, 0, false, NULL, true, NULL, &wts };
    return matvec_any(vk, y, w, 0, x8, &ids, &e);
}

glm_status glm_vk_matvec_heads(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab0, glm_vk_view x,
                               uint32_t heads, uint32_t x_hs, uint32_t y_hs)
{
    if (heads == 0)
        return bad("matvec_heads", "no heads");
    matvec_extra e = { heads, x_hs, y_hs, NULL, NULL, 0, false, NULL, false, NULL, NULL };
    return matvec_any(vk, y, w, slab0, x, NULL, &e);
}

glm_status glm_vk_matvec_swiglu(glm_vk *vk, glm_vk_view y, const glm_vk_weight *wg, const glm_vk_weight *wu,
                                glm_vk_view x, const glm_vk_view *ids)
{
    matvec_extra e = { 1, 0, 0, wu, NULL, 0, false, NULL, false, NULL, NULL };
    return matvec_any(vk, y, wg, 0, x, ids, &e);
}

glm_status glm_vk_rms_norm_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, const glm_vk_weight *wu,
                                  glm_vk_view x, const glm_vk_view *ids, const glm_vk_weight *g, float eps)
{
    if (!g)
        return bad("rms_norm_matvec", "no norm gain");
    matvec_extra e = { 1, 0, 0, wu, g, eps, false, NULL, false, NULL, NULL };
    return matvec_any(vk, y, w, 0, x, ids, &e);
}

glm_status glm_vk_rms_norm_matvec_rope(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                       const glm_vk_weight *g, float eps, const glm_vk_q_rope *rope)
{
    if (!g || !rope)
        return bad("rms_norm_matvec_rope", "no norm gain or no rope");
    if (rope->rope_dim == 0 || rope->rope_dim % 2 || rope->head_dim % 2 || rope->rope_off % 2 ||
        rope->rope_off + rope->rope_dim > rope->head_dim || (uint64_t)rope->n_heads * rope->head_dim != y.cols ||
        !view_ok(rope->pos) || rope->pos.rows != y.rows || rope->pos.cols < 1 ||
        (uint64_t)rope->table_positions * rope->rope_dim * 4 > rope->table->size)
        return bad("rms_norm_matvec_rope", "the heads, their rope channels, positions or table do not fit y");
    matvec_extra e = { 1, 0, 0, NULL, g, eps, false, rope, false, NULL, NULL };
    return matvec_any(vk, y, w, 0, x, NULL, &e);
}

glm_status glm_vk_matvec_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x)
{
    matvec_extra e = { 1, 0, 0, NULL, NULL, 0, true, NULL, false, NULL, NULL };
    return matvec_any(vk, y, w, 0, x, NULL, &e);
}

bool glm_vk_matvec_x8_ok(const glm_vk *vk, const glm_vk_weight *w)
{
    return glm_vk_idot_available(vk) && w && w->ncols % 256 == 0 &&
           (w->type == GLM_TYPE_Q4_K || w->type == GLM_TYPE_Q5_K || w->type == GLM_TYPE_Q6_K);
}

glm_status glm_vk_matvec_x8(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, const glm_vk_weight *wu, glm_vk_view x8,
                            const glm_vk_view *ids, bool accumulate, glm_vk_x8_out *out)
{
    matvec_extra e = { 1, 0, 0, wu, NULL, 0, accumulate, NULL, true, out, NULL };
    return matvec_any(vk, y, w, 0, x8, ids, &e);
}

glm_status glm_vk_matvec_x8_out(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                glm_vk_x8_out *out)
{
    matvec_extra e = { 1, 0, 0, NULL, NULL, 0, false, NULL, false, out, NULL };
    return matvec_any(vk, y, w, 0, x, NULL, &e);
}

glm_status glm_vk_quant_x8(glm_vk *vk, glm_vk_view y, glm_vk_view x)
{
    if (!view_ok(x) || !view_ok(y) || x.cols == 0 || x.cols % 256 || y.rows != x.rows ||
        y.cols != glm_ref_x8_words(x.cols) || ((y.off | y.ld) & 3) || (y.buf == x.buf))
        return bad("quant_x8", "x must have a multiple of 256 columns and y its 8-bit form's words (16-byte aligned rows)");
    glm_vk_quant_x8_push pc = { x.rows, x.cols, x.off, x.ld, y.off, y.ld, 0, 0 };
    const glm_vk_buffer *b[2] = { x.buf, y.buf };
    return glm_vk_dispatch(vk, GLM_VK_QUANT_X8, b, 2, &pc, sizeof pc, x.cols / 256, x.rows, 1);
}

/* ---- tiled matmul (prefill) ---- */

#define MM_TILE 64u /* weight rows and token rows per workgroup of GLM_VK_MATMUL (BM, BN of matmul.comp) */
#define MM_CM_ROWS 128u /* weight rows per workgroup of GLM_VK_MATMUL_CM (BM of matmul_cm.comp) */
bool glm_vk_matmul_fits(const glm_vk_weight *w) { return w->ncols % 32 == 0 && weight_ok(w); }

/* Does the product of pc take GLM_VK_MATMUL_CM2? Where enabled, for the types its decoders
 * know, with every weight slab on 16 bytes (its tensor loads start at a 16-byte element). */
static bool matmul_on_cm2(glm_vk *vk, const glm_vk_matmul_push *pc)
{
    glm_type t = (glm_type)pc->type;
    return glm_vk_cm2_enabled(vk) &&
           (t == GLM_TYPE_Q4_K || t == GLM_TYPE_Q6_K || t == GLM_TYPE_Q5_0 || t == GLM_TYPE_Q8_0) &&
           pc->w_offset % 16 == 0 && (pc->slab_bytes % 16 == 0 || pc->mode == 0);
}

/* The token rows per tile of the tiled product for pc (glm_vk_coopmat_set_wide_groups). */
static uint32_t matmul_tile_rows(glm_vk *vk, const glm_vk_matmul_push *pc, uint32_t rows, uint32_t gz)
{
    if (!glm_vk_coopmat_enabled(vk))
        return MM_TILE;
    if (matmul_on_cm2(vk, pc) && (pc->mode == 1 || pc->mode == 2))
        return glm_vk_cm2_grouped_tile(vk);
    uint64_t row_tiles = (pc->nrows + MM_CM_ROWS - 1) / MM_CM_ROWS;
    if (pc->mode == 1 || pc->mode == 2)
        return glm_vk_coopmat_grouped_tile(vk);
    if (row_tiles * ((rows + 127) / 128) * gz >= glm_vk_coopmat_wide_groups(vk))
        return 128u;
    return row_tiles * ((rows + 63) / 64) * gz < glm_vk_coopmat_narrow_groups(vk) ? 32u : 64u;
}

/* Records the tiled product for `rows` token rows (pairs for the grouped modes, whose grid has
 * `extra` more tiles than rows / tile) with tiles of bn token rows (matmul_tile_rows). Sets the
 * alignment bits of pc->pad for the tensor-core kernel: bit 0, every x row starts on 16 bytes;
 * bit 1, every y row does; bit 2, every weight row of every slab does. */
static glm_status matmul_record(glm_vk *vk, glm_vk_matmul_push *pc, const glm_vk_buffer *const b[4], uint32_t rows,
                                uint32_t extra, uint32_t gz, uint32_t bn, const glm_vk_view *xh, bool swiglu)
{
    bool heads = pc->mode == 3;
    bool xal = pc->x_off % 4 == 0 && pc->x_ld % 4 == 0 && (!heads || pc->k % 4 == 0);
    bool yal = pc->y_off % 4 == 0 && pc->y_ld % 4 == 0 && (!heads || pc->g_off % 4 == 0);
    bool wal = pc->w_offset % 16 == 0 && pc->row_bytes % 16 == 0 && pc->slab_bytes % 16 == 0;
    pc->pad = (xal ? 1u : 0u) | (yal ? 2u : 0u) | (wal ? 4u : 0u);
    uint32_t gy = (rows + bn - 1) / bn + extra;
    if (!glm_vk_coopmat_enabled(vk))
        return glm_vk_dispatch_variant(vk, GLM_VK_MATMUL, pc->type, b, 4, pc, sizeof *pc,
                                       (pc->nrows + MM_TILE - 1) / MM_TILE, gy, gz);
    if (matmul_on_cm2(vk, pc)) {
        /* variant: the weight type + 64 × the tile code (as matmul_cm) */
        uint32_t f = bn == 128 ? 1u : bn == 32 ? 2u : 0u;
        return glm_vk_dispatch_variant(vk, GLM_VK_MATMUL_CM2, pc->type + 64u * f, b, 4, pc, sizeof *pc,
                                       (pc->nrows + MM_CM_ROWS - 1) / MM_CM_ROWS, gy, gz);
    }
    /* variant: the weight type + 64 × FLAGS (specialization constant 1): the tile code (1: 128
     * token rows, 2: 32, 0: 64), + 4 where the loads go only one step ahead, + 8 where a step
     * is two chunks through one buffer (ahead 0; one step ahead where ncols is not a multiple of 64) */
    uint32_t ahead = glm_vk_coopmat_ahead(vk);
    if (ahead == 0 && pc->ncols % 64 != 0)
        ahead = 1;
    uint32_t flags = (bn == 128 ? 1u : bn == 32 ? 2u : 0u) + (ahead == 1 ? 4u : ahead == 0 ? 8u : 0u) +
                     16u * (cm_probe_bits & 15u) + 4096u * ((cm_probe_bits >> 4) & 1u) + (swiglu ? 512u : 0u);
    static int64_t vec_out = -1, srows = -1;
    /* + 1024: the scratch's fragments leave a float at a time */
    if (env_u64("GLM_VK_CM_VEC_OUT", &vec_out, 1) == 0)
        flags += 1024u;
    /* + 2048: the tile's bookkeeping read from the grouping in global memory (as 128-row tiles do) */
    if (env_u64("GLM_VK_CM_SROWS", &srows, 1) == 0)
        flags += 2048u;
    /* + 512: SiLU(W·x) * (U·x) with U at pc->w2_offset, half the weight rows a workgroup */
    uint32_t gx = (pc->nrows + MM_CM_ROWS / (swiglu ? 2 : 1) - 1) / (MM_CM_ROWS / (swiglu ? 2 : 1));
    /* + 8192 for Q4_K: its codes decoded in float16 pairs, centred (matmul_cm.comp's stash_h2;
     * GLM_VK_H2_DENSE=0 or GLM_VK_H2=0: in float32) */
    static int64_t h2d_env = -1;
    uint32_t h2_dense =
        glm_vk_h2() && pc->type == GLM_TYPE_Q4_K && env_u64("GLM_VK_H2_DENSE", &h2d_env, 1) != 0 ? 8192u : 0u;
    if (xh && xh->buf) { /* + 256: x as float16 (offsets in halves), staged without conversion */
        const glm_vk_buffer *bh[4] = { b[0], xh->buf, b[2], b[3] };
        pc->x_off = 2 * xh->off;
        pc->x_ld = 2 * xh->ld;
        pc->pad = (pc->pad & ~1u) | (pc->x_off % 8 == 0 && pc->x_ld % 8 == 0 ? 1u : 0u);
        /* matmul_gq (GLM_VK_CM_GQ=0: off): grouped Q4_K on 64-row tiles, every row and offset
         * aligned; faster than matmul_cm there on the H100 (bench/RESULTS.md) */
        static int64_t gq_env = -1;
        if (env_u64("GLM_VK_CM_GQ", &gq_env, 1) != 0 && pc->type == GLM_TYPE_Q4_K && (pc->mode == 1 || pc->mode == 2) &&
            bn == 64 && (pc->pad & 7u) == 7u && pc->ncols % 256 == 0 && pc->nrows % 4 == 0) {
            /* matmul_gqp (GLM_VK_GQ_PC=1, float16 pairs only): producer and consumer subgroups,
             * tiles of 64 weight rows (32 outputs with SwiGLU) */
            static int64_t gq_pc = -1;
            bool pcw = env_u64("GLM_VK_GQ_PC", &gq_pc, 0) != 0 && glm_vk_h2();
            uint32_t bmo = pcw ? (swiglu ? 32u : 64u) : (swiglu ? 64u : 128u);
            /* + 16 × the probe's switches (its bit 4, no barriers, as bit 8); its switches 32 (one
             * x fragment a step) and 64 (the weight fragments once a step) take matmul_gq's probe
             * build, as bits 9 and 3 */
            uint32_t fl = (swiglu ? 1u : 0u) + 16u * (cm_probe_bits & 63u) + ((cm_probe_bits & 64u) ? 8u : 0u);
            glm_vk_kernel kq = pcw ? GLM_VK_MATMUL_GQP : (cm_probe_bits & 96u) ? GLM_VK_MATMUL_GQ_XPROBE : GLM_VK_MATMUL_GQ;
            /* + 2: the codes decoded in float16 pairs (GLM_VK_H2=0: in float32) */
            if (glm_vk_h2())
                fl += 2u;
            /* + 4: weight codes and x loaded two steps ahead (GLM_VK_GQ_AHEAD=1: one step) */
            static int64_t gq_ahead = -1;
            if (env_u64("GLM_VK_GQ_AHEAD", &gq_ahead, 2) >= 2)
                fl += 4u;
            /* + 1024: a block's header loaded once for its four steps (GLM_VK_GQ_HD=0: every step) */
            static int64_t gq_hd = -1;
            if (!pcw && env_u64("GLM_VK_GQ_HD", &gq_hd, 1) != 0)
                fl += 1024u;
            return glm_vk_dispatch_variant(vk, kq, pc->type + 64u * fl, bh, 4, pc, sizeof *pc,
                                           (pc->nrows + bmo - 1) / bmo, gy, gz);
        }
        /* + 8192: grouped Q6_K decoded in float16 pairs (GLM_VK_H2=0: in float32) */
        if (glm_vk_h2() && pc->type == GLM_TYPE_Q6_K && (pc->mode == 1 || pc->mode == 2))
            flags += 8192u;
        flags += h2_dense;
        return glm_vk_dispatch_variant(vk, GLM_VK_MATMUL_CM, pc->type + 64u * (flags + 256u), bh, 4, pc, sizeof *pc,
                                       gx, gy, gz);
    }
    return glm_vk_dispatch_variant(vk, GLM_VK_MATMUL_CM, pc->type + 64u * (flags + h2_dense), b, 4, pc, sizeof *pc, gx,
                                   gy, gz);
}

/* How many column parts the tensor-core kernel splits the plain product pc of `rows` token rows
 * in tiles of bn into (glm_vk_coopmat_set_split); 1: none. */
static uint32_t matmul_splits(glm_vk *vk, const glm_vk_matmul_push *pc, uint32_t rows, uint32_t bn)
{
    if (!glm_vk_coopmat_enabled(vk) || matmul_on_cm2(vk, pc) || pc->mode != 0)
        return 1;
    uint64_t groups = (uint64_t)(pc->nrows + MM_CM_ROWS - 1) / MM_CM_ROWS * ((rows + bn - 1) / bn);
    uint32_t s = 1, most = glm_vk_coopmat_split(vk);
    while (2 * s <= most && groups * 2 * s <= 264 && pc->ncols % (2 * s * 512) == 0 &&
           (uint64_t)rows * pc->nrows * 2 * s * 4 <= GLM_VK_SPLIT_BYTES)
        s *= 2;
    return s;
}

/* pc as column part z of `parts` in the per-head mode: its weights row_bytes(ks) bytes on, its x
 * columns ks on (ks = ncols / parts), its y one part (g_off, the caller's) further in the scratch */
static void split_push(glm_vk_matmul_push *pc, const glm_vk_weight *w, uint32_t parts)
{
    uint32_t ks = w->ncols / parts;
    pc->ncols = ks;
    pc->mode = 3;
    pc->k = ks;
    pc->slab_bytes = (uint32_t)glm_row_bytes(w->type, ks);
    pc->y_off = 0;
    pc->y_ld = w->nrows;
}

/* y = the sum of the parts (add: y += it) */
static glm_status sum_parts(glm_vk *vk, glm_vk_view y, glm_vk_view part0, uint32_t parts, uint32_t stride, bool add)
{
    glm_vk_view last = part0;
    last.off += (parts ? parts - 1 : 0) * stride;
    if (parts == 0 || !view_ok(y) || !view_ok(part0) || !view_ok(last) || part0.rows != y.rows ||
        part0.cols != y.cols)
        return bad("sum_parts", "views disagree or overrun their buffers");
    glm_vk_eltwise_push pc = { 4u, y.rows, y.cols, parts, part0.off, part0.ld, stride, add, y.off, y.ld, 0, 0 };
    const glm_vk_buffer *bb[3] = { part0.buf, part0.buf, y.buf };
    uint32_t gx = eltwise_vec(&pc);
    return glm_vk_dispatch(vk, GLM_VK_ELTWISE, bb, 3, &pc, sizeof pc, gx, y.rows, 1);
}

glm_status glm_vk_sum_parts(glm_vk *vk, glm_vk_view y, glm_vk_view part0, uint32_t parts, uint32_t stride)
{
    return sum_parts(vk, y, part0, parts, stride, false);
}

glm_status glm_vk_sum_parts_add(glm_vk *vk, glm_vk_view y, glm_vk_view part0, uint32_t parts, uint32_t stride)
{
    return sum_parts(vk, y, part0, parts, stride, true);
}

/* GLM_VK_ADD_PARTS=0: y += W·x always through a product scratch and an add (to measure the change) */
bool glm_vk_matmul_add_on(void)
{
    static int64_t on = -1;
    return env_u64("GLM_VK_ADD_PARTS", &on, 1) != 0;
}

/* The column parts glm_vk_matmul splits W·x of `rows` token rows into (1: none). */
uint32_t glm_vk_matmul_parts(glm_vk *vk, const glm_vk_weight *w, uint32_t rows)
{
    glm_vk_matmul_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              0, w->ncols, 0, w->nrows, rows, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    return matmul_splits(vk, &pc, rows, matmul_tile_rows(vk, &pc, rows, 1));
}

static glm_status matmul_any(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x,
                             bool add);

glm_status glm_vk_matmul(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x)
{
    return matmul_any(vk, y, w, slab, x, false);
}

glm_status glm_vk_matmul_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x)
{
    return matmul_any(vk, y, w, 0, x, true);
}

/* y = W_slab·x; add (products that split into column parts only): y += W·x, the parts' sum
 * added into y by the dispatch that sums them */
static glm_status matmul_any(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x,
                             bool add)
{
    if (!glm_vk_matmul_fits(w))
        return glm_errorf(GLM_ERR_INVALID, "vulkan matmul: %s weight of %u columns is malformed, outside its buffer or "
                          "not a multiple of 32 columns", glm_type_name(w->type), w->ncols);
    if (!view_ok(x) || !view_ok(y) || x.cols != w->ncols || y.cols != w->nrows || y.rows != x.rows ||
        slab >= (w->nslabs ? w->nslabs : 1))
        return bad("matmul", "x or y view does not match the weight, overruns its buffer, or slab out of range");
    glm_vk_matmul_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset + slab * w->slab_bytes,
                              w->slab_bytes, x.off, x.ld, y.off, y.ld, x.rows, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    uint32_t bn = matmul_tile_rows(vk, &pc, x.rows, 1), parts = matmul_splits(vk, &pc, x.rows, bn);
    if (parts > 1) {
        /* column part z as product z of the per-head mode (split_push); then the sum */
        uint32_t part = x.rows * w->nrows;
        const glm_vk_buffer *pb;
        GLM_TRY(glm_vk_split_parts(vk, (uint64_t)part * parts * 4, &pb));
        glm_vk_matmul_push ps = pc;
        split_push(&ps, w, parts);
        ps.g_off = part;
        const glm_vk_buffer *bs[4] = { w->buf, x.buf, pb, x.buf /* unused */ };
        GLM_TRY(matmul_record(vk, &ps, bs, x.rows, 0, parts, bn, NULL, false));
        return sum_parts(vk, y, (glm_vk_view){ pb, 0, x.rows, w->nrows, w->nrows }, parts, part, add);
    }
    if (add)
        return bad("matmul_add", "the product does not split into column parts (glm_vk_matmul_parts)");
    const glm_vk_buffer *b[4] = { w->buf, x.buf, y.buf, x.buf /* unused */ };
    return matmul_record(vk, &pc, b, x.rows, 0, 1, bn, NULL, false);
}

static int64_t h2_mode = -1;
bool glm_vk_h2(void) { return env_u64("GLM_VK_H2", &h2_mode, 1) != 0; }
void glm_vk_set_h2(bool on) { h2_mode = on ? 1 : 0; }

static int64_t router_tiled = -1;
uint32_t glm_vk_router_tiled(void)
{
    uint64_t m = env_u64("GLM_VK_ROUTER_TILED", &router_tiled, 1);
    return m > 2 ? 1 : (uint32_t)m;
}
void glm_vk_set_router_tiled(uint32_t mode) { router_tiled = mode; }

glm_status glm_vk_matmul_f32(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x)
{
    if (!glm_vk_matmul_fits(w))
        return glm_errorf(GLM_ERR_INVALID, "vulkan matmul_f32: %s weight of %u columns is malformed, outside its "
                          "buffer or not a multiple of 32 columns", glm_type_name(w->type), w->ncols);
    if (!view_ok(x) || !view_ok(y) || x.cols != w->ncols || y.cols != w->nrows || y.rows != x.rows)
        return bad("matmul_f32", "x or y view does not match the weight or overruns its buffer");
    glm_vk_matmul_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              x.off, x.ld, y.off, y.ld, x.rows, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
    uint32_t gx = (w->nrows + MM_TILE - 1) / MM_TILE, parts = 1;
    /* the columns split into up to 16 parts of whole blocks and at least 64 columns (the router's
     * 64 experts make a grid of one workgroup a 64 rows), by the shape alone: a row's result does
     * not depend on how many rows come with it; rows in blocks that fit the parts' scratch */
    uint32_t step = glm_type_info(w->type)->block > 64 ? glm_type_info(w->type)->block : 64;
    while (parts < 16 && w->ncols % (parts * 2 * step) == 0)
        parts *= 2;
    if (parts == 1) {
        const glm_vk_buffer *b[4] = { w->buf, x.buf, y.buf, x.buf /* unused */ };
        return glm_vk_dispatch_variant(vk, GLM_VK_MATMUL, pc.type, b, 4, &pc, sizeof pc, gx,
                                       (x.rows + MM_TILE - 1) / MM_TILE, 1);
    }
    /* column part z as product z of the per-head mode (as glm_vk_matmul's split), then the sum */
    uint32_t most = GLM_VK_SPLIT_BYTES / (w->nrows * parts * 4);
    split_push(&pc, w, parts);
    if (most == 0)
        return bad("matmul_f32", "a row's parts do not fit the split scratch");
    for (uint32_t r0 = 0; r0 < x.rows; r0 += most) {
        uint32_t n = x.rows - r0 < most ? x.rows - r0 : most, part = n * w->nrows;
        const glm_vk_buffer *pb;
        GLM_TRY(glm_vk_split_parts(vk, (uint64_t)part * parts * 4, &pb));
        pc.x_off = x.off + r0 * x.ld;
        pc.ntok = n;
        pc.g_off = part;
        const glm_vk_buffer *bs[4] = { w->buf, x.buf, pb, x.buf /* unused */ };
        GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MATMUL, pc.type, bs, 4, &pc, sizeof pc, gx,
                                        (n + MM_TILE - 1) / MM_TILE, parts));
        glm_vk_view yr = y;
        yr.off += r0 * y.ld;
        yr.rows = n;
        GLM_TRY(glm_vk_sum_parts(vk, yr, (glm_vk_view){ pb, 0, n, w->nrows, w->nrows }, parts, part));
    }
    return GLM_OK;
}

glm_status glm_vk_matmul_heads(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, uint32_t heads,
                               uint32_t x_step, uint32_t y_step)
{
    if (!glm_vk_matmul_fits(w) || heads == 0 || heads > (w->nslabs ? w->nslabs : 1))
        return bad("matmul_heads", "weight malformed, not whole 32-column chunks, or fewer slabs than heads");
    glm_vk_view xl = x, yl = y; /* the last head's views must lie inside their buffers */
    xl.off += (heads - 1) * x_step;
    yl.off += (heads - 1) * y_step;
    if (!view_ok(x) || !view_ok(y) || !view_ok(xl) || !view_ok(yl) || x.cols != w->ncols || y.cols != w->nrows ||
        y.rows != x.rows)
        return bad("matmul_heads", "x or y view does not match the weight or overruns its buffer");
    glm_vk_matmul_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              x.off, x.ld, y.off, y.ld, x.rows, 3, x_step, y_step, 0, 0, 0, 0, 0, 0 };
    const glm_vk_buffer *b[4] = { w->buf, x.buf, y.buf, x.buf /* unused */ };
    return matmul_record(vk, &pc, b, x.rows, 0, heads, matmul_tile_rows(vk, &pc, x.rows, heads), NULL, false);
}

uint64_t glm_vk_moe_group_ints(uint32_t T, uint32_t k, uint32_t n_exp)
{
    /* counts[E], offsets[E], tiles[E+1], pairs[T·k] */
    return 3ull * n_exp + 1 + (uint64_t)T * k;
}

bool glm_vk_matmul_id_takes_half(glm_vk *vk, const glm_vk_weight *w)
{
    static int64_t c = -1;
    glm_vk_matmul_push pc = { .type = (uint32_t)w->type, .w_offset = w->offset, .slab_bytes = w->slab_bytes, .mode = 1 };
    return glm_vk_coopmat_enabled(vk) && !matmul_on_cm2(vk, &pc) && w->ncols % 2 == 0 &&
           env_u64("GLM_VK_CM_X16", &c, 1) != 0;
}

glm_status glm_vk_matmul_id(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view ids,
                            glm_vk_view group)
{
    glm_vk_view none = { 0 };
    return glm_vk_matmul_id_half(vk, y, w, x, none, ids, group, false);
}

glm_status glm_vk_matmul_id_half(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view xh,
                                 glm_vk_view ids, glm_vk_view group, bool group_ready)
{
    uint32_t E = w->nslabs ? w->nslabs : 1;
    if (!glm_vk_matmul_fits(w))
        return glm_errorf(GLM_ERR_INVALID, "vulkan matmul_id: %s weight of %u columns is malformed, outside its buffer "
                          "or not a multiple of 32 columns", glm_type_name(w->type), w->ncols);
    if (!view_ok(x) || !view_ok(y) || !view_ok(ids) || !view_ok(group) || x.cols != w->ncols || y.cols != w->nrows ||
        y.rows != ids.rows * ids.cols || (x.rows != ids.rows && x.rows != y.rows))
        return bad("matmul_id", "ids, x and y row counts disagree or overrun their buffers");
    if (E > 256 || group.ld != group.cols || (uint64_t)group.rows * group.cols < glm_vk_moe_group_ints(ids.rows, ids.cols, E))
        return bad("matmul_id", "more than 256 experts, or the group scratch is too small");
    uint32_t mode = x.rows == ids.rows && ids.cols > 1 ? 1 : (x.rows == y.rows ? 2 : 1); /* as matvec_any */
    glm_vk_matmul_push pc = { (uint32_t)w->type, w->ncols, w->nrows, w->row_bytes, w->offset, w->slab_bytes,
                              x.off, x.ld, y.off, y.ld, x.rows, mode, ids.cols, group.off, E, 0, 0, 0, 0, 0 };
    uint32_t bn = matmul_tile_rows(vk, &pc, y.rows, 1);
    glm_vk_moe_group_push gp = { ids.rows, ids.cols, E, ids.off, ids.ld, group.off, bn, 0 };
    const glm_vk_buffer *gb[2] = { ids.buf, group.buf };
    if (xh.buf && (!view_ok(xh) || xh.rows != x.rows || 2 * xh.cols != x.cols))
        return bad("matmul_id", "the float16 x view does not match x or overruns its buffer");
    if (!group_ready)
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MOE_GROUP, gb, 2, &gp, sizeof gp, 1, 1, 1));
    const glm_vk_buffer *b[4] = { w->buf, x.buf, y.buf, group.buf };
    /* Σ_e ceil(count_e / tile) ≤ pairs / tile + E; surplus workgroups exit at once */
    return matmul_record(vk, &pc, b, y.rows, E, 1, bn, xh.buf ? &xh : NULL, false);
}

uint32_t glm_vk_matmul_id_tile(glm_vk *vk, const glm_vk_weight *w)
{
    glm_vk_matmul_push pc = { .type = (uint32_t)w->type, .w_offset = w->offset, .slab_bytes = w->slab_bytes, .mode = 1 };
    return matmul_tile_rows(vk, &pc, 0, 1);
}

bool glm_vk_matmul_swiglu_fits(glm_vk *vk, const glm_vk_weight *g, const glm_vk_weight *u)
{
    static int64_t c = -1;
    glm_vk_matmul_push pc = { .type = (uint32_t)g->type, .w_offset = g->offset, .slab_bytes = g->slab_bytes, .mode = 1 };
    return glm_vk_coopmat_enabled(vk) && env_u64("GLM_VK_CM_SWIGLU", &c, 1) != 0 && !matmul_on_cm2(vk, &pc) &&
           glm_vk_matmul_fits(g) && glm_vk_matmul_fits(u) && g->buf == u->buf && g->type == u->type &&
           g->ncols == u->ncols && g->nrows == u->nrows && g->row_bytes == u->row_bytes &&
           g->slab_bytes == u->slab_bytes && (g->nslabs ? g->nslabs : 1) == (u->nslabs ? u->nslabs : 1) &&
           g->offset % 16 == u->offset % 16;
}

glm_status glm_vk_matmul_swiglu(glm_vk *vk, glm_vk_view y, const glm_vk_weight *g, const glm_vk_weight *u,
                                glm_vk_view x, glm_vk_view xh, const glm_vk_view *ids, glm_vk_view group,
                                bool group_ready)
{
    if (!glm_vk_matmul_swiglu_fits(vk, g, u))
        return bad("matmul_swiglu", "no tensor cores, or the gate and up weights differ in buffer, type or shape");
    uint32_t E = g->nslabs ? g->nslabs : 1;
    bool grouped = ids != NULL;
    if (!view_ok(x) || !view_ok(y) || x.cols != g->ncols || y.cols != g->nrows ||
        (grouped ? !view_ok(*ids) || !view_ok(group) || y.rows != ids->rows * ids->cols ||
                       (x.rows != ids->rows && x.rows != y.rows)
                 : y.rows != x.rows))
        return bad("matmul_swiglu", "x, y and ids row counts disagree or overrun their buffers");
    if (grouped && (E > 256 || group.ld != group.cols ||
                    (uint64_t)group.rows * group.cols < glm_vk_moe_group_ints(ids->rows, ids->cols, E)))
        return bad("matmul_swiglu", "more than 256 experts, or the group scratch is too small");
    if (xh.buf && (!view_ok(xh) || xh.rows != x.rows || 2 * xh.cols != x.cols))
        return bad("matmul_swiglu", "the float16 x view does not match x or overruns its buffer");
    uint32_t mode = !grouped ? 0 : x.rows == ids->rows && ids->cols > 1 ? 1 : (x.rows == y.rows ? 2 : 1);
    glm_vk_matmul_push pc = { (uint32_t)g->type, g->ncols, g->nrows, g->row_bytes, g->offset, g->slab_bytes,
                              x.off, x.ld, y.off, y.ld, x.rows, mode, grouped ? ids->cols : 1, grouped ? group.off : 0,
                              grouped ? E : 0, 0, u->offset, 0, 0, 0 };
    uint32_t bn = matmul_tile_rows(vk, &pc, y.rows, 1);
    if (grouped && !group_ready) {
        glm_vk_moe_group_push gp = { ids->rows, ids->cols, E, ids->off, ids->ld, group.off, bn, 0 };
        const glm_vk_buffer *gb[2] = { ids->buf, group.buf };
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MOE_GROUP, gb, 2, &gp, sizeof gp, 1, 1, 1));
    }
    const glm_vk_buffer *b[4] = { g->buf, x.buf, y.buf, grouped ? group.buf : x.buf /* unused */ };
    return matmul_record(vk, &pc, b, y.rows, grouped ? E : 0, 1, bn, xh.buf ? &xh : NULL, true);
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
                               const glm_vk_weight *g, float eps, uint32_t n_norm, const glm_vk_kv_rope *rope)
{
    if (!view_ok(pool) || !view_ok(src) || pool.cols != src.cols || !kv_rows_ok(r, src.rows))
        return bad("kv_write", "pool, rows or page views disagree or overrun their buffers");
    if (g && (n_norm == 0 || n_norm > src.cols || !gain_ok(g, n_norm)))
        return bad("kv_write_norm", "norm gain is not a plain row of n_norm <= cols elements");
    uint32_t q_groups = 0;
    if (rope) {
        const glm_vk_view q = rope->q;
        if (rope->rope_dim == 0 || rope->rope_dim % 2 || (uint64_t)rope->kr_col + rope->rope_dim > src.cols ||
            (rope->n_heads && (!view_ok(q) || q.rows != src.rows || rope->rope_off + rope->rope_dim > rope->head_dim ||
                               (uint64_t)rope->n_heads * rope->head_dim > q.cols || q.buf == src.buf ||
                               q.buf == pool.buf)))
            return bad("kv_write_rope", "rope columns or the query's head layout do not fit their views");
        if ((uint64_t)rope->table_positions * rope->rope_dim * 4 > rope->table->size)
            return bad("kv_write_rope", "cos/sin table smaller than its positions");
        q_groups = groups(rope->n_heads * rope->rope_dim / 2);
    }
    glm_vk_kv_write_push pc = { src.rows, src.cols, src.off, src.ld, pool.off, pool.ld, r->pos.off, r->pos.ld,
                                r->ptab.off, r->ptab.ld, r->pages.off, r->page_size, g ? n_norm : 0,
                                g ? g->offset : 0, g ? (uint32_t)g->type : 0, eps, 0, 0, 0, 0, 0, 0, 0, 0 };
    if (rope) {
        pc.rope_dim = rope->rope_dim;
        pc.kr_col = rope->kr_col;
        pc.table_positions = rope->table_positions;
        pc.q_off = rope->q.off;
        pc.q_ld = rope->q.ld;
        pc.q_heads = rope->n_heads;
        pc.q_head_dim = rope->head_dim;
        pc.q_rope_off = rope->rope_off;
    }
    /* without the ropes the table and query bindings take buffers the dispatch uses anyway */
    const glm_vk_buffer *b[8] = { src.buf, r->pos.buf, r->ptab.buf, r->pages.buf, pool.buf, g ? g->buf : src.buf,
                                  rope ? rope->table : src.buf, rope && rope->n_heads ? rope->q.buf : pool.buf };
    /* one pipeline per gain type (constant_id 0: 0 F32, 1 F16, 2 BF16; F32 without a norm) */
    uint32_t gclass = !g || g->type == GLM_TYPE_F32 ? 0 : g->type == GLM_TYPE_F16 ? 1 : 2;
    return glm_vk_dispatch_variant(vk, GLM_VK_KV_WRITE, gclass, b, 8, &pc, sizeof pc, groups(src.cols) + q_groups,
                                   src.rows, 1);
}

glm_status glm_vk_kv_write(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r)
{
    return kv_write_any(vk, pool, src, r, NULL, 0, 0, NULL);
}

glm_status glm_vk_kv_write_norm(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                                const glm_vk_weight *g, float eps, uint32_t n_norm)
{
    if (!g)
        return bad("kv_write_norm", "no norm gain");
    return kv_write_any(vk, pool, src, r, g, eps, n_norm, NULL);
}

glm_status glm_vk_kv_write_rope(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                                const glm_vk_weight *g, float eps, uint32_t n_norm, const glm_vk_kv_rope *rope)
{
    if (!g || !rope)
        return bad("kv_write_rope", "no norm gain or no rope");
    return kv_write_any(vk, pool, src, r, g, eps, n_norm, rope);
}

glm_status glm_vk_to_half(glm_vk *vk, glm_vk_view y, glm_vk_view a)
{
    if (!view_ok(y) || !view_ok(a) || a.rows != y.rows || a.cols != 2 * y.cols)
        return bad("to_half", "views disagree or overrun their buffers");
    glm_vk_eltwise_push pc = { 3u, y.rows, y.cols, 0, a.off, a.ld, a.off, a.ld, y.off, y.ld, 0, 0 };
    const glm_vk_buffer *bb[3] = { a.buf, a.buf, y.buf };
    uint32_t gx = eltwise_vec(&pc);
    return glm_vk_dispatch(vk, GLM_VK_ELTWISE, bb, 3, &pc, sizeof pc, gx, y.rows, 1);
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
    uint32_t gx = eltwise_vec(&pc);
    return glm_vk_dispatch(vk, GLM_VK_ELTWISE, bb, 3, &pc, sizeof pc, gx, y.rows, 1);
}

/* Experts per workgroup of moe_gate_route (GATE_EPW in shaders/moe_gate_route.comp). */
#define GLM_VK_GATE_EPW 2

static bool plain_row_type(glm_type t) { return t == GLM_TYPE_F32 || t == GLM_TYPE_F16 || t == GLM_TYPE_BF16; }

bool glm_vk_moe_gate_fits(const glm_vk_weight *w, const glm_vk_weight *g)
{
    return weight_ok(w) && plain_row_type(w->type) && w->row_bytes % 4 == 0 && gain_ok(g, w->ncols);
}

static glm_status route_any(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                            const glm_vk_weight *bias, uint32_t k, uint32_t n_group, uint32_t topk_group, bool sigmoid,
                            bool norm_topk, float scale, const glm_vk_moe_gate *gate)
{
    uint32_t E = logits.cols;
    /* k + 1 columns: the last one gets id E with weight 1 (the shared expert held as expert E) */
    bool extra = ids.cols == k + 1;
    if (!view_ok(ids) || !view_ok(weights) || !view_ok(logits) || (ids.cols != k && !extra) ||
        weights.cols != ids.cols || ids.rows != logits.rows || weights.rows != logits.rows)
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
    pc.pad[1] = extra ? E + 1 : 0; /* the shaders' `extra` */
    const glm_vk_buffer *b[10] = { logits.buf, bias ? bias->buf : logits.buf, ids.buf, weights.buf };
    if (!gate)
        return glm_vk_dispatch(vk, GLM_VK_MOE_ROUTE, b, 4, &pc, sizeof pc, logits.rows, 1, 1);
    const glm_vk_weight *w = gate->w, *g = gate->g;
    if (!glm_vk_moe_gate_fits(w, g) || w->nrows != E || !view_ok(gate->x) || gate->x.rows != logits.rows ||
        gate->x.cols != w->ncols)
        return bad("moe_gate_route", "router rows, norm gain or x do not fit (plain rows of x.cols, one per expert)");
    if ((uint64_t)gate->counts_off + logits.rows > gate->counts->size / 4)
        return bad("moe_gate_route", "the count buffer is smaller than its rows");
    const glm_vk_view xn = gate->xn;
    if (xn.buf && (!view_ok(xn) || xn.rows != gate->x.rows || xn.cols != gate->x.cols || xn.buf == gate->x.buf))
        return bad("moe_gate_route", "the normed x view does not match x, overruns its buffer or shares x's");
    glm_vk_moe_gate_route_push gp = { pc,          gate->x.off, gate->x.ld,      w->ncols,
                                      w->offset,   w->row_bytes, (uint32_t)w->type, g->offset,
                                      (uint32_t)g->type, gate->eps, gate->counts_off, xn.off, xn.ld };
    const glm_vk_view xn8 = gate->xn8;
    if (xn8.buf && (!xn.buf || !view_ok(xn8) || w->ncols % 256 || xn8.rows != xn.rows ||
                    xn8.cols != glm_ref_x8_words(w->ncols) || xn8.ld != xn8.cols || (xn8.off & 3)))
        return bad("moe_gate_route", "the 8-bit normed x view does not fit x (or there is no normed x)");
    gp.route.pad[0] = (xn.buf != NULL) | 2u * (xn8.buf != NULL);
    gp.route.pad[2] = xn8.off;
    b[4] = gate->x.buf;
    b[5] = w->buf;
    b[6] = g->buf;
    b[7] = gate->counts;
    b[8] = xn.buf ? xn.buf : logits.buf; /* without xn: a buffer the dispatch writes anyway */
    b[9] = xn8.buf ? xn8.buf : b[8];
    /* one pipeline per (rows' type, gain's type, bias's class): constant_id 0 = the rows' type,
     * 1 = the gain's (0 F32, 1 F16, 2 BF16) + 3 × the bias's (the same, 3 any other type) */
    uint32_t gsel = g->type == GLM_TYPE_F32 ? 0 : g->type == GLM_TYPE_F16 ? 1 : 2;
    uint32_t bclass = !bias || bias->type == GLM_TYPE_F32 ? 0
                      : bias->type == GLM_TYPE_F16        ? 1
                      : bias->type == GLM_TYPE_BF16       ? 2
                                                          : 3;
    gsel += 3 * bclass;
    static int64_t rexp = -1; /* GLM_VK_ROUTER_EXP: the shader's measurement switches (wrong results) */
    uint32_t rx = (uint32_t)env_u64("GLM_VK_ROUTER_EXP", &rexp, 0) & 31u, epw = rx & 16u ? 1 : GLM_VK_GATE_EPW;
    gsel += 16 * rx;
    return glm_vk_dispatch_variant(vk, GLM_VK_MOE_GATE_ROUTE, (uint32_t)w->type + 64 * gsel, b, 10, &gp, sizeof gp,
                                   (E + epw - 1) / epw, logits.rows, 1);
}

glm_status glm_vk_moe_route(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                            const glm_vk_weight *bias, uint32_t k, uint32_t n_group, uint32_t topk_group, bool sigmoid,
                            bool norm_topk, float scale)
{
    return route_any(vk, ids, weights, logits, bias, k, n_group, topk_group, sigmoid, norm_topk, scale, NULL);
}

glm_status glm_vk_moe_gate_route(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                                 const glm_vk_weight *bias, uint32_t k, uint32_t n_group, uint32_t topk_group,
                                 bool sigmoid, bool norm_topk, float scale, const glm_vk_moe_gate *gate)
{
    if (!gate)
        return bad("moe_gate_route", "no router product");
    return route_any(vk, ids, weights, logits, bias, k, n_group, topk_group, sigmoid, norm_topk, scale, gate);
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

glm_status glm_vk_argmax(glm_vk *vk, glm_vk_view ids, glm_vk_view x, const int32_t *mask, uint32_t n_mask)
{
    if (!view_ok(ids) || !view_ok(x) || ids.rows != x.rows || ids.cols != 1 || ids.ld != 1)
        return bad("argmax", "ids must be a contiguous [rows][1] view");
    if (n_mask > GLM_VK_ARGMAX_MASK || (n_mask && !mask))
        return bad("argmax", "more masked columns than the kernel takes");
    glm_vk_argmax_push pc = { x.rows, x.cols, x.off, x.ld, n_mask, { 0 }, { 0 } };
    for (uint32_t i = 0; i < n_mask; i++)
        pc.mask[i] = mask[i] < 0 ? UINT32_MAX : (uint32_t)mask[i];
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

/* Splits the dispatch needs for rows of keys up to max_len (the most split_count of
 * shaders/mla_splits.glsl gives at lengths up to max_len). */
static uint32_t split_count_of(uint32_t max_len, uint32_t pass, uint32_t max_split)
{
    uint32_t n = (max_len + pass - 1) / pass;
    return n < max_split ? n : max_split;
}

static uint32_t split_count(uint32_t max_len)
{
    return split_count_of(max_len, GLM_VK_MLA_PASS, GLM_VK_MLA_MAX_SPLIT);
}

/* mla_flash's workgroup and the lanes a head it takes for H heads on lanes of at most `most`:
 * the most of 32, 16 and 8 that fit; 0 where H heads do not fit 8 lanes each. */
#define FLASH_WG 640u
static uint32_t flash_lanes(uint32_t H, uint32_t most)
{
    for (uint32_t l = 32; l >= 8; l /= 2)
        if (l <= most && H * l <= FLASH_WG)
            return l;
    return 0;
}

/* Does the per-row core of these shapes take mla_flash.comp? Up to 80 heads (8 lanes each of
 * its 640 invocations), rows [c | kr] of at most 576 floats (18 vec4s a lane of 8). */
static bool flash_on(const glm_vk_kv_rows *r, uint32_t H, uint32_t rkv, uint32_t dr)
{
    return r->flash_pass && r->flash_split && flash_lanes(H, 32) && rkv <= 512 && rkv + dr <= 576;
}

/* mla_flash_cm.comp's cut: blocks of 32 keys, at most FLASH_CM_SPLIT splits of whole blocks
 * (one block a split up to 32 · 256 keys); GLM_VK_MLA_CM_SPLIT=n or glm_vk_set_mla_flash_cm_split
 * lowers the bound (n from 1 to 256; the scratch is sized for 256) */
#define FLASH_CM_PASS 32u
#define FLASH_CM_SPLIT 256u
static int flash_cm_forced = -1;
static uint32_t flash_cm_split_forced;
void glm_vk_set_mla_flash_cm(int on) { flash_cm_forced = on < 0 ? -1 : on != 0; }
void glm_vk_set_mla_flash_cm_split(uint32_t n) { flash_cm_split_forced = n > FLASH_CM_SPLIT ? FLASH_CM_SPLIT : n; }
static uint32_t flash_cm_split(void)
{
    static int64_t e = -1;
    uint64_t n = flash_cm_split_forced ? flash_cm_split_forced : env_u64("GLM_VK_MLA_CM_SPLIT", &e, FLASH_CM_SPLIT);
    return n < 1 ? 1 : n > FLASH_CM_SPLIT ? FLASH_CM_SPLIT : (uint32_t)n;
}

/* Does mla_flash's work take its tensor-core form (mla_flash_cm.comp)? Where mla_flash would
 * run, tensor cores are on and the heads are GLM-4.7-Flash's shape (Rkv 512, rope 64, at most 32
 * heads), at any length (a split takes as many blocks of 32 keys as the cut gives it). On the H100 it costs 13.4 µs a call at depth
 * 0 and 16.5 at 4,096 keys against mla_flash's 13.8 and 32 (bench/RESULTS.md), and a row of at
 * most 32 keys needs no mla_combine after it. GLM_VK_MLA_CM=0 turns it off and
 * GLM_VK_MLA_CM_MIN=n keeps mla_flash for steps whose longest row has fewer than n keys
 * (measurement switches); glm_vk_set_mla_flash_cm(1) forces it on, 0 off (tests). */
static bool flash_cm_on(glm_vk *vk, const glm_vk_kv_rows *r, uint32_t H, uint32_t rkv, uint32_t dr)
{
    static int64_t c = -1, lmin = -1;
    bool want = flash_cm_forced >= 0 ? flash_cm_forced != 0
                                     : env_u64("GLM_VK_MLA_CM", &c, 1) != 0 &&
                                           r->max_len >= env_u64("GLM_VK_MLA_CM_MIN", &lmin, 0);
    return want && glm_vk_coopmat_enabled(vk) && flash_on(r, H, rkv, dr) && H <= 32 && rkv == 512 && dr == 64;
}



/* Floats of one split's partial [m, l, 0, 0, u[Rkv], padding to 4] (part_stride in
 * shaders/mla_splits.glsl); the partials start at a multiple of 4 floats (MLA_PART_OFF). */
#define MLA_PART(rkv) (((rkv) + 3u) / 4u * 4u + 4u)
#define MLA_PART_OFF(T, H, rkv) ((2u * (T) * (H) * (rkv) + 3u) / 4u * 4u)
/* Heads per mla_split workgroup at most (MAX_NH there). */
#define MLA_MAX_NH 2u

/* mla_split's groups of heads: ceil(H / MLA_MAX_NH), of ceil(H / groups) heads (the last may
 * have fewer). */
static uint32_t mla_head_groups(uint32_t H)
{
    return (H + MLA_MAX_NH - 1) / MLA_MAX_NH;
}

/* Query rows per split/combine block: the partials of a block stay within 8 M floats. */
static uint32_t block_rows(uint32_t T, uint32_t H, uint32_t rkv, uint32_t splits)
{
    uint64_t per_row = (uint64_t)H * splits * MLA_PART(rkv);
    if (!per_row)
        return 1; /* shapes mla_attention refuses */
    uint64_t tb = (8ull << 20) / per_row;
    return tb < 1 ? 1 : (tb > T ? T : (uint32_t)tb);
}

/* Query rows per tiled block of an item: its scores [rows·H][max_len] stay within 64 M floats,
 * and softmax's one workgroup per score row within the 65535 every device dispatches. */
static uint32_t tile_rows(uint32_t T, uint32_t H, uint32_t max_len)
{
    if (!H || !max_len)
        return 1; /* shapes mla_attention refuses */
    uint64_t tb = (64ull << 20) / ((uint64_t)H * max_len), cap = 65535u / H;
    tb = tb < cap ? tb : cap;
    return tb < 1 ? 1 : (tb > T ? T : (uint32_t)tb);
}

bool glm_vk_next_stretch(const uint32_t *runs, uint32_t n_runs, bool merge_long, uint32_t *i, uint32_t *t,
                         glm_vk_stretch *s)
{
    if (*i >= n_runs)
        return false;
    *s = (glm_vk_stretch){ *t, 0, runs[*i] > GLM_VK_MATMUL_MIN_ROWS };
    do
        s->n += runs[(*i)++];
    while (*i < n_runs && (runs[*i] > GLM_VK_MATMUL_MIN_ROWS) == s->tiled && (!s->tiled || merge_long));
    *t += s->n;
    return true;
}

/* Whether run i takes the tiled core: many rows, or (decode at depth) a key bound of at least
 * long_keys. */
static bool run_tiled(const glm_vk_kv_rows *r, uint32_t i)
{
    return r->runs[i] > GLM_VK_MATMUL_MIN_ROWS || (r->run_len && r->long_keys && r->run_len[i] >= r->long_keys);
}

/* The stretches of attention: one tiled run, or consecutive per-row runs; without runs, every
 * row on its own. */
static bool next_seg(const glm_vk_kv_rows *r, uint32_t T, uint32_t *i, uint32_t *t, glm_vk_stretch *s)
{
    if (r->n_runs) {
        if (*i >= r->n_runs)
            return false;
        *s = (glm_vk_stretch){ *t, 0, run_tiled(r, *i) };
        do
            s->n += r->runs[(*i)++];
        while (*i < r->n_runs && !s->tiled && !run_tiled(r, *i));
        *t += s->n;
        return true;
    }
    if (*t >= T)
        return false;
    *s = (glm_vk_stretch){ 0, T, false };
    *t = T;
    return true;
}

/* The key bound of the tiled stretch that ended at run i (its scores' width). */
static uint32_t stretch_len(const glm_vk_kv_rows *r, uint32_t i)
{
    return r->run_len ? r->run_len[i - 1] : r->max_len;
}

/* Splits over the keys of the tiled mix of rowsH rows (t·H + h) and keys below L: enough that
 * its grid has about MIX_GROUPS workgroups of 64 × 64 tiles (decode rows at depth have one row
 * of tiles: the keys carry the parallelism), at most GLM_VK_MLA_MIX_MAX_SPLIT, each a whole
 * number of 32-key steps (*chunk keys); 1 for the many rows of a prefill. */
#define MIX_GROUPS 256u
static uint32_t mix_splits(uint32_t rowsH, uint32_t rkv, uint32_t L, uint32_t *chunk)
{
    uint64_t tiles = (uint64_t)((rkv + 63) / 64) * ((rowsH + 63) / 64);
    uint32_t steps = (L + 31) / 32, ks = tiles >= MIX_GROUPS ? 1 : (uint32_t)(MIX_GROUPS / tiles);
    ks = ks < GLM_VK_MLA_MIX_MAX_SPLIT ? ks : GLM_VK_MLA_MIX_MAX_SPLIT;
    ks = ks < steps ? ks : (steps ? steps : 1);
    *chunk = (steps + ks - 1) / ks * 32;
    return (L + *chunk - 1) / *chunk > 1 ? (L + *chunk - 1) / *chunk : 1;
}

/* Splits over the keys of the tensor-core mix on float16 operands (GLM_VK_MLA_MIX_SPLIT16, at
 * most GLM_VK_MLA_MIX_MAX_SPLIT): its grid of 128 × 128 tiles is a few waves at most. */
static uint32_t mix_splits16(uint32_t L, uint32_t *chunk)
{
    static int64_t e = -1;
    uint32_t steps = (L + 31) / 32, ks = (uint32_t)env_u64("GLM_VK_MLA_MIX_SPLIT16", &e, 1);
    ks = ks < 1 ? 1 : ks > GLM_VK_MLA_MIX_MAX_SPLIT ? GLM_VK_MLA_MIX_MAX_SPLIT : ks;
    ks = ks < steps ? ks : (steps ? steps : 1);
    *chunk = (steps + ks - 1) / ks * 32;
    return (L + *chunk - 1) / *chunk > 1 ? (L + *chunk - 1) / *chunk : 1;
}

/* Floats between two of the mix's partial sums of rowsH rows (a multiple of 4). */
static uint64_t mix_part_ld(uint32_t rowsH, uint32_t rkv)
{
    return ((uint64_t)rowsH * rkv + 3) / 4 * 4;
}

/* Scratch floats of a tiled block of rows query rows, keys below L: scores, then (split mix)
 * the 16-byte aligned partial sums. */
static uint64_t tiled_floats(uint32_t rows, uint32_t H, uint32_t rkv, uint32_t L)
{
    uint32_t chunk, ks = mix_splits(rows * H, rkv, L, &chunk);
    return (uint64_t)rows * H * L + (ks > 1 ? 3 + ks * mix_part_ld(rows * H, rkv) : 0);
}

static bool runs_ok(const glm_vk_kv_rows *r, uint32_t T)
{
    uint64_t sum = 0;
    if (r->n_runs && !r->runs)
        return false;
    for (uint32_t i = 0; i < r->n_runs; i++) {
        if (!r->runs[i] || (r->run_len && (r->run_len[i] < r->runs[i] || r->run_len[i] > r->max_len)))
            return false;
        sum += r->runs[i];
    }
    return !r->n_runs || sum == T;
}

/* Float16 operands of the tensor-core scores and mix (mla_pack16.comp, softmax's pack): a key
 * or query row of rkv + dr float16, in uints, rounded up to whole 32-column steps; the score
 * rows are padded to whole 16-byte groups of float16 pairs (the padding scores −inf, so 0). */
static uint32_t pack16_ld(uint32_t rkv, uint32_t dr) { return (rkv + dr + 31) / 32 * 16; }
static uint32_t pack16_len(uint32_t L) { return (L + 7) / 8 * 8; }

/* Does the tiled core of key bound L take float16 operands? Tensor cores only, rows softmax
 * keeps in registers; GLM_VK_MLA_F32=1 keeps the float32 operands (to measure the change). */
static bool pack16_on(const glm_vk *vk, uint32_t L)
{
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("GLM_VK_MLA_F32");
        off = e && !strcmp(e, "1");
    }
    return glm_vk_coopmat_enabled(vk) && !off && pack16_len(L) <= GLM_VK_SOFTMAX_REGS;
}

/* The partials of a per-row stretch of n rows: enough for mla_split's cut and, where r allows
 * mla_flash (these sizes do not know dr, which decides whether it runs), for its cut too. */
static uint64_t split_floats(const glm_vk_kv_rows *r, uint32_t n, uint32_t H, uint32_t rkv)
{
    uint32_t a = split_count(r->max_len);
    uint64_t need = (uint64_t)block_rows(n, H, rkv, a) * H * a * MLA_PART(rkv);
    if (flash_on(r, H, rkv, 0)) { /* mla_flash's cut, and mla_flash_cm's where rows may take it */
        uint32_t b = split_count_of(r->max_len, r->flash_pass, r->flash_split);
        uint32_t c = split_count_of(r->max_len, FLASH_CM_PASS, FLASH_CM_SPLIT);
        b = c > b ? c : b;
        uint64_t nb = (uint64_t)block_rows(n, H, rkv, b) * H * b * MLA_PART(rkv);
        need = nb > need ? nb : need;
    }
    return need;
}

uint64_t glm_vk_mla_scratch_floats(uint32_t T, uint32_t H, uint32_t rkv, const glm_vk_kv_rows *r)
{
    /* qlat [T·H][Rkv], u [T·H][Rkv], then the larger of a split block's partials
     * [block·H][splits][Rkv + 4] and a tiled block's scores [block·H][its padded key bound]
     * with, for tensor cores, the float16 keys and queries after them (rope dim ≤ 128), or, on
     * float32 operands, the mix's partial sums after the scores */
    uint64_t region = 0, need;
    uint32_t i = 0, t = 0;
    glm_vk_stretch s;
    while (next_seg(r, T, &i, &t, &s)) {
        uint32_t L = stretch_len(r, i);
        if (s.tiled) { /* float16 operands (the padded key bound), or float32 with the mix's partial
                        * sums (the full blocks and the last one: fewer rows, maybe more splits) */
            uint32_t L16 = pack16_len(L), tb16 = tile_rows(s.n, H, L16);
            uint32_t tb = tile_rows(s.n, H, L), last = s.n % tb ? s.n % tb : tb;
            uint32_t ch16, ks16 = mix_splits16(L16, &ch16);
            uint64_t f16 = (uint64_t)tb16 * H * L16 + 4 + ((uint64_t)L16 + (uint64_t)tb16 * H) * pack16_ld(rkv, 128) +
                           (ks16 > 1 ? 3 + ks16 * mix_part_ld(tb16 * H, rkv) : 0);
            uint64_t full = tiled_floats(tb, H, rkv, L), tail = tiled_floats(last, H, rkv, L);
            need = f16 > full ? f16 : full;
            need = need > tail ? need : tail;
        } else
            need = split_floats(r, s.n, H, rkv);
        region = need > region ? need : region;
    }
    return (uint64_t)T * H * 2ull * rkv + 3u + region; /* + 3: the partials' 16-byte alignment */
}

uint32_t glm_vk_mla_dispatches(uint32_t T, uint32_t H, uint32_t rkv, const glm_vk_kv_rows *r)
{
    uint32_t n = 0, i = 0, t = 0;
    glm_vk_stretch s;
    while (next_seg(r, T, &i, &t, &s)) {
        /* tiled: float16 packing and the mix's reduce besides scores, softmax and mix */
        /* per-row: the more blocks of mla_split's and mla_flash's cuts (dr unknown here) */
        uint32_t tb = s.tiled ? tile_rows(s.n, H, pack16_len(stretch_len(r, i))) : block_rows(s.n, H, rkv, split_count(r->max_len));
        uint32_t fs = flash_on(r, H, rkv, 0) ? split_count_of(r->max_len, r->flash_pass, r->flash_split) : 0;
        if (fs) {
            uint32_t c = split_count_of(r->max_len, FLASH_CM_PASS, FLASH_CM_SPLIT);
            fs = c > fs ? c : fs;
        }
        if (!s.tiled && fs && block_rows(s.n, H, rkv, fs) < tb)
            tb = block_rows(s.n, H, rkv, fs);
        uint32_t core = s.tiled ? 5 : split_count(r->max_len) > GLM_VK_MLA_MAX_INLINE || fs > 1 ? 2 : 1;
        n += 2 + core * ((s.n + tb - 1) / tb); /* k_b and v_b products, the core per block (at most) */
    }
    return n;
}

uint64_t glm_vk_mla_count_ints(uint32_t T, uint32_t H)
{
    return (uint64_t)T * mla_head_groups(H);
}

/* The per-row core (mla_split, and mla_combine where a row may have more than
 * GLM_VK_MLA_MAX_INLINE splits) for rows [t0, t0 + n). */
static glm_status mla_core_split(glm_vk *vk, glm_vk_view q, glm_vk_view c, glm_vk_view kr, uint32_t H, uint32_t dn,
                                 uint32_t dr, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch,
                                 const glm_vk_buffer *counts, uint32_t T, uint32_t t0, uint32_t n)
{
    uint32_t rkv = c.cols, qh = dn + dr, part_off = MLA_PART_OFF(T, H, rkv);
    bool vec4_rows = (rkv | dr | c.off | c.ld | kr.off | kr.ld) % 4 == 0;
    /* mla_flash compiles only the vec4 layout and pages of a power of two rows */
    bool flash = flash_on(r, H, rkv, dr) && vec4_rows && (q.off | q.ld | qh | dn) % 4 == 0 && r->page_size &&
                 !(r->page_size & (r->page_size - 1));
    bool fcm = flash && flash_cm_on(vk, r, H, rkv, dr);
    uint32_t fpass = fcm ? FLASH_CM_PASS : r->flash_pass, fsplit = fcm ? flash_cm_split() : r->flash_split;
    uint32_t ns = flash ? split_count_of(r->max_len, fpass, fsplit) : split_count(r->max_len);
    uint32_t page_shift = 0;
    while (flash && (1u << page_shift) < r->page_size)
        page_shift++;
    uint32_t tb = block_rows(n, H, rkv, ns), u_off = T * H * rkv;
    uint32_t pass = flash ? fpass : GLM_VK_MLA_PASS, max_split = flash ? fsplit : GLM_VK_MLA_MAX_SPLIT;
    uint32_t max_inline = flash ? 1 : GLM_VK_MLA_MAX_INLINE;
    for (uint32_t row0 = t0; row0 < t0 + n; row0 += tb) {
        uint32_t rows = t0 + n - row0 < tb ? t0 + n - row0 : tb;
        glm_vk_mla_split_push sp = { rows,        H,          rkv,           dr,          qh,          dn,
                                     q.off,       q.ld,       c.off,         c.ld,        kr.off,      kr.ld,
                                     0,           part_off,   r->pos.off,    r->pos.ld,   r->ptab.off, r->ptab.ld,
                                     r->pages.off, r->page_size, ns,         row0,        u_off,
                                     1.0f / sqrtf((float)qh), vec4_rows,  flash ? max_split : 0, flash, page_shift };
        const glm_vk_buffer *sb[8] = { counts, q.buf, c.buf, kr.buf, r->pos.buf, r->ptab.buf, r->pages.buf, scratch };
        /* mla_flash: one workgroup per (split, row), every head in it; mla_split: one per
         * (split, row, group of up to MLA_MAX_NH heads). Either way the heads of a workgroup
         * share each cached row read. */
        if (fcm) {
            static int64_t exp = -1; /* GLM_VK_MLA_CM_EXP: the kernel's measurement switches (wrong results) */
            uint32_t multi = r->max_len > FLASH_CM_PASS * max_split; /* splits of several blocks */
            GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MLA_FLASH_CM,
                                            multi + 64u * (uint32_t)env_u64("GLM_VK_MLA_CM_EXP", &exp, 0),
                                            sb, 8, &sp, sizeof sp, ns, rows, 1));
        } else if (flash)
            GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MLA_FLASH, pass + 64 * (flash_lanes(H, glm_vk_mla_flash_lanes(vk)) / 8),
                                            sb, 8, &sp, sizeof sp, ns, rows, 1));
        else
            GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_SPLIT, sb, 8, &sp, sizeof sp, ns, rows * mla_head_groups(H), 1));
        if (ns <= max_inline)
            continue; /* every row of few splits: the split kernel merged it */
        glm_vk_mla_combine_push cp = { rows,       H,         rkv,  ns,        part_off,  u_off,
                                       r->pos.off, r->pos.ld, row0, pass,      max_split, max_inline };
        const glm_vk_buffer *cb[3] = { scratch, r->pos.buf, scratch };
        /* one workgroup per (128 latent columns, query row and head) */
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_COMBINE, cb, 3, &cp, sizeof cp, (rkv + 127) / 128, rows * H, 1));
    }
    return GLM_OK;
}

/* Does softmax take a subgroup a score row of L entries? Where they fit its lanes' registers
 * (GLM_VK_SOFTMAX_SUB=0: a workgroup a row always, to measure the change). */
static bool softmax_sub(const glm_vk *vk, uint32_t L)
{
    static int64_t on = -1;
    uint32_t sgs = glm_vk_subgroup_size(vk);
    return env_u64("GLM_VK_SOFTMAX_SUB", &on, 1) != 0 && sgs >= 2 && sgs <= 256 && 256 % sgs == 0 &&
           L <= GLM_VK_SOFTMAX_NPT * sgs;
}

/* Query rows (t·H + h) of an item up to which its scores take mla_scores_rows (each key read
 * once for all of them) instead of tiles, on float32 operands. */
#define SCORES_ROWS_MAX 64u

/* mla_scores_cm's and mla_mix_cm's specialization (constant_id 0): bit 0, their float16 loads two
 * steps ahead (GLM_VK_MLA_AHEAD=0: one); bit 1, the scores' whole fragments stored straight to
 * the score rows (GLM_VK_MLA_DIRECT=0: through shared memory); bit 2, float16 operands (p16);
 * bit 3, a step's products in a loop not unrolled (GLM_VK_MLA_ROLL=1). */
static uint32_t mla_cm_mode(bool p16)
{
    static int64_t ahead = -1, direct = -1, roll = -1;
    return (env_u64("GLM_VK_MLA_AHEAD", &ahead, 1) ? 1u : 0u) | (env_u64("GLM_VK_MLA_DIRECT", &direct, 1) ? 2u : 0u) |
           (p16 ? 4u : 0u) | (env_u64("GLM_VK_MLA_ROLL", &roll, 0) ? 8u : 0u);
}

/* The tiled core for the rows [t0, t0 + n) of one item (consecutive positions of one
 * sequence, keys below L): scores, softmax and mix as 64 × 64 tiles (128 × 128 on tensor
 * cores, there on float16 copies of the operands where pack16_on), in blocks of tile_rows rows;
 * an item of few rows (decode at depth) takes its scores from mla_scores_rows, and a block of
 * few rows on float32 operands splits the mix over the keys (mix_splits) and adds the partial
 * sums up with mla_reduce. */
static glm_status mla_core_tiled(glm_vk *vk, glm_vk_view q, glm_vk_view c, glm_vk_view kr, uint32_t H, uint32_t dn,
                                 uint32_t dr, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch, uint32_t T,
                                 uint32_t t0, uint32_t n, uint32_t L)
{
    bool cm = glm_vk_coopmat_enabled(vk); /* 128 × 128 tiles on tensor cores */
    bool few = n * H <= SCORES_ROWS_MAX;  /* decode: mla_scores_rows on float32 operands */
    bool p16 = !few && pack16_on(vk, L) && (T * H * c.cols) % 2 == 0; /* float16 operands (s_off on 16 bytes) */
    if (p16)
        L = pack16_len(L);
    uint32_t rkv = c.cols, s_off = 2 * T * H * rkv, tb = tile_rows(n, H, L), ld16 = pack16_ld(rkv, dr);
    uint32_t k16_off = (s_off + tb * H * L + 3) / 4 * 4, q16_off = k16_off + L * ld16;
    for (uint32_t b0 = t0; b0 < t0 + n; b0 += tb) {
        uint32_t rows = t0 + n - b0 < tb ? t0 + n - b0 : tb;
        uint32_t pos_off = r->pos.off + b0 * r->pos.ld, ptab_off = r->ptab.off + b0 * r->ptab.ld;
        if (p16) {
            glm_vk_mla_pack16_push pp = { rows,     H,        rkv,          dr,      dn + dr, dn,    q.off + b0 * q.ld,
                                          q.ld,     c.off,    c.ld,         kr.off,  kr.ld,   b0 * H * rkv,
                                          pos_off,  ptab_off, r->pages.off, r->page_size, L, k16_off, q16_off, ld16,
                                          { 0 } };
            const glm_vk_buffer *pb[7] = { scratch, q.buf, c.buf, kr.buf, r->pos.buf, r->ptab.buf, r->pages.buf };
            uint64_t wgs = ((uint64_t)(L + rows * H) * ld16 + 255) / 256;
            uint32_t gx = wgs < 65535 ? (uint32_t)wgs : 65535u;
            GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_PACK16, pb, 7, &pp, sizeof pp, gx, (uint32_t)((wgs + gx - 1) / gx), 1));
        }
        glm_vk_mla_scores_push sp = { rows,        H,        rkv,     dr,     dn + dr, dn,
                                      L,           s_off,    q.off + b0 * q.ld, q.ld, c.off, c.ld,
                                      kr.off,      kr.ld,    b0 * H * rkv,      pos_off, ptab_off, r->pages.off,
                                      r->page_size, 1.0f / sqrtf((float)(dn + dr)), p16, k16_off, q16_off, ld16 };
        const glm_vk_buffer *sb[8] = { scratch, q.buf, c.buf, kr.buf, r->pos.buf, r->ptab.buf, r->pages.buf, scratch };
        if (few) /* decode: 32 keys a workgroup, every query row */
            GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_SCORES_ROWS, sb, 8, &sp, sizeof sp, (L + 31) / 32, 1, 1));
        else if (cm)
            GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MLA_SCORES_CM, mla_cm_mode(p16), sb, 8, &sp, sizeof sp,
                                            (L + 127) / 128, (rows * H + 127) / 128, 1));
        else
            GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_SCORES_TILED, sb, 8, &sp, sizeof sp, groups(L), groups(rows * H), 1));
        /* rows that fit a subgroup's registers: a subgroup a row, 256 / subgroup size rows a workgroup */
        bool sub = softmax_sub(vk, L);
        uint32_t per = sub ? 256 / glm_vk_subgroup_size(vk) : 1;
        glm_vk_softmax_push xp = { rows * H, L, s_off, p16, sub };
        const glm_vk_buffer *xb[1] = { scratch };
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_SOFTMAX, xb, 1, &xp, sizeof xp, (rows * H + per - 1) / per, 1, 1));
        uint32_t chunk = (L + 31) / 32 * 32, ks = p16 ? mix_splits16(L, &chunk) : mix_splits(rows * H, rkv, L, &chunk);
        /* the partial sums after the scores, or after the float16 queries */
        uint32_t u_off = T * H * rkv + b0 * H * rkv;
        uint32_t part_off = p16 ? (q16_off + tb * H * ld16 + 3) / 4 * 4 : (s_off + rows * H * L + 3) / 4 * 4;
        uint32_t part_ld = (uint32_t)mix_part_ld(rows * H, rkv);
        glm_vk_mla_mix_push mp = { rows,     H,        rkv,          L,
                                   c.off,    c.ld,     s_off,        ks > 1 ? part_off : u_off,
                                   pos_off,  ptab_off, r->pages.off, r->page_size,
                                   p16,      k16_off,  ld16,         chunk,
                                   part_ld,  { 0 } };
        const glm_vk_buffer *mb[6] = { scratch, c.buf, r->pos.buf, r->ptab.buf, r->pages.buf, scratch };
        if (cm)
            GLM_TRY(glm_vk_dispatch_variant(vk, GLM_VK_MLA_MIX_CM, mla_cm_mode(p16) & 13u, mb, 6, &mp, sizeof mp,
                                            (rkv + 127) / 128, (rows * H + 127) / 128, ks));
        else
            GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_MIX_TILED, mb, 6, &mp, sizeof mp, groups(rkv), groups(rows * H), ks));
        if (ks == 1)
            continue;
        glm_vk_mla_reduce_push rp = { rows * H * rkv, ks, part_off, part_ld, u_off, { 0 } };
        const glm_vk_buffer *rb[2] = { scratch, scratch };
        GLM_TRY(glm_vk_dispatch(vk, GLM_VK_MLA_REDUCE, rb, 2, &rp, sizeof rp, (rows * H * rkv + 255) / 256, 1, 1));
    }
    return GLM_OK;
}

glm_status glm_vk_mla_attention(glm_vk *vk, glm_vk_view out, glm_vk_view q, glm_vk_view c, glm_vk_view kr,
                                const glm_vk_weight *k_b, const glm_vk_weight *v_b, uint32_t H, uint32_t dn, uint32_t dr,
                                uint32_t dv, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch,
                                const glm_vk_buffer *counts)
{
    return glm_vk_mla_attention_x8(vk, out, q, c, kr, k_b, v_b, H, dn, dr, dv, r, scratch, counts, NULL, NULL);
}

glm_status glm_vk_mla_attention_x8(glm_vk *vk, glm_vk_view out, glm_vk_view q, glm_vk_view c, glm_vk_view kr,
                                   const glm_vk_weight *k_b, const glm_vk_weight *v_b, uint32_t H, uint32_t dn,
                                   uint32_t dr, uint32_t dv, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch,
                                   const glm_vk_buffer *counts, glm_vk_x8_out *out8, bool *wrote8)
{
    if (wrote8)
        *wrote8 = false;
    uint32_t T = q.rows, rkv = c.cols;
    if (!H || k_b->nslabs != H || k_b->ncols != dn || k_b->nrows != rkv || v_b->nslabs != H || v_b->ncols != rkv ||
        v_b->nrows != dv || out.rows != T || out.cols != H * dv || q.cols != H * (dn + dr))
        return bad("mla_attention", "k_b / v_b / q / out shapes disagree with the heads");
    if (!view_ok(q) || !view_ok(c) || !view_ok(kr) || kr.cols != dr || kr.rows != c.rows || !kv_rows_ok(r, T))
        return bad("mla_attention", "cache or page views disagree or overrun their buffers");
    if (!runs_ok(r, T))
        return bad("mla_attention", "the item runs do not add up to the rows");
    if (rkv > 512 || dr > 128) /* mla_split: 2 latent columns per invocation of 256, 5 vec4s per lane of 32 */
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan mla_attention: kv_lora_rank %u / rope dim %u above 512 / 128",
                          rkv, dr);
    if (glm_vk_mla_scratch_floats(T, H, rkv, r) * 4 > scratch->size || glm_vk_mla_count_ints(T, H) * 4 > counts->size)
        return bad("mla_attention", "scratch or count buffer too small");
    uint32_t qh = dn + dr, i = 0, t = 0;
    bool fits = glm_vk_matmul_fits(k_b) && glm_vk_matmul_fits(v_b);
    glm_vk_stretch s;
    while (next_seg(r, T, &i, &t, &s)) {
        /* qlat[t][h] = k_b[h] · qn[t][h] for every head in one dispatch: rows of qlat for head
         * h are t·H + h (tiled for an item of many rows) */
        bool mm = s.tiled && s.n > GLM_VK_MATMUL_MIN_ROWS && fits;
        glm_vk_view qn = { q.buf, q.off + s.t * q.ld, s.n, dn, q.ld };
        glm_vk_view ql = { scratch, s.t * H * rkv, s.n, rkv, H * rkv };
        GLM_TRY(mm ? glm_vk_matmul_heads(vk, ql, k_b, qn, H, qh, rkv) : glm_vk_matvec_heads(vk, ql, k_b, 0, qn, H, qh, rkv));
        if (s.tiled)
            GLM_TRY(mla_core_tiled(vk, q, c, kr, H, dn, dr, r, scratch, T, s.t, s.n, stretch_len(r, i)));
        else
            GLM_TRY(mla_core_split(vk, q, c, kr, H, dn, dr, r, scratch, counts, T, s.t, s.n));
        glm_vk_view uh = { scratch, T * H * rkv + s.t * H * rkv, s.n, rkv, H * rkv };
        glm_vk_view oh = { out.buf, out.off + s.t * out.ld, s.n, dv, out.ld };
        if (!mm && out8 && wrote8 && s.t == 0 && s.n == T && dv % 4 == 0 && (H * dv) % 256 == 0) {
            /* one per-row run over every row: v_b's heads also written in 8 bits */
            matvec_extra e = { H, rkv, dv, NULL, NULL, 0, false, NULL, false, out8, NULL };
            GLM_TRY(matvec_any(vk, oh, v_b, 0, uh, NULL, &e));
            *wrote8 = out8->written;
            continue;
        }
        GLM_TRY(mm ? glm_vk_matmul_heads(vk, oh, v_b, uh, H, rkv, dv) : glm_vk_matvec_heads(vk, oh, v_b, 0, uh, H, rkv, dv));
    }
    return GLM_OK;
}
