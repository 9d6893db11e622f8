/*
 * trie.c - the subscription index: a token trie with wildcards.
 *
 * Each subscription pattern is one path from the root, one node per token.
 * A node keeps its literal children by token, plus two extra slots: "star"
 * for a "*" token and "gt" for a ">" token. Where a pattern ends, the node
 * holds the plain subscribers and the queue groups of that pattern:
 *
 *     subscriptions: orders.eu -> s1, orders.* -> s2, orders.> -> s3,
 *                    orders.eu in queue "w" -> s4 and s6, logs -> s5
 *
 *                          (root)
 *                    kids /      \ kids
 *               [orders]          [logs] subs {s5}
 *         kids /   | star  \ gt
 *          [eu]   (*)       (>)
 *           |      subs {s2} subs {s3}
 *           subs {s1}, groups {"w": members {s4 s6}, cursor}
 *
 *     match "orders.eu": s1, s2, s3, and s4 or s6 (alternating)
 *     match "orders":    nothing (">" needs at least one more token)
 *
 * A node is laid out as:
 *
 *     +--------+-----+-----------------------+------+-----+-------+--------+
 *     | parent | tok | kids (array or hash)  | star | gt  | subs  | groups |
 *     +--------+-----+-----------------------+------+-----+-------+--------+
 *
 * kids is a dense array while it holds up to TRIE_ARRAY_MAX children, then
 * an open-addressing hash table (linear probing, power-of-two size, load at
 * most 1/2, backward-shift deletion, no tombstones), so a node with 10,000
 * sibling tokens still finds a child in O(1).
 *
 * A queue group is a name, its members and a round-robin cursor. Each
 * matching message goes to exactly one member of each matching group; two
 * groups with the same name under different patterns are different groups.
 *
 * Matching a subject walks the trie depth-first with an explicit stack of
 * at most SUBJECT_MAX_TOKENS + 1 entries: at depth d it follows the literal
 * child for token d and the star child, and delivers the gt child's
 * subscribers at once (">" needs at least one token, which token d is).
 * The cost grows with the subject's depth and the number of matches, not
 * with the number of subscriptions. trie_match() never allocates.
 *
 * Invariants: every non-root node is in use (has a child, a star, a gt or
 * a subscriber); empty nodes and empty groups are freed at once, and empty
 * arrays are freed, so after the last trie_remove() the trie holds no
 * memory besides struct trie itself. node->nrefs counts the subscribers of
 * the pattern ending at node (plain plus all group members).
 *
 * OOM: every allocation failure returns -ENOMEM and undoes the insert, so
 * the trie keeps its contents (it may keep a larger table than before).
 * trie_remove() never fails for lack of memory: shrinking is best effort.
 *
 * Thread: a trie is owned by one shard and used by its thread only. The
 * allocator hooks are process-wide and for tests only.
 */
#include "trie.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rmq_error.h"

#define TRIE_ARRAY_MAX 8 /* children kept in a dense array up to this many */
#define TRIE_HASH_MIN 32 /* slots of the smallest child hash table (power of two) */
#define TRIE_STACK_MAX (SUBJECT_MAX_TOKENS + 1)
#define TRIE_HASH_SEED 2166136261u /* FNV-1a offset basis */

enum trie_slot { TRIE_SLOT_ROOT, TRIE_SLOT_LITERAL, TRIE_SLOT_STAR, TRIE_SLOT_GT };

struct trie_group {
    void **members;
    size_t nmembers;
    size_t cap;
    size_t cursor; /* index of the member that gets the next message */
    size_t namelen;
    char *name; /* stored just past the struct, same allocation */
};

struct trie_node {
    struct trie_node *parent;
    const char *tok; /* literal token, just past the struct; NULL for root, star, gt */
    uint32_t toklen;
    uint32_t hash; /* trie_hash(tok) */
    enum trie_slot slot;
    uint32_t nkids;
    uint32_t kcap; /* <= TRIE_ARRAY_MAX: dense array of nkids; else hash slots */
    struct trie_node **kids;
    struct trie_node *star;
    struct trie_node *gt;
    void **subs; /* plain subscribers of the pattern ending here */
    size_t nsubs;
    size_t subcap;
    struct trie_group **groups;
    size_t ngroups;
    size_t gcap;
    size_t nrefs; /* nsubs + members of all groups */
};

