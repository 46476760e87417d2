/* GLM-4.7 chat template renderer (model-spec.md §7.2 rules 1-4), the OpenAI-request builder
 * for its input structs, a Python-compatible JSON serialiser for the tools block, and the
 * reverse parser (one-shot and streaming) for generated assistant text.
 * Deliberately not a Jinja engine: the template is fixed, so it is written out as C. */
#include "tokenizer/chat.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ string builder */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Hand the buffer to the caller ("" when nothing was written); NULL after an allocation
 * failure (the buffer is freed either way). */
static char *sb_take(sbuf *b, size_t *len)
{
    if (!b->oom && !b->p)
        sb_put(b, "", 0);
    if (b->oom) {
        free(b->p);
        *b = (sbuf){ 0 };
        return NULL;
    }
    char *p = b->p;
    if (len)
        *len = b->len;
    *b = (sbuf){ 0 };
    return p;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* --------------------------------------------------------- Python-style whitespace */

/* Code point and byte length of the UTF-8 sequence at s (n bytes left); invalid bytes
 * decode as themselves with length 1, which is never whitespace above 0x7f. */
static uint32_t utf8_at(const unsigned char *s, size_t n, size_t *len)
{
    unsigned c = s[0];
    size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need <= 1 || need > n) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (0x7f >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *len = need;
    return cp;
}

/* Python str.isspace() for one code point: what the template's .strip() removes. */
static bool py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Python s.strip(): returns the start and sets *n to the stripped length. */
static const char *py_strip(const char *s, size_t *n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t b = 0, e = *n, l;
    while (b < e && py_space(utf8_at(u + b, e - b, &l)))
        b += l;
    while (e > b) {
        size_t st = e - 1;
        while (st > b && (u[st] & 0xc0) == 0x80 && e - st < 4)
            st--;
        if (!py_space(utf8_at(u + st, e - st, &l)) || st + l != e)
            break;
        e = st;
    }
    *n = e - b;
    return s + b;
}

/* ------------------------------------------------------------- JSON (Python dumps) */

static void dump_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c); /* json.dumps uses lower-case hex */
                esc = u;
            }
        }
        if (esc) {
            sb_put(b, run, (size_t)(s - run));
            sb_puts(b, esc);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

/* Python float repr: the shortest digits that round-trip, fixed notation for exponents in
 * [-4, 16), else d.ddde±XX (at least two exponent digits). */
static void py_float_repr(char *out, size_t cap, double v)
{
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    char dig[24];
    int nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    q += neg;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < 20)
            dig[nd++] = *q;
    int ex = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    sbuf b = { 0 };
    if (neg)
        sb_put(&b, "-", 1);
    if (ex >= -4 && ex < 16) {
        if (ex < 0) {
            sb_puts(&b, "0.");
            for (int i = 0; i < -ex - 1; i++)
                sb_put(&b, "0", 1);
            sb_put(&b, dig, (size_t)nd);
        } else {
            for (int i = 0; i <= ex; i++)
                sb_put(&b, i < nd ? &dig[i] : "0", 1);
            sb_put(&b, ".", 1);
            if (nd > ex + 1)
                sb_put(&b, dig + ex + 1, (size_t)(nd - ex - 1));
            else
                sb_put(&b, "0", 1);
        }
    } else {
        char x[16];
        sb_put(&b, dig, 1);
        if (nd > 1) {
            sb_put(&b, ".", 1);
            sb_put(&b, dig + 1, (size_t)(nd - 1));
        }
        snprintf(x, sizeof x, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
        sb_puts(&b, x);
    }
    char *s = sb_take(&b, NULL);
    snprintf(out, cap, "%s", s ? s : "0");
    free(s);
}

static void dump_number(sbuf *b, double v)
{
    char buf[64];
    if (isnan(v))
        snprintf(buf, sizeof buf, "NaN");
    else if (isinf(v))
        snprintf(buf, sizeof buf, v < 0 ? "-Infinity" : "Infinity");
    else if (v == floor(v) && fabs(v) < 1e16) /* cJSON cannot tell 3 from 3.0: print ints */
        snprintf(buf, sizeof buf, "%.0f", v == 0 ? 0.0 : v);
    else
        py_float_repr(buf, sizeof buf, v);
    sb_puts(b, buf);
}

static glm_status dump_value(sbuf *b, const cJSON *v)
{
    if (cJSON_IsNull(v))
        sb_puts(b, "null");
    else if (cJSON_IsFalse(v))
        sb_puts(b, "false");
    else if (cJSON_IsTrue(v))
        sb_puts(b, "true");
    else if (cJSON_IsNumber(v))
        dump_number(b, v->valuedouble);
    else if (cJSON_IsString(v))
        dump_string(b, v->valuestring ? v->valuestring : "");
    else if (cJSON_IsRaw(v))
        sb_puts(b, v->valuestring ? v->valuestring : "null");
    else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v);
        sb_put(b, obj ? "{" : "[", 1);
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child)
                sb_put(b, ", ", 2);
            if (obj) {
                dump_string(b, c->string ? c->string : "");
                sb_put(b, ": ", 2);
            }
            GLM_TRY(dump_value(b, c));
        }
        sb_put(b, obj ? "}" : "]", 1);
    } else
        return glm_errorf(GLM_ERR_INVALID, "json: value of unknown cJSON type %d", v->type);
    return GLM_OK;
}

