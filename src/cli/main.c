/* main.c - the `cumulus` binary: dispatch to the subcommand table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "crypto/hash.h"
#include "base/banned.h"

const struct cu_command cu_commands[] = {
#define CU_X_ENTRY(name, summary) {#name, cmd_##name, summary},
    CU_COMMAND_TABLE(CU_X_ENTRY)
#undef CU_X_ENTRY
};
const unsigned cu_ncommands = sizeof cu_commands / sizeof cu_commands[0];

static void usage(FILE *f)
{
    fprintf(f, "usage: cumulus <command> [options]   (cumulus <command> --help for details)\n\n"
               "commands:\n");
    for (unsigned i = 0; i < cu_ncommands; i++)
        fprintf(f, "  %-10s %s\n", cu_commands[i].name, cu_commands[i].summary);
    fprintf(f, "\nenvironment: CUMULUS_EXCHANGE (exchange URL), CUMULUS_HOME (default ~/.cumulus),\n"
               "             CUMULUS_PASSPHRASE (keystore passphrase), CUMULUS_LOG (debug|info|warn|error)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CU_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || cu_cli_is_help(argv[1])) {
        if (argc > 2) {
            for (unsigned i = 0; i < cu_ncommands; i++) {
                if (strcmp(argv[2], cu_commands[i].name) == 0) {
                    char *sub[] = {argv[2], "--help", NULL};
                    return cu_commands[i].fn(2, sub);
                }
            }
        }
        usage(stdout);
        return CU_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("cumulus 0.1.0\n");
        return CU_EXIT_OK;
    }
    /* A peer closing a socket must give EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (cu_crypto_init() != 0) {
        fprintf(stderr, "cumulus: libsodium failed to initialise\n");
        return CU_EXIT_FAIL;
    }
    for (unsigned i = 0; i < cu_ncommands; i++) {
        if (strcmp(argv[1], cu_commands[i].name) == 0)
            return cu_commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cumulus: '%s' is not a command (see 'cumulus help')\n", argv[1]);
    return CU_EXIT_USAGE;
}
