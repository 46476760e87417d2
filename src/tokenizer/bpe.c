/* Byte-level BPE tokenizer (model-spec §7.1): the vocabulary/merge tables and their builder
 * (tokenizer/bpe_build.h; the file formats are read in bpe_load.c), encoding (added tokens ->
 * split regex -> byte mapping -> rank-ordered merges), batch and streaming decoding.
 *
 * The merge loop mirrors Hugging Face tokenizers (models/bpe/word.rs, merge_all): a min-heap
 * of (rank, position) over adjacent pairs, leftmost first on equal rank, stale entries
 * skipped when the pair at a position no longer yields the same token. Equal ids to HF are
 * the contract; golden/dev/golden.h5 /tokenizer is the oracle.
 *
 * Not here: the chat template, sampling, or any normalizer (a tokenizer.json with one is
 * refused, since silently skipping it would change ids). */
#include "tokenizer/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe_build.h"

/* Hostile-input limits. The real GLM-4.7 vocabulary has 154880 ids and 321649 merges. */
#define TK_MAX_INPUT 0x7fffff00u /* symbol positions are int32 */
/* Merge work memory is ~50 bytes per byte of a piece. A piece longer than this (a run of one
 * character class, e.g. 1 MiB of '=') is merged in chunks of this size, cut at character
 * starts, so memory stays bounded; HF merges such a piece whole, so ids may differ next to
 * the seams. Natural text never has pieces near this size. */
#define TK_MAX_PIECE (1u << 20)

/* Piece cache: direct-mapped, so memory is fixed and no eviction bookkeeping is needed. */
#define CACHE_SLOTS 16384
#define CACHE_KEY_MAX 22
#define CACHE_IDS_MAX 10

enum { KIND_NONE = 0, KIND_VOCAB = 1, KIND_ADDED = 2, KIND_SPECIAL = 3 };

typedef struct str_slot {
    uint64_t h;
    uint32_t off, len; /* key bytes in t->keys */
    int32_t val;       /* -1 = empty */
} str_slot;

typedef struct pair_slot {
    uint64_t key; /* (a << 32) | b; UINT64_MAX = empty */
    int32_t rank, new_id;
} pair_slot;

typedef struct added_tok {
    uint32_t off, len; /* content in t->bytes */
    int32_t id;
    bool special, lstrip, rstrip, single_word;
} added_tok;

typedef struct cache_slot {
    uint64_t h;
    uint8_t klen, nids; /* nids == 0: empty */
    char key[CACHE_KEY_MAX];
    int32_t ids[CACHE_IDS_MAX];
} cache_slot;

typedef struct arena {
    char *p;
    size_t n, cap;
} arena;

struct glm_tokenizer {
    int32_t n_vocab;
    uint32_t *tok_off, *tok_len; /* decoded bytes of each id in `bytes` */
    uint8_t *tok_kind;
    arena bytes, keys;
    str_slot *vocab; /* token string as stored (byte-mapped) -> id */
    size_t vocab_cap, vocab_n;
    pair_slot *merges;
    size_t merges_cap, merges_n;
    added_tok *added; /* sorted longest first, so the first hit at a position is the longest */
    size_t n_added, added_cap;
    uint8_t added_first[256]; /* bit 0: an added token starts with this byte */
    int32_t byte_id[256];     /* id of the single-byte token, -1 if the vocab lacks it */
    uint32_t byte_cp[256];    /* GPT-2 bytes_to_unicode */
    int16_t cp_byte[324];     /* inverse, -1 where unmapped */
    pcre2_code *re;           /* the split as written; NULL: none (a segment is one piece) */
    pcre2_code *re_exact;     /* with HF's classes spelled out (k_hf_ranges); NULL if the same */
    pcre2_match_context *mctx;
    glm_tokenizer_specials specials;
    pthread_mutex_t cache_mu;
    cache_slot *cache;
};

/* ---- small helpers ------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        b += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, b, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

static glm_status arena_push(arena *a, const void *p, size_t n, uint32_t *off)
{
    if (a->n + n > UINT32_MAX)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: token strings exceed 4 GiB");
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->n + n)
            cap *= 2;
        char *q = realloc(a->p, cap);
        if (!q)
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory (%zu bytes of strings)", cap);
        a->p = q;
        a->cap = cap;
    }
    if (n)
        memcpy(a->p + a->n, p, n);
    *off = (uint32_t)a->n;
    a->n += n;
    return GLM_OK;
}

size_t glm_utf8_valid_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte (RFC 3629 table) */
        if (c >= 0xc2 && c <= 0xdf)
            need = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f; /* > U+10FFFF */
        } else
            return i;
        if (n - i < need || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += need;
    }
    return n;
}

/* Bytes at the end of buf[0..n) that start a UTF-8 sequence still missing bytes but valid so
 * far (0 if the tail is complete or can never become valid). */
static size_t utf8_incomplete_tail(const uint8_t *s, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = s[n - back];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: the lead is further back */
        size_t need = (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (need <= back)
            return 0;
        if (back >= 2) {
            uint8_t d = s[n - back + 1];
            if ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f) || (c == 0xf0 && d < 0x90) ||
                (c == 0xf4 && d > 0x8f))
                return 0;
        }
        return back;
    }
    return 0;
}

