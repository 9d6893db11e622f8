/*
 * check_durable.c - durable topics end to end: a real ringmqd with its own
 * data dir (tbroker_start adds --data-dir <dir>/data), driven through
 * libringmq. The contract is proto/PROTOCOL.md ("Durable topics") and the
 * "Durable topics" group of client/include/ringmq.h.
 *
 * TCases:
 *   admin      topic add/info/list/rm, errors, definitions survive a restart
 *   publish    acks and seqs, dedup by msg id, publish without ack,
 *              rmq_publish_ack_async with a window
 *   live       plain subscribers of a topic's subjects get seq/time_ns
 *   replay     every start position, then live messages; pattern filter,
 *              a large replay, resume after a reconnect
 *   switch     replay-to-live under concurrent publishing (--shards 2), one
 *              publisher and several, subscribers joining mid-stream
 *   consumer   durable consumers: ack, ack_wait, nak, max_inflight,
 *              max_deliver, restarts, work queue, list/rm
 *   retention  max_msgs, max_bytes, max_age
 *   badinput   oversize publish, unknown topic, vanished client,
 *              --storage off, topic subscription with a queue
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define MS 5000 /* default wait for something that must come */

/* ---- helpers ---- */

static void flush_ok(rmq_client *c)
{
    int rc = rmq_flush(c, 20000);
    IT_CHECK(rc == 0, "rmq_flush: %s", rmq_strerror(rc));
}

static void add1(rmq_client *c, const char *name, const char *subj, const rmq_topic_cfg *limits)
{
    it_topic_add(c, name, IT_ARGS(subj), limits, NULL);
}

/* Text payload "<tag>-<n>". */
static size_t fmt_payload(char *buf, size_t cap, const char *tag, uint64_t n)
{
    int k = snprintf(buf, cap, "%s-%" PRIu64, tag, n);
    return (size_t)k;
}

static uint64_t pub_text(rmq_client *c, const char *subj, const char *tag, uint64_t n)
{
    char buf[96];
    size_t len = fmt_payload(buf, sizeof(buf), tag, n);
    return it_pub_ack(c, subj, buf, len, NULL);
}

static bool payload_is(const rmq_msg *m, const char *tag, uint64_t n)
{
    char buf[96];
    size_t len = fmt_payload(buf, sizeof(buf), tag, n);
    return rmq_msg_len(m) == len && memcmp(rmq_msg_data(m), buf, len) == 0;
}

static rmq_msg *next_msg(rmq_sub *s, int timeout_ms, const char *what)
{
    rmq_msg *m = NULL;
    int rc = rmq_sub_next(s, timeout_ms, &m);
    IT_CHECK(rc == 0 && m, "%s: rmq_sub_next: %s", what, rmq_strerror(rc));
    return m;
}

static void expect_none(rmq_sub *s, int ms, const char *what)
{
    rmq_msg *m = NULL;
    int rc = rmq_sub_next(s, ms, &m);
    if (rc == 0) {
        uint64_t seq = rmq_msg_seq(m);
        uint32_t d = rmq_msg_deliveries(m);
        int len = (int)rmq_msg_len(m);
        char txt[64];
        snprintf(txt, sizeof(txt), "%.*s", len > 40 ? 40 : len, (const char *)rmq_msg_data(m));
        rmq_msg_free(m);
        IT_CHECK(0, "%s: unexpected message seq %" PRIu64 " deliveries %u payload '%s'", what, seq,
                 d, txt);
    }
    IT_CHECK(rc == -ETIMEDOUT, "%s: rmq_sub_next: %s (want -ETIMEDOUT)", what, rmq_strerror(rc));
}

/* Next message must be seq with payload tag-n. */
static void expect_msg(rmq_sub *s, uint64_t seq, const char *tag, uint64_t n, const char *what)
{
    rmq_msg *m = next_msg(s, MS, what);
    uint64_t got = rmq_msg_seq(m);
    bool ok = payload_is(m, tag, n);
    int len = (int)rmq_msg_len(m);
    char txt[64];
    snprintf(txt, sizeof(txt), "%.*s", len > 40 ? 40 : len, (const char *)rmq_msg_data(m));
    rmq_msg_free(m);
    IT_CHECK(got == seq, "%s: got seq %" PRIu64 " (payload '%s'), want %" PRIu64, what, got, txt,
             seq);
    IT_CHECK(ok, "%s: seq %" PRIu64 ": payload '%s', want %s-%" PRIu64, what, seq, txt, tag, n);
}

static rmq_sub *sub_topic(rmq_client *c, const char *topic, const char *pattern,
                          enum rmq_start start, uint64_t seq, uint64_t time_ns)
{
    rmq_replay_opts o;
    rmq_sub *s = NULL;
    int rc;
    memset(&o, 0, sizeof(o));
    o.start = start;
    o.seq = seq;
    o.time_ns = time_ns;
    rc = rmq_subscribe_topic(c, topic, pattern, &o, NULL, NULL, &s);
    IT_CHECK(rc == 0 && s, "rmq_subscribe_topic(%s, %s, start %d): %s", topic, pattern, (int)start,
             rmq_strerror(rc));
    return s;
}

static rmq_sub *consume(rmq_client *c, const char *topic, const char *durable,
                        uint32_t max_inflight, uint64_t ack_wait_ms, uint32_t max_deliver)
{
    rmq_consumer_opts o;
    rmq_sub *s = NULL;
    int rc;
    memset(&o, 0, sizeof(o));
    o.max_inflight = max_inflight;
    o.ack_wait_ms = ack_wait_ms;
    o.max_deliver = max_deliver;
    rc = rmq_consume(c, topic, durable, &o, NULL, NULL, &s);
    IT_CHECK(rc == 0 && s, "rmq_consume(%s, %s): %s", topic, durable, rmq_strerror(rc));
    return s;
}

static int topic_add_cfg(rmq_client *c, const char *name, const char *const *subj, size_t n)
{
    rmq_topic_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.name = name;
    cfg.subjects = subj;
    cfg.nsubjects = n;
    return rmq_topic_add(c, &cfg, IT_ADMIN_MS, NULL);
}

static bool consumer_get(rmq_client *c, const char *topic, const char *name, rmq_consumer_info *out)
{
    rmq_consumer_info *v = NULL;
    size_t n = 0;
    bool found = false;
    int rc = rmq_consumer_list(c, topic, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_consumer_list(%s): %s", topic, rmq_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0) {
            *out = v[i];
            found = true;
        }
    }
    free(v);
    return found;
}

/* Poll the consumer until its ack floor is want. */
static void wait_ack_floor(rmq_client *c, const char *topic, const char *name, uint64_t want)
{
    rmq_consumer_info ci;
    uint64_t end = test_now_ms() + MS;
    memset(&ci, 0, sizeof(ci));
    for (;;) {
        bool found = consumer_get(c, topic, name, &ci);
        IT_CHECK(found, "consumer %s of %s not listed", name, topic);
        if (ci.ack_floor == want)
            return;
        IT_CHECK(test_now_ms() < end,
                 "consumer %s: ack_floor %" PRIu64 " after %d ms, want %" PRIu64, name,
                 ci.ack_floor, MS, want);
        usleep(10000);
    }
}

static void stop_restart(struct tbroker *b, const char *const *extra)
{
    int st = tbroker_stop(b, SIGTERM, 10000);
    IT_CHECK(st == 0, "ringmqd exit status after SIGTERM: %d", st);
    IT_CHECK(it_broker_restart(b, extra) == 0, "restart on port %u failed", b->port);
}

/* ================= admin ================= */

