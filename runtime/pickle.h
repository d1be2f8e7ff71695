/* Python pickles read without Python and without running anything: the object tree of one pickle
 * (protocols 2 to 5, the binary opcodes), as PyTorch's checkpoints hold it (runtime/torch_pth.c).
 *
 * Nothing is imported or called. A global (GLOBAL, STACK_GLOBAL) is a node naming its module and
 * name; calling one (REDUCE, NEWOBJ) is a node holding the callable and its arguments; BUILD keeps
 * its state on the node built; a persistent id (BINPERSID) is a node holding the id. The one call
 * made is collections.OrderedDict(), an empty dict (state_dicts are OrderedDicts); items set on
 * or appended to any other call's result are dropped, as an object we do not read.
 *
 *   mm_pickle *p;
 *   size_t used;                                     // bytes up to and with the STOP opcode
 *   MM_TRY(mm_pickle_parse(&p, data, size, "x.pth", &used));   // data must outlive p
 *   const mm_pk_node *root = mm_pk_get(p, mm_pickle_root(p));
 *   mm_pickle_free(p);
 *
 * Malformed pickles (unknown or truncated opcodes, a stack that runs dry, memo keys never put)
 * are tier-1 MM_ERR_FORMAT errors naming the label and the byte offset. A pickle may refer to
 * itself through its memo (a list that holds itself): walkers of the tree bound their depth. */
#ifndef MM_PICKLE_H
#define MM_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    MM_PK_NONE,
    MM_PK_BOOL,   /* i: 0 or 1 */
    MM_PK_INT,    /* i */
    MM_PK_BIGINT, /* an int past 64 bits: s, len are its little-endian two's complement bytes */
    MM_PK_FLOAT,  /* f */
    MM_PK_STR,    /* s, len: UTF-8 (Python 3 str, or Python 2 str as written) */
    MM_PK_BYTES,  /* s, len */
    MM_PK_TUPLE,  /* items */
    MM_PK_LIST,   /* items (sets and frozensets too) */
    MM_PK_DICT,   /* items: key, value, key, value, ... */
    MM_PK_GLOBAL, /* s, len: the module; name, name_len: the name */
    MM_PK_CALL,   /* items[0]: the callable, items[1]: the arguments (a tuple) */
    MM_PK_PERSID, /* items[0]: the persistent id */
} mm_pk_kind;

typedef struct mm_pk_node {
    mm_pk_kind kind;
    int64_t i;
    double f;
    const char *s; /* into the pickle's bytes */
    size_t len;
    const char *name;
    size_t name_len;
    int *items; /* node ids */
    int n, cap;
    int state; /* BUILD's state node, or -1 */
} mm_pk_node;

typedef struct mm_pickle mm_pickle;

mm_status mm_pickle_parse(mm_pickle **out, const uint8_t *data, size_t size, const char *label,
                          size_t *used);
void mm_pickle_free(mm_pickle *p);

/* The object the pickle holds, any node by id, and how many nodes there are (ids 0 .. n-1). */
int mm_pickle_root(const mm_pickle *p);
int mm_pickle_count(const mm_pickle *p);
const mm_pk_node *mm_pk_get(const mm_pickle *p, int id);

/* Whether node n is the string s; the global module.name. */
bool mm_pk_is_str(const mm_pk_node *n, const char *s);
bool mm_pk_is_global(const mm_pk_node *n, const char *module, const char *name);
/* The value of key `key` (a string) in dict node `dict`, or -1. */
int mm_pk_dict_get(const mm_pickle *p, int dict, const char *key);

#endif