glm_status glm_chat_json_dumps(char **out, const cJSON *v)
{
    *out = NULL;
    sbuf b = { 0 };
    glm_status st = dump_value(&b, v);
    if (st != GLM_OK) {
        free(b.p);
        return st;
    }
    if (!(*out = sb_take(&b, NULL)))
        return glm_errorf(GLM_ERR_NOMEM, "json: out of memory");
    return GLM_OK;
}

/* ------------------------------------------------------------------ structs */

void glm_chat_options_default(glm_chat_options *o)
{
    o->enable_thinking = true;
    o->clear_thinking = -1;
    o->add_generation_prompt = true;
}

static void tool_call_free(glm_chat_tool_call *tc)
{
    free(tc->name);
    for (size_t i = 0; i < tc->n_args; i++) {
        free(tc->args[i].key);
        free(tc->args[i].value);
    }
    free(tc->args);
}

void glm_chat_destroy(glm_chat *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_messages; i++) {
        glm_chat_message *m = &c->messages[i];
        free(m->content);
        free(m->reasoning_content);
        for (size_t j = 0; j < m->n_tool_calls; j++)
            tool_call_free(&m->tool_calls[j]);
        free(m->tool_calls);
    }
    free(c->messages);
    for (size_t i = 0; i < c->n_tools; i++)
        free(c->tools[i]);
    free(c->tools);
    free(c);
}

/* ------------------------------------------------------------------ from cJSON */

#define OOM() glm_errorf(GLM_ERR_NOMEM, "chat: out of memory")

/* content: string, null/absent, or [{type:"text", text:"..."}...] (parts joined as is). */
static glm_status content_from_json(char **out, const cJSON *c, size_t i, const char *field)
{
    if (!c || cJSON_IsNull(c)) {
        *out = dup_n("", 0);
        return *out ? GLM_OK : OOM();
    }
    if (cJSON_IsString(c)) {
        *out = dup_n(c->valuestring, strlen(c->valuestring));
        return *out ? GLM_OK : OOM();
    }
    if (!cJSON_IsArray(c))
        return glm_errorf(GLM_ERR_INVALID,
                          "messages[%zu].%s: expected a string, null or an array of text parts",
                          i, field);
    sbuf b = { 0 };
    size_t j = 0;
    for (const cJSON *p = c->child; p; p = p->next, j++) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsObject(p) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text") ||
            !cJSON_IsString(tx)) {
            free(b.p);
            return glm_errorf(GLM_ERR_INVALID,
                              "messages[%zu].%s[%zu]: expected {\"type\": \"text\", \"text\": string}",
                              i, field, j);
        }
        sb_puts(&b, tx->valuestring);
    }
    *out = sb_take(&b, NULL);
    return *out ? GLM_OK : OOM();
}

/* An argument object's members, in order: strings stay strings, the rest become JSON. */
static glm_status args_from_object(glm_chat_tool_call *tc, const cJSON *obj)
{
    size_t n = (size_t)cJSON_GetArraySize(obj);
    if (!n)
        return GLM_OK;
    tc->args = calloc(n, sizeof *tc->args);
    if (!tc->args)
        return OOM();
    for (const cJSON *a = obj->child; a; a = a->next) {
        glm_chat_arg *g = &tc->args[tc->n_args++];
        g->key = dup_n(a->string ? a->string : "", a->string ? strlen(a->string) : 0);
        if (!g->key)
            return OOM();
        if (cJSON_IsString(a)) {
            g->value = dup_n(a->valuestring, strlen(a->valuestring));
            if (!g->value)
                return OOM();
        } else {
            g->is_json = true;
            GLM_TRY(glm_chat_json_dumps(&g->value, a));
        }
    }
    return GLM_OK;
}

