/* Shared test helpers: a seeded RNG whose seed every test prints, poisoned buffers with
 * guard zones, and error metrics (NMSE, max-abs). Tolerances live in tests/tolerances.h. */
#ifndef GLM_TESTUTIL_H
#define GLM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seed from GLM_TEST_SEED or the clock; printed as "seed=N (set GLM_TEST_SEED to repeat)". */
uint64_t tu_seed(const char *test_name);
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
uint64_t tu_next(tu_rng *r);
float tu_uniform(tu_rng *r, float lo, float hi); /* [lo, hi) */
float tu_normal(tu_rng *r);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);

/* A float buffer with GUARD poisoned floats on each side; tu_poison() fills the body too. */
#define TU_GUARD 64
float *tu_alloc_guarded(size_t n);                 /* returns the body pointer */
void tu_free_guarded(float *body);
bool tu_guards_intact(const float *body, size_t n); /* guards still hold the poison */
bool tu_all_written(const float *body, size_t n);   /* no poison and no NaN/Inf in the body */
void tu_poison(float *x, size_t n);

double tu_nmse(const float *ref, const float *got, size_t n);   /* Σ(r-g)² / Σ r² */
double tu_max_abs(const float *ref, const float *got, size_t n);
double tu_cosine(const float *a, const float *b, size_t n);
/* Pearson chi-square of counts[n] against expected counts[n]; cells expecting fewer than 5
 * are pooled into one. *df ← cells used - 1. */
double tu_chi2_pooled(const long *counts, const double *expected, int n, int *df);

/* Path of a committed fixture: "<repo>/golden/<rel>" resolved from the test's working dir. */
const char *tu_golden(const char *rel);

#endif
