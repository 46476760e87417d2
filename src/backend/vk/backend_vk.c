/* The Vulkan backend: backend.h's op table recorded into one command buffer on the GPU
 * (or lavapipe). Weights are uploaded once, in their file's blocks, when the backend is
 * created; activations live in device buffers; the host waits only where the op table
 * returns data to it (download, argmax) or must change a buffer the GPU may still read.
 * Every op computes what backend/ref.c computes (MLA always in the absorbed form, §2.5).
 * Not here: kernel validation (vk/ops.c), the graph (engine/forward.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/vk/ops.h"
#include "backend/vk/vk.h"
#include "backend/vk/backend_vk.h"
#include "ref/matmul.h"

/* Dispatches per recording before an automatic submit (the descriptor pool holds 4096). */
#define VK_MAX_PENDING 3900

struct glm_dbuf {
    glm_vk_buffer b;
    glm_dtype dt;
};

/* Weights are sub-allocated from large device buffers ("arenas"): one allocation holds many
 * tensors, each bound by its byte offset (push constants address up to 4 GiB). */
#define VK_ARENA_BYTES (1024ull << 20)
#define VK_MAX_ARENAS 256
#define VK_WEIGHT_ALIGN 256 /* ≥ every device's minStorageBufferOffsetAlignment */

typedef struct vk_arena {
    glm_vk_buffer buf;
    uint64_t used;
} vk_arena;

typedef struct vk_weight_entry {
    const glm_tensor *t;
    glm_vk_weight w; /* w.buf points at its arena's buffer */
} vk_weight_entry;

typedef struct vk_impl {
    glm_vk *vk;
    vk_weight_entry *weights;
    size_t n_weights, cap_weights;
    int32_t *slots; /* open-addressing index of weights by tensor pointer, -1 = empty */
    size_t n_slots;  /* a power of two, 2 × cap_weights */
    vk_arena arenas[VK_MAX_ARENAS];
    uint32_t n_arenas;
    uint32_t pending; /* dispatches recorded since the last submit; 0 = not recording */
    glm_vk_buffer rope_table;
    uint32_t rope_positions, rope_dim;
    float rope_theta;
    glm_vk_buffer scratch; /* MLA */
    glm_vk_buffer mla_counts; /* MLA: the split kernel's arrival counts, zero between dispatches */
    glm_vk_buffer group;   /* grouped matmul_id: pairs by expert */
    glm_vk_buffer ids;     /* host-visible: get_rows ids in, argmax ids out */
    glm_vk_buffer route_counts; /* moe_gate_route: a zero per row between dispatches */
    glm_vk_buffer ffn_up;  /* matmul_swiglu's up product when gate and up lie in two buffers */
    glm_vk_buffer x_half;  /* the x of a tiled grouped product as float16 (glm_vk_matmul_id_half) */
    glm_vk_buffer x8;      /* the x of a decode product in 8 bits (glm_vk_quant_x8) */
    /* GLM_VK_X8 (x8_mode): 1 = the decode products of K-quant weights whose x an op before wrote
     * in 8 bits too take it that way; 2 = also others, x quantized in a dispatch of its own
     * (a measurement); 0 = never */
    uint32_t x8_mode;
    glm_vk_buffer x8s[2];   /* 8-bit forms written by producers, used in turn */
    uint32_t x8_next;       /* the slot the next producer writes */
    uint64_t op_seq;        /* recording() calls so far */
    struct {
        glm_dview y;  /* the view an op wrote in 8 bits too, into x8s[slot] */
        uint64_t seq; /* op_seq at that op: valid for the next op only */
        uint32_t slot;
    } x8_tag;
    struct {
        glm_dview ids; /* the ids a tiled grouped product grouped into `group` */
        uint32_t n_exp, tile;
        uint64_t seq; /* op_seq at that op: valid for the next op only */
    } group_tag;
    glm_dbuf fold_x;       /* rms_norm_matmul on items of many rows: the normed rows */
    glm_dbuf fold_y;       /* matmul_add on items of many rows: the product */
    uint64_t ids_cap;
    uint32_t *runs; /* set_runs: rows of the items of the products that follow */
    uint32_t *run_len; /* and their key bounds (when given) */
    bool has_len;
    uint32_t n_runs, runs_cap;
    uint64_t runs_sum;
} vk_impl;

static vk_impl *impl(glm_backend *b) { return b->impl; }

/* ---- recording --------------------------------------------------------------------------- */

static glm_status flush(vk_impl *v)
{
    if (!v->pending)
        return GLM_OK;
    v->pending = 0;
    return glm_vk_submit_wait(v->vk);
}

static glm_status recording(vk_impl *v)
{
    if (v->pending >= VK_MAX_PENDING)
        GLM_TRY(flush(v));
    if (!v->pending)
        GLM_TRY(glm_vk_begin(v->vk));
    v->pending++;
    v->op_seq++;
    return GLM_OK;
}

static glm_vk_view vv(glm_dview d)
{
    return (glm_vk_view){ &d.buf->b, (uint32_t)d.off, (uint32_t)d.rows, (uint32_t)d.cols, (uint32_t)d.ld };
}

/* ---- weights ------------------------------------------------------------------------------- */

static uint64_t padded_bytes(const glm_tensor *t)
{
    uint64_t total = glm_row_bytes(t->type, t->ne[0]) * (uint64_t)t->ne[1] * (t->n_dims >= 3 ? (uint64_t)t->ne[2] : 1);
    return (total + VK_WEIGHT_ALIGN - 1) & ~(uint64_t)(VK_WEIGHT_ALIGN - 1);
}

/* Upload t; with need > 0, start a new arena unless `need` bytes fit in the current one (so
 * that tensors uploaded together share a buffer). */
static glm_status upload_weight_ext(vk_impl *v, const glm_tensor *t, const glm_tensor *extra, uint64_t need);

static glm_status upload_weight_fit(vk_impl *v, const glm_tensor *t, uint64_t need)
{
    return upload_weight_ext(v, t, NULL, need);
}

static glm_status upload_weight(vk_impl *v, const glm_tensor *t) { return upload_weight_fit(v, t, 0); }

static size_t slot_of(const vk_impl *v, const glm_tensor *t)
{
    return (size_t)(((uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ull) >> 20) & (v->n_slots - 1);
}

/* The index of t's entry, or -1 (the op table looks weights up on every call: no scan). */
static int32_t find_weight(const vk_impl *v, const glm_tensor *t)
{
    if (!v->n_slots)
        return -1;
    for (size_t i = slot_of(v, t);; i = (i + 1) & (v->n_slots - 1)) {
        int32_t e = v->slots[i];
        if (e < 0 || v->weights[e].t == t)
            return e;
    }
}

static void index_weight(vk_impl *v, int32_t e)
{
    size_t i = slot_of(v, v->weights[e].t);
    while (v->slots[i] >= 0)
        i = (i + 1) & (v->n_slots - 1);
    v->slots[i] = e;
}

/* A free entry (the table grown as needed). */
static glm_status weight_entry(vk_impl *v)
{
    if (v->n_weights == v->cap_weights) {
        size_t nc = v->cap_weights ? v->cap_weights * 2 : 256;
        vk_weight_entry *nw = realloc(v->weights, nc * sizeof *nw);
        int32_t *ns = malloc(2 * nc * sizeof *ns);
        if (nw)
            v->weights = nw;
        if (!nw || !ns) {
            free(ns);
            return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory");
        }
        v->cap_weights = nc;
        free(v->slots);
        v->slots = ns;
        v->n_slots = 2 * nc;
        memset(v->slots, 0xff, v->n_slots * sizeof *v->slots);
        for (size_t i = 0; i < v->n_weights; i++)
            index_weight(v, (int32_t)i);
    }
    return GLM_OK;
}

/* Upload t; with extra (a 2-D tensor of t's type and slab shape), extra's rows go after t's
 * slabs as one more slab, and extra's own entry views that slab. */
static glm_status upload_weight_ext(vk_impl *v, const glm_tensor *t, const glm_tensor *extra, uint64_t need)
{
    if (find_weight(v, t) >= 0)
        return GLM_OK;
    GLM_TRY(weight_entry(v));
    uint64_t rb = glm_row_bytes(t->type, t->ne[0]), slab = rb * (uint64_t)t->ne[1];
    uint64_t nslabs = (t->n_dims >= 3 ? (uint64_t)t->ne[2] : 1) + (extra ? 1 : 0);
    uint64_t total = slab * nslabs;
    if (rb == 0 || total > UINT32_MAX)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "vulkan: tensor %s (%llu bytes) cannot be bound as one buffer", t->name,
                          (unsigned long long)total);
    vk_weight_entry *e = &v->weights[v->n_weights];
    memset(e, 0, sizeof *e);
    uint64_t padded = (total + VK_WEIGHT_ALIGN - 1) & ~(uint64_t)(VK_WEIGHT_ALIGN - 1);
    vk_arena *a = v->n_arenas ? &v->arenas[v->n_arenas - 1] : NULL;
    if (need < padded)
        need = padded;
    if (!a || a->used + need > a->buf.size) {
        if (v->n_arenas == VK_MAX_ARENAS)
            return glm_errorf(GLM_ERR_NOMEM, "vulkan: more than %d weight arenas", VK_MAX_ARENAS);
        a = &v->arenas[v->n_arenas];
        uint64_t limit = glm_vk_max_buffer(v->vk) & ~(uint64_t)(VK_WEIGHT_ALIGN - 1);
        uint64_t size = VK_ARENA_BYTES < limit ? VK_ARENA_BYTES : limit;
        if (need > size && need <= limit)
            size = need; /* tensors meant to share a buffer */
        if (padded > size)
            size = padded; /* one tensor alone; glm_vk_buffer_create refuses it past the limit */
        glm_status as = glm_vk_buffer_create(v->vk, &a->buf, size, false);
        if (as != GLM_OK)
            return glm_error_prefix(as, "tensor %s", t->name);
        a->used = 0;
        v->n_arenas++;
    }
    uint64_t offset = a->used;
    glm_status s = GLM_OK;
    uint8_t *tmp = NULL;
    if (t->slabs || total % 4 || extra) {
        /* gather slabs (HF per-expert tensors; the extra one) into one contiguous copy */
        tmp = calloc(1, (total + 3) & ~3ull);
        if (!tmp)
            s = glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory staging %s", t->name);
        for (uint64_t i = 0; s == GLM_OK && i < nslabs; i++)
            memcpy(tmp + i * slab, extra && i + 1 == nslabs ? glm_tensor_slab(extra, 0) : glm_tensor_slab(t, (int64_t)i),
                   slab);
    }
    if (s == GLM_OK)
        s = glm_vk_upload(v->vk, &a->buf, offset, tmp ? tmp : t->data, (total + 3) & ~3ull);
    free(tmp);
    if (s != GLM_OK)
        return glm_error_prefix(s, "uploading %s", t->name);
    a->used += padded;
    e->t = t;
    e->w = (glm_vk_weight){ &a->buf, t->type, (uint32_t)offset, (uint32_t)t->ne[0], (uint32_t)t->ne[1], (uint32_t)nslabs,
                            (uint32_t)rb, (uint32_t)slab };
    index_weight(v, (int32_t)v->n_weights++);
    glm_load_progress_report(t);
    if (!extra || find_weight(v, extra) >= 0)
        return GLM_OK;
    GLM_TRY(weight_entry(v));
    vk_weight_entry *x = &v->weights[v->n_weights];
    memset(x, 0, sizeof *x);
    x->t = extra;
    x->w = (glm_vk_weight){ &a->buf, t->type, (uint32_t)(offset + (nslabs - 1) * slab), (uint32_t)t->ne[0],
                            (uint32_t)t->ne[1], 1, (uint32_t)rb, (uint32_t)slab };
    index_weight(v, (int32_t)v->n_weights++);
    glm_load_progress_report(extra);
    return GLM_OK;
}

