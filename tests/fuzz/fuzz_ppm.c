/* fuzz_ppm.c - libFuzzer harness: bytes -> cu_ppm_parse (the in-memory
 * reader behind cu_ppm_read_file). An image that parses must have sane
 * dimensions and exactly the pixel bytes the header promised. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/png.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_err e = {0};
    struct cu_image img;
    volatile unsigned sum = 0;
    size_t npix;

    cu_image_init(&img);
    /* A private copy, so that reading one byte past the end is caught. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (cu_ppm_parse(copy, size, &img, &e) != 0) {
        if (img.rgb || e.msg[0] == '\0')
            abort();
        free(copy);
        return 0;
    }
    if (img.width == 0 || img.height == 0 || img.width > CU_IMAGE_MAX_DIM ||
        img.height > CU_IMAGE_MAX_DIM || !img.rgb)
        abort();
    npix = (size_t)img.width * img.height * 3;
    if (npix > size)
        abort();
    /* Touch every pixel byte: ASan checks the allocation is big enough. */
    for (size_t i = 0; i < npix; i++)
        sum += img.rgb[i];
    (void)sum;
    cu_image_release(&img);
    free(copy);
    return 0;
}