/* Decode one UTF-8 code point (input already known valid); returns its length. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (len > n) {
        *cp = 0xfffd;
        return n;
    }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t k = 1; k < len; k++)
        v = (v << 6) | (s[k] & 0x3fu);
    *cp = v;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    o[0] = (char)(0xe0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

glm_tokenizer_shown glm_tokenizer_show(const char *p, size_t n)
{
    glm_tokenizer_shown r;
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++)
        r.s[i] = ((uint8_t)p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i];
    strcpy(r.s + k, n > 40 ? "..." : "");
    return r;
}

/* ---- hash maps ----------------------------------------------------------------------- */

static int32_t vocab_get(const glm_tokenizer *t, const char *s, size_t n)
{
    if (!t->vocab_cap)
        return -1;
    uint64_t h = hash_bytes(s, n);
    for (size_t i = h & (t->vocab_cap - 1);; i = (i + 1) & (t->vocab_cap - 1)) {
        const str_slot *e = &t->vocab[i];
        if (e->val < 0)
            return -1;
        if (e->h == h && e->len == n && memcmp(t->keys.p + e->off, s, n) == 0)
            return e->val;
    }
}

/* Insert; returns the existing id instead when the key is present. */
static glm_status vocab_put(glm_tokenizer *t, const char *s, size_t n, int32_t id, int32_t *existing)
{
    *existing = -1;
    uint64_t h = hash_bytes(s, n);
    size_t i = h & (t->vocab_cap - 1);
    for (; t->vocab[i].val >= 0; i = (i + 1) & (t->vocab_cap - 1)) {
        const str_slot *e = &t->vocab[i];
        if (e->h == h && e->len == n && memcmp(t->keys.p + e->off, s, n) == 0) {
            *existing = e->val;
            return GLM_OK;
        }
    }
    uint32_t off;
    GLM_TRY(arena_push(&t->keys, s, n, &off));
    t->vocab[i] = (str_slot){ h, off, (uint32_t)n, id };
    t->vocab_n++;
    return GLM_OK;
}

static inline size_t pair_hash(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static inline const pair_slot *pair_get(const glm_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = pair_hash(key, t->merges_cap);; i = (i + 1) & (t->merges_cap - 1)) {
        const pair_slot *e = &t->merges[i];
        if (e->key == key)
            return e;
        if (e->key == UINT64_MAX)
            return NULL;
    }
}

static void pair_put(glm_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_hash(key, t->merges_cap);
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key)
        i = (i + 1) & (t->merges_cap - 1);
    if (t->merges[i].key == UINT64_MAX)
        t->merges_n++;
    /* a repeated pair keeps the later rank, as HF's HashMap collect does */
    t->merges[i] = (pair_slot){ key, rank, new_id };
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* ---- building ------------------------------------------------------------------------ */

static void byte_map_init(glm_tokenizer *t)
{
    /* GPT-2 bytes_to_unicode: printable Latin-1 maps to itself, the other 68 bytes to
     * U+0100.. in byte order. */
    int n = 0;
    for (int i = 0; i < 324; i++)
        t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        t->byte_cp[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
        t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    }
}

glm_status glm_tokenizer_build_begin(glm_tokenizer **out, int32_t n_vocab, size_t n_tokens, size_t n_merges)
{
    glm_tokenizer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    pthread_mutex_init(&t->cache_mu, NULL);
    t->n_vocab = n_vocab;
    t->specials = (glm_tokenizer_specials){ -1, -1, -1, -1, -1 };
    byte_map_init(t);
    t->tok_off = calloc((size_t)n_vocab + 1, sizeof *t->tok_off);
    t->tok_len = calloc((size_t)n_vocab + 1, sizeof *t->tok_len);
    t->tok_kind = calloc((size_t)n_vocab + 1, 1);
    t->vocab_cap = pow2_at_least(2 * n_tokens + 2);
    t->vocab = malloc(t->vocab_cap * sizeof *t->vocab);
    t->merges_cap = pow2_at_least(2 * n_merges + 2);
    t->merges = malloc(t->merges_cap * sizeof *t->merges);
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    *out = t;
    if (!t->tok_off || !t->tok_len || !t->tok_kind || !t->vocab || !t->merges || !t->cache)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory for %d ids", (int)n_vocab);
    for (size_t i = 0; i < t->vocab_cap; i++)
        t->vocab[i].val = -1;
    for (size_t i = 0; i < t->merges_cap; i++)
        t->merges[i].key = UINT64_MAX;
    return GLM_OK;
}

/* Reverse byte mapping of a vocabulary string; HF's ByteLevel decoder falls back to the
 * string's own UTF-8 bytes when any character is outside the mapping. */
static glm_status tk_store_decoded(glm_tokenizer *t, int32_t id, const char *s, size_t n)
{
    char small[256];
    char *buf = n <= sizeof small ? small : malloc(n);
    if (!buf)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    size_t o = 0, i = 0;
    bool mapped = glm_utf8_valid_prefix((const uint8_t *)s, n) == n;
    while (mapped && i < n) {
        uint32_t cp;
        i += utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (cp >= 324 || t->cp_byte[cp] < 0)
            mapped = false;
        else
            buf[o++] = (char)t->cp_byte[cp];
    }
    glm_status st = mapped ? arena_push(&t->bytes, buf, o, &t->tok_off[id]) : arena_push(&t->bytes, s, n, &t->tok_off[id]);
    t->tok_len[id] = (uint32_t)(mapped ? o : n);
    if (buf != small)
        free(buf);
    return st;
}

