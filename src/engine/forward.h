/* The GLM-4.7-Flash forward pass (model-spec §2-§5), built once against backend.h: token
 * embedding, the decoder layers (MLA attention over the paged latent cache, dense or MoE
 * SwiGLU), the final norm and lm_head; and the MTP block (§5.2, engine/mtp.c) with its own
 * cache. A call runs T tokens at the next T positions: a prefill (T = prompt) and a decode
 * step (T = 1, or k + 1 when verifying k drafts) are the same call.
 * Sequences (glm_seq) share one page pool; glm_forward_step runs rows of several sequences
 * in one step (continuous batching): the matmuls see all rows together, attention reads each
 * row's own sequence. A row's result does not depend on the other rows of its step. The
 * single-sequence calls (glm_forward_eval, ..._mtp, ..._truncate) act on the bound sequence.
 * Not here: sampling (ref/sampler.h), tokens as text (tokenizer/), the kernels (backend). */
#ifndef GLM_FORWARD_H
#define GLM_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "engine/dump.h"
#include "engine/kvcache.h"
#include "model/model.h"

typedef struct glm_forward glm_forward;
typedef struct glm_seq glm_seq;

/* Positions per KV page. */
#define GLM_KV_PAGE 16

/* n_ctx: positions one sequence may hold; n_batch: most rows per step (longer inputs are
 * split into chunks of n_batch). The page pool holds n_ctx positions (one full sequence);
 * ..._pool sizes it to pool_positions instead (several sequences). The MTP cache (its own
 * pool of the same size) is created when the model has one. */
glm_status glm_forward_create(glm_forward **out, const glm_model *m, glm_backend *b, int64_t n_ctx, int n_batch);
glm_status glm_forward_create_pool(glm_forward **out, const glm_model *m, glm_backend *b, int64_t n_ctx, int n_batch,
                                   int64_t pool_positions);
void glm_forward_destroy(glm_forward *f); /* NULL is a no-op; destroy every glm_seq first */
/* n_ctx within the model's context length (max_position_embeddings), else a one-line error. */
glm_status glm_forward_check_ctx(const glm_model *m, int64_t n_ctx);
void glm_forward_set_mla_mode(glm_forward *f, glm_mla_mode mode);
/* Folds of the decoder block (used when the backend has rms_norm_matmul and matmul_add):
 * attention: attn_norm into q_a / kv_a, q_a_norm into q_b, the residual add into o_proj;
 * FFN: ffn_norm into every product that reads it, the residual adds into the last products. */
#define GLM_FOLD_ATTN 1u
#define GLM_FOLD_FFN 2u

/* Which folds (GLM_FOLD_* bits, default both) the forward uses where the backend has them;
 * every choice computes the same model (for measuring what each fold gains). */
void glm_forward_set_folds(glm_forward *f, unsigned fold);

/* Run tokens[T] at positions n_past .. n_past+T-1 of the main model.
 * logits: NULL, or host [T][vocab] when all_logits, else host [vocab] for the last row.
 * hidden: NULL or host [T][hidden]: the final-normed states (what MTP consumes, §5.2).
 * dump: NULL or a dump that receives layer.NN/..., /final_norm and /logits (T ≤ n_batch). */
glm_status glm_forward_eval(glm_forward *f, const int32_t *tokens, int T, float *logits, bool all_logits,
                            float *hidden, glm_dump *dump);
/* Greedy decoding with the token id kept on the device until the end: tokens[T] (T ≤ the
 * forward's rows a step) as glm_forward_eval runs them, then lm_head of the last row and its
 * argmax (ties to the lower index, the ids mask[0 .. n_mask) at -inf, n_mask ≤
 * GLM_ARGMAX_MASK) on the device; *id is the step's only download (its one wait). Where every
 * logit is -inf or NaN *id is 0. GLM_ERR_UNSUPPORTED for a backend without device argmax. */
glm_status glm_forward_eval_argmax(glm_forward *f, const int32_t *tokens, int T, const int32_t *mask, int n_mask,
                                   int32_t *id);
bool glm_forward_can_argmax(const glm_forward *f, int n_mask);
int64_t glm_forward_n_past(const glm_forward *f);
glm_status glm_forward_truncate(glm_forward *f, int64_t n);

