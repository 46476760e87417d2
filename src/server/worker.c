/* The worker: the one thread that runs the model. It takes jobs from the queue in order,
 * prefills the prompt (reusing the prefix the KV cache holds from the previous request),
 * decodes plainly or with MTP drafts (serve --mtp), samples until an
 * end-of-generation id of the model, a stop string or max_tokens, and writes the response
 * body into the job: one JSON object, or SSE chunks as they are decided.
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
    int n_reused; /* prompt tokens whose KV came from the previous request */
    bool cut; /* ended by a stop string */
    const char *finish;
    glm_chat_stream *cs;
    double t_last;
    srv_lp lp; /* logprobs (logprobs.c); lp.t NULL when not asked for */
    bool mtp;  /* decoded with MTP drafts (spec_generate) */
    long long drafts, accepted;
} gen;

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
        GLM_TRY(srv_lp_add(&g->lp, s->logits, s->m->hp.vocab_size, t, g->text.len));
    hist[n_hist] = t;
    if (g->n_gen++ == 0)
        srv_metrics_ttft(&s->met, now - g->j->t_queued);
    else
        srv_metrics_tpot(&s->met, now - g->t_last);
    g->t_last = now;
    const char *txt;
    size_t len;
    if (glm_detok_stream_feed(s->ds, t, &txt, &len) != GLM_OK) {
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

static glm_status spec_generate(gen *g);
static bool spec_usable(const srv *s, const srv_job *j);

static glm_status generate(gen *g)
{
    srv *s = g->s;
    srv_job *j = g->j;
    if (spec_usable(s, j))
        return spec_generate(g);
    s->n_mtp_valid = 0; /* the MTP cache is not kept in step by plain decoding */
    int32_t *hist = s->hist;
    /* keep the longest prefix the cache already holds from the previous request (at least one
     * prompt token is evaluated, for its logits); on any failure below the cache is rebuilt */
    int64_t keep = 0;
    while (keep < s->n_cached && keep < j->n_prompt && hist[keep] == j->prompt[keep])
        keep++;
    if (keep == j->n_prompt)
        keep--;
    s->n_cached = 0;
    g->n_reused = (int)keep;
    memcpy(hist, j->prompt, sizeof(int32_t) * (size_t)j->n_prompt);
    GLM_TRY(glm_forward_truncate(s->f, keep));
    GLM_TRY(glm_sampler_reset(s->smp, &j->sp));
    const char *txt;
    size_t len;
    GLM_TRY(glm_detok_stream_flush(s->ds, &txt, &len)); /* reset */
    GLM_TRY(glm_forward_eval(s->f, j->prompt + keep, (int)(j->n_prompt - keep), s->logits, false, NULL, NULL));
    while (!g->finish) {
        if (atomic_load(&j->cancelled) ||
            (atomic_load(&s->stopping) && srv_now() > s->stop_deadline)) {
            g->finish = "cancelled";
            break;
        }
        int32_t t;
        int n_hist = j->n_prompt + g->n_gen;
        for (int i = 0; j->ignore_eos && i < s->m->n_eos; i++)
            if (s->m->eos_ids[i] >= 0 && s->m->eos_ids[i] < s->m->hp.vocab_size)
                s->logits[s->m->eos_ids[i]] = -INFINITY;
        GLM_TRY(glm_sampler_sample(s->smp, &t, s->logits, hist, n_hist));
        GLM_TRY(take_token(g, t, hist, n_hist));
        if (!g->finish)
            GLM_TRY(glm_forward_eval(s->f, &t, 1, s->logits, false, NULL, NULL));
    }
    s->n_cached = glm_forward_n_past(s->f); /* prompt and every generated token evaluated */
    GLM_TRY(glm_detok_stream_flush(s->ds, &txt, &len));
    if (!g->cut) /* text after a stop string is dropped */
        if (!text_add(&g->text, txt, len))
            return glm_errorf(GLM_ERR_NOMEM, "out of memory");
    return after_text(g, true);
}

/* ---- speculative decoding with the MTP layer (serve --mtp) ----
 * Greedy requests decode with MTP greedy draft/verify (engine/mtp.c: the plain greedy tokens
 * exactly); sampled ones with speculative sampling (the plain sampling distribution, though
 * not the plain draws of a seed). Not used for requests that ask for logprobs (the verify
 * rows are not exposed) or for greedy requests with penalties (MTP greedy takes the plain
 * argmax). Prefix reuse also needs the MTP rows: row j pairs the hidden state at j with the
 * token at j + 1, so at most n_mtp_valid positions are reused; sampling with penalties
 * prefills the whole prompt, as the penalties look at the history the start is given. */
static bool penalties_on(const glm_sampler_params *p)
{
    return p->presence_penalty != 0 || p->frequency_penalty != 0 || p->repetition_penalty != 1;
}

static bool spec_usable(const srv *s, const srv_job *j)
{
    return s->o.mtp && j->logprobs < 0 && !(j->sp.temperature <= 0 && penalties_on(&j->sp));
}

static glm_status spec_generate(gen *g)
{
    srv *s = g->s;
    srv_job *j = g->j;
    int32_t *hist = s->hist;
    /* m prompt tokens match the cache; keeping positions [0, keep) needs MTP row keep - 1,
     * which pairs with token keep: so keep < m (this also leaves a token to evaluate) */
    int64_t m = 0;
    while (m < s->n_cached && m < j->n_prompt && hist[m] == j->prompt[m])
        m++;
    int64_t keep = m - 1 < s->n_mtp_valid ? m - 1 : s->n_mtp_valid;
    if (keep < 0 || (j->sp.temperature > 0 && penalties_on(&j->sp)))
        keep = 0;
    s->n_cached = s->n_mtp_valid = 0;
    g->n_reused = (int)keep;
    g->mtp = true;
    memcpy(hist, j->prompt, sizeof(int32_t) * (size_t)j->n_prompt);
    GLM_TRY(glm_forward_truncate(s->f, keep));
    GLM_TRY(glm_forward_mtp_truncate(s->f, keep));
    GLM_TRY(glm_sampler_reset(s->smp, &j->sp));
    const char *txt;
    size_t len;
    GLM_TRY(glm_detok_stream_flush(s->ds, &txt, &len)); /* reset */
    glm_mtp_greedy sg;
    const int32_t *p = j->prompt + keep;
    const int np = (int)(j->n_prompt - keep), n_mask = j->ignore_eos ? s->m->n_eos : 0;
    glm_status st = j->sp.temperature > 0
                        ? glm_mtp_sampled_start(&sg, s->f, p, np, s->m->eos_ids, n_mask, s->smp, j->max_tokens)
                        : glm_mtp_greedy_start(&sg, s->f, p, np, s->m->eos_ids, n_mask);
    if (st == GLM_OK)
        st = take_token(g, sg.last, hist, j->n_prompt + g->n_gen);
    while (st == GLM_OK && !g->finish) {
        if (atomic_load(&j->cancelled) || (atomic_load(&s->stopping) && srv_now() > s->stop_deadline)) {
            g->finish = "cancelled";
            break;
        }
        int32_t out[2];
        int n = 0;
        st = glm_mtp_greedy_step(&sg, out, &n);
        for (int i = 0; st == GLM_OK && i < n && !g->finish; i++)
            st = take_token(g, out[i], hist, j->n_prompt + g->n_gen);
    }
    g->drafts = sg.drafts;
    g->accepted = sg.accepted;
    glm_mtp_greedy_free(&sg);
    GLM_TRY(st);
    srv_metrics_mtp(&s->met, g->drafts, g->accepted);
    /* the caches hold final tokens; those past what was taken (an end id, a token past
     * max_tokens) are not in hist */
    int64_t n_final = j->n_prompt + g->n_gen, n_main = glm_forward_n_past(s->f);
    s->n_cached = n_main < n_final ? n_main : n_final;
    int64_t v = glm_forward_mtp_n_past(s->f);
    v = v < n_final - 1 ? v : n_final - 1;
    s->n_mtp_valid = v < s->n_cached ? v : s->n_cached;
    GLM_TRY(glm_detok_stream_flush(s->ds, &txt, &len));
    if (!g->cut)
        if (!text_add(&g->text, txt, len))
            return glm_errorf(GLM_ERR_NOMEM, "out of memory");
    return after_text(g, true);
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

static void run_job(srv *s, srv_job *j)
{
    gen g = { .s = s, .j = j };
    for (int i = 0; i < j->n_stop; i++)
        if (strlen(j->stop[i]) - 1 > g.hold)
            g.hold = strlen(j->stop[i]) - 1;
    glm_status st = GLM_OK;
    if (j->logprobs >= 0 && !srv_lp_init(&g.lp, j->logprobs, j->max_tokens))
        st = glm_errorf(GLM_ERR_NOMEM, "out of memory for logprobs");
    if (st == GLM_OK && j->kind == SRV_CHAT && j->stream)
        st = glm_chat_stream_create(&g.cs, j->thinking, j->tools);
    if (st == GLM_OK && j->stream) {
        cJSON *choice, *root = chunk_new(&g, &choice);
        if (j->kind == SRV_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(choice, "delta");
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        } else {
            cJSON_AddStringToObject(choice, "text", "");
        }
        cJSON_AddNullToObject(choice, "logprobs");
        cJSON_AddNullToObject(choice, "finish_reason");
        sse_send(&g, root);
    }
    if (st == GLM_OK)
        st = generate(&g);
    if (st == GLM_OK && g.cs)
        st = glm_chat_stream_finish(g.cs, on_chat_event, &g);
    srv_metrics_tokens(&s->met, j->n_prompt, g.n_gen);
    if (st != GLM_OK) {
        fprintf(stderr, "glm47 serve: %s: %s\n", j->id, glm_last_error());
        fail_job(j, 500, "server_error", glm_last_error());
    } else if (j->stream) {
        if (g.n_calls && !strcmp(g.finish, "stop"))
            g.finish = "tool_calls";
        stream_end(&g);
        srv_job_finish(j, 200);
    } else {
        char *body = NULL;
        if (full_response(&g, &body) == GLM_OK) {
            srv_job_write(j, body, strlen(body));
            srv_job_finish(j, 200);
        } else {
            fail_job(j, 500, "server_error", glm_last_error());
        }
        free(body);
    }
    glm_chat_stream_destroy(g.cs);
    srv_lp_free(&g.lp);
    free(g.text.p);
}

void *srv_worker_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->qhead && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->qcv, &s->qmu);
        srv_job *j = s->qhead;
        if (j) {
            s->qhead = j->next;
            if (!s->qhead)
                s->qtail = NULL;
        }
        pthread_mutex_unlock(&s->qmu);
        if (!j)
            break; /* stopping and nothing queued */
        if (atomic_load(&s->stopping))
            fail_job(j, 503, "server_error", "the server is shutting down");
        else if (atomic_load(&j->cancelled))
            srv_job_finish(j, 499);
        else
            run_job(s, j);
        pthread_mutex_lock(&s->qmu);
        s->qlen--;
        pthread_mutex_unlock(&s->qmu);
        srv_job_unref(j);
    }
    return NULL;
}
