/* File-system helpers: atomic writes through temp file + rename, mkdir -p. See fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_ulong tmp_counter;

void mm_tmp_name(char *out, size_t cap, const char *path)
{
    unsigned long n = atomic_fetch_add(&tmp_counter, 1);
    snprintf(out, cap, "%s.tmp.%ld.%lu", path, (long)getpid(), n);
}

mm_status mm_rename_into_place(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return mm_fail(MM_ERR_IO, "%s: cannot move the finished file into place: %s", path,
                       strerror(e));
    }
    return MM_OK;
}

mm_status mm_atomic_open(mm_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t cap = strlen(path) + 64;
    af->tmp = mm_xmalloc(cap);
    mm_tmp_name(af->tmp, cap, path);
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        free(af->tmp);
        af->tmp = NULL;
        return mm_fail(MM_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    af->path = mm_xstrdup(path);
    return MM_OK;
}

static void atomic_free(mm_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

void mm_atomic_abort(mm_atomic_file *af)
{
    if (af->f) fclose(af->f);
    if (af->tmp) remove(af->tmp);
    atomic_free(af);
}

mm_status mm_atomic_commit(mm_atomic_file *af)
{
    int bad = ferror(af->f);
    int e = bad ? EIO : 0;
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    af->f = NULL;
    mm_status s = MM_OK;
    if (bad) {
        remove(af->tmp);
        s = mm_fail(MM_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
    } else {
        s = mm_rename_into_place(af->tmp, af->path);
    }
    atomic_free(af);
    return s;
}

mm_status mm_write_file_atomic(const char *path, const void *data, size_t n)
{
    mm_atomic_file af;
    MM_TRY(mm_atomic_open(&af, path));
    if (n && fwrite(data, 1, n, af.f) != n) {
        int e = errno;
        mm_atomic_abort(&af);
        return mm_fail(MM_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return mm_atomic_commit(&af);
}

mm_status mm_mkdirs(const char *dir)
{
    size_t n = strlen(dir);
    if (n == 0) return MM_OK;
    char *p = mm_xstrdup(dir);
    mm_status s = MM_OK;
    for (size_t i = 1; i <= n && s == MM_OK; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            s = mm_fail(MM_ERR_IO, "%s: cannot create folder: %s", p, strerror(errno));
        else {
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                s = mm_fail(MM_ERR_IO, "%s: exists and is not a folder", p);
        }
        p[i] = c;
    }
    free(p);
    return s;
}

mm_status mm_mkdirs_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return MM_OK;
    char *d = mm_xstrdup(path);
    d[slash - path] = '\0';
    mm_status s = mm_mkdirs(d);
    free(d);
    return s;
}

long long mm_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (long long)st.st_size;
}
