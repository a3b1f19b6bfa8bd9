/* _attack.c - system calls a shell cannot make, for the escape suite:
 *   attack ptrace   PTRACE_ATTACH to pid 1 and PTRACE_TRACEME
 *   attack mount    mount a tmpfs, and unshare a mount namespace
 *   attack setuid   setuid(0) / setresuid(0,0,0)
 * Prints "escaped: WHAT" for each call that worked and exits 1, or prints
 * "contained" and exits 0. (Test helper, not part of Cumulus.) */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

static int escaped;

static void check(const char *what, int rc)
{
    if (rc == 0) {
        printf("escaped: %s\n", what);
        escaped = 1;
    } else {
        fprintf(stderr, "%s refused: %s\n", what, strerror(errno));
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";

    if (strcmp(mode, "ptrace") == 0) {
        check("ptrace attach pid 1", (int)ptrace(PTRACE_ATTACH, 1, NULL, NULL) == 0 ? 0 : -1);
        check("ptrace traceme", (int)ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : -1);
    } else if (strcmp(mode, "mount") == 0) {
        mkdir("/work/m", 0755);
        check("mount tmpfs", mount("none", "/work/m", "tmpfs", 0, NULL));
        check("unshare mount namespace", unshare(CLONE_NEWNS));
        check("unshare user namespace", unshare(CLONE_NEWUSER));
    } else if (strcmp(mode, "setuid") == 0) {
        check("setuid 0", setuid(0));
        check("setresuid 0", setresuid(0, 0, 0));
        if (getuid() == 0 || geteuid() == 0) {
            printf("escaped: running as root\n");
            escaped = 1;
        }
    } else {
        fprintf(stderr, "usage: attack ptrace|mount|setuid\n");
        return 2;
    }
    if (!escaped)
        printf("contained\n");
    return escaped;
}
