/* glm47 chat: an interactive conversation on stdin/stdout with history, the GLM-4.7 chat
 * template (model-spec §7.2) and streaming output that shows reasoning apart from the answer.
 * Each turn re-renders the whole conversation; the tokens it shares with what the KV cache
 * already holds are reused (the cache is cut back to the common prefix), so a turn costs only
 * its new tokens. Commands: /reset (forget the conversation), /quit or end of input.
 * Not here: the template and the reverse parser (tokenizer/chat.c), sampling (ref/sampler.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli/cli.h"
#include "cli/prompt.h"
#include "engine/forward.h"
#include "model/model.h"
#include "ref/sampler.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat.h"

static const char k_usage[] =
    "usage: glm47 chat -m MODEL [--system TEXT] [--no-think] [-n MAX_TOKENS_PER_TURN] [--ctx N]\n"
    "                  [--temp T] [--top-k K] [--top-p P] [--min-p M] [--seed S]\n"
    "                  [--backend auto|ref|vulkan] [--device N] [--mtp] [--draft N]\n"
    "--mtp: speculative decoding with the model's MTP layer (greedy replies are the same)\n"
    "--draft N: MTP drafts verified per step, 1..8 (default 1; implies --mtp)\n"
    "Type a message and press enter; /reset forgets the conversation, /quit (or end of input) ends it.\n";

typedef struct chat_opts {
    const char *model, *backend, *system;
    char device_backend[24];
    long long n_predict, n_ctx, n_draft;
    bool no_think, mtp;
    glm_sampler_params sp;
} chat_opts;

typedef struct chat_state {
    const chat_opts *o;
    const glm_model *m;
    glm_forward *f;
    glm_tokenizer *tok;
    glm_sampler *smp;
    glm_chat conv;       /* the conversation so far (owns its strings) */
    int32_t *cached;     /* tokens whose keys and values the cache holds, in order */
    int64_t n_cached, cap_cached;
    int64_t n_mtp_valid; /* --mtp: leading MTP cache rows that pair cached[j] with cached[j + 1] */
    float *logits;
    glm_cli_sections out; /* section headers of the streamed reply */
} chat_state;

static glm_status parse_opts(chat_opts *o, int argc, char **argv, int *usage_err)
{
    *o = (chat_opts){ .backend = "auto", .n_predict = 512, .n_ctx = 4096, .n_draft = 1,
                      .sp = glm_sampler_params_default() };
    long long x;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-think") || !strcmp(a, "--mtp")) {
            *(a[2] == 'n' ? &o->no_think : &o->mtp) = true;
            continue;
        }
        if (!v) {
            *usage_err = 1;
            return glm_errorf(GLM_ERR_INVALID, "unknown option or missing value: '%s'", a);
        }
        i++;
        if (!strcmp(a, "-m"))
            o->model = v;
        else if (!strcmp(a, "--system"))
            o->system = v;
        else if (!strcmp(a, "--backend"))
            o->backend = v;
        else if (!strcmp(a, "--device")) {
            GLM_TRY(glm_cli_parse_int(a, v, 0, 64, &x));
            snprintf(o->device_backend, sizeof o->device_backend, "vulkan:%lld", x);
            o->backend = o->device_backend;
        } else if (!strcmp(a, "-n"))
            GLM_TRY(glm_cli_parse_int(a, v, 1, 1 << 24, &o->n_predict));
        else if (!strcmp(a, "--ctx"))
            GLM_TRY(glm_cli_parse_int(a, v, 16, 1 << 24, &o->n_ctx));
        else if (!strcmp(a, "--draft")) {
            GLM_TRY(glm_cli_parse_int(a, v, 1, GLM_MTP_MAX_DRAFT, &o->n_draft));
            o->mtp = true;
        }
        else if (!strcmp(a, "--temp"))
            GLM_TRY(glm_cli_parse_float(a, v, &o->sp.temperature));
        else if (!strcmp(a, "--top-p"))
            GLM_TRY(glm_cli_parse_float(a, v, &o->sp.top_p));
        else if (!strcmp(a, "--min-p"))
            GLM_TRY(glm_cli_parse_float(a, v, &o->sp.min_p));
        else if (!strcmp(a, "--top-k")) {
            GLM_TRY(glm_cli_parse_int(a, v, 0, 1 << 30, &x));
            o->sp.top_k = (int32_t)x;
        } else if (!strcmp(a, "--seed")) {
            GLM_TRY(glm_cli_parse_int(a, v, 0, INT64_MAX, &x));
            o->sp.seed = (uint64_t)x;
        } else {
            *usage_err = 1;
            return glm_errorf(GLM_ERR_INVALID, "unknown option '%s'", a);
        }
    }
    if (!o->model) {
        *usage_err = 1;
        return glm_errorf(GLM_ERR_INVALID, "need -m MODEL");
    }
    return glm_sampler_params_check(&o->sp);
}