glm_status glm_tokenizer_build_vocab(glm_tokenizer *t, int32_t id, const char *s, size_t n, bool allow_dup,
                                     const char *src)
{
    if (id < 0 || id >= t->n_vocab)
        return glm_errorf(GLM_ERR_FORMAT, "%s: token id %d out of range [0, %d)", src, (int)id, (int)t->n_vocab);
    if (n == 0 || n > GLM_TOKENIZER_MAX_TOKEN_LEN)
        return glm_errorf(GLM_ERR_FORMAT, "%s: token %d has length %zu (expected 1..%d)", src, (int)id, n,
                          GLM_TOKENIZER_MAX_TOKEN_LEN);
    if (t->tok_kind[id] != KIND_NONE)
        return glm_errorf(GLM_ERR_FORMAT, "%s: token id %d appears twice in the vocabulary", src, (int)id);
    int32_t existing;
    GLM_TRY(vocab_put(t, s, n, id, &existing));
    if (existing >= 0 && !allow_dup)
        return glm_errorf(GLM_ERR_FORMAT, "%s: token '%s' has two ids (%d and %d)", src, glm_tokenizer_show(s, n).s,
                          (int)existing, (int)id);
    t->tok_kind[id] = KIND_VOCAB;
    return tk_store_decoded(t, id, s, n);
}

glm_status glm_tokenizer_build_added(glm_tokenizer *t, int32_t id, const char *s, size_t n, bool special, bool lstrip,
                               bool rstrip, bool single_word, const char *src)
{
    if (id < 0 || id >= t->n_vocab)
        return glm_errorf(GLM_ERR_FORMAT, "%s: added token id %d out of range [0, %d)", src, (int)id, (int)t->n_vocab);
    if (n == 0 || n > GLM_TOKENIZER_MAX_TOKEN_LEN)
        return glm_errorf(GLM_ERR_FORMAT, "%s: added token %d has length %zu (expected 1..%d)", src, (int)id, n,
                          GLM_TOKENIZER_MAX_TOKEN_LEN);
    if (t->tok_kind[id] >= KIND_ADDED)
        return glm_errorf(GLM_ERR_FORMAT, "%s: added token id %d appears twice", src, (int)id);
    if (t->n_added == t->added_cap) {
        size_t cap = t->added_cap ? 2 * t->added_cap : 64;
        added_tok *a = realloc(t->added, cap * sizeof *a);
        if (!a)
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
        t->added = a;
        t->added_cap = cap;
    }
    added_tok *a = &t->added[t->n_added++];
    *a = (added_tok){ 0, (uint32_t)n, id, special, lstrip, rstrip, single_word };
    GLM_TRY(arena_push(&t->bytes, s, n, &a->off));
    /* Decoding: an added token that is the same string as its id's vocabulary entry keeps the
     * byte-level decoding (HF runs added tokens through the ByteLevel decoder too); any other
     * decodes to its text, as llama.cpp prints control tokens (for ASCII specials the two agree). */
    if (!(t->tok_kind[id] == KIND_VOCAB && vocab_get(t, s, n) == id)) {
        t->tok_off[id] = a->off;
        t->tok_len[id] = (uint32_t)n;
    }
    t->tok_kind[id] = special ? KIND_SPECIAL : KIND_ADDED;
    t->added_first[(uint8_t)s[0]] = 1;
    return GLM_OK;
}

/* One merge "a b" of rank `rank`: both halves and their concatenation must be tokens. */
glm_status glm_tokenizer_build_merge(glm_tokenizer *t, const char *a, size_t an, const char *b, size_t bn, int32_t rank,
                               const char *src)
{
    int32_t ia = vocab_get(t, a, an), ib = vocab_get(t, b, bn);
    if (ia < 0 || ib < 0)
        return glm_errorf(GLM_ERR_FORMAT, "%s: merges[%d] '%s' '%s': token '%s' is not in the vocabulary", src,
                          (int)rank, glm_tokenizer_show(a, an).s, glm_tokenizer_show(b, bn).s, ia < 0 ? glm_tokenizer_show(a, an).s : glm_tokenizer_show(b, bn).s);
    if (an + bn > GLM_TOKENIZER_MAX_TOKEN_LEN)
        return glm_errorf(GLM_ERR_FORMAT, "%s: merges[%d] is too long", src, (int)rank);
    char small[512];
    char *cat = an + bn <= sizeof small ? small : malloc(an + bn);
    if (!cat)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(cat, a, an);
    memcpy(cat + an, b, bn);
    int32_t in = vocab_get(t, cat, an + bn);
    if (cat != small)
        free(cat);
    if (in < 0)
        return glm_errorf(GLM_ERR_FORMAT, "%s: merges[%d] '%s' '%s': the merged token is not in the vocabulary", src,
                          (int)rank, glm_tokenizer_show(a, an).s, glm_tokenizer_show(b, bn).s);
    pair_put(t, ia, ib, rank, in);
    return GLM_OK;
}

