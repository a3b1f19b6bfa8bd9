/* config_test.c - exchange URL and identity resolution precedence, config
 * file parsing, passphrase from the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "client/config.h"
#include "crypto/hash.h"
#include "crypto/ident.h"

#include "base/banned.h"

struct fixture {
    char dir[CU_PATH_MAX];
};

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[CU_PATH_MAX];
    assert_int_equal(cu_path_join(path, sizeof path, dir, name), 0);
    assert_int_equal(cu_write_file_atomic(path, text, strlen(text), 0600), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");

    assert_non_null(f);
    cu_snprintf(f->dir, sizeof f->dir, "%s/cu-config-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    setenv("CUMULUS_HOME", f->dir, 1);
    unsetenv("CUMULUS_EXCHANGE");
    unsetenv("CUMULUS_KEY");
    unsetenv("CUMULUS_PASSPHRASE");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void test_parse_basic(void **state)
{
    const char *text = "# a comment\n"
                       "\n"
                       "   # indented comment\n"
                       "exchange = http://a:1\n"
                       "  exchange=\"http://b:2\"  \r\n";
    char out[64];
    struct cu_err e = {0};

    (void)state;
    assert_int_equal(cu_config_parse(text, strlen(text), "cfg", "exchange", out, sizeof out, &e),
                     0);
    assert_string_equal(out, "http://b:2"); /* the last one wins, quotes stripped */
}

static void test_parse_missing_key(void **state)
{
    const char *text = "# only comments\n\n";
    char out[64] = "untouched";
    struct cu_err e = {0};

    (void)state;
    assert_int_equal(cu_config_parse(text, strlen(text), "cfg", "exchange", out, sizeof out, &e),
                     -CU_ENOTFOUND);
    assert_string_equal(out, "untouched");
    assert_int_equal(cu_config_parse("", 0, "cfg", "exchange", out, sizeof out, &e),
                     -CU_ENOTFOUND);
}

static void test_parse_errors_name_the_line(void **state)
{
    char out[64];
    struct cu_err e = {0};
    const char *no_eq = "exchange = http://a:1\nthis is not a pair\n";
    const char *unknown = "\n\nexchnage = http://a:1\n";
    const char *empty = "exchange =   \n";
    const char *nokey = " = x\n";

    (void)state;
    assert_int_equal(cu_config_parse(no_eq, strlen(no_eq), "cfg", "exchange", out, sizeof out,
                                     &e),
                     -CU_EINVAL);
    assert_non_null(strstr(e.msg, "cfg:2:"));
    assert_int_equal(cu_config_parse(unknown, strlen(unknown), "cfg", "exchange", out,
                                     sizeof out, &e),
                     -CU_EINVAL);
    assert_non_null(strstr(e.msg, "cfg:3:"));
    assert_non_null(strstr(e.msg, "exchnage"));
    assert_int_equal(cu_config_parse(empty, strlen(empty), "cfg", "exchange", out, sizeof out,
                                     &e),
                     -CU_EINVAL);
    assert_non_null(strstr(e.msg, "cfg:1:"));
    assert_int_equal(cu_config_parse(nokey, strlen(nokey), "cfg", "exchange", out, sizeof out,
                                     &e),
                     -CU_EINVAL);
}

static void test_parse_value_too_long(void **state)
{
    const char *text = "exchange = http://a-very-long-host-name:7070\n";
    char out[8];
    struct cu_err e = {0};

    (void)state;
    assert_int_equal(cu_config_parse(text, strlen(text), "cfg", "exchange", out, sizeof out, &e),
                     -CU_ETOOBIG);
}

static void test_exchange_precedence(void **state)
{
    struct fixture *f = *state;
    char url[256];
    struct cu_err e = {0};

    /* nothing anywhere: the error says all three ways */
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), -CU_ENOTFOUND);
    assert_non_null(strstr(e.msg, "no exchange: pass --exchange URL, set CUMULUS_EXCHANGE"));

    write_text(f->dir, "config", "exchange = http://from-config:1\n");
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), 0);
    assert_string_equal(url, "http://from-config:1");

    setenv("CUMULUS_EXCHANGE", "http://from-env:2", 1);
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), 0);
    assert_string_equal(url, "http://from-env:2");

    assert_int_equal(cu_config_exchange_url("https://from-flag:3", url, sizeof url, &e), 0);
    assert_string_equal(url, "https://from-flag:3");

    /* an empty variable counts as unset */
    setenv("CUMULUS_EXCHANGE", "", 1);
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), 0);
    assert_string_equal(url, "http://from-config:1");
}

static void test_exchange_bad_inputs(void **state)
{
    struct fixture *f = *state;
    char url[256];
    struct cu_err e = {0};

    assert_int_equal(cu_config_exchange_url("ftp://x", url, sizeof url, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "--exchange"));
    setenv("CUMULUS_EXCHANGE", "localhost:7070", 1);
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "CUMULUS_EXCHANGE"));
    unsetenv("CUMULUS_EXCHANGE");
    /* a broken config file is reported, not taken for "no exchange" */
    write_text(f->dir, "config", "exchange http://x\n");
    assert_int_equal(cu_config_exchange_url(NULL, url, sizeof url, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "config:1:"));
}

