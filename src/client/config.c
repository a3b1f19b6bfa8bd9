/* config.c - exchange URL, identity and passphrase resolution for the
 * requester commands (precedence in config.h). */
#include "client/config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

#include "base/banned.h"

/* The keys the config file may hold; anything else is a typo. */
static const char *const known_keys[] = {"exchange", NULL};

int cu_config_home(char *out, size_t n, struct cu_err *e)
{
    const char *env = getenv("CUMULUS_HOME");
    const char *home;

    if (env && *env) {
        if (cu_snprintf(out, n, "%s", env) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "CUMULUS_HOME is too long");
        return 0;
    }
    home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home)
        return cu_err_set(e, -CU_ENOTFOUND,
                          "cannot find a home directory: set CUMULUS_HOME or HOME");
    if (cu_path_join(out, n, home, ".cumulus") != 0)
        return cu_err_set(e, -CU_ETOOBIG, "home directory path is too long");
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool key_known(const char *k, size_t kl)
{
    for (size_t i = 0; known_keys[i]; i++) {
        if (strlen(known_keys[i]) == kl && memcmp(known_keys[i], k, kl) == 0)
            return true;
    }
    return false;
}

int cu_config_parse(const char *text, size_t len, const char *name, const char *key, char *out,
                    size_t n, struct cu_err *e)
{
    const char *p = text, *end = text + len;
    unsigned line = 0;
    int found = -CU_ENOTFOUND;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *ls = p, *le = eol ? eol : end, *eq, *ks, *ke, *vs, *ve;

        line++;
        p = eol ? eol + 1 : end;
        while (ls < le && is_blank(*ls))
            ls++;
        while (le > ls && is_blank(le[-1]))
            le--;
        if (ls == le || *ls == '#')
            continue;
        eq = memchr(ls, '=', (size_t)(le - ls));
        if (!eq)
            return cu_err_set(e, -CU_EINVAL, "%s:%u: expected 'key = value', got '%.*s'", name,
                              line, (int)(le - ls > 80 ? 80 : le - ls), ls);
        ks = ls;
        ke = eq;
        while (ke > ks && is_blank(ke[-1]))
            ke--;
        vs = eq + 1;
        ve = le;
        while (vs < ve && is_blank(*vs))
            vs++;
        if (ke == ks)
            return cu_err_set(e, -CU_EINVAL, "%s:%u: missing key before '='", name, line);
        if (!key_known(ks, (size_t)(ke - ks)))
            return cu_err_set(e, -CU_EINVAL, "%s:%u: unknown key '%.*s' (known: exchange)", name,
                              line, (int)(ke - ks > 80 ? 80 : ke - ks), ks);
        if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
            vs++;
            ve--;
        }
        if (strlen(key) != (size_t)(ke - ks) || memcmp(key, ks, (size_t)(ke - ks)) != 0)
            continue;
        if (ve == vs)
            return cu_err_set(e, -CU_EINVAL, "%s:%u: %s: empty value", name, line, key);
        if ((size_t)(ve - vs) >= n)
            return cu_err_set(e, -CU_ETOOBIG, "%s:%u: %s: value is too long", name, line, key);
        /* The last occurrence wins, as in most config files; keep scanning
         * so a later malformed line is still reported. */
        memcpy(out, vs, (size_t)(ve - vs));
        out[ve - vs] = '\0';
        found = 0;
    }
    return found;
}

int cu_config_get(const char *key, char *out, size_t n, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(CU_CONFIG_MAX_FILE);
    char home[CU_PATH_MAX], path[CU_PATH_MAX];
    int rc;

    rc = cu_config_home(home, sizeof home, e);
    if (rc)
        return rc;
    if (cu_path_join(path, sizeof path, home, "config") != 0)
        return cu_err_set(e, -CU_ETOOBIG, "config path is too long");
    rc = cu_read_file(path, &b);
    if (rc == -CU_ENOTFOUND)
        goto out_free_buf;
    if (rc) {
        cu_err_set(e, rc, "cannot read %s: %s", path,
                   rc == -CU_ETOOBIG ? "larger than 64 KiB" : cu_strerror(rc));
        goto out_free_buf;
    }
    rc = cu_config_parse(cu_buf_str(&b), b.len, path, key, out, n, e);
out_free_buf:
    cu_buf_release(&b);
    return rc;
}

static int check_url(const char *url, const char *from, struct cu_err *e)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return cu_err_set(e, -CU_EINVAL,
                          "exchange URL '%s' (from %s) must start with http:// or https://", url,
                          from);
    return 0;
}

int cu_config_exchange_url(const char *flag, char *out, size_t n, struct cu_err *e)
{
    const char *env = getenv("CUMULUS_EXCHANGE");
    struct cu_err ce = {0};
    int rc;

    if (flag) {
        if (cu_snprintf(out, n, "%s", flag) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "--exchange: URL is too long");
        return check_url(out, "--exchange", e);
    }
    if (env && *env) {
        if (cu_snprintf(out, n, "%s", env) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "CUMULUS_EXCHANGE: URL is too long");
        return check_url(out, "CUMULUS_EXCHANGE", e);
    }
    rc = cu_config_get("exchange", out, n, &ce);
    if (rc == 0)
        return check_url(out, "the config file", e);
    if (rc != -CU_ENOTFOUND)
        return cu_err_set(e, rc, "%s", ce.msg);
    return cu_err_set(e, -CU_ENOTFOUND,
                      "no exchange: pass --exchange URL, set CUMULUS_EXCHANGE, or put "
                      "'exchange = URL' in ~/.cumulus/config");
}

