/* GET /metrics: Prometheus text exposition format 0.0.4. Counters of requests by HTTP
 * status, prompt and generated tokens; histograms of time to first token (from queueing)
 * and time per output token; MTP drafts and accepted drafts; the queue depth (waiting +
 * running) as a gauge. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_priv.h"

static const double k_ttft_le[SRV_HBUCKETS] = { 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double k_tpot_le[SRV_HBUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 };

void srv_metrics_init(srv_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_status(srv_metrics *m, int status)
{
    if (status < 100 || status >= 600)
        return;
    pthread_mutex_lock(&m->mu);
    m->by_status[status]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(srv_metrics *m, int n_prompt, int n_gen)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)n_prompt;
    m->gen_tokens += (uint64_t)n_gen;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_mtp(srv_metrics *m, long long drafts, long long accepted)
{
    pthread_mutex_lock(&m->mu);
    m->mtp_drafts += (uint64_t)drafts;
    m->mtp_accepted += (uint64_t)accepted;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_mtp_steps(srv_metrics *m, long long steps)
{
    pthread_mutex_lock(&m->mu);
    m->mtp_steps += (uint64_t)steps;
    pthread_mutex_unlock(&m->mu);
}

static void observe(srv_metrics *m, srv_hist *h, const double *le, double v)
{
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < SRV_HBUCKETS && v > le[i])
        i++;
    h->count[i]++;
    h->sum += v;
    h->n++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_ttft(srv_metrics *m, double s) { observe(m, &m->ttft, k_ttft_le, s); }
void srv_metrics_tpot(srv_metrics *m, double s) { observe(m, &m->tpot, k_tpot_le, s); }

static void put_hist(srv_buf *b, const char *name, const char *help, const srv_hist *h, const double *le)
{
    char line[256];
    int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    srv_buf_add(b, line, (size_t)n);
    uint64_t cum = 0;
    for (int i = 0; i <= SRV_HBUCKETS; i++) {
        cum += h->count[i];
        if (i < SRV_HBUCKETS)
            n = snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
        else
            n = snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        srv_buf_add(b, line, (size_t)n);
    }
    n = snprintf(line, sizeof line, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->n);
    srv_buf_add(b, line, (size_t)n);
}

static void put_gauge(srv_buf *b, const char *name, const char *help, long long v)
{
    char line[256];
    int n = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
    srv_buf_add(b, line, (size_t)n);
}

char *srv_metrics_text(srv_metrics *m, int queue_depth, bool loaded, int running, long long kv_used,
                       long long kv_total)
{
    srv_buf b = { 0 };
    char line[512];
    int n;
    pthread_mutex_lock(&m->mu);
    n = snprintf(line, sizeof line,
                 "# HELP glm47_requests_total HTTP requests answered, by status code.\n"
                 "# TYPE glm47_requests_total counter\n");
    srv_buf_add(&b, line, (size_t)n);
    for (int c = 100; c < 600; c++)
        if (m->by_status[c]) {
            n = snprintf(line, sizeof line, "glm47_requests_total{status=\"%d\"} %llu\n", c,
                         (unsigned long long)m->by_status[c]);
            srv_buf_add(&b, line, (size_t)n);
        }
    n = snprintf(line, sizeof line,
                 "# HELP glm47_prompt_tokens_total Prompt tokens processed.\n# TYPE glm47_prompt_tokens_total counter\n"
                 "glm47_prompt_tokens_total %llu\n",
                 (unsigned long long)m->prompt_tokens);
    srv_buf_add(&b, line, (size_t)n);
    n = snprintf(line, sizeof line,
                 "# HELP glm47_generated_tokens_total Tokens generated.\n# TYPE glm47_generated_tokens_total counter\n"
                 "glm47_generated_tokens_total %llu\n",
                 (unsigned long long)m->gen_tokens);
    srv_buf_add(&b, line, (size_t)n);
    n = snprintf(line, sizeof line,
                 "# HELP glm47_mtp_drafts_total MTP draft tokens verified (serve --mtp).\n"
                 "# TYPE glm47_mtp_drafts_total counter\nglm47_mtp_drafts_total %llu\n"
                 "# HELP glm47_mtp_accepted_total MTP draft tokens accepted.\n"
                 "# TYPE glm47_mtp_accepted_total counter\nglm47_mtp_accepted_total %llu\n",
                 (unsigned long long)m->mtp_drafts, (unsigned long long)m->mtp_accepted);
    srv_buf_add(&b, line, (size_t)n);
    n = snprintf(line, sizeof line,
                 "# HELP glm47_mtp_verify_steps_total Main-model forwards that verified MTP drafts.\n"
                 "# TYPE glm47_mtp_verify_steps_total counter\nglm47_mtp_verify_steps_total %llu\n"
                 "# HELP glm47_mtp_acceptance_rate Accepted / verified MTP drafts since start.\n"
                 "# TYPE glm47_mtp_acceptance_rate gauge\nglm47_mtp_acceptance_rate %.6f\n"
                 "# HELP glm47_mtp_tokens_per_forward Tokens per verify forward since start (1 + accepted / steps).\n"
                 "# TYPE glm47_mtp_tokens_per_forward gauge\nglm47_mtp_tokens_per_forward %.6f\n",
                 (unsigned long long)m->mtp_steps,
                 m->mtp_drafts ? (double)m->mtp_accepted / (double)m->mtp_drafts : 0.0,
                 m->mtp_steps ? (double)(m->mtp_steps + m->mtp_accepted) / (double)m->mtp_steps : 0.0);
    srv_buf_add(&b, line, (size_t)n);
    put_hist(&b, "glm47_time_to_first_token_seconds", "Seconds from queueing to the first generated token.",
             &m->ttft, k_ttft_le);
    put_hist(&b, "glm47_time_per_output_token_seconds", "Seconds between consecutive generated tokens.", &m->tpot,
             k_tpot_le);
    pthread_mutex_unlock(&m->mu);
    n = snprintf(line, sizeof line,
                 "# HELP glm47_queue_depth Requests waiting or running.\n# TYPE glm47_queue_depth gauge\n"
                 "glm47_queue_depth %d\n# HELP glm47_model_loaded 1 once the model is loaded.\n"
                 "# TYPE glm47_model_loaded gauge\nglm47_model_loaded %d\n",
                 queue_depth, loaded ? 1 : 0);
    srv_buf_add(&b, line, (size_t)n);
    put_gauge(&b, "glm47_running_sequences", "Requests decoding in the current batch.", running);
    put_gauge(&b, "glm47_kv_pages_used", "KV cache pages held (running and cached sequences).", kv_used);
    put_gauge(&b, "glm47_kv_pages_total", "KV cache pages in the pool.", kv_total);
    return b.p;
}