static glm_status tool_call_from_json(glm_chat_tool_call *tc, const cJSON *j, size_t i, size_t k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "function");
    if (!cJSON_IsObject(j) || (f && !cJSON_IsObject(f)))
        return glm_errorf(GLM_ERR_INVALID,
                          "messages[%zu].tool_calls[%zu]: expected {\"function\": {\"name\", \"arguments\"}}",
                          i, k);
    if (f) /* OpenAI nests name/arguments under "function"; HF also accepts them flat */
        j = f;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(name))
        return glm_errorf(GLM_ERR_INVALID, "messages[%zu].tool_calls[%zu].function.name: expected a string",
                          i, k);
    if (!(tc->name = dup_n(name->valuestring, strlen(name->valuestring))))
        return OOM();
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
    if (!args || cJSON_IsNull(args))
        return GLM_OK;
    if (cJSON_IsObject(args))
        return args_from_object(tc, args);
    if (cJSON_IsString(args)) {
        size_t n = strlen(args->valuestring);
        const char *s = py_strip(args->valuestring, &n);
        if (n == 0) /* some clients send "" for a call without arguments */
            return GLM_OK;
        cJSON *obj = cJSON_ParseWithLength(s, n);
        glm_status st = GLM_OK;
        if (!cJSON_IsObject(obj))
            st = glm_errorf(GLM_ERR_INVALID,
                            "messages[%zu].tool_calls[%zu].function.arguments: expected the JSON text of an object",
                            i, k);
        else
            st = args_from_object(tc, obj);
        cJSON_Delete(obj);
        return st;
    }
    return glm_errorf(GLM_ERR_INVALID,
                      "messages[%zu].tool_calls[%zu].function.arguments: expected a JSON object or its text",
                      i, k);
}

static glm_status message_from_json(glm_chat_message *m, const cJSON *j, size_t i)
{
    static const char *roles[] = { "system", "user", "assistant", "tool" };
    if (!cJSON_IsObject(j))
        return glm_errorf(GLM_ERR_INVALID, "messages[%zu]: expected an object", i);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(j, "role");
    int r = -1;
    for (int k = 0; k < 4 && cJSON_IsString(role); k++)
        if (!strcmp(role->valuestring, roles[k]))
            r = k;
    if (r < 0)
        return glm_errorf(GLM_ERR_INVALID,
                          "messages[%zu].role: expected one of system, user, assistant, tool", i);
    m->role = (glm_chat_role)r;
    GLM_TRY(content_from_json(&m->content, cJSON_GetObjectItemCaseSensitive(j, "content"), i, "content"));
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(j, "reasoning_content");
    if (rc && !cJSON_IsNull(rc))
        GLM_TRY(content_from_json(&m->reasoning_content, rc, i, "reasoning_content"));
    const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(j, "tool_calls");
    if (!tcs || cJSON_IsNull(tcs))
        return GLM_OK;
    if (!cJSON_IsArray(tcs) || m->role != GLM_CHAT_ASSISTANT)
        return glm_errorf(GLM_ERR_INVALID, "messages[%zu].tool_calls: expected an array on an assistant message", i);
    size_t n = (size_t)cJSON_GetArraySize(tcs);
    if (!n)
        return GLM_OK;
    if (!(m->tool_calls = calloc(n, sizeof *m->tool_calls)))
        return OOM();
    size_t k = 0;
    for (const cJSON *t = tcs->child; t; t = t->next, k++) {
        m->n_tool_calls = k + 1; /* counted before filling, so destroy frees a partial one */
        GLM_TRY(tool_call_from_json(&m->tool_calls[k], t, i, k));
    }
    return GLM_OK;
}

static glm_status tools_from_json(glm_chat *c, const cJSON *tools)
{
    if (!tools || cJSON_IsNull(tools))
        return GLM_OK;
    if (!cJSON_IsArray(tools))
        return glm_errorf(GLM_ERR_INVALID, "tools: expected an array");
    size_t n = (size_t)cJSON_GetArraySize(tools);
    if (!n)
        return GLM_OK;
    if (!(c->tools = calloc(n, sizeof *c->tools)))
        return OOM();
    size_t k = 0;
    for (const cJSON *t = tools->child; t; t = t->next, k++) {
        if (!cJSON_IsObject(t))
            return glm_errorf(GLM_ERR_INVALID, "tools[%zu]: expected an object", k);
        c->n_tools = k + 1;
        GLM_TRY(glm_chat_json_dumps(&c->tools[k], t));
    }
    return GLM_OK;
}

glm_status glm_chat_from_json(glm_chat **out, const cJSON *messages, const cJSON *tools)
{
    *out = NULL;
    if (!cJSON_IsArray(messages))
        return glm_errorf(GLM_ERR_INVALID, "messages: expected an array of message objects");
    glm_chat *c = calloc(1, sizeof *c);
    if (!c)
        return OOM();
    glm_status st = GLM_OK;
    size_t n = (size_t)cJSON_GetArraySize(messages);
    if (n && !(c->messages = calloc(n, sizeof *c->messages))) {
        st = OOM();
        goto fail;
    }
    size_t i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        c->n_messages = i + 1;
        if ((st = message_from_json(&c->messages[i], m, i)) != GLM_OK)
            goto fail;
    }
    if ((st = tools_from_json(c, tools)) != GLM_OK)
        goto fail;
    *out = c;
    return GLM_OK;
