/* Tokenizer (model-spec §7.1) against Hugging Face tokenizers: every golden.h5 /tokenizer case
 * and 3000 HF-encoded strings (golden/tokenizer), from tokenizer.json and from the GGUF
 * vocabulary; round trips on seeded random text and bytes; streaming vs batch decoding; special tokens by id read from the tokenizer; hostile
 * tokenizer.json variants that must fail with one clean message. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat.h"
#include "util/file.h"
#include "util/h5.h"
#include "util/testutil.h"

#define HF_JSON "dev/hf/tokenizer.json"
#define GGUF_Q8 "dev/dev-Q8_0.gguf"
#define GGUF_BF16 "dev/dev-BF16.gguf"

static glm_tokenizer *open_tok(const char *rel)
{
    glm_tokenizer *t = NULL;
    glm_status st = glm_tokenizer_open(&t, tu_golden(rel));
    ck_assert_msg(st == GLM_OK, "open %s: %s", rel, glm_last_error());
    return t;
}

static void encode_ok(const glm_tokenizer *t, const char *s, size_t n, unsigned flags, int32_t **ids, size_t *nids)
{
    glm_status st = glm_tokenizer_encode(t, s, n, flags, ids, nids);
    ck_assert_msg(st == GLM_OK, "encode: %s", glm_last_error());
}

static void assert_roundtrip(const glm_tokenizer *t, const char *s, size_t n)
{
    int32_t *ids;
    size_t nids;
    encode_ok(t, s, n, 0, &ids, &nids);
    char *back;
    size_t blen;
    ck_assert_msg(glm_tokenizer_decode(t, ids, nids, &back, &blen) == GLM_OK, "decode: %s", glm_last_error());
    ck_assert_uint_eq(blen, n);
    ck_assert_msg(memcmp(back, s, n) == 0, "round trip differs for a %zu-byte input", n);
    free(back);
    free(ids);
}

/* Every /tokenizer case: ids equal to HF's, and decode gives the text back. */
static void check_golden(const char *source)
{
    glm_tokenizer *t = open_tok(source);
    glm_h5 *h;
    ck_assert_msg(glm_h5_open(&h, tu_golden("dev/golden.h5")) == GLM_OK, "%s", glm_last_error());
    char **names;
    size_t count;
    ck_assert_msg(glm_h5_list(h, "/tokenizer", &names, &count) == GLM_OK, "%s", glm_last_error());
    ck_assert_uint_ge(count, 10);
    for (size_t c = 0; c < count; c++) {
        char path[256], *text;
        size_t tlen;
        snprintf(path, sizeof path, "/tokenizer/%s", names[c]);
        ck_assert_msg(glm_h5_read_attr_str(h, path, "utf8", &text, &tlen) == GLM_OK, "%s", glm_last_error());
        int32_t *want = NULL;
        int64_t dims[4] = { 0 };
        int nd = 0;
        ck_assert_msg(glm_h5_read_i32(h, path, &want, dims, &nd) == GLM_OK, "%s: %s", path, glm_last_error());
        int32_t *got;
        size_t n;
        encode_ok(t, text, tlen, 0, &got, &n);
        ck_assert_msg(n == (size_t)dims[0], "%s %s: %zu ids, HF has %lld", source, path, n, (long long)dims[0]);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(got[i] == want[i], "%s %s: id[%zu] = %d, HF has %d", source, path, i, got[i], want[i]);
        assert_roundtrip(t, text, tlen);
        free(got);
        free(want);
        free(text);
    }
    glm_h5_free_list(names, count);
    glm_h5_close(h);
    glm_tokenizer_destroy(t);
}

START_TEST(test_golden_json) { check_golden(HF_JSON); }
END_TEST

START_TEST(test_golden_hf_dir) { check_golden("dev/hf"); }
END_TEST

START_TEST(test_golden_gguf) { check_golden(GGUF_Q8); }
END_TEST

START_TEST(test_golden_gguf_bf16) { check_golden(GGUF_BF16); }
END_TEST

