/*
 * check_shards.c - cross-shard behaviour of a real ringmqd run with
 * --shards 4 (even on 2 CPUs): connections land on shards by the kernel's
 * SO_REUSEPORT hash, so publishers and subscribers on separate connections
 * are spread over shards, and every delivery between them goes through the
 * cross-shard rings (the tests check xshard_deliveries moved).
 *
 * Covered: all messages delivered exactly once and in order per publisher;
 * queue groups across shards get each message once; subscribe + flush +
 * publish from another connection never loses the first message; a
 * subscriber vanishing mid-fan-out frees its references (the broker exits 0
 * on SIGTERM, which under ASan includes a clean leak check); unsubscribing
 * removes the other shards' interest (no more cross-shard traffic).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define SHARD_ARGS IT_ARGS("--shards", "4")

#define NPUB 4
#define NSUB 6
#define ORDER_MSGS 20000

struct pubjob {
    const char *addr;
    int id;
    uint64_t count;
    size_t size;
    int err;
};

static void *pub_thread(void *arg)
{
    struct pubjob *j = arg;
    rmq_client *c = it_client(j->addr, "pub", NULL);
    uint8_t buf[2048];
    char subj[32];
    snprintf(subj, sizeof(subj), "ord.p%d", j->id);
    for (uint64_t i = 0; i < j->count && !j->err; i++) {
        it_payload_fill(buf, j->size, i);
        j->err = rmq_publish(c, subj, buf, j->size);
    }
    if (!j->err)
        j->err = rmq_flush(c, 20000);
    it_close(c);
    return NULL;
}

START_TEST(test_shards_spread_all_delivered_in_order)
{
    struct tbroker b;
    rmq_client *subs[NSUB], *mon;
    rmq_sub *s[NSUB][NPUB];
    struct it_seq seq[NSUB][NPUB];
    struct pubjob jobs[NPUB];
    pthread_t th[NPUB];
    char subj[32];

    it_broker_start(&b, SHARD_ARGS);
    mon = it_client(b.addr, "mon", NULL);
    for (int i = 0; i < NSUB; i++) {
        subs[i] = it_client(b.addr, "sub", NULL);
        for (int p = 0; p < NPUB; p++) {
            it_seq_init(&seq[i][p], ORDER_MSGS);
            snprintf(subj, sizeof(subj), "ord.p%d", p);
            ck_assert_int_eq(rmq_subscribe(subs[i], subj, NULL, it_seq_cb, &seq[i][p], &s[i][p]),
                             0);
        }
        ck_assert_int_eq(rmq_flush(subs[i], 20000), 0);
    }
    for (int p = 0; p < NPUB; p++) {
        jobs[p] = (struct pubjob){.addr = b.addr, .id = p, .count = ORDER_MSGS, .size = 64};
        pthread_create(&th[p], NULL, pub_thread, &jobs[p]);
    }
    for (int p = 0; p < NPUB; p++) {
        pthread_join(th[p], NULL);
        IT_CHECK(jobs[p].err == 0, "publisher %d: %s", p, rmq_strerror(jobs[p].err));
    }
    for (int i = 0; i < NSUB; i++)
        for (int p = 0; p < NPUB; p++)
            it_seq_expect(&seq[i][p], ORDER_MSGS, true, 30000, "subscriber of one publisher");
    IT_CHECK(it_stat(mon, "xshard_deliveries") > 0,
             "no delivery crossed shards: connections were not spread over the 4 shards");
    for (int i = 0; i < NSUB; i++) {
        it_close(subs[i]);
        for (int p = 0; p < NPUB; p++)
            it_seq_free(&seq[i][p]);
    }
    it_close(mon);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

#define QG_MEMBERS 8
#define QG_MSGS 8000

START_TEST(test_shards_queue_group_once_across_shards)
{
    struct tbroker b;
    rmq_client *m[QG_MEMBERS], *pub;
    rmq_sub *ms[QG_MEMBERS];
    struct it_seq all;
    _Atomic uint64_t per[QG_MEMBERS];
    uint8_t buf[32];
    uint64_t sum = 0;

    it_broker_start(&b, SHARD_ARGS);
    it_seq_init(&all, QG_MSGS);
    for (int i = 0; i < QG_MEMBERS; i++) {
        m[i] = it_client(b.addr, "member", NULL);
        ck_assert_int_eq(rmq_subscribe(m[i], "work.>", "workers", it_seq_cb, &all, &ms[i]), 0);
        ck_assert_int_eq(rmq_flush(m[i], 20000), 0);
        atomic_init(&per[i], 0);
    }
    pub = it_client(b.addr, "pub", NULL);
    for (uint64_t i = 0; i < QG_MSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(pub, "work.item", buf, sizeof(buf)), 0);
    }
    ck_assert_int_eq(rmq_flush(pub, 10000), 0);
    /* Exactly once over the whole group: no duplicates, none missing. */
    it_seq_expect(&all, QG_MSGS, false, 20000, "queue group across shards");
    usleep(200000); /* a duplicate arriving late would show in dups */
    IT_CHECK(atomic_load(&all.dups) == 0, "%" PRIu64 " duplicates in the group",
             (uint64_t)atomic_load(&all.dups));
    for (int i = 0; i < QG_MEMBERS; i++) {
        per[i] = rmq_sub_delivered(ms[i]);
        sum += per[i];
    }
    IT_CHECK(sum == QG_MSGS, "members got %" PRIu64 " in all, want %d", sum, QG_MSGS);
    for (int i = 0; i < QG_MEMBERS; i++)
        IT_CHECK(per[i] > 0, "member %d got nothing: the group did not spread", i);
    for (int i = 0; i < QG_MEMBERS; i++)
        it_close(m[i]);
    it_close(pub);
    it_seq_free(&all);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