/* Whether a layer's shared expert can ride as slab E of its routed ones: every pair of the
 * same type and slab shape (GGUF Q4_K_M files: yes), and not switched off
 * (GLM_VK_MOE_SHARED_SLAB=0). */
static bool shared_fits(const glm_layer *L)
{
    const glm_tensor *r[3] = { L->ffn_gate_exps, L->ffn_up_exps, L->ffn_down_exps };
    const glm_tensor *sh[3] = { L->ffn_gate_shexp, L->ffn_up_shexp, L->ffn_down_shexp };
    const char *e = getenv("GLM_VK_MOE_SHARED_SLAB");
    if (e && *e == '0')
        return false;
    for (int i = 0; i < 3; i++)
        if (!r[i] || !sh[i] || r[i]->n_dims < 3 || r[i]->type != sh[i]->type || r[i]->ne[0] != sh[i]->ne[0] ||
            r[i]->ne[1] != sh[i]->ne[1] || (sh[i]->n_dims >= 3 && sh[i]->ne[2] != 1) ||
            (uint64_t)r[i]->ne[2] + 1 > UINT32_MAX)
            return false;
    return true;
}

static glm_status weight(vk_impl *v, const glm_tensor *t, glm_vk_weight *out)
{
    int32_t i = find_weight(v, t);
    if (i >= 0) {
        *out = v->weights[i].w;
        return GLM_OK;
    }
    /* not seen at creation (e.g. a tensor bound later): upload it now, outside any recording */
    GLM_TRY(flush(v));
    GLM_TRY(upload_weight(v, t));
    return weight(v, t, out);
}

/* gate and up of one FFN in one arena, for the fused gate/up product (with sg, su: each with
 * one more slab, the shared expert's) */
static glm_status upload_pair(vk_impl *v, const glm_tensor *g, const glm_tensor *u, const glm_tensor *sg,
                              const glm_tensor *su)
{
    if (!g || !u)
        return GLM_OK;
    uint64_t need = padded_bytes(g) + padded_bytes(u) + (sg ? padded_bytes(sg) + padded_bytes(su) + 2 * VK_WEIGHT_ALIGN : 0);
    GLM_TRY(upload_weight_ext(v, g, sg, need));
    return upload_weight_ext(v, u, su, 0);
}

static glm_status upload_layer(vk_impl *v, const glm_layer *L)
{
    /* q_a's rows then kv_a's, back to back where q_a fills whole alignment units (one product
     * of both: vk_rms_norm_matmul2) */
    GLM_TRY(upload_pair(v, L->attn_q_a, L->attn_kv_a_mqa, NULL, NULL));
    GLM_TRY(upload_pair(v, L->ffn_gate, L->ffn_up, NULL, NULL));
    if (shared_fits(L)) {
        GLM_TRY(upload_pair(v, L->ffn_gate_exps, L->ffn_up_exps, L->ffn_gate_shexp, L->ffn_up_shexp));
        GLM_TRY(upload_weight_ext(v, L->ffn_down_exps, L->ffn_down_shexp, 0));
    } else {
        GLM_TRY(upload_pair(v, L->ffn_gate_exps, L->ffn_up_exps, NULL, NULL));
    }
    GLM_TRY(upload_pair(v, L->ffn_gate_shexp, L->ffn_up_shexp, NULL, NULL));
    const glm_tensor *ts[] = { L->attn_norm,      L->attn_q_a,       L->attn_q_a_norm,  L->attn_q_b,
                               L->attn_kv_a_mqa,  L->attn_kv_a_norm, L->attn_k_b,       L->attn_v_b,
                               L->attn_output,    L->ffn_norm,       L->ffn_gate,       L->ffn_up,
                               L->ffn_down,       L->ffn_gate_inp,   L->exp_probs_b,    L->ffn_gate_exps,
                               L->ffn_up_exps,    L->ffn_down_exps,  L->ffn_gate_shexp, L->ffn_up_shexp,
                               L->ffn_down_shexp, L->nextn_eh_proj,  L->nextn_enorm,    L->nextn_hnorm,
                               L->nextn_shared_head_norm, L->nextn_shared_head_head, L->nextn_embed_tokens };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i])
            GLM_TRY(upload_weight(v, ts[i]));
    return GLM_OK;
}

/* ---- scratch ----------------------------------------------------------------------------------- */

/* Make `buf` at least `bytes` large; the GPU must not be using it (flushes first). */
static glm_status ensure(vk_impl *v, glm_vk_buffer *buf, uint64_t bytes, bool host_visible)
{
    if (buf->buf && buf->size >= bytes)
        return GLM_OK;
    GLM_TRY(flush(v));
    glm_vk_buffer_destroy(v->vk, buf);
    uint64_t n = 4096;
    while (n < bytes)
        n *= 2;
    return glm_vk_buffer_create(v->vk, buf, n, host_visible);
}

/* ensure for a buffer that must hold zeros: a new one is zeroed on the device. */
static glm_status ensure_zeroed(vk_impl *v, glm_vk_buffer *buf, uint64_t bytes)
{
    if (buf->buf && buf->size >= bytes)
        return GLM_OK;
    GLM_TRY(ensure(v, buf, bytes, false));
    void *z = calloc(1, buf->size);
    if (!z)
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory for %llu zero bytes", (unsigned long long)buf->size);
    glm_status s = glm_vk_upload(v->vk, buf, 0, z, buf->size);
    free(z);
    return s;
}

static glm_status ensure_rope(vk_impl *v, uint32_t positions, uint32_t dim, float theta)
{
    if (v->rope_table.buf && positions <= v->rope_positions && dim == v->rope_dim && theta == v->rope_theta)
        return GLM_OK;
    uint32_t n = v->rope_positions > 4096 ? v->rope_positions : 4096;
    while (n < positions)
        n *= 2;
    float *cs = malloc((size_t)n * dim * sizeof(float));
    if (!cs)
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory for the rope table");
    glm_vk_rope_table(cs, n, dim, theta);
    glm_status s = flush(v);
    if (s == GLM_OK) {
        glm_vk_buffer_destroy(v->vk, &v->rope_table);
        s = glm_vk_buffer_create(v->vk, &v->rope_table, (uint64_t)n * dim * sizeof(float), false);
    }
    if (s == GLM_OK)
        s = glm_vk_upload(v->vk, &v->rope_table, 0, cs, (uint64_t)n * dim * sizeof(float));
    free(cs);
    if (s == GLM_OK) {
        v->rope_positions = n;
        v->rope_dim = dim;
        v->rope_theta = theta;
    }
    return s;
}

