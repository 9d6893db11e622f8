/*
 * check_pubsub.c - publish/subscribe through the real broker with libringmq.
 *
 * Each test starts its own ringmqd on 127.0.0.1 (ephemeral port) and talks
 * to it with one or more libringmq clients; where the client library could
 * hide a broker mistake (it filters unknown subscription ids), the broker
 * side is checked again over a raw socket.
 *
 * "Nothing else arrived" is checked with a sentinel: after the messages
 * under test the publisher sends one more message on a sentinel subject
 * to the same subscriber connection. The broker keeps per-connection order
 * and the client runs callbacks in order, so once the sentinel is out of
 * its queue every earlier message has been delivered (or never will be).
 *
 * TCases:
 *     core    payload/subject, headers and reply, wildcards, request/reply,
 *             unsubscribe and auto-unsubscribe
 *     queue   queue groups (3 members + 1 plain subscriber, 3000 messages;
 *             then with the members placed on chosen shards)
 *     limits  100,000-message ordering, 1 MiB payloads and max+1,
 *             1,000 subscriptions on one connection, 500 connections
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

/* ---- Helpers ---- */

struct sentinel {
    rmq_sub *s;
    char subj[64];
    uint64_t n;
};

/* Subscribe sub to a sentinel subject. Flush sub before publishing. */
static void sentinel_init(struct sentinel *st, rmq_client *sub, const char *name)
{
    int rc;
    snprintf(st->subj, sizeof(st->subj), "sentinel.%s", name);
    st->n = 0;
    rc = rmq_subscribe_sync(sub, st->subj, NULL, &st->s);
    IT_CHECK(rc == 0, "sentinel subscribe: %s", rmq_strerror(rc));
}

/* Publish the sentinel from pub and wait until it is out of the queue. */
static void sentinel_pass(struct sentinel *st, rmq_client *pub)
{
    uint8_t buf[16];
    rmq_msg *m = NULL;
    int rc;
    it_payload_fill(buf, sizeof(buf), st->n);
    rc = rmq_publish(pub, st->subj, buf, sizeof(buf));
    IT_CHECK(rc == 0, "sentinel publish: %s", rmq_strerror(rc));
    rc = rmq_sub_next(st->s, 5000, &m);
    IT_CHECK(rc == 0, "sentinel %" PRIu64 " did not arrive: %s", st->n, rmq_strerror(rc));
    IT_CHECK(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)) == (int64_t)st->n,
             "sentinel out of order");
    rmq_msg_free(m);
    st->n++;
}

static void flush_ok(rmq_client *c)
{
    int rc = rmq_flush(c, 30000); /* generous: sanitizer builds run tests in parallel */
    IT_CHECK(rc == 0, "rmq_flush: %s", rmq_strerror(rc));
}

/* A callback subscription that counts and remembers the last subject. */
struct counter {
    _Atomic uint64_t n;
    _Atomic int64_t last_seq;
    pthread_mutex_t mu;
    char subjects[16][64];
};

static void counter_init(struct counter *k)
{
    memset(k, 0, sizeof(*k));
    pthread_mutex_init(&k->mu, NULL);
    atomic_store(&k->last_seq, -1);
}

static void counter_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct counter *k = arg;
    uint64_t i;
    (void)c;
    (void)sub;
    pthread_mutex_lock(&k->mu);
    i = atomic_load(&k->n);
    if (i < 16)
        snprintf(k->subjects[i], sizeof(k->subjects[i]), "%s", rmq_msg_subject(m));
    atomic_store(&k->last_seq, it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)));
    atomic_store(&k->n, i + 1);
    pthread_mutex_unlock(&k->mu);
}

static bool counter_saw(struct counter *k, const char *subj)
{
    bool r = false;
    pthread_mutex_lock(&k->mu);
    for (uint64_t i = 0; i < atomic_load(&k->n) && i < 16; i++)
        r = r || strcmp(k->subjects[i], subj) == 0;
    pthread_mutex_unlock(&k->mu);
    return r;
}

static void pub_seq(rmq_client *c, const char *subj, uint64_t seq, size_t len)
{
    uint8_t buf[256];
    int rc;
    ck_assert_uint_le(len, sizeof(buf));
    it_payload_fill(buf, len, seq);
    rc = rmq_publish(c, subj, buf, len);
    IT_CHECK(rc == 0, "publish %s #%" PRIu64 ": %s", subj, seq, rmq_strerror(rc));
}

/* ---- core ---- */

