/* libFuzzer target: tokenizer/chat.c on arbitrary bytes. The first byte picks the path:
 * bit 0 = thinking on; bit 1 = treat the rest as an OpenAI request JSON and render it
 * (also with the plain-text ranges, which must describe the same text);
 * otherwise parse the rest as generated text, one-shot and streamed in chunks whose sizes
 * come from the first byte, and abort if the two disagree (the streaming contract). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat.h"

typedef struct acc {
    char *text[2];
    size_t len[2];
    size_t calls;
} acc;

static glm_status on_event(void *user, const glm_chat_event *ev)
{
    acc *a = user;
    if (ev->kind == GLM_CHAT_EV_TOOL_CALL) {
        a->calls++;
        return GLM_OK;
    }
    int k = ev->kind == GLM_CHAT_EV_CONTENT;
    char *p = realloc(a->text[k], a->len[k] + ev->len + 1);
    if (!p)
        abort();
    memcpy(p + a->len[k], ev->text, ev->len);
    a->len[k] += ev->len;
    p[a->len[k]] = '\0';
    a->text[k] = p;
    return GLM_OK;
}

static void render_request(const char *s, size_t n, bool think)
{
    cJSON *doc = cJSON_ParseWithLength(s, n);
    glm_chat *chat = NULL;
    if (doc && glm_chat_from_json(&chat, cJSON_GetObjectItem(doc, "messages"),
                                  cJSON_GetObjectItem(doc, "tools")) == GLM_OK) {
        glm_chat_options o;
        glm_chat_options_default(&o);
        o.enable_thinking = think;
        char *out = NULL, *out2 = NULL;
        size_t len = 0, len2 = 0, n_sp = 0;
        glm_text_span *sp = NULL;
        if (glm_chat_render(&out, &len, chat, &o) == GLM_OK && strncmp(out, "[gMASK]<sop>", 12))
            abort();
        /* the plain ranges: the same text, ascending, disjoint, inside it, never the prefix */
        if (glm_chat_render_spans(&out2, &len2, &sp, &n_sp, chat, &o) == GLM_OK) {
            if (!out || len2 != len || memcmp(out, out2, len))
                abort();
            for (size_t i = 0; i < n_sp; i++)
                if (sp[i].off < 12 || sp[i].len == 0 || sp[i].off + sp[i].len > len ||
                    (i && sp[i].off <= sp[i - 1].off + sp[i - 1].len - 1))
                    abort();
        }
        free(sp);
        free(out2);
        free(out);
    }
    glm_chat_destroy(chat);
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool think = data[0] & 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 2) {
        render_request(s, n, think);
        return 0;
    }
    glm_chat_parsed *p = NULL;
    if (glm_chat_parse(&p, s, n, think, NULL) != GLM_OK)
        return 0;
    glm_chat_stream *st = NULL;
    acc a = { { NULL, NULL }, { 0, 0 }, 0 };
    size_t chunk = 1 + (data[0] >> 2);
    if (glm_chat_stream_create(&st, think, NULL) == GLM_OK) {
        for (size_t i = 0; i < n; i += chunk)
            if (glm_chat_stream_feed(st, s + i, n - i < chunk ? n - i : chunk, on_event, &a) != GLM_OK)
                abort();
        if (glm_chat_stream_finish(st, on_event, &a) != GLM_OK)
            abort();
        if (strcmp(a.text[0] ? a.text[0] : "", p->reasoning) ||
            strcmp(a.text[1] ? a.text[1] : "", p->content) || a.calls != p->n_calls)
            abort(); /* streamed and one-shot results differ */
    }
    glm_chat_stream_destroy(st);
    free(a.text[0]);
    free(a.text[1]);
    glm_chat_parsed_destroy(p);
    return 0;
}
