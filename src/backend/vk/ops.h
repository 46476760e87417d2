/* Host-side dispatch of each Vulkan kernel: validates shapes and byte sizes before it
 * records anything, then records one dispatch into the current recording (vk.h).
 * Each push-constant struct mirrors the `push_constant` block of its shader (size-asserted).
 * Activations are float32 addressed by views: element offset `off`, row stride `ld`. */
#ifndef GLM_VK_OPS_H
#define GLM_VK_OPS_H

#include <stdint.h>

#include "backend/vk/vk.h"
#include "model/types.h"

/* A float32/int32 view into a device buffer: rows × cols, row r at element off + r·ld. */
typedef struct glm_vk_view {
    const glm_vk_buffer *buf;
    uint32_t off, rows, cols, ld;
} glm_vk_view;

/* A weight in its file type inside a device buffer: row r of slab i at byte
 * offset + i·slab_bytes + r·row_bytes. */
typedef struct glm_vk_weight {
    const glm_vk_buffer *buf;
    glm_type type;
    uint32_t offset, ncols, nrows, nslabs, row_bytes, slab_bytes;
} glm_vk_weight;

typedef struct glm_vk_rms_norm_push {
    uint32_t n, rows;
    float eps;
    uint32_t wtype, w_offset, x_off, x_ld, y_off, y_ld, has_add, t_off, t_ld;
} glm_vk_rms_norm_push;
_Static_assert(sizeof(glm_vk_rms_norm_push) == 48, "mirrors shaders/rms_norm.comp");

typedef struct glm_vk_matvec_push {
    uint32_t type, ncols, nrows, row_bytes, w_offset, slab_bytes, x_off, x_ld, y_off, y_ld, ids_off, ids_ld, k, mode,
        x_zs, y_zs, tpr, w2_offset, swiglu, norm, g_offset, g_type;
    float eps;
    uint32_t accumulate;
    /* matvec_fast.comp's rope (variant bit ROPE): each head's rope channels of y rotated */
    uint32_t pos_off, pos_ld, head_dim, rope_off, rope_dim, table_positions;
    uint32_t y8_off, y8_ld; /* variant bit Q8OUT: y in 8 bits too (glm_vk_x8_out) */
} glm_vk_matvec_push;
_Static_assert(sizeof(glm_vk_matvec_push) == 128, "mirrors shaders/matvec_fast.comp (matvec.comp: its first 96 bytes)");
#define GLM_VK_MATVEC_ROWS 2  /* NR of shaders/matvec.comp: rows per slice */
#define GLM_VK_MATVEC_WG 256 /* its workgroup size */
#define GLM_VK_MATVEC_FAST_WG 128 /* workgroup size of shaders/matvec_fast.comp */
/* its rows per slice: 2, or 1 where 2 would give fewer workgroups than GLM_VK_MATVEC_FAST_FEW
 * (vk.h) */
/* its longest row of x staged in shared memory (XCOLS in the shader; glm_vk_matvec_set_stage_groups) */
#define GLM_VK_MATVEC_FAST_XCOLS 5120

typedef struct glm_vk_quant_x8_push {
    uint32_t rows, cols, x_off, x_ld, y_off, y_ld, pad0, pad1;
} glm_vk_quant_x8_push;
_Static_assert(sizeof(glm_vk_quant_x8_push) == 32, "mirrors shaders/quant_x8.comp");

typedef struct glm_vk_matmul_push {
    uint32_t type, ncols, nrows, row_bytes, w_offset, slab_bytes, x_off, x_ld, y_off, y_ld, ntok, mode, k, g_off, n_exp,
        pad;
    uint32_t w2_offset, pad1, pad2, pad3; /* GLM_VK_MATMUL_CM's SwiGLU products: the up weights' byte offset */
} glm_vk_matmul_push;
_Static_assert(sizeof(glm_vk_matmul_push) == 80, "mirrors shaders/matmul_tile.glsl");

typedef struct glm_vk_moe_group_push {
    uint32_t T, k, n_exp, ids_off, ids_ld, g_off, tile, pad;
} glm_vk_moe_group_push;
_Static_assert(sizeof(glm_vk_moe_group_push) == 32, "mirrors shaders/moe_group.comp");

typedef struct glm_vk_get_rows_push {
    uint32_t type, ncols, row_bytes, w_offset, ids_off, y_off, y_ld, rows;
} glm_vk_get_rows_push;
_Static_assert(sizeof(glm_vk_get_rows_push) == 32, "mirrors shaders/get_rows.comp");

typedef struct glm_vk_rope_push {
    uint32_t x_off, x_ld, rows, n_heads, head_dim, rope_off, rope_dim, pos_off, pos_ld, table_positions, pad[2];
} glm_vk_rope_push;
_Static_assert(sizeof(glm_vk_rope_push) == 48, "mirrors shaders/rope.comp");