/* ---- the op table ------------------------------------------------------------------------------ */

static void vk_free(glm_backend *b, glm_dbuf *buf)
{
    if (!buf)
        return;
    vk_impl *v = impl(b);
    flush(v);
    glm_vk_buffer_destroy(v->vk, &buf->b);
    free(buf);
}

static void vk_destroy(glm_backend *b)
{
    vk_impl *v = impl(b);
    if (v) {
        flush(v);
        for (uint32_t i = 0; i < v->n_arenas; i++)
            glm_vk_buffer_destroy(v->vk, &v->arenas[i].buf);
        free(v->weights);
        free(v->slots);
        glm_vk_buffer_destroy(v->vk, &v->rope_table);
        glm_vk_buffer_destroy(v->vk, &v->scratch);
        glm_vk_buffer_destroy(v->vk, &v->mla_counts);
        glm_vk_buffer_destroy(v->vk, &v->group);
        glm_vk_buffer_destroy(v->vk, &v->ids);
        glm_vk_buffer_destroy(v->vk, &v->route_counts);
        glm_vk_buffer_destroy(v->vk, &v->ffn_up);
        glm_vk_buffer_destroy(v->vk, &v->x8);
        glm_vk_buffer_destroy(v->vk, &v->x8s[0]);
        glm_vk_buffer_destroy(v->vk, &v->x8s[1]);
        glm_vk_buffer_destroy(v->vk, &v->x_half);
        glm_vk_buffer_destroy(v->vk, &v->fold_x.b);
        glm_vk_buffer_destroy(v->vk, &v->fold_y.b);
        glm_vk_destroy(v->vk);
        free(v->runs);
        free(v->run_len);
        free(v);
    }
    free(b);
}

static glm_status alloc_any(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols, bool host)
{
    if (rows <= 0 || cols <= 0 || (uint64_t)rows * (uint64_t)cols > UINT32_MAX / 4)
        return glm_errorf(GLM_ERR_INVALID, "vulkan: cannot allocate a %lld x %lld activation", (long long)rows,
                          (long long)cols);
    glm_dbuf *d = calloc(1, sizeof *d);
    if (!d)
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory");
    /* the host's per-step rows go where kernels read them at device speed (if mappable) */
    glm_status s = host ? glm_vk_buffer_create_upload(impl(b)->vk, &d->b, (uint64_t)rows * cols * 4)
                        : glm_vk_buffer_create(impl(b)->vk, &d->b, (uint64_t)rows * cols * 4, false);
    if (s != GLM_OK) {
        free(d);
        return s;
    }
    d->dt = dt;
    *out = (glm_dview){ .buf = d, .dt = dt, .off = 0, .rows = rows, .cols = cols, .ld = cols };
    return GLM_OK;
}

static glm_status vk_alloc(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols)
{
    return alloc_any(b, out, dt, rows, cols, false);
}

static glm_status vk_alloc_host(glm_backend *b, glm_dview *out, glm_dtype dt, int64_t rows, int64_t cols)
{
    return alloc_any(b, out, dt, rows, cols, true);
}

/* Copy a view between host [rows][cols] and the device, row by row when strided. */
static glm_status transfer(vk_impl *v, glm_dview d, void *host, bool up)
{
    if (!up && d.ld == d.cols) { /* appended to the recorded work: one submit and one wait */
        v->pending = 0;
        return glm_vk_download(v->vk, host, &d.buf->b, (uint64_t)d.off * 4, (uint64_t)d.rows * d.cols * 4);
    }
    GLM_TRY(flush(v));
    if (d.ld == d.cols) {
        uint64_t n = (uint64_t)d.rows * d.cols * 4;
        return up ? glm_vk_upload(v->vk, &d.buf->b, (uint64_t)d.off * 4, host, n)
                  : glm_vk_download(v->vk, host, &d.buf->b, (uint64_t)d.off * 4, n);
    }
    for (int64_t r = 0; r < d.rows; r++) {
        uint8_t *h = (uint8_t *)host + (uint64_t)r * d.cols * 4;
        uint64_t off = (uint64_t)(d.off + r * d.ld) * 4, n = (uint64_t)d.cols * 4;
        GLM_TRY(up ? glm_vk_upload(v->vk, &d.buf->b, off, h, n) : glm_vk_download(v->vk, h, &d.buf->b, off, n));
    }
    return GLM_OK;
}

static glm_status vk_upload(glm_backend *b, glm_dview dst, const void *host)
{
    return transfer(impl(b), dst, (void *)host, true);
}

static glm_status vk_download(glm_backend *b, void *host, glm_dview src) { return transfer(impl(b), src, host, false); }

static glm_status vk_sync(glm_backend *b) { return flush(impl(b)); }

static glm_status vk_get_rows(glm_backend *b, glm_dview y, const glm_tensor *w, const int32_t *ids)
{
    vk_impl *v = impl(b);
    for (int64_t t = 0; t < y.rows; t++)
        if (ids[t] < 0 || ids[t] >= w->ne[1])
            return glm_errorf(GLM_ERR_INVALID, "token id %d out of range (vocabulary %lld)", ids[t], (long long)w->ne[1]);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(ensure(v, &v->ids, (uint64_t)y.rows * 4, true));
    GLM_TRY(flush(v)); /* the ids buffer may still be read by recorded work */
    memcpy(v->ids.map, ids, (size_t)y.rows * 4);
    GLM_TRY(recording(v));
    glm_vk_view iv = { &v->ids, 0, (uint32_t)y.rows, 1, 1 };
    return glm_vk_get_rows(v->vk, vv(y), &wt, iv);
}

static glm_status vk_rms_norm(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, float eps)
{
    vk_impl *v = impl(b);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(recording(v));
    return glm_vk_rms_norm(v->vk, vv(y), vv(x), &wt, eps);
}

static glm_status vk_add_rms_norm(glm_backend *b, glm_dview y, glm_dview x, glm_dview t, const glm_tensor *w, float eps)
{
    vk_impl *v = impl(b);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(recording(v));
    return glm_vk_add_rms_norm(v->vk, vv(y), vv(x), vv(t), &wt, eps);
}

/* ---- products: item runs ------------------------------------------------------------------ */

static glm_status vk_set_runs(glm_backend *b, const int32_t *runs, const int64_t *ends, int n_runs)
{
    vk_impl *v = impl(b);
    v->n_runs = 0;
    if (n_runs < 0 || (n_runs > 0 && !runs))
        return glm_errorf(GLM_ERR_INVALID, "vulkan set_runs: %d runs without rows", n_runs);
    if ((uint32_t)n_runs > v->runs_cap) {
        uint32_t *p = realloc(v->runs, sizeof(uint32_t) * (size_t)n_runs);
        if (p)
            v->runs = p;
        uint32_t *q = p ? realloc(v->run_len, sizeof(uint32_t) * (size_t)n_runs) : NULL;
        if (!q)
            return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory for %d item runs", n_runs);
        v->run_len = q;
        v->runs_cap = (uint32_t)n_runs;
    }
    v->runs_sum = 0;
    for (int i = 0; i < n_runs; i++) {
        if (runs[i] <= 0 || (ends && (ends[i] < runs[i] || ends[i] > INT32_MAX)))
            return glm_errorf(GLM_ERR_INVALID, "vulkan set_runs: item %d has %d rows, key bound %lld", i, runs[i],
                              ends ? (long long)ends[i] : 0ll);
        v->runs[i] = (uint32_t)runs[i];
        v->run_len[i] = ends ? (uint32_t)ends[i] : 0;
        v->runs_sum += (uint64_t)runs[i];
    }
    v->has_len = ends != NULL;
    v->n_runs = (uint32_t)n_runs;
    return GLM_OK;
}

/* The stretches of a product over `rows` token rows (cursor c): by the item runs where they
 * add up to the rows, else all of them as one item. */
typedef struct vk_cursor {
    uint32_t i, t, one;
} vk_cursor;

static bool next_seg(const vk_impl *v, uint32_t rows, vk_cursor *c, glm_vk_stretch *s)
{
    if (v->n_runs && v->runs_sum == rows)
        return glm_vk_next_stretch(v->runs, v->n_runs, true, &c->i, &c->t, s);
    c->one = rows;
    return rows && glm_vk_next_stretch(&c->one, 1, true, &c->i, &c->t, s);
}

/* A rows × cols F32 view at the start of scratch d (made large enough before recording). */
static glm_status fold_view(vk_impl *v, glm_dbuf *d, int64_t rows, int64_t cols, glm_dview *out)
{
    GLM_TRY(ensure(v, &d->b, (uint64_t)rows * (uint64_t)cols * 4, false));
    d->dt = GLM_DT_F32;
    *out = (glm_dview){ d, GLM_DT_F32, 0, rows, cols, cols };
    return GLM_OK;
}

