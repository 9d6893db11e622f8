/*
 * check_client_topic.c - unit tests of the durable-topic side of libringmq
 * (client/client_topic.c, client/client_ack.c) against the fake server,
 * whose topics (fake_topics.c) answer admin requests and PubAcks with
 * protoc-c's code, so the client's protobuf is checked against another
 * implementation. What the client sends is checked by decoding the fake's
 * copy of each SUBSCRIBE with protobuf-c.
 *
 * TCases: admin (topic and consumer calls), ack (rmq_publish_ack and the
 * async table: replies, timeouts, close), sub (topic subscriptions and
 * consumers: frames, resume after reconnect, acks).
 * Each test runs in its own forked child (Check's default).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_server.h"
#include "ringmq.h"

/* ---- Helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Atomic int reconnects;
static _Atomic int closed_events;

static void on_event(rmq_client *c, int ev, int err, void *arg)
{
    (void)c;
    (void)err;
    (void)arg;
    if (ev == RMQ_EV_RECONNECTED)
        atomic_fetch_add(&reconnects, 1);
    else if (ev == RMQ_EV_CLOSED)
        atomic_fetch_add(&closed_events, 1);
}

static rmq_client *connect_fake(const struct fake_server *fs)
{
    rmq_opts *o;
    rmq_client *c = NULL;

    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, fake_addr(fs)), 0);
    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 1000), 0);
    ck_assert_int_eq(rmq_opts_set_reconnect_wait(o, 10, 50), 0);
    rmq_opts_set_event_cb(o, on_event, NULL);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    return c;
}

static bool wait_atomic(_Atomic int *v, int want, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (atomic_load(v) < want && mono_ms() < end)
        usleep(1000);
    return atomic_load(v) >= want;
}

/* Create topic name on subjects (a comma-free list of one or two patterns). */
static void topic_add(rmq_client *c, const char *name, const char *s1, const char *s2)
{
    const char *subj[2] = {s1, s2};
    rmq_topic_cfg cfg = {.name = name, .subjects = subj, .nsubjects = s2 ? 2 : 1};

    ck_assert_int_eq(rmq_topic_add(c, &cfg, 2000, NULL), 0);
}

/* The newest SUBSCRIBE the fake got for pattern, decoded with protobuf-c.
 * Free with ringmq__frame__free_unpacked(). */
static Ringmq__Frame *sub_frame(struct fake_server *fs, const char *pattern)
{
    uint8_t buf[1024];
    size_t n = fake_sub_frame(fs, pattern, buf, sizeof(buf));
    Ringmq__Frame *f;

    ck_assert_uint_gt(n, 0);
    f = ringmq__frame__unpack(NULL, n, buf);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->kind_case, RINGMQ__FRAME__KIND_SUB);
    return f;
}

struct sub_count {
    struct fake_server *fs;
    uint64_t want;
};

static bool subs_seen(void *arg)
{
    struct sub_count *a = arg;
    return fake_count(a->fs, CODEC_K_SUB) >= a->want;
}

/* ---- Admin ---- */