/* Append a message (role, content copied) to the conversation. */
static glm_status add_message(glm_chat *c, glm_chat_role role, const char *content, const char *reasoning)
{
    glm_chat_message *nm = realloc(c->messages, (c->n_messages + 1) * sizeof *nm);
    if (!nm)
        return glm_errorf(GLM_ERR_NOMEM, "chat: out of memory");
    c->messages = nm;
    glm_chat_message *msg = &nm[c->n_messages];
    memset(msg, 0, sizeof *msg);
    msg->role = role;
    msg->content = strdup(content);
    msg->reasoning_content = reasoning ? strdup(reasoning) : NULL;
    if (!msg->content || (reasoning && !msg->reasoning_content)) {
        free(msg->content);
        free(msg->reasoning_content);
        return glm_errorf(GLM_ERR_NOMEM, "chat: out of memory");
    }
    c->n_messages++;
    return GLM_OK;
}

static void clear_conversation(chat_state *s)
{
    for (size_t i = 0; i < s->conv.n_messages; i++) {
        free(s->conv.messages[i].content);
        free(s->conv.messages[i].reasoning_content);
    }
    free(s->conv.messages);
    s->conv.messages = NULL;
    s->conv.n_messages = 0;
}

static glm_status push_cached(chat_state *s, int32_t t)
{
    if (s->n_cached == s->cap_cached) {
        int64_t nc = s->cap_cached ? s->cap_cached * 2 : 1024;
        int32_t *n = realloc(s->cached, (size_t)nc * sizeof *n);
        if (!n)
            return glm_errorf(GLM_ERR_NOMEM, "chat: out of memory");
        s->cached = n;
        s->cap_cached = nc;
    }
    s->cached[s->n_cached++] = t;
    return GLM_OK;
}

/* Streamed pieces of the answer: reasoning and content get their own headers. */
typedef struct turn_out {
    chat_state *s;
    char *reasoning, *content;
    size_t n_reasoning, n_content;
} turn_out;

static glm_status append(char **buf, size_t *n, const char *text, size_t len)
{
    char *nb = realloc(*buf, *n + len + 1);
    if (!nb)
        return glm_errorf(GLM_ERR_NOMEM, "chat: out of memory");
    memcpy(nb + *n, text, len);
    *n += len;
    nb[*n] = '\0';
    *buf = nb;
    return GLM_OK;
}

static glm_status on_event(void *user, const glm_chat_event *ev)
{
    turn_out *t = user;
    glm_cli_sections_print(&t->s->out, ev);
    if (ev->kind == GLM_CHAT_EV_TOOL_CALL)
        return GLM_OK;
    return ev->kind == GLM_CHAT_EV_REASONING ? append(&t->reasoning, &t->n_reasoning, ev->text, ev->len)
                     : append(&t->content, &t->n_content, ev->text, ev->len);
}

static bool is_eog(const glm_model *m, int32_t t)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == t)
            return true;
    return false;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Render the conversation, reuse the cached prefix, evaluate the rest, generate one reply. */