START_TEST(test_durable_topic_add_and_info)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti, t2;
    rmq_topic_cfg cfg;
    const char *subj[] = {"orders.>", "invoices.*"};
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    memset(&cfg, 0, sizeof(cfg));
    memset(&ti, 0xa5, sizeof(ti));
    cfg.name = "orders";
    cfg.subjects = subj;
    cfg.nsubjects = 2;
    cfg.max_msgs = 1000;
    cfg.max_bytes = 1 << 20;
    cfg.max_age_ms = 3600000;
    cfg.dedup_window_ms = 5000;
    rc = rmq_topic_add(c, &cfg, IT_ADMIN_MS, &ti);
    IT_CHECK(rc == 0, "rmq_topic_add: %s", rmq_strerror(rc));
    ck_assert_str_eq(ti.name, "orders");
    ck_assert_uint_eq(ti.nsubjects, 2);
    ck_assert_str_eq(ti.subjects[0], "orders.>");
    ck_assert_str_eq(ti.subjects[1], "invoices.*");
    ck_assert_uint_eq(ti.max_msgs, 1000);
    ck_assert_uint_eq(ti.max_bytes, 1 << 20);
    ck_assert_uint_eq(ti.max_age_ms, 3600000);
    ck_assert_uint_eq(ti.dedup_window_ms, 5000);
    ck_assert_uint_eq(ti.msgs, 0);
    ck_assert_uint_eq(ti.bytes, 0);
    ck_assert_uint_eq(ti.last_seq, 0);
    ck_assert_msg(ti.first_seq == 1, "empty topic: first_seq %" PRIu64 ", want last_seq + 1 = 1",
                  ti.first_seq);
    ck_assert_uint_eq(ti.first_time_ns, 0);
    ck_assert_uint_eq(ti.last_time_ns, 0);
    ck_assert_uint_eq(ti.consumers, 0);

    memset(&t2, 0, sizeof(t2));
    it_topic_info(c, "orders", &t2);
    ck_assert_str_eq(t2.name, "orders");
    ck_assert_uint_eq(t2.nsubjects, 2);
    ck_assert_str_eq(t2.subjects[0], "orders.>");
    ck_assert_str_eq(t2.subjects[1], "invoices.*");
    ck_assert_uint_eq(t2.max_msgs, 1000);
    ck_assert_uint_eq(t2.dedup_window_ms, 5000);
    ck_assert_uint_eq(t2.msgs, 0);

    /* Defaults: no limits; dedup window 0 means the broker default (2 min). */
    memset(&t2, 0, sizeof(t2));
    it_topic_add(c, "plain", IT_ARGS("plain.x"), NULL, &t2);
    ck_assert_str_eq(t2.name, "plain");
    ck_assert_uint_eq(t2.max_msgs, 0);
    ck_assert_uint_eq(t2.max_bytes, 0);
    ck_assert_uint_eq(t2.max_age_ms, 0);
    /* TopicConfig.dedup_window_ms [default = 120000]. */
    ck_assert_msg(t2.dedup_window_ms == 120000, "default dedup window reported as %" PRIu64,
                  t2.dedup_window_ms);

    /* The new topic stores at once: a publish right after the add. */
    ck_assert_uint_eq(pub_text(c, "orders.eu", "o", 1), 1);
    ck_assert_uint_eq(pub_text(c, "invoices.x", "i", 1), 2);
    it_topic_info(c, "orders", &t2);
    ck_assert_uint_eq(t2.msgs, 2);
    ck_assert_uint_eq(t2.first_seq, 1);
    ck_assert_uint_eq(t2.last_seq, 2);
    ck_assert_msg(t2.first_time_ns > 0 && t2.last_time_ns >= t2.first_time_ns,
                  "times %" PRIu64 " .. %" PRIu64, t2.first_time_ns, t2.last_time_ns);
    /* ringmq.h: bytes = their stored size ("o-1" and "i-1" with their subjects). */
    IT_CHECK(t2.bytes == it_stored_size("orders.eu", 3) + it_stored_size("invoices.x", 3),
             "topic info bytes %" PRIu64 " for two 3-byte payloads", t2.bytes);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_topic_add_exists)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info *v = NULL;
    size_t n = 0;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    add1(c, "orders", "orders.>", NULL);
    add1(c, "eu", "shipping.eu.*", NULL);

    rc = topic_add_cfg(c, "orders", IT_ARGS("other.x"), 1);
    ck_assert_msg(rc == -EEXIST, "name taken: %s (want -EEXIST)", rmq_strerror(rc));
    rc = topic_add_cfg(c, "orders2", IT_ARGS("orders.eu"), 1);
    ck_assert_msg(rc == -EEXIST, "subject inside orders.>: %s (want -EEXIST)", rmq_strerror(rc));
    rc = topic_add_cfg(c, "orders3", IT_ARGS("orders.*.x"), 1);
    ck_assert_msg(rc == -EEXIST, "orders.*.x vs orders.>: %s (want -EEXIST)", rmq_strerror(rc));
    rc = topic_add_cfg(c, "orders4", IT_ARGS("*.eu"), 1);
    ck_assert_msg(rc == -EEXIST, "*.eu vs orders.> (orders.eu): %s (want -EEXIST)",
                  rmq_strerror(rc));
    rc = topic_add_cfg(c, "all", IT_ARGS(">"), 1);
    ck_assert_msg(rc == -EEXIST, "> vs everything: %s (want -EEXIST)", rmq_strerror(rc));
    rc = topic_add_cfg(c, "ship", IT_ARGS("shipping.>"), 1);
    ck_assert_msg(rc == -EEXIST, "shipping.> vs shipping.eu.*: %s (want -EEXIST)",
                  rmq_strerror(rc));
    rc = topic_add_cfg(c, "two", IT_ARGS("fresh.a", "shipping.eu.de"), 2);
    ck_assert_msg(rc == -EEXIST, "second subject overlaps: %s (want -EEXIST)", rmq_strerror(rc));

    /* Not overlapping: "orders" is not matched by "orders.>", nor
     * "shipping.eu" by "shipping.eu.*". */
    rc = topic_add_cfg(c, "bare", IT_ARGS("orders"), 1);
    ck_assert_msg(rc == 0, "orders (no overlap with orders.>): %s", rmq_strerror(rc));
    rc = topic_add_cfg(c, "ship2", IT_ARGS("shipping.eu"), 1);
    ck_assert_msg(rc == 0, "shipping.eu (no overlap with shipping.eu.*): %s", rmq_strerror(rc));

    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list: %s", rmq_strerror(rc));
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(v[0].name, "orders");
    ck_assert_str_eq(v[0].subjects[0], "orders.>");
    ck_assert_str_eq(v[1].name, "eu");
    ck_assert_str_eq(v[2].name, "bare");
    ck_assert_str_eq(v[3].name, "ship2");
    free(v);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_topic_add_invalid)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info *v = NULL;
    const char *many[RMQ_TOPIC_SUBJECTS_MAX + 1];
    char names[RMQ_TOPIC_SUBJECTS_MAX + 1][16];
    char longname[RMQ_NAME_MAX + 2];
    size_t n = 0;
    int rc;
    const char *bad_names[] = {"", "bad name", "a.b", "x*", "sl/ash", "tab\t"};

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        rc = topic_add_cfg(c, bad_names[i], IT_ARGS("ok.subject"), 1);
        ck_assert_msg(rc == -EINVAL, "name '%s': %s (want -EINVAL)", bad_names[i],
                      rmq_strerror(rc));
    }
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0'; /* 65 bytes */
    rc = topic_add_cfg(c, longname, IT_ARGS("ok.subject"), 1);
    ck_assert_msg(rc == -EINVAL, "65-byte name: %s (want -EINVAL)", rmq_strerror(rc));
    longname[RMQ_NAME_MAX] = '\0'; /* 64 bytes: fine */
    rc = topic_add_cfg(c, longname, IT_ARGS("long.subject"), 1);
    ck_assert_msg(rc == 0, "64-byte name: %s", rmq_strerror(rc));

    rc = topic_add_cfg(c, "nosubj", IT_ARGS("unused"), 0);
    ck_assert_msg(rc == -EINVAL, "no subjects: %s (want -EINVAL)", rmq_strerror(rc));
    for (int i = 0; i <= RMQ_TOPIC_SUBJECTS_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "many.s%d", i);
        many[i] = names[i];
    }
    rc = topic_add_cfg(c, "many", many, RMQ_TOPIC_SUBJECTS_MAX + 1);
    ck_assert_msg(rc == -EINVAL, "17 subjects: %s (want -EINVAL)", rmq_strerror(rc));
    rc = topic_add_cfg(c, "badsubj", IT_ARGS("a..b"), 1);
    ck_assert_msg(rc == -EINVAL || rc == RMQ_ESUBJECT, "subject a..b: %s (want -EINVAL)",
                  rmq_strerror(rc));
    rc = topic_add_cfg(c, "badsubj", IT_ARGS("a.>.b"), 1);
    ck_assert_msg(rc == -EINVAL || rc == RMQ_ESUBJECT, "subject a.>.b: %s (want -EINVAL)",
                  rmq_strerror(rc));
    rc = topic_add_cfg(c, "badsubj", IT_ARGS("a*.b"), 1);
    ck_assert_msg(rc == -EINVAL || rc == RMQ_ESUBJECT, "subject a*.b: %s (want -EINVAL)",
                  rmq_strerror(rc));
    rc = topic_add_cfg(c, "sys", IT_ARGS("$SYS.>"), 1);
    ck_assert_msg(rc != 0, "a topic on $SYS.> was accepted");

    /* None of them was created; 16 subjects is fine. */
    rc = topic_add_cfg(c, "sixteen", many, RMQ_TOPIC_SUBJECTS_MAX);
    ck_assert_msg(rc == 0, "16 subjects: %s", rmq_strerror(rc));
    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list: %s", rmq_strerror(rc));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].name, longname);
    ck_assert_str_eq(v[1].name, "sixteen");
    ck_assert_uint_eq(v[1].nsubjects, RMQ_TOPIC_SUBJECTS_MAX);
    free(v);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_topic_unknown_notfound)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    rmq_consumer_info *cv = NULL;
    size_t n = 0;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    rc = rmq_topic_info_get(c, "nope", IT_ADMIN_MS, &ti);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "info of unknown: %s (want RMQ_ENOTFOUND)",
                  rmq_strerror(rc));
    rc = rmq_topic_rm(c, "nope", IT_ADMIN_MS);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "rm of unknown: %s (want RMQ_ENOTFOUND)", rmq_strerror(rc));
    rc = rmq_consumer_list(c, "nope", IT_ADMIN_MS, &cv, &n);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "consumer list of unknown topic: %s", rmq_strerror(rc));
    add1(c, "t", "t.x", NULL);
    rc = rmq_consumer_rm(c, "t", "nobody", IT_ADMIN_MS);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "rm of unknown consumer: %s (want RMQ_ENOTFOUND)",
                  rmq_strerror(rc));
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_topic_list_and_rm)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info *v = NULL, ti;
    size_t n = 7;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list: %s", rmq_strerror(rc));
    ck_assert_uint_eq(n, 0);
    free(v);
    v = NULL;
    add1(c, "alpha", "a.>", NULL);
    add1(c, "beta", "b.>", NULL);
    add1(c, "gamma", "g.>", NULL);
    for (int i = 1; i <= 3; i++)
        ck_assert_uint_eq(pub_text(c, "b.x", "b", (uint64_t)i), (uint64_t)i);
    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list: %s", rmq_strerror(rc));
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0].name, "alpha");
    ck_assert_str_eq(v[1].name, "beta");
    ck_assert_str_eq(v[2].name, "gamma");
    ck_assert_uint_eq(v[1].msgs, 3);
    ck_assert_uint_eq(v[1].last_seq, 3);
    free(v);
    v = NULL;

    rc = rmq_topic_rm(c, "beta", IT_ADMIN_MS);
    IT_CHECK(rc == 0, "rmq_topic_rm(beta): %s", rmq_strerror(rc));
    rc = rmq_topic_info_get(c, "beta", IT_ADMIN_MS, &ti);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "info after rm: %s", rmq_strerror(rc));
    rc = rmq_topic_rm(c, "beta", IT_ADMIN_MS);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "second rm: %s", rmq_strerror(rc));
    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list: %s", rmq_strerror(rc));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].name, "alpha");
    ck_assert_str_eq(v[1].name, "gamma");
    free(v);
    v = NULL;

    /* The subjects are free again, and the old messages are gone. */
    memset(&ti, 0, sizeof(ti));
    it_topic_add(c, "beta2", IT_ARGS("b.>"), NULL, &ti);
    ck_assert_uint_eq(ti.msgs, 0);
    ck_assert_uint_eq(ti.last_seq, 0);
    it_topic_add(c, "beta", IT_ARGS("b2.>"), NULL, &ti);
    ck_assert_uint_eq(ti.msgs, 0);
    ck_assert_uint_eq(ti.last_seq, 0);
    ck_assert_uint_eq(pub_text(c, "b.x", "b", 9), 1);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_topic_survives_restart)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info *v = NULL;
    rmq_topic_cfg lim;
    size_t n = 0;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "admin", NULL);
    memset(&lim, 0, sizeof(lim));
    lim.max_msgs = 50;
    lim.max_bytes = 100000;
    lim.max_age_ms = 86400000;
    lim.dedup_window_ms = 7000;
    it_topic_add(c, "first", IT_ARGS("first.>", "uno.*"), &lim, NULL);
    add1(c, "second", "second.x", NULL);
    add1(c, "third", "third.x", NULL);
    ck_assert_int_eq(rmq_topic_rm(c, "third", IT_ADMIN_MS), 0);
    for (int i = 1; i <= 5; i++)
        ck_assert_uint_eq(pub_text(c, "first.a", "f", (uint64_t)i), (uint64_t)i);
    it_close(c);

    stop_restart(&b, NULL);
    c = it_client(b.addr, "admin2", NULL);
    rc = rmq_topic_list(c, IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "rmq_topic_list after restart: %s", rmq_strerror(rc));
    IT_CHECK(n == 2, "%zu topics after restart, want 2 (first, second)", n);
    ck_assert_str_eq(v[0].name, "first");
    ck_assert_uint_eq(v[0].nsubjects, 2);
    ck_assert_str_eq(v[0].subjects[0], "first.>");
    ck_assert_str_eq(v[0].subjects[1], "uno.*");
    ck_assert_uint_eq(v[0].max_msgs, 50);
    ck_assert_uint_eq(v[0].max_bytes, 100000);
    ck_assert_uint_eq(v[0].max_age_ms, 86400000);
    ck_assert_uint_eq(v[0].dedup_window_ms, 7000);
    ck_assert_uint_eq(v[0].msgs, 5);
    ck_assert_uint_eq(v[0].first_seq, 1);
    ck_assert_uint_eq(v[0].last_seq, 5);
    ck_assert_str_eq(v[1].name, "second");
    ck_assert_str_eq(v[1].subjects[0], "second.x");
    free(v);
    /* The subjects are routed to the store again; seqs go on. */
    ck_assert_uint_eq(pub_text(c, "uno.b", "f", 6), 6);
    rc = topic_add_cfg(c, "dup", IT_ARGS("second.x"), 1);
    ck_assert_msg(rc == -EEXIST, "overlap after restart: %s", rmq_strerror(rc));
    /* A second restart: still there. */
    it_close(c);
    stop_restart(&b, NULL);
    c = it_client(b.addr, "admin3", NULL);
    ck_assert_uint_eq(pub_text(c, "first.z", "f", 7), 7);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* TOPIC.ADD answers once every shard routes the subjects: a publish right
 * after it on any connection (so any shard) is stored. */
START_TEST(test_durable_topic_add_routes_every_shard)
{
    enum { NC = 8 };
    struct tbroker b;
    rmq_client *c[NC], *adm;
    rmq_topic_info ti;

    it_broker_start(&b, IT_ARGS("--shards", "4"));
    for (int i = 0; i < NC; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        c[i] = it_client(b.addr, name, NULL);
    }
    adm = it_client(b.addr, "admin", NULL);
    for (int round = 0; round < 5; round++) {
        char tname[16], subj[32];
        snprintf(tname, sizeof(tname), "r%d", round);
        snprintf(subj, sizeof(subj), "route.%d", round);
        add1(adm, tname, subj, NULL);
        for (int i = 0; i < NC; i++)
            ck_assert_int_eq(rmq_publish(c[i], subj, "x", 1), 0);
        for (int i = 0; i < NC; i++)
            flush_ok(c[i]);
        IT_CHECK(it_topic_wait_msgs(adm, tname, NC, MS, &ti) == 0,
                 "round %d: %" PRIu64 " of %d publishes made right after TOPIC.ADD stored", round,
                 ti.msgs, NC);
    }
    for (int i = 0; i < NC; i++)
        it_close(c[i]);
    it_close(adm);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= publish ================= */

START_TEST(test_durable_publish_ack_seqs_contiguous)
{
    enum { N = 300 };
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    uint64_t bytes = 0;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    it_topic_add(c, "pa", IT_ARGS("pa.x", "pb.>"), NULL, NULL);
    add1(c, "other", "other.>", NULL);
    for (uint64_t i = 1; i <= N; i++) {
        char buf[64];
        rmq_pub_ack ack;
        size_t len = fmt_payload(buf, sizeof(buf), "pa", i);
        int rc;
        memset(&ack, 0x5a, sizeof(ack));
        rc = rmq_publish_ack(c, i % 3 ? "pa.x" : "pb.deep.er", buf, len, NULL, MS, &ack);
        IT_CHECK(rc == 0, "publish_ack #%" PRIu64 ": %s", i, rmq_strerror(rc));
        IT_CHECK(ack.seq == i, "publish_ack #%" PRIu64 ": seq %" PRIu64, i, ack.seq);
        IT_CHECK(strcmp(ack.topic, "pa") == 0, "ack topic '%.20s', want pa", ack.topic);
        IT_CHECK(!ack.duplicate, "publish_ack #%" PRIu64 " marked duplicate", i);
        bytes += it_stored_size(i % 3 ? "pa.x" : "pb.deep.er", len);
        if (i % 50 == 0) {
            /* Another topic has its own seqs. */
            ck_assert_uint_eq(pub_text(c, "other.q", "o", i / 50), i / 50);
        }
    }
    it_topic_info(c, "pa", &ti);
    ck_assert_uint_eq(ti.msgs, N);
    ck_assert_uint_eq(ti.first_seq, 1);
    ck_assert_uint_eq(ti.last_seq, N);
    {
        rmq_topic_info ot;
        it_topic_info(c, "other", &ot);
        ck_assert_uint_eq(ot.msgs, N / 50);
    }
    /* NULL ack is allowed. */
    IT_CHECK(rmq_publish_ack(c, "pa.x", "z", 1, NULL, MS, NULL) == 0, "publish_ack(NULL ack)");
    {
        rmq_topic_info t2;
        it_topic_info(c, "pa", &t2);
        ck_assert_uint_eq(t2.last_seq, N + 1);
    }
    IT_CHECK(ti.bytes == bytes,
             "topic info bytes %" PRIu64 ", want %" PRIu64 " (the sum of the stored sizes)",
             ti.bytes, bytes);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_publish_dedup_msg_id)
{
    struct tbroker b;
    rmq_client *c, *c2;
    rmq_topic_info ti;
    rmq_pub_ack ack;
    struct it_coll col;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    c2 = it_client(b.addr, "pub2", NULL);
    add1(c, "dd", "dd.>", NULL);

    rc = rmq_publish_ack(c, "dd.a", "one", 3, "id-1", MS, &ack);
    IT_CHECK(rc == 0 && ack.seq == 1 && !ack.duplicate, "first id-1: %s seq %" PRIu64,
             rmq_strerror(rc), ack.seq);
    rc = rmq_publish_ack(c, "dd.a", "one", 3, "id-1", MS, &ack);
    IT_CHECK(rc == 0, "resend id-1: %s", rmq_strerror(rc));
    IT_CHECK(ack.duplicate && ack.seq == 1, "resend id-1: duplicate %d seq %" PRIu64 " (want 1 1)",
             ack.duplicate, ack.seq);
    ck_assert_str_eq(ack.topic, "dd");
    rc = rmq_publish_ack(c, "dd.a", "two", 3, "id-2", MS, &ack);
    IT_CHECK(rc == 0 && ack.seq == 2 && !ack.duplicate, "id-2: %s seq %" PRIu64 " dup %d",
             rmq_strerror(rc), ack.seq, ack.duplicate);
    /* Same id from another connection, other subject of the topic, other
     * payload: still a duplicate of seq 1. */
    rc = rmq_publish_ack(c2, "dd.b.c", "changed", 7, "id-1", MS, &ack);
    IT_CHECK(rc == 0 && ack.duplicate && ack.seq == 1,
             "id-1 from another client: %s dup %d seq %" PRIu64, rmq_strerror(rc), ack.duplicate,
             ack.seq);
    /* Without id: never a duplicate. */
    ck_assert_uint_eq(it_pub_ack(c, "dd.a", "one", 3, NULL), 3);
    ck_assert_uint_eq(it_pub_ack(c, "dd.a", "one", 3, NULL), 4);
    /* A 128-byte id is fine. */
    {
        char id[129];
        memset(id, 'k', 128);
        id[128] = '\0';
        ck_assert_uint_eq(it_pub_ack(c, "dd.a", "long", 4, id), 5);
        rc = rmq_publish_ack(c, "dd.a", "long", 4, id, MS, &ack);
        IT_CHECK(rc == 0 && ack.duplicate && ack.seq == 5, "128-byte id again: %s dup %d",
                 rmq_strerror(rc), ack.duplicate);
    }
    it_topic_info(c, "dd", &ti);
    ck_assert_uint_eq(ti.msgs, 5);
    ck_assert_uint_eq(ti.last_seq, 5);

    it_coll_init(&col, 16);
    rc = it_topic_replay(c, "dd", 5, MS, 200, &col);
    IT_CHECK(rc == 0, "replay: %s", rmq_strerror(rc));
    IT_CHECK(col.n == 5, "replay: %zu messages, want 5", col.n);
    ck_assert_uint_eq(col.m[0].seq, 1);
    ck_assert_str_eq((char *)col.m[0].data, "one");
    ck_assert_str_eq(col.m[0].subject, "dd.a");
    ck_assert_str_eq((char *)col.m[1].data, "two");
    it_coll_free(&col);
    it_close(c2);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_publish_dedup_window_expires)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_cfg lim;
    rmq_pub_ack ack;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    memset(&lim, 0, sizeof(lim));
    lim.dedup_window_ms = 300;
    it_topic_add(c, "dw", IT_ARGS("dw.x"), &lim, NULL);
    ck_assert_uint_eq(it_pub_ack(c, "dw.x", "a", 1, "same"), 1);
    rc = rmq_publish_ack(c, "dw.x", "a", 1, "same", MS, &ack);
    IT_CHECK(rc == 0 && ack.duplicate && ack.seq == 1, "within the window: dup %d seq %" PRIu64,
             ack.duplicate, ack.seq);
    usleep(800 * 1000);
    rc = rmq_publish_ack(c, "dw.x", "a", 1, "same", MS, &ack);
    IT_CHECK(rc == 0 && !ack.duplicate && ack.seq == 2,
             "after the 300 ms window: %s dup %d seq %" PRIu64 " (want a new seq 2)",
             rmq_strerror(rc), ack.duplicate, ack.seq);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_publish_dedup_survives_restart)
{
    struct tbroker b;
    rmq_client *c;
    rmq_pub_ack ack;
    rmq_topic_info ti;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    add1(c, "dr", "dr.x", NULL);
    ck_assert_uint_eq(it_pub_ack(c, "dr.x", "a", 1, "keep-1"), 1);
    ck_assert_uint_eq(it_pub_ack(c, "dr.x", "b", 1, "keep-2"), 2);
    it_close(c);
    stop_restart(&b, NULL);
    c = it_client(b.addr, "pub2", NULL);
    /* "already stored in the topic within its dedup_window_ms": the ids are
     * in the store, so a re-send after a broker restart is recognised. */
    rc = rmq_publish_ack(c, "dr.x", "a", 1, "keep-1", MS, &ack);
    IT_CHECK(rc == 0 && ack.duplicate && ack.seq == 1,
             "id keep-1 re-sent after a restart: %s duplicate %d seq %" PRIu64
             " (want duplicate of seq 1)",
             rmq_strerror(rc), ack.duplicate, ack.seq);
    ck_assert_uint_eq(it_pub_ack(c, "dr.x", "c", 1, "keep-3"), 3);
    it_topic_info(c, "dr", &ti);
    ck_assert_uint_eq(ti.msgs, 3);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_publish_without_ack_is_stored)
{
    enum { N = 100 };
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    struct it_coll col;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    add1(c, "na", "na.*", NULL);
    for (uint64_t i = 1; i <= N; i++) {
        char buf[32];
        size_t len = fmt_payload(buf, sizeof(buf), "na", i);
        ck_assert_int_eq(rmq_publish(c, "na.x", buf, len), 0);
    }
    flush_ok(c);
    IT_CHECK(it_topic_wait_msgs(c, "na", N, MS, &ti) == 0,
             "%" PRIu64 " of %d publishes without reply stored", ti.msgs, N);
    ck_assert_uint_eq(ti.last_seq, N);
    ck_assert_uint_eq(pub_text(c, "na.y", "na", N + 1), N + 1);
    it_coll_init(&col, N + 8);
    rc = it_topic_replay(c, "na", N + 1, MS, 100, &col);
    IT_CHECK(rc == 0 && col.n == N + 1, "replay: %s, %zu messages", rmq_strerror(rc), col.n);
    for (size_t i = 0; i < col.n; i++) {
        char want[32];
        fmt_payload(want, sizeof(want), "na", i + 1);
        IT_CHECK(col.m[i].seq == i + 1 && strcmp((char *)col.m[i].data, want) == 0,
                 "replay[%zu]: seq %" PRIu64 " '%s', want %zu '%s'", i, col.m[i].seq,
                 (char *)col.m[i].data, i + 1, want);
    }
    it_coll_free(&col);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* rmq_publish_ack_async with a window of outstanding acks. */
struct async_st {
    _Atomic uint64_t done, outstanding;
    _Atomic int first_err;
    _Atomic int bad_topic;
};
struct async_call {
    struct async_st *st;
    _Atomic int calls;
    uint64_t seq;
    int err;
};

static void async_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    struct async_call *call = arg;
    struct async_st *st = call->st;
    int zero = 0;
    (void)c;
    call->err = err;
    if (err == 0 && ack) {
        call->seq = ack->seq;
        if (strcmp(ack->topic, "aa") != 0 || ack->duplicate)
            st->bad_topic++;
    } else if (err == 0) {
        err = -EFAULT; /* err 0 without an ack */
    }
    if (err)
        atomic_compare_exchange_strong(&st->first_err, &zero, err);
    call->calls++;
    st->outstanding--;
    st->done++;
}

