/* Crash-safe file writing through a temp file and rename(): see atomic_file.h. */
#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void release(mm_atomic_file *af)
{
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->file = NULL;
}

mm_status mm_atomic_file_open(mm_atomic_file *af, const char *path)
{
    af->file = NULL;
    af->path = mm_xstrdup(path);
    size_t n = strlen(path) + 32;
    af->tmp_path = mm_xmalloc(n);
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->file = fopen(af->tmp_path, "wb");
    if (!af->file) {
        int err = errno;
        release(af);
        return mm_fail(MM_ERR_IO, "%s: cannot create a file there (%s); check that the folder "
                       "exists and is writable", path, strerror(err));
    }
    return MM_OK;
}

mm_status mm_atomic_file_write(mm_atomic_file *af, const void *data, size_t bytes)
{
    if (bytes == 0) return MM_OK;
    if (fwrite(data, 1, bytes, af->file) != bytes)
        return mm_fail(MM_ERR_IO, "%s: write failed (%s); is the disk full?", af->path,
                       strerror(errno));
    return MM_OK;
}

mm_status mm_atomic_file_commit(mm_atomic_file *af)
{
    int failed = fflush(af->file) != 0;
    int err = errno;
    if (!failed && fsync(fileno(af->file)) != 0) {
        failed = 1;
        err = errno;
    }
    if (fclose(af->file) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    af->file = NULL;
    if (!failed && rename(af->tmp_path, af->path) != 0) {
        failed = 1;
        err = errno;
    }
    if (failed) {
        remove(af->tmp_path);
        mm_status s = mm_fail(MM_ERR_IO, "%s: could not finish writing (%s); the previous file, "
                              "if any, is unchanged", af->path, strerror(err));
        release(af);
        return s;
    }
    release(af);
    return MM_OK;
}

void mm_atomic_file_abort(mm_atomic_file *af)
{
    if (af->file) fclose(af->file);
    if (af->tmp_path) remove(af->tmp_path);
    release(af);
}