START_TEST(test_pubsub_basic_payload_and_subject_intact)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL;
    rmq_msg *m = NULL;
    uint8_t payload[300];
    int rc;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(sub, "basic.subject", NULL, &s), 0);
    flush_ok(sub);

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 37); /* includes NUL bytes */
    ck_assert_int_eq(rmq_publish(pub, "basic.other", "no", 2), 0);
    ck_assert_int_eq(rmq_publish(pub, "basic.subject", payload, sizeof(payload)), 0);
    ck_assert_int_eq(rmq_publish(pub, "basic.subject", NULL, 0), 0);
    flush_ok(pub);

    rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "first message: %s", rmq_strerror(rc));
    ck_assert_str_eq(rmq_msg_subject(m), "basic.subject");
    ck_assert_ptr_null(rmq_msg_reply(m));
    ck_assert_uint_eq(rmq_msg_len(m), sizeof(payload));
    ck_assert_mem_eq(rmq_msg_data(m), payload, sizeof(payload));
    ck_assert_uint_eq(rmq_msg_header_count(m), 0);
    rmq_msg_free(m);

    rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "empty message: %s", rmq_strerror(rc));
    ck_assert_str_eq(rmq_msg_subject(m), "basic.subject");
    ck_assert_uint_eq(rmq_msg_len(m), 0);
    ck_assert_ptr_nonnull(rmq_msg_data(m));
    rmq_msg_free(m);

    rc = rmq_sub_next(s, 200, &m);
    ck_assert_msg(rc == -ETIMEDOUT, "a third message arrived (rc %d): basic.other leaked?", rc);
    ck_assert_uint_eq(rmq_sub_delivered(s), 2);
    ck_assert_uint_eq(rmq_sub_dropped(s), 0);

    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_pubsub_headers_and_reply_round_trip)
{
    static const uint8_t bin[] = {0, 1, 2, 0, 0xff};
    const rmq_header h[] = {
        {"trace-id", "abc123", 6}, {"empty", NULL, 0}, {"bin", bin, sizeof(bin)},
        {"dup", "one", 3},         {"dup", "two", 3},
    };
    static const char *const keys[] = {"trace-id", "empty", "bin", "dup", "dup"};
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL, *rs = NULL;
    rmq_msg *m = NULL, *r = NULL;
    const void *v;
    const char *key;
    size_t vlen, klen, pos = 0;
    int n = 0, rc;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(sub, "hdr.x", NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe_sync(pub, "reply.to.me", NULL, &rs), 0);
    flush_ok(sub);
    flush_ok(pub);

    rc = rmq_publish_msg(pub, "hdr.x", "reply.to.me", h, 5, "body", 4);
    ck_assert_msg(rc == 0, "rmq_publish_msg: %s", rmq_strerror(rc));
    rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "message with headers: %s", rmq_strerror(rc));
    ck_assert_str_eq(rmq_msg_subject(m), "hdr.x");
    ck_assert_ptr_nonnull(rmq_msg_reply(m));
    ck_assert_str_eq(rmq_msg_reply(m), "reply.to.me");
    ck_assert_uint_eq(rmq_msg_len(m), 4);
    ck_assert_mem_eq(rmq_msg_data(m), "body", 4);
    ck_assert_uint_eq(rmq_msg_header_count(m), 5);

    ck_assert_int_eq(rmq_msg_header(m, "trace-id", &v, &vlen), 0);
    ck_assert_uint_eq(vlen, 6);
    ck_assert_mem_eq(v, "abc123", 6);
    ck_assert_int_eq(rmq_msg_header(m, "empty", &v, &vlen), 0);
    ck_assert_uint_eq(vlen, 0);
    ck_assert_msg(v == NULL, "a header without value must read back with value NULL");
    ck_assert_int_eq(rmq_msg_header(m, "bin", &v, &vlen), 0);
    ck_assert_uint_eq(vlen, sizeof(bin));
    ck_assert_mem_eq(v, bin, sizeof(bin));
    ck_assert_int_eq(rmq_msg_header(m, "dup", &v, &vlen), 0);
    ck_assert_uint_eq(vlen, 3);
    ck_assert_mem_eq(v, "one", 3); /* the first of two */
    ck_assert_int_eq(rmq_msg_header(m, "missing", &v, &vlen), RMQ_ENOTFOUND);
    ck_assert_int_eq(rmq_msg_header(m, "Trace-Id", &v, &vlen), RMQ_ENOTFOUND);
    while (rmq_msg_header_next(m, &pos, &key, &klen, &v, &vlen)) {
        ck_assert_int_lt(n, 5);
        ck_assert_uint_eq(klen, strlen(keys[n]));
        ck_assert_mem_eq(key, keys[n], klen);
        n++;
    }
    ck_assert_int_eq(n, 5);

    /* The reply subject works: respond from the subscriber. */
    rc = rmq_respond(sub, m, "pong", 4);
    ck_assert_msg(rc == 0, "rmq_respond: %s", rmq_strerror(rc));
    rc = rmq_sub_next(rs, 5000, &r);
    IT_CHECK(rc == 0, "reply: %s", rmq_strerror(rc));
    ck_assert_str_eq(rmq_msg_subject(r), "reply.to.me");
    ck_assert_uint_eq(rmq_msg_len(r), 4);
    ck_assert_mem_eq(rmq_msg_data(r), "pong", 4);
    ck_assert_uint_eq(rmq_msg_header_count(r), 0);
    rmq_msg_free(r);
    rmq_msg_free(m);

    /* rmq_respond() on a message without reply subject. */
    ck_assert_int_eq(rmq_publish(pub, "hdr.x", "x", 1), 0);
    ck_assert_int_eq(rmq_sub_next(s, 5000, &m), 0);
    ck_assert_ptr_null(rmq_msg_reply(m));
    ck_assert_int_eq(rmq_respond(sub, m, "x", 1), -EINVAL);
    rmq_msg_free(m);

    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* Patterns and which of the subjects below each must receive. */
static const char *const wc_patterns[] = {"wc.*", "wc.>", "wc.*.end", "*.x", "wc.a.>"};
#define WC_NPAT 5
static const struct {
    const char *subj;
    bool match[WC_NPAT];
} wc_cases[] = {
    {"wc.a", {true, true, false, false, false}},
    {"wc.a.end", {false, true, true, false, true}},
    {"wc.b.c.d", {false, true, false, false, false}},
    {"wc.x", {true, true, false, true, false}},
    {"wc", {false, false, false, false, false}},
    {"zz.x", {false, false, false, true, false}},
    {"wcx.a", {false, false, false, false, false}},
    {"wc.a.b", {false, true, false, false, true}},
    {"x.wc.a", {false, false, false, false, false}},
    {"wc.end", {true, true, false, false, false}},
};
#define WC_NCASES (sizeof(wc_cases) / sizeof(wc_cases[0]))