START_TEST(test_durable_publish_ack_async_window)
{
    enum { N = 3000, WINDOW = 64 };
    struct tbroker b;
    rmq_client *c;
    struct async_st st;
    struct async_call *calls = calloc(N, sizeof(*calls));
    rmq_topic_info ti;
    uint8_t *seen = calloc(N + 2, 1);
    uint64_t end, max_out = 0;

    ck_assert_ptr_nonnull(calls);
    ck_assert_ptr_nonnull(seen);
    memset(&st, 0, sizeof(st));
    it_broker_start(&b, NULL);
    c = it_client(b.addr, "async", NULL);
    add1(c, "aa", "aa.>", NULL);
    end = test_now_ms() + 30000;
    for (uint64_t i = 0; i < N; i++) {
        char buf[48];
        size_t len = fmt_payload(buf, sizeof(buf), "aa", i + 1);
        int rc;
        while (atomic_load(&st.outstanding) >= WINDOW) {
            IT_CHECK(test_now_ms() < end, "window never drained: %" PRIu64 " done of %d",
                     (uint64_t)atomic_load(&st.done), N);
            usleep(100);
        }
        calls[i].st = &st;
        st.outstanding++;
        rc = rmq_publish_ack_async(c, "aa.x", buf, len, NULL, 10000, async_cb, &calls[i]);
        IT_CHECK(rc == 0, "publish_ack_async #%" PRIu64 ": %s", i, rmq_strerror(rc));
        if (atomic_load(&st.outstanding) > max_out)
            max_out = atomic_load(&st.outstanding);
    }
    IT_CHECK(it_wait_atomic(&st.done, N, 20000) == 0, "%" PRIu64 " of %d ack callbacks",
             (uint64_t)atomic_load(&st.done), N);
    usleep(100 * 1000);
    IT_CHECK(atomic_load(&st.first_err) == 0, "an ack callback had error %s",
             rmq_strerror(atomic_load(&st.first_err)));
    ck_assert_int_eq(atomic_load(&st.bad_topic), 0);
    ck_assert_uint_eq(atomic_load(&st.done), N);
    for (uint64_t i = 0; i < N; i++) {
        IT_CHECK(calls[i].calls == 1, "call %" PRIu64 ": %d callbacks", i, (int)calls[i].calls);
        IT_CHECK(calls[i].seq >= 1 && calls[i].seq <= N, "call %" PRIu64 ": seq %" PRIu64, i,
                 calls[i].seq);
        IT_CHECK(!seen[calls[i].seq], "seq %" PRIu64 " acked twice", calls[i].seq);
        seen[calls[i].seq] = 1;
        /* One connection: stored in publish order. */
        IT_CHECK(calls[i].seq == i + 1, "call %" PRIu64 " got seq %" PRIu64 " (publish order)", i,
                 calls[i].seq);
    }
    it_topic_info(c, "aa", &ti);
    ck_assert_uint_eq(ti.msgs, N);
    ck_assert_uint_eq(ti.last_seq, N);
    it_close(c);
    /* Nothing more after close. */
    for (uint64_t i = 0; i < N; i++)
        IT_CHECK(calls[i].calls == 1, "call %" PRIu64 ": %d callbacks after close", i,
                 (int)calls[i].calls);
    fprintf(stderr, "publish_ack_async: %d acks, window %d (max outstanding seen %" PRIu64 ")\n", N,
            WINDOW, max_out);
    free(calls);
    free(seen);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* A publish_ack to a subject that no topic has. */
static void responder_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)sub;
    (void)arg;
    rmq_respond(c, m, "hello", 5);
}

START_TEST(test_durable_publish_ack_no_topic)
{
    struct tbroker b;
    rmq_client *c, *r;
    rmq_sub *rs;
    rmq_pub_ack ack;
    uint64_t t0;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    r = it_client(b.addr, "responder", NULL);
    add1(c, "t", "t.x", NULL);
    /* Rmq-Expect-Ack: the broker answers NO_TOPIC itself, at once, and
     * does not route the publish (the responder sees nothing). */
    ck_assert_int_eq(rmq_subscribe(r, "plain.svc", NULL, responder_cb, NULL, &rs), 0);
    flush_ok(r);
    t0 = test_now_ms();
    rc = rmq_publish_ack(c, "plain.svc", "x", 1, NULL, 5000, &ack);
    ck_assert_msg(rc == RMQ_ENOTFOUND,
                  "publish_ack on a subject of no topic: %s (want RMQ_ENOTFOUND)",
                  rmq_strerror(rc));
    rc = rmq_publish_ack(c, "not.a.topic", "x", 1, "id-1", 5000, &ack);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "publish_ack, no responder: %s (want RMQ_ENOTFOUND)",
                  rmq_strerror(rc));
    IT_CHECK(test_now_ms() - t0 < 1000, "NO_TOPIC answers took %" PRIu64 " ms", test_now_ms() - t0);
    ck_assert_uint_eq(rmq_sub_delivered(rs), 0);
    /* The topic's subject still works. */
    ck_assert_uint_eq(pub_text(c, "t.x", "t", 1), 1);
    rmq_unsubscribe(rs);
    it_close(r);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= live ================= */