/* MTP block (model-spec §5.2) on rows j = 0..T-1: row j pairs hidden[j] (the main model's
 * final-normed state at position mtp_n_past + j) with next_tokens[j], the token at the
 * following position. logits as in glm_forward_eval; dump receives mtp/eh_out, mtp/out,
 * mtp/logits and the block's layer tensors under mtp/. Fails if the model has no MTP layer. */
glm_status glm_forward_mtp(glm_forward *f, const float *hidden, const int32_t *next_tokens, int T, float *logits,
                           bool all_logits, glm_dump *dump);
bool glm_forward_has_mtp(const glm_forward *f);
int64_t glm_forward_mtp_n_past(const glm_forward *f);
glm_status glm_forward_mtp_truncate(glm_forward *f, int64_t n);

const glm_model *glm_forward_model(const glm_forward *f);

/* ---- sequences and batched steps ---- */
glm_status glm_seq_create(glm_forward *f, glm_seq **out); /* empty; holds no pages */
void glm_seq_destroy(glm_seq *s);                          /* NULL is a no-op; pages go back */
int64_t glm_seq_n_past(const glm_seq *s);
int64_t glm_seq_mtp_n_past(const glm_seq *s);
/* Hold the pages of the first n main-cache positions now, so later steps up to n cannot run
 * out of pages (fails with one line, holding what it held, when the pool is short). */
glm_status glm_seq_reserve(glm_seq *s, int64_t n);
/* Keep the first n positions of the main cache (and at most n of the MTP cache). */
glm_status glm_seq_truncate(glm_seq *s, int64_t n);
/* dst (empty) takes the first n positions of src (full pages shared, see kvcache.h), and of
 * src's MTP cache as many of them as it holds. */
glm_status glm_seq_share_prefix(glm_seq *dst, const glm_seq *src, int64_t n);
/* The sequence the single-sequence calls act on; NULL: the forward's own one. */
void glm_forward_bind(glm_forward *f, glm_seq *s);
glm_seq *glm_forward_bound(const glm_forward *f);
int glm_forward_max_rows(const glm_forward *f); /* n_batch */
int64_t glm_forward_n_ctx(const glm_forward *f);
/* Pages in use / in the pool (main cache). */
int64_t glm_forward_pages_used(const glm_forward *f);
int64_t glm_forward_pages_total(const glm_forward *f);

/* One sequence's rows in a step: tokens[n] at its next n positions. */
typedef struct glm_step_item {
    glm_seq *seq;
    const int32_t *tokens;
    int n;
    float *logits; /* NULL, or host [n][vocab] when all_logits, else [vocab] for the last row */
    bool all_logits;
    float *hidden; /* NULL or host [n][hidden]: final-normed states */
} glm_step_item;
/* One forward step over the rows of n_items distinct sequences (Σ n ≤ n_batch). Fails with
 * one line, leaving every sequence as it was, on bad ids, a context or a pool that is full. */
glm_status glm_forward_step(glm_forward *f, const glm_step_item *items, int n_items);

/* Speculative decoding with MTP drafts (model-spec §5.3, §5.4), mtp.c. Each step verifies
 * up to n_draft drafts in one main-model forward of n_draft + 1 rows: [last, d_1 .. d_k].
 * The drafts are a chain: d_1 comes from the MTP row of the last final position, d_{i+1}
 * from one more MTP row fed the MTP block's own output state for d_i at the next position
 * (§5.3 "k > 1"); those chain rows leave the MTP cache once the chain is drafted. The state
 * is taken after shared_head.norm (llama.cpp's choice; vLLM feeds it before), the same kind
 * of state as the main model's final-normed h that the block is otherwise fed (§5.2).
 * Invariant between steps: the main cache holds every final token except `last` (the most
 * recent output); the MTP cache holds one row per main position with a final hidden state;
 * `draft` (= chain[0]) and chain[1 .. n_chain) are the guesses for the tokens after `last`.
 * A caller (or a test forcing the accept path) may overwrite `draft` and chain[1 ..) before
 * a step. Greedy output equals plain greedy decoding for every n_draft: argmax with ties to
 * the lower index, after masking the ids in mask[n_mask] to -inf. */
