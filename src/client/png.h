/* png.h - RGB images for the demo: a strict PPM (P6) reader for the tiles the
 * fractal tasks write, and a PNG writer (libpng) for the assembled picture.
 *
 * Everything read here comes from untrusted task output, so the PPM parser
 * bounds every header field and refuses anything it does not understand
 * rather than guessing. */
#ifndef CU_CLIENT_PNG_H
#define CU_CLIENT_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Largest width or height accepted (and written): 16384 pixels. */
#define CU_IMAGE_MAX_DIM 16384u

/* An 8-bit RGB image: rgb holds width * height * 3 bytes, rows top to
 * bottom. Zero-initialise or cu_image_init before use. */
struct cu_image {
    uint32_t width;
    uint32_t height;
    unsigned char *rgb;
};

void cu_image_init(struct cu_image *img);
/* Frees the pixels; img may be reused after. */
void cu_image_release(struct cu_image *img);
/* Allocates a black width x height image (img is released first).
 * -CU_EINVAL when a dimension is 0 or above CU_IMAGE_MAX_DIM, -CU_ENOMEM. */
int cu_image_alloc(struct cu_image *img, uint32_t width, uint32_t height);
/* Copies src into dst with its top-left corner at (x, y). -CU_EINVAL when
 * src does not fit inside dst. */
int cu_image_blit(struct cu_image *dst, const struct cu_image *src, uint32_t x, uint32_t y);

/* Parses a binary PPM ("P6") of n bytes into img (released first).
 * Header: "P6", then width, height and maxval as decimal numbers separated
 * by whitespace and '#' comments, then exactly one whitespace byte, then
 * exactly width*height*3 bytes (maxval 1..255, one byte per sample; samples
 * are scaled to 0..255). Dimensions above CU_IMAGE_MAX_DIM, numbers with
 * more than 5 digits, a short or over-long pixel section and a wrong magic
 * are refused with -CU_EINVAL and e naming the problem. */
int cu_ppm_parse(const void *data, size_t n, struct cu_image *img, struct cu_err *e);
/* Reads the file at path (at most max_bytes; -CU_ETOOBIG beyond) and parses
 * it as above. e names the path. */
int cu_ppm_read_file(const char *path, size_t max_bytes, struct cu_image *img,
                     struct cu_err *e);

/* Writes img as an 8-bit RGB PNG at path, atomically (temporary file in the
 * same directory, then rename). -CU_EIO with e set on failure; blocks on
 * disk I/O. */
int cu_png_write_file(const char *path, const struct cu_image *img, struct cu_err *e);

#endif
