/* proctree.c - a process tree from /proc (see proctree.h). */
#include "fabric/proctree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

#include "base/banned.h"

#define SCAN_MAX 65536     /* processes read from /proc in one scan */
#define STOP_ROUNDS 200    /* rescans before cu_proc_tree_stop gives up */
#define STOP_ROUND_MS 5

int cu_proc_parse_stat(const char *line, long ticks_per_s, struct cu_proc_info *p)
{
    /* "pid (comm) state ppid ..." where comm may hold spaces and ')', so
     * the fields start after the last ')'. Field numbers as in proc(5). */
    const char *close = strrchr(line, ')');
    unsigned long long f[18] = {0};
    char *end;
    const char *s;
    long pid;

    pid = strtol(line, &end, 10);
    if (end == line || pid <= 0 || !close || close[1] != ' ' || !close[2] || ticks_per_s <= 0)
        return -CU_EPROTO;
    p->pid = (pid_t)pid;
    p->state = close[2];
    s = close + 3;
    /* fields 4 (ppid) to 17 (cstime) */
    for (int i = 4; i <= 17; i++) {
        long long v;
        while (*s == ' ')
            s++;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (end == s || errno)
            return -CU_EPROTO;
        /* cutime/cstime are signed in the kernel; negatives never happen */
        f[i] = v < 0 ? 0 : (unsigned long long)v;
        s = end;
    }
    p->ppid = (pid_t)f[4];
    p->cpu_ms = (f[14] + f[15] + f[16] + f[17]) * 1000ULL / (unsigned long long)ticks_per_s;
    return 0;
}

/* Reads /proc/PID/stat of one process. 0, or negative when it is gone. */
static int read_stat(int procfd, const char *name, long hz, struct cu_proc_info *p)
{
    char path[64], buf[1024];
    ssize_t n;
    int fd;

    if (cu_snprintf(path, sizeof path, "%s/stat", name) != 0)
        return -CU_EINVAL;
    fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -CU_ENOTFOUND;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -CU_ENOTFOUND;
    buf[n] = '\0';
    return cu_proc_parse_stat(buf, hz, p);
}