fail:
    glm_chat_destroy(c);
    return st;
}

/* ------------------------------------------------------------------ renderer (§7.2) */

static const char k_tools_head[] =
    "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n";
static const char k_tools_tail[] =
    "</tools>\n\nFor each function call, output the function name and arguments within the "
    "following XML format:\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>"
    "{arg-value-1}</arg_value><arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>"
    "...</tool_call>";

/* Rule 3, assistant reasoning when reasoning_content is absent: the text before the first
 * </think> (rstrip '\n'), after the last <think> in it (lstrip '\n'); content becomes the
 * text after the last </think> (lstrip '\n'). Mirrors the template's split()s exactly. */
static void split_think(const char *c, const char **r, size_t *rn, const char **body)
{
    const char *first = strstr(c, "</think>");
    if (!first) {
        *r = "";
        *rn = 0;
        *body = c;
        return;
    }
    size_t n = (size_t)(first - c);
    while (n && c[n - 1] == '\n')
        n--;
    const char *start = c;
    for (const char *p = c; (p = strstr(p, "<think>")) && p + 7 <= c + n; p++)
        start = p + 7;
    n -= (size_t)(start - c);
    while (n && *start == '\n')
        start++, n--;
    *r = start;
    *rn = n;
    const char *last = first;
    for (const char *p = first; (p = strstr(p + 1, "</think>"));)
        last = p;
    *body = last + 8;
    while (**body == '\n')
        (*body)++;
}

/* Hand-built structs may leave strings NULL: render them as empty. */
#define STR(x) ((x) ? (x) : "")

/* The renderer's output: the text, plus the byte ranges that came from the conversation
 * (message contents, reasoning, tool names, arguments and definitions) rather than from
 * the template, so that the tokenizer can keep special-token matching off there. */
typedef struct rbuf {
    sbuf b;
    glm_text_span *sp;
    size_t n_sp, cap_sp;
} rbuf;

/* Template text: special markers stay special. */
static void tpl(rbuf *r, const char *s) { sb_puts(&r->b, s); }

/* Conversation text: recorded as a plain range (adjacent ones merge). */
static void lit(rbuf *r, const char *s, size_t n)
{
    size_t off = r->b.len;
    sb_put(&r->b, s, n);
    if (r->b.oom || !n)
        return;
    if (r->n_sp && r->sp[r->n_sp - 1].off + r->sp[r->n_sp - 1].len == off) {
        r->sp[r->n_sp - 1].len += n;
        return;
    }
    if (r->n_sp == r->cap_sp) {
        size_t cap = r->cap_sp ? 2 * r->cap_sp : 16;
        glm_text_span *np = realloc(r->sp, cap * sizeof *np);
        if (!np) {
            r->b.oom = true;
            return;
        }
        r->sp = np;
        r->cap_sp = cap;
    }
    r->sp[r->n_sp++] = (glm_text_span){ off, n };
}

static void lits(rbuf *r, const char *s) { lit(r, s, strlen(s)); }

static void render_assistant(rbuf *r, const glm_chat_message *m, bool may_keep)
{
    const char *rs, *body;
    size_t rn;
    if (m->reasoning_content) {
        rs = m->reasoning_content;
        rn = strlen(rs);
        body = STR(m->content);
    } else
        split_think(STR(m->content), &rs, &rn, &body);
    tpl(r, "<|assistant|>");
    if (may_keep && rn) {
        const char *s = py_strip(rs, &rn);
        tpl(r, "<think>");
        lit(r, s, rn);
    }
    tpl(r, "</think>");
    size_t cn = strlen(body);
    const char *cs = py_strip(body, &cn);
    lit(r, cs, cn);
    for (size_t k = 0; k < m->n_tool_calls; k++) {
        const glm_chat_tool_call *tc = &m->tool_calls[k];
        tpl(r, "<tool_call>");
        lits(r, STR(tc->name));
        for (size_t a = 0; a < tc->n_args; a++) {
            tpl(r, "<arg_key>");
            lits(r, STR(tc->args[a].key));
            tpl(r, "</arg_key><arg_value>");
            lits(r, STR(tc->args[a].value)); /* strings verbatim, others already JSON text */
            tpl(r, "</arg_value>");
        }
        tpl(r, "</tool_call>");
    }
}