#define GLM_MTP_MAX_DRAFT 8
typedef struct glm_mtp_greedy {
    glm_forward *f;
    float *logits;  /* [n_draft + 2][vocab]: verify rows 0..n_draft, MTP row n_draft + 1 */
    float *hidden;  /* [max(n_prompt, n_draft + 1)][hidden] */
    float *hchain;  /* [hidden]: the MTP output state that drafts the next chain link */
    int32_t *next;  /* [n_prompt] */
    const int32_t *mask;
    int n_mask;
    int32_t last, draft;
    long long drafts, accepted;
    long long steps;  /* verify forwards: tokens per forward = (steps + accepted) / steps */
    int n_draft;      /* drafts per step (the start's n_draft; 1 for the plain start calls) */
    int n_chain;      /* drafts the next step verifies: n_draft, fewer where the context ends */
    int32_t chain[GLM_MTP_MAX_DRAFT];
    /* sampled mode (glm_mtp_sampled_start): NULL smp means greedy */
    struct glm_sampler *smp;
    float *probs;   /* [2·n_draft + 1][vocab]: target rows 0..n_draft, then the draft
                     * distribution q_i of chain[i] in row n_draft + 1 + i */
    int32_t *hist;  /* prompt + final tokens, for the sampler's penalties */
    int n_hist, hist_cap;
    int32_t in[GLM_MTP_MAX_DRAFT + 1]; /* the verify rows [last, chain] of the step under way */
    /* greedy steps with one draft run with their token ids on the device where the backend
     * can (mtp.c fused_step; fused_off, or GLM_MTP_FUSED=0 at start, keeps the host round
     * trip): the verify's and the MTP rows' argmax ids, allocated on first use */
    bool fused_off;
    glm_dview dev_t, dev_m;
    int64_t pos;    /* where they go */
} glm_mtp_greedy;
/* Prefill prompt[n], pick the first token (g->last) and the first n_draft drafts. */
glm_status glm_mtp_greedy_start_n(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                  const int32_t *mask, int n_mask, int n_draft);
glm_status glm_mtp_greedy_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n, const int32_t *mask,
                                int n_mask); /* n_draft 1 */
/* Speculative sampling (model-spec §5.4): each draft is drawn from its MTP distribution q_i
 * and accepted with probability min(1, p_i/q_i); the first rejection is replaced by a draw
 * from normalize(max(0, p_i - q_i)) and ends the step; when all are accepted a bonus token is
 * drawn from the next p. p and q both go through smp's transforms (temperature, top-k/p,
 * min-p, penalties over prompt + output + the drafts before), so the output is distributed as
 * plain sampling. All random numbers come from smp's own stream. max_new bounds the tokens
 * generated. */
glm_status glm_mtp_sampled_start_n(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                   const int32_t *mask, int n_mask, struct glm_sampler *smp, int max_new,
                                   int n_draft);
glm_status glm_mtp_sampled_start(glm_mtp_greedy *g, glm_forward *f, const int32_t *prompt, int n,
                                 const int32_t *mask, int n_mask, struct glm_sampler *smp, int max_new);
/* Verify the drafts: out[0..*n_out) are the next final tokens (1 .. n_draft + 1; out must
 * hold n_draft + 1); updates last and the drafts. */
glm_status glm_mtp_greedy_step(glm_mtp_greedy *g, int32_t *out, int *n_out);
/* The same step in two halves around a batched glm_forward_step, for a sequence decoding
 * beside others: *it ← the n_chain + 1 verify rows of sequence s (whose caches g started),
 * then, once a step has run it, the acceptance, the MTP rows and the next chain. */
glm_status glm_mtp_verify_item(glm_mtp_greedy *g, glm_seq *s, glm_step_item *it);
glm_status glm_mtp_after_verify(glm_mtp_greedy *g, glm_seq *s, int32_t *out, int *n_out);
/* "; mtp accepted A of D drafts (R%), T tokens per forward" for the summaries. */
void glm_mtp_summary(char *buf, size_t cap, long long drafts, long long accepted, long long steps);
void glm_mtp_greedy_free(glm_mtp_greedy *g);

