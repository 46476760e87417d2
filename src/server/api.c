/* Request JSON → jobs: OpenAI's chat/completions and completions parameters, checked for
 * type and range (wrong type, negative or absurd values → 400 naming the parameter), the
 * chat template applied (tokenizer/chat.h) and the prompt tokenized here, on the connection
 * thread, so a bad request never reaches the worker. Unknown fields are ignored; known ones
 * that are not implemented (n and best_of above 1, echo, suffix) are refused by name. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv_priv.h"
#include "tokenizer/chat.h"

void srv_err_set(srv_err *e, int http, const char *type, const char *code, const char *param, const char *fmt, ...)
{
    e->http = http;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

char *srv_err_json(const srv_err *e)
{
    cJSON *root = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->msg);
    cJSON_AddStringToObject(o, "type", e->type);
    if (e->param[0])
        cJSON_AddStringToObject(o, "param", e->param);
    else
        cJSON_AddNullToObject(o, "param");
    if (e->code)
        cJSON_AddStringToObject(o, "code", e->code);
    else
        cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static bool bad(srv_err *e, const char *param, const char *what)
{
    srv_err_set(e, 400, "invalid_request_error", "invalid_value", param, "%s: %s", param, what);
    return false;
}

/* Optional number in [lo, hi] (integral when integer): false + 400 on a wrong type or range;
 * *given tells whether it was present (JSON null counts as absent). */
static bool get_num(const cJSON *req, const char *name, double lo, double hi, bool integer, double *out,
                    bool *given, srv_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    *given = false;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v))
        return bad(e, name, integer ? "expected an integer" : "expected a number");
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi) {
        srv_err_set(e, 400, "invalid_request_error", "invalid_value", name, "%s: %g is outside [%g, %g]", name, x, lo,
                    hi);
        return false;
    }
    if (integer && x != floor(x))
        return bad(e, name, "expected an integer");
    *out = x;
    *given = true;
    return true;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, srv_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v))
        return bad(e, name, "expected a boolean");
    *out = cJSON_IsTrue(v);
    return true;
}

static bool check_model(srv *s, const cJSON *req, srv_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsString(v))
        return bad(e, "model", "expected a string");
    if (strcmp(v->valuestring, s->model_name)) {
        srv_err_set(e, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%.200s' does not exist (this server has '%.100s')", v->valuestring, s->model_name);
        return false;
    }
    return true;
}

static bool get_stop(srv_job *j, const cJSON *req, srv_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "stop");
    if (!v || cJSON_IsNull(v))
        return true;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0])
            return bad(e, "stop", "must not be empty");
        j->stop[j->n_stop++] = strdup(v->valuestring);
        return true;
    }
    if (!cJSON_IsArray(v))
        return bad(e, "stop", "expected a string or an array of strings");
    if (cJSON_GetArraySize(v) > SRV_MAX_STOP)
        return bad(e, "stop", "at most 4 sequences");
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 256)
            return bad(e, "stop", "each entry must be a non-empty string of at most 256 bytes");
        j->stop[j->n_stop++] = strdup(it->valuestring);
    }
    return true;
}

/* logit_bias: an object mapping token ids (decimal strings) to a bias in [-100, 100]. */
static bool get_logit_bias(srv *s, const cJSON *req, srv_job *j, srv_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "logit_bias");
    j->n_bias = 0;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsObject(v))
        return bad(e, "logit_bias", "expected an object mapping token ids to numbers");
    if (cJSON_GetArraySize(v) > SRV_MAX_BIAS)
        return bad(e, "logit_bias", "at most 300 entries");
    int64_t nv = glm_tokenizer_n_vocab(s->tok);
    if (s->m->hp.vocab_size < nv)
        nv = s->m->hp.vocab_size;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        const char *k = it->string;
        char *end = NULL;
        long long id = k && k[0] >= '0' && k[0] <= '9' ? strtoll(k, &end, 10) : -1;
        if (id < 0 || *end || id >= nv || strlen(k) > 12) {
            srv_err_set(e, 400, "invalid_request_error", "invalid_value", "logit_bias",
                        "logit_bias: key '%.40s' is not a token id in [0, %lld)", k ? k : "", (long long)nv);
            return false;
        }
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 100) {
            srv_err_set(e, 400, "invalid_request_error", "invalid_value", "logit_bias",
                        "logit_bias: the bias of token %lld must be a number in [-100, 100]", id);
            return false;
        }
        j->bias_id[j->n_bias] = (int32_t)id;
        j->bias[j->n_bias++] = (float)it->valuedouble;
    }
    return true;
}

