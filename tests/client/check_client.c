/*
 * check_client.c - unit tests of libringmq (client/) that need no broker.
 *
 * Options parsing, error strings and client-side validation are tested
 * directly; everything that needs a peer runs against the in-process fake
 * server of fake_server.c on 127.0.0.1:0 (reconnect, flush, request/reply
 * routing, server ERROR handling, auto-unsubscribe counting, pending limits,
 * coalescing). Only loopback addresses are used.
 *
 * TCases: core (behaviour), limits (sizes, buffers, bounded queues).
 * Each test runs in its own forked child (Check's default), so the client
 * and fake server threads of one test never meet another test's.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Events and errors seen by the callbacks, for the tests to wait on. */
struct seen {
    _Atomic int disconnected;
    _Atomic int reconnected;
    _Atomic int closed;
    _Atomic int last_ev_err;
    _Atomic int errors;
    _Atomic int last_err;
    _Atomic(rmq_sub *) last_err_sub;
};

static void on_event(rmq_client *c, int ev, int err, void *arg)
{
    struct seen *s = arg;
    (void)c;
    atomic_store(&s->last_ev_err, err);
    if (ev == RMQ_EV_DISCONNECTED)
        atomic_fetch_add(&s->disconnected, 1);
    else if (ev == RMQ_EV_RECONNECTED)
        atomic_fetch_add(&s->reconnected, 1);
    else if (ev == RMQ_EV_CLOSED)
        atomic_fetch_add(&s->closed, 1);
}

static void on_error(rmq_client *c, rmq_sub *sub, int err, const char *text, void *arg)
{
    struct seen *s = arg;
    (void)c;
    ck_assert_ptr_nonnull(text);
    atomic_store(&s->last_err, err);
    atomic_store(&s->last_err_sub, sub);
    atomic_fetch_add(&s->errors, 1);
}

static rmq_opts *opts_for(const struct fake_server *fs, struct seen *seen)
{
    rmq_opts *o;
    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, fake_addr(fs)), 0);
    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 1000), 0);
    ck_assert_int_eq(rmq_opts_set_reconnect_wait(o, 10, 50), 0);
    if (seen) {
        rmq_opts_set_event_cb(o, on_event, seen);
        rmq_opts_set_error_cb(o, on_error, seen);
    }
    return o;
}

static rmq_client *connect_fake(const struct fake_server *fs, struct seen *seen)
{
    rmq_opts *o = opts_for(fs, seen);
    rmq_client *c = NULL;
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

struct subs_arg {
    struct fake_server *fs;
    int want;
};

static bool subs_are(void *arg)
{
    struct subs_arg *a = arg;
    return fake_subs(a->fs) == a->want;
}

/* A port on 127.0.0.1 with nothing listening (bound, then closed). */
static uint16_t closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    return ntohs(a.sin_port);
}

/* Callback subscription that counts and keeps the last payload. */
struct counter {
    _Atomic int n;
    char last[256];
    pthread_mutex_t mu;
};

static void count_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct counter *k = arg;
    (void)c;
    (void)sub;
    pthread_mutex_lock(&k->mu);
    snprintf(k->last, sizeof(k->last), "%.*s", (int)rmq_msg_len(m), (const char *)rmq_msg_data(m));
    pthread_mutex_unlock(&k->mu);
    atomic_fetch_add(&k->n, 1);
}

/* ---- Options ---- */

START_TEST(test_client_opts_servers)
{
    rmq_opts *o;
    const char *host;
    uint16_t port;

    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_uint_eq(rmq_opts_server(o, 0, &host, &port), 1);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 7400);
    ck_assert_int_eq(rmq_opts_set_servers(o, "127.0.0.1:7400, [::1]:7401,tcp://localhost:7402 ,"
                                             "10.0.0.1:65535"),
                     0);
    ck_assert_uint_eq(rmq_opts_server(o, 0, NULL, NULL), 4);
    rmq_opts_server(o, 1, &host, &port);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 7401);
    rmq_opts_server(o, 2, &host, &port);
    ck_assert_str_eq(host, "localhost");
    ck_assert_uint_eq(port, 7402);
    rmq_opts_server(o, 3, &host, &port);
    ck_assert_str_eq(host, "10.0.0.1");
    ck_assert_uint_eq(port, 65535);
    rmq_opts_free(o);
    rmq_opts_free(NULL);
}
END_TEST

