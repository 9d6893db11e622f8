/*
 * cli_bench.c - `ringmq bench`: P publishers and S subscribers, each on its
 * own connection and thread.
 *
 *   1. S subscriber threads connect, subscribe (callback that counts) and
 *      flush, so the server has every subscription before anyone publishes.
 *   2. P publisher threads connect and wait at a start gate.
 *   3. The gate opens (t0). Publishers split N messages, publish and flush
 *      (tp = the last flush). Subscribers count until they have N each, or
 *      until --timeout ms after the publishers are done.
 *   4. Report: publisher msgs/s and MB/s over [t0, tp]; per subscriber and
 *      aggregate msgs/s and MB/s over [t0, last message]; lost = N*S - received.
 *
 * Every wait is bounded: connects by the connect timeout, the gate and the
 * ready wait by BENCH_SETUP_MS, the subscribers by --timeout, each publish
 * retry loop by a count. MB means 10^6 bytes of payload.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BENCH_SETUP_MS 10000
#define BENCH_MAX_THREADS 256
#define BENCH_FLUSH_MS 30000
#define BENCH_PUB_RETRIES 50

struct bench;

struct bench_sub {
    struct bench *b;
    pthread_t th;
    _Atomic uint64_t n;
    _Atomic int64_t last_ns;
    int rc;
};

struct bench_pub {
    struct bench *b;
    pthread_t th;
    uint64_t msgs;
    uint64_t sent;
    int64_t end_ns;
    int rc;
};

struct bench {
    const char *server;
    const char *subject;
    uint64_t msgs, size, pubs, subs, timeout_ms;
    uint8_t *payload;
    pthread_mutex_t mu;
    unsigned ready; /* threads connected (and, for subs, subscribed) */
    bool go;        /* the start gate is open */
    bool abort;     /* setup failed: everyone leaves */
    bool pubs_done;
    int64_t t0_ns;
    int64_t pubs_done_ns;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void bench_ready(struct bench *b)
{
    pthread_mutex_lock(&b->mu);
    b->ready++;
    pthread_mutex_unlock(&b->mu);
}

/* Wait for the gate; false if the bench was aborted or it stayed shut. */
static bool bench_gate(struct bench *b)
{
    int64_t end = now_ns() + (int64_t)BENCH_SETUP_MS * 2 * 1000000;
    bool go;

    pthread_mutex_lock(&b->mu);
    while (!b->go && !b->abort && now_ns() < end) {
        pthread_mutex_unlock(&b->mu);
        usleep(1000);
        pthread_mutex_lock(&b->mu);
    }
    go = b->go && !b->abort;
    pthread_mutex_unlock(&b->mu);
    return go;
}

static void sub_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct bench_sub *s = arg;
    (void)c;
    (void)sub;
    (void)m;
    atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
    atomic_store_explicit(&s->last_ns, now_ns(), memory_order_relaxed);
}

static void *sub_main(void *arg)
{
    struct bench_sub *s = arg;
    struct bench *b = s->b;
    rmq_client *c = NULL;
    rmq_sub *sub = NULL;
    rmq_opts *o;

    s->rc = rmq_opts_new(&o);
    if (s->rc == 0)
        s->rc = rmq_opts_set_servers(o, b->server);
    if (s->rc == 0) {
        rmq_opts_set_name(o, "ringmq-bench-sub");
        /* a subscriber must keep up, not reconnect and miss messages */
        rmq_opts_set_max_reconnect(o, 0);
        s->rc = rmq_connect(o, &c);
    }
    rmq_opts_free(o);
    if (s->rc < 0) {
        bench_ready(b);
        return NULL;
    }
    s->rc = rmq_subscribe(c, b->subject, NULL, sub_cb, s, &sub);
    if (s->rc == 0)
        s->rc = rmq_flush(c, BENCH_SETUP_MS);
    bench_ready(b);
    if (s->rc == 0 && bench_gate(b)) {
        for (;;) {
            pthread_mutex_lock(&b->mu);
            bool done = b->pubs_done;
            int64_t deadline = b->pubs_done_ns + (int64_t)b->timeout_ms * 1000000;
            pthread_mutex_unlock(&b->mu);
            if (atomic_load(&s->n) >= b->msgs)
                break;
            if (done && now_ns() >= deadline)
                break;
            if (!rmq_client_is_connected(c)) {
                s->rc = RMQ_ECLOSED;
                break;
            }
            usleep(1000);
        }
    }
    rmq_unsubscribe(sub);
    rmq_close(c);
    return NULL;
}

