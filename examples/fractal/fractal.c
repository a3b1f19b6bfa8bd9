/* fractal.c - renders one tile of a Mandelbrot image: the demo's task.
 *
 *   fractal [--out DIR] WIDTH HEIGHT MAXITER
 *
 * The job runs CUMULUS_TASK_COUNT copies (a perfect square g*g); copy
 * CUMULUS_TASK_INDEX = i renders tile row i/g, column i%g of the
 * WIDTH x HEIGHT image and writes it to DIR/tile.ppm (binary PPM, P6),
 * (WIDTH/g) x (HEIGHT/g) pixels. DIR defaults to /out.
 *
 * The output is the same bytes on every run and every machine: only
 * +, -, *, / and frexp/floor (all exact or correctly rounded in IEEE
 * arithmetic) are used; the logarithm needed for smooth colouring is
 * computed here rather than taken from libm, whose last bit may differ
 * between CPUs (glibc picks an FMA variant where the CPU has one).
 * Standalone: libc and libm only. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The view: "seahorse valley", between the main cardioid and the
 * period-2 bulb. */
#define CENTRE_RE (-0.7453)
#define CENTRE_IM (0.1127)
#define SPAN_RE (0.0065) /* width of the view in the complex plane */

#define LN2 0.69314718055994530942

static void usage(void)
{
    fprintf(stderr, "usage: fractal [--out DIR] WIDTH HEIGHT MAXITER\n"
                    "  env CUMULUS_TASK_INDEX (0..count-1), CUMULUS_TASK_COUNT (a square g*g;\n"
                    "  WIDTH and HEIGHT divisible by g)\n");
}

/* Strict decimal in [min, max]; -1 on anything else. */
static long parse_long(const char *s, long min, long max)
{
    char *end;
    long v;

    if (!s || !*s || *s == '+' || *s == '-' || *s == ' ')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    return v;
}

/* Natural logarithm of x > 0 from exact operations only: x = m * 2^e with
 * m in [0.5, 1), ln m = 2 atanh(t), t = (m - 1) / (m + 1) in (-1/3, 0]. */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e);
    double t, t2, term, sum = 0.0;

    if (m < 0.70710678118654752440) { /* keep |t| small: m in [0.707, 1.414) */
        m *= 2.0;
        e -= 1;
    }
    t = (m - 1.0) / (m + 1.0);
    t2 = t * t;
    term = t;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= t2;
    }
    return 2.0 * sum + e * LN2;
}

struct rgb {
    double r, g, b;
};

/* A gradient from deep blue through white and gold back to black. */
static const struct {
    double at;
    struct rgb c;
} palette[] = {
    {0.0, {0, 7, 100}},      {0.16, {32, 107, 203}}, {0.42, {237, 255, 255}},
    {0.6425, {255, 170, 0}}, {0.8575, {0, 2, 0}},    {1.0, {0, 7, 100}},
};

static void colour(double t, unsigned char out[3])
{
    size_t i = 0;
    double f;

    while (i + 2 < sizeof(palette) / sizeof(palette[0]) && t > palette[i + 1].at)
        i++;
    f = (t - palette[i].at) / (palette[i + 1].at - palette[i].at);
    if (f < 0)
        f = 0;
    if (f > 1)
        f = 1;
    out[0] = (unsigned char)(palette[i].c.r + f * (palette[i + 1].c.r - palette[i].c.r) + 0.5);
    out[1] = (unsigned char)(palette[i].c.g + f * (palette[i + 1].c.g - palette[i].c.g) + 0.5);
    out[2] = (unsigned char)(palette[i].c.b + f * (palette[i + 1].c.b - palette[i].c.b) + 0.5);
}

