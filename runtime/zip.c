/* Zip archives in memory: see zip.h. Layout (APPNOTE.TXT): local headers and data, then the
 * central directory, then the end-of-central-directory record (preceded, in ZIP64 archives, by a
 * ZIP64 end record and its locator). */
#include "zip.h"

#include <stdlib.h>
#include <string.h>

struct mm_zip {
    char *label;
    const uint8_t *data;
    size_t size;
    int n;
    mm_zip_entry *entries;
};

#define BAD(...) mm_fail(MM_ERR_FORMAT, __VA_ARGS__)
#define HINT "; the file is not a whole zip archive (truncated or corrupt?)"

enum {
    EOCD_SIG = 0x06054b50,
    EOCD64_SIG = 0x06064b50,
    LOCATOR_SIG = 0x07064b50,
    CENTRAL_SIG = 0x02014b50,
    LOCAL_SIG = 0x04034b50,
    EOCD_LEN = 22,
    LOCATOR_LEN = 20,
    EOCD64_LEN = 56,
    CENTRAL_LEN = 46,
    LOCAL_LEN = 30,
};

static uint64_t le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Whether [off, off + len) lies inside the archive. */
static int inside(const mm_zip *z, uint64_t off, uint64_t len)
{
    return off <= z->size && len <= z->size - off;
}

/* The end-of-central-directory record: the last signature that leaves room for the record and
 * its comment (up to 65535 bytes). -1 when there is none. */
static int64_t find_eocd(const mm_zip *z)
{
    if (z->size < EOCD_LEN) return -1;
    size_t lowest = z->size - EOCD_LEN > 65535 ? z->size - EOCD_LEN - 65535 : 0;
    for (size_t at = z->size - EOCD_LEN + 1; at-- > lowest;)
        if (le(z->data + at, 4) == EOCD_SIG &&
            at + EOCD_LEN + le(z->data + at + 20, 2) <= z->size)
            return (int64_t)at;
    return -1;
}

/* The central directory's place and entry count, from the end record or its ZIP64 twin. */
static mm_status directory(const mm_zip *z, uint64_t *count, uint64_t *offset, uint64_t *bytes)
{
    int64_t eocd = find_eocd(z);
    if (eocd < 0) return BAD("%s: no end-of-central-directory record" HINT, z->label);
    const uint8_t *e = z->data + eocd;
    *count = le(e + 10, 2);
    *bytes = le(e + 12, 4);
    *offset = le(e + 16, 4);
    if (le(e + 4, 2) != 0 && le(e + 4, 2) != 0xffff)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: a zip archive split over several files; join "
                       "it into one", z->label);
    if (*count != 0xffff && *bytes != 0xffffffff && *offset != 0xffffffff) return MM_OK;
    /* ZIP64: the locator right before the end record points at the ZIP64 end record */
    if (eocd < LOCATOR_LEN || le(e - LOCATOR_LEN, 4) != LOCATOR_SIG)
        return BAD("%s: the end record asks for ZIP64 but no ZIP64 locator precedes it" HINT,
                   z->label);
    uint64_t at = le(e - LOCATOR_LEN + 8, 8);
    if (!inside(z, at, EOCD64_LEN) || le(z->data + at, 4) != EOCD64_SIG)
        return BAD("%s: the ZIP64 end record is not where its locator says" HINT, z->label);
    *count = le(z->data + at + 32, 8);
    *bytes = le(z->data + at + 40, 8);
    *offset = le(z->data + at + 48, 8);
    return MM_OK;
}

/* The ZIP64 extra field (id 1) of a central entry: the 8-byte values of the fields that read
 * 0xffffffff, in the order uncompressed size, compressed size, local header offset. */
static mm_status zip64_extra(const mm_zip *z, const uint8_t *extra, uint64_t len, mm_zip_entry *e)
{
    uint64_t *wanted[3] = {e->size == 0xffffffff ? &e->size : NULL,
                           e->comp_size == 0xffffffff ? &e->comp_size : NULL,
                           e->local == 0xffffffff ? &e->local : NULL};
    for (uint64_t at = 0; at + 4 <= len;) {
        uint64_t id = le(extra + at, 2), n = le(extra + at + 2, 2);
        if (at + 4 + n > len) break;
        if (id == 1) {
            uint64_t used = 0;
            for (int k = 0; k < 3; k++) {
                if (!wanted[k]) continue;
                if (used + 8 > n)
                    return BAD("%s: entry '%s': its ZIP64 field is too short" HINT, z->label,
                               e->name);
                *wanted[k] = le(extra + at + 4 + used, 8);
                used += 8;
            }
            return MM_OK;
        }
        at += 4 + n;
    }
    if (wanted[0] || wanted[1] || wanted[2])
        return BAD("%s: entry '%s' needs a ZIP64 field and has none" HINT, z->label, e->name);
    return MM_OK;
}

