/* tx.c - ledger transactions: the type table, canonical JSON, ids and
 * signatures (formats in tx.h). */
#include "ledger/tx.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

#include "base/banned.h"

#define TX_SIGN_PREFIX "cumulus-tx-v1\n"
/* Largest canonical transaction we hash (authorization plus slack). */
#define TX_CANON_MAX (CU_TX_AUTH_MAX + 64 * 1024)

static const struct {
    const char *name;
    unsigned req, opt;
} tx_types[] = {
#define CU_X_TXROW(e, name, req, opt) {name, req, opt},
    CU_TX_TYPES(CU_X_TXROW)
#undef CU_X_TXROW
};

static const char *const task_statuses[] = {
#define CU_X_TSROW(e, name) name,
    CU_TASK_STATUSES(CU_X_TSROW)
#undef CU_X_TSROW
};

const char *cu_tx_type_name(enum cu_tx_type t)
{
    return (unsigned)t < CU_TX_NTYPES ? tx_types[t].name : "?";
}

int cu_tx_type_parse(const char *name, enum cu_tx_type *out)
{
    for (unsigned i = 0; i < CU_TX_NTYPES; i++) {
        if (strcmp(name, tx_types[i].name) == 0) {
            *out = (enum cu_tx_type)i;
            return 0;
        }
    }
    return -CU_EINVAL;
}

unsigned cu_tx_type_required(enum cu_tx_type t)
{
    return (unsigned)t < CU_TX_NTYPES ? tx_types[t].req : 0;
}

unsigned cu_tx_type_optional(enum cu_tx_type t)
{
    return (unsigned)t < CU_TX_NTYPES ? tx_types[t].opt : 0;
}

const char *cu_task_status_name(enum cu_task_status s)
{
    return (unsigned)s < CU_TASK_NSTATUSES ? task_statuses[s] : "?";
}

int cu_task_status_parse(const char *name, enum cu_task_status *out)
{
    for (unsigned i = 0; i < CU_TASK_NSTATUSES; i++) {
        if (strcmp(name, task_statuses[i]) == 0) {
            *out = (enum cu_task_status)i;
            return 0;
        }
    }
    return -CU_EINVAL;
}

void cu_tx_init(struct cu_tx *tx, enum cu_tx_type type)
{
    memset(tx, 0, sizeof *tx);
    tx->type = type;
}

void cu_tx_release(struct cu_tx *tx)
{
    free(tx->authorization);
    tx->authorization = NULL;
}

int cu_tx_copy(struct cu_tx *dst, const struct cu_tx *src)
{
    *dst = *src;
    dst->authorization = NULL;
    if (src->authorization)
        return cu_tx_set_authorization(dst, src->authorization, strlen(src->authorization));
    return 0;
}

int cu_tx_set_authorization(struct cu_tx *tx, const char *s, size_t n)
{
    char *p;
    if (n > CU_TX_AUTH_MAX)
        return -CU_ETOOBIG;
    p = malloc(n + 1);
    if (!p)
        return -CU_ENOMEM;
    memcpy(p, s, n);
    p[n] = '\0';
    free(tx->authorization);
    tx->authorization = p;
    return 0;
}


