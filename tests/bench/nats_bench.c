/*
 * nats_bench.c - the `ringmq bench` harness (client/bench_harness.c) on a
 * libnats transport, so that nats-server and ringmqd are measured by the
 * same C harness running the same workloads and printing the same report
 * (text and --json, with "broker":"nats").
 *
 *   nats_bench [--server HOST:PORT] [bench] SUBJECT [--pubs P] [--subs S]
 *              [--msgs N] [--size BYTES] [--queue GROUP] [--latency]
 *              [--rate MSGS_PER_S] [--sub-servers HOST:PORT[,...]]
 *              [--timeout MS] [--json]
 *   nats_bench [--server HOST:PORT] [bench] SUBJECT --durable STREAM
 *              [--pubs P] [--msgs N] [--size BYTES] [--window W]
 *              [--duration MS] [--replay] [--rm] [--timeout MS] [--json]
 *
 * See client/bench_harness.c for the phases, the payload layout and the
 * bounds on every wait. This file is only the transport and main().
 * --sub-servers (the harness's: subscribers round-robin on those servers,
 * e.g. the other nodes of a nats-server cluster, publishers on --server)
 * needs nothing of the transport: each entry is one server's URL.
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
 * - --durable is JetStream (nats-server -js): the topic is a stream with
 *   file storage on SUBJECT (created if missing), acked publishes are
 *   js_PublishMsgAsync with the context's AckHandler (MaxPending above the
 *   window, so the harness's window is the only limit), each with MaxWait,
 *   and the replay is an ordered push consumer (js_Subscribe, Ordered,
 *   DeliverAll: no acks, in order, like a START_ALL topic subscription).
 *   The harness's token of each publish is kept next to its natsMsg (the
 *   AckHandler gets the message back). A publisher's nconn is freed only
 *   after nats_CloseAndWait (main): an AckHandler may still run on a
 *   libnats thread after natsConnection_Destroy returns.
 * - A subscriber's nconn is freed only after libnats's closed callback has
 *   run (n_close waits for it, 5 s at most, else keeps it): the callback
 *   comes on a libnats thread after natsConnection_Close, and freeing
 *   before it was a use-after-free (the likely cause of the SIGSEGVs of
 *   earlier nats runs in docs/PERFORMANCE.md).
 *
 * Build (tests/bench/compare.sh does this): needs libnats-dev,
 *   cc -std=c11 -O2 -D_GNU_SOURCE tests/bench/nats_bench.c
 *      client/bench_harness.c -Iclient -lnats -lpthread -o BUILD/nats_bench
 *
 * Exit codes as `ringmq`: 0 ok, 1 other error, 2 usage, 3 cannot connect,
 * 4 invalid subject, 5 timeout, 6 server error or connection lost, 7 lost.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    jsCtx *js;          /* --durable: the JetStream context */
    pthread_mutex_t mu; /* guards what follows */
    bool closed;        /* n_close ran: no more bench_acked or down calls */
    bool closed_cb;     /* subscriber: libnats's closed callback has run */
    /* --durable publisher: the publishes not answered yet */
    natsMsg **pm; /* the messages, as given to js_PublishMsgAsync */
    void **ptok;  /* and the harness's tokens */
    size_t npm, cap;
    struct nconn *next_kept; /* on the kept list, see n_close */
};

/* Connections closed while a libnats thread may still call back into them:
 * freed by main after nats_CloseAndWait, when those threads are gone. */
static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nconn *kept;