START_TEST(test_topic_admin_add_info_list_rm)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    const char *subj[] = {"orders.>", "billing.*"};
    rmq_topic_cfg cfg = {.name = "orders",
                         .subjects = subj,
                         .nsubjects = 2,
                         .max_msgs = 1000,
                         .max_age_ms = 7 * 86400000ull};
    rmq_topic_info info, *all;
    size_t n;

    ck_assert_int_eq(rmq_topic_add(c, &cfg, 2000, &info), 0);
    ck_assert_str_eq(info.name, "orders");
    ck_assert_uint_eq(info.nsubjects, 2);
    ck_assert_str_eq(info.subjects[0], "orders.>");
    ck_assert_str_eq(info.subjects[1], "billing.*");
    ck_assert_uint_eq(info.max_msgs, 1000);
    ck_assert_uint_eq(info.max_bytes, 0);
    ck_assert_uint_eq(info.max_age_ms, 7 * 86400000ull);
    ck_assert_uint_eq(info.dedup_window_ms, 120000); /* 0 asked: the default */
    ck_assert_uint_eq(info.msgs, 0);
    ck_assert_uint_eq(info.last_seq, 0);
    ck_assert_uint_eq(info.first_seq, 1);

    /* the same name, or overlapping subjects: -EEXIST */
    ck_assert_int_eq(rmq_topic_add(c, &cfg, 2000, NULL), -EEXIST);
    const char *overlap[] = {"orders.eu"};
    rmq_topic_cfg cfg2 = {.name = "other", .subjects = overlap, .nsubjects = 1};
    ck_assert_int_eq(rmq_topic_add(c, &cfg2, 2000, NULL), -EEXIST);
    topic_add(c, "logs", "logs.>", NULL);

    ck_assert_int_eq(rmq_publish(c, "orders.eu", "12345", 5), 0);
    ck_assert_int_eq(rmq_publish(c, "billing.x", "678", 3), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_topic_info_get(c, "orders", 2000, &info), 0);
    ck_assert_uint_eq(info.msgs, 2);
    ck_assert_uint_eq(info.bytes, 8);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 2);
    ck_assert_uint_gt(info.first_time_ns, 0);
    ck_assert_uint_ge(info.last_time_ns, info.first_time_ns);
    ck_assert_int_eq(rmq_topic_info_get(c, "nope", 2000, &info), RMQ_ENOTFOUND);

    ck_assert_int_eq(rmq_topic_list(c, 2000, &all, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(all[0].name, "orders"); /* creation order */
    ck_assert_str_eq(all[1].name, "logs");
    ck_assert_str_eq(all[1].subjects[0], "logs.>");
    ck_assert_uint_eq(all[0].msgs, 2);
    free(all);

    ck_assert_int_eq(rmq_topic_rm(c, "orders", 2000), 0);
    ck_assert_int_eq(rmq_topic_rm(c, "orders", 2000), RMQ_ENOTFOUND);
    ck_assert_int_eq(rmq_topic_rm(c, "logs", 2000), 0);
    ck_assert_int_eq(rmq_topic_list(c, 2000, &all, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(all);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_admin_checks_before_sending)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    const char *subj[RMQ_TOPIC_SUBJECTS_MAX + 1];
    const char *bad_pat[] = {"a..b"};
    char long_name[RMQ_NAME_MAX + 2];
    rmq_topic_cfg cfg = {.name = "t", .subjects = subj, .nsubjects = 1};
    rmq_topic_info info;
    rmq_consumer_info *ci;
    size_t n;

    for (size_t i = 0; i < RMQ_TOPIC_SUBJECTS_MAX + 1; i++)
        subj[i] = "a.b";
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    uint64_t pubs0 = fake_count(fs, CODEC_K_PUB);

    cfg.nsubjects = 0;
    ck_assert_int_eq(rmq_topic_add(c, &cfg, 100, NULL), -EINVAL);
    cfg.nsubjects = RMQ_TOPIC_SUBJECTS_MAX + 1;
    ck_assert_int_eq(rmq_topic_add(c, &cfg, 100, NULL), -EINVAL);
    cfg.nsubjects = 1;
    cfg.subjects = bad_pat;
    ck_assert_int_eq(rmq_topic_add(c, &cfg, 100, NULL), RMQ_ESUBJECT);
    cfg.subjects = subj;
    const char *bad_names[] = {"", "a.b", "a b", "x*", long_name};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        cfg.name = bad_names[i];
        ck_assert_int_eq(rmq_topic_add(c, &cfg, 100, NULL), -EINVAL);
        ck_assert_int_eq(rmq_topic_info_get(c, bad_names[i], 100, &info), -EINVAL);
        ck_assert_int_eq(rmq_topic_rm(c, bad_names[i], 100), -EINVAL);
        ck_assert_int_eq(rmq_consumer_list(c, bad_names[i], 100, &ci, &n), -EINVAL);
        ck_assert_int_eq(rmq_consumer_rm(c, "t", bad_names[i], 100), -EINVAL);
    }
    long_name[RMQ_NAME_MAX] = '\0'; /* exactly 64: fine */
    cfg.name = long_name;
    ck_assert_int_eq(rmq_topic_add(c, &cfg, 2000, &info), 0);
    ck_assert_str_eq(info.name, long_name);
    ck_assert_int_eq(rmq_topic_add(c, NULL, 100, NULL), -EINVAL);
    ck_assert_int_eq(rmq_topic_info_get(c, "t", 100, NULL), -EINVAL);
    /* only the valid add went out */
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB) - pubs0, 1);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* An admin call from a callback would wait for the I/O thread itself. */
static void admin_in_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    rmq_topic_info info;

    (void)sub;
    (void)m;
    atomic_store((_Atomic int *)arg, rmq_topic_info_get(c, "t", 100, &info));
}