/* The `glm47 eval` dump (ARCHITECTURE.md schema, golden/dev/FIXTURES.md semantics) of one
 * prefill of tokens[T] into `path`: /tokens, /layer.NN/..., /final_norm, /logits, and the MTP
 * rows (when the model has them) /mtp/next_tokens, /mtp/eh_out, /mtp/out, /mtp/logits with
 * row j pairing final_norm[j] with token j+1 and the last row with the greedy next token.
 * The file appears only when everything succeeded. (Implemented in engine/dump.c.) */
glm_status glm_dump_eval(const glm_model *m, glm_backend *b, const int32_t *tokens, int T, const char *path,
                         glm_mla_mode mode);

/* ---- engine-internal (forward.c ↔ mtp.c) ---- */
/* Scratch activations, each [n_batch][...] (experts [n_batch·k][...]). */
typedef struct glm_fwd_bufs {
    glm_dview x, a, qa, q, kva, attn, t1, fnorm, cat, logits;
    glm_dview qkva; /* with rms_norm_matmul2: qa and kva as its columns [q_lora | kv_lora + rope] */
    glm_dview meta, mtp_meta;   /* I32 step rows (glm_kv_rows): main and MTP caches */
    glm_dview amax;             /* I32 [1][1]: glm_forward_eval_argmax's id (on first use) */
    glm_dview dg, du;           /* dense FFN [B][intermediate] */
    glm_dview rl, ids, rw;      /* router logits [B][E], ids I32 [B][k], weights [B][k] */
    glm_dview eg, eu, ed;       /* experts [B·k][moe_inter], [B·k][hidden] */
    glm_dview sg, su, sd;       /* shared expert [B][moe_inter·n_shared], [B][hidden] */
} glm_fwd_bufs;

struct glm_seq {
    glm_forward *f;
    glm_kvseq kv, mtp;
};

struct glm_forward {
    const glm_model *m;
    glm_backend *b;
    glm_kvpool *pool, *mtp_pool;
    glm_seq own, *cur; /* cur: the bound sequence */
    int64_t n_ctx;
    int n_batch;
    glm_mla_mode mla_mode;
    unsigned fold; /* GLM_FOLD_* bits: which norms / residual adds go into the products */
    glm_fwd_bufs s;
    int32_t *h_meta; /* host staging of the step rows */
    int64_t meta_cap;
    int32_t *h_tok; /* [n_batch] */
    glm_step_item *h_items; /* [n_batch]: a step's items, the short ones first */
    int32_t *h_runs;        /* [n_batch]: rows per item for the backend's set_runs */
    int64_t *h_ends;        /* [n_batch]: and their key bounds */
    float *h_logits; /* host staging of a step's logits rows (grows) */
    int64_t h_logits_n;
};

/* Build and upload the step rows (glm_kv_rows) of items into meta (mtp: their MTP caches,
 * each item at its MTP length) after reserving the pages they need, and give the backend the
 * items' row counts (set_runs) for the step's products. */
glm_status glm_fwd_rows(glm_forward *f, const glm_step_item *items, int n_items, bool mtp, glm_kv_rows *r);
/* One decoder block (§2.2) on x[T][hidden] in place, rows r, cache layer kv of the pool;
 * dumps under "<prefix>layer.NN/" (or "<prefix>" when layer_idx < 0). */
glm_status glm_fwd_block(glm_forward *f, const glm_layer *L, glm_dview kv, int T, const glm_kv_rows *r, glm_dump *d,
                         const char *prefix, int layer_idx);
/* Every id in [0, vocab) or a one-line error naming the first bad one. */
glm_status glm_forward_check_ids(const glm_forward *f, const int32_t *ids, int n);
/* The backend's set_runs, where it has one (n 0: forget them). */
glm_status glm_fwd_set_runs(glm_forward *f, const int32_t *runs, const int64_t *ends, int n);
/* logits rows [T] from the rows of src: all to host logits [T][V], or the last to [V]. */
glm_status glm_fwd_logits_out(glm_forward *f, glm_dview lg, float *logits, bool all_logits);

#endif