typedef struct glm_vk_kv_write_push {
    uint32_t rows, cols, src_off, src_ld, dst_off, dst_ld, pos_off, pos_ld, ptab_off, ptab_ld, pages_off, page_size,
        n_norm, g_offset, g_type;
    float eps;
    uint32_t rope_dim, kr_col, table_positions, q_off, q_ld, q_heads, q_head_dim, q_rope_off;
} glm_vk_kv_write_push;
_Static_assert(sizeof(glm_vk_kv_write_push) == 96, "mirrors shaders/kv_write.comp");

typedef enum glm_vk_eltwise_op { GLM_VK_ADD = 0, GLM_VK_SWIGLU = 1, GLM_VK_COPY = 2 } glm_vk_eltwise_op;
typedef struct glm_vk_eltwise_push {
    uint32_t op, rows, cols, pad, a_off, a_ld, b_off, b_ld, y_off, y_ld, pad1, pad2;
} glm_vk_eltwise_push;
_Static_assert(sizeof(glm_vk_eltwise_push) == 48, "mirrors shaders/eltwise.comp");

typedef struct glm_vk_moe_route_push {
    uint32_t n_exp, k, n_group, topk_group, sigmoid_gate, norm_topk, has_bias, bias_type, bias_offset, l_off, l_ld,
        rows, ids_off, ids_ld, w_off, w_ld;
    float scale;
    uint32_t pad[3]; /* [1]: the extra column's id + 1 (0: none) */
} glm_vk_moe_route_push;
_Static_assert(sizeof(glm_vk_moe_route_push) == 80, "mirrors shaders/moe_route.comp");

typedef struct glm_vk_moe_gate_route_push {
    glm_vk_moe_route_push route;
    uint32_t x_off, x_ld, ncols, rw_offset, rw_row_bytes, rw_type, g_offset, g_type;
    float eps;
    uint32_t c_off, xn_off, xn_ld; /* route.pad[0]: write the normed x (has_xn) */
} glm_vk_moe_gate_route_push;
_Static_assert(sizeof(glm_vk_moe_gate_route_push) == 128, "mirrors shaders/moe_gate_route.comp");

typedef struct glm_vk_moe_combine_push {
    uint32_t rows, cols, k, has_add, x_off, x_ld, w_off, w_ld, y_off, y_ld, a_off, a_ld;
} glm_vk_moe_combine_push;
_Static_assert(sizeof(glm_vk_moe_combine_push) == 48, "mirrors shaders/moe_combine.comp");

#define GLM_VK_ARGMAX_MASK 8u /* masked columns glm_vk_argmax takes */
typedef struct glm_vk_argmax_push {
    uint32_t rows, cols, x_off, x_ld;
    uint32_t n_mask, pad[3];
    uint32_t mask[GLM_VK_ARGMAX_MASK];
} glm_vk_argmax_push;
_Static_assert(sizeof(glm_vk_argmax_push) == 64, "mirrors shaders/argmax.comp");

typedef struct glm_vk_mla_split_push {
    uint32_t rows, H, rkv, dr, dqk, dn, q_off, q_ld, c_off, c_ld, kr_off, kr_ld, qlat_off, part_off, pos_off, pos_ld,
        ptab_off, ptab_ld, pages_off, page_size, split_ld, row0, u_off;
    float scale;
    uint32_t vec4_rows; /* Rkv, dr, the c / kr offsets and strides are multiples of 4 */
    uint32_t max_split; /* mla_flash: its split bound (mla_split: unused, 0) */
    uint32_t flash;      /* mla_flash (mla_split: 0) */
    uint32_t page_shift; /* mla_flash: page_size = 1 << page_shift */
} glm_vk_mla_split_push;
_Static_assert(sizeof(glm_vk_mla_split_push) == 112, "mirrors shaders/mla_split.comp and mla_flash.comp");

typedef struct glm_vk_mla_combine_push {
    uint32_t rows, H, rkv, split_ld, part_off, u_off, pos_off, pos_ld, row0;
    uint32_t pass, max_split, max_inline; /* how the split kernel cut and merged the rows */
} glm_vk_mla_combine_push;
_Static_assert(sizeof(glm_vk_mla_combine_push) == 48, "mirrors shaders/mla_combine.comp");

typedef struct glm_vk_mla_scores_push {
    uint32_t T, H, rkv, dr, dqk, dn, s_ld, s_off, q_off, q_ld, c_off, c_ld, kr_off, kr_ld, qlat_off, pos_off, ptab_off,
        pages_off, page_size;
    float scale;
    uint32_t pack16, k16_off, q16_off, ld16; /* tensor cores: float16 operands of mla_pack16 */
} glm_vk_mla_scores_push;
_Static_assert(sizeof(glm_vk_mla_scores_push) == 96, "mirrors shaders/mla_scores_tiled.comp");

