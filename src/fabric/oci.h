/* oci.h - OCI image layout tarballs unpacked into a root file system
 * (DESIGN.md §3, §8), without a Docker daemon.
 *
 * Input: a tar of an OCI image layout (oci-layout, index.json,
 * blobs/sha256/HEX), as `skopeo copy ... oci-archive:` or `docker save` in
 * OCI mode write it. index.json names a manifest (directly, or through one
 * nested image index; with several, the one for linux and this machine's
 * architecture), the manifest names the config and the layers. Every blob
 * used is checked against its sha256 name before it is trusted.
 *
 * The layers are applied in order into DIR/MANIFEST_HEX/rootfs, where DIR
 * is the cache directory the caller owns; the image config is kept beside it
 * as config.json. Unpacking goes to a temporary directory that is renamed
 * into place at the end, so a rootfs that exists is complete, and a second
 * task on the same manifest reuses it without unpacking.
 *
 * Layer rules (what a hostile image cannot do to the provider):
 *   - names with a ".." component or an absolute path are refused;
 *   - nothing is written or deleted through a symlink (libarchive's
 *     SECURE_SYMLINKS/NODOTDOT, and whiteouts walk with O_NOFOLLOW);
 *   - a relative symlink whose target climbs above the root is refused
 *     (absolute targets are kept: they resolve inside the sandbox's /);
 *   - hard links must name a path inside the root by the same rules;
 *   - device nodes, FIFOs and sockets are skipped;
 *   - setuid/setgid bits are stripped; owners, ACLs, xattrs (file
 *     capabilities) are not restored: files belong to the provider user;
 *   - whiteouts: ".wh.NAME" deletes NAME from the lower layers,
 *     ".wh..wh..opq" empties its directory of lower-layer content. Each
 *     layer is read twice: first its whiteouts are applied, then its
 *     files are written, so a whiteout never removes a file of its own layer.
 *   - limits: CU_OCI_MAX_ENTRIES entries per layer, max_bytes in all.
 * The rootfs gets empty /work /out /in /proc /dev /tmp mount points. */
#ifndef CU_FABRIC_OCI_H
#define CU_FABRIC_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CU_OCI_MAX_JSON (1u << 20)     /* index, manifest, config */
#define CU_OCI_MAX_LAYERS 128
#define CU_OCI_MAX_ENTRIES 1000000
#define CU_OCI_DEFAULT_MAX_BYTES (16ULL << 30)

/* What the image's config says about how to run it. Strings are owned. */
struct cu_oci_config {
    char **env;         /* "K=V", nenv of them (config.Env) */
    size_t nenv;
    char **entrypoint;  /* config.Entrypoint */
    size_t nentrypoint;
    char **cmd;         /* config.Cmd */
    size_t ncmd;
    char *workdir;      /* config.WorkingDir, or NULL */
};

void cu_oci_config_init(struct cu_oci_config *c);
void cu_oci_config_release(struct cu_oci_config *c);

/* Parses an image config blob (JSON) into c (must be init'ed). Unknown
 * fields are ignored (User, ExposedPorts, Volumes... are not honoured).
 * -CU_EINVAL with e naming the field. */
int cu_oci_config_parse(const char *json, size_t n, struct cu_oci_config *c, struct cu_err *e);

struct cu_oci_image {
    char digest[72];           /* "sha256:HEX" of the manifest */
    char rootfs[4096];         /* absolute path of the unpacked root */
    bool cached;               /* true: it was there already */
    struct cu_oci_config config;
};

void cu_oci_image_init(struct cu_oci_image *im);
void cu_oci_image_release(struct cu_oci_image *im);

/* Makes the rootfs of the image layout tarball tar_path present under
 * cache_dir (created 0711 when missing) and fills im (init'ed). max_bytes
 * bounds the unpacked size (0: CU_OCI_DEFAULT_MAX_BYTES). Blocks for the
 * whole unpack. -CU_EINVAL/-CU_ECORRUPT/-CU_ETOOBIG/-CU_EUNSUPPORTED for a
 * bad image (e says what and where), -CU_EIO for local disk trouble.
 * Concurrent callers on the same image are safe: one rename wins, the
 * others use its result. */
int cu_oci_prepare(const char *tar_path, const char *cache_dir, uint64_t max_bytes,
                   struct cu_oci_image *im, struct cu_err *e);

#endif