void srv_job_apply_bias(const srv_job *j, float *logits, int64_t n_vocab)
{
    for (int i = 0; i < j->n_bias; i++)
        if (j->bias_id[i] < n_vocab)
            logits[j->bias_id[i]] += j->bias[i];
}

/* Parameters this server does not implement are refused by name, never silently ignored. */
static bool refuse_unsupported(const cJSON *req, srv_job *j, srv_err *e)
{
    const cJSON *v;
    if (j->kind == SRV_COMPLETION) {
        v = cJSON_GetObjectItemCaseSensitive(req, "echo");
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v))
            return bad(e, "echo", cJSON_IsTrue(v) ? "is not supported (only false)" : "expected a boolean");
        v = cJSON_GetObjectItemCaseSensitive(req, "best_of");
        if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 1))
            return bad(e, "best_of", "only 1 is supported");
        v = cJSON_GetObjectItemCaseSensitive(req, "suffix");
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return bad(e, "suffix", "is not supported");
    }
    v = cJSON_GetObjectItemCaseSensitive(req, "n");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 1))
        return bad(e, "n", "only 1 choice per request is supported");
    return true;
}

/* Sampling (ref/sampler.h), stop, n, stream, max tokens: what chat and completions share. */
static bool get_common(srv *s, const cJSON *req, srv_job *j, srv_err *e)
{
    double x;
    bool g;
    j->logprobs = -1;
    j->sp = glm_sampler_params_default();
    j->sp.top_p = 0.95f; /* model card defaults (model-spec §8.9): temperature 1, top-p 0.95 */
    if (!check_model(s, req, e))
        return false;
    if (!get_num(req, "temperature", 0, 2, false, &x, &g, e))
        return false;
    if (g)
        j->sp.temperature = (float)x;
    if (!get_num(req, "top_p", 0, 1, false, &x, &g, e))
        return false;
    if (g) {
        if (x <= 0)
            return bad(e, "top_p", "must be > 0");
        j->sp.top_p = (float)x;
    }
    if (!get_num(req, "top_k", 0, 1 << 30, true, &x, &g, e))
        return false;
    if (g)
        j->sp.top_k = (int32_t)x;
    if (!get_num(req, "min_p", 0, 1, false, &x, &g, e))
        return false;
    if (g)
        j->sp.min_p = (float)x;
    if (!get_num(req, "presence_penalty", -2, 2, false, &x, &g, e))
        return false;
    if (g)
        j->sp.presence_penalty = (float)x;
    if (!get_num(req, "frequency_penalty", -2, 2, false, &x, &g, e))
        return false;
    if (g)
        j->sp.frequency_penalty = (float)x;
    if (!get_num(req, "repetition_penalty", 1e-3, 100, false, &x, &g, e))
        return false;
    if (g)
        j->sp.repetition_penalty = (float)x;
    if (!get_num(req, "seed", -9.2e18, 1.8e19, true, &x, &g, e))
        return false;
    j->sp.seed = g ? (x < 0 ? (uint64_t)(int64_t)x : (uint64_t)x)
                   : (uint64_t)(srv_now() * 1e9) ^ atomic_load(&s->next_id) * 0x9E3779B97F4A7C15ull;
    if (!refuse_unsupported(req, j, e) || !get_logit_bias(s, req, j, e))
        return false;
    j->max_tokens = -1;
    if (!get_num(req, "max_tokens", 1, (double)s->n_ctx, true, &x, &g, e))
        return false;
    if (g)
        j->max_tokens = (int)x;
    if (!get_num(req, "max_completion_tokens", 1, (double)s->n_ctx, true, &x, &g, e))
        return false;
    if (g)
        j->max_tokens = (int)x;
    if (!get_bool(req, "stream", &j->stream, e) || !get_bool(req, "ignore_eos", &j->ignore_eos, e))
        return false;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return bad(e, "stream_options", "expected an object");
        if (!j->stream)
            return bad(e, "stream_options", "only allowed with \"stream\": true");
        if (!get_bool(so, "include_usage", &j->include_usage, e))
            return false;
    }
    if (glm_sampler_params_check(&j->sp) != GLM_OK)
        return bad(e, "sampling", glm_last_error());
    return get_stop(j, req, e);
}

/* chat: "logprobs" (boolean) and "top_logprobs" (0..20, only with logprobs true);
 * completions: "logprobs" (integer 0..20, the number of alternatives). */
static bool get_logprobs(const cJSON *req, srv_job *j, srv_err *e)
{
    double x;
    bool g;
    if (j->kind == SRV_COMPLETION) {
        if (!get_num(req, "logprobs", 0, GLM_LOGPROBS_MAX_TOP, true, &x, &g, e))
            return false;
        j->logprobs = g ? (int)x : -1;
        return true;
    }
    bool on = false;
    if (!get_bool(req, "logprobs", &on, e))
        return false;
    if (!get_num(req, "top_logprobs", 0, GLM_LOGPROBS_MAX_TOP, true, &x, &g, e))
        return false;
    if (g && !on)
        return bad(e, "top_logprobs", "needs \"logprobs\": true");
    j->logprobs = on ? (g ? (int)x : 0) : -1;
    return true;
}