#define RACE_ROUNDS 100
#define RACERS 4

struct flag_sub {
    _Atomic uint64_t n;
};

static void count_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)c;
    (void)sub;
    (void)m;
    atomic_fetch_add(&((struct flag_sub *)arg)->n, 1);
}

struct racer {
    const char *addr;
    int id;
    int lost_round; /* -1: none lost */
    int err;
};

/* Subscribe on a fresh connection, flush, then publish from a connection
 * that may sit on any other shard, right away. */
static void *racer_thread(void *arg)
{
    struct racer *r = arg;
    rmq_client *pub = it_client(r->addr, "racepub", NULL);
    char subj[64];
    r->lost_round = -1;
    for (int i = 0; i < RACE_ROUNDS && r->lost_round < 0 && !r->err; i++) {
        struct flag_sub f;
        rmq_client *c = it_client(r->addr, "racer", NULL);
        rmq_sub *s;
        atomic_init(&f.n, 0);
        snprintf(subj, sizeof(subj), "race.%d.%d", r->id, i);
        r->err = rmq_subscribe(c, subj, NULL, count_cb, &f, &s);
        if (!r->err)
            r->err = rmq_flush(c, 20000);
        if (!r->err)
            r->err = rmq_publish(pub, subj, "x", 1);
        if (!r->err)
            r->err = rmq_flush(pub, 20000);
        if (!r->err && it_wait_atomic(&f.n, 1, 3000) != 0)
            r->lost_round = i;
        it_close(c);
    }
    it_close(pub);
    return NULL;
}

struct bg {
    const char *addr;
    _Atomic bool stop;
};

/* Keep every shard busy with cross-shard fan-out while the racers run. */
static void *bg_thread(void *arg)
{
    struct bg *g = arg;
    rmq_client *c = it_client(g->addr, "bg", NULL);
    uint8_t buf[512] = {0};
    uint64_t end = test_now_ms() + 60000;
    while (!atomic_load(&g->stop) && test_now_ms() < end) {
        for (int i = 0; i < 200; i++)
            rmq_publish(c, "bg.x", buf, sizeof(buf));
        rmq_flush(c, 20000);
    }
    it_close(c);
    return NULL;
}