glm_status glm_chat_render_spans(char **out, size_t *out_len, glm_text_span **plain, size_t *n_plain,
                                 const glm_chat *chat, const glm_chat_options *opt)
{
    glm_chat_options def;
    if (!opt) {
        glm_chat_options_default(&def);
        opt = &def;
    }
    *out = NULL;
    if (plain) {
        *plain = NULL;
        *n_plain = 0;
    }
    rbuf r = { 0 };
    tpl(&r, "[gMASK]<sop>"); /* rule 1; never add another BOS (§8 item 14) */
    if (chat->n_tools) {     /* rule 2 */
        tpl(&r, k_tools_head);
        for (size_t i = 0; i < chat->n_tools; i++) {
            lits(&r, STR(chat->tools[i]));
            tpl(&r, "\n");
        }
        tpl(&r, k_tools_tail);
    }
    size_t last_user = SIZE_MAX; /* "none": every assistant message counts as after it */
    for (size_t i = 0; i < chat->n_messages; i++)
        if (chat->messages[i].role == GLM_CHAT_USER)
            last_user = i;
    for (size_t i = 0; i < chat->n_messages; i++) { /* rule 3 */
        const glm_chat_message *m = &chat->messages[i];
        switch (m->role) {
        case GLM_CHAT_SYSTEM:
            tpl(&r, "<|system|>");
            lits(&r, STR(m->content));
            break;
        case GLM_CHAT_USER:
            tpl(&r, "<|user|>");
            lits(&r, STR(m->content));
            break;
        case GLM_CHAT_ASSISTANT:
            render_assistant(&r, m, last_user == SIZE_MAX || i > last_user || opt->clear_thinking == 0);
            break;
        case GLM_CHAT_TOOL:
            if (i == 0 || chat->messages[i - 1].role != GLM_CHAT_TOOL)
                tpl(&r, "<|observation|>");
            tpl(&r, "<tool_response>");
            lits(&r, STR(m->content));
            tpl(&r, "</tool_response>");
            break;
        }
    }
    if (opt->add_generation_prompt) /* rule 4: GLM-4.7-Flash, not GLM-5's <think></think> */
        tpl(&r, opt->enable_thinking ? "<|assistant|><think>" : "<|assistant|></think>");
    if (!(*out = sb_take(&r.b, out_len))) {
        free(r.sp);
        return OOM();
    }
    if (plain) {
        *plain = r.sp;
        *n_plain = r.n_sp;
    } else {
        free(r.sp);
    }
    return GLM_OK;
}

glm_status glm_chat_render(char **out, size_t *out_len, const glm_chat *chat, const glm_chat_options *opt)
{
    return glm_chat_render_spans(out, out_len, NULL, NULL, chat, opt);
}

glm_status glm_chat_encode(const glm_tokenizer *t, const glm_chat *chat, const glm_chat_options *opt, int32_t **ids,
                           size_t *n)
{
    char *text = NULL;
    size_t len = 0, n_plain = 0;
    glm_text_span *plain = NULL;
    *ids = NULL;
    *n = 0;
    GLM_TRY(glm_chat_render_spans(&text, &len, &plain, &n_plain, chat, opt));
    glm_status st = glm_tokenizer_encode_spans(t, text, len, 0, plain, n_plain, ids, n);
    free(text);
    free(plain);
    return st;
}

/* ------------------------------------------------------------------ reverse parser */

enum { M_REASON, M_CONTENT, M_CALL };

static const char *const k_tags[] = { "<think>",   "</think>",   "<tool_call>", "</tool_call>",
                                      "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>" };
enum { T_THINK, T_ETHINK, T_CALL, T_ECALL, T_KEY, T_EKEY, T_VAL, T_EVAL, T_COUNT };

typedef struct chan {
    bool started; /* a non-whitespace byte was emitted: no more leading-space stripping */
    sbuf ws;      /* trailing whitespace held until more text follows */
} chan;

struct glm_chat_stream {
    int mode;
    sbuf in;     /* input not yet decided */
    size_t scan; /* M_CALL: bytes of `in` already searched for the end of the call */
    chan ch[2];  /* [0] reasoning, [1] content */
    sbuf tmp;    /* scratch for one delta */
    cJSON *tools; /* owned copy of the request's tools (NULL: no schemas) */
};

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Bytes at the end of s[0..n) that begin a valid but unfinished UTF-8 sequence (0 if none):
 * a token can end inside a character, and a delta cut there is not valid UTF-8 text. */
static size_t utf8_partial_tail(const char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xc0) == 0x80)
            continue;
        size_t need = c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* Emit text on the current channel: leading whitespace of the channel is dropped, trailing
 * whitespace and an unfinished UTF-8 character are held until more text follows. */
static glm_status emit_text(glm_chat_stream *s, const char *p, size_t n, glm_chat_event_fn fn, void *user)
{
    chan *c = &s->ch[s->mode == M_REASON ? 0 : 1];
    if (!c->started) {
        while (n && is_ws(*p))
            p++, n--;
        if (!n)
            return GLM_OK;
        c->started = true;
    }
    size_t e = n;
    while (e && is_ws(p[e - 1]))
        e--;
    if (e) {
        s->tmp.len = 0;
        sb_put(&s->tmp, c->ws.p, c->ws.len);
        sb_put(&s->tmp, p, e);
        c->ws.len = 0;
        if (s->tmp.oom)
            return OOM();
        size_t tail = utf8_partial_tail(s->tmp.p, s->tmp.len);
        sb_put(&c->ws, s->tmp.p + s->tmp.len - tail, tail);
        glm_chat_event ev = { s->mode == M_REASON ? GLM_CHAT_EV_REASONING : GLM_CHAT_EV_CONTENT,
                              s->tmp.p, s->tmp.len - tail, NULL };
        if (ev.len)
            GLM_TRY(fn(user, &ev));
    }
    sb_put(&c->ws, p + e, n - e);
    return c->ws.oom ? OOM() : GLM_OK;
}