/* Score rows shaders/softmax.comp keeps in registers (256 invocations × NPT). */
#define GLM_VK_SOFTMAX_REGS 6144u
#define GLM_VK_SOFTMAX_NPT 24u /* entries a lane keeps in registers (softmax.comp's NPT) */

typedef struct glm_vk_softmax_push {
    uint32_t rows, n, s_off, pack; /* pack: rows written as float16 pairs (mla_mix_cm) */
    uint32_t sub;                  /* a subgroup a row (n at most GLM_VK_SOFTMAX_NPT a lane) */
} glm_vk_softmax_push;
_Static_assert(sizeof(glm_vk_softmax_push) == 20, "mirrors shaders/softmax.comp");

/* chunk: keys per split (workgroup z sums keys z·chunk .. +chunk-1 and writes at u_off +
 * z·part_ld: u itself with one split, else partials that mla_reduce.comp adds up). */
typedef struct glm_vk_mla_mix_push {
    uint32_t T, H, rkv, s_ld, c_off, c_ld, s_off, u_off, pos_off, ptab_off, pages_off, page_size;
    uint32_t pack16, c16_off, c16_ld; /* tensor cores: float16 P and c (softmax pack, mla_pack16) */
    uint32_t chunk, part_ld, pad[3];  /* a split over the keys (its partial sums at u_off + z·part_ld) */
} glm_vk_mla_mix_push;
_Static_assert(sizeof(glm_vk_mla_mix_push) == 80, "mirrors shaders/mla_mix_tiled.comp");

typedef struct glm_vk_mla_reduce_push {
    uint32_t n, ks, part_off, part_ld, u_off, pad[3];
} glm_vk_mla_reduce_push;
_Static_assert(sizeof(glm_vk_mla_reduce_push) == 32, "mirrors shaders/mla_reduce.comp");

typedef struct glm_vk_mla_pack16_push {
    uint32_t T, H, rkv, dr, dqk, dn, q_off, q_ld, c_off, c_ld, kr_off, kr_ld, qlat_off, pos_off, ptab_off, pages_off,
        page_size, L, k16_off, q16_off, ld16, pad[3];
} glm_vk_mla_pack16_push;
_Static_assert(sizeof(glm_vk_mla_pack16_push) == 96, "mirrors shaders/mla_pack16.comp");

/* The rows of one step over a paged cache (backend.h glm_kv_rows): int32 views pos [T][1],
 * ptab [T][1] and pages [1][n]; max_len ≥ pos[t] + 1 for every row. runs (host, n_runs of
 * them; none: every row on its own) are the rows of the step's items one after another, an
 * item being rows of one sequence at consecutive positions: glm_vk_mla_attention runs an
 * item of more than GLM_VK_MATMUL_MIN_ROWS rows, or one whose key bound (run_len) is at least
 * long_keys, as tiles (its own kernels for many rows or many keys) and every other row on its
 * own, so a row's result depends only on the size and key bound of its item. */
typedef struct glm_vk_kv_rows {
    glm_vk_view pos, ptab, pages;
    uint32_t page_size, max_len;
    const uint32_t *runs;
    const uint32_t *run_len; /* NULL, or each run's key bound (≤ max_len): its tiled scores' width */
    uint32_t n_runs;
    uint32_t long_keys; /* 0, or: a short item whose key bound (run_len) is at least this runs tiled */
    /* 0, or the per-row core takes mla_flash.comp (where the shape fits it) with passes of
     * flash_pass keys (8 or 16) and at most flash_split splits a row (1..256) */
    uint32_t flash_pass, flash_split;
} glm_vk_kv_rows;

/* A stretch [t, t + n) of a step's rows cut by its items' runs: consecutive items of at most
 * GLM_VK_MATMUL_MIN_ROWS rows (row-by-row kernels), or items of more rows (tiled kernels): one
 * such item, or with merge_long all the consecutive ones. */
typedef struct glm_vk_stretch {
    uint32_t t, n;
    bool tiled;
} glm_vk_stretch;
/* The stretch after row *t (run cursor *i; both 0 at the start); false after the last run. */
bool glm_vk_next_stretch(const uint32_t *runs, uint32_t n_runs, bool merge_long, uint32_t *i, uint32_t *t,
                         glm_vk_stretch *s);

/* Splits of a decode row's keys in mla_split.comp (shaders/mla_splits.glsl): passes of PASS
 * keys, one per split up to PASS · MAX_SPLIT keys (so 70 workgroups at 100 keys for 20 heads
 * in pairs), at most MAX_SPLIT splits of a few passes beyond. MAX_SPLIT is a power of
 * two no larger than the combine's workgroup. */
