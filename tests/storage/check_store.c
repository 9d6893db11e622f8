/*
 * check_store.c - unit tests for storage/ (store.h), on real LMDB files.
 *
 * Every test gets its own mkdtemp() dir, made in a checked fixture (so in
 * the child Check forks for the test) and removed after it. Stores are
 * opened inside the tests, never before a fork: LMDB envs must not cross
 * fork(). The crash test forks a writer of its own, which opens the store
 * itself, and SIGKILLs it; the test process opens the store only after
 * the writer is dead.
 *
 * Message bytes are a function of (topic, seq, length), so any message
 * read back can be checked without keeping a copy:
 *
 *   payload(topic, seq, len) = [seq u64 LE][topic u32 LE][xorshift(topic, seq) bytes ...]
 *
 * TCases:
 *   core       open/close, topics, append/read/range, seq contiguity across
 *              batches and reopen, seq-by-time, per-entry errors, dedup
 *              window, topic removal (chunked purge), consumers
 *   retention  count, bytes and age (oldest first, budgeted, round-robin),
 *              dedup expiry, a topic emptied by retention keeps its seqs
 *   recovery   reopen with everything intact, SIGKILLed writers
 *              (FSYNC_ALWAYS and FSYNC_NEVER), damaged or unusable data dirs
 *   limits     map growth, map full (prefix commits, RMQ_ESTOREFULL, usable
 *              after deletions), a 1,000-entry batch in one txn, big
 *              messages, readers on other threads during growth
 *   chunks     the chunked message layout: chunk bounds (count, bytes, a
 *              message over the bound), reads from inside and across
 *              chunks with byte limits, retention cutting into a chunk
 *              (exact counts and bytes), seq-by-time inside chunks, purge of
 *              a topic with many chunks, map full inside a chunk, room
 *              again right after removing a topic from a full store, the
 *              old format version and a damaged chunk
 *
 * Random input is seeded from RMQ_TEST_SEED or the time; main() prints the
 * seed so that a failing run can be replayed.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rmq_error.h"
#include "store.h"
#include "testrng.h"

/* ck_assert() writes to Check's pipe even when it passes; hot loops use this. */
#define FAST_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static uint64_t g_seed;
static char g_dir[256];  /* this test's scratch dir */
static char g_path[300]; /* g_dir/db: the store's data dir */

/* Text for a result code (the test links no ringmq_proto for rmq_err_str()). */
static const char *code_str(int rc)
{
    const char *d;

    switch (rc) {
    case 0:
        return "ok";
    case RMQ_ENOTFOUND:
        return "RMQ_ENOTFOUND";
    case RMQ_ESTOREFULL:
        return "RMQ_ESTOREFULL";
    default:
        d = rc < 0 && rc > -4096 ? strerrordesc_np(-rc) : NULL;
        return d != NULL ? d : "?";
    }
}

/* ---- Random numbers ---- */

/* ---- Fixture: a scratch dir per test ---- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_path, sizeof(g_path), "%s/db", g_dir);
    rng_seed(g_seed);
}

static void teardown(void)
{
    chmod(g_dir, 0700);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- Helpers ---- */

static struct store *open_opts(const struct store_opts *o)
{
    char err[STORE_ERR_LEN];
    struct store *s = NULL;
    int rc = store_open(o, &s, err, sizeof(err));

    ck_assert_msg(rc == 0, "store_open(%s): %d (%s) %s", o->dir, rc, code_str(rc), err);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(err, "");
    return s;
}

static struct store *open_store(void)
{
    struct store_opts o = {.dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 16u << 20};

    return open_opts(&o);
}

/* Expect store_open() to fail with want and say something. */
static void open_fails(const struct store_opts *o, int want)
{
    char err[STORE_ERR_LEN];
    struct store *s = (struct store *)&s;
    int rc = store_open(o, &s, err, sizeof(err));

    ck_assert_msg(rc == want, "store_open(%s) = %d (%s), want %d (%s); err: %s", o->dir, rc,
                  code_str(rc), want, code_str(want), err);
    ck_assert_ptr_null(s);
    ck_assert_msg(strlen(err) > 0, "no error message for %d", rc);
}

static void cfg_init(struct store_topic_cfg *c, const char *name)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%.64s", name);
    c->npatterns = 1;
    snprintf(c->patterns[0], sizeof(c->patterns[0]), "%.64s.>", name);
}

static uint32_t topic_new(struct store *s, const char *name, uint64_t max_msgs, uint64_t max_bytes,
                          uint64_t max_age, uint64_t window)
{
    struct store_topic_cfg c;
    uint32_t id = 0;
    int rc;

    cfg_init(&c, name);
    c.max_msgs = max_msgs;
    c.max_bytes = max_bytes;
    c.max_age_ns = max_age;
    c.dedup_window_ns = window;
    rc = store_topic_add(s, &c, &id);
    ck_assert_msg(rc == 0, "topic_add(%s): %d", name, rc);
    ck_assert_uint_ne(id, 0);
    return id;
}

static void payload(uint8_t *b, size_t len, uint32_t topic, uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull ^ topic;
    size_t i;

    for (i = 0; i < len; i++) {
        if (i < 8)
            b[i] = (uint8_t)(seq >> (8 * i));
        else if (i < 12)
            b[i] = (uint8_t)(topic >> (8 * (i - 8)));
        else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (uint8_t)x;
        }
    }
}

static bool payload_ok(const void *p, size_t len, uint32_t topic, uint64_t seq)
{
    uint8_t buf[4096];
    const uint8_t *q = p;
    size_t off, n;
    uint8_t *big;
    bool ok;

    if (len <= sizeof(buf)) {
        payload(buf, len, topic, seq);
        return memcmp(buf, q, len) == 0;
    }
    big = malloc(len);
    ck_assert_ptr_nonnull(big);
    payload(big, len, topic, seq);
    ok = true;
    for (off = 0; off < len && ok; off += n) {
        n = len - off < 65536 ? len - off : 65536;
        ok = memcmp(big + off, q + off, n) == 0;
    }
    free(big);
    return ok;
}

/*
 * Append n messages of len bytes to topic in one batch, at ts, ts+1, ...;
 * payloads are payload(topic, expected seq). Returns the batch's rc.
 */
static int append_n(struct store *s, uint32_t topic, size_t n, size_t len, uint64_t ts,
                    uint64_t first_seq)
{
    struct store_append *a = calloc(n, sizeof(*a));
    uint8_t *bufs = malloc(n * (len ? len : 1));
    size_t i;
    int rc;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(bufs);
    for (i = 0; i < n; i++) {
        a[i].topic = topic;
        a[i].ts_ns = ts + i;
        a[i].data = bufs + i * len;
        a[i].len = len;
        payload(bufs + i * len, len, topic, first_seq + i);
    }
    rc = store_append_batch(s, a, n);
    for (i = 0; i < n && rc == 0; i++) {
        FAST_ASSERT(a[i].rc == 0 && !a[i].duplicate && a[i].seq == first_seq + i,
                    "entry %zu: rc %d dup %d seq %" PRIu64 " want %" PRIu64, i, a[i].rc,
                    a[i].duplicate, a[i].seq, first_seq + i);
    }
    free(a);
    free(bufs);
    return rc;
}

/* What a store_read() callback saw. */
struct seen {
    uint32_t topic;
    size_t n, cap;
    uint64_t *seqs, *ts;
    size_t *lens;
    bool bad_payload;
    int stop_at; /* return this from the callback at message index stop_idx */
    size_t stop_idx;
};

static int seen_fn(void *arg, const struct store_msg *m)
{
    struct seen *s = arg;

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->seqs = realloc(s->seqs, s->cap * sizeof(*s->seqs));
        s->ts = realloc(s->ts, s->cap * sizeof(*s->ts));
        s->lens = realloc(s->lens, s->cap * sizeof(*s->lens));
        ck_assert(s->seqs && s->ts && s->lens);
    }
    if (s->stop_at != 0 && s->n == s->stop_idx && s->stop_at < 0)
        return s->stop_at;
    if (!payload_ok(m->data, m->len, s->topic, m->seq))
        s->bad_payload = true;
    s->seqs[s->n] = m->seq;
    s->ts[s->n] = m->ts_ns;
    s->lens[s->n] = m->len;
    s->n++;
    if (s->stop_at > 0 && s->n - 1 == s->stop_idx)
        return s->stop_at;
    return 0;
}

static void seen_free(struct seen *s)
{
    free(s->seqs);
    free(s->ts);
    free(s->lens);
    memset(s, 0, sizeof(*s));
}

/* Read the whole topic in chunks of `chunk`; checks payloads and ordering. */
static void read_all(struct store *s, uint32_t topic, size_t chunk, struct seen *out)
{
    uint64_t from = 0, next = 0;
    ssize_t n;

    memset(out, 0, sizeof(*out));
    out->topic = topic;
    for (;;) {
        n = store_read(s, topic, from, chunk, 0, seen_fn, out, &next);
        ck_assert_msg(n >= 0, "store_read: %zd", n);
        if (n == 0)
            break;
        ck_assert_uint_gt(next, from);
        from = next;
    }
    ck_assert_msg(!out->bad_payload, "payload mismatch");
}

/* Topic holds exactly seqs first..last with valid payloads. */
static void expect_range(struct store *s, uint32_t topic, uint64_t first, uint64_t last)
{
    struct store_topic_info info;
    struct seen r;
    size_t i;

    read_all(s, topic, 97, &r);
    ck_assert_uint_eq(r.n, last >= first ? last - first + 1 : 0);
    for (i = 0; i < r.n; i++)
        FAST_ASSERT(r.seqs[i] == first + i, "seq %" PRIu64 " at %zu, want %" PRIu64, r.seqs[i], i,
                    first + i);
    ck_assert_int_eq(store_topic_info(s, topic, &info), 0);
    ck_assert_uint_eq(info.msgs, r.n);
    if (r.n > 0) {
        ck_assert_uint_eq(info.first_seq, first);
        ck_assert_uint_eq(info.last_seq, last);
    }
    seen_free(&r);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* ---- core ---- */

START_TEST(test_store_open_creates_dir)
{
    struct store_opts o = {.dir = NULL, .fsync = STORE_FSYNC_ALWAYS};
    char deep[400], p[500];
    struct store_env_info ei;
    struct stat st;
    struct store *s;

    snprintf(deep, sizeof(deep), "%s/a/b/c", g_dir);
    o.dir = deep;
    s = open_opts(&o);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.map_size, 256u << 20);
    ck_assert_uint_ge(ei.map_max, ei.map_size);
    ck_assert_uint_eq(ei.topics, 0);
    store_close(s);
    snprintf(p, sizeof(p), "%s/data.mdb", deep);
    ck_assert_int_eq(stat(p, &st), 0);
    snprintf(p, sizeof(p), "%s/ringmq.lock", deep);
    ck_assert_int_eq(stat(p, &st), 0);
    s = open_opts(&o);
    store_close(s);
    store_close(NULL);
}
END_TEST

