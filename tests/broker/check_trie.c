/*
 * check_trie.c - unit tests for broker/trie.c.
 *
 * The trie of the overlap test ({N} = the subscriber with id N):
 *
 *     patterns: a.b{0} a.*{1} a.>{2} *.b{3} >{4} *.*{5} a.b.>{6} b.*{7} *{8}
 *
 *                         (root) -- gt --> (>){4}
 *               kids /      | kids       \ star
 *               [a]        [b]            (*){8}
 *       kids /  |star \gt    | star    kids /   \ star
 *     [b]{0} (*){1} (>){2}  (*){7}     [b]{3}   (*){5}
 *       | gt
 *     (>){6}
 *
 *     subject "a.b" -> 0 1 2 3 4 5, each exactly once
 *
 * TCases:
 *   core    insert/remove results, literal, "*" and ">" matching, queue
 *           groups (even round-robin split, one member per group, names
 *           scoped by pattern), pruning down to zero live allocations,
 *           no allocation in trie_match()
 *   limits  10,000 sibling tokens and 10,000 subscriptions on one pattern,
 *           SUBJECT_MAX_TOKENS deep patterns with the widest match stack,
 *           child hash table growth and shrink
 *   oom     an allocator failing the Nth call, for every N until a whole
 *           script passes, plus random failures; after each failure the
 *           trie must hold exactly what it held before
 *   fuzz    trie_match() against subject_match() over random patterns and
 *           subjects from a small token alphabet, with queue groups and
 *           removals; random sibling inserts/removes against a counter table;
 *           trie_match()'s own subject validation against subject_check()
 *
 * Random input is seeded from RMQ_TEST_SEED or the time, and main() prints
 * the seed so a failing run can be replayed.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmq_error.h"
#include "subject.h"
#include "trie.h"
#include "testrng.h"

/*
 * ck_assert() records a mark point (a write to Check's pipe) even when it
 * passes, which is slow in loops of 10^5; hot loops use this instead.
 */
#define FAST_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

#define NSUBS 12000 /* ids of test subscriptions: sub pointer = &sub_pool[id] */

static char sub_pool[NSUBS];
static uint64_t g_seed;

/* ---- Random numbers ---- */

/* ---- Test allocator: counts live blocks, fails on demand ---- */

static long alloc_live;             /* blocks handed out and not yet freed */
static unsigned long alloc_calls;   /* malloc + realloc calls */
static unsigned long alloc_fail_at; /* fail exactly this call (1-based); 0 = never */
static unsigned alloc_fail_pct;     /* fail this percentage of calls at random */
static bool alloc_fail_all;
static uint64_t alloc_rng = 1;

static bool alloc_should_fail(void)
{
    alloc_calls++;
    if (alloc_fail_all || alloc_calls == alloc_fail_at)
        return true;
    if (alloc_fail_pct != 0) {
        alloc_rng = alloc_rng * 6364136223846793005ull + 1442695040888963407ull;
        return (alloc_rng >> 33) % 100 < alloc_fail_pct;
    }
    return false;
}

static void *t_malloc(size_t size)
{
    void *p;

    if (alloc_should_fail())
        return NULL;
    p = malloc(size);
    if (p != NULL)
        alloc_live++;
    return p;
}

static void *t_realloc(void *old, size_t size)
{
    void *p;

    if (alloc_should_fail())
        return NULL;
    p = realloc(old, size);
    if (p != NULL && old == NULL)
        alloc_live++;
    return p;
}

static void t_free(void *p)
{
    if (p != NULL)
        alloc_live--;
    free(p);
}

static void alloc_reset(void)
{
    alloc_live = 0;
    alloc_calls = 0;
    alloc_fail_at = 0;
    alloc_fail_pct = 0;
    alloc_fail_all = false;
}

/* Install the counting allocator; every test runs with it, see setup(). */
static void setup(void)
{
    alloc_reset();
    trie_set_allocator(t_malloc, t_realloc, t_free);
}

static void teardown(void)
{
    trie_set_allocator(NULL, NULL, NULL);
}

/* ---- Recording visitor ---- */

struct rec {
    unsigned cnt[NSUBS]; /* calls per sub id */
    size_t calls;
};

static struct rec g_rec;

static void *sub_of(size_t id)
{
    return &sub_pool[id];
}

static enum trie_visit_rc rec_visit(void *sub, void *arg)
{
    struct rec *r = arg;
    size_t id = (size_t)((char *)sub - sub_pool);

    FAST_ASSERT(id < NSUBS, "visited a pointer that is not a test sub");
    r->cnt[id]++;
    r->calls++;
    return TRIE_TAKEN;
}

/* Visitor for the steering tests: refuses sub `refuse` with rc_refuse. */
struct steer {
    void *refuse;
    enum trie_visit_rc rc_refuse;
    size_t taken[4];
    void *base;
};

static enum trie_visit_rc steer_visit(void *sub, void *arg)
{
    struct steer *st = arg;
    if (sub == st->refuse)
        return st->rc_refuse;
    st->taken[(size_t)((char *)sub - (char *)st->base)]++;
    return TRIE_TAKEN;
}

/* A member that cannot take a message is passed over, and the others keep
 * their turns; a group that is skipped keeps its cursor where it was. */
START_TEST(test_trie_group_steering)
{
    char base[4];
    struct trie *t = trie_new();
    struct steer st = {.base = base};
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < 3; i++)
        ck_assert_int_ge(trie_insert(t, "q.x", 3, "g", 1, &base[i]), 0);
    st.refuse = &base[1];
    st.rc_refuse = TRIE_NEXT_MEMBER;
    for (int i = 0; i < 300; i++)
        trie_match(t, "q.x", 3, steer_visit, &st);
    ck_assert_uint_eq(st.taken[1], 0);
    ck_assert_uint_eq(st.taken[0] + st.taken[2], 300);
    ck_assert_uint_ge(st.taken[0], 100);
    ck_assert_uint_ge(st.taken[2], 100);
    /* Skipping the group must not move its cursor: the next real delivery
     * goes to the member whose turn it was. */
    memset(st.taken, 0, sizeof(st.taken));
    st.refuse = NULL;
    trie_match(t, "q.x", 3, steer_visit, &st); /* member k takes it */
    for (int k = 0; k < 3; k++) {
        if (st.taken[k]) {
            struct steer skip = {.base = base, .rc_refuse = TRIE_SKIP_GROUP};
            skip.refuse = &base[(k + 1) % 3];
            for (int i = 0; i < 5; i++)
                trie_match(t, "q.x", 3, steer_visit, &skip);
            ck_assert_uint_eq(skip.taken[0] + skip.taken[1] + skip.taken[2], 0);
            memset(st.taken, 0, sizeof(st.taken));
            trie_match(t, "q.x", 3, steer_visit, &st);
            ck_assert_uint_eq(st.taken[(k + 1) % 3], 1);
            break;
        }
    }
    trie_free(t);
}
END_TEST

