/* GLM-4.7 chat template (model-spec.md §7.2) and its reverse: a renderer from plain C structs
 * to the prompt text, a builder of those structs from an OpenAI-style request (cJSON), and a
 * parser (one-shot and streaming) that splits generated assistant text into reasoning,
 * content and tool calls.
 * Tokenisation of a rendered conversation (glm_chat_encode) matches the template's own
 * markers (`[gMASK]<sop>`, `<|user|>`, ... §8 item 14) as special tokens but never special
 * text inside the conversation's strings: a user who types "<|user|>" cannot switch roles.
 * Not here: the tokenizer itself (tokenizer/bpe.h), HTTP/SSE framing. */
#ifndef GLM_CHAT_H
#define GLM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "tokenizer/bpe.h"
#include "util/status.h"

typedef enum glm_chat_role {
    GLM_CHAT_SYSTEM = 0,
    GLM_CHAT_USER,
    GLM_CHAT_ASSISTANT,
    GLM_CHAT_TOOL
} glm_chat_role;

/* One tool-call argument: `value` is a plain string (is_json false, rendered verbatim) or
 * JSON text (is_json true: numbers, objects, arrays, true/false/null; rendered as is). */
typedef struct glm_chat_arg {
    char *key;
    char *value;
    bool is_json;
} glm_chat_arg;

typedef struct glm_chat_tool_call {
    char *name;
    glm_chat_arg *args; /* in the order given */
    size_t n_args;
} glm_chat_tool_call;

typedef struct glm_chat_message {
    glm_chat_role role;
    char *content;           /* never NULL ("" for null content) */
    char *reasoning_content; /* NULL = not given; then it is taken from content's </think> */
    glm_chat_tool_call *tool_calls;
    size_t n_tool_calls;
} glm_chat_message;

/* A conversation: messages plus tools, each tool already serialised as the template prints
 * it (glm_chat_json_dumps of the tool object as given). Owns every string. */
typedef struct glm_chat {
    glm_chat_message *messages;
    size_t n_messages;
    char **tools;
    size_t n_tools;
} glm_chat;

typedef struct glm_chat_options {
    bool enable_thinking;       /* default true: prompt ends "<|assistant|><think>" */
    int clear_thinking;         /* -1 unset (default), 0 false (keep all reasoning), 1 true */
    bool add_generation_prompt; /* default true */
} glm_chat_options;

void glm_chat_options_default(glm_chat_options *o);

/* Build a conversation from an OpenAI request's "messages" (required array) and "tools"
 * (NULL or JSON null allowed). content: string, null, or an array of {type:"text", text}
 * parts (joined). tool_calls[i]: {function:{name, arguments}} or {name, arguments}, where
 * arguments is a JSON text of an object (OpenAI) or an object (Hugging Face); key order is
 * kept. A bad shape fails with one line naming the field, e.g.
 * "messages[2].role: expected one of system, user, assistant, tool". */
glm_status glm_chat_from_json(glm_chat **out, const cJSON *messages, const cJSON *tools);
void glm_chat_destroy(glm_chat *c);

/* Render rules 1-4 of §7.2. *out is a NUL-terminated heap string (free()). */
glm_status glm_chat_render(char **out, size_t *out_len, const glm_chat *chat,
                           const glm_chat_options *opt);
/* The same, plus the ascending byte ranges of *out that came from the conversation's
 * strings (contents, reasoning, tool names, arguments, tool definitions) rather than from
 * the template; *plain is malloc'd (free()). plain may be NULL. */
glm_status glm_chat_render_spans(char **out, size_t *out_len, glm_text_span **plain, size_t *n_plain,
                                 const glm_chat *chat, const glm_chat_options *opt);
/* Render and tokenize: special tokens are matched in the template's text only. *ids: free(). */
glm_status glm_chat_encode(const glm_tokenizer *t, const glm_chat *chat, const glm_chat_options *opt, int32_t **ids,
                           size_t *n);

/* Python json.dumps(v, ensure_ascii=False) with separators ", " and ": ", keys in cJSON
 * (= given) order. Numbers: integral values below 1e16 print as integers; others use the
 * shortest repr that round-trips, in Python's format (1e-05, 1.5e+16, 0.1). cJSON keeps no
 * int/float distinction, so a float 1.0 prints as 1 (Python: 1.0). */
