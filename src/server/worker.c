/* The worker: the one thread that runs the model. It decodes up to max_batch requests
 * together (continuous batching): between two forward steps it takes queued jobs, in order,
 * into free slots, and each step runs every slot's next rows at once (a prompt chunk, or
 * the last sampled token). A slot samples until an end-of-generation id of the model, a stop
 * string or max_tokens, writes the response body into its job (one JSON object, or SSE
 * chunks as they are decided) and leaves; its KV pages stay in a small cache of finished
 * sequences so that a later prompt with the same prefix reuses them (shared pages).
 * A job is admitted only when the pages for its whole request (prompt + max_tokens) can be
 * held, evicting cached sequences oldest first; so a running step never runs out of pages.
 * With serve --mtp, a request that can use MTP drafts is prefilled when it is admitted (with
 * its MTP rows) and then gives 2 verify rows [last, draft] to each batched step.
 * Stop strings: generated text that could still be the start of a stop string is held back,
 * so no client ever sees text that a stop string later removes. logprobs: logprobs.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv_priv.h"
#include "tokenizer/chat.h"

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool srv_buf_add(srv_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    atomic_init(&j->cancelled, false);
    return j;
}

void srv_job_unref(srv_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left)
        return;
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    cJSON_Delete(j->tools);
    free(j->out.p);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

bool srv_job_write(srv_job *j, const char *s, size_t n)
{
    pthread_mutex_lock(&j->mu);
    if (j->out_pos == j->out.len) /* everything sent: reuse the buffer from its start */
        j->out_pos = j->out.len = 0;
    bool ok = srv_buf_add(&j->out, s, n);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return ok;
}

void srv_job_finish(srv_job *j, int http_status)
{
    pthread_mutex_lock(&j->mu);
    j->http_status = http_status;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

bool srv_enqueue(srv *s, srv_job *j)
{
    pthread_mutex_lock(&s->qmu);
    bool ok = !atomic_load(&s->stopping) && s->qlen < s->o.queue_max;
    if (ok) {
        pthread_mutex_lock(&j->mu);
        j->refs++;
        pthread_mutex_unlock(&j->mu);
        j->t_queued = srv_now();
        j->next = NULL;
        if (s->qtail)
            s->qtail->next = j;
        else
            s->qhead = j;
        s->qtail = j;
        s->qlen++;
        pthread_cond_signal(&s->qcv);
    }
    pthread_mutex_unlock(&s->qmu);
    return ok;
}

int srv_queue_depth(srv *s)
{
    pthread_mutex_lock(&s->qmu);
    int n = s->qlen;
    pthread_mutex_unlock(&s->qmu);
    return n;
}

/* ---- one generation ---- */

typedef struct gen {
    srv *s;
    srv_job *j;
    srv_buf text;  /* generated text (valid UTF-8), cut at a stop string */
    size_t sent;   /* bytes of text passed on to the stream */
    size_t hold;   /* longest stop string - 1 */
    int n_gen, n_calls;
    int n_reused; /* prompt tokens whose KV came from an earlier request */
    bool cut; /* ended by a stop string */
    const char *finish;
    glm_chat_stream *cs;
    glm_detok_stream *ds;
    double t_last;
    const float *logits; /* the row the last token was sampled from (logprobs) */
    srv_lp lp; /* logprobs (logprobs.c); lp.t NULL when not asked for */
    bool mtp;  /* decoded with MTP drafts (spec_start, then verify rows in step) */
    long long drafts, accepted, steps;
} gen;

/* One running request: its sequence, sampler and detokenizer (all made once, at load). */
typedef struct srv_slot {
    srv_job *j; /* NULL: free */
    gen g;
    glm_seq *seq;
    glm_sampler *smp;
    glm_detok_stream *ds;
    float *logits;  /* [vocab] */
    int32_t *hist;  /* [n_ctx + 2]: the prompt, then the generated tokens */
    int n_done;     /* prompt tokens in the cache */
    int32_t last;   /* the token the next decode step feeds */
    bool spec;      /* decodes with MTP drafts (sg) */
    glm_mtp_greedy sg;
    int64_t n_valid, mtp_valid; /* at the end: positions that match hist, MTP rows in step */
} srv_slot;

/* A finished request's sequence, kept for prefix reuse. */
typedef struct srv_cached {
    glm_seq *seq;
    int32_t *toks; /* [n_ctx + 2]: the tokens of the cached positions */
    int64_t n;
    int64_t mtp_valid; /* leading MTP rows that pair toks[j] with toks[j + 1] */
    uint64_t stamp;    /* 0: empty; else larger is newer */
} srv_cached;

static void add_str_n(cJSON *o, const char *key, const char *s, size_t n)
{
    char *c = strndup(s, n);
    cJSON_AddStringToObject(o, key, c ? c : "");
    free(c);
}

/* Append bytes, replacing any that are not valid UTF-8 with U+FFFD (JSON needs UTF-8). */
static bool text_add(srv_buf *b, const char *s, size_t n)
{
    while (n) {
        size_t v = glm_utf8_valid_prefix((const uint8_t *)s, n);
        if (!srv_buf_add(b, s, v))
            return false;
        s += v, n -= v;
        if (n) {
            if (!srv_buf_add(b, "\xEF\xBF\xBD", 3))
                return false;
            s++, n--;
        }
    }
    return true;
}

static void sse_send(gen *g, cJSON *root)
{
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return;
    srv_job_write(g->j, "data: ", 6);
    srv_job_write(g->j, s, strlen(s));
    srv_job_write(g->j, "\n\n", 2);
    free(s);
}

/* A chunk with one choice; *choice receives it. */
static cJSON *chunk_new(gen *g, cJSON **choice)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", g->j->id);
    cJSON_AddStringToObject(root, "object", g->j->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)g->j->created);
    cJSON_AddStringToObject(root, "model", g->s->model_name);
    cJSON *arr = cJSON_AddArrayToObject(root, "choices");
    if (choice) {
        *choice = cJSON_CreateObject();
        cJSON_AddNumberToObject(*choice, "index", 0);
        cJSON_AddItemToArray(arr, *choice);
    }
    return root;
}

