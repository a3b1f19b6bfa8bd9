/* cmd_provide.c - `cumulus provide`: run a provider agent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "crypto/hash.h"
#include "client/config.h"
#include "fabric/idle.h"
#include "provider/provider.h"

#include "base/banned.h"

#define DEFAULT_IDLE_AFTER_MS (5 * 60 * 1000)
#define DEFAULT_LOAD_WINDOW_MS (10 * 1000) /* --max-load without --idle-only */
#define DEFAULT_MAX_LOAD_MILLI 500
#define IDLE_AFTER_MAX_MS (24ULL * 3600 * 1000)

static const char usage_text[] =
    "usage: cumulus provide [--exchange URL] [--data DIR] [--slots N] [--key FILE]\n"
    "                       [--cores N] [--cpus X] [--memory SIZE] [--disk SIZE]\n"
    "                       [--gpus LIST] [--price P] [--log LEVEL]\n"
    "                       [--idle-only] [--idle-after DURATION] [--max-load L]\n"
    "                       [--idle-probe FILE]\n"
    "                       [--owner ID] [--stake AMOUNT] [--cheat MODE]\n"
    "                       [--allow-image HASH]... [--no-warm-sandbox]\n"
    "\n"
    "Rents this machine out to an exchange until SIGINT/SIGTERM: claims tasks by\n"
    "long-poll, runs each in the sandbox, reports results. Only outbound\n"
    "connections are made.\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else 'exchange = URL'\n"
    "                  in $CUMULUS_HOME/config)\n"
    "  --data DIR      provider state, input cache, task directories (default\n"
    "                  ./provider-data)\n"
    "  --slots N       tasks run at once (default 1)\n"
    "  --key FILE      provider identity (default DIR/identity.key, created if\n"
    "                  missing); an encrypted key's passphrase comes from\n"
    "                  CUMULUS_PASSPHRASE\n"
    "  --cores N       cores offered (default: all this machine has, or --cpus\n"
    "                  rounded up)\n"
    "  --cpus X        cap on the CPU all tasks use together, in cores, e.g. 1.5\n"
    "                  (a cgroup CPU quota; default none)\n"
    "  --memory SIZE   memory offered, e.g. 4GiB, and the cap on all tasks together\n"
    "                  (a cgroup limit; default what this machine has)\n"
    "  --disk SIZE     cap on the task directories together, e.g. 20GiB: each of\n"
    "                  the N slots' tasks may use SIZE/N (killed beyond: \"disk\n"
    "                  limit\"); tasks whose inputs do not fit are handed back\n"
    "  --gpus LIST     which GPUs to offer, by index, e.g. 0,1 (default: every GPU\n"
    "                  found); a task asking for GPUs sees only its own\n"
    "  --price P       the ask: base units per CU (a CPU-second on the reference\n"
    "                  core), a whole number >= 1 (default 1); only jobs bidding\n"
    "                  at least P per CU are run here\n"
    "  --log LEVEL     debug, info, warn, error or off (default info, or\n"
    "                  CUMULUS_LOG)\n"
    "  --idle-only     run tasks only while the owner is away: no keyboard or\n"
    "                  mouse input and other processes' load at most L for the\n"
    "                  --idle-after time; when the owner returns, running tasks\n"
    "                  are paused (SIGSTOP, lease kept) and resumed when idle\n"
    "  --idle-after DURATION\n"
    "                  how long it must have been quiet, e.g. 90s, 5m (default\n"
    "                  5m; 10s with --max-load alone)\n"
    "  --max-load L    the most load (cores kept busy) other processes may put on\n"
    "                  the machine, e.g. 0.5 (default 0.5 with --idle-only);\n"
    "                  alone, no new claims while it is above L\n"
    "  --idle-probe FILE\n"
    "                  for tests and scripted setups: instead of measuring, read\n"
    "                  FILE; 'active' = the owner is there, 'idle' = away (since\n"
    "                  it last said active); missing or anything else = active\n"
    "  --allow-image HASH\n"
    "                  run only OCI images whose tarball has this content hash\n"
    "                  (64 hex, as 'cumulus submit' shows it); repeatable; host\n"
    "                  jobs are not affected\n"
    "  --owner ID      who owns this machine (a 64-hex id; default: the provider's\n"
    "                  own id): two replicas of one task never go to one owner\n"
    "  --stake AMOUNT  at start, top this provider's stake up to AMOUNT base units\n"
    "                  from its balance (a replica that loses a quorum forfeits\n"
    "                  part of it; see docs/trust.md)\n"
    "  --cheat MODE    for testing trust on a devnet: makes this provider\n"
    "                  misbehave. MODE: wrong (garbage outputs), wrong-sometimes\n"
    "                  (half of them), vanish (exits mid-task), no-heartbeat,\n"
    "                  bad-answer (wrong heartbeat answers), fail-challenge,\n"
    "                  collude (one fixed wrong output, so colluders agree)\n"
    "  --no-warm-sandbox\n"
    "                  start a new sandbox (bwrap) for every task, instead of\n"
    "                  keeping one warm sandbox per slot for consecutive tasks of\n"
    "                  the same job (faster for short tasks; tasks of different\n"
    "                  jobs never share one)\n";