bool cu_ledger_name_ok(const char *s)
{
    size_t n = strnlen(s, CU_LEDGER_NAME_MAX + 1);
    if (n == 0 || n > CU_LEDGER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* Rewrites e's message through fmt (one %s: the old message) without
 * passing e->msg as an argument into itself. Returns code. */
static int err_wrap(struct cu_err *e, int code, const char *fmt)
{
    char old[CU_ERR_MSG_MAX];
    if (!e)
        return code;
    memcpy(old, e->msg, sizeof old);
    return cu_err_set(e, code, fmt, old);
}

static bool lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[len] == '\0';
}

bool cu_ledger_id_ok(const char *id)
{
    return strnlen(id, CU_ID_LEN + 1) == CU_ID_LEN && lower_hex(id, CU_ID_LEN);
}

/* True when s is valid UTF-8 that jansson will accept as a string. */
static bool utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

static int check_rec(const struct cu_tx *tx, struct cu_err *e)
{
    const struct cu_task_rec *r = &tx->rec;
    if (!cu_ledger_name_ok(r->id))
        return cu_err_set(e, -CU_EINVAL, "field 'record.id' must be 1..%d of [A-Za-z0-9._:-]",
                          CU_LEDGER_NAME_MAX);
    if (r->time_ms < 0)
        return cu_err_set(e, -CU_EINVAL, "field 'record.time_ms' must not be negative");
    if (!cu_ledger_id_ok(r->client))
        return cu_err_set(e, -CU_EINVAL, "field 'record.client' must be an account id");
    if (!cu_ledger_id_ok(r->seller))
        return cu_err_set(e, -CU_EINVAL, "field 'record.seller' must be an account id");
    if (r->task > (uint64_t)INT64_MAX || r->duration_ms > (uint64_t)INT64_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'record.%s' is out of range",
                          r->task > (uint64_t)INT64_MAX ? "task" : "duration_ms");
    if (r->incentive > CU_AMOUNT_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'record.incentive' is out of range");
    if (r->tx_number > tx->seq)
        return cu_err_set(e, -CU_EINVAL,
                          "field 'record.tx_number' (%llu) must name an earlier transaction "
                          "than this one (seq %llu)",
                          (unsigned long long)r->tx_number, (unsigned long long)tx->seq);
    if ((unsigned)r->status >= CU_TASK_NSTATUSES)
        return cu_err_set(e, -CU_EINVAL, "field 'record.status' is not a known status");
    if (!cu_ledger_name_ok(r->task_type))
        return cu_err_set(e, -CU_EINVAL,
                          "field 'record.task_type' must be 1..%d of [A-Za-z0-9._:-]",
                          CU_LEDGER_NAME_MAX);
    return 0;
}

/* Checks one string field against its table bits: present and valid when
 * required, valid when present and optional, absent otherwise. */
static int check_field(const char *name, const char *v, unsigned bit, unsigned req, unsigned opt,
                       bool (*ok)(const char *), const char *what, struct cu_err *e)
{
    if (v[0] == '\0') {
        if (req & bit)
            return cu_err_set(e, -CU_EINVAL, "missing field '%s'", name);
        return 0;
    }
    if (!((req | opt) & bit))
        return cu_err_set(e, -CU_EINVAL, "field '%s' does not belong in a %s", name, what);
    if (!ok(v))
        return cu_err_set(e, -CU_EINVAL, "field '%s' must be %s", name,
                          ok == cu_ledger_id_ok ? "an account id (64 lowercase hex)"
                                                : "1..64 of [A-Za-z0-9._:-]");
    return 0;
}

int cu_tx_check(const struct cu_tx *tx, struct cu_err *e)
{
    unsigned req, opt;
    const char *tn;
    int rc;

    if ((unsigned)tx->type >= CU_TX_NTYPES)
        return cu_err_set(e, -CU_EINVAL, "field 'type' is not a known transaction type");
    req = tx_types[tx->type].req;
    opt = tx_types[tx->type].opt;
    tn = tx_types[tx->type].name;
    if (tx->seq > (uint64_t)INT64_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'seq' is out of range");
    if (tx->time_ms < 0)
        return cu_err_set(e, -CU_EINVAL, "field 'time_ms' must not be negative");
    if ((rc = check_field("from", tx->from, CU_TXF_FROM, req, opt, cu_ledger_id_ok, tn, e)) ||
        (rc = check_field("to", tx->to, CU_TXF_TO, req, opt, cu_ledger_id_ok, tn, e)) ||
        (rc = check_field("job", tx->job, CU_TXF_JOB, req, opt, cu_ledger_name_ok, tn, e)) ||
        (rc = check_field("replica", tx->replica, CU_TXF_REPLICA, req, opt, cu_ledger_name_ok,
                          tn, e)))
        return rc;
    if (req & CU_TXF_AMOUNT) {
        if (tx->amount == 0)
            return cu_err_set(e, -CU_EINVAL, "field 'amount' must be > 0");
        if (tx->amount > CU_AMOUNT_MAX)
            return cu_err_set(e, -CU_EOVERFLOW, "field 'amount' exceeds %llu",
                              (unsigned long long)CU_AMOUNT_MAX);
    } else if (tx->amount) {
        return cu_err_set(e, -CU_EINVAL, "field 'amount' does not belong in a %s", tn);
    }
    if (!(req & CU_TXF_NONCE) && tx->nonce)
        return cu_err_set(e, -CU_EINVAL, "field 'nonce' does not belong in a %s", tn);
    if (tx->nonce > (uint64_t)INT64_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'nonce' is out of range");
    if (!!(req & CU_TXF_SIG) != tx->has_sig)
        return cu_err_set(e, -CU_EINVAL, tx->has_sig ? "field 'sig' does not belong in a %s"
                                                     : "missing field 'sig' (a %s is signed)",
                          tn);
    if (req & CU_TXF_AUTH) {
        if (!tx->authorization || !tx->authorization[0])
            return cu_err_set(e, -CU_EINVAL, "missing field 'authorization'");
        if (strlen(tx->authorization) > CU_TX_AUTH_MAX)
            return cu_err_set(e, -CU_EINVAL, "field 'authorization' is longer than %u bytes",
                              CU_TX_AUTH_MAX);
    } else if (tx->authorization) {
        return cu_err_set(e, -CU_EINVAL, "field 'authorization' does not belong in a %s", tn);
    }
    if (req & CU_TXF_RECORD) {
        if ((rc = check_rec(tx, e)))
            return rc;
    } else if (tx->rec.id[0]) {
        return cu_err_set(e, -CU_EINVAL, "field 'record' does not belong in a %s", tn);
    }
    if (strnlen(tx->memo, sizeof tx->memo) > CU_LEDGER_MEMO_MAX || !utf8_ok(tx->memo))
        return cu_err_set(e, -CU_EINVAL, "field 'memo' must be UTF-8 of at most %d bytes",
                          CU_LEDGER_MEMO_MAX);
    return 0;
}

/* ---- JSON ---- */

enum { FORM_ID = 1, FORM_SIGNING = 2 };

/* Sets key to a new value, consuming it; false when out of memory. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

static json_t *rec_to_json(const struct cu_task_rec *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (!put(o, "id", json_string(r->id)) || !put(o, "time_ms", json_integer(r->time_ms)) ||
        !put(o, "client", json_string(r->client)) || !put(o, "seller", json_string(r->seller)) ||
        !put(o, "task", json_integer((json_int_t)r->task)) ||
        !put(o, "tx_number", json_integer((json_int_t)r->tx_number)) ||
        !put(o, "incentive", json_integer((json_int_t)r->incentive)) ||
        !put(o, "status", json_string(cu_task_status_name(r->status))) ||
        !put(o, "duration_ms", json_integer((json_int_t)r->duration_ms)) ||
        !put(o, "task_type", json_string(r->task_type))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Builds the JSON object of tx in one of its forms. Fields follow the type
 * table: required ones always, optional ones when set. Values are written
 * as stored, so a tx that fails cu_tx_check may still serialise (the check
 * is the caller's). */
static json_t *tx_json(const struct cu_tx *tx, int form)
{
    unsigned bits = cu_tx_type_required(tx->type) | cu_tx_type_optional(tx->type);
    unsigned req = cu_tx_type_required(tx->type);
    char hex[2 * CU_SIG_LEN + 1];
    json_t *o = json_object();

    if (!o)
        return NULL;
    if (!put(o, "type", json_string(cu_tx_type_name(tx->type))) ||
        !put(o, "time_ms", json_integer(tx->time_ms)))
        goto out_free_obj;
    if (!(form & FORM_SIGNING) && !put(o, "seq", json_integer((json_int_t)tx->seq)))
        goto out_free_obj;
    if ((bits & CU_TXF_FROM) && ((req & CU_TXF_FROM) || tx->from[0]) &&
        !put(o, "from", json_string(tx->from)))
        goto out_free_obj;
    if ((bits & CU_TXF_TO) && ((req & CU_TXF_TO) || tx->to[0]) &&
        !put(o, "to", json_string(tx->to)))
        goto out_free_obj;
    if ((req & CU_TXF_AMOUNT) && !put(o, "amount", json_integer((json_int_t)tx->amount)))
        goto out_free_obj;
    if ((req & CU_TXF_NONCE) && !put(o, "nonce", json_integer((json_int_t)tx->nonce)))
        goto out_free_obj;
    if ((bits & CU_TXF_JOB) && ((req & CU_TXF_JOB) || tx->job[0]) &&
        !put(o, "job", json_string(tx->job)))
        goto out_free_obj;
    if ((bits & CU_TXF_REPLICA) && ((req & CU_TXF_REPLICA) || tx->replica[0]) &&
        !put(o, "replica", json_string(tx->replica)))
        goto out_free_obj;
    if ((req & CU_TXF_AUTH) &&
        !put(o, "authorization", json_string(tx->authorization ? tx->authorization : "")))
        goto out_free_obj;
    if ((req & CU_TXF_RECORD) && !put(o, "record", rec_to_json(&tx->rec)))
        goto out_free_obj;
    if (tx->memo[0] && !put(o, "memo", json_string(tx->memo)))
        goto out_free_obj;
    if ((req & CU_TXF_SIG) && !(form & FORM_SIGNING)) {
        cu_hex_encode(tx->sig, CU_SIG_LEN, hex);
        if (!put(o, "sig", json_string(hex)))
            goto out_free_obj;
    }
    if (form & FORM_ID) {
        struct cu_hash id;
        char idhex[CU_HASH_HEX_LEN + 1];
        if (cu_tx_id(tx, &id))
            goto out_free_obj;
        cu_hash_to_hex(&id, idhex);
        if (!put(o, "id", json_string(idhex)))
            goto out_free_obj;
    }
    return o;
out_free_obj:
    json_decref(o);
    return NULL;
}

json_t *cu_tx_to_json(const struct cu_tx *tx, bool with_id)
{
    return tx_json(tx, with_id ? FORM_ID : 0);
}

/* ---- canonical bytes, written directly ---- */

/* The canonical forms are the bytes cu_json_dump (compact, keys sorted by
 * byte order, UTF-8 unescaped) writes for tx_json's object; building that
 * object and sorting its keys cost most of a transaction's hashing and
 * export (bench/ledger, docs/performance.md), so this writer produces the
 * same bytes directly. tests/unit/ledger_canon_test.c checks it against
 * jansson for every type and for hostile strings. Its failures mirror
 * jansson's: a string that is not valid UTF-8 (json_string refuses it) is
 * -CU_ENOMEM, as tx_json's NULL was; past out's maximum -CU_ETOOBIG. */
struct canon {
    struct cu_buf *out;
    int rc;
    bool first; /* no key written yet in the current object */
};

static void w_raw(struct canon *c, const char *p, size_t n)
{
    if (!c->rc)
        c->rc = cu_buf_append(c->out, p, n);
}

/* Length of the valid UTF-8 sequence at s (jansson's rules: no overlong
 * forms, no surrogates, at most U+10FFFF), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char u = s[0];
    size_t n;
    uint32_t v;

    if (u < 0x80)
        return 1;
    if (u >= 0xC2 && u <= 0xDF)
        n = 2, v = u & 0x1F;
    else if (u >= 0xE0 && u <= 0xEF)
        n = 3, v = u & 0x0F;
    else if (u >= 0xF0 && u <= 0xF4)
        n = 4, v = u & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

/* A JSON string: '"', '\\' and control characters escaped as jansson does
 * ("\\n" etc., else \u00XX in upper-case hex), everything else verbatim. */
static void w_str(struct canon *c, const char *str)
{
    const unsigned char *s = (const unsigned char *)str, *run = s;
    char esc[8];

    w_raw(c, "\"", 1);
    while (*s && !c->rc) {
        size_t n = utf8_seq(s);
        const char *e = NULL;
        if (n == 0) {
            c->rc = -CU_ENOMEM;
            return;
        }
        if (n > 1 || (*s >= 0x20 && *s != '"' && *s != '\\')) {
            s += n;
            continue;
        }
        w_raw(c, (const char *)run, (size_t)(s - run));
        switch (*s) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = "0123456789ABCDEF"[*s >> 4];
            esc[5] = "0123456789ABCDEF"[*s & 15];
            esc[6] = '\0';
            e = esc;
        }
        w_raw(c, e, strlen(e));
        run = ++s;
    }
    w_raw(c, (const char *)run, (size_t)(s - run));
    w_raw(c, "\"", 1);
}

/* ,"key": (the comma unless first in its object). */
static void w_key(struct canon *c, const char *key)
{
    if (!c->first)
        w_raw(c, ",", 1);
    c->first = false;
    w_raw(c, "\"", 1);
    w_raw(c, key, strlen(key));
    w_raw(c, "\":", 2);
}

/* A JSON integer as jansson writes a json_int_t. */
static void w_int(struct canon *c, int64_t v)
{
    char d[24];
    size_t i = sizeof d;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    w_raw(c, d + i, sizeof d - i);
}

static void w_key_str(struct canon *c, const char *key, const char *v)
{
    w_key(c, key);
    w_str(c, v);
}

static void w_key_int(struct canon *c, const char *key, int64_t v)
{
    w_key(c, key);
    w_int(c, v);
}

static void w_rec(struct canon *c, const struct cu_task_rec *r)
{
    w_raw(c, "{", 1);
    c->first = true;
    w_key_str(c, "client", r->client);
    w_key_int(c, "duration_ms", (int64_t)r->duration_ms);
    w_key_str(c, "id", r->id);
    w_key_int(c, "incentive", (int64_t)r->incentive);
    w_key_str(c, "seller", r->seller);
    w_key_str(c, "status", cu_task_status_name(r->status));
    w_key_int(c, "task", (int64_t)r->task);
    w_key_str(c, "task_type", r->task_type);
    w_key_int(c, "time_ms", r->time_ms);
    w_key_int(c, "tx_number", (int64_t)r->tx_number);
    w_raw(c, "}", 1);
    c->first = false;
}

/* Where the "id" key of the export form goes in the canonical form: its
 * offset in the buffer, and whether it is the object's first key. */
struct id_slot {
    size_t at;
    bool first;
};

/* Appends tx's form (FORM_* bits; id, the tx id, only with FORM_ID) to
 * out: the fields of tx_json, keys in byte order. slot, when not NULL
 * (and without FORM_ID), records where the id would go. On failure out is
 * left as it was. */
static int write_form(const struct cu_tx *tx, int form, const struct cu_hash *id,
                      struct id_slot *slot, struct cu_buf *out)
{
    unsigned req = cu_tx_type_required(tx->type);
    unsigned bits = req | cu_tx_type_optional(tx->type);
    struct canon c = {.out = out, .first = true};
    size_t mark = out->len;
    char hex[2 * CU_SIG_LEN + 1];

    w_raw(&c, "{", 1);
    if (req & CU_TXF_AMOUNT)
        w_key_int(&c, "amount", (int64_t)tx->amount);
    if (req & CU_TXF_AUTH)
        w_key_str(&c, "authorization", tx->authorization ? tx->authorization : "");
    if ((bits & CU_TXF_FROM) && ((req & CU_TXF_FROM) || tx->from[0]))
        w_key_str(&c, "from", tx->from);
    if (form & FORM_ID) {
        cu_hash_to_hex(id, hex);
        w_key_str(&c, "id", hex);
    } else if (slot) {
        slot->at = out->len;
        slot->first = c.first;
    }
    if ((bits & CU_TXF_JOB) && ((req & CU_TXF_JOB) || tx->job[0]))
        w_key_str(&c, "job", tx->job);
    if (tx->memo[0])
        w_key_str(&c, "memo", tx->memo);
    if (req & CU_TXF_NONCE)
        w_key_int(&c, "nonce", (int64_t)tx->nonce);
    if (req & CU_TXF_RECORD) {
        w_key(&c, "record");
        w_rec(&c, &tx->rec);
    }
    if ((bits & CU_TXF_REPLICA) && ((req & CU_TXF_REPLICA) || tx->replica[0]))
        w_key_str(&c, "replica", tx->replica);
    if (!(form & FORM_SIGNING))
        w_key_int(&c, "seq", (int64_t)tx->seq);
    if ((req & CU_TXF_SIG) && !(form & FORM_SIGNING)) {
        cu_hex_encode(tx->sig, CU_SIG_LEN, hex);
        w_key_str(&c, "sig", hex);
    }
    w_key_int(&c, "time_ms", tx->time_ms);
    if ((bits & CU_TXF_TO) && ((req & CU_TXF_TO) || tx->to[0]))
        w_key_str(&c, "to", tx->to);
    w_key_str(&c, "type", cu_tx_type_name(tx->type));
    w_raw(&c, "}", 1);
    if (c.rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return c.rc;
}

static int dump_form(const struct cu_tx *tx, int form, struct cu_buf *out)
{
    return write_form(tx, form, NULL, NULL, out);
}

int cu_tx_id_export(const struct cu_tx *tx, struct cu_hash *id, struct cu_buf *out)
{
    struct id_slot slot = {0};
    size_t mark = out->len, tail, n;
    char key[9 + CU_HASH_HEX_LEN], hex[CU_HASH_HEX_LEN + 1];
    int rc;

    /* The canonical form once: hashed for the id, then the id key put
     * where the export form has it (keys in byte order: after "from"). */
    rc = write_form(tx, 0, NULL, &slot, out);
    if (rc)
        return rc;
    cu_hash_mem(out->data + mark, out->len - mark, id);
    cu_hash_to_hex(id, hex);
    /* ,"id":"HEX" after an earlier key; "id":"HEX", when it is the first. */
    n = 0;
    if (!slot.first)
        key[n++] = ',';
    memcpy(key + n, "\"id\":\"", 6);
    n += 6;
    memcpy(key + n, hex, CU_HASH_HEX_LEN);
    n += CU_HASH_HEX_LEN;
    key[n++] = '"';
    if (slot.first)
        key[n++] = ',';
    tail = out->len - slot.at;
    rc = cu_buf_append(out, key, n); /* room; the bytes move below */
    if (rc) {
        out->len = mark;
        out->data[mark] = '\0';
        return rc;
    }
    memmove(out->data + slot.at + n, out->data + slot.at, tail);
    memcpy(out->data + slot.at, key, n);
    return 0;
}

int cu_tx_export_form(const struct cu_tx *tx, struct cu_buf *out)
{
    struct cu_hash id;

    return cu_tx_id_export(tx, &id, out);
}

int cu_tx_export_form_id(const struct cu_tx *tx, const struct cu_hash *id, struct cu_buf *out)
{
    return id ? write_form(tx, FORM_ID, id, NULL, out) : cu_tx_export_form(tx, out);
}

int cu_tx_canonical(const struct cu_tx *tx, struct cu_buf *out)
{
    return dump_form(tx, 0, out);
}

int cu_tx_id(const struct cu_tx *tx, struct cu_hash *out)
{
    struct cu_buf b = CU_BUF_INIT(TX_CANON_MAX);
    int rc = cu_tx_canonical(tx, &b);
    if (rc == 0)
        cu_hash_mem(b.data, b.len, out);
    cu_buf_release(&b);
    return rc;
}

int cu_tx_signing_bytes(const struct cu_tx *tx, struct cu_buf *out)
{
    int rc = cu_buf_appends(out, TX_SIGN_PREFIX);
    return rc ? rc : dump_form(tx, FORM_SIGNING, out);
}

int cu_tx_sign(struct cu_tx *tx, const struct cu_identity *signer)
{
    struct cu_buf b = CU_BUF_INIT(TX_CANON_MAX);
    int rc;
    memcpy(tx->from, signer->id, sizeof tx->from);
    tx->has_sig = true;
    rc = cu_tx_signing_bytes(tx, &b);
    if (rc == 0)
        cu_sign(signer, b.data, b.len, tx->sig);
    cu_buf_release(&b);
    return rc;
}

int cu_tx_verify_sig(const struct cu_tx *tx, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(TX_CANON_MAX);
    unsigned char pk[CU_PK_LEN];
    bool ok;
    int rc;

    if (!tx->has_sig)
        return cu_err_set(e, -CU_EAUTH, "%s is not signed", cu_tx_type_name(tx->type));
    /* Hex decode only: crypto_sign_verify_detached itself refuses
     * non-canonical and small-order keys, and cu_id_to_pk's full point
     * check would double the cost of every replayed transfer. */
    if (!cu_ledger_id_ok(tx->from) || cu_hex_decode(tx->from, pk, CU_PK_LEN))
        return cu_err_set(e, -CU_EAUTH, "signer %.16s… is not a public key", tx->from);
    rc = cu_tx_signing_bytes(tx, &b);
    if (rc) {
        cu_buf_release(&b);
        return cu_err_set(e, rc, "cannot form the signed bytes: %s", cu_strerror(rc));
    }
    ok = cu_verify(pk, b.data, b.len, tx->sig);
    cu_buf_release(&b);
    if (!ok)
        return cu_err_set(e, -CU_EAUTH, "signature of %s does not verify for signer %.16s…",
                          cu_tx_type_name(tx->type), tx->from);
    return 0;
}

/* Copies string field key (required or not) into dst[cap]. */
static int get_name(const json_t *o, const char *what, const char *key, bool required, char *dst,
                    size_t cap, struct cu_err *e)
{
    const char *s = NULL;
    int rc = cu_json_get_str(o, what, key, required, &s, e);
    if (rc || !s)
        return rc;
    if (json_string_length(json_object_get(o, key)) != strlen(s) || strlen(s) >= cap)
        return cu_err_set(e, -CU_EINVAL, "field '%s%s%s' is too long or holds a NUL",
                          what ? what : "", what ? "." : "", key);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int rec_from_json(const json_t *o, struct cu_task_rec *r, struct cu_err *e)
{
    static const char *const keys[] = {"id",   "time_ms",   "client", "seller",
                                       "task", "tx_number", "incentive", "status",
                                       "duration_ms", "task_type", NULL};
    const char *status = NULL;
    int rc;

    if ((rc = cu_json_only_keys(o, "record", keys, e)) ||
        (rc = get_name(o, "record", "id", true, r->id, sizeof r->id, e)) ||
        (rc = cu_json_get_i64(o, "record", "time_ms", true, &r->time_ms, e)) ||
        (rc = get_name(o, "record", "client", true, r->client, sizeof r->client, e)) ||
        (rc = get_name(o, "record", "seller", true, r->seller, sizeof r->seller, e)) ||
        (rc = cu_json_get_u64(o, "record", "task", true, &r->task, e)) ||
        (rc = cu_json_get_u64(o, "record", "tx_number", true, &r->tx_number, e)) ||
        (rc = cu_json_get_u64(o, "record", "incentive", true, &r->incentive, e)) ||
        (rc = cu_json_get_str(o, "record", "status", true, &status, e)) ||
        (rc = cu_json_get_u64(o, "record", "duration_ms", true, &r->duration_ms, e)) ||
        (rc = get_name(o, "record", "task_type", true, r->task_type, sizeof r->task_type, e)))
        return -CU_EINVAL;
    if (cu_task_status_parse(status, &r->status))
        return cu_err_set(e, -CU_EINVAL, "field 'record.status': unknown status '%.32s'", status);
    return 0;
}

int cu_tx_from_json(const json_t *j, struct cu_tx *tx, struct cu_err *e)
{
    static const struct {
        unsigned bit;
        const char *key;
    } fields[] = {
        {CU_TXF_FROM, "from"},       {CU_TXF_TO, "to"},
        {CU_TXF_AMOUNT, "amount"},   {CU_TXF_NONCE, "nonce"},
        {CU_TXF_JOB, "job"},         {CU_TXF_REPLICA, "replica"},
        {CU_TXF_AUTH, "authorization"}, {CU_TXF_RECORD, "record"},
        {CU_TXF_SIG, "sig"},
    };
    const char *allowed[16];
    const char *type = NULL, *s = NULL;
    size_t na = 0;
    unsigned req, bits;
    enum cu_tx_type t;
    int rc;

    cu_tx_init(tx, 0);
    if (!json_is_object(j))
        return cu_err_set(e, -CU_EINVAL, "a transaction must be a JSON object");
    if ((rc = cu_json_get_str(j, NULL, "type", true, &type, e)))
        return -CU_EINVAL;
    if (cu_tx_type_parse(type, &t))
        return cu_err_set(e, -CU_EINVAL, "field 'type': unknown transaction type '%.32s'", type);
    tx->type = t;
    req = cu_tx_type_required(t);
    bits = req | cu_tx_type_optional(t);
    allowed[na++] = "type";
    allowed[na++] = "seq";
    allowed[na++] = "time_ms";
    allowed[na++] = "memo";
    allowed[na++] = "id";
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (bits & fields[i].bit)
            allowed[na++] = fields[i].key;
    }
    allowed[na] = NULL;
    if ((rc = cu_json_only_keys(j, NULL, allowed, e))) {
        char fmt[64];
        (void)cu_snprintf(fmt, sizeof fmt, "%%s in a %s", cu_tx_type_name(t));
        return err_wrap(e, rc, fmt);
    }

    if (cu_json_get_u64(j, NULL, "seq", true, &tx->seq, e) ||
        cu_json_get_i64(j, NULL, "time_ms", true, &tx->time_ms, e) ||
        get_name(j, NULL, "from", !!(req & CU_TXF_FROM), tx->from, sizeof tx->from, e) ||
        get_name(j, NULL, "to", !!(req & CU_TXF_TO), tx->to, sizeof tx->to, e) ||
        cu_json_get_u64(j, NULL, "amount", !!(req & CU_TXF_AMOUNT), &tx->amount, e) ||
        cu_json_get_u64(j, NULL, "nonce", !!(req & CU_TXF_NONCE), &tx->nonce, e) ||
        get_name(j, NULL, "job", !!(req & CU_TXF_JOB), tx->job, sizeof tx->job, e) ||
        get_name(j, NULL, "replica", !!(req & CU_TXF_REPLICA), tx->replica, sizeof tx->replica,
                 e) ||
        get_name(j, NULL, "memo", false, tx->memo, sizeof tx->memo, e))
        return -CU_EINVAL;
    if (req & CU_TXF_AUTH) {
        json_t *a = json_object_get(j, "authorization");
        if ((rc = cu_json_get_str(j, NULL, "authorization", true, &s, e)))
            return -CU_EINVAL;
        if (json_string_length(a) != strlen(s))
            return cu_err_set(e, -CU_EINVAL, "field 'authorization' holds a NUL");
        if ((rc = cu_tx_set_authorization(tx, s, strlen(s))))
            return cu_err_set(e, rc, "field 'authorization': %s", cu_strerror(rc));
    }
    if (req & CU_TXF_RECORD) {
        json_t *r = json_object_get(j, "record");
        if (!r)
            return cu_err_set(e, -CU_EINVAL, "missing field 'record'");
        if ((rc = rec_from_json(r, &tx->rec, e)))
            return rc;
    }
    if (req & CU_TXF_SIG) {
        if (cu_json_get_str(j, NULL, "sig", true, &s, e))
            return -CU_EINVAL;
        if (strnlen(s, 2 * CU_SIG_LEN + 1) != 2 * CU_SIG_LEN || !lower_hex(s, 2 * CU_SIG_LEN) ||
            cu_hex_decode(s, tx->sig, CU_SIG_LEN))
            return cu_err_set(e, -CU_EINVAL, "field 'sig' must be %d lowercase hex chars",
                              2 * CU_SIG_LEN);
        tx->has_sig = true;
    }
    if (json_object_get(j, "id")) {
        if (cu_json_get_str(j, NULL, "id", true, &s, e))
            return -CU_EINVAL;
        if (cu_hash_from_hex(s, &tx->stored_id))
            return cu_err_set(e, -CU_EINVAL, "field 'id' must be %d lowercase hex chars",
                              CU_HASH_HEX_LEN);
        tx->has_id = true;
    }
    return cu_tx_check(tx, e);
}

/* ---- escrow authorization ---- */

int cu_tx_auth_make(const char *method, const char *path, const char *body, size_t n,
                    const struct cu_sig_headers *h, char **out)
{
    json_t *o = json_object();
    int rc = -CU_ENOMEM;

    *out = NULL;
    if (!o)
        return -CU_ENOMEM;
    if (!put(o, "method", json_string(method)) || !put(o, "path", json_string(path)) ||
        !put(o, "body", json_stringn(body, n)) || !put(o, "key", json_string(h->key)) ||
        !put(o, "ts", json_string(h->ts)) || !put(o, "nonce", json_string(h->nonce)) ||
        !put(o, "body_hash", json_string(h->body_hash)) || !put(o, "sig", json_string(h->sig)))
        goto out_free_obj;
    *out = cu_json_dumps(o);
    if (*out)
        rc = strlen(*out) > CU_TX_AUTH_MAX ? -CU_ETOOBIG : 0;
    if (rc) {
        free(*out);
        *out = NULL;
    }
out_free_obj:
    json_decref(o);
    return rc;
}

static int copy_hdr(const json_t *o, const char *key, char *dst, size_t cap, struct cu_err *e)
{
    const char *s = NULL;
    if (cu_json_get_str(o, "authorization", key, true, &s, e))
        return -CU_EINVAL;
    if (cu_snprintf(dst, cap, "%s", s))
        return cu_err_set(e, -CU_EINVAL, "field 'authorization.%s' is too long", key);
    return 0;
}

int cu_tx_auth_check(const char *auth, const char *signer, struct cu_err *e)
{
    static const char *const keys[] = {"body",  "body_hash", "key", "method", "nonce",
                                       "path",  "sig",       "ts",  NULL};
    struct cu_sig_headers h;
    const char *method = NULL, *path = NULL, *body = NULL;
    struct cu_hash bh;
    char bhex[CU_HASH_HEX_LEN + 1];
    int64_t ts;
    json_t *o;
    int rc = -CU_EINVAL;

    o = cu_json_parse(auth, strlen(auth), e);
    if (!o)
        return err_wrap(e, -CU_EINVAL, "authorization is not JSON: %s");
    memset(&h, 0, sizeof h);
    if (cu_json_only_keys(o, "authorization", keys, e) ||
        cu_json_get_str(o, "authorization", "method", true, &method, e) ||
        cu_json_get_str(o, "authorization", "path", true, &path, e) ||
        cu_json_get_str(o, "authorization", "body", true, &body, e) ||
        copy_hdr(o, "key", h.key, sizeof h.key, e) || copy_hdr(o, "ts", h.ts, sizeof h.ts, e) ||
        copy_hdr(o, "nonce", h.nonce, sizeof h.nonce, e) ||
        copy_hdr(o, "body_hash", h.body_hash, sizeof h.body_hash, e) ||
        copy_hdr(o, "sig", h.sig, sizeof h.sig, e))
        goto out_free_json;
    if (strcmp(h.key, signer) != 0) {
        rc = cu_err_set(e, -CU_EAUTH, "authorization is signed by %.16s…, not by %.16s…", h.key,
                        signer);
        goto out_free_json;
    }
    cu_hash_mem(body, json_string_length(json_object_get(o, "body")), &bh);
    cu_hash_to_hex(&bh, bhex);
    if (strcmp(bhex, h.body_hash) != 0) {
        rc = cu_err_set(e, -CU_EAUTH, "authorization body does not match its body_hash");
        goto out_free_json;
    }
    if (cu_parse_i64(h.ts, 0, INT64_MAX, &ts)) {
        rc = cu_err_set(e, -CU_EINVAL, "field 'authorization.ts' must be unix seconds");
        goto out_free_json;
    }
    /* Freshness was checked when the exchange accepted the request; here
     * only the signature matters, so "now" is the request's own time. */
    rc = cu_reqsign_check(method, path, &h, ts, 0, e);
    if (rc)
        rc = err_wrap(e, rc, "authorization: %s");
out_free_json:
    json_decref(o);
    return rc;
}
