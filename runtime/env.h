/* Numbers, switches and words from the environment, read one way everywhere.
 *
 * Unset or empty means "not given". A value that is set but is not one the variable takes is
 * said once on stderr ("mammo: warning: NAME=VALUE is not ...; ignored") and then treated as not
 * given, so a typo in a tuning or debugging variable never changes a run silently.
 *
 *   int64_t mib = 1024;
 *   mm_env_int("MM_CUDNN_WS_LIMIT_MB", 0, 1 << 24, &mib);   // keeps 1024 unless given
 *   int fused = mm_env_switch("MM_CONV_FUSED");              // 0, 1, or -1: choose
 */
#ifndef MM_ENV_H
#define MM_ENV_H

#include <stdbool.h>
#include <stdint.h>

/* An integer in [lo, hi] (decimal): stored in *out and true; otherwise *out is left as it was. */
bool mm_env_int(const char *name, int64_t lo, int64_t hi, int64_t *out);

/* A switch: 0 or 1 as given, -1 when not given (the caller's own choice). */
int mm_env_switch(const char *name);

/* A debugging flag documented as NAME=1: true only when the switch is 1. */
bool mm_env_flag(const char *name);

/* One of the n words: its index, or -1 when not given. */
int mm_env_word(const char *name, const char *const *words, int n);

/* How many warnings the readers have said so far (for tests). */
int mm_env_warnings(void);

#endif
