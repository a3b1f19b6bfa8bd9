/* probe.h - what this machine offers. */
#ifndef CU_FABRIC_PROBE_H
#define CU_FABRIC_PROBE_H

#include <stdint.h>

struct cu_machine {
    unsigned cores;        /* online CPUs usable by this process */
    uint64_t memory;       /* total RAM, bytes */
    uint64_t memory_avail; /* MemAvailable, bytes */
    unsigned gpus;         /* NVIDIA GPUs found (NVML via dlopen, or PCI scan) */
    char cpu_model[128];
    char kernel[64];
};

/* Fills m; never fails (unknown fields are 0 / ""). */
void cu_machine_probe(struct cu_machine *m);
/* Bytes free to unprivileged users on the file system holding path
 * (statvfs f_bavail); 0 when it cannot tell. */
uint64_t cu_probe_disk_free(const char *path);

#endif
