/*
 * check_lifecycle.c - the broker and client over their lifetimes: restart
 * and reconnect, graceful shutdown on SIGTERM/SIGINT, authentication, the
 * handshake deadline, and start-up failures.
 *
 * Reconnect: the client's subscriptions must survive a broker restart on
 * the same port. The event callback must see DISCONNECTED and then
 * RECONNECTED, and a message published after the reconnect must arrive on
 * the subscription made before the restart.
 *
 * Shutdown: with clients connected, one of them subscribed and not reading
 * (its queue cannot drain) and one reading only after the signal (its queue
 * must be flushed, not dropped), ringmqd exits 0 within the shutdown
 * timeout.
 *
 * Exit status 2 is "bad configuration or a listener that could not be
 * opened" (broker/main.c).
 *
 * TCases: reconnect, shutdown, auth, startup.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

static void flush_ok(rmq_client *c)
{
    int rc = rmq_flush(c, 20000);
    IT_CHECK(rc == 0, "rmq_flush: %s", rmq_strerror(rc));
}

static void pub_seq(rmq_client *c, const char *subj, uint64_t seq)
{
    uint8_t buf[32];
    int rc;
    it_payload_fill(buf, sizeof(buf), seq);
    rc = rmq_publish(c, subj, buf, sizeof(buf));
    IT_CHECK(rc == 0, "publish %s #%" PRIu64 ": %s", subj, seq, rmq_strerror(rc));
}

static void expect_seq(rmq_sub *s, int64_t seq, const char *what)
{
    rmq_msg *m = NULL;
    int rc = rmq_sub_next(s, 5000, &m);
    IT_CHECK(rc == 0, "%s: %s", what, rmq_strerror(rc));
    IT_CHECK(it_payload_seq(rmq_msg_data(m), rmq_msg_len(m)) == seq, "%s: wrong message", what);
    rmq_msg_free(m);
}

static rmq_client *reconnecting_client(const char *addr, const char *name, struct it_rec *rec)
{
    rmq_opts *o = it_opts(addr, name, rec, 200);
    rmq_client *c = NULL;
    int rc = rmq_connect(o, &c);
    rmq_opts_free(o);
    IT_CHECK(rc == 0, "connect: %s", rmq_strerror(rc));
    return c;
}

/* ---- reconnect ---- */