static cJSON *call_json(gen *g, const glm_chat_call_out *c, int index)
{
    char id[96];
    snprintf(id, sizeof id, "call_%s_%d", g->j->id, index);
    cJSON *tc = cJSON_CreateObject();
    if (index >= 0 && g->j->stream)
        cJSON_AddNumberToObject(tc, "index", index);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", c->name);
    cJSON_AddStringToObject(fn, "arguments", c->arguments);
    return tc;
}

/* choice.logprobs: a stream chunk carries the entries not yet sent, the whole answer all of
 * them; null when not asked for (or nothing is pending). */
static void add_logprobs(gen *g, cJSON *choice)
{
    srv_lp *l = &g->lp;
    if (!l->t || (g->j->stream && l->sent == l->n)) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    int from = g->j->stream ? l->sent : 0;
    cJSON_AddItemToObject(choice, "logprobs", srv_lp_json(l, g->s->tok, g->j->kind == SRV_CHAT, from, l->n));
    l->sent = l->n;
}

static glm_status on_chat_event(void *user, const glm_chat_event *ev)
{
    gen *g = user;
    cJSON *choice, *root = chunk_new(g, &choice), *delta = cJSON_AddObjectToObject(choice, "delta");
    if (ev->kind == GLM_CHAT_EV_TOOL_CALL)
        cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"), call_json(g, ev->call, g->n_calls++));
    else
        add_str_n(delta, ev->kind == GLM_CHAT_EV_REASONING ? "reasoning_content" : "content", ev->text, ev->len);
    add_logprobs(g, choice);
    cJSON_AddNullToObject(choice, "finish_reason");
    sse_send(g, root);
    return GLM_OK;
}

/* Pass text[sent..upto) on: to the chat parser's stream, or as a completion chunk. */
static glm_status pass_on(gen *g, size_t upto)
{
    if (upto <= g->sent)
        return GLM_OK;
    const char *p = g->text.p + g->sent;
    size_t n = upto - g->sent;
    g->sent = upto;
    if (!g->j->stream)
        return GLM_OK;
    if (g->j->kind == SRV_CHAT)
        return glm_chat_stream_feed(g->cs, p, n, on_chat_event, g);
    cJSON *choice, *root = chunk_new(g, &choice);
    add_str_n(choice, "text", p, n);
    add_logprobs(g, choice);
    cJSON_AddNullToObject(choice, "finish_reason");
    sse_send(g, root);
    return GLM_OK;
}