static int parse_count(const char *opt, const char *v, int64_t max, int64_t *out)
{
    if (cu_parse_i64(v, 1, max, out) != 0) {
        cu_cli_errorf("provide", "%s: '%s' is not a whole number between 1 and %lld", opt, v,
                      (long long)max);
        return -1;
    }
    return 0;
}

/* "1.5" -> 1500 thousandths of a core; at most three decimals, no floating
 * point. 0, or -1 for anything else or out of 0.01..65536. */
static int parse_cpus(const char *v, uint64_t *milli)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    const char *p = v;

    for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
        whole = whole * 10 + (uint64_t)(*p - '0');
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9' && fdigits < 3; p++, fdigits++)
            frac = frac * 10 + (uint64_t)(*p - '0');
        if (fdigits == 0)
            return -1;
    }
    if (*p || (digits == 0 && fdigits == 0))
        return -1;
    while (fdigits++ < 3)
        frac *= 10;
    *milli = whole * 1000 + frac;
    return *milli >= 10 && *milli <= 65536000 ? 0 : -1;
}

int cmd_provide(int argc, char **argv)
{
    struct cu_provider_opts o = {.data_dir = "./provider-data", .slots = 1, .price_per_cu = 1};
    const char *exchange = NULL, *log = NULL, *v;
    char url[1024];
    struct cu_err e = {0};
    int64_t n, idle_after = -1;
    const char *allow[64];
    size_t nallow = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        }
        if (strcmp(a, "--idle-only") == 0) {
            o.idle_only = true;
            continue;
        }
        if (strcmp(a, "--no-warm-sandbox") == 0) {
            o.no_warm_sandbox = true;
            continue;
        }
        if (strcmp(a, "--exchange") != 0 && strcmp(a, "--data") != 0 &&
            strcmp(a, "--slots") != 0 && strcmp(a, "--key") != 0 && strcmp(a, "--cores") != 0 &&
            strcmp(a, "--memory") != 0 && strcmp(a, "--price") != 0 &&
            strcmp(a, "--log") != 0 && strcmp(a, "--cpus") != 0 && strcmp(a, "--disk") != 0 &&
            strcmp(a, "--gpus") != 0 && strcmp(a, "--idle-after") != 0 &&
            strcmp(a, "--max-load") != 0 && strcmp(a, "--idle-probe") != 0 &&
            strcmp(a, "--owner") != 0 && strcmp(a, "--stake") != 0 &&
            strcmp(a, "--allow-image") != 0 &&
            strcmp(a, "--cheat") != 0) {
            cu_cli_errorf("provide", "unknown argument '%s' (see 'cumulus provide --help')", a);
            return CU_EXIT_USAGE;
        }
        if (!(v = cu_cli_value("provide", argc, argv, &i)))
            return CU_EXIT_USAGE;
        if (strcmp(a, "--exchange") == 0) {
            exchange = v;
        } else if (strcmp(a, "--data") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--slots") == 0) {
            if (parse_count(a, v, 1024, &n) != 0)
                return CU_EXIT_USAGE;
            o.slots = (unsigned)n;
        } else if (strcmp(a, "--key") == 0) {
            o.key_path = v;
        } else if (strcmp(a, "--cores") == 0) {
            if (parse_count(a, v, 65536, &n) != 0)
                return CU_EXIT_USAGE;
            o.max_cores = (unsigned)n;
        } else if (strcmp(a, "--memory") == 0) {
            if (cu_parse_size(v, &o.max_memory) != 0 || o.max_memory == 0) {
                cu_cli_errorf("provide", "--memory: '%s' is not a size (use e.g. 4GiB, 512MiB)",
                              v);
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--cpus") == 0) {
            if (parse_cpus(v, &o.cpu_milli) != 0) {
                cu_cli_errorf("provide", "--cpus: '%s' is not a number of cores between 0.01 "
                                         "and 65536 (e.g. 1.5)", v);
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--disk") == 0) {
            if (cu_parse_size(v, &o.max_disk) != 0 || o.max_disk == 0) {
                cu_cli_errorf("provide", "--disk: '%s' is not a size (use e.g. 20GiB)", v);
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--allow-image") == 0) {
            struct cu_hash h;
            if (cu_hash_from_hex(v, &h) != 0) {
                cu_cli_errorf("provide", "--allow-image: '%s' is not an image hash (64 lowercase "
                                         "hex: the content hash of the image tarball)", v);
                return CU_EXIT_USAGE;
            }
            if (nallow >= sizeof allow / sizeof allow[0]) {
                cu_cli_errorf("provide", "--allow-image: at most %zu images",
                              sizeof allow / sizeof allow[0]);
                return CU_EXIT_USAGE;
            }
            allow[nallow++] = v;
            o.allow_images = allow;
            o.nallow_images = nallow;
        } else if (strcmp(a, "--owner") == 0) {
            if (strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64) {
                cu_cli_errorf("provide", "--owner: '%s' is not an id (64 lowercase hex, as "
                                         "printed by cumulus keygen)", v);
                return CU_EXIT_USAGE;
            }
            o.owner = v;
        } else if (strcmp(a, "--stake") == 0) {
            if (cu_parse_i64(v, 1, INT64_MAX, &n) != 0) {
                cu_cli_errorf("provide", "--stake: '%s' is not a whole number of base units "
                                         "(1 or more)", v);
                return CU_EXIT_USAGE;
            }
            o.stake = (uint64_t)n;
        } else if (strcmp(a, "--cheat") == 0) {
            if (cu_cheat_parse(v, &o.cheat) != 0) {
                cu_cli_errorf("provide", "--cheat: '%s' is not a mode (one of: %s)", v,
                              cu_cheat_names());
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--gpus") == 0) {
            o.gpus = v; /* checked against the probe when the provider starts */
        } else if (strcmp(a, "--price") == 0) {
            if (cu_parse_i64(v, 1, INT64_MAX, &n) != 0) {
                cu_cli_errorf("provide", "--price: '%s' is not a whole number of base units "
                                         "per CU (1 or more)", v);
                return CU_EXIT_USAGE;
            }
            o.price_per_cu = (uint64_t)n;
        } else if (strcmp(a, "--idle-after") == 0) {
            uint64_t ms = 0;
            if (cu_parse_duration_ms(v, &ms) != 0 || ms > IDLE_AFTER_MAX_MS) {
                cu_cli_errorf("provide", "--idle-after: '%s' is not a duration of at most a "
                                         "day (use e.g. 90s, 5m, 1h)", v);
                return CU_EXIT_USAGE;
            }
            idle_after = (int64_t)ms;
        } else if (strcmp(a, "--max-load") == 0) {
            if (cu_idle_parse_load(v, &o.max_load_milli) != 0) {
                cu_cli_errorf("provide", "--max-load: '%s' is not a load between 0 and 1000 "
                                         "with at most 3 decimals (e.g. 0.5)", v);
                return CU_EXIT_USAGE;
            }
            o.has_max_load = true;
        } else if (strcmp(a, "--idle-probe") == 0) {
            o.idle_probe = v;
        } else {
            log = v;
        }
    }
    if (!o.idle_only && !o.has_max_load && (idle_after >= 0 || o.idle_probe)) {
        cu_cli_errorf("provide", "%s: only with --idle-only or --max-load",
                      idle_after >= 0 ? "--idle-after" : "--idle-probe");
        return CU_EXIT_USAGE;
    }
    if (o.idle_only && !o.has_max_load)
        o.max_load_milli = DEFAULT_MAX_LOAD_MILLI;
    o.idle_after_ms = idle_after >= 0        ? idle_after
                      : o.idle_only ? DEFAULT_IDLE_AFTER_MS
                                    : DEFAULT_LOAD_WINDOW_MS;
    cu_cli_log_init("provide", "provider");
    if (log && cu_cli_log_level("provide", log) != 0)
        return CU_EXIT_USAGE;
    if (cu_config_exchange_url(exchange, url, sizeof url, &e) != 0) {
        cu_cli_errorf("provide", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    o.exchange_url = url;
    o.passphrase = getenv("CUMULUS_PASSPHRASE");
    if (o.passphrase && !*o.passphrase)
        o.passphrase = NULL;
    if (cu_provider_run(&o, &e) != 0) {
        cu_cli_errorf("provide", "%s", e.msg[0] ? e.msg : "the provider stopped on an error");
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}