/* Random text drawn from the character classes the split regex distinguishes. */
static size_t random_text(tu_rng *r, char *buf, size_t cap)
{
    static const char *const pieces[] = { " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "'re", "a", "Z", "q", "0", "7",
                                          "!", "...", "<", ">", "|", "[gMASK]", "<sop>", "<|user|>", "<think>",
                                          "é", "ß", "Ω", "Ж", "中", "文", "。", "ー", "🚀", "🧪", "\xc2\xa0", "\xe2\x80\x83",
                                          "\xe3\x80\x80", "ﬁ", "٣", "½", "_", "ſ", "'", "\xe1\xa0\x8e" };
    size_t n = 0, k = 1 + tu_next(r) % 60;
    for (size_t i = 0; i < k; i++) {
        const char *p = pieces[tu_next(r) % (sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        if (n + l > cap)
            break;
        memcpy(buf + n, p, l);
        n += l;
    }
    return n;
}

/* Random valid UTF-8: code points from every plane range (no surrogates). */
static size_t random_utf8(tu_rng *r, char *buf, size_t cap)
{
    size_t n = 0, k = tu_next(r) % 80;
    for (size_t i = 0; i < k && n + 4 <= cap; i++) {
        uint32_t range = (uint32_t)(tu_next(r) % 4), cp;
        do
            cp = range == 0 ? (uint32_t)(tu_next(r) % 0x80) : range == 1 ? (uint32_t)(tu_next(r) % 0x800)
                 : range == 2                                ? (uint32_t)(tu_next(r) % 0x10000)
                                                             : (uint32_t)(0x10000 + tu_next(r) % 0x100000);
        while (cp >= 0xd800 && cp <= 0xdfff);
        if (cp < 0x80)
            buf[n++] = (char)cp;
        else if (cp < 0x800) {
            buf[n++] = (char)(0xc0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xe0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[n++] = (char)(0xf0 | (cp >> 18));
            buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    ck_assert_uint_eq(glm_utf8_valid_prefix((const uint8_t *)buf, n), n);
    return n;
}

START_TEST(test_roundtrip_random)
{
    glm_tokenizer *tj = open_tok(HF_JSON), *tg = open_tok(GGUF_Q8);
    tu_rng r = { tu_seed("tokenizer_roundtrip_random") };
    char buf[512];
    for (int it = 0; it < 3000; it++) {
        size_t n = (it & 1) ? random_text(&r, buf, sizeof buf) : random_utf8(&r, buf, sizeof buf);
        assert_roundtrip(tj, buf, n);
        /* both sources give the same ids on any text, not only the golden cases */
        int32_t *a, *b;
        size_t na, nb;
        encode_ok(tj, buf, n, 0, &a, &na);
        encode_ok(tg, buf, n, 0, &b, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(na == 0 || memcmp(a, b, na * sizeof *a) == 0);
        free(a);
        free(b);
    }
    glm_tokenizer_destroy(tj);
    glm_tokenizer_destroy(tg);
}
END_TEST

/* Decision (bpe.h): invalid UTF-8 is tokenized, never rejected; every invalid byte becomes its
 * byte token, so arbitrary bytes round-trip. */
START_TEST(test_invalid_utf8)
{
    glm_tokenizer *t = open_tok(HF_JSON);
    tu_rng r = { tu_seed("tokenizer_invalid_utf8") };
    char buf[300];
    for (int it = 0; it < 3000; it++) {
        size_t n = 1 + tu_next(&r) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(tu_next(&r) & 0xff);
        assert_roundtrip(t, buf, n);
    }
    /* a lone 0xff between letters: its own piece, so the words around it tokenize as alone */
    int32_t *a, *b;
    size_t na, nb;
    encode_ok(t, "ab\xff" "cd", 5, 0, &a, &na);
    encode_ok(t, "ab", 2, 0, &b, &nb);
    ck_assert_uint_ge(na, nb + 2);
    ck_assert(memcmp(a, b, nb * sizeof *a) == 0);
    size_t bl;
    const char *tb = glm_tokenizer_token_bytes(t, a[nb], &bl);
    ck_assert_uint_eq(bl, 1);
    ck_assert_uint_eq((uint8_t)tb[0], 0xff);
    free(a);
    free(b);
    glm_tokenizer_destroy(t);
}
END_TEST

START_TEST(test_utf8_validator)
{
    struct {
        const char *s;
        size_t valid;
    } cases[] = {
        { "abc", 3 },           { "\xc3\xa9", 2 },       { "\xc0\xaf", 0 },      { "\xe0\x80\xaf", 0 },
        { "\xed\xa0\x80", 0 },  { "\xf4\x90\x80\x80", 0 }, { "\xf0\x9f\x9a\x80", 4 }, { "a\xe4\xb8", 1 },
        { "\x80", 0 },          { "\xef\xbf\xbf", 3 },   { "\xf5\x80\x80\x80", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_uint_eq(glm_utf8_valid_prefix((const uint8_t *)cases[i].s, strlen(cases[i].s)), cases[i].valid);
}
END_TEST

static void stream_matches_batch(const glm_tokenizer *t, const int32_t *ids, size_t n)
{
    char *batch;
    size_t blen;
    ck_assert(glm_tokenizer_decode(t, ids, n, &batch, &blen) == GLM_OK);
    glm_detok_stream *s;
    ck_assert(glm_detok_stream_create(&s, t) == GLM_OK);
    char *acc = malloc(blen + 1);
    size_t alen = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t plen;
        if (i < n)
            ck_assert_msg(glm_detok_stream_feed(s, ids[i], &piece, &plen) == GLM_OK, "%s", glm_last_error());
        else
            ck_assert(glm_detok_stream_flush(s, &piece, &plen) == GLM_OK);
        ck_assert_uint_le(alen + plen, blen);
        /* what is emitted before the flush never ends inside a possible code point */
        if (i < n && plen && glm_utf8_valid_prefix((const uint8_t *)batch, blen) == blen)
            ck_assert_uint_eq(glm_utf8_valid_prefix((const uint8_t *)piece, plen), plen);
        memcpy(acc + alen, piece, plen);
        alen += plen;
    }
    ck_assert_uint_eq(alen, blen);
    ck_assert(memcmp(acc, batch, blen) == 0);
    free(acc);
    free(batch);
    glm_detok_stream_destroy(s);
}

START_TEST(test_stream_decode)
{
    glm_tokenizer *t = open_tok(HF_JSON);
    /* a multi-byte character split over tokens is held back until it completes */
    const char *rocket = "\xf0\x9f\x9a\x80"; /* U+1F680 */
    int32_t *ids;
    size_t n;
    encode_ok(t, rocket, 4, 0, &ids, &n);
    ck_assert_uint_ge(n, 2);
    glm_detok_stream *s;
    ck_assert(glm_detok_stream_create(&s, t) == GLM_OK);
    const char *piece;
    size_t plen, total = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(glm_detok_stream_feed(s, ids[i], &piece, &plen) == GLM_OK);
        ck_assert_uint_eq(plen, i + 1 < n ? 0 : 4);
        total += plen;
    }
    ck_assert_int_eq(memcmp(piece, rocket, 4), 0);
    ck_assert(glm_detok_stream_flush(s, &piece, &plen) == GLM_OK);
    ck_assert_uint_eq(plen, 0);
    ck_assert_uint_eq(total, 4);
    /* a bad id fails and names itself */
    ck_assert(glm_detok_stream_feed(s, glm_tokenizer_n_vocab(t), &piece, &plen) != GLM_OK);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "512"));
    glm_detok_stream_destroy(s);
    stream_matches_batch(t, ids, n);
    free(ids);

    /* random id sequences over the whole vocabulary (partial code points everywhere) */
    tu_rng r = { tu_seed("tokenizer_stream_decode") };
    int32_t seq[64];
    int32_t nv = glm_tokenizer_n_vocab(t);
    for (int it = 0; it < 3000; it++) {
        size_t len = tu_next(&r) % 64;
        for (size_t i = 0; i < len; i++)
            seq[i] = (int32_t)(tu_next(&r) % (uint64_t)nv);
        stream_matches_batch(t, seq, len);
    }
    /* encoded random text, so the stream also sees valid multi-byte sequences split apart */
    char buf[512];
    for (int it = 0; it < 1000; it++) {
        size_t len = random_utf8(&r, buf, sizeof buf);
        encode_ok(t, buf, len, 0, &ids, &n);
        stream_matches_batch(t, ids, n);
        free(ids);
    }
    glm_tokenizer_destroy(t);
}
END_TEST

START_TEST(test_special_tokens)
{
    const char *sources[] = { HF_JSON, GGUF_Q8 };
    for (int k = 0; k < 2; k++) {
        glm_tokenizer *t = open_tok(sources[k]);
        int32_t g = glm_tokenizer_find(t, "[gMASK]", 7), sop = glm_tokenizer_find(t, "<sop>", 5),
                u = glm_tokenizer_find(t, "<|user|>", 8), eot = glm_tokenizer_find(t, "<|endoftext|>", 13),
                obs = glm_tokenizer_find(t, "<|observation|>", 15);
        ck_assert(g >= 0 && sop >= 0 && u >= 0 && eot >= 0 && obs >= 0);
        ck_assert(glm_tokenizer_is_special(t, g) && glm_tokenizer_is_special(t, u));
        const char *txt = "[gMASK]<sop><|user|>\nhi<|endoftext|>";
        int32_t *ids;
        size_t n;
        encode_ok(t, txt, strlen(txt), 0, &ids, &n);
        ck_assert_uint_ge(n, 5);
        ck_assert_int_eq(ids[0], g);
        ck_assert_int_eq(ids[1], sop);
        ck_assert_int_eq(ids[2], u);
        ck_assert_int_eq(ids[n - 1], eot);
        for (size_t i = 3; i + 1 < n; i++)
            ck_assert(!glm_tokenizer_is_special(t, ids[i]));
        free(ids);
        /* with GLM_TOK_NO_SPECIAL the same text is plain text: no special id appears */
        encode_ok(t, txt, strlen(txt), GLM_TOK_NO_SPECIAL, &ids, &n);
        ck_assert_uint_gt(n, 10);
        for (size_t i = 0; i < n; i++)
            ck_assert(!glm_tokenizer_is_special(t, ids[i]));
        free(ids);
        assert_roundtrip(t, txt, strlen(txt));
        /* longest match: a special token text overlapping a longer one is not split early */
        encode_ok(t, "<|user|><|user|>x", 17, 0, &ids, &n);
        ck_assert_int_eq(ids[0], u);
        ck_assert_int_eq(ids[1], u);
        free(ids);
        const glm_tokenizer_specials *sp = glm_tokenizer_get_specials(t);
        ck_assert_int_eq(sp->eos, eot);
        ck_assert_int_eq(sp->eot, u);
        ck_assert_int_eq(sp->eom, obs);
        glm_tokenizer_destroy(t);
    }
}
END_TEST

static size_t count_special(const glm_tokenizer *t, const int32_t *ids, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += glm_tokenizer_is_special(t, ids[i]);
    return k;
}

/* Plain ranges: special text inside one (even partly) is plain; outside it still matches. */
START_TEST(test_encode_spans)
{
    glm_tokenizer *t = open_tok(GGUF_Q8);
    int32_t u = glm_tokenizer_find(t, "<|user|>", 8);
    const char *txt = "<|user|>a<|user|>b<|user|>";
    int32_t *ids, *ref;
    size_t n, nref;
    /* the middle marker (bytes 9..17) partly covered by a range → plain; the others special */
    glm_text_span sp[] = { { 8, 1 }, { 15, 3 } };
    ck_assert(glm_tokenizer_encode_spans(t, txt, strlen(txt), 0, sp, 2, &ids, &n) == GLM_OK);
    ck_assert_int_eq(ids[0], u);
    ck_assert_int_eq(ids[n - 1], u);
    ck_assert_uint_eq(count_special(t, ids, n), 2);
    char *back;
    size_t blen;
    ck_assert(glm_tokenizer_decode(t, ids, n, &back, &blen) == GLM_OK);
    ck_assert(blen == strlen(txt) && !memcmp(back, txt, blen));
    free(back);
    free(ids);
    /* no ranges: the same as plain encode */
    encode_ok(t, txt, strlen(txt), 0, &ref, &nref);
    ck_assert(glm_tokenizer_encode_spans(t, txt, strlen(txt), 0, NULL, 0, &ids, &n) == GLM_OK);
    ck_assert(n == nref && !memcmp(ids, ref, n * sizeof *ids));
    ck_assert_uint_eq(count_special(t, ids, n), 3);
    free(ids);
    free(ref);
    glm_tokenizer_destroy(t);
}
END_TEST

/* A rendered conversation: the template's markers are special tokens, special-token text in
 * the messages is plain text (no role switch), and benign text tokenizes exactly as the
 * rendered string does (what Hugging Face's apply_chat_template + encode gives). */
START_TEST(test_chat_encode_no_injection)
{
    uint64_t seed = tu_seed("test_chat_encode_no_injection");
    tu_rng r = { seed };
    glm_tokenizer *t = open_tok(HF_JSON);
    static const char *const pieces[] = { "<|user|>", "<|assistant|>", "<|system|>", "<think>", "</think>",
                                          "[gMASK]", "<sop>", "<|observation|>", "<tool_call>", "hello",
                                          " world", "\n", "12", "<", "|>", "\xc3\xa9" };
    const size_t np = sizeof pieces / sizeof pieces[0];
    for (int iter = 0; iter < 200; iter++) {
        bool inject = iter % 2;
        char text[3][256];
        for (int m = 0; m < 3; m++) {
            size_t len = 0;
            int k = 1 + (int)(tu_next(&r) % 8);
            text[m][0] = 0;
            for (int q = 0; q < k; q++) {
                size_t pi = tu_next(&r) % np;
                if (!inject && pi < 9)
                    pi = 9 + pi % (np - 9);
                len += (size_t)snprintf(text[m] + len, sizeof text[m] - len, "%s", pieces[pi]);
            }
        }
        glm_chat_message msgs[] = { { .role = GLM_CHAT_SYSTEM, .content = text[0] },
                                    { .role = GLM_CHAT_USER, .content = text[1] },
                                    { .role = GLM_CHAT_TOOL, .content = text[2] } };
        glm_chat chat = { .messages = msgs, .n_messages = 3 };
        glm_chat_options opt;
        glm_chat_options_default(&opt);
        opt.enable_thinking = iter % 3 != 0;
        int32_t *ids, *ref;
        size_t n, nref, len;
        char *rendered, *back;
        ck_assert(glm_chat_encode(t, &chat, &opt, &ids, &n) == GLM_OK);
        ck_assert(glm_chat_render(&rendered, &len, &chat, &opt) == GLM_OK);
        /* markers: [gMASK] <sop> <|system|> <|user|> <|observation|> <tool_response>
         * </tool_response> <|assistant|> and <think> or </think> */
        ck_assert_msg(count_special(t, ids, n) == 9, "seed=%llu iter %d: %zu specials", (unsigned long long)seed,
                      iter, count_special(t, ids, n));
        ck_assert(glm_tokenizer_decode(t, ids, n, &back, &len) == GLM_OK);
        ck_assert_str_eq(back, rendered);
        if (!inject) {
            encode_ok(t, rendered, strlen(rendered), 0, &ref, &nref);
            ck_assert(n == nref && !memcmp(ids, ref, n * sizeof *ids));
            free(ref);
        }
        free(back);
        free(rendered);
        free(ids);
    }
    glm_tokenizer_destroy(t);
}
END_TEST

/* Long single-class runs exercise the heap merge and the regex's backtracking. */
START_TEST(test_long_runs)
{
    glm_tokenizer *t = open_tok(HF_JSON);
    size_t n = 1 << 20;
    char *buf = malloc(n);
    const char fill[] = { ' ', 'a', '!', '\n', '7' };
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(buf, fill[k], n);
        assert_roundtrip(t, buf, n);
    }
    /* longer than one merge chunk (bpe.c TK_MAX_PIECE): still a round trip, and bounded work */
    char *big = malloc(3u << 20);
    for (size_t i = 0; i < (3u << 20); i++)
        big[i] = "\xc3\xa9"[i & 1]; /* "ééé...": one letter run, chunks cut at character starts */
    assert_roundtrip(t, big, 3u << 20);
    free(big);
    /* mixed whitespace then a word */
    for (size_t i = 0; i < n; i++)
        buf[i] = " \t\r\n"[i % 4];
    buf[n - 1] = 'x';
    assert_roundtrip(t, buf, n);
    free(buf);
    glm_tokenizer_destroy(t);
}
END_TEST

START_TEST(test_decode_errors)
{
    glm_tokenizer *t = open_tok(HF_JSON);
    int32_t ids[3] = { 5, 99999, 6 };
    char *s;
    size_t l;
    ck_assert_int_eq(glm_tokenizer_decode(t, ids, 3, &s, &l), GLM_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "99999"));
    ids[1] = -1;
    ck_assert_int_eq(glm_tokenizer_decode(t, ids, 3, &s, &l), GLM_ERR_INVALID);
    ck_assert(glm_tokenizer_decode(t, ids, 0, &s, &l) == GLM_OK);
    ck_assert_uint_eq(l, 0);
    free(s);
    ck_assert_ptr_null(glm_tokenizer_token_bytes(t, -5, &l));
    glm_tokenizer_destroy(t);
}
END_TEST

/* A hostile variant must fail with a one-line message, never crash. */
static void expect_fail(const char *json, const char *what)
{
    glm_tokenizer *t = (glm_tokenizer *)0x1;
    glm_error_clear();
    glm_status st = glm_tokenizer_from_json_memory(&t, json, strlen(json), "hostile.json");
    ck_assert_msg(st != GLM_OK, "%s: accepted", what);
    ck_assert_ptr_null(t);
    const char *m = glm_last_error();
    ck_assert_msg(m[0] && !strchr(m, '\n'), "%s: message '%s'", what, m);
}

#define MIN_PRE                                                                                                      \
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"

START_TEST(test_hostile_json)
{
    /* a minimal valid file first, so each failure below is due to its one defect */
    const char *ok = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}," MIN_PRE "}";
    glm_tokenizer *t;
    ck_assert_msg(glm_tokenizer_from_json_memory(&t, ok, strlen(ok), "ok.json") == GLM_OK, "%s", glm_last_error());
    int32_t *ids;
    size_t n;
    encode_ok(t, "abab", 4, 0, &ids, &n);
    /* GPT-2 split keeps "abab" one piece: a b a b -> ab ab (there is no merge "ab ab") */
    ck_assert_uint_eq(n, 2);
    ck_assert(ids[0] == 2 && ids[1] == 2);
    free(ids);
    glm_tokenizer_destroy(t);

    expect_fail("", "empty");
    expect_fail("[]", "array top level");
    expect_fail("{\"model\":{\"vocab\":[],\"merges\":[]}," MIN_PRE "}", "vocab array");
    expect_fail("{\"model\":{\"vocab\":{\"a\":\"0\"},\"merges\":[]}," MIN_PRE "}", "id as string");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0.5},\"merges\":[]}," MIN_PRE "}", "fractional id");
    expect_fail("{\"model\":{\"vocab\":{\"a\":-1},\"merges\":[]}," MIN_PRE "}", "negative id");
    expect_fail("{\"model\":{\"vocab\":{\"a\":2000000000},\"merges\":[]}," MIN_PRE "}", "huge id");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}," MIN_PRE "}", "duplicate id");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":7}," MIN_PRE "}", "merges number");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}," MIN_PRE "}", "merge unknown token");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}," MIN_PRE "}", "merge result unknown");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}," MIN_PRE "}", "merge without space");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\"]]}," MIN_PRE "}", "merge pair of one");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":1}]," MIN_PRE "}",
                "added token without content");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":{}," MIN_PRE "}", "added object");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"NFC\"}," MIN_PRE "}",
                "normalizer");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "no pre_tokenizer");
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\","
                "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},"
                "{\"type\":\"ByteLevel\",\"use_regex\":false}]}}",
                "bad regex");
    expect_fail("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0},\"merges\":[]}," MIN_PRE "}", "model type");
    /* untrusted strings in messages never break the one-line rule (found by fuzz_tokenizer) */
    expect_fail("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"By\\nte\"}}",
                "multi-line pre_tokenizer type");

    /* truncations of the real file at seeded points */
    char *json;
    size_t len;
    ck_assert(glm_file_read_all(&json, &len, tu_golden(HF_JSON), 1 << 26) == GLM_OK);
    tu_rng r = { tu_seed("tokenizer_hostile_truncate") };
    for (int it = 0; it < 60; it++) {
        size_t cut = (size_t)(tu_next(&r) % len);
        t = (glm_tokenizer *)0x1;
        ck_assert(glm_tokenizer_from_json_memory(&t, json, cut, "truncated.json") != GLM_OK);
        ck_assert_ptr_null(t);
    }
    /* a merge in the real file pointing at a token that is not there, inserted as merges[0] */
    const char *extra = "[\"qqqzzz\", \"x\"], ";
    char *bad = malloc(len + strlen(extra) + 1);
    char *m = strstr(json, "\"merges\"");
    ck_assert_ptr_nonnull(m);
    size_t at = (size_t)(strchr(m, '[') + 1 - json);
    memcpy(bad, json, at);
    memcpy(bad + at, extra, strlen(extra));
    memcpy(bad + at + strlen(extra), json + at, len - at);
    t = (glm_tokenizer *)0x1;
    glm_status st = glm_tokenizer_from_json_memory(&t, bad, len + strlen(extra), "badmerge.json");
    ck_assert_int_eq(st, GLM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "merges[0]"));
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "qqqzzz"));
    free(bad);
    free(json);
}
END_TEST

