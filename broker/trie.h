/*
 * trie.h - the subscription index of one shard: a token trie with "*" and
 * ">" wildcards, plain subscribers and queue groups. See trie.c for the
 * layout. Subscription values are opaque pointers owned by the caller.
 *
 * Thread: a trie belongs to one shard and is used by that shard's thread
 * only; nothing here locks.
 */
#ifndef RMQ_BROKER_TRIE_H
#define RMQ_BROKER_TRIE_H

#include <stddef.h>
#include <stdint.h>

#include "subject.h"

struct trie;

/*
 * What a visitor says about the queue-group member it was offered (ignored
 * for plain subscriptions): the member took the message; this member cannot
 * take it, offer the next one; or this group is not ours to serve, skip it
 * without moving its round-robin cursor.
 */
enum trie_visit_rc { TRIE_TAKEN = 0, TRIE_NEXT_MEMBER = 1, TRIE_SKIP_GROUP = 2 };

/* Called by trie_match() for each delivery; must not modify the trie. */
typedef enum trie_visit_rc (*trie_visit_fn)(void *sub, void *arg);

/* New empty trie, or NULL on OOM. */
struct trie *trie_new(void);

/* Free t and all its nodes (NULL ok). The subs themselves are not freed. */
void trie_free(struct trie *t);

/*
 * Store sub under pattern pat in queue group queue (qlen 0: plain).
 * Returns 1 if the pattern had no subscriber before, 0 if it had some,
 * RMQ_ESUBJECT, -EINVAL (queue NULL with qlen > 0) or -ENOMEM (t unchanged).
 */
int trie_insert(struct trie *t, const char *pat, size_t plen, const char *queue, size_t qlen,
                void *sub);

/*
 * Remove one occurrence of sub from pattern/queue. Returns 1 if the pattern
 * has no subscriber left, 0 if it has, RMQ_ENOTFOUND, RMQ_ESUBJECT or -EINVAL.
 */
int trie_remove(struct trie *t, const char *pat, size_t plen, const char *queue, size_t qlen,
                void *sub);

/*
 * Call fn for every matching plain sub and for one member (round-robin) of
 * every matching queue group; see enum trie_visit_rc for how fn steers the
 * group choice. Returns the number of calls. No allocation.
 */
size_t trie_match(struct trie *t, const char *subj, size_t slen, trie_visit_fn fn, void *arg);

/* Number of stored subscriptions (plain and queue members). */
size_t trie_count(const struct trie *t);

/*
 * A number that changes with every trie_insert() and trie_remove() (0 for
 * NULL): a caller may keep what one trie_match() found while it stays the
 * same (the walk's result then only changes through group cursors).
 */
uint64_t trie_gen(const struct trie *t);

/*
 * Test only, not thread-safe: replace the allocator used by every trie.
 * Passing NULL for any of the three restores malloc/realloc/free. Switch
 * only while no trie exists, or with functions compatible with the old ones.
 */
void trie_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t), void (*f)(void *));

#endif
