/* glm47 run: generate from a prompt (streamed text, or ids with --print-ids), stopping at
 * the model's end-of-generation ids (read from the model, never hard-coded), with the
 * reference sampler; --mtp runs greedy speculative decoding with the MTP block drafting
 * --draft N tokens per step (model-spec §5.3), which yields exactly the plain greedy tokens.
 * glm47 perplexity: exp of the mean negative log-likelihood of a text file, in windows.
 * Not here: chat templating (glm47 template / chat), the server. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli/cli.h"
#include "cli/prompt.h"
#include "engine/forward.h"
#include "ref/sampler.h"
#include "util/file.h"

static const char k_run_usage[] =
    "usage: glm47 run -m MODEL (-p TEXT | --ids 1,2,3) [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p M]\n"
    "                 [--seed S] [--repeat-penalty R] [--presence-penalty X] [--frequency-penalty X]\n"
    "                 [--backend auto|ref|vulkan] [--device N] [--mtp] [--draft N] [--print-ids] [--ignore-eos] [--ctx N] [--chat [--no-think]]\n"
    "  -n N          tokens to generate (default 64)\n"
    "  --mtp         speculative decoding with the MTP block: greedy unless --temp > 0 is given,\n"
    "                then speculative sampling with the same distribution\n"
    "  --draft N     MTP drafts verified per step, 1..8 (default 1; implies --mtp)\n"
    "  --print-ids   print token ids instead of text\n"
    "  --ignore-eos  mask the end-of-generation ids instead of stopping on them\n"
    "  --chat        wrap -p TEXT as a user turn of the chat template (--no-think: thinking off)\n";

typedef struct run_opts {
    const char *model, *ids_arg, *text, *backend;
    char device_backend[24]; /* "vulkan:N" from --device N */
    long long n_predict, n_ctx, n_draft;
    glm_sampler_params sp;
    bool temp_given, mtp, print_ids, ignore_eos, chat, no_think;
} run_opts;

/* Generation state shared by the plain and the speculative loops. */
typedef struct run_state {
    const glm_model *m;
    glm_forward *f;
    glm_sampler *smp;
    glm_tokenizer *tok;
    glm_detok_stream *ds;
    const run_opts *o;
    int32_t *hist; /* prompt + generated */
    int n_hist, n_gen;
    bool stop;
    long long drafts, accepted, steps;
    double t_first; /* when the prompt was evaluated (the first token is known) */
    glm_chat_stream *cs; /* --chat: the reply split into reasoning and answer */
    glm_cli_sections out;
} run_state;

