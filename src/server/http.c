/* HTTP side of glm47 serve (libmicrohttpd, a thread per connection so a handler may block
 * on its job): bodies collected up to the limit (the rest is read and dropped, never
 * stored, then 413), UTF-8 and JSON checked, bearer key checked, routed; streaming answers
 * drain the job's buffer through a content-reader callback. A connection that closes early
 * marks its job cancelled (MHD_OPTION_NOTIFY_COMPLETED), which the worker sees at its next
 * token. Every error answer has OpenAI's shape. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/srv_priv.h"
#include "tokenizer/chat.h"

/* After SIGTERM the running request may go on this long before it is cancelled. */
#define SRV_STOP_GRACE_S 5.0

typedef struct conn {
    srv_buf body;
    bool too_big;
    srv_job *job; /* a reference while a generation is attached */
} conn;

static enum MHD_Result send_body(srv *s, struct MHD_Connection *c, int status, const char *ctype, char *body)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    srv_metrics_status(&s->met, status);
    return ret;
}

static enum MHD_Result send_json(srv *s, struct MHD_Connection *c, int status, char *body)
{
    return send_body(s, c, status, "application/json", body);
}

static enum MHD_Result send_err(srv *s, struct MHD_Connection *c, const srv_err *e)
{
    return send_json(s, c, e->http, srv_err_json(e));
}

static enum MHD_Result fail(srv *s, struct MHD_Connection *c, int http, const char *type, const char *code,
                            const char *msg)
{
    srv_err e;
    srv_err_set(&e, http, type, code, NULL, "%s", msg);
    return send_err(s, c, &e);
}

/* Constant-time comparison of the bearer token with the key. */
static bool auth_ok(srv *s, struct MHD_Connection *c)
{
    if (!s->o.api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7))
        return false;
    h += 7;
    size_t n = strlen(h), k = strlen(s->o.api_key);
    unsigned diff = (unsigned)(n != k);
    for (size_t i = 0; i < n && i < k; i++)
        diff |= (unsigned)(h[i] ^ s->o.api_key[i]);
    return diff == 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    srv_job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->out_pos == j->out.len && !j->done)
        pthread_cond_wait(&j->cv, &j->mu);
    size_t n = j->out.len - j->out_pos;
    if (n == 0) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = n < max ? n : max;
    memcpy(buf, j->out.p + j->out_pos, n);
    j->out_pos += n;
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) { srv_job_unref(cls); }

static enum MHD_Result start_stream(srv *s, struct MHD_Connection *c, srv_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->refs++; /* the response's */
    pthread_mutex_unlock(&j->mu);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
    if (!r) {
        srv_job_unref(j);
        atomic_store(&j->cancelled, true);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    srv_metrics_status(&s->met, 200);
    return ret;
}

/* Queue the job; stream it, or wait for the whole answer. */
static enum MHD_Result run_generation(srv *s, struct MHD_Connection *c, conn *k, srv_job *j)
{
    k->job = j; /* the request's reference now belongs to the connection */
    atomic_fetch_add(&s->attached, 1);
    if (!srv_enqueue(s, j))
        return fail(s, c, 503, "server_error", "unavailable",
                    atomic_load(&s->stopping) ? "the server is shutting down" : "the request queue is full; retry later");
    if (j->stream)
        return start_stream(s, c, j);
    /* wait, checking 5 times a second whether the client has closed its socket (a peek
     * that reads end-of-file): then the job is cancelled like a dropped stream */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT && ci) {
            char b;
            if (recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                atomic_store(&j->cancelled, true);
        }
    }
    char *body = strndup(j->out.p ? j->out.p : "", j->out.len);
    int status = j->http_status;
    pthread_mutex_unlock(&j->mu);
    return send_json(s, c, status, body);
}