START_TEST(test_client_opts_bad)
{
    static const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":7400",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:74a0",
        "127.0.0.1:7400,",
        "a b:1",
        "::1:7400",
        "[::1]7400",
        "[::1",
        "127.0.0.1:123456",
        "127.0.0.1:7400,,127.0.0.1:7401",
        "tcp://:1",
    };
    rmq_opts *o;
    const char *host;
    uint16_t port;

    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, "127.0.0.1:9"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(rmq_opts_set_servers(o, bad[i]) == -EINVAL, "accepted '%s'", bad[i]);
    ck_assert_int_eq(rmq_opts_set_servers(o, NULL), -EINVAL);
    /* the old list is kept */
    ck_assert_uint_eq(rmq_opts_server(o, 0, &host, &port), 1);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 9);

    char many[64 * 16 + 32] = "";
    for (int i = 0; i < 65; i++)
        strcat(many, i ? ",h:1" : "h:1");
    ck_assert_int_eq(rmq_opts_set_servers(o, many), -EINVAL);

    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 0), -EINVAL);
    ck_assert_int_eq(rmq_opts_set_reconnect_wait(o, 100, 50), -EINVAL);
    ck_assert_int_eq(rmq_opts_set_max_reconnect(o, -2), -EINVAL);
    ck_assert_int_eq(rmq_opts_set_send_buffer(o, 10), -EINVAL);
    ck_assert_int_eq(rmq_opts_set_pending_limits(o, 0, 10), -EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(rmq_opts_set_name(o, longname), -EINVAL);
    ck_assert_int_eq(rmq_opts_set_name(o, "ok"), 0);
    ck_assert_int_eq(rmq_opts_set_name(o, NULL), 0);
    ck_assert_int_eq(rmq_opts_new(NULL), -EINVAL);
    ck_assert_int_eq(rmq_connect(o, NULL), -EINVAL);
    rmq_opts_free(o);

    rmq_client *c = NULL;
    ck_assert_int_eq(rmq_connect_to("nonsense", &c), -EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

/* ---- Errors ---- */

START_TEST(test_client_strerror)
{
    static const int codes[] = {RMQ_EFRAME, RMQ_ESUBJECT, RMQ_ENOTFOUND, RMQ_ESTOREFULL, RMQ_ESLOW,
                                RMQ_EAUTH,  RMQ_ESERVER,  RMQ_EKIND,     RMQ_ECLOSED};
    const char *unknown = rmq_strerror(RMQ_ERRBASE - 1000);

    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(rmq_strerror(0), "success");
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *s = rmq_strerror(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, unknown);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, rmq_strerror(codes[j]));
    }
    ck_assert_str_eq(rmq_strerror(-ECONNREFUSED), "Connection refused");
    ck_assert_ptr_nonnull(rmq_strerror(-ETIMEDOUT));
    ck_assert_ptr_nonnull(rmq_strerror(-4095));
    ck_assert_ptr_nonnull(rmq_strerror(12345));
    ck_assert_str_eq(rmq_version(), RMQ_CLIENT_VERSION);
}
END_TEST

/* ---- Connect ---- */

START_TEST(test_client_connect_refused)
{
    char addr[64];
    rmq_opts *o;
    rmq_client *c = NULL;
    int64_t t0;

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)closed_port());
    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, addr), 0);
    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 500), 0);
    t0 = mono_ms();
    ck_assert_int_eq(rmq_connect(o, &c), -ECONNREFUSED);
    ck_assert_int_lt(mono_ms() - t0, 500);
    ck_assert_ptr_null(c);
    rmq_opts_free(o);
}
END_TEST

START_TEST(test_client_connect_timeout)
{
    struct fake_cfg cfg = {.no_info = true};
    struct fake_server *fs = fake_start(&cfg);
    rmq_opts *o = opts_for(fs, NULL);
    rmq_client *c = NULL;
    int64_t t0;

    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 200), 0);
    t0 = mono_ms();
    ck_assert_int_eq(rmq_connect(o, &c), -ETIMEDOUT);
    ck_assert_int_ge(mono_ms() - t0, 190);
    ck_assert_int_lt(mono_ms() - t0, 1000);
    rmq_opts_free(o);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_connect_failover)
{
    struct fake_server *fs = fake_start(NULL);
    char list[128];
    rmq_opts *o;
    rmq_client *c = NULL;

    snprintf(list, sizeof(list), "127.0.0.1:%u,%s", (unsigned)closed_port(), fake_addr(fs));
    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, list), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    ck_assert(rmq_client_is_connected(c));
    ck_assert_uint_eq(rmq_client_max_payload(c), 1u << 20);
    ck_assert_int_eq(rmq_close(c), 0);
    ck_assert_int_eq(rmq_close(NULL), 0);
    rmq_opts_free(o);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_auth)
{
    struct fake_cfg cfg = {.token = "s3cret"};
    struct fake_server *fs = fake_start(&cfg);
    rmq_opts *o = opts_for(fs, NULL);
    rmq_client *c = NULL;
    char name[64];

    ck_assert_int_eq(rmq_connect(o, &c), RMQ_EAUTH);
    ck_assert_int_eq(rmq_opts_set_token(o, "wrong"), 0);
    ck_assert_int_eq(rmq_connect(o, &c), RMQ_EAUTH);
    ck_assert_int_eq(rmq_opts_set_token(o, "s3cret"), 0);
    ck_assert_int_eq(rmq_opts_set_name(o, "tester"), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    fake_last_name(fs, name, sizeof(name));
    ck_assert_str_eq(name, "tester");
    rmq_close(c);
    rmq_opts_free(o);
    fake_stop(fs);
}
END_TEST

/* ---- Validation before anything is sent ---- */

START_TEST(test_client_subject_invalid)
{
    static const char *bad_subj[] = {"",    ".",   "a.", ".a", "a..b", "a b",
                                     "a.*", "a.>", "*",  ">",  "a\tb", "a.b*"};
    static const char *bad_pat[] = {"", "a..b", "a.>.b", "a*", ">b", "a. b", "a.", "*.>.c"};
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    rmq_sub *s = NULL;
    rmq_msg *m = NULL;
    char big[300];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (size_t i = 0; i < sizeof(bad_subj) / sizeof(bad_subj[0]); i++) {
        ck_assert_int_eq(rmq_publish(c, bad_subj[i], "x", 1), RMQ_ESUBJECT);
        ck_assert_int_eq(rmq_request(c, bad_subj[i], "x", 1, 100, &m), RMQ_ESUBJECT);
    }
    ck_assert_int_eq(rmq_publish(c, big, "x", 1), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_publish_msg(c, "ok", "bad reply", NULL, 0, "x", 1), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_publish_msg(c, "ok", "r.*", NULL, 0, "x", 1), RMQ_ESUBJECT);
    for (size_t i = 0; i < sizeof(bad_pat) / sizeof(bad_pat[0]); i++) {
        ck_assert_int_eq(rmq_subscribe_sync(c, bad_pat[i], NULL, &s), RMQ_ESUBJECT);
        ck_assert_int_eq(rmq_subscribe(c, bad_pat[i], NULL, count_cb, NULL, &s), RMQ_ESUBJECT);
    }
    ck_assert_int_eq(rmq_subscribe_sync(c, "ok.>", "bad queue", &s), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_subscribe_sync(c, "ok.>", "q.*", &s), RMQ_ESUBJECT);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rmq_publish(c, NULL, "x", 1), -EINVAL);
    ck_assert_int_eq(rmq_publish(c, "a", NULL, 1), -EINVAL);
    ck_assert_int_eq(rmq_subscribe(c, "a", NULL, NULL, NULL, &s), -EINVAL);
    rmq_header h = {.key = "", .value = "v", .value_len = 1};
    ck_assert_int_eq(rmq_publish_msg(c, "ok", NULL, &h, 1, "x", 1), -EINVAL);
    ck_assert_int_eq(rmq_publish_msg(c, "ok", NULL, &h, RMQ_MAX_HEADERS + 1, "x", 1), -EINVAL);

    /* valid ones are accepted, including patterns with wildcards */
    ck_assert_int_eq(rmq_subscribe_sync(c, "a.*.c.>", "workers", &s), 0);
    ck_assert_int_eq(rmq_publish(c, "a.b.c.d", NULL, 0), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    /* the fake saw exactly the valid frames */
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB), 1);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_SUB), 1);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Messages ---- */

