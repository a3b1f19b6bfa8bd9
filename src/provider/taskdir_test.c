/* taskdir_test.c - unit tests for the slot's reused task directory
 * (taskdir.c: a reused directory is empty for the next task, whatever the
 * last one left; one a task saw itself is made afresh) and for the queue
 * of leases claimed ahead (ahead.c: how many a claim asks for, the bound
 * on leases held, the state row of each queued lease). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "provider/agent.h"

#include "base/banned.h"

struct fixture {
    char dir[CU_PATH_MAX];
    struct cu_agent a;
    struct cu_slot s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct cu_err e = {0};

    if (!f)
        return -1;
    memcpy(f->dir, "/tmp/cu_taskdir_XXXXXX", sizeof "/tmp/cu_taskdir_XXXXXX");
    if (!mkdtemp(f->dir) ||
        cu_path_join(f->a.tasks_dir, sizeof f->a.tasks_dir, f->dir, "tasks") ||
        mkdir(f->a.tasks_dir, 0755) != 0)
        return -1;
    f->s.a = &f->a;
    f->s.index = 3;
    if (cu_slot_dir_init(&f->s, &e) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = cu_rm_rf(f->dir);

    free(f);
    return rc;
}

/* Entries of dir/sub other than . and .. */
static int entries(const char *dir, const char *sub)
{
    char path[CU_PATH_MAX];
    struct dirent *de;
    DIR *d;
    int n = 0;

    assert_int_equal(cu_path_join(path, sizeof path, dir, sub), 0);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[CU_PATH_MAX];
    FILE *fp;

    assert_int_equal(cu_path_join(path, sizeof path, dir, rel), 0);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static ino_t inode_of(const char *dir, const char *rel)
{
    char path[CU_PATH_MAX];
    struct stat st;

    assert_int_equal(cu_path_join(path, sizeof path, dir, rel), 0);
    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

static void test_reused_dir_is_empty(void **state)
{
    struct fixture *f = *state;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    ino_t work;

    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_non_null(strstr(f->s.dir, "/tasks/slot-3"));
    assert_int_equal(entries(f->s.dir, "work"), 0);
    assert_int_equal(entries(f->s.dir, "out"), 0);
    assert_int_equal(entries(f->s.dir, "in"), 0);
    work = inode_of(f->s.dir, "work");

    /* What a task (moved back by the warm sandbox) may leave: files, a
     * tree with a directory it cannot read, a symlink out of the tree. */
    put(f->s.dir, "work/scratch", "x");
    put(f->s.dir, "out/r.txt", "result");
    put(f->s.dir, "in/input", "data");
    put(f->s.dir, "stdout", "old output");
    assert_int_equal(cu_path_join(path, sizeof path, f->s.dir, "out/deep"), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    put(f->s.dir, "out/deep/file", "y");
    if (geteuid() == 0) /* as root a directory mode 000 is no obstacle */
        assert_int_equal(chmod(path, 0), 0);
    assert_int_equal(cu_path_join(path, sizeof path, f->s.dir, "work/link"), 0);
    assert_int_equal(symlink(f->dir, path), 0);
    cu_slot_dir_done(&f->s);

    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_int_equal(entries(f->s.dir, "work"), 0);
    assert_int_equal(entries(f->s.dir, "out"), 0);
    assert_int_equal(entries(f->s.dir, "in"), 0);
    /* The same directory, emptied (no inode churn); what the symlink
     * pointed to is untouched. */
    assert_int_equal(inode_of(f->s.dir, "work"), work);
    assert_int_equal(access(f->dir, F_OK), 0);
    assert_int_equal(entries(f->dir, "tasks"), 1); /* slot-3 alone: nothing set aside */
    cu_slot_dir_done(&f->s);
}

/* After a warm task (dir_moved: work/ and in/ were emptied by moving
 * their entries into the sandbox) out/ is emptied, and the tree is reused
 * for the next task as is. */
static void test_warm_task_empties_out(void **state)
{
    struct fixture *f = *state;
    struct cu_err e = {0};
    ino_t out;

    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    out = inode_of(f->s.dir, "out");
    put(f->s.dir, "out/r.txt", "result");
    f->s.dir_moved = true;
    cu_slot_dir_done(&f->s);
    assert_false(f->s.dir_moved);
    assert_int_equal(entries(f->s.dir, "out"), 0);
    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_int_equal(inode_of(f->s.dir, "out"), out);
    assert_int_equal(entries(f->s.dir, "out"), 0);
    cu_slot_dir_done(&f->s);
}

static void test_exposed_dir_made_afresh(void **state)
{
    struct fixture *f = *state;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    struct stat st;

    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    /* A task in a sandbox of its own had work/ bound in: it may have
     * changed the directory itself. */
    f->s.dir_exposed = true;
    assert_int_equal(cu_path_join(path, sizeof path, f->s.dir, "work"), 0);
    assert_int_equal(chmod(path, 0777), 0);
    put(f->s.dir, "work/left", "z");
    cu_slot_dir_done(&f->s);
    assert_int_equal(access(f->s.dir, F_OK), -1); /* removed, not kept */

    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_int_equal(entries(f->s.dir, "work"), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    cu_slot_dir_done(&f->s);
}

static void test_missing_dir_recreated(void **state)
{
    struct fixture *f = *state;
    struct cu_err e = {0};

    /* recover() wipes tasks/ at start; a slot's tree may also vanish
     * under it: prepare notices only through done's emptying. */
    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_int_equal(cu_rm_rf(f->s.dir), 0);
    cu_slot_dir_done(&f->s); /* cannot empty: not ready any more */
    assert_false(f->s.dir_ready);
    assert_int_equal(cu_slot_dir_prepare(&f->s, &e), 0);
    assert_int_equal(entries(f->s.dir, "out"), 0);
}

static void test_ahead_queue(void **state)
{
    struct fixture *f = *state;
    struct cu_ahead *h;
    struct cu_pstate_row *rows;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    json_t *l1, *l2, *l3, *got;
    int64_t age;
    size_t n;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&f->a.state, path, &e), 0);
    (void)cu_snprintf(f->a.exchange, sizeof f->a.exchange, "http://x");
    f->a.heartbeat_ms = 10000;
    assert_int_equal(cu_ahead_new(2, &h), 0);

    /* Nothing measured yet, then a long lease: one at a time. */
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    cu_ahead_claimed(h, 1);
    cu_ahead_note(h, 5000);
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    cu_ahead_claimed(h, 1);
    /* Shorter leases: a long one decays out of the average only slowly,
     * a new one is believed at once. */
    for (int i = 0; i < 40; i++)
        cu_ahead_note(h, 40);
    /* 2 slots of 40 ms leases run 5 in 100 ms: at most 5 held; this slot
     * runs one, queues up to 4. */
    assert_int_equal(cu_ahead_want(h, &f->a), 5);
    /* A second claim meanwhile gets only what is left. */
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    cu_ahead_claimed(h, 1);
    cu_ahead_running(h, true); /* the other slot runs one */
    l1 = json_pack("{s:I,s:s,s:I}", "replica", (json_int_t)11, "job", "j-a", "task", 1);
    l2 = json_pack("{s:I,s:s,s:I}", "replica", (json_int_t)12, "job", "j-a", "task", 2);
    l3 = json_pack("{s:s}", "job", "malformed: no replica");
    {
        json_t *all = json_pack("[O,O,O]", l1, l2, l3);
        cu_ahead_record(&f->a, all);
        json_decref(all);
    }
    assert_int_equal(cu_ahead_push(h, l1), 0);
    assert_int_equal(cu_ahead_push(h, l2), 0);
    assert_int_equal(cu_ahead_push(h, l3), 0);
    assert_int_equal(cu_ahead_queued(h), 3);
    cu_ahead_claimed(h, 5);
    /* 1 running + 3 queued = 4 held, and the next claim's own lease
     * makes 5: no claiming ahead now. */
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    cu_ahead_claimed(h, 1);

    /* Each well-formed queued lease has its 'running' row (recover()
     * reports it abandoned after a crash). */
    assert_int_equal(cu_pstate_list(&f->a.state, "http://x", &rows, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].state, "running");
        assert_true(rows[i].id == 11 || rows[i].id == 12);
    }
    cu_pstate_rows_free(rows, n);
    /* Their own record when they run writes nothing; forgetting works. */
    assert_int_equal(cu_pstate_running(&f->a.state, f->a.exchange, 11, "j-a", 1), 0);
    assert_int_equal(f->a.state.nfresh, 1);
    assert_int_equal(cu_pstate_forget(&f->a.state, f->a.exchange, 12), 0);
    assert_int_equal(f->a.state.nfresh, 0);
    assert_int_equal(cu_pstate_list(&f->a.state, "http://x", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, 11);
    cu_pstate_rows_free(rows, n);

    /* Oldest first. */
    got = cu_ahead_pop(h, &age);
    assert_ptr_equal(got, l1);
    assert_true(age >= 0 && age < 5000);
    json_decref(got);
    got = cu_ahead_pop(h, &age);
    assert_ptr_equal(got, l2);
    json_decref(got);
    cu_ahead_running(h, false);
    /* One queued, none running: 4 more. */
    assert_int_equal(cu_ahead_want(h, &f->a), 4);
    cu_ahead_claimed(h, 4);
    /* A heartbeat interval too short for the queue to drain: one. */
    f->a.heartbeat_ms = 10;
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    cu_ahead_claimed(h, 1);
    /* Trivial leases (2 ms): 32 per claim at most, 64 held in all. */
    f->a.heartbeat_ms = 10000;
    for (int i = 0; i < 40; i++)
        cu_ahead_note(h, 2);
    /* 1 queued + 31 promised = 32: 32 left, all in the next claim. */
    assert_int_equal(cu_ahead_want(h, &f->a), 32);
    assert_int_equal(cu_ahead_want(h, &f->a), 32);
    /* 1 queued + 2 x 31 promised = 63: one more each. */
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    assert_int_equal(cu_ahead_want(h, &f->a), 1);
    for (int i = 0; i < 2; i++)
        cu_ahead_claimed(h, 32);
    cu_ahead_claimed(h, 1);
    cu_ahead_claimed(h, 1);
    /* Even 1 ms leases: half a heartbeat interval bounds the queue. */
    f->a.heartbeat_ms = 12;
    for (int i = 0; i < 40; i++)
        cu_ahead_note(h, 1);
    assert_int_equal(cu_ahead_want(h, &f->a), 5); /* 6 held: 1 queued + 5 */
    cu_ahead_claimed(h, 5);
    /* Leases under 1 ms count as 1 ms: the heartbeat still bounds them. */
    for (int i = 0; i < 40; i++)
        cu_ahead_note(h, 0);
    assert_int_equal(cu_ahead_want(h, &f->a), 5);
    cu_ahead_claimed(h, 5);
    assert_int_equal(cu_ahead_held_max(2), 64);
    assert_int_equal(cu_ahead_held_max(40), 80);

    cu_ahead_free(h); /* frees l3, still queued */
    json_decref(l1);
    json_decref(l2);
    json_decref(l3);
    cu_pstate_close(&f->a.state);
}

static void test_report_linger(void **state)
{
    (void)state;
    /* Nothing claimed ahead: no more reports are coming soon. */
    assert_int_equal(cu_reporter_linger_ms(1, 0, 0, false), 0);
    /* Leases wait: the first report waits for company, up to the bound. */
    assert_int_equal(cu_reporter_linger_ms(1, 0, 3, false), CU_REPORT_LINGER_MS);
    assert_int_equal(cu_reporter_linger_ms(3, 4, 3, false), CU_REPORT_LINGER_MS - 4);
    assert_int_equal(cu_reporter_linger_ms(3, CU_REPORT_LINGER_MS, 3, false), 0);
    assert_int_equal(cu_reporter_linger_ms(3, -5, 3, false), CU_REPORT_LINGER_MS);
    /* A full batch, nothing queued, or stopping: now. */
    assert_int_equal(cu_reporter_linger_ms(CU_REPORT_LINGER_BATCH, 0, 3, false), 0);
    assert_int_equal(cu_reporter_linger_ms(0, 0, 3, false), 0);
    assert_int_equal(cu_reporter_linger_ms(2, 0, 3, true), 0);
}

/* `cumulus provider status` finds a running replica's group through the
 * slots' files: the record naming it wins, others and junk are passed
 * over, an unsafe group name is never returned. */
static void test_task_cgroup_lookup(void **state)
{
    struct fixture *f = *state;
    char got[64];

    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 7, got, sizeof got), -CU_ENOTFOUND);
    put(f->a.tasks_dir, "slot-0.cgroup", "7 warm-100-1                     \n");
    put(f->a.tasks_dir, "slot-1.cgroup", "8 warm-100-2\n");
    put(f->a.tasks_dir, "slot-2.cgroup", "9 ../escape\n");
    put(f->a.tasks_dir, "slot-3.cgroup", "junk");
    put(f->a.tasks_dir, "other.cgroup", "10 warm-100-3\n");
    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 7, got, sizeof got), 0);
    assert_string_equal(got, "warm-100-1");
    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 8, got, sizeof got), 0);
    assert_string_equal(got, "warm-100-2");
    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 9, got, sizeof got), -CU_ENOTFOUND);
    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 10, got, sizeof got), -CU_ENOTFOUND);
    assert_int_equal(cu_slot_task_cgroup(f->a.tasks_dir, 11, got, sizeof got), -CU_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reused_dir_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_task_empties_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exposed_dir_made_afresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ahead_queue, setup, teardown),
        cmocka_unit_test(test_report_linger),
        cmocka_unit_test_setup_teardown(test_task_cgroup_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
