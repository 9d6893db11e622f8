/*
 * nats_bench.c - the `ringmq bench` harness (client/bench_harness.c) on a
 * libnats transport, so that nats-server and ringmqd are measured by the
 * same C harness running the same workloads and printing the same report
 * (text and --json, with "broker":"nats").
 *
 *   nats_bench [--server HOST:PORT] [bench] SUBJECT [--pubs P] [--subs S]
 *              [--msgs N] [--size BYTES] [--queue GROUP] [--latency]
 *              [--rate MSGS_PER_S] [--timeout MS] [--json]
 *
 * See client/bench_harness.c for the phases, the payload layout and the
 * bounds on every wait. This file is only the transport and main().
 *
 * libnats specifics, chosen to match what libringmq does:
 * - Subscriber callbacks run on the subscription's delivery thread (the
 *   libnats default), fed by the connection's reader thread. Pending limits
 *   are lifted (-1) so the client never drops: libringmq runs callbacks on
 *   its I/O thread and drops nothing either.
 * - No reconnects (a dropped subscriber is a failed run), as with
 *   rmq_opts_set_max_reconnect(0).
 * - With --latency, publishers use natsOptions_SetSendAsap: otherwise the
 *   libnats flusher thread waits 1 ms to batch before each write, which
 *   would be measured as broker latency. libringmq's I/O thread writes as
 *   soon as it is woken. Throughput runs keep the default buffering.
 *
 * Build (tests/bench/compare.sh does this): needs libnats-dev,
 *   cc -std=c11 -O2 -D_GNU_SOURCE tests/bench/nats_bench.c
 *      client/bench_harness.c -Iclient -lnats -lpthread -o BUILD/nats_bench
 *
 * Exit codes as `ringmq`: 0 ok, 1 other error, 2 usage, 3 cannot connect,
 * 4 invalid subject, 5 timeout, 6 server error or connection lost, 7 lost.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bench_harness.h"

/* ---- Transport: libnats ---- */

/* One bench connection: the connection, its subscription and the harness's
 * callbacks (called from libnats threads). */
struct nconn {
    natsConnection *nc;
    natsSubscription *sub;
    bench_msg_fn msg;
    void *msg_arg;
    bench_down_fn down;
    void *down_arg;
};

static void sub_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    struct nconn *c = arg;
    (void)nc;
    (void)sub;
    c->msg(c->msg_arg, (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

static void sub_closed(natsConnection *nc, void *arg)
{
    struct nconn *c = arg;
    (void)nc;
    c->down(c->down_arg, NATS_CONNECTION_CLOSED);
}

/* Asynchronous errors: a slow consumer (messages dropped) or a server error. */
static void sub_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
    struct nconn *c = arg;
    (void)nc;
    (void)sub;
    c->down(c->down_arg, (int)err);
}

/* Options for one bench connection to server. */
static natsStatus bench_opts(const char *server, const char *name, natsOptions **out)
{
    char url[300];
    natsStatus st;

    snprintf(url, sizeof(url), "nats://%s", server);
    st = natsOptions_Create(out);
    if (st == NATS_OK)
        st = natsOptions_SetURL(*out, url);
    if (st == NATS_OK)
        st = natsOptions_SetName(*out, name);
    if (st == NATS_OK)
        st = natsOptions_SetAllowReconnect(*out, false);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(*out, 2000);
    return st;
}

static int n_connect(const struct bench_conn_opts *bo, void **conn)
{
    struct nconn *c = calloc(1, sizeof(*c));
    natsOptions *o = NULL;
    natsStatus st;

    *conn = NULL;
    if (c == NULL)
        return (int)NATS_NO_MEMORY;
    st = bench_opts(bo->server, bo->sub ? "nats-bench-sub" : "nats-bench-pub", &o);
    if (bo->sub && bo->down != NULL) {
        c->down = bo->down;
        c->down_arg = bo->down_arg;
        if (st == NATS_OK)
            st = natsOptions_SetDisconnectedCB(o, sub_closed, c);
        if (st == NATS_OK)
            st = natsOptions_SetClosedCB(o, sub_closed, c);
        if (st == NATS_OK)
            st = natsOptions_SetErrorHandler(o, sub_error, c);
    }
    if (st == NATS_OK && !bo->sub && bo->latency)
        st = natsOptions_SetSendAsap(o, true);
    if (st == NATS_OK)
        st = natsConnection_Connect(&c->nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        natsConnection_Destroy(c->nc);
        free(c);
        return (int)st;
    }
    *conn = c;
    return 0;
}

static int n_check_size(void *conn, uint64_t size)
{
    struct nconn *c = conn;
    return (int64_t)size > natsConnection_GetMaxPayload(c->nc) ? (int)NATS_MAX_PAYLOAD : 0;
}

static int n_subscribe(void *conn, const char *subject, const char *queue, bench_msg_fn cb,
                       void *arg)
{
    struct nconn *c = conn;
    natsStatus st;

    c->msg = cb;
    c->msg_arg = arg;
    if (queue != NULL)
        st = natsConnection_QueueSubscribe(&c->sub, c->nc, subject, queue, sub_cb, c);
    else
        st = natsConnection_Subscribe(&c->sub, c->nc, subject, sub_cb, c);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(c->sub, -1, -1);
    return (int)st;
}

/* Publish one message; libnats writes inline when its buffer is full. */
static int n_publish(void *conn, const char *subject, const uint8_t *data, size_t len,
                     int64_t deadline_ns)
{
    struct nconn *c = conn;
    (void)deadline_ns;
    return (int)natsConnection_Publish(c->nc, subject, data, (int)len);
}

static int n_flush(void *conn, int timeout_ms)
{
    struct nconn *c = conn;
    return (int)natsConnection_FlushTimeout(c->nc, timeout_ms);
}

static void n_close(void *conn)
{
    struct nconn *c = conn;

    if (c == NULL)
        return;
    if (c->sub != NULL) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    natsConnection_Destroy(c->nc);
    free(c);
}

static const char *n_strerror(int err)
{
    return natsStatus_GetText((natsStatus)err);
}

/* A subject without wildcards, as rmq_subject_check(s, false): 1..256 bytes
 * of non-empty '.'-separated tokens, no byte below 0x21, no 0x7f, no "*" or
 * ">" token. */
static bool n_subject_ok(const char *s)
{
    size_t len = strlen(s), tok = 0;

    if (len == 0 || len > 256)
        return false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.' || ch == '\0') {
            if (tok == 0)
                return false;
            if (tok == 1 && (s[i - 1] == '*' || s[i - 1] == '>'))
                return false;
            tok = 0;
        } else if (ch < 0x21 || ch == 0x7f) {
            return false;
        } else {
            tok++;
        }
    }
    return true;
}

