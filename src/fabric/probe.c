/* probe.c - what this machine offers (see probe.h). */
#include "fabric/probe.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/util.h"

#include "base/banned.h"

static unsigned probe_cores(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 0;
}

static void probe_memory(struct cu_machine *m)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[256];

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            m->memory = (uint64_t)kb * 1024;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            m->memory_avail = (uint64_t)kb * 1024;
    }
    fclose(f);
}

/* Copies s without surrounding white space into out. */
static void copy_trimmed(char *out, size_t n, const char *s)
{
    size_t len;

    while (*s == ' ' || *s == '\t')
        s++;
    len = strcspn(s, "\n");
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static void probe_cpu_model(struct cu_machine *m)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    char line[512];

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        /* "model name" on x86, "Model" / "Processor" on some ARM kernels */
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0 ||
            strncmp(line, "Processor", 9) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                copy_trimmed(m->cpu_model, sizeof(m->cpu_model), colon + 1);
                if (m->cpu_model[0])
                    break;
            }
        }
    }
    fclose(f);
}

static void probe_kernel(struct cu_machine *m)
{
    struct utsname u;
    if (uname(&u) == 0)
        cu_snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
}

/* NVML through dlopen: no build-time dependency on the NVIDIA driver.
 * -1 when NVML is not usable here. */
static int probe_gpus_nvml(void)
{
    typedef int (*nvml_init_fn)(void);
    typedef int (*nvml_count_fn)(unsigned *);
    typedef int (*nvml_shutdown_fn)(void);
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    nvml_init_fn init;
    nvml_count_fn count;
    nvml_shutdown_fn shutdown_fn;
    unsigned n = 0;
    int rc = -1;

    if (!lib)
        return -1;
    /* POSIX allows converting dlsym's void * to a function pointer. */
    *(void **)&init = dlsym(lib, "nvmlInit_v2");
    *(void **)&count = dlsym(lib, "nvmlDeviceGetCount_v2");
    *(void **)&shutdown_fn = dlsym(lib, "nvmlShutdown");
    if (init && count && init() == 0) {
        if (count(&n) == 0)
            rc = (int)n;
        if (shutdown_fn)
            shutdown_fn();
    }
    dlclose(lib);
    return rc;
}

static unsigned long read_hex_file(const char *dir, const char *name)
{
    char path[CU_PATH_MAX], text[32];
    FILE *f;
    unsigned long v = 0;

    if (cu_snprintf(path, sizeof(path), "%s/%s", dir, name) != 0)
        return 0;
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fgets(text, sizeof(text), f))
        v = strtoul(text, NULL, 16);
    fclose(f);
    return v;
}

/* Counts NVIDIA display controllers (PCI class 0x03xxxx, vendor 0x10de). */
static unsigned probe_gpus_pci(void)
{
    const char *root = "/sys/bus/pci/devices";
    DIR *d = opendir(root);
    struct dirent *de;
    unsigned n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char dev[CU_PATH_MAX];
        if (de->d_name[0] == '.')
            continue;
        if (cu_path_join(dev, sizeof(dev), root, de->d_name) != 0)
            continue;
        if ((read_hex_file(dev, "class") >> 16) == 0x03 && read_hex_file(dev, "vendor") == 0x10de)
            n++;
    }
    closedir(d);
    return n;
}

uint64_t cu_probe_disk_free(const char *path)
{
    struct statvfs v;

    if (statvfs(path, &v) != 0)
        return 0;
    if (v.f_frsize && v.f_bavail > UINT64_MAX / v.f_frsize)
        return UINT64_MAX;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

void cu_machine_probe(struct cu_machine *m)
{
    int nvml;

    memset(m, 0, sizeof(*m));
    m->cores = probe_cores();
    probe_memory(m);
    probe_cpu_model(m);
    probe_kernel(m);
    nvml = probe_gpus_nvml();
    m->gpus = nvml >= 0 ? (unsigned)nvml : probe_gpus_pci();
}
