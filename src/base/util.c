#include "base/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t cu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cu_timespec_add_ms(struct timespec *t, int64_t ms)
{
    t->tv_sec += (time_t)(ms / 1000);
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

void cu_mono_deadline(struct timespec *out, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    cu_timespec_add_ms(out, ms);
}

void cu_sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int cu_snprintf(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (k < 0)
        return -CU_EINVAL;
    if ((size_t)k >= n)
        return -CU_ETOOBIG;
    return 0;
}

int cu_path_join(char *out, size_t n, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    if (dl && dir[dl - 1] == '/')
        return cu_snprintf(out, n, "%s%s", dir, name);
    return cu_snprintf(out, n, "%s/%s", dir, name);
}

int cu_mkdir_p(const char *path, mode_t mode)
{
    char tmp[CU_PATH_MAX];
    size_t len;

    if (cu_snprintf(tmp, sizeof tmp, "%s", path))
        return -CU_ETOOBIG;
    len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -CU_EIO;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -CU_EIO;
    return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(p) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int cu_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -CU_EIO;
    if (nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return -CU_EIO;
    return 0;
}

int cu_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[CU_PATH_MAX];
    int rc = 0;

    if (!d)
        return -CU_EIO;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (cu_path_join(path, sizeof path, dir, de->d_name) != 0 || cu_rm_rf(path) != 0)
            rc = -CU_EIO;
    }
    closedir(d);
    return rc;
}

int cu_read_file(const char *path, struct cu_buf *b)
{
    char chunk[65536];
    ssize_t n;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -CU_EIO;
            break;
        }
        rc = cu_buf_append(b, chunk, (size_t)n);
        if (rc)
            break;
    }
    close(fd);
    return rc;
}

int cu_fsync_dir(const char *path)
{
    char dir[CU_PATH_MAX];
    struct stat st;
    int fd, rc = 0;

    if (cu_snprintf(dir, sizeof dir, "%s", path))
        return -CU_ETOOBIG;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            memcpy(dir, ".", 2);
        else if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -CU_EIO;
    if (fsync(fd) != 0)
        rc = -CU_EIO;
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -CU_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int cu_write_file_atomic(const char *path, const void *data, size_t n, mode_t mode)
{
    char tmp[CU_PATH_MAX];
    int fd, rc;

    if (cu_snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()))
        return -CU_ETOOBIG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -CU_EIO;
    rc = write_all(fd, data, n);
    if (!rc && fsync(fd) != 0)
        rc = -CU_EIO;
    if (close(fd) != 0 && !rc)
        rc = -CU_EIO;
    if (!rc && rename(tmp, path) != 0)
        rc = -CU_EIO;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return cu_fsync_dir(path);
}

static uint64_t dir_size_at(int dfd, int depth, uint64_t *entries)
{
    uint64_t total = 0;
    DIR *d;
    struct dirent *de;

    if (depth > 64) {
        close(dfd);
        return 0;
    }
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        if (entries)
            *entries = UINT64_MAX;
        return 0;
    }
    for (;;) {
        struct stat st;
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno && entries)
                *entries = UINT64_MAX;
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (entries && *entries != UINT64_MAX)
            (*entries)++;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                total += dir_size_at(sub, depth + 1, NULL);
        }
    }
    closedir(d);
    return total;
}

uint64_t cu_dir_size(const char *dir)
{
    return cu_dir_usage(dir, NULL);
}

/* 1 when the directory open at fd holds nothing but "." and "..", 0 when
 * it holds more, -1 when it cannot be read. Reads with getdents64 alone:
 * readdir's fdopendir adds an fstat and two fcntl per directory, and a
 * task's /work and /out are checked this way after every task, nearly
 * always empty. */
static int dir_empty(int fd)
{
    union {
        struct dirent64 de;
        char bytes[1024];
    } buf;

    for (;;) {
        ssize_t n = getdents64(fd, buf.bytes, sizeof buf.bytes);
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *de = (const void *)(buf.bytes + off);
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                return 0;
            off += de->d_reclen;
        }
    }
}

uint64_t cu_dir_usage_at(int dfd, uint64_t *entries)
{
    int fd;

    if (entries)
        *entries = 0;
    if (lseek(dfd, 0, SEEK_SET) == 0 && dir_empty(dfd) == 1)
        return 0;
    /* Walked through a descriptor of its own, which the walk closes. */
    fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (entries)
            *entries = UINT64_MAX;
        return 0;
    }
    return dir_size_at(fd, 0, entries);
}

uint64_t cu_dir_usage(const char *dir, uint64_t *entries)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    uint64_t total;

    if (fd < 0) {
        if (entries)
            *entries = errno != ENOENT ? UINT64_MAX : 0;
        return 0;
    }
    total = cu_dir_usage_at(fd, entries);
    close(fd);
    return total;
}