START_TEST(test_lifecycle_reconnect_resubscribes_after_restart)
{
    struct tbroker b;
    struct it_rec rec;
    struct it_seq cq;
    rmq_client *c, *p;
    rmq_sub *s = NULL, *cs = NULL;
    rmq_stats st;
    int rc;

    it_broker_start(&b, NULL);
    it_rec_init(&rec);
    it_seq_init(&cq, 4);
    c = reconnecting_client(b.addr, "phoenix", &rec);
    ck_assert_int_eq(rmq_subscribe_sync(c, "life.x", NULL, &s), 0);
    ck_assert_int_eq(rmq_subscribe(c, "life.cb", NULL, it_seq_cb, &cq, &cs), 0);
    flush_ok(c);
    pub_seq(c, "life.x", 0);
    pub_seq(c, "life.cb", 0);
    expect_seq(s, 0, "before the restart");

    rc = tbroker_stop(&b, SIGTERM, 5000);
    IT_CHECK(rc == 0, "ringmqd exit status %d", rc);
    IT_CHECK(it_rec_wait(&rec, RMQ_EV_DISCONNECTED, 1, 5000) == 0, "no DISCONNECTED event");
    ck_assert_msg(!rmq_client_is_connected(c), "client claims to be connected to a dead broker");
    usleep(300 * 1000); /* a few failed reconnect attempts */
    rc = it_broker_restart(&b, NULL);
    IT_CHECK(rc == 0, "restart on port %u failed", b.port);
    IT_CHECK(it_rec_wait(&rec, RMQ_EV_RECONNECTED, 1, 10000) == 0, "no RECONNECTED event");
    pthread_mutex_lock(&rec.mu);
    ck_assert_int_ge(rec.nev, 2);
    ck_assert_int_eq(rec.ev[0], RMQ_EV_DISCONNECTED);
    ck_assert_int_eq(rec.ev[1], RMQ_EV_RECONNECTED);
    pthread_mutex_unlock(&rec.mu);
    ck_assert_int_eq(it_rec_count(&rec, RMQ_EV_CLOSED), 0);
    ck_assert(rmq_client_is_connected(c));

    flush_ok(c); /* the re-sent SUBSCRIBEs are processed */
    p = it_client(b.addr, "pub", NULL);
    pub_seq(p, "life.x", 1);
    pub_seq(p, "life.cb", 1);
    flush_ok(p);
    expect_seq(s, 1, "sync subscription after the reconnect");
    IT_CHECK(it_wait_atomic(&cq.count, 2, 5000) == 0,
             "callback subscription after the reconnect: %" PRIu64 " of 2",
             (uint64_t)atomic_load(&cq.count));
    ck_assert_int_eq(rmq_client_stats(c, &st), 0);
    ck_assert_uint_eq(st.reconnects, 1);
    /* And the reconnected client can publish too. */
    pub_seq(c, "life.x", 2);
    expect_seq(s, 2, "own publish after the reconnect");

    it_close(p);
    it_close(c);
    ck_assert_int_eq(it_rec_count(&rec, RMQ_EV_CLOSED), 1);
    it_seq_free(&cq);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_lifecycle_reconnect_buffer_sent_after_resubscribe)
{
    struct tbroker b;
    struct it_rec rec;
    rmq_client *c;
    rmq_sub *s = NULL;
    int rc;

    it_broker_start(&b, NULL);
    it_rec_init(&rec);
    c = reconnecting_client(b.addr, "buffered", &rec);
    ck_assert_int_eq(rmq_subscribe_sync(c, "life.buf", NULL, &s), 0);
    flush_ok(c);
    rc = tbroker_stop(&b, SIGTERM, 5000);
    IT_CHECK(rc == 0, "ringmqd exit status %d", rc);
    IT_CHECK(it_rec_wait(&rec, RMQ_EV_DISCONNECTED, 1, 5000) == 0, "no DISCONNECTED event");
    /* Accepted into the reconnect buffer while the broker is down. */
    pub_seq(c, "life.buf", 7);
    rc = it_broker_restart(&b, NULL);
    IT_CHECK(rc == 0, "restart on port %u failed", b.port);
    IT_CHECK(it_rec_wait(&rec, RMQ_EV_RECONNECTED, 1, 10000) == 0, "no RECONNECTED event");
    expect_seq(s, 7, "publish buffered during the outage (must follow the re-sent SUBSCRIBE)");
    it_close(c);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ---- shutdown ---- */

#define DRAIN_MSGS 2000
#define NDRAIN 4        /* with N shards, some are on another shard than the publisher */
#define STUCK_MSGS 8000 /* 8 MiB: more than loopback socket buffers hold */
#define SHUTDOWN_MS 1000

static void graceful(int sig)
{
    char tmo[16];
    struct tbroker b;
    struct it_rec rec[3];
    rmq_client *c[3];
    rmq_sub *s[3];
    struct it_raw_seen seen;
    uint8_t buf[1024];
    int stuck, drain[NDRAIN], st, rc;
    uint64_t t0, dt;

    snprintf(tmo, sizeof(tmo), "%d", SHUTDOWN_MS);
    it_broker_start(&b, IT_ARGS("--shutdown-timeout-ms", tmo));
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        it_rec_init(&rec[i]);
        c[i] = it_client(b.addr, name, &rec[i]);
        ck_assert_int_eq(rmq_subscribe_sync(c[i], "shut.all", NULL, &s[i]), 0);
        flush_ok(c[i]);
    }
    stuck = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(stuck, 1, "shut.stuck", NULL), 0);
    ck_assert_int_eq(it_raw_sync(stuck, 1, 5000, &seen), 0);
    for (int i = 0; i < NDRAIN; i++) {
        drain[i] = it_raw_open(b.port);
        ck_assert_int_eq(it_raw_sub(drain[i], 1, "shut.drain", NULL), 0);
        ck_assert_int_eq(it_raw_sync(drain[i], 1, 5000, &seen), 0);
    }

    pub_seq(c[0], "shut.all", 0);
    for (uint64_t i = 0; i < STUCK_MSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(c[0], "shut.stuck", buf, sizeof(buf)), 0);
    }
    for (uint64_t i = 0; i < DRAIN_MSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(c[0], "shut.drain", buf, sizeof(buf)), 0);
    }
    flush_ok(c[0]);
    for (int i = 0; i < 3; i++)
        expect_seq(s[i], 0, "message before the shutdown");

    t0 = test_now_ms();
    ck_assert_int_eq(kill(b.pid, sig), 0);
    /* Read the drain sockets only now: what the broker accepted must still
     * come (the publisher's flush returned, so all of it was processed). */
    for (int i = 0; i < NDRAIN; i++) {
        rc = it_raw_read_to_eof(drain[i], 5000, &seen);
        IT_CHECK(rc == 0, "drain connection %d not closed at shutdown (%d)", i, rc);
        IT_CHECK(seen.msgs == DRAIN_MSGS,
                 "shutdown flushed %d of %d accepted messages to drain connection %d", seen.msgs,
                 DRAIN_MSGS, i);
    }
    st = it_broker_wait_exit(&b, SHUTDOWN_MS + 4000);
    dt = test_now_ms() - t0;
    IT_CHECK(st == 0, "exit status after signal %d: %d (want 0; -1 = still running)", sig, st);
    IT_CHECK(dt <= SHUTDOWN_MS + 1500, "exit took %" PRIu64 " ms with a %d ms shutdown timeout", dt,
             SHUTDOWN_MS);
    printf("signal %d: exit 0 after %" PRIu64 " ms (shutdown timeout %d ms)\n", sig, dt,
           SHUTDOWN_MS);
    /* The kernel still hands over what the broker had written; then EOF. */
    IT_CHECK(raw_wait_eof(stuck, 5000) == 0, "stuck connection still open after exit");
    for (int i = 0; i < 3; i++) {
        IT_CHECK(it_rec_wait(&rec[i], RMQ_EV_DISCONNECTED, 1, 3000) == 0 ||
                     it_rec_count(&rec[i], RMQ_EV_CLOSED) > 0,
                 "client %d did not notice the shutdown", i);
        it_close(c[i]);
    }
    close(stuck);
    for (int i = 0; i < NDRAIN; i++)
        close(drain[i]);
    it_broker_cleanup(&b);
}

