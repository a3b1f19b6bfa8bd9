/* gpu.h - which GPUs a provider offers, and what a task needs bound in to
 * use one (NVIDIA: /dev/nvidiaN plus the shared control nodes). */
#ifndef CU_FABRIC_GPU_H
#define CU_FABRIC_GPU_H

#include <stddef.h>

#include "base/err.h"

#define CU_GPU_MAX 64
#define CU_GPU_BINDS_MAX (CU_GPU_MAX + 8)

/* Parses "--gpus" text: comma-separated distinct indices, each below
 * probed (the GPUs the probe found). 0 with idx[0..*n) filled; -CU_EINVAL
 * with e naming the bad entry ("--gpus 0: this machine has no GPU"). */
int cu_gpu_parse_list(const char *text, unsigned probed, unsigned idx[CU_GPU_MAX], unsigned *n,
                      struct cu_err *e);

/* Device nodes a task using GPUs idx[0..n) needs, that exist under dev
 * (normally "/dev"): dev/nvidiaI for each, then nvidiactl, nvidia-uvm,
 * nvidia-uvm-tools, nvidia-modeset. out[] gets malloc'd paths, NULL
 * terminated (free with cu_gpu_binds_free). 0, or -CU_ENOTFOUND naming
 * the missing node of an offered GPU, or -CU_ENOMEM. */
int cu_gpu_device_binds(const char *dev, const unsigned *idx, unsigned n,
                        char *out[CU_GPU_BINDS_MAX], struct cu_err *e);
void cu_gpu_binds_free(char *binds[CU_GPU_BINDS_MAX]);

#endif
