/* Internals shared by the server's files: the job (one queued request), the server state,
 * error shape, metrics. http.c owns connections, api.c turns request JSON into jobs,
 * worker.c runs jobs, metrics.c counts. */
#ifndef GLM_SRV_PRIV_H
#define GLM_SRV_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "backend/backend.h"
#include "engine/forward.h"
#include "engine/logprobs.h"
#include "model/model.h"
#include "ref/sampler.h"
#include "server/server.h"
#include "tokenizer/bpe.h"

#define SRV_MAX_STOP 4
#define SRV_MAX_BIAS 300 /* logit_bias entries per request */

/* An error in OpenAI's shape {"error":{"message","type","param","code"}}. */
typedef struct srv_err {
    int http;
    const char *type; /* invalid_request_error, authentication_error, server_error */
    const char *code; /* NULL → JSON null */
    char param[64];   /* "" → JSON null */
    char msg[384];
} srv_err;

void srv_err_set(srv_err *e, int http, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Body text of e (malloc'd). */
char *srv_err_json(const srv_err *e);

/* A growable byte buffer. */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
} srv_buf;
bool srv_buf_add(srv_buf *b, const char *s, size_t n);

typedef enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION } srv_kind;

typedef struct srv_job {
    struct srv_job *next; /* queue link */
    /* input, fixed once queued */
    srv_kind kind;
    bool stream, include_usage, thinking;
    bool ignore_eos; /* llama.cpp's extension: end-of-generation ids are masked, never sampled */
    int logprobs;    /* -1: off; else top alternatives per token (0..GLM_LOGPROBS_MAX_TOP) */
    int n_bias;      /* logit_bias: added to these ids' logits before sampling or argmax */
    int32_t bias_id[SRV_MAX_BIAS];
    float bias[SRV_MAX_BIAS];
    int32_t *prompt;
    int n_prompt, max_tokens;
    glm_sampler_params sp;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    cJSON *tools; /* copy of the request's tools (argument types for the parser), or NULL */
    char id[64];
    long long created;
    double t_queued;
    /* shared between the worker and the connection */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    atomic_bool cancelled;
    int http_status; /* of the body in out (non-stream) */
    srv_buf out;     /* response body, or the SSE bytes not yet sent */
    size_t out_pos;
} srv_job;

srv_job *srv_job_new(void);
void srv_job_unref(srv_job *j);
/* Append body bytes (worker side) and wake the connection. */
bool srv_job_write(srv_job *j, const char *s, size_t n);
void srv_job_finish(srv_job *j, int http_status);

/* logprobs.c: one entry per generated token and the two JSON shapes. */
typedef struct srv_lp_tok {
    int32_t id;
    float lp;
    size_t off; /* byte offset of the token's text in the generated text */
    int32_t top_id[GLM_LOGPROBS_MAX_TOP];
    float top_lp[GLM_LOGPROBS_MAX_TOP];
} srv_lp_tok;
typedef struct srv_lp {
    srv_lp_tok *t; /* NULL: logprobs off */
    int n, cap, top;
    int sent; /* entries already attached to stream chunks */
} srv_lp;
/* Room for cap tokens (max_tokens), allocated once. */
bool srv_lp_init(srv_lp *l, int top, int cap);
void srv_lp_free(srv_lp *l);
glm_status srv_lp_add(srv_lp *l, const float *logits, int32_t n_vocab, int32_t id, size_t text_off);
/* The logprobs object of entries [from, to): chat or completions shape. */
cJSON *srv_lp_json(const srv_lp *l, const glm_tokenizer *tok, bool chat, int from, int to);

/* Prometheus metrics. Histogram bounds in seconds. */
#define SRV_HBUCKETS 10
typedef struct srv_hist {
    uint64_t count[SRV_HBUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t n;
} srv_hist;
typedef struct srv_metrics {
    pthread_mutex_t mu;
    uint64_t by_status[600];
    uint64_t prompt_tokens, gen_tokens;
    uint64_t mtp_drafts, mtp_accepted, mtp_steps;
    srv_hist ttft, tpot;
} srv_metrics;
void srv_metrics_init(srv_metrics *m);
void srv_metrics_status(srv_metrics *m, int status);
void srv_metrics_tokens(srv_metrics *m, int n_prompt, int n_gen);
void srv_metrics_mtp(srv_metrics *m, long long drafts, long long accepted);
void srv_metrics_mtp_steps(srv_metrics *m, long long steps); /* verify forwards */
void srv_metrics_ttft(srv_metrics *m, double s);
void srv_metrics_tpot(srv_metrics *m, double s);
/* running: sequences decoding; kv_used / kv_total: KV cache pages. */
char *srv_metrics_text(srv_metrics *m, int queue_depth, bool loaded, int running, long long kv_used,
                       long long kv_total);

typedef struct srv {
    glm_server_opts o;
    char *model_name;
    long long started;
    /* owned by the worker once loaded; the tokenizer is shared (thread-safe encode/decode) */
    glm_model *m;
    glm_tokenizer *tok;
    glm_backend *b;
    glm_forward *f;
    int max_batch;                 /* slots: requests decoded together */
    struct srv_slot *slots;        /* [max_batch] (worker.c) */
    struct srv_cached *cache;      /* [n_cache]: finished sequences kept for prefix reuse */
    int n_cache;
    uint64_t cache_clock;
    atomic_int running;            /* slots with a job (for /metrics and admission) */
    atomic_llong kv_used, kv_total; /* KV pages in use / in the pool */
    int64_t n_ctx;
    atomic_bool loaded;
    /* the queue */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    srv_job *qhead, *qtail;
    int qlen;    /* waiting + running */
    atomic_bool stopping;
    double stop_deadline; /* the running request is cancelled after this (stopping) */
    atomic_ullong next_id;
    atomic_int attached; /* connections with a job whose answer is not fully sent */
    srv_metrics met;
} srv;

double srv_now(void);

/* Queue a job (takes a reference). False when the queue is full or the server stops. */
bool srv_enqueue(srv *s, srv_job *j);
void *srv_worker_main(void *arg);
/* The worker's slots and prefix cache, made once the forward pass exists (worker.c). */
glm_status srv_slots_create(srv *s);
void srv_slots_destroy(srv *s); /* also after a partial create */
int srv_queue_depth(srv *s);

/* api.c: request bodies → jobs or direct answers. On failure fill e and return false. */
bool srv_api_chat(srv *s, const cJSON *req, srv_job **out, srv_err *e);
bool srv_api_completion(srv *s, const cJSON *req, srv_job **out, srv_err *e);
bool srv_api_tokenize(srv *s, const cJSON *req, char **body, srv_err *e);
bool srv_api_detokenize(srv *s, const cJSON *req, char **body, srv_err *e);
char *srv_api_models(srv *s, const char *one_id);
/* The request's logit_bias added to logits[n_vocab] (ids past n_vocab are skipped). */
void srv_job_apply_bias(const srv_job *j, float *logits, int64_t n_vocab);

#endif