struct trie {
    struct trie_node root;
    size_t count;
    uint64_t gen; /* bumped by every trie_insert() and trie_remove() */
};

/* ---- Allocator hooks (swappable by tests) ---- */

static void *(*trie_alloc_fn)(size_t) = malloc;
static void *(*trie_realloc_fn)(void *, size_t) = realloc;
static void (*trie_free_fn)(void *) = free;

static void *trie_malloc(size_t size)
{
    return trie_alloc_fn(size);
}

static void *trie_realloc(void *p, size_t size)
{
    return trie_realloc_fn(p, size);
}

static void trie_free_mem(void *p)
{
    if (p != NULL)
        trie_free_fn(p);
}

/*
 * Replace the allocator of all tries with m/r/f, which must behave like
 * malloc/realloc/free (a failed r leaves the old block intact). Passing NULL
 * for any of them restores the libc functions. Memory must be freed by the
 * allocator that made it, so switch only when no trie exists or when the new
 * functions wrap the old ones.
 * Test only: not thread-safe, and not meant for production code.
 */
void trie_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t), void (*f)(void *))
{
    if (m == NULL || r == NULL || f == NULL) {
        trie_alloc_fn = malloc;
        trie_realloc_fn = realloc;
        trie_free_fn = free;
        return;
    }
    trie_alloc_fn = m;
    trie_realloc_fn = r;
    trie_free_fn = f;
}

/* ---- Small helpers ---- */

/* FNV-1a: tokens are short, and the table masks the low bits. */
static uint32_t trie_hash_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}

static uint32_t trie_hash(const char *s, size_t len)
{
    uint32_t h = TRIE_HASH_SEED;
    size_t i;

    for (i = 0; i < len; i++)
        h = trie_hash_step(h, (unsigned char)s[i]);
    return h;
}

/*
 * Grow a pointer array of *cap elements of elem bytes to twice its size (or
 * 2). Returns the new array and updates *cap, or NULL with arr untouched.
 */
static void *trie_grow(void *arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap != 0 ? *cap * 2 : 2;
    void *p;

    if (*cap > SIZE_MAX / 2 / elem)
        return NULL;
    p = trie_realloc(arr, ncap * elem);
    if (p != NULL)
        *cap = ncap;
    return p;
}

/* Best-effort shrink of an array holding n (> 0) of *cap elements. */
static void *trie_shrink(void *arr, size_t n, size_t *cap, size_t elem)
{
    void *p;

    if (*cap <= 4 || n * 4 > *cap)
        return arr;
    p = trie_realloc(arr, *cap / 2 * elem);
    if (p == NULL)
        return arr;
    *cap /= 2;
    return p;
}

/* Tokens of a valid pattern or subject: the token at *pos, then step past its dot. */
static const char *trie_token_next(const char *s, size_t len, size_t *pos, size_t *tlen)
{
    const char *tok = s + *pos;
    const char *dot = memchr(tok, '.', len - *pos);

    *tlen = dot != NULL ? (size_t)(dot - tok) : len - *pos;
    *pos += *tlen + 1;
    return tok;
}

static bool trie_tok_is(const char *tok, size_t tlen, char c)
{
    return tlen == 1 && tok[0] == c;
}

/* ---- Children: dense array, then hash table ---- */

static bool trie_kids_hashed(const struct trie_node *n)
{
    return n->kcap > TRIE_ARRAY_MAX;
}

static bool trie_node_is(const struct trie_node *k, const char *tok, size_t len, uint32_t h)
{
    return k->hash == h && k->toklen == len && memcmp(k->tok, tok, len) == 0;
}

static struct trie_node *trie_kid_find(const struct trie_node *n, const char *tok, size_t len,
                                       uint32_t h)
{
    uint32_t mask;
    uint32_t i;

    if (!trie_kids_hashed(n)) {
        for (i = 0; i < n->nkids; i++) {
            if (trie_node_is(n->kids[i], tok, len, h))
                return n->kids[i];
        }
        return NULL;
    }
    mask = n->kcap - 1;
    for (i = h & mask; n->kids[i] != NULL; i = (i + 1) & mask) {
        if (trie_node_is(n->kids[i], tok, len, h))
            return n->kids[i];
    }
    return NULL;
}