START_TEST(test_durable_live_subscriber_gets_seq)
{
    enum { N = 200 };
    struct tbroker b;
    rmq_client *p, *s, *adm;
    rmq_sub *sub, *plain, *star;
    rmq_msg *m;
    rmq_topic_info ti;
    uint64_t seq, t_before, t_after;

    it_broker_start(&b, IT_ARGS("--shards", "2"));
    p = it_client(b.addr, "pub", NULL);
    s = it_client(b.addr, "sub", NULL);
    adm = it_client(b.addr, "adm", NULL);
    add1(adm, "lv", "lv.>", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(s, "lv.>", NULL, &sub), 0);
    ck_assert_int_eq(rmq_subscribe_sync(s, "plain.x", NULL, &plain), 0);
    ck_assert_int_eq(rmq_subscribe_sync(s, "*.*", NULL, &star), 0);
    flush_ok(s);

    t_before = it_wall_ns();
    seq = pub_text(p, "lv.a", "lv", 1);
    t_after = it_wall_ns();
    m = next_msg(sub, MS, "live delivery");
    ck_assert_uint_eq(rmq_msg_seq(m), seq);
    ck_assert_str_eq(rmq_msg_subject(m), "lv.a");
    ck_assert_msg(payload_is(m, "lv", 1), "payload");
    ck_assert_msg(rmq_msg_reply(m) == NULL, "the ack reply subject was delivered: %s",
                  rmq_msg_reply(m));
    ck_assert_uint_eq(rmq_msg_deliveries(m), 0);
    ck_assert_msg(rmq_msg_time_ns(m) + 1000000000ull >= t_before &&
                      rmq_msg_time_ns(m) <= t_after + 1000000000ull,
                  "time_ns %" PRIu64 " not within [%" PRIu64 ", %" PRIu64 "] (+-1 s)",
                  rmq_msg_time_ns(m), t_before, t_after);
    rmq_msg_free(m);
    /* "*.*" matches too: the same stored message. */
    m = next_msg(star, MS, "live delivery to *.*");
    ck_assert_uint_eq(rmq_msg_seq(m), seq);
    rmq_msg_free(m);

    /* Delivered only after the commit: when it arrives, the store has it. */
    for (uint64_t i = 2; i <= 20; i++) {
        char buf[32];
        size_t len = fmt_payload(buf, sizeof(buf), "lv", i);
        ck_assert_int_eq(rmq_publish(p, "lv.b", buf, len), 0);
        m = next_msg(sub, MS, "live delivery of a publish without ack");
        seq = rmq_msg_seq(m);
        ck_assert_msg(payload_is(m, "lv", i), "payload of #%" PRIu64, i);
        rmq_msg_free(m);
        IT_CHECK(seq == i, "publish #%" PRIu64 " delivered with seq %" PRIu64, i, seq);
        it_topic_info(adm, "lv", &ti);
        IT_CHECK(ti.last_seq >= seq && ti.msgs >= seq,
                 "seq %" PRIu64 " delivered live but the topic has last_seq %" PRIu64
                 " msgs %" PRIu64,
                 seq, ti.last_seq, ti.msgs);
        m = next_msg(star, MS, "*.*");
        rmq_msg_free(m);
    }
    /* A burst arrives in seq order, with seq set. */
    for (uint64_t i = 21; i <= N; i++) {
        char buf[32];
        size_t len = fmt_payload(buf, sizeof(buf), "lv", i);
        ck_assert_int_eq(rmq_publish(p, "lv.c", buf, len), 0);
    }
    flush_ok(p);
    for (uint64_t i = 21; i <= N; i++)
        expect_msg(sub, i, "lv", i, "live burst");
    /* A subject of no topic: no seq. */
    ck_assert_int_eq(rmq_publish(p, "plain.x", "p", 1), 0);
    m = next_msg(plain, MS, "plain subject");
    ck_assert_uint_eq(rmq_msg_seq(m), 0);
    ck_assert_uint_eq(rmq_msg_time_ns(m), 0);
    rmq_msg_free(m);
    expect_none(sub, 100, "topic subscriber after the burst");
    it_close(p);
    it_close(s);
    it_close(adm);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= replay ================= */

#define RP_N 20

struct rp_fix {
    struct tbroker b;
    rmq_client *c, *p;
    uint64_t time_ns[RP_N + 1];
};

/* Topic "rp" on rp.>: RP_N messages "rp-<i>" at seq i, on rp.a (odd) and
 * rp.b (even); their store times read back with a full replay. */
static void rp_setup(struct rp_fix *f)
{
    struct it_coll col;
    int rc;
    it_broker_start(&f->b, NULL);
    f->c = it_client(f->b.addr, "replayer", NULL);
    f->p = it_client(f->b.addr, "pub", NULL);
    add1(f->p, "rp", "rp.>", NULL);
    for (uint64_t i = 1; i <= RP_N; i++) {
        ck_assert_uint_eq(pub_text(f->p, i % 2 ? "rp.a" : "rp.b", "rp", i), i);
        usleep(2000); /* distinct store times */
    }
    it_coll_init(&col, RP_N + 4);
    rc = it_topic_replay(f->c, "rp", RP_N, MS, 50, &col);
    IT_CHECK(rc == 0 && col.n == RP_N, "setup replay: %s, %zu msgs", rmq_strerror(rc), col.n);
    for (size_t i = 0; i < RP_N; i++) {
        f->time_ns[i + 1] = col.m[i].time_ns;
        IT_CHECK(col.m[i].seq == i + 1, "setup replay[%zu] seq %" PRIu64, i, col.m[i].seq);
        IT_CHECK(col.m[i].time_ns > 0, "seq %zu: time_ns 0", i + 1);
        if (i)
            IT_CHECK(col.m[i].time_ns >= col.m[i - 1].time_ns,
                     "time_ns decreases: seq %zu %" PRIu64 " < seq %zu %" PRIu64, i + 1,
                     col.m[i].time_ns, i, col.m[i - 1].time_ns);
    }
    it_coll_free(&col);
}

static void rp_teardown(struct rp_fix *f)
{
    it_close(f->p);
    it_close(f->c);
    it_broker_stop_ok(&f->b, 5000);
}

/* After the replay: two live messages follow, then nothing. */
static void rp_live_follows(struct rp_fix *f, rmq_sub *s, uint64_t next_seq, const char *what)
{
    ck_assert_uint_eq(pub_text(f->p, "rp.a", "live", 1), next_seq);
    ck_assert_uint_eq(pub_text(f->p, "rp.b", "live", 2), next_seq + 1);
    expect_msg(s, next_seq, "live", 1, what);
    expect_msg(s, next_seq + 1, "live", 2, what);
    expect_none(s, 150, what);
}

START_TEST(test_durable_replay_all)
{
    struct rp_fix f;
    rmq_sub *s;
    rp_setup(&f);
    s = sub_topic(f.c, "rp", ">", RMQ_START_ALL, 0, 0);
    for (uint64_t i = 1; i <= RP_N; i++) {
        rmq_msg *m = next_msg(s, MS, "replay ALL");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        ck_assert_msg(payload_is(m, "rp", i), "replay ALL: payload of seq %" PRIu64, i);
        ck_assert_str_eq(rmq_msg_subject(m), i % 2 ? "rp.a" : "rp.b");
        ck_assert_uint_eq(rmq_msg_time_ns(m), f.time_ns[i]);
        rmq_msg_free(m);
    }
    rp_live_follows(&f, s, RP_N + 1, "ALL then live");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_all_pattern_filter)
{
    struct rp_fix f;
    rmq_sub *s;
    rp_setup(&f);
    s = sub_topic(f.c, "rp", "rp.a", RMQ_START_ALL, 0, 0);
    for (uint64_t i = 1; i <= RP_N; i += 2)
        expect_msg(s, i, "rp", i, "replay ALL of rp.a");
    expect_none(s, 100, "replay of rp.a after the odd seqs");
    ck_assert_uint_eq(pub_text(f.p, "rp.b", "live", 1), RP_N + 1);
    ck_assert_uint_eq(pub_text(f.p, "rp.a", "live", 2), RP_N + 2);
    expect_msg(s, RP_N + 2, "live", 2, "rp.a live");
    expect_none(s, 100, "rp.a after live");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_seq_middle)
{
    struct rp_fix f;
    rmq_sub *s;
    rp_setup(&f);
    s = sub_topic(f.c, "rp", ">", RMQ_START_SEQ, 11, 0);
    for (uint64_t i = 11; i <= RP_N; i++)
        expect_msg(s, i, "rp", i, "replay from SEQ 11");
    rp_live_follows(&f, s, RP_N + 1, "SEQ then live");
    rmq_unsubscribe(s);
    /* From the last one exactly. */
    s = sub_topic(f.c, "rp", ">", RMQ_START_SEQ, RP_N + 2, 0);
    expect_msg(s, RP_N + 2, "live", 2, "SEQ = last seq");
    expect_none(s, 100, "after SEQ = last");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_time)
{
    struct rp_fix f;
    rmq_sub *s;
    uint64_t first = 0;
    rp_setup(&f);
    /* The first message stored at or after seq 8's store time. */
    for (uint64_t i = 1; i <= RP_N && !first; i++)
        if (f.time_ns[i] >= f.time_ns[8])
            first = i;
    s = sub_topic(f.c, "rp", ">", RMQ_START_TIME, 0, f.time_ns[8]);
    for (uint64_t i = first; i <= RP_N; i++)
        expect_msg(s, i, "rp", i, "replay from TIME of seq 8");
    rp_live_follows(&f, s, RP_N + 1, "TIME then live");
    rmq_unsubscribe(s);
    /* One ns after seq 8: from the first later one. */
    first = 0;
    for (uint64_t i = 1; i <= RP_N && !first; i++)
        if (f.time_ns[i] > f.time_ns[8])
            first = i;
    ck_assert_uint_ge(first, 9);
    s = sub_topic(f.c, "rp", ">", RMQ_START_TIME, 0, f.time_ns[8] + 1);
    for (uint64_t i = first; i <= RP_N; i++)
        expect_msg(s, i, "rp", i, "replay from TIME of seq 8 + 1 ns");
    expect_msg(s, RP_N + 1, "live", 1, "TIME + 1 ns");
    rmq_unsubscribe(s);
    /* A time before everything: all of them. */
    s = sub_topic(f.c, "rp", ">", RMQ_START_TIME, 0, f.time_ns[1] - 1000);
    expect_msg(s, 1, "rp", 1, "TIME before the first");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_last)
{
    struct rp_fix f;
    rmq_sub *s;
    rp_setup(&f);
    s = sub_topic(f.c, "rp", ">", RMQ_START_LAST, 0, 0);
    expect_msg(s, RP_N, "rp", RP_N, "replay LAST");
    rp_live_follows(&f, s, RP_N + 1, "LAST then live");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_new)
{
    struct rp_fix f;
    rmq_sub *s;
    rp_setup(&f);
    s = sub_topic(f.c, "rp", ">", RMQ_START_NEW, 0, 0);
    flush_ok(f.c);
    expect_none(s, 200, "replay NEW before any new message");
    rp_live_follows(&f, s, RP_N + 1, "NEW then live");
    rmq_unsubscribe(s);
    rp_teardown(&f);
}
END_TEST

START_TEST(test_durable_replay_large)
{
    enum { N = 4000, SZ = 1024 };
    struct tbroker b;
    rmq_client *p, *c;
    rmq_sub *s;
    uint8_t buf[SZ];
    rmq_topic_info ti;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "replayer", NULL);
    add1(p, "big", "big.x", NULL);
    for (uint64_t i = 1; i <= N; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(p, "big.x", buf, sizeof(buf)), 0);
    }
    flush_ok(p);
    IT_CHECK(it_topic_wait_msgs(p, "big", N, 10000, &ti) == 0, "%" PRIu64 " of %d stored", ti.msgs,
             N);
    s = sub_topic(c, "big", ">", RMQ_START_ALL, 0, 0);
    for (uint64_t i = 1; i <= N; i++) {
        rmq_msg *m = next_msg(s, MS, "large replay");
        uint64_t seq = rmq_msg_seq(m);
        int64_t ps = it_payload_seq(rmq_msg_data(m), rmq_msg_len(m));
        rmq_msg_free(m);
        IT_CHECK(seq == i && ps == (int64_t)i,
                 "large replay: #%" PRIu64 " has seq %" PRIu64 " payload %" PRId64, i, seq, ps);
    }
    expect_none(s, 100, "after the large replay");
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* After a reconnect, a topic subscription resumes after the last seq it
 * delivered (ringmq.h, rmq_subscribe_topic). */
START_TEST(test_durable_replay_resumes_after_reconnect)
{
    struct tbroker b;
    struct it_rec rec;
    rmq_client *c, *p;
    rmq_opts *o;
    rmq_sub *s;
    int rc;

    it_broker_start(&b, NULL);
    it_rec_init(&rec);
    o = it_opts(b.addr, "resumer", &rec, 200);
    rc = rmq_connect(o, &c);
    rmq_opts_free(o);
    IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    p = it_client(b.addr, "pub", NULL);
    add1(p, "rs", "rs.x", NULL);
    for (uint64_t i = 1; i <= 5; i++)
        pub_text(p, "rs.x", "rs", i);
    it_close(p);
    s = sub_topic(c, "rs", ">", RMQ_START_ALL, 0, 0);
    for (uint64_t i = 1; i <= 5; i++)
        expect_msg(s, i, "rs", i, "before the restart");
    stop_restart(&b, NULL);
    IT_CHECK(it_rec_wait(&rec, RMQ_EV_RECONNECTED, 1, 10000) == 0, "no RECONNECTED");
    flush_ok(c);
    p = it_client(b.addr, "pub2", NULL);
    for (uint64_t i = 6; i <= 8; i++)
        ck_assert_uint_eq(pub_text(p, "rs.x", "rs", i), i);
    for (uint64_t i = 6; i <= 8; i++)
        expect_msg(s, i, "rs", i, "after the reconnect (1..5 must not come again)");
    expect_none(s, 200, "after the reconnect");
    rmq_unsubscribe(s);
    it_close(p);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= switch ================= */

struct sw_pub {
    rmq_client *c;
    char subj[32];
    uint64_t m;
    _Atomic uint64_t acked, outstanding, sent;
    _Atomic int err;
    _Atomic uint64_t bad_seq; /* first ack whose seq is not its index + 1, +1 */
    pthread_t th;
};
struct sw_call {
    struct sw_pub *p;
    uint64_t i;
};

static void sw_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    struct sw_call *call = arg;
    struct sw_pub *p = call->p;
    int zero = 0;
    uint64_t z = 0;
    (void)c;
    if (err)
        atomic_compare_exchange_strong(&p->err, &zero, err);
    else if (!ack || ack->seq != call->i + 1)
        atomic_compare_exchange_strong(&p->bad_seq, &z, call->i + 1);
    p->outstanding--;
    p->acked++;
}

static void *sw_thread(void *arg)
{
    struct sw_pub *p = arg;
    struct sw_call *calls = calloc(p->m, sizeof(*calls));
    uint64_t end = test_now_ms() + 30000;
    if (!calls) {
        p->err = -ENOMEM;
        return NULL;
    }
    for (uint64_t i = 0; i < p->m; i++) {
        uint8_t buf[32];
        int rc;
        while (atomic_load(&p->outstanding) >= 16 && test_now_ms() < end)
            usleep(50);
        it_payload_fill(buf, sizeof(buf), i + 1);
        calls[i].p = p;
        calls[i].i = i;
        p->outstanding++;
        rc = rmq_publish_ack_async(p->c, p->subj, buf, sizeof(buf), NULL, 10000, sw_cb, &calls[i]);
        if (rc) {
            int zero = 0;
            p->outstanding--;
            atomic_compare_exchange_strong(&p->err, &zero, rc);
            break;
        }
        p->sent++;
        if (i % 64 == 63)
            usleep(200); /* spread the stream so the switch happens mid-way */
    }
    /* Wait for the last callbacks before freeing their arguments. */
    while (atomic_load(&p->acked) < atomic_load(&p->sent) && test_now_ms() < end + 10000)
        usleep(1000);
    if (atomic_load(&p->acked) >= atomic_load(&p->sent))
        free(calls); /* else leaked on purpose: a late callback may still use it */
    return NULL;
}

static void sw_check(struct it_coll *col, uint64_t m, int round, int who)
{
    IT_CHECK(col->n == m, "round %d subscriber %d: %zu messages (count %" PRIu64 "), want %" PRIu64,
             round, who, col->n, (uint64_t)atomic_load(&col->count), m);
    for (size_t i = 0; i < col->n; i++) {
        int64_t ps = it_payload_seq(col->m[i].data, col->m[i].len);
        IT_CHECK(col->m[i].seq == i + 1,
                 "round %d subscriber %d: message #%zu has seq %" PRIu64
                 " (want %zu: gap, duplicate or reorder at the replay/live switch)",
                 round, who, i, col->m[i].seq, i + 1);
        IT_CHECK(ps == (int64_t)(i + 1), "round %d subscriber %d: seq %zu has payload %" PRId64,
                 round, who, i + 1, ps);
    }
}