static void *pub_main(void *arg)
{
    struct bench_pub *p = arg;
    struct bench *b = p->b;
    rmq_client *c = NULL;
    rmq_opts *o;

    p->rc = rmq_opts_new(&o);
    if (p->rc == 0)
        p->rc = rmq_opts_set_servers(o, b->server);
    if (p->rc == 0) {
        rmq_opts_set_name(o, "ringmq-bench-pub");
        p->rc = rmq_connect(o, &c);
    }
    rmq_opts_free(o);
    if (p->rc == 0 && b->size > rmq_client_max_payload(c))
        p->rc = -EMSGSIZE;
    bench_ready(b);
    if (p->rc < 0) {
        rmq_close(c);
        return NULL;
    }
    if (bench_gate(b)) {
        for (uint64_t i = 0; i < p->msgs; i++) {
            int rc, tries = 0;
            do {
                rc = rmq_publish(c, b->subject, b->payload, b->size);
            } while (rc == -EAGAIN && ++tries < BENCH_PUB_RETRIES);
            if (rc < 0) {
                p->rc = rc;
                break;
            }
            p->sent++;
        }
        if (p->rc == 0)
            p->rc = rmq_flush(c, BENCH_FLUSH_MS);
    }
    p->end_ns = now_ns();
    rmq_close(c);
    return NULL;
}

static double rate(double n, double secs)
{
    return secs > 0 ? n / secs : 0;
}

static int bench_usage(const char *what, const char *arg)
{
    fprintf(stderr, "ringmq: bench: %s '%s'\n(see ringmq --help)\n", what, arg);
    return CLI_EXIT_USAGE;
}

/*
 * Run `ringmq bench SUBJECT ...` (argv after the command word) against
 * server. Returns the process exit code. Main thread; starts P + S threads
 * and joins them all before returning.
 */