static void trie_hash_put(struct trie_node **slots, uint32_t cap, struct trie_node *k)
{
    uint32_t mask = cap - 1;
    uint32_t i = k->hash & mask;

    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = k;
}

/*
 * Move n's children into storage of ncap slots (dense array if ncap <=
 * TRIE_ARRAY_MAX, else a hash table; ncap >= nkids, and > 2 * nkids for a
 * table). Returns 0, or -ENOMEM with n unchanged.
 */
static int trie_kids_resize(struct trie_node *n, uint32_t ncap)
{
    struct trie_node **nk;
    uint32_t i;
    uint32_t j = 0;

    if (ncap <= TRIE_ARRAY_MAX && !trie_kids_hashed(n)) {
        nk = trie_realloc(n->kids, ncap * sizeof(*nk));
        if (nk == NULL)
            return -ENOMEM;
        n->kids = nk;
        n->kcap = ncap;
        return 0;
    }
    nk = trie_malloc(ncap * sizeof(*nk));
    if (nk == NULL)
        return -ENOMEM;
    if (ncap > TRIE_ARRAY_MAX)
        memset(nk, 0, ncap * sizeof(*nk));
    for (i = 0; i < (trie_kids_hashed(n) ? n->kcap : n->nkids); i++) {
        if (n->kids[i] == NULL)
            continue;
        if (ncap > TRIE_ARRAY_MAX)
            trie_hash_put(nk, ncap, n->kids[i]);
        else
            nk[j++] = n->kids[i];
    }
    trie_free_mem(n->kids);
    n->kids = nk;
    n->kcap = ncap;
    return 0;
}

/* Make room for one more child. Returns 0 or -ENOMEM (n unchanged). */
static int trie_kids_reserve(struct trie_node *n)
{
    if (!trie_kids_hashed(n)) {
        if (n->nkids < n->kcap)
            return 0;
        if (n->kcap < TRIE_ARRAY_MAX)
            return trie_kids_resize(n, n->kcap != 0 ? n->kcap * 2 : 2);
        return trie_kids_resize(n, TRIE_HASH_MIN);
    }
    if ((n->nkids + 1) * 2 <= n->kcap)
        return 0;
    if (n->kcap > UINT32_MAX / 2)
        return -ENOMEM;
    return trie_kids_resize(n, n->kcap * 2);
}

/* Link child k into n; trie_kids_reserve(n) must have succeeded. */
static void trie_kids_add(struct trie_node *n, struct trie_node *k)
{
    if (trie_kids_hashed(n))
        trie_hash_put(n->kids, n->kcap, k);
    else
        n->kids[n->nkids] = k;
    n->nkids++;
}