/* Every process on the machine into *all (malloc'd; the caller frees). */
static int scan_all(struct cu_proc_info **all, size_t *n)
{
    long hz = sysconf(_SC_CLK_TCK);
    struct cu_proc_info *v = NULL;
    size_t cap = 0, k = 0;
    struct dirent *de;
    DIR *d = opendir("/proc");
    int rc = 0;

    if (!d)
        return -CU_EIO;
    if (hz <= 0)
        hz = 100;
    while ((de = readdir(d)) != NULL) {
        struct cu_proc_info p;
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        if (read_stat(dirfd(d), de->d_name, hz, &p) != 0)
            continue; /* exited meanwhile */
        if (k == cap) {
            size_t ncap = cap ? cap * 2 : 512;
            struct cu_proc_info *nv;
            if (ncap > SCAN_MAX) {
                rc = -CU_ETOOBIG;
                break;
            }
            nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = -CU_ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[k++] = p;
    }
    closedir(d);
    if (rc && rc != -CU_ETOOBIG) {
        free(v);
        return rc;
    }
    *all = v;
    *n = k;
    return 0;
}

static int by_pid(const void *a, const void *b)
{
    pid_t x = ((const struct cu_proc_info *)a)->pid, y = ((const struct cu_proc_info *)b)->pid;
    return (x > y) - (x < y);
}

int cu_proc_tree(pid_t root, struct cu_proc_info *v, size_t max, size_t *n)
{
    struct cu_proc_info *all = NULL, key;
    size_t nall = 0, k = 0;
    ssize_t *parent;
    bool *in, grew = true;
    int rc;

    *n = 0;
    rc = scan_all(&all, &nall);
    if (rc)
        return rc;
    in = calloc(nall ? nall : 1, sizeof *in);
    parent = calloc(nall ? nall : 1, sizeof *parent);
    if (!in || !parent) {
        rc = -CU_ENOMEM;
        goto out_free;
    }
    qsort(all, nall, sizeof *all, by_pid);
    for (size_t i = 0; i < nall; i++) {
        const struct cu_proc_info *p;
        key.pid = all[i].ppid;
        p = bsearch(&key, all, nall, sizeof *all, by_pid);
        parent[i] = p ? p - all : -1;
        if (all[i].pid == root)
            in[i] = true;
    }
    /* One pass per generation at most: a process is in when its parent is. */
    while (grew) {
        grew = false;
        for (size_t i = 0; i < nall; i++) {
            if (!in[i] && parent[i] >= 0 && in[parent[i]])
                in[i] = grew = true;
        }
    }
    for (size_t i = 0; i < nall; i++) {
        if (!in[i])
            continue;
        if (k < max)
            v[k] = all[i];
        k++;
    }
    if (k == 0) {
        rc = -CU_ENOTFOUND;
        goto out_free;
    }
    /* root first */
    for (size_t i = 1; i < k && i < max; i++) {
        if (v[i].pid == root) {
            struct cu_proc_info t = v[0];
            v[0] = v[i];
            v[i] = t;
        }
    }
    *n = k < max ? k : max;
    rc = k > max ? -CU_ETOOBIG : 0;
out_free:
    free(parent);
    free(in);
    free(all);
    return rc;
}

static bool is_stopped_or_gone(char state)
{
    return state == 'T' || state == 't' || state == 'Z' || state == 'X';
}

int cu_proc_tree_stop(pid_t root)
{
    struct cu_proc_info *v = malloc(CU_PROCTREE_MAX * sizeof *v);
    int rc = -CU_EAGAIN;

    if (!v)
        return -CU_ENOMEM;
    for (int round = 0; round < STOP_ROUNDS; round++) {
        size_t n = 0, running = 0;
        int r = cu_proc_tree(root, v, CU_PROCTREE_MAX, &n);
        if (r && r != -CU_ETOOBIG) {
            rc = r;
            break;
        }
        /* A pid read a moment ago could have been reused by the time it is
         * signalled; inside the task's pid namespace pids are not recycled
         * that fast, and a stopped parent reaps nothing. */
        for (size_t i = 0; i < n; i++) {
            if (!is_stopped_or_gone(v[i].state)) {
                kill(v[i].pid, SIGSTOP);
                running++;
            }
        }
        if (running == 0 && r == 0) {
            rc = 0;
            break;
        }
        cu_sleep_ms(STOP_ROUND_MS);
    }
    free(v);
    return rc;
}

int cu_proc_tree_cont(pid_t root)
{
    struct cu_proc_info *v = malloc(CU_PROCTREE_MAX * sizeof *v);
    size_t n = 0;
    int rc;

    if (!v)
        return -CU_ENOMEM;
    rc = cu_proc_tree(root, v, CU_PROCTREE_MAX, &n);
    /* Children first is not needed: a continued parent that forks makes
     * running children, which need no SIGCONT. */
    for (size_t i = 0; i < n; i++)
        kill(v[i].pid, SIGCONT);
    free(v);
    return rc == -CU_ETOOBIG ? 0 : rc;
}

int cu_proc_tree_cpu_ms(pid_t root, uint64_t *ms)
{
    struct cu_proc_info *v = malloc(CU_PROCTREE_MAX * sizeof *v);
    size_t n = 0;
    uint64_t sum = 0;
    int rc;

    *ms = 0;
    if (!v)
        return -CU_ENOMEM;
    rc = cu_proc_tree(root, v, CU_PROCTREE_MAX, &n);
    for (size_t i = 0; i < n; i++)
        sum += v[i].cpu_ms;
    free(v);
    if (rc && rc != -CU_ETOOBIG)
        return rc;
    *ms = sum;
    return 0;
}