START_TEST(test_client_msg_accessors)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    rmq_sub *s;
    rmq_msg *m, *cp;
    const void *v;
    size_t vl, pos = 0, klen;
    const char *key;
    rmq_header hdrs[] = {
        {.key = "trace", .value = "abc", .value_len = 3},
        {.key = "flag", .value = NULL, .value_len = 0},
        {.key = "bin", .value = "\0\1\2", .value_len = 3},
    };

    ck_assert_int_eq(rmq_subscribe_sync(c, "orders.>", NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish_msg(c, "orders.eu", "reply.to.me", hdrs, 3, "hello", 5), 0);
    ck_assert_int_eq(rmq_publish(c, "orders.us", NULL, 0), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_str_eq(rmq_msg_subject(m), "orders.eu");
    ck_assert_str_eq(rmq_msg_reply(m), "reply.to.me");
    ck_assert_uint_eq(rmq_msg_len(m), 5);
    ck_assert_mem_eq(rmq_msg_data(m), "hello", 5);
    ck_assert_uint_eq(rmq_msg_header_count(m), 3);
    ck_assert_int_eq(rmq_msg_header(m, "trace", &v, &vl), 0);
    ck_assert_uint_eq(vl, 3);
    ck_assert_mem_eq(v, "abc", 3);
    ck_assert_int_eq(rmq_msg_header(m, "flag", &v, &vl), 0);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(rmq_msg_header(m, "bin", &v, &vl), 0);
    ck_assert_mem_eq(v, "\0\1\2", 3);
    ck_assert_int_eq(rmq_msg_header(m, "missing", &v, &vl), RMQ_ENOTFOUND);
    ck_assert_int_eq(rmq_msg_header(m, "trac", NULL, NULL), RMQ_ENOTFOUND);
    ck_assert(rmq_msg_header_next(m, &pos, &key, &klen, &v, &vl));
    ck_assert_uint_eq(klen, 5);
    ck_assert_mem_eq(key, "trace", 5);
    ck_assert(rmq_msg_header_next(m, &pos, &key, &klen, &v, &vl));
    ck_assert(rmq_msg_header_next(m, &pos, &key, &klen, &v, &vl));
    ck_assert_mem_eq(key, "bin", 3);
    ck_assert(!rmq_msg_header_next(m, &pos, &key, &klen, &v, &vl));

    ck_assert_int_eq(rmq_msg_copy(m, &cp), 0);
    rmq_msg_free(m);
    ck_assert_str_eq(rmq_msg_subject(cp), "orders.eu");
    ck_assert_str_eq(rmq_msg_reply(cp), "reply.to.me");
    ck_assert_mem_eq(rmq_msg_data(cp), "hello", 5);
    ck_assert_int_eq(rmq_msg_header(cp, "trace", &v, &vl), 0);
    ck_assert_mem_eq(v, "abc", 3);
    rmq_msg_free(cp);

    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    ck_assert_str_eq(rmq_msg_subject(m), "orders.us");
    ck_assert_ptr_null(rmq_msg_reply(m));
    ck_assert_uint_eq(rmq_msg_len(m), 0);
    ck_assert_ptr_nonnull(rmq_msg_data(m));
    ck_assert_uint_eq(rmq_msg_header_count(m), 0);
    ck_assert_int_eq(rmq_respond(c, m, "x", 1), -EINVAL);
    rmq_msg_free(m);
    rmq_msg_free(NULL);
    ck_assert_int_eq(rmq_sub_next(s, 0, &m), -ETIMEDOUT);
    ck_assert_uint_eq(rmq_sub_delivered(s), 2);

    rmq_stats st;
    ck_assert_int_eq(rmq_client_stats(c, &st), 0);
    ck_assert_uint_eq(st.out_msgs, 2);
    ck_assert_uint_eq(st.out_bytes, 5);
    ck_assert_uint_eq(st.in_msgs, 2);
    ck_assert_uint_eq(st.in_bytes, 5);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Callbacks ---- */

struct cb_probe {
    _Atomic int n;
    int flush_rc, req_rc, close_rc, next_rc, pub_rc, sub_rc;
    rmq_sub *sync_sub;
};

static void probe_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct cb_probe *p = arg;
    rmq_msg *r = NULL;
    rmq_sub *s2 = NULL;

    (void)sub;
    (void)m;
    p->flush_rc = rmq_flush(c, 100);
    p->req_rc = rmq_request(c, "x", "y", 1, 100, &r);
    p->close_rc = rmq_close(c);
    p->next_rc = rmq_sub_next(p->sync_sub, 100, &r);
    p->pub_rc = rmq_publish(c, "probe.out", "from-cb", 7);
    p->sub_rc = rmq_subscribe(c, "probe.more", NULL, count_cb, NULL, &s2);
    if (s2)
        rmq_unsubscribe(s2);
    atomic_fetch_add(&p->n, 1);
}

START_TEST(test_client_callback_rules)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct cb_probe p = {0};
    rmq_sub *s, *out;
    rmq_msg *m;

    ck_assert_int_eq(rmq_subscribe_sync(c, "probe.out", NULL, &out), 0);
    p.sync_sub = out;
    ck_assert_int_eq(rmq_subscribe(c, "probe.in", NULL, probe_cb, &p, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_publish(c, "probe.in", "go", 2), 0);
    ck_assert(wait_atomic(&p.n, 1, 3000));
    ck_assert_int_eq(p.flush_rc, -EDEADLK);
    ck_assert_int_eq(p.req_rc, -EDEADLK);
    ck_assert_int_eq(p.close_rc, -EDEADLK);
    ck_assert_int_eq(p.next_rc, -EDEADLK);
    ck_assert_int_eq(p.pub_rc, 0);
    ck_assert_int_eq(p.sub_rc, 0);
    ck_assert_int_eq(rmq_sub_next(out, 2000, &m), 0);
    ck_assert_mem_eq(rmq_msg_data(m), "from-cb", 7);
    rmq_msg_free(m);
    ck_assert_int_eq(rmq_sub_next(s, 10, &m), -EINVAL); /* not a sync sub */
    rmq_unsubscribe(s);
    rmq_unsubscribe(out);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

static void self_unsub_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)c;
    (void)m;
    atomic_fetch_add((_Atomic int *)arg, 1);
    rmq_unsubscribe(sub);
}