START_TEST(test_durable_replay_live_switch_concurrent)
{
    enum { ROUNDS = 5, M = 2000, NSUB = 3 };
    struct tbroker b;
    rmq_client *adm, *sc[NSUB];
    uint64_t rng = it_seed() ^ 0x5157;

    it_broker_start(&b, IT_ARGS("--shards", "2"));
    adm = it_client(b.addr, "adm", NULL);
    for (int i = 0; i < NSUB; i++) {
        char name[16];
        snprintf(name, sizeof(name), "sub%d", i);
        sc[i] = it_client(b.addr, name, NULL);
    }
    for (int round = 0; round < ROUNDS; round++) {
        struct sw_pub p;
        struct it_coll col[NSUB];
        rmq_sub *s[NSUB];
        char tname[16];
        uint64_t at, at_seen[NSUB];
        rmq_replay_opts o;

        memset(&p, 0, sizeof(p));
        snprintf(tname, sizeof(tname), "sw%d", round);
        snprintf(p.subj, sizeof(p.subj), "sw.%d.x", round);
        it_topic_add(adm, tname, IT_ARGS(p.subj), NULL, NULL);
        p.m = M;
        p.c = it_client(b.addr, "swpub", NULL);
        at = M / 10 + it_rand(&rng) % (M / 2);
        ck_assert_int_eq(pthread_create(&p.th, NULL, sw_thread, &p), 0);
        memset(&o, 0, sizeof(o));
        o.start = RMQ_START_ALL;
        for (int i = 0; i < NSUB; i++) {
            /* Subscribers join at different points of the stream. */
            uint64_t want = at + (uint64_t)i * (M / 8);
            int rc;
            (void)it_wait_atomic(&p.acked, want < M ? want : M - 1, 20000);
            at_seen[i] = atomic_load(&p.acked);
            it_coll_init(&col[i], M + 16);
            rc = rmq_subscribe_topic(sc[i], tname, ">", &o, it_coll_cb, &col[i], &s[i]);
            IT_CHECK(rc == 0, "round %d: subscribe_topic: %s", round, rmq_strerror(rc));
        }
        pthread_join(p.th, NULL);
        IT_CHECK(atomic_load(&p.err) == 0, "round %d: publisher error %s", round,
                 rmq_strerror(atomic_load(&p.err)));
        IT_CHECK(atomic_load(&p.acked) == M, "round %d: %" PRIu64 " of %d acked", round,
                 (uint64_t)atomic_load(&p.acked), M);
        IT_CHECK(atomic_load(&p.bad_seq) == 0,
                 "round %d: publish #%" PRIu64 " acked with another seq", round,
                 (uint64_t)atomic_load(&p.bad_seq));
        for (int i = 0; i < NSUB; i++) {
            IT_CHECK(it_coll_wait(&col[i], M, 10000) == 0,
                     "round %d subscriber %d (joined after %" PRIu64 " acks): %" PRIu64
                     " of %d messages",
                     round, i, at_seen[i], (uint64_t)atomic_load(&col[i].count), M);
        }
        usleep(100 * 1000); /* anything extra would show now */
        for (int i = 0; i < NSUB; i++) {
            rmq_unsubscribe(s[i]);
            sw_check(&col[i], M, round, i);
            it_coll_free(&col[i]);
        }
        fprintf(stderr,
                "switch round %d: %d msgs, subscribers joined after %" PRIu64 "/%" PRIu64
                "/%" PRIu64 " acks\n",
                round, M, at_seen[0], at_seen[1], at_seen[2]);
        it_close(p.c);
    }
    for (int i = 0; i < NSUB; i++)
        it_close(sc[i]);
    it_close(adm);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

/* Several publishers (several connections, so several shards) at once; a
 * subscriber joining mid-stream still sees every seq once, in order, and
 * each seq holds what its ack said. */
#define MP_PUBS 3
#define MP_EACH 1500
#define MP_TOTAL (MP_PUBS * MP_EACH)

struct mp_pub {
    rmq_client *c;
    int id;
    _Atomic uint64_t acked, outstanding, sent;
    _Atomic int err;
    int64_t *by_seq; /* shared: seq -> payload number, written by the ack callbacks */
    pthread_t th;
};
struct mp_call {
    struct mp_pub *p;
    int64_t num;
};

static void mp_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    struct mp_call *call = arg;
    struct mp_pub *p = call->p;
    int zero = 0;
    (void)c;
    if (err)
        atomic_compare_exchange_strong(&p->err, &zero, err);
    else if (ack && ack->seq >= 1 && ack->seq <= MP_TOTAL)
        p->by_seq[ack->seq] = call->num;
    else
        atomic_compare_exchange_strong(&p->err, &zero, -ERANGE);
    p->outstanding--;
    p->acked++;
}

static void *mp_thread(void *arg)
{
    struct mp_pub *p = arg;
    struct mp_call *calls = calloc(MP_EACH, sizeof(*calls));
    uint64_t end = test_now_ms() + 30000;
    if (!calls) {
        p->err = -ENOMEM;
        return NULL;
    }
    for (uint64_t i = 0; i < MP_EACH; i++) {
        uint8_t buf[40];
        int rc;
        while (atomic_load(&p->outstanding) >= 8 && test_now_ms() < end)
            usleep(50);
        calls[i].p = p;
        calls[i].num = (int64_t)((uint64_t)p->id * MP_EACH + i);
        it_payload_fill(buf, sizeof(buf), (uint64_t)calls[i].num);
        p->outstanding++;
        rc = rmq_publish_ack_async(p->c, "mp.x", buf, sizeof(buf), NULL, 10000, mp_cb, &calls[i]);
        if (rc) {
            int zero = 0;
            p->outstanding--;
            atomic_compare_exchange_strong(&p->err, &zero, rc);
            break;
        }
        p->sent++;
        if (i % 32 == 31)
            usleep(300);
    }
    while (atomic_load(&p->acked) < atomic_load(&p->sent) && test_now_ms() < end + 10000)
        usleep(1000);
    if (atomic_load(&p->acked) >= atomic_load(&p->sent))
        free(calls);
    return NULL;
}

/*
 * A synchronous replay read slowly, with pending limits far below the
 * topic's size: the library stops reading instead of dropping (the broker
 * holds the replay back), so every message comes once, in order, and
 * nothing is counted as dropped; then it goes on live.
 */
START_TEST(test_durable_replay_sync_slow_reader_never_drops)
{
    enum { N = 5000 };
    struct tbroker b;
    rmq_client *adm, *sc;
    rmq_opts *o;
    rmq_sub *s;
    rmq_msg *m;
    rmq_pub_ack ack;
    rmq_replay_opts ro = {.start = RMQ_START_ALL};
    uint8_t buf[200];
    int rc;

    it_broker_start(&b, NULL);
    adm = it_client(b.addr, "adm", NULL);
    add1(adm, "sr", "sr.x", NULL);
    for (uint64_t i = 1; i < N; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(adm, "sr.x", buf, sizeof(buf)), 0);
    }
    it_payload_fill(buf, sizeof(buf), N);
    rc = rmq_publish_ack(adm, "sr.x", buf, sizeof(buf), NULL, 10000, &ack);
    IT_CHECK(rc == 0 && ack.seq == N, "last publish: %s, seq %" PRIu64, rmq_strerror(rc), ack.seq);
    o = it_opts(b.addr, "slow", NULL, 0);
    ck_assert_int_eq(rmq_opts_set_pending_limits(o, 100, 64u << 10), 0);
    rc = rmq_connect(o, &sc);
    rmq_opts_free(o);
    IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    ck_assert_int_eq(rmq_subscribe_topic(sc, "sr", ">", &ro, NULL, NULL, &s), 0);
    usleep(500 * 1000); /* the queue fills far past 100 if nothing holds it back */
    for (uint64_t i = 1; i <= N + 1; i++) {
        if (i == N + 1) { /* live, after the replay */
            it_payload_fill(buf, sizeof(buf), i);
            ck_assert_int_eq(rmq_publish(adm, "sr.x", buf, sizeof(buf)), 0);
        }
        rc = rmq_sub_next(s, 10000, &m);
        IT_CHECK(rc == 0, "message %" PRIu64 ": %s (dropped %" PRIu64 ")", i, rmq_strerror(rc),
                 rmq_sub_dropped(s));
        IT_CHECK(rmq_msg_seq(m) == i &&
                     it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)) == (int64_t)i,
                 "message %" PRIu64 " has seq %" PRIu64, i, rmq_msg_seq(m));
        rmq_msg_free(m);
        if (i % 1000 == 0)
            usleep(20 * 1000); /* slow now and then, also once the queue drained */
    }
    IT_CHECK(rmq_sub_dropped(s) == 0, "%" PRIu64 " dropped", rmq_sub_dropped(s));
    rmq_unsubscribe(s);
    it_close(sc);
    it_close(adm);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

/*
 * A synchronous replay that filled its queue (the client stopped reading)
 * and is then unsubscribed without being drained: the client reads again,
 * so its other traffic (a plain subscription, a flush) goes on.
 */
