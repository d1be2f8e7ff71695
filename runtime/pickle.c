/* The pickle machine of pickle.h: a stack of node ids, a stack of marks and the memo, run over
 * the opcodes of protocols 2 to 5 (Python's Lib/pickle.py names them; pickletools.dis shows a
 * file's). Every opcode makes at most one node, so the nodes are bounded by the input's size. */
#include "pickle.h"

#include <stdlib.h>
#include <string.h>

struct mm_pickle {
    const char *label;
    const uint8_t *data;
    size_t size, pos, op_at; /* op_at: where the opcode being run starts */
    mm_pk_node *nodes;
    int n_nodes, cap_nodes;
    int *stack, sp, cap_stack;
    int *marks, n_marks, cap_marks; /* stack heights at each MARK */
    int *memo;                      /* node ids by key, -1: not put */
    size_t memo_cap, memo_count;
    int root;
};

#define HINT "; the file is not a whole pickle (truncated or corrupt?)"
#define BAD(p, fmt, ...)                                                                   \
    mm_fail(MM_ERR_FORMAT, "%s: pickle byte %zu: " fmt HINT, (p)->label, (p)->op_at, __VA_ARGS__)

static void grow(void **items, int *cap, int need, size_t size)
{
    if (need <= *cap) return;
    int n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    *items = mm_xrealloc(*items, (size_t)n * size);
    *cap = n;
}

static int new_node(mm_pickle *p, mm_pk_kind kind)
{
    grow((void **)&p->nodes, &p->cap_nodes, p->n_nodes + 1, sizeof *p->nodes);
    mm_pk_node *n = &p->nodes[p->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->state = -1;
    return p->n_nodes++;
}

static void add_item(mm_pickle *p, int node, int item)
{
    mm_pk_node *n = &p->nodes[node];
    grow((void **)&n->items, &n->cap, n->n + 1, sizeof *n->items);
    n->items[n->n++] = item;
}

static void push(mm_pickle *p, int node)
{
    grow((void **)&p->stack, &p->cap_stack, p->sp + 1, sizeof *p->stack);
    p->stack[p->sp++] = node;
}

/* The stack's height at the last mark (what a pop may not go below). */
static int floor_of(const mm_pickle *p) { return p->n_marks ? p->marks[p->n_marks - 1] : 0; }

static mm_status pop(mm_pickle *p, int *node)
{
    if (p->sp <= floor_of(p))
        return BAD(p, "opcode 0x%02x takes from an empty stack", p->data[p->op_at]);
    *node = p->stack[--p->sp];
    return MM_OK;
}

static mm_status top(mm_pickle *p, int *node)
{
    MM_TRY(pop(p, node));
    p->sp++;
    return MM_OK;
}

/* The items pushed since the last mark: stack[*from .. p->sp); the caller drops them and the
 * mark with p->sp = *from. */
static mm_status since_mark(mm_pickle *p, int *from)
{
    if (!p->n_marks)
        return BAD(p, "opcode 0x%02x needs a mark and there is none", p->data[p->op_at]);
    *from = p->marks[--p->n_marks];
    return MM_OK;
}

static mm_status need(mm_pickle *p, size_t n)
{
    if (n > p->size - p->pos)
        return BAD(p, "opcode 0x%02x needs %zu more bytes, the pickle has %zu",
                   p->data[p->op_at], n, p->size - p->pos);
    return MM_OK;
}

static uint64_t take_le(mm_pickle *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p->data[p->pos + (size_t)i];
    p->pos += (size_t)bytes;
    return v;
}

/* A string or bytes of `len_bytes` length prefix. */
static mm_status push_text(mm_pickle *p, mm_pk_kind kind, int len_bytes)
{
    MM_TRY(need(p, (size_t)len_bytes));
    uint64_t len = take_le(p, len_bytes);
    if (len > p->size - p->pos)
        return BAD(p, "a string of %llu bytes runs past the end", (unsigned long long)len);
    int id = new_node(p, kind);
    p->nodes[id].s = (const char *)p->data + p->pos;
    p->nodes[id].len = (size_t)len;
    p->pos += (size_t)len;
    push(p, id);
    return MM_OK;
}

static mm_status push_int(mm_pickle *p, int bytes, bool is_signed)
{
    MM_TRY(need(p, (size_t)bytes));
    uint64_t v = take_le(p, bytes);
    int id = new_node(p, MM_PK_INT);
    p->nodes[id].i = is_signed ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
    push(p, id);
    return MM_OK;
}

/* LONG1 / LONG4: n little-endian two's complement bytes. */
static mm_status push_long(mm_pickle *p, int len_bytes)
{
    MM_TRY(need(p, (size_t)len_bytes));
    uint64_t n = take_le(p, len_bytes);
    if (n > p->size - p->pos)
        return BAD(p, "an integer of %llu bytes runs past the end", (unsigned long long)n);
    const uint8_t *b = p->data + p->pos;
    p->pos += (size_t)n;
    if (n > 8) {
        int id = new_node(p, MM_PK_BIGINT);
        p->nodes[id].s = (const char *)b;
        p->nodes[id].len = (size_t)n;
        push(p, id);
        return MM_OK;
    }
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | b[i];
    if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    int id = new_node(p, MM_PK_INT);
    p->nodes[id].i = (int64_t)v;
    push(p, id);
    return MM_OK;
}

static mm_status push_float(mm_pickle *p)
{
    MM_TRY(need(p, 8));
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) bits = (bits << 8) | p->data[p->pos + (size_t)i]; /* big-endian */
    p->pos += 8;
    int id = new_node(p, MM_PK_FLOAT);
    memcpy(&p->nodes[id].f, &bits, sizeof bits);
    push(p, id);
    return MM_OK;
}

