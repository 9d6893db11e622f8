/*
 * fake_server.c - see fake_server.h. A test double for the broker, small
 * enough to read in one go:
 *
 *   accept thread --> conn thread (blocking recv) --> on_frame()
 *                                                      PUB: route under fs->mu,
 *                                                      send to each matching sub
 *
 * Durable topics (fake_topics.c): PUBLISH on $SYS.REQ.TOPIC.* / CONSUMER.*
 * is answered with an AdminReply; on a topic's subject it gets a seq, is
 * delivered live (with seq and time_ns) and answered with a PubAck. Topic
 * subscriptions get their topic's messages; the subscriptions bound to one
 * consumer form a queue group and get a reply "$ACK.<topic>.<durable>.<seq>".
 *
 * Every shared field is under fs->mu, except the counters (atomics).
 * Each connection's socket writes go through its own wmu so frames from
 * different threads never interleave.
 */
#include "fake_server.h"
#include "fake_topics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_MAX_CONNS 32
#define FAKE_MAX_SUBS 64
#define FAKE_SUB_LOG 32 /* SUBSCRIBE frames kept for fake_sub_frame() */

struct fsub {
    bool used;
    uint64_t sid;
    char pattern[300];
    char queue[160]; /* a consumer's members: "~<topic> <durable>" */
    char topic[72];  /* a topic subscription ("": plain) */
    char durable[72];
    uint64_t left; /* 0: unlimited */
};

struct fconn {
    struct fake_server *fs;
    int fd;
    pthread_t th;
    pthread_mutex_t wmu;
    bool ready; /* CONNECT answered */
    bool done;  /* thread finished */
    struct fsub subs[FAKE_MAX_SUBS];
};

struct fake_server {
    struct fake_cfg cfg;
    char token[128];
    char reject[128];
    int lfd;
    uint16_t port;
    char addr[32];
    pthread_t acc;
    pthread_mutex_t mu;
    bool stop;
    struct fconn *conns[FAKE_MAX_CONNS];
    uint64_t rr; /* queue-group round robin */
    char last_name[256];
    struct fake_topics *topics;
    struct {
        char pattern[300];
        uint8_t body[1024];
        size_t len;
    } sub_log[FAKE_SUB_LOG]; /* the last SUBSCRIBE frames, a ring */
    uint64_t nsub_log;
    _Atomic uint64_t counts[CODEC_K_MAX + 1];
    _Atomic uint64_t reads;
    _Atomic uint64_t last_pong;
};

static bool match(const char *pat, size_t plen, const char *subj, size_t slen)
{
    size_t pi = 0, si = 0;

    for (;;) {
        size_t pe = pi, se = si;
        while (pe < plen && pat[pe] != '.')
            pe++;
        while (se < slen && subj[se] != '.')
            se++;
        if (pi > plen || si > slen)
            return pi > plen && si > slen;
        if (pe - pi == 1 && pat[pi] == '>')
            return true;
        if (!(pe - pi == 1 && pat[pi] == '*') &&
            (pe - pi != se - si || memcmp(pat + pi, subj + si, pe - pi) != 0))
            return false;
        pi = pe + 1;
        si = se + 1;
        if (pi > plen || si > slen)
            return pi > plen && si > slen;
    }
}

static void send_all(struct fconn *fc, const uint8_t *p, size_t n)
{
    pthread_mutex_lock(&fc->wmu);
    while (n > 0) {
        ssize_t w = send(fc->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&fc->wmu);
}

static void send_frame(struct fconn *fc, const Ringmq__Frame *f)
{
    size_t n = codec_frame_size(f);
    uint8_t *b = malloc(n);
    ssize_t w = codec_frame_write(f, b, n);
    if (w > 0)
        send_all(fc, b, (size_t)w);
    free(b);
}

static void send_error(struct fconn *fc, Ringmq__ErrorCode code, const char *text, uint64_t sid,
                       bool fatal)
{
    uint8_t b[1024];
    ssize_t n = codec_error_write(b, sizeof(b), code, text, sid, fatal);
    if (n > 0)
        send_all(fc, b, (size_t)n);
}

static void send_info(struct fconn *fc)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Info info = RINGMQ__INFO__INIT;

    info.server_id = "fake";
    info.version = "0.0.0";
    info.proto_version = 1;
    info.max_payload = fc->fs->cfg.max_payload;
    info.max_frame = fc->fs->cfg.max_payload + 65536;
    info.shards = 1;
    info.has_client_id = true;
    info.client_id = (uint64_t)fc->fd;
    f.kind_case = RINGMQ__FRAME__KIND_INFO;
    f.info = &info;
    if (fc->fs->cfg.ping_after_info == 0) {
        send_frame(fc, &f);
        return;
    }
    uint8_t b[512];
    ssize_t n = codec_frame_write(&f, b, sizeof(b));
    ssize_t m =
        codec_ping_write(b + n, sizeof(b) - (size_t)n, CODEC_K_PING, fc->fs->cfg.ping_after_info);
    send_all(fc, b, (size_t)(n + m));
}