int cu_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return -CU_EINVAL;
    if (*s == '+' || (*s == '-' && min >= 0))
        return -CU_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -CU_EOVERFLOW;
    if (*end != '\0')
        return -CU_EINVAL;
    if (v < min || v > max)
        return -CU_EOVERFLOW;
    *out = v;
    return 0;
}

int cu_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (__builtin_add_overflow(a, b, out))
        return -CU_EOVERFLOW;
    return 0;
}

int cu_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (__builtin_mul_overflow(a, b, out))
        return -CU_EOVERFLOW;
    return 0;
}

/* Parses a leading unsigned decimal number; returns chars consumed or 0. */
static size_t lead_u64(const char *s, uint64_t *v, int *ovf)
{
    size_t i = 0;
    uint64_t x = 0;
    *ovf = 0;
    while (isdigit((unsigned char)s[i])) {
        if (cu_mul_u64(x, 10, &x) || cu_add_u64(x, (uint64_t)(s[i] - '0'), &x))
            *ovf = 1;
        i++;
    }
    *v = x;
    return i;
}

int cu_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},          {"B", 1},
        {"k", 1000ULL},   {"K", 1000ULL},   {"KB", 1000ULL},   {"kB", 1000ULL},
        {"KiB", 1ULL << 10},
        {"M", 1000000ULL}, {"MB", 1000000ULL}, {"MiB", 1ULL << 20},
        {"G", 1000000000ULL}, {"GB", 1000000000ULL}, {"GiB", 1ULL << 30},
        {"T", 1000000000000ULL}, {"TB", 1000000000000ULL}, {"TiB", 1ULL << 40},
    };
    uint64_t v;
    size_t n;
    int ovf;

    if (!s)
        return -CU_EINVAL;
    n = lead_u64(s, &v, &ovf);
    if (n == 0)
        return -CU_EINVAL;
    if (ovf)
        return -CU_EOVERFLOW;
    s += n;
    while (*s == ' ')
        s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i].unit) == 0)
            return cu_mul_u64(v, units[i].mul, out);
    }
    return -CU_EINVAL;
}

int cu_parse_duration_ms(const char *s, uint64_t *out)
{
    uint64_t total = 0;
    int any = 0;

    if (!s || !*s)
        return -CU_EINVAL;
    while (*s) {
        uint64_t v, mul, part;
        int ovf;
        size_t n = lead_u64(s, &v, &ovf);
        if (n == 0)
            return -CU_EINVAL;
        if (ovf)
            return -CU_EOVERFLOW;
        s += n;
        if (strncmp(s, "ms", 2) == 0) {
            mul = 1;
            s += 2;
        } else if (*s == 's') {
            mul = 1000;
            s++;
        } else if (*s == 'm') {
            mul = 60000;
            s++;
        } else if (*s == 'h') {
            mul = 3600000;
            s++;
        } else if (*s == 'd') {
            mul = 86400000;
            s++;
        } else if (*s == '\0' && !any) {
            mul = 1000; /* bare number: seconds */
        } else {
            return -CU_EINVAL;
        }
        if (cu_mul_u64(v, mul, &part) || cu_add_u64(total, part, &total))
            return -CU_EOVERFLOW;
        any = 1;
    }
    *out = total;
    return 0;
}

void cu_fmt_size(uint64_t bytes, char *out, size_t n)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int i = 0;
    if (bytes < 1024) {
        snprintf(out, n, "%llu B", (unsigned long long)bytes);
        return;
    }
    while (v >= 1024 && i < 5) {
        v /= 1024;
        i++;
    }
    snprintf(out, n, "%.1f %s", v, u[i]);
}

void cu_fmt_duration(uint64_t ms, char *out, size_t n)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(out, n, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(out, n, "%llu.%01llus", (unsigned long long)s, (unsigned long long)(ms % 1000) / 100);
    else if (s < 3600)
        snprintf(out, n, "%llum%02llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    else
        snprintf(out, n, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600) / 60);
}

void cu_hex_encode(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cu_hex_decode(const char *s, void *out, size_t n)
{
    unsigned char *p = out;
    if (!s || strlen(s) != 2 * n)
        return -CU_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -CU_EINVAL;
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

bool cu_name_is_safe(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255 || name[0] == '-')
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static pthread_rwlock_t exec_write_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void cu_exec_write_begin(void)
{
    pthread_rwlock_rdlock(&exec_write_lock);
}

void cu_exec_write_end(void)
{
    pthread_rwlock_unlock(&exec_write_lock);
}

void cu_fork_begin(void)
{
    pthread_rwlock_wrlock(&exec_write_lock);
}

void cu_fork_end(void)
{
    pthread_rwlock_unlock(&exec_write_lock);
}