static void test_key_path_precedence(void **state)
{
    struct fixture *f = *state;
    char path[CU_PATH_MAX], want[CU_PATH_MAX];
    struct cu_err e = {0};

    assert_int_equal(cu_config_key_path(NULL, path, sizeof path, &e), 0);
    cu_path_join(want, sizeof want, f->dir, "identity.key");
    assert_string_equal(path, want);

    setenv("CUMULUS_KEY", "/env/key", 1);
    assert_int_equal(cu_config_key_path(NULL, path, sizeof path, &e), 0);
    assert_string_equal(path, "/env/key");

    assert_int_equal(cu_config_key_path("/flag/key", path, sizeof path, &e), 0);
    assert_string_equal(path, "/flag/key");
}

static void test_home_default(void **state)
{
    char home[CU_PATH_MAX];
    struct cu_err e = {0};

    (void)state;
    unsetenv("CUMULUS_HOME");
    setenv("HOME", "/home/someone", 1);
    assert_int_equal(cu_config_home(home, sizeof home, &e), 0);
    assert_string_equal(home, "/home/someone/.cumulus");
}

static void test_identity_missing(void **state)
{
    struct fixture *f = *state;
    struct cu_identity id;
    struct cu_err e = {0};
    char want[CU_PATH_MAX + 64];

    assert_int_equal(cu_config_load_identity(NULL, &id, NULL, &e), -CU_ENOTFOUND);
    cu_snprintf(want, sizeof want, "no identity at %s/identity.key: run 'cumulus keygen'",
                f->dir);
    assert_string_equal(e.msg, want);
}

static void test_identity_plain_and_encrypted(void **state)
{
    struct fixture *f = *state;
    struct cu_identity made, got;
    struct cu_err e = {0};
    char plain[CU_PATH_MAX], enc[CU_PATH_MAX], used[CU_PATH_MAX];

    assert_int_equal(cu_identity_generate(&made), 0);
    cu_path_join(plain, sizeof plain, f->dir, "identity.key");
    cu_path_join(enc, sizeof enc, f->dir, "enc.key");
    assert_int_equal(cu_identity_save(&made, plain, NULL, false, &e), 0);
    assert_int_equal(cu_identity_save(&made, enc, "correct horse", false, &e), 0);

    /* default location, plain: no passphrase asked */
    assert_int_equal(cu_config_load_identity(NULL, &got, used, &e), 0);
    assert_string_equal(got.id, made.id);
    assert_string_equal(used, plain);

    /* CUMULUS_KEY beats the default; the passphrase comes from the env */
    setenv("CUMULUS_KEY", enc, 1);
    setenv("CUMULUS_PASSPHRASE", "correct horse", 1);
    assert_int_equal(cu_config_load_identity(NULL, &got, used, &e), 0);
    assert_string_equal(got.id, made.id);
    assert_string_equal(used, enc);

    setenv("CUMULUS_PASSPHRASE", "wrong", 1);
    assert_int_equal(cu_config_load_identity(NULL, &got, NULL, &e), -CU_EAUTH);
    assert_non_null(strstr(e.msg, "wrong passphrase"));

    /* --key beats CUMULUS_KEY */
    assert_int_equal(cu_config_load_identity(plain, &got, used, &e), 0);
    assert_string_equal(used, plain);

    /* no env and no terminal: told how to give one */
    unsetenv("CUMULUS_PASSPHRASE");
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) {
        assert_int_equal(cu_config_load_identity(NULL, &got, NULL, &e), -CU_ENEEDPASS);
        assert_non_null(strstr(e.msg, "CUMULUS_PASSPHRASE"));
    } else {
        close(tty);
    }
    cu_identity_wipe(&made);
    cu_identity_wipe(&got);
}

static void test_passphrase_env(void **state)
{
    char pass[CU_PASSPHRASE_MAX];
    struct cu_err e = {0};

    (void)state;
    setenv("CUMULUS_PASSPHRASE", "s3cret", 1);
    assert_int_equal(cu_config_passphrase("x: ", true, pass, sizeof pass, &e), 0);
    assert_string_equal(pass, "s3cret");
    setenv("CUMULUS_PASSPHRASE", "", 1);
    assert_int_equal(cu_config_passphrase("x: ", false, pass, sizeof pass, &e), -CU_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_missing_key),
        cmocka_unit_test(test_parse_errors_name_the_line),
        cmocka_unit_test(test_parse_value_too_long),
        cmocka_unit_test_setup_teardown(test_exchange_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_path_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_home_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_plain_and_encrypted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passphrase_env, setup, teardown),
    };
    if (cu_crypto_init() != 0)
        return 1;
    return cmocka_run_group_tests_name("client/config", tests, NULL, NULL);
}