START_TEST(test_durable_replay_sync_unsubscribe_while_full)
{
    struct tbroker b;
    rmq_client *adm, *sc;
    rmq_opts *o;
    rmq_sub *s, *p;
    rmq_msg *m;
    rmq_pub_ack ack;
    rmq_replay_opts ro = {.start = RMQ_START_ALL};
    uint8_t buf[200];
    int rc;

    it_broker_start(&b, NULL);
    adm = it_client(b.addr, "adm", NULL);
    add1(adm, "uf", "uf.x", NULL);
    memset(buf, 'u', sizeof(buf));
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(rmq_publish(adm, "uf.x", buf, sizeof(buf)), 0);
    ck_assert_int_eq(rmq_publish_ack(adm, "uf.x", buf, sizeof(buf), NULL, 10000, &ack), 0);
    o = it_opts(b.addr, "full", NULL, 0);
    ck_assert_int_eq(rmq_opts_set_pending_limits(o, 10, 64u << 10), 0);
    rc = rmq_connect(o, &sc);
    rmq_opts_free(o);
    IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    ck_assert_int_eq(rmq_subscribe_sync(sc, "plain.uf", NULL, &p), 0);
    flush_ok(sc);
    ck_assert_int_eq(rmq_subscribe_topic(sc, "uf", ">", &ro, NULL, NULL, &s), 0);
    usleep(500 * 1000); /* the replay fills the queue: the client stops reading */
    rmq_unsubscribe(s);
    ck_assert_int_eq(rmq_publish(adm, "plain.uf", "after", 5), 0);
    flush_ok(adm);
    rc = rmq_sub_next(p, 5000, &m);
    IT_CHECK(rc == 0, "plain message after unsubscribing the full replay: %s", rmq_strerror(rc));
    ck_assert_uint_eq(rmq_msg_len(m), 5);
    rmq_msg_free(m);
    flush_ok(sc);
    rmq_unsubscribe(p);
    it_close(sc);
    it_close(adm);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

START_TEST(test_durable_replay_live_switch_many_publishers)
{
    struct tbroker b;
    rmq_client *adm, *sc;
    struct mp_pub p[MP_PUBS];
    struct it_coll col;
    rmq_sub *s;
    rmq_replay_opts o;
    int64_t *by_seq = calloc(MP_TOTAL + 1, sizeof(int64_t));
    uint64_t acked = 0, joined;
    int rc;

    ck_assert_ptr_nonnull(by_seq);
    for (size_t i = 0; i <= MP_TOTAL; i++)
        by_seq[i] = -1;
    it_broker_start(&b, IT_ARGS("--shards", "2"));
    adm = it_client(b.addr, "adm", NULL);
    sc = it_client(b.addr, "sub", NULL);
    add1(adm, "mp", "mp.x", NULL);
    memset(p, 0, sizeof(p));
    for (int i = 0; i < MP_PUBS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "mp%d", i);
        p[i].c = it_client(b.addr, name, NULL);
        p[i].id = i;
        p[i].by_seq = by_seq;
    }
    for (int i = 0; i < MP_PUBS; i++)
        ck_assert_int_eq(pthread_create(&p[i].th, NULL, mp_thread, &p[i]), 0);
    (void)it_wait_atomic(&p[0].acked, MP_EACH / 3, 20000);
    joined = atomic_load(&p[0].acked) + atomic_load(&p[1].acked) + atomic_load(&p[2].acked);
    it_coll_init(&col, MP_TOTAL + 16);
    memset(&o, 0, sizeof(o));
    o.start = RMQ_START_ALL;
    rc = rmq_subscribe_topic(sc, "mp", ">", &o, it_coll_cb, &col, &s);
    IT_CHECK(rc == 0, "subscribe_topic: %s", rmq_strerror(rc));
    for (int i = 0; i < MP_PUBS; i++) {
        pthread_join(p[i].th, NULL);
        IT_CHECK(atomic_load(&p[i].err) == 0, "publisher %d: %s", i,
                 rmq_strerror(atomic_load(&p[i].err)));
        acked += atomic_load(&p[i].acked);
    }
    IT_CHECK(acked == MP_TOTAL, "%" PRIu64 " of %d acked", acked, MP_TOTAL);
    IT_CHECK(it_coll_wait(&col, MP_TOTAL, 10000) == 0, "subscriber: %" PRIu64 " of %d",
             (uint64_t)atomic_load(&col.count), MP_TOTAL);
    usleep(100 * 1000);
    rmq_unsubscribe(s);
    IT_CHECK(col.n == MP_TOTAL, "subscriber got %zu messages, want %d", col.n, MP_TOTAL);
    for (size_t i = 0; i < col.n; i++) {
        int64_t ps = it_payload_seq(col.m[i].data, col.m[i].len);
        IT_CHECK(col.m[i].seq == i + 1,
                 "message #%zu has seq %" PRIu64 " (joined after %" PRIu64
                 " acks; gap, duplicate or reorder)",
                 i, col.m[i].seq, joined);
        IT_CHECK(ps == by_seq[i + 1], "seq %zu holds payload %" PRId64 ", its ack was for %" PRId64,
                 i + 1, ps, by_seq[i + 1]);
    }
    fprintf(stderr,
            "many publishers: %d msgs from %d connections, subscriber joined after %" PRIu64
            " acks\n",
            MP_TOTAL, MP_PUBS, joined);
    it_coll_free(&col);
    for (int i = 0; i < MP_PUBS; i++)
        it_close(p[i].c);
    it_close(sc);
    it_close(adm);
    free(by_seq);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

/* ================= consumer ================= */

START_TEST(test_durable_consumer_receive_and_ack)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_consumer_info ci;
    rmq_topic_info ti;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "worker", NULL);
    add1(p, "cq", "cq.>", NULL);
    for (uint64_t i = 1; i <= 10; i++)
        pub_text(p, "cq.x", "cq", i);
    s = consume(c, "cq", "d1", 0, 0, 0);
    for (uint64_t i = 1; i <= 10; i++) {
        rmq_msg *m = next_msg(s, MS, "consumer");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        ck_assert_msg(payload_is(m, "cq", i), "consumer payload of %" PRIu64, i);
        ck_assert_uint_eq(rmq_msg_deliveries(m), 1);
        ck_assert_msg(rmq_msg_reply(m) != NULL, "consumer message without a reply subject");
        ck_assert_msg(rmq_msg_time_ns(m) > 0, "consumer message without time_ns");
        ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    flush_ok(c);
    wait_ack_floor(p, "cq", "d1", 10);
    ck_assert_msg(consumer_get(p, "cq", "d1", &ci), "d1 listed");
    ck_assert_str_eq(ci.topic, "cq");
    ck_assert_uint_eq(ci.inflight, 0);
    ck_assert_uint_eq(ci.members, 1);
    ck_assert_uint_eq(ci.max_inflight, 1000);
    ck_assert_uint_eq(ci.ack_wait_ms, 30000);
    ck_assert_uint_eq(ci.max_deliver, 0);
    it_topic_info(p, "cq", &ti);
    ck_assert_uint_eq(ti.consumers, 1);
    /* Live messages go on to the consumer. */
    for (uint64_t i = 11; i <= 15; i++)
        pub_text(p, "cq.y", "cq", i);
    for (uint64_t i = 11; i <= 15; i++) {
        rmq_msg *m = next_msg(s, MS, "consumer live");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    expect_none(s, 200, "consumer after acking everything");
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_redeliver_after_ack_wait)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_msg *m;
    uint64_t t0 = 0, dt;
    rmq_consumer_info ci;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "worker", NULL);
    add1(p, "rw", "rw.x", NULL);
    for (uint64_t i = 1; i <= 3; i++)
        pub_text(p, "rw.x", "rw", i);
    s = consume(c, "rw", "slow", 0, 300, 0);
    for (uint64_t i = 1; i <= 3; i++) {
        m = next_msg(s, MS, "first delivery");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        ck_assert_uint_eq(rmq_msg_deliveries(m), 1);
        if (i != 2)
            ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
        if (i == 1)
            t0 = test_now_ms();
    }
    m = next_msg(s, 3000, "redelivery after ack_wait 300 ms");
    dt = test_now_ms() - t0;
    IT_CHECK(rmq_msg_seq(m) == 2, "redelivered seq %" PRIu64 ", want 2 (the unacked one)",
             rmq_msg_seq(m));
    IT_CHECK(rmq_msg_deliveries(m) == 2, "redelivery has deliveries %u, want 2",
             rmq_msg_deliveries(m));
    ck_assert_msg(payload_is(m, "rw", 2), "redelivered payload");
    IT_CHECK(dt >= 250, "redelivered after %" PRIu64 " ms, ack_wait is 300", dt);
    fprintf(stderr, "ack_wait 300 ms: redelivered after %" PRIu64 " ms\n", dt);
    ck_assert_int_eq(rmq_ack(c, m), 0);
    rmq_msg_free(m);
    flush_ok(c);
    expect_none(s, 800, "after acking the redelivery");
    ck_assert_msg(consumer_get(p, "rw", "slow", &ci), "consumer listed");
    ck_assert_uint_eq(ci.ack_wait_ms, 300);
    ck_assert_uint_ge(ci.redelivered, 1);
    ck_assert_uint_eq(ci.ack_floor, 3);
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_nak_redelivers_now)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_msg *m;
    uint64_t t0, dt;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "worker", NULL);
    add1(p, "nk", "nk.x", NULL);
    pub_text(p, "nk.x", "nk", 1);
    s = consume(c, "nk", "n", 0, 30000, 0);
    m = next_msg(s, MS, "first delivery");
    ck_assert_uint_eq(rmq_msg_seq(m), 1);
    ck_assert_uint_eq(rmq_msg_deliveries(m), 1);
    t0 = test_now_ms();
    ck_assert_int_eq(rmq_nak(c, m), 0);
    rmq_msg_free(m);
    m = next_msg(s, 2000, "redelivery after NAK (ack_wait is 30 s)");
    dt = test_now_ms() - t0;
    ck_assert_uint_eq(rmq_msg_seq(m), 1);
    IT_CHECK(rmq_msg_deliveries(m) == 2, "deliveries after NAK %u, want 2", rmq_msg_deliveries(m));
    ck_assert_msg(payload_is(m, "nk", 1), "payload after NAK");
    IT_CHECK(dt < 1500, "NAK redelivery took %" PRIu64 " ms", dt);
    ck_assert_int_eq(rmq_nak(c, m), 0);
    rmq_msg_free(m);
    m = next_msg(s, 2000, "second NAK");
    IT_CHECK(rmq_msg_deliveries(m) == 3, "deliveries after 2 NAKs %u, want 3",
             rmq_msg_deliveries(m));
    ck_assert_int_eq(rmq_ack(c, m), 0);
    rmq_msg_free(m);
    flush_ok(c);
    expect_none(s, 300, "after the ack");
    wait_ack_floor(p, "nk", "n", 1);
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_max_inflight)
{
    enum { N = 20, MAXF = 5 };
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_msg *held[N];
    uint8_t got[N + 1];
    size_t nheld = 0, total = 0;
    rmq_consumer_info ci;
    uint64_t end;

    memset(got, 0, sizeof(got));
    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "worker", NULL);
    add1(p, "mf", "mf.x", NULL);
    for (uint64_t i = 1; i <= N; i++)
        pub_text(p, "mf.x", "mf", i);
    s = consume(c, "mf", "w", MAXF, 30000, 0);
    for (int i = 0; i < MAXF; i++) {
        held[nheld] = next_msg(s, MS, "within max_inflight");
        ck_assert_uint_eq(rmq_msg_seq(held[nheld]), (uint64_t)i + 1);
        nheld++;
    }
    expect_none(s, 500, "max_inflight 5 with 5 unacked");
    ck_assert_msg(consumer_get(p, "mf", "w", &ci), "listed");
    ck_assert_uint_eq(ci.inflight, MAXF);
    ck_assert_uint_eq(ci.max_inflight, MAXF);
    /* One ack: exactly one more. */
    ck_assert_int_eq(rmq_ack(c, held[0]), 0);
    rmq_msg_free(held[0]);
    memmove(held, held + 1, (nheld - 1) * sizeof(held[0]));
    nheld--;
    held[nheld] = next_msg(s, MS, "after one ack");
    ck_assert_uint_eq(rmq_msg_seq(held[nheld]), MAXF + 1);
    nheld++;
    expect_none(s, 300, "after one ack and one more delivery");
    total = MAXF + 1;
    for (size_t i = 0; i < nheld; i++)
        got[rmq_msg_seq(held[i])] = 1;
    got[1] = 1;
    /* Ack as they come: all of them, never more than 5 unacked. */
    end = test_now_ms() + 10000;
    while (total < N) {
        rmq_msg *m = NULL;
        int rc;
        IT_CHECK(test_now_ms() < end, "only %zu of %d delivered", total, N);
        ck_assert_int_eq(rmq_ack(c, held[0]), 0);
        rmq_msg_free(held[0]);
        memmove(held, held + 1, (nheld - 1) * sizeof(held[0]));
        nheld--;
        rc = rmq_sub_next(s, MS, &m);
        IT_CHECK(rc == 0, "next after ack: %s", rmq_strerror(rc));
        IT_CHECK(rmq_msg_seq(m) >= 1 && rmq_msg_seq(m) <= N && !got[rmq_msg_seq(m)],
                 "seq %" PRIu64 " delivered twice or out of range", rmq_msg_seq(m));
        got[rmq_msg_seq(m)] = 1;
        held[nheld++] = m;
        total++;
        IT_CHECK(nheld <= MAXF, "%zu unacked", nheld);
    }
    while (nheld) {
        ck_assert_int_eq(rmq_ack(c, held[nheld - 1]), 0);
        rmq_msg_free(held[--nheld]);
    }
    flush_ok(c);
    expect_none(s, 200, "all acked");
    wait_ack_floor(p, "mf", "w", N);
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_max_deliver)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_msg *m;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    c = it_client(b.addr, "worker", NULL);
    add1(p, "md", "md.x", NULL);
    pub_text(p, "md.x", "md", 1);
    pub_text(p, "md.x", "md", 2);
    s = consume(c, "md", "w", 0, 200, 2);
    m = next_msg(s, MS, "seq 1 first");
    ck_assert_uint_eq(rmq_msg_seq(m), 1);
    rmq_msg_free(m); /* never acked */
    m = next_msg(s, MS, "seq 2");
    ck_assert_uint_eq(rmq_msg_seq(m), 2);
    ck_assert_int_eq(rmq_ack(c, m), 0);
    rmq_msg_free(m);
    m = next_msg(s, 3000, "seq 1 again");
    ck_assert_uint_eq(rmq_msg_seq(m), 1);
    ck_assert_uint_eq(rmq_msg_deliveries(m), 2);
    rmq_msg_free(m);
    expect_none(s, 1000, "after max_deliver 2 attempts");
    /* The consumer goes on with new messages. */
    pub_text(p, "md.x", "md", 3);
    m = next_msg(s, MS, "after the dropped one");
    ck_assert_uint_eq(rmq_msg_seq(m), 3);
    ck_assert_int_eq(rmq_ack(c, m), 0);
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_survives_client_restart)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    uint64_t t0;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    add1(p, "cr", "cr.x", NULL);
    for (uint64_t i = 1; i <= 10; i++)
        pub_text(p, "cr.x", "cr", i);
    c = it_client(b.addr, "worker1", NULL);
    s = consume(c, "cr", "dur", 0, 30000, 0);
    for (uint64_t i = 1; i <= 10; i++) {
        rmq_msg *m = next_msg(s, MS, "first client");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        if (i <= 6)
            ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    flush_ok(c);
    wait_ack_floor(p, "cr", "dur", 6);
    it_close(c); /* 7..10 in flight, unacked */

    c = it_client(b.addr, "worker2", NULL);
    t0 = test_now_ms();
    s = consume(c, "cr", "dur", 0, 0, 0);
    for (uint64_t i = 7; i <= 10; i++) {
        rmq_msg *m = next_msg(s, 3000, "second client: the unacked ones (ack_wait is 30 s)");
        IT_CHECK(rmq_msg_seq(m) == i, "second client got seq %" PRIu64 ", want %" PRIu64,
                 rmq_msg_seq(m), i);
        ck_assert_msg(payload_is(m, "cr", i), "payload");
        ck_assert_uint_ge(rmq_msg_deliveries(m), 2);
        ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    fprintf(stderr, "client restart: unacked redelivered within %" PRIu64 " ms\n",
            test_now_ms() - t0);
    pub_text(p, "cr.x", "cr", 11);
    expect_msg(s, 11, "cr", 11, "second client: new message");
    expect_none(s, 200, "second client: nothing acked comes back");
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_survives_broker_restart)
{
    struct tbroker b;
    rmq_client *c, *p;
    rmq_sub *s;
    rmq_consumer_info ci;

    it_broker_start(&b, NULL);
    p = it_client(b.addr, "pub", NULL);
    add1(p, "br", "br.x", NULL);
    for (uint64_t i = 1; i <= 10; i++)
        pub_text(p, "br.x", "br", i);
    c = it_client(b.addr, "worker1", NULL);
    s = consume(c, "br", "dur", 7, 60000, 3);
    for (uint64_t i = 1; i <= 7; i++) {
        rmq_msg *m = next_msg(s, MS, "before restart");
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        if (i <= 5)
            ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    flush_ok(c);
    wait_ack_floor(p, "br", "dur", 5);
    it_close(c);
    it_close(p);

    stop_restart(&b, NULL);
    p = it_client(b.addr, "pub2", NULL);
    ck_assert_msg(consumer_get(p, "br", "dur", &ci), "consumer gone after restart");
    ck_assert_uint_eq(ci.ack_floor, 5);
    ck_assert_uint_eq(ci.max_inflight, 7);
    ck_assert_uint_eq(ci.ack_wait_ms, 60000);
    ck_assert_uint_eq(ci.max_deliver, 3);
    c = it_client(b.addr, "worker2", NULL);
    s = consume(c, "br", "dur", 0, 0, 0);
    for (uint64_t i = 6; i <= 10; i++) {
        rmq_msg *m = next_msg(s, MS, "after broker restart");
        IT_CHECK(rmq_msg_seq(m) == i, "after restart got seq %" PRIu64 ", want %" PRIu64,
                 rmq_msg_seq(m), i);
        ck_assert_msg(payload_is(m, "br", i), "payload");
        ck_assert_int_eq(rmq_ack(c, m), 0);
        rmq_msg_free(m);
    }
    expect_none(s, 300, "after restart: acked ones must not come back");
    flush_ok(c);
    wait_ack_floor(p, "br", "dur", 10);
    rmq_unsubscribe(s);
    it_close(c);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_work_queue)
{
    enum { N = 400 };
    struct tbroker b;
    rmq_client *p, *w[2];
    rmq_sub *s[2];
    struct it_coll col[2];
    rmq_consumer_opts o;
    uint8_t *cnt = calloc(N + 1, 1);
    uint64_t total;
    size_t both = 0;

    ck_assert_ptr_nonnull(cnt);
    it_broker_start(&b, IT_ARGS("--shards", "2"));
    p = it_client(b.addr, "pub", NULL);
    add1(p, "wq", "wq.>", NULL);
    memset(&o, 0, sizeof(o));
    o.max_inflight = 8;
    o.ack_wait_ms = 30000;
    for (int i = 0; i < 2; i++) {
        char name[16];
        int rc;
        snprintf(name, sizeof(name), "w%d", i);
        w[i] = it_client(b.addr, name, NULL);
        it_coll_init(&col[i], N + 16);
        col[i].ack = true;
        rc = rmq_consume(w[i], "wq", "jobs", &o, it_coll_cb, &col[i], &s[i]);
        IT_CHECK(rc == 0, "rmq_consume %d: %s", i, rmq_strerror(rc));
        flush_ok(w[i]);
    }
    for (uint64_t i = 1; i <= N; i++) {
        char buf[32];
        size_t len = fmt_payload(buf, sizeof(buf), "wq", i);
        ck_assert_int_eq(rmq_publish(p, "wq.job", buf, len), 0);
    }
    flush_ok(p);
    {
        uint64_t end = test_now_ms() + 15000;
        while (atomic_load(&col[0].count) + atomic_load(&col[1].count) < N && test_now_ms() < end)
            usleep(2000);
    }
    usleep(200 * 1000);
    total = atomic_load(&col[0].count) + atomic_load(&col[1].count);
    ck_assert_int_eq(atomic_load(&col[0].ack_err), 0);
    ck_assert_int_eq(atomic_load(&col[1].ack_err), 0);
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&col[i].mu);
        for (size_t k = 0; k < col[i].n; k++) {
            uint64_t seq = col[i].m[k].seq;
            IT_CHECK(seq >= 1 && seq <= N, "worker %d: seq %" PRIu64, i, seq);
            IT_CHECK(col[i].m[k].deliveries == 1,
                     "worker %d: seq %" PRIu64 " redelivered (deliveries %u) though acked", i, seq,
                     col[i].m[k].deliveries);
            if (cnt[seq] & (1 << i))
                IT_CHECK(0, "worker %d got seq %" PRIu64 " twice", i, seq);
            cnt[seq] |= (uint8_t)(1 << i);
        }
        pthread_mutex_unlock(&col[i].mu);
    }
    for (uint64_t k = 1; k <= N; k++) {
        IT_CHECK(cnt[k], "seq %" PRIu64 " delivered to no worker (total %" PRIu64 ")", k, total);
        both += cnt[k] == 3;
    }
    IT_CHECK(both == 0, "%zu messages went to both workers", both);
    IT_CHECK(total == N, "%" PRIu64 " deliveries for %d messages", total, N);
    fprintf(stderr, "work queue: worker 0 got %" PRIu64 ", worker 1 got %" PRIu64 "\n",
            (uint64_t)atomic_load(&col[0].count), (uint64_t)atomic_load(&col[1].count));
    IT_CHECK(atomic_load(&col[0].count) > 0 && atomic_load(&col[1].count) > 0,
             "one worker got everything: %" PRIu64 " / %" PRIu64,
             (uint64_t)atomic_load(&col[0].count), (uint64_t)atomic_load(&col[1].count));
    for (int i = 0; i < 2; i++)
        flush_ok(w[i]);
    wait_ack_floor(p, "wq", "jobs", N);
    for (int i = 0; i < 2; i++) {
        rmq_unsubscribe(s[i]);
        it_close(w[i]);
        it_coll_free(&col[i]);
    }
    free(cnt);
    it_close(p);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_consumer_list_and_rm)
{
    struct tbroker b;
    rmq_client *c;
    rmq_sub *s1, *s2;
    rmq_consumer_info *v = NULL;
    rmq_topic_info ti;
    size_t n = 0;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "adm", NULL);
    add1(c, "cl", "cl.x", NULL);
    s1 = consume(c, "cl", "one", 11, 1234, 4);
    s2 = consume(c, "cl", "two", 0, 0, 0);
    flush_ok(c);
    rc = rmq_consumer_list(c, "cl", IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0, "consumer_list: %s", rmq_strerror(rc));
    IT_CHECK(n == 2, "%zu consumers, want 2", n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(v[i].topic, "cl");
        ck_assert_uint_eq(v[i].members, 1);
        if (strcmp(v[i].name, "one") == 0) {
            ck_assert_uint_eq(v[i].max_inflight, 11);
            ck_assert_uint_eq(v[i].ack_wait_ms, 1234);
            ck_assert_uint_eq(v[i].max_deliver, 4);
        } else {
            ck_assert_str_eq(v[i].name, "two");
        }
    }
    free(v);
    v = NULL;
    it_topic_info(c, "cl", &ti);
    ck_assert_uint_eq(ti.consumers, 2);
    rmq_unsubscribe(s1);
    rc = rmq_consumer_rm(c, "cl", "one", IT_ADMIN_MS);
    IT_CHECK(rc == 0, "consumer_rm: %s", rmq_strerror(rc));
    rc = rmq_consumer_rm(c, "cl", "one", IT_ADMIN_MS);
    ck_assert_msg(rc == RMQ_ENOTFOUND, "second consumer_rm: %s", rmq_strerror(rc));
    rc = rmq_consumer_list(c, "cl", IT_ADMIN_MS, &v, &n);
    IT_CHECK(rc == 0 && n == 1, "consumer_list after rm: %s, %zu", rmq_strerror(rc), n);
    ck_assert_str_eq(v[0].name, "two");
    free(v);
    it_topic_info(c, "cl", &ti);
    ck_assert_uint_eq(ti.consumers, 1);
    /* Bad durable names are refused. */
    {
        rmq_sub *bad = NULL;
        rc = rmq_consume(c, "cl", "bad name", NULL, NULL, NULL, &bad);
        ck_assert_msg(rc == -EINVAL, "durable 'bad name': %s", rmq_strerror(rc));
    }
    rmq_unsubscribe(s2);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= retention ================= */