#define GLM_VK_MLA_MAX_SPLIT 64u
#define GLM_VK_MLA_PASS 16u
/* Rows of at most this many splits are merged by mla_split itself (no mla_combine dispatch). */
#define GLM_VK_MLA_MAX_INLINE 8u
/* mla_flash.comp (decode rows, every head in a workgroup) cuts rows the same way with its own
 * pass and split bound (GLM_VK_MLA_FLASH_SPLIT in vk.h); a row of more than one split is
 * merged by mla_combine.comp. */
/* Decode rows at depth: an item of at most GLM_VK_MATMUL_MIN_ROWS rows whose key bound is at
 * least glm_vk_mla_long_keys takes the tiled core too (mla_scores_rows: every head's scores
 * over a block of keys; softmax; the mix split over the keys into at most
 * GLM_VK_MLA_MIX_MAX_SPLIT partial sums that mla_reduce adds up), which reads the cache once
 * for all heads; shorter ones keep mla_split (GLM_VK_MLA_LONG_KEYS and glm_vk_mla_long_keys in
 * vk.h). */
#define GLM_VK_MLA_MIX_MAX_SPLIT 32u

/* y[r] = rms_norm(x[r]) ⊙ w (w: a 1-row weight of x.cols elements). */
glm_status glm_vk_rms_norm(glm_vk *vk, glm_vk_view y, glm_vk_view x, const glm_vk_weight *w, float eps);
/* The residual add in front: x += t, then y = rms_norm(x) ⊙ w (y must not overlap x). */
glm_status glm_vk_add_rms_norm(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view t, const glm_vk_weight *w,
                               float eps);
/* bench --profile's matvec probe (floor.c): a Q4_K product of 2048 x 5120 timed alone with its
 * weights cold (slabs cycling through more than the L2) and hot (one slab), a 16384 x 5120 one
 * cold, and the two alternating (µs a dispatch or a pair, wall time, best of 3). */
typedef struct glm_vk_probe {
    double cold_us, hot_us, big_us, pair_us;
    uint64_t small_bytes, big_bytes;
} glm_vk_probe;
glm_status glm_vk_matvec_probe(glm_vk *vk, glm_vk_probe *out);
/* matvec_fast.comp's measurement switches (EXP) for the dispatches that follow (0: none). */
void glm_vk_matvec_probe_bits(uint32_t bits);
bool glm_vk_matvec_probe_x8(void);
/* bench --profile's grouped-product probe (floor.c): the routed gate product of a prefill of 512
 * tokens (Q4_K 1536 x 2048, 64 experts + the shared one as a 65th, 4 + 1 a token, random
 * distinct ids; x as float16 where the kernel takes it, converted once), µs a product (with its
 * grouping dispatch; wall time of n in one recording, best of 5 after one untimed). */
glm_status glm_vk_matmul_id_probe(glm_vk *vk, uint32_t n, double *us);
/* rms_norm.comp's vec form where the shapes allow it (GLM_VK_RMS_VEC=1 at the first call, or this
 * setter; default off until measured on a GPU) */
bool glm_vk_rms_vec(void);
void glm_vk_set_rms_vec(bool on);
/* bench --profile's dense-product probe (floor.c): prefill's o_proj, y = W·x for T token rows
 * (Q4_K 2048 x 5120, random codes and finite scales), through glm_vk_matmul as the model runs it
 * (its column parts and their sum included), µs a product (wall time of n in one recording, each
 * behind a barrier, best of 5 after one untimed). */
glm_status glm_vk_matmul_dense_probe(glm_vk *vk, uint32_t T, uint32_t n, double *us);
/* matmul_cm.comp's measurement switches (EXP) for the dispatches that follow (0: none). */
void glm_vk_matmul_probe_bits(uint32_t bits);
/* y[v] = W_slab · x[v] for every row v of x. */
glm_status glm_vk_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x);
/* Routed experts: y[t·k+j] = W_{ids[t][j]} · (x has T rows ? x[t] : x[t·k+j]); ids is an int32 view [T][k]. */
glm_status glm_vk_matvec_id(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view ids);
/* Routed experts with their mixture added in the same dispatch (matvec_fast.comp's COMB):
 * y[t] += Σ_j wts[t][j] · (W_{ids[t][j]} · x[t·k+j]), y [T][nrows] in place, x [T·k][ncols],
 * ids int32 and wts float views [T][k], k ≤ GLM_VK_COMB_KMAX. The product of every (t, j) is
 * that of glm_vk_matvec_id; the sums differ from glm_vk_matvec_id + glm_vk_moe_combine_add's in
 * rounding only (a lane weights its tasks' sums). GLM_ERR_UNSUPPORTED where
 * glm_vk_matvec_id_combine_fits says no. */