/* Take the prompt ids (owned) into the job; check prompt + max_tokens against the context. */
static bool set_prompt(srv *s, srv_job *j, int32_t *ids, size_t n, const char *param, srv_err *e)
{
    j->prompt = ids;
    if (n == 0)
        return bad(e, param, "must not be empty");
    if ((int64_t)n >= s->n_ctx) {
        srv_err_set(e, 400, "invalid_request_error", "context_length_exceeded", param,
                    "the prompt has %zu tokens; this server's context is %lld", n, (long long)s->n_ctx);
        return false;
    }
    j->n_prompt = (int)n;
    if (j->max_tokens < 0)
        j->max_tokens = (int)(s->n_ctx - (int64_t)n);
    if ((int64_t)n + j->max_tokens > s->n_ctx) {
        srv_err_set(e, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                    "%zu prompt tokens + max_tokens %d exceed this server's context of %lld", n, j->max_tokens,
                    (long long)s->n_ctx);
        return false;
    }
    return true;
}

/* A JSON array of token ids (malloc'd; at least one slot); NULL and a 400 naming the first
 * entry that is not an integer id of the vocabulary. */
static int32_t *ids_from_json(srv *s, const cJSON *arr, const char *param, size_t *n, srv_err *e)
{
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof(int32_t) * (*n ? *n : 1));
    if (!ids) {
        srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    int32_t nv = glm_tokenizer_n_vocab(s->tok);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        double x = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (x < 0 || x >= nv || x != floor(x)) {
            free(ids);
            srv_err_set(e, 400, "invalid_request_error", "invalid_value", param,
                        "%s[%zu]: expected an integer token id in [0, %d)", param, i, (int)nv);
            return NULL;
        }
        ids[i++] = (int32_t)x;
    }
    return ids;
}

/* A completions prompt: a string (tokenized with special-token matching off, so text that
 * spells a special token stays text), an array of one string, or an array of token ids
 * (the way to send special tokens on purpose). */
static bool completion_prompt(srv *s, srv_job *j, const cJSON *p, srv_err *e)
{
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    int32_t *ids = NULL;
    size_t n = 0;
    if (cJSON_IsString(p)) {
        if (glm_tokenizer_encode(s->tok, p->valuestring, strlen(p->valuestring), GLM_TOK_NO_SPECIAL, &ids, &n) !=
            GLM_OK) {
            srv_err_set(e, 400, "invalid_request_error", "invalid_value", "prompt", "%s", glm_last_error());
            return false;
        }
        return set_prompt(s, j, ids, n, "prompt", e);
    }
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) == 0)
        return bad(e, "prompt", "expected a string, an array of one string, or a non-empty array of token ids");
    return (ids = ids_from_json(s, p, "prompt", &n, e)) && set_prompt(s, j, ids, n, "prompt", e);
}

static void new_id(srv *s, srv_job *j, const char *prefix)
{
    unsigned long long k = atomic_fetch_add(&s->next_id, 1);
    snprintf(j->id, sizeof j->id, "%s-%llx%06llx", prefix, (unsigned long long)s->started, k);
    j->created = (long long)time(NULL);
}

/* tool_choice: "none" or "auto" (the model decides). "required" and a named function would
 * need constrained decoding, which this server does not do: they are refused, not ignored. */
static bool check_tool_choice(const cJSON *c, bool have_tools, srv_err *e)
{
    if (!c || cJSON_IsNull(c))
        return true;
    if (cJSON_IsString(c) && (!strcmp(c->valuestring, "none") || !strcmp(c->valuestring, "auto")))
        return true;
    if (cJSON_IsString(c) && !strcmp(c->valuestring, "required"))
        return bad(e, "tool_choice", "\"required\" is not supported (no constrained decoding); use \"auto\"");
    if (cJSON_IsObject(c)) {
        if (!have_tools)
            return bad(e, "tool_choice", "a named function needs \"tools\"");
        return bad(e, "tool_choice", "a named function is not supported (no constrained decoding); use \"auto\"");
    }
    return bad(e, "tool_choice", "expected \"none\" or \"auto\"");
}