START_TEST(test_lifecycle_sigterm_graceful_exit_0)
{
    graceful(SIGTERM);
}
END_TEST

START_TEST(test_lifecycle_sigint_graceful_exit_0)
{
    graceful(SIGINT);
}
END_TEST

/* ---- auth ---- */

static int connect_with_token(const char *addr, const char *token, rmq_client **out)
{
    rmq_opts *o = it_opts(addr, "auth", NULL, 0);
    int rc;
    if (token)
        ck_assert_int_eq(rmq_opts_set_token(o, token), 0);
    *out = NULL;
    rc = rmq_connect(o, out);
    rmq_opts_free(o);
    return rc;
}

static void raw_connect_token(int fd, const char *token)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Connect cn = RINGMQ__CONNECT__INIT;
    cn.version = CODEC_PROTO_VERSION;
    cn.auth_token = (char *)token;
    f.kind_case = RINGMQ__FRAME__KIND_CONNECT;
    f.connect = &cn;
    ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
}

START_TEST(test_lifecycle_auth_token_required)
{
    struct tbroker b;
    rmq_client *c = NULL, *d = NULL;
    rmq_sub *s = NULL;
    rmq_msg *m = NULL;
    uint8_t body[4096];
    size_t len;
    uint64_t v;
    int rc, fd, fatal = 0;

    it_broker_start(&b, IT_ARGS("--auth-token", "s3cret"));
    rc = connect_with_token(b.addr, "wrong", &c);
    ck_assert_msg(rc == RMQ_EAUTH, "bad token: %s (want RMQ_EAUTH)", rmq_strerror(rc));
    ck_assert_ptr_null(c);
    rc = connect_with_token(b.addr, NULL, &c);
    ck_assert_msg(rc == RMQ_EAUTH, "no token: %s (want RMQ_EAUTH)", rmq_strerror(rc));
    rc = connect_with_token(b.addr, "s3cret\n", &c);
    ck_assert_msg(rc == RMQ_EAUTH, "token with a suffix: %s (want RMQ_EAUTH)", rmq_strerror(rc));
    rc = connect_with_token(b.addr, "s3cre", &c);
    ck_assert_msg(rc == RMQ_EAUTH, "token prefix: %s (want RMQ_EAUTH)", rmq_strerror(rc));

    rc = connect_with_token(b.addr, "s3cret", &c);
    IT_CHECK(rc == 0, "good token: %s", rmq_strerror(rc));
    rc = connect_with_token(b.addr, "s3cret", &d);
    IT_CHECK(rc == 0, "good token: %s", rmq_strerror(rc));
    ck_assert_int_eq(rmq_subscribe_sync(d, "auth.x", NULL, &s), 0);
    flush_ok(d);
    pub_seq(c, "auth.x", 3);
    expect_seq(s, 3, "authenticated pub/sub");

    /* Raw: without the token, ERROR AUTH (fatal) and then EOF. */
    fd = raw_connect(b.port);
    ck_assert_int_ge(fd, 0);
    raw_connect_token(fd, NULL);
    rc = raw_expect_error(fd, 5000, &fatal);
    IT_CHECK(rc == RINGMQ__ERROR_CODE__ERR_AUTH && fatal, "raw CONNECT without token: %d", rc);
    IT_CHECK(raw_wait_eof(fd, 5000) == 0, "connection not closed after ERROR AUTH");
    close(fd);
    /* A publish before CONNECT gets nowhere either. */
    fd = raw_connect(b.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(it_raw_pub(fd, "auth.x", NULL, "x", 1), 0);
    rc = raw_expect_error(fd, 5000, &fatal);
    IT_CHECK(rc == RINGMQ__ERROR_CODE__ERR_NOT_CONNECTED, "raw PUB without CONNECT: %d", rc);
    close(fd);
    fd = raw_connect(b.port);
    ck_assert_int_ge(fd, 0);
    raw_connect_token(fd, "s3cret");
    ck_assert_int_eq(raw_read_frame(fd, body, sizeof(body), &len, 5000), CODEC_K_INFO);
    close(fd);
    rc = rmq_sub_next(s, 200, &m);
    ck_assert_msg(rc == -ETIMEDOUT, "an unauthenticated publish was delivered");

    IT_CHECK(it_stat_wait(c, "connections", 2, 3000, &v) == 0, "connections %" PRIu64, v);
    it_close(c);
    it_close(d);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* ---- startup and handshake ---- */

START_TEST(test_lifecycle_handshake_timeout_closes_silent_connection)
{
    struct tbroker b;
    struct it_raw_seen seen;
    int silent, partial, good;
    uint64_t t0, dt;

    it_broker_start(&b, IT_ARGS("--handshake-timeout-ms", "300"));
    t0 = test_now_ms();
    silent = raw_connect(b.port);
    partial = raw_connect(b.port);
    ck_assert_int_ge(silent, 0);
    ck_assert_int_ge(partial, 0);
    ck_assert_int_eq(raw_send(partial, "\0\0", 2), 0);
    good = it_raw_open(b.port);

    IT_CHECK(raw_wait_eof(silent, 3000) == 0, "silent connection still open after 3 s");
    dt = test_now_ms() - t0;
    IT_CHECK(dt >= 250 && dt <= 1500,
             "silent connection closed after %" PRIu64 " ms, handshake timeout 300 ms", dt);
    IT_CHECK(raw_wait_eof(partial, 3000) == 0, "half-CONNECT connection still open after 3 s");
    /* A connection that completed the handshake is not subject to it. */
    while (test_now_ms() - t0 < 900)
        usleep(10000);
    IT_CHECK(it_raw_sync(good, 5, 3000, &seen) == 0,
             "a connected client was closed by the handshake timeout");
    close(silent);
    close(partial);
    close(good);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_lifecycle_listen_port_in_use_exits_2)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    char listen_arg[64], logp[64];
    bool running;
    int fd = socket(AF_INET, SOCK_STREAM, 0), st;

    ck_assert_int_ge(fd, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", ntohs(a.sin_port));
    snprintf(logp, sizeof(logp), "/tmp/ringmq-it-inuse-%d.log", (int)getpid());
    st = it_exec_ringmqd(IT_ARGS("--listen", listen_arg, "--shards", "1"), logp, 5000, &running);
    ck_assert_msg(!running, "ringmqd is listening on %s, which another socket holds", listen_arg);
    ck_assert_msg(st == 2, "ringmqd --listen %s (in use): exit status %d, want 2", listen_arg, st);
    unlink(logp);
    close(fd);
}
END_TEST

START_TEST(test_lifecycle_listen_port_of_running_broker_exits_2)
{
    struct tbroker b;
    char listen_arg[64], logp[300], portf[300];
    bool running;
    int st;

    it_broker_start(&b, NULL);
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", b.port);
    snprintf(logp, sizeof(logp), "%s/second.log", b.dir);
    snprintf(portf, sizeof(portf), "%s/second.port", b.dir);
    st = it_exec_ringmqd(IT_ARGS("--listen", listen_arg, "--port-file", portf), logp, 2000,
                         &running);
    IT_CHECK(!running,
             "a second ringmqd started on %s while the first one listens there "
             "(both bound it; clients would be split between two brokers)",
             listen_arg);
    IT_CHECK(st == 2, "second ringmqd on %s: exit status %d, want 2", listen_arg, st);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/*
 * A restart on the same port right after a clean exit must work (what
 * systemd's restart does), also when a client was connected. 10 rounds.
 */
START_TEST(test_lifecycle_restart_same_port_at_once)
{
    struct tbroker b;
    int fails = 0, first_fail = -1;

    it_broker_start(&b, NULL);
    for (int round = 0; round < 10; round++) {
        int fd = it_raw_open(b.port), st, rc;
        st = tbroker_stop(&b, SIGTERM, 5000);
        close(fd);
        IT_CHECK(st == 0, "round %d: exit status %d", round, st);
        rc = it_broker_restart(&b, NULL);
        if (rc != 0) {
            fails++;
            if (first_fail < 0)
                first_fail = round;
            /* Give the port back time, so that the later rounds still run. */
            usleep(500 * 1000);
            IT_CHECK(it_broker_restart(&b, NULL) == 0,
                     "round %d: restart failed even after "
                     "500 ms",
                     round);
        }
    }
    IT_CHECK(fails == 0,
             "%d of 10 immediate restarts on port %u failed (first in round %d; "
             "see 'cannot listen' in the log above)",
             fails, b.port, first_fail);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

START_TEST(test_lifecycle_bad_config_exits_2)
{
    const char *const *const bad[] = {
        IT_ARGS("--no-such-option", "1"),
        IT_ARGS("--max-pending", "100"),
        IT_ARGS("--shards", "1000"),
        IT_ARGS("--listen", "127.0.0.1"),
        IT_ARGS("--listen", "127.0.0.1:70000"),
    };
    char logp[64];
    bool running;

    snprintf(logp, sizeof(logp), "/tmp/ringmq-it-badcfg-%d.log", (int)getpid());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = it_exec_ringmqd(bad[i], logp, 3000, &running);
        ck_assert_msg(!running && st == 2, "ringmqd %s %s: exit status %d, want 2", bad[i][0],
                      bad[i][1], st);
    }
    unlink(logp);
}
END_TEST

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc;

    tc = tcase_create("reconnect");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lifecycle_reconnect_resubscribes_after_restart);
    tcase_add_test(tc, test_lifecycle_reconnect_buffer_sent_after_resubscribe);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_lifecycle_sigterm_graceful_exit_0);
    tcase_add_test(tc, test_lifecycle_sigint_graceful_exit_0);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_lifecycle_auth_token_required);
    suite_add_tcase(s, tc);

    tc = tcase_create("startup");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_lifecycle_handshake_timeout_closes_silent_connection);
    tcase_add_test(tc, test_lifecycle_listen_port_in_use_exits_2);
    tcase_add_test(tc, test_lifecycle_listen_port_of_running_broker_exits_2);
    tcase_add_test(tc, test_lifecycle_restart_same_port_at_once);
    tcase_add_test(tc, test_lifecycle_bad_config_exits_2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_lifecycle", lifecycle_suite);
}