/* After new text: cut at the earliest stop string (→ finished), else pass on what can no
 * longer become part of one (never splitting a UTF-8 character). */
static glm_status after_text(gen *g, bool final)
{
    const srv_job *j = g->j;
    char *best = NULL;
    for (int i = 0; i < j->n_stop; i++) {
        char *hit = memmem(g->text.p + g->sent, g->text.len - g->sent, j->stop[i], strlen(j->stop[i]));
        if (hit && (!best || hit < best))
            best = hit;
    }
    if (best) {
        g->text.len = (size_t)(best - g->text.p);
        g->text.p[g->text.len] = 0;
        g->finish = "stop";
        g->cut = true;
        return pass_on(g, g->text.len);
    }
    size_t upto = g->text.len;
    if (!final && g->hold) {
        upto = upto > g->hold ? upto - g->hold : 0;
        while (upto > g->sent && ((uint8_t)g->text.p[upto] & 0xC0) == 0x80)
            upto--;
    }
    return pass_on(g, upto);
}

static bool is_eog(const glm_model *m, int32_t t)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == t)
            return true;
    return false;
}

/* Record one sampled token; sets g->finish when generation ends. */
static glm_status take_token(gen *g, int32_t t, int32_t *hist, int n_hist)
{
    srv *s = g->s;
    double now = srv_now();
    if (is_eog(s->m, t)) {
        g->finish = "stop";
        return GLM_OK;
    }
    if (g->lp.t) /* before any mask but ignore_eos's: the raw distribution of this step */
        GLM_TRY(srv_lp_add(&g->lp, g->logits, s->m->hp.vocab_size, t, g->text.len));
    hist[n_hist] = t;
    if (g->n_gen++ == 0)
        srv_metrics_ttft(&s->met, now - g->j->t_queued);
    else
        srv_metrics_tpot(&s->met, now - g->t_last);
    g->t_last = now;
    const char *txt;
    size_t len;
    if (glm_detok_stream_feed(g->ds, t, &txt, &len) != GLM_OK) {
        glm_error_clear(); /* an id without a token (padding rows of the vocabulary) prints nothing */
        len = 0;
    }
    if (!text_add(&g->text, txt, len))
        return glm_errorf(GLM_ERR_NOMEM, "out of memory");
    GLM_TRY(after_text(g, false));
    if (!g->finish && g->n_gen >= g->j->max_tokens)
        g->finish = "length";
    return GLM_OK;
}

static void add_usage(cJSON *root, const gen *g)
{
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", g->j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", g->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", g->j->n_prompt + g->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", g->n_reused);
    if (g->mtp) { /* OpenAI's names for predicted tokens that were kept / thrown away */
        d = cJSON_AddObjectToObject(u, "completion_tokens_details");
        cJSON_AddNumberToObject(d, "accepted_prediction_tokens", (double)g->accepted);
        cJSON_AddNumberToObject(d, "rejected_prediction_tokens", (double)(g->drafts - g->accepted));
    }
}

static void stream_end(gen *g)
{
    cJSON *choice, *root = chunk_new(g, &choice);
    if (g->j->kind == SRV_CHAT)
        cJSON_AddObjectToObject(choice, "delta");
    else
        cJSON_AddStringToObject(choice, "text", "");
    add_logprobs(g, choice);
    cJSON_AddStringToObject(choice, "finish_reason", g->finish);
    sse_send(g, root);
    if (g->j->include_usage) {
        root = chunk_new(g, NULL);
        add_usage(root, g);
        sse_send(g, root);
    }
    srv_job_write(g->j, "data: [DONE]\n\n", 14);
}