static void n_free(struct nconn *c)
{
    free(c->pm);
    free(c->ptok);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void sub_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    struct nconn *c = arg;
    (void)nc;
    (void)sub;
    c->msg(c->msg_arg, (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

/* Tell the harness that subscriber c is down, unless n_close is closing it. */
static void sub_down(struct nconn *c, int err)
{
    pthread_mutex_lock(&c->mu);
    if (!c->closed)
        c->down(c->down_arg, err);
    pthread_mutex_unlock(&c->mu);
}

static void sub_disconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    sub_down(arg, NATS_CONNECTION_CLOSED);
}

/* The closed callback: the last one libnats makes for the connection
 * (its asynchronous callbacks run in order on one thread), so n_close waits
 * for it before freeing c. */
static void sub_closed(natsConnection *nc, void *arg)
{
    struct nconn *c = arg;

    (void)nc;
    sub_down(c, NATS_CONNECTION_CLOSED);
    pthread_mutex_lock(&c->mu);
    c->closed_cb = true;
    pthread_mutex_unlock(&c->mu);
}

/* Asynchronous errors: a slow consumer (messages dropped) or a server error. */
static void sub_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
    (void)nc;
    (void)sub;
    sub_down(arg, (int)err);
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

/* A JetStream publish answer (AckHandler, on a libnats thread): give the
 * harness its token back, unless the connection is being closed. */
static void n_ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
    struct nconn *c = arg;
    int err = 0;
    void *tok = NULL;

    (void)js;
    if (pa == NULL)
        err = pae != NULL && pae->Err != NATS_OK ? (int)pae->Err : (int)NATS_ERR;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->npm; i++) {
        if (c->pm[i] == msg) {
            tok = c->ptok[i];
            c->npm--;
            c->pm[i] = c->pm[c->npm];
            c->ptok[i] = c->ptok[c->npm];
            break;
        }
    }
    if (tok != NULL && !c->closed)
        bench_acked(tok, err);
    pthread_mutex_unlock(&c->mu);
    natsMsg_Destroy(msg);
}

/* The JetStream context of a --durable connection; publishers get the
 * AckHandler and room for window outstanding publishes. */
static natsStatus n_jetstream(struct nconn *c, const struct bench_conn_opts *bo)
{
    jsOptions jo;
    natsStatus st = jsOptions_Init(&jo);

    if (st != NATS_OK)
        return st;
    jo.Wait = 5000;
    if (!bo->sub && bo->window > 0) {
        c->cap = bo->window;
        c->pm = calloc(c->cap, sizeof(*c->pm));
        c->ptok = calloc(c->cap, sizeof(*c->ptok));
        if (c->pm == NULL || c->ptok == NULL)
            return NATS_NO_MEMORY;
        jo.PublishAsync.MaxPending = (int64_t)bo->window + 16;
        jo.PublishAsync.AckHandler = n_ack_handler;
        jo.PublishAsync.AckHandlerClosure = c;
    }
    return natsConnection_JetStream(&c->js, c->nc, &jo);
}

