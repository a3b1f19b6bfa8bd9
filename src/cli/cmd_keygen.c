/* cmd_keygen.c - `cumulus keygen`: create an identity. */
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/config.h"
#include "crypto/ident.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus keygen [--out FILE] [--insecure-plain] [--force]\n"
    "\n"
    "Creates an ed25519 identity and prints its id. The secret key is stored\n"
    "encrypted (argon2id + secretbox) with a passphrase taken from\n"
    "CUMULUS_PASSPHRASE, or asked twice on the terminal.\n"
    "\n"
    "  --out FILE         where to write the keystore (default\n"
    "                     $CUMULUS_HOME/identity.key, CUMULUS_HOME=~/.cumulus)\n"
    "  --insecure-plain   store the key unencrypted (devnet throwaway keys only)\n"
    "  --force            overwrite an existing keystore (its key is lost)\n";

/* Creates the directory that will hold path (0700), unless it exists. */
static int make_parent(const char *path)
{
    char dir[CU_PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash || slash == path)
        return 0;
    if (cu_snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) != 0)
        return -CU_ETOOBIG;
    return cu_mkdir_p(dir, 0700);
}

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    bool plain = false, force = false;
    char path[CU_PATH_MAX], pass[CU_PASSPHRASE_MAX];
    struct cu_identity id;
    struct cu_err e = {0};
    struct stat st;
    int rc = CU_EXIT_FAIL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(a, "--out") == 0) {
            if (!(out = cu_cli_value("keygen", argc, argv, &i)))
                return CU_EXIT_USAGE;
        } else if (strcmp(a, "--insecure-plain") == 0) {
            plain = true;
        } else if (strcmp(a, "--force") == 0) {
            force = true;
        } else {
            cu_cli_errorf("keygen", "unknown argument '%s' (see 'cumulus keygen --help')", a);
            return CU_EXIT_USAGE;
        }
    }
    cu_cli_log_init("keygen", "keygen");

    if (!out) {
        char home[CU_PATH_MAX];
        if (cu_config_home(home, sizeof home, &e) != 0 ||
            cu_path_join(path, sizeof path, home, "identity.key") != 0) {
            cu_cli_errorf("keygen", "%s", e.msg[0] ? e.msg : "path too long");
            return CU_EXIT_FAIL;
        }
        if (cu_mkdir_p(home, 0700) != 0) {
            cu_cli_errorf("keygen", "cannot create %s: %s", home, strerror(errno));
            return CU_EXIT_FAIL;
        }
    } else {
        if (!*out || cu_snprintf(path, sizeof path, "%s", out) != 0) {
            cu_cli_errorf("keygen", "--out: bad path '%s'", out);
            return CU_EXIT_USAGE;
        }
        if (make_parent(path) != 0) {
            cu_cli_errorf("keygen", "cannot create the directory for %s: %s", path,
                          strerror(errno));
            return CU_EXIT_FAIL;
        }
    }
    /* Ask before the prompt, not after the user typed a passphrase twice. */
    if (!force && lstat(path, &st) == 0) {
        cu_cli_errorf("keygen", "%s already exists (pass --force to replace it; its key would "
                                "be lost)", path);
        return CU_EXIT_FAIL;
    }

    pass[0] = '\0';
    if (!plain) {
        int prc = cu_config_passphrase("New passphrase: ", true, pass, sizeof pass, &e);
        if (prc == -CU_ENEEDPASS) {
            cu_cli_errorf("keygen", "no passphrase: set CUMULUS_PASSPHRASE, run on a terminal, "
                                    "or pass --insecure-plain for a devnet key");
            return CU_EXIT_FAIL;
        }
        if (prc != 0) {
            cu_cli_errorf("keygen", "%s", e.msg);
            return CU_EXIT_FAIL;
        }
    }
    if (cu_identity_generate(&id) != 0) {
        cu_cli_errorf("keygen", "cannot generate a key pair");
        goto out_wipe;
    }
    if (cu_identity_save(&id, path, plain ? NULL : pass, force, &e) != 0) {
        cu_cli_errorf("keygen", "%s", e.msg);
        goto out_wipe;
    }
    if (plain)
        fprintf(stderr, "cumulus keygen: WARNING: %s holds an UNENCRYPTED key; use it only on "
                        "a devnet, never for real funds\n", path);
    fprintf(stderr, "cumulus keygen: wrote %s\n", path);
    printf("%s\n", id.id);
    rc = CU_EXIT_OK;
out_wipe:
    cu_identity_wipe(&id);
    sodium_memzero(pass, sizeof pass);
    return rc;
}