/* Decode products with an 8-bit x (GLM_VK_X8): for weights glm_vk_matvec_x8 takes and few rows
 * of x, x is quantized into v->x8 by a dispatch of its own, which the product then reads.
 * x8_wanted says whether it applies (before recording: x8_record may have to grow v->x8). */
#define VK_X8_ROWS 64
static bool x8_wanted(const vk_impl *v, const glm_vk_weight *w, glm_dview x)
{
    return v->x8_mode >= 2 && glm_vk_matvec_x8_ok(v->vk, w) && x.cols % 256 == 0 && x.rows <= VK_X8_ROWS;
}

/* Producers: an op about to record a write of y (at most VK_X8_ROWS rows) reserves its 8-bit
 * form (before recording(): buffers may grow), then tags y after recording(); the very next op
 * that reads y as its whole x (x8_in, before its own recording()) may take the 8-bit form. */
static bool x8_out_wanted(const vk_impl *v, glm_dview y, uint32_t cols_unit)
{
    return v->x8_mode >= 1 && y.rows <= VK_X8_ROWS && y.cols % cols_unit == 0 && y.cols % 256 == 0;
}

static glm_status x8_out_reserve(vk_impl *v, glm_dview y, glm_vk_x8_out *o)
{
    uint32_t words = glm_ref_x8_words(y.cols), s = v->x8_next;
    GLM_TRY(ensure(v, &v->x8s[s], (uint64_t)y.rows * words * 4, false));
    o->y8 = (glm_vk_view){ &v->x8s[s], 0, (uint32_t)y.rows, words, words };
    return GLM_OK;
}

static void x8_out_tag(vk_impl *v, glm_dview y)
{
    v->x8_tag.y = y;
    v->x8_tag.seq = v->op_seq;
    v->x8_tag.slot = v->x8_next;
    v->x8_next ^= 1;
}

static bool x8_in(const vk_impl *v, glm_dview x, const glm_vk_weight *w, glm_vk_view *q)
{
    const glm_dview t = v->x8_tag.y;
    if (v->x8_mode < 1 || !t.buf || v->x8_tag.seq != v->op_seq || t.buf != x.buf || t.off != x.off ||
        t.rows != x.rows || t.cols != x.cols || t.ld != x.ld || !glm_vk_matvec_x8_ok(v->vk, w))
        return false;
    uint32_t words = glm_ref_x8_words(x.cols);
    *q = (glm_vk_view){ &v->x8s[v->x8_tag.slot], 0, (uint32_t)x.rows, words, words };
    return true;
}

static glm_status x8_reserve(vk_impl *v, glm_dview x)
{
    return ensure(v, &v->x8, (uint64_t)x.rows * glm_ref_x8_words(x.cols) * 4, false);
}

/* After recording(v): the quantization of x into v->x8, and its view. */
static glm_status x8_record(vk_impl *v, glm_dview x, glm_vk_view *q)
{
    uint32_t words = glm_ref_x8_words(x.cols);
    *q = (glm_vk_view){ &v->x8, 0, (uint32_t)x.rows, words, words };
    v->pending++;
    return glm_vk_quant_x8(v->vk, *q, vv(x));
}

/* y = W_slab·x (add: y += W·x), walked by the item runs: items of many rows as tiled products
 * (with add, into a scratch and then added to y, or where the product splits into column parts,
 * their sum added into y), the rows of small items row by row (the add folded into the matvec),
 * exactly as when their item runs alone. */
static glm_status plain_products(vk_impl *v, glm_dview y, glm_dview x, const glm_tensor *w, uint32_t slab, bool add)
{
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    while (next_seg(v, (uint32_t)x.rows, &c, &s)) {
        glm_dview ys = glm_dview_rows(y, s.t, s.n), xs = glm_dview_rows(x, s.t, s.n);
        bool tiled = s.tiled && glm_vk_matmul_fits(&wt);
        if (tiled && add && slab == 0 && glm_vk_matmul_add_on() &&
            glm_vk_matmul_parts(v->vk, &wt, (uint32_t)xs.rows) > 1) {
            /* split into column parts: their sum adds into y */
            GLM_TRY(recording(v));
            GLM_TRY(glm_vk_matmul_add(v->vk, vv(ys), &wt, vv(xs)));
            continue;
        }
        glm_dview p = ys;
        if (tiled && add)
            GLM_TRY(fold_view(v, &v->fold_y, ys.rows, ys.cols, &p));
        glm_vk_view q = { 0 };
        bool tagged = !tiled && slab == 0 && x8_in(v, xs, &wt, &q);
        bool x8 = !tiled && slab == 0 && !tagged && x8_wanted(v, &wt, xs);
        if (x8)
            GLM_TRY(x8_reserve(v, xs));
        GLM_TRY(recording(v));
        if (x8 || tagged) {
            if (x8)
                GLM_TRY(x8_record(v, xs, &q));
            GLM_TRY(glm_vk_matvec_x8(v->vk, vv(ys), &wt, NULL, q, NULL, add, NULL));
            continue;
        }
        if (!tiled) {
            GLM_TRY(add ? glm_vk_matvec_add(v->vk, vv(ys), &wt, vv(xs)) : glm_vk_matvec(v->vk, vv(ys), &wt, slab, vv(xs)));
            continue;
        }
        GLM_TRY(glm_vk_matmul(v->vk, vv(p), &wt, slab, vv(xs)));
        if (add) {
            GLM_TRY(recording(v));
            GLM_TRY(glm_vk_eltwise(v->vk, GLM_VK_ADD, vv(ys), vv(ys), vv(p)));
        }
    }
    return GLM_OK;
}

static glm_status vk_matmul(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, int64_t slab)
{
    return plain_products(impl(b), y, x, w, (uint32_t)slab, false);
}

static glm_status vk_matmul_add(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w)
{
    return plain_products(impl(b), y, x, w, 0, true);
}

/* The group scratch of a tiled matmul_id over `ids` (made large enough before recording). */
static glm_status group_view(vk_impl *v, glm_dview ids, const glm_vk_weight *w, glm_vk_view *g)
{
    uint64_t n = glm_vk_moe_group_ints((uint32_t)ids.rows, (uint32_t)ids.cols, w->nslabs ? w->nslabs : 1);
    GLM_TRY(ensure(v, &v->group, n * 4, false));
    *g = (glm_vk_view){ &v->group, 0, 1, (uint32_t)n, (uint32_t)n };
    return GLM_OK;
}

/* The float16 copy of x for the tiled grouped products of w (none where they do not take one),
 * made large enough before recording; the conversion is recorded by half_record. */
static glm_status half_view(vk_impl *v, glm_dview x, const glm_vk_weight *w, glm_vk_view *xh)
{
    *xh = (glm_vk_view){ 0 };
    if (!glm_vk_matmul_id_takes_half(v->vk, w))
        return GLM_OK;
    GLM_TRY(ensure(v, &v->x_half, (uint64_t)x.rows * x.cols * 2, false));
    *xh = (glm_vk_view){ &v->x_half, 0, (uint32_t)x.rows, (uint32_t)x.cols / 2, (uint32_t)x.cols / 2 };
    return GLM_OK;
}

/* The grouping of ids for w's experts, which the op just recorded left in `group` (valid for the
 * next op only: nothing recorded in between can have changed ids or the group). */
static void group_tag(vk_impl *v, glm_dview ids, const glm_vk_weight *w)
{
    v->group_tag.ids = ids;
    v->group_tag.n_exp = w->nslabs ? w->nslabs : 1;
    v->group_tag.tile = glm_vk_matmul_id_tile(v->vk, w);
    v->group_tag.seq = v->op_seq;
}

/* Is the grouping in `group` the one this op's tiled grouped product of w over ids needs? */
static bool group_tagged(const vk_impl *v, glm_dview ids, const glm_vk_weight *w)
{
    const glm_dview t = v->group_tag.ids;
    return t.buf && v->group_tag.seq == v->op_seq && t.buf == ids.buf && t.off == ids.off && t.rows == ids.rows &&
           t.cols == ids.cols && t.ld == ids.ld && v->group_tag.n_exp == (w->nslabs ? w->nslabs : 1) &&
           v->group_tag.tile == glm_vk_matmul_id_tile(v->vk, w);
}

static glm_status half_record(vk_impl *v, glm_vk_view xh, glm_dview x)
{
    if (!xh.buf)
        return GLM_OK;
    v->pending++;
    return glm_vk_to_half(v->vk, xh, vv(x));
}

/* The rows of stretch s in the views of an expert product: ids [T][k], y [T·k], x [T] or
 * [T·k]. */
static void seg_views(glm_vk_stretch s, glm_dview *y, glm_dview *x, glm_dview *ids)
{
    int64_t k = ids->cols;
    bool per_pair = x->rows != ids->rows;
    *y = glm_dview_rows(*y, s.t * k, s.n * k);
    *x = per_pair ? glm_dview_rows(*x, s.t * k, s.n * k) : glm_dview_rows(*x, s.t, s.n);
    *ids = glm_dview_rows(*ids, s.t, s.n);
}

