/* bill.c - the requester's bill and the "why is my job waiting" line, as
 * `cumulus wait` and `cumulus status` print them (from the job's JSON,
 * docs/api.md "Money"). */
#include <jansson.h>
#include <stdio.h>

#include "cli/commands.h"
#include "client/api.h"

#include "base/banned.h"

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

void cu_cli_print_bill(FILE *out, const json_t *job)
{
    const json_t *bill = json_object_get(job, "bill"), *paid, *p;
    char cu[32];
    size_t i;

    if (!json_is_object(bill))
        return;
    paid = json_object_get(bill, "paid");
    cu_api_fmt_cu(jint(job, "cu_milli"), cu, sizeof cu);
    fprintf(out, "bill (base units):\n");
    fprintf(out, "  locked in escrow at submission %14lld\n", jint(bill, "locked"));
    fprintf(out, "  paid to providers              %14lld   (%zu provider%s, %s CU)\n",
            jint(bill, "paid_total"), json_array_size(paid), json_array_size(paid) == 1 ? "" : "s",
            cu);
    json_array_foreach(paid, i, p) {
        const char *who = json_string_value(json_object_get(p, "provider"));
        cu_api_fmt_cu(jint(p, "cu_milli"), cu, sizeof cu);
        fprintf(out, "    %-16.16s %5lld replica%s %10s CU %11lld\n", who ? who : "?",
                jint(p, "replicas"), jint(p, "replicas") == 1 ? " " : "s", cu, jint(p, "amount"));
    }
    fprintf(out, "  exchange fee                   %14lld\n", jint(bill, "exchange_fee"));
    fprintf(out, "  escrow fee                     %14lld\n", jint(bill, "escrow_fee"));
    fprintf(out, "  refunded                       %14lld\n", jint(bill, "refunded"));
    if (jint(bill, "still_locked"))
        fprintf(out, "  still locked (job running)     %14lld\n", jint(bill, "still_locked"));
    fprintf(out, "  total spent                    %14lld\n",
            jint(bill, "paid_total") + jint(bill, "fees"));
}

const char *cu_cli_waiting(const json_t *job, const char **code)
{
    const json_t *w = json_object_get(job, "waiting");
    const char *msg = json_string_value(json_object_get(w, "message"));

    if (code)
        *code = json_string_value(json_object_get(w, "code"));
    return msg;
}