START_TEST(test_pubsub_wildcards_match_and_non_match)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s[WC_NPAT];
    struct counter k[WC_NPAT];
    struct sentinel st;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    for (int p = 0; p < WC_NPAT; p++) {
        counter_init(&k[p]);
        ck_assert_int_eq(rmq_subscribe(sub, wc_patterns[p], NULL, counter_cb, &k[p], &s[p]), 0);
    }
    sentinel_init(&st, sub, "wc");
    flush_ok(sub);
    for (size_t i = 0; i < WC_NCASES; i++)
        pub_seq(pub, wc_cases[i].subj, i, 16);
    sentinel_pass(&st, pub);

    for (int p = 0; p < WC_NPAT; p++) {
        uint64_t want = 0;
        for (size_t i = 0; i < WC_NCASES; i++) {
            bool saw = counter_saw(&k[p], wc_cases[i].subj);
            want += wc_cases[i].match[p];
            ck_assert_msg(saw == wc_cases[i].match[p], "pattern '%s', subject '%s': %s",
                          wc_patterns[p], wc_cases[i].subj,
                          saw ? "delivered but must not match" : "not delivered");
        }
        ck_assert_msg(atomic_load(&k[p].n) == want,
                      "pattern '%s': %" PRIu64 " messages, want %" PRIu64, wc_patterns[p],
                      (uint64_t)atomic_load(&k[p].n), want);
    }

    /* A pattern with wildcards cannot be published to. */
    ck_assert_int_eq(rmq_publish(pub, "wc.*", "x", 1), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_publish(pub, "wc.>", "x", 1), RMQ_ESUBJECT);

    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

struct responder {
    _Atomic uint64_t n;
    _Atomic int err;
};

static void echo_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct responder *r = arg;
    char buf[128];
    size_t n = rmq_msg_len(m) < 100 ? rmq_msg_len(m) : 100;
    int rc;
    (void)sub;
    memcpy(buf, "re:", 3);
    memcpy(buf + 3, rmq_msg_data(m), n);
    rc = rmq_respond(c, m, buf, n + 3);
    if (rc)
        atomic_store(&r->err, rc);
    atomic_fetch_add(&r->n, 1);
}