/* The expert products of stretch s (matmul_id's rows of it). */
static glm_status id_stretch(vk_impl *v, glm_vk_stretch s, glm_dview y, glm_dview x, const glm_vk_weight *w,
                             glm_dview ids)
{
    glm_dview ys = y, xs = x, is = ids;
    glm_vk_view q = { 0 };
    seg_views(s, &ys, &xs, &is);
    if (s.tiled && glm_vk_matmul_fits(w)) { /* grouped by expert, tiled */
        glm_vk_view g, xh;
        /* the gate/up product just before grouped the same ids for as many experts: reuse it */
        bool ready = group_tagged(v, is, w);
        GLM_TRY(group_view(v, is, w, &g));
        GLM_TRY(half_view(v, xs, w, &xh));
        GLM_TRY(recording(v));
        GLM_TRY(half_record(v, xh, xs));
        if (!ready)
            v->pending++; /* the grouping */
        GLM_TRY(glm_vk_matmul_id_half(v->vk, vv(ys), w, vv(xs), xh, vv(is), g, ready));
    } else if (x8_in(v, xs, w, &q) || x8_wanted(v, w, xs)) {
        glm_vk_view iv = vv(is);
        bool tagged = q.buf != NULL;
        if (!tagged)
            GLM_TRY(x8_reserve(v, xs));
        GLM_TRY(recording(v));
        if (!tagged)
            GLM_TRY(x8_record(v, xs, &q));
        GLM_TRY(glm_vk_matvec_x8(v->vk, vv(ys), w, NULL, q, &iv, false, NULL));
    } else {
        GLM_TRY(recording(v));
        GLM_TRY(glm_vk_matvec_id(v->vk, vv(ys), w, vv(xs), vv(is)));
    }
    return GLM_OK;
}

static glm_status vk_matmul_id(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, glm_dview ids)
{
    vk_impl *v = impl(b);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    while (next_seg(v, (uint32_t)ids.rows, &c, &s))
        GLM_TRY(id_stretch(v, s, y, x, &wt, ids));
    return GLM_OK;
}

/* An on-by-default switch read once into *cache: off where the environment variable is 0. */
static bool switch_on(const char *name, int *cache)
{
    if (*cache < 0) {
        const char *e = getenv(name);
        *cache = !(e && *e && strtol(e, NULL, 10) == 0);
    }
    return *cache;
}

/* GLM_VK_MOE_COMB=0: the routed down products and their mixture stay two dispatches (a
 * measurement switch). */
static bool comb_on(void)
{
    static int on = -1;
    return switch_on("GLM_VK_MOE_COMB", &on);
}

/* y += mixture of the expert products, stretch by stretch: rows of small items whose products
 * run on matvec_fast (or matvec_q8, where the gate/up wrote x in 8 bits) in one dispatch with
 * their mixture (COMB), the others as
 * matmul_id into tmp and moe_combine_add (exactly as when their item runs alone). */
static glm_status vk_matmul_id_combine_add(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *w, glm_dview ids,
                                           glm_dview wts, glm_dview tmp)
{
    vk_impl *v = impl(b);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    while (next_seg(v, (uint32_t)ids.rows, &c, &s)) {
        glm_dview ys = glm_dview_rows(y, s.t, s.n), ws = glm_dview_rows(wts, s.t, s.n), ts = tmp, xs = x, is = ids;
        seg_views(s, &ts, &xs, &is);
        glm_vk_view q;
        /* x as the gate/up wrote it in 8 bits (x8_in), else the float rows unless x8_wanted */
        bool tagged = x8_in(v, xs, &wt, &q);
        bool fused = comb_on() && !(s.tiled && glm_vk_matmul_fits(&wt)) && (tagged || !x8_wanted(v, &wt, xs)) &&
                     glm_vk_matvec_id_combine_fits(v->vk, &wt, vv(xs), (uint32_t)is.cols);
        if (fused) {
            GLM_TRY(recording(v));
            GLM_TRY(tagged ? glm_vk_matvec_x8_combine_add(v->vk, vv(ys), &wt, q, vv(is), vv(ws))
                           : glm_vk_matvec_id_combine_add(v->vk, vv(ys), &wt, vv(xs), vv(is), vv(ws)));
            continue;
        }
        GLM_TRY(id_stretch(v, s, tmp, x, &wt, ids));
        GLM_TRY(recording(v));
        GLM_TRY(glm_vk_moe_combine_add(v->vk, vv(ys), vv(glm_dview_rows(tmp, s.t * ids.cols, s.n * ids.cols)), vv(ws),
                                       vv(ys)));
    }
    return GLM_OK;
}

/* Gate/up of items of many rows: the two tiled products (grouped by expert with ids) and the
 * SwiGLU. */
static glm_status tiled_swiglu(vk_impl *v, glm_dview y, glm_dview x, const glm_vk_weight *g, const glm_vk_weight *u,
                               const glm_dview *ids)
{
    glm_vk_view gv = { 0 }, xh = { 0 };
    if (ids) {
        GLM_TRY(group_view(v, *ids, g, &gv));
        GLM_TRY(half_view(v, x, g, &xh));
    }
    if (glm_vk_matmul_swiglu_fits(v->vk, g, u)) { /* one dispatch: both products and the SwiGLU */
        glm_vk_view iv = ids ? vv(*ids) : (glm_vk_view){ 0 };
        GLM_TRY(recording(v));
        if (ids)
            v->pending++; /* the grouping */
        GLM_TRY(half_record(v, xh, x));
        GLM_TRY(glm_vk_matmul_swiglu(v->vk, vv(y), g, u, vv(x), xh, ids ? &iv : NULL, gv, false));
        if (ids)
            group_tag(v, *ids, g);
        return GLM_OK;
    }
    GLM_TRY(ensure(v, &v->ffn_up, (uint64_t)y.rows * y.cols * 4, false));
    glm_vk_view uv = { &v->ffn_up, 0, (uint32_t)y.rows, (uint32_t)y.cols, (uint32_t)y.cols };
    GLM_TRY(recording(v));
    v->pending += ids ? 4 : 2;
    if (ids) {
        /* one float16 copy of x and one grouping for both products (same ids, type and number of
         * experts: the same tiles) */
        bool shared = (g->nslabs ? g->nslabs : 1) == (u->nslabs ? u->nslabs : 1) && g->type == u->type &&
                      g->ncols == u->ncols && g->offset % 16 == u->offset % 16 && g->slab_bytes == u->slab_bytes;
        if (!shared)
            xh = (glm_vk_view){ 0 };
        GLM_TRY(half_record(v, xh, x));
        GLM_TRY(glm_vk_matmul_id_half(v->vk, vv(y), g, vv(x), xh, vv(*ids), gv, false));
        GLM_TRY(glm_vk_matmul_id_half(v->vk, uv, u, vv(x), xh, vv(*ids), gv, shared));
        group_tag(v, *ids, u);
    } else {
        GLM_TRY(glm_vk_matmul(v->vk, vv(y), g, 0, vv(x)));
        GLM_TRY(glm_vk_matmul(v->vk, uv, u, 0, vv(x)));
    }
    return glm_vk_eltwise(v->vk, GLM_VK_SWIGLU, vv(y), vv(y), uv);
}

/* One row-by-row product of slab 0 (routed experts with ids), of RMSNorm(x; nw, eps) where nw
 * is given. */
static glm_status matvec_one(vk_impl *v, glm_vk_view y, const glm_vk_weight *w, glm_dview x, const glm_dview *ids,
                             const glm_vk_weight *nw, float eps)
{
    glm_vk_view iv = ids ? vv(*ids) : (glm_vk_view){ 0 };
    if (nw)
        return glm_vk_rms_norm_matvec(v->vk, y, w, NULL, vv(x), ids ? &iv : NULL, nw, eps);
    return ids ? glm_vk_matvec_id(v->vk, y, w, vv(x), iv) : glm_vk_matvec(v->vk, y, w, 0, vv(x));
}

/* Gate/up row by row, of RMSNorm(x; nw, eps) where nw is given (the norm folded in): one fused
 * dispatch (or two products and the SwiGLU). */
