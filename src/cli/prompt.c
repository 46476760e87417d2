/* Prompt input helpers of the CLI (see prompt.h). */
#include "cli/prompt.h"

#include "tokenizer/chat.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

glm_status glm_cli_parse_ids(const char *arg, int32_t n_vocab, int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    size_t cap = strlen(arg) / 2 + 1;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return glm_errorf(GLM_ERR_NOMEM, "--ids: out of memory");
    int k = 0;
    for (const char *p = arg; *p;) {
        if (*p == ',' || *p == ' ') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || (*end && *end != ',' && *end != ' ')) {
            free(v);
            return glm_errorf(GLM_ERR_INVALID, "--ids: '%.20s' is not a list of integers", p);
        }
        if (x < 0 || x >= n_vocab) {
            free(v);
            return glm_errorf(GLM_ERR_INVALID, "--ids: token id %lld is outside the vocabulary [0, %d)", x, n_vocab);
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    if (k == 0) {
        free(v);
        return glm_errorf(GLM_ERR_INVALID, "--ids: no token ids given");
    }
    *ids = v;
    *n = k;
    return GLM_OK;
}

glm_status glm_cli_prompt_tokens(const glm_model *m, const char *ids_arg, const char *text, glm_cli_text_mode mode,
                                 glm_tokenizer **tok, int32_t **ids, int *n)
{
    if ((ids_arg != NULL) == (text != NULL))
        return glm_errorf(GLM_ERR_INVALID, "give exactly one of -p TEXT and --ids LIST");
    if (ids_arg)
        return glm_cli_parse_ids(ids_arg, m->hp.vocab_size, ids, n);
    glm_tokenizer *t = tok ? *tok : NULL;
    if (!t)
        GLM_TRY(glm_tokenizer_open(&t, m->path));
    size_t cnt = 0;
    glm_status st;
    if (mode == GLM_CLI_TEXT_RAW) {
        st = glm_tokenizer_encode(t, text, strlen(text), 0, ids, &cnt);
    } else {
        /* the conversation only borrows `text`: it is never passed to glm_chat_destroy */
        glm_chat_message msg = { .role = GLM_CHAT_USER, .content = (char *)text };
        glm_chat chat = { .messages = &msg, .n_messages = 1 };
        glm_chat_options opt;
        glm_chat_options_default(&opt);
        opt.enable_thinking = mode == GLM_CLI_TEXT_CHAT_THINK;
        st = glm_chat_encode(t, &chat, &opt, ids, &cnt);
    }
    if (tok)
        *tok = t;
    else
        glm_tokenizer_destroy(t);
    GLM_TRY(st);
    if (cnt == 0) {
        free(*ids);
        *ids = NULL;
        return glm_errorf(GLM_ERR_INVALID, "-p: the prompt encodes to no tokens");
    }
    for (size_t i = 0; i < cnt; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= m->hp.vocab_size) {
            free(*ids);
            *ids = NULL;
            return glm_errorf(GLM_ERR_FORMAT, "-p: the tokenizer produced id outside the model's vocabulary of %d",
                              m->hp.vocab_size);
        }
    *n = (int)cnt;
    return GLM_OK;
}

glm_status glm_cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || v < lo || v > hi)
        return glm_errorf(GLM_ERR_INVALID, "%s expects an integer in [%lld, %lld], got '%s'", opt, lo, hi,
                          s ? s : "");
    *out = v;
    return GLM_OK;
}

glm_status glm_cli_parse_float(const char *opt, const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0;
    if (!s || end == s || *end || errno || !isfinite(v))
        return glm_errorf(GLM_ERR_INVALID, "%s expects a number, got '%s'", opt, s ? s : "");
    *out = v;
    return GLM_OK;
}

void glm_cli_sections_print(glm_cli_sections *s, const glm_chat_event *ev)
{
    if (ev->kind == GLM_CHAT_EV_TOOL_CALL) {
        printf("\n[tool call] %s %s\n", ev->call->name, ev->call->arguments);
        fflush(stdout);
        return;
    }
    bool reasoning = ev->kind == GLM_CHAT_EV_REASONING;
    int want = reasoning ? 1 : 2;
    if (s->section != want) {
        if (s->tty)
            fputs(reasoning ? "\033[2m" : "\033[0m", stdout);
        printf("%s[%s]\n", s->section ? "\n" : "", reasoning ? "thinking" : "answer");
        s->section = want;
    }
    fwrite(ev->text, 1, ev->len, stdout);
    fflush(stdout);
}

void glm_cli_sections_end(glm_cli_sections *s)
{
    if (s->tty)
        fputs("\033[0m", stdout);
    s->section = 0;
}