/* Strict JSON number grammar (RFC 8259): cJSON alone would also take "007" or "1.". */
static bool json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

/* A parsed argument value: numbers keep their exact text (raw), objects/arrays/literals are
 * re-serialised, everything else (quoted strings included) stays the string as written. */
static cJSON *arg_value_json(const char *v, size_t n, bool string_typed)
{
    size_t sn = n;
    const char *s = py_strip(v, &sn);
    if (string_typed)
        sn = 0; /* skip the JSON attempts below */
    if (sn && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) {
        if (json_number(s, sn)) {
            char *t = dup_n(s, sn);
            cJSON *r = t ? cJSON_CreateRaw(t) : NULL;
            free(t);
            return r;
        }
    } else if (sn && (s[0] == '{' || s[0] == '[' || s[0] == 't' || s[0] == 'f' || s[0] == 'n')) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, sn, &end, false);
        if (j && end == s + sn)
            return j;
        cJSON_Delete(j);
    }
    char *t = dup_n(v, n);
    cJSON *r = t ? cJSON_CreateString(t) : NULL;
    free(t);
    return r;
}

typedef struct call_build {
    sbuf name, key, val;
    cJSON *args;
    const cJSON *tools; /* request tools or NULL */
    const cJSON *props; /* parameters.properties of the called tool, once the name is known */
    bool have_key;
    bool oom;
} call_build;

/* The called tool's parameters.properties (tools[i] = {function: {name, parameters}}). */
static const cJSON *tool_props(const cJSON *tools, const char *name, size_t n)
{
    for (const cJSON *t = tools ? tools->child : NULL; t; t = t->next) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f ? f : t, "name");
        if (cJSON_IsString(nm) && strlen(nm->valuestring) == n && !memcmp(nm->valuestring, name, n)) {
            const cJSON *par = cJSON_GetObjectItemCaseSensitive(f ? f : t, "parameters");
            return cJSON_GetObjectItemCaseSensitive(par, "properties");
        }
    }
    return NULL;
}

/* Whether the schema declares the argument a string ("type": "string", or a type list whose
 * only non-null member is "string"): then "123" or "true" stay strings, as written. */
static bool arg_is_string(const cJSON *props, const char *key)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(props, key), "type");
    if (cJSON_IsString(ty))
        return !strcmp(ty->valuestring, "string");
    bool str = false;
    for (const cJSON *e = cJSON_IsArray(ty) ? ty->child : NULL; e; e = e->next) {
        if (!cJSON_IsString(e) || (strcmp(e->valuestring, "string") && strcmp(e->valuestring, "null")))
            return false;
        str |= !strcmp(e->valuestring, "string");
    }
    return str;
}

static void commit_arg(call_build *cb)
{
    size_t kn = cb->key.len;
    const char *k = py_strip(cb->key.p ? cb->key.p : "", &kn);
    if (cb->have_key && kn) {
        char *key = dup_n(k, kn);
        cJSON *v = key ? arg_value_json(cb->val.p ? cb->val.p : "", cb->val.len, arg_is_string(cb->props, key))
                       : NULL;
        if (!key || !v) {
            cb->oom = true;
            cJSON_Delete(v);
        } else if (cJSON_GetObjectItemCaseSensitive(cb->args, key))
            cJSON_ReplaceItemInObjectCaseSensitive(cb->args, key, v); /* keeps the first position */
        else if (!cJSON_AddItemToObject(cb->args, key, v)) {
            cb->oom = true;
            cJSON_Delete(v);
        }
        free(key);
    }
    cb->have_key = false;
    cb->key.len = cb->val.len = 0;
}

static int match_tag(const char *p, size_t n, int from, int to)
{
    for (int t = from; t < to; t++) {
        size_t tl = strlen(k_tags[t]);
        if (n >= tl && !memcmp(p, k_tags[t], tl))
            return t;
    }
    return -1;
}