/* Split a merge line "a b" at the first space after its first byte (a token may itself be a
 * lone space only in non-byte-level vocabularies). */
glm_status glm_tokenizer_build_merge_line(glm_tokenizer *t, const char *s, size_t n, int32_t rank, const char *src)
{
    const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
    if (!sp || sp + 1 == s + n)
        return glm_errorf(GLM_ERR_FORMAT, "%s: merges[%d] '%s' is not of the form 'a b'", src, (int)rank,
                          glm_tokenizer_show(s, n).s);
    return glm_tokenizer_build_merge(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp - s) - 1, rank, src);
}

static int added_cmp(const void *x, const void *y)
{
    const added_tok *a = x, *b = y;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* HF's regex engine (Oniguruma, in tokenizers 0.23.2) and PCRE2 disagree on three classes the
 * split regexes use:
 * - \s: Oniguruma's is Unicode White_Space; PCRE2's UCP \s also takes U+180E ('S' below).
 * - \p{L}, \p{N}: HF's Unicode tables are newer than PCRE2 10.42's (Unicode 14). The 'L' / 'N'
 *   ranges below are every code point HF classes as L / N and PCRE2 10.42 does not (Unicode
 *   15/16 additions: CJK extensions H/I, Kawi, Garay, ...), found by probing all 0x110000 code
 *   points through HF's pre-tokenizer; there are none the other way. (A newer PCRE2 already has
 *   them, which is harmless in a character class.)
 * A second, rewritten pattern spells these classes out; it is ~40% slower under the JIT, so it
 * only runs on text that contains one of these code points, where the two patterns can differ.
 * Regression cases: golden/tokenizer/hf_random.bin. Sorted, for binary search. */
typedef struct cp_range {
    uint32_t lo, hi;
    char cls;
} cp_range;
static const cp_range k_hf_ranges[] = {
    { 0x180e, 0x180e, 'S' }, { 0x1c89, 0x1c8a, 'L' }, { 0xa7cb, 0xa7cd, 'L' }, { 0xa7da, 0xa7dc, 'L' },
    { 0x105c0, 0x105f3, 'L' }, { 0x10d40, 0x10d49, 'N' }, { 0x10d4a, 0x10d65, 'L' }, { 0x10d6f, 0x10d85, 'L' },
    { 0x10ec2, 0x10ec4, 'L' }, { 0x1123f, 0x11240, 'L' }, { 0x11380, 0x11389, 'L' }, { 0x1138b, 0x1138b, 'L' },
    { 0x1138e, 0x1138e, 'L' }, { 0x11390, 0x113b5, 'L' }, { 0x113b7, 0x113b7, 'L' }, { 0x113d1, 0x113d1, 'L' },
    { 0x113d3, 0x113d3, 'L' }, { 0x116d0, 0x116e3, 'N' }, { 0x11bc0, 0x11be0, 'L' }, { 0x11bf0, 0x11bf9, 'N' },
    { 0x11f02, 0x11f02, 'L' }, { 0x11f04, 0x11f10, 'L' }, { 0x11f12, 0x11f33, 'L' }, { 0x11f50, 0x11f59, 'N' },
    { 0x1342f, 0x1342f, 'L' }, { 0x13441, 0x13446, 'L' }, { 0x13460, 0x143fa, 'L' }, { 0x16100, 0x1611d, 'L' },
    { 0x16130, 0x16139, 'N' }, { 0x16d40, 0x16d6c, 'L' }, { 0x16d70, 0x16d79, 'N' }, { 0x18cff, 0x18cff, 'L' },
    { 0x1b132, 0x1b132, 'L' }, { 0x1b155, 0x1b155, 'L' }, { 0x1ccf0, 0x1ccf9, 'N' }, { 0x1d2c0, 0x1d2d3, 'N' },
    { 0x1df25, 0x1df2a, 'L' }, { 0x1e030, 0x1e06d, 'L' }, { 0x1e4d0, 0x1e4eb, 'L' }, { 0x1e4f0, 0x1e4f9, 'N' },
    { 0x1e5d0, 0x1e5ed, 'L' }, { 0x1e5f0, 0x1e5f0, 'L' }, { 0x1e5f1, 0x1e5fa, 'N' }, { 0x2b739, 0x2b739, 'L' },
    { 0x2ebf0, 0x2ee5d, 'L' }, { 0x31350, 0x323af, 'L' },
};
#define WS_CLASS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define N_HF_RANGES (sizeof k_hf_ranges / sizeof k_hf_ranges[0])
#define CLASS_EXTRA_MAX 2048 /* room for the spelled-out ranges of one class */

/* The extra ranges of class `cls` as PCRE2 class items ("\x{..}-\x{..}..."). */
static void class_extra(char *o, char cls)
{
    size_t k = 0;
    for (size_t i = 0; i < N_HF_RANGES; i++)
        if (k_hf_ranges[i].cls == cls)
            k += (size_t)snprintf(o + k, CLASS_EXTRA_MAX - k, "\\x{%x}-\\x{%x}", (unsigned)k_hf_ranges[i].lo,
                                  (unsigned)k_hf_ranges[i].hi);
}