static glm_status parse_run_opts(run_opts *o, int argc, char **argv, int *usage_err)
{
    *o = (run_opts){ .backend = "auto", .n_predict = 64, .n_draft = 1, .sp = glm_sampler_params_default() };
    /* model card defaults (model-spec §8.9): temperature 1.0, top-p 0.95 */
    o->sp.top_p = 0.95f;
    *usage_err = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--mtp"))
            o->mtp = true;
        else if (!strcmp(a, "--print-ids"))
            o->print_ids = true;
        else if (!strcmp(a, "--ignore-eos"))
            o->ignore_eos = true;
        else if (!strcmp(a, "--chat"))
            o->chat = true;
        else if (!strcmp(a, "--no-think"))
            o->no_think = true;
        else if (!v) {
            *usage_err = 1;
            return glm_errorf(GLM_ERR_INVALID, "unknown option or missing value: '%s'", a);
        } else {
            i++;
            if (!strcmp(a, "-m"))
                o->model = v;
            else if (!strcmp(a, "-p"))
                o->text = v;
            else if (!strcmp(a, "--ids"))
                o->ids_arg = v;
            else if (!strcmp(a, "--backend"))
                o->backend = v;
            else if (!strcmp(a, "--device")) {
                GLM_TRY(glm_cli_parse_int(a, v, 0, 64, &x));
                snprintf(o->device_backend, sizeof o->device_backend, "vulkan:%lld", x);
                o->backend = o->device_backend;
            } else if (!strcmp(a, "-n"))
                GLM_TRY(glm_cli_parse_int(a, v, 0, 1 << 24, &o->n_predict));
            else if (!strcmp(a, "--ctx"))
                GLM_TRY(glm_cli_parse_int(a, v, 1, 1 << 24, &o->n_ctx));
            else if (!strcmp(a, "--draft")) {
                GLM_TRY(glm_cli_parse_int(a, v, 1, GLM_MTP_MAX_DRAFT, &o->n_draft));
                o->mtp = true;
            }
            else if (!strcmp(a, "--temp")) {
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.temperature));
                o->temp_given = true;
            }
            else if (!strcmp(a, "--top-k")) {
                GLM_TRY(glm_cli_parse_int(a, v, 0, 1 << 30, &x));
                o->sp.top_k = (int32_t)x;
            } else if (!strcmp(a, "--top-p"))
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.top_p));
            else if (!strcmp(a, "--min-p"))
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.min_p));
            else if (!strcmp(a, "--repeat-penalty"))
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.repetition_penalty));
            else if (!strcmp(a, "--presence-penalty"))
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.presence_penalty));
            else if (!strcmp(a, "--frequency-penalty"))
                GLM_TRY(glm_cli_parse_float(a, v, &o->sp.frequency_penalty));
            else if (!strcmp(a, "--seed")) {
                GLM_TRY(glm_cli_parse_int(a, v, 0, INT64_MAX, &x));
                o->sp.seed = (uint64_t)x;
            } else {
                *usage_err = 1;
                return glm_errorf(GLM_ERR_INVALID, "unknown option '%s'", a);
            }
        }
    }
    if (!o->model || (!o->ids_arg == !o->text)) {
        *usage_err = 1;
        return glm_errorf(GLM_ERR_INVALID, "need -m MODEL and one of -p TEXT / --ids LIST");
    }
    if (o->chat && !o->text) {
        *usage_err = 1;
        return glm_errorf(GLM_ERR_INVALID, "--chat needs -p TEXT");
    }
    /* --mtp alone decodes greedily (§5.3); with --temp > 0 it samples speculatively (§5.4) */
    if (o->mtp && !o->temp_given)
        o->sp.temperature = 0;
    return glm_sampler_params_check(&o->sp);
}

static bool is_eog(const glm_model *m, int32_t t)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] == t)
            return true;
    return false;
}

static void mask_eog(const glm_model *m, float *logits)
{
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos_ids[i] >= 0 && m->eos_ids[i] < m->hp.vocab_size)
            logits[m->eos_ids[i]] = -INFINITY;
}

static glm_status on_event(void *user, const glm_chat_event *ev)
{
    glm_cli_sections_print(&((run_state *)user)->out, ev);
    return GLM_OK;
}

/* Generated text to stdout: as it is, or (--chat) through the reply parser. */
static glm_status out_text(run_state *s, const char *txt, size_t len)
{
    if (s->cs)
        return len ? glm_chat_stream_feed(s->cs, txt, len, on_event, s) : GLM_OK;
    fwrite(txt, 1, len, stdout);
    return GLM_OK;
}

static double now_s(void);

/* Accept one generated token: stop on EOG or length, else record and print it. */
static glm_status emit(run_state *s, int32_t t)
{
    if (s->stop)
        return GLM_OK;
    if (s->n_gen == 0)
        s->t_first = now_s();
    if (is_eog(s->m, t) && !s->o->ignore_eos) {
        s->stop = true;
        return GLM_OK;
    }
    s->hist[s->n_hist++] = t;
    s->n_gen++;
    if (s->o->print_ids) {
        printf(s->n_gen > 1 ? " %d" : "%d", (int)t);
    } else {
        const char *txt;
        size_t len;
        GLM_TRY(glm_detok_stream_feed(s->ds, t, &txt, &len));
        GLM_TRY(out_text(s, txt, len));
    }
    fflush(stdout);
    if (s->n_gen >= s->o->n_predict)
        s->stop = true;
    return GLM_OK;
}

static glm_status pick(run_state *s, float *logits, int32_t *t)
{
    if (s->o->ignore_eos)
        mask_eog(s->m, logits);
    return glm_sampler_sample(s->smp, t, logits, s->hist, s->n_hist);
}

/* Greedy with no penalty: each next id is the argmax the backend takes on the device (only the
 * id comes back; GLM_HOST_ARGMAX=1: the logits row and the sampler's argmax, the same id). */