/* TUPLE, LIST, DICT, FROZENSET: a new node of the items since the mark. */
static mm_status collect(mm_pickle *p, mm_pk_kind kind)
{
    int from;
    MM_TRY(since_mark(p, &from));
    if (kind == MM_PK_DICT && (p->sp - from) % 2)
        return BAD(p, "a dict of an odd number (%d) of keys and values", p->sp - from);
    int id = new_node(p, kind);
    for (int k = from; k < p->sp; k++) add_item(p, id, p->stack[k]);
    p->sp = from;
    push(p, id);
    return MM_OK;
}

/* TUPLE1..3. */
static mm_status small_tuple(mm_pickle *p, int n)
{
    int items[3];
    for (int k = n - 1; k >= 0; k--) MM_TRY(pop(p, &items[k]));
    int id = new_node(p, MM_PK_TUPLE);
    for (int k = 0; k < n; k++) add_item(p, id, items[k]);
    push(p, id);
    return MM_OK;
}

/* APPEND(S), SETITEM(S), ADDITEMS: the items since the mark (or the top `n`) added to the node
 * below them when it is a list (step 1) or dict (step 2); dropped on anything else. */
static mm_status add_to(mm_pickle *p, bool marked, int n, int step)
{
    int from = p->sp - n;
    if (marked)
        MM_TRY(since_mark(p, &from));
    else if (from < floor_of(p))
        return BAD(p, "opcode 0x%02x takes from an empty stack", p->data[p->op_at]);
    if ((p->sp - from) % step)
        return BAD(p, "a dict of an odd number (%d) of keys and values", p->sp - from);
    int target;
    int count = p->sp - from;
    p->sp = from;
    MM_TRY(top(p, &target));
    mm_pk_kind want = step == 2 ? MM_PK_DICT : MM_PK_LIST;
    if (p->nodes[target].kind == want)
        for (int k = 0; k < count; k++) add_item(p, target, p->stack[from + k]);
    return MM_OK;
}

