/* validate.h - validator commands (validate.c). Internal to src/exchange/. */
#ifndef CU_EXCHANGE_VALIDATE_H
#define CU_EXCHANGE_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "exchange/state.h"

/* Runs spec's validator on two results (outputs lists of {name, hash} in
 * the exchange's blob store). No lock needed; blocks up to a minute.
 * *agree when it exited 0; why says what happened. 0, or negative when it
 * could not run (then *agree is false). */
int ex_validate_run(struct ex_state *st, const json_t *spec, const json_t *outs_a,
                    const json_t *outs_b, bool *agree, char *why, size_t whyn);
/* Takes mu itself (call without it): gives a reported replica that awaits
 * validation its vote root and decides its task. 0 or negative. */
int ex_validate_replica(struct ex_state *st, int64_t replica);
/* The reaper's catch-up after a crash: validates replicas left waiting.
 * Returns how many it looked at. */
int ex_validate_sweep(struct ex_state *st);

#endif
