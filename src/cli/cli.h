/* Subcommands of the glm47 binary. Each returns the process exit status (0 ok, 1 failure,
 * 2 usage error) and prints failures as one line on stderr. */
#ifndef GLM_CLI_H
#define GLM_CLI_H

#include "backend/backend.h"
#include "util/status.h"

int glm_cmd_info(int argc, char **argv);
int glm_cmd_tokenize(int argc, char **argv);
int glm_cmd_detokenize(int argc, char **argv);
int glm_cmd_run(int argc, char **argv);
int glm_cmd_chat(int argc, char **argv);
int glm_cmd_eval(int argc, char **argv);
int glm_cmd_diff(int argc, char **argv);
int glm_cmd_perplexity(int argc, char **argv);
int glm_cmd_quantize(int argc, char **argv);
int glm_cmd_chat_template(int argc, char **argv);
int glm_cmd_serve(int argc, char **argv);
int glm_cmd_parity(int argc, char **argv);
int glm_cmd_bench(int argc, char **argv);

/* glm_backend_create with a progress bar on stderr when stderr is a terminal (nothing
 * otherwise): "uploading" counts the tensors and bytes a backend copies (Vulkan: to the
 * GPU); a backend that runs from the mapped file gets every weight page read first
 * ("loading"), so the first token does not wait on the disk. (cli/load.c) */
glm_status glm_cli_backend_create(glm_backend **out, const char *name, const glm_model *m);

/* Print "glm47 <cmd>: <last error>" and return 1. */
int glm_cli_fail(const char *cmd);

#endif
