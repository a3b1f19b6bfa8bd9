/* png_test.c - unit tests for the PPM reader and PNG writer (client/png.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "client/png.h"

#include "base/banned.h"

/* Builds "HEADER" followed by npix*3 bytes of a pattern into a new buffer. */
static unsigned char *make_ppm(const char *header, size_t npix_bytes, size_t *n)
{
    size_t hl = strlen(header);
    unsigned char *p = malloc(hl + npix_bytes + 1);
    assert_non_null(p);
    memcpy(p, header, hl);
    for (size_t i = 0; i < npix_bytes; i++)
        p[hl + i] = (unsigned char)(i * 7 + 1);
    *n = hl + npix_bytes;
    return p;
}

static void test_ppm_good(void **state)
{
    (void)state;
    struct cu_image img;
    struct cu_err e = {0};
    size_t n;
    unsigned char *p = make_ppm("P6\n3 2\n255\n", 18, &n);
    cu_image_init(&img);
    assert_int_equal(cu_ppm_parse(p, n, &img, &e), 0);
    assert_int_equal(img.width, 3);
    assert_int_equal(img.height, 2);
    assert_memory_equal(img.rgb, p + 11, 18);
    free(p);

    /* Comments and odd whitespace in the header are allowed. */
    p = make_ppm("P6 # made by hand\n 2\t# w\n1\r\n255 ", 6, &n);
    assert_int_equal(cu_ppm_parse(p, n, &img, &e), 0);
    assert_int_equal(img.width, 2);
    assert_int_equal(img.height, 1);
    free(p);

    /* maxval below 255 is scaled. */
    static const unsigned char small[] = "P6 1 1 1\n\x01\x00\x01";
    assert_int_equal(cu_ppm_parse(small, sizeof small - 1, &img, &e), 0);
    assert_int_equal(img.rgb[0], 255);
    assert_int_equal(img.rgb[1], 0);
    assert_int_equal(img.rgb[2], 255);
    cu_image_release(&img);
}

static void expect_bad(const void *p, size_t n, const char *needle)
{
    struct cu_image img;
    struct cu_err e = {0};
    cu_image_init(&img);
    assert_int_equal(cu_ppm_parse(p, n, &img, &e), -CU_EINVAL);
    assert_null(img.rgb);
    if (!strstr(e.msg, needle))
        fail_msg("message '%s' does not contain '%s'", e.msg, needle);
}

static void test_ppm_bad(void **state)
{
    (void)state;
    size_t n;
    unsigned char *p;

    expect_bad("", 0, "magic");
    expect_bad("P3\n1 1\n255\n", 11, "magic");
    expect_bad("P5\n1 1\n255\nxxx", 14, "magic");
    expect_bad("PNG", 3, "magic");
    expect_bad("P6", 2, "truncated");
    expect_bad("P6\n", 3, "truncated");
    expect_bad("P6\n12", 5, "truncated");
    expect_bad("P6\n1 1", 6, "truncated");
    expect_bad("P6\n1 1\n", 7, "truncated");
    expect_bad("P6\n1 1\n255", 10, "truncated");
    expect_bad("P6\n1 1\n255\n", 11, "truncated");
    expect_bad("P6\n1 1\n255\nab", 13, "truncated");
    expect_bad("P6\n1 1\n255\nabcd", 15, "trailing");
    expect_bad("P6x 1 1 255\nabc", 15, "malformed");
    expect_bad("P6\n-1 1\n255\nabc", 15, "not a number");
    expect_bad("P6\n1x 1\n255\nabc", 15, "junk");
    expect_bad("P6\n0 1\n255\n", 11, "out of range");
    expect_bad("P6\n1 1\n0\nabc", 12, "maxval");
    expect_bad("P6\n1 1\n256\nabc", 14, "maxval");
    expect_bad("P6\n1 1\n65535\nabcdef", 19, "maxval");
    expect_bad("P6 1 1 10\n\x0b\x00\x00", 13, "above maxval");
    /* Huge dimensions are refused before any allocation. */
    expect_bad("P6\n16385 1\n255\n", 15, "out of range");
    expect_bad("P6\n99999 99999\n255\n", 19, "out of range");
    expect_bad("P6\n4294967296 1\n255\n", 20, "too many digits");
    expect_bad("P6\n000000001 1\n255\n", 19, "too many digits");
    /* A header that claims more pixels than it has. */
    p = make_ppm("P6\n100 100\n255\n", 100, &n);
    expect_bad(p, n, "truncated");
    free(p);
}

