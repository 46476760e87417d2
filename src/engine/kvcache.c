/* Page pool, free list, reference counts and per-sequence page lists (see kvcache.h). */
#include "engine/kvcache.h"

#include <stdlib.h>
#include <string.h>

glm_status glm_kvpool_create(glm_kvpool **out, glm_backend *b, int n_layers, int64_t n_pages, int page_size,
                             int kv_lora_rank, int qk_rope_head_dim)
{
    *out = NULL;
    if (n_layers <= 0 || n_pages <= 0 || n_pages > INT32_MAX || page_size <= 0 || kv_lora_rank <= 0 ||
        qk_rope_head_dim <= 0)
        return glm_errorf(GLM_ERR_INVALID, "kv cache: bad shape (%d layers, %lld pages of %d)", n_layers,
                          (long long)n_pages, page_size);
    glm_kvpool *p = calloc(1, sizeof *p);
    if (!p || !(p->layers = calloc((size_t)n_layers, sizeof *p->layers)) ||
        !(p->free_ids = malloc(sizeof(int32_t) * (size_t)n_pages)) ||
        !(p->refs = calloc((size_t)n_pages, sizeof(int32_t)))) {
        glm_kvpool_destroy(p);
        return glm_errorf(GLM_ERR_NOMEM, "kv cache: out of memory");
    }
    p->b = b;
    p->page_size = page_size;
    p->width = kv_lora_rank + qk_rope_head_dim;
    p->n_pages = n_pages;
    for (int64_t i = 0; i < n_pages; i++) /* pop order 0, 1, 2, ... */
        p->free_ids[i] = (int32_t)(n_pages - 1 - i);
    p->n_free = n_pages;
    for (int l = 0; l < n_layers; l++) {
        glm_status st = b->ops->alloc(b, &p->layers[l], GLM_DT_F32, n_pages * page_size, p->width);
        if (st != GLM_OK) {
            glm_kvpool_destroy(p);
            return glm_error_prefix(st, "kv cache (%lld pages of %d positions)", (long long)n_pages, page_size);
        }
        p->n_layers = l + 1;
    }
    *out = p;
    return GLM_OK;
}

void glm_kvpool_destroy(glm_kvpool *p)
{
    if (!p)
        return;
    for (int l = 0; l < p->n_layers; l++)
        p->b->ops->free(p->b, p->layers[l].buf);
    free(p->layers);
    free(p->free_ids);
    free(p->refs);
    free(p);
}

int64_t glm_kvpool_pages_used(const glm_kvpool *p) { return p ? p->n_pages - p->n_free : 0; }

static void page_unref(glm_kvpool *p, int32_t id)
{
    if (--p->refs[id] == 0)
        p->free_ids[p->n_free++] = id;
}

static int32_t page_take(glm_kvpool *p)
{
    int32_t id = p->free_ids[--p->n_free];
    p->refs[id] = 1;
    return id;
}

static glm_status exhausted(const glm_kvpool *p, int64_t want)
{
    return glm_errorf(GLM_ERR_NOMEM, "kv cache: the pool is exhausted (%lld more pages wanted, %lld of %lld free)",
                      (long long)want, (long long)p->n_free, (long long)p->n_pages);
}

static glm_status grow_list(glm_kvseq *s, int64_t n_pages)
{
    if (n_pages <= s->cap)
        return GLM_OK;
    int64_t cap = s->cap ? s->cap : 16;
    while (cap < n_pages)
        cap *= 2;
    int32_t *np = realloc(s->pages, sizeof(int32_t) * (size_t)cap);
    if (!np)
        return glm_errorf(GLM_ERR_NOMEM, "kv cache: out of memory for a page list");
    s->pages = np;
    s->cap = cap;
    return GLM_OK;
}

glm_status glm_kvseq_init(glm_kvseq *s, glm_kvpool *p, int64_t max_ctx)
{
    memset(s, 0, sizeof *s);
    if (max_ctx <= 0)
        return glm_errorf(GLM_ERR_INVALID, "kv cache: bad context %lld", (long long)max_ctx);
    s->pool = p;
    s->max_ctx = max_ctx;
    return GLM_OK;
}