static void deliver(struct fconn *fc, struct fsub *s, const uint8_t *body, size_t blen)
{
    uint8_t *f = malloc(CODEC_MSG_PREFIX_MAX + blen);
    size_t pl = codec_msg_prefix(f, s->sid, blen);

    memcpy(f + pl, body, blen); /* one send per frame: no Nagle stalls */
    send_all(fc, f, pl + blen);
    free(f);
    if (s->left && --s->left == 0)
        s->used = false;
}

/* Whether s gets the publish m, stored as st (NULL: not a topic's). */
static bool sub_wants(const struct fsub *s, const struct codec_msg *m, const struct fake_stored *st)
{
    if (!s->used ||
        !match(s->pattern, strlen(s->pattern), (const char *)m->subject.p, m->subject.len))
        return false;
    if (s->topic[0])
        return st && st->seq && strcmp(s->topic, st->topic) == 0;
    return st == NULL || st->seq != 0;
}

/* The delivery body of m for s (malloc'd, *blen bytes): a stored message
 * carries seq and time_ns and loses its reply; a consumer's gets an ack
 * subject as reply and deliveries = 1. */
static uint8_t *body_for(const struct codec_msg *m, const struct fake_stored *st,
                         const struct fsub *s, size_t *blen)
{
    struct codec_msg d = *m;
    char ack[300];
    uint8_t *body;

    if (st) {
        d.reply.len = 0;
        d.seq = st->seq;
        d.time_ns = st->time_ns;
    }
    if (st && s->durable[0]) {
        int n = snprintf(ack, sizeof(ack), FAKE_ACK_PREFIX "%s.%s.%llu", s->topic, s->durable,
                         (unsigned long long)st->seq);
        d.reply.p = (const uint8_t *)ack;
        d.reply.len = (size_t)n;
        d.deliveries = 1;
    }
    *blen = codec_body_size(&d);
    body = malloc(*blen);
    codec_body_write(&d, body);
    return body;
}

static void deliver_one(struct fconn *fc, struct fsub *s, const struct codec_msg *m,
                        const struct fake_stored *st)
{
    size_t blen;
    uint8_t *body = body_for(m, st, s, &blen);

    deliver(fc, s, body, blen);
    free(body);
}

/* Route a PUBLISH (stored as st, or NULL) to every matching subscription:
 * each plain one, and one member (round-robin) of each queue group. */