START_TEST(test_client_unsubscribe)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct subs_arg sa = {fs, 0};
    _Atomic int n = 0;
    rmq_sub *s, *t;

    ck_assert_int_eq(rmq_subscribe(c, "u.self", NULL, self_unsub_cb, &n, &s), 0);
    ck_assert_int_eq(rmq_subscribe_sync(c, "u.sync", NULL, &t), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(fake_subs(fs), 2);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rmq_publish(c, "u.self", "x", 1), 0);
    ck_assert_int_eq(rmq_publish(c, "u.sync", "x", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert(wait_atomic(&n, 1, 2000));
    /* unsubscribing with a queued message frees it too */
    size_t q = 0;
    for (int i = 0; i < 200 && q == 0; i++) {
        rmq_sub_pending(t, &q, NULL);
        usleep(5000);
    }
    ck_assert_uint_eq(q, 1);
    rmq_unsubscribe(t);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert(fake_wait(subs_are, &sa, 2000));
    ck_assert_int_eq(atomic_load(&n), 1); /* no callback after its own unsubscribe */
    ck_assert_int_eq(rmq_unsubscribe(NULL), 0);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Flush ---- */

START_TEST(test_client_flush)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    int64_t t0;

    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(rmq_publish(c, "f.x", "abc", 3), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    /* everything before the PING was processed when the PONG came */
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB), 100);
    fake_set_no_pong(fs, true);
    t0 = mono_ms();
    ck_assert_int_eq(rmq_flush(c, 150), -ETIMEDOUT);
    ck_assert_int_ge(mono_ms() - t0, 140);
    fake_set_no_pong(fs, false);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_flush(NULL, 10), -EINVAL);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_server_ping)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);

    fake_send_ping(fs, 4242);
    for (int i = 0; i < 1000 && fake_last_pong(fs) != 4242; i++)
        usleep(2000);
    ck_assert_uint_eq(fake_last_pong(fs), 4242);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Request / reply ---- */

static void echo_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    char buf[300];
    int n =
        snprintf(buf, sizeof(buf), "re:%.*s", (int)rmq_msg_len(m), (const char *)rmq_msg_data(m));
    (void)sub;
    (void)arg;
    rmq_respond(c, m, buf, (size_t)n);
}

struct req_thread {
    rmq_client *c;
    int id;
    int ok;
};