static enum MHD_Result post_json(srv *s, struct MHD_Connection *c, conn *k, const char *url)
{
    srv_err e = { 0 };
    if (k->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->o.body_max);
        return fail(s, c, 413, "invalid_request_error", "request_too_large", msg);
    }
    const char *p = k->body.p ? k->body.p : "";
    if (glm_utf8_valid_prefix((const uint8_t *)p, k->body.len) != k->body.len)
        return fail(s, c, 400, "invalid_request_error", "invalid_json", "the request body is not valid UTF-8");
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(p, k->body.len, &end, 0);
    while (req && end && end < p + k->body.len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (!req || !cJSON_IsObject(req) || (end && end != p + k->body.len)) {
        cJSON_Delete(req);
        return fail(s, c, 400, "invalid_request_error", "invalid_json",
                    "the request body is not a JSON object (malformed or truncated JSON)");
    }
    enum MHD_Result ret;
    srv_job *j = NULL;
    char *body = NULL;
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions")) {
        bool ok = url[4] == 'c' && url[5] == 'h' ? srv_api_chat(s, req, &j, &e) : srv_api_completion(s, req, &j, &e);
        ret = ok ? run_generation(s, c, k, j) : send_err(s, c, &e);
    } else {
        bool ok = !strcmp(url, "/tokenize") ? srv_api_tokenize(s, req, &body, &e) : srv_api_detokenize(s, req, &body, &e);
        ret = ok ? send_json(s, c, 200, body) : send_err(s, c, &e);
    }
    cJSON_Delete(req);
    return ret;
}

static bool is_post_path(const char *url)
{
    return !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") || !strcmp(url, "/tokenize") ||
           !strcmp(url, "/detokenize");
}

static enum MHD_Result route(srv *s, struct MHD_Connection *c, conn *k, const char *url, const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    bool loaded = atomic_load(&s->loaded);
    if (!strcmp(url, "/health") && get)
        return loaded ? send_json(s, c, 200, strdup("{\"status\":\"ok\"}"))
                      : fail(s, c, 503, "server_error", "loading", "the model is loading");
    if (!strcmp(url, "/metrics") && get)
        return send_body(s, c, 200, "text/plain; version=0.0.4", srv_metrics_text(&s->met, srv_queue_depth(s), loaded, atomic_load(&s->running),
                                                                             atomic_load(&s->kv_used), atomic_load(&s->kv_total)));
    bool models = !strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11);
    if (!(models && get) && !(is_post_path(url) && post)) {
        char msg[160];
        snprintf(msg, sizeof msg, "no route for %.10s %.100s", method, url);
        return fail(s, c, models || is_post_path(url) ? 405 : 404, "invalid_request_error", "not_found", msg);
    }
    if (!auth_ok(s, c))
        return fail(s, c, 401, "authentication_error", "invalid_api_key", "invalid or missing API key");
    if (!loaded)
        return fail(s, c, 503, "server_error", "loading", "the model is loading");
    if (models) {
        char *body = srv_api_models(s, url[10] == '/' ? url + 11 : NULL);
        if (!body) {
            srv_err e;
            srv_err_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%.200s' does not exist", url + 11);
            return send_err(s, c, &e);
        }
        return send_json(s, c, 200, body);
    }
    return post_json(s, c, k, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv *s = cls;
    conn *k = *con_cls;
    if (!k) {
        k = calloc(1, sizeof *k);
        *con_cls = k;
        return k ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        /* past the limit the rest is read and dropped, so memory stays bounded */
        if (!k->too_big && k->body.len + *upload_size <= s->o.body_max) {
            if (!srv_buf_add(&k->body, upload, *upload_size))
                return MHD_NO;
        } else {
            k->too_big = true;
            free(k->body.p);
            k->body = (srv_buf){ 0 };
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(s, c, k, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c, (void)toe;
    srv *s = cls;
    conn *k = *con_cls;
    if (!k)
        return;
    if (k->job) {
        atomic_fetch_sub(&s->attached, 1);
        atomic_store(&k->job->cancelled, true); /* no effect once done; stops it otherwise */
        srv_job_unref(k->job);
    }
    free(k->body.p);
    free(k);
    *con_cls = NULL;
}

/* ---- lifecycle ---- */

static glm_status load(srv *s)
{
    const glm_server_opts *o = &s->o;
    GLM_TRY(glm_model_open(&s->m, o->model_path));
    GLM_TRY(glm_tokenizer_open(&s->tok, o->model_path));
    const glm_model *m = s->m;
    s->n_ctx = o->n_ctx ? o->n_ctx : 4096;
    if (m->hp.max_position_embeddings > 0 && s->n_ctx > m->hp.max_position_embeddings) {
        if (o->n_ctx)
            return glm_errorf(GLM_ERR_INVALID, "--ctx %lld exceeds the model's context of %d", (long long)o->n_ctx,
                              m->hp.max_position_embeddings);
        s->n_ctx = m->hp.max_position_embeddings;
    }
    if (o->mtp && !m->mtp)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: --mtp needs a model with an MTP layer (this one has none)",
                          o->model_path);
    GLM_TRY((o->backend_create ? o->backend_create : glm_backend_create)(&s->b, o->backend, m));
    /* the pool holds every slot's whole request plus one more context for the prefix cache;
     * a step takes a prompt chunk of up to 512 rows beside one row of every other slot */
    s->max_batch = o->max_batch > 0 ? o->max_batch : 8;
    GLM_TRY(glm_forward_create_pool(&s->f, m, s->b, s->n_ctx + 2, 512 + s->max_batch,
                                    (int64_t)(s->max_batch + 1) * (s->n_ctx + 2)));
    return srv_slots_create(s);
}

static void unload(srv *s)
{
    srv_slots_destroy(s);
    glm_forward_destroy(s->f);
    glm_backend_destroy(s->b);
    glm_tokenizer_destroy(s->tok);
    glm_model_close(s->m);
    free(s->model_name);
}

static char *default_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *b = path + n;
    while (b > path && b[-1] != '/')
        b--;
    size_t len = (size_t)(path + n - b);
    if (len > 5 && !strncmp(b + len - 5, ".gguf", 5))
        len -= 5;
    return strndup(b, len);
}

static struct MHD_Daemon *start_http(srv *s, glm_status *st)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->o.port) };
    const char *host = s->o.host ? s->o.host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        *st = glm_errorf(GLM_ERR_INVALID, "--host '%s': expected an IPv4 address such as 127.0.0.1 or 0.0.0.0", host);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
    if (!d) {
        *st = glm_errorf(GLM_ERR_IO, "cannot listen on %s:%d (%s)", host, s->o.port, strerror(errno));
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "glm47 serve: listening on http://%s:%u\n", host, di ? (unsigned)di->port : (unsigned)s->o.port);
    return d;
}

