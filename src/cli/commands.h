/* commands.h - the subcommand table (git's builtin.h is the model).
 *
 * Each command lives in src/cli/cmd_<name>.c as
 *     int cmd_<name>(int argc, char **argv);
 * argv[0] is the command name. The return value is the exit code:
 * 0 success, 1 failure, 2 bad usage. Errors go to stderr and name what is
 * wrong. `cumulus help` and `cumulus CMD --help` come from this table and
 * each command's own usage text. */
#ifndef CU_CLI_COMMANDS_H
#define CU_CLI_COMMANDS_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define CU_EXIT_OK 0
#define CU_EXIT_FAIL 1
#define CU_EXIT_USAGE 2

struct cu_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;  /* one line for `cumulus help` */
};

/* X(name, summary): the single list of subcommands. */
#define CU_COMMAND_TABLE(X)                                                                  \
    X(keygen, "create an identity (ed25519 key pair in an encrypted keystore)")              \
    X(exchange, "run an exchange: match jobs to providers, hold state and blobs")            \
    X(provide, "run a provider agent: rent out this machine's CPUs to an exchange")          \
    X(provider, "a provider's own view: 'provider status' shows its tasks, usage, earnings")  \
    X(submit, "upload a job's inputs and submit the signed job; prints its id")              \
    X(status, "list your jobs, or show one job's tasks and replicas")                        \
    X(wait, "show a progress bar until a job ends; exit 0 only if every task succeeded")     \
    X(results, "download every task's outputs, verified against their hashes")               \
    X(logs, "print a task's stdout and stderr")                                              \
    X(cancel, "cancel a job; running replicas stop at their next heartbeat")                 \
    X(wallet, "your account: balance, escrow, stake; signed transfers; history")            \
    X(faucet, "mint test tokens into your account (devnet exchanges only)")                 \
    X(market, "the indicative price per CU, fees, recent trades, open bids and asks")        \
    X(reputation, "a provider's trust score, its records (success, wrong result...) and stake") \
    X(ledger, "verify the ledger from genesis (URL, data dir or file); export; show a block") \
    X(demo, "the main job: exchange + providers on loopback render a fractal")

#define CU_X_DECL(name, summary) int cmd_##name(int argc, char **argv);
CU_COMMAND_TABLE(CU_X_DECL)
#undef CU_X_DECL

extern const struct cu_command cu_commands[];
extern const unsigned cu_ncommands;

/* Shared option helpers for commands (cli_common.c). */

/* True if argv[i] is "-h" or "--help". */
int cu_cli_is_help(const char *arg);
/* Prints "cumulus CMD: <message>" to stderr. */
void cu_cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For "--opt VALUE" parsing: returns argv[*i+1] and advances *i, or prints
 * "cumulus CMD: option --opt needs a value" and returns NULL. */
const char *cu_cli_value(const char *cmd, int argc, char **argv, int *i);

/* Sets the global log level from $CUMULUS_LOG when it names one (a bad
 * value is reported and ignored); role is the log tag (a literal). */
void cu_cli_log_init(const char *cmd, const char *role);
/* For a --log LEVEL option: sets it, or prints what is wrong and returns
 * -1. */
int cu_cli_log_level(const char *cmd, const char *level);

struct cu_api;
struct cu_identity;
/* Requester options shared by submit, status, wait, results, logs, cancel,
 * faucet and ledger. Set cmd (for messages) and accept (which of the
 * CU_CLI_OPT_* the command takes); the rest starts zeroed. */
#define CU_CLI_OPT_EXCHANGE 1u /* --exchange URL */
#define CU_CLI_OPT_KEY 2u      /* --key FILE */
#define CU_CLI_OPT_JSON 4u     /* --json */
struct cu_cli_req_opts {
    const char *cmd;
    unsigned accept;
    const char *exchange, *key;
    int json;
};
/* Consumes argv[*i] if it is an accepted requester option (advancing *i
 * past its value): returns 1 if consumed, 0 if not one of them, -1 (having
 * printed why) if its value is missing. */
int cu_cli_req_opt(struct cu_cli_req_opts *o, int argc, char **argv, int *i);
/* If arg looks like an option ("-x", not "-"), prints "cumulus CMD: unknown
 * option 'ARG' (see 'cumulus CMD --help')" and returns 1; else 0. */
int cu_cli_unknown_option(const char *cmd, const char *arg);
/* If job is not a valid job id, prints so and returns -1; else 0. */
int cu_cli_check_job(const char *cmd, const char *job);

/* For requester commands: resolves the exchange URL (--exchange >
 * CUMULUS_EXCHANGE > config) and the identity (--key > CUMULUS_KEY >
 * CUMULUS_HOME/identity.key, asking for a passphrase if encrypted), loads
 * it into *id and opens *api signing with it (id must outlive api). Either
 * flag may be NULL. Returns 0, or prints the error and returns
 * CU_EXIT_FAIL. On success the caller cu_api_close()s and
 * cu_identity_wipe()s. */
int cu_cli_connect(const char *cmd, const char *exchange, const char *key,
                   struct cu_identity *id, struct cu_api *api);

/* Prints the job JSON's "bill" (nothing when absent) to out. */
void cu_cli_print_bill(FILE *out, const json_t *job);
/* The job's "why is it waiting" sentence and its code (NULL when it is
 * not waiting or the exchange does not say). */
const char *cu_cli_waiting(const json_t *job, const char **code);

/* cmd_wait.c: polls job until it ends, drawing progress on stderr; the
 * body of `cumulus wait`, also used by `cumulus submit --wait`. timeout_ms
 * 0 waits forever; json prints the final job JSON on stdout. Returns the
 * exit code (0 only when the job is done). */
int cu_cli_wait_job(const char *cmd, struct cu_api *api, const char *job, uint64_t timeout_ms,
                    int json);

#endif