int cli_bench(const char *server, int argc, char **argv)
{
    struct bench b = {
        .server = server, .msgs = 100000, .size = 128, .pubs = 1, .subs = 1, .timeout_ms = 5000};
    struct bench_sub *subs = NULL;
    struct bench_pub *pubs = NULL;
    bool json = false;
    int rc = CLI_EXIT_OK;

    for (int i = 0; i < argc; i++) {
        uint64_t *dst = NULL;
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(argv[i], "--pubs") == 0)
            dst = &b.pubs;
        else if (strcmp(argv[i], "--subs") == 0)
            dst = &b.subs;
        else if (strcmp(argv[i], "--msgs") == 0)
            dst = &b.msgs;
        else if (strcmp(argv[i], "--size") == 0)
            dst = &b.size;
        else if (strcmp(argv[i], "--timeout") == 0)
            dst = &b.timeout_ms;
        if (dst != NULL) {
            if (i + 1 >= argc || !cli_parse_u64(argv[i + 1], dst))
                return bench_usage("bad value for", argv[i]);
            i++;
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return bench_usage("unknown option", argv[i]);
        } else if (b.subject == NULL) {
            b.subject = argv[i];
        } else {
            return bench_usage("unexpected argument", argv[i]);
        }
    }
    if (b.subject == NULL)
        return bench_usage("missing SUBJECT", "");
    if (rmq_subject_check(b.subject, false) != 0) {
        fprintf(stderr, "ringmq: invalid subject '%s'\n", b.subject);
        return CLI_EXIT_SUBJECT;
    }
    if (b.pubs < 1 || b.pubs > BENCH_MAX_THREADS || b.subs > BENCH_MAX_THREADS)
        return bench_usage("--pubs must be 1..256 and --subs 0..256, got", "");
    if (b.msgs < 1 || b.msgs > (1ull << 40) || b.size > (1ull << 30) || b.timeout_ms > 3600000)
        return bench_usage("--msgs, --size or --timeout out of range", "");

    b.payload = malloc(b.size ? b.size : 1);
    subs = calloc(b.subs ? b.subs : 1, sizeof(*subs));
    pubs = calloc(b.pubs, sizeof(*pubs));
    if (b.payload == NULL || subs == NULL || pubs == NULL) {
        fprintf(stderr, "ringmq: bench: out of memory\n");
        rc = CLI_EXIT_ERROR;
        goto out_free;
    }
    memset(b.payload, 'x', b.size);
    pthread_mutex_init(&b.mu, NULL);

    /* 1 + 2: subscribers subscribed and flushed, publishers connected */
    uint64_t started_subs = 0, started_pubs = 0;
    for (uint64_t i = 0; i < b.subs; i++) {
        subs[i].b = &b;
        if (pthread_create(&subs[i].th, NULL, sub_main, &subs[i]) != 0)
            break;
        started_subs++;
    }
    for (uint64_t i = 0; i < b.pubs; i++) {
        pubs[i].b = &b;
        pubs[i].msgs = b.msgs / b.pubs + (i < b.msgs % b.pubs ? 1 : 0);
        if (pthread_create(&pubs[i].th, NULL, pub_main, &pubs[i]) != 0)
            break;
        started_pubs++;
    }
    int64_t setup_end = now_ns() + (int64_t)BENCH_SETUP_MS * 1000000;
    pthread_mutex_lock(&b.mu);
    while (b.ready < started_subs + started_pubs && now_ns() < setup_end) {
        pthread_mutex_unlock(&b.mu);
        usleep(1000);
        pthread_mutex_lock(&b.mu);
    }
    bool setup_ok = b.ready == b.subs + b.pubs && started_subs == b.subs && started_pubs == b.pubs;
    for (uint64_t i = 0; setup_ok && i < b.subs; i++)
        setup_ok = subs[i].rc == 0;
    for (uint64_t i = 0; setup_ok && i < b.pubs; i++)
        setup_ok = pubs[i].rc == 0;
    /* 3: open the gate */
    b.t0_ns = now_ns();
    b.go = setup_ok;
    b.abort = !setup_ok;
    pthread_mutex_unlock(&b.mu);

    for (uint64_t i = 0; i < started_pubs; i++)
        pthread_join(pubs[i].th, NULL);
    pthread_mutex_lock(&b.mu);
    b.pubs_done = true;
    b.pubs_done_ns = now_ns();
    pthread_mutex_unlock(&b.mu);
    for (uint64_t i = 0; i < started_subs; i++)
        pthread_join(subs[i].th, NULL);

    if (!setup_ok) {
        int err = -EAGAIN;
        for (uint64_t i = 0; i < b.subs && err == -EAGAIN; i++)
            if (subs[i].rc < 0)
                err = subs[i].rc;
        for (uint64_t i = 0; i < b.pubs && err == -EAGAIN; i++)
            if (pubs[i].rc < 0)
                err = pubs[i].rc;
        rc = err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH ? CLI_EXIT_CONNECT
                                                                               : cli_exit_code(err);
        fprintf(stderr, "ringmq: bench: setup failed: %s\n", rmq_strerror(err));
        goto out;
    }

    /* 4: report */
    uint64_t sent = 0, received = 0;
    int64_t pub_end = b.t0_ns, sub_end = b.t0_ns;
    int pub_err = 0, sub_err = 0;
    for (uint64_t i = 0; i < b.pubs; i++) {
        sent += pubs[i].sent;
        if (pubs[i].end_ns > pub_end)
            pub_end = pubs[i].end_ns;
        if (pubs[i].rc < 0 && pub_err == 0)
            pub_err = pubs[i].rc;
    }
    for (uint64_t i = 0; i < b.subs; i++) {
        received += atomic_load(&subs[i].n);
        if (atomic_load(&subs[i].last_ns) > sub_end)
            sub_end = atomic_load(&subs[i].last_ns);
        if (subs[i].rc < 0 && sub_err == 0)
            sub_err = subs[i].rc;
    }
    double pub_s = (double)(pub_end - b.t0_ns) / 1e9;
    double sub_s = (double)(sub_end - b.t0_ns) / 1e9;
    uint64_t expected = b.msgs * b.subs;
    uint64_t lost = expected > received ? expected - received : 0;
    double mb = (double)b.size / 1e6;

    if (json) {
        printf("{\"subject\":\"%s\",\"pubs\":%" PRIu64 ",\"subs\":%" PRIu64 ",\"msgs\":%" PRIu64
               ",\"size\":%" PRIu64 ",\n",
               b.subject, b.pubs, b.subs, b.msgs, b.size);
        printf(" \"pub\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.1f,"
               "\"mb_per_sec\":%.3f},\n",
               sent, pub_s, rate((double)sent, pub_s), rate((double)sent * mb, pub_s));
        printf(" \"sub\":[");
        for (uint64_t i = 0; i < b.subs; i++) {
            uint64_t n = atomic_load(&subs[i].n);
            double s = (double)(atomic_load(&subs[i].last_ns) - b.t0_ns) / 1e9;
            if (n == 0)
                s = 0;
            printf("%s{\"msgs\":%" PRIu64 ",\"secs\":%.6f,\"msgs_per_sec\":%.1f,"
                   "\"mb_per_sec\":%.3f}",
                   i ? "," : "", n, s, rate((double)n, s), rate((double)n * mb, s));
        }
        printf("],\n \"sub_aggregate\":{\"msgs\":%" PRIu64 ",\"secs\":%.6f,"
               "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.3f},\n",
               received, sub_s, rate((double)received, sub_s), rate((double)received * mb, sub_s));
        printf(" \"expected\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
               ",\"pub_error\":\"%s\",\"sub_error\":\"%s\"}\n",
               expected, received, lost, pub_err ? rmq_strerror(pub_err) : "",
               sub_err ? rmq_strerror(sub_err) : "");
    } else {
        printf("bench %s: %" PRIu64 " publishers, %" PRIu64 " subscribers, %" PRIu64
               " msgs of %" PRIu64 " B\n",
               b.subject, b.pubs, b.subs, b.msgs, b.size);
        printf("pub:       %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n", sent, pub_s,
               rate((double)sent, pub_s), rate((double)sent * mb, pub_s));
        for (uint64_t i = 0; i < b.subs; i++) {
            uint64_t n = atomic_load(&subs[i].n);
            double s = n ? (double)(atomic_load(&subs[i].last_ns) - b.t0_ns) / 1e9 : 0;
            printf("sub %-5" PRIu64 " %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n",
                   i + 1, n, s, rate((double)n, s), rate((double)n * mb, s));
        }
        if (b.subs)
            printf("sub total: %10" PRIu64 " msgs in %.3f s: %12.0f msgs/s %10.2f MB/s\n", received,
                   sub_s, rate((double)received, sub_s), rate((double)received * mb, sub_s));
        printf("lost:      %10" PRIu64 " of %" PRIu64 "\n", lost, expected);
    }
    fflush(stdout);
    if (pub_err) {
        fprintf(stderr, "ringmq: bench: publisher: %s\n", rmq_strerror(pub_err));
        rc = cli_exit_code(pub_err);
    } else if (sub_err) {
        fprintf(stderr, "ringmq: bench: subscriber: %s\n", rmq_strerror(sub_err));
        rc = cli_exit_code(sub_err);
    } else if (lost) {
        fprintf(stderr, "ringmq: bench: %" PRIu64 " messages lost\n", lost);
        rc = CLI_EXIT_LOST;
    }
out:
    pthread_mutex_destroy(&b.mu);
out_free:
    free(b.payload);
    free(subs);
    free(pubs);
    return rc;
}
