/* Resident memory from /proc/self/status ("VmRSS:  1234 kB"). */
#include "proc_mem.h"

#include <stdio.h>
#include <string.h>

static size_t status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            if (sscanf(line + n + 1, "%zu", &kb) != 1) kb = 0;
            break;
        }
    fclose(f);
    return kb * 1024;
}

size_t mm_proc_rss_bytes(void) { return status_kb("VmRSS"); }

void mm_proc_reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

size_t mm_proc_peak_over(size_t base)
{
    size_t peak = status_kb("VmHWM");
    return peak > base ? peak - base : 0;
}
