/*
 * bench_harness.c - the bench harness behind `ringmq bench` (client/
 * cli_bench.c) and tests/bench/nats_bench.c: P publishers and S subscribers,
 * each on its own connection and thread, in the manner of `nats bench`,
 * driven through a struct bench_transport (bench_harness.h) so that every
 * broker is measured by the same code and prints the same report.
 *
 *   SUBJECT [--pubs P] [--subs S] [--msgs N] [--size BYTES] [--queue GROUP]
 *           [--latency] [--rate MSGS_PER_S] [--timeout MS] [--json]
 *
 *   1. S subscriber threads connect, subscribe (a callback that counts) and
 *      flush, so the server has every subscription before anyone publishes.
 *   2. P publisher threads connect and wait at a start gate.
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

struct bench;

struct bench_sub {
    struct bench *b;
    pthread_t th;
    _Atomic uint64_t n;      /* messages received; written by one thread */
    _Atomic uint64_t dups;   /* --queue: sequence numbers seen twice */
    _Atomic int64_t last_ns; /* time of the last message */
    _Atomic int down;        /* connection lost: the error, else 0 */
    uint64_t *lat;           /* --latency: one-way latency samples in ns */
    uint64_t nlat, lat_cap;
    int rc; /* setup error */
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
};

struct bench {
    const struct bench_transport *t;
    const char *server;
    const char *subject;
    const char *queue;
    uint64_t msgs, size, pubs, subs, timeout_ms, rate;
    bool json, latency;
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
    struct bench_conn_opts o = {.server = b->server,
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
    free(all);
    return 0;
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

/* ---- Command ---- */

static int bench_usage(const struct bench *b, const char *what, const char *arg)
{
    fprintf(stderr, "%s: bench: %s '%s'\n(see %s --help)\n", b->t->prog, what, arg, b->t->prog);
    return BENCH_EXIT_USAGE;
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
        if (strcmp(argv[i], "--queue") == 0) {
            if (i + 1 >= argc)
                return bench_usage(b, "missing value for", argv[i]);
            b->queue = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--pubs") == 0)
            dst = &b->pubs;
        else if (strcmp(argv[i], "--subs") == 0)
            dst = &b->subs;
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
        int err = 0;
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