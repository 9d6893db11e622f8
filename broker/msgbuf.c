/*
 * msgbuf.c - the per-shard msgbuf pool (see msgbuf.h). Size classes are
 * chosen so that header + data fill 64 B .. 256 KiB malloc chunks; each
 * class keeps at most MSGPOOL_KEEP_BYTES of free buffers so a burst does not
 * pin memory forever.
 */
#include "msgbuf.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* Powers of two up to 16 KiB (a 4 KiB payload with its subject and
 * framing takes the 8 KiB class, not 16 KiB), then x4. */
static const uint32_t class_size[MSGPOOL_CLASSES] = {40,   104,  232,   488,   1000,  2024,
                                                     4072, 8168, 16360, 65512, 262120};

/* See msgbuf.h. */
void msgpool_init(struct msgpool *p, uint16_t owner)
{
    memset(p, 0, sizeof(*p));
    p->owner = owner;
}

/* See msgbuf.h. */
void msgpool_fini(struct msgpool *p)
{
    for (int i = 0; i < MSGPOOL_CLASSES; i++) {
        while (p->free[i]) {
            struct msgbuf *m = p->free[i];
            p->free[i] = m->next;
            free(m);
        }
        p->nfree[i] = 0;
    }
}

/* See msgbuf.h. */
struct msgbuf *msgbuf_new(struct msgpool *p, uint32_t len)
{
    struct msgbuf *m;
    uint8_t cls = MSGPOOL_CLASSES;
    for (uint8_t i = 0; i < MSGPOOL_CLASSES; i++) {
        if (len <= class_size[i]) {
            cls = i;
            break;
        }
    }
    if (cls < MSGPOOL_CLASSES && p->free[cls]) {
        m = p->free[cls];
        p->free[cls] = m->next;
        p->nfree[cls]--;
    } else {
        size_t cap = cls < MSGPOOL_CLASSES ? class_size[cls] : len;
        m = xmalloc(sizeof(*m) + cap);
        m->cls = cls;
        m->owner = p->owner;
    }
    atomic_init(&m->refs, 1);
    m->len = len;
    m->next = NULL;
    p->live++;
    return m;
}

/* See msgbuf.h. */
uint32_t msgbuf_room(const struct msgbuf *m)
{
    return m->cls < MSGPOOL_CLASSES ? class_size[m->cls] : m->len;
}

/* See msgbuf.h. */
void msgpool_put(struct msgpool *p, struct msgbuf *m)
{
    p->live--;
    if (m->cls < MSGPOOL_CLASSES &&
        p->nfree[m->cls] < MSGPOOL_KEEP_BYTES / (class_size[m->cls] + sizeof(*m))) {
        m->next = p->free[m->cls];
        p->free[m->cls] = m;
        p->nfree[m->cls]++;
        return;
    }
    free(m);
}