static glm_status matvec_swiglu(vk_impl *v, glm_dview y, glm_dview x, const glm_vk_weight *g, const glm_vk_weight *u,
                                const glm_dview *ids, const glm_vk_weight *nw, float eps)
{
    if (g->buf != u->buf) {
        /* not in one buffer (uploaded apart): the two products and the SwiGLU */
        GLM_TRY(ensure(v, &v->ffn_up, (uint64_t)y.rows * y.cols * 4, false));
        glm_vk_view uv = { &v->ffn_up, 0, (uint32_t)y.rows, (uint32_t)y.cols, (uint32_t)y.cols };
        GLM_TRY(recording(v));
        v->pending += 2;
        GLM_TRY(matvec_one(v, vv(y), g, x, ids, nw, eps));
        GLM_TRY(matvec_one(v, uv, u, x, ids, nw, eps));
        return glm_vk_eltwise(v->vk, GLM_VK_SWIGLU, vv(y), vv(y), uv);
    }
    glm_vk_view q = { 0 };
    bool tagged = !nw && x8_in(v, x, g, &q), x8 = !nw && !tagged && x8_wanted(v, g, x);
    glm_vk_x8_out o8 = { { 0 }, false };
    bool out = (tagged || x8) && x8_out_wanted(v, y, 4);
    if (x8)
        GLM_TRY(x8_reserve(v, x));
    if (out)
        GLM_TRY(x8_out_reserve(v, y, &o8));
    GLM_TRY(recording(v));
    glm_vk_view iv = ids ? vv(*ids) : (glm_vk_view){ 0 };
    if (nw)
        return glm_vk_rms_norm_matvec(v->vk, vv(y), g, u, vv(x), ids ? &iv : NULL, nw, eps);
    if (x8)
        GLM_TRY(x8_record(v, x, &q));
    if (tagged || x8) {
        GLM_TRY(glm_vk_matvec_x8(v->vk, vv(y), g, u, q, ids ? &iv : NULL, false, out ? &o8 : NULL));
        if (o8.written)
            x8_out_tag(v, y);
        return GLM_OK;
    }
    return glm_vk_matvec_swiglu(v->vk, vv(y), g, u, vv(x), ids ? &iv : NULL);
}

/* Items of many rows with the norm: rms_norm into the scratch, then the tiled products as
 * matmul, matmul_id or matmul_swiglu compute them (the unfolded sequence). */
static glm_status tiled_normed(vk_impl *v, glm_dview y, glm_dview x, const glm_vk_weight *w, const glm_vk_weight *u,
                               const glm_dview *ids, const glm_vk_weight *nw, float eps)
{
    glm_dview n;
    GLM_TRY(fold_view(v, &v->fold_x, x.rows, x.cols, &n));
    glm_vk_view gv = { 0 }, xh = { 0 };
    if (ids && !u) {
        GLM_TRY(group_view(v, *ids, w, &gv));
        GLM_TRY(half_view(v, n, w, &xh));
    }
    GLM_TRY(recording(v));
    GLM_TRY(glm_vk_rms_norm(v->vk, vv(n), vv(x), nw, eps));
    if (u)
        return tiled_swiglu(v, y, n, w, u, ids);
    GLM_TRY(recording(v));
    if (!ids)
        return glm_vk_matmul(v->vk, vv(y), w, 0, vv(n));
    GLM_TRY(half_record(v, xh, n));
    v->pending++; /* two dispatches */
    return glm_vk_matmul_id_half(v->vk, vv(y), w, vv(n), xh, vv(*ids), gv, false);
}

/* y = W·x, SwiGLU(W·x, U·x) where u is given, of RMSNorm(x; nw, eps) where nw is given, walked
 * by the item runs: items of many rows as tiled products (the norm a dispatch of its own in
 * front), the rows of small items row by row with the norm folded into the matvec, exactly as
 * when their item runs alone. */
static glm_status products(vk_impl *v, glm_dview y, glm_dview x, const glm_vk_weight *w, const glm_vk_weight *u,
                           const glm_dview *ids, const glm_vk_weight *nw, float eps)
{
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    while (next_seg(v, (uint32_t)(ids ? ids->rows : x.rows), &c, &s)) {
        glm_dview ys = y, xs = x, is = ids ? *ids : (glm_dview){ 0 };
        if (ids)
            seg_views(s, &ys, &xs, &is);
        else
            ys = glm_dview_rows(y, s.t, s.n), xs = glm_dview_rows(x, s.t, s.n);
        const glm_dview *ip = ids ? &is : NULL;
        if (s.tiled && glm_vk_matmul_fits(w) && (!u || glm_vk_matmul_fits(u))) {
            GLM_TRY(nw ? tiled_normed(v, ys, xs, w, u, ip, nw, eps) : tiled_swiglu(v, ys, xs, w, u, ip));
        } else if (u) {
            GLM_TRY(matvec_swiglu(v, ys, xs, w, u, ip, nw, eps));
        } else {
            GLM_TRY(recording(v));
            GLM_TRY(matvec_one(v, vv(ys), w, xs, ip, nw, eps));
        }
    }
    return GLM_OK;
}

static glm_status vk_matmul_swiglu(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *wg, const glm_tensor *wu,
                                   const glm_dview *ids)
{
    vk_impl *v = impl(b);
    glm_vk_weight g, u;
    GLM_TRY(weight(v, wg, &g));
    GLM_TRY(weight(v, wu, &u));
    return products(v, y, x, &g, &u, ids, NULL, 0);
}

static glm_status vk_rms_norm_matmul(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *g, float eps,
                                     const glm_tensor *w, const glm_tensor *wu, const glm_dview *ids)
{
    vk_impl *v = impl(b);
    glm_vk_weight wt, ut, gt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(weight(v, g, &gt));
    if (wu)
        GLM_TRY(weight(v, wu, &ut));
    return products(v, y, x, &wt, wu ? &ut : NULL, ids, &gt, eps);
}

/* GLM_VK_QKV_A_ONE=0: rms_norm_matmul2 as two products (a measurement switch). */
static bool pair_one_on(void)
{
    static int on = -1;
    return switch_on("GLM_VK_QKV_A_ONE", &on);
}

/* Two products of one normed x: one product over both weights' rows where W2's rows follow
 * W1's in one buffer (upload_layer puts q_a and kv_a so) and y2's columns follow y1's, else two. */
static glm_status vk_rms_norm_matmul2(glm_backend *b, glm_dview y1, glm_dview y2, glm_dview x, const glm_tensor *g,
                                      float eps, const glm_tensor *w1, const glm_tensor *w2)
{
    vk_impl *v = impl(b);
    glm_vk_weight a, c, gt;
    GLM_TRY(weight(v, w1, &a));
    GLM_TRY(weight(v, w2, &c));
    GLM_TRY(weight(v, g, &gt));
    bool one = pair_one_on() && a.buf == c.buf && a.type == c.type && a.ncols == c.ncols &&
               a.row_bytes == c.row_bytes && a.nslabs == 1 && c.nslabs == 1 &&
               (uint64_t)c.offset == (uint64_t)a.offset + (uint64_t)a.nrows * a.row_bytes && y1.buf == y2.buf &&
               y1.rows == y2.rows && y1.ld == y2.ld && y1.cols == a.nrows && y2.cols == c.nrows &&
               y2.off == y1.off + y1.cols;
    if (one) {
        glm_vk_weight m = a;
        m.nrows = a.nrows + c.nrows;
        m.slab_bytes = m.nrows * m.row_bytes;
        glm_dview y = y1;
        y.cols = y1.cols + y2.cols;
        return products(v, y, x, &m, NULL, NULL, &gt, eps);
    }
    GLM_TRY(products(v, y1, x, &a, NULL, NULL, &gt, eps));
    return products(v, y2, x, &c, NULL, NULL, &gt, eps);
}

static glm_status vk_rope(glm_backend *b, glm_dview x, int n_heads, int head_dim, int rope_off, int rope_dim,
                          glm_dview pos, int64_t max_pos, float theta)
{
    vk_impl *v = impl(b);
    if (max_pos <= 0 || max_pos > INT32_MAX)
        return glm_errorf(GLM_ERR_INVALID, "vulkan rope: bad position bound %lld", (long long)max_pos);
    GLM_TRY(ensure_rope(v, (uint32_t)max_pos, (uint32_t)rope_dim, theta));
    GLM_TRY(recording(v));
    return glm_vk_rope(v->vk, vv(x), &v->rope_table, v->rope_positions, (uint32_t)n_heads, (uint32_t)head_dim,
                       (uint32_t)rope_off, (uint32_t)rope_dim, vv(pos));
}

/* r as the kernels take it, with the item runs where they add up to r's rows (attention
 * without them takes every row on its own). */
static glm_vk_kv_rows vk_rows(const vk_impl *v, const glm_kv_rows *r)
{
    bool runs = v->n_runs && v->runs_sum == (uint64_t)r->pos.rows;
    return (glm_vk_kv_rows){ vv(r->pos),           vv(r->ptab), vv(r->pages), (uint32_t)r->page_size, (uint32_t)r->max_len,
                             runs ? v->runs : NULL, runs && v->has_len ? v->run_len : NULL, runs ? v->n_runs : 0,
                             glm_vk_mla_long_keys(v->vk),
                             glm_vk_mla_flash(v->vk) && r->max_len >= glm_vk_mla_flash_min(v->vk) ? glm_vk_mla_flash_pass(v->vk) : 0,
                             glm_vk_mla_flash_split(v->vk) };
}

static glm_status vk_kv_write(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r)
{
    vk_impl *v = impl(b);
    GLM_TRY(recording(v));
    glm_vk_kv_rows kr = vk_rows(v, r);
    return glm_vk_kv_write(v->vk, vv(pool), vv(src), &kr);
}

