/*
 * bench_harness.c - the bench harness behind `ringmq bench` (client/
 * cli_bench.c) and tests/bench/nats_bench.c: P publishers and S subscribers,
 * each on its own connection and thread, in the manner of `nats bench`,
 * driven through a struct bench_transport (bench_harness.h) so that every
 * broker is measured by the same code and prints the same report.
 *
 *   SUBJECT [--pubs P] [--subs S] [--msgs N] [--size BYTES] [--queue GROUP]
 *           [--latency] [--rate MSGS_PER_S] [--sub-servers HOST:PORT[,...]]
 *           [--timeout MS] [--json]
 *   SUBJECT --durable TOPIC [--pubs P] [--msgs N] [--size BYTES] [--window W]
 *           [--duration MS] [--replay [--sub-servers HOST:PORT]] [--rm]
 *           [--timeout MS] [--json]
 *
 * The second form (acked publishes to a durable topic, then a replay) is
 * described with its code, under "Durable topics" below. The first:
 *
 *   1. S subscriber threads connect, subscribe (a callback that counts) and
 *      flush, so the server has every subscription before anyone publishes.
 *   2. P publisher threads connect and wait at a start gate.
 *      With --sub-servers (subscribers on other servers, e.g. other nodes
 *      of a cluster: subscriber i connects to entry i mod n of the list,
 *      publishers to the server as always), the subscriptions reach the
 *      publishers' server some time after the subscribers' flush (route
 *      interest is asynchronous), so the main thread first publishes probe
 *      messages (8 bytes, sequence number BENCH_PROBE_SEQ) on SUBJECT from
 *      a connection of its own to that server, every BENCH_PROBE_EVERY_NS,
 *      until every subscriber has one (at most BENCH_PROBE_MS, else the
 *      setup fails). Subscribers count no probe, also one arriving late.
 *   3. The gate opens (t0). Publishers split N messages, publish (paced to
 *      --rate in total when it is set) and flush (tp = the last flush). The
 *      main thread watches the counters (and draws a progress bar on a
 *      terminal) until every subscriber has all N messages (with --queue:
 *      the group has N together), a subscriber's connection drops, nothing
 *      arrives for BENCH_IDLE_MS after the publishers are done, or --timeout
 *      ms after t0. Then it stops everyone.
 *   4. Report: publisher msgs/s and MB/s over [t0, tp]; per subscriber and
 *      aggregate msgs/s and MB/s over [t0, last message]; lost = expected -
 *      received, where expected is N*S, or N with --queue; with --latency the
 *      one-way latency percentiles.
 *
 * Payload: bytes 0..7 carry the message's sequence number (0..N-1) when the
 * payload has room; with --latency bytes 8..15 carry the CLOCK_MONOTONIC
 * time of the publish in ns, and the subscriber's callback takes its own
 * clock reading minus that (same machine, same clock). With --queue a
 * shared bitmap of sequence numbers catches duplicates ("exactly once").
 *
 * Every wait is bounded: connects by the transport's connect timeout, the
 * ready wait and the gate by BENCH_SETUP_MS, the measured phase by
 * --timeout, the final flush by what is left of it, each publish retry by
 * the deadline. MB means 10^6 bytes of payload. Threads: main (control,
 * report), one per publisher, one per subscriber (plus the client library's
 * own threads, where the callbacks run).
 *
 * Uses only C11 and POSIX (clock_nanosleep, pthread_condattr_setclock),
 * no client library.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* CMake and tests/bench/compare.sh define it already */
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_harness.h"

#define BENCH_SETUP_MS 10000 /* subscribe + flush, connects, the gate */
#define BENCH_MAX_THREADS 256
#define BENCH_IDLE_MS 3000          /* publishers done, nothing arrives: stop */
#define BENCH_TICK_NS 1000000       /* control loop period */
#define BENCH_BAR_NS 100000000      /* progress bar redraw period */
#define BENCH_LAT_RATE 20000        /* default --rate with --latency */
#define BENCH_LAT_MAX 50000000ull   /* latency samples kept, N*S at most */
#define BENCH_DEFAULT_TIMEOUT 60000 /* ms */
#define BENCH_SERVER_MAX 256        /* one --sub-servers entry, bytes */
#define BENCH_PROBE_MS 5000         /* --sub-servers: every subscriber has a probe */
#define BENCH_PROBE_EVERY_NS 5000000
#define BENCH_PROBE_SEQ UINT64_MAX /* a probe's sequence number; never a message's */

struct bench;

struct bench_sub {
    struct bench *b;
    pthread_t th;
    _Atomic uint64_t n;                /* messages received; written by one thread */
    _Atomic uint64_t dups;             /* --queue: sequence numbers seen twice */
    _Atomic int64_t last_ns;           /* time of the last message */
    _Atomic int down;                  /* connection lost: the error, else 0 */
    _Atomic bool probed;               /* --sub-servers: a probe message arrived */
    char server[BENCH_SERVER_MAX + 1]; /* --sub-servers: this subscriber's server */
    uint64_t *lat;                     /* --latency: one-way latency samples in ns */
    uint64_t nlat, lat_cap;
    int rc; /* setup error */
};

struct bench_pub;

/* --durable: one outstanding acked publish; its address is the token. */
struct bench_slot {
    struct bench_pub *p;
    int64_t sent_ns;
};

struct bench_pub {
    struct bench *b;
    pthread_t th;
    uint64_t first, msgs; /* sequence numbers first..first+msgs-1 */
    _Atomic uint64_t sent;
    _Atomic bool done;
    int64_t end_ns;
    int rc;
    uint8_t *payload;
    /* --durable: the window, under mu (bench_acked runs on library threads) */
    bool mu_init;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bench_slot *slots; /* window slots */
    uint32_t *free_slots;     /* indexes of the free ones, nfree of them */
    uint64_t nfree, outstanding;
    bool waiting;           /* the publisher waits on cv */
    _Atomic uint64_t acked; /* stored */
    uint64_t errors;        /* failed acks (error or timeout) */
    int first_err;          /* the first ack error */
    uint64_t *lat;          /* ack latency samples in ns */
    uint64_t nlat, lat_cap;
    int64_t last_ack_ns;
};

struct bench {
    const struct bench_transport *t;
    const char *server;
    const char *subject;
    const char *queue;
    const char *sub_servers; /* --sub-servers LIST, else NULL */
    uint64_t nsub_servers;   /* entries in it */
    uint64_t msgs, size, pubs, subs, timeout_ms, rate;
    bool json, latency;
    const char *topic;      /* --durable TOPIC, else NULL */
    uint64_t window;        /* --durable: acks outstanding per publisher */
    uint64_t duration_ms;   /* --durable: publish for at most this long; 0: no limit */
    int64_t pub_end_ns;     /* --durable: t0 + duration, at most the deadline */
    bool replay, rm;        /* --replay, --rm */
    bool subs_set;          /* --subs was given */
    _Atomic uint64_t *seen; /* --queue: bitmap of sequence numbers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned ready;    /* threads connected (and, for subs, subscribed) */
    bool go;           /* the start gate is open */
    bool abort;        /* setup failed: everyone leaves */
    _Atomic bool stop; /* the measured phase is over */
    int64_t t0_ns;
    int64_t deadline_ns; /* t0 + timeout */
};

/* CLOCK_MONOTONIC in ns (bench_harness.h). */
int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    return ts;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* See bench_harness.h. */
bool bench_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static void bench_ready(struct bench *b)
{
    pthread_mutex_lock(&b->mu);
    b->ready++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Wait for the gate; false if the bench was aborted or it stayed shut. */
static bool bench_gate(struct bench *b)
{
    struct timespec dl = ns_to_ts(bench_now_ns() + (int64_t)BENCH_SETUP_MS * 2 * 1000000);
    bool go;

    pthread_mutex_lock(&b->mu);
    while (!b->go && !b->abort)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT)
            break;
    go = b->go && !b->abort;
    pthread_mutex_unlock(&b->mu);
    return go;
}

