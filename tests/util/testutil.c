#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A signalling-NaN pattern no kernel produces by arithmetic. */
static const uint32_t k_poison_bits = 0x7fa5a5a5u;

uint64_t tu_seed(const char *test_name)
{
    const char *e = getenv("GLM_TEST_SEED");
    uint64_t s = e ? strtoull(e, NULL, 0) : ((uint64_t)time(NULL) ^ ((uint64_t)clock() << 20));
    printf("%s: seed=%llu (set GLM_TEST_SEED to repeat)\n", test_name, (unsigned long long)s);
    fflush(stdout);
    return s;
}

uint64_t tu_next(tu_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float tu_uniform(tu_rng *r, float lo, float hi)
{
    double u = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float tu_normal(tu_rng *r)
{
    double u1 = ((double)(tu_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_uniform(r, lo, hi);
}

void tu_poison(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(&x[i], &k_poison_bits, 4);
}

float *tu_alloc_guarded(size_t n)
{
    float *p = malloc((n + 2 * TU_GUARD) * sizeof(float));
    if (!p)
        abort();
    tu_poison(p, n + 2 * TU_GUARD);
    return p + TU_GUARD;
}

void tu_free_guarded(float *body)
{
    if (body)
        free(body - TU_GUARD);
}

static bool is_poison(const float *x)
{
    uint32_t b;
    memcpy(&b, x, 4);
    return b == k_poison_bits;
}

bool tu_guards_intact(const float *body, size_t n)
{
    for (size_t i = 1; i <= TU_GUARD; i++)
        if (!is_poison(body - i) || !is_poison(body + n + i - 1))
            return false;
    return true;
}

bool tu_all_written(const float *body, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (is_poison(&body[i]) || !isfinite(body[i]))
            return false;
    return true;
}

double tu_nmse(const float *ref, const float *got, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - (double)got[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
}

double tu_max_abs(const float *ref, const float *got, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ref[i] - (double)got[i]);
        if (d > m || isnan(d))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double tu_cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return (aa > 0 && bb > 0) ? ab / sqrt(aa * bb) : 0.0;
}

double tu_chi2_pooled(const long *counts, const double *expected, int n, int *df)
{
    double chi2 = 0, e_pool = 0;
    long c_pool = 0;
    int cells = 0;
    for (int c = 0; c < n; c++) {
        double e = expected[c];
        if (e < 5) {
            e_pool += e, c_pool += counts[c];
            continue;
        }
        chi2 += (counts[c] - e) * (counts[c] - e) / e;
        cells++;
    }
    if (e_pool > 0) {
        chi2 += (c_pool - e_pool) * (c_pool - e_pool) / e_pool;
        cells++;
    }
    *df = cells - 1;
    return chi2;
}

const char *tu_golden(const char *rel)
{
    static char buf[8][1024];
    static int k;
    const char *root = getenv("GLM_GOLDEN_DIR");
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", root ? root : "golden", rel);
    return b;
}