START_TEST(test_store_open_bad_opts)
{
    struct store_opts o = {.dir = ""};
    struct store *s;

    open_fails(&o, -EINVAL);
    o.dir = g_path;
    o.fsync = (enum store_fsync)7;
    open_fails(&o, -EINVAL);
    ck_assert_int_eq(store_open(NULL, &s, NULL, 0), -EINVAL);
    o.fsync = STORE_FSYNC_ALWAYS;
    ck_assert_int_eq(store_open(&o, NULL, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_store_topic_add_get_list)
{
    struct store *s = open_store();
    struct store_topic_cfg c, got;
    uint32_t id1, id2, id;
    char long_name[80];
    size_t i;

    cfg_init(&c, "orders-EU_1");
    c.npatterns = 3;
    snprintf(c.patterns[1], sizeof(c.patterns[1]), "orders.*.eu");
    memset(c.patterns[2], 'x', STORE_PATTERN_MAX);
    c.patterns[2][STORE_PATTERN_MAX] = '\0';
    c.max_msgs = 10;
    c.max_bytes = 20;
    c.max_age_ns = 30;
    c.dedup_window_ns = 40;
    ck_assert_int_eq(store_topic_add(s, &c, &id1), 0);
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EEXIST);
    id2 = topic_new(s, "other", 0, 0, 0, 0);
    ck_assert_uint_gt(id2, id1);

    ck_assert_int_eq(store_topic_get(s, "orders-EU_1", &id, &got), 0);
    ck_assert_uint_eq(id, id1);
    ck_assert_str_eq(got.name, "orders-EU_1");
    ck_assert_uint_eq(got.npatterns, 3);
    for (i = 0; i < 3; i++)
        ck_assert_str_eq(got.patterns[i], c.patterns[i]);
    ck_assert_uint_eq(got.max_msgs, 10);
    ck_assert_uint_eq(got.max_bytes, 20);
    ck_assert_uint_eq(got.max_age_ns, 30);
    ck_assert_uint_eq(got.dedup_window_ns, 40);
    ck_assert_int_eq(store_topic_get(s, "nope", &id, NULL), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_topic_get(s, "bad.name", &id, NULL), -EINVAL);

    /* Invalid definitions. */
    cfg_init(&c, "");
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    cfg_init(&c, "a b");
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    cfg_init(&c, "a.b");
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    memset(long_name, 'n', sizeof(long_name));
    long_name[STORE_NAME_MAX] = '\0';
    cfg_init(&c, long_name);
    ck_assert_int_eq(store_topic_add(s, &c, &id), 0); /* 64 chars: fine */
    memset(c.name, 'm', sizeof(c.name));              /* no NUL inside the array */
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    cfg_init(&c, "p0");
    c.npatterns = 0;
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    c.npatterns = STORE_PATTERNS_MAX + 1;
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    c.npatterns = 2; /* patterns[1] empty */
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    c.npatterns = 1;
    memset(c.patterns[0], 'y', sizeof(c.patterns[0])); /* 257 bytes, no NUL */
    ck_assert_int_eq(store_topic_add(s, &c, &id), -EINVAL);
    cfg_init(&c, "p16");
    c.npatterns = STORE_PATTERNS_MAX;
    for (i = 0; i < STORE_PATTERNS_MAX; i++)
        snprintf(c.patterns[i], sizeof(c.patterns[i]), "p.%zu", i);
    ck_assert_int_eq(store_topic_add(s, &c, &id), 0);
    ck_assert_int_eq(store_topic_get(s, "p16", NULL, &got), 0);
    ck_assert_uint_eq(got.npatterns, STORE_PATTERNS_MAX);
    ck_assert_str_eq(got.patterns[15], "p.15");
    store_close(s);
}
END_TEST

struct list_acc {
    int n;
    uint32_t ids[16];
    char names[16][STORE_NAME_MAX + 1];
    int stop_after;
};

static int list_fn(void *arg, uint32_t id, const struct store_topic_cfg *cfg)
{
    struct list_acc *a = arg;

    a->ids[a->n] = id;
    snprintf(a->names[a->n], sizeof(a->names[0]), "%s", cfg->name);
    a->n++;
    return a->stop_after != 0 && a->n == a->stop_after ? 42 : 0;
}

START_TEST(test_store_topic_list)
{
    struct store *s = open_store();
    struct list_acc acc = {0};
    uint32_t a, b, c;

    ck_assert_int_eq(store_topic_list(s, list_fn, &acc), 0);
    a = topic_new(s, "a", 0, 0, 0, 0);
    b = topic_new(s, "b", 0, 0, 0, 0);
    c = topic_new(s, "c", 0, 0, 0, 0);
    ck_assert_int_eq(store_topic_list(s, list_fn, &acc), 3);
    ck_assert_uint_eq(acc.ids[0], a);
    ck_assert_uint_eq(acc.ids[1], b);
    ck_assert_uint_eq(acc.ids[2], c);
    ck_assert_str_eq(acc.names[1], "b");
    memset(&acc, 0, sizeof(acc));
    acc.stop_after = 2;
    ck_assert_int_eq(store_topic_list(s, list_fn, &acc), 42);
    ck_assert_int_eq(acc.n, 2);
    store_close(s);
}
END_TEST

START_TEST(test_store_append_read_range)
{
    struct store *s = open_store();
    struct store_topic_info info;
    uint32_t t1 = topic_new(s, "t1", 0, 0, 0, 0), t2 = topic_new(s, "t2", 0, 0, 0, 0);
    struct store_append a[64];
    uint8_t bufs[64][200];
    uint64_t next;
    struct seen r;
    size_t i;
    ssize_t n;

    /* One batch interleaving two topics, varied lengths (0 included). */
    memset(a, 0, sizeof(a));
    for (i = 0; i < 64; i++) {
        uint32_t t = i % 3 == 0 ? t2 : t1;
        uint64_t seq = t == t2 ? i / 3 + 1 : i - i / 3 - (i % 3 ? 0 : 0);

        (void)seq;
        a[i].topic = t;
        a[i].ts_ns = 1000 + i * 10;
        a[i].len = i % 7 == 0 ? 0 : 3 + i * 3;
        a[i].data = a[i].len ? bufs[i] : NULL;
    }
    /* Fill payloads with the seq each entry will get. */
    {
        uint64_t s1 = 0, s2 = 0;
        for (i = 0; i < 64; i++) {
            uint64_t seq = a[i].topic == t1 ? ++s1 : ++s2;
            payload(bufs[i], a[i].len, a[i].topic, seq);
        }
    }
    ck_assert_int_eq(store_append_batch(s, a, 64), 0);
    {
        uint64_t s1 = 0, s2 = 0;
        for (i = 0; i < 64; i++) {
            uint64_t want = a[i].topic == t1 ? ++s1 : ++s2;
            ck_assert_int_eq(a[i].rc, 0);
            ck_assert(!a[i].duplicate);
            ck_assert_uint_eq(a[i].seq, want);
        }
        ck_assert_uint_eq(s2, 22);
        ck_assert_uint_eq(s1, 42);
    }
    expect_range(s, t1, 1, 42);
    expect_range(s, t2, 1, 22);

    /* Timestamps and lengths come back as given. */
    read_all(s, t2, 5, &r);
    for (i = 0; i < r.n; i++) {
        ck_assert_uint_eq(r.ts[i], a[i * 3].ts_ns);
        ck_assert_uint_eq(r.lens[i], a[i * 3].len);
    }
    seen_free(&r);

    /* A middle range, bounded by count. */
    memset(&r, 0, sizeof(r));
    r.topic = t1;
    n = store_read(s, t1, 10, 5, 0, seen_fn, &r, &next);
    ck_assert_int_eq(n, 5);
    ck_assert_uint_eq(r.seqs[0], 10);
    ck_assert_uint_eq(r.seqs[4], 14);
    ck_assert_uint_eq(next, 15);
    seen_free(&r);

    /* Bounded by bytes: at least one message even if it is bigger. */
    memset(&r, 0, sizeof(r));
    r.topic = t1;
    n = store_read(s, t1, 40, 100, 1, seen_fn, &r, &next);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(next, 41);
    seen_free(&r);
    memset(&r, 0, sizeof(r));
    r.topic = t1;
    n = store_read(s, t1, 1, 100, 600, seen_fn, &r, &next);
    ck_assert_int_gt(n, 1);
    ck_assert_int_lt(n, 42);
    {
        size_t tot = 0;
        for (i = 0; i < r.n; i++)
            tot += r.lens[i];
        ck_assert_uint_le(tot, 600);
        ck_assert_uint_eq(next, r.seqs[r.n - 1] + 1);
    }
    seen_free(&r);

    /* Past the end: nothing, next = from. Unknown topic. Bad args. */
    memset(&r, 0, sizeof(r));
    r.topic = t1;
    ck_assert_int_eq(store_read(s, t1, 43, 10, 0, seen_fn, &r, &next), 0);
    ck_assert_uint_eq(next, 43);
    ck_assert_int_eq(store_read(s, t1, 1000, 10, 0, seen_fn, &r, &next), 0);
    ck_assert_uint_eq(next, 1000);
    ck_assert_int_eq(store_read(s, 999, 0, 10, 0, seen_fn, &r, &next), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_read(s, t1, 0, 0, 0, seen_fn, &r, &next), -EINVAL);
    ck_assert_int_eq(store_read(s, t1, 0, 1, 0, NULL, &r, &next), -EINVAL);

    /* The callback stops the walk: > 0 after, < 0 before the message. */
    r.stop_at = 7;
    r.stop_idx = 2;
    ck_assert_int_eq(store_read(s, t1, 1, 100, 0, seen_fn, &r, &next), 3);
    ck_assert_uint_eq(next, 4);
    seen_free(&r);
    r.topic = t1;
    r.stop_at = -ECANCELED;
    r.stop_idx = 2;
    ck_assert_int_eq(store_read(s, t1, 1, 100, 0, seen_fn, &r, &next), -ECANCELED);
    ck_assert_uint_eq(next, 3);
    seen_free(&r);

    ck_assert_int_eq(store_topic_info(s, t1, &info), 0);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 42);
    ck_assert_uint_eq(info.first_ts_ns, 1010);
    ck_assert_uint_eq(info.last_ts_ns, 1620);
    ck_assert_int_eq(store_topic_info(s, 12345, &info), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_last_seq(s, t2, &next), 0);
    ck_assert_uint_eq(next, 22);
    ck_assert_int_eq(store_last_seq(s, 12345, &next), RMQ_ENOTFOUND);
    store_close(s);
}
END_TEST

START_TEST(test_store_seq_contiguous_batches_and_reopen)
{
    struct store *s = open_store();
    uint32_t ids[3];
    uint64_t next[3] = {1, 1, 1}, ts = 1;
    int round, b, k;

    ids[0] = topic_new(s, "x0", 0, 0, 0, 0);
    ids[1] = topic_new(s, "x1", 0, 0, 0, 0);
    ids[2] = topic_new(s, "x2", 0, 0, 0, 0);
    for (round = 0; round < 3; round++) {
        for (b = 0; b < 40; b++) {
            struct store_append a[32];
            uint8_t bufs[32][64];
            uint64_t want[32];
            int n = 1 + (int)rng_below(32);

            memset(a, 0, sizeof(a));
            for (k = 0; k < n; k++) {
                int t = (int)rng_below(3);
                a[k].topic = ids[t];
                a[k].ts_ns = ts++;
                a[k].len = rng_below(64);
                a[k].data = bufs[k];
                want[k] = next[t]++;
                payload(bufs[k], a[k].len, ids[t], want[k]);
            }
            ck_assert_int_eq(store_append_batch(s, a, (size_t)n), 0);
            for (k = 0; k < n; k++)
                FAST_ASSERT(a[k].seq == want[k], "seq %" PRIu64 " want %" PRIu64, a[k].seq,
                            want[k]);
        }
        store_close(s);
        s = open_store();
        for (k = 0; k < 3; k++)
            expect_range(s, ids[k], 1, next[k] - 1);
    }
    store_close(s);
}
END_TEST

