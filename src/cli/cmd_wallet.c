/* cmd_wallet.c - `cumulus wallet`: balance, signed transfers, history. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"
#include "ledger/tx.h"

#include "base/banned.h"

#define HISTORY_DEFAULT 50
#define HISTORY_MAX 1000
#define SHORT_ID 12

static const char usage_text[] =
    "usage: cumulus wallet balance [--json] [--exchange URL] [--key FILE]\n"
    "       cumulus wallet transfer TO AMOUNT [--exchange URL] [--key FILE]\n"
    "       cumulus wallet history [--limit N] [--json] [--exchange URL] [--key FILE]\n"
    "\n"
    "Your account on the exchange's ledger (amounts in base units).\n"
    "  balance   spendable balance, escrow locked in your jobs, stake, earnings\n"
    "  transfer  a transfer signed by your key to the account TO (a 64-hex id)\n"
    "  history   your ledger entries, newest first\n"
    "\n"
    "  --limit N       history entries to show (1..1000, default 50)\n"
    "  --json          print the exchange's JSON answer instead (indented)\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

struct wallet_args {
    const char *sub;
    const char *pos[2];
    int npos;
    const char *exchange, *key;
    bool json;
    unsigned limit;
};

static int64_t int_or(const json_t *obj, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

static int do_balance(const struct wallet_args *a, struct cu_api *api)
{
    struct cu_err e = {0};
    json_t *j = NULL;

    if (cu_api_wallet(api, &j, &e) != 0) {
        cu_cli_errorf("wallet", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    if (a->json) {
        print_json(j);
    } else {
        printf("account  %s\n", str_or(j, "id", "?"));
        printf("balance  %lld\n", (long long)int_or(j, "balance", 0));
        printf("escrow   %lld\n", (long long)int_or(j, "escrow", 0));
        printf("stake    %lld\n", (long long)int_or(j, "stake", 0));
        printf("earned   %lld\n", (long long)int_or(j, "earned", 0));
    }
    json_decref(j);
    return CU_EXIT_OK;
}

static int do_transfer(const struct wallet_args *a, struct cu_api *api,
                       const struct cu_identity *id)
{
    const char *to = a->pos[0], *amount_s = a->pos[1];
    struct cu_err e = {0};
    struct cu_tx tx;
    json_t *w = NULL, *ans = NULL;
    int64_t amount, nonce;
    int rc = CU_EXIT_FAIL;

    if (cu_parse_i64(amount_s, 1, INT64_MAX, &amount) != 0) {
        cu_cli_errorf("wallet", "transfer: AMOUNT '%s' is not a positive whole number of base "
                                "units", amount_s);
        return CU_EXIT_USAGE;
    }
    if (strcmp(to, id->id) == 0) {
        cu_cli_errorf("wallet", "transfer: TO is your own account");
        return CU_EXIT_USAGE;
    }
    if (cu_api_wallet(api, &w, &e) != 0) {
        cu_cli_errorf("wallet", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    nonce = int_or(w, "nonce", -1);
    if (nonce < 0) {
        cu_cli_errorf("wallet", "the exchange's wallet answer has no nonce");
        goto out_free;
    }
    if ((uint64_t)amount > (uint64_t)int_or(w, "balance", 0)) {
        cu_cli_errorf("wallet", "transfer of %lld exceeds your balance %lld; nothing sent",
                      (long long)amount, (long long)int_or(w, "balance", 0));
        goto out_free;
    }
    cu_tx_init(&tx, CU_TX_TRANSFER);
    tx.time_ms = cu_now_ms();
    cu_snprintf(tx.to, sizeof tx.to, "%s", to);
    tx.amount = (uint64_t)amount;
    tx.nonce = (uint64_t)nonce;
    if (cu_tx_sign(&tx, id) != 0 || cu_tx_check(&tx, &e) != 0) {
        cu_cli_errorf("wallet", "cannot build the transfer: %s",
                      e.msg[0] ? e.msg : "signing failed");
        cu_tx_release(&tx);
        goto out_free;
    }
    if (cu_api_transfer(api, &tx, &ans, &e) != 0) {
        cu_tx_release(&tx);
        if (strcmp(api->code, "insufficient_funds") == 0)
            cu_cli_errorf("wallet", "transfer refused: %s; nothing sent", e.msg);
        else
            cu_cli_errorf("wallet", "transfer refused: %s", e.msg);
        goto out_free;
    }
    cu_tx_release(&tx);
    printf("transferred %lld to %s\n", (long long)amount, to);
    printf("tx %s (block %lld)\n", str_or(ans, "tx", "?"), (long long)int_or(ans, "height", -1));
    json_decref(w);
    w = NULL;
    if (cu_api_wallet(api, &w, &e) == 0)
        printf("balance %lld\n", (long long)int_or(w, "balance", 0));
    else
        cu_cli_errorf("wallet", "the transfer went through, but reading the new balance "
                                "failed: %s", e.msg);
    rc = CU_EXIT_OK;
out_free:
    json_decref(ans);
    json_decref(w);
    return rc;
}

static void fmt_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        cu_snprintf(out, n, "-");
}

static int do_history(const struct wallet_args *a, struct cu_api *api,
                      const struct cu_identity *id)
{
    struct cu_err e = {0};
    json_t *j = NULL, *ent;
    const json_t *entries;
    size_t i;

    if (cu_api_wallet_history(api, a->limit, &j, &e) != 0) {
        cu_cli_errorf("wallet", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    if (a->json) {
        print_json(j);
        json_decref(j);
        return CU_EXIT_OK;
    }
    entries = json_object_get(j, "entries");
    if (!json_array_size(entries)) {
        fprintf(stderr, "no ledger entries yet for %.*s\n", SHORT_ID, id->id);
        json_decref(j);
        return CU_EXIT_OK;
    }
    printf("%-7s %-19s %-15s %16s %-12s %-12s %-12s %s\n", "BLOCK", "TIME (UTC)", "TYPE",
           "AMOUNT", "FROM", "TO", "TX", "JOB");
    json_array_foreach(entries, i, ent) {
        const char *from = str_or(ent, "from", "-"), *to = str_or(ent, "to", "-");
        char when[32], amt[32];
        int64_t amount = int_or(ent, "amount", -1);

        fmt_time(int_or(ent, "time_ms", 0), when, sizeof when);
        if (amount < 0)
            cu_snprintf(amt, sizeof amt, "-");
        else if (strcmp(from, id->id) == 0 && strcmp(to, id->id) != 0)
            cu_snprintf(amt, sizeof amt, "-%lld", (long long)amount);
        else
            cu_snprintf(amt, sizeof amt, "+%lld", (long long)amount);
        printf("%-7lld %-19s %-15s %16s %-12.*s %-12.*s %-12.*s %s\n",
               (long long)int_or(ent, "height", -1), when, str_or(ent, "type", "?"), amt,
               SHORT_ID, strcmp(from, id->id) == 0 ? "you" : from, SHORT_ID,
               strcmp(to, id->id) == 0 ? "you" : to, SHORT_ID, str_or(ent, "tx", "-"),
               str_or(ent, "job", "-"));
    }
    json_decref(j);
    return CU_EXIT_OK;
}

/* Fills a from argv; returns -1 when done, else the exit code. */
static int parse_args(int argc, char **argv, struct wallet_args *a)
{
    int64_t n;
    const char *v;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (cu_cli_is_help(s)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(s, "--json") == 0) {
            a->json = true;
        } else if (strcmp(s, "--limit") == 0) {
            if (!(v = cu_cli_value("wallet", argc, argv, &i)))
                return CU_EXIT_USAGE;
            if (cu_parse_i64(v, 1, HISTORY_MAX, &n) != 0) {
                cu_cli_errorf("wallet", "--limit: '%s' is not a whole number between 1 and %d",
                              v, HISTORY_MAX);
                return CU_EXIT_USAGE;
            }
            a->limit = (unsigned)n;
        } else if (strcmp(s, "--exchange") == 0) {
            if (!(a->exchange = cu_cli_value("wallet", argc, argv, &i)))
                return CU_EXIT_USAGE;
        } else if (strcmp(s, "--key") == 0) {
            if (!(a->key = cu_cli_value("wallet", argc, argv, &i)))
                return CU_EXIT_USAGE;
        } else if (s[0] == '-' && s[1]) {
            cu_cli_errorf("wallet", "unknown option '%s' (see 'cumulus wallet --help')", s);
            return CU_EXIT_USAGE;
        } else if (!a->sub) {
            a->sub = s;
        } else if (a->npos < 2) {
            a->pos[a->npos++] = s;
        } else {
            cu_cli_errorf("wallet", "unexpected argument '%s' (see 'cumulus wallet --help')", s);
            return CU_EXIT_USAGE;
        }
    }
    if (!a->sub) {
        cu_cli_errorf("wallet", "which action? balance, transfer or history (see 'cumulus "
                                "wallet --help')");
        return CU_EXIT_USAGE;
    }
    if (strcmp(a->sub, "transfer") == 0) {
        if (a->npos != 2) {
            cu_cli_errorf("wallet", "usage: cumulus wallet transfer TO AMOUNT");
            return CU_EXIT_USAGE;
        }
        if (!cu_id_valid(a->pos[0])) {
            cu_cli_errorf("wallet", "transfer: TO '%s' is not an account id (64 lowercase hex "
                                    "characters of a public key)", a->pos[0]);
            return CU_EXIT_USAGE;
        }
        if (cu_parse_i64(a->pos[1], 1, INT64_MAX, &n) != 0) {
            cu_cli_errorf("wallet", "transfer: AMOUNT '%s' is not a positive whole number of "
                                    "base units", a->pos[1]);
            return CU_EXIT_USAGE;
        }
    } else if (strcmp(a->sub, "balance") == 0 || strcmp(a->sub, "history") == 0) {
        if (a->npos) {
            cu_cli_errorf("wallet", "%s takes no argument ('%s')", a->sub, a->pos[0]);
            return CU_EXIT_USAGE;
        }
    } else {
        cu_cli_errorf("wallet", "'%s' is not a wallet action (balance, transfer, history)",
                      a->sub);
        return CU_EXIT_USAGE;
    }
    return -1;
}

int cmd_wallet(int argc, char **argv)
{
    struct wallet_args a = {.limit = HISTORY_DEFAULT};
    struct cu_identity id;
    struct cu_api api;
    int rc;

    rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    cu_cli_log_init("wallet", "wallet");
    if (cu_cli_connect("wallet", a.exchange, a.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    if (strcmp(a.sub, "balance") == 0)
        rc = do_balance(&a, &api);
    else if (strcmp(a.sub, "transfer") == 0)
        rc = do_transfer(&a, &api, &id);
    else
        rc = do_history(&a, &api, &id);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