static mm_status read_directory(mm_zip *z)
{
    uint64_t count = 0, offset = 0, bytes = 0;
    MM_TRY(directory(z, &count, &offset, &bytes));
    if (!inside(z, offset, bytes) || count > bytes / CENTRAL_LEN)
        return BAD("%s: the central directory (%llu entries at byte %llu) is not inside the file"
                   HINT, z->label, (unsigned long long)count, (unsigned long long)offset);
    z->entries = mm_xcalloc(count ? count : 1, sizeof *z->entries);
    uint64_t at = offset, end = offset + bytes;
    for (uint64_t i = 0; i < count; i++) {
        if (at + CENTRAL_LEN > end || le(z->data + at, 4) != CENTRAL_SIG)
            return BAD("%s: central directory entry %llu is damaged" HINT, z->label,
                       (unsigned long long)i);
        const uint8_t *c = z->data + at;
        uint64_t name_len = le(c + 28, 2), extra_len = le(c + 30, 2), comment = le(c + 32, 2);
        if (at + CENTRAL_LEN + name_len + extra_len + comment > end)
            return BAD("%s: central directory entry %llu runs past the directory" HINT, z->label,
                       (unsigned long long)i);
        mm_zip_entry *e = &z->entries[z->n++];
        e->name = mm_xmalloc(name_len + 1);
        memcpy(e->name, c + CENTRAL_LEN, name_len);
        e->name[name_len] = 0;
        e->encrypted = (int)(le(c + 8, 2) & 1);
        e->method = (int)le(c + 10, 2);
        e->comp_size = le(c + 20, 4);
        e->size = le(c + 24, 4);
        e->local = le(c + 42, 4);
        MM_TRY(zip64_extra(z, c + CENTRAL_LEN + name_len, extra_len, e));
        at += CENTRAL_LEN + name_len + extra_len + comment;
    }
    return MM_OK;
}

mm_status mm_zip_parse(mm_zip **out, const uint8_t *data, size_t size, const char *label)
{
    mm_zip *z = mm_xcalloc(1, sizeof *z);
    z->label = mm_xstrdup(label);
    z->data = data;
    z->size = size;
    mm_status st = read_directory(z);
    if (st != MM_OK) {
        mm_zip_close(z);
        z = NULL;
    }
    *out = z;
    return st;
}

void mm_zip_close(mm_zip *z)
{
    if (!z) return;
    for (int i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->label);
    free(z);
}

int mm_zip_count(const mm_zip *z) { return z->n; }

const mm_zip_entry *mm_zip_entry_at(const mm_zip *z, int i)
{
    MM_ASSERT(i >= 0 && i < z->n);
    return &z->entries[i];
}

const mm_zip_entry *mm_zip_find(const mm_zip *z, const char *name)
{
    for (int i = 0; i < z->n; i++)
        if (!strcmp(z->entries[i].name, name)) return &z->entries[i];
    return NULL;
}

mm_status mm_zip_data(const mm_zip *z, const mm_zip_entry *e, const uint8_t **data)
{
    *data = NULL;
    if (e->encrypted)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: entry '%s' is encrypted", z->label, e->name);
    if (e->method != 0)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: entry '%s' is compressed (zip method %d); "
                       "torch.save stores its entries uncompressed: save the file again with "
                       "torch.save, or re-zip it stored (zip -0)", z->label, e->name, e->method);
    if (e->comp_size != e->size)
        return BAD("%s: entry '%s' is stored but its sizes differ (%llu and %llu bytes)" HINT,
                   z->label, e->name, (unsigned long long)e->comp_size,
                   (unsigned long long)e->size);
    if (!inside(z, e->local, LOCAL_LEN) || le(z->data + e->local, 4) != LOCAL_SIG)
        return BAD("%s: entry '%s': no local header at byte %llu" HINT, z->label, e->name,
                   (unsigned long long)e->local);
    const uint8_t *h = z->data + e->local;
    uint64_t start = e->local + LOCAL_LEN + le(h + 26, 2) + le(h + 28, 2);
    if (!inside(z, start, e->size))
        return BAD("%s: entry '%s' (%llu bytes at byte %llu) runs past the end of the file" HINT,
                   z->label, e->name, (unsigned long long)e->size, (unsigned long long)start);
    *data = z->data + start;
    return MM_OK;
}