START_TEST(test_topic_admin_deadlk_in_callback)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    _Atomic int rc = 1;
    rmq_sub *s;

    ck_assert_int_eq(rmq_subscribe(c, "cb.x", NULL, admin_in_cb, &rc, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish(c, "cb.x", "go", 2), 0);
    for (int i = 0; i < 1000 && atomic_load(&rc) == 1; i++)
        usleep(2000);
    ck_assert_int_eq(atomic_load(&rc), -EDEADLK);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Message fields ---- */

START_TEST(test_topic_msg_fields)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_sub *s;
    rmq_msg *m, *cp;
    uint64_t t0 = (uint64_t)time(NULL) * 1000000000ull;

    topic_add(c, "ev", "ev.>", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(c, ">", NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish(c, "ev.a", "one", 3), 0);
    ck_assert_int_eq(rmq_publish(c, "ev.b", "two", 3), 0);
    ck_assert_int_eq(rmq_publish(c, "plain.x", "three", 5), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_uint_eq(rmq_msg_seq(m), 1);
    ck_assert_uint_ge(rmq_msg_time_ns(m), t0);
    ck_assert_uint_eq(rmq_msg_deliveries(m), 0);
    rmq_msg_free(m);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_uint_eq(rmq_msg_seq(m), 2);
    ck_assert_int_eq(rmq_msg_copy(m, &cp), 0);
    ck_assert_uint_eq(rmq_msg_seq(cp), 2);
    ck_assert_uint_eq(rmq_msg_time_ns(cp), rmq_msg_time_ns(m));
    rmq_msg_free(m);
    rmq_msg_free(cp);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_str_eq(rmq_msg_subject(m), "plain.x");
    ck_assert_uint_eq(rmq_msg_seq(m), 0);
    ck_assert_uint_eq(rmq_msg_time_ns(m), 0);
    ck_assert_int_eq(rmq_ack(c, m), -EINVAL); /* not from a consumer */
    ck_assert_int_eq(rmq_nak(c, m), -EINVAL);
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Publish acks (sync) ---- */

static void refuse_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)sub;
    (void)arg;
    rmq_respond(c, m, "not a PubAck", 12);
}

START_TEST(test_topic_publish_ack)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_pub_ack ack;
    rmq_sub *s;
    char long_id[130];
    int64_t t0;

    topic_add(c, "orders", "orders.>", NULL);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "a", 1, NULL, 2000, &ack), 0);
    ck_assert_str_eq(ack.topic, "orders");
    ck_assert_uint_eq(ack.seq, 1);
    ck_assert(!ack.duplicate);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "b", 1, "id-1", 2000, &ack), 0);
    ck_assert_uint_eq(ack.seq, 2);
    ck_assert(!ack.duplicate);
    /* the same msg id again: the fake saw the header, the seq is the first one */
    ck_assert_int_eq(rmq_publish_ack(c, "orders.us", "c", 1, "id-1", 2000, &ack), 0);
    ck_assert_uint_eq(ack.seq, 2);
    ck_assert(ack.duplicate);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.us", "d", 1, "id-2", 2000, NULL), 0);

    /* no topic holds the subject: nobody answers */
    t0 = mono_ms();
    ck_assert_int_eq(rmq_publish_ack(c, "nowhere.x", "e", 1, NULL, 150, &ack), -ETIMEDOUT);
    ck_assert_int_ge(mono_ms() - t0, 140);
    /* a responder that is not the broker */
    ck_assert_int_eq(rmq_subscribe(c, "svc.x", NULL, refuse_cb, NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish_ack(c, "svc.x", "f", 1, NULL, 2000, &ack), RMQ_ENOTFOUND);
    rmq_unsubscribe(s);

    /* broker errors in the PubAck */
    fake_set_puback_error(fs, RINGMQ__ERROR_CODE__ERR_STORE_FULL);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "g", 1, NULL, 2000, &ack), RMQ_ESTOREFULL);
    fake_set_puback_error(fs, RINGMQ__ERROR_CODE__ERR_STORAGE);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "g", 1, NULL, 2000, &ack), -EIO);
    fake_set_puback_error(fs, 0);

    /* checks before sending */
    memset(long_id, 'i', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "h", 1, "", 100, &ack), -EINVAL);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "h", 1, long_id, 100, &ack), -EINVAL);
    long_id[128] = '\0'; /* 128 bytes: fine */
    ck_assert_int_eq(rmq_publish_ack(c, "orders.eu", "h", 1, long_id, 2000, &ack), 0);
    ck_assert_uint_eq(ack.seq, 4);
    ck_assert_int_eq(rmq_publish_ack(c, "orders.*", "h", 1, NULL, 100, &ack), RMQ_ESUBJECT);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Publish acks (async) ---- */