/* Remove slot i from a linear-probing table by shifting later entries back. */
static void trie_hash_del(struct trie_node **slots, uint32_t cap, uint32_t i)
{
    uint32_t mask = cap - 1;
    uint32_t j = i;

    slots[i] = NULL;
    for (;;) {
        uint32_t home;

        j = (j + 1) & mask;
        if (slots[j] == NULL)
            return;
        home = slots[j]->hash & mask;
        /* slots[j] may fill the hole unless its home lies cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            slots[i] = slots[j];
            slots[j] = NULL;
            i = j;
        }
    }
}

/* Unlink child k from n, then shrink n's child storage if that is cheap. */
static void trie_kids_del(struct trie_node *n, struct trie_node *k)
{
    uint32_t i;

    if (!trie_kids_hashed(n)) {
        for (i = 0; n->kids[i] != k; i++)
            ;
        n->kids[i] = n->kids[--n->nkids];
    } else {
        uint32_t mask = n->kcap - 1;

        for (i = k->hash & mask; n->kids[i] != k; i = (i + 1) & mask)
            ;
        trie_hash_del(n->kids, n->kcap, i);
        n->nkids--;
    }

    if (n->nkids == 0) {
        trie_free_mem(n->kids);
        n->kids = NULL;
        n->kcap = 0;
    } else if (trie_kids_hashed(n) && n->nkids <= TRIE_ARRAY_MAX / 2) {
        (void)trie_kids_resize(n, TRIE_ARRAY_MAX); /* best effort */
    } else if (trie_kids_hashed(n) && n->kcap > TRIE_HASH_MIN && n->nkids * 8 <= n->kcap) {
        (void)trie_kids_resize(n, n->kcap / 4 > TRIE_HASH_MIN ? n->kcap / 4 : TRIE_HASH_MIN);
    }
}

/* ---- Nodes and groups ---- */

static struct trie_node *trie_node_new(struct trie_node *parent, enum trie_slot slot,
                                       const char *tok, size_t len)
{
    struct trie_node *k = trie_malloc(sizeof(*k) + len);

    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof(*k));
    k->parent = parent;
    k->slot = slot;
    if (slot == TRIE_SLOT_LITERAL) {
        memcpy(k + 1, tok, len);
        k->tok = (const char *)(k + 1);
        k->toklen = (uint32_t)len;
        k->hash = trie_hash(tok, len);
    }
    return k;
}

static bool trie_node_unused(const struct trie_node *n)
{
    return n->nkids == 0 && n->star == NULL && n->gt == NULL && n->nrefs == 0;
}

static void trie_group_free(struct trie_group *g)
{
    trie_free_mem(g->members);
    trie_free_mem(g);
}

/* Free n and everything below it. Recursion depth is at most SUBJECT_MAX_TOKENS. */
static void trie_node_free_tree(struct trie_node *n, bool self)
{
    uint32_t nslots = trie_kids_hashed(n) ? n->kcap : n->nkids;
    uint32_t i;

    for (i = 0; i < nslots; i++) {
        if (n->kids[i] != NULL)
            trie_node_free_tree(n->kids[i], true);
    }
    if (n->star != NULL)
        trie_node_free_tree(n->star, true);
    if (n->gt != NULL)
        trie_node_free_tree(n->gt, true);
    for (i = 0; i < n->ngroups; i++)
        trie_group_free(n->groups[i]);
    trie_free_mem(n->groups);
    trie_free_mem(n->subs);
    trie_free_mem(n->kids);
    if (self)
        trie_free_mem(n);
}

/* Free unused nodes from n up towards the root (the root itself stays). */
static void trie_prune(struct trie *t, struct trie_node *n)
{
    while (n != &t->root && trie_node_unused(n)) {
        struct trie_node *p = n->parent;

        switch (n->slot) {
        case TRIE_SLOT_STAR:
            p->star = NULL;
            break;
        case TRIE_SLOT_GT:
            p->gt = NULL;
            break;
        default:
            trie_kids_del(p, n);
            break;
        }
        trie_node_free_tree(n, true);
        n = p;
    }
}

static struct trie_group *trie_group_find(const struct trie_node *n, const char *name, size_t len,
                                          size_t *idx)
{
    size_t i;

    for (i = 0; i < n->ngroups; i++) {
        struct trie_group *g = n->groups[i];

        if (g->namelen == len && memcmp(g->name, name, len) == 0) {
            if (idx != NULL)
                *idx = i;
            return g;
        }
    }
    return NULL;
}

/* A new group with room for one member, or NULL on OOM. */
static struct trie_group *trie_group_new(const char *name, size_t len)
{
    struct trie_group *g;

    if (len > SIZE_MAX - sizeof(*g))
        return NULL;
    g = trie_malloc(sizeof(*g) + len);
    if (g == NULL)
        return NULL;
    memset(g, 0, sizeof(*g));
    g->name = (char *)(g + 1);
    memcpy(g->name, name, len);
    g->namelen = len;
    g->members = trie_grow(NULL, &g->cap, sizeof(*g->members));
    if (g->members == NULL) {
        trie_free_mem(g);
        return NULL;
    }
    return g;
}

/* Walk pattern pat (valid) from the root without creating nodes; NULL if absent. */
static struct trie_node *trie_find(struct trie *t, const char *pat, size_t plen)
{
    struct trie_node *n = &t->root;
    size_t pos = 0;

    while (n != NULL && pos < plen) {
        size_t tlen;
        const char *tok = trie_token_next(pat, plen, &pos, &tlen);

        if (trie_tok_is(tok, tlen, '*'))
            n = n->star;
        else if (trie_tok_is(tok, tlen, '>'))
            n = n->gt;
        else
            n = trie_kid_find(n, tok, tlen, trie_hash(tok, tlen));
    }
    return n;
}

/* ---- Public API ---- */

/*
 * Create an empty trie. Returns it (owned by the caller, release with
 * trie_free()), or NULL on OOM.
 * Thread: single shard thread (the one that will own the trie).
 */
struct trie *trie_new(void)
{
    struct trie *t = trie_malloc(sizeof(*t));

    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof(*t));
    t->root.slot = TRIE_SLOT_ROOT;
    return t;
}