static void route(struct fake_server *fs, const struct codec_msg *m, const struct fake_stored *st)
{
    struct cand {
        struct fconn *fc;
        struct fsub *s;
        bool done;
    } *cd = calloc(FAKE_MAX_CONNS * FAKE_MAX_SUBS, sizeof(*cd));
    size_t n = 0;

    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        struct fconn *fc = fs->conns[i];
        if (fc == NULL || !fc->ready || fc->done)
            continue;
        for (int j = 0; j < FAKE_MAX_SUBS; j++) {
            struct fsub *s = &fc->subs[j];
            if (sub_wants(s, m, st)) {
                cd[n].fc = fc;
                cd[n].s = s;
                n++;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (cd[i].s->queue[0] == '\0')
            deliver_one(cd[i].fc, cd[i].s, m, st);
    for (size_t i = 0; i < n; i++) {
        size_t members[FAKE_MAX_CONNS * FAKE_MAX_SUBS], nm = 0;
        if (cd[i].done || cd[i].s->queue[0] == '\0')
            continue;
        for (size_t j = i; j < n; j++) {
            if (!cd[j].done && strcmp(cd[j].s->queue, cd[i].s->queue) == 0) {
                cd[j].done = true;
                members[nm++] = j;
            }
        }
        size_t k = members[fs->rr++ % nm];
        deliver_one(cd[k].fc, cd[k].s, m, st);
    }
    pthread_mutex_unlock(&fs->mu);
    free(cd);
}

/* Publish payload on subject subj (a reply of the fake itself). */
static void route_reply(struct fake_server *fs, const uint8_t *subj, size_t slen,
                        const uint8_t *payload, size_t plen)
{
    size_t size = codec_pub_size((const char *)subj, slen, NULL, 0, NULL, 0, plen);
    uint8_t *f = malloc(size);
    struct codec_span body, sub;
    struct codec_msg m;

    codec_pub_write(f, (const char *)subj, slen, NULL, 0, NULL, 0, payload, plen);
    if (codec_split(f, size, UINT32_MAX, &body) == 1 &&
        codec_peek(body.p, body.len, &sub) == CODEC_K_PUB &&
        codec_msg_parse(sub.p, sub.len, &m) == 0)
        route(fs, &m, NULL);
    free(f);
}

/* Live subscriptions bound to consumer (topic, durable). Caller holds mu. */
static int members_locked(void *arg, const char *topic, const char *durable)
{
    struct fake_server *fs = arg;
    int n = 0;

    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        struct fconn *fc = fs->conns[i];
        if (fc == NULL || !fc->ready || fc->done)
            continue;
        for (int j = 0; j < FAKE_MAX_SUBS; j++)
            n += fc->subs[j].used && strcmp(fc->subs[j].topic, topic) == 0 &&
                 strcmp(fc->subs[j].durable, durable) == 0;
    }
    return n;
}

/* A PUBLISH: an admin request, a topic's message (stored, delivered,
 * acked), or a plain one (an ack to a consumer is also routed as one). */
static void on_publish(struct fake_server *fs, const struct codec_msg *m)
{
    struct fake_stored st;
    uint8_t *out = NULL;
    size_t olen = 0;
    bool admin, stored = false;

    pthread_mutex_lock(&fs->mu);
    admin = m->reply.len && fake_topics_admin(fs->topics, m, members_locked, fs, &out, &olen);
    if (!admin)
        stored = fake_topics_store(fs->topics, m, &st, &out, &olen);
    if (!admin && !stored)
        fake_topics_ack(fs->topics, m);
    pthread_mutex_unlock(&fs->mu);
    if (!admin)
        route(fs, m, stored ? &st : NULL);
    if (out && m->reply.len)
        route_reply(fs, m->reply.p, m->reply.len, out, olen);
    free(out);
}

/* A SUBSCRIBE (f, unpacked): keep it, or refuse it as the broker would.
 * Returns false if it was refused (an ERROR was sent). */
static bool on_subscribe(struct fconn *fc, const Ringmq__Frame *f, const uint8_t *body, size_t len)
{
    struct fake_server *fs = fc->fs;
    const Ringmq__Subscribe *sb = f->sub;
    bool known;

    pthread_mutex_lock(&fs->mu);
    if (len <= sizeof(fs->sub_log[0].body)) {
        size_t i = fs->nsub_log++ % FAKE_SUB_LOG;
        snprintf(fs->sub_log[i].pattern, sizeof(fs->sub_log[i].pattern), "%s", sb->pattern);
        memcpy(fs->sub_log[i].body, body, len);
        fs->sub_log[i].len = len;
    }
    known = sb->topic == NULL || fake_topics_exists(fs->topics, sb->topic);
    if (known && sb->topic && sb->durable)
        fake_topics_bind(fs->topics, sb->topic, sb->durable, sb->max_inflight, sb->ack_wait_ms,
                         sb->max_deliver);
    pthread_mutex_unlock(&fs->mu);
    if (!known) {
        send_error(fc, RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "no such topic", sb->sid, false);
        return false;
    }
    if (fs->reject[0] && strncmp(sb->pattern, fs->reject, strlen(fs->reject)) == 0) {
        send_error(fc, RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT, "rejected", sb->sid, false);
        return false;
    }
    pthread_mutex_lock(&fs->mu);
    for (int j = 0; j < FAKE_MAX_SUBS; j++) {
        struct fsub *s = &fc->subs[j];
        if (!s->used) {
            memset(s, 0, sizeof(*s));
            s->used = true;
            s->sid = sb->sid;
            snprintf(s->pattern, sizeof(s->pattern), "%s", sb->pattern);
            snprintf(s->queue, sizeof(s->queue), "%s", sb->queue ? sb->queue : "");
            snprintf(s->topic, sizeof(s->topic), "%s", sb->topic ? sb->topic : "");
            if (sb->topic && sb->durable) {
                snprintf(s->durable, sizeof(s->durable), "%s", sb->durable);
                snprintf(s->queue, sizeof(s->queue), "~%s %s", sb->topic, sb->durable);
            }
            break;
        }
    }
    pthread_mutex_unlock(&fs->mu);
    return true;
}

/* Handle one frame. Returns false to close the connection. */
static bool on_frame(struct fconn *fc, const uint8_t *body, size_t len)
{
    struct fake_server *fs = fc->fs;
    struct codec_span sub;
    struct codec_msg m;
    Ringmq__Frame *f;
    int kind = codec_peek(body, len, &sub);

    if (kind < 0)
        return false;
    if (kind <= CODEC_K_MAX)
        atomic_fetch_add(&fs->counts[kind], 1);
    if (kind == CODEC_K_PUB) {
        if (codec_msg_parse(sub.p, sub.len, &m) < 0)
            return false;
        if (m.payload.len > fs->cfg.max_payload) {
            send_error(fc, RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG, "too big", 0, false);
            return true;
        }
        on_publish(fs, &m);
        return true;
    }
    f = ringmq__frame__unpack(NULL, len, body);
    if (f == NULL)
        return false;
    bool keep = true;
    switch (f->kind_case) {
    case RINGMQ__FRAME__KIND_CONNECT:
        pthread_mutex_lock(&fs->mu);
        snprintf(fs->last_name, sizeof(fs->last_name), "%s",
                 f->connect->name ? f->connect->name : "");
        bool no_info = fs->cfg.no_info;
        pthread_mutex_unlock(&fs->mu);
        if (fs->token[0] &&
            (f->connect->auth_token == NULL || strcmp(f->connect->auth_token, fs->token) != 0)) {
            send_error(fc, RINGMQ__ERROR_CODE__ERR_AUTH, "bad token", 0, true);
            keep = false;
        } else if (!no_info) {
            /* ready before INFO: once the client has INFO, tests may poke it */
            pthread_mutex_lock(&fs->mu);
            fc->ready = true;
            pthread_mutex_unlock(&fs->mu);
            send_info(fc);
        }
        break;
    case RINGMQ__FRAME__KIND_SUB:
        on_subscribe(fc, f, body, len);
        break;
    case RINGMQ__FRAME__KIND_UNSUB:
        pthread_mutex_lock(&fs->mu);
        for (int j = 0; j < FAKE_MAX_SUBS; j++) {
            struct fsub *s = &fc->subs[j];
            if (s->used && s->sid == f->unsub->sid) {
                if (!f->unsub->has_max || f->unsub->max == 0)
                    s->used = false;
                else if (!fs->cfg.ignore_unsub_max)
                    s->left = f->unsub->max;
            }
        }
        pthread_mutex_unlock(&fs->mu);
        break;
    case RINGMQ__FRAME__KIND_PING: {
        pthread_mutex_lock(&fs->mu);
        bool no_pong = fs->cfg.no_pong;
        pthread_mutex_unlock(&fs->mu);
        if (!no_pong) {
            uint8_t b[64];
            ssize_t n = codec_ping_write(b, sizeof(b), CODEC_K_PONG, f->ping->token);
            if (n > 0)
                send_all(fc, b, (size_t)n);
        }
        break;
    }
    case RINGMQ__FRAME__KIND_PONG:
        atomic_store(&fs->last_pong, f->pong->token);
        break;
    default:
        break;
    }
    ringmq__frame__free_unpacked(f, NULL);
    return keep;
}

static void *conn_main(void *arg)
{
    struct fconn *fc = arg;
    struct fake_server *fs = fc->fs;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);

    for (;;) {
        struct codec_span body;
        size_t off = 0;
        int rc;
        ssize_t n;

        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        n = recv(fc->fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        atomic_fetch_add(&fs->reads, 1);
        len += (size_t)n;
        while ((rc = codec_split(buf + off, len - off, 1u << 26, &body)) == 1) {
            off += CODEC_HDR_LEN + body.len;
            if (!on_frame(fc, body.p, body.len)) {
                rc = -1;
                break;
            }
        }
        if (rc < 0)
            break;
        memmove(buf, buf + off, len - off);
        len -= off;
    }
    free(buf);
    shutdown(fc->fd, SHUT_RDWR);
    pthread_mutex_lock(&fs->mu);
    fc->done = true;
    fc->ready = false;
    pthread_mutex_unlock(&fs->mu);
    return NULL;
}

/* Join and free finished connections. Caller holds fs->mu. */
static void reap_locked(struct fake_server *fs, bool all)
{
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        struct fconn *fc = fs->conns[i];
        if (fc == NULL || (!fc->done && !all))
            continue;
        if (!fc->done)
            shutdown(fc->fd, SHUT_RDWR);
        fs->conns[i] = NULL;
        pthread_mutex_unlock(&fs->mu);
        pthread_join(fc->th, NULL);
        close(fc->fd);
        pthread_mutex_destroy(&fc->wmu);
        free(fc);
        pthread_mutex_lock(&fs->mu);
    }
}