START_TEST(test_pubsub_request_reply)
{
    struct tbroker b;
    rmq_client *rc_, *q;
    rmq_sub *s = NULL, *late = NULL;
    struct responder r = {0};
    rmq_msg *reply = NULL, *m = NULL;
    char want[64], req[32];
    uint64_t t0, dt;
    int rc;

    it_broker_start(&b, NULL);
    rc_ = it_client(b.addr, "responder", NULL);
    q = it_client(b.addr, "requester", NULL);
    ck_assert_int_eq(rmq_subscribe(rc_, "svc.echo", NULL, echo_cb, &r, &s), 0);
    ck_assert_int_eq(rmq_subscribe_sync(rc_, "svc.late", NULL, &late), 0);
    flush_ok(rc_);

    for (int i = 0; i < 50; i++) {
        int n = snprintf(req, sizeof(req), "req-%d", i);
        rc = rmq_request(q, "svc.echo", req, (size_t)n, 3000, &reply);
        IT_CHECK(rc == 0, "request %d: %s", i, rmq_strerror(rc));
        n = snprintf(want, sizeof(want), "re:req-%d", i);
        ck_assert_uint_eq(rmq_msg_len(reply), (size_t)n);
        ck_assert_mem_eq(rmq_msg_data(reply), want, (size_t)n);
        ck_assert_msg(strncmp(rmq_msg_subject(reply), "_INBOX.", 7) == 0,
                      "reply subject '%s' is not in the inbox", rmq_msg_subject(reply));
        rmq_msg_free(reply);
        reply = NULL;
    }
    ck_assert_uint_eq(atomic_load(&r.n), 50);
    ck_assert_int_eq(atomic_load(&r.err), 0);

    /* Nobody listens: the request times out, and not much too early or late. */
    t0 = test_now_ms();
    rc = rmq_request(q, "svc.nobody", "x", 1, 300, &reply);
    dt = test_now_ms() - t0;
    ck_assert_msg(rc == -ETIMEDOUT, "request without responder: %s (want -ETIMEDOUT)",
                  rmq_strerror(rc));
    ck_assert_msg(dt >= 250 && dt < 3000, "timed out after %" PRIu64 " ms, asked for 300", dt);

    /* A reply that comes after the timeout is discarded, not handed to the next request. */
    rc = rmq_request(q, "svc.late", "slow", 4, 200, &reply);
    ck_assert_int_eq(rc, -ETIMEDOUT);
    rc = rmq_sub_next(late, 5000, &m);
    IT_CHECK(rc == 0, "the late request did not reach its responder: %s", rmq_strerror(rc));
    ck_assert_int_eq(rmq_respond(rc_, m, "too late", 8), 0);
    rmq_msg_free(m);
    flush_ok(rc_);
    rc = rmq_request(q, "svc.echo", "fresh", 5, 3000, &reply);
    IT_CHECK(rc == 0, "request after a late reply: %s", rmq_strerror(rc));
    ck_assert_uint_eq(rmq_msg_len(reply), 8);
    ck_assert_mem_eq(rmq_msg_data(reply), "re:fresh", 8);
    rmq_msg_free(reply);

    it_close(q);
    it_close(rc_);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_pubsub_unsubscribe_stops_delivery)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL;
    struct counter k;
    struct sentinel st;
    struct it_raw_seen seen;
    uint64_t subs_before, subs_after;
    int fd;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    counter_init(&k);
    ck_assert_int_eq(rmq_subscribe(sub, "unsub.x", NULL, counter_cb, &k, &s), 0);
    sentinel_init(&st, sub, "unsub");
    flush_ok(sub);
    pub_seq(pub, "unsub.x", 0, 16);
    sentinel_pass(&st, pub);
    ck_assert_uint_eq(atomic_load(&k.n), 1);

    subs_before = it_stat(pub, "subscriptions");
    ck_assert_int_eq(rmq_unsubscribe(s), 0);
    flush_ok(sub);
    subs_after = it_stat(pub, "subscriptions");
    ck_assert_msg(subs_after + 1 == subs_before,
                  "broker subscriptions %" PRIu64 " -> %" PRIu64 " after one unsubscribe",
                  subs_before, subs_after);
    for (uint64_t i = 1; i <= 10; i++)
        pub_seq(pub, "unsub.x", i, 16);
    sentinel_pass(&st, pub);
    ck_assert_msg(atomic_load(&k.n) == 1, "%" PRIu64 " messages after unsubscribe",
                  (uint64_t)atomic_load(&k.n) - 1);

    /* Broker side, without the client library's filtering. */
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(fd, 7, "unsub.raw", NULL), 0);
    ck_assert_int_eq(it_raw_sync(fd, 1, 5000, &seen), 0);
    pub_seq(pub, "unsub.raw", 0, 16);
    flush_ok(pub);
    ck_assert_int_eq(it_raw_sync(fd, 2, 5000, &seen), 0);
    ck_assert_int_eq(seen.msgs, 1);
    ck_assert_int_eq(it_raw_unsub(fd, 7, 0), 0);
    ck_assert_int_eq(it_raw_sync(fd, 3, 5000, &seen), 0);
    ck_assert_int_eq(seen.errs, 0);
    for (uint64_t i = 1; i <= 10; i++)
        pub_seq(pub, "unsub.raw", i, 16);
    flush_ok(pub);
    ck_assert_int_eq(it_raw_sync(fd, 4, 5000, &seen), 0);
    ck_assert_msg(seen.msgs == 0, "broker sent %d messages for an unsubscribed sid", seen.msgs);
    /* Unsubscribing an unknown sid is an error, not a disconnect. */
    ck_assert_int_eq(it_raw_unsub(fd, 7, 0), 0);
    ck_assert_int_eq(it_raw_sync(fd, 5, 5000, &seen), 0);
    ck_assert_int_eq(seen.errs, 1);
    ck_assert_int_eq(seen.err_code[0], RINGMQ__ERROR_CODE__ERR_BAD_SID);
    ck_assert_int_eq(seen.err_fatal[0], 0);
    close(fd);

    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_pubsub_auto_unsubscribe_after_n)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL, *ss = NULL;
    struct counter k;
    struct sentinel st;
    struct it_raw_seen seen;
    rmq_msg *m;
    int fd, rc;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    counter_init(&k);
    ck_assert_int_eq(rmq_subscribe(sub, "auto.cb", NULL, counter_cb, &k, &s), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(s, 5), 0);
    ck_assert_int_eq(rmq_subscribe_sync(sub, "auto.sync", NULL, &ss), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(ss, 5), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(ss, 0), -EINVAL);
    sentinel_init(&st, sub, "auto");
    flush_ok(sub);
    for (uint64_t i = 0; i < 20; i++) {
        pub_seq(pub, "auto.cb", i, 16);
        pub_seq(pub, "auto.sync", i, 16);
    }
    sentinel_pass(&st, pub);
    ck_assert_msg(atomic_load(&k.n) == 5, "callback subscription got %" PRIu64 " messages, want 5",
                  (uint64_t)atomic_load(&k.n));
    ck_assert_int_eq(atomic_load(&k.last_seq), 4);
    ck_assert_uint_eq(rmq_sub_delivered(s), 5);
    for (int i = 0; i < 5; i++) {
        rc = rmq_sub_next(ss, 2000, &m);
        IT_CHECK(rc == 0, "sync auto-unsubscribe message %d: %s", i, rmq_strerror(rc));
        ck_assert_int_eq(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)), i);
        rmq_msg_free(m);
    }
    rc = rmq_sub_next(ss, 200, &m);
    ck_assert_msg(rc == RMQ_ECLOSED, "after 5 of 5: %s (want RMQ_ECLOSED)", rmq_strerror(rc));
    ck_assert_int_eq(rmq_unsubscribe(s), 0);
    ck_assert_int_eq(rmq_unsubscribe(ss), 0);

    /* Broker side: UNSUBSCRIBE max=5, then 20 publishes to itself. */
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(fd, 1, "auto.raw", NULL), 0);
    ck_assert_int_eq(it_raw_unsub(fd, 1, 5), 0);
    for (uint64_t i = 0; i < 20; i++) {
        uint8_t buf[16];
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(it_raw_pub(fd, "auto.raw", NULL, buf, sizeof(buf)), 0);
    }
    ck_assert_int_eq(it_raw_sync(fd, 9, 5000, &seen), 0);
    ck_assert_msg(seen.msgs == 5, "broker delivered %d messages, want 5", seen.msgs);
    ck_assert_int_eq(seen.last_msg_seq, 4);
    ck_assert_int_eq(seen.errs, 0);
    /* The sid is gone afterwards. */
    ck_assert_int_eq(it_raw_unsub(fd, 1, 0), 0);
    ck_assert_int_eq(it_raw_sync(fd, 10, 5000, &seen), 0);
    ck_assert_int_eq(seen.errs, 1);
    ck_assert_int_eq(seen.err_code[0], RINGMQ__ERROR_CODE__ERR_BAD_SID);
    close(fd);

    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ---- queue ---- */

#define QG_MSGS 3000