static glm_status turn(chat_state *s)
{
    glm_chat_options copt;
    glm_chat_options_default(&copt);
    copt.enable_thinking = !s->o->no_think;
    int32_t *ids = NULL;
    size_t n = 0;
    GLM_TRY(glm_chat_encode(s->tok, &s->conv, &copt, &ids, &n)); /* what the user typed stays plain text */
    if ((long long)n + s->o->n_predict > s->o->n_ctx) {
        free(ids);
        return glm_errorf(GLM_ERR_INVALID, "the conversation (%zu tokens) plus -n %lld exceeds --ctx %lld; /reset to start over",
                          n, s->o->n_predict, s->o->n_ctx);
    }
    /* the cache keeps the longest common prefix; at least one token is evaluated for logits.
     * With --mtp the MTP row before the first new token pairs with it, so one more is redone. */
    int64_t keep = 0;
    while (keep < s->n_cached && keep < (int64_t)n && s->cached[keep] == ids[keep])
        keep++;
    if (s->o->mtp)
        keep = keep - 1 < s->n_mtp_valid ? keep - 1 : s->n_mtp_valid;
    else if (keep == (int64_t)n)
        keep--;
    keep = keep < 0 ? 0 : keep;
    int64_t reused = keep;
    long long n_new = (long long)n - keep;
    glm_status st = glm_forward_truncate(s->f, keep);
    if (st == GLM_OK && s->o->mtp)
        st = glm_forward_mtp_truncate(s->f, keep);
    s->n_cached = keep;
    s->n_mtp_valid = 0;
    for (size_t i = (size_t)keep; st == GLM_OK && i < n; i++)
        st = push_cached(s, ids[i]);
    double t0 = now_s();
    glm_mtp_greedy g = { 0 };
    int32_t pend[GLM_MTP_MAX_DRAFT + 1]; /* --mtp: final tokens not yet taken */
    int n_pend = 0, at = 0;
    if (st == GLM_OK && s->o->mtp) {
        const int32_t *p = ids + keep;
        int np = (int)((int64_t)n - keep);
        st = s->o->sp.temperature > 0
                 ? glm_mtp_sampled_start_n(&g, s->f, p, np, NULL, 0, s->smp, (int)s->o->n_predict,
                                           (int)s->o->n_draft)
                 : glm_mtp_greedy_start_n(&g, s->f, p, np, NULL, 0, (int)s->o->n_draft);
        pend[n_pend++] = g.last;
    } else if (st == GLM_OK) {
        st = glm_forward_eval(s->f, ids + keep, (int)((int64_t)n - keep), s->logits, false, NULL, NULL);
    }
    free(ids);
    double t1 = now_s();
    glm_detok_stream *ds = NULL;
    glm_chat_stream *cs = NULL;
    turn_out out = { .s = s };
    int n_gen = 0;
    if (st == GLM_OK)
        st = glm_detok_stream_create(&ds, s->tok);
    if (st == GLM_OK)
        st = glm_chat_stream_create(&cs, !s->o->no_think, NULL);
    while (st == GLM_OK && n_gen < s->o->n_predict) {
        int32_t t;
        if (!s->o->mtp) {
            st = glm_sampler_sample(s->smp, &t, s->logits, s->cached, (int32_t)s->n_cached);
        } else {
            if (at == n_pend) {
                st = glm_mtp_greedy_step(&g, pend, &n_pend);
                at = 0;
            }
            t = pend[at++];
        }
        if (st != GLM_OK || is_eog(s->m, t))
            break;
        n_gen++;
        const char *piece;
        size_t plen;
        st = glm_detok_stream_feed(ds, t, &piece, &plen);
        if (st == GLM_OK && plen)
            st = glm_chat_stream_feed(cs, piece, plen, on_event, &out);
        if (st == GLM_OK)
            st = push_cached(s, t);
        if (st == GLM_OK && !s->o->mtp)
            st = glm_forward_eval(s->f, &t, 1, s->logits, false, NULL, NULL);
    }
    if (s->o->mtp) {
        /* the main cache holds the final tokens but the last (and maybe some past what was
         * taken); MTP row j is valid while token j + 1 is one we keep */
        int64_t n_main = glm_forward_n_past(s->f), v = glm_forward_mtp_n_past(s->f);
        if (n_main < s->n_cached)
            s->n_cached = n_main;
        v = v < s->n_cached - 1 ? v : s->n_cached - 1;
        s->n_mtp_valid = v > 0 ? v : 0;
        glm_mtp_greedy_free(&g);
    }
    const char *piece;
    size_t plen;
    if (st == GLM_OK && glm_detok_stream_flush(ds, &piece, &plen) == GLM_OK && plen)
        st = glm_chat_stream_feed(cs, piece, plen, on_event, &out);
    if (st == GLM_OK)
        st = glm_chat_stream_finish(cs, on_event, &out);
    glm_cli_sections_end(&s->out);
    printf("\n");
    fflush(stdout);
    double t2 = now_s();
    if (st == GLM_OK)
        st = add_message(&s->conv, GLM_CHAT_ASSISTANT, out.content ? out.content : "", out.reasoning);
    char mtp[128] = "";
    if (s->o->mtp)
        glm_mtp_summary(mtp, sizeof mtp, g.drafts, g.accepted, g.steps);
    if (st == GLM_OK)
        fprintf(stderr,
                "glm47 chat: %d tokens in %.2f s (%.1f tok/s); prompt %lld new + %lld reused tokens in %.2f s (%.1f tok/s)%s\n",
                n_gen, t2 - t1, n_gen > 0 && t2 > t1 ? n_gen / (t2 - t1) : 0.0, n_new, (long long)reused, t1 - t0,
                t1 > t0 ? (double)n_new / (t1 - t0) : 0.0, mtp);
    free(out.reasoning);
    free(out.content);
    glm_chat_stream_destroy(cs);
    glm_detok_stream_destroy(ds);
    return st;
}

