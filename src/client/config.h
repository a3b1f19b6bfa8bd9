/* config.h - where the requester's settings come from: the exchange URL,
 * the identity file and its passphrase.
 *
 * Precedence, strongest first:
 *   exchange URL:  --exchange URL  >  $CUMULUS_EXCHANGE  >  "exchange = URL"
 *                  in $CUMULUS_HOME/config
 *   identity:      --key FILE  >  $CUMULUS_KEY  >  $CUMULUS_HOME/identity.key
 *   passphrase:    $CUMULUS_PASSPHRASE  >  prompt on the controlling tty
 * $CUMULUS_HOME defaults to ~/.cumulus.
 *
 * Config file: one "key = value" per line; blank lines and lines whose first
 * non-blank character is '#' are ignored; the value may be wrapped in double
 * quotes; an unknown key or a line without '=' is an error naming the line.
 * Known keys: exchange. */
#ifndef CU_CLIENT_CONFIG_H
#define CU_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "crypto/ident.h"

#define CU_CONFIG_MAX_FILE (64u << 10)
#define CU_CONFIG_MAX_VALUE 1024
#define CU_PASSPHRASE_MAX 1024

/* $CUMULUS_HOME, else $HOME/.cumulus (the password database's home when
 * HOME is unset). Does not create it. -CU_ETOOBIG / -CU_ENOTFOUND with e
 * set. */
int cu_config_home(char *out, size_t n, struct cu_err *e);

/* Looks key up in config text (name is used in messages, e.g. the file's
 * path). 0 and the value in out; -CU_ENOTFOUND when the key is absent
 * (e untouched); -CU_EINVAL naming "NAME:LINE" for a malformed line or an
 * unknown key; -CU_ETOOBIG when the value does not fit out. */
int cu_config_parse(const char *text, size_t len, const char *name, const char *key, char *out,
                    size_t n, struct cu_err *e);

/* Same, reading $CUMULUS_HOME/config. A missing file is -CU_ENOTFOUND. */
int cu_config_get(const char *key, char *out, size_t n, struct cu_err *e);

/* Resolves the exchange URL (flag may be NULL). Error when none is set:
 * "no exchange: pass --exchange URL, set CUMULUS_EXCHANGE, or put
 * 'exchange = URL' in ~/.cumulus/config". Checks the http(s):// scheme. */
int cu_config_exchange_url(const char *flag, char *out, size_t n, struct cu_err *e);

/* Resolves the identity file path (flag may be NULL); does not check that
 * it exists. */
int cu_config_key_path(const char *flag, char *out, size_t n, struct cu_err *e);

/* Gets a passphrase: $CUMULUS_PASSPHRASE, else read from /dev/tty with echo
 * off after printing prompt (twice with confirm, which must match). No env
 * and no tty: -CU_ENEEDPASS, e telling how to give one. An empty answer is
 * -CU_EINVAL. out is wiped by the caller (sodium_memzero). Blocks on the tty. */
int cu_config_passphrase(const char *prompt, bool confirm, char *out, size_t n,
                         struct cu_err *e);

/* Resolves the identity path (as cu_config_key_path) and loads it, asking
 * for the passphrase only when the keystore is encrypted. A missing file
 * gives "no identity at PATH: run 'cumulus keygen'". path_out (may be NULL,
 * else CU_PATH_MAX bytes) gets the path used. */
int cu_config_load_identity(const char *flag, struct cu_identity *id, char *path_out,
                            struct cu_err *e);

#endif