START_TEST(test_pubsub_queue_group_each_message_once)
{
    struct tbroker b;
    rmq_client *g[3], *plain, *pub;
    rmq_sub *gs[3], *ps;
    struct it_seq gq[3], pq;
    uint64_t total = 0, end;
    char name[16];

    it_broker_start(&b, NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "member%d", i);
        g[i] = it_client(b.addr, name, NULL);
        it_seq_init(&gq[i], QG_MSGS);
        ck_assert_int_eq(rmq_subscribe(g[i], "jobs.work", "workers", it_seq_cb, &gq[i], &gs[i]), 0);
        flush_ok(g[i]);
    }
    plain = it_client(b.addr, "plain", NULL);
    it_seq_init(&pq, QG_MSGS);
    ck_assert_int_eq(rmq_subscribe(plain, "jobs.work", NULL, it_seq_cb, &pq, &ps), 0);
    flush_ok(plain);
    pub = it_client(b.addr, "pub", NULL);

    for (uint64_t i = 0; i < QG_MSGS; i++)
        pub_seq(pub, "jobs.work", i, 24);
    flush_ok(pub);

    it_seq_expect(&pq, QG_MSGS, true, 10000, "plain subscriber");
    end = test_now_ms() + 10000;
    while (test_now_ms() < end) {
        total = 0;
        for (int i = 0; i < 3; i++)
            total += atomic_load(&gq[i].count) + atomic_load(&gq[i].dups);
        if (total >= QG_MSGS)
            break;
        usleep(1000);
    }
    usleep(200 * 1000); /* room for extra deliveries to show up */
    total = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(atomic_load(&gq[i].dups) == 0, "member %d got duplicates", i);
        ck_assert_msg(atomic_load(&gq[i].bad) == 0, "member %d got corrupt payloads", i);
        total += atomic_load(&gq[i].count);
    }
    ck_assert_msg(total == QG_MSGS, "the group got %" PRIu64 " messages, want exactly %d", total,
                  QG_MSGS);
    for (int i = 0; i < 3; i++)
        IT_CHECK(atomic_load(&gq[i].count) > 500,
                 "member %d got only %" PRIu64 " of %d messages (split %" PRIu64 "/%" PRIu64
                 "/%" PRIu64 ")",
                 i, (uint64_t)atomic_load(&gq[i].count), QG_MSGS,
                 (uint64_t)atomic_load(&gq[0].count), (uint64_t)atomic_load(&gq[1].count),
                 (uint64_t)atomic_load(&gq[2].count));
    /* The I/O threads may still write seen[]: read it under their locks. */
    for (int i = 0; i < 3; i++)
        pthread_mutex_lock(&gq[i].mu);
    for (uint64_t i = 0; i < QG_MSGS; i++) {
        int owners = gq[0].seen[i] + gq[1].seen[i] + gq[2].seen[i];
        if (owners != 1) {
            for (int k = 0; k < 3; k++)
                pthread_mutex_unlock(&gq[k].mu);
            ck_abort_msg("message %" PRIu64 " went to %d group members", i, owners);
        }
    }
    for (int i = 0; i < 3; i++)
        pthread_mutex_unlock(&gq[i].mu);

    it_close(pub);
    it_close(plain);
    for (int i = 0; i < 3; i++) {
        it_close(g[i]);
        it_seq_free(&gq[i]);
    }
    it_seq_free(&pq);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/*
 * Which shard a client named name landed on, from the broker's debug log
 * ("[sN] conn M connected as 'name'"). -1 if not (yet) logged.
 */
static int shard_of(const struct tbroker *b, const char *name)
{
    char line[512], pat[96];
    int shard = -1;
    FILE *f = fopen(b->log, "r");
    if (!f)
        return -1;
    snprintf(pat, sizeof(pat), "connected as '%s'", name);
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "[s");
        unsigned v;
        if (strstr(line, pat) && p && sscanf(p, "[s%u]", &v) == 1)
            shard = (int)v;
    }
    fclose(f);
    return shard;
}

static rmq_client *client_on_shard(const struct tbroker *b, const char *name, int *shard)
{
    rmq_client *c = it_client(b->addr, name, NULL);
    uint64_t end = test_now_ms() + 2000;
    while ((*shard = shard_of(b, name)) < 0 && test_now_ms() < end)
        usleep(1000);
    IT_CHECK(*shard >= 0, "no 'connected as' line for %s in the broker log", name);
    return c;
}

/*
 * The same as above with the placement forced: ringmqd --shards 2, a plain
 * subscriber and two group members on one shard (A), the third member on
 * the other (B). Shard A sees every message (for its plain subscriber),
 * also those whose group turn went to B; each member must still get a
 * fair share, and the plain subscriber everything.
 */