START_TEST(test_shards_subscribe_flush_publish_race)
{
    struct tbroker b;
    struct racer r[RACERS];
    pthread_t th[RACERS], bgt[2];
    struct bg g = {0};
    rmq_client *bgsub[4];
    rmq_sub *bs[4];
    struct flag_sub bgf[4];

    it_broker_start(&b, SHARD_ARGS);
    g.addr = b.addr;
    for (int i = 0; i < 4; i++) {
        bgsub[i] = it_client(b.addr, "bgsub", NULL);
        atomic_init(&bgf[i].n, 0);
        ck_assert_int_eq(rmq_subscribe(bgsub[i], "bg.x", NULL, count_cb, &bgf[i], &bs[i]), 0);
        ck_assert_int_eq(rmq_flush(bgsub[i], 20000), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&bgt[i], NULL, bg_thread, &g);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.addr = b.addr, .id = i};
        pthread_create(&th[i], NULL, racer_thread, &r[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&g.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(bgt[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        IT_CHECK(r[i].err == 0, "racer %d: %s", i, rmq_strerror(r[i].err));
        IT_CHECK(r[i].lost_round < 0,
                 "racer %d round %d: a message published after the subscriber's flush "
                 "returned was lost",
                 i, r[i].lost_round);
    }
    for (int i = 0; i < 4; i++)
        it_close(bgsub[i]);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

#define FAN_SUBS 6
#define FAN_MSGS 30000

struct vanish {
    rmq_client *c;
    _Atomic uint64_t n;
};

static void vanish_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)c;
    (void)sub;
    (void)m;
    atomic_fetch_add(&((struct vanish *)arg)->n, 1);
}

START_TEST(test_shards_subscriber_vanishes_mid_fanout)
{
    struct tbroker b;
    rmq_client *keep[FAN_SUBS / 2], *pub, *mon;
    rmq_sub *ks[FAN_SUBS / 2];
    struct it_seq kseq[FAN_SUBS / 2];
    struct vanish gone[FAN_SUBS / 2];
    uint8_t buf[1024];

    it_broker_start(&b, SHARD_ARGS);
    mon = it_client(b.addr, "mon", NULL);
    for (int i = 0; i < FAN_SUBS / 2; i++) {
        rmq_sub *s;
        keep[i] = it_client(b.addr, "keep", NULL);
        it_seq_init(&kseq[i], FAN_MSGS);
        ck_assert_int_eq(rmq_subscribe(keep[i], "fan.x", NULL, it_seq_cb, &kseq[i], &ks[i]), 0);
        ck_assert_int_eq(rmq_flush(keep[i], 20000), 0);
        gone[i].c = it_client(b.addr, "gone", NULL);
        atomic_init(&gone[i].n, 0);
        ck_assert_int_eq(rmq_subscribe(gone[i].c, "fan.x", NULL, vanish_cb, &gone[i], &s), 0);
        ck_assert_int_eq(rmq_flush(gone[i].c, 20000), 0);
    }
    pub = it_client(b.addr, "pub", NULL);
    for (uint64_t i = 0; i < FAN_MSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(pub, "fan.x", buf, sizeof(buf)), 0);
        if (i == FAN_MSGS / 4) {
            /* Vanish without unsubscribing while bodies are queued for them
             * on several shards. */
            for (int k = 0; k < FAN_SUBS / 2; k++)
                it_close(gone[k].c);
        }
    }
    ck_assert_int_eq(rmq_flush(pub, 20000), 0);
    for (int i = 0; i < FAN_SUBS / 2; i++)
        it_seq_expect(&kseq[i], FAN_MSGS, true, 30000, "remaining subscriber");
    IT_CHECK(it_stat(mon, "connections") == (uint64_t)(FAN_SUBS / 2 + 2),
             "connections after the vanish: %" PRIu64, it_stat(mon, "connections"));
    for (int i = 0; i < FAN_SUBS / 2; i++) {
        it_close(keep[i]);
        it_seq_free(&kseq[i]);
    }
    it_close(pub);
    it_close(mon);
    /* Exit 0 on SIGTERM; under ASan this includes LeakSanitizer at exit,
     * so a reference the vanished subscribers kept would fail here. */
    it_broker_stop_ok(&b, 10000);
}
END_TEST

START_TEST(test_shards_unsubscribe_removes_remote_interest)
{
    struct tbroker b;
    rmq_client *subs[4], *pub, *mon;
    rmq_sub *s[4];
    struct flag_sub f[4];
    uint64_t before, after, last;

    it_broker_start(&b, SHARD_ARGS);
    mon = it_client(b.addr, "mon", NULL);
    pub = it_client(b.addr, "pub", NULL);
    for (int i = 0; i < 4; i++) {
        subs[i] = it_client(b.addr, "sub", NULL);
        atomic_init(&f[i].n, 0);
        ck_assert_int_eq(rmq_subscribe(subs[i], "int.x", NULL, count_cb, &f[i], &s[i]), 0);
        ck_assert_int_eq(rmq_flush(subs[i], 20000), 0);
    }
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(rmq_publish(pub, "int.x", "a", 1), 0);
    ck_assert_int_eq(rmq_flush(pub, 20000), 0);
    for (int i = 0; i < 4; i++)
        IT_CHECK(it_wait_atomic(&f[i].n, 100, 5000) == 0, "subscriber %d: %" PRIu64 " of 100", i,
                 (uint64_t)atomic_load(&f[i].n));
    /* Unsubscribe two, close two: the interest must go everywhere. */
    ck_assert_int_eq(rmq_unsubscribe(s[0]), 0);
    ck_assert_int_eq(rmq_unsubscribe(s[1]), 0);
    ck_assert_int_eq(rmq_flush(subs[0], 20000), 0);
    ck_assert_int_eq(rmq_flush(subs[1], 20000), 0);
    it_close(subs[2]);
    it_close(subs[3]);
    IT_CHECK(it_stat_wait(mon, "subscriptions", 1, 5000, &last) == 0,
             "subscriptions: %" PRIu64 ", want 1 (the monitor's own reply inbox)", last);
    before = it_stat(mon, "xshard_deliveries");
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(rmq_publish(pub, "int.x", "b", 1), 0);
    ck_assert_int_eq(rmq_flush(pub, 20000), 0);
    after = it_stat(mon, "xshard_deliveries");
    /* The stats requests themselves may cross shards (a handful); 1000
     * publishes with leftover interest would add up to 1000 per shard. */
    IT_CHECK(after - before < 10,
             "%" PRIu64 " cross-shard deliveries for a subject nobody subscribes to",
             after - before);
    IT_CHECK(atomic_load(&f[0].n) == 100 && atomic_load(&f[1].n) == 100,
             "unsubscribed subscribers still got messages");
    it_close(subs[0]);
    it_close(subs[1]);
    it_close(pub);
    it_close(mon);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

/* ---- memo / copy-buffer churn (dmemo, xmemo, conn_enqueue_copy) ----
 * One raw subscriber changes its subscriptions every round (subscribe,
 * unsubscribe, auto-unsubscribe after k), then a raw publisher sends a burst
 * of one subject with sizes on both sides of CONN_COPY_MAX, so the memo of
 * the last walk is reused within the burst and must be dropped across
 * rounds. Every sid must get exactly the messages it should, in order. */
#define CH_SIDS 6
#define CH_ROUNDS 40
#define CH_MSGS 60

struct ch_sid {
    bool active;
    bool matches;  /* its pattern matches the burst subject */
    uint64_t left; /* auto-unsubscribe budget (0: unlimited) */
    int64_t want[CH_ROUNDS * CH_MSGS];
    size_t nwant, ngot;
    int64_t got[CH_ROUNDS * CH_MSGS];
};

static void churn_run(const char *const *args)
{
    static const char *pats[] = {"ch.a", "ch.*", "ch.>", ">", "ch.b", "ch.a.x"};
    static const bool pat_match[] = {true, true, true, true, false, false};
    static const size_t sizes[] = {16, 100, 400, 470, 480, 490, 500, 520, 700, 3000};
    static struct ch_sid sid[CH_SIDS + 1];
    static uint8_t buf[4096], fb[1 << 20];
    struct tbroker b;
    uint64_t rng = it_seed();
    uint64_t seq = 0, token = 1;
    int s, p;
    memset(sid, 0, sizeof(sid));
    it_broker_start(&b, args);
    s = it_raw_open(b.port);
    p = it_raw_open(b.port);
    for (int r = 0; r < CH_ROUNDS; r++) {
        size_t expect = 0, got = 0;
        for (int i = 1; i <= CH_SIDS; i++) {
            uint64_t x = it_rand(&rng) % 5;
            if (!sid[i].active && x < 3) {
                int pi = (int)(it_rand(&rng) % 6);
                ck_assert_int_eq(it_raw_sub(s, (uint64_t)i, pats[pi], NULL), 0);
                sid[i].active = true;
                sid[i].matches = pat_match[pi];
                sid[i].left = 0;
            } else if (sid[i].active && x == 0) {
                ck_assert_int_eq(it_raw_unsub(s, (uint64_t)i, 0), 0);
                sid[i].active = false;
            } else if (sid[i].active && x == 1 && !sid[i].left) {
                uint64_t k = 1 + it_rand(&rng) % 5;
                ck_assert_int_eq(it_raw_unsub(s, (uint64_t)i, k), 0);
                sid[i].left = k;
            }
        }
        ck_assert_int_eq(it_raw_sync(s, token++, 5000, NULL), 0);
        for (int m = 0; m < CH_MSGS; m++) {
            size_t len = sizes[it_rand(&rng) % (sizeof(sizes) / sizeof(sizes[0]))];
            it_payload_fill(buf, len, seq);
            ck_assert_int_eq(it_raw_pub(p, "ch.a", NULL, buf, len), 0);
            for (int i = 1; i <= CH_SIDS; i++) {
                if (!sid[i].active || !sid[i].matches)
                    continue;
                sid[i].want[sid[i].nwant++] = (int64_t)seq;
                expect++;
                if (sid[i].left && --sid[i].left == 0)
                    sid[i].active = false;
            }
            seq++;
        }
        {
            struct it_raw_seen ps;
            int rc = it_raw_sync(p, token++, 5000, &ps);
            IT_CHECK(rc == 0, "round %d: publisher sync %d (errs %d: %s)", r, rc, ps.errs,
                     ps.err_text[0]);
        }
        /* Read the subscriber until everything expected came (or 5 s). */
        {
            uint64_t end = test_now_ms() + 5000;
            while (got < expect && test_now_ms() < end) {
                size_t len = 0;
                struct codec_span sp;
                struct codec_msg cm;
                int k = raw_read_frame(s, fb, sizeof(fb), &len, 500);
                if (k == CODEC_K_MSG) {
                    codec_peek(fb, len, &sp);
                    ck_assert_int_eq(codec_msg_parse(sp.p, sp.len, &cm), 0);
                    IT_CHECK(cm.sid >= 1 && cm.sid <= CH_SIDS, "round %d: unknown sid %llu", r,
                             (unsigned long long)cm.sid);
                    struct ch_sid *e = &sid[cm.sid];
                    IT_CHECK(e->ngot < e->nwant,
                             "round %d: sid %llu got an extra message (seq %lld)", r,
                             (unsigned long long)cm.sid,
                             (long long)it_payload_seq(cm.payload.p, cm.payload.len));
                    e->got[e->ngot] = it_payload_seq(cm.payload.p, cm.payload.len);
                    IT_CHECK(e->got[e->ngot] == e->want[e->ngot],
                             "round %d: sid %llu message %zu: got seq %lld, want %lld", r,
                             (unsigned long long)cm.sid, e->ngot, (long long)e->got[e->ngot],
                             (long long)e->want[e->ngot]);
                    e->ngot++;
                    got++;
                } else if (k < 0 && k != -1) {
                    IT_CHECK(0, "round %d: read error %d", r, k);
                }
            }
            IT_CHECK(got == expect, "round %d: got %zu of %zu messages", r, got, expect);
        }
        {
            struct it_raw_seen seen;
            ck_assert_int_eq(it_raw_sync(s, token++, 5000, &seen), 0);
            IT_CHECK(seen.msgs == 0 && seen.errs == 0, "round %d: %d extra messages, %d errors", r,
                     seen.msgs, seen.errs);
        }
    }
    close(s);
    close(p);
    it_broker_stop_ok(&b, 10000);
    it_broker_cleanup(&b);
}

START_TEST(test_shards_memo_churn_one_shard)
{
    churn_run(IT_ARGS("--shards", "1"));
}
END_TEST

START_TEST(test_shards_memo_churn_four_shards)
{
    churn_run(IT_ARGS("--shards", "4"));
}
END_TEST

/* ---- a send batch of more than IOV_BATCH / 2 items ----
 * Small deliveries go out as copy-buffer items with no prefix (one iovec
 * each); alternating small and large messages make one new copy buffer per
 * small message, so one conn_flush() can take up to IOV_BATCH - 1 items
 * while iovblk has pre[] and zc[] for IOV_BATCH / 2 only. */
static void iov_batch_run(const char *const *args)
{
    enum { N = 400 };
    static uint8_t buf[4096], fb[1 << 16];
    static uint8_t burst[N * 1024];
    struct tbroker b;
    size_t off = 0;
    int s, p;
    int64_t next = 0;
    it_broker_start(&b, args);
    s = it_raw_open(b.port);
    p = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(s, 1, "iov.x", NULL), 0);
    ck_assert_int_eq(it_raw_sync(s, 1, 5000, NULL), 0);
    /* All publishes in one write: the broker reads them in one go and
     * queues every delivery before its next flush. */
    for (int i = 0; i < N; i++) {
        size_t len = (i & 1) ? 700 : 16; /* past / within CONN_COPY_MAX */
        it_payload_fill(buf, len, (uint64_t)i);
        off += codec_pub_write(burst + off, "iov.x", 5, NULL, 0, NULL, 0, buf, len);
    }
    ck_assert_int_eq(raw_send(p, burst, off), 0);
    {
        struct it_raw_seen ps;
        int rc = it_raw_sync(p, 2, 5000, &ps);
        IT_CHECK(rc == 0, "publisher sync %d (the broker died?)", rc);
    }
    while (next < N) {
        size_t len = 0;
        struct codec_span sp;
        struct codec_msg cm;
        int k = raw_read_frame(s, fb, sizeof(fb), &len, 5000);
        IT_CHECK(k >= 0, "read %d after %lld of %d messages (the broker died?)", k, (long long)next,
                 N);
        if (k != CODEC_K_MSG)
            continue;
        codec_peek(fb, len, &sp);
        ck_assert_int_eq(codec_msg_parse(sp.p, sp.len, &cm), 0);
        IT_CHECK(it_payload_seq(cm.payload.p, cm.payload.len) == next, "message %lld: got seq %lld",
                 (long long)next, (long long)it_payload_seq(cm.payload.p, cm.payload.len));
        next++;
    }
    close(s);
    close(p);
    it_broker_stop_ok(&b, 10000);
    it_broker_cleanup(&b);
}

START_TEST(test_shards_send_batch_many_small_items)
{
    iov_batch_run(IT_ARGS("--shards", "1"));
}
END_TEST

START_TEST(test_shards_send_batch_many_small_items_zerocopy)
{
    /* Every 700-byte body is >= zerocopy-min: the whole batch goes as
     * SENDMSG_ZC and conn_flush() takes a reference per item in zc[]. */
    iov_batch_run(IT_ARGS("--shards", "1", "--zerocopy-min", "600"));
}
END_TEST

static Suite *shards_suite(void)
{
    Suite *s = suite_create("shards");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_shards_spread_all_delivered_in_order);
    tcase_add_test(tc, test_shards_queue_group_once_across_shards);
    tcase_add_test(tc, test_shards_subscribe_flush_publish_race);
    tcase_add_test(tc, test_shards_subscriber_vanishes_mid_fanout);
    tcase_add_test(tc, test_shards_unsubscribe_removes_remote_interest);
    suite_add_tcase(s, tc);

    /* The copy buffers and routing memos of the small-message fast paths. */
    tc = tcase_create("batch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_shards_send_batch_many_small_items);
    tcase_add_test(tc, test_shards_send_batch_many_small_items_zerocopy);
    tcase_add_test(tc, test_shards_memo_churn_one_shard);
    tcase_add_test(tc, test_shards_memo_churn_four_shards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_shards", shards_suite);
}
