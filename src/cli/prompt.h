/* Prompt input shared by `glm47 run`, `eval` and `perplexity`: --ids lists and -p text
 * through the model's tokenizer, plus small option parsers. Every failure is one line.
 * Not here: chat templating (tokenizer/chat.h), generation (cmd_run.c). */
#ifndef GLM_CLI_PROMPT_H
#define GLM_CLI_PROMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat.h"
#include "util/status.h"

/* "1,2,3" or "1 2 3" → ids (malloc'd); each id must be in [0, n_vocab). */
glm_status glm_cli_parse_ids(const char *arg, int32_t n_vocab, int32_t **ids, int *n);
typedef enum glm_cli_text_mode {
    GLM_CLI_TEXT_RAW = 0,      /* -p TEXT as given; special-token text in it is matched */
    GLM_CLI_TEXT_CHAT_THINK,   /* one user turn of the chat template, generation prompt <think> */
    GLM_CLI_TEXT_CHAT_NO_THINK /* the same ending in </think> (thinking off) */
} glm_cli_text_mode;

/* Prompt tokens from exactly one of ids_arg / text (text needs the tokenizer, opened from
 * the model path into *tok when tok is not NULL and *tok is NULL). In the chat modes text is
 * one user turn of the GLM-4.7 template (model-spec §7.2) and stays plain text: special
 * tokens are matched in the template's markers only (glm_chat_encode). */
glm_status glm_cli_prompt_tokens(const glm_model *m, const char *ids_arg, const char *text, glm_cli_text_mode mode,
                                 glm_tokenizer **tok, int32_t **ids, int *n);
/* Streamed assistant output of `run --chat` and `chat`: reasoning and answer under their
 * own "[thinking]" / "[answer]" headers (reasoning dimmed on a terminal), tool calls on a
 * line of their own. Zero-initialise, set tty; call glm_cli_sections_end after the turn. */
typedef struct glm_cli_sections {
    bool tty;
    int section; /* 0 none yet, 1 reasoning, 2 answer */
} glm_cli_sections;
void glm_cli_sections_print(glm_cli_sections *s, const glm_chat_event *ev);
void glm_cli_sections_end(glm_cli_sections *s);

/* Whole-string numeric options: "--temp 0.7" etc.; the message names the option. */
glm_status glm_cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
glm_status glm_cli_parse_float(const char *opt, const char *s, float *out);

#endif