START_TEST(test_store_seq_at_time)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "tt", 0, 0, 0, 0), e = topic_new(s, "empty", 0, 0, 0, 0);
    struct store_append a[200];
    uint64_t ts[201], seq, want, q;
    size_t i, j;
    struct seen r;

    memset(a, 0, sizeof(a));
    ts[0] = 0;
    for (i = 0; i < 200; i++) {
        /* Non-decreasing with repeats; every 17th goes back in time. */
        uint64_t v = 1000 + (i / 3) * 100;
        a[i].topic = t;
        a[i].ts_ns = i % 17 == 16 ? 5 : v;
        a[i].data = NULL;
        a[i].len = 0;
    }
    ck_assert_int_eq(store_append_batch(s, a, 200), 0);
    /* Stored ts: the given one, raised to the previous stored one. */
    read_all(s, t, 50, &r);
    ck_assert_uint_eq(r.n, 200);
    for (i = 0; i < 200; i++) {
        ts[i + 1] = r.ts[i];
        if (i > 0)
            ck_assert_uint_ge(r.ts[i], r.ts[i - 1]);
        if (a[i].ts_ns >= (i ? r.ts[i - 1] : 0))
            ck_assert_uint_eq(r.ts[i], a[i].ts_ns);
    }
    seen_free(&r);
    /* Against a linear scan, at every interesting point. */
    for (q = 0; q < 1000 + 70 * 100; q += 50) {
        want = 201;
        for (j = 1; j <= 200; j++) {
            if (ts[j] >= q) {
                want = j;
                break;
            }
        }
        ck_assert_int_eq(store_seq_at_time(s, t, q, &seq), 0);
        FAST_ASSERT(seq == want, "ts %" PRIu64 ": seq %" PRIu64 " want %" PRIu64, q, seq, want);
    }
    ck_assert_int_eq(store_seq_at_time(s, t, UINT64_MAX, &seq), 0);
    ck_assert_uint_eq(seq, 201);
    ck_assert_int_eq(store_seq_at_time(s, e, 5, &seq), 0);
    ck_assert_uint_eq(seq, 1);
    ck_assert_int_eq(store_seq_at_time(s, 777, 5, &seq), RMQ_ENOTFOUND);
    store_close(s);
}
END_TEST

START_TEST(test_store_entry_errors_isolated)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "ok", 0, 100, 0, 1000);
    uint8_t big[STORE_DEDUP_ID_MAX + 1] = {0}, buf[200];
    struct store_append a[7];
    int rc;

    memset(a, 0, sizeof(a));
    payload(buf, 10, t, 1);
    a[0] = (struct store_append){.topic = t, .ts_ns = 1, .data = buf, .len = 10};
    a[1] = (struct store_append){.topic = 4242, .ts_ns = 1, .data = buf, .len = 10};
    a[2] = (struct store_append){.topic = t, .ts_ns = 1, .data = NULL, .len = 5};
    a[3] = (struct store_append){
        .topic = t, .ts_ns = 1, .data = buf, .len = 10, .dedup_id = big, .dedup_len = sizeof(big)};
    a[4] = (struct store_append){.topic = t, .ts_ns = 1, .data = buf, .len = 101};
    a[5] = (struct store_append){.topic = t, .ts_ns = 1, .dedup_id = NULL, .dedup_len = 3};
    a[6] = (struct store_append){.topic = t, .ts_ns = 2, .data = buf, .len = 10};
    payload(buf, 10, t, 1);
    rc = store_append_batch(s, a, 7);
    ck_assert_int_eq(rc, RMQ_ENOTFOUND); /* the first failing entry's */
    ck_assert_int_eq(a[0].rc, 0);
    ck_assert_uint_eq(a[0].seq, 1);
    ck_assert_int_eq(a[1].rc, RMQ_ENOTFOUND);
    ck_assert_int_eq(a[2].rc, -EINVAL);
    ck_assert_int_eq(a[3].rc, -EINVAL);
    ck_assert_int_eq(a[4].rc, -EMSGSIZE);
    ck_assert_int_eq(a[5].rc, -EINVAL);
    ck_assert_int_eq(a[6].rc, 0);
    ck_assert_uint_eq(a[6].seq, 2);
    ck_assert_int_eq(store_append_batch(s, NULL, 1), -EINVAL);
    ck_assert_int_eq(store_append_batch(s, NULL, 0), 0);
    store_close(s);
}
END_TEST

static struct store_append dd(uint32_t t, uint64_t ts, const char *id, const void *data, size_t len)
{
    struct store_append e = {.topic = t, .ts_ns = ts, .data = data, .len = len};

    e.dedup_id = id;
    e.dedup_len = id ? strlen(id) : 0;
    return e;
}

START_TEST(test_store_dedup_window)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "d", 0, 0, 0, 1000), u = topic_new(s, "u", 0, 0, 0, 1000);
    uint32_t nodd = topic_new(s, "nodd", 0, 0, 0, 0);
    struct store_append a[6];
    struct store_topic_info info;
    uint8_t b[16];

    payload(b, 16, t, 1);
    a[0] = dd(t, 100, "id-1", b, 16);
    a[1] = dd(t, 200, "id-1", b, 16); /* same batch: duplicate of a[0] */
    a[2] = dd(u, 200, "id-1", b, 16); /* another topic: not a duplicate */
    a[3] = dd(t, 300, "id-2", b, 16);
    a[4] = dd(nodd, 300, "id-1", b, 16); /* window 0: ids ignored */
    a[5] = dd(nodd, 300, "id-1", b, 16);
    ck_assert_int_eq(store_append_batch(s, a, 6), 0);
    ck_assert(!a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 1);
    ck_assert(a[1].duplicate);
    ck_assert_uint_eq(a[1].seq, 1);
    ck_assert(!a[2].duplicate);
    ck_assert_uint_eq(a[2].seq, 1);
    ck_assert(!a[3].duplicate);
    ck_assert_uint_eq(a[3].seq, 2);
    ck_assert(!a[4].duplicate && !a[5].duplicate);
    ck_assert_uint_eq(a[5].seq, 2);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, 2);

    /* Within the window (1099 - 100 < 1000) in a later batch: duplicate. */
    a[0] = dd(t, 1099, "id-1", b, 16);
    ck_assert_int_eq(store_append_batch(s, a, 1), 0);
    ck_assert(a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 1);
    /* Survives a restart. */
    store_close(s);
    s = open_store();
    a[0] = dd(t, 1099, "id-1", b, 16);
    ck_assert_int_eq(store_append_batch(s, a, 1), 0);
    ck_assert(a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 1);
    /* Window passed (1100 - 100 = 1000): stored anew, new seq; then that one dedups. */
    a[0] = dd(t, 1100, "id-1", b, 16);
    a[1] = dd(t, 1200, "id-1", b, 16);
    ck_assert_int_eq(store_append_batch(s, a, 2), 0);
    ck_assert(!a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 3);
    ck_assert(a[1].duplicate);
    ck_assert_uint_eq(a[1].seq, 3);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, 3);
    store_close(s);
}
END_TEST

START_TEST(test_store_topic_rm)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "gone", 0, 0, 0, 1000000), keep = topic_new(s, "keep", 0, 0, 0, 0);
    struct store_consumer c = {.name = "c1", .ack_floor = 3};
    struct store_topic_info info;
    struct store_env_info ei;
    struct store_append a[3];
    uint32_t t2;
    uint64_t seq;
    size_t del;
    struct seen r = {0};
    uint8_t b[8];

    a[0] = dd(t, 1, "x", b, 8);
    a[1] = dd(t, 2, "y", b, 8);
    a[2] = dd(keep, 2, NULL, b, 8);
    payload(b, 8, t, 1);
    ck_assert_int_eq(store_append_batch(s, a, 3), 0);
    c.topic = t;
    ck_assert_int_eq(store_consumer_put(s, &c), 0);
    c.topic = keep;
    ck_assert_int_eq(store_consumer_put(s, &c), 0);

    ck_assert_int_eq(store_topic_rm(s, t), 0);
    ck_assert_int_eq(store_topic_rm(s, t), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_topic_get(s, "gone", NULL, NULL), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_topic_info(s, t, &info), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_read(s, t, 0, 10, 0, seen_fn, &r, NULL), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_consumer_get(s, t, "c1", &c), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_consumer_get(s, keep, "c1", &c), 0);
    a[0] = dd(t, 3, NULL, b, 8);
    ck_assert_int_eq(store_append_batch(s, a, 1), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 0); /* small: deleted in the same txn */
    ck_assert_uint_eq(ei.topics, 1);

    /* The name is free again, under a new id, with fresh seqs and no dedup memory. */
    t2 = topic_new(s, "gone", 0, 0, 0, 1000000);
    ck_assert_uint_ne(t2, t);
    a[0] = dd(t2, 5, "x", b, 8);
    payload(b, 8, t2, 1);
    ck_assert_int_eq(store_append_batch(s, a, 1), 0);
    ck_assert(!a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 1);
    ck_assert_int_eq(store_last_seq(s, t2, &seq), 0);
    ck_assert_uint_eq(seq, 1);
    expect_range(s, keep, 1, 1);
    ck_assert_int_eq(store_retention_run(s, 10, 0, &del), 0);
    ck_assert_uint_eq(del, 0);
    store_close(s);
}
END_TEST

START_TEST(test_store_topic_rm_large_is_chunked)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "huge", 0, 0, 0, 0), other = topic_new(s, "other", 0, 0, 0, 0);
    struct store_env_info ei;
    size_t del, total = 0;
    int i, calls = 0;

    for (i = 0; i < 10; i++)
        ck_assert_int_eq(append_n(s, t, 1000, 16, (uint64_t)i * 1000, (uint64_t)i * 1000 + 1), 0);
    ck_assert_int_eq(append_n(s, other, 10, 16, 1, 1), 0);
    ck_assert_int_eq(store_topic_rm(s, t), 0);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 1);
    /* The purge resumes after a restart. */
    store_close(s);
    s = open_store();
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 1);
    ck_assert_int_eq(store_topic_get(s, "huge", NULL, NULL), RMQ_ENOTFOUND);
    do {
        ck_assert_int_eq(store_retention_run(s, 1, 1500, &del), 0);
        ck_assert_uint_le(del, 1500);
        total += del;
        calls++;
    } while (del > 0 && calls < 100);
    ck_assert_uint_eq(total, 10000 - 4096);
    ck_assert_int_ge(calls, 4);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 0);
    expect_range(s, other, 1, 10);
    store_close(s);
}
END_TEST

struct cons_acc {
    int n;
    char names[8][STORE_NAME_MAX + 1];
    uint32_t topics[8];
};

static int cons_fn(void *arg, const struct store_consumer *c)
{
    struct cons_acc *a = arg;

    snprintf(a->names[a->n], sizeof(a->names[0]), "%s", c->name);
    a->topics[a->n] = c->topic;
    a->n++;
    return 0;
}

