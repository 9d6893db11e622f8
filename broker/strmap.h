/*
 * strmap.h - a small open-addressing hash map from byte strings to a pointer
 * and a count. Keys are copied. Used for control-plane bookkeeping (interest
 * per pattern and queue group), not on the per-message path.
 *
 * Thread: one owner thread; no locking. Allocation failure aborts (broker
 * glue policy).
 */
#ifndef RMQ_BROKER_STRMAP_H
#define RMQ_BROKER_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_ent {
    char *key; /* NULL: empty slot */
    size_t klen;
    uint64_t hash;
    void *val;
    uint64_t count;
};

struct strmap {
    struct strmap_ent *ents;
    size_t cap, n;
};

void strmap_init(struct strmap *m);
/* Free the keys and the table; the values are the caller's. */
void strmap_fini(struct strmap *m);
/* Find key; NULL if absent. The entry is valid until the next put/del. */
struct strmap_ent *strmap_get(struct strmap *m, const void *key, size_t klen);
/* Find or add key (val NULL, count 0 when new). */
struct strmap_ent *strmap_put(struct strmap *m, const void *key, size_t klen);
/* Remove the entry e returned by get/put. */
void strmap_del(struct strmap *m, struct strmap_ent *e);
/* 64-bit FNV-1a of the bytes. */
uint64_t strmap_hash(const void *key, size_t klen);

#endif