static bool device_greedy(const run_state *s)
{
    const glm_sampler_params *p = &s->o->sp;
    const char *e = getenv("GLM_HOST_ARGMAX");
    return p->temperature <= 0 && p->repetition_penalty == 1.0f && p->presence_penalty == 0 &&
           p->frequency_penalty == 0 && !(e && strcmp(e, "1") == 0) &&
           glm_forward_can_argmax(s->f, s->o->ignore_eos ? s->m->n_eos : 0);
}

static glm_status generate_plain(run_state *s, const int32_t *prompt, int n_prompt, float *logits)
{
    GLM_TRY(glm_forward_eval(s->f, prompt, n_prompt, logits, false, NULL, NULL));
    if (device_greedy(s)) {
        int32_t t;
        GLM_TRY(pick(s, logits, &t));
        GLM_TRY(emit(s, t));
        while (!s->stop) {
            GLM_TRY(glm_forward_eval_argmax(s->f, &t, 1, s->m->eos_ids, s->o->ignore_eos ? s->m->n_eos : 0, &t));
            GLM_TRY(emit(s, t));
        }
        return GLM_OK;
    }
    while (!s->stop) {
        int32_t t;
        GLM_TRY(pick(s, logits, &t));
        GLM_TRY(emit(s, t));
        if (!s->stop)
            GLM_TRY(glm_forward_eval(s->f, &t, 1, logits, false, NULL, NULL));
    }
    return GLM_OK;
}

/* Draft/verify with --draft N MTP drafts per step (engine/mtp.c): greedy (§5.3, the plain greedy tokens
 * exactly) or, with --temp > 0, speculative sampling (§5.4, the plain sampling
 * distribution). With --ignore-eos the EOG ids are masked as the plain path masks them. */
