/* Zip archives held in memory, read as PyTorch writes them (runtime/torch_pth.c): the central
 * directory (ZIP64 included) lists the entries; an entry's bytes are used in place, so only stored
 * (uncompressed) entries have data, as torch.save writes every entry.
 *
 *   mm_zip *z;
 *   MM_TRY(mm_zip_parse(&z, data, size, path));       // data must outlive z
 *   const mm_zip_entry *e = mm_zip_find(z, "archive/data.pkl");
 *   const uint8_t *bytes;
 *   MM_TRY(mm_zip_data(z, e, &bytes));                  // e->size bytes; else says why not
 *   mm_zip_close(z);
 *
 * Every problem is a tier-1 MM_ERR_FORMAT naming the file: no end-of-directory record, entries
 * or offsets outside the file, signatures that are not where the directory says. */
#ifndef MM_ZIP_H
#define MM_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct mm_zip_entry {
    char *name;          /* NUL-terminated copy */
    int method;          /* 0 stored, 8 deflated, ... */
    int encrypted;       /* general-purpose flag bit 0 */
    uint64_t size;       /* uncompressed bytes */
    uint64_t comp_size;  /* bytes in the archive */
    uint64_t local;      /* offset of the entry's local header */
} mm_zip_entry;

typedef struct mm_zip mm_zip;

mm_status mm_zip_parse(mm_zip **out, const uint8_t *data, size_t size, const char *label);
void mm_zip_close(mm_zip *z);

int mm_zip_count(const mm_zip *z);
const mm_zip_entry *mm_zip_entry_at(const mm_zip *z, int i);
/* NULL when the archive has no entry of that name. */
const mm_zip_entry *mm_zip_find(const mm_zip *z, const char *name);
/* The entry's e->size bytes in the archive, after checking its local header: MM_ERR_UNSUPPORTED
 * for a compressed or encrypted entry (naming it), MM_ERR_FORMAT when they are not in the file. */
mm_status mm_zip_data(const mm_zip *z, const mm_zip_entry *e, const uint8_t **data);

#endif