struct acks {
    _Atomic int n, ok, timeouts, closed, other, dup;
    _Atomic int started;
    _Atomic int deadlk;              /* rmq_flush() from the callback: proves the I/O thread */
    _Atomic int closed_events_at_cb; /* RMQ_EV_CLOSED seen when an ECLOSED ran */
    _Atomic uint64_t last_seq;
    uint8_t *seen; /* seq bitmap */
    size_t nseen;
    _Atomic int seen_twice;
};

/* Counts last (n), so a test that waited for n sees everything before it. */
static void ack_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    struct acks *a = arg;

    if (atomic_exchange(&a->started, 1) == 0)
        atomic_store(&a->deadlk, rmq_flush(c, 0) == -EDEADLK);
    if (err == 0) {
        ck_assert_ptr_nonnull(ack);
        atomic_fetch_add(&a->ok, 1);
        atomic_fetch_add(&a->dup, ack->duplicate);
        atomic_store(&a->last_seq, ack->seq);
        if (a->seen && ack->seq < a->nseen) {
            if (a->seen[ack->seq])
                atomic_fetch_add(&a->seen_twice, 1);
            a->seen[ack->seq] = 1;
        }
    } else {
        ck_assert_ptr_null(ack);
        if (err == -ETIMEDOUT)
            atomic_fetch_add(&a->timeouts, 1);
        else if (err == RMQ_ECLOSED) {
            atomic_fetch_add(&a->closed, 1);
            atomic_fetch_add(&a->closed_events_at_cb, atomic_load(&closed_events));
        } else
            atomic_fetch_add(&a->other, 1);
    }
    atomic_fetch_add(&a->n, 1);
}

START_TEST(test_topic_ack_async_window)
{
    enum { N = 20000, WINDOW = 1000 };
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    struct acks a = {.seen = calloc(N + 1, 1), .nseen = N + 1};

    topic_add(c, "bulk", "bulk.>", NULL);
    for (int i = 0; i < N; i++) {
        while (i - atomic_load(&a.n) >= WINDOW)
            usleep(100);
        ck_assert_int_eq(rmq_publish_ack_async(c, "bulk.x", "payload", 7, NULL, 10000, ack_cb, &a),
                         0);
    }
    ck_assert(wait_atomic(&a.n, N, 20000));
    ck_assert_int_eq(atomic_load(&a.ok), N);
    ck_assert_int_eq(atomic_load(&a.seen_twice), 0);
    for (int s = 1; s <= N; s++)
        ck_assert_msg(a.seen[s], "seq %d never acked", s);
    ck_assert_int_eq(atomic_load(&a.deadlk), 1);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&a.n), N); /* exactly one callback each */
    rmq_close(c);
    ck_assert_int_eq(atomic_load(&a.closed), 0);
    free(a.seen);
    fake_stop(fs);
}
END_TEST

/* Timeouts fire in deadline order, whatever the order of the calls. */
static _Atomic int order_tags[4];
static _Atomic int order_n;
static _Atomic int64_t order_ms[4];

static void order_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    int i = atomic_fetch_add(&order_n, 1);

    (void)c;
    ck_assert_int_eq(err, -ETIMEDOUT);
    ck_assert_ptr_null(ack);
    if (i < 4) {
        atomic_store(&order_tags[i], (int)(intptr_t)arg);
        atomic_store(&order_ms[i], mono_ms());
    }
}