/* Exit code for an error of a run. */
static int n_exit_code(int err)
{
    switch (err) {
    case NATS_OK:
        return BENCH_EXIT_OK;
    case NATS_TIMEOUT:
        return BENCH_EXIT_TIMEOUT;
    case NATS_NO_MEMORY:
        return BENCH_EXIT_ERROR;
    case NATS_INVALID_SUBJECT:
        return BENCH_EXIT_SUBJECT;
    default:
        return BENCH_EXIT_SERVER;
    }
}

/* Exit code for an error that made the setup fail. */
static int n_setup_exit_code(int err)
{
    if (err == NATS_NO_SERVER || err == NATS_IO_ERROR || err == NATS_TIMEOUT)
        return BENCH_EXIT_CONNECT;
    return n_exit_code(err);
}

static const struct bench_transport nats_transport = {
    .broker = "nats",
    .prog = "nats_bench",
    .esetup = (int)NATS_TIMEOUT, /* a setup failed without an error of its own */
    .connect = n_connect,
    .check_size = n_check_size,
    .subscribe = n_subscribe,
    .publish = n_publish,
    .flush = n_flush,
    .close = n_close,
    .strerror = n_strerror,
    .subject_ok = n_subject_ok,
    .exit_code = n_exit_code,
    .setup_exit_code = n_setup_exit_code,
};

/* ---- Entry point ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: nats_bench [--server HOST:PORT] [bench] SUBJECT [--pubs P] [--subs S]\n"
               "       [--msgs N] [--size BYTES] [--queue GROUP] [--latency]\n"
               "       [--rate MSGS_PER_S] [--timeout MS] [--json]\n"
               "The server defaults to 127.0.0.1:4222. Same options, report and exit codes\n"
               "as `ringmq bench`.\n");
}

/* nats_bench [--server HOST:PORT] [bench] SUBJECT ...: the bench on libnats.
 * Returns the exit code of bench_run. */
int main(int argc, char **argv)
{
    const char *server = "127.0.0.1:4222";
    int i = 1, rc;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return BENCH_EXIT_OK;
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else {
            break; /* a bench option before SUBJECT */
        }
    }
    if (i < argc && strcmp(argv[i], "bench") == 0)
        i++;
    if (strlen(server) > 256) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (nats_Open(-1) != NATS_OK) {
        fprintf(stderr, "nats_bench: cannot initialise libnats\n");
        return BENCH_EXIT_ERROR;
    }
    rc = bench_run(&nats_transport, server, argc - i, argv + i);
    nats_CloseAndWait(5000);
    return rc;
}