/* Colour of the point c = (cr, ci). */
static void pixel(double cr, double ci, long maxiter, unsigned char out[3])
{
    double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
    long n;

    for (n = 0; n < maxiter && zr2 + zi2 <= 256.0; n++) {
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        zr2 = zr * zr;
        zi2 = zi * zi;
    }
    if (n >= maxiter) {
        out[0] = out[1] = out[2] = 0;
        return;
    }
    /* Smooth iteration count: n + 1 - log2(log|z|). */
    double mu = n + 1.0 - det_log(0.5 * det_log(zr2 + zi2)) / LN2;
    double t = sqrt(mu < 0 ? 0 : mu) / 8.0; /* sqrt: spreads the bands evenly */
    colour(t - floor(t), out);
}

int main(int argc, char **argv)
{
    const char *dir = "/out";
    long width, height, maxiter, index, count, g = 0;
    long tw, th, row0, col0;
    int a = 1;
    char path[4096];
    unsigned char *img;
    FILE *f;

    if (argc > 2 && strcmp(argv[1], "--out") == 0) {
        dir = argv[2];
        a = 3;
    }
    if (argc - a != 3) {
        usage();
        return 2;
    }
    width = parse_long(argv[a], 1, 1 << 16);
    height = parse_long(argv[a + 1], 1, 1 << 16);
    maxiter = parse_long(argv[a + 2], 1, 100000000);
    if (width < 0 || height < 0 || maxiter < 0) {
        fprintf(stderr, "fractal: WIDTH and HEIGHT must be 1..65536, MAXITER 1..100000000\n");
        return 2;
    }
    index = parse_long(getenv("CUMULUS_TASK_INDEX"), 0, INT_MAX);
    count = parse_long(getenv("CUMULUS_TASK_COUNT"), 1, 1 << 20);
    if (index < 0 || count < 0 || index >= count) {
        fprintf(stderr, "fractal: CUMULUS_TASK_INDEX and CUMULUS_TASK_COUNT must be set, "
                        "with 0 <= index < count\n");
        return 2;
    }
    while ((g + 1) * (g + 1) <= count)
        g++;
    if (g * g != count) {
        fprintf(stderr, "fractal: CUMULUS_TASK_COUNT=%ld is not a perfect square\n", count);
        return 2;
    }
    if (width % g || height % g) {
        fprintf(stderr, "fractal: %ldx%ld cannot be cut into %ldx%ld equal tiles\n", width, height,
                g, g);
        return 2;
    }
    tw = width / g;
    th = height / g;
    row0 = (index / g) * th;
    col0 = (index % g) * tw;

    img = malloc((size_t)tw * (size_t)th * 3);
    if (!img) {
        fprintf(stderr, "fractal: out of memory\n");
        return 1;
    }
    double span_im = SPAN_RE * (double)height / (double)width;
    for (long y = 0; y < th; y++) {
        /* Image row 0 is the top: imaginary part decreases downwards. */
        double ci = CENTRE_IM + (0.5 - ((double)(row0 + y) + 0.5) / (double)height) * span_im;
        for (long x = 0; x < tw; x++) {
            double cr = CENTRE_RE + (((double)(col0 + x) + 0.5) / (double)width - 0.5) * SPAN_RE;
            pixel(cr, ci, maxiter, img + ((size_t)y * (size_t)tw + (size_t)x) * 3);
        }
    }

    if (snprintf(path, sizeof(path), "%s/tile.ppm", dir) >= (int)sizeof(path)) {
        fprintf(stderr, "fractal: output directory name too long\n");
        free(img);
        return 2;
    }
    f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "fractal: cannot create %s: %s\n", path, strerror(errno));
        free(img);
        return 1;
    }
    fprintf(f, "P6\n%ld %ld\n255\n", tw, th);
    if (fwrite(img, 3, (size_t)tw * (size_t)th, f) != (size_t)tw * (size_t)th || fclose(f) != 0) {
        fprintf(stderr, "fractal: cannot write %s: %s\n", path, strerror(errno));
        free(img);
        return 1;
    }
    free(img);
    printf("tile %ld/%ld rows %ld-%ld cols %ld-%ld done\n", index, count, row0, row0 + th - 1, col0,
           col0 + tw - 1);
    return 0;
}