/* Match subj; g_rec holds the calls. Returns trie_match()'s result, checked against g_rec. */
static size_t match(struct trie *t, const char *subj)
{
    size_t n;

    memset(&g_rec, 0, sizeof(g_rec));
    n = trie_match(t, subj, strlen(subj), rec_visit, &g_rec);
    FAST_ASSERT(n == g_rec.calls, "trie_match returned %zu after %zu calls", n, g_rec.calls);
    return n;
}

static int ins(struct trie *t, const char *pat, const char *queue, size_t id)
{
    return trie_insert(t, pat, strlen(pat), queue, queue != NULL ? strlen(queue) : 0, sub_of(id));
}

static int rem(struct trie *t, const char *pat, const char *queue, size_t id)
{
    return trie_remove(t, pat, strlen(pat), queue, queue != NULL ? strlen(queue) : 0, sub_of(id));
}

/* ---- Reference model for differential and OOM tests ---- */

#define MODEL_MAX 4096

struct entry {
    char pat[96];
    char queue[8]; /* "" = plain */
    size_t id;
};

struct model {
    struct entry e[MODEL_MAX];
    size_t n;
};

static struct model g_model;
static unsigned long g_verify_calls; /* deliveries seen by model_verify_subject() */

static bool entry_same_group(const struct entry *a, const struct entry *b)
{
    return a->queue[0] != '\0' && strcmp(a->pat, b->pat) == 0 && strcmp(a->queue, b->queue) == 0;
}

/* Subscribers the model has for pattern pat, plain and queued. */
static size_t model_pattern_refs(const struct model *m, const char *pat)
{
    size_t n = 0;
    size_t i;

    for (i = 0; i < m->n; i++)
        n += strcmp(m->e[i].pat, pat) == 0;
    return n;
}

static void model_add(struct model *m, const char *pat, const char *queue, size_t id)
{
    struct entry *e = &m->e[m->n++];

    ck_assert_uint_le(m->n, MODEL_MAX);
    snprintf(e->pat, sizeof(e->pat), "%s", pat);
    snprintf(e->queue, sizeof(e->queue), "%s", queue != NULL ? queue : "");
    e->id = id;
}

static void model_del(struct model *m, size_t i)
{
    m->e[i] = m->e[--m->n];
}

/*
 * Check one subject against the model: every matching plain entry is called
 * exactly once, every matching group gets exactly one call among its
 * members, and nothing else is called. Entry ids must be unique.
 */
static void model_verify_subject(struct trie *t, const struct model *m, const char *subj)
{
    size_t slen = strlen(subj);
    size_t expect = 0;
    size_t calls = match(t, subj);
    size_t i;
    size_t j;

    for (i = 0; i < m->n; i++) {
        const struct entry *e = &m->e[i];
        bool hit = subject_match(e->pat, strlen(e->pat), subj, slen);

        if (e->queue[0] == '\0') {
            FAST_ASSERT(g_rec.cnt[e->id] == (hit ? 1u : 0u), "plain %s (id %zu) on %s: %u calls",
                        e->pat, e->id, subj, g_rec.cnt[e->id]);
            expect += hit;
            continue;
        }
        if (!hit) {
            FAST_ASSERT(g_rec.cnt[e->id] == 0, "queue member %zu of %s called for %s", e->id,
                        e->pat, subj);
            continue;
        }
        for (j = 0; j < i && !entry_same_group(&m->e[j], e); j++)
            ;
        if (j == i) { /* first entry of its group: check the group once */
            unsigned got = 0;

            for (j = i; j < m->n; j++) {
                if (entry_same_group(&m->e[j], e))
                    got += g_rec.cnt[m->e[j].id];
            }
            FAST_ASSERT(got == 1, "group %s/%s got %u calls for %s", e->pat, e->queue, got, subj);
            expect++;
        }
    }
    FAST_ASSERT(calls == expect, "%s: %zu calls, model expects %zu", subj, calls, expect);
    g_verify_calls += calls;
}

static void model_verify(struct trie *t, const struct model *m, const char *const *subjects,
                         size_t nsubjects)
{
    size_t i;

    FAST_ASSERT(trie_count(t) == m->n, "trie_count %zu, model %zu", trie_count(t), m->n);
    for (i = 0; i < nsubjects; i++)
        model_verify_subject(t, m, subjects[i]);
}

/* Remove every model entry (in random order), checking return values, then the allocations. */
static void model_drain(struct trie *t, struct model *m, long baseline)
{
    while (m->n > 0) {
        size_t i = rng_below(m->n);
        struct entry e = m->e[i];
        int rc;

        model_del(m, i);
        rc = trie_remove(t, e.pat, strlen(e.pat), e.queue, strlen(e.queue), sub_of(e.id));
        FAST_ASSERT(rc == (model_pattern_refs(m, e.pat) == 0 ? 1 : 0), "remove %s/%s: %d", e.pat,
                    e.queue, rc);
    }
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_int_eq(alloc_live, baseline);
}

/* ---- core ---- */

