/*
 * client_io.c - the I/O thread of a client: TCP connect with timeout, the
 * CONNECT/INFO handshake, reading and dispatching frames, writing the
 * coalesced send buffer, and reconnecting with backoff.
 *
 * One thread per client, plain POSIX sockets in non-blocking mode and
 * poll() on two descriptors: the socket and an eventfd that API threads
 * write to when they put the first frame into an empty send buffer or call
 * rmq_close().
 *
 *   API threads                           I/O thread
 *   -----------                           ----------
 *   lock; append frame to sbuf;           loop:
 *   wake if sbuf was empty; unlock          lock; wbuf written out? swap sbuf<->wbuf; unlock
 *                                           poll(socket: IN [+OUT], eventfd: IN)
 *                                           send(wbuf) without the lock
 *                                           recv -> split frames -> dispatch
 *                                              MESSAGE: client_deliver() (callbacks run here)
 *                                              PING: queue PONG   PONG: wake flushers
 *                                              ERROR: sub failed / error cb / fatal -> drop
 *                                           ack deadline passed? callback -ETIMEDOUT
 *
 * On a drop (EOF, socket error, fatal ERROR, undecodable frame) the thread
 * discards the partly written wbuf, keeps only the PUBLISH frames of sbuf
 * (SUB/UNSUB/PING are regenerated from state), and reconnects: the first
 * attempt at once, then with exponential backoff and jitter, rotating
 * through the server list. After CONNECT/INFO it queues SUBSCRIBE (+
 * UNSUBSCRIBE{max} for the remaining auto-unsubscribe count) for every live
 * subscription ahead of the buffered publishes.
 *
 * The poll() timeout is the earliest deadline of the outstanding publish
 * acks (client_ack.c). While reconnecting, acks time out between attempts
 * (so up to one connect timeout late); at close the remaining ones get
 * RMQ_ECLOSED before RMQ_EV_CLOSED.
 *
 * The handshake helpers run on the caller's thread inside rmq_connect(),
 * before the I/O thread exists, and on the I/O thread afterwards.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

/* The client whose I/O thread this is, or NULL on other threads. */
static _Thread_local const rmq_client *io_self;

/* Largest frame body accepted before INFO says otherwise. */
#define IO_HANDSHAKE_MAX_BODY (1u << 20)
/* Bounded drain of the send buffer in rmq_close(). */
#define IO_CLOSE_DRAIN_MS 1000
/* Read granularity. */
#define IO_READ_CHUNK (64 * 1024)

/* true when called on c's I/O thread (i.e. from one of its callbacks). */
bool client_in_io_thread(const rmq_client *c)
{
    return io_self == c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t r = deadline - now_ms();
    return r < 0 ? 0 : (int)r;
}

/* Report an asynchronous error to the user's error callback (no lock held). */
void client_io_report(rmq_client *c, rmq_sub *sub, int err, const char *text)
{
    if (c->opts.err_cb)
        c->opts.err_cb(c, sub, err, text ? text : rmq_strerror(err), c->opts.err_arg);
}

static void io_event(rmq_client *c, int ev, int err)
{
    if (c->opts.ev_cb)
        c->opts.ev_cb(c, ev, err, c->opts.ev_arg);
}

/* ---- Sockets ---- */

static int gai_to_err(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return errno ? -errno : -EIO;
    default:
        return -EINVAL;
    }
}