#define GLM_VK_COMB_KMAX 16u
bool glm_vk_matvec_id_combine_fits(glm_vk *vk, const glm_vk_weight *w, glm_vk_view x, uint32_t k);
glm_status glm_vk_matvec_id_combine_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                        glm_vk_view ids, glm_vk_view wts);
/* Per-head products in one dispatch: for h < heads, y shifted by h·y_hs elements = W_{slab0+h}
 * · (x shifted by h·x_hs elements), every row v of x (e.g. the absorbed-MLA k_b / v_b). */
glm_status glm_vk_matvec_heads(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab0, glm_vk_view x,
                               uint32_t heads, uint32_t x_hs, uint32_t y_hs);
/* y = SiLU(Wg · x) ⊙ (Wu · x) in one dispatch (gate/up of an FFN), Wg and Wu of one shape and
 * type in the same buffer; ids NULL: slab 0 of both, else routed experts as glm_vk_matvec_id. */
glm_status glm_vk_matvec_swiglu(glm_vk *vk, glm_vk_view y, const glm_vk_weight *wg, const glm_vk_weight *wu,
                                glm_vk_view x, const glm_vk_view *ids);
/* y = W · RMSNorm(x; g, eps) in one dispatch, each vector normed on its own: the norm
 * (rms_norm's arithmetic) is recomputed by every workgroup from x, so it needs no dispatch or
 * buffer of its own; g is a plain row (F32, F16 or BF16) of x.cols elements. wu (or NULL):
 * SiLU(W·n) ⊙ (Wu·n) as glm_vk_matvec_swiglu; ids (or NULL): routed experts as
 * glm_vk_matvec_id, otherwise slab 0. */
glm_status glm_vk_rms_norm_matvec(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, const glm_vk_weight *wu,
                                  glm_vk_view x, const glm_vk_view *ids, const glm_vk_weight *g, float eps);
/* y[v] += W · x[v] (slab 0): the product added to what y holds (a residual add folded in). */
/* The query's rope folded into its product: y = W · RMSNorm(x; g, eps), then y's heads
 * rotated in place as glm_vk_rope(y, table, table_positions, n_heads, head_dim, rope_off,
 * rope_dim, pos) does (in the product's own dispatch where its slices allow, else a rope
 * dispatch after it). */
typedef struct glm_vk_q_rope {
    const glm_vk_buffer *table;
    uint32_t table_positions, n_heads, head_dim, rope_off, rope_dim;
    glm_vk_view pos;
} glm_vk_q_rope;
glm_status glm_vk_rms_norm_matvec_rope(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                       const glm_vk_weight *g, float eps, const glm_vk_q_rope *rope);
glm_status glm_vk_matvec_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x);
/* 8-bit x (shaders/quant_x8.comp): y[t] = x[t] in groups of 32 columns, each with its scale
 * max|x| / 127, its codes and its sum, laid out as GLM_VK_MATVEC_Q8 reads them; x.cols a
 * multiple of 256, y.cols = glm_vk_x8_words(x.cols) words, y.off and y.ld multiples of 4.
 * glm_ref_quant_x8 (backend/ref.h) is its scalar reference. */
glm_status glm_vk_quant_x8(glm_vk *vk, glm_vk_view y, glm_vk_view x);
/* The products of glm_vk_matvec (slab 0), glm_vk_matvec_id (ids), glm_vk_matvec_swiglu (wu)
 * and glm_vk_matvec_add (accumulate) with x in glm_vk_quant_x8's form: integer dot products
 * of the codes (shaders/matvec_q8.comp) where glm_vk_idot_available, for Q4_K, Q5_K and Q6_K
 * weights of a multiple of 256 columns (glm_vk_matvec_x8_ok). */
/* A product's y also written in glm_vk_quant_x8's form (y8: y.rows rows of
 * glm_ref_x8_words(y.cols) words, off and ld multiples of 4), for a product with an 8-bit x
 * that follows: y.cols a multiple of 256, on matvec_fast.comp / matvec_q8.comp (a workgroup's
 * rows are whole words of 4: KS2 gives way where it would leave two). */
typedef struct glm_vk_x8_out {
    glm_vk_view y8;
    bool written; /* set by the call: the 8-bit form was written (where the product's kernel
                   * and shape allow it; otherwise only y, and no error) */
} glm_vk_x8_out;
glm_status glm_vk_matvec_x8(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, const glm_vk_weight *wu, glm_vk_view x8,
                            const glm_vk_view *ids, bool accumulate, glm_vk_x8_out *out);
bool glm_vk_matvec_x8_ok(const glm_vk *vk, const glm_vk_weight *w);
/* glm_vk_matvec_id_combine_add with x8 in glm_vk_quant_x8's form (matvec_q8.comp's COMB): the
 * routed down products and their mixture in one dispatch where the gate/up wrote 8 bits. */