/* The whole non-streaming answer. */
static glm_status full_response(gen *g, char **out)
{
    glm_chat_parsed *p = NULL;
    cJSON *choice, *root = chunk_new(g, &choice);
    cJSON_ReplaceItemInObject(root, "object",
                              cJSON_CreateString(g->j->kind == SRV_CHAT ? "chat.completion" : "text_completion"));
    if (g->j->kind == SRV_CHAT) {
        glm_status st = glm_chat_parse(&p, g->text.p ? g->text.p : "", g->text.len, g->j->thinking, g->j->tools);
        if (st != GLM_OK) {
            cJSON_Delete(root);
            return st;
        }
        cJSON *msg = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        if (p->n_calls && !p->content[0])
            cJSON_AddNullToObject(msg, "content");
        else
            cJSON_AddStringToObject(msg, "content", p->content);
        if (p->reasoning[0])
            cJSON_AddStringToObject(msg, "reasoning_content", p->reasoning);
        if (p->n_calls) {
            cJSON *arr = cJSON_AddArrayToObject(msg, "tool_calls");
            for (size_t i = 0; i < p->n_calls; i++)
                cJSON_AddItemToArray(arr, call_json(g, &p->calls[i], (int)i));
            if (!strcmp(g->finish, "stop"))
                g->finish = "tool_calls";
        }
    } else {
        cJSON_AddStringToObject(choice, "text", g->text.p ? g->text.p : "");
    }
    add_logprobs(g, choice);
    cJSON_AddStringToObject(choice, "finish_reason", g->finish);
    add_usage(root, g);
    glm_chat_parsed_destroy(p);
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *out ? GLM_OK : glm_errorf(GLM_ERR_NOMEM, "out of memory");
}

static void fail_job(srv_job *j, int http, const char *type, const char *msg)
{
    srv_err e;
    srv_err_set(&e, http, type, NULL, NULL, "%s", msg);
    char *body = srv_err_json(&e);
    if (body) {
        if (j->stream) /* the 200 is already on its way: the error becomes the last event */
            srv_job_write(j, "data: ", 6);
        srv_job_write(j, body, strlen(body));
        if (j->stream)
            srv_job_write(j, "\n\ndata: [DONE]\n\n", 16);
    }
    free(body);
    srv_job_finish(j, http);
}

/* ---- slots, the prefix cache, the scheduler ---- */

glm_status srv_slots_create(srv *s)
{
    const glm_model *m = s->m;
    s->slots = calloc((size_t)s->max_batch, sizeof *s->slots);
    s->n_cache = s->max_batch;
    s->cache = calloc((size_t)s->n_cache, sizeof *s->cache);
    if (!s->slots || !s->cache)
        return glm_errorf(GLM_ERR_NOMEM, "serve: out of memory for %d slots", s->max_batch);
    glm_sampler_params sp = glm_sampler_params_default();
    for (int i = 0; i < s->max_batch; i++) {
        srv_slot *sl = &s->slots[i];
        GLM_TRY(glm_seq_create(s->f, &sl->seq));
        GLM_TRY(glm_sampler_create(&sl->smp, &sp, m->hp.vocab_size));
        GLM_TRY(glm_detok_stream_create(&sl->ds, s->tok));
        sl->logits = malloc(sizeof(float) * (size_t)m->hp.vocab_size);
        sl->hist = malloc(sizeof(int32_t) * (size_t)(s->n_ctx + 2));
        if (!sl->logits || !sl->hist)
            return glm_errorf(GLM_ERR_NOMEM, "serve: out of memory for %lld context positions", (long long)s->n_ctx);
    }
    for (int i = 0; i < s->n_cache; i++) {
        GLM_TRY(glm_seq_create(s->f, &s->cache[i].seq));
        if (!(s->cache[i].toks = malloc(sizeof(int32_t) * (size_t)(s->n_ctx + 2))))
            return glm_errorf(GLM_ERR_NOMEM, "serve: out of memory for the prefix cache");
    }
    atomic_store(&s->kv_total, glm_forward_pages_total(s->f));
    return GLM_OK;
}

void srv_slots_destroy(srv *s)
{
    for (int i = 0; s->slots && i < s->max_batch; i++) {
        srv_slot *sl = &s->slots[i];
        glm_seq_destroy(sl->seq);
        glm_sampler_destroy(sl->smp);
        glm_detok_stream_destroy(sl->ds);
        free(sl->logits), free(sl->hist);
    }
    for (int i = 0; s->cache && i < s->n_cache; i++) {
        glm_seq_destroy(s->cache[i].seq);
        free(s->cache[i].toks);
    }
    free(s->slots), free(s->cache);
    s->slots = NULL, s->cache = NULL;
}

