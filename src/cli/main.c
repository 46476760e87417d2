/* glm47: one binary, subcommands (ARCHITECTURE.md, "Command line contract"). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} command;

static const command k_commands[] = {
    { "run", glm_cmd_run, "run -m MODEL (-p TEXT | --ids 1,2,3) [-n N] [--temp T ...]  generate text" },
    { "chat", glm_cmd_chat, "chat -m MODEL [--system TEXT] [--no-think] [-n N] [--temp T ...]  interactive, streaming" },
    { "eval", glm_cmd_eval, "eval -m MODEL (--ids ... | -p TEXT) --dump out.h5         per-layer dump + logits" },
    { "diff", glm_cmd_diff, "diff A.h5 B.h5 [--tol X]                                  first divergence" },
    { "perplexity", glm_cmd_perplexity, "perplexity -m MODEL -f FILE                            perplexity of a text" },
    { "info", glm_cmd_info, "info [-m] MODEL                                           metadata, tensors, sizes" },
    { "tokenize", glm_cmd_tokenize, "tokenize -m MODEL (-f FILE | TEXT)                        text -> ids" },
    { "detokenize", glm_cmd_detokenize, "detokenize -m MODEL IDS                                 ids -> text" },
    { "quantize", glm_cmd_quantize, "quantize IN OUT --type q8_0|q4_k_m|...                    write a GGUF" },
    { "template", glm_cmd_chat_template, "template -f MESSAGES.json [--no-think]                   render the chat template" },
    { "serve", glm_cmd_serve, "serve -m MODEL [--host H] [--port P] [--api-key K] [--ctx N] [--model-name NAME]   OpenAI-compatible server" },
    { "bench", glm_cmd_bench, "bench -m MODEL [-p 512] [-n 128] [-d 0,4096] [-r 5] [--json] [--profile]   speed (llama-bench's tests)" },
    { "parity", glm_cmd_parity, "parity [--ops ...] [--report out.md] [--json]   per-kernel Vulkan vs reference report" },
};

static void usage(FILE *to)
{
    fprintf(to, "usage: glm47 <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(to, "  %s\n", k_commands[i].usage);
    fprintf(to, "\nMODEL is a .gguf file (or the first of a split set) or a Hugging Face directory.\n");
}

int glm_cli_fail(const char *cmd)
{
    fprintf(stderr, "glm47 %s: %s\n", cmd, glm_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name))
            return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "glm47: unknown command '%s' (try glm47 --help)\n", argv[1]);
    return 2;
}