glm_status glm_vk_matvec_x8_combine_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x8,
                                        glm_vk_view ids, glm_vk_view wts);
/* y = W · x (slab 0, float32 x) on matvec_fast.comp, y also written in 8 bits (out). */
glm_status glm_vk_matvec_x8_out(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x,
                                glm_vk_x8_out *out);
/* Tiled products for many token rows (prefill; shaders/matmul.comp, or matmul_cm.comp on
 * tensor cores where enabled). glm_vk_matvec takes this path by itself for more than
 * GLM_VK_MATMUL_MIN_ROWS rows when glm_vk_matmul_fits(w). */
#define GLM_VK_MATMUL_MIN_ROWS 8u
bool glm_vk_matmul_fits(const glm_vk_weight *w);
glm_status glm_vk_matmul(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, uint32_t slab, glm_vk_view x);
/* The column parts glm_vk_matmul splits W·x of `rows` token rows into (1: none), and y += W·x
 * for the products that split (their parts' sum adds into y: no product scratch, no add). */
uint32_t glm_vk_matmul_parts(glm_vk *vk, const glm_vk_weight *w, uint32_t rows);
bool glm_vk_matmul_add_on(void); /* the engine's y += W·x takes glm_vk_matmul_add where it can */
glm_status glm_vk_matmul_add(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x);
/* Per-head products in one dispatch: for h < heads, rows of y shifted by h·y_step elements
 * = slab h of w · rows of x shifted by h·x_step (absorbed MLA's k_b and v_b in prefill). */
glm_status glm_vk_matmul_heads(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, uint32_t heads,
                               uint32_t x_step, uint32_t y_step);
/* int32 scratch elements the grouped glm_vk_matmul_id needs for T tokens, k slots, E experts. */
uint64_t glm_vk_moe_group_ints(uint32_t T, uint32_t k, uint32_t n_exp);
/* mla_flash's work on tensor cores (mla_flash_cm.comp) where it fits: 1 on at any length, 0
 * off, -1 the environment's choice (GLM_VK_MLA_CM, on by default; GLM_VK_MLA_CM_MIN keys at
 * least, 0 by default). */
void glm_vk_set_mla_flash_cm(int on);
/* mla_flash_cm's splits at most (tests: long splits of several blocks at short lengths); 0 the
 * default (256, or GLM_VK_MLA_CM_SPLIT) */
void glm_vk_set_mla_flash_cm_split(uint32_t n);
/* glm_vk_matmul_id with x also given as float16 (xh: glm_vk_to_half of x, x's rows and
 * x.cols / 2 words a row): the tensor-core kernel stages the float16 rows (the same values it
 * would round x to); other kernels read x. Two products over the same ids (gate and up) may
 * share one grouping: group_ready skips the grouping dispatch (the one before it, with the
 * same ids and group view and a weight of as many experts, must still be recorded). */
/* Does the tiled grouped product of w read float16 x where it is given (tensor cores, not
 * matmul_cm2; GLM_VK_CM_X16=0 turns it off)? */
bool glm_vk_matmul_id_takes_half(glm_vk *vk, const glm_vk_weight *w);
glm_status glm_vk_matmul_id_half(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view xh,
                                 glm_vk_view ids, glm_vk_view group, bool group_ready);
/* Do grouped tensor-core products decode their codes in float16 pairs (matmul_gq's Q4_K,
 * matmul_cm's Q6_K; the default: faster, two or more roundings a weight instead of one, see
 * test_matmul_weight_rounding; GLM_VK_H2=0: in float32)? */
bool glm_vk_h2(void);
void glm_vk_set_h2(bool on);
/* Where the MoE routing runs as rms_norm, glm_vk_matmul_f32 and moe_route instead of one
 * moe_gate_route dispatch (GLM_VK_ROUTER_TILED): 0 never, 1 items of many rows (the tiled
 * ones; the default), 2 every row (tests). */
uint32_t glm_vk_router_tiled(void);
void glm_vk_set_router_tiled(uint32_t mode);
/* glm_vk_matmul on the float32 kernel (matmul.comp) wherever tensor cores are, for a product whose
 * result must not see float16 operands (the MoE router's logits choose the experts). The columns
 * split into up to 16 parts by the weight's shape alone (a row's result is the same whatever rows
 * come with it), summed in order by a second dispatch (per block of rows the scratch holds). */
glm_status glm_vk_matmul_f32(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x);
/* The token rows a tile of the tiled grouped product of w: two products whose weights give the
 * same tile (and the same number of experts) can share one grouping of the same ids. */
uint32_t glm_vk_matmul_id_tile(glm_vk *vk, const glm_vk_weight *w);
/* Can glm_vk_matmul_swiglu take gate g and up u? Tensor cores (not matmul_cm2), both in one
 * buffer with the same type, shape and slab layout; GLM_VK_CM_SWIGLU=0 turns it off. */