START_TEST(test_pubsub_queue_group_placed_across_shards)
{
    struct tbroker b;
    rmq_client *pub, *plain, *m[3] = {NULL, NULL, NULL}, *spare[40];
    rmq_sub *ms[3], *ps;
    struct it_seq q[3], pq;
    int ashard, nspare = 0, same = 0, other = 0, sh;
    char name[32];
    uint64_t total = 0, end;

    it_broker_start(&b, IT_ARGS("--shards", "2", "--log-level", "debug"));
    plain = client_on_shard(&b, "qplain", &ashard);
    for (int k = 0; k < 40 && (same < 2 || other < 1); k++) {
        rmq_client *c;
        snprintf(name, sizeof(name), "qcand%d", k);
        c = client_on_shard(&b, name, &sh);
        if (sh == ashard && same < 2)
            m[same++] = c;
        else if (sh != ashard && other < 1)
            m[2] = c, other++;
        else
            spare[nspare++] = c;
    }
    IT_CHECK(same == 2 && other == 1,
             "could not place the members (%d on shard A, %d on B) in "
             "40 connections",
             same, other);
    pub = client_on_shard(&b, "qpub", &sh);
    it_seq_init(&pq, QG_MSGS);
    ck_assert_int_eq(rmq_subscribe(plain, "jobs.placed", NULL, it_seq_cb, &pq, &ps), 0);
    flush_ok(plain);
    for (int i = 0; i < 3; i++) {
        it_seq_init(&q[i], QG_MSGS);
        ck_assert_int_eq(rmq_subscribe(m[i], "jobs.placed", "workers", it_seq_cb, &q[i], &ms[i]),
                         0);
        flush_ok(m[i]);
    }
    for (uint64_t i = 0; i < QG_MSGS; i++)
        pub_seq(pub, "jobs.placed", i, 24);
    flush_ok(pub);
    it_seq_expect(&pq, QG_MSGS, true, 10000, "plain subscriber");
    end = test_now_ms() + 10000;
    while (test_now_ms() < end) {
        total = atomic_load(&q[0].count) + atomic_load(&q[1].count) + atomic_load(&q[2].count);
        if (total >= QG_MSGS)
            break;
        usleep(1000);
    }
    usleep(100 * 1000);
    total = atomic_load(&q[0].count) + atomic_load(&q[1].count) + atomic_load(&q[2].count);
    ck_assert_msg(total == QG_MSGS, "the group got %" PRIu64 " messages, want %d", total, QG_MSGS);
    for (int i = 0; i < 3; i++)
        IT_CHECK(atomic_load(&q[i].count) > 500 && atomic_load(&q[i].dups) == 0,
                 "member %d (shard %s) got %" PRIu64 " of %d messages (split %" PRIu64 "/%" PRIu64
                 "/%" PRIu64 "; members 0 and 1 share shard A with the plain "
                 "subscriber, the publisher is on %s)",
                 i, i < 2 ? "A" : "B", (uint64_t)atomic_load(&q[i].count), QG_MSGS,
                 (uint64_t)atomic_load(&q[0].count), (uint64_t)atomic_load(&q[1].count),
                 (uint64_t)atomic_load(&q[2].count), sh == ashard ? "A" : "B");
    for (int i = 0; i < nspare; i++)
        it_close(spare[i]);
    for (int i = 0; i < 3; i++) {
        it_close(m[i]);
        it_seq_free(&q[i]);
    }
    it_close(pub);
    it_close(plain);
    it_seq_free(&pq);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ---- limits ---- */

#define ORDER_MSGS 100000

START_TEST(test_pubsub_ordering_100k_callback)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL;
    struct it_seq q;
    uint64_t t0 = test_now_ms();

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    it_seq_init(&q, ORDER_MSGS);
    ck_assert_int_eq(rmq_subscribe(sub, "order.cb", NULL, it_seq_cb, &q, &s), 0);
    flush_ok(sub);
    for (uint64_t i = 0; i < ORDER_MSGS; i++)
        pub_seq(pub, "order.cb", i, 16);
    flush_ok(pub);
    it_seq_expect(&q, ORDER_MSGS, true, 30000, "callback subscriber");
    ck_assert_uint_eq(rmq_sub_dropped(s), 0);
    printf("ordering 100k (callback): %" PRIu64 " ms\n", test_now_ms() - t0);
    it_close(pub);
    it_close(sub);
    it_seq_free(&q);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_pubsub_ordering_100k_sync)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    rmq_opts *o;
    rmq_sub *s = NULL;
    rmq_msg *m;
    uint64_t t0 = test_now_ms();
    int rc;

    it_broker_start(&b, NULL);
    o = it_opts(b.addr, "sub", NULL, 0);
    ck_assert_int_eq(rmq_opts_set_pending_limits(o, 2 * ORDER_MSGS, 64u << 20), 0);
    rc = rmq_connect(o, &sub);
    rmq_opts_free(o);
    IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    pub = it_client(b.addr, "pub", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(sub, "order.sync", NULL, &s), 0);
    flush_ok(sub);
    for (uint64_t i = 0; i < ORDER_MSGS; i++)
        pub_seq(pub, "order.sync", i, 16);
    flush_ok(pub);
    for (int64_t i = 0; i < ORDER_MSGS; i++) {
        int64_t got;
        rc = rmq_sub_next(s, 10000, &m);
        if (rc)
            IT_CHECK(0, "message %" PRId64 ": %s (dropped %" PRIu64 ")", i, rmq_strerror(rc),
                     rmq_sub_dropped(s));
        got = it_payload_seq(rmq_msg_data(m), rmq_msg_len(m));
        rmq_msg_free(m);
        if (got != i)
            IT_CHECK(0, "message %" PRId64 " carries sequence %" PRId64, i, got);
    }
    rc = rmq_sub_next(s, 100, &m);
    ck_assert_int_eq(rc, -ETIMEDOUT);
    ck_assert_uint_eq(rmq_sub_dropped(s), 0);
    printf("ordering 100k (sync): %" PRIu64 " ms\n", test_now_ms() - t0);
    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

#define MAXP (1024 * 1024)