static glm_status chat_loop(chat_state *s)
{
    if (s->o->system)
        GLM_TRY(add_message(&s->conv, GLM_CHAT_SYSTEM, s->o->system, NULL));
    char *line = NULL;
    size_t cap = 0;
    glm_status st = GLM_OK;
    for (;;) {
        if (s->out.tty)
            fputs("> ", stderr);
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/reset")) {
            clear_conversation(s);
            if (s->o->system && (st = add_message(&s->conv, GLM_CHAT_SYSTEM, s->o->system, NULL)) != GLM_OK)
                break;
            fprintf(stderr, "glm47 chat: conversation cleared\n");
            continue;
        }
        if ((st = add_message(&s->conv, GLM_CHAT_USER, line, NULL)) != GLM_OK)
            break;
        st = turn(s);
        if (st == GLM_ERR_INVALID) {
            /* a turn that does not fit: say so, drop the message, keep the session */
            fprintf(stderr, "glm47 chat: %s\n", glm_last_error());
            s->conv.n_messages--;
            free(s->conv.messages[s->conv.n_messages].content);
            free(s->conv.messages[s->conv.n_messages].reasoning_content);
            st = GLM_OK;
        } else if (st != GLM_OK)
            break;
    }
    free(line);
    return st;
}

int glm_cmd_chat(int argc, char **argv)
{
    chat_opts o;
    int usage_err = 0;
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return fputs(k_usage, stdout), 0;
    if (parse_opts(&o, argc, argv, &usage_err) != GLM_OK) {
        fprintf(stderr, "glm47 chat: %s\n", glm_last_error());
        if (usage_err)
            fputs(k_usage, stderr);
        return usage_err ? 2 : 1;
    }
    chat_state s = { .o = &o, .out.tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO) };
    glm_model *m = NULL;
    glm_backend *b = NULL;
    glm_status st = glm_model_open(&m, o.model);
    if (st == GLM_OK)
        st = glm_tokenizer_open(&s.tok, o.model);
    if (st == GLM_OK && o.n_ctx > m->hp.max_position_embeddings)
        st = glm_errorf(GLM_ERR_INVALID, "--ctx %lld exceeds the model's %d positions", o.n_ctx,
                        m->hp.max_position_embeddings);
    if (st == GLM_OK && o.mtp && !m->mtp)
        st = glm_errorf(GLM_ERR_UNSUPPORTED, "%s: --mtp needs a model with an MTP layer (this one has none)", o.model);
    if (st == GLM_OK)
        st = glm_cli_backend_create(&b, o.backend, m);
    if (st == GLM_OK)
        st = glm_forward_create(&s.f, m, b, o.n_ctx, 512);
    if (st == GLM_OK)
        st = glm_sampler_create(&s.smp, &o.sp, m->hp.vocab_size);
    if (st == GLM_OK && !(s.logits = malloc((size_t)m->hp.vocab_size * sizeof(float))))
        st = glm_errorf(GLM_ERR_NOMEM, "chat: out of memory");
    s.m = m;
    if (st == GLM_OK)
        st = chat_loop(&s);
    int rc = st == GLM_OK ? 0 : glm_cli_fail("chat");
    clear_conversation(&s);
    free(s.cached);
    free(s.logits);
    glm_sampler_destroy(s.smp);
    glm_forward_destroy(s.f);
    glm_backend_destroy(b);
    glm_tokenizer_destroy(s.tok);
    glm_model_close(m);
    return rc;
}
