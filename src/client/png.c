/* png.c - PPM (P6) reader and PNG writer for the demo (see png.h). */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "client/png.h"

#include "base/banned.h"

#define PPM_MAX_DIGITS 5

void cu_image_init(struct cu_image *img)
{
    img->width = 0;
    img->height = 0;
    img->rgb = NULL;
}

void cu_image_release(struct cu_image *img)
{
    free(img->rgb);
    cu_image_init(img);
}

int cu_image_alloc(struct cu_image *img, uint32_t width, uint32_t height)
{
    cu_image_release(img);
    if (width == 0 || height == 0 || width > CU_IMAGE_MAX_DIM || height > CU_IMAGE_MAX_DIM)
        return -CU_EINVAL;
    /* Both factors are at most 2^14, so the product fits easily. */
    img->rgb = calloc((size_t)width * height, 3);
    if (!img->rgb)
        return -CU_ENOMEM;
    img->width = width;
    img->height = height;
    return 0;
}

int cu_image_blit(struct cu_image *dst, const struct cu_image *src, uint32_t x, uint32_t y)
{
    if (x > dst->width || y > dst->height || src->width > dst->width - x ||
        src->height > dst->height - y)
        return -CU_EINVAL;
    for (uint32_t row = 0; row < src->height; row++) {
        memcpy(dst->rgb + (((size_t)(y + row) * dst->width) + x) * 3,
               src->rgb + (size_t)row * src->width * 3, (size_t)src->width * 3);
    }
    return 0;
}

static int is_ppm_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to end of line) from *pos. */
static void ppm_skip(const unsigned char *p, size_t n, size_t *pos)
{
    while (*pos < n) {
        if (is_ppm_space(p[*pos])) {
            (*pos)++;
        } else if (p[*pos] == '#') {
            while (*pos < n && p[*pos] != '\n' && p[*pos] != '\r')
                (*pos)++;
        } else {
            break;
        }
    }
}

/* Reads one header number of at most PPM_MAX_DIGITS digits at *pos, which
 * must be followed by whitespace or '#'. */
static int ppm_number(const unsigned char *p, size_t n, size_t *pos, const char *what,
                      uint32_t *out, struct cu_err *e)
{
    uint32_t v = 0;
    unsigned digits = 0;
    ppm_skip(p, n, pos);
    if (*pos >= n)
        return cu_err_set(e, -CU_EINVAL, "PPM header truncated before %s", what);
    while (*pos < n && p[*pos] >= '0' && p[*pos] <= '9') {
        if (++digits > PPM_MAX_DIGITS)
            return cu_err_set(e, -CU_EINVAL, "PPM %s has too many digits", what);
        v = v * 10 + (uint32_t)(p[*pos] - '0');
        (*pos)++;
    }
    if (digits == 0)
        return cu_err_set(e, -CU_EINVAL, "PPM %s is not a number", what);
    if (*pos >= n)
        return cu_err_set(e, -CU_EINVAL, "PPM header truncated after %s", what);
    if (!is_ppm_space(p[*pos]) && p[*pos] != '#')
        return cu_err_set(e, -CU_EINVAL, "PPM %s is followed by junk", what);
    *out = v;
    return 0;
}