static glm_status vk_kv_write_norm(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r,
                                   const glm_tensor *g, float eps, int n_norm)
{
    vk_impl *v = impl(b);
    glm_vk_weight gt;
    GLM_TRY(weight(v, g, &gt));
    if (n_norm <= 0)
        return glm_errorf(GLM_ERR_INVALID, "vulkan kv_write_norm: %d columns to norm", n_norm);
    GLM_TRY(recording(v));
    glm_vk_kv_rows kr = vk_rows(v, r);
    return glm_vk_kv_write_norm(v->vk, vv(pool), vv(src), &kr, &gt, eps, (uint32_t)n_norm);
}

static glm_status vk_kv_write_rope(glm_backend *b, glm_dview pool, glm_dview src, const glm_kv_rows *r,
                                   const glm_tensor *g, float eps, int n_norm, glm_dview q, int n_heads, int head_dim,
                                   int rope_off, int rope_dim, float theta)
{
    vk_impl *v = impl(b);
    glm_vk_weight gt;
    GLM_TRY(weight(v, g, &gt));
    if (n_norm <= 0 || n_heads < 0 || head_dim <= 0 || rope_off < 0 || rope_dim <= 0)
        return glm_errorf(GLM_ERR_INVALID, "vulkan kv_write_rope: bad shape (%d normed, %d heads of %d, rope %d+%d)",
                          n_norm, n_heads, head_dim, rope_off, rope_dim);
    if (r->max_len <= 0 || r->max_len > INT32_MAX)
        return glm_errorf(GLM_ERR_INVALID, "vulkan kv_write_rope: bad position bound %lld", (long long)r->max_len);
    GLM_TRY(ensure_rope(v, (uint32_t)r->max_len, (uint32_t)rope_dim, theta));
    GLM_TRY(recording(v));
    glm_vk_kv_rows kr = vk_rows(v, r);
    glm_vk_kv_rope rp = { &v->rope_table,     v->rope_positions,  (uint32_t)n_norm,  (uint32_t)rope_dim,
                          vv(q),              (uint32_t)n_heads, (uint32_t)head_dim, (uint32_t)rope_off };
    return glm_vk_kv_write_rope(v->vk, vv(pool), vv(src), &kr, &gt, eps, (uint32_t)n_norm, &rp);
}

/* The query's product and rope: in one dispatch where the product's slices allow (ops.c). */
static glm_status vk_rms_norm_matmul_rope(glm_backend *b, glm_dview y, glm_dview x, const glm_tensor *g, float eps,
                                          const glm_tensor *w, const glm_kv_rows *r, int n_heads, int head_dim,
                                          int rope_off, int rope_dim, float theta)
{
    vk_impl *v = impl(b);
    if (n_heads <= 0 || head_dim <= 0 || rope_off < 0 || rope_dim <= 0 || r->max_len <= 0 || r->max_len > INT32_MAX)
        return glm_errorf(GLM_ERR_INVALID, "vulkan rms_norm_matmul_rope: bad shape (%d heads of %d, rope %d+%d)",
                          n_heads, head_dim, rope_off, rope_dim);
    glm_vk_weight wt, gt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(weight(v, g, &gt));
    GLM_TRY(ensure_rope(v, (uint32_t)r->max_len, (uint32_t)rope_dim, theta));
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    while (next_seg(v, (uint32_t)x.rows, &c, &s)) {
        glm_dview ys = glm_dview_rows(y, s.t, s.n), xs = glm_dview_rows(x, s.t, s.n);
        glm_dview ps = glm_dview_rows(r->pos, s.t, s.n);
        if (s.tiled && glm_vk_matmul_fits(&wt)) { /* items of many rows: the tiled product, then the rope */
            GLM_TRY(products(v, ys, xs, &wt, NULL, NULL, &gt, eps));
            GLM_TRY(vk_rope(b, ys, n_heads, head_dim, rope_off, rope_dim, ps, r->max_len, theta));
            continue;
        }
        GLM_TRY(recording(v));
        glm_vk_q_rope rp = { &v->rope_table,    v->rope_positions,  (uint32_t)n_heads, (uint32_t)head_dim,
                             (uint32_t)rope_off, (uint32_t)rope_dim, vv(ps) };
        GLM_TRY(glm_vk_rms_norm_matvec_rope(v->vk, vv(ys), &wt, vv(xs), &gt, eps, &rp));
    }
    return GLM_OK;
}

static glm_status vk_mla(glm_backend *b, glm_dview out, glm_dview q, glm_dview c, glm_dview kr, const glm_tensor *k_b,
                         const glm_tensor *v_b, const glm_mla_shape *s, const glm_kv_rows *r, glm_mla_mode mode)
{
    (void)mode; /* the GPU path always uses the absorbed form: the same function (§2.5) */
    vk_impl *v = impl(b);
    glm_vk_weight wk, wv;
    GLM_TRY(weight(v, k_b, &wk));
    GLM_TRY(weight(v, v_b, &wv));
    if (r->max_len <= 0 || r->max_len > INT32_MAX)
        return glm_errorf(GLM_ERR_INVALID, "vulkan mla_attention: bad key bound %lld", (long long)r->max_len);
    uint32_t T = (uint32_t)s->T, H = (uint32_t)s->n_heads, R = (uint32_t)s->kv_lora;
    glm_vk_kv_rows rows = vk_rows(v, r);
    GLM_TRY(ensure(v, &v->scratch, glm_vk_mla_scratch_floats(T, H, R, &rows) * 4, false));
    GLM_TRY(ensure_zeroed(v, &v->mla_counts, glm_vk_mla_count_ints(T, H) * 4));
    glm_vk_x8_out o8 = { { 0 }, false };
    bool want8 = x8_out_wanted(v, out, 256), wrote8 = false;
    if (want8)
        GLM_TRY(x8_out_reserve(v, out, &o8));
    GLM_TRY(recording(v));
    v->pending += glm_vk_mla_dispatches(T, H, R, &rows) - 1; /* the composite records that many dispatches */
    GLM_TRY(glm_vk_mla_attention_x8(v->vk, vv(out), vv(q), vv(c), vv(kr), &wk, &wv, H, (uint32_t)s->qk_nope,
                                    (uint32_t)s->qk_rope, (uint32_t)s->v_head, &rows, &v->scratch, &v->mla_counts,
                                    want8 ? &o8 : NULL, &wrote8));
    if (wrote8)
        x8_out_tag(v, out); /* o_proj may read it in 8 bits */
    return GLM_OK;
}

static glm_status vk_moe_route(glm_backend *b, glm_dview ids, glm_dview weights, glm_dview logits,
                               const glm_tensor *bias, const glm_route_params *p)
{
    vk_impl *v = impl(b);
    glm_vk_weight wb;
    if (bias)
        GLM_TRY(weight(v, bias, &wb));
    GLM_TRY(recording(v));
    return glm_vk_moe_route(v->vk, vv(ids), vv(weights), vv(logits), bias ? &wb : NULL,
                            (uint32_t)p->num_experts_per_tok, (uint32_t)p->n_group, (uint32_t)p->topk_group, p->sigmoid,
                            p->norm_topk_prob, p->routed_scaling_factor);
}

static glm_status vk_moe_gate_route(glm_backend *b, glm_dview ids, glm_dview weights, glm_dview logits, glm_dview x,
                                    const glm_tensor *g, float eps, const glm_tensor *w, const glm_tensor *bias,
                                    const glm_route_params *p, const glm_dview *xn)
{
    vk_impl *v = impl(b);
    glm_vk_weight ww, wg, wb;
    GLM_TRY(weight(v, w, &ww));
    GLM_TRY(weight(v, g, &wg));
    if (!glm_vk_moe_gate_fits(&ww, &wg)) { /* a quantized router: the norm and its product on their own */
        if (!xn)
            GLM_TRY(b->ops->rms_norm_matmul(b, logits, x, g, eps, w, NULL, NULL));
        else {
            GLM_TRY(b->ops->rms_norm(b, *xn, x, g, eps));
            GLM_TRY(b->ops->matmul(b, logits, *xn, w, 0));
        }
        return vk_moe_route(b, ids, weights, logits, bias, p);
    }
    /* by the item runs, as the products are, so that a row's routing never depends on the rows
     * beside it: items of many rows (tiled) take rms_norm, the router's product as a float32
     * tiled product and moe_route, each a dispatch of its own (the fused kernel's 32 workgroups a
     * row each read the x row and two router rows: traffic that grows with the rows); short items
     * take moe_gate_route */
    uint32_t mode = glm_vk_router_tiled();
    vk_cursor c = { 0 };
    glm_vk_stretch s;
    if (bias)
        GLM_TRY(weight(v, bias, &wb));
    while (next_seg(v, (uint32_t)logits.rows, &c, &s)) {
        glm_dview is = glm_dview_rows(ids, s.t, s.n), ws = glm_dview_rows(weights, s.t, s.n);
        glm_dview ls = glm_dview_rows(logits, s.t, s.n), xs = glm_dview_rows(x, s.t, s.n), ns;
        bool whole = s.t == 0 && s.n == (uint32_t)logits.rows;
        if (xn)
            ns = glm_dview_rows(*xn, s.t, s.n);
        if (mode == 2 || (mode == 1 && s.tiled)) {
            if (!xn)
                GLM_TRY(fold_view(v, &v->fold_x, s.n, x.cols, &ns));
            GLM_TRY(recording(v));
            GLM_TRY(glm_vk_rms_norm(v->vk, vv(ns), vv(xs), &wg, eps));
            GLM_TRY(recording(v));
            v->pending++; /* the parts' sum */
            GLM_TRY(glm_vk_matmul_f32(v->vk, vv(ls), &ww, vv(ns)));
            GLM_TRY(vk_moe_route(b, is, ws, ls, bias, p));
            continue;
        }
        GLM_TRY(ensure_zeroed(v, &v->route_counts, (uint64_t)s.n * 4));
        glm_vk_x8_out o8 = { { 0 }, false };
        bool out = xn && whole && x8_out_wanted(v, *xn, 256);
        if (out)
            GLM_TRY(x8_out_reserve(v, *xn, &o8));
        GLM_TRY(recording(v));
        glm_vk_moe_gate gate = { vv(xs), &ww, &wg, eps, &v->route_counts, 0, xn ? vv(ns) : (glm_vk_view){ 0 }, o8.y8 };
        GLM_TRY(glm_vk_moe_gate_route(v->vk, vv(is), vv(ws), vv(ls), bias ? &wb : NULL, (uint32_t)p->num_experts_per_tok,
                                      (uint32_t)p->n_group, (uint32_t)p->topk_group, p->sigmoid, p->norm_topk_prob,
                                      p->routed_scaling_factor, &gate));
        if (out)
            x8_out_tag(v, *xn);
    }
    return GLM_OK;
}

