/* buf.h - bounded, growable byte buffers (curl's dynbuf is the model).
 *
 * Every buffer has a maximum fixed at init; appending past it fails with
 * -CU_ETOOBIG and leaves the buffer as it was. data is always
 * NUL-terminated (when non-NULL) so text can be used as a C string. */
#ifndef CU_BASE_BUF_H
#define CU_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct cu_buf {
    char *data;  /* NULL until the first append */
    size_t len;  /* bytes used, excluding the terminating NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* largest len allowed */
};

#define CU_BUF_INIT(maxlen) {NULL, 0, 0, (maxlen)}

void cu_buf_init(struct cu_buf *b, size_t max);
/* Frees the storage; b may be reused after cu_buf_init. */
void cu_buf_release(struct cu_buf *b);
/* Keeps the storage, forgets the contents. */
void cu_buf_reset(struct cu_buf *b);
int cu_buf_append(struct cu_buf *b, const void *p, size_t n);
int cu_buf_appends(struct cu_buf *b, const char *s);
int cu_buf_appendf(struct cu_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cu_buf_vappendf(struct cu_buf *b, const char *fmt, va_list ap);
/* Always a valid C string ("" when empty). */
const char *cu_buf_str(const struct cu_buf *b);
/* Hands the storage to the caller (free() it) and resets b; never NULL
 * unless out of memory. */
char *cu_buf_detach(struct cu_buf *b);

#endif