/* Does valid UTF-8 text contain a code point of k_hf_ranges? All are >= U+180E, whose lead
 * byte is 0xE1, so ASCII and most Latin/Cyrillic text is skipped byte by byte. */
static bool needs_exact_classes(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0xe1)
            continue;
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        size_t lo = 0, hi = N_HF_RANGES;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp > k_hf_ranges[mid].hi)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < N_HF_RANGES && cp >= k_hf_ranges[lo].lo)
            return true;
        i += len - 1;
    }
    return false;
}

/* The replacement for the escape at p (inside or outside a class) into `rep`, or false to copy
 * it as is; *skip gets the escape's length. */
static bool hf_class_escape(const char *p, size_t left, bool in_class, const char *lx, const char *nx, char *rep,
                            size_t *skip)
{
    static const struct {
        const char *esc;
        char cls; /* 'S' white space, 'L', 'N' */
        bool neg;
    } k_map[] = { { "\\s", 'S', false },     { "\\S", 'S', true },     { "\\p{L}", 'L', false },
                  { "\\P{L}", 'L', true },   { "\\p{N}", 'N', false }, { "\\P{N}", 'N', true } };
    for (size_t i = 0; i < sizeof k_map / sizeof k_map[0]; i++) {
        size_t l = strlen(k_map[i].esc);
        if (l > left || memcmp(p, k_map[i].esc, l) != 0)
            continue;
        if (in_class && k_map[i].neg)
            break; /* a negated class inside a class: left as PCRE2 reads it */
        const char *items = k_map[i].cls == 'S' ? WS_CLASS : k_map[i].cls == 'L' ? lx : nx;
        const char *prop = k_map[i].cls == 'S' ? "" : k_map[i].cls == 'L' ? "\\p{L}" : "\\p{N}";
        sprintf(rep, "%s%s%s%s", in_class ? "" : k_map[i].neg ? "[^" : "[", prop, items, in_class ? "" : "]");
        *skip = l;
        return true;
    }
    *skip = left >= 2 ? 2 : left;
    return false;
}

/* Copy of `pat` with \s, \S, \p{L}, \P{L}, \p{N}, \P{N} spelled out as HF reads them (see
 * k_hf_ranges). Patterns using \Q...\E are left alone. */
static char *regex_for_hf(const char *pat)
{
    size_t n = strlen(pat), esc = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (pat[i] == '\\')
            esc++, i++;
    if (strstr(pat, "\\Q"))
        return strdup(pat);
    char *o = malloc(n + esc * (CLASS_EXTRA_MAX + 16) + 1);
    char *lx = malloc(CLASS_EXTRA_MAX), *nx = malloc(CLASS_EXTRA_MAX), *rep = malloc(CLASS_EXTRA_MAX + 16);
    if (!o || !lx || !nx || !rep) {
        free(o);
        o = NULL;
        goto done;
    }
    class_extra(lx, 'L');
    class_extra(nx, 'N');
    size_t k = 0;
    bool in_class = false;
    for (size_t i = 0; i < n;) {
        char c = pat[i];
        if (c == '\\') {
            size_t skip;
            if (hf_class_escape(pat + i, n - i, in_class, lx, nx, rep, &skip)) {
                k += (size_t)sprintf(o + k, "%s", rep);
            } else {
                memcpy(o + k, pat + i, skip);
                k += skip;
            }
            i += skip;
            continue;
        }
        if (!in_class && c == '[') { /* a ']' right after "[" or "[^" is a literal */
            in_class = true;
            o[k++] = pat[i++];
            if (i < n && pat[i] == '^')
                o[k++] = pat[i++];
            if (i < n && pat[i] == ']')
                o[k++] = pat[i++];
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') { /* [:alpha:] */
            const char *end = strstr(pat + i + 2, ":]");
            size_t l = end ? (size_t)(end - (pat + i)) + 2 : n - i;
            memcpy(o + k, pat + i, l);
            k += l;
            i += l;
            continue;
        }
        if (in_class && c == ']')
            in_class = false;
        o[k++] = pat[i++];
    }
    o[k] = 0;
done:
    free(lx);
    free(nx);
    free(rep);
    return o;
}

static glm_status compile_regex(pcre2_code **re, const char *pattern, const char *src)
{
    int err;
    PCRE2_SIZE eoff;
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return glm_errorf(GLM_ERR_FORMAT, "%s: pre-tokenizer regex does not compile at offset %zu: %s", src,
                          (size_t)eoff, (const char *)msg);
    }
    /* JIT failure is not fatal: pcre2_match falls back to the interpreter. */
    (void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
    return GLM_OK;
}

glm_status glm_tokenizer_build_finish(glm_tokenizer *t, const char *pattern, const char *src)
{
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = utf8_encode(t->byte_cp[b], u);
        t->byte_id[b] = vocab_get(t, u, n);
    }
    if (t->n_added > 1)
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    if (!pattern)
        return GLM_OK;
    char *exact = regex_for_hf(pattern);
    if (!exact)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    glm_status st = compile_regex(&t->re, pattern, src);
    if (st == GLM_OK && strcmp(exact, pattern) != 0)
        st = compile_regex(&t->re_exact, exact, src);
    free(exact);
    if (st != GLM_OK)
        return st;
    t->mctx = pcre2_match_context_create(NULL);
    if (!t->mctx)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    /* bound the work a hostile pattern can do per match (the GLM-4 split needs far less) */
    pcre2_set_match_limit(t->mctx, 10000000);
    return GLM_OK;
}