START_TEST(test_store_consumers)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "ct", 0, 0, 0, 0), u = topic_new(s, "cu", 0, 0, 0, 0);
    struct store_consumer c = {0}, got;
    struct store_ack acks[4];
    struct cons_acc acc = {0};

    snprintf(c.name, sizeof(c.name), "worker-a");
    c.topic = t;
    c.ack_floor = 10;
    c.max_inflight = 64;
    c.max_deliver = 5;
    c.ack_wait_ns = 30000000000ull;
    c.flags = 0xabcd;
    ck_assert_int_eq(store_consumer_put(s, &c), 0);
    snprintf(c.name, sizeof(c.name), "worker-b");
    ck_assert_int_eq(store_consumer_put(s, &c), 0);
    c.topic = u;
    ck_assert_int_eq(store_consumer_put(s, &c), 0);
    c.topic = 999;
    ck_assert_int_eq(store_consumer_put(s, &c), RMQ_ENOTFOUND);
    snprintf(c.name, sizeof(c.name), "bad name");
    c.topic = t;
    ck_assert_int_eq(store_consumer_put(s, &c), -EINVAL);

    ck_assert_int_eq(store_consumer_get(s, t, "worker-a", &got), 0);
    ck_assert_str_eq(got.name, "worker-a");
    ck_assert_uint_eq(got.topic, t);
    ck_assert_uint_eq(got.ack_floor, 10);
    ck_assert_uint_eq(got.max_inflight, 64);
    ck_assert_uint_eq(got.max_deliver, 5);
    ck_assert_uint_eq(got.ack_wait_ns, 30000000000ull);
    ck_assert_uint_eq(got.flags, 0xabcd);
    ck_assert_int_eq(store_consumer_get(s, u, "worker-a", &got), RMQ_ENOTFOUND);

    ck_assert_int_eq(store_consumer_list(s, t, cons_fn, &acc), 2);
    ck_assert_str_eq(acc.names[0], "worker-a");
    ck_assert_str_eq(acc.names[1], "worker-b");
    memset(&acc, 0, sizeof(acc));
    ck_assert_int_eq(store_consumer_list(s, 0, cons_fn, &acc), 3);
    ck_assert_uint_eq(acc.topics[2], u);

    acks[0] = (struct store_ack){.topic = t, .name = "worker-a", .floor = 20};
    acks[1] = (struct store_ack){.topic = t, .name = "worker-b", .floor = 5}; /* backwards */
    acks[2] = (struct store_ack){.topic = t, .name = "nobody", .floor = 5};
    acks[3] = (struct store_ack){.topic = u, .name = "worker-b", .floor = 11};
    ck_assert_int_eq(store_consumer_ack_batch(s, acks, 4), RMQ_ENOTFOUND);
    ck_assert_int_eq(acks[0].rc, 0);
    ck_assert_int_eq(acks[1].rc, 0);
    ck_assert_int_eq(acks[2].rc, RMQ_ENOTFOUND);
    ck_assert_int_eq(acks[3].rc, 0);
    ck_assert_int_eq(store_consumer_get(s, t, "worker-a", &got), 0);
    ck_assert_uint_eq(got.ack_floor, 20);
    ck_assert_uint_eq(got.max_inflight, 64);
    ck_assert_int_eq(store_consumer_get(s, t, "worker-b", &got), 0);
    ck_assert_uint_eq(got.ack_floor, 10);
    ck_assert_int_eq(store_consumer_get(s, u, "worker-b", &got), 0);
    ck_assert_uint_eq(got.ack_floor, 11);

    ck_assert_int_eq(store_consumer_del(s, t, "worker-a"), 0);
    ck_assert_int_eq(store_consumer_del(s, t, "worker-a"), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_consumer_get(s, t, "worker-a", &got), RMQ_ENOTFOUND);
    ck_assert_int_eq(store_consumer_del(s, t, ""), -EINVAL);
    store_close(s);
}
END_TEST

/* ---- retention ---- */

START_TEST(test_store_retention_count)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "cnt", 10, 0, 0, 0), free_t = topic_new(s, "free", 0, 0, 0, 0);
    struct store_topic_info info;
    int i;

    for (i = 0; i < 5; i++)
        ck_assert_int_eq(append_n(s, t, 5, 32, (uint64_t)i * 5, (uint64_t)i * 5 + 1), 0);
    expect_range(s, t, 16, 25);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, 10);
    ck_assert_uint_eq(info.bytes, 320);
    ck_assert_uint_eq(info.first_ts_ns, 15);
    /* A batch larger than the limit keeps its newest 10. */
    ck_assert_int_eq(append_n(s, t, 25, 32, 100, 26), 0);
    expect_range(s, t, 41, 50);
    ck_assert_int_eq(append_n(s, free_t, 30, 8, 0, 1), 0);
    expect_range(s, free_t, 1, 30);
    store_close(s);
    s = open_store();
    expect_range(s, t, 41, 50);
    ck_assert_int_eq(append_n(s, t, 1, 32, 200, 51), 0);
    expect_range(s, t, 42, 51);
    store_close(s);
}
END_TEST

START_TEST(test_store_retention_bytes)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "byt", 0, 1000, 0, 0);
    struct store_topic_info info;
    struct store_append a[1];
    uint64_t seq, total = 0, lens[200];
    uint8_t buf[300];
    int i;

    for (seq = 1; seq <= 200; seq++) {
        lens[seq - 1] = 1 + rng_below(300);
        payload(buf, lens[seq - 1], t, seq);
        a[0] = (struct store_append){.topic = t, .ts_ns = seq, .data = buf, .len = lens[seq - 1]};
        ck_assert_int_eq(store_append_batch(s, a, 1), 0);
        ck_assert_uint_eq(a[0].seq, seq);
        ck_assert_int_eq(store_topic_info(s, t, &info), 0);
        ck_assert_uint_le(info.bytes, 1000);
        /* Exactly the newest messages that fit: adding the next older one would not. */
        total = 0;
        for (i = (int)seq; i >= (int)info.first_seq; i--)
            total += lens[i - 1];
        ck_assert_uint_eq(total, info.bytes);
        if (info.first_seq > 1)
            ck_assert_uint_gt(total + lens[info.first_seq - 2], 1000);
    }
    expect_range(s, t, info.first_seq, 200);
    /* A single message larger than max_bytes is refused. */
    a[0] = (struct store_append){.topic = t, .ts_ns = 999, .data = buf, .len = 1001};
    ck_assert_int_eq(store_append_batch(s, a, 1), -EMSGSIZE);
    store_close(s);
}
END_TEST

START_TEST(test_store_retention_age)
{
    struct store *s = open_store();
    uint32_t t1 = topic_new(s, "age1", 0, 0, 1000, 0), t2 = topic_new(s, "age2", 0, 0, 1000, 0);
    uint32_t never = topic_new(s, "never", 0, 0, 0, 0);
    struct store_topic_info info;
    size_t del;

    /* ts 0..99 in each. */
    ck_assert_int_eq(append_n(s, t1, 100, 8, 0, 1), 0);
    ck_assert_int_eq(append_n(s, t2, 100, 8, 0, 1), 0);
    ck_assert_int_eq(append_n(s, never, 100, 8, 0, 1), 0);
    /* now 1050: cutoff 50, ts 0..49 go. Budget 30: a partial pass. */
    ck_assert_int_eq(store_retention_run(s, 1050, 30, &del), 0);
    ck_assert_uint_eq(del, 30);
    ck_assert_int_eq(store_retention_run(s, 1050, 30, &del), 0);
    ck_assert_uint_eq(del, 30);
    ck_assert_int_eq(store_retention_run(s, 1050, 100, &del), 0);
    ck_assert_uint_eq(del, 40);
    ck_assert_int_eq(store_retention_run(s, 1050, 100, &del), 0);
    ck_assert_uint_eq(del, 0);
    expect_range(s, t1, 51, 100);
    expect_range(s, t2, 51, 100);
    expect_range(s, never, 1, 100);
    ck_assert_int_eq(store_topic_info(s, t1, &info), 0);
    ck_assert_uint_eq(info.first_ts_ns, 50);
    /* Round-robin: with budget 10 per call both topics make progress. */
    ck_assert_int_eq(store_retention_run(s, 1060, 5, &del), 0);
    ck_assert_int_eq(store_retention_run(s, 1060, 5, &del), 0);
    ck_assert_int_eq(store_topic_info(s, t1, &info), 0);
    ck_assert_uint_eq(info.first_seq, 56);
    ck_assert_int_eq(store_topic_info(s, t2, &info), 0);
    ck_assert_uint_eq(info.first_seq, 56);
    store_close(s);
}
END_TEST

START_TEST(test_store_retention_empties_topic_keeps_seq)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "e", 0, 0, 10, 0);
    struct store_topic_info info;
    struct seen r = {0};
    uint64_t next, seq;
    size_t del;

    ck_assert_int_eq(append_n(s, t, 20, 8, 0, 1), 0);
    ck_assert_int_eq(store_retention_run(s, 1000, 0, &del), 0);
    ck_assert_uint_eq(del, 20);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, 0);
    ck_assert_uint_eq(info.bytes, 0);
    ck_assert_uint_eq(info.first_seq, 21);
    ck_assert_uint_eq(info.last_seq, 20);
    ck_assert_uint_eq(info.first_ts_ns, 0);
    ck_assert_uint_eq(info.last_ts_ns, 19);
    r.topic = t;
    ck_assert_int_eq(store_read(s, t, 0, 10, 0, seen_fn, &r, &next), 0);
    ck_assert_uint_eq(next, 21);
    ck_assert_int_eq(store_seq_at_time(s, t, 0, &seq), 0);
    ck_assert_uint_eq(seq, 21);
    store_close(s);
    s = open_store();
    ck_assert_int_eq(append_n(s, t, 3, 8, 2000, 21), 0);
    expect_range(s, t, 21, 23);
    store_close(s);
}
END_TEST

START_TEST(test_store_retention_dedup_expiry)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "dx", 0, 0, 0, 100);
    struct store_append a[50];
    char ids[50][16];
    size_t del, i;
    uint8_t b[4] = {0};

    for (i = 0; i < 50; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%zu", i);
        a[i] = dd(t, i, ids[i], b, 0);
        a[i].data = NULL;
    }
    ck_assert_int_eq(store_append_batch(s, a, 50), 0);
    /* now 120: cutoff 20, ids with ts 0..19 expire; messages stay (no age limit). */
    ck_assert_int_eq(store_retention_run(s, 120, 0, &del), 0);
    ck_assert_uint_eq(del, 20);
    ck_assert_int_eq(store_retention_run(s, 120, 0, &del), 0);
    ck_assert_uint_eq(del, 0);
    expect_range(s, t, 1, 50);
    /* An expired id (m5) is stored anew; a live one (m30) is still a duplicate. */
    a[0] = dd(t, 100, "m5", b, 0);
    a[0].data = NULL;
    a[1] = dd(t, 100, "m30", b, 0);
    a[1].data = NULL;
    ck_assert_int_eq(store_append_batch(s, a, 2), 0);
    ck_assert(!a[0].duplicate);
    ck_assert_uint_eq(a[0].seq, 51);
    ck_assert(a[1].duplicate);
    ck_assert_uint_eq(a[1].seq, 31);
    store_close(s);
}
END_TEST

/* ---- recovery ---- */

START_TEST(test_store_reopen_intact)
{
    struct store_opts o = {.dir = g_path, .fsync = STORE_FSYNC_ALWAYS, .map_size = 1u << 20};
    struct store *s = open_opts(&o);
    struct store_topic_info before[2], after;
    struct store_consumer c = {.name = "dur", .ack_floor = 7, .max_inflight = 3}, got;
    struct store_topic_cfg cfg;
    uint32_t t[2], id;
    int i;

    t[0] = topic_new(s, "r0", 50, 0, 0, 0);
    t[1] = topic_new(s, "r1", 0, 0, 0, 0);
    ck_assert_int_eq(append_n(s, t[0], 80, 100, 10, 1), 0);
    ck_assert_int_eq(append_n(s, t[1], 30, 2000, 10, 1), 0);
    c.topic = t[1];
    ck_assert_int_eq(store_consumer_put(s, &c), 0);
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(store_topic_info(s, t[i], &before[i]), 0);
    store_close(s);

    s = open_opts(&o);
    ck_assert_int_eq(store_topic_get(s, "r0", &id, &cfg), 0);
    ck_assert_uint_eq(id, t[0]);
    ck_assert_uint_eq(cfg.max_msgs, 50);
    ck_assert_str_eq(cfg.patterns[0], "r0.>");
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(store_topic_info(s, t[i], &after), 0);
        ck_assert_uint_eq(after.id, before[i].id);
        ck_assert_uint_eq(after.msgs, before[i].msgs);
        ck_assert_uint_eq(after.bytes, before[i].bytes);
        ck_assert_uint_eq(after.first_seq, before[i].first_seq);
        ck_assert_uint_eq(after.last_seq, before[i].last_seq);
        ck_assert_uint_eq(after.first_ts_ns, before[i].first_ts_ns);
        ck_assert_uint_eq(after.last_ts_ns, before[i].last_ts_ns);
    }
    expect_range(s, t[0], 31, 80);
    expect_range(s, t[1], 1, 30);
    ck_assert_int_eq(store_consumer_get(s, t[1], "dur", &got), 0);
    ck_assert_uint_eq(got.ack_floor, 7);
    ck_assert_uint_eq(got.max_inflight, 3);
    /* Ids keep growing after a restart. */
    ck_assert_uint_gt(topic_new(s, "r2", 0, 0, 0, 0), t[1]);
    /* Appends continue the seqs, and count retention still applies. */
    ck_assert_int_eq(append_n(s, t[0], 5, 100, 100, 81), 0);
    expect_range(s, t[0], 36, 85);
    store_close(s);
}
END_TEST