START_TEST(test_open_errors)
{
    glm_tokenizer *t;
    ck_assert(glm_tokenizer_open(&t, "/nonexistent/model.gguf") != GLM_OK);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "/nonexistent/model.gguf"));
    /* a directory without tokenizer.json */
    ck_assert(glm_tokenizer_open(&t, tu_golden("dev")) != GLM_OK);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "tokenizer.json"));
}
END_TEST

/* A tokenizer.json with the 256 byte tokens (id = byte), `extra` vocab/merges JSON appended. */
static char *byte_json_ex(const char *extra_vocab, const char *merges, const char *added, const char *regex)
{
    size_t cap = 16384 + strlen(extra_vocab) + strlen(merges) + strlen(added) + (regex ? strlen(regex) : 0), n = 0;
    char *j = malloc(cap);
    n += (size_t)sprintf(j + n, "{\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0, k = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        int cp = keep ? b : 256 + k++;
        n += (size_t)(cp == '"' || cp == '\\' ? sprintf(j + n, "%s\"\\%c\":%d", b ? "," : "", cp, b)
                                               : sprintf(j + n, "%s\"\\u%04x\":%d", b ? "," : "", cp, b));
    }
    if (extra_vocab[0])
        j[n++] = ',';
    static const char glm4[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}|"
                               " ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    n += (size_t)sprintf(j + n, "%s},\"merges\":[%s]},\"added_tokens\":[%s],\"pre_tokenizer\":{\"type\":\"Sequence\","
                                "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"%s\"},"
                                "\"behavior\":\"Isolated\",\"invert\":false},"
                                "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}}",
                         extra_vocab, merges, added, regex ? regex : glm4);
    ck_assert_uint_lt(n, cap);
    return j;
}

