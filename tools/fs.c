/* File-system helpers of the data tools: see fs.h. */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void mm_strlist_add(mm_strlist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->s = mm_xrealloc(l->s, (size_t)l->cap * sizeof *l->s);
    }
    l->s[l->n++] = mm_xstrdup(s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mm_strlist_sort(mm_strlist *l)
{
    if (l->n > 1) qsort(l->s, (size_t)l->n, sizeof *l->s, cmp_str);
}

void mm_strlist_free(mm_strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

bool mm_str_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (m > n) return false;
    for (size_t i = 0; i < m; i++)
        if (lower(s[n - m + i]) != lower(suffix[i])) return false;
    return true;
}

char *mm_fs_join(char *out, size_t size, const char *a, const char *b)
{
    int n;
    if (b[0] == '/' || !a[0])
        n = snprintf(out, size, "%s", b);
    else if (a[strlen(a) - 1] == '/')
        n = snprintf(out, size, "%s%s", a, b);
    else
        n = snprintf(out, size, "%s/%s", a, b);
    MM_ASSERT(n >= 0 && (size_t)n < size);
    return out;
}

char *mm_fs_dirname(char *out, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
    return out;
}

const char *mm_fs_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

bool mm_fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool mm_fs_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static mm_status walk(mm_strlist *out, const char *dir, const char *suffix, int depth)
{
    if (depth > 64) return mm_fail(MM_ERR_IO, "%s: folders nested too deeply (a link loop?)", dir);
    DIR *d = opendir(dir);
    if (!d) return mm_fail(MM_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    mm_status st = MM_OK;
    struct dirent *e;
    char path[4096];
    while (st == MM_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat s;
        if (stat(path, &s) != 0) continue; /* a dangling link is not a dataset file */
        if (S_ISDIR(s.st_mode))
            st = walk(out, path, suffix, depth + 1);
        else if (S_ISREG(s.st_mode) && (!suffix || mm_str_ends_with(e->d_name, suffix)))
            mm_strlist_add(out, path);
    }
    closedir(d);
    return st;
}

mm_status mm_fs_list_files(mm_strlist *out, const char *root, const char *suffix)
{
    memset(out, 0, sizeof *out);
    if (!mm_fs_is_dir(root))
        return mm_fail(MM_ERR_IO, "%s: no such folder", root);
    char r[4096];
    snprintf(r, sizeof r, "%s", root);
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') r[--n] = '\0';
    mm_status st = walk(out, r, suffix, 0);
    if (st != MM_OK) {
        mm_strlist_free(out);
        return st;
    }
    mm_strlist_sort(out);
    return MM_OK;
}

mm_status mm_fs_mkdirs(const char *path)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return mm_fail(MM_ERR_IO, "%s: path too long", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return mm_fail(MM_ERR_IO, "%s: cannot create folder: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return mm_fail(MM_ERR_IO, "%s: cannot create folder: %s", p, strerror(errno));
    if (!mm_fs_is_dir(p)) return mm_fail(MM_ERR_IO, "%s: exists and is not a folder", p);
    return MM_OK;
}

mm_status mm_fs_mkdirs_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return MM_OK;
    char dir[4096];
    if ((size_t)(slash - path) >= sizeof dir) return mm_fail(MM_ERR_IO, "%s: path too long", path);
    return mm_fs_mkdirs(mm_fs_dirname(dir, sizeof dir, path));
}

long long mm_fs_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void mm_fs_rmtree(const char *path)
{
    struct stat s;
    if (lstat(path, &s) != 0) return;
    if (S_ISDIR(s.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char child[4096];
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) < (int)sizeof child)
                    mm_fs_rmtree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

mm_status mm_fs_replace_dir(const char *stage, const char *final, const char *flag)
{
    if (!mm_fs_is_dir(final)) {
        if (access(final, F_OK) == 0)
            return mm_fail(MM_ERR_ARG, "%s %s: exists and is not a folder", flag, final);
        if (rename(stage, final) != 0)
            return mm_fail(MM_ERR_IO, "%s %s: cannot rename %s into place: %s", flag, final, stage,
                           strerror(errno));
        return MM_OK;
    }
    DIR *d = opendir(final);
    if (!d) return mm_fail(MM_ERR_IO, "%s %s: cannot open: %s", flag, final, strerror(errno));
    struct dirent *e;
    int foreign = 0;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", final, e->d_name);
        if (!mm_str_ends_with(e->d_name, ".png") || !mm_fs_is_file(path)) foreign = 1;
    }
    closedir(d);
    if (foreign)
        return mm_fail(MM_ERR_ARG, "%s %s: the folder exists and holds files other than PNGs; "
                                   "choose another folder or remove it", flag, final);
    char old[4200];
    snprintf(old, sizeof old, "%s.old.%d", final, (int)getpid());
    if (rename(final, old) != 0)
        return mm_fail(MM_ERR_IO, "%s %s: cannot move the old folder aside: %s", flag, final,
                       strerror(errno));
    if (rename(stage, final) != 0) {
        int err = errno;
        rename(old, final);
        return mm_fail(MM_ERR_IO, "%s %s: cannot rename %s into place: %s", flag, final, stage,
                       strerror(err));
    }
    mm_fs_rmtree(old);
    return MM_OK;
}