/*
 * Free t with all its nodes, groups and arrays. NULL is a no-op. The
 * subscription values are borrowed and are not freed.
 * Thread: single shard thread.
 */
void trie_free(struct trie *t)
{
    if (t == NULL)
        return;
    trie_node_free_tree(&t->root, false);
    trie_free_mem(t);
}

/*
 * Store sub under pattern pat (plen bytes, checked with
 * subject_check_pattern()) as a plain subscriber if qlen is 0, or as a
 * member of queue group queue (qlen bytes, opaque) of that pattern.
 * The same sub may be stored several times; each insert stores one more
 * occurrence. pat and queue are copied; sub is borrowed and stays owned by
 * the caller, who must keep it valid until it is removed or t is freed.
 * Returns 1 if the pattern had no subscriber at all (plain or queue) before
 * this insert, 0 if it had some, RMQ_ESUBJECT for a bad pattern, -EINVAL if
 * t is NULL or queue is NULL with qlen > 0, or -ENOMEM, in which case t
 * keeps exactly the subscriptions it had.
 * Thread: single shard thread.
 */
int trie_insert(struct trie *t, const char *pat, size_t plen, const char *queue, size_t qlen,
                void *sub)
{
    struct trie_node *n;
    size_t pos = 0;

    if (t == NULL || (queue == NULL && qlen > 0))
        return -EINVAL;
    if (subject_check_pattern(pat, plen) != 0)
        return RMQ_ESUBJECT;
    t->gen++;

    n = &t->root;
    while (pos < plen) {
        size_t tlen;
        const char *tok = trie_token_next(pat, plen, &pos, &tlen);
        struct trie_node *k;

        if (trie_tok_is(tok, tlen, '*')) {
            if (n->star == NULL && (n->star = trie_node_new(n, TRIE_SLOT_STAR, NULL, 0)) == NULL)
                goto err_oom;
            n = n->star;
        } else if (trie_tok_is(tok, tlen, '>')) {
            if (n->gt == NULL && (n->gt = trie_node_new(n, TRIE_SLOT_GT, NULL, 0)) == NULL)
                goto err_oom;
            n = n->gt;
        } else {
            k = trie_kid_find(n, tok, tlen, trie_hash(tok, tlen));
            if (k == NULL) {
                k = trie_node_new(n, TRIE_SLOT_LITERAL, tok, tlen);
                if (k == NULL)
                    goto err_oom;
                if (trie_kids_reserve(n) != 0) {
                    trie_free_mem(k);
                    goto err_oom;
                }
                trie_kids_add(n, k);
            }
            n = k;
        }
    }

    if (qlen == 0) {
        if (n->nsubs == n->subcap) {
            void **subs = trie_grow(n->subs, &n->subcap, sizeof(*subs));

            if (subs == NULL)
                goto err_oom;
            n->subs = subs;
        }
        n->subs[n->nsubs++] = sub;
    } else {
        struct trie_group *g = trie_group_find(n, queue, qlen, NULL);

        if (g == NULL) {
            g = trie_group_new(queue, qlen);
            if (g == NULL)
                goto err_oom;
            if (n->ngroups == n->gcap) {
                struct trie_group **groups = trie_grow(n->groups, &n->gcap, sizeof(*groups));

                if (groups == NULL) {
                    trie_group_free(g);
                    goto err_oom;
                }
                n->groups = groups;
            }
            n->groups[n->ngroups++] = g;
        } else if (g->nmembers == g->cap) {
            void **members = trie_grow(g->members, &g->cap, sizeof(*members));

            if (members == NULL)
                goto err_oom;
            g->members = members;
        }
        g->members[g->nmembers++] = sub;
    }

    t->count++;
    return n->nrefs++ == 0 ? 1 : 0;

err_oom:
    trie_prune(t, n); /* drops the nodes this call created, all of them unused */
    return -ENOMEM;
}