static char *byte_json(const char *extra_vocab, const char *merges) { return byte_json_ex(extra_vocab, merges, "", NULL); }

static glm_tokenizer *load_json(const char *j)
{
    glm_tokenizer *t;
    ck_assert_msg(glm_tokenizer_from_json_memory(&t, j, strlen(j), "bytes.json") == GLM_OK, "%s", glm_last_error());
    return t;
}

static void expect_ids(const glm_tokenizer *t, const char *text, const int32_t *want, size_t nwant)
{
    int32_t *ids;
    size_t n;
    encode_ok(t, text, strlen(text), 0, &ids, &n);
    ck_assert_msg(n == nwant, "'%s': %zu ids, expected %zu", text, n, nwant);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ids[i] == want[i], "'%s': id[%zu] = %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

/* HF added-token options: lstrip/rstrip swallow adjacent whitespace; single_word needs
 * non-word neighbours. Ids: byte b is id b (byte_json). */
START_TEST(test_added_options)
{
    char *j = byte_json_ex("", "", "{\"id\":300,\"content\":\"<x>\",\"lstrip\":true,\"rstrip\":true,\"special\":true},"
                                   "{\"id\":301,\"content\":\"yo\",\"single_word\":true}",
                           NULL);
    glm_tokenizer *t = load_json(j);
    expect_ids(t, "a  <x>  b", (const int32_t[]){ 'a', 300, 'b' }, 3);
    expect_ids(t, "yo", (const int32_t[]){ 301 }, 1);
    expect_ids(t, "yoyo", (const int32_t[]){ 'y', 'o', 'y', 'o' }, 4);
    expect_ids(t, "(yo)", (const int32_t[]){ '(', 301, ')' }, 3);
    glm_tokenizer_destroy(t);
    free(j);
    /* an added token that is also its id's vocabulary string decodes byte-level ("Ġhi" -> " hi"),
     * one that is not decodes to its text */
    j = byte_json_ex("\"\\u0120hi\":256", "", "{\"id\":256,\"content\":\"\\u0120hi\"},"
                                               "{\"id\":257,\"content\":\"\\u0120yo\"}", NULL);
    t = load_json(j);
    expect_ids(t, "\xc4\xa0hi\xc4\xa0yo", (const int32_t[]){ 256, 257 }, 2);
    size_t l;
    const char *b = glm_tokenizer_token_bytes(t, 256, &l);
    ck_assert(l == 3 && memcmp(b, " hi", 3) == 0);
    b = glm_tokenizer_token_bytes(t, 257, &l);
    ck_assert(l == 4 && memcmp(b, "\xc4\xa0yo", 4) == 0);
    glm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* Split (Isolated) keeps the text between matches as pieces, and an empty match splits nothing. */
START_TEST(test_split_gaps)
{
    char *j = byte_json_ex("\"aa\":256,\"ba\":257", "\"a a\",\"b a\"", "", "a+|x*");
    glm_tokenizer *t = load_json(j);
    /* pieces: "b" (gap) "aa" "b" (gap), "aaa" -> aa a; never "ba" across a piece boundary */
    expect_ids(t, "baab", (const int32_t[]){ 'b', 256, 'b' }, 3);
    expect_ids(t, "baaa", (const int32_t[]){ 'b', 256, 'a' }, 3);
    expect_ids(t, "bb", (const int32_t[]){ 'b', 'b' }, 2); /* one gap piece, no merge "b b" */
    glm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* \s is Unicode White_Space as in Oniguruma (HF), not PCRE2's UCP set: U+180E MONGOLIAN VOWEL
 * SEPARATOR is punctuation-like there, so "!<U+180E>!" is ONE piece and the merge "! á"
 * (á = byte 0xE1, the separator's lead byte) applies across it. */
START_TEST(test_regex_white_space)
{
    char *j = byte_json("\"!\\u00e1\":256", "\"! \\u00e1\"");
    glm_tokenizer *t;
    ck_assert_msg(glm_tokenizer_from_json_memory(&t, j, strlen(j), "bytes.json") == GLM_OK, "%s", glm_last_error());
    int32_t *ids;
    size_t n;
    encode_ok(t, "!\xe1\xa0\x8e!", 5, 0, &ids, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(ids[0], 256);
    free(ids);
    /* U+3000 IDEOGRAPHIC SPACE is White_Space: "!" and it are separate pieces, no merge */
    encode_ok(t, "!\xe3\x80\x80!", 5, 0, &ids, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(ids[0], '!');
    free(ids);
    glm_tokenizer_destroy(t);
    free(j);
}
END_TEST

/* Threads share one tokenizer (and its piece cache): results equal the single-thread ones. */
#define MT_TEXTS 200
typedef struct mt_job {
    const glm_tokenizer *t;
    char (*texts)[256];
    size_t *lens;
    int32_t **want;
    size_t *nwant;
    int bad;
} mt_job;

static void *mt_worker(void *arg)
{
    mt_job *j = arg;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < MT_TEXTS; i++) {
            int k = (i * 7 + rep * 13) % MT_TEXTS;
            int32_t *ids;
            size_t n;
            if (glm_tokenizer_encode(j->t, j->texts[k], j->lens[k], 0, &ids, &n) != GLM_OK || n != j->nwant[k] ||
                (n && memcmp(ids, j->want[k], n * sizeof *ids) != 0))
                j->bad++;
            free(ids);
        }
    return NULL;
}

START_TEST(test_threads)
{
    glm_tokenizer *t = open_tok(HF_JSON);
    tu_rng r = { tu_seed("tokenizer_threads") };
    static char texts[MT_TEXTS][256];
    size_t lens[MT_TEXTS], nwant[MT_TEXTS];
    int32_t *want[MT_TEXTS];
    for (int i = 0; i < MT_TEXTS; i++) {
        lens[i] = random_text(&r, texts[i], sizeof texts[i]);
        encode_ok(t, texts[i], lens[i], 0, &want[i], &nwant[i]);
    }
    glm_tokenizer_destroy(t);
    t = open_tok(HF_JSON); /* a cold cache, filled concurrently */
    mt_job jobs[2] = { { t, texts, lens, want, nwant, 0 }, { t, texts, lens, want, nwant, 0 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, mt_worker, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(jobs[0].bad + jobs[1].bad, 0);
    for (int i = 0; i < MT_TEXTS; i++)
        free(want[i]);
    glm_tokenizer_destroy(t);
}
END_TEST

/* GGUF metadata variants: the dev file's tokenizer.* keys, with one key dropped or replaced. */
typedef struct gguf_edit {
    const char *drop;     /* key left out */
    const char *set_key;  /* string key set to set_val */
    const char *set_val;
    bool bad_types;       /* token_type with one entry too few */
    bool extra_merge;     /* a merge of unknown tokens appended */
    bool tokens_as_ints;  /* tokenizer.ggml.tokens as an int32 array */
} gguf_edit;

static glm_status gguf_variant(const gguf_edit *ed, glm_tokenizer **out)
{
    glm_gguf *src;
    ck_assert(glm_gguf_open(&src, tu_golden(GGUF_Q8)) == GLM_OK);
    glm_gguf_writer *w;
    ck_assert(glm_gguf_writer_create(&w, 0) == GLM_OK);
    for (uint64_t i = 0; i < glm_gguf_kv_count(src); i++) {
        const glm_gguf_kv *kv = glm_gguf_kv_at(src, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (strncmp(key, "tokenizer.", 10) != 0 || (ed->drop && !strcmp(key, ed->drop)) ||
            (ed->set_key && !strcmp(key, ed->set_key)))
            continue;
        if (ed->bad_types && !strcmp(key, "tokenizer.ggml.token_type")) {
            int32_t *ty = malloc(kv->arr_count * sizeof *ty);
            for (uint64_t k = 0; k < kv->arr_count; k++) {
                int64_t v;
                ck_assert(glm_gguf_arr_i64(kv, k, &v) == GLM_OK);
                ty[k] = (int32_t)v;
            }
            ck_assert(glm_gguf_writer_set_arr(w, key, GLM_GGUF_INT32, ty, kv->arr_count - 1) == GLM_OK);
            free(ty);
        } else if ((ed->extra_merge && !strcmp(key, "tokenizer.ggml.merges")) ||
                   (ed->tokens_as_ints && !strcmp(key, "tokenizer.ggml.tokens"))) {
            if (ed->tokens_as_ints) {
                int32_t *v = calloc(kv->arr_count, sizeof *v);
                ck_assert(glm_gguf_writer_set_arr(w, key, GLM_GGUF_INT32, v, kv->arr_count) == GLM_OK);
                free(v);
                continue;
            }
            char **m = malloc((kv->arr_count + 1) * sizeof *m);
            for (uint64_t k = 0; k < kv->arr_count; k++) {
                glm_str gs = glm_gguf_arr_str(kv, k);
                m[k] = strndup(gs.ptr, gs.len);
            }
            m[kv->arr_count] = strdup("qqqzzz x");
            ck_assert(glm_gguf_writer_set_arr_str(w, key, (const char *const *)m, kv->arr_count + 1) == GLM_OK);
            for (uint64_t k = 0; k <= kv->arr_count; k++)
                free(m[k]);
            free(m);
        } else
            ck_assert(glm_gguf_writer_copy_kv(w, kv) == GLM_OK);
    }
    if (ed->set_key)
        ck_assert(glm_gguf_writer_set_str(w, ed->set_key, ed->set_val) == GLM_OK);
    uint8_t *buf;
    size_t len;
    ck_assert_msg(glm_gguf_writer_write_memory(w, &buf, &len) == GLM_OK, "%s", glm_last_error());
    glm_gguf_writer_destroy(w);
    glm_gguf_close(src);
    glm_gguf *g;
    ck_assert_msg(glm_gguf_open_memory(&g, buf, len, "variant.gguf") == GLM_OK, "%s", glm_last_error());
    *out = (glm_tokenizer *)0x1;
    glm_status st = glm_tokenizer_from_gguf(out, g);
    glm_gguf_close(g);
    free(buf);
    if (st != GLM_OK) {
        ck_assert_ptr_null(*out);
        ck_assert(glm_last_error()[0] && !strchr(glm_last_error(), '\n'));
    }
    return st;
}

START_TEST(test_gguf_variants)
{
    glm_tokenizer *t, *ref = open_tok(GGUF_Q8);
    const char *text = "[gMASK]<sop> The engine's 12345 tokens\n\n中文 🚀";
    int32_t *a, *b;
    size_t na, nb;
    /* the tokenizer keys alone, no tensors: identical ids */
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ 0 }, &t), GLM_OK);
    encode_ok(ref, text, strlen(text), 0, &a, &na);
    encode_ok(t, text, strlen(text), 0, &b, &nb);
    ck_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(b);
    glm_tokenizer_destroy(t);
    /* no merges: every piece stays bytes, so more ids, and still a round trip */
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .drop = "tokenizer.ggml.merges" }, &t), GLM_OK);
    encode_ok(t, text, strlen(text), 0, &b, &nb);
    ck_assert_uint_gt(nb, na);
    free(b);
    assert_roundtrip(t, text, strlen(text));
    glm_tokenizer_destroy(t);
    /* no pre key: llama.cpp's default (GPT-2 split) */
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .drop = "tokenizer.ggml.pre" }, &t), GLM_OK);
    assert_roundtrip(t, text, strlen(text));
    glm_tokenizer_destroy(t);
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .set_key = "tokenizer.ggml.pre", .set_val = "chatglm-bpe" }, &t),
                     GLM_OK);
    encode_ok(t, text, strlen(text), 0, &b, &nb);
    ck_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0);
    free(b);
    glm_tokenizer_destroy(t);
    free(a);
    glm_tokenizer_destroy(ref);

    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .drop = "tokenizer.ggml.tokens" }, &t), GLM_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "tokenizer.ggml.tokens"));
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .drop = "tokenizer.ggml.model" }, &t), GLM_ERR_NOT_FOUND);
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .set_key = "tokenizer.ggml.model", .set_val = "llama" }, &t),
                     GLM_ERR_UNSUPPORTED);
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .set_key = "tokenizer.ggml.pre", .set_val = "qwen2\n" }, &t),
                     GLM_ERR_UNSUPPORTED);
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .bad_types = true }, &t), GLM_ERR_FORMAT);
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .extra_merge = true }, &t), GLM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(glm_last_error(), "qqqzzz"));
    ck_assert_int_eq(gguf_variant(&(gguf_edit){ .tokens_as_ints = true }, &t), GLM_ERR_FORMAT);
}
END_TEST