static void *accept_main(void *arg)
{
    struct fake_server *fs = arg;

    for (;;) {
        struct pollfd p = {.fd = fs->lfd, .events = POLLIN};
        int fd, slot = -1;

        pthread_mutex_lock(&fs->mu);
        bool stop = fs->stop;
        reap_locked(fs, false);
        pthread_mutex_unlock(&fs->mu);
        if (stop)
            break;
        if (poll(&p, 1, 50) <= 0)
            continue;
        fd = accept(fs->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&fs->mu);
        bool refuse = fs->cfg.refuse;
        for (int i = 0; i < FAKE_MAX_CONNS && !refuse; i++)
            if (fs->conns[i] == NULL) {
                slot = i;
                break;
            }
        if (slot < 0) {
            pthread_mutex_unlock(&fs->mu);
            close(fd);
            continue;
        }
        struct fconn *fc = calloc(1, sizeof(*fc));
        fc->fs = fs;
        fc->fd = fd;
        pthread_mutex_init(&fc->wmu, NULL);
        fs->conns[slot] = fc;
        pthread_create(&fc->th, NULL, conn_main, fc);
        pthread_mutex_unlock(&fs->mu);
    }
    return NULL;
}

/* See fake_server.h. Any thread. */
struct fake_server *fake_start(const struct fake_cfg *cfg)
{
    struct fake_server *fs = calloc(1, sizeof(*fs));
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int one = 1;