int cu_ppm_parse(const void *data, size_t n, struct cu_image *img, struct cu_err *e)
{
    const unsigned char *p = data;
    size_t pos = 2;
    uint32_t w, h, maxval;
    int rc;

    cu_image_release(img);
    if (n < 2 || p[0] != 'P' || p[1] != '6')
        return cu_err_set(e, -CU_EINVAL, "not a binary PPM (magic is not P6)");
    if (n == 2 || (!is_ppm_space(p[2]) && p[2] != '#'))
        return cu_err_set(e, -CU_EINVAL, "PPM header truncated or malformed after magic");
    if ((rc = ppm_number(p, n, &pos, "width", &w, e)) < 0 ||
        (rc = ppm_number(p, n, &pos, "height", &h, e)) < 0)
        return rc;
    if (w == 0 || h == 0 || w > CU_IMAGE_MAX_DIM || h > CU_IMAGE_MAX_DIM)
        return cu_err_set(e, -CU_EINVAL, "PPM size %ux%u out of range (1..%u per side)", w, h,
                          CU_IMAGE_MAX_DIM);
    if ((rc = ppm_number(p, n, &pos, "maxval", &maxval, e)) < 0)
        return rc;
    if (maxval == 0 || maxval > 255)
        return cu_err_set(e, -CU_EINVAL, "PPM maxval %u unsupported (1..255)", maxval);
    /* The pixel data starts after exactly one whitespace byte. */
    if (!is_ppm_space(p[pos]))
        return cu_err_set(e, -CU_EINVAL, "PPM header malformed after maxval");
    pos++;

    size_t need = (size_t)w * h * 3;
    if (n - pos < need)
        return cu_err_set(e, -CU_EINVAL, "PPM pixel data truncated: %zu of %zu bytes", n - pos,
                          need);
    if (n - pos > need)
        return cu_err_set(e, -CU_EINVAL, "PPM has %zu bytes of trailing data", n - pos - need);
    if ((rc = cu_image_alloc(img, w, h)) < 0)
        return cu_err_set(e, rc, "PPM %ux%u: %s", w, h, cu_strerror(rc));
    if (maxval == 255) {
        memcpy(img->rgb, p + pos, need);
    } else {
        for (size_t i = 0; i < need; i++) {
            unsigned v = p[pos + i];
            if (v > maxval) {
                cu_image_release(img);
                return cu_err_set(e, -CU_EINVAL, "PPM sample %u above maxval %u", v, maxval);
            }
            img->rgb[i] = (unsigned char)((v * 255u + maxval / 2) / maxval);
        }
    }
    return 0;
}

int cu_ppm_read_file(const char *path, size_t max_bytes, struct cu_image *img,
                     struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(max_bytes);
    struct cu_err pe = {0};
    int rc = cu_read_file(path, &b);
    if (rc < 0) {
        cu_err_set(e, rc, "%s: %s", path,
                   rc == -CU_ETOOBIG ? "larger than expected" : cu_strerror(rc));
        goto out_release_buf;
    }
    rc = cu_ppm_parse(b.data ? b.data : "", b.len, img, &pe);
    if (rc < 0)
        cu_err_set(e, rc, "%s: %s", path, cu_err_msg(&pe, rc));
out_release_buf:
    cu_buf_release(&b);
    return rc;
}

/* libpng reports errors by longjmp; keep that confined to this function,
 * which touches only its arguments after setjmp. Returns 0 or -1 with msg
 * filled from libpng's warning/error text. */
struct png_errctx {
    char msg[256];
};

static void png_err_fn(png_structp png, png_const_charp text)
{
    struct png_errctx *ctx = png_get_error_ptr(png);
    if (cu_snprintf(ctx->msg, sizeof ctx->msg, "%s", text) < 0)
        ctx->msg[sizeof ctx->msg - 1] = '\0';
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp text)
{
    (void)png;
    (void)text;
}

static int png_write_stream(FILE *f, const struct cu_image *img, struct png_errctx *ctx)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, png_err_fn,
                                              png_warn_fn);
    png_infop info = NULL;
    if (!png) {
        cu_snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        return -1;
    }
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        cu_snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, img->width, img->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t row = 0; row < img->height; row++)
        png_write_row(png, img->rgb + (size_t)row * img->width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int cu_png_write_file(const char *path, const struct cu_image *img, struct cu_err *e)
{
    char tmp[CU_PATH_MAX];
    struct png_errctx ctx = {{0}};
    FILE *f;
    int rc;

    if (!img->rgb || img->width == 0 || img->height == 0 || img->width > CU_IMAGE_MAX_DIM ||
        img->height > CU_IMAGE_MAX_DIM)
        return cu_err_set(e, -CU_EINVAL, "%s: no image to write", path);
    if (cu_snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
        return cu_err_set(e, -CU_ETOOBIG, "%s: path too long", path);
    f = fopen(tmp, "wbe");
    if (!f)
        return cu_err_set(e, -CU_EIO, "%s: %s", tmp, strerror(errno));
    rc = png_write_stream(f, img, &ctx);
    if (rc < 0) {
        fclose(f);
        unlink(tmp);
        return cu_err_set(e, -CU_EIO, "%s: PNG encoding failed: %s", path, ctx.msg);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int err = errno;
        fclose(f);
        unlink(tmp);
        return cu_err_set(e, -CU_EIO, "%s: %s", tmp, strerror(err));
    }
    if (fclose(f) != 0) {
        int err = errno;
        unlink(tmp);
        return cu_err_set(e, -CU_EIO, "%s: %s", tmp, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return cu_err_set(e, -CU_EIO, "%s: %s", path, strerror(err));
    }
    return 0;
}