/* Wait until the main thread ends the measured phase (or the setup failed),
 * at most until the deadline plus the setup time. */
static void bench_wait_stop(struct bench *b)
{
    int64_t end = b->deadline_ns ? b->deadline_ns : bench_now_ns();
    struct timespec dl = ns_to_ts(end + (int64_t)BENCH_SETUP_MS * 3 * 1000000);

    pthread_mutex_lock(&b->mu);
    while (!atomic_load(&b->stop) && !b->abort)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&b->mu);
}

/* One message arrived at subscriber arg (a bench_msg_fn; the client
 * library's delivery thread). */
static void bench_sub_got(void *arg, const uint8_t *p, size_t len)
{
    struct bench_sub *s = arg;
    struct bench *b = s->b;
    int64_t now = bench_now_ns();
    uint64_t n = atomic_load_explicit(&s->n, memory_order_relaxed);

    if (b->sub_servers != NULL && len >= 8 && get_u64(p) == BENCH_PROBE_SEQ) {
        atomic_store_explicit(&s->probed, true, memory_order_release);
        return; /* not a message of the run */
    }
    if (b->seen != NULL && len >= 8) {
        uint64_t seq = get_u64(p);
        if (seq < b->msgs) {
            uint64_t bit = 1ull << (seq & 63);
            uint64_t old = atomic_fetch_or_explicit(&b->seen[seq >> 6], bit, memory_order_relaxed);
            if (old & bit)
                atomic_fetch_add_explicit(&s->dups, 1, memory_order_relaxed);
        }
    }
    if (b->latency && len >= 16 && s->nlat < s->lat_cap) {
        int64_t sent = (int64_t)get_u64(p + 8);
        s->lat[s->nlat++] = now > sent ? (uint64_t)(now - sent) : 0;
    }
    atomic_store_explicit(&s->last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&s->n, n + 1, memory_order_release);
}

/* Subscriber arg's connection is lost (a bench_down_fn): the first error
 * is kept. */
static void bench_sub_down(void *arg, int err)
{
    struct bench_sub *s = arg;
    int zero = 0;

    atomic_compare_exchange_strong(&s->down, &zero, err);
}

/* Milliseconds until deadline, at least 1 (for flush timeouts). */
static int ms_left(int64_t deadline)
{
    int64_t ms = (deadline - bench_now_ns()) / 1000000;
    return ms < 1 ? 1 : ms > 3600000 ? 3600000 : (int)ms;
}

/*
 * The publisher's measured loop: p->msgs messages, stamped with their
 * sequence number (and with --latency the time), paced to --rate / P with
 * absolute sleeps from t0 so that a late message does not shift the ones
 * after it. Stops early on the deadline or the stop flag. Returns 0 or the
 * first publish error. Publisher thread.
 */