bool srv_api_chat(srv *s, const cJSON *req, srv_job **out, srv_err *e)
{
    srv_job *j = srv_job_new();
    glm_chat *chat = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    bool ok = false;
    if (!j) {
        srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    j->kind = SRV_CHAT;
    j->thinking = true;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs");
    if (!get_common(s, req, j, e) || !get_logprobs(req, j, e))
        goto done;
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        bad(e, "messages", "expected a non-empty array");
        goto done;
    }
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) {
        bad(e, "tools", "expected an array");
        goto done;
    }
    if (!check_tool_choice(choice, cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0, e))
        goto done;
    if (choice && cJSON_IsString(choice) && !strcmp(choice->valuestring, "none"))
        tools = NULL; /* the model is not told about tools it may not call */
    if (kw && !cJSON_IsNull(kw)) {
        if (!cJSON_IsObject(kw)) {
            bad(e, "chat_template_kwargs", "expected an object");
            goto done;
        }
        if (!get_bool(kw, "enable_thinking", &j->thinking, e))
            goto done;
    }
    if (glm_chat_from_json(&chat, msgs, cJSON_IsArray(tools) ? tools : NULL) != GLM_OK) {
        srv_err_set(e, 400, "invalid_request_error", "invalid_value", "messages", "%s", glm_last_error());
        goto done;
    }
    glm_chat_options opt;
    glm_chat_options_default(&opt);
    opt.enable_thinking = j->thinking;
    /* message contents stay plain text: "<|user|>" typed by a user is not a role switch */
    if (glm_chat_encode(s->tok, chat, &opt, &ids, &n) != GLM_OK) {
        srv_err_set(e, 400, "invalid_request_error", "invalid_value", "messages", "%s", glm_last_error());
        goto done;
    }
    if (!set_prompt(s, j, ids, n, "messages", e))
        goto done;
    if (cJSON_IsArray(tools))
        j->tools = cJSON_Duplicate(tools, 1);
    new_id(s, j, "chatcmpl");
    ok = true;
done:
    glm_chat_destroy(chat);
    if (!ok)
        srv_job_unref(j);
    *out = ok ? j : NULL;
    return ok;
}

bool srv_api_completion(srv *s, const cJSON *req, srv_job **out, srv_err *e)
{
    srv_job *j = srv_job_new();
    bool ok = false;
    if (!j) {
        srv_err_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    j->kind = SRV_COMPLETION;
    if (!get_common(s, req, j, e) || !get_logprobs(req, j, e))
        goto done;
    if (!completion_prompt(s, j, cJSON_GetObjectItemCaseSensitive(req, "prompt"), e))
        goto done;
    new_id(s, j, "cmpl");
    ok = true;
done:
    if (!ok)
        srv_job_unref(j);
    *out = ok ? j : NULL;
    return ok;
}

bool srv_api_tokenize(srv *s, const cJSON *req, char **body, srv_err *e)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(req, "content");
    bool special = true;
    if (!cJSON_IsString(c))
        return bad(e, "content", "expected a string");
    if (!get_bool(req, "parse_special", &special, e))
        return false;
    int32_t *ids = NULL;
    size_t n = 0;
    if (glm_tokenizer_encode(s->tok, c->valuestring, strlen(c->valuestring), special ? 0 : GLM_TOK_NO_SPECIAL, &ids,
                             &n) != GLM_OK) {
        srv_err_set(e, 400, "invalid_request_error", "invalid_value", "content", "%s", glm_last_error());
        return false;
    }
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "tokens");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    free(ids);
    *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return true;
}

bool srv_api_detokenize(srv *s, const cJSON *req, char **body, srv_err *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "tokens");
    if (!cJSON_IsArray(t))
        return bad(e, "tokens", "expected an array of token ids");
    size_t n;
    int32_t *ids = ids_from_json(s, t, "tokens", &n, e);
    if (!ids)
        return false;
    char *text = NULL;
    size_t len = 0;
    glm_status st = glm_tokenizer_decode(s->tok, ids, (size_t)n, &text, &len);
    free(ids);
    if (st != GLM_OK) {
        srv_err_set(e, 400, "invalid_request_error", "invalid_value", "tokens", "%s", glm_last_error());
        return false;
    }
    /* JSON strings are UTF-8: a byte sequence that is not (a split character) is replaced */
    for (size_t k = 0; k < len;) {
        size_t v = glm_utf8_valid_prefix((const uint8_t *)text + k, len - k);
        k += v;
        if (k < len)
            text[k++] = '?';
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "content", text);
    free(text);
    *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return true;
}

char *srv_api_models(srv *s, const char *one_id)
{
    cJSON *root = NULL, *m;
    if (one_id) {
        if (strcmp(one_id, s->model_name))
            return NULL;
        root = m = cJSON_CreateObject();
    } else {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "object", "list");
        m = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), m);
    }
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->started);
    cJSON_AddStringToObject(m, "owned_by", "glm47");
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