static void *req_main(void *arg)
{
    struct req_thread *t = arg;
    char body[32], want[40];

    for (int i = 0; i < 20; i++) {
        rmq_msg *r = NULL;
        int n = snprintf(body, sizeof(body), "t%d-%d", t->id, i);
        snprintf(want, sizeof(want), "re:%s", body);
        if (rmq_request(t->c, "svc.echo", body, (size_t)n, 3000, &r) == 0 &&
            rmq_msg_len(r) == strlen(want) && memcmp(rmq_msg_data(r), want, strlen(want)) == 0)
            t->ok++;
        rmq_msg_free(r);
    }
    return NULL;
}

START_TEST(test_client_request_reply)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *srv = connect_fake(fs, NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct req_thread t[4];
    pthread_t th[4];
    rmq_sub *s;
    rmq_msg *r = NULL;

    ck_assert_int_eq(rmq_request(c, "svc.none", "x", 1, 100, &r), -ETIMEDOUT);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(rmq_subscribe(srv, "svc.echo", NULL, echo_cb, NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(srv, 2000), 0);
    ck_assert_int_eq(rmq_request(c, "svc.echo", "ping", 4, 2000, &r), 0);
    ck_assert_mem_eq(rmq_msg_data(r), "re:ping", 7);
    ck_assert_ptr_nonnull(strstr(rmq_msg_subject(r), "_INBOX."));
    rmq_msg_free(r);
    for (int i = 0; i < 4; i++) {
        t[i] = (struct req_thread){.c = c, .id = i};
        pthread_create(&th[i], NULL, req_main, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].ok, 20);
    }
    /* one inbox subscription for all the requests */
    ck_assert_uint_eq(fake_count(fs, CODEC_K_SUB), 2);
    rmq_unsubscribe(s);
    rmq_close(c);
    rmq_close(srv);
    fake_stop(fs);
}
END_TEST

/* ---- Auto-unsubscribe ---- */