static glm_status generate_mtp(run_state *s, const int32_t *prompt, int n_prompt)
{
    glm_mtp_greedy g;
    const int n_mask = s->o->ignore_eos ? s->m->n_eos : 0;
    glm_status st = s->o->sp.temperature > 0
                        ? glm_mtp_sampled_start_n(&g, s->f, prompt, n_prompt, s->m->eos_ids, n_mask, s->smp,
                                                  (int)s->o->n_predict, (int)s->o->n_draft)
                        : glm_mtp_greedy_start_n(&g, s->f, prompt, n_prompt, s->m->eos_ids, n_mask,
                                                 (int)s->o->n_draft);
    if (st == GLM_OK)
        st = emit(s, g.last);
    while (st == GLM_OK && !s->stop) {
        int32_t out[GLM_MTP_MAX_DRAFT + 1];
        int n;
        st = glm_mtp_greedy_step(&g, out, &n);
        for (int i = 0; st == GLM_OK && i < n; i++)
            st = emit(s, out[i]);
    }
    s->drafts = g.drafts;
    s->accepted = g.accepted;
    s->steps = g.steps;
    glm_mtp_greedy_free(&g);
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static glm_status run_with(run_state *s, glm_backend *b, const int32_t *prompt, int n_prompt)
{
    const glm_model *m = s->m;
    const run_opts *o = s->o;
    /* room for a whole chain of drafts past the last token */
    int64_t n_ctx = o->n_ctx ? o->n_ctx : n_prompt + o->n_predict + 1 + (o->mtp ? o->n_draft : 1);
    if (o->n_ctx)
        GLM_TRY(glm_forward_check_ctx(m, o->n_ctx));
    if (n_prompt + o->n_predict > m->hp.max_position_embeddings && m->hp.max_position_embeddings > 0)
        return glm_errorf(GLM_ERR_INVALID, "%d prompt + %lld generated tokens exceed the model's context of %d",
                          n_prompt, o->n_predict, m->hp.max_position_embeddings);
    if (n_prompt + o->n_predict + 1 > n_ctx)
        return glm_errorf(GLM_ERR_INVALID, "--ctx %lld is too small for %d prompt + %lld generated tokens",
                          (long long)n_ctx, n_prompt, o->n_predict);
    if (o->mtp && !m->mtp)
        return glm_errorf(GLM_ERR_UNSUPPORTED, "%s: --mtp needs a model with an MTP layer (this one has none)",
                          o->model);
    float *logits = malloc(sizeof(float) * (size_t)m->hp.vocab_size);
    s->hist = malloc(sizeof(int32_t) * (size_t)(n_prompt + o->n_predict + 2));
    glm_status st = (!logits || !s->hist) ? glm_errorf(GLM_ERR_NOMEM, "run: out of memory") : GLM_OK;
    if (st == GLM_OK)
        st = glm_forward_create(&s->f, m, b, n_ctx, n_prompt < 512 ? n_prompt : 512);
    if (st == GLM_OK) {
        memcpy(s->hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
        s->n_hist = n_prompt;
        s->stop = o->n_predict == 0;
        double t0 = now_s();
        s->t_first = t0;
        st = o->mtp ? generate_mtp(s, prompt, n_prompt) : generate_plain(s, prompt, n_prompt, logits);
        double t2 = now_s();
        if (st == GLM_OK && !o->print_ids) {
            const char *txt;
            size_t len;
            st = glm_detok_stream_flush(s->ds, &txt, &len);
            if (st == GLM_OK)
                st = out_text(s, txt, len);
            if (st == GLM_OK && s->cs)
                st = glm_chat_stream_finish(s->cs, on_event, s);
            glm_cli_sections_end(&s->out);
        }
        printf("\n");
        fflush(stdout);
        if (st == GLM_OK) {
            /* prefill: up to the first token; decode: the tokens after it */
            double tp = s->t_first - t0, td = t2 - s->t_first;
            char mtp[128] = "";
            if (o->mtp)
                glm_mtp_summary(mtp, sizeof mtp, s->drafts, s->accepted, s->steps);
            fprintf(stderr,
                    "glm47 run: prompt %d tokens in %.2f s (%.1f tok/s); generated %d tokens in %.2f s (%.1f tok/s)%s\n",
                    n_prompt, tp, tp > 0 ? n_prompt / tp : 0.0, s->n_gen, td,
                    s->n_gen > 1 && td > 0 ? (s->n_gen - 1) / td : 0.0, mtp);
        }
    }
    glm_forward_destroy(s->f);
    free(logits), free(s->hist);
    return st;
}

int glm_cmd_run(int argc, char **argv)
{
    run_opts o;
    int usage_err;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return fputs(k_run_usage, stdout), 0;
    if (parse_run_opts(&o, argc, argv, &usage_err) != GLM_OK) {
        fprintf(stderr, "glm47 run: %s\n", glm_last_error());
        if (usage_err)
            fputs(k_run_usage, stderr);
        return usage_err ? 2 : 1;
    }
    run_state s = { .o = &o };
    glm_model *m = NULL;
    glm_backend *b = NULL;
    int32_t *prompt = NULL;
    int n_prompt = 0;
    glm_status st = glm_model_open(&m, o.model);
    s.m = m;
    if (st == GLM_OK && (o.text || !o.print_ids))
        st = glm_tokenizer_open(&s.tok, o.model);
    glm_cli_text_mode mode = !o.chat ? GLM_CLI_TEXT_RAW : o.no_think ? GLM_CLI_TEXT_CHAT_NO_THINK : GLM_CLI_TEXT_CHAT_THINK;
    if (st == GLM_OK)
        st = glm_cli_prompt_tokens(m, o.ids_arg, o.text, mode, &s.tok, &prompt, &n_prompt);
    if (st == GLM_OK && !o.print_ids)
        st = glm_detok_stream_create(&s.ds, s.tok);
    if (st == GLM_OK && o.chat && !o.print_ids) {
        s.out.tty = isatty(STDOUT_FILENO);
        st = glm_chat_stream_create(&s.cs, !o.no_think, NULL);
    }
    if (st == GLM_OK)
        st = glm_sampler_create(&s.smp, &o.sp, m->hp.vocab_size);
    if (st == GLM_OK)
        st = glm_cli_backend_create(&b, o.backend, m);
    if (st == GLM_OK)
        st = run_with(&s, b, prompt, n_prompt);
    free(prompt);
    glm_backend_destroy(b);
    glm_sampler_destroy(s.smp);
    glm_detok_stream_destroy(s.ds);
    glm_chat_stream_destroy(s.cs);
    glm_tokenizer_destroy(s.tok);
    glm_model_close(m);
    return st == GLM_OK ? 0 : glm_cli_fail("run");
}

/* ---- perplexity ---- */

static const char k_ppl_usage[] = "usage: glm47 perplexity -m MODEL -f FILE [--ctx N (default 512)] [--backend auto|ref|vulkan] [--device N]\n";

#define PPL_MAX_FILE (1u << 30)

/* Σ -log p(tokens[i+1] | tokens[..i]) over one window, in double. */
static glm_status ppl_window(glm_forward *f, const int32_t *tok, int n, float *logits, int64_t V, double *nll)
{
    GLM_TRY(glm_forward_truncate(f, 0));
    GLM_TRY(glm_forward_eval(f, tok, n, logits, true, NULL, NULL));
    for (int i = 0; i + 1 < n; i++) {
        const float *l = logits + (int64_t)i * V;
        double mx = l[0], sum = 0;
        for (int64_t v = 1; v < V; v++)
            mx = l[v] > mx ? l[v] : mx;
        for (int64_t v = 0; v < V; v++)
            sum += exp((double)l[v] - mx);
        *nll += -((double)l[tok[i + 1]] - mx - log(sum));
    }
    return GLM_OK;
}

int glm_cmd_perplexity(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *backend = "auto";
    char device_backend[24];
    long long ctx = 512, dev;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return fputs(k_ppl_usage, stdout), 0;
        if (!v) {
            fprintf(stderr, "glm47 perplexity: unknown option or missing value: '%s'\n%s", a, k_ppl_usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "-f"))
            file = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--device")) {
            if (glm_cli_parse_int(a, v, 0, 64, &dev) != GLM_OK)
                return glm_cli_fail("perplexity");
            snprintf(device_backend, sizeof device_backend, "vulkan:%lld", dev);
            backend = device_backend;
        } else if (!strcmp(a, "--ctx")) {
            if (glm_cli_parse_int(a, v, 2, 1 << 20, &ctx) != GLM_OK)
                return glm_cli_fail("perplexity");
        } else {
            fprintf(stderr, "glm47 perplexity: unknown option '%s'\n%s", a, k_ppl_usage);
            return 2;
        }
    }
    if (!model || !file) {
        fprintf(stderr, "glm47 perplexity: need -m MODEL and -f FILE\n%s", k_ppl_usage);
        return 2;
    }
    glm_model *m = NULL;
    glm_tokenizer *tok = NULL;
    glm_backend *b = NULL;
    glm_forward *f = NULL;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    float *logits = NULL;
    double nll = 0;
    long long scored = 0, windows = 0;
    glm_status st = glm_file_read_all(&text, &len, file, PPL_MAX_FILE);
    if (st == GLM_OK)
        st = glm_model_open(&m, model);
    if (st == GLM_OK)
        st = glm_tokenizer_open(&tok, model);
    if (st == GLM_OK)
        st = glm_tokenizer_encode(tok, text, len, 0, &ids, &n);
    if (st == GLM_OK && n < 2)
        st = glm_errorf(GLM_ERR_INVALID, "%s: fewer than 2 tokens, nothing to score", file);
    if (st == GLM_OK)
        st = glm_cli_backend_create(&b, backend, m);
    if (st == GLM_OK)
        st = glm_forward_create(&f, m, b, ctx, (int)ctx);
    if (st == GLM_OK && !(logits = malloc(sizeof(float) * (size_t)ctx * (size_t)m->hp.vocab_size)))
        st = glm_errorf(GLM_ERR_NOMEM, "perplexity: out of memory for %lld x %d logits", ctx, m->hp.vocab_size);
    /* non-overlapping windows of ctx tokens; each scores its tokens 1..w-1 */
    for (size_t i = 0; st == GLM_OK && i + 1 < n; i += (size_t)ctx) {
        int w = (int)(n - i < (size_t)ctx ? n - i : (size_t)ctx);
        if (w < 2)
            break;
        st = ppl_window(f, ids + i, w, logits, m->hp.vocab_size, &nll);
        scored += w - 1;
        windows++;
    }
    if (st == GLM_OK)
        printf("perplexity: %.4f (%lld tokens scored in %lld windows of <= %lld)\n", exp(nll / (double)scored),
               scored, windows, ctx);
    free(logits), free(ids), free(text);
    glm_forward_destroy(f);
    glm_backend_destroy(b);
    glm_tokenizer_destroy(tok);
    glm_model_close(m);
    return st == GLM_OK ? 0 : glm_cli_fail("perplexity");
}
