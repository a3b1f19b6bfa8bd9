/* warm_blob.c - the supervisor program of a warm sandbox
 * (fabric/init/warm_init.c, built static by the Makefile as
 * CU_WARM_INIT_BIN), embedded in the binary: warm.c hands it to bwrap as a
 * memfd, so no file needs to be installed or visible in the sandbox. */
#include <stddef.h>

#ifndef CU_WARM_INIT_BIN
#error "CU_WARM_INIT_BIN (the path of the static supervisor) is set by the Makefile"
#endif

extern const unsigned char cu_warm_init_start[];
extern const unsigned char cu_warm_init_end[];

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl cu_warm_init_start\n"
        "cu_warm_init_start:\n"
        ".incbin \"" CU_WARM_INIT_BIN "\"\n"
        ".globl cu_warm_init_end\n"
        "cu_warm_init_end:\n"
        ".previous\n");

size_t cu_warm_init_size(void);
const unsigned char *cu_warm_init_data(void);

size_t cu_warm_init_size(void)
{
    return (size_t)(cu_warm_init_end - cu_warm_init_start);
}

const unsigned char *cu_warm_init_data(void)
{
    return cu_warm_init_start;
}
