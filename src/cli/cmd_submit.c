/* cmd_submit.c - `cumulus submit`: validate a job file, upload its inputs,
 * submit the signed job and print its id. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/jobspec.h"
#include "crypto/ident.h"
#include "market/price.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus submit JOB.yaml [--exchange URL] [--key FILE] [--wait]\n"
    "\n"
    "Checks the job file (every error names the line and field), uploads the\n"
    "inputs the exchange does not have yet, submits the signed job and prints\n"
    "only its id on stdout, so JOB=$(cumulus submit job.yaml) works. A summary\n"
    "and the upload progress go to stderr.\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else 'exchange = URL'\n"
    "                  in $CUMULUS_HOME/config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else $CUMULUS_HOME/identity.key)\n"
    "  --wait          then wait for the job like 'cumulus wait'\n";

static void print_summary(const char *file, const struct cu_spec *s)
{
    char mem[32], time[32], out[32], total[32];
    uint64_t sum = 0;

    cu_fmt_size(s->res.memory, mem, sizeof mem);
    cu_fmt_duration(s->res.time_ms, time, sizeof time);
    cu_fmt_size(s->res.output, out, sizeof out);
    for (size_t i = 0; i < s->ninputs; i++) {
        if (cu_add_u64(sum, s->inputs[i].size, &sum) != 0)
            sum = UINT64_MAX;
    }
    cu_fmt_size(sum, total, sizeof total);
    fprintf(stderr, "job '%s' (%s): %u task%s x %u replica%s\n", s->name, file, s->task_count,
            s->task_count == 1 ? "" : "s", s->replication, s->replication == 1 ? "" : "s");
    fprintf(stderr, "  resources per task: %u core%s, %s memory, %s max, %s output", s->res.cores,
            s->res.cores == 1 ? "" : "s", mem, time, out);
    if (s->res.gpus)
        fprintf(stderr, ", %u GPU%s", s->res.gpus, s->res.gpus == 1 ? "" : "s");
    fprintf(stderr, "\n  inputs: %zu file%s, %s\n", s->ninputs, s->ninputs == 1 ? "" : "s",
            total);
    if (cu_spec_image_is_oci(s)) {
        char hex[CU_HASH_HEX_LEN + 1], sz[32];
        cu_hash_to_hex(&s->image_oci.hash, hex);
        cu_fmt_size(s->image_oci.size, sz, sizeof sz);
        /* What providers name in --allow-image. */
        fprintf(stderr, "  image: OCI tarball %s, %s\n", hex, sz);
    }
}

/* Shows the most the job can cost under the exchange's fees and refuses,
 * before any upload, when the balance cannot cover it (the exchange
 * refuses it too; this only saves the upload). 0 to go on. */
