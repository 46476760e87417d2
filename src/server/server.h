/* glm47 serve: an OpenAI-compatible HTTP server (libmicrohttpd, one connection thread each)
 * in front of ONE worker thread that owns the model, the forward pass and the samplers.
 * Requests are validated and tokenized on their connection thread, then queued; the worker
 * decodes up to max_batch of them together (continuous batching over a paged KV cache, with
 * prompt prefixes of earlier requests reused) and writes each response body (JSON, or SSE
 * chunks) into the request's buffer, which the connection drains.
 * Endpoints: GET /health, /metrics, /v1/models[/{id}]; POST /v1/chat/completions,
 * /v1/completions, /tokenize, /detokenize.
 * Not here: the command line (cli/cmd_serve.c), the chat template (tokenizer/chat.h). */
#ifndef GLM_SERVER_H
#define GLM_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/status.h"

struct glm_backend;
struct glm_model;

typedef struct glm_server_opts {
    const char *model_path;
    const char *model_name; /* the id /v1/models lists; default: the file's base name */
    const char *backend;    /* "auto" (default: Vulkan when a GPU is present), "ref", "vulkan" */
    const char *host;       /* NULL or "0.0.0.0": every interface; default 127.0.0.1 */
    int port;
    const char *api_key;    /* NULL: no authentication */
    int64_t n_ctx;          /* positions per request (prompt + generated); 0: min(4096, model's) */
    int queue_max;          /* waiting + running requests before 503; 0: 256 */
    int max_batch;          /* requests decoded together; 0: 8 */
    size_t body_max;        /* request body bytes before 413; 0: 1 MiB */
    bool mtp;               /* speculative decoding with the model's MTP layer */
    int n_draft;            /* MTP drafts verified per step, 1..GLM_MTP_MAX_DRAFT; 0: 1 */
    /* NULL: glm_backend_create; the CLI passes one that draws a loading progress bar */
    glm_status (*backend_create)(struct glm_backend **out, const char *name, const struct glm_model *m);
} glm_server_opts;

/* Listen, load the model (GET /health answers 503 until then), serve until SIGTERM or
 * SIGINT, then stop accepting, answer queued requests 503, let the running one finish
 * (cancelled after 5 s) and return GLM_OK. Load or bind failures return an error. */
glm_status glm_server_run(const glm_server_opts *o);

#endif
