/*
 * cli_bench.c - `ringmq bench`: the bench harness (bench_harness.c) on a
 * libringmq transport.
 *
 *   ringmq bench SUBJECT [--pubs P] [--subs S] [--msgs N] [--size BYTES]
 *                [--queue GROUP] [--latency] [--rate MSGS_PER_S]
 *                [--sub-servers HOST:PORT[,...]] [--timeout MS] [--json]
 *   ringmq bench SUBJECT --durable TOPIC [--pubs P] [--msgs N] [--size BYTES]
 *                [--window W] [--duration MS] [--replay [--sub-servers HOST:PORT]]
 *                [--rm] [--timeout MS] [--json]
 *
 * --sub-servers puts subscriber i on entry i mod n of the list (one server
 * each, e.g. the other nodes of a cluster; --server stays the publishers'),
 * and probes until their interest has reached the publishers' node (see
 * bench_harness.c); nothing of it is in this transport.
 *
 * --durable measures acked publishes to the durable topic TOPIC (created
 * with SUBJECT as its only subject if missing; an existing one is used as it
 * is): P publishers with at most W (default 256) rmq_publish_ack_async
 * outstanding each, for N messages or --duration ms; acked msgs/s, MB/s,
 * ack latency percentiles and errors.
 * --replay then reads the whole topic back with a START_ALL topic
 * subscription (replay msgs/s), on the --sub-servers node when given (a
 * replay relayed from the topic's owner); --rm removes the topic at the end.
 *
 * The harness does the phases, the accounting and the report (see
 * bench_harness.c); tests/bench/nats_bench.c runs the same harness on
 * libnats. This file is only the transport:
 * - Each connection is one rmq_client (named ringmq-bench-sub or
 *   ringmq-bench-pub) with at most one subscription; the message callback
 *   runs on the client's I/O thread and hands the payload to the harness.
 * - Subscribers do not reconnect (a subscriber must keep up, not reconnect
 *   and miss messages): RMQ_EV_DISCONNECTED or RMQ_EV_CLOSED marks the
 *   subscriber down with the event's error (RMQ_ECLOSED without one).
 * - A publish that finds the send buffer full (-EAGAIN after the connect
 *   timeout) is retried until the deadline.
 * - Errors are libringmq's (0 or negative), with the CLI's exit codes.
 * - Durable: the harness's window slot is the arg of rmq_publish_ack_async;
 *   its callback (I/O thread, or inside rmq_close with RMQ_ECLOSED) hands it
 *   back to bench_acked. Topic calls use a 5 s timeout.
 */
#include <errno.h>
#include <stdlib.h>

#include "bench_harness.h"
#include "cli.h"

_Static_assert(BENCH_EXIT_OK == CLI_EXIT_OK && BENCH_EXIT_ERROR == CLI_EXIT_ERROR &&
                   BENCH_EXIT_USAGE == CLI_EXIT_USAGE && BENCH_EXIT_CONNECT == CLI_EXIT_CONNECT &&
                   BENCH_EXIT_SUBJECT == CLI_EXIT_SUBJECT &&
                   BENCH_EXIT_TIMEOUT == CLI_EXIT_TIMEOUT && BENCH_EXIT_SERVER == CLI_EXIT_SERVER &&
                   BENCH_EXIT_LOST == CLI_EXIT_LOST,
               "bench_harness.h and cli.h disagree on the exit codes");

/* ---- Transport: libringmq ---- */

/* One bench connection: the client, its subscription and the harness's
 * callbacks (called from the client's I/O thread). */
struct rconn {
    rmq_client *c;
    rmq_sub *sub;
    bench_msg_fn msg;
    void *msg_arg;
    bench_down_fn down;
    void *down_arg;
};

static void sub_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct rconn *rc = arg;
    (void)c;
    (void)sub;
    rc->msg(rc->msg_arg, rmq_msg_data(m), rmq_msg_len(m));
}

static void sub_event(rmq_client *c, int event, int err, void *arg)
{
    struct rconn *rc = arg;
    (void)c;
    if (event == RMQ_EV_DISCONNECTED || event == RMQ_EV_CLOSED)
        rc->down(rc->down_arg, err ? err : RMQ_ECLOSED);
}

static int r_connect(const struct bench_conn_opts *bo, void **conn)
{
    struct rconn *rc = calloc(1, sizeof(*rc));
    rmq_opts *o = NULL;
    int err;

    *conn = NULL;
    if (rc == NULL)
        return -ENOMEM;
    err = rmq_opts_new(&o);
    if (err == 0)
        err = rmq_opts_set_servers(o, bo->server);
    if (err == 0) {
        rmq_opts_set_name(o, bo->sub ? "ringmq-bench-sub" : "ringmq-bench-pub");
        if (bo->sub) {
            /* a subscriber must keep up, not reconnect and miss messages */
            rmq_opts_set_max_reconnect(o, 0);
            if (bo->down != NULL) {
                rc->down = bo->down;
                rc->down_arg = bo->down_arg;
                rmq_opts_set_event_cb(o, sub_event, rc);
            }
        }
        err = rmq_connect(o, &rc->c);
    }
    rmq_opts_free(o);
    if (err != 0) {
        free(rc);
        return err;
    }
    *conn = rc;
    return 0;
}

