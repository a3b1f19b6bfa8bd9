/* fuzz_jobspec_yaml.c - libFuzzer harness: bytes -> cu_jobspec_parse, with
 * input paths resolved against an empty temporary directory. Errors are
 * fine; crashes, leaks and sanitizer reports are not. A spec that loads
 * must also pass cu_spec_validate and convert to JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/jobspec.h"
#include "market/spec.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libfyaml 0.7.12 (the distribution's) leaks the grown chunk array of its
 * atom iterator when a scalar has many escapes ('''' ... or "\n\n..."):
 * upstream issue pantoniou/libfyaml#233, fixed after that release; a few KiB
 * once per CLI run, not ours to fix. libfyaml has no frame pointers, so the
 * fast unwinder sees only its module, not the function: suppressing by
 * module keeps 20k exec/s (the slow unwinder costs 6x). Leaks of what our
 * code allocates (the spec's strings) are still reported. */
const char *__lsan_default_suppressions(void)
{
    return "leak:libfyaml.so\n";
}

static char base_dir[64];

static void remove_base_dir(void)
{
    rmdir(base_dir);
}

/* An empty directory, made once per process and removed at exit. */
static const char *empty_dir(void)
{
    if (base_dir[0] == '\0') {
        char tmpl[] = "/tmp/cu-fuzz-jobspec-XXXXXX";
        if (!mkdtemp(tmpl))
            abort();
        memcpy(base_dir, tmpl, sizeof tmpl);
        atexit(remove_base_dir);
    }
    return base_dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_err e = {0};
    struct cu_spec s;
    json_t *j;

    cu_spec_init(&s);
    if (cu_jobspec_parse(&s, (const char *)data, size, "fuzz.yaml", empty_dir(), &e) != 0) {
        if (e.msg[0] == '\0' || e.code >= 0) {
            fprintf(stderr, "failure without a message or code\n");
            abort();
        }
        return 0;
    }
    if (cu_spec_validate(&s, &e) != 0) {
        fprintf(stderr, "loaded job fails validation: %s\n", e.msg);
        abort();
    }
    j = cu_spec_to_json(&s);
    if (!j)
        abort();
    json_decref(j);
    cu_spec_release(&s);
    return 0;
}