static mm_status push_global(mm_pickle *p, const char *module, size_t mlen, const char *name,
                             size_t nlen)
{
    int id = new_node(p, MM_PK_GLOBAL);
    p->nodes[id].s = module;
    p->nodes[id].len = mlen;
    p->nodes[id].name = name;
    p->nodes[id].name_len = nlen;
    push(p, id);
    return MM_OK;
}

/* GLOBAL: "module\nname\n". */
static mm_status text_global(mm_pickle *p)
{
    const char *parts[2];
    size_t lens[2];
    for (int k = 0; k < 2; k++) {
        const uint8_t *start = p->data + p->pos;
        const uint8_t *nl = memchr(start, '\n', p->size - p->pos);
        if (!nl) return BAD(p, "%s", "a global's name has no end");
        parts[k] = (const char *)start;
        lens[k] = (size_t)(nl - start);
        p->pos += lens[k] + 1;
    }
    return push_global(p, parts[0], lens[0], parts[1], lens[1]);
}

static mm_status stack_global(mm_pickle *p)
{
    int name, module;
    MM_TRY(pop(p, &name));
    MM_TRY(pop(p, &module));
    if (p->nodes[name].kind != MM_PK_STR || p->nodes[module].kind != MM_PK_STR)
        return BAD(p, "%s", "STACK_GLOBAL of something other than two strings");
    return push_global(p, p->nodes[module].s, p->nodes[module].len, p->nodes[name].s,
                       p->nodes[name].len);
}

/* REDUCE and NEWOBJ: callable(*args); collections.OrderedDict() is an empty dict. */
static mm_status call(mm_pickle *p, int callable, int args)
{
    if (p->nodes[args].kind != MM_PK_TUPLE)
        return BAD(p, "%s", "a call whose arguments are not a tuple");
    if (mm_pk_is_global(&p->nodes[callable], "collections", "OrderedDict") &&
        p->nodes[args].n == 0) {
        push(p, new_node(p, MM_PK_DICT));
        return MM_OK;
    }
    int id = new_node(p, MM_PK_CALL);
    add_item(p, id, callable);
    add_item(p, id, args);
    push(p, id);
    return MM_OK;
}

static mm_status memo_put(mm_pickle *p, uint64_t key)
{
    /* Python's pickler numbers its memo 0, 1, 2, ...: a key past the bytes read is corrupt */
    if (key > p->pos) return BAD(p, "memo key %llu is out of range", (unsigned long long)key);
    int node;
    MM_TRY(top(p, &node));
    if (key >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 64;
        while (cap <= key) cap *= 2;
        p->memo = mm_xrealloc(p->memo, cap * sizeof *p->memo);
        for (size_t k = p->memo_cap; k < cap; k++) p->memo[k] = -1;
        p->memo_cap = cap;
    }
    if (p->memo[key] < 0) p->memo_count++;
    p->memo[key] = node;
    return MM_OK;
}

static mm_status memo_get(mm_pickle *p, uint64_t key)
{
    if (key >= p->memo_cap || p->memo[key] < 0)
        return BAD(p, "memo key %llu was never put", (unsigned long long)key);
    push(p, p->memo[key]);
    return MM_OK;
}

