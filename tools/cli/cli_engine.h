/* cli_engine.h: the model, session and sampling flags shared by run, chat, logits and perplexity,
 * so every subcommand spells them the same way. */
#ifndef P3_CLI_ENGINE_H
#define P3_CLI_ENGINE_H

#include "cli.h"

typedef struct cli_engine_opts {
    const char *model_path;
    phi3c_model_params model;
    phi3c_session_params session;
    phi3c_sampler_params sampler;
    bool ctx_given;
    bool quant_method_given;
    bool color; /* --color: colour the prompt and the generated text on a terminal */
} cli_engine_opts;

void cli_engine_opts_init(cli_engine_opts *o);

/* Result of offering argv[*i] to a flag parser. */
enum { CLI_FLAG_NOT_MINE = 0, CLI_FLAG_TAKEN = 1, CLI_FLAG_BAD = -1 };

/* -m/--model, --backend, -t/--threads, --quant, --act, --kv, -c/--ctx-size, --batch. A bad value
 * has already been reported (usage message) when CLI_FLAG_BAD is returned. */
int cli_engine_flag(const char *cmd, int argc, char **argv, int *i, cli_engine_opts *o);
/* --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, -s/--seed, --greedy,
 * --color, and --lookup (a session option that only generation uses). No seed, or -1, is a
 * random seed (cli_engine_opts_init draws one). */
int cli_sampler_flag(const char *cmd, int argc, char **argv, int *i, cli_engine_opts *o);

/* --color escapes: the prompt (or the user's text) and the model's text. */
#define CLI_COLOR_PROMPT "\033[33m"
#define CLI_COLOR_MODEL  "\033[0m"
#define CLI_COLOR_OFF    "\033[0m"

/* --quant without --quant-method: says that load-time quantization is round-to-nearest while
 * `phi3c quantize` searches, so their text differs. */
void cli_note_quant_method(const char *cmd, const cli_engine_opts *o);

extern const char cli_engine_help[];
extern const char cli_ctx_help[]; /* -c: printed by the commands whose default it is */
extern const char cli_sampler_help[];

/* " | lookup: D drafted, A accepted (P%), T tokens/forward" for the stats line ("" when off). */
void cli_lookup_stats(char *buf, size_t len, const cli_engine_opts *o,
                      const phi3c_generate_result *r);

/* Loads the model and creates a session; prints the error and returns false on failure, also
 * when -c asks for more positions than the model was trained for. Warns when -t is above the
 * core count. */
bool cli_engine_open(const char *cmd, const cli_engine_opts *o, phi3c_model **model,
                     phi3c_session **session);

/* True when the model has a tokenizer; else prints why (none at all, or the load's own error: a
 * corrupt tokenizer.json, a bad native blob, out of memory) and returns false. */
bool cli_need_tokenizer(const char *cmd, const phi3c_model *model, const char *model_path);

/* Parses token ids separated by spaces, commas or newlines into a new malloc'd array; false when
 * there is something else or no id at all. */
bool cli_parse_ids(const char *text, int32_t **ids, size_t *n);

#endif /* P3_CLI_ENGINE_H */