START_TEST(test_store_fsync_modes)
{
    static const enum store_fsync modes[] = {STORE_FSYNC_ALWAYS, STORE_FSYNC_INTERVAL,
                                             STORE_FSYNC_NEVER};
    char dir[400];
    size_t i;

    for (i = 0; i < 3; i++) {
        struct store_opts o = {.dir = dir, .fsync = modes[i], .map_size = 1u << 20};
        struct store *s;
        uint32_t t;

        snprintf(dir, sizeof(dir), "%s/m%zu", g_dir, i);
        s = open_opts(&o);
        t = topic_new(s, "f", 0, 0, 0, 0);
        ck_assert_int_eq(append_n(s, t, 50, 300, 1, 1), 0);
        ck_assert_int_eq(store_sync(s), 0);
        ck_assert_int_eq(append_n(s, t, 50, 300, 100, 51), 0);
        store_close(s); /* flushes in every mode */
        s = open_opts(&o);
        expect_range(s, t, 1, 100);
        store_close(s);
    }
    ck_assert_int_eq(store_sync(NULL), -EINVAL);
}
END_TEST

#define CRASH_BATCH 8

/* The crash test's writer: append batches forever, report each acked last seq. */
static void crash_child(int wfd, enum store_fsync mode, uint64_t seed)
{
    struct store_opts o = {
        .dir = g_path, .fsync = mode, .map_size = 1u << 20, .map_max = 256u << 20};
    struct store_append a[CRASH_BATCH];
    static uint8_t bufs[CRASH_BATCH][2048];
    struct store *s = NULL;
    uint32_t t = 0;
    uint64_t last = 0;
    int i;

    rng_seed(seed);
    if (store_open(&o, &s, NULL, 0) != 0)
        _exit(2);
    if (store_topic_get(s, "crash", &t, NULL) != 0 || store_last_seq(s, t, &last) != 0)
        _exit(3);
    for (;;) {
        for (i = 0; i < CRASH_BATCH; i++) {
            a[i] = (struct store_append){.topic = t, .ts_ns = last + (uint64_t)i + 1};
            a[i].len = 1 + rng_below(sizeof(bufs[0]));
            a[i].data = bufs[i];
            payload(bufs[i], a[i].len, t, last + (uint64_t)i + 1);
        }
        if (store_append_batch(s, a, CRASH_BATCH) != 0 || a[CRASH_BATCH - 1].seq != last + 8)
            _exit(4);
        last += CRASH_BATCH;
        if (write(wfd, &last, sizeof(last)) != (ssize_t)sizeof(last))
            _exit(5);
    }
}

static void crash_rounds(enum store_fsync mode, int rounds)
{
    struct store_opts o = {
        .dir = g_path, .fsync = mode, .map_size = 1u << 20, .map_max = 256u << 20};
    struct store *s = open_opts(&o);
    uint64_t acked, v, last;
    int r, status, fds[2];
    uint32_t t = topic_new(s, "crash", 0, 0, 0, 0);
    pid_t pid;

    store_close(s);
    for (r = 0; r < rounds; r++) {
        unsigned want_acks = 3 + rng_below(40);
        unsigned got = 0;

        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(fds[1], mode, rng_next());
        }
        close(fds[1]);
        acked = 0;
        while (got < want_acks && read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
            acked = v;
            got++;
        }
        ck_assert_uint_eq(got, want_acks);
        /* Kill mid-stream: the writer is inside its next batches right now. */
        usleep(rng_below(3000));
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(fds[0], &v, sizeof(v)) == (ssize_t)sizeof(v))
            acked = v;
        close(fds[0]);

        s = open_opts(&o);
        ck_assert_int_eq(store_last_seq(s, t, &last), 0);
        ck_assert_msg(last >= acked, "round %d: last seq %" PRIu64 " < acked %" PRIu64, r, last,
                      acked);
        ck_assert_msg(last % CRASH_BATCH == 0, "round %d: half a batch (%" PRIu64 ")", r, last);
        expect_range(s, t, 1, last);
        store_close(s);
    }
}

START_TEST(test_store_crash_sigkill_fsync_always)
{
    crash_rounds(STORE_FSYNC_ALWAYS, 4);
}
END_TEST

START_TEST(test_store_crash_sigkill_fsync_never)
{
    crash_rounds(STORE_FSYNC_NEVER, 4);
}
END_TEST

START_TEST(test_store_corrupt_garbage)
{
    struct store_opts o = {.dir = g_path};
    char p[400];
    uint8_t junk[65536];
    size_t i;

    ck_assert_int_eq(mkdir(g_path, 0700), 0);
    for (i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rng_next();
    snprintf(p, sizeof(p), "%s/data.mdb", g_path);
    write_file(p, junk, sizeof(junk));
    open_fails(&o, STORE_ECORRUPT);
    write_file(p, junk, 100); /* shorter than a meta page */
    open_fails(&o, STORE_ECORRUPT);
    /* A zero-length data.mdb (crash while creating) is a new store. */
    write_file(p, junk, 0);
    store_close(open_opts(&o));
}
END_TEST

static void make_store_with_data(void)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "data", 0, 0, 0, 0);
    int i;

    for (i = 0; i < 20; i++)
        ck_assert_int_eq(append_n(s, t, 100, 512, (uint64_t)i * 100, (uint64_t)i * 100 + 1), 0);
    store_close(s);
}

START_TEST(test_store_corrupt_truncated)
{
    struct store_opts o = {.dir = g_path};
    struct stat st;
    char p[400];

    make_store_with_data();
    snprintf(p, sizeof(p), "%s/data.mdb", g_path);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_gt(st.st_size, 1 << 20);
    ck_assert_int_eq(truncate(p, st.st_size / 2), 0);
    open_fails(&o, STORE_ECORRUPT);
}
END_TEST

START_TEST(test_store_corrupt_meta_page)
{
    struct store_opts o = {.dir = g_path};
    uint32_t v;
    char p[400];
    int fd;

    make_store_with_data();
    snprintf(p, sizeof(p), "%s/data.mdb", g_path);
    fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    /* LMDB data format version (offset 20 of both meta pages) from another LMDB. */
    v = 2;
    ck_assert_int_eq(pwrite(fd, &v, 4, 20), 4);
    ck_assert_int_eq(pwrite(fd, &v, 4, 4096 + 20), 4);
    open_fails(&o, STORE_EVERSION);
    /* A root page beyond the end of the file. */
    v = 1;
    ck_assert_int_eq(pwrite(fd, &v, 4, 20), 4);
    ck_assert_int_eq(pwrite(fd, &v, 4, 4096 + 20), 4);
    {
        uint64_t bad = 1ull << 30;
        ck_assert_int_eq(pwrite(fd, &bad, 8, 128), 8);
        ck_assert_int_eq(pwrite(fd, &bad, 8, 4096 + 128), 8);
    }
    open_fails(&o, STORE_ECORRUPT);
    close(fd);
}
END_TEST