START_TEST(test_client_unsubscribe_after_counts)
{
    /* The fake ignores max, so exactly-n must come from the client's count. */
    struct fake_cfg cfg = {.ignore_unsub_max = true};
    struct fake_server *fs = fake_start(&cfg);
    rmq_client *c = connect_fake(fs, NULL);
    struct counter k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rmq_sub *s, *cb;
    rmq_msg *m;

    ck_assert_int_eq(rmq_subscribe_sync(c, "auto.x", NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe(c, "auto.x", NULL, count_cb, &k, &cb), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(s, 3), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(cb, 4), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(cb, 0), -EINVAL);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(rmq_publish(c, "auto.x", "m", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
        rmq_msg_free(m);
    }
    ck_assert_int_eq(rmq_sub_next(s, 200, &m), RMQ_ECLOSED);
    ck_assert_int_eq(rmq_unsubscribe_after(s, 1), RMQ_ECLOSED);
    ck_assert(wait_atomic(&k.n, 4, 2000));
    usleep(50000);
    ck_assert_int_eq(atomic_load(&k.n), 4);
    ck_assert_uint_eq(rmq_sub_delivered(cb), 4);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_UNSUB), 2);
    rmq_unsubscribe(s);
    rmq_unsubscribe(cb);
    /* finished subscriptions send no UNSUBSCRIBE when freed */
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_UNSUB), 2);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_unsubscribe_after_server)
{
    /* The fake honours max: the server stops, the client agrees. */
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct subs_arg sa = {fs, 0};
    rmq_sub *s;
    rmq_msg *m;
    int got = 0;

    ck_assert_int_eq(rmq_subscribe_sync(c, "auto.y", NULL, &s), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(s, 2), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rmq_publish(c, "auto.y", "m", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    while (rmq_sub_next(s, 200, &m) == 0) {
        got++;
        rmq_msg_free(m);
    }
    ck_assert_int_eq(got, 2);
    ck_assert(fake_wait(subs_are, &sa, 2000));
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Server errors ---- */

START_TEST(test_client_server_error_sid)
{
    struct fake_cfg cfg = {.reject_prefix = "bad."};
    struct fake_server *fs = fake_start(&cfg);
    struct seen seen = {0};
    rmq_client *c = connect_fake(fs, &seen);
    rmq_sub *s, *good;
    rmq_msg *m;

    ck_assert_int_eq(rmq_subscribe_sync(c, "good.x", NULL, &good), 0);
    ck_assert_int_eq(rmq_subscribe_sync(c, "bad.x", NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert(wait_atomic(&seen.errors, 1, 2000));
    ck_assert_int_eq(atomic_load(&seen.last_err), RMQ_ESUBJECT);
    ck_assert_ptr_eq(atomic_load(&seen.last_err_sub), s);
    ck_assert_int_eq(rmq_sub_next(s, 1000, &m), RMQ_ESUBJECT);
    ck_assert_int_eq(rmq_unsubscribe_after(s, 1), RMQ_ECLOSED);
    /* the connection and the other subscription still work */
    ck_assert_int_eq(rmq_publish(c, "good.x", "ok", 2), 0);
    ck_assert_int_eq(rmq_sub_next(good, 2000, &m), 0);
    rmq_msg_free(m);
    /* a non-fatal error without sid goes to the error callback only */
    fake_send_error(fs, RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG, "too big", 0, false);
    ck_assert(wait_atomic(&seen.errors, 2, 2000));
    ck_assert_int_eq(atomic_load(&seen.last_err), -EMSGSIZE);
    ck_assert_ptr_null(atomic_load(&seen.last_err_sub));
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(atomic_load(&seen.disconnected), 0);
    rmq_unsubscribe(s);
    rmq_unsubscribe(good);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_server_error_fatal)
{
    struct fake_server *fs = fake_start(NULL);
    struct seen seen = {0};
    rmq_client *c = connect_fake(fs, &seen);

    fake_send_error(fs, RINGMQ__ERROR_CODE__ERR_SLOW_CONSUMER, "slow", 0, true);
    ck_assert(wait_atomic(&seen.disconnected, 1, 2000));
    ck_assert(wait_atomic(&seen.reconnected, 1, 3000));
    ck_assert_int_ge(atomic_load(&seen.errors), 1);
    ck_assert_int_eq(atomic_load(&seen.last_err), RMQ_ESLOW);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    rmq_close(c);
    ck_assert_int_eq(atomic_load(&seen.closed), 1);
    fake_stop(fs);
}
END_TEST

/* ---- Reconnect ---- */

START_TEST(test_client_reconnect_resubscribe)
{
    struct fake_server *fs = fake_start(NULL);
    struct seen seen = {0};
    rmq_opts *o = opts_for(fs, &seen);
    struct subs_arg sa = {fs, 2};
    rmq_client *c;
    rmq_sub *s, *lim;
    rmq_msg *m;
    rmq_stats st;

    ck_assert_int_eq(rmq_opts_set_reconnect_buffer(o, 256), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    ck_assert_int_eq(rmq_subscribe_sync(c, "rc.>", NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe_sync(c, "rc.lim", NULL, &lim), 0);
    ck_assert_int_eq(rmq_unsubscribe_after(lim, 3), 0);
    ck_assert_int_eq(rmq_publish(c, "rc.lim", "1", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(rmq_sub_next(lim, 2000, &m), 0);
    rmq_msg_free(m);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    rmq_msg_free(m);

    /* drop the connection and keep the server refusing for a while */
    fake_set_refuse(fs, true);
    fake_kick(fs);
    ck_assert(wait_atomic(&seen.disconnected, 1, 2000));
    ck_assert(!rmq_client_is_connected(c));
    /* publishes while disconnected are buffered, up to the reconnect buffer */
    int accepted = 0, rc;
    while ((rc = rmq_publish(c, "rc.buf", "buffered", 8)) == 0)
        accepted++;
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_int_gt(accepted, 3);
    usleep(100000);
    fake_set_refuse(fs, false);
    ck_assert(wait_atomic(&seen.reconnected, 1, 3000));
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert(fake_wait(subs_are, &sa, 2000));
    for (int i = 0; i < accepted; i++) {
        ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
        ck_assert_str_eq(rmq_msg_subject(m), "rc.buf");
        rmq_msg_free(m);
    }
    /* the remaining auto-unsubscribe count (2) was re-sent */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rmq_publish(c, "rc.lim", "2", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rmq_sub_next(lim, 2000, &m), 0);
        rmq_msg_free(m);
    }
    ck_assert_int_eq(rmq_sub_next(lim, 100, &m), RMQ_ECLOSED);
    ck_assert_int_eq(rmq_client_stats(c, &st), 0);
    ck_assert_uint_eq(st.reconnects, 1);
    ck_assert_int_eq(atomic_load(&seen.closed), 0);
    rmq_unsubscribe(s);
    rmq_unsubscribe(lim);
    rmq_close(c);
    ck_assert_int_eq(atomic_load(&seen.closed), 1);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_reconnect_failover)
{
    struct fake_server *a = fake_start(NULL), *b = fake_start(NULL);
    struct seen seen = {0};
    char list[128];
    rmq_opts *o;
    rmq_client *c;
    rmq_sub *s;
    rmq_msg *m;

    snprintf(list, sizeof(list), "%s,%s", fake_addr(a), fake_addr(b));
    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, list), 0);
    ck_assert_int_eq(rmq_opts_set_reconnect_wait(o, 5, 20), 0);
    rmq_opts_set_event_cb(o, on_event, &seen);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    ck_assert_int_eq(rmq_subscribe_sync(c, "fo.x", NULL, &s), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_int_eq(fake_conns(a), 1);
    fake_stop(a);
    ck_assert(wait_atomic(&seen.reconnected, 1, 3000));
    ck_assert_int_eq(fake_conns(b), 1);
    ck_assert_int_eq(rmq_publish(c, "fo.x", "b", 1), 0);
    ck_assert_int_eq(rmq_sub_next(s, 2000, &m), 0);
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(b);
}
END_TEST

START_TEST(test_client_reconnect_give_up)
{
    struct fake_server *fs = fake_start(NULL);
    struct seen seen = {0};
    rmq_opts *o = opts_for(fs, &seen);
    rmq_client *c;
    rmq_sub *s;
    rmq_msg *m;

    ck_assert_int_eq(rmq_opts_set_max_reconnect(o, 2), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    ck_assert_int_eq(rmq_subscribe_sync(c, "gu.x", NULL, &s), 0);
    fake_stop(fs);
    ck_assert(wait_atomic(&seen.closed, 1, 3000));
    ck_assert_int_eq(atomic_load(&seen.disconnected), 1);
    ck_assert_int_eq(atomic_load(&seen.reconnected), 0);
    ck_assert_int_eq(rmq_publish(c, "gu.x", "x", 1), RMQ_ECLOSED);
    ck_assert_int_eq(rmq_flush(c, 100), RMQ_ECLOSED);
    ck_assert_int_eq(rmq_sub_next(s, 100, &m), RMQ_ECLOSED);
    ck_assert_int_eq(rmq_subscribe_sync(c, "gu.y", NULL, &s), RMQ_ECLOSED);
    rmq_close(c);
    ck_assert_int_eq(atomic_load(&seen.closed), 1);
}
END_TEST

/* ---- Close ---- */

struct waiter {
    rmq_sub *s;
    int rc;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    rmq_msg *m = NULL;
    w->rc = rmq_sub_next(w->s, -1, &m);
    rmq_msg_free(m);
    return NULL;
}

START_TEST(test_client_close_wakes_waiters)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct waiter w = {0};
    pthread_t th;

    ck_assert_int_eq(rmq_subscribe_sync(c, "cw.x", NULL, &w.s), 0);
    pthread_create(&th, NULL, wait_main, &w);
    usleep(50000);
    ck_assert_int_eq(rmq_close(c), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(w.rc, RMQ_ECLOSED);
    fake_stop(fs);
}
END_TEST

/* ---- Limits ---- */

START_TEST(test_client_payload_limit)
{
    struct fake_cfg cfg = {.max_payload = 100};
    struct fake_server *fs = fake_start(&cfg);
    rmq_client *c = connect_fake(fs, NULL);
    char buf[101] = {0};

    ck_assert_uint_eq(rmq_client_max_payload(c), 100);
    ck_assert_int_eq(rmq_publish(c, "big", buf, 101), -EMSGSIZE);
    ck_assert_int_eq(rmq_publish(c, "big", buf, 100), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB), 1);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_pending_limit)
{
    struct fake_server *fs = fake_start(NULL);
    struct seen seen = {0};
    rmq_opts *o = opts_for(fs, &seen);
    rmq_client *c;
    rmq_sub *s;
    rmq_msg *m;
    rmq_stats st;
    size_t q, qb;

    ck_assert_int_eq(rmq_opts_set_pending_limits(o, 5, 1 << 20), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    ck_assert_int_eq(rmq_subscribe_sync(c, "pl.x", NULL, &s), 0);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(rmq_publish(c, "pl.x", "abcd", 4), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 200 && rmq_sub_delivered(s) < 20; i++)
        usleep(5000);
    ck_assert_uint_eq(rmq_sub_delivered(s), 20);
    ck_assert_int_eq(rmq_sub_pending(s, &q, &qb), 0);
    ck_assert_uint_eq(q, 5);
    ck_assert_uint_eq(qb, 20);
    ck_assert_uint_eq(rmq_sub_dropped(s), 15);
    ck_assert_int_eq(atomic_load(&seen.errors), 1); /* once per overflow */
    ck_assert_int_eq(atomic_load(&seen.last_err), -ENOBUFS);
    ck_assert_ptr_eq(atomic_load(&seen.last_err_sub), s);
    ck_assert_int_eq(rmq_client_stats(c, &st), 0);
    ck_assert_uint_eq(st.dropped, 15);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(rmq_sub_next(s, 100, &m), 0);
        rmq_msg_free(m);
    }
    /* room again: the next overflow is reported again */
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(rmq_publish(c, "pl.x", "abcd", 4), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    ck_assert(wait_atomic(&seen.errors, 2, 2000));
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_coalesce)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    uint64_t reads0 = fake_reads(fs);

    for (int i = 0; i < 20000; i++)
        ck_assert_int_eq(rmq_publish(c, "co.x", "0123456789", 10), 0);
    ck_assert_int_eq(rmq_flush(c, 5000), 0);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB), 20000);
    /* many publishes per write: far fewer reads than messages */
    ck_assert_uint_lt(fake_reads(fs) - reads0, 2000);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

struct pub_thread {
    rmq_client *c;
    int n, ok;
};

static void *pub_main(void *arg)
{
    struct pub_thread *t = arg;
    char payload[1024];

    memset(payload, 'p', sizeof(payload));
    for (int i = 0; i < t->n; i++)
        t->ok += rmq_publish(t->c, "sb.x", payload, sizeof(payload)) == 0;
    return NULL;
}

START_TEST(test_client_send_buffer_threshold)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_opts *o = opts_for(fs, NULL);
    struct counter k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct pub_thread t[3];
    pthread_t th[3];
    rmq_client *c, *sc;
    rmq_sub *s;

    ck_assert_int_eq(rmq_opts_set_send_buffer(o, 4096), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    sc = connect_fake(fs, NULL);
    ck_assert_int_eq(rmq_subscribe(sc, "sb.x", NULL, count_cb, &k, &s), 0);
    ck_assert_int_eq(rmq_flush(sc, 2000), 0);
    for (int i = 0; i < 3; i++) {
        t[i] = (struct pub_thread){.c = c, .n = 1000};
        pthread_create(&th[i], NULL, pub_main, &t[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].ok, 1000);
    }
    ck_assert_int_eq(rmq_flush(c, 5000), 0);
    ck_assert(wait_atomic(&k.n, 3000, 5000));
    rmq_unsubscribe(s);
    rmq_close(sc);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* A callback that publishes more than the send buffer holds must not hang:
 * the I/O thread writes the buffer out itself. */
static void flood_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    char payload[2048];
    struct pub_thread *t = arg;

    (void)sub;
    (void)m;
    memset(payload, 'f', sizeof(payload));
    for (int i = 0; i < t->n; i++)
        t->ok += rmq_publish(c, "fl.out", payload, sizeof(payload)) == 0;
}

START_TEST(test_client_callback_publish_flood)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_opts *o = opts_for(fs, NULL);
    struct pub_thread t = {.n = 500};
    rmq_client *c;
    rmq_sub *s;

    ck_assert_int_eq(rmq_opts_set_send_buffer(o, 8192), 0);
    ck_assert_int_eq(rmq_connect(o, &c), 0);
    rmq_opts_free(o);
    ck_assert_int_eq(rmq_subscribe(c, "fl.in", NULL, flood_cb, &t, &s), 0);
    ck_assert_int_eq(rmq_publish(c, "fl.in", "go", 2), 0);
    ck_assert_int_eq(rmq_flush(c, 5000), 0);
    ck_assert_int_eq(rmq_flush(c, 5000), 0);
    ck_assert_int_eq(t.ok, 500);
    ck_assert_uint_eq(fake_count(fs, CODEC_K_PUB), 501);
    rmq_unsubscribe(s);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_queue_group)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    struct counter a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rmq_sub *sa, *sb;

    ck_assert_int_eq(rmq_subscribe(c, "qg.x", "workers", count_cb, &a, &sa), 0);
    ck_assert_int_eq(rmq_subscribe(c, "qg.x", "workers", count_cb, &b, &sb), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(rmq_publish(c, "qg.x", "w", 1), 0);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 500 && atomic_load(&a.n) + atomic_load(&b.n) < 10; i++)
        usleep(2000);
    ck_assert_int_eq(atomic_load(&a.n) + atomic_load(&b.n), 10);
    ck_assert_int_gt(atomic_load(&a.n), 0);
    ck_assert_int_gt(atomic_load(&b.n), 0);
    rmq_unsubscribe(sa);
    rmq_unsubscribe(sb);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_many_subs)
{
    struct fake_server *fs = fake_start(NULL);
    rmq_client *c = connect_fake(fs, NULL);
    rmq_sub *s[60];
    char subj[32];
    rmq_msg *m;

    for (int i = 0; i < 60; i++) {
        snprintf(subj, sizeof(subj), "ms.%d", i);
        ck_assert_int_eq(rmq_subscribe_sync(c, subj, NULL, &s[i]), 0);
    }
    for (int i = 0; i < 60; i += 7)
        rmq_unsubscribe(s[i]);
    ck_assert_int_eq(rmq_flush(c, 2000), 0);
    for (int i = 0; i < 60; i++) {
        snprintf(subj, sizeof(subj), "ms.%d", i);
        ck_assert_int_eq(rmq_publish(c, subj, subj, strlen(subj)), 0);
    }
    for (int i = 0; i < 60; i++) {
        if (i % 7 == 0)
            continue;
        snprintf(subj, sizeof(subj), "ms.%d", i);
        ck_assert_int_eq(rmq_sub_next(s[i], 2000, &m), 0);
        ck_assert_str_eq(rmq_msg_subject(m), subj);
        rmq_msg_free(m);
        rmq_unsubscribe(s[i]);
    }
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

START_TEST(test_client_frames_with_info)
{
    /* A PING in the same segment as INFO must be answered without any
     * further traffic: frames left in the read buffer after the handshake
     * are dispatched at once. */
    struct fake_cfg cfg = {.ping_after_info = 777};
    struct fake_server *fs = fake_start(&cfg);
    rmq_client *c = connect_fake(fs, NULL);

    for (int i = 0; i < 1000 && fake_last_pong(fs) != 777; i++)
        usleep(2000);
    ck_assert_uint_eq(fake_last_pong(fs), 777);
    rmq_close(c);
    fake_stop(fs);
}
END_TEST

/* ---- Suite ---- */

Suite *client_suite(void);

/* The client suite: TCases core and limits. */
Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");

    tcase_set_timeout(core, 30);
    tcase_set_timeout(limits, 30);
    tcase_add_test(core, test_client_opts_servers);
    tcase_add_test(core, test_client_opts_bad);
    tcase_add_test(core, test_client_strerror);
    tcase_add_test(core, test_client_connect_refused);
    tcase_add_test(core, test_client_connect_timeout);
    tcase_add_test(core, test_client_connect_failover);
    tcase_add_test(core, test_client_auth);
    tcase_add_test(core, test_client_subject_invalid);
    tcase_add_test(core, test_client_msg_accessors);
    tcase_add_test(core, test_client_callback_rules);
    tcase_add_test(core, test_client_unsubscribe);
    tcase_add_test(core, test_client_flush);
    tcase_add_test(core, test_client_server_ping);
    tcase_add_test(core, test_client_frames_with_info);
    tcase_add_test(core, test_client_request_reply);
    tcase_add_test(core, test_client_unsubscribe_after_counts);
    tcase_add_test(core, test_client_unsubscribe_after_server);
    tcase_add_test(core, test_client_server_error_sid);
    tcase_add_test(core, test_client_server_error_fatal);
    tcase_add_test(core, test_client_reconnect_resubscribe);
    tcase_add_test(core, test_client_reconnect_failover);
    tcase_add_test(core, test_client_reconnect_give_up);
    tcase_add_test(core, test_client_close_wakes_waiters);
    tcase_add_test(core, test_client_queue_group);
    tcase_add_test(core, test_client_many_subs);
    tcase_add_test(limits, test_client_payload_limit);
    tcase_add_test(limits, test_client_pending_limit);
    tcase_add_test(limits, test_client_coalesce);
    tcase_add_test(limits, test_client_send_buffer_threshold);
    tcase_add_test(limits, test_client_callback_publish_flood);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    return s;
}

/* Run every test; exit 0 when all pass (CK_RUN_CASE=core|limits picks one). */
int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