static int r_check_size(void *conn, uint64_t size)
{
    struct rconn *rc = conn;
    return size > rmq_client_max_payload(rc->c) ? -EMSGSIZE : 0;
}

static int r_subscribe(void *conn, const char *subject, const char *queue, bench_msg_fn cb,
                       void *arg)
{
    struct rconn *rc = conn;

    rc->msg = cb;
    rc->msg_arg = arg;
    return rmq_subscribe(rc->c, subject, queue, sub_cb, rc, &rc->sub);
}

/* Publish one message; waits while the send buffer is full (-EAGAIN after
 * the connect timeout), at most until the deadline. */
static int r_publish(void *conn, const char *subject, const uint8_t *data, size_t len,
                     int64_t deadline_ns)
{
    struct rconn *rc = conn;
    int err;

    do {
        err = rmq_publish(rc->c, subject, data, len);
    } while (err == -EAGAIN && bench_now_ns() < deadline_ns);
    return err;
}

static int r_flush(void *conn, int timeout_ms)
{
    struct rconn *rc = conn;
    return rmq_flush(rc->c, timeout_ms);
}

static void r_close(void *conn)
{
    struct rconn *rc = conn;

    if (rc == NULL)
        return;
    rmq_unsubscribe(rc->sub);
    rmq_close(rc->c);
    free(rc);
}

/* ---- Durable topics ---- */

#define R_ADMIN_TIMEOUT_MS 5000

/* Make topic store subject; an existing topic of that name is fine. */
static int r_topic_add(void *conn, const char *topic, const char *subject, bool *existed)
{
    struct rconn *rc = conn;
    const char *const subjects[1] = {subject};
    rmq_topic_cfg cfg = {.name = topic, .subjects = subjects, .nsubjects = 1};
    rmq_topic_info info;
    int err;

    *existed = false;
    err = rmq_topic_add(rc->c, &cfg, R_ADMIN_TIMEOUT_MS, NULL);
    if (err != -EEXIST)
        return err;
    /* the name is taken, or the subject belongs to another topic */
    err = rmq_topic_info_get(rc->c, topic, R_ADMIN_TIMEOUT_MS, &info);
    if (err != 0)
        return err == RMQ_ENOTFOUND ? -EEXIST : err;
    *existed = true;
    return 0;
}

static int r_topic_msgs(void *conn, const char *topic, uint64_t *msgs)
{
    struct rconn *rc = conn;
    rmq_topic_info info;
    int err = rmq_topic_info_get(rc->c, topic, R_ADMIN_TIMEOUT_MS, &info);

    if (err == 0)
        *msgs = info.msgs;
    return err;
}

static int r_topic_rm(void *conn, const char *topic)
{
    struct rconn *rc = conn;
    return rmq_topic_rm(rc->c, topic, R_ADMIN_TIMEOUT_MS);
}

static void ack_cb(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg)
{
    (void)c;
    (void)ack;
    bench_acked(arg, err);
}

/* Acked publish; waits while the send buffer is full, until the deadline. */
static int r_publish_ack(void *conn, const char *subject, const uint8_t *data, size_t len,
                         int timeout_ms, void *token, int64_t deadline_ns)
{
    struct rconn *rc = conn;
    int err;

    do {
        err = rmq_publish_ack_async(rc->c, subject, data, len, NULL, timeout_ms, ack_cb, token);
    } while (err == -EAGAIN && bench_now_ns() < deadline_ns);
    return err;
}

static int r_replay(void *conn, const char *topic, const char *subject, bench_msg_fn cb, void *arg)
{
    struct rconn *rc = conn;
    rmq_replay_opts o = {.start = RMQ_START_ALL};

    rc->msg = cb;
    rc->msg_arg = arg;
    return rmq_subscribe_topic(rc->c, topic, subject, &o, sub_cb, rc, &rc->sub);
}

static bool r_subject_ok(const char *s)
{
    return rmq_subject_check(s, false) == 0;
}

/* Exit code for an error that made the setup fail. */
static int r_setup_exit_code(int err)
{
    if (err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH)
        return CLI_EXIT_CONNECT;
    return cli_exit_code(err);
}

static const struct bench_transport ringmq_transport = {
    .broker = "ringmq",
    .prog = "ringmq",
    .esetup = -EAGAIN, /* a setup failed without an error of its own */
    .connect = r_connect,
    .check_size = r_check_size,
    .subscribe = r_subscribe,
    .publish = r_publish,
    .flush = r_flush,
    .close = r_close,
    .strerror = rmq_strerror,
    .subject_ok = r_subject_ok,
    .exit_code = cli_exit_code,
    .setup_exit_code = r_setup_exit_code,
    .topic_add = r_topic_add,
    .topic_msgs = r_topic_msgs,
    .topic_rm = r_topic_rm,
    .publish_ack = r_publish_ack,
    .replay = r_replay,
};

/* ---- Entry point ---- */

/*
 * Run `ringmq bench SUBJECT ...` (argv after the command word) against
 * server. Returns the process exit code. Main thread; starts P + S threads
 * and joins them all before returning.
 */
int cli_bench(const char *server, int argc, char **argv)
{
    return bench_run(&ringmq_transport, server, argc, argv);
}