int cu_config_key_path(const char *flag, char *out, size_t n, struct cu_err *e)
{
    const char *env = getenv("CUMULUS_KEY");
    char home[CU_PATH_MAX];
    int rc;

    if (flag) {
        if (!*flag)
            return cu_err_set(e, -CU_EINVAL, "--key: empty path");
        if (cu_snprintf(out, n, "%s", flag) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "--key: path is too long");
        return 0;
    }
    if (env && *env) {
        if (cu_snprintf(out, n, "%s", env) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "CUMULUS_KEY: path is too long");
        return 0;
    }
    rc = cu_config_home(home, sizeof home, e);
    if (rc)
        return rc;
    if (cu_path_join(out, n, home, "identity.key") != 0)
        return cu_err_set(e, -CU_ETOOBIG, "identity path is too long");
    return 0;
}

/* ---- tty prompt --------------------------------------------------------- */

static volatile sig_atomic_t prompt_signal;

static void on_prompt_signal(int sig)
{
    prompt_signal = sig;
}

/* Reads one line from fd into out (without the newline). 0, -CU_ETOOBIG,
 * -CU_EIO, or -CU_ECANCELLED when a signal arrived (prompt_signal says
 * which). */
static int read_line(int fd, char *out, size_t n)
{
    size_t len = 0;
    bool too_long = false;

    for (;;) {
        char c;
        ssize_t got = read(fd, &c, 1);
        if (got < 0 && errno == EINTR) {
            if (prompt_signal)
                return -CU_ECANCELLED;
            continue;
        }
        if (got < 0)
            return -CU_EIO;
        if (got == 0 || c == '\n')
            break;
        if (len + 1 < n)
            out[len++] = c;
        else
            too_long = true;
    }
    while (len && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    return too_long ? -CU_ETOOBIG : 0;
}

/* Prompts on the tty fd with echo off; restores the terminal and the
 * signal handlers on every path, re-raising a Ctrl-C that came meanwhile. */
static int tty_ask(int fd, const char *prompt, char *out, size_t n)
{
    struct termios old, quiet;
    struct sigaction sa, old_int, old_term, old_hup;
    int rc;

    if (tcgetattr(fd, &old) != 0)
        return -CU_EIO;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_signal; /* no SA_RESTART: read() must return */
    sigemptyset(&sa.sa_mask);
    prompt_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
        rc = -CU_EIO;
        goto out_restore_signals;
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        rc = -CU_EIO;
        goto out_restore_tty;
    }
    rc = read_line(fd, out, n);
    if (write(fd, "\n", 1) < 0) {
        /* the answer is read; a lost newline does not matter */
    }
out_restore_tty:
    tcsetattr(fd, TCSAFLUSH, &old);
out_restore_signals:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    if (prompt_signal)
        raise(prompt_signal);
    return rc;
}

int cu_config_passphrase(const char *prompt, bool confirm, char *out, size_t n,
                         struct cu_err *e)
{
    const char *env = getenv("CUMULUS_PASSPHRASE");
    char again[CU_PASSPHRASE_MAX];
    int fd, rc;

    if (env) {
        if (!*env)
            return cu_err_set(e, -CU_EINVAL, "CUMULUS_PASSPHRASE is set but empty");
        if (cu_snprintf(out, n, "%s", env) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "CUMULUS_PASSPHRASE is too long");
        return 0;
    }
    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return cu_err_set(e, -CU_ENEEDPASS,
                          "a passphrase is needed and there is no terminal to ask on: set "
                          "CUMULUS_PASSPHRASE");
    rc = tty_ask(fd, prompt, out, n);
    if (rc == 0 && !out[0])
        rc = cu_err_set(e, -CU_EINVAL, "the passphrase must not be empty");
    else if (rc == -CU_ETOOBIG)
        cu_err_set(e, rc, "the passphrase is longer than %zu bytes", n - 1);
    else if (rc == -CU_ECANCELLED)
        cu_err_set(e, rc, "interrupted");
    else if (rc)
        cu_err_set(e, rc, "cannot read a passphrase from the terminal");
    if (rc == 0 && confirm) {
        rc = tty_ask(fd, "Repeat passphrase: ", again, sizeof again);
        if (rc == 0 && strcmp(out, again) != 0)
            rc = cu_err_set(e, -CU_EINVAL, "the passphrases do not match");
        else if (rc)
            cu_err_set(e, rc, "cannot read a passphrase from the terminal");
        sodium_memzero(again, sizeof again);
    }
    close(fd);
    if (rc)
        sodium_memzero(out, n);
    return rc;
}

int cu_config_load_identity(const char *flag, struct cu_identity *id, char *path_out,
                            struct cu_err *e)
{
    char path[CU_PATH_MAX], pass[CU_PASSPHRASE_MAX], prompt[CU_PATH_MAX + 64];
    struct stat st;
    int rc;

    rc = cu_config_key_path(flag, path, sizeof path, e);
    if (rc)
        return rc;
    if (path_out)
        cu_snprintf(path_out, CU_PATH_MAX, "%s", path);
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return cu_err_set(e, -CU_ENOTFOUND, "no identity at %s: run 'cumulus keygen'", path);
        return cu_err_set(e, -CU_EIO, "cannot read identity %s: %s", path, strerror(errno));
    }
    if (cu_keystore_is_plain(path))
        return cu_identity_load(id, path, NULL, e);
    cu_snprintf(prompt, sizeof prompt, "Passphrase for %s: ", path);
    rc = cu_config_passphrase(prompt, false, pass, sizeof pass, e);
    if (rc)
        return rc;
    rc = cu_identity_load(id, path, pass, e);
    sodium_memzero(pass, sizeof pass);
    if (rc == -CU_EAUTH)
        cu_err_set(e, rc, "wrong passphrase for %s", path);
    return rc;
}
