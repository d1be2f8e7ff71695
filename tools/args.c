/* Flag parsing for the subcommands: see args.h. */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mm_arg *add(mm_args *a, const char *name, const char *def, const char *help, mm_arg_type t)
{
    MM_ASSERT(a->n < MM_ARGS_MAX);
    mm_arg *f = &a->flags[a->n++];
    memset(f, 0, sizeof *f);
    f->name = name;
    f->def = def;
    f->help = help;
    f->type = t;
    return f;
}

void mm_args_init(mm_args *a, const char *prog, const char *usage, const char *about)
{
    memset(a, 0, sizeof *a);
    a->prog = prog;
    a->usage = usage;
    a->about = about;
}

void mm_args_str(mm_args *a, const char *n, const char *d, const char *h) { add(a, n, d, h, MM_ARG_STR); }
void mm_args_int(mm_args *a, const char *n, const char *d, const char *h) { add(a, n, d, h, MM_ARG_INT); }
void mm_args_float(mm_args *a, const char *n, const char *d, const char *h) { add(a, n, d, h, MM_ARG_FLOAT); }
void mm_args_bool(mm_args *a, const char *n, const char *h) { add(a, n, NULL, h, MM_ARG_BOOL); }

static mm_arg *find(const mm_args *a, const char *name, size_t len)
{
    for (int i = 0; i < a->n; i++)
        if (strlen(a->flags[i].name) == len && !strncmp(a->flags[i].name, name, len))
            return (mm_arg *)&a->flags[i];
    return NULL;
}

void mm_args_print_help(const mm_args *a)
{
    printf("usage: %s %s\n\n%s\n", a->prog, a->usage ? a->usage : "[flags]", a->about ? a->about : "");
    if (a->n) printf("\nflags:\n");
    for (int i = 0; i < a->n; i++) {
        const mm_arg *f = &a->flags[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s", f->name, f->type == MM_ARG_BOOL ? "" : " V");
        printf("  %-26s %s", left, f->help ? f->help : "");
        if (f->def) printf(" (default %s)", f->def);
        printf("\n");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

mm_status mm_args_parse(mm_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            mm_args_print_help(a);
            a->help = true;
            return MM_OK;
        }
        if (strncmp(s, "--", 2) != 0 || s[2] == '\0') {
            if (s[0] == '-' && s[1] != '\0' && strcmp(s, "-") != 0)
                return mm_fail(MM_ERR_ARG, "%s: unknown flag %s; see '%s --help'", a->prog, s, a->prog);
            if (a->n_pos == MM_ARGS_MAX)
                return mm_fail(MM_ERR_ARG, "%s: too many arguments", a->prog);
            a->pos[a->n_pos++] = s;
            continue;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        mm_arg *f = find(a, name, len);
        if (!f)
            return mm_fail(MM_ERR_ARG, "%s: unknown flag --%.*s; see '%s --help'", a->prog, (int)len,
                           name, a->prog);
        if (f->type == MM_ARG_BOOL) {
            if (eq)
                return mm_fail(MM_ERR_ARG, "%s: flag --%s takes no value", a->prog, f->name);
            f->value = "1";
        } else if (eq) {
            f->value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return mm_fail(MM_ERR_ARG, "%s: flag --%s needs a value", a->prog, f->name);
            f->value = argv[++i];
        }
        f->set = true;
        double dummy;
        int64_t idummy;
        if (f->type == MM_ARG_INT) MM_TRY(mm_args_get_int(a, f->name, &idummy));
        if (f->type == MM_ARG_FLOAT) MM_TRY(mm_args_get_float(a, f->name, &dummy));
    }
    return MM_OK;
}

const char *mm_args_get(const mm_args *a, const char *name)
{
    mm_arg *f = find(a, name, strlen(name));
    MM_ASSERT(f != NULL); /* asking for an undeclared flag is a programming error */
    return f->set ? f->value : f->def;
}

bool mm_args_given(const mm_args *a, const char *name)
{
    mm_arg *f = find(a, name, strlen(name));
    MM_ASSERT(f != NULL);
    return f->set;
}

mm_status mm_args_get_int(const mm_args *a, const char *name, int64_t *out)
{
    const char *v = mm_args_get(a, name);
    if (!v) return mm_fail(MM_ERR_ARG, "%s: flag --%s is required", a->prog, name);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return mm_fail(MM_ERR_ARG, "%s: --%s %s: not an integer", a->prog, name, v);
    *out = x;
    return MM_OK;
}

mm_status mm_args_get_float(const mm_args *a, const char *name, double *out)
{
    const char *v = mm_args_get(a, name);
    if (!v) return mm_fail(MM_ERR_ARG, "%s: flag --%s is required", a->prog, name);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end)
        return mm_fail(MM_ERR_ARG, "%s: --%s %s: not a number", a->prog, name, v);
    *out = x;
    return MM_OK;
}

bool mm_args_get_bool(const mm_args *a, const char *name)
{
    const char *v = mm_args_get(a, name);
    return v && strcmp(v, "0") != 0;
}

int mm_cli_error(void)
{
    fprintf(stderr, "mammo: %s\n", mm_last_error()[0] ? mm_last_error() : "failed");
    return 1;
}
