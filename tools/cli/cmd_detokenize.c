/* cmd_detokenize.c: `phi3c detokenize`. Not implemented yet: it says so and fails (see the open issues). */
#include "cli.h"

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: phi3c detokenize ... (not implemented yet)\n");
        return CLI_EXIT_OK;
    }
    fprintf(stderr, "phi3c detokenize: not implemented yet\n");
    return CLI_EXIT_FAIL;
}