/* Open the data dir with LMDB itself and apply fn in a write txn. */
static void lmdb_poke(void (*fn)(MDB_txn *txn))
{
    MDB_env *env;
    MDB_txn *txn;

    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, g_path, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    fn(txn);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void poke_format_version(MDB_txn *txn)
{
    uint8_t fmt[8] = {'R', 'M', 'Q', 'S', 0, 0, 0, 99};
    MDB_val k = {6, "format"}, v = {8, fmt};
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void poke_foreign(MDB_txn *txn)
{
    MDB_val k = {3, "key"}, v = {5, "value"};
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_dbi_open(txn, "somebody-elses", MDB_CREATE, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static void poke_tstate(MDB_txn *txn)
{
    uint8_t id[4] = {0, 0, 0, 1};
    MDB_val k = {4, id}, v = {3, "bad"};
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_dbi_open(txn, "tstate", 0, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

START_TEST(test_store_corrupt_records)
{
    struct store_opts o = {.dir = g_path};

    make_store_with_data();
    lmdb_poke(poke_format_version);
    open_fails(&o, STORE_EVERSION);

    teardown();
    setup();
    make_store_with_data();
    lmdb_poke(poke_tstate);
    open_fails(&o, STORE_ECORRUPT);

    teardown();
    setup();
    ck_assert_int_eq(mkdir(g_path, 0700), 0);
    lmdb_poke(poke_foreign);
    open_fails(&o, STORE_ECORRUPT);
}
END_TEST

START_TEST(test_store_dir_not_a_dir)
{
    struct store_opts o = {.dir = g_path};
    char p[400];

    write_file(g_path, "x", 1);
    open_fails(&o, -ENOTDIR);
    snprintf(p, sizeof(p), "%s/sub", g_path); /* a parent is a file */
    o.dir = p;
    open_fails(&o, -ENOTDIR);
    /* data.mdb is a directory. */
    snprintf(p, sizeof(p), "%s/d2", g_dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/d2/data.mdb", g_dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/d2", g_dir);
    open_fails(&o, STORE_ECORRUPT);
}
END_TEST

/*
 * store_open() as an unprivileged user: root passes every permission
 * check, so a root test run drops to nobody in a child (no store is open
 * in this process). Returns store_open()'s result.
 */
static int open_as_nobody(const char *dir)
{
    struct store_opts o = {.dir = dir};
    int fds[2], rc = 1, status;
    pid_t pid;

    if (geteuid() != 0) {
        struct store *s = NULL;
        rc = store_open(&o, &s, NULL, 0);
        store_close(s);
        return rc;
    }
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *s = NULL;
        char err[STORE_ERR_LEN];
        close(fds[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(1);
        rc = store_open(&o, &s, err, sizeof(err));
        if (rc != 0 && err[0] == '\0')
            rc = 12345; /* no message */
        store_close(s);
        if (write(fds[1], &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &rc, sizeof(rc)), (ssize_t)sizeof(rc));
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return rc;
}

START_TEST(test_store_dir_permissions)
{
    char p[400];
    int rc;

    ck_assert_int_eq(chmod(g_dir, 0755), 0);
    /* A dir we may not write. */
    make_store_with_data();
    if (geteuid() == 0)
        ck_assert_int_eq(chown(g_path, 65534, 65534), 0);
    ck_assert_int_eq(chmod(g_path, 0500), 0);
    rc = open_as_nobody(g_path);
    ck_assert_msg(rc == -EACCES, "read-only dir: %d", rc);
    /* A writable dir whose data.mdb we may not write. */
    ck_assert_int_eq(chmod(g_path, 0700), 0);
    snprintf(p, sizeof(p), "%s/data.mdb", g_path);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(p, 65534, 65534), 0);
        snprintf(p, sizeof(p), "%s/ringmq.lock", g_path);
        ck_assert_int_eq(chown(p, 65534, 65534), 0);
        snprintf(p, sizeof(p), "%s/lock.mdb", g_path);
        ck_assert_int_eq(chown(p, 65534, 65534), 0);
        snprintf(p, sizeof(p), "%s/data.mdb", g_path);
    }
    ck_assert_int_eq(chmod(p, 0400), 0);
    rc = open_as_nobody(g_path);
    ck_assert_msg(rc == -EACCES, "read-only data.mdb: %d", rc);
}
END_TEST

START_TEST(test_store_dir_busy)
{
    struct store_opts o = {.dir = g_path};
    struct store *s = open_opts(&o);

    open_fails(&o, -EBUSY);
    store_close(s);
    s = open_opts(&o);
    store_close(s);
}
END_TEST

START_TEST(test_store_lock_file_garbage)
{
    struct store_opts o = {.dir = g_path};
    struct store *s;
    uint8_t junk[8192];
    char p[400];
    uint32_t t;
    size_t i;

    make_store_with_data();
    for (i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rng_next();
    snprintf(p, sizeof(p), "%s/lock.mdb", g_path);
    write_file(p, junk, sizeof(junk));
    /* The reader table is rebuilt (we hold the only lock on the dir); the data is intact. */
    s = open_opts(&o);
    ck_assert_int_eq(store_topic_get(s, "data", &t, NULL), 0);
    expect_range(s, t, 1, 2000);
    store_close(s);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_store_map_grows)
{
    struct store_opts o = {
        .dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 64 * 1024, .map_max = 64u << 20};
    struct store *s = open_opts(&o);
    struct store_env_info ei;
    uint32_t t = topic_new(s, "grow", 0, 0, 0, 0);
    int i;

    /* 8 MiB in batches of 64 x 4 KiB: several doublings on the way. */
    for (i = 0; i < 32; i++)
        ck_assert_int_eq(append_n(s, t, 64, 4096, (uint64_t)i * 64, (uint64_t)i * 64 + 1), 0);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_ge(ei.map_grows, 5);
    ck_assert_uint_gt(ei.map_size, 8u << 20);
    ck_assert_uint_le(ei.map_size, 64u << 20);
    expect_range(s, t, 1, 2048);
    store_close(s);
    /* Reopening with the small initial size keeps the grown size. */
    s = open_opts(&o);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_gt(ei.map_size, 8u << 20);
    expect_range(s, t, 1, 2048);
    store_close(s);
}
END_TEST

START_TEST(test_store_map_full)
{
    struct store_opts o = {
        .dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 1u << 20, .map_max = 2u << 20};
    struct store *s = open_opts(&o);
    uint32_t t = topic_new(s, "fill", 0, 0, 0, 0), u = topic_new(s, "after", 0, 0, 0, 0);
    struct store_append a[16];
    static uint8_t bufs[16][1024];
    uint64_t next = 1, stored;
    size_t del;
    int i, k, full = 0, rc;

    /* Fill in batches of 16 x 1 KiB until a batch is cut short. */
    for (i = 0; i < 10000 && !full; i++) {
        for (k = 0; k < 16; k++) {
            a[k] = (struct store_append){
                .topic = t, .ts_ns = next + (uint64_t)k, .data = bufs[k], .len = sizeof(bufs[k])};
            payload(bufs[k], sizeof(bufs[k]), t, next + (uint64_t)k);
        }
        a[15].topic = 9999; /* its own error even when the store is full */
        rc = store_append_batch(s, a, 16);
        for (k = 0; k < 15 && a[k].rc == 0; k++)
            ck_assert_uint_eq(a[k].seq, next + (uint64_t)k);
        next += (uint64_t)k;
        if (k < 15) {
            full = 1;
            ck_assert_int_eq(rc, RMQ_ESTOREFULL);
            for (; k < 15; k++)
                ck_assert_int_eq(a[k].rc, RMQ_ESTOREFULL);
        } else {
            ck_assert_int_eq(rc, RMQ_ENOTFOUND);
        }
        ck_assert_int_eq(a[15].rc, RMQ_ENOTFOUND);
    }
    ck_assert(full);
    stored = next - 1;
    ck_assert_uint_gt(stored, 500);
    /* Still full, still consistent: earlier data readable, appends refused. */
    ck_assert_int_eq(append_n(s, u, 64, 1024, 1, 1), RMQ_ESTOREFULL);
    expect_range(s, t, 1, stored);
    store_close(s);
    s = open_opts(&o);
    expect_range(s, t, 1, stored);
    /* Deleting makes room: remove the topic, purge, write again. */
    ck_assert_int_eq(store_topic_rm(s, t), 0);
    do
        ck_assert_int_eq(store_retention_run(s, 1, 0, &del), 0);
    while (del > 0);
    ck_assert_int_eq(append_n(s, u, 100, 1024, 1, 1), 0);
    ck_assert_int_eq(append_n(s, u, 100, 1024, 200, 101), 0);
    expect_range(s, u, 1, 200);
    store_close(s);
}
END_TEST

START_TEST(test_store_batch_1000_one_txn)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "thousand", 0, 0, 0, 0), u = topic_new(s, "other", 0, 0, 0, 0);
    struct store_env_info before, after;
    struct store_append *a = calloc(1000, sizeof(*a));
    static uint8_t bufs[1000][100];
    uint64_t s1 = 0, s2 = 0;
    size_t i;

    ck_assert_ptr_nonnull(a);
    for (i = 0; i < 1000; i++) {
        a[i].topic = i % 4 == 0 ? u : t;
        a[i].ts_ns = i;
        a[i].data = bufs[i];
        a[i].len = 100;
        payload(bufs[i], 100, a[i].topic, a[i].topic == t ? ++s1 : ++s2);
    }
    ck_assert_int_eq(store_env_info(s, &before), 0);
    ck_assert_int_eq(store_append_batch(s, a, 1000), 0);
    ck_assert_int_eq(store_env_info(s, &after), 0);
    ck_assert_uint_eq(after.txn_id, before.txn_id + 1);
    expect_range(s, t, 1, 750);
    expect_range(s, u, 1, 250);
    free(a);
    store_close(s);
}
END_TEST

START_TEST(test_store_big_messages)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "big", 0, 0, 0, 0);
    struct store_append a[1];
    uint8_t *buf = malloc(STORE_MSG_MAX + 1);

    ck_assert_ptr_nonnull(buf);
    payload(buf, 3u << 20, t, 1);
    a[0] = (struct store_append){.topic = t, .ts_ns = 1, .data = buf, .len = 3u << 20};
    ck_assert_int_eq(store_append_batch(s, a, 1), 0);
    a[0] = (struct store_append){.topic = t, .ts_ns = 1, .data = buf, .len = STORE_MSG_MAX + 1};
    ck_assert_int_eq(store_append_batch(s, a, 1), -EMSGSIZE);
    expect_range(s, t, 1, 1);
    free(buf);
    store_close(s);
}
END_TEST

struct reader_arg {
    struct store *s;
    uint32_t topic;
    _Atomic int *stop;
    uint64_t reads, msgs;
    int error;
};

struct rcheck {
    uint32_t topic;
    uint64_t expect;
    int bad;
};

static int rcheck_fn(void *arg, const struct store_msg *m)
{
    struct rcheck *c = arg;

    if (m->seq != c->expect || !payload_ok(m->data, m->len, c->topic, m->seq))
        c->bad = 1;
    c->expect = m->seq + 1;
    return 0;
}

static void *reader_main(void *p)
{
    struct reader_arg *r = p;
    struct store_topic_info info;
    uint64_t from = 1, next;
    ssize_t n;

    while (!atomic_load(r->stop) && r->error == 0) {
        struct rcheck c = {.topic = r->topic, .expect = from};
        n = store_read(r->s, r->topic, from, 50, 0, rcheck_fn, &c, &next);
        if (n < 0 || c.bad) {
            r->error = n < 0 ? (int)n : -1;
            break;
        }
        r->reads++;
        r->msgs += (uint64_t)n;
        from = n == 0 ? 1 : next;
        if (store_topic_info(r->s, r->topic, &info) != 0 || info.msgs != info.last_seq)
            r->error = -2;
    }
    return NULL;
}

START_TEST(test_store_readers_during_growth)
{
    struct store_opts o = {
        .dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 64 * 1024, .map_max = 256u << 20};
    struct store *s = open_opts(&o);
    uint32_t t = topic_new(s, "conc", 0, 0, 0, 0);
    struct reader_arg ra[3];
    struct store_env_info ei;
    pthread_t th[3];
    _Atomic int stop = 0;
    int i;

    ck_assert_int_eq(append_n(s, t, 10, 512, 0, 1), 0);
    for (i = 0; i < 3; i++) {
        ra[i] = (struct reader_arg){.s = s, .topic = t, .stop = &stop};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &ra[i]), 0);
    }
    for (i = 1; i < 200; i++)
        ck_assert_int_eq(append_n(s, t, 10, 2048, (uint64_t)i * 10, (uint64_t)i * 10 + 1), 0);
    atomic_store(&stop, 1);
    for (i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(ra[i].error == 0, "reader %d: %d", i, ra[i].error);
        ck_assert_uint_gt(ra[i].reads, 0);
    }
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_ge(ei.map_grows, 3);
    expect_range(s, t, 1, 2000);
    store_close(s);
}
END_TEST

/* ---- chunks ---- */

/*
 * Append n messages with lengths lens[0..n) to topic in one batch, at
 * ts[i] (or ts0 + i when ts is NULL); payloads are payload(topic, first_seq + i).
 */
static int append_lens(struct store *s, uint32_t topic, size_t n, const size_t *lens,
                       const uint64_t *ts, uint64_t ts0, uint64_t first_seq)
{
    struct store_append *a = calloc(n, sizeof(*a));
    uint8_t **bufs = calloc(n, sizeof(*bufs));
    size_t i;
    int rc;

    ck_assert(a != NULL && bufs != NULL);
    for (i = 0; i < n; i++) {
        bufs[i] = malloc(lens[i] ? lens[i] : 1);
        ck_assert_ptr_nonnull(bufs[i]);
        payload(bufs[i], lens[i], topic, first_seq + i);
        a[i] = (struct store_append){
            .topic = topic, .ts_ns = ts != NULL ? ts[i] : ts0 + i, .data = bufs[i], .len = lens[i]};
    }
    rc = store_append_batch(s, a, n);
    for (i = 0; i < n; i++) {
        if (rc == 0)
            FAST_ASSERT(a[i].rc == 0 && a[i].seq == first_seq + i, "entry %zu: rc %d seq %" PRIu64,
                        i, a[i].rc, a[i].seq);
        free(bufs[i]);
    }
    free(bufs);
    free(a);
    return rc;
}

/* What chunk_scan() found in the "msgs" database. */
struct chunk_stats {
    size_t records;  /* chunk records */
    size_t big;      /* records holding one message over the 1 MiB bound */
    uint32_t max_n;  /* most messages in one record */
    size_t max_data; /* most payload bytes in a record of more than one message */
};

/*
 * Walk every chunk record with LMDB itself (after store_close()) and check
 * the layout of store_internal.h: count u32 | {ts u64 | end u32} x count |
 * data, ends non-decreasing and adding up, at most 256 messages and 1 MiB
 * of data unless alone, and each topic's chunks contiguous in seq.
 */
static void chunk_scan(struct chunk_stats *cs)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *mc;
    MDB_dbi dbi;
    MDB_val k, v;
    uint32_t topic = 0, n, j, end, prev;
    uint64_t next = 0;
    const uint8_t *p;
    int rc;

    memset(cs, 0, sizeof(*cs));
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_open(env, g_path, MDB_RDONLY, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    ck_assert_int_eq(mdb_cursor_open(txn, dbi, &mc), 0);
    for (rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        uint32_t t = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 | (uint32_t)kp[2] << 8 | kp[3];
        uint64_t first = 0;

        ck_assert_uint_eq(k.mv_size, 12);
        for (j = 4; j < 12; j++)
            first = first << 8 | kp[j];
        p = v.mv_data;
        ck_assert_uint_ge(v.mv_size, 4);
        n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        ck_assert(n >= 1 && n <= 256);
        ck_assert_uint_ge(v.mv_size, 4 + 12 * (size_t)n);
        for (j = 0, prev = 0; j < n; j++) {
            const uint8_t *e = p + 4 + 12 * (size_t)j + 8;
            end = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3];
            ck_assert_uint_ge(end, prev);
            prev = end;
        }
        ck_assert_uint_eq(v.mv_size, 4 + 12 * (size_t)n + prev);
        if (t == topic)
            ck_assert_uint_eq(first, next); /* contiguous within a topic */
        topic = t;
        next = first + n;
        cs->records++;
        if (n > cs->max_n)
            cs->max_n = n;
        if (n > 1 && prev > cs->max_data)
            cs->max_data = prev;
        if (prev > (1u << 20)) {
            ck_assert_uint_eq(n, 1);
            cs->big++;
        }
    }
    ck_assert_int_eq(rc, MDB_NOTFOUND);
    mdb_cursor_close(mc);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static size_t chunk_records(void)
{
    struct chunk_stats cs;

    chunk_scan(&cs);
    return cs.records;
}

/* Read from `from` with the limits; expect seqs want_first.., n of them, and next. */
static void expect_read(struct store *s, uint32_t topic, uint64_t from, size_t max_msgs,
                        size_t max_bytes, uint64_t want_first, size_t want_n, uint64_t want_next)
{
    struct seen r = {.topic = topic};
    uint64_t next = 0;
    ssize_t n;
    size_t i;

    n = store_read(s, topic, from, max_msgs, max_bytes, seen_fn, &r, &next);
    ck_assert_msg(n == (ssize_t)want_n, "read(%" PRIu64 ", %zu, %zu) = %zd, want %zu", from,
                  max_msgs, max_bytes, n, want_n);
    ck_assert(!r.bad_payload);
    for (i = 0; i < r.n; i++)
        ck_assert_uint_eq(r.seqs[i], want_first + i);
    ck_assert_uint_eq(next, want_next);
    seen_free(&r);
}

START_TEST(test_store_chunk_bounds)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "chunky", 0, 0, 0, 0), u = topic_new(s, "big", 0, 0, 0, 0);
    size_t *lens = calloc(600, sizeof(*lens)), i;
    struct chunk_stats cs;
    size_t recs = 0;

    ck_assert_ptr_nonnull(lens);
    /* 600 small messages in one batch: at least 3 chunks (256, 256, 88). */
    for (i = 0; i < 600; i++)
        lens[i] = 16;
    ck_assert_int_eq(append_lens(s, t, 600, lens, NULL, 1, 1), 0);
    recs += 3;
    /* 300 x 4 KiB: at most 256 in the 1 MiB data bound, the rest goes on. */
    for (i = 0; i < 300; i++)
        lens[i] = 4096;
    ck_assert_int_eq(append_lens(s, t, 300, lens, NULL, 1000, 601), 0);
    recs += 2;
    /* 300 x 5000 B: the data bound cuts first (at most 209 per chunk). */
    for (i = 0; i < 300; i++)
        lens[i] = 5000;
    ck_assert_int_eq(append_lens(s, t, 300, lens, NULL, 2000, 901), 0);
    recs += 2;
    /* A message over the bound gets its own chunk, between two small ones. */
    lens[0] = 10;
    lens[1] = (2u << 20) + 3;
    lens[2] = 10;
    ck_assert_int_eq(append_lens(s, u, 3, lens, NULL, 1, 1), 0);
    recs += 3;
    /* One-message batches: one chunk each (no merge into the last chunk). */
    lens[0] = 7;
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(append_lens(s, t, 1, lens, NULL, 3000 + i, 1201 + i), 0);
    recs += 5;
    expect_range(s, t, 1, 1205);
    expect_range(s, u, 1, 3);
    /* The big one is delivered alone even past max_bytes, then the next. */
    expect_read(s, u, 2, 10, 100, 2, 1, 3);
    expect_read(s, u, 1, 10, 100, 1, 1, 2);
    expect_read(s, u, 1, 10, 0, 1, 3, 4);
    store_close(s);
    /* At least the records the bounds force (chunks may be cut smaller to fit pages). */
    chunk_scan(&cs);
    ck_assert_uint_ge(cs.records, recs);
    ck_assert_uint_le(cs.records, 2 * recs);
    ck_assert_uint_eq(cs.big, 1);
    ck_assert_uint_le(cs.max_n, 256);
    ck_assert_uint_ge(cs.max_n, 200);
    ck_assert_uint_le(cs.max_data, 1u << 20);
    ck_assert_uint_gt(cs.max_data, 1000000);
    s = open_store();
    expect_range(s, t, 1, 1205);
    store_close(s);
    free(lens);
}
END_TEST

