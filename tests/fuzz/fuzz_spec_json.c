/* fuzz_spec_json.c - libFuzzer harness: bytes -> cu_json_parse ->
 * cu_spec_from_json. A spec that loads must survive the round trip:
 * to_json -> canonical text -> parse -> from_json must succeed and give the
 * same canonical text again; anything else is a bug (abort). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "market/spec.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Canonical text of a loaded spec; aborts when it cannot be produced. */
static char *canonical(const struct cu_spec *s)
{
    json_t *j = cu_spec_to_json(s);
    char *text;

    if (!j) {
        fprintf(stderr, "cu_spec_to_json failed on a valid spec\n");
        abort();
    }
    text = cu_json_dumps(j);
    json_decref(j);
    if (!text)
        abort();
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_err e = {0};
    struct cu_spec s, s2;
    json_t *j, *j2;
    char *t1, *t2;

    j = cu_json_parse((const char *)data, size, &e);
    if (!j)
        return 0;
    cu_spec_init(&s);
    if (cu_spec_from_json(&s, j, &e) != 0) {
        json_decref(j);
        return 0;
    }
    json_decref(j);
    if (cu_spec_validate(&s, &e) != 0) {
        fprintf(stderr, "loaded spec fails validation: %s\n", e.msg);
        abort();
    }

    t1 = canonical(&s);
    j2 = cu_json_parse(t1, strlen(t1), &e);
    if (!j2) {
        fprintf(stderr, "canonical text does not parse: %s\n%s\n", e.msg, t1);
        abort();
    }
    cu_spec_init(&s2);
    if (cu_spec_from_json(&s2, j2, &e) != 0) {
        fprintf(stderr, "canonical spec does not load: %s\n%s\n", e.msg, t1);
        abort();
    }
    json_decref(j2);
    t2 = canonical(&s2);
    if (strcmp(t1, t2) != 0) {
        fprintf(stderr, "round trip changed the spec:\n%s\n%s\n", t1, t2);
        abort();
    }
    free(t1);
    free(t2);
    cu_spec_release(&s);
    cu_spec_release(&s2);
    return 0;
}