/* Wait for fd to be ready for events, up to deadline. 0, -ETIMEDOUT or -errno. */
static int sock_wait(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, remaining_ms(deadline));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Connect a non-blocking TCP socket to srv by deadline. Returns fd or -err. */
static int sock_connect(const struct client_server *srv, int64_t deadline)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res, *ai;
    char port[8];
    int rc, fd = -1;

    snprintf(port, sizeof(port), "%u", (unsigned)srv->port);
    errno = 0;
    rc = getaddrinfo(srv->host, port, &hints, &res);
    if (rc != 0)
        return gai_to_err(rc);
    rc = -EHOSTUNREACH;
    for (ai = res; ai; ai = ai->ai_next) {
        int err = 0, one = 1;
        socklen_t elen = sizeof(err);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            if (errno != EINPROGRESS) {
                rc = -errno;
                goto next;
            }
            rc = sock_wait(fd, POLLOUT, deadline);
            if (rc < 0)
                goto next;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                err = errno;
            if (err != 0) {
                rc = -err;
                goto next;
            }
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(res);
        return fd;
    next:
        close(fd);
        fd = -1;
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* Write all of p[0..n) by deadline. 0 or -err. */
static int sock_write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = sock_wait(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* recv() once into rbuf. Returns bytes read (> 0), 0 for "try later", or
 * -ECONNRESET on EOF / -errno. */
static ssize_t io_recv(rmq_client *c)
{
    ssize_t n;

    if (client_buf_reserve(&c->rbuf, &c->rcap, c->rlen + IO_READ_CHUNK) < 0)
        return -ENOMEM;
    for (;;) {
        n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
        if (n > 0) {
            c->rlen += (size_t)n;
            return n;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

static void rbuf_consume(rmq_client *c, size_t n)
{
    if (n >= c->rlen) {
        c->rlen = 0;
        return;
    }
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
}

/* ---- Handshake ---- */

static int connect_frame(rmq_client *c)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Connect conn = RINGMQ__CONNECT__INIT;
    ssize_t w;

    conn.version = CODEC_PROTO_VERSION;
    conn.name = c->opts.name;
    conn.auth_token = c->opts.token;
    f.kind_case = RINGMQ__FRAME__KIND_CONNECT;
    f.connect = &conn;
    c->wlen = c->wpos = 0;
    if (client_buf_reserve(&c->wbuf, &c->wcap, codec_frame_size(&f)) < 0)
        return -ENOMEM;
    w = codec_frame_write(&f, c->wbuf, c->wcap);
    if (w < 0)
        return (int)w;
    c->wlen = (size_t)w;
    return 0;
}

static uint32_t body_limit(uint32_t max_frame, uint32_t max_payload)
{
    uint64_t m = max_frame > max_payload ? max_frame : max_payload;
    m += CODEC_FRAME_OVERHEAD;
    return m > (1u << 30) ? (1u << 30) : (uint32_t)m;
}

/* Handle the server's answer to CONNECT: body is one frame body. Returns 1
 * on INFO, 0 to keep reading, or a negative error. */
static int handshake_frame(rmq_client *c, const uint8_t *body, size_t len)
{
    struct codec_span sub;
    Ringmq__Frame *f;
    int kind = codec_peek(body, len, &sub), rc = 0;

    if (kind < 0)
        return RMQ_EFRAME;
    if (kind == CODEC_K_PING || kind == CODEC_K_PONG || kind == CODEC_K_NONE)
        return 0;
    if (kind != CODEC_K_INFO && kind != CODEC_K_ERR)
        return -EPROTO;
    f = ringmq__frame__unpack(NULL, len, body);
    if (f == NULL)
        return RMQ_EFRAME;
    if (f->kind_case == RINGMQ__FRAME__KIND_ERR) {
        rc = codec_err_from_wire(f->err->code);
    } else if (f->kind_case != RINGMQ__FRAME__KIND_INFO) {
        rc = RMQ_EFRAME;
    } else if (f->info->proto_version != CODEC_PROTO_VERSION) {
        rc = -EPROTO;
    } else {
        pthread_mutex_lock(&c->mu);
        c->max_payload = f->info->max_payload;
        c->max_frame = f->info->max_frame;
        pthread_mutex_unlock(&c->mu);
        c->max_body = body_limit(f->info->max_frame, f->info->max_payload);
        rc = 1;
    }
    ringmq__frame__free_unpacked(f, NULL);
    return rc;
}

/* Connect to one server and do CONNECT/INFO within the connect timeout. On
 * success c->fd is set and bytes after INFO stay in rbuf. */
static int dial_one(rmq_client *c, const struct client_server *srv)
{
    int64_t deadline = now_ms() + c->opts.connect_timeout_ms;
    int fd, rc;

    fd = sock_connect(srv, deadline);
    if (fd < 0)
        return fd;
    rc = connect_frame(c);
    if (rc == 0)
        rc = sock_write_all(fd, c->wbuf, c->wlen, deadline);
    c->wlen = c->wpos = 0;
    c->rlen = 0;
    c->fd = fd;
    c->max_body = IO_HANDSHAKE_MAX_BODY;
    while (rc == 0) {
        struct codec_span body;
        int split = codec_split(c->rbuf, c->rlen, c->max_body, &body);

        if (split < 0) {
            rc = split;
            break;
        }
        if (split == 1) {
            size_t used = CODEC_HDR_LEN + body.len;
            rc = handshake_frame(c, body.p, body.len);
            rbuf_consume(c, used);
            if (rc == 1)
                return 0;
            continue;
        }
        rc = sock_wait(fd, POLLIN, deadline);
        if (rc == 0) {
            ssize_t n = io_recv(c);
            rc = n < 0 ? (int)n : 0;
        }
    }
    close(fd);
    c->fd = -1;
    c->rlen = 0;
    return rc;
}

/*
 * Initial connect from rmq_connect(): try each server once, in order.
 * Returns 0 (c->fd set, state CONNECTED) or the last server's error.
 * Runs on the caller's thread, before the I/O thread exists.
 */
int client_io_dial(rmq_client *c)
{
    int rc = -EINVAL;

    for (size_t i = 0; i < c->opts.nservers; i++) {
        rc = dial_one(c, &c->opts.servers[i]);
        if (rc == 0) {
            c->cur_server = i;
            pthread_mutex_lock(&c->mu);
            c->state = CLIENT_CONNECTED;
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    }
    return rc;
}

/* ---- Writing ---- */

/* Take sbuf as the next batch to write once wbuf is done. Caller holds mu. */
static void swap_locked(rmq_client *c)
{
    uint8_t *b;
    size_t cap;

    if (c->wpos < c->wlen || c->slen == 0)
        return;
    b = c->wbuf;
    cap = c->wcap;
    c->wbuf = c->sbuf;
    c->wcap = c->scap;
    c->wlen = c->slen;
    c->wpos = 0;
    c->sbuf = b;
    c->scap = cap;
    c->slen = 0;
    pthread_cond_broadcast(&c->cv_room);
}

/* One non-blocking send of what is left in wbuf. 0 or -errno. */
static int write_some(rmq_client *c)
{
    while (c->wpos < c->wlen) {
        ssize_t w = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c->wpos += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return w < 0 ? -errno : -EIO;
    }
    c->wpos = c->wlen = 0;
    return 0;
}

/* Error noticed by a write inside a callback, handled by the main loop. */
static _Thread_local int io_pending_err;

/*
 * rmq_publish() from a callback found the send buffer over its threshold:
 * being the I/O thread, write it out here instead of waiting for ourselves.
 * Caller holds c->mu (released while writing). Returns 0 once size more
 * bytes fit, or -EAGAIN (timeout, or the connection failed).
 */
int client_io_drain_locked(rmq_client *c, size_t size)
{
    int64_t deadline = now_ms() + c->opts.connect_timeout_ms;

    while (c->state == CLIENT_CONNECTED && c->slen > 0 && c->slen + size > c->opts.send_buf) {
        int rc;

        if (io_pending_err)
            return -EAGAIN;
        if (c->wpos == c->wlen) {
            swap_locked(c);
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        rc = sock_wait(c->fd, POLLOUT, deadline);
        if (rc == 0)
            rc = write_some(c);
        pthread_mutex_lock(&c->mu);
        if (rc == -ETIMEDOUT)
            return -EAGAIN;
        if (rc < 0) {
            io_pending_err = rc;
            return -EAGAIN;
        }
    }
    return 0;
}

/* ---- Reading and dispatch ---- */

static int on_ping(rmq_client *c, const uint8_t *body, size_t len)
{
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, len, body);
    Ringmq__Frame out = RINGMQ__FRAME__INIT;
    Ringmq__Pong pong = RINGMQ__PONG__INIT;
    int rc;

    if (f == NULL)
        return RMQ_EFRAME;
    pong.has_token = f->ping->has_token;
    pong.token = f->ping->token;
    ringmq__frame__free_unpacked(f, NULL);
    out.kind_case = RINGMQ__FRAME__KIND_PONG;
    out.pong = &pong;
    pthread_mutex_lock(&c->mu);
    rc = client_frame_append_locked(c, &out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int on_pong(rmq_client *c, const uint8_t *body, size_t len)
{
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, len, body);
    uint64_t token;

    if (f == NULL)
        return RMQ_EFRAME;
    token = f->pong->token;
    ringmq__frame__free_unpacked(f, NULL);
    pthread_mutex_lock(&c->mu);
    if (token <= c->ping_seq && token > c->pong_seq) {
        c->pong_seq = token;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ERROR from the server. Returns 0 (connection stays) or the fatal code. */
static int on_error(rmq_client *c, const uint8_t *body, size_t len)
{
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, len, body);
    char text[256];
    int err;
    bool fatal;
    uint64_t sid;

    if (f == NULL)
        return RMQ_EFRAME;
    err = codec_err_from_wire(f->err->code);
    fatal = f->err->has_fatal && f->err->fatal;
    sid = f->err->has_sid ? f->err->sid : 0;
    snprintf(text, sizeof(text), "%s%s%s", codec_err_name(f->err->code), f->err->text ? ": " : "",
             f->err->text ? f->err->text : "");
    ringmq__frame__free_unpacked(f, NULL);
    if (sid != 0 && !fatal)
        client_sub_fail(c, sid, err, text);
    else
        client_io_report(c, NULL, err, text);
    return fatal ? err : 0;
}

static int on_info(rmq_client *c, const uint8_t *body, size_t len)
{
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, len, body);

    if (f == NULL)
        return RMQ_EFRAME;
    pthread_mutex_lock(&c->mu);
    c->max_payload = f->info->max_payload;
    c->max_frame = f->info->max_frame;
    pthread_mutex_unlock(&c->mu);
    c->max_body = body_limit(f->info->max_frame, f->info->max_payload);
    ringmq__frame__free_unpacked(f, NULL);
    return 0;
}

/* Dispatch one frame body. 0, or an error that drops the connection. */
static int on_frame(rmq_client *c, const uint8_t *body, size_t len)
{
    struct codec_span sub;
    struct codec_msg cm;
    int kind = codec_peek(body, len, &sub);

    switch (kind) {
    case CODEC_K_MSG:
        if (codec_msg_parse(sub.p, sub.len, &cm) < 0 || !cm.has_sid)
            return RMQ_EFRAME;
        client_deliver(c, &cm);
        return 0;
    case CODEC_K_PING:
        return on_ping(c, body, len);
    case CODEC_K_PONG:
        return on_pong(c, body, len);
    case CODEC_K_ERR:
        return on_error(c, body, len);
    case CODEC_K_INFO:
        return on_info(c, body, len);
    default:
        return kind < 0 ? RMQ_EFRAME : 0; /* kinds for servers, or newer ones */
    }
}

/* Dispatch every complete frame in rbuf. 0 or an error. */
static int io_dispatch(rmq_client *c)
{
    struct codec_span body;
    size_t off = 0;
    int rc = 0, split;

    while ((split = codec_split(c->rbuf + off, c->rlen - off, c->max_body, &body)) == 1) {
        off += CODEC_HDR_LEN + body.len;
        rc = on_frame(c, body.p, body.len);
        if (rc < 0)
            break;
    }
    if (split < 0)
        rc = split;
    rbuf_consume(c, off);
    return rc;
}

/* Read what is there and dispatch every complete frame. 0 or an error. */
static int io_read(rmq_client *c)
{
    ssize_t n = io_recv(c);

    if (n < 0)
        return (int)n;
    return io_dispatch(c);
}

/* ---- Disconnect and reconnect ---- */

/* Count the PUBLISH frames of buf[0..len) that end after byte pos. */
static uint64_t count_pubs_after(const uint8_t *buf, size_t len, size_t pos)
{
    struct codec_span body, sub;
    size_t off = 0;
    uint64_t n = 0;

    while (codec_split(buf + off, len - off, UINT32_MAX, &body) == 1) {
        size_t end = off + CODEC_HDR_LEN + body.len;
        if (end > pos && codec_peek(body.p, body.len, &sub) == CODEC_K_PUB)
            n++;
        off = end;
    }
    return n;
}

/* Keep only whole PUBLISH frames in sbuf, at most reconnect_buf bytes.
 * Returns how many publishes were dropped. Caller holds mu. */
static uint64_t sbuf_keep_pubs_locked(rmq_client *c)
{
    struct codec_span body, sub;
    size_t off = 0, out = 0;
    uint64_t dropped = 0;

    while (codec_split(c->sbuf + off, c->slen - off, UINT32_MAX, &body) == 1) {
        size_t flen = CODEC_HDR_LEN + body.len;
        if (codec_peek(body.p, body.len, &sub) == CODEC_K_PUB) {
            if (out + flen <= c->opts.reconnect_buf) {
                memmove(c->sbuf + out, c->sbuf + off, flen);
                out += flen;
            } else {
                dropped++;
            }
        }
        off += flen;
    }
    c->slen = out;
    return dropped;
}

static void io_disconnect(rmq_client *c, int err)
{
    uint64_t lost = count_pubs_after(c->wbuf, c->wlen, c->wpos);

    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->wlen = c->wpos = 0;
    c->rlen = 0;
    io_pending_err = 0;
    pthread_mutex_lock(&c->mu);
    lost += sbuf_keep_pubs_locked(c);
    c->stats.dropped += lost;
    c->gen++;
    c->state = CLIENT_RECONNECTING;
    client_wake_all_locked(c);
    pthread_mutex_unlock(&c->mu);
    io_event(c, RMQ_EV_DISCONNECTED, err);
}

static uint64_t rng_next(rmq_client *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

/* Delay before reconnect attempt n (n >= 1): capped exponential with up to
 * half taken off at random, so many clients do not come back in step. */
static int backoff_ms(rmq_client *c, int n)
{
    int64_t d = c->opts.reconnect_wait_ms;

    for (int i = 1; i < n && d < c->opts.reconnect_wait_max_ms; i++)
        d *= 2;
    if (d > c->opts.reconnect_wait_max_ms)
        d = c->opts.reconnect_wait_max_ms;
    d -= (int64_t)(rng_next(c) % (uint64_t)(d / 2 + 1));
    return (int)d;
}

static void wake_drain(rmq_client *c)
{
    uint64_t v;
    ssize_t n = read(c->wake_fd, &v, sizeof(v));
    (void)n;
}

static bool closing(rmq_client *c)
{
    bool v;

    pthread_mutex_lock(&c->mu);
    v = c->closing;
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* Sleep ms, or less if rmq_close() is called, timing out acks meanwhile.
 * Returns true if closing. */
static bool sleep_or_close(rmq_client *c, int ms)
{
    int64_t deadline = now_ms() + ms;
    struct pollfd p = {.fd = c->wake_fd, .events = POLLIN};

    while (!closing(c)) {
        int left = remaining_ms(deadline), ack_ms;
        client_acks_expire(c);
        if (left == 0)
            return false;
        pthread_mutex_lock(&c->mu);
        ack_ms = client_acks_timeout_locked(c);
        pthread_mutex_unlock(&c->mu);
        if (ack_ms >= 0 && ack_ms < left)
            left = ack_ms;
        if (poll(&p, 1, left) > 0)
            wake_drain(c);
    }
    return true;
}

/* Queue the subscriptions in front of the buffered publishes. I/O thread,
 * holds mu. wbuf is empty here (the connection is new). */
static void resubscribe_locked(rmq_client *c)
{
    c->wlen = c->wpos = 0;
    for (size_t b = 0; b < c->nbuckets; b++)
        for (rmq_sub *s = c->subs[b]; s; s = s->hnext)
            if (s->state == SUB_ACTIVE)
                client_sub_frames(s, &c->wbuf, &c->wlen, &c->wcap);
}

/* Reconnect loop. Returns 0 when connected again, 1 when closing or given up
 * (the state is CLOSED then, or closing is set). */
static int io_reconnect(rmq_client *c, int *why)
{
    int attempt = 0;
    int rc = *why;

    while (c->opts.max_reconnect < 0 || attempt < c->opts.max_reconnect) {
        size_t idx = (c->cur_server + (size_t)attempt) % c->opts.nservers;

        if (attempt > 0 && sleep_or_close(c, backoff_ms(c, attempt)))
            return 1;
        if (closing(c))
            return 1;
        client_acks_expire(c);
        rc = dial_one(c, &c->opts.servers[idx]);
        attempt++;
        if (rc == 0) {
            c->cur_server = idx;
            pthread_mutex_lock(&c->mu);
            resubscribe_locked(c);
            c->state = CLIENT_CONNECTED;
            c->stats.reconnects++;
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            io_event(c, RMQ_EV_RECONNECTED, 0);
            return 0;
        }
    }
    *why = rc;
    return 1;
}

/* rmq_close(): write what is buffered, for a bounded time. */
static void io_close_drain(rmq_client *c)
{
    int64_t deadline = now_ms() + IO_CLOSE_DRAIN_MS;

    while (c->fd >= 0) {
        pthread_mutex_lock(&c->mu);
        swap_locked(c);
        pthread_mutex_unlock(&c->mu);
        if (c->wpos == c->wlen)
            return;
        if (sock_wait(c->fd, POLLOUT, deadline) < 0 || write_some(c) < 0)
            return;
    }
}

static void *io_main(void *arg)
{
    rmq_client *c = arg;
    int err = 0, rc;

    io_self = c;
    rc = io_dispatch(c); /* frames that came in with INFO in rmq_connect() */
    if (rc < 0) {
        err = rc;
        io_disconnect(c, err);
    }
    for (;;) {
        struct pollfd p[2];
        bool want_write, read_paused;
        int tmo;

        rc = 0;

        if (io_pending_err) {
            err = io_pending_err;
            io_disconnect(c, err);
        }
        pthread_mutex_lock(&c->mu);
        if (c->closing) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        if (c->state == CLIENT_RECONNECTING) {
            pthread_mutex_unlock(&c->mu);
            if (io_reconnect(c, &err) != 0)
                break;
            rc = io_dispatch(c); /* frames that came in with INFO */
            if (rc < 0) {
                err = rc;
                io_disconnect(c, err);
            }
            continue;
        }
        swap_locked(c);
        tmo = client_acks_timeout_locked(c);
        read_paused = c->nblocking > 0; /* a full sync topic sub: TCP holds the broker */
        pthread_mutex_unlock(&c->mu);
        if (tmo == 0) {
            client_acks_expire(c);
            continue;
        }
        want_write = c->wpos < c->wlen;

        p[0].fd = c->fd;
        p[0].events = (read_paused ? 0 : POLLIN) | (want_write ? POLLOUT : 0);
        p[1].fd = c->wake_fd;
        p[1].events = POLLIN;
        p[0].revents = p[1].revents = 0;
        if (poll(p, 2, tmo) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
        }
        if (p[1].revents & POLLIN)
            wake_drain(c);
        if (rc == 0 && want_write && (p[0].revents & (POLLOUT | POLLERR | POLLHUP)))
            rc = write_some(c);
        if (rc == 0 && (p[0].revents & (POLLIN | POLLERR | POLLHUP)) &&
            (!read_paused || (p[0].revents & (POLLERR | POLLHUP))))
            rc = io_read(c);
        if (rc < 0) {
            err = rc;
            io_disconnect(c, err);
        }
    }

    pthread_mutex_lock(&c->mu);
    bool by_user = c->closing;
    pthread_mutex_unlock(&c->mu);
    if (by_user)
        err = 0;
    io_close_drain(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    pthread_mutex_lock(&c->mu);
    c->state = CLIENT_CLOSED;
    c->close_err = err;
    client_wake_all_locked(c);
    pthread_mutex_unlock(&c->mu);
    client_acks_fail_all(c, RMQ_ECLOSED);
    io_event(c, RMQ_EV_CLOSED, err);
    io_self = NULL;
    return NULL;
}

/* Start the I/O thread of a connected client. 0 or -errno. */
int client_io_start(rmq_client *c)
{
    int rc = pthread_create(&c->io_thread, NULL, io_main, c);

    if (rc != 0)
        return -rc;
    c->io_started = true;
    return 0;
}
