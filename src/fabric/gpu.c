/* gpu.c - GPU selection and device nodes (see gpu.h). */
#include "fabric/gpu.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

#include "base/banned.h"

int cu_gpu_parse_list(const char *text, unsigned probed, unsigned idx[CU_GPU_MAX], unsigned *n,
                      struct cu_err *e)
{
    const char *p = text;

    *n = 0;
    if (!text || !*text)
        return cu_err_set(e, -CU_EINVAL, "--gpus: empty list (give indices such as 0,1)");
    while (*p) {
        char item[16];
        size_t len = strcspn(p, ",");
        int64_t v;

        if (len == 0 || len >= sizeof item)
            return cu_err_set(e, -CU_EINVAL, "--gpus %s: empty or overlong entry", text);
        memcpy(item, p, len);
        item[len] = '\0';
        if (cu_parse_i64(item, 0, CU_GPU_MAX - 1, &v) != 0)
            return cu_err_set(e, -CU_EINVAL, "--gpus %s: '%s' is not a GPU index", text, item);
        if (probed == 0)
            return cu_err_set(e, -CU_EINVAL,
                              "--gpus %s: this machine has no GPU (the probe found none)", text);
        if ((unsigned)v >= probed)
            return cu_err_set(e, -CU_EINVAL,
                              "--gpus %s: GPU %s does not exist (the probe found %u: 0..%u)",
                              text, item, probed, probed - 1);
        for (unsigned i = 0; i < *n; i++) {
            if (idx[i] == (unsigned)v)
                return cu_err_set(e, -CU_EINVAL, "--gpus %s: GPU %s is listed twice", text,
                                  item);
        }
        idx[(*n)++] = (unsigned)v;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p)
                return cu_err_set(e, -CU_EINVAL, "--gpus %s: trailing comma", text);
        }
    }
    return 0;
}

void cu_gpu_binds_free(char *binds[CU_GPU_BINDS_MAX])
{
    for (size_t i = 0; i < CU_GPU_BINDS_MAX && binds[i]; i++) {
        free(binds[i]);
        binds[i] = NULL;
    }
}

int cu_gpu_device_binds(const char *dev, const unsigned *idx, unsigned n,
                        char *out[CU_GPU_BINDS_MAX], struct cu_err *e)
{
    static const char *const shared[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                                         "nvidia-modeset"};
    char path[CU_PATH_MAX];
    size_t k = 0;

    memset(out, 0, sizeof(char *) * CU_GPU_BINDS_MAX);
    if (n > CU_GPU_MAX)
        return cu_err_set(e, -CU_EINVAL, "too many GPUs: %u", n);
    for (unsigned i = 0; i < n; i++) {
        if (cu_snprintf(path, sizeof path, "%s/nvidia%u", dev, idx[i]) != 0)
            return cu_err_set(e, -CU_EINVAL, "device path too long");
        if (access(path, F_OK) != 0) {
            cu_gpu_binds_free(out);
            return cu_err_set(e, -CU_ENOTFOUND, "GPU %u: %s does not exist", idx[i], path);
        }
        if (!(out[k++] = strdup(path)))
            goto out_nomem;
    }
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        if (cu_path_join(path, sizeof path, dev, shared[i]) != 0 || access(path, F_OK) != 0)
            continue; /* not every driver has every node */
        if (!(out[k++] = strdup(path)))
            goto out_nomem;
    }
    return 0;
out_nomem:
    cu_gpu_binds_free(out);
    return cu_err_set(e, -CU_ENOMEM, "out of memory");
}
