#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

void cu_buf_init(struct cu_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void cu_buf_release(struct cu_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cu_buf_reset(struct cu_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int grow(struct cu_buf *b, size_t need)
{
    size_t cap;
    char *p;

    if (need > b->max)
        return -CU_ETOOBIG;
    if (need + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        if (cap > ((size_t)-1) / 2) {
            cap = need + 1;
            break;
        }
        cap *= 2;
    }
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = realloc(b->data, cap);
    if (!p)
        return -CU_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cu_buf_append(struct cu_buf *b, const void *p, size_t n)
{
    int rc;

    if (n > b->max - b->len)
        return -CU_ETOOBIG;
    rc = grow(b, b->len + n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int cu_buf_appends(struct cu_buf *b, const char *s)
{
    return cu_buf_append(b, s, strlen(s));
}

int cu_buf_vappendf(struct cu_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -CU_EINVAL;
    if ((size_t)n > b->max - b->len)
        return -CU_ETOOBIG;
    rc = grow(b, b->len + (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cu_buf_appendf(struct cu_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = cu_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *cu_buf_str(const struct cu_buf *b)
{
    return b->data ? b->data : "";
}

char *cu_buf_detach(struct cu_buf *b)
{
    char *p = b->data;

    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
