/* logprobs of generated tokens in OpenAI's two shapes. Each token the worker takes gets one
 * entry (engine/logprobs.h: log-softmax of the raw logits it was sampled from, before the
 * sampler's transforms; the ids ignore_eos masks count as -inf, reported as -9999.0 the way
 * OpenAI reports impossible tokens). Entries cover exactly the tokens counted in
 * usage.completion_tokens; a stream attaches the entries not yet sent to its next chunk, so
 * the streamed lists concatenate to the non-streamed one.
 *   chat:        {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}], "refusal": null}
 *   completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}
 * "token" is the token's bytes as text (bytes that are not valid UTF-8 on their own, a piece of
 * a character, become U+FFFD; "bytes" has them exactly); text_offset counts bytes of the
 * generated text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_priv.h"

bool srv_lp_init(srv_lp *l, int top, int cap)
{
    memset(l, 0, sizeof *l);
    l->top = top;
    l->cap = cap > 0 ? cap : 1;
    l->t = malloc(sizeof *l->t * (size_t)l->cap);
    return l->t != NULL;
}

void srv_lp_free(srv_lp *l)
{
    free(l->t);
    memset(l, 0, sizeof *l);
}

glm_status srv_lp_add(srv_lp *l, const float *logits, int32_t n_vocab, int32_t id, size_t text_off)
{
    if (l->n == l->cap)
        return glm_errorf(GLM_ERR_INVALID, "logprobs: more tokens than max_tokens (%d)", l->cap);
    srv_lp_tok *e = &l->t[l->n];
    GLM_TRY(glm_logprobs_top(logits, n_vocab, id, l->top, &e->lp, e->top_id, e->top_lp));
    e->id = id;
    e->off = text_off;
    l->n++;
    return GLM_OK;
}

static double num(float lp) { return isfinite(lp) ? (double)lp : -9999.0; }

/* The token's bytes as valid UTF-8 text (malloc'd); *raw and *n receive the exact bytes. */
static char *token_text(const glm_tokenizer *tok, int32_t id, const char **raw, size_t *n)
{
    *raw = glm_tokenizer_token_bytes(tok, id, n);
    if (!*raw)
        *raw = "", *n = 0;
    char *s = malloc(3 * *n + 1), *o = s;
    if (!s)
        return NULL;
    for (size_t k = 0; k < *n;) {
        size_t v = glm_utf8_valid_prefix((const uint8_t *)*raw + k, *n - k);
        memcpy(o, *raw + k, v);
        o += v, k += v;
        if (k < *n) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3, k++;
        }
    }
    *o = 0;
    return s;
}

static cJSON *chat_entry(const glm_tokenizer *tok, int32_t id, float lp)
{
    const char *raw;
    size_t n;
    char *s = token_text(tok, id, &raw, &n);
    cJSON *o = cJSON_CreateObject(), *b = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "token", s ? s : "");
    cJSON_AddNumberToObject(o, "logprob", num(lp));
    for (size_t k = 0; k < n; k++)
        cJSON_AddItemToArray(b, cJSON_CreateNumber((uint8_t)raw[k]));
    cJSON_AddItemToObject(o, "bytes", b);
    free(s);
    return o;
}

cJSON *srv_lp_json(const srv_lp *l, const glm_tokenizer *tok, bool chat, int from, int to)
{
    cJSON *root = cJSON_CreateObject();
    if (chat) {
        cJSON *content = cJSON_AddArrayToObject(root, "content");
        for (int i = from; i < to; i++) {
            const srv_lp_tok *e = &l->t[i];
            cJSON *o = chat_entry(tok, e->id, e->lp), *top = cJSON_AddArrayToObject(o, "top_logprobs");
            for (int k = 0; k < l->top; k++)
                cJSON_AddItemToArray(top, chat_entry(tok, e->top_id[k], e->top_lp[k]));
            cJSON_AddItemToArray(content, o);
        }
        cJSON_AddNullToObject(root, "refusal");
        return root;
    }
    cJSON *toks = cJSON_AddArrayToObject(root, "tokens"), *lps = cJSON_AddArrayToObject(root, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(root, "top_logprobs"), *offs = cJSON_AddArrayToObject(root, "text_offset");
    for (int i = from; i < to; i++) {
        const srv_lp_tok *e = &l->t[i];
        const char *raw;
        size_t n;
        char *s = token_text(tok, e->id, &raw, &n);
        cJSON_AddItemToArray(toks, cJSON_CreateString(s ? s : ""));
        free(s);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(num(e->lp)));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)e->off));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < l->top; k++) {
            char *ts = token_text(tok, e->top_id[k], &raw, &n);
            if (ts && !cJSON_GetObjectItemCaseSensitive(top, ts)) /* two ids, one text: the likelier one */
                cJSON_AddNumberToObject(top, ts, num(e->top_lp[k]));
            free(ts);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return root;
}