START_TEST(test_pubsub_payload_1mib_intact_and_max_plus_one_rejected)
{
    struct tbroker b;
    struct it_rec rec;
    rmq_client *pub, *sub;
    rmq_sub *s = NULL;
    rmq_msg *m = NULL;
    struct it_raw_seen seen;
    uint8_t *big = malloc(MAXP + 1);
    int rc, fd;

    ck_assert_ptr_nonnull(big);
    it_broker_start(&b, IT_ARGS("--max-payload", "1048576"));
    it_rec_init(&rec);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", &rec);
    ck_assert_uint_eq(rmq_client_max_payload(pub), MAXP);
    ck_assert_int_eq(rmq_subscribe_sync(sub, "big.x", NULL, &s), 0);
    flush_ok(sub);

    it_payload_fill(big, MAXP, 42);
    rc = rmq_publish(pub, "big.x", big, MAXP);
    IT_CHECK(rc == 0, "1 MiB publish: %s", rmq_strerror(rc));
    rc = rmq_sub_next(s, 10000, &m);
    IT_CHECK(rc == 0, "1 MiB message: %s", rmq_strerror(rc));
    ck_assert_uint_eq(rmq_msg_len(m), MAXP);
    ck_assert_msg(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)) == 42,
                  "1 MiB payload corrupted in transit");
    rmq_msg_free(m);

    /* max + 1: refused by the client, or by the server without a disconnect. */
    it_payload_fill(big, MAXP + 1, 43);
    rc = rmq_publish(pub, "big.x", big, MAXP + 1);
    if (rc == 0) {
        uint64_t end = test_now_ms() + 5000;
        while (it_rec_errs(&rec, -EMSGSIZE) + it_rec_errs(&rec, RMQ_ESERVER) == 0 &&
               test_now_ms() < end)
            usleep(1000);
        ck_assert_msg(it_rec_errs(&rec, -EMSGSIZE) + it_rec_errs(&rec, RMQ_ESERVER) > 0,
                      "max_payload+1 was accepted and no error was reported");
    } else {
        ck_assert_msg(rc == -EMSGSIZE, "max_payload+1: %s (want -EMSGSIZE)", rmq_strerror(rc));
    }
    ck_assert_msg(rmq_client_is_connected(pub), "the publisher was disconnected");
    pub_seq(pub, "big.x", 44, 64);
    flush_ok(pub);
    rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "message after the oversized one: %s", rmq_strerror(rc));
    ck_assert_msg(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)) == 44,
                  "the oversized message was delivered (len %zu)", rmq_msg_len(m));
    rmq_msg_free(m);
    ck_assert_int_eq(it_rec_count(&rec, RMQ_EV_DISCONNECTED), 0);

    /* The same over a raw socket: the server answers PAYLOAD_TOO_BIG, not fatal. */
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(fd, 1, "big.x", NULL), 0);
    ck_assert_int_eq(it_raw_pub(fd, "big.x", NULL, big, MAXP + 1), 0);
    ck_assert_int_eq(it_raw_sync(fd, 1, 10000, &seen), 0);
    ck_assert_int_eq(seen.errs, 1);
    ck_assert_int_eq(seen.err_code[0], RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG);
    ck_assert_int_eq(seen.err_fatal[0], 0);
    ck_assert_int_eq(seen.msgs, 0);
    it_payload_fill(big, MAXP, 45);
    ck_assert_int_eq(it_raw_pub(fd, "big.x", NULL, big, MAXP), 0);
    ck_assert_int_eq(it_raw_sync(fd, 2, 10000, &seen), 0);
    ck_assert_int_eq(seen.errs, 0);
    ck_assert_int_eq(seen.msgs, 1);
    ck_assert_uint_eq(seen.last_msg_len, MAXP);
    ck_assert_int_eq(seen.last_msg_seq, 45);
    close(fd);
    rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "raw 1 MiB message to the client: %s", rmq_strerror(rc));
    ck_assert_int_eq(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)), 45);
    rmq_msg_free(m);

    it_close(pub);
    it_close(sub);
    free(big);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

#define MANY_SUBS 1000

START_TEST(test_pubsub_1000_subscriptions_one_connection)
{
    struct tbroker b;
    rmq_client *pub, *sub;
    static rmq_sub *s[MANY_SUBS];
    static struct counter k[MANY_SUBS];
    struct sentinel st;
    char subj[32];
    uint64_t n;

    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "sub", NULL);
    pub = it_client(b.addr, "pub", NULL);
    for (int i = 0; i < MANY_SUBS; i++) {
        counter_init(&k[i]);
        snprintf(subj, sizeof(subj), "many.%d", i);
        ck_assert_int_eq(rmq_subscribe(sub, subj, NULL, counter_cb, &k[i], &s[i]), 0);
    }
    sentinel_init(&st, sub, "many");
    flush_ok(sub);
    n = it_stat(pub, "subscriptions");
    ck_assert_msg(n == MANY_SUBS + 2, "broker has %" PRIu64 " subscriptions, want %d", n,
                  MANY_SUBS + 2); /* + sentinel + the stats inbox */
    for (int i = MANY_SUBS - 1; i >= 0; i--) {
        snprintf(subj, sizeof(subj), "many.%d", i);
        pub_seq(pub, subj, (uint64_t)i, 16);
    }
    sentinel_pass(&st, pub);
    for (int i = 0; i < MANY_SUBS; i++) {
        ck_assert_msg(atomic_load(&k[i].n) == 1, "subscription many.%d got %" PRIu64 " messages", i,
                      (uint64_t)atomic_load(&k[i].n));
        ck_assert_int_eq(atomic_load(&k[i].last_seq), i);
    }
    for (int i = 0; i < MANY_SUBS; i++)
        ck_assert_int_eq(rmq_unsubscribe(s[i]), 0);
    flush_ok(sub);
    n = it_stat(pub, "subscriptions");
    ck_assert_msg(n == 2, "broker has %" PRIu64 " subscriptions after unsubscribing all", n);
    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

#define NCONNS 500

START_TEST(test_pubsub_500_connections)
{
    struct tbroker b;
    static rmq_client *c[NCONNS];
    static rmq_sub *s[NCONNS];
    rmq_client *pub;
    char subj[32], name[32];
    uint64_t n, t0 = test_now_ms();
    int rc;

    it_raise_nofile(4 * NCONNS + 256);
    it_broker_start(&b, NULL);
    for (int i = 0; i < NCONNS; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        c[i] = it_client(b.addr, name, NULL);
        snprintf(subj, sizeof(subj), "fan.%d", i);
        ck_assert_int_eq(rmq_subscribe_sync(c[i], subj, NULL, &s[i]), 0);
    }
    for (int i = 0; i < NCONNS; i++)
        flush_ok(c[i]);
    pub = it_client(b.addr, "pub", NULL);
    n = it_stat(pub, "connections");
    ck_assert_msg(n == NCONNS + 1, "broker counts %" PRIu64 " connections, want %d", n, NCONNS + 1);
    for (int i = 0; i < NCONNS; i++) {
        snprintf(subj, sizeof(subj), "fan.%d", i);
        pub_seq(pub, subj, (uint64_t)i, 32);
    }
    flush_ok(pub);
    for (int i = 0; i < NCONNS; i++) {
        rmq_msg *m = NULL;
        rc = rmq_sub_next(s[i], 5000, &m);
        if (rc)
            IT_CHECK(0, "connection %d got nothing: %s", i, rmq_strerror(rc));
        ck_assert_int_eq(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)), i);
        rmq_msg_free(m);
        rc = rmq_sub_next(s[i], 0, &m);
        ck_assert_msg(rc == -ETIMEDOUT, "connection %d got a second message", i);
    }
    for (int i = 0; i < NCONNS; i++)
        it_close(c[i]);
    it_stat_wait(pub, "connections", 1, 5000, &n);
    ck_assert_msg(n == 1, "broker still counts %" PRIu64 " connections after closing", n);
    it_close(pub);
    printf("500 connections: %" PRIu64 " ms\n", test_now_ms() - t0);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