/* Runs one opcode; *done at STOP. */
static mm_status step(mm_pickle *p, bool *done)
{
    p->op_at = p->pos;
    if (p->pos >= p->size) return BAD(p, "%s", "the pickle ends before its STOP opcode");
    uint8_t op = p->data[p->pos++];
    int a, b, c;
    switch (op) {
    case 0x80: /* PROTO */
        MM_TRY(need(p, 1));
        if (p->data[p->pos] < 2 || p->data[p->pos] > 5)
            return mm_fail(MM_ERR_UNSUPPORTED, "%s: pickle protocol %d; mammo reads protocols 2 "
                           "to 5", p->label, p->data[p->pos]);
        p->pos++;
        return MM_OK;
    case 0x95: /* FRAME: a length we do not need */
        MM_TRY(need(p, 8));
        p->pos += 8;
        return MM_OK;
    case '.': /* STOP */
        MM_TRY(pop(p, &p->root));
        *done = true;
        return MM_OK;
    case '(': /* MARK */
        grow((void **)&p->marks, &p->cap_marks, p->n_marks + 1, sizeof *p->marks);
        p->marks[p->n_marks++] = p->sp;
        return MM_OK;
    case '0': return pop(p, &a); /* POP */
    case '1': /* POP_MARK */
        MM_TRY(since_mark(p, &a));
        p->sp = a;
        return MM_OK;
    case '2': MM_TRY(top(p, &a)); push(p, a); return MM_OK; /* DUP */
    case 'N': push(p, new_node(p, MM_PK_NONE)); return MM_OK;
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        a = new_node(p, MM_PK_BOOL);
        p->nodes[a].i = op == 0x88;
        push(p, a);
        return MM_OK;
    case 'J': return push_int(p, 4, true);   /* BININT */
    case 'K': return push_int(p, 1, false);  /* BININT1 */
    case 'M': return push_int(p, 2, false);  /* BININT2 */
    case 0x8a: return push_long(p, 1);       /* LONG1 */
    case 0x8b: return push_long(p, 4);       /* LONG4 */
    case 'G': return push_float(p);          /* BINFLOAT */
    case 'X': return push_text(p, MM_PK_STR, 4);    /* BINUNICODE */
    case 0x8c: return push_text(p, MM_PK_STR, 1);   /* SHORT_BINUNICODE */
    case 0x8d: return push_text(p, MM_PK_STR, 8);   /* BINUNICODE8 */
    case 'T': return push_text(p, MM_PK_STR, 4);    /* BINSTRING (Python 2) */
    case 'U': return push_text(p, MM_PK_STR, 1);    /* SHORT_BINSTRING (Python 2) */
    case 'B': return push_text(p, MM_PK_BYTES, 4);  /* BINBYTES */
    case 'C': return push_text(p, MM_PK_BYTES, 1);  /* SHORT_BINBYTES */
    case 0x8e: return push_text(p, MM_PK_BYTES, 8); /* BINBYTES8 */
    case 0x96: return push_text(p, MM_PK_BYTES, 8); /* BYTEARRAY8 */
    case ')': push(p, new_node(p, MM_PK_TUPLE)); return MM_OK; /* EMPTY_TUPLE */
    case 't': return collect(p, MM_PK_TUPLE);
    case 0x85: return small_tuple(p, 1);
    case 0x86: return small_tuple(p, 2);
    case 0x87: return small_tuple(p, 3);
    case ']': push(p, new_node(p, MM_PK_LIST)); return MM_OK; /* EMPTY_LIST */
    case 0x8f: push(p, new_node(p, MM_PK_LIST)); return MM_OK; /* EMPTY_SET */
    case 'l': return collect(p, MM_PK_LIST);
    case 0x91: return collect(p, MM_PK_LIST);        /* FROZENSET */
    case 'a': return add_to(p, false, 1, 1);         /* APPEND */
    case 'e': return add_to(p, true, 0, 1);          /* APPENDS */
    case 0x90: return add_to(p, true, 0, 1);         /* ADDITEMS */
    case '}': push(p, new_node(p, MM_PK_DICT)); return MM_OK; /* EMPTY_DICT */
    case 'd': return collect(p, MM_PK_DICT);
    case 's': return add_to(p, false, 2, 2);         /* SETITEM */
    case 'u': return add_to(p, true, 0, 2);          /* SETITEMS */
    case 'c': return text_global(p);                 /* GLOBAL */
    case 0x93: return stack_global(p);               /* STACK_GLOBAL */
    case 'R':                                        /* REDUCE */
    case 0x81:                                       /* NEWOBJ */
        MM_TRY(pop(p, &b));
        MM_TRY(pop(p, &a));
        return call(p, a, b);
    case 0x92: /* NEWOBJ_EX: cls, args, kwargs */
        MM_TRY(pop(p, &c));
        MM_TRY(pop(p, &b));
        MM_TRY(pop(p, &a));
        return call(p, a, b);
    case 'b': /* BUILD */
        MM_TRY(pop(p, &b));
        MM_TRY(top(p, &a));
        p->nodes[a].state = b;
        return MM_OK;
    case 'Q': /* BINPERSID */
        MM_TRY(pop(p, &a));
        b = new_node(p, MM_PK_PERSID);
        add_item(p, b, a);
        push(p, b);
        return MM_OK;
    case 'q': MM_TRY(need(p, 1)); return memo_put(p, take_le(p, 1));    /* BINPUT */
    case 'r': MM_TRY(need(p, 4)); return memo_put(p, take_le(p, 4));    /* LONG_BINPUT */
    case 0x94: return memo_put(p, p->memo_count);                      /* MEMOIZE */
    case 'h': MM_TRY(need(p, 1)); return memo_get(p, take_le(p, 1));    /* BINGET */
    case 'j': MM_TRY(need(p, 4)); return memo_get(p, take_le(p, 4));    /* LONG_BINGET */
    default:
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: pickle byte %zu: opcode 0x%02x ('%c') is not one "
                       "mammo reads (text opcodes of protocols 0 and 1, extensions and "
                       "out-of-band buffers are not)" HINT, p->label, p->op_at, op,
                       op >= 32 && op < 127 ? op : '?');
    }
}