START_TEST(test_store_chunk_reads)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "reads", 0, 0, 0, 0);
    size_t lens[700], i, tot;
    uint64_t seq;

    /* Chunks [1..256] [257..512] [513..600] from one batch, then [601..700]. */
    for (i = 0; i < 700; i++)
        lens[i] = 1 + rng_below(200);
    ck_assert_int_eq(append_lens(s, t, 600, lens, NULL, 1, 1), 0);
    ck_assert_int_eq(append_lens(s, t, 100, lens + 600, NULL, 601, 601), 0);
    /* Starting in the middle of a chunk, at its first and last entry, across chunks. */
    expect_read(s, t, 100, 10, 0, 100, 10, 110);
    expect_read(s, t, 256, 1, 0, 256, 1, 257);
    expect_read(s, t, 256, 2, 0, 256, 2, 258);
    expect_read(s, t, 257, 3, 0, 257, 3, 260);
    expect_read(s, t, 250, 400, 0, 250, 400, 650);
    expect_read(s, t, 590, 1000, 0, 590, 111, 701);
    expect_read(s, t, 700, 5, 0, 700, 1, 701);
    expect_read(s, t, 701, 5, 0, 0, 0, 701);
    /* max_bytes inside a chunk: exactly five fit, or four with one byte less. */
    for (seq = 10, tot = 0; seq < 15; seq++)
        tot += lens[seq - 1];
    expect_read(s, t, 10, 100, tot, 10, 5, 15);
    expect_read(s, t, 10, 100, tot - 1, 10, 4, 14);
    /* ... and across a chunk boundary. */
    for (seq = 254, tot = 0; seq < 260; seq++)
        tot += lens[seq - 1];
    expect_read(s, t, 254, 100, tot, 254, 6, 260);
    expect_read(s, t, 254, 100, tot - 1, 254, 5, 259);
    /* The first message is delivered even if over max_bytes. */
    expect_read(s, t, 300, 100, 1, 300, 1, 301);
    store_close(s);
}
END_TEST

START_TEST(test_store_chunk_retention_partial)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "cnt", 300, 0, 0, 0), b = topic_new(s, "byt", 0, 20000, 0, 0);
    struct store_topic_info info;
    size_t lens[600], i;
    uint64_t sum, seq, first;
    struct chunk_stats cs;

    for (i = 0; i < 600; i++)
        lens[i] = 1 + rng_below(150);
    /* 400 in one batch over max_msgs 300: the head chunk [1..256] keeps 157..256. */
    ck_assert_int_eq(append_lens(s, t, 400, lens, NULL, 1, 1), 0);
    expect_range(s, t, 101, 400);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    for (sum = 0, seq = 101; seq <= 400; seq++)
        sum += lens[seq - 1];
    ck_assert_uint_eq(info.msgs, 300);
    ck_assert_uint_eq(info.bytes, sum);
    ck_assert_uint_eq(info.first_ts_ns, 101);
    /* Reads from 0 or inside the dead part start at first_seq, mid-chunk. */
    expect_read(s, t, 0, 3, 0, 101, 3, 104);
    expect_read(s, t, 50, 3, 0, 101, 3, 104);
    ck_assert_int_eq(store_seq_at_time(s, t, 0, &seq), 0);
    ck_assert_uint_eq(seq, 101);
    ck_assert_int_eq(store_seq_at_time(s, t, 200, &seq), 0);
    ck_assert_uint_eq(seq, 200);
    /* 10 more: trims 10 more inside the same chunk. */
    ck_assert_int_eq(append_lens(s, t, 10, lens + 400, NULL, 401, 401), 0);
    expect_range(s, t, 111, 410);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    sum = sum - lens[100] - lens[101] - lens[102] - lens[103] - lens[104] - lens[105] - lens[106] -
          lens[107] - lens[108] - lens[109];
    for (i = 400; i < 410; i++)
        sum += lens[i];
    ck_assert_uint_eq(info.bytes, sum);
    store_close(s);
    s = open_store();
    expect_range(s, t, 111, 410);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.bytes, sum);

    /* Bytes: batches of 97 against max_bytes 20000, exact after each. */
    first = 1;
    for (seq = 1; seq <= 582; seq += 97) {
        uint64_t total = 0;

        ck_assert_int_eq(append_lens(s, b, 97, lens + seq - 1, NULL, seq, seq), 0);
        ck_assert_int_eq(store_topic_info(s, b, &info), 0);
        ck_assert_uint_le(info.bytes, 20000);
        for (i = info.first_seq; i <= seq + 96; i++)
            total += lens[i - 1];
        ck_assert_uint_eq(info.bytes, total);
        ck_assert_uint_eq(info.msgs, seq + 96 - info.first_seq + 1);
        if (info.first_seq > 1)
            ck_assert_uint_gt(total + lens[info.first_seq - 2], 20000);
        ck_assert_uint_ge(info.first_seq, first);
        first = info.first_seq;
    }
    expect_range(s, b, first, 582);
    store_close(s);
    chunk_scan(&cs);
    ck_assert_uint_gt(cs.records, 0);
}
END_TEST

START_TEST(test_store_chunk_retention_age_partial)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "age", 0, 0, 1000, 0);
    struct store_topic_info info;
    size_t lens[500], i, del;
    uint64_t sum = 0;

    for (i = 0; i < 500; i++)
        lens[i] = 1 + rng_below(64);
    ck_assert_int_eq(append_lens(s, t, 500, lens, NULL, 0, 1), 0);
    /* now 1300: ts 0..299 expire; budget 70 cuts inside chunks. */
    ck_assert_int_eq(store_retention_run(s, 1300, 70, &del), 0);
    ck_assert_uint_eq(del, 70);
    expect_range(s, t, 71, 500);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.first_ts_ns, 70);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(store_retention_run(s, 1300, 70, &del), 0);
    ck_assert_uint_eq(del, 20); /* 70 + 4 x 70 would pass 300 */
    ck_assert_int_eq(store_retention_run(s, 1300, 70, &del), 0);
    ck_assert_uint_eq(del, 0);
    expect_range(s, t, 301, 500);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    for (i = 300; i < 500; i++)
        sum += lens[i];
    ck_assert_uint_eq(info.bytes, sum);
    ck_assert_uint_eq(info.first_ts_ns, 300);
    /* Everything expires: the topic is empty and keeps its seqs. */
    ck_assert_int_eq(store_retention_run(s, 100000, 0, &del), 0);
    ck_assert_uint_eq(del, 200);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, 0);
    ck_assert_uint_eq(info.bytes, 0);
    ck_assert_uint_eq(info.first_seq, 501);
    store_close(s);
    ck_assert_uint_eq(chunk_records(), 0);
}
END_TEST