static void test_blit(void **state)
{
    (void)state;
    struct cu_image dst, src;
    cu_image_init(&dst);
    cu_image_init(&src);
    assert_int_equal(cu_image_alloc(&dst, 4, 4), 0);
    assert_int_equal(cu_image_alloc(&src, 2, 2), 0);
    memset(src.rgb, 0xab, 12);
    assert_int_equal(cu_image_blit(&dst, &src, 2, 2), 0);
    assert_int_equal(dst.rgb[(2 * 4 + 2) * 3], 0xab);
    assert_int_equal(dst.rgb[(3 * 4 + 3) * 3 + 2], 0xab);
    assert_int_equal(dst.rgb[(1 * 4 + 3) * 3], 0);
    assert_int_equal(cu_image_blit(&dst, &src, 3, 0), -CU_EINVAL);
    assert_int_equal(cu_image_blit(&dst, &src, 0, 3), -CU_EINVAL);
    assert_int_equal(cu_image_blit(&dst, &src, 5, 0), -CU_EINVAL);
    assert_int_equal(cu_image_alloc(&dst, 0, 4), -CU_EINVAL);
    assert_int_equal(cu_image_alloc(&dst, 4, CU_IMAGE_MAX_DIM + 1), -CU_EINVAL);
    cu_image_release(&dst);
    cu_image_release(&src);
}

static void test_png_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/cu_png_XXXXXX";
    char path[CU_PATH_MAX], ppm[CU_PATH_MAX];
    struct cu_image img, tile;
    struct cu_err e = {0};
    png_image rd;
    unsigned char *back;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cu_path_join(path, sizeof path, dir, "out.png"), 0);
    assert_int_equal(cu_path_join(ppm, sizeof ppm, dir, "tile.ppm"), 0);
    cu_image_init(&img);
    cu_image_init(&tile);
    assert_int_equal(cu_image_alloc(&img, 37, 19), 0);
    for (size_t i = 0; i < (size_t)37 * 19 * 3; i++)
        img.rgb[i] = (unsigned char)(i * 31 + i / 7);
    assert_int_equal(cu_png_write_file(path, &img, &e), 0);

    /* The file starts with the PNG signature, and libpng reads back the
     * very same pixels. */
    FILE *f = fopen(path, "rb");
    unsigned char sig[8];
    assert_non_null(f);
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_int_equal(png_sig_cmp(sig, 0, 8), 0);

    memset(&rd, 0, sizeof rd);
    rd.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&rd, path));
    assert_int_equal(rd.width, 37);
    assert_int_equal(rd.height, 19);
    rd.format = PNG_FORMAT_RGB;
    back = malloc(PNG_IMAGE_SIZE(rd));
    assert_non_null(back);
    assert_true(png_image_finish_read(&rd, NULL, back, 0, NULL));
    assert_memory_equal(back, img.rgb, (size_t)37 * 19 * 3);
    free(back);

    /* A PPM file on disk goes through the same parser, bounded in size. */
    f = fopen(ppm, "wb");
    assert_non_null(f);
    fprintf(f, "P6\n2 1\n255\n");
    fwrite("abcdef", 1, 6, f);
    fclose(f);
    assert_int_equal(cu_ppm_read_file(ppm, 1024, &tile, &e), 0);
    assert_int_equal(tile.width, 2);
    assert_memory_equal(tile.rgb, "abcdef", 6);
    assert_int_equal(cu_ppm_read_file(ppm, 8, &tile, &e), -CU_ETOOBIG);
    assert_non_null(strstr(e.msg, "tile.ppm"));

    /* No image, or an unwritable place: an error, never a crash. */
    struct cu_image empty;
    cu_image_init(&empty);
    assert_int_equal(cu_png_write_file(path, &empty, &e), -CU_EINVAL);
    assert_int_equal(cu_png_write_file("/nonexistent-dir/x.png", &img, &e), -CU_EIO);

    cu_image_release(&img);
    cu_image_release(&tile);
    assert_int_equal(cu_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppm_good),
        cmocka_unit_test(test_ppm_bad),
        cmocka_unit_test(test_blit),
        cmocka_unit_test(test_png_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
