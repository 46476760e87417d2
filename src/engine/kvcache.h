/* The paged latent KV cache of MLA (model-spec §2.3 step 6, §2.5). Per layer and position
 * MLA keeps only c (kv_a_norm output, kv_lora_rank wide) and kr (the shared RoPE key after
 * rotation, qk_rope_head_dim wide), stored side by side as one row [c | kr].
 *
 * A pool holds, per layer, one backend buffer of n_pages fixed-size pages of page_size rows;
 * page p covers rows [p·page_size, (p+1)·page_size) of every layer. A sequence owns a page
 * list (position i lives in page pages[i / page_size], row i % page_size); pages come from
 * the pool's free list as the sequence grows and go back when it shrinks or ends. Pages are
 * reference counted so that sequences can share the full pages of a common prefix; a page
 * is written only by a sequence that holds it alone (the partial last page of a prefix is
 * copied, never shared), so sharing never changes what another sequence reads.
 * Not here: what writes the rows (engine/forward.c) or attention over them (backend). */
#ifndef GLM_KVCACHE_H
#define GLM_KVCACHE_H

#include "backend/backend.h"

typedef struct glm_kvpool {
    glm_backend *b;
    int n_layers, page_size, width; /* width = kv_lora_rank + qk_rope_head_dim */
    int64_t n_pages;
    glm_dview *layers; /* n_layers views [n_pages·page_size][width] */
    int32_t *free_ids; /* stack of free page ids */
    int64_t n_free;
    int32_t *refs; /* per page: sequences holding it */
} glm_kvpool;

typedef struct glm_kvseq {
    glm_kvpool *pool;
    int64_t n;       /* positions filled */
    int64_t max_ctx; /* positions this sequence may hold */
    int32_t *pages;  /* page ids, n_held of them */
    int64_t n_held, cap;
} glm_kvseq;

glm_status glm_kvpool_create(glm_kvpool **out, glm_backend *b, int n_layers, int64_t n_pages, int page_size,
                             int kv_lora_rank, int qk_rope_head_dim);
void glm_kvpool_destroy(glm_kvpool *p); /* NULL is a no-op; every sequence must be gone */
int64_t glm_kvpool_pages_used(const glm_kvpool *p);

/* An empty sequence of at most max_ctx positions (holds no pages yet). */
glm_status glm_kvseq_init(glm_kvseq *s, glm_kvpool *p, int64_t max_ctx);
/* Give every page back (the sequence is empty afterwards and may be reused). */
void glm_kvseq_release(glm_kvseq *s);
/* Hold pages for positions [0, n): fails with one line, holding what it held before, when
 * n passes max_ctx or the pool has too few free pages. */
glm_status glm_kvseq_reserve(glm_kvseq *s, int64_t n);
/* Keep the first n positions (n ≤ current length); pages past them go back to the pool. */
glm_status glm_kvseq_truncate(glm_kvseq *s, int64_t n);
/* dst (empty, same pool) takes the first n positions of src: full pages are shared, the
 * rows of a partial last page are copied into a page of dst's own. */
glm_status glm_kvseq_share_prefix(glm_kvseq *dst, const glm_kvseq *src, int64_t n);

#endif