static void publish_counts(srv *s)
{
    int n = 0;
    for (int i = 0; i < s->max_batch; i++)
        n += s->slots[i].j != NULL;
    atomic_store(&s->running, n);
    atomic_store(&s->kv_used, glm_forward_pages_used(s->f));
}

/* Drop the oldest cached sequence; false when the cache is empty. */
static bool evict_oldest(srv *s)
{
    srv_cached *old = NULL;
    for (int i = 0; i < s->n_cache; i++)
        if (s->cache[i].stamp && (!old || s->cache[i].stamp < old->stamp))
            old = &s->cache[i];
    if (!old)
        return false;
    glm_seq_truncate(old->seq, 0);
    old->stamp = 0, old->n = old->mtp_valid = 0;
    return true;
}

/* ---- speculative decoding with the MTP layer (serve --mtp) ----
 * Greedy requests decode with MTP greedy draft/verify (engine/mtp.c: the plain greedy tokens
 * exactly); sampled ones with speculative sampling (the plain sampling distribution, though
 * not the plain draws of a seed). Not used for requests that ask for logprobs (the verify
 * rows are not exposed) or logit_bias, or for greedy requests with penalties (MTP greedy
 * takes the plain argmax). Such a request runs alone, on its slot's sequence bound to the forward pass. */
static bool penalties_on(const glm_sampler_params *p)
{
    return p->presence_penalty != 0 || p->frequency_penalty != 0 || p->repetition_penalty != 1;
}

static bool spec_usable(const srv *s, const srv_job *j)
{
    return s->o.mtp && j->logprobs < 0 && j->n_bias == 0 && !(j->sp.temperature <= 0 && penalties_on(&j->sp));
}

/* Prefill an admitted MTP slot (the prompt from sl->n_done on) with its MTP rows and take
 * its first token; its later tokens come from the batched steps (step()). */
static glm_status spec_start(srv *s, srv_slot *sl)
{
    gen *g = &sl->g;
    srv_job *j = sl->j;
    glm_forward_bind(s->f, sl->seq);
    const int32_t *p = j->prompt + sl->n_done;
    const int np = j->n_prompt - sl->n_done, n_mask = j->ignore_eos ? s->m->n_eos : 0;
    glm_status st = j->sp.temperature > 0
                        ? glm_mtp_sampled_start_n(&sl->sg, s->f, p, np, s->m->eos_ids, n_mask, sl->smp,
                                                  j->max_tokens, s->o.n_draft)
                        : glm_mtp_greedy_start_n(&sl->sg, s->f, p, np, s->m->eos_ids, n_mask, s->o.n_draft);
    glm_forward_bind(s->f, NULL);
    sl->n_done = j->n_prompt;
    return st == GLM_OK ? take_token(g, sl->sg.last, sl->hist, j->n_prompt + g->n_gen) : st;
}

/* The MTP slot's end: counts, and which cached rows stay valid for prefix reuse. */
static void spec_end(srv *s, srv_slot *sl, bool ok)
{
    gen *g = &sl->g;
    glm_mtp_greedy_free(&sl->sg);
    sl->n_valid = sl->mtp_valid = 0;
    if (!ok)
        return;
    srv_metrics_mtp(&s->met, g->drafts, g->accepted);
    srv_metrics_mtp_steps(&s->met, g->steps);
    /* the caches hold final tokens; those past what was taken (an end id, a token past
     * max_tokens) are not in hist */
    int64_t n_final = g->j->n_prompt + g->n_gen, n_main = glm_seq_n_past(sl->seq);
    sl->n_valid = n_main < n_final ? n_main : n_final;
    int64_t v = glm_seq_mtp_n_past(sl->seq);
    v = v < n_final - 1 ? v : n_final - 1;
    sl->mtp_valid = v < sl->n_valid ? v : sl->n_valid;
}