#define ZC_MSGS 400
#define ZC_SIZE (64 * 1024)

/*
 * Bodies of at least --zerocopy-min go out with SENDMSG_ZC, and their
 * buffers live until the kernel's NOTIF. Every byte must arrive intact and
 * in order at both subscribers; on loopback the kernel reports the sends as
 * copied, and the broker falls back to plain sends for those connections,
 * which must not lose or reorder anything either.
 */
START_TEST(test_pubsub_zerocopy_large_bodies_intact)
{
    struct tbroker b;
    rmq_client *sub[2], *pub;
    rmq_sub *ss[2];
    struct it_seq q[2];
    static uint8_t buf[ZC_SIZE];
    uint64_t zc, copied;

    it_broker_start(&b, IT_ARGS("--zerocopy-min", "4096", "--shards", "1"));
    for (int i = 0; i < 2; i++) {
        sub[i] = it_client(b.addr, "zcsub", NULL);
        it_seq_init(&q[i], ZC_MSGS);
        ck_assert_int_eq(rmq_subscribe(sub[i], "zc.big", NULL, it_seq_cb, &q[i], &ss[i]), 0);
        flush_ok(sub[i]);
    }
    pub = it_client(b.addr, "zcpub", NULL);
    for (uint64_t i = 0; i < ZC_MSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(pub, "zc.big", buf, sizeof(buf)), 0);
    }
    flush_ok(pub);
    for (int i = 0; i < 2; i++)
        it_seq_expect(&q[i], ZC_MSGS, true, 30000, "zero-copy subscriber");
    zc = it_stat(pub, "zerocopy_sends");
    copied = it_stat(pub, "zerocopy_copied");
    IT_CHECK(zc > 0, "no send used SENDMSG_ZC with --zerocopy-min 4096");
    IT_CHECK(copied <= zc, "%" PRIu64 " copied of %" PRIu64 " zero-copy sends", copied, zc);
    for (int i = 0; i < 2; i++) {
        it_close(sub[i]);
        it_seq_free(&q[i]);
    }
    it_close(pub);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

struct slow_cb {
    _Atomic int started, finished;
};

static void slow_cb_fn(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct slow_cb *k = arg;
    (void)c;
    (void)sub;
    (void)m;
    atomic_fetch_add(&k->started, 1);
    usleep(300 * 1000);
    atomic_fetch_add(&k->finished, 1);
}

/*
 * rmq_unsubscribe() from another thread while the I/O thread is inside the
 * subscription's callback waits for it to return, and no callback starts
 * after it returns, though more messages were queued behind the first.
 */
START_TEST(test_pubsub_unsubscribe_waits_for_running_callback)
{
    struct tbroker b;
    struct slow_cb k;
    rmq_client *sub, *pub;
    rmq_sub *s;
    uint64_t end;
    int started;

    atomic_init(&k.started, 0);
    atomic_init(&k.finished, 0);
    it_broker_start(&b, NULL);
    sub = it_client(b.addr, "slowcb", NULL);
    pub = it_client(b.addr, "pub", NULL);
    ck_assert_int_eq(rmq_subscribe(sub, "slowcb.x", NULL, slow_cb_fn, &k, &s), 0);
    flush_ok(sub);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rmq_publish(pub, "slowcb.x", "m", 1), 0);
    flush_ok(pub);
    end = test_now_ms() + 5000;
    while (atomic_load(&k.started) == 0 && test_now_ms() < end)
        usleep(1000);
    IT_CHECK(atomic_load(&k.started) == 1, "the first callback did not start");
    ck_assert_int_eq(rmq_unsubscribe(s), 0);
    started = atomic_load(&k.started);
    IT_CHECK(atomic_load(&k.finished) == started,
             "rmq_unsubscribe returned while a callback was still running (%d started, %d "
             "finished)",
             started, atomic_load(&k.finished));
    usleep(700 * 1000);
    IT_CHECK(atomic_load(&k.started) == started, "%d callbacks started after rmq_unsubscribe",
             atomic_load(&k.started) - started);
    it_close(pub);
    it_close(sub);
    it_broker_stop_ok(&b, 10000);
}
END_TEST

static Suite *pubsub_suite(void)
{
    Suite *s = suite_create("pubsub");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_pubsub_basic_payload_and_subject_intact);
    tcase_add_test(tc, test_pubsub_headers_and_reply_round_trip);
    tcase_add_test(tc, test_pubsub_wildcards_match_and_non_match);
    tcase_add_test(tc, test_pubsub_request_reply);
    tcase_add_test(tc, test_pubsub_unsubscribe_stops_delivery);
    tcase_add_test(tc, test_pubsub_auto_unsubscribe_after_n);
    tcase_add_test(tc, test_pubsub_unsubscribe_waits_for_running_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("queue");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pubsub_queue_group_each_message_once);
    tcase_add_test(tc, test_pubsub_queue_group_placed_across_shards);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pubsub_ordering_100k_callback);
    tcase_add_test(tc, test_pubsub_ordering_100k_sync);
    tcase_add_test(tc, test_pubsub_payload_1mib_intact_and_max_plus_one_rejected);
    tcase_add_test(tc, test_pubsub_1000_subscriptions_one_connection);
    tcase_add_test(tc, test_pubsub_500_connections);
    tcase_add_test(tc, test_pubsub_zerocopy_large_bodies_intact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_pubsub", pubsub_suite);
}