    if (cfg)
        fs->cfg = *cfg;
    if (fs->cfg.max_payload == 0)
        fs->cfg.max_payload = 1u << 20;
    if (fs->cfg.token)
        snprintf(fs->token, sizeof(fs->token), "%s", fs->cfg.token);
    if (fs->cfg.reject_prefix)
        snprintf(fs->reject, sizeof(fs->reject), "%s", fs->cfg.reject_prefix);
    fs->cfg.token = fs->cfg.reject_prefix = NULL;
    fs->topics = fake_topics_new();
    pthread_mutex_init(&fs->mu, NULL);
    fs->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fs->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fs->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fs->lfd, 64) < 0) {
        close(fs->lfd);
        fake_topics_free(fs->topics);
        free(fs);
        return NULL;
    }
    getsockname(fs->lfd, (struct sockaddr *)&a, &alen);
    fs->port = ntohs(a.sin_port);
    snprintf(fs->addr, sizeof(fs->addr), "127.0.0.1:%u", (unsigned)fs->port);
    pthread_create(&fs->acc, NULL, accept_main, fs);
    return fs;
}

/* See fake_server.h. Any thread. */
void fake_stop(struct fake_server *fs)
{
    if (fs == NULL)
        return;
    pthread_mutex_lock(&fs->mu);
    fs->stop = true;
    pthread_mutex_unlock(&fs->mu);
    pthread_join(fs->acc, NULL);
    close(fs->lfd);
    pthread_mutex_lock(&fs->mu);
    reap_locked(fs, true);
    pthread_mutex_unlock(&fs->mu);
    pthread_mutex_destroy(&fs->mu);
    fake_topics_free(fs->topics);
    free(fs);
}

/* See fake_server.h. Any thread. */
uint16_t fake_port(const struct fake_server *fs)
{
    return fs->port;
}

/* See fake_server.h. Any thread. */
const char *fake_addr(const struct fake_server *fs)
{
    return fs->addr;
}

