/* cmd_logits.c: `phi3c logits`. Not implemented yet: it says so and fails (see the open issues). */
#include "cli.h"

int cmd_logits(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: phi3c logits ... (not implemented yet)\n");
        return CLI_EXIT_OK;
    }
    fprintf(stderr, "phi3c logits: not implemented yet\n");
    return CLI_EXIT_FAIL;
}