START_TEST(test_topic_ack_async_timeout)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    int64_t t0 = mono_ms();

    /* nobody answers on these subjects */
    ck_assert_int_eq(rmq_publish_ack_async(c, "none.a", "x", 1, NULL, 400, order_cb, (void *)3), 0);
    ck_assert_int_eq(rmq_publish_ack_async(c, "none.b", "x", 1, "id", 100, order_cb, (void *)1), 0);
    ck_assert_int_eq(rmq_publish_ack_async(c, "none.c", "x", 1, NULL, 250, order_cb, (void *)2), 0);
    ck_assert(wait_atomic(&order_n, 3, 3000));
    ck_assert_int_eq(atomic_load(&order_tags[0]), 1);
    ck_assert_int_eq(atomic_load(&order_tags[1]), 2);
    ck_assert_int_eq(atomic_load(&order_tags[2]), 3);
    /* on time: not before the deadline, and not much after */
    ck_assert_int_ge(atomic_load(&order_ms[0]) - t0, 95);
    ck_assert_int_lt(atomic_load(&order_ms[0]) - t0, 350);
    ck_assert_int_ge(atomic_load(&order_ms[2]) - t0, 395);
    ck_assert_int_lt(atomic_load(&order_ms[2]) - t0, 900);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&order_n), 3);
    rmq_close(c);
    ck_assert_int_eq(atomic_load(&order_n), 3); /* nothing left for the close */
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_ack_async_close)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    struct acks a = {0};

    topic_add(c, "t", "t.>", NULL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, -1, ack_cb, &a), 0);
    ck_assert(wait_atomic(&a.ok, 1, 2000));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rmq_publish_ack_async(c, "none.x", "x", 1, NULL, -1, ack_cb, &a), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&a.n), 1); /* no timeout: they wait */
    atomic_store(&closed_events, 0);
    ck_assert_int_eq(rmq_close(c), 0);
    /* every outstanding one got RMQ_ECLOSED, before RMQ_EV_CLOSED */
    ck_assert_int_eq(atomic_load(&a.n), 6);
    ck_assert_int_eq(atomic_load(&a.closed), 5);
    ck_assert_int_eq(atomic_load(&a.closed_events_at_cb), 0);
    ck_assert_int_eq(atomic_load(&closed_events), 1);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_ack_async_errors)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    struct acks a = {0};

    topic_add(c, "t", "t.>", NULL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, 100, NULL, &a), -EINVAL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, -2, ack_cb, &a), -EINVAL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, "", 100, ack_cb, &a), -EINVAL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.*", "x", 1, NULL, 100, ack_cb, &a), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_publish_ack_async(NULL, "t.x", "x", 1, NULL, 100, ack_cb, &a), -EINVAL);
    char big[2000];
    memset(big, 'b', sizeof(big));
    fake_stop(fs); /* max_payload stays at 1 MiB; check -EMSGSIZE on a new fake */
    struct fake_cfg cfg = {.max_payload = 1000};
    fs = fake_start(&cfg);
    rmq_close(c);
    c = connect_fake(fs);
    topic_add(c, "t", "t.>", NULL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", big, sizeof(big), NULL, 100, ack_cb, &a),
                     -EMSGSIZE);
    /* the duplicate flag and broker errors reach the callback */
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, "m1", 2000, ack_cb, &a), 0);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, "m1", 2000, ack_cb, &a), 0);
    ck_assert(wait_atomic(&a.ok, 2, 2000));
    ck_assert_int_eq(atomic_load(&a.dup), 1);
    fake_set_puback_error(fs, RINGMQ__ERROR_CODE__ERR_STORE_FULL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, 2000, ack_cb, &a), 0);
    ck_assert(wait_atomic(&a.n, 3, 2000));
    ck_assert_int_eq(atomic_load(&a.other), 1);
    ck_assert_int_eq(atomic_load(&a.n), 3); /* none for the refused calls */
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* An ack callback may publish the next one (a pipeline driven from the I/O thread). */
struct chain {
    _Atomic int done;
    int left;
};

static void chain_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    struct chain *ch = arg;

    ck_assert_int_eq(err, 0);
    (void)ack;
    if (--ch->left > 0)
        ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, 2000, chain_cb, ch), 0);
    else
        atomic_store(&ch->done, 1);
}

START_TEST(test_topic_ack_async_from_callback)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    struct chain ch = {.left = 50};

    topic_add(c, "t", "t.>", NULL);
    ck_assert_int_eq(rmq_publish_ack_async(c, "t.x", "x", 1, NULL, 2000, chain_cb, &ch), 0);
    ck_assert(wait_atomic(&ch.done, 1, 5000));
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Topic subscriptions ---- */