glm_tokenizer_specials *glm_tokenizer_build_specials(glm_tokenizer *t) { return &t->specials; }

void glm_tokenizer_destroy(glm_tokenizer *t)
{
    if (!t)
        return;
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_kind);
    free(t->bytes.p);
    free(t->keys.p);
    free(t->vocab);
    free(t->merges);
    free(t->added);
    free(t->cache);
    pcre2_code_free(t->re);
    pcre2_code_free(t->re_exact);
    pcre2_match_context_free(t->mctx);
    pthread_mutex_destroy(&t->cache_mu);
    free(t);
}

/* ---- queries ------------------------------------------------------------------------- */

int32_t glm_tokenizer_n_vocab(const glm_tokenizer *t) { return t->n_vocab; }

const glm_tokenizer_specials *glm_tokenizer_get_specials(const glm_tokenizer *t) { return &t->specials; }

bool glm_tokenizer_is_special(const glm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->tok_kind[id] == KIND_SPECIAL;
}

const char *glm_tokenizer_token_bytes(const glm_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab || t->tok_kind[id] == KIND_NONE) {
        *len = 0;
        return NULL;
    }
    *len = t->tok_len[id];
    return t->bytes.p + t->tok_off[id];
}

int32_t glm_tokenizer_find(const glm_tokenizer *t, const char *text, size_t len)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->bytes.p + t->added[i].off, text, len) == 0)
            return t->added[i].id;
    if (len == 0 || len > GLM_TOKENIZER_MAX_TOKEN_LEN)
        return -1;
    char *m = malloc(2 * len);
    if (!m)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        o += utf8_encode(t->byte_cp[(uint8_t)text[i]], m + o);
    int32_t id = vocab_get(t, m, o);
    free(m);
    return id;
}

/* ---- encoding ------------------------------------------------------------------------ */

typedef struct sym {
    int32_t id, prev, next, alive;
} sym;

typedef struct hnode {
    int32_t rank, pos, new_id;
} hnode;

typedef struct enc {
    const glm_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    sym *syms;
    hnode *heap;
    size_t syms_cap, heap_cap;
    pcre2_match_data *md;
} enc;

static glm_status enc_push(enc *e, int32_t id)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        int32_t *p = realloc(e->ids, cap * sizeof *p);
        if (!p)
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory for %zu ids", cap);
        e->ids = p;
        e->cap = cap;
    }
    e->ids[e->n++] = id;
    return GLM_OK;
}