/* Start job j in slot sl: prefix reuse, the pages of the whole request, the stream header.
 * 1: started; 0: no pages while others run (stays queued); -1: failed (answered). */
static int admit(srv *s, srv_slot *sl, srv_job *j)
{
    bool spec = spec_usable(s, j);
    /* the cached sequence sharing the longest prefix (at least one prompt token is evaluated,
     * for its logits). With MTP drafts, keeping positions [0, keep) needs MTP row keep - 1,
     * which pairs with token keep: so keep < the match, and within the rows kept in step;
     * sampling with penalties prefills the whole prompt (the penalties look at the history
     * the start is given) */
    srv_cached *best = NULL;
    int64_t keep = 0;
    for (int i = 0; i < s->n_cache; i++) {
        srv_cached *c = &s->cache[i];
        int64_t k = 0;
        while (c->stamp && k < c->n && k < j->n_prompt - 1 && c->toks[k] == j->prompt[k])
            k++;
        if (spec)
            k = k - 1 < c->mtp_valid ? k - 1 : c->mtp_valid;
        if (k > keep)
            keep = k, best = c;
    }
    if (spec && j->sp.temperature > 0 && penalties_on(&j->sp))
        keep = 0, best = NULL;
    if (best && glm_seq_share_prefix(sl->seq, best->seq, keep) != GLM_OK) {
        glm_error_clear();
        glm_seq_truncate(sl->seq, 0);
        keep = 0;
    }
    int64_t need = (int64_t)j->n_prompt + j->max_tokens + (spec ? 2 : 0); /* + a verify pair */
    while (glm_seq_reserve(sl->seq, need) != GLM_OK) {
        glm_error_clear();
        if (!evict_oldest(s)) {
            glm_seq_truncate(sl->seq, 0);
            if (atomic_load(&s->running) > 0)
                return 0;
            fail_job(j, 503, "server_error", "the KV cache cannot hold this request");
            return -1;
        }
    }
    gen *g = &sl->g;
    *g = (gen){ .s = s, .j = j, .ds = sl->ds, .logits = sl->logits, .n_reused = (int)keep, .mtp = spec };
    for (int i = 0; i < j->n_stop; i++)
        if (strlen(j->stop[i]) - 1 > g->hold)
            g->hold = strlen(j->stop[i]) - 1;
    const char *txt;
    size_t len;
    glm_status st = glm_sampler_reset(sl->smp, &j->sp);
    if (st == GLM_OK)
        st = glm_detok_stream_flush(sl->ds, &txt, &len); /* reset */
    if (st == GLM_OK && j->logprobs >= 0 && !srv_lp_init(&g->lp, j->logprobs, j->max_tokens))
        st = glm_errorf(GLM_ERR_NOMEM, "out of memory for logprobs");
    if (st == GLM_OK && j->kind == SRV_CHAT && j->stream)
        st = glm_chat_stream_create(&g->cs, j->thinking, j->tools);
    if (st != GLM_OK) {
        glm_seq_truncate(sl->seq, 0);
        glm_chat_stream_destroy(g->cs);
        srv_lp_free(&g->lp);
        fail_job(j, 500, "server_error", glm_last_error());
        return -1;
    }
    memcpy(sl->hist, j->prompt, sizeof(int32_t) * (size_t)j->n_prompt);
    sl->n_done = (int)keep;
    sl->spec = spec;
    memset(&sl->sg, 0, sizeof sl->sg);
    sl->j = j;
    if (j->stream) {
        cJSON *choice, *root = chunk_new(g, &choice);
        if (j->kind == SRV_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(choice, "delta");
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        } else {
            cJSON_AddStringToObject(choice, "text", "");
        }
        cJSON_AddNullToObject(choice, "logprobs");
        cJSON_AddNullToObject(choice, "finish_reason");
        sse_send(g, root);
    }
    return 1;
}

/* The job's answer is complete (st: how its generation went); the slot becomes free and its
 * sequence goes to the prefix cache when it is intact. */