/*
 * Remove one occurrence of sub from pattern pat, as a plain subscriber if
 * qlen is 0, else from queue group queue of that pattern. Frees the group
 * when its last member goes and prunes nodes left unused, so memory returns
 * to what trie_new() took once everything is removed. Never allocates
 * memory that it needs (shrinking is best effort), so it cannot fail on OOM.
 * Returns 1 if the pattern has no subscriber left, 0 if it still has some,
 * RMQ_ENOTFOUND if sub is not stored there, RMQ_ESUBJECT for a bad pattern,
 * -EINVAL if t is NULL or queue is NULL with qlen > 0.
 * Thread: single shard thread.
 */
int trie_remove(struct trie *t, const char *pat, size_t plen, const char *queue, size_t qlen,
                void *sub)
{
    struct trie_node *n;
    size_t i;

    if (t == NULL || (queue == NULL && qlen > 0))
        return -EINVAL;
    if (subject_check_pattern(pat, plen) != 0)
        return RMQ_ESUBJECT;
    t->gen++;
    n = trie_find(t, pat, plen);
    if (n == NULL)
        return RMQ_ENOTFOUND;

    if (qlen == 0) {
        /* Search from the end: the newest occurrence goes, and memmove is short. */
        for (i = n->nsubs; i > 0 && n->subs[i - 1] != sub; i--)
            ;
        if (i == 0)
            return RMQ_ENOTFOUND;
        i--;
        memmove(&n->subs[i], &n->subs[i + 1], (n->nsubs - i - 1) * sizeof(*n->subs));
        if (--n->nsubs == 0) {
            trie_free_mem(n->subs);
            n->subs = NULL;
            n->subcap = 0;
        } else {
            n->subs = trie_shrink(n->subs, n->nsubs, &n->subcap, sizeof(*n->subs));
        }
    } else {
        size_t gi;
        struct trie_group *g = trie_group_find(n, queue, qlen, &gi);

        if (g == NULL)
            return RMQ_ENOTFOUND;
        for (i = g->nmembers; i > 0 && g->members[i - 1] != sub; i--)
            ;
        if (i == 0)
            return RMQ_ENOTFOUND;
        i--;
        memmove(&g->members[i], &g->members[i + 1], (g->nmembers - i - 1) * sizeof(*g->members));
        g->nmembers--;
        /* Keep the cursor on the member it pointed at, so the rotation stays even. */
        if (i < g->cursor)
            g->cursor--;
        if (g->cursor >= g->nmembers)
            g->cursor = 0;
        if (g->nmembers == 0) {
            trie_group_free(g);
            n->groups[gi] = n->groups[--n->ngroups];
            if (n->ngroups == 0) {
                trie_free_mem(n->groups);
                n->groups = NULL;
                n->gcap = 0;
            }
        } else {
            g->members = trie_shrink(g->members, g->nmembers, &g->cap, sizeof(*g->members));
        }
    }

    t->count--;
    if (--n->nrefs != 0)
        return 0;
    trie_prune(t, n);
    return 1;
}

/* ---- Publish path: no allocation from here on ---- */

struct trie_tok {
    const char *tok;
    size_t len;
    uint32_t hash;
};

/*
 * Validate a publish subject and split it into hashed tokens in one pass.
 * Same rules as subject_check() (the fuzz tests hold the two together), but
 * without a second walk over the bytes for memchr() and hashing.
 * Returns the number of tokens, or 0 if subj is not a valid subject.
 */
static size_t trie_subject_split(const char *subj, size_t slen, struct trie_tok *toks)
{
    uint32_t h = TRIE_HASH_SEED;
    size_t start = 0;
    size_t ntok = 0;
    size_t i;

    if (subj == NULL || slen == 0 || slen > SUBJECT_MAX_LEN)
        return 0;
    for (i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)subj[i];

        if (c == '.') {
            if (i == start || ntok == SUBJECT_MAX_TOKENS - 1)
                return 0;
            toks[ntok].tok = subj + start;
            toks[ntok].len = i - start;
            toks[ntok].hash = h;
            ntok++;
            h = TRIE_HASH_SEED;
            start = i + 1;
            continue;
        }
        if (c < 0x21 || c == 0x7f || c == '*' || c == '>')
            return 0;
        h = trie_hash_step(h, c);
    }
    if (start == slen)
        return 0; /* trailing dot */
    toks[ntok].tok = subj + start;
    toks[ntok].len = slen - start;
    toks[ntok].hash = h;
    return ntok + 1;
}