/* The call body state machine; see the recovery rules in chat.h. */
static void call_scan(call_build *cb, const char *p, size_t n)
{
    enum { S_NAME, S_IDLE, S_KEY, S_VAL } st = S_NAME;
    size_t i = 0;
    while (i <= n) {
        size_t t = i;
        int tag = -1;
        for (; t < n; t++)
            if (p[t] == '<' && (tag = match_tag(p + t, n - t, T_KEY, T_COUNT)) >= 0)
                break;
        sbuf *dst = st == S_NAME ? &cb->name : st == S_KEY ? &cb->key : st == S_VAL ? &cb->val : NULL;
        if (dst)
            sb_put(dst, p + i, t - i);
        if (tag < 0)
            break;
        if (st == S_NAME) {
            size_t nn = cb->name.len;
            const char *nm = py_strip(cb->name.p ? cb->name.p : "", &nn);
            cb->props = tool_props(cb->tools, nm, nn);
            st = S_IDLE;
        }
        if (tag == T_KEY) {
            if (st == S_VAL)
                commit_arg(cb);
            cb->have_key = false;
            cb->key.len = 0;
            st = S_KEY;
        } else if (tag == T_EKEY && st == S_KEY) {
            cb->have_key = true;
            st = S_IDLE;
        } else if (tag == T_VAL) {
            if (st == S_KEY)
                cb->have_key = true; /* missing </arg_key> */
            else if (st == S_VAL)
                commit_arg(cb); /* missing </arg_value>: the next value has no key */
            cb->val.len = 0;
            st = S_VAL;
        } else if (tag == T_EVAL && st == S_VAL) {
            commit_arg(cb);
            st = S_IDLE;
        }
        i = t + strlen(k_tags[tag]);
    }
    if (st == S_VAL)
        commit_arg(cb); /* truncated: keep what the value has */
    cb->oom |= cb->name.oom || cb->key.oom || cb->val.oom;
}

static glm_status emit_call(const cJSON *tools, const char *p, size_t n, glm_chat_event_fn fn, void *user)
{
    call_build cb = { .tools = tools };
    glm_status st = GLM_OK;
    if (!(cb.args = cJSON_CreateObject()))
        return OOM();
    call_scan(&cb, p, n);
    size_t nn = cb.name.len;
    const char *name = py_strip(cb.name.p ? cb.name.p : "", &nn);
    glm_chat_call_out call = { dup_n(name, nn), NULL };
    if (cb.oom || !call.name)
        st = OOM();
    else if (nn) /* a call with no name is dropped */
        st = glm_chat_json_dumps(&call.arguments, cb.args);
    if (st == GLM_OK && nn) {
        glm_chat_event ev = { GLM_CHAT_EV_TOOL_CALL, NULL, 0, &call };
        st = fn(user, &ev);
    }
    free(call.name);
    free(call.arguments);
    free(cb.name.p);
    free(cb.key.p);
    free(cb.val.p);
    cJSON_Delete(cb.args);
    return st;
}

/* M_CALL: find the end of the call (</tool_call> or a new <tool_call>) in in[*pos..]. */
static glm_status step_call(glm_chat_stream *s, size_t *pos, bool final, bool *hold,
                            glm_chat_event_fn fn, void *user)
{
    const char *p = s->in.p + *pos;
    size_t n = s->in.len - *pos;
    size_t from = s->scan > *pos + 11 ? s->scan - *pos - 11 : 0; /* 11 = strlen("</tool_call")*/
    for (size_t t = from; t < n; t++) {
        int tag = p[t] == '<' ? match_tag(p + t, n - t, T_CALL, T_ECALL + 1) : -1;
        if (tag < 0)
            continue;
        GLM_TRY(emit_call(s->tools, p, t, fn, user));
        *pos += t + strlen(k_tags[tag]);
        s->mode = tag == T_ECALL ? M_CONTENT : M_CALL;
        s->scan = 0;
        return GLM_OK;
    }
    if (!final) {
        s->scan = s->in.len;
        *hold = true;
        return GLM_OK;
    }
    GLM_TRY(emit_call(s->tools, p, n, fn, user)); /* unterminated final call */
    *pos = s->in.len;
    s->mode = M_CONTENT;
    s->scan = 0;
    return GLM_OK;
}

/* M_REASON / M_CONTENT: emit text up to the next '<' and decide the tag there. */
static glm_status step_text(glm_chat_stream *s, size_t *pos, bool final, bool *hold,
                            glm_chat_event_fn fn, void *user)
{
    const char *p = s->in.p + *pos;
    size_t n = s->in.len - *pos;
    const char *lt = memchr(p, '<', n);
    size_t k = lt ? (size_t)(lt - p) : n;
    GLM_TRY(emit_text(s, p, k, fn, user));
    *pos += k;
    if (!lt)
        return GLM_OK;
    p += k;
    n -= k;
    int to = s->mode == M_REASON ? T_ETHINK + 1 : T_COUNT; /* reasoning knows only think tags */
    int tag = match_tag(p, n, T_THINK, to);
    if (tag >= 0) {
        *pos += strlen(k_tags[tag]);
        if (tag == T_ETHINK)
            s->mode = M_CONTENT;
        else if (tag == T_THINK)
            s->mode = M_REASON;
        else if (tag == T_CALL)
            s->mode = M_CALL;
        return GLM_OK; /* other tags in content are stray: dropped */
    }
    for (int t = T_THINK; t < to && !final; t++)
        if (n < strlen(k_tags[t]) && !memcmp(p, k_tags[t], n)) {
            *hold = true; /* could still become this tag */
            return GLM_OK;
        }
    GLM_TRY(emit_text(s, "<", 1, fn, user));
    *pos += 1;
    return GLM_OK;
}