static void finish_slot(srv *s, srv_slot *sl, glm_status st)
{
    gen *g = &sl->g;
    srv_job *j = sl->j;
    if (sl->spec) /* usage reports them */
        g->drafts = sl->sg.drafts, g->accepted = sl->sg.accepted, g->steps = sl->sg.steps;
    if (st == GLM_OK) {
        const char *txt;
        size_t len;
        st = glm_detok_stream_flush(sl->ds, &txt, &len);
        if (st == GLM_OK && !g->cut && !text_add(&g->text, txt, len)) /* text after a stop string is dropped */
            st = glm_errorf(GLM_ERR_NOMEM, "out of memory");
        if (st == GLM_OK)
            st = after_text(g, true);
    }
    if (st == GLM_OK && g->cs)
        st = glm_chat_stream_finish(g->cs, on_chat_event, g);
    srv_metrics_tokens(&s->met, j->n_prompt, g->n_gen);
    if (st != GLM_OK) {
        fprintf(stderr, "glm47 serve: %s: %s\n", j->id, glm_last_error());
        fail_job(j, 500, "server_error", glm_last_error());
    } else if (j->stream) {
        if (g->n_calls && !strcmp(g->finish, "stop"))
            g->finish = "tool_calls";
        stream_end(g);
        srv_job_finish(j, 200);
    } else {
        char *body = NULL;
        if (full_response(g, &body) == GLM_OK) {
            srv_job_write(j, body, strlen(body));
            srv_job_finish(j, 200);
        } else {
            fail_job(j, 500, "server_error", glm_last_error());
        }
        free(body);
    }
    glm_chat_stream_destroy(g->cs);
    srv_lp_free(&g->lp);
    free(g->text.p);
    if (sl->spec)
        spec_end(s, sl, st == GLM_OK);
    /* keep the sequence for prefix reuse: it holds hist[0..n) (plain decoding keeps no MTP row
     * in step) */
    int64_t n = sl->spec ? sl->n_valid : glm_seq_n_past(sl->seq), mtp_valid = sl->spec ? sl->mtp_valid : 0;
    srv_cached *c = NULL;
    for (int i = 0; st == GLM_OK && n > 0 && i < s->n_cache; i++)
        if (!c || s->cache[i].stamp < c->stamp)
            c = &s->cache[i];
    if (c) {
        glm_seq_truncate(c->seq, 0);
        glm_seq *sq = c->seq;
        int32_t *tk = c->toks;
        c->seq = sl->seq, c->toks = sl->hist, c->n = n, c->mtp_valid = mtp_valid, c->stamp = ++s->cache_clock;
        sl->seq = sq, sl->hist = tk;
    } else {
        glm_seq_truncate(sl->seq, 0);
    }
    glm_seq_truncate(sl->seq, 0); /* unwritten pages reserved past n_past go back */
    sl->j = NULL;
    pthread_mutex_lock(&s->qmu);
    s->qlen--;
    pthread_mutex_unlock(&s->qmu);
    srv_job_unref(j);
}

/* Sample the slot's next token from its logits; finishes the slot when generation ends. */
static void sample_slot(srv *s, srv_slot *sl)
{
    srv_job *j = sl->j;
    gen *g = &sl->g;
    for (int i = 0; j->ignore_eos && i < s->m->n_eos; i++)
        if (s->m->eos_ids[i] >= 0 && s->m->eos_ids[i] < s->m->hp.vocab_size)
            sl->logits[s->m->eos_ids[i]] = -INFINITY;
    srv_job_apply_bias(j, sl->logits, s->m->hp.vocab_size);
    int32_t t;
    int n_hist = j->n_prompt + g->n_gen;
    glm_status st = glm_sampler_sample(sl->smp, &t, sl->logits, sl->hist, n_hist);
    if (st == GLM_OK)
        st = take_token(g, t, sl->hist, n_hist);
    if (st != GLM_OK || g->finish)
        finish_slot(s, sl, st);
    else
        sl->last = t;
}