static int bench_pub_loop(struct bench_pub *p, void *conn)
{
    struct bench *b = p->b;
    const struct bench_transport *t = b->t;
    double period = b->rate ? 1e9 * (double)b->pubs / (double)b->rate : 0;

    for (uint64_t i = 0; i < p->msgs && !atomic_load_explicit(&b->stop, memory_order_relaxed);
         i++) {
        int rc;
        if (period > 0) {
            int64_t at = b->t0_ns + (int64_t)(period * (double)i);
            if (at >= b->deadline_ns)
                break;
            if (at > bench_now_ns()) {
                struct timespec ts = ns_to_ts(at);
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                    ;
            }
        } else if ((i & 1023) == 0 && bench_now_ns() >= b->deadline_ns) {
            break;
        }
        if (b->size >= 8)
            put_u64(p->payload, p->first + i);
        if (b->latency)
            put_u64(p->payload + 8, (uint64_t)bench_now_ns());
        rc = t->publish(conn, b->subject, p->payload, b->size, b->deadline_ns);
        if (rc != 0)
            return rc;
        atomic_store_explicit(&p->sent, atomic_load_explicit(&p->sent, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    return 0;
}

/* ---- Threads ---- */

/* A subscriber: connect, subscribe, flush, report ready, then hold the
 * subscription until the measured phase is over. */
static void *sub_main(void *arg)
{
    struct bench_sub *s = arg;
    struct bench *b = s->b;
    const struct bench_transport *t = b->t;
    struct bench_conn_opts o = {.server = b->sub_servers ? s->server : b->server,
                                .sub = true,
                                .latency = b->latency,
                                .down = bench_sub_down,
                                .down_arg = s};
    void *conn = NULL;

    s->rc = t->connect(&o, &conn);
    if (s->rc != 0) {
        bench_ready(b);
        return NULL;
    }
    s->rc = t->subscribe(conn, b->subject, b->queue, bench_sub_got, s);
    if (s->rc == 0)
        s->rc = t->flush(conn, BENCH_SETUP_MS);
    bench_ready(b);
    if (s->rc == 0 && bench_gate(b))
        bench_wait_stop(b);
    t->close(conn);
    return NULL;
}

/* A publisher: connect, report ready, wait at the gate, publish its share
 * and flush (tp). */
static void *pub_main(void *arg)
{
    struct bench_pub *p = arg;
    struct bench *b = p->b;
    const struct bench_transport *t = b->t;
    struct bench_conn_opts o = {.server = b->server, .sub = false, .latency = b->latency};
    void *conn = NULL;

    p->rc = t->connect(&o, &conn);
    if (p->rc == 0)
        p->rc = t->check_size(conn, b->size);
    bench_ready(b);
    if (p->rc != 0) {
        t->close(conn);
        atomic_store(&p->done, true);
        return NULL;
    }
    if (bench_gate(b)) {
        p->rc = bench_pub_loop(p, conn);
        if (p->rc == 0)
            p->rc = t->flush(conn, ms_left(b->deadline_ns));
    }
    p->end_ns = bench_now_ns();
    atomic_store_explicit(&p->done, true, memory_order_release);
    t->close(conn);
    return NULL;
}

/*
 * --sub-servers: publish probe messages on SUBJECT from a connection of
 * its own to the publishers' server until every subscriber has had one
 * (so the routes carry every subscriber's interest), at most
 * BENCH_PROBE_MS. 0, or an error (printed when it is the timeout). Main
 * thread, before the gate opens.
 */
static int bench_probe(struct bench *b, struct bench_sub *subs)
{
    const struct bench_transport *t = b->t;
    struct bench_conn_opts o = {.server = b->server};
    int64_t end = bench_now_ns() + (int64_t)BENCH_PROBE_MS * 1000000;
    uint8_t probe[8];
    void *conn = NULL;
    bool all = b->subs == 0;
    int rc = t->connect(&o, &conn);

    put_u64(probe, BENCH_PROBE_SEQ);
    while (rc == 0 && !all && bench_now_ns() < end) {
        struct timespec next = ns_to_ts(bench_now_ns() + BENCH_PROBE_EVERY_NS);
        rc = t->publish(conn, b->subject, probe, sizeof(probe), end);
        if (rc == 0)
            rc = t->flush(conn, ms_left(end));
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
        all = true;
        for (uint64_t i = 0; i < b->subs && all; i++)
            all = atomic_load_explicit(&subs[i].probed, memory_order_acquire);
    }
    t->close(conn);
    if (rc == 0 && !all) {
        fprintf(stderr,
                "%s: bench: --sub-servers: not every subscriber got a probe message from %s"
                " within %d ms (routes down?)\n",
                t->prog, b->server, BENCH_PROBE_MS);
        rc = t->esetup;
    }
    return rc;
}

/* ---- Report ---- */

static double rate(double n, double secs)
{
    return secs > 0 ? n / secs : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Latency percentiles in microseconds: p50 p90 p99 p99.9 max. */
struct bench_lat {
    uint64_t n;
    double q[5];
};

static const double lat_q[5] = {0.50, 0.90, 0.99, 0.999, 1.0};
static const char *const lat_name[5] = {"p50", "p90", "p99", "p99_9", "max"};

static void lat_fill(uint64_t *all, uint64_t n, struct bench_lat *out);

/* Merge the subscribers' samples and take the percentiles (nearest rank). */
static int lat_compute(struct bench *b, struct bench_sub *subs, struct bench_lat *out)
{
    uint64_t n = 0, k = 0;
    uint64_t *all;

    memset(out, 0, sizeof(*out));
    for (uint64_t i = 0; i < b->subs; i++)
        n += subs[i].nlat;
    if (n == 0)
        return 0;
    all = malloc(n * sizeof(*all));
    if (all == NULL)
        return -ENOMEM;
    for (uint64_t i = 0; i < b->subs; i++) {
        memcpy(all + k, subs[i].lat, subs[i].nlat * sizeof(*all));
        k += subs[i].nlat;
    }
    lat_fill(all, n, out);
    free(all);
    return 0;
}

/* Sort the n samples of all (ns) and take the percentiles (nearest rank). */
static void lat_fill(uint64_t *all, uint64_t n, struct bench_lat *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return;
    qsort(all, n, sizeof(*all), cmp_u64);
    out->n = n;
    for (int j = 0; j < 5; j++) {
        double r = lat_q[j] * (double)n;
        uint64_t idx = (uint64_t)r;
        if ((double)idx < r)
            idx++;
        idx = idx ? idx - 1 : 0;
        if (idx >= n)
            idx = n - 1;
        out->q[j] = (double)all[idx] / 1e3;
    }
}

/* Print s as a JSON string. */
static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void bar_draw(uint64_t done, uint64_t total, double secs)
{
    int width = 30, fill = total ? (int)((double)done * width / (double)total) : width;
    char bar[32];

    if (fill > width)
        fill = width;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(width - fill));
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %5.1f%% %" PRIu64 "/%" PRIu64 " msgs %.1f s ", bar,
            total ? 100.0 * (double)done / (double)total : 100.0, done, total, secs);
}

static void bar_clear(void)
{
    fprintf(stderr, "\r%70s\r", "");
}

/*
 * The measured phase, on the main thread after the gate opened: watch the
 * counters every BENCH_TICK_NS until done, a subscriber is down, the idle
 * limit or the deadline. Returns true if it ended on the deadline.
 */
static bool bench_watch(struct bench *b, struct bench_sub *subs, struct bench_pub *pubs, bool bar)
{
    uint64_t expected = b->queue ? b->msgs : b->msgs * b->subs;
    uint64_t last_received = UINT64_MAX;
    int64_t idle_from = 0, next_bar = 0;
    bool timed_out = false;

    for (;;) {
        struct timespec tick = ns_to_ts(bench_now_ns() + BENCH_TICK_NS);
        uint64_t received = 0, sent = 0, target, complete = 0;
        bool pubs_done = true, down = false;
        int64_t now;

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR)
            ;
        now = bench_now_ns();
        for (uint64_t i = 0; i < b->pubs; i++) {
            if (!atomic_load_explicit(&pubs[i].done, memory_order_acquire))
                pubs_done = false;
            sent += atomic_load_explicit(&pubs[i].sent, memory_order_relaxed);
        }
        /* what each subscriber (or the group) can get: N, or what was sent */
        target = pubs_done ? sent : b->msgs;
        for (uint64_t i = 0; i < b->subs; i++) {
            uint64_t n = atomic_load_explicit(&subs[i].n, memory_order_acquire);
            received += n;
            complete += n >= target;
            if (atomic_load(&subs[i].down) != 0)
                down = true;
        }
        if (bar && now >= next_bar) {
            if (b->subs)
                bar_draw(received, expected, (double)(now - b->t0_ns) / 1e9);
            else
                bar_draw(sent, b->msgs, (double)(now - b->t0_ns) / 1e9);
            next_bar = now + BENCH_BAR_NS;
        }
        if (pubs_done && (b->queue ? received >= target : complete == b->subs))
            break;
        if (down)
            break;
        if (now >= b->deadline_ns) {
            timed_out = true;
            break;
        }
        if (received != last_received) {
            last_received = received;
            idle_from = now;
        } else if (pubs_done && now - idle_from >= (int64_t)BENCH_IDLE_MS * 1000000) {
            break;
        }
    }
    if (bar)
        bar_clear();
    return timed_out;
}

/* What the run delivered, summed over publishers and subscribers. */
struct bench_totals {
    uint64_t sent, received, dups, expected, lost;
    int64_t pub_end, sub_end;
};

static void bench_totals(const struct bench *b, struct bench_sub *subs, struct bench_pub *pubs,
                         struct bench_totals *t)
{
    memset(t, 0, sizeof(*t));
    t->pub_end = t->sub_end = b->t0_ns;
    t->expected = b->queue ? b->msgs : b->msgs * b->subs;
    for (uint64_t i = 0; i < b->pubs; i++) {
        t->sent += atomic_load(&pubs[i].sent);
        if (pubs[i].end_ns > t->pub_end)
            t->pub_end = pubs[i].end_ns;
    }
    for (uint64_t i = 0; i < b->subs; i++) {
        uint64_t n = atomic_load(&subs[i].n);
        t->received += n;
        /* --queue: the bitmap; fan-out: more than N on one subscriber */
        t->dups += b->queue ? atomic_load(&subs[i].dups) : n > b->msgs ? n - b->msgs : 0;
        if (atomic_load(&subs[i].last_ns) > t->sub_end)
            t->sub_end = atomic_load(&subs[i].last_ns);
    }
    if (t->expected > t->received - t->dups)
        t->lost = t->expected - (t->received - t->dups);
}

static void print_report(struct bench *b, struct bench_sub *subs, struct bench_pub *pubs,
                         const struct bench_lat *lat, bool timed_out, int pub_err, int sub_err)
{
    struct bench_totals t;
    double mb = (double)b->size / 1e6;

    bench_totals(b, subs, pubs, &t);
    uint64_t sent = t.sent, received = t.received, dups = t.dups, expected = t.expected;
    uint64_t lost = t.lost;
    double pub_s = (double)(t.pub_end - b->t0_ns) / 1e9;
    double sub_s = (double)(t.sub_end - b->t0_ns) / 1e9;

    if (b->json) {
        printf("{\"broker\":\"%s\",\"subject\":", b->t->broker);
        json_str(b->subject);
        printf(",\"queue\":");
        if (b->queue)
            json_str(b->queue);
        else
            printf("null");
        printf(",\"sub_servers\":");
        if (b->sub_servers)
            json_str(b->sub_servers);
        else
            printf("null");
        printf(",\"pubs\":%" PRIu64 ",\"subs\":%" PRIu64 ",\"msgs\":%" PRIu64 ",\"size\":%" PRIu64
               ",\"rate\":%" PRIu64 ",\"latency\":%s,",
               b->pubs, b->subs, b->msgs, b->size, b->rate, b->latency ? "true" : "false");
        printf("\"pub\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.1f,"
               "\"mb_per_sec\":%.3f},",
               sent, pub_s, rate((double)sent, pub_s), rate((double)sent * mb, pub_s));
        printf("\"sub\":[");
        for (uint64_t i = 0; i < b->subs; i++) {
            uint64_t n = atomic_load(&subs[i].n);
            double s = n ? (double)(atomic_load(&subs[i].last_ns) - b->t0_ns) / 1e9 : 0;
            printf("%s{\"msgs\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.1f,"
                   "\"mb_per_sec\":%.3f}",
                   i ? "," : "", n, s, rate((double)n, s), rate((double)n * mb, s));
        }
        printf("],\"sub_aggregate\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,"
               "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f},",
               received, sub_s, rate((double)received, sub_s), rate((double)received * mb, sub_s));
        printf("\"latency_us\":");
        if (b->latency) {
            printf("{\"samples\":%" PRIu64, lat->n);
            for (int j = 0; j < 5; j++)
                printf(",\"%s\":%.1f", lat_name[j], lat->q[j]);
            printf("}");
        } else {
            printf("null");
        }
        printf(",\"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
               ",\"duplicates\":%" PRIu64 ",\"timed_out\":%s,\"pub_error\":",
               expected, received, lost, dups, timed_out ? "true" : "false");
        json_str(pub_err ? b->t->strerror(pub_err) : "");
        printf(",\"sub_error\":");
        json_str(sub_err ? b->t->strerror(sub_err) : "");
        printf("}\n");
    } else {
        printf("bench %s: %" PRIu64 " publishers, %" PRIu64 " subscribers, %" PRIu64
               " msgs of %" PRIu64 " B",
               b->subject, b->pubs, b->subs, b->msgs, b->size);
        if (b->queue)
            printf(", queue group %s", b->queue);
        if (b->rate)
            printf(", %" PRIu64 " msgs/s", b->rate);
        if (b->sub_servers)
            printf(", subscribers on %s", b->sub_servers);
        printf(" (%s)\n", b->t->broker);
        printf("pub:       %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n", sent, pub_s,
               rate((double)sent, pub_s), rate((double)sent * mb, pub_s));
        for (uint64_t i = 0; i < b->subs; i++) {
            uint64_t n = atomic_load(&subs[i].n);
            double s = n ? (double)(atomic_load(&subs[i].last_ns) - b->t0_ns) / 1e9 : 0;
            printf("sub %-5" PRIu64 " %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n",
                   i + 1, n, s, rate((double)n, s), rate((double)n * mb, s));
        }
        if (b->subs)
            printf("sub total: %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n", received,
                   sub_s, rate((double)received, sub_s), rate((double)received * mb, sub_s));
        if (b->latency)
            printf("latency:   p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us"
                   " (%" PRIu64 " samples)\n",
                   lat->q[0], lat->q[1], lat->q[2], lat->q[3], lat->q[4], lat->n);
        printf("lost:      %10" PRIu64 " of %" PRIu64 "%s\n", lost, expected,
               timed_out ? " (timed out)" : "");
        if (b->queue || dups)
            printf("dups:      %10" PRIu64 "\n", dups);
    }
    fflush(stdout);
}

/* ---- Durable topics (--durable TOPIC) ---- */

/*
 *   SUBJECT --durable TOPIC [--pubs P] [--msgs N] [--size BYTES] [--window W]
 *           [--duration MS] [--replay] [--rm] [--timeout MS] [--json]
 *
 *   1. A control connection makes TOPIC store SUBJECT (an existing topic of
 *      that name is used as it is).
 *   2. P publisher threads connect and wait at the start gate.
 *   3. The gate opens (t0). Publishers split N messages and publish each one
 *      with publish_ack, keeping at most W acks outstanding each (a free
 *      window slot is the token of the publish). Each ack is timed from the
 *      publish call to bench_acked (ack latency). After the last publish, after
 *      --duration ms (a normal end: the rate is over what was acked), or on
 *      the deadline (t0 + --timeout: a failed run), a publisher waits for its
 *      outstanding acks, BENCH_ACK_TIMEOUT_MS at most, then closes.
 *   4. With --replay: the number of messages TOPIC stores is read, then a new
 *      connection (to --sub-servers HOST:PORT when given: another node of a
 *      cluster, which relays the replay from the topic's owner) subscribes
 *      to TOPIC from its oldest message and counts
 *      until it has them all (or a drop, BENCH_IDLE_MS without a message,
 *      --timeout ms after the subscribe).
 *   5. With --rm, TOPIC is removed. Report: acked msgs/s and MB/s over
 *      [t0, last ack], ack latency percentiles, errors (acks that failed or
 *      timed out), unacked (published, no answer before the close), and the
 *      replay's msgs/s and MB/s over [subscribe, last message].
 */

static int bench_usage(const struct bench *b, const char *what, const char *arg);

#define BENCH_WINDOW 256           /* default --window */
#define BENCH_WINDOW_MAX 65536     /* largest --window */
#define BENCH_ACK_TIMEOUT_MS 10000 /* one ack; also the drain after the deadline */
#define BENCH_NAME_MAX 64          /* topic name: 1..64 of [A-Za-z0-9_-] */

/* Check the --durable options after parsing. 0 or an exit code. */
static int durable_check(struct bench *b, bool rate_set)
{
    const struct bench_transport *t = b->t;
    size_t n = strlen(b->topic);

    if (t->topic_add == NULL || t->topic_msgs == NULL || t->topic_rm == NULL ||
        t->publish_ack == NULL || t->replay == NULL) {
        fprintf(stderr, "%s: bench: --durable is not supported by %s\n", t->prog, t->broker);
        return BENCH_EXIT_USAGE;
    }
    if (n < 1 || n > BENCH_NAME_MAX ||
        strspn(b->topic, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != n) {
        fprintf(stderr, "%s: invalid topic name '%s' (1-64 of [A-Za-z0-9_-])\n", t->prog, b->topic);
        return BENCH_EXIT_SUBJECT;
    }
    if (b->subs_set || b->queue != NULL || b->latency || rate_set)
        return bench_usage(b, "--durable takes no --subs, --queue, --latency or --rate:", b->topic);
    if (b->sub_servers != NULL && (!b->replay || b->nsub_servers != 1))
        return bench_usage(b,
                           "--durable takes one --sub-servers entry, with --replay (the"
                           " replaying connection's server):",
                           b->sub_servers);
    if (b->window == 0)
        b->window = BENCH_WINDOW;
    if (b->window > BENCH_WINDOW_MAX)
        return bench_usage(b, "--window must be 1..65536, got", "");
    b->subs = 0;
    return 0;
}

/* See bench_harness.h. token is a window slot of a publisher. */
void bench_acked(void *token, int err)
{
    struct bench_slot *s = token;
    struct bench_pub *p = s->p;
    int64_t now = bench_now_ns();

    pthread_mutex_lock(&p->mu);
    if (err == 0) {
        if (p->nlat < p->lat_cap)
            p->lat[p->nlat++] = now > s->sent_ns ? (uint64_t)(now - s->sent_ns) : 0;
        p->last_ack_ns = now;
        atomic_store_explicit(&p->acked, atomic_load_explicit(&p->acked, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else {
        p->errors++;
        if (p->first_err == 0)
            p->first_err = err;
    }
    p->free_slots[p->nfree++] = (uint32_t)(s - p->slots);
    p->outstanding--;
    if (p->waiting)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Give back a slot whose publish did not happen. */
static void slot_put(struct bench_pub *p, struct bench_slot *s)
{
    pthread_mutex_lock(&p->mu);
    p->free_slots[p->nfree++] = (uint32_t)(s - p->slots);
    p->outstanding--;
    pthread_mutex_unlock(&p->mu);
}

/* Wait on p->cv (p->mu held) until deadline (CLOCK_MONOTONIC ns). */
static void pub_wait(struct bench_pub *p, int64_t deadline)
{
    struct timespec dl = ns_to_ts(deadline);

    p->waiting = true;
    pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    p->waiting = false;
}

/*
 * The durable publisher's measured loop: p->msgs acked publishes, at most
 * b->window outstanding, stamped with their sequence number. Stops early on
 * the deadline or the stop flag. Returns 0 or the first publish error (an
 * ack error is counted, not returned). Publisher thread.
 */
static int durable_pub_loop(struct bench_pub *p, void *conn)
{
    struct bench *b = p->b;
    const struct bench_transport *t = b->t;

    for (uint64_t i = 0; i < p->msgs && !atomic_load_explicit(&b->stop, memory_order_relaxed);
         i++) {
        struct bench_slot *s = NULL;
        int rc;

        pthread_mutex_lock(&p->mu);
        while (p->nfree == 0 && bench_now_ns() < b->pub_end_ns)
            pub_wait(p, b->pub_end_ns);
        if (p->nfree > 0) {
            s = &p->slots[p->free_slots[--p->nfree]];
            p->outstanding++;
        }
        pthread_mutex_unlock(&p->mu);
        if (s == NULL)
            break;
        s->sent_ns = bench_now_ns();
        if (s->sent_ns >= b->pub_end_ns) {
            slot_put(p, s);
            break;
        }
        if (b->size >= 8)
            put_u64(p->payload, p->first + i);
        rc = t->publish_ack(conn, b->subject, p->payload, b->size, BENCH_ACK_TIMEOUT_MS, s,
                            b->deadline_ns);
        if (rc != 0) {
            slot_put(p, s);
            return rc;
        }
        atomic_store_explicit(&p->sent, atomic_load_explicit(&p->sent, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    return 0;
}

/* A durable publisher: connect, report ready, wait at the gate, publish its
 * share, wait for the outstanding acks (bounded), close. */
static void *durable_pub_main(void *arg)
{
    struct bench_pub *p = arg;
    struct bench *b = p->b;
    const struct bench_transport *t = b->t;
    struct bench_conn_opts o = {.server = b->server, .durable = true, .window = b->window};
    void *conn = NULL;

    p->rc = t->connect(&o, &conn);
    if (p->rc == 0)
        p->rc = t->check_size(conn, b->size);
    bench_ready(b);
    if (p->rc == 0 && bench_gate(b)) {
        int64_t end;
        p->rc = durable_pub_loop(p, conn);
        end = bench_now_ns() + (int64_t)BENCH_ACK_TIMEOUT_MS * 1000000;
        pthread_mutex_lock(&p->mu);
        while (p->outstanding > 0 && bench_now_ns() < end)
            pub_wait(p, end);
        pthread_mutex_unlock(&p->mu);
    }
    /* acks still outstanding get bench_acked from inside close, or never */
    t->close(conn);
    pthread_mutex_lock(&p->mu);
    p->end_ns = p->last_ack_ns ? p->last_ack_ns : b->t0_ns;
    pthread_mutex_unlock(&p->mu);
    atomic_store_explicit(&p->done, true, memory_order_release);
    return NULL;
}

/* The publish phase on the main thread: watch the acks until every
 * publisher is done or the deadline. Returns true if it ended on the
 * deadline. */
static bool durable_watch(struct bench *b, struct bench_pub *pubs, bool bar)
{
    int64_t next_bar = 0;
    bool timed_out = false;

    for (;;) {
        struct timespec tick = ns_to_ts(bench_now_ns() + BENCH_TICK_NS);
        uint64_t acked = 0;
        bool done = true;
        int64_t now;

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR)
            ;
        now = bench_now_ns();
        for (uint64_t i = 0; i < b->pubs; i++) {
            if (!atomic_load_explicit(&pubs[i].done, memory_order_acquire))
                done = false;
            acked += atomic_load_explicit(&pubs[i].acked, memory_order_relaxed);
        }
        if (bar && now >= next_bar) {
            bar_draw(acked, b->msgs, (double)(now - b->t0_ns) / 1e9);
            next_bar = now + BENCH_BAR_NS;
        }
        if (done)
            break;
        if (now >= b->deadline_ns) {
            timed_out = true;
            break;
        }
    }
    if (bar)
        bar_clear();
    return timed_out;
}

/* The replay (--replay): what was expected and what came. */
struct durable_replay {
    bool done;          /* the replay ran */
    uint64_t expected;  /* messages the topic stored before the replay */
    struct bench_sub s; /* the replaying subscriber's counters */
    double secs;        /* subscribe to the last message */
    bool timed_out;
    int err; /* a setup error, or the subscriber's connection lost */
};

/* Replay everything the topic stores on a new connection (main thread). */
static void durable_replay(struct bench *b, void *ctl, struct durable_replay *r, bool bar)
{
    const struct bench_transport *t = b->t;
    struct bench_conn_opts o = {.server = b->sub_servers ? b->sub_servers : b->server,
                                .sub = true,
                                .down = bench_sub_down,
                                .down_arg = &r->s,
                                .durable = true};
    void *conn = NULL;
    uint64_t last = UINT64_MAX;
    int64_t t0, deadline, idle_from = 0, next_bar = 0;

    r->done = true;
    r->s.b = b;
    r->err = t->topic_msgs(ctl, b->topic, &r->expected);
    if (r->err == 0)
        r->err = t->connect(&o, &conn);
    if (r->err != 0)
        return;
    t0 = bench_now_ns();
    deadline = t0 + (int64_t)b->timeout_ms * 1000000;
    atomic_store(&r->s.last_ns, t0);
    r->err = t->replay(conn, b->topic, b->subject, bench_sub_got, &r->s);
    while (r->err == 0) {
        struct timespec tick = ns_to_ts(bench_now_ns() + BENCH_TICK_NS);
        uint64_t n;
        int64_t now;

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR)
            ;
        now = bench_now_ns();
        n = atomic_load_explicit(&r->s.n, memory_order_acquire);
        if (bar && now >= next_bar) {
            bar_draw(n, r->expected, (double)(now - t0) / 1e9);
            next_bar = now + BENCH_BAR_NS;
        }
        if (n >= r->expected)
            break;
        r->err = atomic_load(&r->s.down);
        if (r->err != 0)
            break;
        if (now >= deadline) {
            r->timed_out = true;
            break;
        }
        if (n != last) {
            last = n;
            idle_from = now;
        } else if (now - idle_from >= (int64_t)BENCH_IDLE_MS * 1000000) {
            break;
        }
    }
    if (bar)
        bar_clear();
    t->close(conn);
    r->secs = (double)(atomic_load(&r->s.last_ns) - t0) / 1e9;
}

/* What the publishers did, summed. */
struct durable_totals {
    uint64_t sent, acked, errors, unacked;
    int64_t end;
    int first_err;
};

static void durable_totals(const struct bench *b, struct bench_pub *pubs, struct durable_totals *t)
{
    memset(t, 0, sizeof(*t));
    t->end = b->t0_ns;
    for (uint64_t i = 0; i < b->pubs; i++) {
        t->sent += atomic_load(&pubs[i].sent);
        t->acked += atomic_load(&pubs[i].acked);
        t->errors += pubs[i].errors;
        if (t->first_err == 0)
            t->first_err = pubs[i].first_err;
        if (pubs[i].end_ns > t->end)
            t->end = pubs[i].end_ns;
    }
    if (t->sent > t->acked + t->errors)
        t->unacked = t->sent - t->acked - t->errors;
}

static void durable_report(struct bench *b, struct bench_pub *pubs, const struct bench_lat *lat,
                           const struct durable_replay *r, bool existed, bool timed_out,
                           int pub_err)
{
    struct durable_totals t;
    double mb = (double)b->size / 1e6, secs;
    uint64_t rn = atomic_load(&r->s.n);

    durable_totals(b, pubs, &t);
    secs = (double)(t.end - b->t0_ns) / 1e9;
    if (b->json) {
        printf("{\"broker\":\"%s\",\"mode\":\"durable\",\"topic\":", b->t->broker);
        json_str(b->topic);
        printf(",\"subject\":");
        json_str(b->subject);
        printf(",\"topic_existed\":%s,\"pubs\":%" PRIu64 ",\"msgs\":%" PRIu64 ",\"size\":%" PRIu64
               ",\"window\":%" PRIu64 ",\"duration_ms\":%" PRIu64 ",",
               existed ? "true" : "false", b->pubs, b->msgs, b->size, b->window, b->duration_ms);
        printf("\"pub\":{\"msgs\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"unacked\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f},",
               t.sent, t.acked, t.errors, t.unacked, secs, rate((double)t.acked, secs),
               rate((double)t.acked * mb, secs));
        printf("\"ack_latency_us\":{\"samples\":%" PRIu64, lat->n);
        for (int j = 0; j < 5; j++)
            printf(",\"%s\":%.1f", lat_name[j], lat->q[j]);
        printf("},\"replay\":");
        if (r->done)
            printf("{\"expected\":%" PRIu64 ",\"msgs\":%" PRIu64 ",\"secs\":%.6f,"
                   "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f,\"timed_out\":%s,\"error\":",
                   r->expected, rn, r->secs, rate((double)rn, r->secs),
                   rate((double)rn * mb, r->secs), r->timed_out ? "true" : "false");
        else
            printf("null");
        if (r->done) {
            json_str(r->err ? b->t->strerror(r->err) : "");
            printf("}");
        }
        printf(",\"timed_out\":%s,\"pub_error\":", timed_out ? "true" : "false");
        json_str(pub_err ? b->t->strerror(pub_err) : "");
        printf(",\"ack_error\":");
        json_str(t.first_err ? b->t->strerror(t.first_err) : "");
        printf("}\n");
    } else {
        printf("bench %s: durable topic %s%s, %" PRIu64 " publishers, %" PRIu64 " msgs of %" PRIu64
               " B, window %" PRIu64 " (%s)\n",
               b->subject, b->topic, existed ? " (existed)" : "", b->pubs, b->msgs, b->size,
               b->window, b->t->broker);
        printf("acked:     %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n", t.acked,
               secs, rate((double)t.acked, secs), rate((double)t.acked * mb, secs));
        printf("ack latency: p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us"
               " (%" PRIu64 " samples)\n",
               lat->q[0], lat->q[1], lat->q[2], lat->q[3], lat->q[4], lat->n);
        printf("errors:    %10" PRIu64 " (unacked %" PRIu64 " of %" PRIu64 " published)%s%s%s\n",
               t.errors, t.unacked, t.sent, timed_out ? " (timed out)" : "",
               t.first_err ? ": " : "", t.first_err ? b->t->strerror(t.first_err) : "");
        if (r->done)
            printf("replay:    %10" PRIu64 " of %" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f"
                   " MB/s%s%s%s\n",
                   rn, r->expected, r->secs, rate((double)rn, r->secs),
                   rate((double)rn * mb, r->secs), r->timed_out ? " (timed out)" : "",
                   r->err ? ": " : "", r->err ? b->t->strerror(r->err) : "");
    }
    fflush(stdout);
}

/* Run the --durable bench (b parsed and checked). Returns the exit code. */
static int bench_durable(struct bench *b)
{
    const struct bench_transport *tr = b->t;
    struct bench_conn_opts co = {.server = b->server, .durable = true};
    struct bench_pub *pubs = NULL;
    struct bench_lat lat = {0};
    struct durable_replay rp;
    struct durable_totals t;
    pthread_condattr_t ca;
    uint64_t started = 0, nlat = 0;
    uint64_t *all = NULL;
    void *ctl = NULL;
    bool existed = false, setup_ok, timed_out = false;
    int rc = 0, err, pub_err = 0;

    memset(&rp, 0, sizeof(rp));
    err = tr->connect(&co, &ctl);
    if (err == 0)
        err = tr->topic_add(ctl, b->topic, b->subject, &existed);
    if (err != 0) {
        fprintf(stderr, "%s: bench: setup failed: topic %s: %s\n", tr->prog, b->topic,
                tr->strerror(err));
        tr->close(ctl);
        return tr->setup_exit_code(err);
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pubs = calloc(b->pubs, sizeof(*pubs));
    if (pubs == NULL)
        goto oom;
    for (uint64_t i = 0, first = 0; i < b->pubs; i++) {
        struct bench_pub *p = &pubs[i];
        p->b = b;
        p->first = first;
        p->msgs = b->msgs / b->pubs + (i < b->msgs % b->pubs ? 1 : 0);
        first += p->msgs;
        p->lat_cap = p->msgs < BENCH_LAT_MAX / b->pubs ? p->msgs : BENCH_LAT_MAX / b->pubs;
        p->payload = malloc(b->size ? b->size : 1);
        p->slots = calloc(b->window, sizeof(*p->slots));
        p->free_slots = calloc(b->window, sizeof(*p->free_slots));
        p->lat = malloc((p->lat_cap ? p->lat_cap : 1) * sizeof(*p->lat));
        if (p->payload == NULL || p->slots == NULL || p->free_slots == NULL || p->lat == NULL)
            goto oom;
        memset(p->payload, 'x', b->size);
        for (uint64_t k = 0; k < b->window; k++) {
            p->slots[k].p = p;
            p->free_slots[k] = (uint32_t)(b->window - 1 - k);
        }
        p->nfree = b->window;
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, &ca);
        p->mu_init = true;
    }

    /* 2: publishers connected */
    for (uint64_t i = 0; i < b->pubs; i++) {
        if (pthread_create(&pubs[i].th, NULL, durable_pub_main, &pubs[i]) != 0)
            break;
        started++;
    }
    struct timespec setup_dl = ns_to_ts(bench_now_ns() + (int64_t)BENCH_SETUP_MS * 1000000);
    pthread_mutex_lock(&b->mu);
    while (b->ready < started)
        if (pthread_cond_timedwait(&b->cv, &b->mu, &setup_dl) == ETIMEDOUT)
            break;
    setup_ok = b->ready == b->pubs && started == b->pubs;
    for (uint64_t i = 0; setup_ok && i < b->pubs; i++)
        setup_ok = pubs[i].rc == 0;
    /* 3: open the gate */
    b->t0_ns = bench_now_ns();
    b->deadline_ns = b->t0_ns + (int64_t)b->timeout_ms * 1000000;
    b->pub_end_ns = b->deadline_ns;
    if (b->duration_ms && b->duration_ms < b->timeout_ms)
        b->pub_end_ns = b->t0_ns + (int64_t)b->duration_ms * 1000000;
    b->go = setup_ok;
    b->abort = !setup_ok;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (setup_ok)
        timed_out = durable_watch(b, pubs, isatty(STDERR_FILENO));
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->stop, true);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (uint64_t i = 0; i < started; i++)
        pthread_join(pubs[i].th, NULL);
    if (!setup_ok) {
        err = 0;
        for (uint64_t i = 0; i < b->pubs && err == 0; i++)
            err = pubs[i].rc;
        if (err == 0)
            err = tr->esetup;
        rc = tr->setup_exit_code(err);
        fprintf(stderr, "%s: bench: setup failed: %s\n", tr->prog, tr->strerror(err));
        goto out;
    }

    /* 4: ack latency, replay, --rm, report */
    for (uint64_t i = 0; i < b->pubs; i++) {
        nlat += pubs[i].nlat;
        if (pubs[i].rc != 0 && pub_err == 0)
            pub_err = pubs[i].rc;
    }
    all = malloc((nlat ? nlat : 1) * sizeof(*all));
    if (all == NULL)
        goto oom;
    nlat = 0;
    for (uint64_t i = 0; i < b->pubs; i++) {
        memcpy(all + nlat, pubs[i].lat, pubs[i].nlat * sizeof(*all));
        nlat += pubs[i].nlat;
    }
    lat_fill(all, nlat, &lat);
    if (b->replay)
        durable_replay(b, ctl, &rp, isatty(STDERR_FILENO));
    if (b->rm) {
        err = tr->topic_rm(ctl, b->topic);
        if (err != 0)
            fprintf(stderr, "%s: bench: --rm: topic %s: %s\n", tr->prog, b->topic,
                    tr->strerror(err));
    }
    durable_report(b, pubs, &lat, &rp, existed, timed_out, pub_err);
    durable_totals(b, pubs, &t);
    uint64_t rn = atomic_load(&rp.s.n);
    if (pub_err) {
        fprintf(stderr, "%s: bench: publisher: %s\n", tr->prog, tr->strerror(pub_err));
        rc = tr->exit_code(pub_err);
    } else if (t.errors) {
        fprintf(stderr, "%s: bench: %" PRIu64 " acks failed: %s\n", tr->prog, t.errors,
                tr->strerror(t.first_err));
        rc = tr->exit_code(t.first_err);
    } else if (t.unacked || timed_out) {
        fprintf(stderr, "%s: bench: timed out: %" PRIu64 " of %" PRIu64 " acked\n", tr->prog,
                t.acked, b->msgs);
        rc = BENCH_EXIT_TIMEOUT;
    } else if (rp.done && rp.err) {
        fprintf(stderr, "%s: bench: replay: %s\n", tr->prog, tr->strerror(rp.err));
        rc = tr->exit_code(rp.err);
    } else if (rp.done && rn != rp.expected) {
        fprintf(stderr, "%s: bench: replay got %" PRIu64 " of %" PRIu64 " messages%s\n", tr->prog,
                rn, rp.expected, rp.timed_out ? " (timed out)" : "");
        rc = BENCH_EXIT_LOST;
    }
    goto out;
oom:
    fprintf(stderr, "%s: bench: out of memory\n", tr->prog);
    rc = BENCH_EXIT_ERROR;
out:
    tr->close(ctl);
    for (uint64_t i = 0; pubs != NULL && i < b->pubs; i++) {
        if (pubs[i].mu_init) {
            pthread_cond_destroy(&pubs[i].cv);
            pthread_mutex_destroy(&pubs[i].mu);
        }
        free(pubs[i].payload);
        free(pubs[i].slots);
        free(pubs[i].free_slots);
        free(pubs[i].lat);
    }
    free(pubs);
    free(all);
    pthread_condattr_destroy(&ca);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    return rc;
}

/* ---- Command ---- */

static int bench_usage(const struct bench *b, const char *what, const char *arg)
{
    fprintf(stderr, "%s: bench: %s '%s'\n(see %s --help)\n", b->t->prog, what, arg, b->t->prog);
    return BENCH_EXIT_USAGE;
}

/* Check --sub-servers: 1..BENCH_MAX_THREADS comma-separated entries of
 * 1..BENCH_SERVER_MAX bytes; sets b->nsub_servers. 0 or an exit code. */
static int sub_servers_check(struct bench *b)
{
    const char *p = b->sub_servers;

    b->nsub_servers = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > BENCH_SERVER_MAX)
            return bench_usage(b, "bad --sub-servers list", b->sub_servers);
        b->nsub_servers++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if (b->nsub_servers > BENCH_MAX_THREADS)
        return bench_usage(b, "--sub-servers takes at most 256 servers:", b->sub_servers);
    if (b->queue != NULL)
        return bench_usage(b, "--sub-servers takes no --queue:", b->queue);
    if (b->size < 8)
        return bench_usage(b,
                           "--sub-servers needs --size 8 or more (probes carry a sequence"
                           " number), got",
                           "");
    return 0;
}

/* Entry i mod n of b's --sub-servers list into out (BENCH_SERVER_MAX + 1
 * bytes; the list was checked by sub_servers_check). */
static void sub_server_pick(const struct bench *b, uint64_t i, char *out)
{
    const char *p = b->sub_servers;
    size_t len;

    for (uint64_t k = i % b->nsub_servers; k > 0; k--)
        p += strcspn(p, ",") + 1;
    len = strcspn(p, ",");
    memcpy(out, p, len);
    out[len] = '\0';
}

/* Parse the options after the command word into b. 0 or an exit code. */
static int bench_parse(struct bench *b, int argc, char **argv)
{
    bool rate_set = false;

    for (int i = 0; i < argc; i++) {
        uint64_t *dst = NULL;
        if (strcmp(argv[i], "--json") == 0) {
            b->json = true;
            continue;
        }
        if (strcmp(argv[i], "--latency") == 0) {
            b->latency = true;
            continue;
        }
        if (strcmp(argv[i], "--replay") == 0) {
            b->replay = true;
            continue;
        }
        if (strcmp(argv[i], "--rm") == 0) {
            b->rm = true;
            continue;
        }
        if (strcmp(argv[i], "--queue") == 0 || strcmp(argv[i], "--durable") == 0 ||
            strcmp(argv[i], "--sub-servers") == 0) {
            const char **val = strcmp(argv[i], "--queue") == 0     ? &b->queue
                               : strcmp(argv[i], "--durable") == 0 ? &b->topic
                                                                   : &b->sub_servers;
            if (i + 1 >= argc)
                return bench_usage(b, "missing value for", argv[i]);
            *val = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--pubs") == 0)
            dst = &b->pubs;
        else if (strcmp(argv[i], "--subs") == 0) {
            dst = &b->subs;
            b->subs_set = true;
        } else if (strcmp(argv[i], "--window") == 0)
            dst = &b->window;
        else if (strcmp(argv[i], "--duration") == 0)
            dst = &b->duration_ms;
        else if (strcmp(argv[i], "--msgs") == 0)
            dst = &b->msgs;
        else if (strcmp(argv[i], "--size") == 0)
            dst = &b->size;
        else if (strcmp(argv[i], "--timeout") == 0)
            dst = &b->timeout_ms;
        else if (strcmp(argv[i], "--rate") == 0) {
            dst = &b->rate;
            rate_set = true;
        }
        if (dst != NULL) {
            if (i + 1 >= argc || !bench_parse_u64(argv[i + 1], dst))
                return bench_usage(b, "bad value for", argv[i]);
            i++;
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return bench_usage(b, "unknown option", argv[i]);
        } else if (b->subject == NULL) {
            b->subject = argv[i];
        } else {
            return bench_usage(b, "unexpected argument", argv[i]);
        }
    }
    if (b->subject == NULL)
        return bench_usage(b, "missing SUBJECT", "");
    if (!b->t->subject_ok(b->subject)) {
        fprintf(stderr, "%s: invalid subject '%s'\n", b->t->prog, b->subject);
        return BENCH_EXIT_SUBJECT;
    }
    if (b->queue != NULL && !b->t->subject_ok(b->queue)) {
        fprintf(stderr, "%s: invalid queue group name '%s'\n", b->t->prog, b->queue);
        return BENCH_EXIT_SUBJECT;
    }
    if (b->sub_servers != NULL) {
        int rc = sub_servers_check(b);
        if (rc != 0)
            return rc;
    }
    if (b->topic != NULL) {
        int rc = durable_check(b, rate_set);
        if (rc != 0)
            return rc;
    } else if (b->replay || b->rm || b->window || b->duration_ms) {
        return bench_usage(b, "--replay, --rm, --window and --duration need", "--durable TOPIC");
    }
    if (b->pubs < 1 || b->pubs > BENCH_MAX_THREADS || b->subs > BENCH_MAX_THREADS)
        return bench_usage(b, "--pubs must be 1..256 and --subs 0..256, got", "");
    if (b->msgs < 1 || b->msgs > (1ull << 40) || b->size > (1ull << 30) || b->timeout_ms < 1 ||
        b->timeout_ms > 3600000 || b->rate > 100000000)
        return bench_usage(b, "--msgs, --size, --rate or --timeout out of range", "");
    if (b->latency) {
        if (!rate_set)
            b->rate = BENCH_LAT_RATE;
        if (b->size < 16)
            return bench_usage(b, "--latency needs --size 16 or more, got", "");
        if (b->msgs * (b->subs ? b->subs : 1) > BENCH_LAT_MAX)
            return bench_usage(b, "--latency keeps every sample: --msgs * --subs at most 5e7", "");
    }
    return 0;
}

/* Run the bench through transport tr (bench_harness.h). */
int bench_run(const struct bench_transport *tr, const char *server, int argc, char **argv)
{
    struct bench b = {.t = tr,
                      .server = server,
                      .msgs = 100000,
                      .size = 128,
                      .pubs = 1,
                      .subs = 1,
                      .timeout_ms = BENCH_DEFAULT_TIMEOUT};
    struct bench_sub *subs = NULL;
    struct bench_pub *pubs = NULL;
    struct bench_lat lat = {0};
    pthread_condattr_t ca;
    int rc = bench_parse(&b, argc, argv);

    if (rc != 0)
        return rc;
    if (b.topic != NULL)
        return bench_durable(&b);
    subs = calloc(b.subs ? b.subs : 1, sizeof(*subs));
    pubs = calloc(b.pubs, sizeof(*pubs));
    if (b.queue != NULL && b.size >= 8)
        b.seen = calloc((b.msgs + 63) / 64, sizeof(*b.seen));
    if (subs == NULL || pubs == NULL || (b.queue != NULL && b.size >= 8 && b.seen == NULL)) {
        fprintf(stderr, "%s: bench: out of memory\n", tr->prog);
        rc = BENCH_EXIT_ERROR;
        goto out_free;
    }
    for (uint64_t i = 0, first = 0; i < b.pubs; i++) {
        pubs[i].b = &b;
        pubs[i].first = first;
        pubs[i].msgs = b.msgs / b.pubs + (i < b.msgs % b.pubs ? 1 : 0);
        first += pubs[i].msgs;
        pubs[i].payload = malloc(b.size ? b.size : 1);
        if (pubs[i].payload == NULL) {
            rc = BENCH_EXIT_ERROR;
            fprintf(stderr, "%s: bench: out of memory\n", tr->prog);
            goto out_free;
        }
        memset(pubs[i].payload, 'x', b.size);
    }
    for (uint64_t i = 0; i < b.subs; i++) {
        subs[i].b = &b;
        if (b.sub_servers != NULL)
            sub_server_pick(&b, i, subs[i].server);
        if (b.latency) {
            subs[i].lat_cap = b.msgs;
            subs[i].lat = malloc(b.msgs * sizeof(*subs[i].lat));
            if (subs[i].lat == NULL) {
                rc = BENCH_EXIT_ERROR;
                fprintf(stderr, "%s: bench: out of memory\n", tr->prog);
                goto out_free;
            }
        }
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b.cv, &ca);
    pthread_condattr_destroy(&ca);

    /* 1 + 2: subscribers subscribed and flushed, publishers connected */
    uint64_t started_subs = 0, started_pubs = 0;
    for (uint64_t i = 0; i < b.subs; i++) {
        if (pthread_create(&subs[i].th, NULL, sub_main, &subs[i]) != 0)
            break;
        started_subs++;
    }
    for (uint64_t i = 0; started_subs == b.subs && i < b.pubs; i++) {
        if (pthread_create(&pubs[i].th, NULL, pub_main, &pubs[i]) != 0)
            break;
        started_pubs++;
    }
    struct timespec setup_dl = ns_to_ts(bench_now_ns() + (int64_t)BENCH_SETUP_MS * 1000000);
    pthread_mutex_lock(&b.mu);
    while (b.ready < started_subs + started_pubs)
        if (pthread_cond_timedwait(&b.cv, &b.mu, &setup_dl) == ETIMEDOUT)
            break;
    bool setup_ok = b.ready == b.subs + b.pubs && started_subs == b.subs && started_pubs == b.pubs;
    for (uint64_t i = 0; setup_ok && i < b.subs; i++)
        setup_ok = subs[i].rc == 0;
    for (uint64_t i = 0; setup_ok && i < b.pubs; i++)
        setup_ok = pubs[i].rc == 0;
    int probe_err = 0;
    if (setup_ok && b.sub_servers != NULL) {
        /* the subscribers' interest must reach the publishers' server first */
        pthread_mutex_unlock(&b.mu);
        probe_err = bench_probe(&b, subs);
        setup_ok = probe_err == 0;
        pthread_mutex_lock(&b.mu);
    }
    /* 3: open the gate */
    b.t0_ns = bench_now_ns();
    b.deadline_ns = b.t0_ns + (int64_t)b.timeout_ms * 1000000;
    b.go = setup_ok;
    b.abort = !setup_ok;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);

    bool timed_out = false;
    if (setup_ok)
        timed_out = bench_watch(&b, subs, pubs, isatty(STDERR_FILENO));
    int sub_err = 0;
    for (uint64_t i = 0; i < b.subs && setup_ok; i++)
        if (sub_err == 0)
            sub_err = atomic_load(&subs[i].down);
    pthread_mutex_lock(&b.mu);
    atomic_store(&b.stop, true);
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    for (uint64_t i = 0; i < started_pubs; i++)
        pthread_join(pubs[i].th, NULL);
    for (uint64_t i = 0; i < started_subs; i++)
        pthread_join(subs[i].th, NULL);

    if (!setup_ok) {
        int err = probe_err;
        for (uint64_t i = 0; i < b.subs && err == 0; i++)
            err = subs[i].rc;
        for (uint64_t i = 0; i < b.pubs && err == 0; i++)
            err = pubs[i].rc;
        if (err == 0)
            err = tr->esetup;
        rc = tr->setup_exit_code(err);
        fprintf(stderr, "%s: bench: setup failed: %s\n", tr->prog, tr->strerror(err));
        goto out;
    }

    /* 4: report */
    int pub_err = 0;
    struct bench_totals t;
    for (uint64_t i = 0; i < b.pubs; i++)
        if (pubs[i].rc != 0 && pub_err == 0)
            pub_err = pubs[i].rc;
    bench_totals(&b, subs, pubs, &t);
    if (b.latency && lat_compute(&b, subs, &lat) < 0) {
        fprintf(stderr, "%s: bench: out of memory\n", tr->prog);
        rc = BENCH_EXIT_ERROR;
        goto out;
    }
    print_report(&b, subs, pubs, &lat, timed_out, pub_err, sub_err);
    if (pub_err) {
        fprintf(stderr, "%s: bench: publisher: %s\n", tr->prog, tr->strerror(pub_err));
        rc = tr->exit_code(pub_err);
    } else if (sub_err) {
        fprintf(stderr, "%s: bench: subscriber: %s\n", tr->prog, tr->strerror(sub_err));
        rc = tr->exit_code(sub_err);
    } else if (t.lost || t.dups) {
        fprintf(stderr, "%s: bench: %" PRIu64 " messages lost, %" PRIu64 " duplicated%s\n",
                tr->prog, t.lost, t.dups, timed_out ? " (timed out)" : "");
        rc = BENCH_EXIT_LOST;
    }
out:
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
out_free:
    for (uint64_t i = 0; subs != NULL && i < b.subs; i++)
        free(subs[i].lat);
    for (uint64_t i = 0; pubs != NULL && i < b.pubs; i++)
        free(pubs[i].payload);
    free((void *)b.seen);
    free(subs);
    free(pubs);
    return rc;
}