/* cmd_exchange.c - `cumulus exchange`: run the exchange daemon. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "exchange/exchange.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus exchange [--listen ADDR:PORT] [--data DIR] [--lease DURATION]\n"
    "                        [--devnet] [--web DIR] [--log LEVEL]\n"
    "\n"
    "Runs an exchange until SIGINT/SIGTERM: the HTTP API of docs/api.md, job and\n"
    "replica state in DIR/state.db, blobs in DIR/blobs. Once listening it writes\n"
    "its URL to DIR/exchange.url (port 0 picks a free port).\n"
    "\n"
    "  --listen ADDR:PORT  address to listen on (default 127.0.0.1:7070)\n"
    "  --data DIR          state directory (default ./exchange-data)\n"
    "  --lease DURATION    replica lease, e.g. 30s, 2m (default 30s); providers\n"
    "                      heartbeat every third of it\n"
    "  --devnet            allow the devnet faucet\n"
    "  --web DIR           serve the dashboard's static files from DIR\n"
    "  --log LEVEL         debug, info, warn, error or off (default info, or\n"
    "                      CUMULUS_LOG)\n";

int cmd_exchange(int argc, char **argv)
{
    struct cu_exchange_opts o = {.listen = "127.0.0.1:7070",
                                 .data_dir = "./exchange-data",
                                 .lease_ms = CU_EXCHANGE_DEFAULT_LEASE_MS};
    const char *log = NULL, *v;
    struct cu_err e = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(a, "--devnet") == 0) {
            o.devnet = true;
            continue;
        } else if (strcmp(a, "--listen") != 0 && strcmp(a, "--data") != 0 &&
                   strcmp(a, "--lease") != 0 && strcmp(a, "--web") != 0 &&
                   strcmp(a, "--log") != 0) {
            cu_cli_errorf("exchange", "unknown argument '%s' (see 'cumulus exchange --help')", a);
            return CU_EXIT_USAGE;
        }
        if (!(v = cu_cli_value("exchange", argc, argv, &i)))
            return CU_EXIT_USAGE;
        if (strcmp(a, "--listen") == 0) {
            if (!strchr(v, ':')) {
                cu_cli_errorf("exchange", "--listen: '%s' is not ADDR:PORT (e.g. 127.0.0.1:7070)",
                              v);
                return CU_EXIT_USAGE;
            }
            o.listen = v;
        } else if (strcmp(a, "--data") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--lease") == 0) {
            if (cu_parse_duration_ms(v, &o.lease_ms) != 0 || o.lease_ms < 1000) {
                cu_cli_errorf("exchange", "--lease: '%s' is not a duration of at least 1s "
                                          "(e.g. 30s, 2m)", v);
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--web") == 0) {
            o.web_dir = v;
        } else {
            log = v;
        }
    }
    cu_cli_log_init("exchange", "exchange");
    if (log && cu_cli_log_level("exchange", log) != 0)
        return CU_EXIT_USAGE;
    if (cu_exchange_run(&o, &e) != 0) {
        cu_cli_errorf("exchange", "%s", e.msg[0] ? e.msg : "could not start");
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}
