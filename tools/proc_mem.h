/* The process's resident memory, from Linux's /proc/self: `mammo bench`'s host memory figure,
 * counted as bench/torch_cpu_ref.py counts PyTorch's. */
#ifndef MM_PROC_MEM_H
#define MM_PROC_MEM_H

#include <stddef.h>

/* The resident set now (VmRSS), 0 where /proc/self/status cannot be read. */
size_t mm_proc_rss_bytes(void);

/* Starts a new high-water mark of the resident set at what is resident now (writes 5 to
 * /proc/self/clear_refs; nothing where the kernel refuses it). */
void mm_proc_reset_peak(void);

/* The resident set's high-water mark (VmHWM) over `base` (a mm_proc_rss_bytes taken after
 * mm_proc_reset_peak): what the process took on top of it at its fullest; 0 when unknown. */
size_t mm_proc_peak_over(size_t base);

#endif