START_TEST(test_store_chunk_seq_at_time)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "tt", 0, 0, 0, 0);
    static uint64_t ts[1001];
    size_t lens[1000], i;
    uint64_t q, seq, want, j;
    uint64_t in[1000];

    /* Repeated timestamps that run across chunk and batch boundaries. */
    for (i = 0; i < 1000; i++) {
        lens[i] = rng_below(20);
        in[i] = 100 + (i / 7) * 10;
    }
    ck_assert_int_eq(append_lens(s, t, 300, lens, in, 0, 1), 0);
    ck_assert_int_eq(append_lens(s, t, 1, lens + 300, in + 300, 0, 301), 0);
    ck_assert_int_eq(append_lens(s, t, 699, lens + 301, in + 301, 0, 302), 0);
    for (i = 0; i < 1000; i++)
        ts[i + 1] = in[i];
    for (q = 0; q < 100 + 143 * 10 + 20; q += 3) {
        want = 1001;
        for (j = 1; j <= 1000; j++) {
            if (ts[j] >= q) {
                want = j;
                break;
            }
        }
        ck_assert_int_eq(store_seq_at_time(s, t, q, &seq), 0);
        FAST_ASSERT(seq == want, "ts %" PRIu64 ": seq %" PRIu64 " want %" PRIu64, q, seq, want);
    }
    store_close(s);
}
END_TEST

START_TEST(test_store_chunk_topic_rm_many)
{
    struct store *s = open_store();
    uint32_t t = topic_new(s, "many", 0, 0, 0, 0), other = topic_new(s, "other", 0, 0, 0, 0);
    struct store_env_info ei;
    size_t del, total = 0;
    int i, calls = 0;

    /* 30 batches of 333: 60 chunks; the removal cuts one of them. */
    for (i = 0; i < 30; i++)
        ck_assert_int_eq(append_n(s, t, 333, 24, (uint64_t)i * 333, (uint64_t)i * 333 + 1), 0);
    ck_assert_int_eq(append_n(s, other, 10, 16, 1, 1), 0);
    ck_assert_int_eq(store_topic_rm(s, t), 0);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 1);
    do {
        ck_assert_int_eq(store_retention_run(s, 1, 1000, &del), 0);
        /* Exactly the budget while something is left: the caller knows to call again. */
        if (total + del < 9990 - 4096)
            ck_assert_uint_eq(del, 1000);
        total += del;
        calls++;
    } while (del > 0 && calls < 100);
    ck_assert_uint_eq(total, 9990 - 4096);
    ck_assert_int_eq(store_env_info(s, &ei), 0);
    ck_assert_uint_eq(ei.purging, 0);
    expect_range(s, other, 1, 10);
    store_close(s);
    ck_assert_uint_eq(chunk_records(), 1);
}
END_TEST

START_TEST(test_store_chunk_map_full_mid_batch)
{
    struct store_opts o = {
        .dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 1u << 20, .map_max = 2u << 20};
    struct store *s = open_opts(&o);
    uint32_t t = topic_new(s, "fill", 0, 0, 0, 0);
    struct store_topic_info info;
    struct chunk_stats cs;
    struct store_append a[256];
    static uint8_t bufs[256][1024];
    uint64_t next = 1;
    int i, k, rc, cut = -1;

    /* Batches of 256 x 1 KiB (one chunk each) until one is cut. */
    for (i = 0; i < 100 && cut < 0; i++) {
        for (k = 0; k < 256; k++) {
            a[k] = (struct store_append){
                .topic = t, .ts_ns = next + (uint64_t)k, .data = bufs[k], .len = sizeof(bufs[k])};
            payload(bufs[k], sizeof(bufs[k]), t, next + (uint64_t)k);
        }
        rc = store_append_batch(s, a, 256);
        for (k = 0; k < 256 && a[k].rc == 0; k++)
            ck_assert_uint_eq(a[k].seq, next + (uint64_t)k);
        for (int r = k; r < 256; r++) {
            ck_assert_int_eq(a[r].rc, RMQ_ESTOREFULL);
            ck_assert_uint_eq(a[r].seq, 0);
        }
        next += (uint64_t)k;
        if (k < 256) {
            ck_assert_int_eq(rc, RMQ_ESTOREFULL);
            cut = k;
        }
    }
    /* The cut falls inside what would have been one chunk. */
    ck_assert_int_gt(cut, 0);
    ck_assert_int_lt(cut, 256);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.msgs, next - 1);
    ck_assert_uint_eq(info.bytes, (next - 1) * 1024);
    expect_range(s, t, 1, next - 1);
    /* Nothing of the failed part is visible, also after a reopen. */
    store_close(s);
    s = open_opts(&o);
    expect_range(s, t, 1, next - 1);
    ck_assert_int_eq(store_last_seq(s, t, &next), 0);
    ck_assert_int_eq(store_topic_info(s, t, &info), 0);
    ck_assert_uint_eq(info.last_seq, next);
    store_close(s);
    chunk_scan(&cs);
    ck_assert_uint_gt(cs.records, 0);
}
END_TEST

START_TEST(test_store_full_rm_then_add)
{
    struct store_opts o = {
        .dir = g_path, .fsync = STORE_FSYNC_NEVER, .map_size = 1u << 20, .map_max = 1u << 20};
    struct store *s = open_opts(&o);
    uint32_t t = topic_new(s, "fill", 0, 0, 0, 0), u;
    static uint8_t buf[3000];
    struct store_append a;
    uint64_t n = 0;
    int rc;

    /* One-page chunks (one message each) until full. */
    for (;;) {
        payload(buf, sizeof(buf), t, n + 1);
        a = (struct store_append){.topic = t, .ts_ns = n + 1, .data = buf, .len = sizeof(buf)};
        rc = store_append_batch(s, &a, 1);
        if (rc != 0)
            break;
        n++;
    }
    ck_assert_int_eq(rc, RMQ_ESTOREFULL);
    ck_assert_uint_gt(n, 100);
    expect_range(s, t, 1, n);
    /* The pages the removal frees are usable by the very next txns. */
    ck_assert_int_eq(store_topic_rm(s, t), 0);
    u = topic_new(s, "again", 0, 0, 0, 0);
    ck_assert_int_eq(append_n(s, u, 10, 3000, 1, 1), 0);
    expect_range(s, u, 1, 10);
    store_close(s);
}
END_TEST

static void poke_format_v1(MDB_txn *txn)
{
    uint8_t fmt[8] = {'R', 'M', 'Q', 'S', 0, 0, 0, 1};
    MDB_val k = {6, "format"}, v = {8, fmt};
    MDB_dbi dbi;

    ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/* The first chunk of topic 1 loses its last bytes: sizes no longer add up. */
static void poke_chunk(MDB_txn *txn)
{
    uint8_t key[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val k = {12, key}, v;
    MDB_dbi dbi;
    uint8_t *copy;

    ck_assert_int_eq(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    copy = malloc(v.mv_size);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, v.mv_data, v.mv_size);
    v.mv_data = copy;
    v.mv_size -= 1;
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    free(copy);
}

START_TEST(test_store_chunk_format_and_corrupt)
{
    struct store_opts o = {.dir = g_path, .fsync = STORE_FSYNC_NEVER};
    struct seen r = {0};
    struct store *s;
    uint64_t seq;
    uint32_t t;

    /* A data dir of the one-record-per-message format is refused, not misread. */
    make_store_with_data();
    lmdb_poke(poke_format_v1);
    open_fails(&o, STORE_EVERSION);

    teardown();
    setup();
    make_store_with_data();
    lmdb_poke(poke_chunk);
    s = open_opts(&o);
    ck_assert_int_eq(store_topic_get(s, "data", &t, NULL), 0);
    ck_assert_uint_eq(t, 1);
    r.topic = t;
    ck_assert_int_eq(store_read(s, t, 0, 10, 0, seen_fn, &r, NULL), STORE_ECORRUPT);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_int_eq(store_seq_at_time(s, t, 50, &seq), STORE_ECORRUPT);
    /* Chunks after the damaged one still read. */
    seen_free(&r);
    r.topic = t;
    ck_assert_int_eq(store_read(s, t, 1001, 10, 0, seen_fn, &r, NULL), 10);
    seen_free(&r);
    store_close(s);
}
END_TEST

/* ---- Suite ---- */

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_store_open_creates_dir);
    tcase_add_test(tc, test_store_open_bad_opts);
    tcase_add_test(tc, test_store_topic_add_get_list);
    tcase_add_test(tc, test_store_topic_list);
    tcase_add_test(tc, test_store_append_read_range);
    tcase_add_test(tc, test_store_seq_contiguous_batches_and_reopen);
    tcase_add_test(tc, test_store_seq_at_time);
    tcase_add_test(tc, test_store_entry_errors_isolated);
    tcase_add_test(tc, test_store_dedup_window);
    tcase_add_test(tc, test_store_topic_rm);
    tcase_add_test(tc, test_store_topic_rm_large_is_chunked);
    tcase_add_test(tc, test_store_consumers);
    suite_add_tcase(s, tc);

    tc = tcase_create("retention");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_store_retention_count);
    tcase_add_test(tc, test_store_retention_bytes);
    tcase_add_test(tc, test_store_retention_age);
    tcase_add_test(tc, test_store_retention_empties_topic_keeps_seq);
    tcase_add_test(tc, test_store_retention_dedup_expiry);
    suite_add_tcase(s, tc);

    tc = tcase_create("recovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_store_reopen_intact);
    tcase_add_test(tc, test_store_fsync_modes);
    tcase_add_test(tc, test_store_crash_sigkill_fsync_always);
    tcase_add_test(tc, test_store_crash_sigkill_fsync_never);
    tcase_add_test(tc, test_store_corrupt_garbage);
    tcase_add_test(tc, test_store_corrupt_truncated);
    tcase_add_test(tc, test_store_corrupt_meta_page);
    tcase_add_test(tc, test_store_corrupt_records);
    tcase_add_test(tc, test_store_dir_not_a_dir);
    tcase_add_test(tc, test_store_dir_permissions);
    tcase_add_test(tc, test_store_dir_busy);
    tcase_add_test(tc, test_store_lock_file_garbage);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_store_map_grows);
    tcase_add_test(tc, test_store_map_full);
    tcase_add_test(tc, test_store_batch_1000_one_txn);
    tcase_add_test(tc, test_store_big_messages);
    tcase_add_test(tc, test_store_readers_during_growth);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_store_chunk_bounds);
    tcase_add_test(tc, test_store_chunk_reads);
    tcase_add_test(tc, test_store_chunk_retention_partial);
    tcase_add_test(tc, test_store_chunk_retention_age_partial);
    tcase_add_test(tc, test_store_chunk_seq_at_time);
    tcase_add_test(tc, test_store_chunk_topic_rm_many);
    tcase_add_test(tc, test_store_chunk_map_full_mid_batch);
    tcase_add_test(tc, test_store_full_rm_then_add);
    tcase_add_test(tc, test_store_chunk_format_and_corrupt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *env = getenv("RMQ_TEST_SEED");
    char probe[] = "/tmp/check_store.XXXXXX";
    SRunner *sr;
    int failed;

    if (mkdtemp(probe) == NULL) {
        fprintf(stderr, "check_store: no writable /tmp, skipping\n");
        return 77;
    }
    rmdir(probe);
    g_seed = env != NULL && *env != '\0' ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("check_store: RMQ_TEST_SEED=%" PRIu64 "\n", g_seed);
    fflush(stdout);
    sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