START_TEST(test_topic_subscribe_frames)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_replay_opts seq = {.start = RMQ_START_SEQ, .seq = 42};
    rmq_replay_opts tm = {.start = RMQ_START_TIME, .time_ns = 1700000000123456789ull};
    rmq_replay_opts last = {.start = RMQ_START_LAST};
    rmq_replay_opts bad = {.start = (enum rmq_start)7};
    rmq_sub *s[4], *x = NULL;
    Ringmq__Frame *f;

    topic_add(c, "t", "t.>", NULL);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", "t.seq", &seq, NULL, NULL, &s[0]), 0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", "t.time", &tm, NULL, NULL, &s[1]), 0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", "t.last", &last, NULL, NULL, &s[2]), 0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", ">", NULL, NULL, NULL, &s[3]), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);

    f = sub_frame(fs, "t.seq");
    ck_assert_str_eq(f->sub->topic, "t");
    ck_assert(f->sub->has_start);
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_SEQ);
    ck_assert(f->sub->has_start_seq);
    ck_assert_uint_eq(f->sub->start_seq, 42);
    ck_assert(!f->sub->has_start_time_ns);
    ck_assert_ptr_null(f->sub->durable);
    ck_assert_ptr_null(f->sub->queue);
    ringmq__frame__free_unpacked(f, NULL);
    f = sub_frame(fs, "t.time");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_TIME);
    ck_assert(f->sub->has_start_time_ns);
    ck_assert_uint_eq(f->sub->start_time_ns, 1700000000123456789ull);
    ck_assert(!f->sub->has_start_seq);
    ringmq__frame__free_unpacked(f, NULL);
    f = sub_frame(fs, "t.last");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_LAST);
    ringmq__frame__free_unpacked(f, NULL);
    f = sub_frame(fs, ">");
    ck_assert_str_eq(f->sub->topic, "t");
    ck_assert(f->sub->has_start);
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_NEW);
    ringmq__frame__free_unpacked(f, NULL);

    /* checks before sending */
    uint64_t subs0 = fake_count(fs, CODEC_K_SUB);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", ">", &bad, NULL, NULL, &x), -EINVAL);
    ck_assert_int_eq(rmq_subscribe_topic(c, "a.b", ">", NULL, NULL, NULL, &x), -EINVAL);
    ck_assert_int_eq(rmq_subscribe_topic(c, NULL, ">", NULL, NULL, NULL, &x), -EINVAL);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", "a..b", NULL, NULL, NULL, &x), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_subscribe_topic(c, "t", ">", NULL, NULL, NULL, NULL), -EINVAL);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_SUB), subs0);
    for (int i = 0; i < 4; i++)
        rmq_unsubscribe(s[i]);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_subscribe_unknown_topic)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_sub *s;
    rmq_msg *m;

    ck_assert_int_eq(rmq_subscribe_topic(c, "missing", ">", NULL, NULL, NULL, &s), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), RMQ_ENOTFOUND);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_subscribe_live_and_callback)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_sub *s, *other;
    rmq_msg *m;

    topic_add(c, "a", "a.>", NULL);
    topic_add(c, "b", "b.>", NULL);
    ck_assert_int_eq(rmq_subscribe_topic(c, "a", "a.x", NULL, NULL, NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "b", ">", NULL, NULL, NULL, &other), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish(c, "a.y", "no", 2), 0); /* not the pattern */
    ck_assert_int_eq(rmq_publish(c, "a.x", "yes", 3), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_str_eq(rmq_msg_subject(m), "a.x");
    ck_assert_uint_eq(rmq_msg_seq(m), 2);
    rmq_msg_free(m);
    ck_assert_int_eq(rmq_sub_next(other, 100, &m), -ETIMEDOUT); /* topic b got nothing */
    rmq_unsubscribe(s);
    rmq_unsubscribe(other);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_resubscribe_resumes)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    rmq_replay_opts tm = {.start = RMQ_START_TIME, .time_ns = 1234567890};
    struct sub_count sc = {fs, 0};
    rmq_sub *s, *idle, *fresh;
    rmq_msg *m;
    Ringmq__Frame *f;
    struct timespec t0, t1;

    atomic_store(&reconnects, 0);
    topic_add(c, "rs", "rs.>", NULL);
    ck_assert_int_eq(rmq_subscribe_topic(c, "rs", "rs.>", &all, NULL, NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "rs", "rs.idle", &tm, NULL, NULL, &idle), 0);
    clock_gettime(CLOCK_REALTIME, &t0);
    ck_assert_int_eq(rmq_subscribe_topic(c, "rs", "rs.new", NULL, NULL, NULL, &fresh), 0);
    clock_gettime(CLOCK_REALTIME, &t1);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rmq_publish(c, "rs.x", "m", 1), 0);
    for (uint64_t want = 1; want <= 3; want++) {
        ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
        ck_assert_uint_eq(rmq_msg_seq(m), want);
        rmq_msg_free(m);
    }
    /* The first SUBSCRIBE of a START_NEW replay says NEW. */
    f = sub_frame(fs, "rs.new");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_NEW);
    ringmq__frame__free_unpacked(f, NULL);
    sc.want = fake_count(fs, CODEC_K_SUB) + 3;
    fake_kick(fs);
    ck_assert(wait_atomic(&reconnects, 1, 3000));
    ck_assert(fake_wait(subs_seen, &sc, 2000));

    /* resumes after the last seq delivered */
    f = sub_frame(fs, "rs.>");
    ck_assert_str_eq(f->sub->topic, "rs");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_SEQ);
    ck_assert(f->sub->has_start_seq);
    ck_assert_uint_eq(f->sub->start_seq, 4);
    ringmq__frame__free_unpacked(f, NULL);
    /* one that delivered nothing starts where it was asked to */
    f = sub_frame(fs, "rs.idle");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_TIME);
    ck_assert_uint_eq(f->sub->start_time_ns, 1234567890);
    ringmq__frame__free_unpacked(f, NULL);
    /* a START_NEW one that delivered nothing: new since it was made, so
     * what was stored during the reconnect is not skipped */
    f = sub_frame(fs, "rs.new");
    ck_assert_int_eq(f->sub->start, RINGMQ__START_POLICY__START_TIME);
    ck_assert_uint_ge(f->sub->start_time_ns,
                      (uint64_t)t0.tv_sec * 1000000000ull + (uint64_t)t0.tv_nsec);
    ck_assert_uint_le(f->sub->start_time_ns,
                      (uint64_t)t1.tv_sec * 1000000000ull + (uint64_t)t1.tv_nsec);
    ringmq__frame__free_unpacked(f, NULL);

    /* and goes on live */
    ck_assert_int_eq(rmq_publish(c, "rs.x", "m", 1), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_uint_eq(rmq_msg_seq(m), 4);
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    rmq_unsubscribe(idle);
    rmq_unsubscribe(fresh);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Durable consumers ---- */

START_TEST(test_topic_consume_frames)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_consumer_opts o = {.max_inflight = 10, .ack_wait_ms = 1500, .max_deliver = 3};
    struct sub_count sc = {fs, 0};
    rmq_sub *s, *d, *x = NULL;
    Ringmq__Frame *f;

    atomic_store(&reconnects, 0);
    topic_add(c, "jobs", "jobs.>", NULL);
    topic_add(c, "misc", "misc.>", NULL);
    ck_assert_int_eq(rmq_consume(c, "jobs", "workers", &o, NULL, NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int round = 0; round < 2; round++) {
        f = sub_frame(fs, ">");
        ck_assert_str_eq(f->sub->pattern, ">");
        ck_assert_str_eq(f->sub->topic, "jobs");
        ck_assert_str_eq(f->sub->durable, "workers");
        ck_assert(f->sub->has_max_inflight);
        ck_assert_uint_eq(f->sub->max_inflight, 10);
        ck_assert(f->sub->has_ack_wait_ms);
        ck_assert_uint_eq(f->sub->ack_wait_ms, 1500);
        ck_assert(f->sub->has_max_deliver);
        ck_assert_uint_eq(f->sub->max_deliver, 3);
        ck_assert(!f->sub->has_start);
        ck_assert_ptr_null(f->sub->queue);
        ringmq__frame__free_unpacked(f, NULL);
        if (round == 1)
            break;
        /* a binding is re-sent as it was after a reconnect */
        sc.want = fake_count(fs, CODEC_K_SUB) + 1;
        fake_kick(fs);
        ck_assert(wait_atomic(&reconnects, 1, 3000));
        ck_assert(fake_wait(subs_seen, &sc, 2000));
    }
    /* NULL options: the broker's defaults, nothing sent */
    rmq_unsubscribe(s);
    ck_assert_int_eq(rmq_consume(c, "misc", "d", NULL, NULL, NULL, &d), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    f = sub_frame(fs, ">");
    ck_assert_str_eq(f->sub->topic, "misc");
    ck_assert(!f->sub->has_max_inflight && !f->sub->has_ack_wait_ms && !f->sub->has_max_deliver);
    ringmq__frame__free_unpacked(f, NULL);
    rmq_unsubscribe(d);

    ck_assert_int_eq(rmq_consume(c, "jobs", "a b", NULL, NULL, NULL, &x), -EINVAL);
    ck_assert_int_eq(rmq_consume(c, "jobs", NULL, NULL, NULL, NULL, &x), -EINVAL);
    ck_assert_int_eq(rmq_consume(c, "", "w", NULL, NULL, NULL, &x), -EINVAL);
    ck_assert_ptr_null(x);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_topic_consume_ack_nak)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    rmq_consumer_opts o = {.max_inflight = 5};
    rmq_consumer_info *ci;
    rmq_sub *s;
    rmq_msg *m1, *m2;
    uint64_t naks;
    size_t n;

    topic_add(c, "jobs", "jobs.>", NULL);
    ck_assert_int_eq(rmq_consume(c, "jobs", "w", &o, NULL, NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish(c, "jobs.a", "one", 3), 0);
    ck_assert_int_eq(rmq_publish(c, "jobs.b", "two", 3), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m1), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m2), 0);
    ck_assert_uint_eq(rmq_msg_seq(m1), 1);
    ck_assert_uint_eq(rmq_msg_deliveries(m1), 1);
    ck_assert_ptr_nonnull(rmq_msg_reply(m1));
    ck_assert_int_eq(rmq_ack(c, m1), 0);
    ck_assert_int_eq(rmq_nak(c, m2), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_acks(fs, &naks), 1);
    ck_assert_uint_eq(naks, 1);
    ck_assert_int_eq(rmq_ack(NULL, m1), -EINVAL);
    ck_assert_int_eq(rmq_ack(c, NULL), -EINVAL);
    rmq_msg_free(m1);
    rmq_msg_free(m2);

    ck_assert_int_eq(rmq_consumer_list(c, "jobs", 2000, &ci, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ci[0].topic, "jobs");
    ck_assert_str_eq(ci[0].name, "w");
    ck_assert_uint_eq(ci[0].ack_floor, 1);
    ck_assert_uint_eq(ci[0].max_inflight, 5);
    ck_assert_uint_eq(ci[0].ack_wait_ms, 30000);
    ck_assert_uint_eq(ci[0].members, 1);
    free(ci);
    ck_assert_int_eq(rmq_consumer_list(c, "nope", 2000, &ci, &n), RMQ_ENOTFOUND);
    rmq_unsubscribe(s);
    ck_assert_int_eq(rmq_consumer_rm(c, "jobs", "w", 2000), 0);
    ck_assert_int_eq(rmq_consumer_rm(c, "jobs", "w", 2000), RMQ_ENOTFOUND);
    ck_assert_int_eq(rmq_consumer_list(c, "jobs", 2000, &ci, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(ci);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* Acking from the message callback, on the borrowed message. */
static void ack_in_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)sub;
    if (rmq_msg_deliveries(m) == 1 && rmq_ack(c, m) == 0)
        atomic_fetch_add((_Atomic int *)arg, 1);
}

START_TEST(test_topic_consume_callback)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs);
    _Atomic int acked = 0;
    rmq_sub *s1, *s2;

    topic_add(c, "jobs", "jobs.>", NULL);
    /* two members of one consumer share the messages */
    ck_assert_int_eq(rmq_consume(c, "jobs", "w", NULL, ack_in_cb, &acked, &s1), 0);
    ck_assert_int_eq(rmq_consume(c, "jobs", "w", NULL, ack_in_cb, &acked, &s2), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(rmq_publish(c, "jobs.x", "j", 1), 0);
    ck_assert(wait_atomic(&acked, 10, 2000));
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_acks(fs, NULL), 10);
    ck_assert_uint_eq(rmq_sub_delivered(s1) + rmq_sub_delivered(s2), 10);
    ck_assert_uint_gt(rmq_sub_delivered(s1), 0);
    ck_assert_uint_gt(rmq_sub_delivered(s2), 0);
    rmq_unsubscribe(s1);
    rmq_unsubscribe(s2);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Suite ---- */

Suite *client_topic_suite(void);

/* The durable-topic suite: TCases admin, ack and sub. */
Suite *client_topic_suite(void)
{
    Suite *s = suite_create("client_topic");
    TCase *admin = tcase_create("admin");
    TCase *ack = tcase_create("ack");
    TCase *sub = tcase_create("sub");

    tcase_set_timeout(admin, 30);
    tcase_set_timeout(ack, 60);
    tcase_set_timeout(sub, 30);
    tcase_add_test(admin, test_topic_admin_add_info_list_rm);
    tcase_add_test(admin, test_topic_admin_checks_before_sending);
    tcase_add_test(admin, test_topic_admin_deadlk_in_callback);
    tcase_add_test(admin, test_topic_msg_fields);
    tcase_add_test(ack, test_topic_publish_ack);
    tcase_add_test(ack, test_topic_ack_async_window);
    tcase_add_test(ack, test_topic_ack_async_timeout);
    tcase_add_test(ack, test_topic_ack_async_close);
    tcase_add_test(ack, test_topic_ack_async_errors);
    tcase_add_test(ack, test_topic_ack_async_from_callback);
    tcase_add_test(sub, test_topic_subscribe_frames);
    tcase_add_test(sub, test_topic_subscribe_unknown_topic);
    tcase_add_test(sub, test_topic_subscribe_live_and_callback);
    tcase_add_test(sub, test_topic_resubscribe_resumes);
    tcase_add_test(sub, test_topic_consume_frames);
    tcase_add_test(sub, test_topic_consume_ack_nak);
    tcase_add_test(sub, test_topic_consume_callback);
    suite_add_tcase(s, admin);
    suite_add_tcase(s, ack);
    suite_add_tcase(s, sub);
    return s;
}

/* Run every test; exit 0 when all pass (CK_RUN_CASE=admin|ack|sub picks one). */
int main(void)
{
    SRunner *sr = srunner_create(client_topic_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
