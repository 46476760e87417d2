/* Byte-level BPE tokenizer (GPT-2 byte<->unicode mapping) as GLM-4.7-Flash uses it
 * (model-spec §7.1): added/special tokens are split out first (leftmost, longest), the rest
 * is cut by the pre-tokenizer regex (PCRE2, UTF + UCP, JIT), each piece is byte-mapped and
 * merged by rank exactly as Hugging Face tokenizers' BPE model does. Built from a
 * tokenizer.json or from GGUF tokenizer.ggml.* metadata; both give identical ids.
 *
 * Invalid UTF-8 input is not rejected: each maximal valid run is pre-tokenized normally and
 * every byte that is not part of a valid sequence becomes a piece of its own (its byte
 * token), so decode(encode(x)) == x for ANY byte string. (HF itself only accepts valid
 * strings, where the two agree.)
 *
 * Not here: the chat template (tokenizer/chat.c), BOS policy (none is ever added, §8.14). */
#ifndef GLM_BPE_H
#define GLM_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct glm_tokenizer glm_tokenizer;
struct glm_gguf;

/* Ids of well-known tokens, -1 when the source does not name one. From GGUF
 * tokenizer.ggml.{bos,eos,eot,eom,padding}_token_id; from an HF directory the eos/pad/bos
 * names of tokenizer_config.json, and the GLM conventions of llama.cpp's converter
 * (eot = <|user|>, eom = <|observation|>, bos = [gMASK]) when those tokens exist. */
typedef struct glm_tokenizer_specials {
    int32_t bos, eos, eot, eom, pad;
} glm_tokenizer_specials;

/* Load from a tokenizer.json file / from its bytes (`name` is used in messages). */
glm_status glm_tokenizer_from_json(glm_tokenizer **out, const char *path);
glm_status glm_tokenizer_from_json_memory(glm_tokenizer **out, const char *json, size_t len, const char *name);
/* Load from the tokenizer.ggml.* metadata of an open GGUF (the GGUF may be closed after). */
glm_status glm_tokenizer_from_gguf(glm_tokenizer **out, const struct glm_gguf *g);
/* MODEL as the CLI takes it: a .gguf file, an HF directory (tokenizer.json and optional
 * tokenizer_config.json inside) or a tokenizer.json path. */
glm_status glm_tokenizer_open(glm_tokenizer **out, const char *model_path);
void glm_tokenizer_destroy(glm_tokenizer *t);

/* Number of ids (max id + 1); some ids below it may have no token. */
int32_t glm_tokenizer_n_vocab(const glm_tokenizer *t);
const glm_tokenizer_specials *glm_tokenizer_get_specials(const glm_tokenizer *t);
/* Id of a token given its text: an added token's content, or a vocabulary entry whose
 * decoded bytes equal `text`. -1 if none. */
int32_t glm_tokenizer_find(const glm_tokenizer *t, const char *text, size_t len);
/* True for ids of added tokens flagged special (HF "special", GGUF type 3 = control). */
bool glm_tokenizer_is_special(const glm_tokenizer *t, int32_t id);
/* The bytes an id decodes to (vocabulary: reverse byte mapping; added tokens: their text,
 * unless the same string is the id's vocabulary entry). HF would also byte-map an added token
 * made only of mapped characters ("\u0120yo" -> " yo"); glm47 prints added tokens as written,
 * like llama.cpp. For printable-ASCII specials (all of GLM's) the two agree.
 * NULL (and *len = 0) for an id out of range or without a token. */
const char *glm_tokenizer_token_bytes(const glm_tokenizer *t, int32_t id, size_t *len);

enum {
    /* Treat special-token text in the input as plain text (user content in a chat);
     * non-special added tokens are still matched, as in HF and llama.cpp. */
    GLM_TOK_NO_SPECIAL = 1u << 0,
};

/* Encode `len` bytes of `text`. *ids is malloc'd (free() it; may be NULL when *n == 0).
 * Thread-safe: a tokenizer may be shared by threads. */
glm_status glm_tokenizer_encode(const glm_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                                size_t *n);

/* A byte range [off, off + len) of an input. */
typedef struct glm_text_span {
    size_t off, len;
} glm_text_span;

/* Encode with special-token matching off inside the ranges plain[n_plain] (ascending, not
 * overlapping) and on elsewhere: a rendered chat template keeps its own markers special
 * while user text that spells "<|user|>" stays plain text. A special token whose text
 * overlaps a plain range is not matched at all. Everything else is as glm_tokenizer_encode
 * (which is this with no ranges). */
glm_status glm_tokenizer_encode_spans(const glm_tokenizer *t, const char *text, size_t len, unsigned flags,
                                      const glm_text_span *plain, size_t n_plain, int32_t **ids, size_t *n);
/* Decode ids to bytes (NUL-terminated as a convenience; *len excludes the NUL). An id out of
 * range or without a token fails with a message naming it and its position. */
glm_status glm_tokenizer_decode(const glm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

/* Streaming decoder: feed ids one by one; each call yields the bytes that became final.
 * A trailing incomplete but still possibly valid UTF-8 sequence is held back until it
 * completes; bytes that can never become valid are passed through as they are, so the
 * concatenation of all outputs plus the final flush equals glm_tokenizer_decode(). */
typedef struct glm_detok_stream glm_detok_stream;
glm_status glm_detok_stream_create(glm_detok_stream **out, const glm_tokenizer *t);
void glm_detok_stream_destroy(glm_detok_stream *s);
/* *text stays valid until the next call on `s`; *len may be 0. */
glm_status glm_detok_stream_feed(glm_detok_stream *s, int32_t id, const char **text, size_t *len);
/* Emit whatever is held back (an incomplete sequence, as raw bytes) and reset. */
glm_status glm_detok_stream_flush(glm_detok_stream *s, const char **text, size_t *len);

/* Length of the longest prefix of buf[0..n) that is valid UTF-8 (strict: no overlongs,
 * surrogates or code points above U+10FFFF). */
size_t glm_utf8_valid_prefix(const uint8_t *buf, size_t n);

#endif
