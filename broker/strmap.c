/*
 * strmap.c - see strmap.h. Linear probing with backward-shift deletion, so
 * there are no tombstones; the table doubles at 70 % load.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* See strmap.h. */
uint64_t strmap_hash(const void *key, size_t klen)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* See strmap.h. */
void strmap_init(struct strmap *m)
{
    m->ents = NULL;
    m->cap = m->n = 0;
}

/* See strmap.h. */
void strmap_fini(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->ents[i].key);
    free(m->ents);
    strmap_init(m);
}

static struct strmap_ent *slot_for(struct strmap *m, const void *key, size_t klen, uint64_t h)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct strmap_ent *e = &m->ents[i];
        if (!e->key || (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0))
            return e;
    }
}

/* See strmap.h. */
struct strmap_ent *strmap_get(struct strmap *m, const void *key, size_t klen)
{
    struct strmap_ent *e;
    if (!m->cap)
        return NULL;
    e = slot_for(m, key, klen, strmap_hash(key, klen));
    return e->key ? e : NULL;
}

static void grow(struct strmap *m)
{
    struct strmap_ent *old = m->ents;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->ents = xcalloc(m->cap, sizeof(*m->ents));
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            *slot_for(m, old[i].key, old[i].klen, old[i].hash) = old[i];
    free(old);
}

/* See strmap.h. */
struct strmap_ent *strmap_put(struct strmap *m, const void *key, size_t klen)
{
    uint64_t h = strmap_hash(key, klen);
    struct strmap_ent *e;
    if ((m->n + 1) * 10 > m->cap * 7)
        grow(m);
    e = slot_for(m, key, klen, h);
    if (e->key)
        return e;
    e->key = xmalloc(klen + 1);
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    e->hash = h;
    e->val = NULL;
    e->count = 0;
    m->n++;
    return e;
}

/* See strmap.h. */
void strmap_del(struct strmap *m, struct strmap_ent *e)
{
    size_t i = (size_t)(e - m->ents), j = i;
    free(e->key);
    e->key = NULL;
    m->n--;
    /* Backward shift: move later entries of the probe run into the hole. */
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->ents[j].key)
            return;
        size_t home = m->ents[j].hash & (m->cap - 1);
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->ents[i] = m->ents[j];
            m->ents[j].key = NULL;
            i = j;
        }
    }
}