/* Take queued jobs into free slots (in order); answer the ones that cannot run. */
static void take_jobs(srv *s)
{
    for (;;) {
        srv_slot *free_sl = NULL;
        for (int i = 0; i < s->max_batch && !free_sl; i++)
            if (!s->slots[i].j)
                free_sl = &s->slots[i];
        pthread_mutex_lock(&s->qmu);
        srv_job *j = s->qhead;
        bool stopping = atomic_load(&s->stopping);
        pthread_mutex_unlock(&s->qmu);
        if (!j || (!free_sl && !stopping && !atomic_load(&j->cancelled)))
            return;
        int r = -1;
        if (stopping)
            fail_job(j, 503, "server_error", "the server is shutting down");
        else if (atomic_load(&j->cancelled))
            srv_job_finish(j, 499);
        else if ((r = admit(s, free_sl, j)) == 0)
            return; /* waits for pages */
        pthread_mutex_lock(&s->qmu);
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        if (r < 0)
            s->qlen--;
        pthread_mutex_unlock(&s->qmu);
        if (r < 0)
            srv_job_unref(j);
        publish_counts(s);
        if (r > 0 && free_sl->spec) {
            glm_status st = spec_start(s, free_sl);
            if (st != GLM_OK || free_sl->g.finish) {
                finish_slot(s, free_sl, st);
                publish_counts(s);
            }
        }
    }
}

/* One forward step over every running slot. */
static void step(srv *s)
{
    glm_step_item it[s->max_batch];
    srv_slot *who[s->max_batch];
    int n = 0, rows = 0;
    const int max_rows = glm_forward_max_rows(s->f);
    for (int i = 0; i < s->max_batch; i++) {
        srv_slot *sl = &s->slots[i];
        if (!sl->j)
            continue;
        if (atomic_load(&sl->j->cancelled) || (atomic_load(&s->stopping) && srv_now() > s->stop_deadline)) {
            sl->g.finish = "cancelled";
            finish_slot(s, sl, GLM_OK);
            continue;
        }
        glm_step_item x = { .seq = sl->seq };
        if (sl->spec) { /* the verify rows [last, draft] */
            glm_status st = glm_mtp_verify_item(&sl->sg, sl->seq, &x);
            if (st != GLM_OK) {
                finish_slot(s, sl, st);
                continue;
            }
        } else if (sl->n_done < sl->j->n_prompt) { /* the next prompt chunk */
            /* the slots after this one may each need a verify of n_draft + 1 rows */
            int later = (s->max_batch - 1 - n) * (s->o.mtp ? s->o.n_draft + 1 : 1);
            int left = sl->j->n_prompt - sl->n_done, room = max_rows - rows - later;
            if (room <= 0)
                continue;
            x.tokens = sl->hist + sl->n_done;
            x.n = left < room ? left : room;
            x.logits = x.n == left ? sl->logits : NULL;
        } else {
            x.tokens = &sl->last, x.n = 1, x.logits = sl->logits;
        }
        rows += x.n;
        who[n] = sl;
        it[n++] = x;
    }
    if (!n) {
        publish_counts(s);
        return;
    }
    glm_status st = glm_forward_step(s->f, it, n);
    for (int k = 0; k < n; k++) {
        srv_slot *sl = who[k];
        if (st != GLM_OK) {
            finish_slot(s, sl, st);
            continue;
        }
        if (sl->spec) { /* acceptance, MTP rows, the next draft; then the 1 or 2 final tokens */
            int32_t out[GLM_MTP_MAX_DRAFT + 1];
            int n_out = 0;
            glm_status ss = glm_mtp_after_verify(&sl->sg, sl->seq, out, &n_out);
            for (int i = 0; ss == GLM_OK && i < n_out && !sl->g.finish; i++)
                ss = take_token(&sl->g, out[i], sl->hist, sl->j->n_prompt + sl->g.n_gen);
            if (ss != GLM_OK || sl->g.finish)
                finish_slot(s, sl, ss);
            continue;
        }
        if (sl->n_done < sl->j->n_prompt)
            sl->n_done += it[k].n;
        if (it[k].logits)
            sample_slot(s, sl);
    }
    publish_counts(s);
}

void *srv_worker_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        take_jobs(s);
        if (atomic_load(&s->running) > 0) {
            step(s);
            continue;
        }
        pthread_mutex_lock(&s->qmu);
        while (!s->qhead && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->qcv, &s->qmu);
        bool done = !s->qhead && atomic_load(&s->stopping);
        pthread_mutex_unlock(&s->qmu);
        if (done)
            break; /* stopping, nothing queued or running */
    }
    return NULL;
}
