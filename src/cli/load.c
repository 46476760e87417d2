/* Backend creation with a progress bar (see cli.h): tensors and bytes done of the model's
 * total, redrawn on one stderr line at most ten times a second, ended by a summary line. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct load_bar {
    const char *stage;
    uint64_t total_bytes, n_tensors, done_bytes, done_tensors;
    double t0, last;
} load_bar;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void draw(load_bar *b, bool final)
{
    double now = mono_s();
    if (!final && now - b->last < 0.1)
        return;
    b->last = now;
    double f = b->total_bytes ? (double)b->done_bytes / (double)b->total_bytes : 1.0;
    f = f > 1 ? 1 : f;
    char bar[31];
    int filled = (int)(f * 30 + 0.5);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = 0;
    double unit = b->total_bytes >= (1u << 30) ? (double)(1u << 30) : (double)(1u << 20);
    fprintf(stderr, "\r%s [%s] %3.0f%% %.2f/%.2f %s, %llu/%llu tensors, %.1f s%s", b->stage, bar, 100 * f,
            (double)b->done_bytes / unit, (double)b->total_bytes / unit, unit > (1u << 20) ? "GiB" : "MiB",
            (unsigned long long)b->done_tensors, (unsigned long long)b->n_tensors, now - b->t0, final ? "\n" : "");
    fflush(stderr);
}

static void on_tensor(void *ctx, const glm_tensor *t)
{
    load_bar *b = ctx;
    b->done_bytes += t->nbytes;
    b->done_tensors++;
    draw(b, false);
}

/* Read one byte per page of every tensor: the mapped file is paged in now, not during the
 * first forward pass. */
static void read_weights(const glm_model *m, load_bar *b)
{
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < m->n_tensors; i++) {
        const glm_tensor *t = &m->tensors[i];
        int64_t n_slabs = t->slabs ? t->ne[2] : 1;
        uint64_t len = t->slabs ? t->slab_bytes : t->nbytes;
        for (int64_t k = 0; k < n_slabs; k++) {
            const uint8_t *p = glm_tensor_slab(t, k);
            for (uint64_t o = 0; p && o < len; o += 4096)
                sink ^= p[o];
        }
        on_tensor(b, t);
    }
    (void)sink;
}

glm_status glm_cli_backend_create(glm_backend **out, const char *name, const glm_model *m)
{
    if (!isatty(STDERR_FILENO))
        return glm_backend_create(out, name, m);
    load_bar b = { .stage = "uploading", .n_tensors = m->n_tensors, .t0 = mono_s() };
    for (uint64_t i = 0; i < m->n_tensors; i++)
        b.total_bytes += m->tensors[i].nbytes;
    glm_load_progress_set(on_tensor, &b);
    glm_status st = glm_backend_create(out, name, m);
    glm_load_progress_set(NULL, NULL);
    if (st == GLM_OK && b.done_tensors == 0) { /* a backend that runs from the mapped file */
        b.stage = "loading";
        read_weights(m, &b);
    }
    if (st == GLM_OK || b.done_tensors)
        draw(&b, true);
    return st;
}