static void shut_down(srv *s, struct MHD_Daemon *d, pthread_t *worker)
{
    MHD_socket fd = MHD_quiesce_daemon(d); /* stop accepting; running connections go on */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    pthread_mutex_lock(&s->qmu);
    s->stop_deadline = srv_now() + SRV_STOP_GRACE_S;
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    if (worker)
        pthread_join(*worker, NULL); /* every queued job is done once it returns */
    /* let the connections send what the worker wrote last (up to 5 s for slow readers) */
    for (int i = 0; i < 500 && atomic_load(&s->attached) > 0; i++)
        nanosleep(&(struct timespec){ .tv_nsec = 10000000L }, NULL);
    MHD_stop_daemon(d);
}

glm_status glm_server_run(const glm_server_opts *o)
{
    srv *s = calloc(1, sizeof *s);
    if (!s)
        return glm_errorf(GLM_ERR_NOMEM, "serve: out of memory");
    s->o = *o;
    s->o.backend = o->backend ? o->backend : "auto";
    s->o.queue_max = o->queue_max > 0 ? o->queue_max : 256;
    s->o.body_max = o->body_max ? o->body_max : (size_t)1 << 20;
    s->o.n_draft = o->n_draft > 0 ? o->n_draft : 1;
    s->model_name = o->model_name ? strdup(o->model_name) : default_name(o->model_path);
    s->started = (long long)time(NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    srv_metrics_init(&s->met);
    /* signals: SIGTERM/SIGINT are taken by sigwait below (blocked in every thread, which
     * inherit this mask); a client that goes away must not kill the process with SIGPIPE */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    glm_status st = GLM_OK;
    pthread_t worker;
    bool have_worker = false;
    struct MHD_Daemon *d = start_http(s, &st);
    if (d)
        st = load(s);
    if (d && st == GLM_OK) {
        if (pthread_create(&worker, NULL, srv_worker_main, s) != 0)
            st = glm_errorf(GLM_ERR_NOMEM, "serve: cannot start the worker thread");
        else
            have_worker = true;
    }
    if (d && st == GLM_OK) {
        atomic_store(&s->loaded, true);
        fprintf(stderr, "glm47 serve: model '%s' loaded (context %lld, max batch %d, %lld KV pages), ready\n",
                s->model_name, (long long)s->n_ctx, s->max_batch, (long long)atomic_load(&s->kv_total));
        int sig = 0;
        sigwait(&set, &sig);
        fprintf(stderr, "glm47 serve: %s: stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    if (d)
        shut_down(s, d, have_worker ? &worker : NULL);
    unload(s);
    free(s);
    return st;
}