START_TEST(test_durable_retention_max_msgs)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_cfg lim;
    rmq_topic_info ti;
    rmq_sub *s;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "ret", NULL);
    memset(&lim, 0, sizeof(lim));
    lim.max_msgs = 10;
    it_topic_add(c, "mm", IT_ARGS("mm.x"), &lim, NULL);
    for (uint64_t i = 1; i <= 25; i++)
        ck_assert_uint_eq(pub_text(c, "mm.x", "mm", i), i);
    IT_CHECK(it_topic_wait_msgs(c, "mm", 10, 3000, &ti) == 0, "max_msgs 10: %" PRIu64 " stored",
             ti.msgs);
    ck_assert_uint_eq(ti.first_seq, 16);
    ck_assert_uint_eq(ti.last_seq, 25);
    s = sub_topic(c, "mm", ">", RMQ_START_ALL, 0, 0);
    for (uint64_t i = 16; i <= 25; i++)
        expect_msg(s, i, "mm", i, "replay after max_msgs");
    expect_none(s, 100, "replay after max_msgs");
    rmq_unsubscribe(s);
    /* START_SEQ of a dropped seq: from the oldest stored after it. */
    s = sub_topic(c, "mm", ">", RMQ_START_SEQ, 3, 0);
    expect_msg(s, 16, "mm", 16, "START_SEQ 3 with first_seq 16");
    rmq_unsubscribe(s);
    ck_assert_uint_eq(pub_text(c, "mm.x", "mm", 26), 26);
    IT_CHECK(it_topic_wait_msgs(c, "mm", 10, 3000, &ti) == 0, "%" PRIu64 " stored", ti.msgs);
    ck_assert_uint_eq(ti.first_seq, 17);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_retention_max_bytes)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_cfg lim;
    rmq_topic_info ti;
    uint8_t buf[100];
    uint64_t end;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "ret", NULL);
    memset(&lim, 0, sizeof(lim));
    lim.max_bytes = 1000;
    it_topic_add(c, "mb", IT_ARGS("mb.x"), &lim, NULL);
    for (uint64_t i = 1; i <= 30; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_uint_eq(it_pub_ack(c, "mb.x", buf, sizeof(buf), NULL), i);
    }
    end = test_now_ms() + 3000;
    for (;;) {
        it_topic_info(c, "mb", &ti);
        if (ti.bytes <= 1000 || test_now_ms() >= end)
            break;
        usleep(10000);
    }
    IT_CHECK(ti.bytes <= 1000, "max_bytes 1000: %" PRIu64 " bytes stored (%" PRIu64 " msgs)",
             ti.bytes, ti.msgs);
    /* The newest are kept, contiguous up to the last. */
    ck_assert_uint_eq(ti.last_seq, 30);
    IT_CHECK(ti.msgs >= 1 && ti.first_seq == 31 - ti.msgs,
             "max_bytes: msgs %" PRIu64 " first_seq %" PRIu64 " (want the newest, up to 30)",
             ti.msgs, ti.first_seq);
    {
        struct it_coll col;
        uint64_t first = ti.first_seq;
        int rc;
        it_coll_init(&col, 40);
        rc = it_topic_replay(c, "mb", ti.msgs, MS, 100, &col);
        IT_CHECK(rc == 0 && col.n == ti.msgs, "replay: %s, %zu", rmq_strerror(rc), col.n);
        for (size_t i = 0; i < col.n; i++)
            IT_CHECK(col.m[i].seq == first + i &&
                         it_payload_seq(col.m[i].data, col.m[i].len) == (int64_t)(first + i),
                     "replay[%zu] seq %" PRIu64, i, col.m[i].seq);
        it_coll_free(&col);
    }
    /* Stored bytes: as many 100-byte payloads on mb.x as fit in 1000. */
    {
        uint64_t one = it_stored_size("mb.x", 100);
        IT_CHECK(ti.msgs == 1000 / one && ti.bytes == (1000 / one) * one,
                 "max_bytes 1000 with 100-byte payloads (%" PRIu64 " stored bytes each): %" PRIu64
                 " msgs, %" PRIu64 " bytes",
                 one, ti.msgs, ti.bytes);
    }
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_retention_max_age)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_cfg lim;
    rmq_topic_info ti;
    uint64_t t0, dt;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "ret", NULL);
    memset(&lim, 0, sizeof(lim));
    lim.max_age_ms = 1000;
    it_topic_add(c, "ma", IT_ARGS("ma.x"), &lim, NULL);
    t0 = test_now_ms();
    for (uint64_t i = 1; i <= 5; i++)
        ck_assert_uint_eq(pub_text(c, "ma.x", "ma", i), i);
    it_topic_info(c, "ma", &ti);
    if (test_now_ms() - t0 < 800)
        IT_CHECK(ti.msgs == 5, "%" PRIu64 " msgs right after publishing (max_age 1 s)", ti.msgs);
    IT_CHECK(it_topic_wait_msgs(c, "ma", 0, 6000, &ti) == 0,
             "max_age 1 s: %" PRIu64 " msgs still stored after %" PRIu64 " ms", ti.msgs,
             test_now_ms() - t0);
    dt = test_now_ms() - t0;
    fprintf(stderr, "max_age 1000 ms: topic empty after %" PRIu64 " ms\n", dt);
    IT_CHECK(dt >= 900, "max_age 1 s: messages gone after %" PRIu64 " ms", dt);
    ck_assert_uint_eq(ti.last_seq, 5);
    ck_assert_uint_eq(ti.first_seq, 6);
    ck_assert_uint_eq(ti.bytes, 0);
    /* Seqs go on. */
    ck_assert_uint_eq(pub_text(c, "ma.x", "ma", 6), 6);
    it_topic_info(c, "ma", &ti);
    ck_assert_uint_eq(ti.msgs, 1);
    ck_assert_uint_eq(ti.first_seq, 6);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ================= badinput ================= */