static int n_connect(const struct bench_conn_opts *bo, void **conn)
{
    struct nconn *c = calloc(1, sizeof(*c));
    natsOptions *o = NULL;
    natsStatus st;

    *conn = NULL;
    if (c == NULL)
        return (int)NATS_NO_MEMORY;
    pthread_mutex_init(&c->mu, NULL);
    st = bench_opts(bo->server, bo->sub ? "nats-bench-sub" : "nats-bench-pub", &o);
    if (bo->sub && bo->down != NULL) {
        c->down = bo->down;
        c->down_arg = bo->down_arg;
        if (st == NATS_OK)
            st = natsOptions_SetDisconnectedCB(o, sub_disconnected, c);
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
    if (st == NATS_OK && bo->durable)
        st = n_jetstream(c, bo);
    if (st != NATS_OK) {
        jsCtx_Destroy(c->js);
        natsConnection_Destroy(c->nc);
        n_free(c);
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
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    pthread_mutex_unlock(&c->mu);
    if (c->sub != NULL) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    jsCtx_Destroy(c->js);
    natsConnection_Close(c->nc);
    if (c->down != NULL) {
        /* the closed callback comes on a libnats thread, after Close */
        struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
        bool done = false;
        for (int i = 0; i < 5000 && !done; i++) {
            pthread_mutex_lock(&c->mu);
            done = c->closed_cb;
            pthread_mutex_unlock(&c->mu);
            if (!done)
                nanosleep(&ms, NULL);
        }
        if (!done)
            c->cap = 1; /* it may still come: keep c (c->pm stays NULL) */
    }
    natsConnection_Destroy(c->nc);
    if (c->cap > 0) {
        /* a publisher's AckHandler may still come: see the top */
        pthread_mutex_lock(&kept_mu);
        c->next_kept = kept;
        kept = c;
        pthread_mutex_unlock(&kept_mu);
        return;
    }
    n_free(c);
}

/* ---- Durable topics: JetStream ---- */

/* Make stream topic (file storage) on subject; an existing one is fine. */
static int n_topic_add(void *conn, const char *topic, const char *subject, bool *existed)
{
    struct nconn *c = conn;
    const char *subjects[1] = {subject};
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, c->js, topic, NULL, &jerr);

    *existed = st == NATS_OK;
    jsStreamInfo_Destroy(si);
    si = NULL;
    if (st == NATS_OK)
        return 0;
    if (st != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return (int)st;
    st = jsStreamConfig_Init(&cfg);
    if (st != NATS_OK)
        return (int)st;
    cfg.Name = topic;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    st = js_AddStream(&si, c->js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return (int)st;
}

static int n_topic_msgs(void *conn, const char *topic, uint64_t *msgs)
{
    struct nconn *c = conn;
    jsStreamInfo *si = NULL;
    natsStatus st = js_GetStreamInfo(&si, c->js, topic, NULL, NULL);

    if (st == NATS_OK)
        *msgs = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return (int)st;
}

static int n_topic_rm(void *conn, const char *topic)
{
    struct nconn *c = conn;
    return (int)js_DeleteStream(c->js, topic, NULL, NULL);
}

/* Acked publish: js_PublishMsgAsync, the answer through n_ack_handler. */
static int n_publish_ack(void *conn, const char *subject, const uint8_t *data, size_t len,
                         int timeout_ms, void *token, int64_t deadline_ns)
{
    struct nconn *c = conn;
    natsMsg *m = NULL, *keep;
    jsPubOptions po;
    natsStatus st;

    (void)deadline_ns;
    st = natsMsg_Create(&m, subject, NULL, (const char *)data, (int)len);
    if (st != NATS_OK)
        return (int)st;
    keep = m;
    pthread_mutex_lock(&c->mu);
    if (c->npm == c->cap) {
        pthread_mutex_unlock(&c->mu);
        natsMsg_Destroy(m);
        return (int)NATS_INSUFFICIENT_BUFFER; /* more outstanding than the window */
    }
    c->pm[c->npm] = m;
    c->ptok[c->npm] = token;
    c->npm++;
    pthread_mutex_unlock(&c->mu);
    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms;
    st = js_PublishMsgAsync(c->js, &m, &po);
    if (st != NATS_OK) {
        pthread_mutex_lock(&c->mu);
        for (size_t i = 0; i < c->npm; i++) {
            if (c->pm[i] == keep) {
                c->npm--;
                c->pm[i] = c->pm[c->npm];
                c->ptok[i] = c->ptok[c->npm];
                break;
            }
        }
        pthread_mutex_unlock(&c->mu);
        natsMsg_Destroy(m); /* NULL if the library kept it */
    }
    return (int)st;
}

/* Replay: an ordered push consumer on the stream, from its first message. */
static int n_replay(void *conn, const char *topic, const char *subject, bench_msg_fn cb, void *arg)
{
    struct nconn *c = conn;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus st = jsSubOptions_Init(&so);

    c->msg = cb;
    c->msg_arg = arg;
    if (st != NATS_OK)
        return (int)st;
    so.Stream = topic;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    st = js_Subscribe(&c->sub, c->js, subject, sub_cb, c, NULL, &so, &jerr);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(c->sub, -1, -1);
    return (int)st;
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
    .topic_add = n_topic_add,
    .topic_msgs = n_topic_msgs,
    .topic_rm = n_topic_rm,
    .publish_ack = n_publish_ack,
    .replay = n_replay,
};

/* ---- Entry point ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: nats_bench [--server HOST:PORT] [bench] SUBJECT [--pubs P] [--subs S]\n"
               "       [--msgs N] [--size BYTES] [--queue GROUP] [--latency]\n"
               "       [--rate MSGS_PER_S] [--sub-servers HOST:PORT[,...]] [--timeout MS]\n"
               "       [--json]   (--sub-servers: subscriber i on entry i mod n, e.g. other\n"
               "       cluster nodes; publishers on --server)\n"
               "   or: nats_bench [--server HOST:PORT] [bench] SUBJECT --durable STREAM\n"
               "       [--pubs P] [--msgs N] [--size BYTES] [--window W] [--duration MS]\n"
               "       [--replay] [--rm] [--timeout MS] [--json]   (JetStream: nats-server -js)\n"
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
    if (nats_CloseAndWait(5000) == NATS_OK) {
        while (kept != NULL) {
            struct nconn *c = kept;
            kept = c->next_kept;
            n_free(c);
        }
    }
    return rc;
}