/* golden/tokenizer/hf_random.bin (README there): 3000 strings with HF tokenizers' ids. */
START_TEST(test_hf_random)
{
    char *buf;
    size_t len;
    ck_assert_msg(glm_file_read_all(&buf, &len, tu_golden("tokenizer/hf_random.bin"), 64u << 20) == GLM_OK, "%s",
                  glm_last_error());
    ck_assert(len >= 8 && memcmp(buf, "GLMTOKC1", 8) == 0);
    const char *sources[] = { HF_JSON, GGUF_Q8 };
    for (int k = 0; k < 2; k++) {
        glm_tokenizer *t = open_tok(sources[k]);
        size_t off = 8, cases = 0;
        while (off < len) {
            uint32_t tl, ni;
            ck_assert_uint_le(off + 8, len);
            memcpy(&tl, buf + off, 4);
            memcpy(&ni, buf + off + 4, 4);
            off += 8;
            ck_assert_uint_le(off + tl + 4 * (size_t)ni, len);
            const char *text = buf + off;
            int32_t *want = malloc(4 * (size_t)ni + 4);
            memcpy(want, buf + off + tl, 4 * (size_t)ni);
            off += tl + 4 * (size_t)ni;
            int32_t *got;
            size_t n;
            encode_ok(t, text, tl, 0, &got, &n);
            ck_assert_msg(n == ni, "%s case %zu: %zu ids, HF has %u", sources[k], cases, n, ni);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(got[i] == want[i], "%s case %zu: id[%zu] = %d, HF has %d", sources[k], cases, i, got[i],
                              want[i]);
            if (k == 0 && cases % 10 == 0) {
                assert_roundtrip(t, text, tl);
                stream_matches_batch(t, got, n);
            }
            free(got);
            free(want);
            cases++;
        }
        ck_assert_uint_eq(cases, 3000);
        glm_tokenizer_destroy(t);
    }
    free(buf);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_golden_json);
    tcase_add_test(tc, test_golden_hf_dir);
    tcase_add_test(tc, test_golden_gguf);
    tcase_add_test(tc, test_golden_gguf_bf16);
    tcase_add_test(tc, test_hf_random);
    tcase_add_test(tc, test_roundtrip_random);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_utf8_validator);
    tcase_add_test(tc, test_stream_decode);
    tcase_add_test(tc, test_special_tokens);
    tcase_add_test(tc, test_encode_spans);
    tcase_add_test(tc, test_chat_encode_no_injection);
    tcase_add_test(tc, test_long_runs);
    tcase_add_test(tc, test_decode_errors);
    tcase_add_test(tc, test_hostile_json);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_regex_white_space);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_added_options);
    tcase_add_test(tc, test_split_gaps);
    tcase_add_test(tc, test_gguf_variants);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