static glm_status stream_run(glm_chat_stream *s, bool final, glm_chat_event_fn fn, void *user)
{
    size_t pos = 0;
    bool hold = false;
    glm_status st = GLM_OK;
    while (st == GLM_OK && !hold && pos < s->in.len)
        st = s->mode == M_CALL ? step_call(s, &pos, final, &hold, fn, user)
                               : step_text(s, &pos, final, &hold, fn, user);
    if (pos) {
        memmove(s->in.p, s->in.p + pos, s->in.len - pos);
        s->in.len -= pos;
    }
    s->scan = s->scan > pos ? s->scan - pos : 0;
    return st;
}

glm_status glm_chat_stream_create(glm_chat_stream **out, bool thinking, const cJSON *tools)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return OOM();
    (*out)->mode = thinking ? M_REASON : M_CONTENT;
    if (cJSON_IsArray(tools) && !((*out)->tools = cJSON_Duplicate(tools, true))) {
        free(*out);
        *out = NULL;
        return OOM();
    }
    return GLM_OK;
}

glm_status glm_chat_stream_feed(glm_chat_stream *s, const char *text, size_t len,
                                glm_chat_event_fn fn, void *user)
{
    sb_put(&s->in, text, len);
    if (s->in.oom)
        return OOM();
    return stream_run(s, false, fn, user);
}

glm_status glm_chat_stream_finish(glm_chat_stream *s, glm_chat_event_fn fn, void *user)
{
    GLM_TRY(stream_run(s, true, fn, user));
    s->ch[0].ws.len = s->ch[1].ws.len = 0; /* trailing whitespace is stripped */
    return GLM_OK;
}

void glm_chat_stream_destroy(glm_chat_stream *s)
{
    if (!s)
        return;
    free(s->in.p);
    free(s->ch[0].ws.p);
    free(s->ch[1].ws.p);
    free(s->tmp.p);
    cJSON_Delete(s->tools);
    free(s);
}

/* ------------------------------------------------------------------ one-shot parse */

typedef struct collect {
    sbuf text[2];
    glm_chat_parsed *p;
    size_t cap;
} collect;

static glm_status collect_ev(void *user, const glm_chat_event *ev)
{
    collect *c = user;
    if (ev->kind != GLM_CHAT_EV_TOOL_CALL) {
        sb_put(&c->text[ev->kind == GLM_CHAT_EV_CONTENT], ev->text, ev->len);
        return GLM_OK;
    }
    glm_chat_parsed *p = c->p;
    if (p->n_calls == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        glm_chat_call_out *nc = realloc(p->calls, cap * sizeof *nc);
        if (!nc)
            return OOM();
        p->calls = nc;
        c->cap = cap;
    }
    glm_chat_call_out *o = &p->calls[p->n_calls];
    o->name = dup_n(ev->call->name, strlen(ev->call->name));
    o->arguments = dup_n(ev->call->arguments, strlen(ev->call->arguments));
    p->n_calls++;
    return o->name && o->arguments ? GLM_OK : OOM();
}

glm_status glm_chat_parse(glm_chat_parsed **out, const char *text, size_t len, bool thinking,
                          const cJSON *tools)
{
    *out = NULL;
    collect c = { 0 };
    glm_chat_stream *s = NULL;
    if (!(c.p = calloc(1, sizeof *c.p)))
        return OOM();
    glm_status st = glm_chat_stream_create(&s, thinking, tools);
    if (st == GLM_OK)
        st = glm_chat_stream_feed(s, text, len, collect_ev, &c);
    if (st == GLM_OK)
        st = glm_chat_stream_finish(s, collect_ev, &c);
    glm_chat_stream_destroy(s);
    c.p->reasoning = sb_take(&c.text[0], NULL);
    c.p->content = sb_take(&c.text[1], NULL);
    if (st == GLM_OK && (!c.p->reasoning || !c.p->content))
        st = OOM();
    if (st != GLM_OK) {
        glm_chat_parsed_destroy(c.p);
        return st;
    }
    *out = c.p;
    return GLM_OK;
}

void glm_chat_parsed_destroy(glm_chat_parsed *p)
{
    if (!p)
        return;
    free(p->reasoning);
    free(p->content);
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->calls[i].name);
        free(p->calls[i].arguments);
    }
    free(p->calls);
    free(p);
}