static inline bool hless(const hnode *a, const hnode *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(hnode *h, size_t *n, hnode v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static hnode heap_pop(hnode *h, size_t *n)
{
    hnode top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && hless(&h[c + 1], &h[c]))
            c++;
        if (!hless(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

static glm_status enc_reserve(enc *e, size_t n)
{
    if (n > e->syms_cap) {
        free(e->syms);
        free(e->heap);
        e->syms_cap = n;
        e->heap_cap = 3 * n + 1; /* n-1 initial pairs + at most 2 per merge */
        e->syms = malloc(e->syms_cap * sizeof *e->syms);
        e->heap = malloc(e->heap_cap * sizeof *e->heap);
        if (!e->syms || !e->heap) {
            e->syms_cap = e->heap_cap = 0;
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte piece", n);
        }
    }
    return GLM_OK;
}

static inline void push_pair(enc *e, size_t *hn, int32_t pos, int32_t a, int32_t b)
{
    const pair_slot *m = pair_get(e->t, a, b);
    if (m)
        heap_push(e->heap, hn, (hnode){ m->rank, pos, m->new_id });
}

/* BPE on one byte-mapped piece (HF word.rs merge_all): lowest rank first, leftmost on ties. */
static glm_status bpe_merge(enc *e, const uint8_t *p, size_t n)
{
    const glm_tokenizer *t = e->t;
    GLM_TRY(enc_reserve(e, n));
    sym *s = e->syms;
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0)
            continue; /* HF BPE without unk_token drops characters missing from the vocab */
        s[ns] = (sym){ id, ns - 1, ns + 1, 1 };
        ns++;
    }
    if (ns == 0)
        return GLM_OK;
    s[ns - 1].next = -1;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        push_pair(e, &hn, i, s[i].id, s[i + 1].id);
    while (hn) {
        hnode top = heap_pop(e->heap, &hn);
        sym *a = &s[top.pos];
        if (!a->alive || a->next < 0)
            continue;
        sym *b = &s[a->next];
        const pair_slot *m = pair_get(t, a->id, b->id);
        if (!m || m->new_id != top.new_id)
            continue; /* stale: the pair here changed since this entry was pushed */
        a->id = top.new_id;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0)
            s[b->next].prev = top.pos;
        if (a->prev >= 0)
            push_pair(e, &hn, a->prev, s[a->prev].id, a->id);
        if (a->next >= 0)
            push_pair(e, &hn, top.pos, a->id, s[a->next].id);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        GLM_TRY(enc_push(e, s[i].id));
    return GLM_OK;
}

/* One pre-tokenized piece -> ids, through the shared piece cache. */
static glm_status bpe_piece(enc *e, const uint8_t *p, size_t n)
{
    const glm_tokenizer *t = e->t;
    while (n > TK_MAX_PIECE) {
        size_t cut = TK_MAX_PIECE;
        while (cut > 1 && (p[cut] & 0xc0) == 0x80)
            cut--;
        GLM_TRY(bpe_merge(e, p, cut));
        p += cut;
        n -= cut;
    }
    if (n == 1)
        return t->byte_id[p[0]] >= 0 ? enc_push(e, t->byte_id[p[0]]) : GLM_OK;
    glm_tokenizer *mt = (glm_tokenizer *)t; /* the cache is the only mutable state; mutex-guarded */
    uint64_t h = 0;
    cache_slot *c = NULL;
    if (n <= CACHE_KEY_MAX) {
        h = hash_bytes(p, n);
        c = &mt->cache[h & (CACHE_SLOTS - 1)];
        cache_slot hit;
        pthread_mutex_lock(&mt->cache_mu);
        hit = *c;
        pthread_mutex_unlock(&mt->cache_mu);
        if (hit.nids && hit.h == h && hit.klen == n && memcmp(hit.key, p, n) == 0) {
            for (int i = 0; i < hit.nids; i++)
                GLM_TRY(enc_push(e, hit.ids[i]));
            return GLM_OK;
        }
    }
    size_t start = e->n;
    GLM_TRY(bpe_merge(e, p, n));
    size_t got = e->n - start;
    if (c && got > 0 && got <= CACHE_IDS_MAX) {
        cache_slot v = { .h = h, .klen = (uint8_t)n, .nids = (uint8_t)got };
        memcpy(v.key, p, n);
        memcpy(v.ids, e->ids + start, got * sizeof *v.ids);
        pthread_mutex_lock(&mt->cache_mu);
        *c = v;
        pthread_mutex_unlock(&mt->cache_mu);
    }
    return GLM_OK;
}

static glm_status regex_match(enc *e, const pcre2_code *re, const uint8_t *s, size_t n, size_t off, size_t *ms,
                              size_t *me, bool *found)
{
    const glm_tokenizer *t = e->t;
    int rc = pcre2_match(re, s, n, off, PCRE2_NO_UTF_CHECK, e->md, t->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter keeps its backtracking on the heap */
        rc = pcre2_match(re, s, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, e->md, t->mctx);
    *found = false;
    if (rc == PCRE2_ERROR_NOMATCH)
        return GLM_OK;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return glm_errorf(GLM_ERR_INVALID, "tokenizer: pre-tokenizer regex failed at byte %zu: %s", off,
                          (const char *)msg);
    }
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    if (ov[0] < off || ov[1] < ov[0] || ov[1] > n)
        return glm_errorf(GLM_ERR_INVALID, "tokenizer: pre-tokenizer regex matched outside its subject");
    *ms = ov[0];
    *me = ov[1];
    *found = true;
    return GLM_OK;
}

/* Valid UTF-8 text between added tokens -> pieces (HF Split, behavior Isolated: matches
 * and the gaps between them are both pieces) -> ids. */
static glm_status encode_run(enc *e, const uint8_t *s, size_t n)
{
    if (!e->t->re)
        return n ? bpe_piece(e, s, n) : GLM_OK;
    const pcre2_code *re = e->t->re_exact && needs_exact_classes(s, n) ? e->t->re_exact : e->t->re;
    size_t off = 0, gap = 0;
    while (off < n) {
        size_t ms, me;
        bool found;
        GLM_TRY(regex_match(e, re, s, n, off, &ms, &me, &found));
        if (!found)
            break;
        if (me == ms) { /* an empty match splits nothing; step over one character */
            if (ms >= n)
                break;
            uint32_t cp;
            off = ms + utf8_decode(s + ms, n - ms, &cp);
            continue;
        }
        if (ms > gap)
            GLM_TRY(bpe_piece(e, s + gap, ms - gap));
        GLM_TRY(bpe_piece(e, s + ms, me - ms));
        gap = off = me;
    }
    return gap < n ? bpe_piece(e, s + gap, n - gap) : GLM_OK;
}

/* Any bytes: valid runs go through the regex; each invalid byte is a piece of its own. */
static glm_status encode_segment(enc *e, const uint8_t *s, size_t n)
{
    size_t p = 0;
    while (p < n) {
        size_t v = glm_utf8_valid_prefix(s + p, n - p);
        if (v)
            GLM_TRY(encode_run(e, s + p, v));
        p += v;
        if (p < n)
            GLM_TRY(bpe_piece(e, s + p++, 1));
    }
    return GLM_OK;
}

static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static bool is_word(uint8_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c >= 0x80;
}

/* Does [a, b) overlap one of the ascending ranges sp[n]? */
static bool overlaps_span(const glm_text_span *sp, size_t n, size_t a, size_t b)
{
    size_t lo = 0, hi = n; /* first range that ends after a */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp[mid].off + sp[mid].len <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sp[lo].off < b && sp[lo].len > 0;
}

/* Leftmost, then longest, added token in s[from..n) (HF AddedVocabulary, LeftmostLongest);
 * lstrip/rstrip widen the match over ASCII whitespace, single_word needs non-word
 * neighbours; a special token is skipped under GLM_TOK_NO_SPECIAL or inside a plain range. */
static bool find_added(const glm_tokenizer *t, const uint8_t *s, size_t from, size_t n, unsigned flags,
                       const glm_text_span *plain, size_t n_plain, size_t *ms, size_t *me, int32_t *id)
{
    for (size_t p = from; p < n; p++) {
        if (!t->added_first[s[p]])
            continue;
        for (size_t k = 0; k < t->n_added; k++) {
            const added_tok *a = &t->added[k];
            if (a->len > n - p || memcmp(t->bytes.p + a->off, s + p, a->len) != 0)
                continue;
            if (a->special && ((flags & GLM_TOK_NO_SPECIAL) || (n_plain && overlaps_span(plain, n_plain, p, p + a->len))))
                continue;
            size_t b = p, en = p + a->len;
            if (a->single_word && ((b > 0 && is_word(s[b - 1])) || (en < n && is_word(s[en]))))
                continue;
            if (a->lstrip)
                while (b > from && is_space(s[b - 1]))
                    b--;
            if (a->rstrip)
                while (en < n && is_space(s[en]))
                    en++;
            *ms = b;
            *me = en;
            *id = a->id;
            return true;
        }
    }
    return false;
}

glm_status glm_tokenizer_encode(const glm_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                                size_t *n)
{
    return glm_tokenizer_encode_spans(t, text, len, flags, NULL, 0, ids, n);
}

glm_status glm_tokenizer_encode_spans(const glm_tokenizer *t, const char *text, size_t len, unsigned flags,
                                      const glm_text_span *plain, size_t n_plain, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (len > TK_MAX_INPUT)
        return glm_errorf(GLM_ERR_INVALID, "tokenizer: input of %zu bytes exceeds the %u-byte limit", len, TK_MAX_INPUT);
    if (len && !text)
        return glm_errorf(GLM_ERR_INVALID, "tokenizer: NULL text");
    enc e = { .t = t };
    glm_status st = GLM_OK;
    if (t->re && !(e.md = pcre2_match_data_create(1, NULL)))
        st = glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0;
    while (st == GLM_OK && pos < len) {
        size_t ms = len, me = len;
        int32_t id = -1;
        bool hit = t->n_added && find_added(t, s, pos, len, flags, plain, n_plain, &ms, &me, &id);
        st = encode_segment(&e, s + pos, ms - pos);
        if (st == GLM_OK && hit)
            st = enc_push(&e, id);
        pos = me;
    }
    pcre2_match_data_free(e.md);
    free(e.syms);
    free(e.heap);
    if (st != GLM_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids;
    *n = e.n;
    return GLM_OK;
}

/* ---- decoding ------------------------------------------------------------------------ */

glm_status glm_tokenizer_decode(const glm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || t->tok_kind[ids[i]] == KIND_NONE)
            return glm_errorf(GLM_ERR_INVALID, "token id %lld (position %zu) is not in the vocabulary [0, %d)",
                              (long long)ids[i], i, (int)t->n_vocab);
        total += t->tok_len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", total);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + o, t->bytes.p + t->tok_off[ids[i]], t->tok_len[ids[i]]);
        o += t->tok_len[ids[i]];
    }
    out[o] = 0;
    *text = out;
    *len = o;
    return GLM_OK;
}

struct glm_detok_stream {
    const glm_tokenizer *t;
    uint8_t held[4];
    size_t n_held;
    char *buf;
    size_t cap;
};

glm_status glm_detok_stream_create(glm_detok_stream **out, const glm_tokenizer *t)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
    (*out)->t = t;
    return GLM_OK;
}