void glm_kvseq_release(glm_kvseq *s)
{
    for (int64_t i = 0; s->pool && i < s->n_held; i++)
        page_unref(s->pool, s->pages[i]);
    free(s->pages);
    s->pages = NULL;
    s->n_held = s->cap = s->n = 0;
}

glm_status glm_kvseq_reserve(glm_kvseq *s, int64_t n)
{
    glm_kvpool *p = s->pool;
    if (n > s->max_ctx)
        return glm_errorf(GLM_ERR_INVALID, "kv cache: %lld positions exceed the context of %lld", (long long)n,
                          (long long)s->max_ctx);
    int64_t need = (n + p->page_size - 1) / p->page_size;
    if (need <= s->n_held)
        return GLM_OK;
    if (need - s->n_held > p->n_free)
        return exhausted(p, need - s->n_held);
    GLM_TRY(grow_list(s, need));
    while (s->n_held < need)
        s->pages[s->n_held++] = page_take(p);
    return GLM_OK;
}

/* Copy rows [0, rows) of page `from` into page `to` in every layer. */
static glm_status copy_rows(glm_kvpool *p, int32_t to, int32_t from, int64_t rows)
{
    for (int l = 0; l < p->n_layers; l++) {
        glm_dview d = glm_dview_rows(p->layers[l], (int64_t)to * p->page_size, rows);
        glm_dview sv = glm_dview_rows(p->layers[l], (int64_t)from * p->page_size, rows);
        GLM_TRY(p->b->ops->copy(p->b, d, sv));
    }
    return GLM_OK;
}

glm_status glm_kvseq_truncate(glm_kvseq *s, int64_t n)
{
    glm_kvpool *p = s->pool;
    if (n < 0 || n > s->n)
        return glm_errorf(GLM_ERR_INVALID, "kv cache: cannot truncate %lld positions to %lld", (long long)s->n,
                          (long long)n);
    int64_t keep = (n + p->page_size - 1) / p->page_size;
    while (s->n_held > keep)
        page_unref(p, s->pages[--s->n_held]);
    /* the page that will receive position n must be this sequence's alone */
    if (n % p->page_size && p->refs[s->pages[keep - 1]] > 1) {
        if (!p->n_free)
            return exhausted(p, 1);
        int32_t id = page_take(p);
        glm_status st = copy_rows(p, id, s->pages[keep - 1], n % p->page_size);
        if (st != GLM_OK) {
            page_unref(p, id);
            return st;
        }
        page_unref(p, s->pages[keep - 1]);
        s->pages[keep - 1] = id;
    }
    s->n = n;
    return GLM_OK;
}

glm_status glm_kvseq_share_prefix(glm_kvseq *dst, const glm_kvseq *src, int64_t n)
{
    glm_kvpool *p = dst->pool;
    if (src->pool != p || dst->n_held || n < 0 || n > src->n || n > dst->max_ctx)
        return glm_errorf(GLM_ERR_INVALID, "kv cache: cannot share %lld positions of a %lld-position sequence", (long long)n,
                          (long long)src->n);
    int64_t full = n / p->page_size, part = n % p->page_size;
    if (part && !p->n_free)
        return exhausted(p, 1);
    GLM_TRY(grow_list(dst, full + (part ? 1 : 0)));
    for (int64_t i = 0; i < full; i++) {
        dst->pages[i] = src->pages[i];
        p->refs[src->pages[i]]++;
    }
    dst->n_held = full;
    if (part) {
        int32_t id = page_take(p);
        dst->pages[dst->n_held++] = id;
        glm_status st = copy_rows(p, id, src->pages[full], part);
        if (st != GLM_OK) {
            glm_kvseq_release(dst);
            return st;
        }
    }
    dst->n = n;
    return GLM_OK;
}