START_TEST(test_durable_bad_publish_too_big)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    struct it_raw_seen seen;
    static uint8_t big[4096];
    int rc, fd;

    it_broker_start(&b, IT_ARGS("--max-payload", "1024"));
    c = it_client(b.addr, "pub", NULL);
    add1(c, "bg", "bg.>", NULL);
    rc = rmq_publish_ack(c, "bg.x", big, 2000, NULL, MS, NULL);
    ck_assert_msg(rc == -EMSGSIZE, "publish_ack of 2000 bytes (max 1024): %s", rmq_strerror(rc));
    /* Raw, past the client's check, with and without a reply subject. */
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_pub(fd, "bg.x", NULL, big, 2000), 0);
    ck_assert_int_eq(it_raw_pub(fd, "bg.y", "_INBOX.raw.1", big, 1500), 0);
    ck_assert_int_eq(it_raw_sync(fd, 9, MS, &seen), 0);
    IT_CHECK(seen.errs >= 1, "no ERROR for an oversize publish to a topic");
    ck_assert_int_eq(seen.err_code[0], RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG);
    ck_assert_int_eq(seen.err_fatal[0], 0);
    ck_assert_int_eq(it_raw_pub(fd, "bg.x", NULL, big, 1024), 0); /* exactly max: stored */
    ck_assert_int_eq(it_raw_sync(fd, 10, MS, &seen), 0);
    ck_assert_int_eq(seen.errs, 0);
    close(fd);
    IT_CHECK(it_topic_wait_msgs(c, "bg", 1, MS, &ti) == 0, "%" PRIu64 " stored, want 1", ti.msgs);
    ck_assert_uint_eq(ti.last_seq, 1);
    ck_assert_uint_eq(pub_text(c, "bg.z", "ok", 1), 2);
    IT_CHECK(ti.bytes == it_stored_size("bg.x", 1024),
             "topic info bytes %" PRIu64 " for one 1024-byte payload", ti.bytes);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_bad_topic_sub_unknown)
{
    struct tbroker b;
    struct it_rec rec;
    rmq_client *c, *c2;
    rmq_sub *s = NULL, *s2 = NULL, *s3 = NULL;
    rmq_msg *m = NULL;
    rmq_replay_opts o;
    struct it_coll col;
    uint64_t end;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "sub", NULL);
    memset(&o, 0, sizeof(o));
    o.start = RMQ_START_ALL;
    rc = rmq_subscribe_topic(c, "nope", ">", &o, NULL, NULL, &s);
    IT_CHECK(rc == 0, "subscribe_topic (sent async): %s", rmq_strerror(rc));
    rc = rmq_sub_next(s, MS, &m);
    IT_CHECK(rc == RMQ_ENOTFOUND, "sub_next of a subscription to an unknown topic: %s",
             rmq_strerror(rc));
    rmq_unsubscribe(s);
    /* Callback subscription: the error callback is told. */
    it_rec_init(&rec);
    {
        rmq_opts *op = it_opts(b.addr, "cbsub", &rec, 0);
        rc = rmq_connect(op, &c2);
        rmq_opts_free(op);
        IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    }
    it_coll_init(&col, 4);
    rc = rmq_subscribe_topic(c2, "nope2", ">", &o, it_coll_cb, &col, &s2);
    IT_CHECK(rc == 0, "subscribe_topic cb: %s", rmq_strerror(rc));
    end = test_now_ms() + MS;
    while (it_rec_errs(&rec, RMQ_ENOTFOUND) < 1 && test_now_ms() < end)
        usleep(1000);
    IT_CHECK(it_rec_errs(&rec, RMQ_ENOTFOUND) == 1,
             "error callback: %d RMQ_ENOTFOUND (last text '%s')", it_rec_errs(&rec, RMQ_ENOTFOUND),
             rec.last_text);
    /* Consumer of an unknown topic. */
    rc = rmq_consume(c, "nope", "d", NULL, NULL, NULL, &s3);
    IT_CHECK(rc == 0, "consume (sent async): %s", rmq_strerror(rc));
    rc = rmq_sub_next(s3, MS, &m);
    IT_CHECK(rc == RMQ_ENOTFOUND, "consumer of an unknown topic: %s", rmq_strerror(rc));
    rmq_unsubscribe(s3);
    /* The connection is fine afterwards. */
    add1(c, "yes", "yes.x", NULL);
    s = sub_topic(c, "yes", ">", RMQ_START_ALL, 0, 0);
    ck_assert_uint_eq(pub_text(c, "yes.x", "y", 1), 1);
    expect_msg(s, 1, "y", 1, "after the errors");
    rmq_unsubscribe(s);
    rmq_unsubscribe(s2);
    ck_assert_uint_eq(atomic_load(&col.count), 0);
    it_coll_free(&col);
    it_close(c2);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_bad_topic_rm_ends_subscriptions)
{
    struct tbroker b;
    rmq_client *c, *adm;
    rmq_sub *s;
    rmq_msg *m = NULL;
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "sub", NULL);
    adm = it_client(b.addr, "adm", NULL);
    add1(adm, "gone", "gone.x", NULL);
    pub_text(adm, "gone.x", "g", 1);
    s = sub_topic(c, "gone", ">", RMQ_START_ALL, 0, 0);
    expect_msg(s, 1, "g", 1, "before rm");
    ck_assert_int_eq(rmq_topic_rm(adm, "gone", IT_ADMIN_MS), 0);
    rc = rmq_sub_next(s, MS, &m);
    IT_CHECK(rc == RMQ_ENOTFOUND, "subscription of a removed topic: %s (want RMQ_ENOTFOUND)",
             rmq_strerror(rc));
    rmq_unsubscribe(s);
    it_close(adm);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_bad_client_vanishes_mid_frame)
{
    enum { N = 50 };
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    struct it_coll col;
    uint8_t frame[600];
    int rc;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    add1(c, "vm", "vm.x", NULL);
    for (uint64_t i = 1; i <= N; i++)
        pub_text(c, "vm.x", "vm", i);
    for (int round = 0; round < 10; round++) {
        int fd = it_raw_open(b.port);
        size_t cut;
        /* A whole publish (stored), then part of another, then gone. */
        uint8_t body[512];
        size_t slen = strlen("vm.x");
        size_t n = codec_pub_size("vm.x", slen, NULL, 0, NULL, 0, sizeof(body));
        ck_assert_uint_le(n, sizeof(frame));
        it_payload_fill(body, sizeof(body), 1000 + (uint64_t)round);
        codec_pub_write(frame, "vm.x", slen, NULL, 0, NULL, 0, body, sizeof(body));
        ck_assert_int_eq(raw_send(fd, frame, n), 0);
        cut = 1 + (size_t)round * (n - 2) / 9; /* from 1 byte to all but one */
        it_payload_fill(body, sizeof(body), 2000 + (uint64_t)round);
        codec_pub_write(frame, "vm.x", slen, NULL, 0, NULL, 0, body, sizeof(body));
        ck_assert_int_eq(raw_send(fd, frame, cut), 0);
        close(fd);
    }
    /* A client that goes before its ack comes: stored all the same. */
    {
        int fd = it_raw_open(b.port);
        uint8_t body[64];
        it_payload_fill(body, sizeof(body), 3000);
        ck_assert_int_eq(it_raw_pub(fd, "vm.x", "_INBOX.gone.1", body, sizeof(body)), 0);
        close(fd);
    }
    IT_CHECK(it_topic_wait_msgs(c, "vm", N + 11, MS, &ti) == 0,
             "%" PRIu64 " stored, want %d (50 + the 10 whole frames + 1)", ti.msgs, N + 11);
    usleep(100 * 1000);
    it_topic_info(c, "vm", &ti);
    ck_assert_uint_eq(ti.msgs, N + 11);
    ck_assert_uint_eq(pub_text(c, "vm.x", "vm", 999), N + 12);
    it_coll_init(&col, N + 20);
    rc = it_topic_replay(c, "vm", N + 12, MS, 100, &col);
    IT_CHECK(rc == 0 && col.n == N + 12, "replay: %s, %zu", rmq_strerror(rc), col.n);
    for (size_t i = 0; i < col.n; i++) {
        IT_CHECK(col.m[i].seq == i + 1, "replay[%zu] seq %" PRIu64, i, col.m[i].seq);
        if (i < N) {
            char want[32];
            fmt_payload(want, sizeof(want), "vm", i + 1);
            IT_CHECK(strcmp((char *)col.m[i].data, want) == 0, "seq %zu: '%s'", i + 1,
                     (char *)col.m[i].data);
        } else if (i < N + 11) {
            int64_t ps = it_payload_seq(col.m[i].data, col.m[i].len);
            IT_CHECK((ps >= 1000 && ps < 1010) || ps == 3000,
                     "seq %zu: payload %" PRId64 " (a partial frame?)", i + 1, ps);
        }
    }
    it_coll_free(&col);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_durable_bad_storage_off)
{
    struct tbroker b;
    rmq_client *c;
    rmq_sub *s;
    rmq_msg *m;
    rmq_topic_cfg cfg;
    rmq_topic_info ti;
    int rc;

    it_broker_start(&b, IT_ARGS("--storage", "off"));
    c = it_client(b.addr, "nostore", NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.name = "t";
    cfg.subjects = IT_ARGS("t.x");
    cfg.nsubjects = 1;
    rc = rmq_topic_add(c, &cfg, IT_ADMIN_MS, NULL);
    ck_assert_msg(rc == RMQ_EUNAVAIL, "topic_add with --storage off: %s (want RMQ_EUNAVAIL)",
                  rmq_strerror(rc));
    rc = rmq_topic_info_get(c, "t", IT_ADMIN_MS, &ti);
    ck_assert_msg(rc == RMQ_EUNAVAIL || rc == RMQ_ENOTFOUND, "topic_info with --storage off: %s",
                  rmq_strerror(rc));
    /* Core pub/sub still works. */
    ck_assert_int_eq(rmq_subscribe_sync(c, "t.x", NULL, &s), 0);
    flush_ok(c);
    ck_assert_int_eq(rmq_publish(c, "t.x", "hi", 2), 0);
    m = next_msg(s, MS, "core pub/sub with storage off");
    ck_assert_uint_eq(rmq_msg_seq(m), 0);
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* Raw SUBSCRIBE with a topic and a queue: refused with the sid. */
START_TEST(test_durable_bad_topic_sub_with_queue)
{
    struct tbroker b;
    rmq_client *c;
    struct it_raw_seen seen;
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
    int fd;

    it_broker_start(&b, NULL);
    c = it_client(b.addr, "adm", NULL);
    add1(c, "q", "q.x", NULL);
    fd = it_raw_open(b.port);
    sub.sid = 42;
    sub.pattern = ">";
    sub.queue = "grp";
    sub.topic = "q";
    sub.has_start = 1;
    sub.start = RINGMQ__START_POLICY__START_ALL;
    f.kind_case = RINGMQ__FRAME__KIND_SUB;
    f.sub = &sub;
    ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
    ck_assert_int_eq(it_raw_sync(fd, 1, MS, &seen), 0);
    IT_CHECK(seen.errs == 1 && seen.err_sid[0] == 42 && !seen.err_fatal[0],
             "topic subscription with a queue: %d errors (sid %" PRIu64 ")", seen.errs,
             seen.errs ? seen.err_sid[0] : 0);
    /* Unknown topic on the raw wire: NO_TOPIC with the sid. */
    sub.sid = 43;
    sub.queue = NULL;
    sub.topic = "nope";
    ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
    ck_assert_int_eq(it_raw_sync(fd, 2, MS, &seen), 0);
    IT_CHECK(seen.errs == 1 && seen.err_code[0] == RINGMQ__ERROR_CODE__ERR_NO_TOPIC &&
                 seen.err_sid[0] == 43,
             "unknown topic: %d errors, code %d", seen.errs, seen.errs ? seen.err_code[0] : -1);
    /* The sids were not taken: a valid subscription with sid 42 works. */
    sub.sid = 42;
    sub.topic = "q";
    ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
    ck_assert_int_eq(it_raw_sync(fd, 3, MS, &seen), 0);
    ck_assert_int_eq(seen.errs, 0);
    close(fd);
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* A full store (--store-max): publishes get STORE_FULL, the broker goes on,
 * nothing acked is lost, and removing a topic makes room again. */
START_TEST(test_durable_bad_store_full)
{
    struct tbroker b;
    rmq_client *c;
    rmq_topic_info ti;
    struct it_coll col;
    uint8_t buf[2000];
    uint64_t acked = 0;
    int rc = 0;

    it_broker_start(&b, IT_ARGS("--store-map-size", "1M", "--store-max", "1M"));
    c = it_client(b.addr, "full", NULL);
    add1(c, "fill", "fill.>", NULL);
    /* Bounded: 1 MiB holds fewer than 600 messages of 2000 bytes. */
    for (uint64_t i = 1; i <= 2000; i++) {
        rmq_pub_ack ack;
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish_ack(c, "fill.x", buf, sizeof(buf), NULL, MS, &ack);
        if (rc)
            break;
        ck_assert_uint_eq(ack.seq, i);
        acked = i;
    }
    IT_CHECK(rc == RMQ_ESTOREFULL, "after %" PRIu64 " acks: %s (want RMQ_ESTOREFULL)", acked,
             rmq_strerror(rc));
    ck_assert_uint_gt(acked, 100);
    /* Again: still a clear error, and core pub/sub is not affected. */
    it_payload_fill(buf, sizeof(buf), acked + 1);
    ck_assert_int_eq(rmq_publish_ack(c, "fill.x", buf, sizeof(buf), NULL, MS, NULL),
                     RMQ_ESTOREFULL);
    {
        rmq_sub *s;
        rmq_msg *m;
        ck_assert_int_eq(rmq_subscribe_sync(c, "plain.x", NULL, &s), 0);
        flush_ok(c);
        ck_assert_int_eq(rmq_publish(c, "plain.x", "p", 1), 0);
        ck_assert_int_eq(rmq_sub_next(s, MS, &m), 0);
        rmq_msg_free(m);
        rmq_unsubscribe(s);
    }
    /* Every acked message is there, in order. */
    it_topic_info(c, "fill", &ti);
    ck_assert_uint_eq(ti.msgs, acked);
    ck_assert_uint_eq(ti.last_seq, acked);
    it_coll_init(&col, acked + 10);
    rc = it_topic_replay(c, "fill", acked, MS, 100, &col);
    IT_CHECK(rc == 0 && col.n == acked, "replay: %s, %zu of %" PRIu64, rmq_strerror(rc), col.n,
             acked);
    for (size_t i = 0; i < col.n; i++)
        IT_CHECK(col.m[i].seq == i + 1 &&
                     it_payload_seq(col.m[i].data, col.m[i].len) == (int64_t)(i + 1),
                 "replay[%zu] seq %" PRIu64, i, col.m[i].seq);
    it_coll_free(&col);
    /* Removing the topic frees the space (in the background if need be). */
    ck_assert_int_eq(rmq_topic_rm(c, "fill", MS), 0);
    {
        const char *subj[] = {"again.>"};
        rmq_topic_cfg cfg = {.name = "again", .subjects = subj, .nsubjects = 1};
        uint64_t t0 = test_now_ms(), end = t0 + 5000;
        do {
            rc = rmq_topic_add(c, &cfg, MS, NULL);
            if (rc == 0)
                rc = rmq_publish_ack(c, "again.x", "ok", 2, NULL, MS, NULL);
            if (rc == RMQ_ESTOREFULL)
                usleep(100 * 1000);
        } while (rc == RMQ_ESTOREFULL && test_now_ms() < end);
        fprintf(stderr, "store full: %" PRIu64 " acked; room again %" PRIu64 " ms after topic rm\n",
                acked, test_now_ms() - t0);
    }
    IT_CHECK(rc == 0, "topic add + publish after topic rm: %s", rmq_strerror(rc));
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

static Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *tc;

    tc = tcase_create("admin");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_topic_add_and_info);
    tcase_add_test(tc, test_durable_topic_add_exists);
    tcase_add_test(tc, test_durable_topic_add_invalid);
    tcase_add_test(tc, test_durable_topic_unknown_notfound);
    tcase_add_test(tc, test_durable_topic_list_and_rm);
    tcase_add_test(tc, test_durable_topic_survives_restart);
    tcase_add_test(tc, test_durable_topic_add_routes_every_shard);
    suite_add_tcase(s, tc);

    tc = tcase_create("publish");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_durable_publish_ack_seqs_contiguous);
    tcase_add_test(tc, test_durable_publish_dedup_msg_id);
    tcase_add_test(tc, test_durable_publish_dedup_window_expires);
    tcase_add_test(tc, test_durable_publish_dedup_survives_restart);
    tcase_add_test(tc, test_durable_publish_without_ack_is_stored);
    tcase_add_test(tc, test_durable_publish_ack_async_window);
    tcase_add_test(tc, test_durable_publish_ack_no_topic);
    suite_add_tcase(s, tc);

    tc = tcase_create("live");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_live_subscriber_gets_seq);
    suite_add_tcase(s, tc);

    tc = tcase_create("replay");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_replay_all);
    tcase_add_test(tc, test_durable_replay_all_pattern_filter);
    tcase_add_test(tc, test_durable_replay_seq_middle);
    tcase_add_test(tc, test_durable_replay_time);
    tcase_add_test(tc, test_durable_replay_last);
    tcase_add_test(tc, test_durable_replay_new);
    tcase_add_test(tc, test_durable_replay_large);
    tcase_add_test(tc, test_durable_replay_resumes_after_reconnect);
    tcase_add_test(tc, test_durable_replay_sync_slow_reader_never_drops);
    tcase_add_test(tc, test_durable_replay_sync_unsubscribe_while_full);
    suite_add_tcase(s, tc);

    tc = tcase_create("switch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_durable_replay_live_switch_concurrent);
    tcase_add_test(tc, test_durable_replay_live_switch_many_publishers);
    suite_add_tcase(s, tc);

    tc = tcase_create("consumer");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_consumer_receive_and_ack);
    tcase_add_test(tc, test_durable_consumer_redeliver_after_ack_wait);
    tcase_add_test(tc, test_durable_consumer_nak_redelivers_now);
    tcase_add_test(tc, test_durable_consumer_max_inflight);
    tcase_add_test(tc, test_durable_consumer_max_deliver);
    tcase_add_test(tc, test_durable_consumer_survives_client_restart);
    tcase_add_test(tc, test_durable_consumer_survives_broker_restart);
    tcase_add_test(tc, test_durable_consumer_work_queue);
    tcase_add_test(tc, test_durable_consumer_list_and_rm);
    suite_add_tcase(s, tc);

    tc = tcase_create("retention");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_retention_max_msgs);
    tcase_add_test(tc, test_durable_retention_max_bytes);
    tcase_add_test(tc, test_durable_retention_max_age);
    suite_add_tcase(s, tc);

    tc = tcase_create("badinput");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_durable_bad_publish_too_big);
    tcase_add_test(tc, test_durable_bad_topic_sub_unknown);
    tcase_add_test(tc, test_durable_bad_topic_rm_ends_subscriptions);
    tcase_add_test(tc, test_durable_bad_client_vanishes_mid_frame);
    tcase_add_test(tc, test_durable_bad_storage_off);
    tcase_add_test(tc, test_durable_bad_topic_sub_with_queue);
    tcase_add_test(tc, test_durable_bad_store_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_durable", durable_suite);
}