static int check_cost(struct cu_api *api, const struct cu_spec *s)
{
    json_t *market = NULL, *wallet = NULL;
    struct cu_err e = {0};
    uint64_t max_cu = cu_spec_max_cu(s), total, per, bal;
    uint32_t bps;
    uint64_t efee;
    int rc = 0;

    if (s->max_per_cu == 0) {
        cu_cli_errorf("submit", "price.max_per_cu: the job must bid a price per CU (e.g. "
                                "'price: {max_per_cu: 10}'); see 'cumulus market'");
        return -1;
    }
    if (cu_api_market(api, &market, &e) != 0) {
        cu_cli_errorf("submit", "cannot read the exchange's fees: %s", e.msg);
        return -1;
    }
    bps = (uint32_t)json_integer_value(
        json_object_get(json_object_get(market, "fees"), "exchange_fee_bps"));
    efee = (uint64_t)json_integer_value(
        json_object_get(json_object_get(market, "fees"), "escrow_fee"));
    if (cu_price_replica_max(s->max_per_cu, max_cu, bps, &per) != 0 ||
        cu_price_job_max(s->max_per_cu, max_cu, s->task_count, s->replication, bps, efee,
                         &total) != 0) {
        cu_cli_errorf("submit", "price: the job's maximum cost overflows; lower "
                                "price.max_per_cu or price.max_cu");
        rc = -1;
        goto out;
    }
    fprintf(stderr,
            "  price: bid %llu per CU, up to %llu CU per replica; exchange fee %u.%02u%%, "
            "escrow fee %llu\n"
            "  most it can cost: %llu (%u x %u replicas x up to %llu, plus the escrow fee); "
            "locked in escrow at submission, the unspent part refunded\n",
            (unsigned long long)s->max_per_cu, (unsigned long long)max_cu, bps / 100, bps % 100,
            (unsigned long long)efee, (unsigned long long)total, s->task_count, s->replication,
            (unsigned long long)per);
    if (cu_api_wallet(api, &wallet, &e) != 0) {
        cu_cli_errorf("submit", "cannot read your balance: %s", e.msg);
        rc = -1;
        goto out;
    }
    bal = (uint64_t)json_integer_value(json_object_get(wallet, "balance"));
    if (bal < total) {
        cu_cli_errorf("submit",
                      "your balance of %llu cannot cover the job's maximum cost of %llu; add "
                      "funds (e.g. 'cumulus faucet %llu' on a devnet), or lower the bid, "
                      "price.max_cu, tasks or replication",
                      (unsigned long long)bal, (unsigned long long)total,
                      (unsigned long long)(total - bal));
        rc = -1;
    }
out:
    json_decref(market);
    json_decref(wallet);
    return rc;
}

static void on_upload(void *ctx, const struct cu_spec_input *in, bool uploaded)
{
    char size[32];

    (void)ctx;
    cu_fmt_size(in->size, size, sizeof size);
    fprintf(stderr, "  %-24s %10s  %s\n", in->name, size, uploaded ? "uploaded" : "already there");
}

int cmd_submit(int argc, char **argv)
{
    const char *file = NULL;
    struct cu_cli_req_opts o = {.cmd = "submit", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY};
    bool wait = false;
    struct cu_spec spec;
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    char job[CU_API_JOB_ID_MAX + 1];
    json_t *answer = NULL;
    int r, rc = CU_EXIT_FAIL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (strcmp(a, "--wait") == 0) {
            wait = true;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (file) {
            cu_cli_errorf("submit", "one job file at a time ('%s' and '%s')", file, a);
            return CU_EXIT_USAGE;
        } else {
            file = a;
        }
    }
    if (!file) {
        cu_cli_errorf("submit", "which job file? usage: cumulus submit JOB.yaml");
        return CU_EXIT_USAGE;
    }
    cu_cli_log_init("submit", "submit");

    /* Everything the file can get wrong is refused before any upload. */
    cu_spec_init(&spec);
    if (cu_jobspec_load(&spec, file, &e) != 0) {
        cu_cli_errorf("submit", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    if (cu_cli_connect("submit", o.exchange, o.key, &id, &api) != 0)
        goto out_release_spec;
    print_summary(file, &spec);
    if (check_cost(&api, &spec) != 0)
        goto out_close;
    if (cu_api_upload_inputs(&api, &spec, on_upload, NULL, &e) != 0) {
        cu_cli_errorf("submit", "%s", e.msg);
        goto out_close;
    }
    if (cu_api_submit(&api, &spec, job, sizeof job, &answer, &e) != 0) {
        cu_cli_errorf("submit", "%s", e.msg);
        goto out_close;
    }
    fprintf(stderr, "submitted %s%s\n", job, api.status == 200 ? " (already submitted)" : "");
    printf("%s\n", job);
    fflush(stdout);
    rc = wait ? cu_cli_wait_job("submit", &api, job, 0, 0) : CU_EXIT_OK;
out_close:
    json_decref(answer);
    cu_api_close(&api);
    cu_identity_wipe(&id);
out_release_spec:
    cu_spec_release(&spec);
    return rc;
}