void glm_detok_stream_destroy(glm_detok_stream *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

glm_status glm_detok_stream_feed(glm_detok_stream *s, int32_t id, const char **text, size_t *len)
{
    *text = "";
    *len = 0;
    size_t tl;
    const char *tb = glm_tokenizer_token_bytes(s->t, id, &tl);
    if (!tb)
        return glm_errorf(GLM_ERR_INVALID, "token id %lld is not in the vocabulary [0, %d)", (long long)id,
                          (int)s->t->n_vocab);
    size_t need = s->n_held + tl;
    if (need > s->cap) {
        size_t cap = need < 64 ? 64 : 2 * need;
        char *b = realloc(s->buf, cap);
        if (!b)
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf, s->held, s->n_held);
    memcpy(s->buf + s->n_held, tb, tl);
    size_t keep = utf8_incomplete_tail((const uint8_t *)s->buf, need);
    memcpy(s->held, s->buf + need - keep, keep);
    s->n_held = keep;
    *text = s->buf;
    *len = need - keep;
    return GLM_OK;
}

glm_status glm_detok_stream_flush(glm_detok_stream *s, const char **text, size_t *len)
{
    if (s->cap < 4) {
        char *b = realloc(s->buf, 64);
        if (!b)
            return glm_errorf(GLM_ERR_NOMEM, "tokenizer: out of memory");
        s->buf = b;
        s->cap = 64;
    }
    memcpy(s->buf, s->held, s->n_held);
    *text = s->buf;
    *len = s->n_held;
    s->n_held = 0;
    return GLM_OK;
}