glm_status glm_chat_json_dumps(char **out, const cJSON *v);

/* ---- reverse: generated assistant text -> reasoning, content, tool calls ----
 * Tags (§7.1 specials): <think> </think> <tool_call> </tool_call> <arg_key> </arg_key>
 * <arg_value> </arg_value>. The parser starts in reasoning mode when the prompt ended with
 * <think> (thinking on; the output then has no opening tag, §8 item 8), else in content mode.
 *  - reasoning mode: text up to </think> is reasoning; a repeated <think> is dropped; other
 *    tags stay reasoning text (the model may think about a call).
 *  - content mode: <think> enters reasoning mode (re-thinking, llama.cpp #19613);
 *    <tool_call> starts a call that runs to </tool_call>, to the next <tool_call>, or to the
 *    end of the text (truncated generation: the call is still returned with what it has);
 *    any other stray tag is dropped.
 *  - reasoning and content are each stripped of outer (ASCII) whitespace; inner text is
 *    verbatim. Deltas never end inside a UTF-8 character (an unfinished one at the very end
 *    of the text is dropped with the trailing whitespace).
 *  - a call body is NAME then <arg_key>K</arg_key><arg_value>V</arg_value> pairs; whitespace
 *    between tags is ignored; the name and keys are stripped. Recovery rules: a value with no
 *    key is skipped; a key with no value is skipped; a missing </arg_value> or </arg_key> is
 *    closed by the next tag or the end; a repeated key replaces the earlier value in place;
 *    a call with an empty name is dropped.
 *  - a value whose parameter the request's tool schema types as "string" stays the string
 *    as written. Otherwise values that parse as JSON numbers (kept as written), objects,
 *    arrays, true, false or null become that JSON value; anything else (a quoted "string"
 *    included) stays a string, as the template wrote strings verbatim. Without a schema "5"
 *    is therefore the number 5. The call's arguments are a JSON object text. */
typedef struct glm_chat_call_out {
    char *name;
    char *arguments; /* JSON object text, e.g. {"city": "Paris", "days": 3} */
} glm_chat_call_out;

typedef struct glm_chat_parsed {
    char *reasoning; /* never NULL */
    char *content;   /* never NULL */
    glm_chat_call_out *calls;
    size_t n_calls;
} glm_chat_parsed;

/* tools: the request's OpenAI "tools" array, or NULL; used only for argument types. */
glm_status glm_chat_parse(glm_chat_parsed **out, const char *text, size_t len, bool thinking,
                          const cJSON *tools);
void glm_chat_parsed_destroy(glm_chat_parsed *p);

/* Streaming: feed chunks as they are generated; events arrive through the callback. Text
 * that could still become a tag ("</thi") is held back until it is decided, and trailing
 * whitespace is held until more text follows, so the concatenated deltas equal the one-shot
 * result for any chunking. A call is reported once, when complete (or at finish). */
typedef enum glm_chat_event_kind {
    GLM_CHAT_EV_REASONING = 0,
    GLM_CHAT_EV_CONTENT,
    GLM_CHAT_EV_TOOL_CALL
} glm_chat_event_kind;

typedef struct glm_chat_event {
    glm_chat_event_kind kind;
    const char *text; /* delta for REASONING/CONTENT (not NUL-terminated) */
    size_t len;
    const glm_chat_call_out *call; /* TOOL_CALL; valid during the callback only */
} glm_chat_event;

/* A non-OK return from the callback stops processing and is returned by feed/finish. */
typedef glm_status (*glm_chat_event_fn)(void *user, const glm_chat_event *ev);

typedef struct glm_chat_stream glm_chat_stream;

/* tools as for glm_chat_parse (copied; the caller may free its own). */
glm_status glm_chat_stream_create(glm_chat_stream **out, bool thinking, const cJSON *tools);
glm_status glm_chat_stream_feed(glm_chat_stream *s, const char *text, size_t len,
                                glm_chat_event_fn fn, void *user);
/* End of generation: flush held text and any unterminated call. */
glm_status glm_chat_stream_finish(glm_chat_stream *s, glm_chat_event_fn fn, void *user);
void glm_chat_stream_destroy(glm_chat_stream *s);

#endif