mm_status mm_pickle_parse(mm_pickle **out, const uint8_t *data, size_t size, const char *label,
                          size_t *used)
{
    *out = NULL;
    mm_pickle *p = mm_xcalloc(1, sizeof *p);
    p->label = label;
    p->data = data;
    p->size = size;
    p->root = -1;
    mm_status st = MM_OK;
    if (size < 2 || data[0] != 0x80)
        st = mm_fail(MM_ERR_FORMAT, "%s: not a pickle of protocol 2 or later (it does not start "
                     "with the PROTO opcode)", label);
    for (bool done = false; st == MM_OK && !done;) st = step(p, &done);
    if (st != MM_OK) {
        mm_pickle_free(p);
        return st;
    }
    if (used) *used = p->pos;
    p->label = NULL; /* the caller's; messages are made while parsing only */
    *out = p;
    return MM_OK;
}

void mm_pickle_free(mm_pickle *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_nodes; i++) free(p->nodes[i].items);
    free(p->nodes);
    free(p->stack);
    free(p->marks);
    free(p->memo);
    free(p);
}

int mm_pickle_root(const mm_pickle *p) { return p->root; }
int mm_pickle_count(const mm_pickle *p) { return p->n_nodes; }

const mm_pk_node *mm_pk_get(const mm_pickle *p, int id)
{
    MM_ASSERT(id >= 0 && id < p->n_nodes);
    return &p->nodes[id];
}

bool mm_pk_is_str(const mm_pk_node *n, const char *s)
{
    return n->kind == MM_PK_STR && n->len == strlen(s) && !memcmp(n->s, s, n->len);
}

bool mm_pk_is_global(const mm_pk_node *n, const char *module, const char *name)
{
    return n->kind == MM_PK_GLOBAL && n->len == strlen(module) && !memcmp(n->s, module, n->len) &&
           n->name_len == strlen(name) && !memcmp(n->name, name, n->name_len);
}

int mm_pk_dict_get(const mm_pickle *p, int dict, const char *key)
{
    const mm_pk_node *d = mm_pk_get(p, dict);
    if (d->kind != MM_PK_DICT) return -1;
    for (int k = 0; k + 1 < d->n; k += 2)
        if (mm_pk_is_str(mm_pk_get(p, d->items[k]), key)) return d->items[k + 1];
    return -1;
}