static bool vk_moe_shared_slab(glm_backend *b, const glm_layer *L)
{
    const vk_impl *v = impl(b);
    const glm_tensor *r[3] = { L->ffn_gate_exps, L->ffn_up_exps, L->ffn_down_exps };
    for (int i = 0; i < 3; i++) {
        int32_t e = r[i] ? find_weight(v, r[i]) : -1;
        if (e < 0 || r[i]->n_dims < 3 || v->weights[e].w.nslabs != (uint64_t)r[i]->ne[2] + 1)
            return false;
    }
    return true;
}

static glm_status vk_moe_combine(glm_backend *b, glm_dview y, glm_dview x, glm_dview w)
{
    vk_impl *v = impl(b);
    GLM_TRY(recording(v));
    return glm_vk_moe_combine(v->vk, vv(y), vv(x), vv(w));
}

static glm_status vk_moe_combine_add(glm_backend *b, glm_dview y, glm_dview x, glm_dview w, glm_dview a)
{
    vk_impl *v = impl(b);
    GLM_TRY(recording(v));
    return glm_vk_moe_combine_add(v->vk, vv(y), vv(x), vv(w), vv(a));
}

static glm_status eltwise(glm_backend *b, glm_vk_eltwise_op op, glm_dview y, glm_dview a, glm_dview c)
{
    vk_impl *v = impl(b);
    GLM_TRY(recording(v));
    return glm_vk_eltwise(v->vk, op, vv(y), vv(a), vv(c));
}

static glm_status vk_swiglu(glm_backend *b, glm_dview y, glm_dview g, glm_dview u) { return eltwise(b, GLM_VK_SWIGLU, y, g, u); }
static glm_status vk_add(glm_backend *b, glm_dview y, glm_dview a, glm_dview c) { return eltwise(b, GLM_VK_ADD, y, a, c); }
static glm_status vk_copy(glm_backend *b, glm_dview dst, glm_dview src) { return eltwise(b, GLM_VK_COPY, dst, src, src); }

static glm_status vk_argmax(glm_backend *b, int32_t *ids, glm_dview x)
{
    vk_impl *v = impl(b);
    GLM_TRY(ensure(v, &v->ids, (uint64_t)x.rows * 4, true));
    GLM_TRY(recording(v));
    glm_vk_view iv = { &v->ids, 0, (uint32_t)x.rows, 1, 1 };
    GLM_TRY(glm_vk_argmax(v->vk, iv, vv(x), NULL, 0));
    GLM_TRY(flush(v));
    memcpy(ids, v->ids.map, (size_t)x.rows * 4);
    return GLM_OK;
}

static glm_status vk_argmax_rows(glm_backend *b, glm_dview ids, glm_dview x, const int32_t *mask, int n_mask)
{
    vk_impl *v = impl(b);
    if (ids.dt != GLM_DT_I32 || x.dt != GLM_DT_F32 || n_mask < 0 || n_mask > (int)GLM_VK_ARGMAX_MASK)
        return glm_errorf(GLM_ERR_INVALID, "vulkan argmax_rows: ids must be I32, x F32, at most %u masked ids",
                          GLM_VK_ARGMAX_MASK);
    GLM_TRY(recording(v));
    return glm_vk_argmax(v->vk, vv(ids), vv(x), mask, (uint32_t)n_mask);
}

static glm_status vk_get_rows_dev(glm_backend *b, glm_dview y, const glm_tensor *w, glm_dview ids)
{
    vk_impl *v = impl(b);
    if (ids.dt != GLM_DT_I32 || ids.cols != 1 || ids.rows != y.rows)
        return glm_errorf(GLM_ERR_INVALID, "vulkan get_rows_dev: ids must be an I32 [%lld][1] view", (long long)y.rows);
    glm_vk_weight wt;
    GLM_TRY(weight(v, w, &wt));
    GLM_TRY(recording(v));
    return glm_vk_get_rows(v->vk, vv(y), &wt, vv(ids));
}

static const glm_backend_ops k_vk_ops = {
    .name = "vulkan",
    .destroy = vk_destroy,
    .alloc = vk_alloc,
    .alloc_host = vk_alloc_host,
    .free = vk_free,
    .upload = vk_upload,
    .download = vk_download,
    .sync = vk_sync,
    .get_rows = vk_get_rows,
    .rms_norm = vk_rms_norm,
    .matmul = vk_matmul,
    .matmul_id = vk_matmul_id,
    .rope = vk_rope,
    .kv_write = vk_kv_write,
    .mla_attention = vk_mla,
    .moe_route = vk_moe_route,
    .moe_combine = vk_moe_combine,
    .swiglu = vk_swiglu,
    .add = vk_add,
    .copy = vk_copy,
    .argmax = vk_argmax,
    .argmax_rows = vk_argmax_rows,
    .get_rows_dev = vk_get_rows_dev,
    .matmul_swiglu = vk_matmul_swiglu,
    .moe_combine_add = vk_moe_combine_add,
    .rms_norm_matmul2 = vk_rms_norm_matmul2,
    .matmul_id_combine_add = vk_matmul_id_combine_add,
    .add_rms_norm = vk_add_rms_norm,
    .rms_norm_matmul = vk_rms_norm_matmul,
    .matmul_add = vk_matmul_add,
    .kv_write_norm = vk_kv_write_norm,
    .kv_write_rope = vk_kv_write_rope,
    .moe_gate_route = vk_moe_gate_route,
    .moe_shared_slab = vk_moe_shared_slab,
    .rms_norm_matmul_rope = vk_rms_norm_matmul_rope,
    .set_runs = vk_set_runs,
};

glm_status glm_backend_vk_create(glm_backend **out, const glm_model *m, int device_index, bool validation)
{
    *out = NULL;
    glm_backend *b = calloc(1, sizeof *b);
    vk_impl *v = calloc(1, sizeof *v);
    if (!b || !v) {
        free(b);
        free(v);
        return glm_errorf(GLM_ERR_NOMEM, "vulkan: out of memory");
    }
    b->ops = &k_vk_ops;
    b->model = m;
    b->impl = v;
    glm_vk_options o = { .device_index = device_index, .validation = validation };
    glm_status s = glm_vk_create(&v->vk, &o);
    const char *x8 = getenv("GLM_VK_X8");
    v->x8_mode = x8 && *x8 ? (uint32_t)strtoul(x8, NULL, 10) : 0;
    const glm_tensor *top[] = { m->token_embd, m->output_norm, m->output };
    for (size_t i = 0; s == GLM_OK && i < 3; i++)
        if (top[i])
            s = upload_weight(v, top[i]);
    for (int l = 0; s == GLM_OK && l < m->hp.num_hidden_layers; l++)
        s = upload_layer(v, &m->layers[l]);
    if (s == GLM_OK && m->mtp)
        s = upload_layer(v, m->mtp);
    if (s != GLM_OK) {
        vk_destroy(b);
        return s;
    }
    *out = b;
    return GLM_OK;
}

struct glm_vk *glm_backend_vk_context(glm_backend *b)
{
    return b && b->ops == &k_vk_ops ? impl(b)->vk : NULL;
}

const char *glm_backend_vk_device_name(const glm_backend *b)
{
    return glm_vk_device_name(((const vk_impl *)b->impl)->vk);
}