bool glm_vk_matmul_swiglu_fits(glm_vk *vk, const glm_vk_weight *g, const glm_vk_weight *u);
/* y = SiLU(G·x) * (U·x) as one tiled tensor-core product: plain (ids NULL) or grouped by expert
 * as glm_vk_matmul_id_half (x, xh, ids, group and group_ready as there). Records one dispatch,
 * two with the grouping. */
glm_status glm_vk_matmul_swiglu(glm_vk *vk, glm_vk_view y, const glm_vk_weight *g, const glm_vk_weight *u,
                                glm_vk_view x, glm_vk_view xh, const glm_vk_view *ids, glm_vk_view group,
                                bool group_ready);
/* glm_vk_matvec_id's product for many tokens: the (token, slot) pairs are grouped by expert on
 * the device (moe_group.comp, into `group`, an int32 view of glm_vk_moe_group_ints elements)
 * and each expert's rows run as tiles of one matmul dispatch. Records two dispatches. */
glm_status glm_vk_matmul_id(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view x, glm_vk_view ids,
                            glm_vk_view group);
/* y[t] = dequantized row ids[t] of w; ids an int32 view [T][1] already on the device. */
glm_status glm_vk_get_rows(glm_vk *vk, glm_vk_view y, const glm_vk_weight *w, glm_vk_view ids);
/* In-place RoPE on x using a cos/sin table [pos][rope_dim/2][2]; row t at position pos[t]
 * (int32 view [rows][1]; positions past the table leave their row unrotated). */
glm_status glm_vk_rope(glm_vk *vk, glm_vk_view x, const glm_vk_buffer *table, uint32_t table_positions,
                       uint32_t n_heads, uint32_t head_dim, uint32_t rope_off, uint32_t rope_dim, glm_vk_view pos);
/* Scatter src rows into the pool rows of their positions (glm_vk_kv_rows). */
glm_status glm_vk_kv_write(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r);
/* The same with the first n_norm columns written as RMSNorm(src[t][0, n_norm); g, eps) (g a
 * plain row of n_norm elements; src unchanged): rms_norm in place followed by kv_write. */
glm_status glm_vk_kv_write_norm(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                                const glm_vk_weight *g, float eps, uint32_t n_norm);
/* The ropes folded into kv_write_norm: src columns [kr_col, kr_col + rope_dim) rotated at their
 * row's position on the way into the pool (src unchanged), and q's heads rotated in place as
 * glm_vk_rope(q, table, .., n_heads, head_dim, rope_off, rope_dim, pos) does. */
typedef struct glm_vk_kv_rope {
    const glm_vk_buffer *table;
    uint32_t table_positions, kr_col, rope_dim;
    glm_vk_view q;
    uint32_t n_heads, head_dim, rope_off;
} glm_vk_kv_rope;
glm_status glm_vk_kv_write_rope(glm_vk *vk, glm_vk_view pool, glm_vk_view src, const glm_vk_kv_rows *r,
                                const glm_vk_weight *g, float eps, uint32_t n_norm, const glm_vk_kv_rope *rope);
glm_status glm_vk_eltwise(glm_vk *vk, glm_vk_eltwise_op op, glm_vk_view y, glm_vk_view a, glm_vk_view b);
/* y = Σ_{z < parts} part_z, in order, where part_z is the view part0 moved z·stride floats on
 * (the partial products of a split plain product). */
glm_status glm_vk_sum_parts(glm_vk *vk, glm_vk_view y, glm_vk_view part0, uint32_t parts, uint32_t stride);
/* y += the same sum (y's old value plus the sum) */
glm_status glm_vk_sum_parts_add(glm_vk *vk, glm_vk_view y, glm_vk_view part0, uint32_t parts, uint32_t stride);
/* y = a as float16, two values to a 32-bit word: y a view of 32-bit words with a.cols / 2
 * columns (a.cols even). */
glm_status glm_vk_to_half(glm_vk *vk, glm_vk_view y, glm_vk_view a);
glm_status glm_vk_moe_route(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                            const glm_vk_weight *bias /* NULL: none */, uint32_t k, uint32_t n_group,
                            uint32_t topk_group, bool sigmoid, bool norm_topk, float scale);
/* The router's product folded in: logits = W · RMSNorm(x; g, eps) (W [E][x.cols] and g plain
 * F32/F16/BF16 rows), written to `logits` and routed as glm_vk_moe_route does, in one dispatch.
 * counts: logits.rows uint32 zeros at counts_off (left zero after the dispatch). xn (buf NULL:
 * none; not x's buffer): RMSNorm(x; g, eps) itself written there too, x's shape. */