START_TEST(test_trie_new_is_empty)
{
    struct trie *t = trie_new();

    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_uint_eq(match(t, "a"), 0);
    ck_assert_uint_eq(match(t, "a.b.c"), 0);
    ck_assert_int_eq(rem(t, "a", NULL, 0), RMQ_ENOTFOUND);
    ck_assert_int_eq(rem(t, ">", NULL, 0), RMQ_ENOTFOUND);
    ck_assert_uint_eq(trie_count(NULL), 0);
    trie_free(t);
    trie_free(NULL);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

START_TEST(test_trie_insert_returns_first)
{
    struct trie *t = trie_new();

    ck_assert_int_eq(ins(t, "a.b", NULL, 1), 1);
    ck_assert_int_eq(ins(t, "a.b", NULL, 2), 0);
    ck_assert_int_eq(ins(t, "a.b", "q", 3), 0);
    ck_assert_int_eq(ins(t, "a", NULL, 4), 1); /* a prefix node is its own pattern */
    ck_assert_int_eq(ins(t, "a.*", "q", 5), 1);
    ck_assert_int_eq(ins(t, "a.*", NULL, 6), 0);
    ck_assert_int_eq(ins(t, "a.*", "r", 7), 0);
    ck_assert_int_eq(ins(t, "a.>", "q", 8), 1);
    ck_assert_uint_eq(trie_count(t), 8);

    /* The same sub twice under the same pattern is stored, and delivered, twice. */
    ck_assert_int_eq(ins(t, "x", NULL, 9), 1);
    ck_assert_int_eq(ins(t, "x", NULL, 9), 0);
    ck_assert_uint_eq(trie_count(t), 10);
    ck_assert_uint_eq(match(t, "x"), 2);
    ck_assert_uint_eq(g_rec.cnt[9], 2);
    ck_assert_int_eq(rem(t, "x", NULL, 9), 0);
    ck_assert_uint_eq(match(t, "x"), 1);
    ck_assert_int_eq(rem(t, "x", NULL, 9), 1);
    ck_assert_int_eq(rem(t, "x", NULL, 9), RMQ_ENOTFOUND);
    ck_assert_uint_eq(match(t, "x"), 0);
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

START_TEST(test_trie_insert_rejects_bad_pattern)
{
    static const char *const bad[] = {"", "a..b", ".a", "a.", "a.>.b", "a*", "a b", ">.a", "a.b>"};
    struct trie *t = trie_new();
    size_t i;

    ck_assert_int_eq(ins(t, "ok", NULL, 0), 1);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(ins(t, bad[i], NULL, 1), RMQ_ESUBJECT);
        ck_assert_int_eq(ins(t, bad[i], "q", 1), RMQ_ESUBJECT);
        ck_assert_int_eq(rem(t, bad[i], NULL, 1), RMQ_ESUBJECT);
    }
    ck_assert_int_eq(trie_insert(t, NULL, 3, NULL, 0, sub_of(1)), RMQ_ESUBJECT);
    ck_assert_int_eq(trie_insert(t, "a", 1, NULL, 2, sub_of(1)), -EINVAL);
    ck_assert_int_eq(trie_remove(t, "a", 1, NULL, 2, sub_of(1)), -EINVAL);
    ck_assert_int_eq(trie_insert(NULL, "a", 1, NULL, 0, sub_of(1)), -EINVAL);
    ck_assert_uint_eq(trie_count(t), 1);
    ck_assert_int_eq(alloc_live, 4); /* trie, root's kids array, node "ok", its subs array */
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

START_TEST(test_trie_match_literal)
{
    struct trie *t = trie_new();

    ins(t, "a.b", NULL, 1);
    ins(t, "a.c", NULL, 2);
    ins(t, "a.b.c", NULL, 3);
    ins(t, "a", NULL, 4);
    ins(t, "b.b", NULL, 5);
    ins(t, "ab", NULL, 6);

    ck_assert_uint_eq(match(t, "a.b"), 1);
    ck_assert_uint_eq(g_rec.cnt[1], 1);
    ck_assert_uint_eq(match(t, "a.b.c"), 1);
    ck_assert_uint_eq(g_rec.cnt[3], 1);
    ck_assert_uint_eq(match(t, "a"), 1);
    ck_assert_uint_eq(g_rec.cnt[4], 1);
    ck_assert_uint_eq(match(t, "ab"), 1);
    ck_assert_uint_eq(g_rec.cnt[6], 1);
    ck_assert_uint_eq(match(t, "a.d"), 0);
    ck_assert_uint_eq(match(t, "a.b.c.d"), 0);
    ck_assert_uint_eq(match(t, "a.bc"), 0);
    ck_assert_uint_eq(match(t, "c"), 0);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_match_star)
{
    struct trie *t = trie_new();

    ins(t, "a.*", NULL, 1);
    ins(t, "*.b", NULL, 2);
    ins(t, "*", NULL, 3);
    ins(t, "a.*.c", NULL, 4);

    ck_assert_uint_eq(match(t, "a.b"), 2);
    ck_assert(g_rec.cnt[1] == 1 && g_rec.cnt[2] == 1);
    ck_assert_uint_eq(match(t, "a.x"), 1);
    ck_assert_uint_eq(g_rec.cnt[1], 1);
    ck_assert_uint_eq(match(t, "a"), 1);
    ck_assert_uint_eq(g_rec.cnt[3], 1);
    ck_assert_uint_eq(match(t, "a.b.c"), 1);
    ck_assert_uint_eq(g_rec.cnt[4], 1);
    ck_assert_uint_eq(match(t, "a.b.c.d"), 0);
    ck_assert_uint_eq(match(t, "x.y"), 0);
    ck_assert_uint_eq(match(t, "b.a.c"), 0);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_match_gt)
{
    struct trie *t = trie_new();

    ins(t, "a.>", NULL, 1);
    ck_assert_uint_eq(match(t, "a"), 0); /* '>' needs at least one token */
    ck_assert_uint_eq(match(t, "a.b"), 1);
    ck_assert_uint_eq(match(t, "a.b.c.d.e"), 1);
    ck_assert_uint_eq(match(t, "b.a"), 0);

    ins(t, ">", NULL, 2);
    ck_assert_uint_eq(match(t, "a"), 1);
    ck_assert_uint_eq(g_rec.cnt[2], 1);
    ck_assert_uint_eq(match(t, "z.y.x"), 1);
    ck_assert_uint_eq(match(t, "a.b"), 2);

    ins(t, "a.*.>", NULL, 3);
    ck_assert_uint_eq(match(t, "a.b"), 2);
    ck_assert_uint_eq(g_rec.cnt[3], 0);
    ck_assert_uint_eq(match(t, "a.b.c"), 3);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_match_overlapping)
{
    static const char *const pats[] = {"a.b", "a.*", "a.>", "*.b", ">", "*.*", "a.b.>", "b.*", "*"};
    struct trie *t = trie_new();
    size_t i;

    for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
        ck_assert_int_eq(ins(t, pats[i], NULL, i), 1);
    ck_assert_uint_eq(match(t, "a.b"), 6);
    for (i = 0; i < 6; i++)
        ck_assert_uint_eq(g_rec.cnt[i], 1);
    ck_assert_uint_eq(match(t, "a.b.c"), 3); /* a.>, >, a.b.> */
    ck_assert(g_rec.cnt[2] == 1 && g_rec.cnt[4] == 1 && g_rec.cnt[6] == 1);
    ck_assert_uint_eq(match(t, "a"), 2); /* >, * */
    ck_assert(g_rec.cnt[4] == 1 && g_rec.cnt[8] == 1);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_match_rejects_wildcard_subject)
{
    struct trie *t = trie_new();

    ins(t, "a.*", NULL, 1);
    ins(t, "a.>", NULL, 2);
    ins(t, ">", NULL, 3);
    ck_assert_uint_eq(match(t, "a.*"), 0);
    ck_assert_uint_eq(match(t, "a.>"), 0);
    ck_assert_uint_eq(match(t, "*"), 0);
    ck_assert_uint_eq(match(t, "a..b"), 0);
    ck_assert_uint_eq(match(t, ""), 0);
    ck_assert_uint_eq(match(t, "a b"), 0);
    ck_assert_uint_eq(trie_match(t, NULL, 3, rec_visit, &g_rec), 0);
    ck_assert_uint_eq(trie_match(NULL, "a", 1, rec_visit, &g_rec), 0);
    ck_assert_uint_eq(match(t, "a.b"), 3);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_queue_even_split)
{
    struct trie *t = trie_new();
    unsigned total[NSUBS] = {0};
    int msg;
    size_t i;

    ck_assert_int_eq(ins(t, "orders.*", "w", 1), 1);
    ck_assert_int_eq(ins(t, "orders.*", "w", 2), 0);
    ck_assert_int_eq(ins(t, "orders.*", "w", 3), 0);
    ck_assert_int_eq(ins(t, "orders.*", "x", 4), 0);
    ck_assert_int_eq(ins(t, "orders.*", "x", 5), 0);
    ck_assert_int_eq(ins(t, "orders.>", NULL, 6), 1);
    ck_assert_int_eq(ins(t, "orders.eu", NULL, 7), 1);

    for (msg = 0; msg < 300; msg++) {
        ck_assert_uint_eq(match(t, "orders.eu"), 4);
        /* exactly one member of each group, every plain sub */
        ck_assert_uint_eq(g_rec.cnt[1] + g_rec.cnt[2] + g_rec.cnt[3], 1);
        ck_assert_uint_eq(g_rec.cnt[4] + g_rec.cnt[5], 1);
        ck_assert(g_rec.cnt[6] == 1 && g_rec.cnt[7] == 1);
        for (i = 1; i <= 7; i++)
            total[i] += g_rec.cnt[i];
    }
    ck_assert(total[1] == 100 && total[2] == 100 && total[3] == 100);
    ck_assert(total[4] == 150 && total[5] == 150);
    ck_assert(total[6] == 300 && total[7] == 300);

    /* Remove a member in mid-rotation: the others keep sharing evenly. */
    match(t, "orders.eu");
    ck_assert_int_eq(rem(t, "orders.*", "w", 2), 0);
    memset(total, 0, sizeof(total));
    for (msg = 0; msg < 200; msg++) {
        match(t, "orders.eu");
        ck_assert_uint_eq(g_rec.cnt[1] + g_rec.cnt[3], 1);
        total[1] += g_rec.cnt[1];
        total[3] += g_rec.cnt[3];
    }
    ck_assert(total[1] == 100 && total[3] == 100);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_queue_same_name_different_patterns)
{
    struct trie *t = trie_new();
    int msg;

    ck_assert_int_eq(ins(t, "a.b", "w", 1), 1);
    ck_assert_int_eq(ins(t, "a.b", "w", 2), 0);
    ck_assert_int_eq(ins(t, "a.*", "w", 3), 1);
    ck_assert_int_eq(ins(t, "a.*", "w", 4), 0);
    for (msg = 0; msg < 10; msg++) {
        ck_assert_uint_eq(match(t, "a.b"), 2);
        ck_assert_uint_eq(g_rec.cnt[1] + g_rec.cnt[2], 1);
        ck_assert_uint_eq(g_rec.cnt[3] + g_rec.cnt[4], 1);
    }
    ck_assert_uint_eq(match(t, "a.c"), 1);
    ck_assert_uint_eq(g_rec.cnt[3] + g_rec.cnt[4], 1);

    /* Members are scoped to their pattern's group. */
    ck_assert_int_eq(rem(t, "a.*", "w", 1), RMQ_ENOTFOUND);
    ck_assert_int_eq(rem(t, "a.b", "w", 1), 0);
    ck_assert_int_eq(rem(t, "a.b", "w", 2), 1);
    ck_assert_uint_eq(match(t, "a.b"), 1);
    ck_assert_uint_eq(g_rec.cnt[3] + g_rec.cnt[4], 1);
    ck_assert_uint_eq(trie_count(t), 2);
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

START_TEST(test_trie_remove_returns_counts)
{
    struct trie *t = trie_new();

    ins(t, "a.b", NULL, 1);
    ins(t, "a.b", NULL, 2);
    ins(t, "a.b", "q", 3);
    ins(t, "a.b.c", NULL, 4);

    ck_assert_int_eq(rem(t, "a.b", NULL, 3), RMQ_ENOTFOUND); /* 3 is a queue member */
    ck_assert_int_eq(rem(t, "a.b", "r", 3), RMQ_ENOTFOUND);  /* wrong group */
    ck_assert_int_eq(rem(t, "a.b", "q", 1), RMQ_ENOTFOUND);  /* 1 is plain */
    ck_assert_int_eq(rem(t, "a.c", NULL, 1), RMQ_ENOTFOUND); /* no such pattern */
    ck_assert_int_eq(rem(t, "a.*", NULL, 1), RMQ_ENOTFOUND);
    ck_assert_int_eq(rem(t, "a", NULL, 1), RMQ_ENOTFOUND); /* interior node, no subscriber */

    ck_assert_int_eq(rem(t, "a.b", NULL, 1), 0);
    ck_assert_int_eq(rem(t, "a.b", NULL, 1), RMQ_ENOTFOUND);
    ck_assert_int_eq(rem(t, "a.b", "q", 3), 0); /* plain 2 is left */
    ck_assert_int_eq(rem(t, "a.b", NULL, 2), 1);
    ck_assert_uint_eq(match(t, "a.b"), 0);
    ck_assert_uint_eq(match(t, "a.b.c"), 1); /* the child pattern survives its parent */
    ck_assert_int_eq(rem(t, "a.b.c", NULL, 4), 1);
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_int_eq(alloc_live, 1);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_remove_prunes)
{
    static const char *const pats[] = {"a", "a.b",   "a.b.c",   "a.*",   "a.>", "*",
                                       ">", "*.*.*", "x.y.z.w", "a.*.c", "*.>", "q"};
    static const char *const queues[] = {NULL, "g1", "g2", "g3"};
    struct trie *t = trie_new();
    char pat[32];
    size_t id = 0;
    size_t i;
    size_t q;

    rng_seed(g_seed + 7);
    ck_assert_int_eq(alloc_live, 1); /* struct trie only */
    memset(&g_model, 0, sizeof(g_model));
    for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        for (q = 0; q < 4; q++) {
            ck_assert_int_eq(ins(t, pats[i], queues[q], id), q == 0 ? 1 : 0);
            model_add(&g_model, pats[i], queues[q], id++);
            ck_assert_int_eq(ins(t, pats[i], queues[q], id), 0);
            model_add(&g_model, pats[i], queues[q], id++);
        }
    }
    /* 40 siblings push the root and "s" into hash tables. */
    for (i = 0; i < 40; i++) {
        snprintf(pat, sizeof(pat), "s.%zu", i);
        ck_assert_int_eq(ins(t, pat, NULL, id), 1);
        model_add(&g_model, pat, NULL, id++);
        snprintf(pat, sizeof(pat), "r%zu.*", i);
        ck_assert_int_eq(ins(t, pat, "g", id), 1);
        model_add(&g_model, pat, "g", id++);
    }
    ck_assert_uint_eq(trie_count(t), g_model.n);
    model_drain(t, &g_model, 1);
    ck_assert_uint_eq(match(t, "a.b"), 0);
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

/* Every allocation fails and is counted: trie_match() must not call the allocator at all. */
START_TEST(test_trie_match_no_alloc)
{
    struct trie *t = trie_new();
    char pat[32];
    size_t i;

    for (i = 0; i < 100; i++) {
        snprintf(pat, sizeof(pat), "k.%zu", i);
        ins(t, pat, NULL, i);
        ins(t, pat, "q", 1000 + i);
    }
    ins(t, "k.*", NULL, 200);
    ins(t, ">", "q", 201);
    alloc_calls = 0;
    alloc_fail_all = true;
    for (i = 0; i < 100; i++) {
        snprintf(pat, sizeof(pat), "k.%zu", i);
        ck_assert_uint_eq(match(t, pat), 4);
    }
    ck_assert_uint_eq(match(t, "k.x.y"), 1);
    ck_assert_uint_eq(alloc_calls, 0);
    alloc_fail_all = false;
    trie_free(t);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_trie_limits_10000_siblings)
{
    struct trie *t = trie_new();
    char pat[32];
    size_t i;

    for (i = 0; i < 10000; i++) {
        snprintf(pat, sizeof(pat), "s.%zu", i);
        FAST_ASSERT(ins(t, pat, NULL, i) == 1, "insert %s", pat);
    }
    ck_assert_uint_eq(trie_count(t), 10000);
    for (i = 0; i < 10000; i++) {
        snprintf(pat, sizeof(pat), "s.%zu", i);
        FAST_ASSERT(match(t, pat) == 1 && g_rec.cnt[i] == 1, "match %s", pat);
    }
    ck_assert_uint_eq(match(t, "s.10000"), 0);
    ck_assert_uint_eq(match(t, "s"), 0);

    ck_assert_int_eq(ins(t, "s.*", NULL, 10000), 1);
    ck_assert_int_eq(ins(t, "s.>", "g", 10001), 1);
    ck_assert_uint_eq(match(t, "s.1234"), 3);
    ck_assert(g_rec.cnt[1234] == 1 && g_rec.cnt[10000] == 1 && g_rec.cnt[10001] == 1);

    /* Remove every other one, in a scattered order, then check all of them. */
    for (i = 0; i < 10000; i += 2) {
        size_t k = (i * 7919) % 10000 & ~(size_t)1;

        snprintf(pat, sizeof(pat), "s.%zu", k);
        FAST_ASSERT(rem(t, pat, NULL, k) == 1, "remove %s", pat);
    }
    for (i = 0; i < 10000; i++) {
        snprintf(pat, sizeof(pat), "s.%zu", i);
        FAST_ASSERT(match(t, pat) == (i % 2 == 1 ? 3u : 2u), "match %s after removals", pat);
    }
    for (i = 1; i < 10000; i += 2) {
        snprintf(pat, sizeof(pat), "s.%zu", i);
        FAST_ASSERT(rem(t, pat, NULL, i) == 1, "remove %s", pat);
    }
    ck_assert_int_eq(rem(t, "s.*", NULL, 10000), 1);
    ck_assert_int_eq(rem(t, "s.>", "g", 10001), 1);
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_int_eq(alloc_live, 1);
    trie_free(t);
}
END_TEST

START_TEST(test_trie_limits_10000_on_one_pattern)
{
    struct trie *t = trie_new();
    size_t i;

    for (i = 0; i < 5000; i++) {
        FAST_ASSERT(ins(t, "big.one", NULL, i) == (i == 0 ? 1 : 0), "insert %zu", i);
        FAST_ASSERT(ins(t, "big.one", "g", 5000 + i) == 0, "insert queued %zu", i);
    }
    ck_assert_uint_eq(trie_count(t), 10000);
    ck_assert_uint_eq(match(t, "big.one"), 5001);
    for (i = 0; i < 5000; i++)
        FAST_ASSERT(g_rec.cnt[i] == 1, "sub %zu", i);
    /* Remove oldest first: the worst case for the search from the end. */
    for (i = 0; i < 5000; i++) {
        FAST_ASSERT(rem(t, "big.one", NULL, i) == 0, "remove %zu", i);
        FAST_ASSERT(rem(t, "big.one", "g", 5000 + i) == (i == 4999 ? 1 : 0), "remove q %zu", i);
    }
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_int_eq(alloc_live, 1);
    trie_free(t);
}
END_TEST

/* Fill buf with the tokens of toks[] (ntok of them) joined by dots. */
static void join(char *buf, const char *const *toks, size_t ntok)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; i < ntok; i++) {
        if (i > 0)
            strcat(buf, ".");
        strcat(buf, toks[i]);
    }
}

START_TEST(test_trie_limits_max_depth)
{
    const char *toks[SUBJECT_MAX_TOKENS + 1];
    char subj[SUBJECT_MAX_LEN + 8];
    char pat[SUBJECT_MAX_LEN + 8];
    struct trie *t = trie_new();
    size_t id = 0;
    size_t k;
    size_t i;

    /*
     * "a" x 32, "*" x 32, and for every depth k "a.a...*...a" with the star
     * at k and "a...a.>" with '>' at k: every node of the "a" spine has a
     * literal, a star and a gt child, so the match stack is as deep as it
     * can get.
     */
    for (i = 0; i <= SUBJECT_MAX_TOKENS; i++)
        toks[i] = "a";
    join(subj, toks, SUBJECT_MAX_TOKENS);
    ck_assert_int_eq(ins(t, subj, NULL, id++), 1);
    for (k = 0; k < SUBJECT_MAX_TOKENS; k++) {
        toks[k] = "*";
        join(pat, toks, SUBJECT_MAX_TOKENS);
        ck_assert_int_eq(ins(t, pat, NULL, id++), 1);
        toks[k] = ">";
        join(pat, toks, k + 1);
        ck_assert_int_eq(ins(t, pat, "g", id++), 1);
        toks[k] = "a";
    }
    for (i = 0; i < SUBJECT_MAX_TOKENS; i++)
        toks[i] = "*";
    join(pat, toks, SUBJECT_MAX_TOKENS);
    ck_assert_int_eq(ins(t, pat, NULL, id++), 1);

    /* 1 + 32 single stars + 32 gts + all stars; '>' at 0 is ">" */
    ck_assert_uint_eq(match(t, subj), 1 + 32 + 32 + 1);
    for (i = 0; i < id; i++)
        ck_assert_uint_eq(g_rec.cnt[i], 1);

    /* A 33-token pattern is refused; a 31-token subject only hits the gts it covers. */
    toks[SUBJECT_MAX_TOKENS] = "a";
    join(pat, toks, SUBJECT_MAX_TOKENS + 1);
    ck_assert_int_eq(ins(t, pat, NULL, id), RMQ_ESUBJECT);
    subj[strlen(subj) - 2] = '\0';
    ck_assert_uint_eq(match(t, subj), 31);
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

START_TEST(test_trie_limits_hash_grow_shrink)
{
    struct trie *t = trie_new();
    char pat[32];
    size_t i;

    /* Grow through array -> 32 -> ... -> 4096 slots, then shrink back to an array. */
    for (i = 0; i < 2000; i++) {
        snprintf(pat, sizeof(pat), "%zu", i);
        FAST_ASSERT(ins(t, pat, NULL, i) == 1, "insert %s", pat);
    }
    for (i = 3; i < 2000; i++) {
        snprintf(pat, sizeof(pat), "%zu", i);
        FAST_ASSERT(rem(t, pat, NULL, i) == 1, "remove %s", pat);
        if (i % 97 == 0 || i > 1990) {
            size_t j;

            for (j = 0; j < 2000; j++) {
                snprintf(pat, sizeof(pat), "%zu", j);
                FAST_ASSERT(match(t, pat) == (j < 3 || j > i ? 1u : 0u), "match %s at %zu", pat, i);
            }
        }
    }
    ck_assert_uint_eq(trie_count(t), 3);
    ck_assert_int_eq(alloc_live, 1 + 1 + 3 * 2); /* trie, root kids array, 3 nodes + subs */
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

/* ---- oom ---- */

enum op_kind { OP_INSERT, OP_REMOVE };

struct op {
    enum op_kind kind;
    char pat[48];
    char queue[8];
    size_t id;
};

#define SCRIPT_MAX 256

static struct op g_script[SCRIPT_MAX];
static size_t g_script_n;

static void script_add(enum op_kind kind, const char *pat, const char *queue, size_t id)
{
    struct op *o = &g_script[g_script_n++];

    ck_assert_uint_le(g_script_n, SCRIPT_MAX);
    o->kind = kind;
    snprintf(o->pat, sizeof(o->pat), "%s", pat);
    snprintf(o->queue, sizeof(o->queue), "%s", queue);
    o->id = id;
}

/* A script that reaches every allocation site: nodes, tables, subs, groups, shrinks. */
static void script_build(void)
{
    char pat[48];
    size_t id = 0;
    size_t i;

    g_script_n = 0;
    script_add(OP_INSERT, "a.b.c.d", "", id++); /* a chain of new nodes */
    script_add(OP_INSERT, "a.b.c.d", "", id++);
    script_add(OP_INSERT, "a.b.c.d", "", id++); /* subs array grows */
    script_add(OP_INSERT, "a.*.>", "", id++);
    script_add(OP_INSERT, "a.*.>", "w", id++); /* new group */
    script_add(OP_INSERT, "a.*.>", "w", id++);
    script_add(OP_INSERT, "a.*.>", "w", id++); /* members grow */
    script_add(OP_INSERT, "a.*.>", "v", id++); /* groups array grows */
    script_add(OP_INSERT, "a.*.>", "u", id++);
    script_add(OP_INSERT, "*.x.*.y", "w", id++);
    script_add(OP_INSERT, ">", "", id++);
    script_add(OP_INSERT, "a", "w", id++);
    for (i = 0; i < 40; i++) { /* root kids: array 2 -> 4 -> 8 -> hash 32 -> 64 */
        snprintf(pat, sizeof(pat), "n%zu.z", i);
        script_add(OP_INSERT, pat, i % 3 == 0 ? "w" : "", id++);
    }
    for (i = 0; i < 36; i++) { /* shrink back: table 64 -> array 8 (best effort) */
        snprintf(pat, sizeof(pat), "n%zu.z", i);
        script_add(OP_REMOVE, pat, i % 3 == 0 ? "w" : "", 12 + i);
    }
    script_add(OP_REMOVE, "a.b.c.d", "", 0);
    script_add(OP_REMOVE, "a.*.>", "w", 5);
    script_add(OP_INSERT, "a.*.>", "w", id++);
    script_add(OP_INSERT, "a.b.c.d.e.f.g.h", "q", id++);
    script_add(OP_INSERT, "n1.z", "", id++);
}

static const char *const g_oom_subjects[] = {
    "a", "a.b", "a.b.c", "a.b.c.d", "a.x.y", "q.x.r.y", "n1.z", "n39.z", "n5.z", "a.b.c.d.e.f.g.h",
};

/* Run the script once; returns the number of -ENOMEM results seen. */
static unsigned script_run(struct trie *t, bool verify_each)
{
    unsigned failures = 0;
    size_t i;
    size_t j;

    memset(&g_model, 0, sizeof(g_model));
    for (i = 0; i < g_script_n; i++) {
        const struct op *o = &g_script[i];
        size_t plen = strlen(o->pat);
        size_t qlen = strlen(o->queue);
        int rc;

        if (o->kind == OP_REMOVE) {
            for (j = 0; j < g_model.n; j++) {
                if (g_model.e[j].id == o->id)
                    break;
            }
            FAST_ASSERT(j < g_model.n, "script removes unknown id %zu", o->id);
            model_del(&g_model, j);
            rc = trie_remove(t, o->pat, plen, o->queue, qlen, sub_of(o->id));
            FAST_ASSERT(rc == (model_pattern_refs(&g_model, o->pat) == 0 ? 1 : 0),
                        "op %zu: remove %s/%s: %d", i, o->pat, o->queue, rc);
        } else {
            int want = model_pattern_refs(&g_model, o->pat) == 0 ? 1 : 0;
            long live = alloc_live;

            rc = trie_insert(t, o->pat, plen, o->queue, qlen, sub_of(o->id));
            if (rc == -ENOMEM) {
                /* Nothing changed: same blocks, same contents. Then the retry works. */
                failures++;
                FAST_ASSERT(alloc_live == live, "op %zu: failed insert left %ld blocks, had %ld", i,
                            alloc_live, live);
                model_verify(t, &g_model, g_oom_subjects,
                             sizeof(g_oom_subjects) / sizeof(g_oom_subjects[0]));
                rc = trie_insert(t, o->pat, plen, o->queue, qlen, sub_of(o->id));
            }
            FAST_ASSERT(rc == want, "op %zu: insert %s/%s: %d, want %d", i, o->pat, o->queue, rc,
                        want);
            model_add(&g_model, o->pat, o->queue, o->id);
        }
        if (verify_each)
            model_verify(t, &g_model, g_oom_subjects,
                         sizeof(g_oom_subjects) / sizeof(g_oom_subjects[0]));
    }
    model_verify(t, &g_model, g_oom_subjects, sizeof(g_oom_subjects) / sizeof(g_oom_subjects[0]));
    return failures;
}

START_TEST(test_trie_oom_nth_call)
{
    unsigned long n;
    unsigned long sites = 0;

    rng_seed(g_seed + 11);
    script_build();
    for (n = 1;; n++) {
        struct trie *t;
        unsigned failures;

        alloc_reset();
        alloc_fail_at = n;
        t = trie_new();
        if (t == NULL) {
            ck_assert_uint_eq(n, 1);
            ck_assert_int_eq(alloc_live, 0);
            continue;
        }
        failures = script_run(t, false);
        model_drain(t, &g_model, 1);
        trie_free(t);
        ck_assert_int_eq(alloc_live, 0);
        if (alloc_calls < n)
            break; /* the Nth call never came: every allocation has been failed once */
        sites += failures;
        ck_assert_uint_le(failures, 1);
    }
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_gt(sites, 80); /* most calls are in inserts; shrink calls fail silently */
}
END_TEST

START_TEST(test_trie_oom_random_failures)
{
    static const char *const toks[] = {"a", "b", "*", "c"};
    static const char *const queues[] = {"", "", "", "w", "v"};
    static const char *subjects[] = {"a", "b", "a.b", "b.a", "a.a.a", "c.b.a", "a.b.c.a"};
    struct trie *t;
    unsigned failures = 0;
    size_t id = 0;
    int round;

    rng_seed(g_seed + 13);
    alloc_rng = g_seed | 1;
    t = trie_new();
    ck_assert_ptr_nonnull(t);
    alloc_fail_pct = 20;
    memset(&g_model, 0, sizeof(g_model));
    for (round = 0; round < 3000; round++) {
        if (g_model.n > 0 && rng_below(3) == 0) {
            size_t i = rng_below(g_model.n);
            struct entry e = g_model.e[i];
            int rc;

            model_del(&g_model, i);
            rc = trie_remove(t, e.pat, strlen(e.pat), e.queue, strlen(e.queue), sub_of(e.id));
            FAST_ASSERT(rc == (model_pattern_refs(&g_model, e.pat) == 0 ? 1 : 0), "remove: %d", rc);
        } else {
            char pat[64] = "";
            const char *q = queues[rng_below(5)];
            size_t ntok = 1 + rng_below(4);
            size_t k;
            long live = alloc_live;
            int want;
            int rc;

            for (k = 0; k < ntok; k++) {
                if (k > 0)
                    strcat(pat, ".");
                strcat(pat, k == ntok - 1 && rng_below(6) == 0 ? ">" : toks[rng_below(4)]);
            }
            want = model_pattern_refs(&g_model, pat) == 0 ? 1 : 0;
            rc = trie_insert(t, pat, strlen(pat), q, strlen(q), sub_of(id));
            if (rc == -ENOMEM) {
                failures++;
                FAST_ASSERT(alloc_live == live, "failed insert of %s changed live blocks", pat);
            } else {
                FAST_ASSERT(rc == want, "insert %s: %d, want %d", pat, rc, want);
                model_add(&g_model, pat, q, id++);
                FAST_ASSERT(id < NSUBS, "out of sub ids");
            }
        }
        if (round % 10 == 0)
            model_verify(t, &g_model, subjects, sizeof(subjects) / sizeof(subjects[0]));
    }
    ck_assert_uint_gt(failures, 50);
    alloc_fail_pct = 0;
    model_drain(t, &g_model, 1);
    trie_free(t);
    ck_assert_int_eq(alloc_live, 0);
}
END_TEST

/* ---- fuzz ---- */

static void fuzz_tokens(char *buf, size_t maxtok, bool pattern)
{
    static const char *const toks[] = {"a", "b", "c", "ab"};
    size_t ntok = 1 + rng_below(maxtok);
    size_t i;

    buf[0] = '\0';
    for (i = 0; i < ntok; i++) {
        size_t r = rng_below(10);
        const char *tok = toks[rng_below(4)];

        if (pattern && r < 3)
            tok = "*";
        else if (pattern && r == 3 && i == ntok - 1)
            tok = ">";
        if (i > 0)
            strcat(buf, ".");
        strcat(buf, tok);
    }
}

START_TEST(test_trie_fuzz_vs_subject_match)
{
    static const char *const queues[] = {"", "", "", "q1", "q2"};
    char subj_buf[8][32];
    const char *subjects[8];
    size_t id = 0;
    int round;
    int op;
    size_t i;

    rng_seed(g_seed + 17);
    g_verify_calls = 0;
    for (round = 0; round < 20; round++) {
        struct trie *t = trie_new();

        memset(&g_model, 0, sizeof(g_model));
        id = 0;
        for (op = 0; op < 600; op++) {
            if (g_model.n > 0 && rng_below(4) == 0) {
                size_t k = rng_below(g_model.n);
                struct entry e = g_model.e[k];
                int rc;

                model_del(&g_model, k);
                rc = trie_remove(t, e.pat, strlen(e.pat), e.queue, strlen(e.queue), sub_of(e.id));
                FAST_ASSERT(rc == (model_pattern_refs(&g_model, e.pat) == 0 ? 1 : 0),
                            "remove %s/%s: %d", e.pat, e.queue, rc);
            } else {
                char pat[32];
                const char *q = queues[rng_below(5)];
                int rc;
                int want;

                fuzz_tokens(pat, 4, true);
                want = model_pattern_refs(&g_model, pat) == 0 ? 1 : 0;
                rc = trie_insert(t, pat, strlen(pat), q, strlen(q), sub_of(id));
                FAST_ASSERT(rc == want, "insert %s/%s: %d, want %d", pat, q, rc, want);
                model_add(&g_model, pat, q, id++);
            }
            if (op % 10 == 0) {
                for (i = 0; i < 8; i++) {
                    fuzz_tokens(subj_buf[i], 5, false);
                    subjects[i] = subj_buf[i];
                }
                model_verify(t, &g_model, subjects, 8);
            }
        }
        model_drain(t, &g_model, 1);
        trie_free(t);
        ck_assert_int_eq(alloc_live, 0);
    }
    ck_assert_uint_gt(g_verify_calls, 10000);
}
END_TEST

START_TEST(test_trie_fuzz_siblings)
{
    enum { NTOK = 3000 };
    static unsigned have[NTOK];
    struct trie *t = trie_new();
    char pat[32];
    size_t i;
    int op;

    rng_seed(g_seed + 19);
    memset(have, 0, sizeof(have));
    for (op = 0; op < 60000; op++) {
        size_t k = rng_below(NTOK);

        snprintf(pat, sizeof(pat), "p.%zu", k);
        if (have[k] > 0 && rng_below(100) < 55) {
            FAST_ASSERT(rem(t, pat, NULL, k) == (have[k] == 1 ? 1 : 0), "remove %s", pat);
            have[k]--;
        } else {
            FAST_ASSERT(ins(t, pat, NULL, k) == (have[k] == 0 ? 1 : 0), "insert %s", pat);
            have[k]++;
        }
        if (op % 5000 == 4999) {
            for (i = 0; i < NTOK; i++) {
                snprintf(pat, sizeof(pat), "p.%zu", i);
                FAST_ASSERT(match(t, pat) == have[i], "%s: %zu calls, want %u", pat, g_rec.calls,
                            have[i]);
            }
        }
    }
    for (i = 0; i < NTOK; i++) {
        snprintf(pat, sizeof(pat), "p.%zu", i);
        while (have[i] > 0)
            FAST_ASSERT(rem(t, pat, NULL, i) == (--have[i] == 0 ? 1 : 0), "drain %s", pat);
    }
    ck_assert_uint_eq(trie_count(t), 0);
    ck_assert_int_eq(alloc_live, 1);
    trie_free(t);
}
END_TEST

/*
 * trie_match() validates subjects in its own single pass; hold it to
 * subject_check() with random, mostly almost-valid byte strings.
 */
START_TEST(test_trie_fuzz_subject_validation)
{
    static const char alpha[] = {'a', 'b', '.', '.', '*', '>', ' ', '\t', '\0', '\x7f', '\x80'};
    struct trie *t = trie_new();
    char buf[SUBJECT_MAX_LEN + 8];
    unsigned long valid = 0;
    int i;

    rng_seed(g_seed + 23);
    ck_assert_int_eq(ins(t, ">", NULL, 0), 1);
    for (i = 0; i < 200000; i++) {
        size_t len;
        size_t k;
        size_t got;
        int ok;

        switch (rng_below(10)) {
        case 0: /* around the length limit, few dots */
            len = SUBJECT_MAX_LEN - 2 + rng_below(5);
            for (k = 0; k < len; k++)
                buf[k] = rng_below(40) == 0 ? '.' : 'x';
            break;
        case 1: /* around the token limit: "a.a.a..." */
            len = 2 * (SUBJECT_MAX_TOKENS - 2 + rng_below(4)) - 1;
            for (k = 0; k < len; k++)
                buf[k] = k % 2 == 1 ? '.' : 'a';
            break;
        default:
            len = rng_below(10);
            for (k = 0; k < len; k++)
                buf[k] = alpha[rng_below(sizeof(alpha))];
            break;
        }
        if (len > 0 && rng_below(8) == 0)
            buf[rng_below(len)] = alpha[rng_below(sizeof(alpha))];
        ok = subject_check(buf, len) == 0;
        memset(&g_rec, 0, sizeof(g_rec));
        got = trie_match(t, buf, len, rec_visit, &g_rec);
        FAST_ASSERT(got == (ok ? 1u : 0u), "\"%.*s\" (%zu bytes): subject_check %d, match %zu",
                    (int)len, buf, len, ok, got);
        valid += ok;
    }
    ck_assert_uint_gt(valid, 10000);
    trie_free(t);
}
END_TEST

/* ---- Suite ---- */

static Suite *trie_suite(void)
{
    Suite *s = suite_create("trie");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_trie_new_is_empty);
    tcase_add_test(tc, test_trie_insert_returns_first);
    tcase_add_test(tc, test_trie_insert_rejects_bad_pattern);
    tcase_add_test(tc, test_trie_match_literal);
    tcase_add_test(tc, test_trie_match_star);
    tcase_add_test(tc, test_trie_match_gt);
    tcase_add_test(tc, test_trie_match_overlapping);
    tcase_add_test(tc, test_trie_match_rejects_wildcard_subject);
    tcase_add_test(tc, test_trie_queue_even_split);
    tcase_add_test(tc, test_trie_queue_same_name_different_patterns);
    tcase_add_test(tc, test_trie_group_steering);
    tcase_add_test(tc, test_trie_remove_returns_counts);
    tcase_add_test(tc, test_trie_remove_prunes);
    tcase_add_test(tc, test_trie_match_no_alloc);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_trie_limits_10000_siblings);
    tcase_add_test(tc, test_trie_limits_10000_on_one_pattern);
    tcase_add_test(tc, test_trie_limits_max_depth);
    tcase_add_test(tc, test_trie_limits_hash_grow_shrink);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_trie_oom_nth_call);
    tcase_add_test(tc, test_trie_oom_random_failures);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_trie_fuzz_vs_subject_match);
    tcase_add_test(tc, test_trie_fuzz_siblings);
    tcase_add_test(tc, test_trie_fuzz_subject_validation);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    const char *env = getenv("RMQ_TEST_SEED");
    SRunner *sr;
    int failed;

    g_seed = env != NULL && *env != '\0' ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("check_trie: RMQ_TEST_SEED=%" PRIu64 "\n", g_seed);
    fflush(stdout); /* before fork(), or the children print it again */

    sr = srunner_create(trie_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
