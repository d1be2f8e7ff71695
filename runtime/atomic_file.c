/* Crash-safe file writing through a temp file and rename(): see atomic_file.h. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Counts temp files over the whole process: with the pid it makes every temp name unique. */
static atomic_ulong tmp_counter;

static void release(mm_atomic_file *af)
{
    free(af->path);
    free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->file = NULL;
}

void mm_atomic_file_reserve(mm_atomic_file *af, const char *path)
{
    af->file = NULL;
    af->path = mm_xstrdup(path);
    size_t n = strlen(path) + 64;
    af->tmp_path = mm_xmalloc(n);
    unsigned long k = atomic_fetch_add(&tmp_counter, 1);
    snprintf(af->tmp_path, n, "%s.tmp.%ld.%lu", path, (long)getpid(), k);
}

mm_status mm_atomic_file_open(mm_atomic_file *af, const char *path)
{
    mm_atomic_file_reserve(af, path);
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

/* Flushes the stream (fprintf reports errors only through ferror), fsyncs and closes it; returns
 * 0 or an errno value. */
static int finish_stream(FILE *file)
{
    int err = 0;
    if (ferror(file)) err = EIO;
    if (!err && fflush(file) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(file)) != 0) err = errno;
    if (fclose(file) != 0 && !err) err = errno ? errno : EIO;
    return err;
}

/* For a reserved name written by someone else: fsync through a fresh descriptor. */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errno;
    int err = fsync(fd) != 0 ? errno : 0;
    if (close(fd) != 0 && !err) err = errno;
    return err;
}

mm_status mm_atomic_file_commit(mm_atomic_file *af)
{
    int err = af->file ? finish_stream(af->file) : sync_path(af->tmp_path);
    af->file = NULL;
    if (!err && rename(af->tmp_path, af->path) != 0) err = errno;
    if (err) {
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