typedef struct glm_vk_moe_gate {
    glm_vk_view x;
    const glm_vk_weight *w, *g;
    float eps;
    const glm_vk_buffer *counts;
    uint32_t counts_off;
    glm_vk_view xn;
    /* xn8 (buf NULL: none; needs xn): xn in glm_vk_quant_x8's form too, rows of
     * glm_ref_x8_words(x.cols) words back to back (ld that), x.cols a multiple of 256 */
    glm_vk_view xn8;
} glm_vk_moe_gate;
glm_status glm_vk_moe_gate_route(glm_vk *vk, glm_vk_view ids, glm_vk_view weights, glm_vk_view logits,
                                 const glm_vk_weight *bias, uint32_t k, uint32_t n_group, uint32_t topk_group,
                                 bool sigmoid, bool norm_topk, float scale, const glm_vk_moe_gate *gate);
/* Does glm_vk_moe_gate_route take a router weight of this type and a gain of that one? */
bool glm_vk_moe_gate_fits(const glm_vk_weight *w, const glm_vk_weight *g);
glm_status glm_vk_moe_combine(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view w);
/* The same plus an addend: y[t] = Σ_j w[t][j]·x[t·k+j] + a[t]. */
glm_status glm_vk_moe_combine_add(glm_vk *vk, glm_vk_view y, glm_vk_view x, glm_vk_view w, glm_vk_view a);
/* ids[r] = argmax of row r of x (ties to the lower index), the columns mask[0 .. n_mask) (at most
 * GLM_VK_ARGMAX_MASK; mask NULL: none) counting as -inf. */
glm_status glm_vk_argmax(glm_vk *vk, glm_vk_view ids /*[rows][1] int32*/, glm_vk_view x, const int32_t *mask,
                         uint32_t n_mask);
/* cos/sin table [positions][rope_dim/2][2] for the rope kernel, computed on the host exactly
 * as ref/rope.c computes each angle (so both paths rotate by identical values). */
void glm_vk_rope_table(float *cs, uint32_t positions, uint32_t rope_dim, float theta);

/* Scratch floats absorbed MLA needs for the T query rows of r. */
uint64_t glm_vk_mla_scratch_floats(uint32_t T, uint32_t H, uint32_t rkv, const glm_vk_kv_rows *r);
/* Dispatches glm_vk_mla_attention records for these sizes. */
uint32_t glm_vk_mla_dispatches(uint32_t T, uint32_t H, uint32_t rkv, const glm_vk_kv_rows *r);
/* uint32 arrival counts absorbed MLA needs for T query rows of H heads. */
uint64_t glm_vk_mla_count_ints(uint32_t T, uint32_t H);

/* Absorbed MLA (model-spec §2.5) over the paged latent cache: qlat_h = k_b[h]·qn_h, then the
 * attention core u_h = Σ softmax(scores) c, then out_h = v_b[h]·u_h. Rows of short items
 * (r->runs) take the per-row core (mla_split + mla_combine) and per-row products; an item of
 * more rows takes the tiled core (mla_scores_tiled, softmax, mla_mix_tiled) and tiled
 * products, and so does a short item whose key bound reaches r->long_keys (with
 * mla_scores_rows, and per-row products). q: [T][H·(dn+dr)] (rope applied); c, kr: the pool's [rows][Rkv] and [rows][dr]
 * views; r: where each row's keys are; k_b: H slabs of [Rkv][dn], v_b: H slabs of [dv][Rkv];
 * scratch: a buffer of glm_vk_mla_scratch_floats floats; counts: a buffer of at least
 * glm_vk_mla_count_ints zeros, which every call leaves zero (per-row merge arrivals). */
glm_status glm_vk_mla_attention(glm_vk *vk, glm_vk_view out, glm_vk_view q, glm_vk_view c, glm_vk_view kr,
                                const glm_vk_weight *k_b, const glm_vk_weight *v_b, uint32_t H, uint32_t dn, uint32_t dr,
                                uint32_t dv, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch,
                                const glm_vk_buffer *counts);
/* The same; where one per-row run covers every row (decode) and out8 is given, v_b's products
 * also write out in 8 bits (glm_vk_x8_out: out8->y8 has out.rows rows of H·dv columns), and
 * *wrote8 says so. */
glm_status glm_vk_mla_attention_x8(glm_vk *vk, glm_vk_view out, glm_vk_view q, glm_vk_view c, glm_vk_view kr,
                                   const glm_vk_weight *k_b, const glm_vk_weight *v_b, uint32_t H, uint32_t dn,
                                   uint32_t dr, uint32_t dv, const glm_vk_kv_rows *r, const glm_vk_buffer *scratch,
                                   const glm_vk_buffer *counts, glm_vk_x8_out *out8, bool *wrote8);

#endif
