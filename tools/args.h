/* Flag parsing for the subcommands: declare the flags a command takes, parse, read values.
 *
 *   mm_args a;
 *   mm_args_init(&a, "mammo forward", "Runs an evaluation-mode forward pass.");
 *   mm_args_str(&a, "net", "resnet50", "trunk: resnet50 or vgg16");
 *   mm_args_int(&a, "classes", "1000", "number of output classes");
 *   if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();   // unknown flag, ...
 *   if (a.help) return 0;                                                 // --help printed
 *   const char *net = mm_args_get(&a, "net");
 *
 * Accepts "--name value" and "--name=value"; boolean flags take no value. Positional arguments are
 * collected in a.pos. An unknown flag, a missing value or a malformed number is one clear error. */
#ifndef MM_ARGS_H
#define MM_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/error.h"

#define MM_ARGS_MAX 64

typedef enum { MM_ARG_STR, MM_ARG_INT, MM_ARG_FLOAT, MM_ARG_BOOL } mm_arg_type;

typedef struct mm_arg {
    const char *name, *def, *help;
    mm_arg_type type;
    const char *value; /* NULL: not given (def applies) */
    bool set;
} mm_arg;

typedef struct mm_args {
    const char *prog, *about, *usage;
    mm_arg flags[MM_ARGS_MAX];
    int n;
    const char *pos[MM_ARGS_MAX];
    int n_pos;
    bool help;
} mm_args;

void mm_args_init(mm_args *a, const char *prog, const char *usage, const char *about);
void mm_args_str(mm_args *a, const char *name, const char *def, const char *help);
void mm_args_int(mm_args *a, const char *name, const char *def, const char *help);
void mm_args_float(mm_args *a, const char *name, const char *def, const char *help);
void mm_args_bool(mm_args *a, const char *name, const char *help);
/* argv[0] is the subcommand name. Prints the help and sets a->help on --help / -h. */
mm_status mm_args_parse(mm_args *a, int argc, char **argv);
void mm_args_print_help(const mm_args *a);

const char *mm_args_get(const mm_args *a, const char *name); /* value or default (may be NULL) */
bool mm_args_given(const mm_args *a, const char *name);
/* Parse the value as a number; a malformed one is a tier-1 error naming the flag. */
mm_status mm_args_get_int(const mm_args *a, const char *name, int64_t *out);
mm_status mm_args_get_float(const mm_args *a, const char *name, double *out);
bool mm_args_get_bool(const mm_args *a, const char *name);

/* Prints "mammo: <last error>" to stderr and returns 1 (the exit status of a failed command). */
int mm_cli_error(void);

#endif