/* See fake_server.h. Any thread. */
void fake_set_refuse(struct fake_server *fs, bool refuse)
{
    pthread_mutex_lock(&fs->mu);
    fs->cfg.refuse = refuse;
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
void fake_set_no_pong(struct fake_server *fs, bool on)
{
    pthread_mutex_lock(&fs->mu);
    fs->cfg.no_pong = on;
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
void fake_kick(struct fake_server *fs)
{
    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        if (fs->conns[i] && !fs->conns[i]->done)
            shutdown(fs->conns[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
void fake_send_error(struct fake_server *fs, Ringmq__ErrorCode code, const char *text, uint64_t sid,
                     bool fatal)
{
    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        struct fconn *fc = fs->conns[i];
        if (fc && fc->ready && !fc->done) {
            send_error(fc, code, text, sid, fatal);
            if (fatal)
                shutdown(fc->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
void fake_send_ping(struct fake_server *fs, uint64_t token)
{
    uint8_t b[64];
    ssize_t n = codec_ping_write(b, sizeof(b), CODEC_K_PING, token);

    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        struct fconn *fc = fs->conns[i];
        if (fc && fc->ready && !fc->done && n > 0)
            send_all(fc, b, (size_t)n);
    }
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
uint64_t fake_count(struct fake_server *fs, int kind)
{
    return kind >= 0 && kind <= CODEC_K_MAX ? atomic_load(&fs->counts[kind]) : 0;
}

/* See fake_server.h. Any thread. */
uint64_t fake_reads(struct fake_server *fs)
{
    return atomic_load(&fs->reads);
}

/* See fake_server.h. Any thread. */
int fake_subs(struct fake_server *fs)
{
    int n = 0;

    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        if (fs->conns[i] && fs->conns[i]->ready && !fs->conns[i]->done)
            for (int j = 0; j < FAKE_MAX_SUBS; j++)
                n += fs->conns[i]->subs[j].used;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

/* See fake_server.h. Any thread. */
int fake_conns(struct fake_server *fs)
{
    int n = 0;

    pthread_mutex_lock(&fs->mu);
    for (int i = 0; i < FAKE_MAX_CONNS; i++)
        n += fs->conns[i] && fs->conns[i]->ready && !fs->conns[i]->done;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

/* See fake_server.h. Any thread. */
uint64_t fake_last_pong(struct fake_server *fs)
{
    return atomic_load(&fs->last_pong);
}

/* See fake_server.h. Any thread. */
void fake_last_name(struct fake_server *fs, char *out, size_t cap)
{
    pthread_mutex_lock(&fs->mu);
    snprintf(out, cap, "%s", fs->last_name);
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
bool fake_wait(bool (*cond)(void *), void *arg, int timeout_ms)
{
    struct timespec d = {0, 2 * 1000 * 1000};

    for (int waited = 0; waited < timeout_ms; waited += 2) {
        if (cond(arg))
            return true;
        nanosleep(&d, NULL);
    }
    return cond(arg);
}

/* See fake_server.h. Any thread. */
size_t fake_sub_frame(struct fake_server *fs, const char *pattern, uint8_t *out, size_t cap)
{
    size_t n = 0;

    pthread_mutex_lock(&fs->mu);
    for (uint64_t k = fs->nsub_log; k > 0 && k + FAKE_SUB_LOG > fs->nsub_log; k--) {
        size_t i = (k - 1) % FAKE_SUB_LOG;
        if (pattern == NULL || strcmp(fs->sub_log[i].pattern, pattern) == 0) {
            n = fs->sub_log[i].len <= cap ? fs->sub_log[i].len : 0;
            memcpy(out, fs->sub_log[i].body, n);
            break;
        }
    }
    pthread_mutex_unlock(&fs->mu);
    return n;
}

/* See fake_server.h. Any thread. */
void fake_set_puback_error(struct fake_server *fs, Ringmq__ErrorCode code)
{
    pthread_mutex_lock(&fs->mu);
    fake_topics_fail_acks(fs->topics, (int)code);
    pthread_mutex_unlock(&fs->mu);
}

/* See fake_server.h. Any thread. */
uint64_t fake_acks(struct fake_server *fs, uint64_t *naks)
{
    uint64_t n;

    pthread_mutex_lock(&fs->mu);
    n = fake_topics_acks(fs->topics);
    if (naks)
        *naks = fake_topics_naks(fs->topics);
    pthread_mutex_unlock(&fs->mu);
    return n;
}