/* Deliver the pattern ending at n: all plain subs, one member per group.
 * Returns the number of fn calls. */
static size_t trie_deliver(struct trie_node *n, trie_visit_fn fn, void *arg)
{
    size_t calls = n->nsubs;
    size_t i;

    for (i = 0; i < n->nsubs; i++)
        fn(n->subs[i], arg);
    for (i = 0; i < n->ngroups; i++) {
        struct trie_group *g = n->groups[i];
        size_t tries;

        /* Offer members from the cursor on until one takes the message;
         * the cursor moves past the taker, so turns stay fair. */
        for (tries = 0; tries < g->nmembers; tries++) {
            size_t at = g->cursor + tries;
            enum trie_visit_rc rc;

            if (at >= g->nmembers)
                at -= g->nmembers;
            rc = fn(g->members[at], arg);
            calls++;
            if (rc == TRIE_SKIP_GROUP)
                break;
            if (rc == TRIE_TAKEN) {
                g->cursor = at + 1 == g->nmembers ? 0 : at + 1;
                break;
            }
        }
    }
    return calls;
}

/*
 * Match publish subject subj (slen bytes, borrowed): call fn(sub, arg) once
 * for every plain subscription whose pattern matches, and once for one
 * member of every matching queue group, taking members in turn per group
 * so that successive messages spread evenly. An invalid subject (including
 * one with wildcards) matches nothing. fn must not modify t.
 * Returns the number of calls made. Never allocates; uses a fixed stack of
 * TRIE_STACK_MAX entries and no recursion. Mutates only group cursors.
 * Thread: single shard thread.
 */
size_t trie_match(struct trie *t, const char *subj, size_t slen, trie_visit_fn fn, void *arg)
{
    struct trie_tok toks[SUBJECT_MAX_TOKENS];
    struct {
        struct trie_node *node;
        size_t depth;
    } stack[TRIE_STACK_MAX];
    size_t ntok;
    size_t sp = 0;
    size_t calls = 0;

    if (t == NULL || fn == NULL)
        return 0;
    ntok = trie_subject_split(subj, slen, toks);
    if (ntok == 0)
        return 0;

    /*
     * Depth-first. Popping a node of depth d pushes at most two nodes of
     * depth d + 1, so the stack holds at most one pending node per depth
     * plus one extra at the top: ntok + 1 <= TRIE_STACK_MAX entries.
     */
    stack[sp].node = &t->root;
    stack[sp].depth = 0;
    sp++;
    while (sp > 0) {
        struct trie_node *n;
        struct trie_node *k;
        size_t d;

        sp--;
        n = stack[sp].node;
        d = stack[sp].depth;
        if (d == ntok) {
            calls += trie_deliver(n, fn, arg);
            continue;
        }
        if (n->gt != NULL)
            calls += trie_deliver(n->gt, fn, arg); /* '>' takes tokens d..ntok-1 */
        if (n->star != NULL) {
            assert(sp < TRIE_STACK_MAX);
            stack[sp].node = n->star;
            stack[sp].depth = d + 1;
            sp++;
        }
        k = trie_kid_find(n, toks[d].tok, toks[d].len, toks[d].hash);
        if (k != NULL) {
            assert(sp < TRIE_STACK_MAX);
            stack[sp].node = k;
            stack[sp].depth = d + 1;
            sp++;
        }
    }
    return calls;
}

/* See trie.h. */
uint64_t trie_gen(const struct trie *t)
{
    return t != NULL ? t->gen : 0;
}

/*
 * Number of stored subscriptions: plain ones plus queue group members,
 * counting repeated inserts of the same sub. 0 for NULL.
 * Thread: single shard thread.
 */
size_t trie_count(const struct trie *t)
{
    return t != NULL ? t->count : 0;
}
