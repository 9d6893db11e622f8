/*
 * check_cluster.c - several ringmqd nodes as one cluster: routes between
 * nodes (--cluster-listen, --routes, gossip to a full mesh), interest
 * propagation, forwarding and queue groups across nodes, node failure,
 * restart and rejoin, refused routes (cluster name, secret), and a
 * network partition between two network namespaces.
 *
 * The contract under test (ARCHITECTURE.md, "Cluster"):
 *   - a message published on any node reaches every matching subscriber
 *     on every node exactly once (wildcards included); request/reply works
 *     across nodes;
 *   - a queue group with members on several nodes gets each message once;
 *     members on the publisher's node are preferred (then nothing is
 *     forwarded for that group);
 *   - a node forwards a message only to nodes with matching interest and
 *     never forwards a message that came from a route;
 *   - when a node dies the others keep serving; when it comes back, routes
 *     reconnect and interest is exchanged again;
 *   - "$SYS.REQ.CLUSTER" lists the routes (state "up" or "connecting") with
 *     per-route counters; "$SYS.REQ.STATS" has route_msgs_in/out.
 *
 * The contract has no "flush across the cluster": after subscribing on one
 * node, a test publishes probe messages (one-byte payloads "0".."3", not
 * counted as data) from the publishing node until they arrive, and only
 * then publishes the data it counts. Data payloads carry a sequence number
 * (it_payload_fill), so loss, duplicates and reordering show.
 *
 * Where the counters allow it, the tests also check what crossed the
 * routes (exactly N forwarded to an interested peer, 0 to the others), so
 * that "forwarded once per peer" and "never re-forwarded" are seen
 * directly and not only through the absence of duplicates.
 *
 * Nodes run on 127.0.0.1: client ports are ephemeral, cluster ports come
 * from it_free_port(). Every node of a test must exit 0 on SIGTERM. The
 * netns TCase needs root (ip netns, veth); without it, it prints
 * "skipped: ..." and passes. Its namespaces are deleted by a janitor
 * process also when the test fails or is killed at its timeout.
 *
 * TCases:
 *   mesh     one seed -> full mesh of 3 (directions, addresses, stable); a
 *            chain of seeds -> mesh of 4 (and d->a is direct); two nodes
 *            seeding each other, one started late -> one route
 *   routing  wildcards exactly once and only where they match; queue group
 *            across nodes once, local member preferred, remote again after
 *            it left; request/reply both ways; no forwarding without
 *            interest; overlapping interest on one node crosses once;
 *            all-to-all bursts; unsubscribe removes interest (refcounted);
 *            payloads up to max_payload
 *   failure  SIGKILL a node under load: survivors keep delivering, its
 *            client fails over; restart: mesh again, interest (300 subjects)
 *            re-synced, exactly once
 *   durable  a topic on a remote owner: publishes and admin from other nodes,
 *            UNAVAILABLE while the owner is down; replays (all, from a seq,
 *            a pattern, then live) and a durable consumer (acks, no
 *            redelivery, bind seen by the owner) relayed from other nodes,
 *            ended with UNAVAILABLE when the owner dies, resumed after its
 *            restart; a slow reader of a relayed replay pauses the owner
 *   refuse   other cluster name, wrong or missing secret (plus the control)
 *   netns    a partition over veth and the rejoin
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define PAYLOAD 32
#define MESH_MS 10000     /* it_cluster_start's wait for the mesh */
#define PROBE_MS 5000     /* interest propagation */
#define QUIESCE_US 300000 /* let in-flight probes land before reading counters */
#define LOG_TAIL 80

/* ---- Logs of all nodes on failure ---- */

static struct it_node *g_track[8];
static int g_ntrack;

static void track(struct it_node *n)
{
    if (g_ntrack < (int)(sizeof(g_track) / sizeof(g_track[0])))
        g_track[g_ntrack++] = n;
}

static void dump_tail(const struct it_node *n)
{
    FILE *f = fopen(n->b.log, "r");
    char *buf;
    long len, start;
    int lines = 0;
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len > (4l << 20))
        len = 4l << 20;
    buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return;
    }
    len = (long)fread(buf, 1, (size_t)len, f);
    buf[len] = '\0';
    fclose(f);
    for (start = len; start > 0; start--)
        if (buf[start - 1] == '\n' && start != len && ++lines >= LOG_TAIL)
            break;
    fprintf(stderr, "---- node %s: last %d lines of %s ----\n%s", n->name, LOG_TAIL, n->b.log,
            buf + start);
    free(buf);
}

static void dump_all(void)
{
    for (int i = 0; i < g_ntrack; i++)
        dump_tail(g_track[i]);
}

/* An assertion that prints the log tails of every node of the test. */
#define CL_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dump_all();                                                                            \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

/* ---- Nodes ---- */

static void node_start(struct it_node *n, const char *name, const char *cluster_listen,
                       const char *routes, const char *const *extra)
{
    int rc = it_node_start(n, name, cluster_listen, routes, extra);
    track(n);
    CL_CHECK(rc == 0, "node %s did not start (log above)", name);
}

/* SIGTERM, exit 0, remove its dir; a node killed before only loses its dir. */
static void node_stop(struct it_node *n)
{
    if (n->b.pid > 0) {
        int st = tbroker_stop(&n->b, SIGTERM, 10000);
        CL_CHECK(st == 0, "node %s: exit status after SIGTERM %d (want 0; -1 = timeout)", n->name,
                 st);
    }
    it_broker_cleanup(&n->b);
}

static void node_kill(struct it_node *n)
{
    int st = it_broker_kill(&n->b, 5000);
    CL_CHECK(st == 128 + SIGKILL, "node %s: SIGKILL gave status %d", n->name, st);
}

static void cl_start(struct it_node n[3], rmq_client *mon[3])
{
    g_ntrack = 0;
    for (int i = 0; i < 3; i++)
        track(&n[i]);
    it_cluster_start(n, mon, NULL, MESH_MS);
}

static void cl_stop(struct it_node *n, rmq_client **mon, int nn)
{
    for (int i = 0; i < nn; i++)
        if (mon[i])
            it_close(mon[i]);
    for (int i = 0; i < nn; i++)
        node_stop(&n[i]);
    g_ntrack = 0;
    it_cur_broker = NULL;
}

/* The two-node mesh of x and y (after a third node went away). */
static void wait_pair(struct it_node *x, rmq_client *mx, struct it_node *y, rmq_client *my,
                      int timeout_ms, const char *what)
{
    struct it_node pair[2] = {*x, *y};
    rmq_client *mons[2] = {mx, my};
    char why[1024];
    int rc = it_cluster_wait_mesh(pair, mons, 2, timeout_ms, why, sizeof(why));
    CL_CHECK(rc == 0, "%s: %s and %s not down to one route each within %d ms: %s", what, x->name,
             y->name, timeout_ms, why);
}

static struct it_cluster_info g_ci; /* scratch, test thread only */

enum { R_IN, R_OUT, R_INTEREST };

/* A counter of self's route up to peer (asserts there is one). */
static uint64_t route_ctr(rmq_client *mon, const char *self, const char *peer, int which)
{
    const struct it_route *r;
    it_cluster_info(mon, &g_ci);
    r = it_cluster_route(&g_ci, peer);
    CL_CHECK(r != NULL, "node %s has no route up to %s: %.600s", self, peer, g_ci.raw);
    return which == R_IN ? r->msgs_in : which == R_OUT ? r->msgs_out : r->interest;
}

static uint64_t stat_of(rmq_client *mon, const char *key)
{
    uint64_t v = 0;
    int rc = it_stats_get(mon, key, &v);
    CL_CHECK(rc == 0, "stats '%s': %s", key, rc == -ENOENT ? "not in the JSON" : rmq_strerror(rc));
    return v;
}

/*
 * Poll "$SYS.REQ.CLUSTER" until it answers with JSON (at most ms). Returns
 * how many requests did not (0: the first one did).
 */
static int wait_json(rmq_client *mon, const char *name, int ms, struct it_cluster_info *ci)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    int bad = 0, rc;
    while ((rc = it_cluster_get(mon, ci)) != 0) {
        bad++;
        CL_CHECK(test_now_ms() < end,
                 "node %s: no JSON from $SYS.REQ.CLUSTER within %d ms: %s '%s'", name, ms,
                 rc == -EPROTO ? "no routes array in" : rmq_strerror(rc), ci->raw);
        usleep(10000);
    }
    return bad;
}

/* ---- Sinks: what one subscription received ---- */

#define NSTREAM 3
#define NPROBE 4

struct sink {
    const char *subj[NSTREAM]; /* data subjects; "x.>" matches by prefix */
    struct it_seq seq[NSTREAM];
    int64_t max[NSTREAM];
    _Atomic uint64_t back[NSTREAM]; /* a sequence number below one seen before */
    _Atomic uint64_t probes[NPROBE];
    _Atomic uint64_t other; /* neither probe nor data */
    struct it_seq *uni;     /* also fed with stream 0 (queue group union) */
    pthread_mutex_t mu;
    char other_subj[96];
};

static void sink_init(struct sink *s, const char *subj0, uint64_t n0, const char *subj1,
                      uint64_t n1)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->subj[0] = subj0;
    s->subj[1] = subj1;
    it_seq_init(&s->seq[0], n0);
    it_seq_init(&s->seq[1], n1 ? n1 : 1);
    for (int i = 2; i < NSTREAM; i++)
        it_seq_init(&s->seq[i], 1);
    for (int i = 0; i < NSTREAM; i++)
        s->max[i] = -1;
}

/* Set up stream i (after sink_init, before any message). */
static void sink_stream(struct sink *s, int i, const char *subj, uint64_t n)
{
    it_seq_free(&s->seq[i]);
    it_seq_init(&s->seq[i], n);
    s->subj[i] = subj;
}

static void sink_free(struct sink *s)
{
    for (int i = 0; i < NSTREAM; i++)
        it_seq_free(&s->seq[i]);
}

static bool subj_match(const char *pat, const char *subj)
{
    size_t n;
    if (!pat)
        return false;
    n = strlen(pat);
    if (n >= 2 && pat[n - 1] == '>' && pat[n - 2] == '.')
        return strncmp(pat, subj, n - 1) == 0 && subj[n - 1] != '\0';
    return strcmp(pat, subj) == 0;
}

static void sink_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct sink *s = arg;
    const uint8_t *d = rmq_msg_data(m);
    const char *subj = rmq_msg_subject(m);
    size_t len = rmq_msg_len(m);
    (void)c;
    (void)sub;
    if (len == 1 && d[0] >= '0' && d[0] < '0' + NPROBE) {
        s->probes[d[0] - '0']++;
        return;
    }
    for (int i = 0; i < NSTREAM; i++) {
        if (subj_match(s->subj[i], subj)) {
            int64_t seq = it_payload_seq(d, len);
            pthread_mutex_lock(&s->mu);
            if (seq >= 0 && seq < s->max[i])
                s->back[i]++;
            if (seq > s->max[i])
                s->max[i] = seq;
            pthread_mutex_unlock(&s->mu);
            it_seq_note(&s->seq[i], d, len);
            if (i == 0 && s->uni)
                it_seq_note(s->uni, d, len);
            return;
        }
    }
    pthread_mutex_lock(&s->mu);
    if (!s->other)
        snprintf(s->other_subj, sizeof(s->other_subj), "%s", subj);
    s->other++;
    pthread_mutex_unlock(&s->mu);
}

static uint64_t sink_n(struct sink *s, int i)
{
    return atomic_load(&s->seq[i].count);
}

static int64_t sink_max(struct sink *s, int i)
{
    int64_t v;
    pthread_mutex_lock(&s->mu);
    v = s->max[i];
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* No duplicates, corruption, going back or stray messages. */
static void sink_clean(struct sink *s, const char *what)
{
    for (int i = 0; i < NSTREAM; i++) {
        CL_CHECK(atomic_load(&s->seq[i].dups) == 0, "%s (%s): %" PRIu64 " duplicates", what,
                 s->subj[i] ? s->subj[i] : "-", (uint64_t)atomic_load(&s->seq[i].dups));
        CL_CHECK(atomic_load(&s->seq[i].bad) == 0, "%s (%s): %" PRIu64 " corrupt payloads", what,
                 s->subj[i] ? s->subj[i] : "-", (uint64_t)atomic_load(&s->seq[i].bad));
        CL_CHECK(atomic_load(&s->back[i]) == 0, "%s (%s): %" PRIu64 " messages went backwards",
                 what, s->subj[i] ? s->subj[i] : "-", (uint64_t)atomic_load(&s->back[i]));
    }
    CL_CHECK(atomic_load(&s->other) == 0, "%s: %" PRIu64 " unexpected messages (first on '%s')",
             what, (uint64_t)atomic_load(&s->other), s->other_subj);
}

/* Exactly want messages of stream i, in order, nothing else. */
static void sink_expect(struct sink *s, int i, uint64_t want, int timeout_ms, const char *what)
{
    int rc = it_wait_atomic(&s->seq[i].count, want, timeout_ms);
    uint64_t got = sink_n(s, i);
    CL_CHECK(rc == 0,
             "%s (%s): got %" PRIu64 " of %" PRIu64 " messages in %d ms (first missing %" PRId64
             ", dups %" PRIu64 ")",
             what, s->subj[i], got, want, timeout_ms, it_seq_first_missing(&s->seq[i], want),
             (uint64_t)atomic_load(&s->seq[i].dups));
    CL_CHECK(got == want, "%s (%s): %" PRIu64 " distinct messages, want %" PRIu64, what, s->subj[i],
             got, want);
    CL_CHECK(atomic_load(&s->seq[i].ooo) == 0,
             "%s (%s): %" PRIu64 " out of order, first: wanted %" PRId64 " got %" PRId64, what,
             s->subj[i], (uint64_t)atomic_load(&s->seq[i].ooo), s->seq[i].ooo_want,
             s->seq[i].ooo_got);
    sink_clean(s, what);
}

/* A client on addr subscribed to pattern (queue may be NULL) into s; flushed. */
static rmq_client *sub_client(const char *addr, const char *name, const char *pattern,
                              const char *queue, struct sink *s)
{
    rmq_client *c = it_client(addr, name, NULL);
    rmq_sub *sub = NULL;
    int rc = rmq_subscribe(c, pattern, queue, sink_cb, s, &sub);
    CL_CHECK(rc == 0, "%s: subscribe %s: %s", name, pattern, rmq_strerror(rc));
    rc = rmq_flush(c, 10000);
    CL_CHECK(rc == 0, "%s: flush: %s", name, rmq_strerror(rc));
    return c;
}

static void sub_more(rmq_client *c, const char *pattern, const char *queue, struct sink *s)
{
    rmq_sub *sub = NULL;
    int rc = rmq_subscribe(c, pattern, queue, sink_cb, s, &sub);
    CL_CHECK(rc == 0, "subscribe %s: %s", pattern, rmq_strerror(rc));
    rc = rmq_flush(c, 10000);
    CL_CHECK(rc == 0, "flush: %s", rmq_strerror(rc));
}

static void flush_ok(rmq_client *c)
{
    int rc = rmq_flush(c, 20000);
    CL_CHECK(rc == 0, "rmq_flush: %s", rmq_strerror(rc));
}

/* Publish [from, from+count) on subj, pace_us after each; then flush. */
static void pub_range(rmq_client *c, const char *subj, uint64_t from, uint64_t count, int pace_us)
{
    uint8_t buf[PAYLOAD];
    for (uint64_t i = from; i < from + count; i++) {
        int rc;
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish(c, subj, buf, sizeof(buf));
        CL_CHECK(rc == 0, "publish %s #%" PRIu64 ": %s", subj, i, rmq_strerror(rc));
        if (pace_us)
            usleep((useconds_t)pace_us);
    }
    flush_ok(c);
}

/*
 * Publish probe k on subj from c every 20 ms until every sink in dst (any
 * one of them when any is set) got one more probe k than before. Bounded;
 * prints how long the propagation took.
 */
static void probe_until(rmq_client *c, const char *subj, int k, struct sink **dst, int nd, bool any,
                        int timeout_ms, const char *what)
{
    uint64_t base[8], t0 = test_now_ms(), end = t0 + (uint64_t)timeout_ms;
    char p = (char)('0' + k);
    int sent = 0;
    for (int i = 0; i < nd; i++)
        base[i] = atomic_load(&dst[i]->probes[k]);
    for (;;) {
        int got = 0, rc = rmq_publish(c, subj, &p, 1);
        CL_CHECK(rc == 0, "%s: probe on %s: %s", what, subj, rmq_strerror(rc));
        sent++;
        for (int w = 0; w < 20; w++) {
            got = 0;
            for (int i = 0; i < nd; i++)
                got += atomic_load(&dst[i]->probes[k]) > base[i];
            if (any ? got > 0 : got == nd)
                break;
            usleep(1000);
        }
        if (any ? got > 0 : got == nd)
            break;
        CL_CHECK(test_now_ms() < end,
                 "%s: %d of %d subscribers got a probe on %s within %d ms (%d sent): interest "
                 "did not propagate",
                 what, got, nd, subj, timeout_ms, sent);
    }
    flush_ok(c);
    printf("%s: interest propagated in %" PRIu64 " ms (%d probes)\n", what, test_now_ms() - t0,
           sent);
}

/* ---- mesh ---- */

START_TEST(test_cluster_mesh_from_one_seed)
{
    static const char *const names[3] = {"a", "b", "c"};
    struct it_node n[3];
    rmq_client *mon[3];
    struct it_cluster_info *ci = calloc(3, sizeof(*ci));
    char why[1024];
    uint64_t t0;
    int rc, early_bad;

    ck_assert_ptr_nonnull(ci);
    g_ntrack = 0;
    node_start(&n[0], "a", NULL, NULL, NULL);
    it_cur_broker = &n[0].b;
    mon[0] = it_client(n[0].b.addr, "mon-a", NULL);
    /* Checked at the end, so that the rest still runs: ready means answering. */
    early_bad = wait_json(mon[0], "a", 2000, &ci[0]);
    CL_CHECK(strcmp(ci[0].node, "a") == 0, "node a answers as '%s': %s", ci[0].node, ci[0].raw);
    CL_CHECK(strcmp(ci[0].cluster, "ringmq") == 0, "default cluster name '%s', want ringmq: %s",
             ci[0].cluster, ci[0].raw);
    CL_CHECK(strcmp(ci[0].listen, n[0].caddr) == 0, "listen '%s', want %s", ci[0].listen,
             n[0].caddr);
    CL_CHECK(it_cluster_nup(&ci[0]) == 0, "a node alone has routes up: %s", ci[0].raw);

    t0 = test_now_ms();
    for (int i = 1; i < 3; i++) {
        char mname[16];
        node_start(&n[i], names[i], NULL, n[0].caddr, NULL);
        snprintf(mname, sizeof(mname), "mon-%s", names[i]);
        mon[i] = it_client(n[i].b.addr, mname, NULL);
    }
    rc = it_cluster_wait_mesh(n, mon, 3, 5000, why, sizeof(why));
    CL_CHECK(rc == 0, "B and C seeded with A only: no full mesh within 5 s: %s", why);
    printf("mesh: full after %" PRIu64 " ms\n", test_now_ms() - t0);

    /* Stable: no flapping, no duplicate routes appearing later. */
    usleep(500 * 1000);
    rc = it_cluster_wait_mesh(n, mon, 3, 0, why, sizeof(why));
    CL_CHECK(rc == 0, "mesh not stable 500 ms later: %s", why);

    for (int i = 0; i < 3; i++) {
        it_cluster_info(mon[i], &ci[i]);
        CL_CHECK(strcmp(ci[i].cluster, "ringmq") == 0, "node %s: cluster '%s'", names[i],
                 ci[i].cluster);
        CL_CHECK(strcmp(ci[i].listen, n[i].caddr) == 0, "node %s: listen '%s', want %s", names[i],
                 ci[i].listen, n[i].caddr);
    }
    /* One TCP route per pair: dialled by one side ("out"), accepted by the other ("in"). */
    for (int i = 0; i < 3; i++) {
        for (int j = i + 1; j < 3; j++) {
            const struct it_route *ri = it_cluster_route(&ci[i], names[j]);
            const struct it_route *rj = it_cluster_route(&ci[j], names[i]);
            CL_CHECK(ri && rj, "route %s-%s missing on one side", names[i], names[j]);
            CL_CHECK((strcmp(ri->dir, "out") == 0 && strcmp(rj->dir, "in") == 0) ||
                         (strcmp(ri->dir, "in") == 0 && strcmp(rj->dir, "out") == 0),
                     "route %s-%s: dir '%s' on %s and '%s' on %s (want one out, one in)", names[i],
                     names[j], ri->dir, names[i], rj->dir, names[j]);
            if (strcmp(ri->dir, "out") == 0)
                CL_CHECK(strcmp(ri->addr, n[j].caddr) == 0,
                         "%s dialled %s at '%s', its cluster address is %s", names[i], names[j],
                         ri->addr, n[j].caddr);
            else
                CL_CHECK(strcmp(rj->addr, n[i].caddr) == 0,
                         "%s dialled %s at '%s', its cluster address is %s", names[j], names[i],
                         rj->addr, n[i].caddr);
        }
    }
    free(ci);
    CL_CHECK(early_bad == 0,
             "right after start (port file written, client connected) $SYS.REQ.CLUSTER did "
             "not answer with JSON: %d empty or malformed replies before the first JSON",
             early_bad);
    cl_stop(n, mon, 3);
}
END_TEST

/* Gossip carries the mesh down a chain: b seeds a, c seeds b, d seeds c. */
START_TEST(test_cluster_mesh_chain_of_seeds_four_nodes)
{
    static const char *const names[4] = {"a", "b", "c", "d"};
    struct it_node n[4];
    rmq_client *mon[4], *ca, *pd;
    struct sink sa;
    char why[1024];
    uint64_t t0, ain0, bin0, cin0;
    int rc;

    g_ntrack = 0;
    t0 = test_now_ms();
    for (int i = 0; i < 4; i++) {
        char mname[16];
        node_start(&n[i], names[i], NULL, i ? n[i - 1].caddr : NULL, NULL);
        snprintf(mname, sizeof(mname), "mon-%s", names[i]);
        mon[i] = it_client(n[i].b.addr, mname, NULL);
    }
    it_cur_broker = &n[0].b;
    rc = it_cluster_wait_mesh(n, mon, 4, 8000, why, sizeof(why));
    CL_CHECK(rc == 0, "chain a<-b<-c<-d: no full mesh of 4 within 8 s: %s", why);
    printf("chain: full mesh of 4 after %" PRIu64 " ms\n", test_now_ms() - t0);
    usleep(500 * 1000);
    rc = it_cluster_wait_mesh(n, mon, 4, 0, why, sizeof(why));
    CL_CHECK(rc == 0, "mesh of 4 not stable 500 ms later: %s", why);

    /* d to a goes over the direct route, not down the chain. */
    sink_init(&sa, "ch.x", 100, NULL, 0);
    ca = sub_client(n[0].b.addr, "sub-a", "ch.x", NULL, &sa);
    pd = it_client(n[3].b.addr, "pub-d", NULL);
    probe_until(pd, "ch.x", 0, (struct sink *[]){&sa}, 1, false, PROBE_MS, "ch.x on a, from d");
    usleep(QUIESCE_US);
    ain0 = route_ctr(mon[0], "a", "d", R_IN);
    bin0 = stat_of(mon[1], "route_msgs_in");
    cin0 = stat_of(mon[2], "route_msgs_in");
    pub_range(pd, "ch.x", 0, 100, 0);
    sink_expect(&sa, 0, 100, 10000, "a, from d");
    usleep(QUIESCE_US);
    sink_expect(&sa, 0, 100, 0, "a, from d");
    CL_CHECK(route_ctr(mon[0], "a", "d", R_IN) - ain0 == 100,
             "a's route from d: msgs_in grew by %" PRIu64 ", want 100",
             route_ctr(mon[0], "a", "d", R_IN) - ain0);
    CL_CHECK(stat_of(mon[1], "route_msgs_in") == bin0 && stat_of(mon[2], "route_msgs_in") == cin0,
             "b or c received messages for a from d (relayed instead of direct)");

    it_close(pd);
    it_close(ca);
    sink_free(&sa);
    cl_stop(n, mon, 4);
}
END_TEST

/*
 * a and b seed each other; a starts first, so its dials fail and are
 * retried. Both dial: still exactly one route each, and nothing doubled.
 */
START_TEST(test_cluster_mutual_seeds_one_route)
{
    struct it_node n[2];
    rmq_client *mon[2], *cb, *ca, *pa, *pb;
    struct sink sb, sa;
    char la[64], lb[64], why[1024];
    uint16_t pa_port = it_free_port(), pb_port = it_free_port();
    uint64_t ab0;
    bool listed = false;
    int rc;

    ck_assert_uint_ne(pa_port, 0);
    ck_assert_uint_ne(pb_port, 0);
    ck_assert_uint_ne(pa_port, pb_port);
    snprintf(la, sizeof(la), "127.0.0.1:%u", pa_port);
    snprintf(lb, sizeof(lb), "127.0.0.1:%u", pb_port);
    g_ntrack = 0;
    node_start(&n[0], "a", la, lb, NULL);
    it_cur_broker = &n[0].b;
    mon[0] = it_client(n[0].b.addr, "mon-a", NULL);
    usleep(700 * 1000); /* a few failed dials */
    wait_json(mon[0], "a", 2000, &g_ci);
    for (int i = 0; i < g_ci.nroutes; i++) {
        CL_CHECK(strcmp(g_ci.r[i].state, "up") != 0, "a has a route up before b runs: %s",
                 g_ci.raw);
        listed = listed || strcmp(g_ci.r[i].addr, lb) == 0;
    }
    printf("mutual: a while b is not running: %.300s\n", g_ci.raw);
    CL_CHECK(listed, "a does not list its seed %s while re-dialling it: %s", lb, g_ci.raw);

    node_start(&n[1], "b", lb, la, NULL);
    mon[1] = it_client(n[1].b.addr, "mon-b", NULL);
    rc = it_cluster_wait_mesh(n, mon, 2, 8000, why, sizeof(why));
    CL_CHECK(rc == 0, "a and b seeding each other: not one route each within 8 s: %s", why);
    usleep(500 * 1000);
    rc = it_cluster_wait_mesh(n, mon, 2, 0, why, sizeof(why));
    CL_CHECK(rc == 0, "a and b: not stable 500 ms later: %s", why);

    sink_init(&sb, "mu.x", 200, NULL, 0);
    sink_init(&sa, "mu.y", 200, NULL, 0);
    cb = sub_client(n[1].b.addr, "sub-b", "mu.x", NULL, &sb);
    ca = sub_client(n[0].b.addr, "sub-a", "mu.y", NULL, &sa);
    pa = it_client(n[0].b.addr, "pub-a", NULL);
    pb = it_client(n[1].b.addr, "pub-b", NULL);
    probe_until(pa, "mu.x", 0, (struct sink *[]){&sb}, 1, false, PROBE_MS, "mu.x on b");
    probe_until(pb, "mu.y", 0, (struct sink *[]){&sa}, 1, false, PROBE_MS, "mu.y on a");
    usleep(QUIESCE_US);
    ab0 = stat_of(mon[0], "route_msgs_out");
    pub_range(pa, "mu.x", 0, 200, 0);
    pub_range(pb, "mu.y", 0, 200, 0);
    sink_expect(&sb, 0, 200, 10000, "b, from a");
    sink_expect(&sa, 0, 200, 10000, "a, from b");
    usleep(QUIESCE_US);
    sink_expect(&sb, 0, 200, 0, "b, from a");
    sink_expect(&sa, 0, 200, 0, "a, from b");
    CL_CHECK(stat_of(mon[0], "route_msgs_out") - ab0 == 200,
             "a: route_msgs_out grew by %" PRIu64 " for 200 messages to b",
             stat_of(mon[0], "route_msgs_out") - ab0);

    it_close(pa);
    it_close(pb);
    it_close(ca);
    it_close(cb);
    sink_free(&sa);
    sink_free(&sb);
    cl_stop(n, mon, 2);
}
END_TEST

/* ---- routing ---- */

START_TEST(test_cluster_pubsub_wildcards_exactly_once)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb, *cc, *p;
    struct sink sa, sb, sc;
    uint64_t ab0, ac0, bin0, cin0;

    cl_start(n, mon);
    sink_init(&sa, "w.x", 200, NULL, 0);
    sink_init(&sb, "w.x", 200, NULL, 0);
    sink_init(&sc, "w.x", 200, "w.x.y", 10);
    ca = sub_client(n[0].b.addr, "sub-a", "w.x", NULL, &sa);
    cb = sub_client(n[1].b.addr, "sub-b", "w.*", NULL, &sb);
    cc = sub_client(n[2].b.addr, "sub-c", "w.>", NULL, &sc);
    p = it_client(n[0].b.addr, "pub-a", NULL);
    probe_until(p, "w.probe", 0, (struct sink *[]){&sb, &sc}, 2, false, PROBE_MS,
                "w.* on b, w.> on c");
    usleep(QUIESCE_US);
    ab0 = route_ctr(mon[0], "a", "b", R_OUT);
    ac0 = route_ctr(mon[0], "a", "c", R_OUT);
    bin0 = stat_of(mon[1], "route_msgs_in");
    cin0 = stat_of(mon[2], "route_msgs_in");

    pub_range(p, "w.x", 0, 200, 0);
    sink_expect(&sa, 0, 200, 10000, "w.x on a (local)");
    sink_expect(&sb, 0, 200, 10000, "w.* on b");
    sink_expect(&sc, 0, 200, 10000, "w.> on c");
    /* Only c's pattern matches w.x.y. */
    pub_range(p, "w.x.y", 0, 10, 0);
    sink_expect(&sc, 1, 10, 10000, "w.> on c, subject w.x.y");
    usleep(QUIESCE_US); /* late duplicates, strays */
    sink_expect(&sa, 0, 200, 0, "w.x on a (local)");
    sink_expect(&sb, 0, 200, 0, "w.* on b (must not get w.x.y)");
    sink_expect(&sc, 0, 200, 0, "w.> on c");
    sink_expect(&sc, 1, 10, 0, "w.> on c, subject w.x.y");

    /* Forwarded once per interested peer, and only to interested peers. */
    {
        uint64_t ab = route_ctr(mon[0], "a", "b", R_OUT) - ab0;
        uint64_t ac = route_ctr(mon[0], "a", "c", R_OUT) - ac0;
        uint64_t bin = stat_of(mon[1], "route_msgs_in") - bin0;
        uint64_t cin = stat_of(mon[2], "route_msgs_in") - cin0;
        printf("pubsub: a->b msgs_out +%" PRIu64 ", a->c +%" PRIu64 ", b route_msgs_in +%" PRIu64
               ", c +%" PRIu64 "\n",
               ab, ac, bin, cin);
        CL_CHECK(ab == 200,
                 "a's route to b: msgs_out grew by %" PRIu64
                 ", want 200 (w.x only; w.x.y does not match b's w.*)",
                 ab);
        CL_CHECK(ac == 210, "a's route to c: msgs_out grew by %" PRIu64 ", want 210", ac);
        CL_CHECK(bin == 200, "b: route_msgs_in grew by %" PRIu64 ", want 200", bin);
        CL_CHECK(cin == 210, "c: route_msgs_in grew by %" PRIu64 ", want 210", cin);
    }
    it_close(p);
    it_close(ca);
    it_close(cb);
    it_close(cc);
    sink_free(&sa);
    sink_free(&sb);
    sink_free(&sc);
    cl_stop(n, mon, 3);
}
END_TEST

#define QN1 600
#define QN2 300
#define QTOTAL (QN1 + 2 * QN2)

START_TEST(test_cluster_queue_group_once_local_preferred)
{
    static const char *const mname[3] = {"b1", "b2", "c1"};
    struct it_node n[3];
    rmq_client *mon[3], *mc[3], *ma, *p;
    struct sink ms[3], msa;
    struct it_seq uni;
    uint64_t before[3], aout0, sum = 0;
    char bar[32];

    cl_start(n, mon);
    it_seq_init(&uni, QTOTAL);
    for (int i = 0; i < 3; i++) {
        sink_init(&ms[i], "q.m", QTOTAL, NULL, 0);
        ms[i].uni = &uni;
        mc[i] = sub_client(n[i < 2 ? 1 : 2].b.addr, mname[i], "q.>", "g", &ms[i]);
        /*
         * A plain subscription after the queue member, on the same client:
         * when its probe arrives, the member's interest (sent before it on
         * the same connection and route) has reached a too.
         */
        snprintf(bar, sizeof(bar), "qbar.%s", mname[i]);
        sub_more(mc[i], bar, NULL, &ms[i]);
    }
    p = it_client(n[0].b.addr, "pub-a", NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(bar, sizeof(bar), "qbar.%s", mname[i]);
        probe_until(p, bar, 1, (struct sink *[]){&ms[i]}, 1, false, PROBE_MS, bar);
    }
    probe_until(p, "q.probe", 2, (struct sink *[]){&ms[0], &ms[1], &ms[2]}, 3, true, PROBE_MS,
                "group g on b and c");
    usleep(QUIESCE_US);

    pub_range(p, "q.m", 0, QN1, 0);
    {
        int rc = it_wait_atomic(&uni.count, QN1, 15000);
        CL_CHECK(rc == 0, "group g: %" PRIu64 " of %d messages (first missing %" PRId64 ")",
                 (uint64_t)atomic_load(&uni.count), QN1, it_seq_first_missing(&uni, QN1));
    }
    usleep(QUIESCE_US);
    for (int i = 0; i < 3; i++) {
        sum += sink_n(&ms[i], 0);
        sink_clean(&ms[i], mname[i]);
    }
    printf("queue: %d messages from a: b1 %" PRIu64 ", b2 %" PRIu64 ", c1 %" PRIu64 "\n", QN1,
           sink_n(&ms[0], 0), sink_n(&ms[1], 0), sink_n(&ms[2], 0));
    CL_CHECK(atomic_load(&uni.dups) == 0 && sum == QN1,
             "group g: %" PRIu64 " deliveries, %" PRIu64 " distinct, %" PRIu64
             " duplicates (want each of %d exactly once)",
             sum, (uint64_t)atomic_load(&uni.count), (uint64_t)atomic_load(&uni.dups), QN1);

    /* A member on the publisher's node: it gets everything, nothing is forwarded. */
    sink_init(&msa, "q.m", QTOTAL, NULL, 0);
    msa.uni = &uni;
    ma = sub_client(n[0].b.addr, "a1", "q.>", "g", &msa);
    sub_more(ma, "qbar.a1", NULL, &msa);
    probe_until(p, "qbar.a1", 1, (struct sink *[]){&msa}, 1, false, PROBE_MS, "qbar.a1 (local)");
    usleep(QUIESCE_US);
    for (int i = 0; i < 3; i++)
        before[i] = sink_n(&ms[i], 0);
    aout0 = stat_of(mon[0], "route_msgs_out");
    pub_range(p, "q.m", QN1, QN2, 0);
    {
        int rc = it_wait_atomic(&uni.count, QN1 + QN2, 15000);
        CL_CHECK(rc == 0, "group g, second round: %" PRIu64 " of %d messages",
                 (uint64_t)atomic_load(&uni.count) - QN1, QN2);
    }
    usleep(QUIESCE_US);
    printf("queue: %d more with a member on a: a1 %" PRIu64 ", b1 +%" PRIu64 ", b2 +%" PRIu64
           ", c1 +%" PRIu64 ", a route_msgs_out +%" PRIu64 "\n",
           QN2, sink_n(&msa, 0), sink_n(&ms[0], 0) - before[0], sink_n(&ms[1], 0) - before[1],
           sink_n(&ms[2], 0) - before[2], stat_of(mon[0], "route_msgs_out") - aout0);
    CL_CHECK(atomic_load(&uni.dups) == 0, "group g: %" PRIu64 " duplicates",
             (uint64_t)atomic_load(&uni.dups));
    for (int i = 0; i < 3; i++)
        CL_CHECK(sink_n(&ms[i], 0) == before[i],
                 "member %s got %" PRIu64 " messages although the publisher's node a has a "
                 "member of g",
                 mname[i], sink_n(&ms[i], 0) - before[i]);
    CL_CHECK(sink_n(&msa, 0) == QN2, "a's member got %" PRIu64 " of %d", sink_n(&msa, 0), QN2);
    sink_clean(&msa, "a1");
    CL_CHECK(stat_of(mon[0], "route_msgs_out") == aout0,
             "a forwarded %" PRIu64 " messages although the group is served locally",
             stat_of(mon[0], "route_msgs_out") - aout0);

    /* a's member leaves: b and c serve the group again, still once each. */
    it_close(ma);
    probe_until(p, "q.probe", 3, (struct sink *[]){&ms[0], &ms[1], &ms[2]}, 3, true, PROBE_MS,
                "group g after a's member left");
    usleep(QUIESCE_US);
    pub_range(p, "q.m", QN1 + QN2, QN2, 0);
    {
        int rc = it_wait_atomic(&uni.count, QTOTAL, 15000);
        CL_CHECK(
            rc == 0,
            "group g after a's member left: %" PRIu64 " of %d messages (first missing %" PRId64 ")",
            (uint64_t)atomic_load(&uni.count) - QN1 - QN2, QN2, it_seq_first_missing(&uni, QTOTAL));
    }
    usleep(QUIESCE_US);
    CL_CHECK(atomic_load(&uni.dups) == 0, "group g: %" PRIu64 " duplicates",
             (uint64_t)atomic_load(&uni.dups));
    CL_CHECK(sink_n(&msa, 0) == QN2, "a's closed member got %" PRIu64 " more",
             sink_n(&msa, 0) - QN2);
    for (int i = 0; i < 3; i++)
        sink_clean(&ms[i], mname[i]);

    it_close(p);
    for (int i = 0; i < 3; i++) {
        it_close(mc[i]);
        sink_free(&ms[i]);
    }
    sink_free(&msa);
    it_seq_free(&uni);
    cl_stop(n, mon, 3);
}
END_TEST

static void echo_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    _Atomic uint64_t *count = arg;
    (void)sub;
    if (rmq_msg_reply(m))
        rmq_respond(c, m, rmq_msg_data(m), rmq_msg_len(m));
    (*count)++;
}

#define NREQ 20
#define NREQ_RAW 50

START_TEST(test_cluster_request_reply_across_nodes)
{
    struct it_node n[3];
    rmq_client *mon[3], *r, *q[2];
    rmq_sub *rs = NULL;
    struct sink rep;
    _Atomic uint64_t served = 0;
    int rc;

    cl_start(n, mon);
    r = it_client(n[2].b.addr, "responder-c", NULL);
    rc = rmq_subscribe(r, "svc.echo", NULL, echo_cb, (void *)&served, &rs);
    CL_CHECK(rc == 0, "subscribe svc.echo: %s", rmq_strerror(rc));
    flush_ok(r);
    q[0] = it_client(n[0].b.addr, "req-a", NULL);
    q[1] = it_client(n[1].b.addr, "req-b", NULL);

    /*
     * Warm-up: the request needs svc.echo's interest at the requester's node
     * and the inbox's interest (made by the first request) at c. Retry with
     * short timeouts until one comes back (the contract has no cluster-wide
     * flush), then every request must work.
     */
    for (int k = 0; k < 2; k++) {
        uint64_t t0 = test_now_ms();
        int tries = 0;
        for (;;) {
            rmq_msg *m = NULL;
            tries++;
            rc = rmq_request(q[k], "svc.echo", "warm", 4, 300, &m);
            rmq_msg_free(m);
            if (rc == 0)
                break;
            CL_CHECK(rc == -ETIMEDOUT, "warm-up request from %s: %s", k ? "b" : "a",
                     rmq_strerror(rc));
            CL_CHECK(test_now_ms() - t0 < PROBE_MS,
                     "no reply from c's responder to %s within %d ms (%d tries)", k ? "b" : "a",
                     PROBE_MS, tries);
        }
        printf("request: first reply to %s after %" PRIu64 " ms (%d tries)\n", k ? "b" : "a",
               test_now_ms() - t0, tries);
    }
    for (int i = 0; i < NREQ; i++) {
        for (int k = 0; k < 2; k++) {
            char body[32];
            rmq_msg *m = NULL;
            int len = snprintf(body, sizeof(body), "req-%c-%d", k ? 'b' : 'a', i);
            rc = rmq_request(q[k], "svc.echo", body, (size_t)len, 3000, &m);
            CL_CHECK(rc == 0, "request %s from %s: %s", body, k ? "b" : "a", rmq_strerror(rc));
            CL_CHECK(rmq_msg_len(m) == (size_t)len && memcmp(rmq_msg_data(m), body, len) == 0,
                     "request %s: wrong reply '%.*s'", body, (int)rmq_msg_len(m),
                     (const char *)rmq_msg_data(m));
            rmq_msg_free(m);
        }
    }

    /* Replies counted: each request answered exactly once through the routes. */
    sink_init(&rep, "rep.a.>", NREQ_RAW, NULL, 0);
    sub_more(q[0], "rep.a.>", NULL, &rep);
    probe_until(r, "rep.a.probe", 0, (struct sink *[]){&rep}, 1, false, PROBE_MS,
                "rep.a.> on a, seen from c");
    for (uint64_t i = 0; i < NREQ_RAW; i++) {
        uint8_t buf[PAYLOAD];
        char reply[32];
        snprintf(reply, sizeof(reply), "rep.a.%" PRIu64, i);
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish_msg(q[0], "svc.echo", reply, NULL, 0, buf, sizeof(buf));
        CL_CHECK(rc == 0, "publish request %" PRIu64 ": %s", i, rmq_strerror(rc));
    }
    flush_ok(q[0]);
    rc = it_wait_atomic(&rep.seq[0].count, NREQ_RAW, 10000);
    CL_CHECK(rc == 0, "%" PRIu64 " of %d replies through the routes", sink_n(&rep, 0), NREQ_RAW);
    usleep(QUIESCE_US);
    CL_CHECK(sink_n(&rep, 0) == NREQ_RAW, "%" PRIu64 " replies", sink_n(&rep, 0));
    CL_CHECK(atomic_load(&rep.seq[0].dups) == 0, "%" PRIu64 " duplicate replies",
             (uint64_t)atomic_load(&rep.seq[0].dups));
    CL_CHECK(atomic_load(&rep.seq[0].bad) == 0 && atomic_load(&rep.other) == 0,
             "corrupt or stray replies");

    it_close(q[0]);
    it_close(q[1]);
    it_close(r);
    sink_free(&rep);
    cl_stop(n, mon, 3);
}
END_TEST

START_TEST(test_cluster_no_forwarding_without_interest)
{
    struct it_node n[3];
    rmq_client *mon[3], *cb, *p;
    struct sink sb;
    uint64_t cin0, ac0, ab0, cin, ac, ab;

    cl_start(n, mon);
    sink_init(&sb, "nf.x", 100, NULL, 0);
    cb = sub_client(n[1].b.addr, "sub-b", "nf.>", NULL, &sb);
    p = it_client(n[0].b.addr, "pub-a", NULL);
    probe_until(p, "nf.probe", 0, (struct sink *[]){&sb}, 1, false, PROBE_MS, "nf.> on b");
    usleep(QUIESCE_US);
    ac0 = route_ctr(mon[0], "a", "c", R_OUT);
    ab0 = route_ctr(mon[0], "a", "b", R_OUT);
    cin0 = stat_of(mon[2], "route_msgs_in");

    pub_range(p, "nf.x", 0, 100, 0);
    sink_expect(&sb, 0, 100, 10000, "nf.> on b");
    usleep(QUIESCE_US);
    sink_expect(&sb, 0, 100, 0, "nf.> on b");
    cin = stat_of(mon[2], "route_msgs_in") - cin0;
    ac = route_ctr(mon[0], "a", "c", R_OUT) - ac0;
    ab = route_ctr(mon[0], "a", "b", R_OUT) - ab0;
    printf("no-interest: a->b +%" PRIu64 ", a->c +%" PRIu64 ", c route_msgs_in +%" PRIu64 "\n", ab,
           ac, cin);
    CL_CHECK(cin == 0, "c received %" PRIu64 " messages from routes without any interest", cin);
    CL_CHECK(ac == 0, "a sent %" PRIu64 " messages to c, which has no interest", ac);
    CL_CHECK(ab == 100, "a sent %" PRIu64 " messages to b, want 100", ab);

    it_close(p);
    it_close(cb);
    sink_free(&sb);
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * Several subscriptions and queue groups on one node matching the same
 * subject: the message crosses the route once and is fanned out there.
 */
START_TEST(test_cluster_overlapping_interest_forwarded_once)
{
    static const char *const pat[6] = {"o.*", "o.>", "o.x", "o.>", "o.>", "o.x"};
    static const char *const grp[6] = {NULL, NULL, NULL, "g2", "g2", "g3"};
    struct it_node n[3];
    rmq_client *mon[3], *c[6], *p;
    struct sink k[6];
    struct it_seq g2;
    uint64_t ab0, ac0, bin0;

    cl_start(n, mon);
    it_seq_init(&g2, 100);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "sub-b%d", i);
        sink_init(&k[i], "o.x", 100, NULL, 0);
        if (i == 3 || i == 4)
            k[i].uni = &g2;
        c[i] = sub_client(n[1].b.addr, name, pat[i], grp[i], &k[i]);
    }
    p = it_client(n[0].b.addr, "pub-a", NULL);
    probe_until(p, "o.x", 0, (struct sink *[]){&k[0], &k[1], &k[2], &k[5]}, 4, false, PROBE_MS,
                "o.*, o.>, o.x, group g3 on b");
    probe_until(p, "o.x", 1, (struct sink *[]){&k[3], &k[4]}, 2, true, PROBE_MS, "group g2 on b");
    usleep(QUIESCE_US);
    ab0 = route_ctr(mon[0], "a", "b", R_OUT);
    ac0 = route_ctr(mon[0], "a", "c", R_OUT);
    bin0 = stat_of(mon[1], "route_msgs_in");

    pub_range(p, "o.x", 0, 100, 0);
    for (int i = 0; i < 6; i++) {
        if (i == 3 || i == 4)
            continue;
        sink_expect(&k[i], 0, 100, 10000, pat[i]);
    }
    CL_CHECK(it_wait_atomic(&g2.count, 100, 10000) == 0, "group g2: %" PRIu64 " of 100",
             (uint64_t)atomic_load(&g2.count));
    usleep(QUIESCE_US);
    CL_CHECK(sink_n(&k[3], 0) + sink_n(&k[4], 0) == 100 && atomic_load(&g2.dups) == 0,
             "group g2: %" PRIu64 " + %" PRIu64 " deliveries, %" PRIu64 " duplicates",
             sink_n(&k[3], 0), sink_n(&k[4], 0), (uint64_t)atomic_load(&g2.dups));
    for (int i = 0; i < 6; i++)
        sink_clean(&k[i], pat[i]);
    {
        uint64_t ab = route_ctr(mon[0], "a", "b", R_OUT) - ab0;
        uint64_t ac = route_ctr(mon[0], "a", "c", R_OUT) - ac0;
        uint64_t bin = stat_of(mon[1], "route_msgs_in") - bin0;
        printf("overlap: a->b +%" PRIu64 ", a->c +%" PRIu64 ", b route_msgs_in +%" PRIu64 "\n", ab,
               ac, bin);
        CL_CHECK(ab == 100 && bin == 100,
                 "100 messages for 6 overlapping subscriptions on b crossed the route %" PRIu64
                 " times (b counted %" PRIu64 "), want once each",
                 ab, bin);
        CL_CHECK(ac == 0, "a sent %" PRIu64 " to c (no interest)", ac);
    }
    it_close(p);
    for (int i = 0; i < 6; i++) {
        it_close(c[i]);
        sink_free(&k[i]);
    }
    it_seq_free(&g2);
    cl_stop(n, mon, 3);
}
END_TEST

#define A2A_MSGS 3000

/* Every node publishes, every node subscribes: each stream once, in order. */
START_TEST(test_cluster_all_to_all_burst)
{
    static const char *const subj[3] = {"aa.a", "aa.b", "aa.c"};
    struct it_node n[3];
    rmq_client *mon[3], *c[3], *p[3];
    struct sink k[3];

    cl_start(n, mon);
    for (int i = 0; i < 3; i++) {
        char name[48];
        snprintf(name, sizeof(name), "sub-%s", n[i].name);
        sink_init(&k[i], subj[0], A2A_MSGS, subj[1], A2A_MSGS);
        sink_stream(&k[i], 2, subj[2], A2A_MSGS);
        c[i] = sub_client(n[i].b.addr, name, "aa.*", NULL, &k[i]);
    }
    for (int i = 0; i < 3; i++) {
        char name[48];
        snprintf(name, sizeof(name), "pub-%s", n[i].name);
        p[i] = it_client(n[i].b.addr, name, NULL);
    }
    for (int i = 0; i < 3; i++)
        probe_until(p[i], "aa.probe", i, (struct sink *[]){&k[0], &k[1], &k[2]}, 3, false, PROBE_MS,
                    subj[i]);
    usleep(QUIESCE_US);
    /* Interleaved bursts from the three nodes. */
    for (uint64_t base = 0; base < A2A_MSGS; base += 500)
        for (int i = 0; i < 3; i++)
            pub_range(p[i], subj[i], base, 500, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            char what[48];
            snprintf(what, sizeof(what), "on %s", n[i].name);
            sink_expect(&k[i], j, A2A_MSGS, 20000, what);
        }
    usleep(QUIESCE_US);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            sink_expect(&k[i], j, A2A_MSGS, 0, n[i].name);
    for (int i = 0; i < 3; i++) {
        it_close(p[i]);
        it_close(c[i]);
        sink_free(&k[i]);
    }
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * Interest goes away with the last subscription: two on b for the same
 * pattern; after one leaves, b still gets everything; after both, a
 * forwards nothing more.
 */
START_TEST(test_cluster_unsubscribe_stops_forwarding)
{
    struct it_node n[3];
    rmq_client *mon[3], *c1, *c2, *p;
    struct sink k1, k2;
    uint64_t i0, ab0, t0;

    cl_start(n, mon);
    usleep(QUIESCE_US);
    i0 = route_ctr(mon[0], "a", "b", R_INTEREST);
    sink_init(&k1, "us.x", 300, NULL, 0);
    sink_init(&k2, "us.x", 300, NULL, 0);
    c1 = sub_client(n[1].b.addr, "sub-b1", "us.>", NULL, &k1);
    c2 = sub_client(n[1].b.addr, "sub-b2", "us.>", NULL, &k2);
    p = it_client(n[0].b.addr, "pub-a", NULL);
    probe_until(p, "us.x", 0, (struct sink *[]){&k1, &k2}, 2, false, PROBE_MS, "us.> on b");
    {
        uint64_t end = test_now_ms() + 3000, i1;
        while ((i1 = route_ctr(mon[0], "a", "b", R_INTEREST)) <= i0 && test_now_ms() < end)
            usleep(20000);
        printf("unsub: a's view of b's interest %" PRIu64 " -> %" PRIu64 "\n", i0, i1);
        CL_CHECK(i1 > i0, "a's route to b: interest stayed %" PRIu64 " after b subscribed us.>",
                 i1);
    }
    usleep(QUIESCE_US);
    pub_range(p, "us.x", 0, 100, 0);
    sink_expect(&k1, 0, 100, 10000, "b1");
    sink_expect(&k2, 0, 100, 10000, "b2");

    /* One of the two leaves: the pattern is still wanted on b. */
    it_close(c1);
    usleep(500 * 1000);
    pub_range(p, "us.x", 100, 100, 0);
    {
        int rc = it_wait_atomic(&k2.seq[0].count, 200, 10000);
        CL_CHECK(rc == 0,
                 "b2 got %" PRIu64 " of 200 after b1 unsubscribed the same pattern (interest "
                 "removed while b2 still has it?)",
                 sink_n(&k2, 0));
    }
    CL_CHECK(it_seq_first_missing(&k2.seq[0], 200) < 0, "b2 lost messages after b1 left");

    /* The last one leaves: a stops forwarding us.x to b. */
    it_close(c2);
    t0 = test_now_ms();
    {
        uint64_t end = t0 + 5000, iv;
        while ((iv = route_ctr(mon[0], "a", "b", R_INTEREST)) != i0 && test_now_ms() < end)
            usleep(20000);
        CL_CHECK(iv == i0,
                 "a's route to b: interest %" PRIu64 " 5 s after b's last us.> left, was %" PRIu64
                 " before",
                 iv, i0);
    }
    printf("unsub: interest back to %" PRIu64 " after %" PRIu64 " ms\n", i0, test_now_ms() - t0);
    usleep(QUIESCE_US);
    ab0 = route_ctr(mon[0], "a", "b", R_OUT);
    pub_range(p, "us.x", 200, 100, 0);
    usleep(QUIESCE_US);
    CL_CHECK(route_ctr(mon[0], "a", "b", R_OUT) == ab0,
             "a forwarded %" PRIu64 " messages to b after b's interest went away",
             route_ctr(mon[0], "a", "b", R_OUT) - ab0);
    sink_clean(&k2, "b2");

    it_close(p);
    sink_free(&k1);
    sink_free(&k2);
    cl_stop(n, mon, 3);
}
END_TEST

/* Payloads from 8 bytes to the broker's max_payload cross routes intact. */
START_TEST(test_cluster_large_payloads)
{
    struct it_node n[3];
    rmq_client *mon[3], *cc, *pa, *pb;
    struct sink kc;
    size_t sizes[] = {8, 100, 4096, 65536, 300000, 0};
    const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
    const uint64_t per = 5, total = per * nsizes;
    uint8_t *buf;

    cl_start(n, mon);
    sink_init(&kc, "big.a", total, "big.b", total);
    cc = sub_client(n[2].b.addr, "sub-c", "big.*", NULL, &kc);
    pa = it_client(n[0].b.addr, "pub-a", NULL);
    pb = it_client(n[1].b.addr, "pub-b", NULL);
    sizes[nsizes - 1] = rmq_client_max_payload(pa);
    CL_CHECK(sizes[nsizes - 1] >= 8, "max_payload %zu", sizes[nsizes - 1]);
    buf = malloc(sizes[nsizes - 1]);
    ck_assert_ptr_nonnull(buf);
    probe_until(pa, "big.a", 0, (struct sink *[]){&kc}, 1, false, PROBE_MS, "big.* on c, from a");
    probe_until(pb, "big.b", 1, (struct sink *[]){&kc}, 1, false, PROBE_MS, "big.* on c, from b");
    for (uint64_t i = 0; i < total; i++) {
        size_t len = sizes[i / per];
        int rc;
        it_payload_fill(buf, len, i);
        rc = rmq_publish(pa, "big.a", buf, len);
        CL_CHECK(rc == 0, "publish %zu bytes: %s", len, rmq_strerror(rc));
        rc = rmq_publish(pb, "big.b", buf, len);
        CL_CHECK(rc == 0, "publish %zu bytes: %s", len, rmq_strerror(rc));
    }
    flush_ok(pa);
    flush_ok(pb);
    sink_expect(&kc, 0, total, 20000, "large payloads from a");
    sink_expect(&kc, 1, total, 20000, "large payloads from b");
    free(buf);
    it_close(pa);
    it_close(pb);
    it_close(cc);
    sink_free(&kc);
    cl_stop(n, mon, 3);
}
END_TEST

/* ---- failure ---- */

struct pubjob {
    rmq_client *c;
    const char *subj;
    uint64_t from, count;
    int pace_us;
    _Atomic uint64_t done;
    int err;
};

static void *pub_thread(void *arg)
{
    struct pubjob *j = arg;
    uint8_t buf[PAYLOAD];
    for (uint64_t i = j->from; i < j->from + j->count; i++) {
        int rc;
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish(j->c, j->subj, buf, sizeof(buf));
        if (rc && !j->err)
            j->err = rc;
        j->done++;
        usleep((useconds_t)j->pace_us);
    }
    if (!j->err)
        j->err = rmq_flush(j->c, 20000);
    return NULL;
}

#define FO_MSGS 3000

START_TEST(test_cluster_node_failure_client_failover)
{
    struct it_node n[3];
    rmq_client *mon[3], *ra, *s, *p;
    struct sink sra, ss;
    struct it_rec rec;
    struct pubjob job;
    pthread_t th;
    rmq_opts *o;
    rmq_sub *sub = NULL;
    char servers[160];
    uint64_t ra_kill, s_kill, s_rec, t_kill;
    int rc;

    cl_start(n, mon);
    sink_init(&sra, "f.x", FO_MSGS, NULL, 0);
    sink_init(&ss, "f.x", FO_MSGS, NULL, 0);
    ra = sub_client(n[0].b.addr, "sub-a", "f.x", NULL, &sra);
    it_rec_init(&rec);
    snprintf(servers, sizeof(servers), "%s,%s", n[2].b.addr, n[0].b.addr);
    o = it_opts(servers, "failover", &rec, 200);
    rc = rmq_connect(o, &s);
    rmq_opts_free(o);
    CL_CHECK(rc == 0, "connect to %s: %s", servers, rmq_strerror(rc));
    rc = rmq_subscribe(s, "f.x", NULL, sink_cb, &ss, &sub);
    CL_CHECK(rc == 0, "subscribe: %s", rmq_strerror(rc));
    flush_ok(s);
    p = it_client(n[1].b.addr, "pub-b", NULL);
    probe_until(p, "f.x", 0, (struct sink *[]){&sra, &ss}, 2, false, PROBE_MS,
                "f.x on a and c (from b)");
    usleep(QUIESCE_US);

    memset(&job, 0, sizeof(job));
    job.c = p;
    job.subj = "f.x";
    job.count = FO_MSGS;
    job.pace_us = 1000;
    ck_assert_int_eq(pthread_create(&th, NULL, pub_thread, &job), 0);
    rc = it_wait_atomic(&ss.seq[0].count, 300, 10000);
    CL_CHECK(rc == 0, "the subscriber on c got %" PRIu64 " messages before the kill",
             sink_n(&ss, 0));
    node_kill(&n[2]);
    t_kill = test_now_ms();
    ra_kill = sink_n(&sra, 0);
    s_kill = sink_n(&ss, 0);
    rc = it_rec_wait(&rec, RMQ_EV_RECONNECTED, 1, 10000);
    CL_CHECK(rc == 0, "the client of c did not fail over to a within 10 s");
    s_rec = sink_n(&ss, 0);
    printf("failover: c killed after %" PRIu64 " published; reconnected in %" PRIu64 " ms\n",
           (uint64_t)atomic_load(&job.done), test_now_ms() - t_kill);
    /* The survivors drop c and keep their route. */
    it_close(mon[2]);
    mon[2] = NULL;
    wait_pair(&n[0], mon[0], &n[1], mon[1], 5000, "after c was killed");

    pthread_join(th, NULL);
    CL_CHECK(job.err == 0, "publisher on b: %s", rmq_strerror(job.err));
    /* b -> a is untouched by c's death: everything, in order, once. */
    sink_expect(&sra, 0, FO_MSGS, 15000, "subscriber on a during c's failure");
    CL_CHECK(sink_n(&sra, 0) > ra_kill, "a's subscriber got nothing after the kill");
    /* The failed-over client gets the later messages (some around the kill may be lost). */
    {
        uint64_t end = test_now_ms() + 10000;
        while (sink_max(&ss, 0) < FO_MSGS - 1 && test_now_ms() < end)
            usleep(5000);
    }
    usleep(QUIESCE_US);
    printf("failover: client of c: %" PRIu64 " at the kill, %" PRIu64 " at the reconnect, %" PRIu64
           " in all (%" PRIu64 " lost)\n",
           s_kill, s_rec, sink_n(&ss, 0), FO_MSGS - sink_n(&ss, 0));
    CL_CHECK(sink_max(&ss, 0) == FO_MSGS - 1,
             "the failed-over client never got the last message (highest %" PRId64 ")",
             sink_max(&ss, 0));
    CL_CHECK(sink_n(&ss, 0) > s_rec, "the failed-over client got nothing after the reconnect");
    for (uint64_t i = FO_MSGS - 100; i < FO_MSGS; i++) {
        bool seen;
        pthread_mutex_lock(&ss.seq[0].mu);
        seen = ss.seq[0].seen[i] != 0;
        pthread_mutex_unlock(&ss.seq[0].mu);
        CL_CHECK(seen,
                 "the failed-over client lost message %" PRIu64 " (published well after "
                 "the reconnect)",
                 i);
    }
    sink_clean(&ss, "failed-over client");

    it_close(p);
    it_close(s);
    it_close(ra);
    sink_free(&sra);
    sink_free(&ss);
    cl_stop(n, mon, 3);
}
END_TEST

#define NMANY 300

START_TEST(test_cluster_restart_rejoins_and_resyncs)
{
    struct it_node n[3];
    rmq_client *mon[3], *sa, *sb, *scl, *pa, *pb, *pc;
    struct sink ka, kb, kc;
    char why[1024];
    uint64_t t0;
    int rc;

    cl_start(n, mon);
    /* Interest made before c goes away; c must learn it again when it returns. */
    sink_init(&ka, "rc.x", 100, NULL, 0);
    sink_init(&kb, "rc.x", 100, NULL, 0);
    sink_stream(&ka, 1, "many.>", NMANY);
    sa = sub_client(n[0].b.addr, "sub-a", "rc.x", NULL, &ka);
    for (int i = 0; i < NMANY; i++) {
        char subj[32];
        rmq_sub *ms = NULL;
        snprintf(subj, sizeof(subj), "many.%d", i);
        rc = rmq_subscribe(sa, subj, NULL, sink_cb, &ka, &ms);
        CL_CHECK(rc == 0, "subscribe %s: %s", subj, rmq_strerror(rc));
    }
    flush_ok(sa);
    sb = sub_client(n[1].b.addr, "sub-b", "rc.x", NULL, &kb);

    node_kill(&n[2]);
    it_close(mon[2]);
    mon[2] = NULL;
    wait_pair(&n[0], mon[0], &n[1], mon[1], 5000, "after c was killed");
    it_cluster_info(mon[0], &g_ci);
    printf("restart: a while c is down: %.400s\n", g_ci.raw);

    t0 = test_now_ms();
    rc = it_node_restart(&n[2]);
    CL_CHECK(rc == 0, "c did not restart on client port %u, cluster %s", n[2].b.port, n[2].caddr);
    mon[2] = it_client(n[2].b.addr, "mon-c", NULL);
    rc = it_cluster_wait_mesh(n, mon, 3, 15000, why, sizeof(why));
    CL_CHECK(rc == 0, "no full mesh within 15 s of c's restart: %s", why);
    printf("restart: full mesh %" PRIu64 " ms after the restart\n", test_now_ms() - t0);

    sink_init(&kc, "r.a", 200, "r.b", 200);
    scl = sub_client(n[2].b.addr, "sub-c", "r.*", NULL, &kc);
    pa = it_client(n[0].b.addr, "pub-a", NULL);
    pb = it_client(n[1].b.addr, "pub-b", NULL);
    pc = it_client(n[2].b.addr, "pub-c", NULL);
    probe_until(pa, "r.pa", 0, (struct sink *[]){&kc}, 1, false, PROBE_MS, "r.* on c, from a");
    probe_until(pb, "r.pb", 1, (struct sink *[]){&kc}, 1, false, PROBE_MS, "r.* on c, from b");
    probe_until(pc, "rc.x", 2, (struct sink *[]){&ka, &kb}, 2, false, PROBE_MS,
                "rc.x on a and b (made before the restart), from c");
    {
        /* The bulk of a's interest reached the restarted c (interest counts patterns). */
        uint64_t end = test_now_ms() + PROBE_MS, iv;
        while ((iv = route_ctr(mon[2], "c", "a", R_INTEREST)) < NMANY && test_now_ms() < end)
            usleep(20000);
        CL_CHECK(iv >= NMANY, "c's route to a: interest %" PRIu64 ", a has %d+ subscriptions", iv,
                 NMANY);
    }
    usleep(QUIESCE_US);

    for (int i = 0; i < NMANY; i++) {
        uint8_t buf[PAYLOAD];
        char subj[32];
        snprintf(subj, sizeof(subj), "many.%d", i);
        it_payload_fill(buf, sizeof(buf), (uint64_t)i);
        rc = rmq_publish(pc, subj, buf, sizeof(buf));
        CL_CHECK(rc == 0, "publish %s: %s", subj, rmq_strerror(rc));
    }
    flush_ok(pc);
    sink_expect(&ka, 1, NMANY, 10000, "a's many.N subscriptions, from the restarted c");
    pub_range(pa, "r.a", 0, 200, 0);
    pub_range(pb, "r.b", 0, 200, 0);
    pub_range(pc, "rc.x", 0, 100, 0);
    sink_expect(&kc, 0, 200, 10000, "c after the restart, from a");
    sink_expect(&kc, 1, 200, 10000, "c after the restart, from b");
    sink_expect(&ka, 0, 100, 10000, "a, from the restarted c");
    sink_expect(&kb, 0, 100, 10000, "b, from the restarted c");
    usleep(QUIESCE_US);
    sink_expect(&kc, 0, 200, 0, "c after the restart, from a");
    sink_expect(&kc, 1, 200, 0, "c after the restart, from b");
    sink_expect(&ka, 0, 100, 0, "a, from the restarted c");
    sink_expect(&kb, 0, 100, 0, "b, from the restarted c");

    it_close(pa);
    it_close(pb);
    it_close(pc);
    it_close(sa);
    it_close(sb);
    it_close(scl);
    sink_free(&ka);
    sink_free(&kb);
    sink_free(&kc);
    cl_stop(n, mon, 3);
}
END_TEST

/* ---- refuse ---- */

/* The port of a node's --cluster-listen address. */
static uint16_t caddr_port(const struct it_node *n)
{
    const char *c = strrchr(n->caddr, ':');
    return c ? (uint16_t)atoi(c + 1) : 0;
}

static int route_hello(int fd, const char *node)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__RouteConnect rc = RINGMQ__ROUTE_CONNECT__INIT;
    rc.version = 1;
    rc.cluster = "ringmq";
    rc.node = (char *)node;
    f.kind_case = RINGMQ__FRAME__KIND_ROUTE_CONNECT;
    f.route_connect = &rc;
    return it_raw_send_frame(fd, &f);
}

/* Bad input on the route port: a route frame before ROUTE_CONNECT, a
 * body that is not protobuf, a malformed ROUTE_MSG, a client frame after
 * a valid handshake and a malformed ROUTE_FLOW each close that connection
 * and nothing else (bad relayed SUBSCRIBEs only get an ERROR): the mesh
 * stays up and messages still cross it. */
START_TEST(test_cluster_bad_route_frames)
{
    struct it_node n[3];
    rmq_client *mon[3], *pa, *sb;
    rmq_sub *s;
    rmq_msg *m = NULL;
    char why[1024];
    uint16_t port;
    uint64_t end;
    int fd, rc;

    cl_start(n, mon);
    port = caddr_port(&n[0]);
    ck_assert_uint_gt(port, 0);
    {
        /* A RouteMsg before RouteConnect. */
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        Ringmq__RouteMsg rm = RINGMQ__ROUTE_MSG__INIT;
        rm.subject = "bad.early";
        f.kind_case = RINGMQ__FRAME__KIND_ROUTE_MSG;
        f.route_msg = &rm;
        fd = raw_connect(port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        CL_CHECK(raw_wait_eof(fd, 3000) == 0, "a RouteMsg before RouteConnect: not closed");
        close(fd);
    }
    {
        /* A frame body that is not protobuf. */
        static const uint8_t junk[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
        fd = raw_connect(port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(raw_send(fd, junk, sizeof(junk)), 0);
        CL_CHECK(raw_wait_eof(fd, 3000) == 0, "a junk route frame: not closed");
        close(fd);
    }
    {
        /* A valid handshake, then a RouteMsg with an invalid subject. */
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        Ringmq__RouteMsg rm = RINGMQ__ROUTE_MSG__INIT;
        rm.subject = "bad subject";
        f.kind_case = RINGMQ__FRAME__KIND_ROUTE_MSG;
        f.route_msg = &rm;
        fd = raw_connect(port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(route_hello(fd, "evil1"), 0);
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        CL_CHECK(raw_wait_eof(fd, 3000) == 0, "a RouteMsg with a bad subject: not closed");
        close(fd);
    }
    {
        /* A valid handshake, then a client PUBLISH on the route. */
        fd = raw_connect(port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(route_hello(fd, "evil2"), 0);
        ck_assert_int_eq(it_raw_pub(fd, "bad.pub", NULL, "x", 1), 0);
        CL_CHECK(raw_wait_eof(fd, 3000) == 0, "a PUBLISH on a route: not closed");
        close(fd);
    }
    {
        /* Relayed-subscription frames (rproxy.h): a malformed MESSAGE (no
         * subject) and ERROR (not protobuf) are dropped, the route stays;
         * a SUBSCRIBE without a topic, and one for a topic a does not
         * store, get ERROR{sid}; a MESSAGE and a ROUTE_FLOW for ids nobody
         * uses are ignored; then a malformed ROUTE_FLOW closes the route. */
        static const uint8_t badflow[] = {0, 0, 0, 4, 0xa2, 0x02, 0x01, 0xff};
        static const uint8_t badmsg[] = {0, 0, 0, 4, 0x32, 0x02, 0x28, 0x63};
        static const uint8_t baderr[] = {0, 0, 0, 3, 0x4a, 0x01, 0xff};
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
        Ringmq__Message msg = RINGMQ__MESSAGE__INIT;
        Ringmq__RouteFlow fl = RINGMQ__ROUTE_FLOW__INIT;
        struct it_raw_seen seen;
        memset(&seen, 0, sizeof(seen));
        fd = raw_connect(port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(route_hello(fd, "evil3"), 0);
        ck_assert_int_eq(raw_send(fd, badmsg, sizeof(badmsg)), 0);
        ck_assert_int_eq(raw_send(fd, baderr, sizeof(baderr)), 0);
        f.kind_case = RINGMQ__FRAME__KIND_SUB;
        f.sub = &sub;
        sub.sid = 7;
        sub.pattern = "x.>";
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        sub.sid = 8;
        sub.pattern = ">";
        sub.topic = "NOPE";
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        f.kind_case = RINGMQ__FRAME__KIND_MSG;
        f.msg = &msg;
        msg.subject = "y";
        msg.sid = 99;
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        f.kind_case = RINGMQ__FRAME__KIND_ROUTE_FLOW;
        f.route_flow = &fl;
        fl.sid = 98;
        fl.has_pause = fl.pause = true;
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        usleep(300 * 1000); /* the answers go out before the close below */
        ck_assert_int_eq(raw_send(fd, badflow, sizeof(badflow)), 0);
        rc = it_raw_read_to_eof(fd, 3000, &seen);
        CL_CHECK(rc == 0, "a malformed ROUTE_FLOW: not closed (%d)", rc);
        CL_CHECK(seen.errs == 2 && seen.err_sid[0] == 7 &&
                     seen.err_code[0] == RINGMQ__ERROR_CODE__ERR_INVALID && seen.err_sid[1] == 8 &&
                     seen.err_code[1] == RINGMQ__ERROR_CODE__ERR_NO_TOPIC && !seen.err_fatal[0] &&
                     !seen.err_fatal[1],
                 "route SUBSCRIBE errors: %d, first sid %" PRIu64 " code %d '%s'", seen.errs,
                 seen.err_sid[0], seen.err_code[0], seen.err_text[0]);
        close(fd);
    }
    rc = it_cluster_wait_mesh(n, mon, 3, 10000, why, sizeof(why));
    CL_CHECK(rc == 0, "the mesh after bad route frames: %s", why);
    pa = it_client(n[0].b.addr, "pub-a", NULL);
    sb = it_client(n[1].b.addr, "sub-b", NULL);
    ck_assert_int_eq(rmq_subscribe_sync(sb, "bad.ok", NULL, &s), 0);
    flush_ok(sb);
    end = test_now_ms() + 5000;
    do {
        ck_assert_int_eq(rmq_publish(pa, "bad.ok", "y", 1), 0);
        rc = rmq_sub_next(s, 100, &m);
    } while (rc == -ETIMEDOUT && test_now_ms() < end);
    CL_CHECK(rc == 0, "a -> b after bad route frames: %s", rmq_strerror(rc));
    rmq_msg_free(m);
    rmq_unsubscribe(s);
    it_close(sb);
    it_close(pa);
    cl_stop(n, mon, 3);
}
END_TEST

/* A node that must never have a route up: none at all on it, none to it on a. */
static void never_up(rmq_client *amon, rmq_client **dmon, struct it_node *d, int nd, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    do {
        it_cluster_info(amon, &g_ci);
        for (int i = 0; i < nd; i++)
            CL_CHECK(it_cluster_nup_to(&g_ci, d[i].name) == 0,
                     "a accepted a route from %s (wrong cluster name or secret): %.600s", d[i].name,
                     g_ci.raw);
        for (int i = 0; i < nd; i++) {
            it_cluster_info(dmon[i], &g_ci);
            CL_CHECK(it_cluster_nup(&g_ci) == 0, "%s has a route up: %.600s", d[i].name, g_ci.raw);
        }
        usleep(50000);
    } while (test_now_ms() < end);
}

START_TEST(test_cluster_refuses_wrong_name_or_secret)
{
    static const char *const dn[3] = {"d1", "d2", "d3"};
    const char *const *const dargs[3] = {
        IT_ARGS("--cluster-name", "c2", "--cluster-secret", "s1"),    /* other cluster */
        IT_ARGS("--cluster-name", "c1", "--cluster-secret", "wrong"), /* bad secret */
        IT_ARGS("--cluster-name", "c1"),                              /* no secret */
    };
    struct it_node a, d[3], e;
    rmq_client *amon, *dmon[3], *emon, *dc[3], *la, *pa;
    struct sink ds[3], ls;
    uint64_t t0;

    g_ntrack = 0;
    node_start(&a, "a", NULL, NULL, IT_ARGS("--cluster-name", "c1", "--cluster-secret", "s1"));
    it_cur_broker = &a.b;
    amon = it_client(a.b.addr, "mon-a", NULL);
    wait_json(amon, "a", 2000, &g_ci);
    for (int i = 0; i < 3; i++) {
        char name[16];
        node_start(&d[i], dn[i], NULL, a.caddr, dargs[i]);
        snprintf(name, sizeof(name), "mon-%s", dn[i]);
        dmon[i] = it_client(d[i].b.addr, name, NULL);
        wait_json(dmon[i], dn[i], 2000, &g_ci);
        sink_init(&ds[i], "mm.x", 10, NULL, 0);
        dc[i] = sub_client(d[i].b.addr, dn[i], "mm.>", NULL, &ds[i]);
    }
    never_up(amon, dmon, d, 3, 1500);

    /* a keeps working, and publishes reach no refused node. */
    sink_init(&ls, "mm.x", 10, NULL, 0);
    la = sub_client(a.b.addr, "sub-a", "mm.x", NULL, &ls);
    pa = it_client(a.b.addr, "pub-a", NULL);
    pub_range(pa, "mm.x", 0, 10, 0);
    sink_expect(&ls, 0, 10, 5000, "local subscriber on a");
    usleep(QUIESCE_US);
    for (int i = 0; i < 3; i++)
        CL_CHECK(sink_n(&ds[i], 0) == 0 && atomic_load(&ds[i].probes[0]) == 0,
                 "refused node %s got %" PRIu64 " messages from a", dn[i], sink_n(&ds[i], 0));

    /* Control: the right name and secret are accepted. */
    t0 = test_now_ms();
    node_start(&e, "e", NULL, a.caddr, IT_ARGS("--cluster-name", "c1", "--cluster-secret", "s1"));
    emon = it_client(e.b.addr, "mon-e", NULL);
    {
        struct it_node pair[2] = {a, e};
        rmq_client *mons[2] = {amon, emon};
        char why[1024];
        int rc = it_cluster_wait_mesh(pair, mons, 2, 5000, why, sizeof(why));
        CL_CHECK(rc == 0, "e (same name and secret) not routed with a within 5 s: %s", why);
    }
    printf("refuse: e joined in %" PRIu64 " ms\n", test_now_ms() - t0);
    it_cluster_info(emon, &g_ci);
    CL_CHECK(strcmp(g_ci.cluster, "c1") == 0, "e: cluster '%s', want c1", g_ci.cluster);
    never_up(amon, dmon, d, 3, 500);

    it_close(pa);
    it_close(la);
    it_close(amon);
    it_close(emon);
    for (int i = 0; i < 3; i++) {
        it_close(dc[i]);
        it_close(dmon[i]);
        sink_free(&ds[i]);
    }
    sink_free(&ls);
    node_stop(&e);
    for (int i = 0; i < 3; i++)
        node_stop(&d[i]);
    node_stop(&a);
    g_ntrack = 0;
    it_cur_broker = NULL;
}
END_TEST

/* ---- netns ---- */

#define NS_SUBNET "10.251.0"
#define NS_CPORT "7601"

struct netns {
    char ns[2][64];
    char veth[2][16];
    int root_fd;
    int janitor_fd; /* write end: closing it (exit included) makes the janitor clean up */
    pid_t janitor;
};

/* Run a shell command; its exit status (127: no shell/ip). */
static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    int st;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    st = system(cmd);
    if (st == -1)
        return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void ns_del(const struct netns *x)
{
    for (int i = 0; i < 2; i++)
        sh("ip netns del %s >/dev/null 2>&1", x->ns[i]);
    sh("ip link del %s >/dev/null 2>&1", x->veth[0]);
}

/* Namespaces of earlier runs whose process is gone (a timed-out test, say). */
static void ns_reap_stale(void)
{
    DIR *dir = opendir("/run/netns");
    struct dirent *e;
    if (!dir)
        return;
    while ((e = readdir(dir))) {
        int pid;
        char tail[8];
        if (sscanf(e->d_name, "ringmq-test-%d-%7s", &pid, tail) == 2 && pid > 0 &&
            kill(pid, 0) != 0 && errno == ESRCH)
            sh("ip netns del %s >/dev/null 2>&1", e->d_name);
    }
    closedir(dir);
}

/*
 * A process outside Check's process group that waits for our end of a pipe
 * to close (also when this test process dies on a failed assertion or is
 * killed at its timeout) and then deletes the namespaces.
 */
static void ns_janitor(struct netns *x)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    x->janitor = fork();
    ck_assert_int_ge(x->janitor, 0);
    if (x->janitor == 0) {
        char b;
        setpgid(0, 0);
        close(p[1]);
        while (read(p[0], &b, 1) != 0 && errno == EINTR)
            ;
        for (int i = 0; i < 2; i++) {
            char cmd[128];
            snprintf(cmd, sizeof(cmd), "ip netns del %s >/dev/null 2>&1", x->ns[i]);
            if (system(cmd) == -1)
                break;
        }
        _exit(0);
    }
    close(p[0]);
    x->janitor_fd = p[1];
}

/* Create the namespaces and the veth pair; false (and printed why) when not possible here. */
static bool ns_setup(struct netns *x)
{
    int pid = (int)getpid(), st;
    memset(x, 0, sizeof(*x));
    x->janitor_fd = -1;
    snprintf(x->ns[0], sizeof(x->ns[0]), "ringmq-test-%d-a", pid);
    snprintf(x->ns[1], sizeof(x->ns[1]), "ringmq-test-%d-b", pid);
    snprintf(x->veth[0], sizeof(x->veth[0]), "rmq%da", pid % 100000);
    snprintf(x->veth[1], sizeof(x->veth[1]), "rmq%db", pid % 100000);
    if (geteuid() != 0) {
        printf("netns: skipped: not root\n");
        return false;
    }
    ns_reap_stale();
    st = sh("ip netns add %s >/dev/null 2>&1", x->ns[0]);
    if (st != 0) {
        printf("netns: skipped: 'ip netns add' failed (status %d; needs ip and CAP_SYS_ADMIN)\n",
               st);
        return false;
    }
    ns_janitor(x);
    x->root_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(x->root_fd, 0);
    st = sh("ip netns add %s", x->ns[1]);
    st = st ? st : sh("ip link add %s type veth peer name %s", x->veth[0], x->veth[1]);
    st = st ? st : sh("ip link set %s netns %s", x->veth[0], x->ns[0]);
    st = st ? st : sh("ip link set %s netns %s", x->veth[1], x->ns[1]);
    st = st ? st : sh("ip -n %s addr add " NS_SUBNET ".1/24 dev %s", x->ns[0], x->veth[0]);
    st = st ? st : sh("ip -n %s addr add " NS_SUBNET ".2/24 dev %s", x->ns[1], x->veth[1]);
    for (int i = 0; i < 2 && !st; i++) {
        st = sh("ip -n %s link set lo up", x->ns[i]);
        st = st ? st : sh("ip -n %s link set %s up", x->ns[i], x->veth[i]);
    }
    if (st != 0) {
        printf("netns: skipped: veth setup failed (status %d)\n", st);
        ns_del(x);
        close(x->janitor_fd);
        waitpid(x->janitor, NULL, 0);
        close(x->root_fd);
        return false;
    }
    return true;
}

/* A durable topic owned by node a, reached from b and c: acked publishes
 * are stored on a (one seq per topic, dedup across nodes), subscribers on
 * other nodes get the stored messages; while a is down an acked publish
 * gets RMQ_EUNAVAIL at once, never a silent drop; after a restart it works
 * again and the seqs go on. */
START_TEST(test_cluster_durable_topic_on_remote_owner)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb, *cc;
    const char *subj[] = {"dur.>"};
    rmq_topic_cfg cfg = {.name = "DUR", .subjects = subj, .nsubjects = 1};
    rmq_topic_info ti;
    rmq_pub_ack ack;
    rmq_sub *sb;
    rmq_msg *m;
    char why[1024];
    uint64_t t0, end;
    int rc;

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "pub-b", NULL);
    cc = it_client(n[2].b.addr, "pub-c", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    /* The topic list reaches b and c asynchronously: retry the first one. */
    end = test_now_ms() + 5000;
    do {
        rc = rmq_publish_ack(cb, "dur.x", "b-1", 3, "id-b-1", 2000, &ack);
        if (rc)
            usleep(50 * 1000);
    } while (rc && test_now_ms() < end);
    CL_CHECK(rc == 0, "publish_ack from b to a's topic: %s", rmq_strerror(rc));
    ck_assert_str_eq(ack.topic, "DUR");
    ck_assert_uint_eq(ack.seq, 1);
    ck_assert_int_eq(rmq_subscribe_sync(cb, "dur.>", NULL, &sb), 0);
    flush_ok(cb);
    usleep(300 * 1000); /* b's interest reaches a */
    for (uint64_t i = 2; i <= 20; i++) {
        char pl[16];
        rmq_client *who = i % 2 ? cb : cc;
        snprintf(pl, sizeof(pl), "m-%" PRIu64, i);
        end = test_now_ms() + 5000;
        do
            rc = rmq_publish_ack(who, "dur.y", pl, strlen(pl), NULL, 2000, &ack);
        while (rc == RMQ_ENOTFOUND && test_now_ms() < end && usleep(50 * 1000) == 0);
        CL_CHECK(rc == 0 && ack.seq == i, "publish %" PRIu64 " from %s: %s, seq %" PRIu64, i,
                 who == cb ? "b" : "c", rmq_strerror(rc), ack.seq);
    }
    /* Another node will not add a topic of that name or with those subjects. */
    {
        const char *over[] = {"other.>", "dur.y"};
        rmq_topic_cfg same = {.name = "DUR", .subjects = over, .nsubjects = 1};
        rmq_topic_cfg clash = {.name = "DUR2", .subjects = over, .nsubjects = 2};
        rc = rmq_topic_add(cc, &same, 5000, NULL);
        CL_CHECK(rc == -EEXIST, "topic add of a's topic name on c: %s (want -EEXIST)",
                 rmq_strerror(rc));
        rc = rmq_topic_add(cb, &clash, 5000, NULL);
        CL_CHECK(rc == -EEXIST, "topic add on b with a subject of a's topic: %s (want -EEXIST)",
                 rmq_strerror(rc));
    }
    /* A re-send with the same id, from another node, is a duplicate. */
    ck_assert_int_eq(rmq_publish_ack(cc, "dur.x", "b-1", 3, "id-b-1", 2000, &ack), 0);
    ck_assert(ack.duplicate);
    ck_assert_uint_eq(ack.seq, 1);
    ck_assert_int_eq(rmq_topic_info_get(ca, "DUR", 5000, &ti), 0);
    ck_assert_uint_eq(ti.msgs, 20);
    ck_assert_uint_eq(ti.last_seq, 20);
    /* topic ls on another node lists the topic with its node. */
    {
        rmq_topic_info *tl = NULL;
        size_t nt = 0;
        rc = rmq_topic_list(cc, 5000, &tl, &nt);
        CL_CHECK(rc == 0 && nt == 1 && strcmp(tl[0].name, "DUR") == 0 &&
                     strcmp(tl[0].node, "a") == 0 && !tl[0].node_down && tl[0].nsubjects == 1 &&
                     strcmp(tl[0].subjects[0], "dur.>") == 0,
                 "topic ls on c: %s, %zu topics, first '%s' on '%s'", rmq_strerror(rc), nt,
                 nt ? tl[0].name : "", nt ? tl[0].node : "");
        free(tl);
        rc = rmq_topic_list(ca, 5000, &tl, &nt);
        CL_CHECK(rc == 0 && nt == 1 && tl[0].node[0] == '\0' && tl[0].msgs == 20,
                 "topic ls on a: %s, %zu topics", rmq_strerror(rc), nt);
        free(tl);
    }
    /* Admin about the topic from another node is answered by its owner. */
    memset(&ti, 0, sizeof(ti));
    rc = rmq_topic_info_get(cc, "DUR", 5000, &ti);
    CL_CHECK(rc == 0 && ti.msgs == 20 && ti.last_seq == 20, "topic info from c: %s, msgs %" PRIu64,
             rmq_strerror(rc), ti.msgs);
    /* b's live subscriber got the stored messages 2..20 with their seqs. */
    for (uint64_t i = 2; i <= 20; i++) {
        rc = rmq_sub_next(sb, 5000, &m);
        CL_CHECK(rc == 0, "live message %" PRIu64 " on b: %s", i, rmq_strerror(rc));
        ck_assert_uint_eq(rmq_msg_seq(m), i);
        rmq_msg_free(m);
    }

    /* The owner goes away: acked publishes on b fail at once, clearly. */
    it_close(ca);
    it_close(mon[0]);
    mon[0] = NULL;
    node_kill(&n[0]);
    wait_pair(&n[1], mon[1], &n[2], mon[2], 8000, "after a was killed");
    t0 = test_now_ms();
    rc = rmq_publish_ack(cb, "dur.x", "lost?", 5, NULL, 3000, &ack);
    CL_CHECK(rc == RMQ_EUNAVAIL, "publish_ack while the owner is down: %s (want RMQ_EUNAVAIL)",
             rmq_strerror(rc));
    CL_CHECK(test_now_ms() - t0 < 1000, "the unavailable answer took %" PRIu64 " ms",
             test_now_ms() - t0);
    rc = rmq_topic_info_get(cb, "DUR", 3000, &ti);
    CL_CHECK(rc == RMQ_EUNAVAIL, "topic info while the owner is down: %s (want RMQ_EUNAVAIL)",
             rmq_strerror(rc));
    {
        rmq_topic_info *tl = NULL;
        size_t nt = 0;
        rc = rmq_topic_list(cb, 5000, &tl, &nt);
        CL_CHECK(rc == 0 && nt == 1 && strcmp(tl[0].node, "a") == 0 && tl[0].node_down,
                 "topic ls on b while a is down: %s, %zu topics, down %d", rmq_strerror(rc), nt,
                 nt ? tl[0].node_down : -1);
        free(tl);
    }

    /* Back: the mesh comes back, publishes go on with seq 21. */
    rc = it_node_restart(&n[0]);
    CL_CHECK(rc == 0, "a did not restart");
    mon[0] = it_client(n[0].b.addr, "mon-a", NULL);
    rc = it_cluster_wait_mesh(n, mon, 3, 15000, why, sizeof(why));
    CL_CHECK(rc == 0, "no full mesh after a's restart: %s", why);
    end = test_now_ms() + 5000;
    do {
        rc = rmq_publish_ack(cc, "dur.z", "back", 4, NULL, 2000, &ack);
        if (rc)
            usleep(50 * 1000);
    } while (rc && test_now_ms() < end);
    CL_CHECK(rc == 0 && ack.seq == 21, "publish after a's restart: %s, seq %" PRIu64,
             rmq_strerror(rc), ack.seq);
    rmq_unsubscribe(sb);
    it_close(cb);
    it_close(cc);
    cl_stop(n, mon, 3);
}
END_TEST

/* Acked publishes of "m-<i>" on subj for i in [from, to], from c (which
 * may have to learn first that another node owns the topic). */
static void pub_acked(rmq_client *c, const char *subj, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i <= to; i++) {
        char pl[32];
        rmq_pub_ack ack;
        uint64_t end = test_now_ms() + 5000;
        int rc;
        snprintf(pl, sizeof(pl), "m-%" PRIu64, i);
        do
            rc = rmq_publish_ack(c, subj, pl, strlen(pl), NULL, 2000, &ack);
        while (rc == RMQ_ENOTFOUND && test_now_ms() < end && usleep(50 * 1000) == 0);
        CL_CHECK(rc == 0 && ack.seq == i, "acked publish %" PRIu64 " on %s: %s, seq %" PRIu64, i,
                 subj, rmq_strerror(rc), ack.seq);
    }
}

/* Read want messages from sb: seqs first..first+want-1 in order, payload
 * "m-<seq>", subjects matching pat; each acked when ack. */
static void read_seqs(rmq_client *c, rmq_sub *sb, uint64_t first, uint64_t want, const char *pat,
                      bool ack, const char *what)
{
    for (uint64_t i = 0; i < want; i++) {
        rmq_msg *m;
        char pl[32];
        int rc = rmq_sub_next(sb, 10000, &m);
        CL_CHECK(rc == 0, "%s: message %" PRIu64 " of %" PRIu64 ": %s", what, i + 1, want,
                 rmq_strerror(rc));
        snprintf(pl, sizeof(pl), "m-%" PRIu64, first + i);
        CL_CHECK(rmq_msg_seq(m) == first + i && rmq_msg_len(m) == strlen(pl) &&
                     memcmp(rmq_msg_data(m), pl, strlen(pl)) == 0 &&
                     subj_match(pat, rmq_msg_subject(m)),
                 "%s: got seq %" PRIu64 " '%.*s' on %s, want seq %" PRIu64 " '%s' on %s", what,
                 rmq_msg_seq(m), (int)rmq_msg_len(m), (const char *)rmq_msg_data(m),
                 rmq_msg_subject(m), first + i, pl, pat);
        if (ack)
            CL_CHECK(rmq_ack(c, m) == 0, "%s: ack of seq %" PRIu64, what, first + i);
        rmq_msg_free(m);
    }
}

/* What rmq_sub_next() says within ms (a message is dropped). */
static int sub_next_rc(rmq_sub *sb, int ms)
{
    rmq_msg *m = NULL;
    int rc = rmq_sub_next(sb, ms, &m);
    if (rc == 0)
        rmq_msg_free(m);
    return rc;
}

/* Nothing more on sb for ms. */
static void read_none(rmq_sub *sb, int ms, const char *what)
{
    rmq_msg *m = NULL;
    int rc = rmq_sub_next(sb, ms, &m);
    CL_CHECK(rc == -ETIMEDOUT, "%s: want nothing more, got %s (seq %" PRIu64 ")", what,
             rmq_strerror(rc), rc == 0 ? rmq_msg_seq(m) : 0);
}

/*
 * A topic owned by node a, used from b and c, which store nothing: a
 * replay from b (all, then live, from a seq, with a pattern), a durable
 * consumer on c (deliveries, acks forwarded to a, no redelivery after the
 * acks), the owner's view (ack floor, consumer bound from c), and what
 * happens when the owner dies: every proxied subscription ends with
 * UNAVAILABLE, a new one is refused at once, and after a's restart a
 * replay from b resumes where it left off.
 */
START_TEST(test_cluster_remote_topic_replay_and_consumer)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb, *cc;
    const char *subj[] = {"rt.>"};
    rmq_topic_cfg cfg = {.name = "RT", .subjects = subj, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL}, from = {.start = RMQ_START_SEQ, .seq = 150};
    rmq_consumer_opts co = {.max_inflight = 64, .ack_wait_ms = 800};
    rmq_consumer_info *ci = NULL;
    size_t nci = 0;
    rmq_sub *sall, *sodd, *scons, *sdown;
    char why[1024];
    uint64_t t0;
    int rc;

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "rep-b", NULL);
    cc = it_client(n[2].b.addr, "con-c", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    /* 1..200 from b itself (b learns the topic's owner on the way), so
     * b's shard knows the topic is a's before it subscribes. */
    pub_acked(cb, "rt.even", 1, 1);
    pub_acked(cb, "rt.odd", 2, 200);

    ck_assert_int_eq(rmq_subscribe_topic(cb, "RT", "rt.>", &all, NULL, NULL, &sall), 0);
    read_seqs(cb, sall, 1, 200, "rt.>", false, "replay from b");
    ck_assert_int_eq(rmq_subscribe_topic(cb, "RT", "rt.odd", &from, NULL, NULL, &sodd), 0);
    read_seqs(cb, sodd, 150, 51, "rt.odd", false, "replay from seq 150 on b, rt.odd");
    ck_assert_uint_eq(it_stat(mon[1], "remote_topic_subs"), 2);
    /* Live: published on a and on c, delivered through the proxy in order. */
    pub_acked(ca, "rt.odd", 201, 210);
    pub_acked(cc, "rt.odd", 211, 220);
    read_seqs(cb, sall, 201, 20, "rt.>", false, "live on b");
    read_seqs(cb, sodd, 201, 20, "rt.odd", false, "live on b, rt.odd");
    /* A pattern that matches nothing stored gets nothing. */
    read_none(sodd, 300, "rt.odd after 220");

    /* A durable consumer on c: every message once, acks go to a. */
    rc = rmq_consume(cc, "RT", "work", &co, NULL, NULL, &scons);
    CL_CHECK(rc == 0, "consume from c: %s", rmq_strerror(rc));
    read_seqs(cc, scons, 1, 220, "rt.>", true, "consumer on c");
    flush_ok(cc);
    read_none(scons, 1500, "consumer on c after acking all (ack_wait 800 ms)");
    rc = rmq_consumer_list(ca, "RT", 5000, &ci, &nci);
    CL_CHECK(rc == 0 && nci == 1, "consumer list on a: %s, %zu", rmq_strerror(rc), nci);
    CL_CHECK(ci[0].ack_floor == 220 && ci[0].inflight == 0 && ci[0].members == 1 &&
                 ci[0].redelivered == 0,
             "consumer on a: ack floor %" PRIu64 " inflight %u members %u redelivered %" PRIu64,
             ci[0].ack_floor, ci[0].inflight, ci[0].members, ci[0].redelivered);
    free(ci);
    /* Unbinding on c is seen by a. */
    rmq_unsubscribe(scons);
    flush_ok(cc);
    t0 = test_now_ms();
    do {
        ci = NULL;
        rc = rmq_consumer_list(ca, "RT", 5000, &ci, &nci);
        if (rc == 0 && nci == 1 && ci[0].members == 0)
            break;
        free(ci);
        ci = NULL;
        usleep(50 * 1000);
    } while (test_now_ms() - t0 < 5000);
    CL_CHECK(ci != NULL, "consumer still bound on a 5 s after c unsubscribed");
    free(ci);

    /* The owner dies: b's subscriptions end with UNAVAILABLE, clearly. */
    it_close(ca);
    it_close(mon[0]);
    mon[0] = NULL;
    node_kill(&n[0]);
    rc = sub_next_rc(sall, 10000);
    CL_CHECK(rc == RMQ_EUNAVAIL, "b's replay after a died: %s (want RMQ_EUNAVAIL)",
             rmq_strerror(rc));
    rc = sub_next_rc(sodd, 10000);
    CL_CHECK(rc == RMQ_EUNAVAIL, "b's second replay after a died: %s", rmq_strerror(rc));
    CL_CHECK(it_stat(mon[1], "remote_topic_subs") == 0, "b still has %" PRIu64 " proxies",
             it_stat(mon[1], "remote_topic_subs"));
    rmq_unsubscribe(sall);
    rmq_unsubscribe(sodd);
    t0 = test_now_ms();
    ck_assert_int_eq(rmq_subscribe_topic(cb, "RT", "rt.>", &all, NULL, NULL, &sdown), 0);
    rc = sub_next_rc(sdown, 5000);
    CL_CHECK(rc == RMQ_EUNAVAIL, "replay from b while a is down: %s", rmq_strerror(rc));
    CL_CHECK(test_now_ms() - t0 < 1000, "the unavailable answer took %" PRIu64 " ms",
             test_now_ms() - t0);
    rmq_unsubscribe(sdown);

    /* a is back: a replay from b resumes from seq 219, and goes on live. */
    rc = it_node_restart(&n[0]);
    CL_CHECK(rc == 0, "a did not restart");
    mon[0] = it_client(n[0].b.addr, "mon-a", NULL);
    rc = it_cluster_wait_mesh(n, mon, 3, 15000, why, sizeof(why));
    CL_CHECK(rc == 0, "no full mesh after a's restart: %s", why);
    pub_acked(cc, "rt.odd", 221, 221); /* retries until c sees a's topics again */
    from.seq = 219;
    t0 = test_now_ms();
    do {
        ck_assert_int_eq(rmq_subscribe_topic(cb, "RT", "rt.>", &from, NULL, NULL, &sall), 0);
        rmq_msg *m = NULL;
        rc = rmq_sub_next(sall, 5000, &m);
        if (rc == 0) {
            CL_CHECK(rmq_msg_seq(m) == 219, "resumed replay starts at %" PRIu64, rmq_msg_seq(m));
            rmq_msg_free(m);
            break;
        }
        rmq_unsubscribe(sall); /* b may not have a's topic table yet */
        usleep(100 * 1000);
    } while (test_now_ms() - t0 < 8000);
    CL_CHECK(rc == 0, "replay from b after a's restart: %s", rmq_strerror(rc));
    read_seqs(cb, sall, 220, 2, "rt.>", false, "resumed replay on b");
    pub_acked(cc, "rt.even", 222, 222);
    read_seqs(cb, sall, 222, 1, "rt.>", false, "live after the restart on b");
    rmq_unsubscribe(sall);
    it_close(cb);
    it_close(cc);
    cl_stop(n, mon, 3);
}
END_TEST

struct paced {
    _Atomic uint64_t n, bad;
    uint64_t next;
};

static void paced_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct paced *p = arg;
    (void)c;
    (void)sub;
    if (rmq_msg_seq(m) != p->next)
        atomic_fetch_add(&p->bad, 1);
    p->next = rmq_msg_seq(m) + 1;
    if (atomic_fetch_add(&p->n, 1) < 400)
        usleep(2000); /* a slow start: the proxy must ask the owner to wait */
}

/*
 * A replay through a proxy to a client that reads slowly: the node that
 * relays it asks the owner to pause (remote_topic_pauses > 0) instead of
 * queueing the whole topic for the client, and the client still gets every
 * message once, in order, live ones included, with no slow-consumer error.
 */
START_TEST(test_cluster_remote_replay_paced_reader)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb;
    const char *subj[] = {"big.>"};
    rmq_topic_cfg cfg = {.name = "BIG", .subjects = subj, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    struct it_rec rec;
    struct paced p = {.next = 1};
    static char payload[4096];
    const uint64_t total = 1500; /* 6 MiB: 6 times the pause mark */
    rmq_sub *sb;
    int rc;

    it_rec_init(&rec);
    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "slow-b", &rec);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    memset(payload, 'p', sizeof(payload));
    for (uint64_t i = 1; i <= total; i++) {
        rc = rmq_publish(ca, "big.x", payload, sizeof(payload));
        CL_CHECK(rc == 0, "publish %" PRIu64 ": %s", i, rmq_strerror(rc));
    }
    pub_acked(ca, "big.y", total + 1, total + 1); /* acked after the others: all stored */
    pub_acked(cb, "big.y", total + 2, total + 2); /* b learns who owns the topic */
    rc = rmq_subscribe_topic(cb, "NONE", "big.>", &all, NULL, NULL, &sb);
    ck_assert_int_eq(rc, 0);
    rc = sub_next_rc(sb, 5000);
    CL_CHECK(rc == RMQ_ENOTFOUND, "replay of an unknown topic from b: %s", rmq_strerror(rc));
    rmq_unsubscribe(sb);
    ck_assert_int_eq(rmq_subscribe_topic(cb, "BIG", "big.>", &all, paced_cb, &p, &sb), 0);
    rc = it_wait_atomic(&p.n, total + 2, 60000);
    CL_CHECK(rc == 0, "paced reader on b got %" PRIu64 " of %" PRIu64, atomic_load(&p.n),
             total + 2);
    pub_acked(ca, "big.z", total + 3, total + 4);
    rc = it_wait_atomic(&p.n, total + 4, 10000);
    CL_CHECK(rc == 0, "live after the replay: %" PRIu64 " of %" PRIu64, atomic_load(&p.n),
             total + 4);
    usleep(200 * 1000);
    CL_CHECK(atomic_load(&p.n) == total + 4 && atomic_load(&p.bad) == 0,
             "paced reader: %" PRIu64 " messages, %" PRIu64 " out of sequence", atomic_load(&p.n),
             atomic_load(&p.bad));
    CL_CHECK(it_stat(mon[1], "remote_topic_pauses") > 0, "b never paused the owner's replay");
    CL_CHECK(it_stat(mon[1], "slow_consumers") == 0, "b cut a slow consumer");
    CL_CHECK(it_rec_errs(&rec, RMQ_ESLOW) == 0 && it_rec_errs(&rec, RMQ_EUNAVAIL) == 0,
             "b's client got an error: %s", rec.last_text);
    rmq_unsubscribe(sb);
    it_close(ca);
    it_close(cb);
    cl_stop(n, mon, 3);
}
END_TEST

/* ---- Relayed topic subscriptions: lifecycle, hostile routes, limits ---- */

/* A raw topic SUBSCRIBE{sid, pattern, topic, START_ALL} on fd (a client
 * that then never reads). */
static void raw_topic_sub(int fd, uint64_t sid, const char *pattern, const char *topic)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
    f.kind_case = RINGMQ__FRAME__KIND_SUB;
    f.sub = &sub;
    sub.sid = sid;
    sub.pattern = (char *)pattern;
    sub.topic = (char *)topic;
    sub.has_start = true;
    sub.start = RINGMQ__START_POLICY__START_ALL;
    ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
}

/* Nodes a, b (seeded by a), c (seeded by a) with extra arguments for a and
 * for b and c; waits for the full mesh. */
static void cl_start_args(struct it_node n[3], rmq_client *mon[3], const char *const *a_args,
                          const char *const *bc_args)
{
    char why[1024];
    int rc;
    g_ntrack = 0;
    node_start(&n[0], "a", NULL, NULL, a_args);
    node_start(&n[1], "b", NULL, n[0].caddr, bc_args);
    node_start(&n[2], "c", NULL, n[0].caddr, bc_args);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "mon-%d", i);
        mon[i] = it_client(n[i].b.addr, name, NULL);
    }
    rc = it_cluster_wait_mesh(n, mon, 3, 10000, why, sizeof(why));
    CL_CHECK(rc == 0, "mesh: %s", why);
}

/* c's counter key reaches want within ms (polled). */
static bool stat_becomes(rmq_client *c, const char *key, uint64_t want, int ms)
{
    uint64_t end = test_now_ms() + (uint64_t)ms;
    do {
        if (it_stat(c, key) == want)
            return true;
        usleep(50 * 1000);
    } while (test_now_ms() < end);
    return it_stat(c, key) == want;
}

/*
 * The owner removes a topic that b relays: b's client gets NO_TOPIC, b
 * drops the proxy and a drops the route's subscription. Then a raw client
 * on b that never reads subscribes to a big topic (b pauses the owner),
 * and disconnects: both ends forget the subscription.
 */
START_TEST(test_cluster_relay_topic_removed_and_client_gone)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb;
    const char *subj[] = {"rm.>"}, *subj2[] = {"gone.>"};
    rmq_topic_cfg cfg = {.name = "RMT", .subjects = subj, .nsubjects = 1};
    rmq_topic_cfg cfg2 = {.name = "GONE", .subjects = subj2, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    static char payload[4096];
    uint64_t a_subs0;
    rmq_sub *s;
    int rc, fd;

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "rep-b", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg2, 5000, NULL), 0);
    pub_acked(cb, "rm.x", 1, 20);
    a_subs0 = it_stat(mon[0], "subscriptions");
    ck_assert_int_eq(rmq_subscribe_topic(cb, "RMT", "rm.>", &all, NULL, NULL, &s), 0);
    read_seqs(cb, s, 1, 20, "rm.>", false, "replay from b");
    CL_CHECK(it_stat(mon[1], "remote_topic_subs") == 1, "b: no proxy");
    CL_CHECK(stat_becomes(mon[0], "subscriptions", a_subs0 + 1, 3000),
             "a: the route's subscription is not there (%" PRIu64 ")",
             it_stat(mon[0], "subscriptions"));
    ck_assert_int_eq(rmq_topic_rm(ca, "RMT", 5000), 0);
    rc = sub_next_rc(s, 5000);
    CL_CHECK(rc == RMQ_ENOTFOUND, "b's replay after the owner removed the topic: %s",
             rmq_strerror(rc));
    CL_CHECK(stat_becomes(mon[1], "remote_topic_subs", 0, 3000), "b still has a proxy");
    CL_CHECK(stat_becomes(mon[0], "subscriptions", a_subs0, 3000),
             "a still has the route's subscription (%" PRIu64 ")",
             it_stat(mon[0], "subscriptions"));
    rmq_unsubscribe(s);

    /* A reader that never reads, then goes. */
    memset(payload, 'g', sizeof(payload));
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(rmq_publish(ca, "gone.x", payload, sizeof(payload)), 0);
    pub_acked(ca, "gone.y", 2001, 2001);
    pub_acked(cb, "gone.y", 2002, 2002);
    fd = it_raw_open(n[1].b.port);
    raw_topic_sub(fd, 1, "gone.>", "GONE");
    CL_CHECK(stat_becomes(mon[1], "remote_topic_subs", 1, 3000), "b: no proxy for the raw reader");
    usleep(1500 * 1000);
    CL_CHECK(it_stat(mon[1], "remote_topic_pauses") > 0, "b never paused the owner");
    close(fd);
    CL_CHECK(stat_becomes(mon[1], "remote_topic_subs", 0, 5000), "b kept the raw reader's proxy");
    CL_CHECK(stat_becomes(mon[0], "subscriptions", a_subs0, 5000),
             "a kept the route's subscription of a gone reader (%" PRIu64 ")",
             it_stat(mon[0], "subscriptions"));
    it_close(ca);
    it_close(cb);
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * A hostile route to a: a relayed replay with resumes it never paused, a
 * consumer bind, ERROR and MESSAGE frames naming a's own proxy ids, a
 * SUBSCRIBE for a topic another node owns. a's own client, which reads a
 * topic of b through a proxy, is not disturbed.
 */
START_TEST(test_cluster_relay_hostile_route_and_proxy_ids)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb;
    const char *subj[] = {"ht.>"}, *subj2[] = {"bt.>"};
    rmq_topic_cfg cfg = {.name = "HT", .subjects = subj, .nsubjects = 1};
    rmq_topic_cfg cfg2 = {.name = "BT", .subjects = subj2, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    struct it_raw_seen seen;
    rmq_sub *s;
    int fd, rc;

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "own-b", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    ck_assert_int_eq(rmq_topic_add(cb, &cfg2, 5000, NULL), 0);
    pub_acked(ca, "ht.x", 1, 30);
    pub_acked(ca, "bt.x", 1, 10); /* a learns that b owns BT */
    ck_assert_int_eq(rmq_subscribe_topic(ca, "BT", "bt.>", &all, NULL, NULL, &s), 0);
    read_seqs(ca, s, 1, 10, "bt.>", false, "a's replay of b's topic");

    fd = raw_connect(caddr_port(&n[0]));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(route_hello(fd, "evil5"), 0);
    {
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
        Ringmq__RouteFlow fl = RINGMQ__ROUTE_FLOW__INIT;
        Ringmq__Unsubscribe un = RINGMQ__UNSUBSCRIBE__INIT;
        Ringmq__Error er = RINGMQ__ERROR__INIT;
        Ringmq__Message msg = RINGMQ__MESSAGE__INIT;
        f.kind_case = RINGMQ__FRAME__KIND_SUB;
        f.sub = &sub;
        sub.sid = 5;
        sub.pattern = "ht.>";
        sub.topic = "HT";
        sub.has_start = true;
        sub.start = RINGMQ__START_POLICY__START_ALL;
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        f.kind_case = RINGMQ__FRAME__KIND_ROUTE_FLOW;
        f.route_flow = &fl;
        for (int i = 0; i < 5; i++) {
            fl.sid = 5;
            fl.has_pause = true;
            fl.pause = i == 2;
            ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        }
        /* A consumer bind and a topic a does not own. */
        f.kind_case = RINGMQ__FRAME__KIND_SUB;
        sub.sid = 6;
        sub.pattern = ">";
        sub.durable = "ev";
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        sub.sid = 7;
        sub.pattern = "bt.>";
        sub.topic = "BT";
        sub.durable = NULL;
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
        /* a's own proxy ids: (shard + 1) << 48 | n. */
        for (uint64_t sh = 1; sh <= 4; sh++)
            for (uint64_t k = 1; k <= 4; k++) {
                uint64_t id = (sh << 48) | k;
                f.kind_case = RINGMQ__FRAME__KIND_MSG;
                f.msg = &msg;
                msg.sid = id;
                msg.subject = "bt.evil";
                msg.has_seq = true;
                msg.seq = 999;
                ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
                f.kind_case = RINGMQ__FRAME__KIND_ERR;
                f.err = &er;
                er.code = RINGMQ__ERROR_CODE__ERR_UNAVAILABLE;
                er.has_sid = true;
                er.sid = id;
                er.text = "evil";
                ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
            }
        f.kind_case = RINGMQ__FRAME__KIND_UNSUB;
        f.unsub = &un;
        un.sid = 12345;
        ck_assert_int_eq(it_raw_send_frame(fd, &f), 0);
    }
    memset(&seen, 0, sizeof(seen));
    rc = it_raw_read_to_eof(fd, 2000, &seen);
    CL_CHECK(rc == -1, "the hostile route was closed (%d)", rc);
    CL_CHECK(seen.msgs == 30, "the hostile route's replay: %d messages (want 30: no duplicates)",
             seen.msgs);
    /* a's own relayed subscription still works. */
    pub_acked(cb, "bt.y", 11, 12);
    read_seqs(ca, s, 11, 2, "bt.>", false, "a's replay after the hostile frames");
    read_none(s, 300, "a's replay (nothing from the hostile route)");
    close(fd);
    rmq_unsubscribe(s);
    it_close(ca);
    it_close(cb);
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * Shutdown with relayed subscriptions still open (one of them paused by a
 * reader that never reads, several clients so that several shards hold
 * proxies): every node exits 0 (no leak, no sanitizer report).
 */
START_TEST(test_cluster_relay_shutdown_with_open_proxies)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb[4];
    const char *subj[] = {"sd.>"};
    rmq_topic_cfg cfg = {.name = "SD", .subjects = subj, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    static char payload[4096];
    rmq_sub *s[4];
    int fd[2];

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    memset(payload, 's', sizeof(payload));
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(rmq_publish(ca, "sd.x", payload, sizeof(payload)), 0);
    pub_acked(ca, "sd.y", 1001, 1001);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "rep-b%d", i);
        cb[i] = it_client(n[1].b.addr, name, NULL);
    }
    pub_acked(cb[0], "sd.y", 1002, 1002);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rmq_subscribe_topic(cb[i], "SD", "sd.y", &all, NULL, NULL, &s[i]), 0);
    read_seqs(cb[0], s[0], 1001, 2, "sd.y", false, "b0");
    for (int k = 0; k < 2; k++) {
        fd[k] = it_raw_open(n[1 + k].b.port);
        raw_topic_sub(fd[k], 1, "sd.>", "SD");
        raw_topic_sub(fd[k], 2, "sd.>", "SD");
    }
    usleep(1000 * 1000);
    CL_CHECK(it_stat(mon[1], "remote_topic_subs") == 6, "b: %" PRIu64 " proxies, want 6",
             it_stat(mon[1], "remote_topic_subs"));
    /* b goes first (its proxies are open), then c, then the owner. */
    it_close(mon[1]);
    mon[1] = NULL;
    node_stop(&n[1]);
    pub_acked(ca, "sd.y", 1003, 1003);
    it_close(mon[2]);
    mon[2] = NULL;
    node_stop(&n[2]);
    close(fd[0]);
    close(fd[1]);
    for (int i = 0; i < 4; i++)
        it_close(cb[i]);
    it_close(ca);
    cl_stop(n, mon, 3);
}
END_TEST

/* b and c run with --storage off: replays, a consumer and its acks, and
 * topic ls still work through the proxy. */
START_TEST(test_cluster_relay_from_storage_off_nodes)
{
    static const char *const off[] = {"--storage", "off", NULL};
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb, *cc;
    const char *subj[] = {"so.>"};
    rmq_topic_cfg cfg = {.name = "SO", .subjects = subj, .nsubjects = 1};
    rmq_replay_opts all = {.start = RMQ_START_ALL};
    rmq_consumer_opts co = {.max_inflight = 16, .ack_wait_ms = 800};
    rmq_consumer_info *ci = NULL;
    rmq_topic_info *ti = NULL;
    size_t nci = 0, nti = 0;
    rmq_sub *s, *sc;
    int rc;

    cl_start_args(n, mon, NULL, off);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "rep-b", NULL);
    cc = it_client(n[2].b.addr, "con-c", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    pub_acked(cb, "so.x", 1, 50);
    ck_assert_int_eq(rmq_subscribe_topic(cb, "SO", "so.>", &all, NULL, NULL, &s), 0);
    read_seqs(cb, s, 1, 50, "so.>", false, "replay on storage-off b");
    rc = rmq_consume(cc, "SO", "w", &co, NULL, NULL, &sc);
    CL_CHECK(rc == 0, "consume on storage-off c: %s", rmq_strerror(rc));
    read_seqs(cc, sc, 1, 50, "so.>", true, "consumer on storage-off c");
    flush_ok(cc);
    read_none(sc, 1500, "consumer on c after its acks");
    rc = rmq_consumer_list(ca, "SO", 5000, &ci, &nci);
    CL_CHECK(rc == 0 && nci == 1 && ci[0].ack_floor == 50, "consumer on a: %s, ack floor %" PRIu64,
             rmq_strerror(rc), nci ? ci[0].ack_floor : 0);
    free(ci);
    rc = rmq_topic_list(cb, 5000, &ti, &nti);
    CL_CHECK(rc == 0 && nti == 1 && strcmp(ti[0].node, "a") == 0,
             "topic ls on storage-off b: %s, %zu", rmq_strerror(rc), nti);
    free(ti);
    rmq_unsubscribe(s);
    rmq_unsubscribe(sc);
    it_close(ca);
    it_close(cb);
    it_close(cc);
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * A consumer bound through a proxy by a client that never reads: the owner
 * redelivers its window every ack_wait and the relaying node queues every
 * copy for the client (deliver() enqueues with force), but its periodic
 * slow-consumer check still cuts that client, as the owner does for a
 * local one (control).
 */
START_TEST(test_cluster_relay_consumer_not_reading_is_cut)
{
    static const char *const small[] = {"--max-pending", "262144", "--slow-grace-ms", "300", NULL};
    struct it_node n[3];
    rmq_client *mon[3], *ca;
    const char *subj[] = {"nr.>"};
    rmq_topic_cfg cfg = {.name = "NR", .subjects = subj, .nsubjects = 1};
    static char payload[16384];
    uint64_t out0, out1;
    int fd[2];

    cl_start_args(n, mon, small, small);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    memset(payload, 'n', sizeof(payload));
    for (int i = 0; i < 64; i++)
        ck_assert_int_eq(rmq_publish(ca, "nr.x", payload, sizeof(payload)), 0);
    pub_acked(ca, "nr.y", 65, 65);
    {
        rmq_client *cb = it_client(n[1].b.addr, "learn-b", NULL);
        pub_acked(cb, "nr.y", 66, 66);
        it_close(cb);
    }
    for (int k = 0; k < 2; k++) {
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
        int one = 4096;
        fd[k] = it_raw_open(n[k].b.port); /* k = 0: on the owner; 1: through b */
        setsockopt(fd[k], SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
        f.kind_case = RINGMQ__FRAME__KIND_SUB;
        f.sub = &sub;
        sub.sid = 1;
        sub.pattern = ">";
        sub.topic = "NR";
        sub.durable = k ? "wb" : "wa";
        sub.has_max_inflight = true;
        sub.max_inflight = 64;
        sub.has_ack_wait_ms = true;
        sub.ack_wait_ms = 200;
        ck_assert_int_eq(it_raw_send_frame(fd[k], &f), 0);
    }
    sleep(2);
    out0 = it_stat(mon[1], "msgs_out");
    sleep(4);
    out1 = it_stat(mon[1], "msgs_out");
    CL_CHECK(it_stat(mon[0], "slow_consumers") >= 1,
             "control: the non-reading consumer on the owner was not cut");
    CL_CHECK(it_stat(mon[1], "slow_consumers") >= 1 && out1 - out0 < 64,
             "b never cut its non-reading relayed consumer: %" PRIu64
             " more deliveries queued for it in 4 s (window 64 x 16 KiB, max-pending 256 KiB)",
             out1 - out0);
    close(fd[0]);
    close(fd[1]);
    it_close(ca);
    cl_stop(n, mon, 3);
}
END_TEST

/*
 * A relayed topic subscription with a pattern wider than the topic's
 * subjects (">") must not make the peers forward plain traffic to the
 * owner: topic subscriptions are interest of the owner's shards only, never
 * announced over routes (live topic messages are routed on the owner).
 */
START_TEST(test_cluster_relay_wide_pattern_pulls_no_plain_traffic)
{
    struct it_node n[3];
    rmq_client *mon[3], *ca, *cb, *cc;
    const char *subj[] = {"wp.>"};
    rmq_topic_cfg cfg = {.name = "WP", .subjects = subj, .nsubjects = 1};
    rmq_sub *s;
    uint64_t before, after;

    cl_start(n, mon);
    ca = it_client(n[0].b.addr, "own-a", NULL);
    cb = it_client(n[1].b.addr, "rep-b", NULL);
    cc = it_client(n[2].b.addr, "pub-c", NULL);
    ck_assert_int_eq(rmq_topic_add(ca, &cfg, 5000, NULL), 0);
    pub_acked(cb, "wp.x", 1, 1);
    ck_assert_int_eq(rmq_subscribe_topic(cb, "WP", ">", NULL, NULL, NULL, &s), 0);
    flush_ok(cb);
    usleep(500 * 1000);
    before = route_ctr(mon[2], "c", "a", R_OUT);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(rmq_publish(cc, "nobody.listens", "x", 1), 0);
    flush_ok(cc);
    usleep(QUIESCE_US);
    after = route_ctr(mon[2], "c", "a", R_OUT);
    CL_CHECK(after - before == 0,
             "c forwarded %" PRIu64 " plain messages nobody subscribed to, to a", after - before);
    rmq_unsubscribe(s);
    it_close(ca);
    it_close(cb);
    it_close(cc);
    cl_stop(n, mon, 3);
}
END_TEST

/* Move the calling thread (and what it forks or starts later) into namespace i, or -1: root. */
static void ns_enter(struct netns *x, int i)
{
    int fd = x->root_fd, rc;
    char path[128];
    if (i >= 0) {
        snprintf(path, sizeof(path), "/run/netns/%s", x->ns[i]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    }
    rc = setns(fd, CLONE_NEWNET);
    if (i >= 0)
        close(fd);
    ck_assert_msg(rc == 0, "setns: %s", strerror(errno));
}

static void ns_teardown(struct netns *x)
{
    ns_enter(x, -1);
    ns_del(x);
    close(x->janitor_fd);
    waitpid(x->janitor, NULL, 0);
    close(x->root_fd);
}

static bool seq_has_range(struct it_seq *s, uint64_t from, uint64_t to)
{
    bool all = true;
    pthread_mutex_lock(&s->mu);
    for (uint64_t i = from; i < to && all; i++)
        all = s->seen[i] != 0;
    pthread_mutex_unlock(&s->mu);
    return all;
}

#define NS_MSGS 400

START_TEST(test_cluster_netns_partition_and_rejoin)
{
    struct netns x;
    struct it_node n[2];
    rmq_client *mon[2], *pa, *pb, *ca, *cb, *cbl;
    struct sink sa, sb, sbl;
    char why[1024];
    uint64_t t0;
    int rc;

    if (!ns_setup(&x))
        return;
    g_ntrack = 0;
    ns_enter(&x, 0);
    node_start(&n[0], "a", NS_SUBNET ".1:" NS_CPORT, NULL, NULL);
    it_cur_broker = &n[0].b;
    mon[0] = it_client(n[0].b.addr, "mon-a", NULL);
    sink_init(&sa, "n.x", NS_MSGS, NULL, 0);
    ca = sub_client(n[0].b.addr, "sub-a", "n.x", NULL, &sa);
    pa = it_client(n[0].b.addr, "pub-a", NULL);
    ns_enter(&x, 1);
    node_start(&n[1], "b", NS_SUBNET ".2:" NS_CPORT, NS_SUBNET ".1:" NS_CPORT, NULL);
    mon[1] = it_client(n[1].b.addr, "mon-b", NULL);
    sink_init(&sb, "n.x", NS_MSGS, NULL, 0);
    cb = sub_client(n[1].b.addr, "sub-b", "n.x", NULL, &sb);
    sink_init(&sbl, "n.b", 10, NULL, 0);
    cbl = sub_client(n[1].b.addr, "sub-b-local", "n.b", NULL, &sbl);
    pb = it_client(n[1].b.addr, "pub-b", NULL);
    ns_enter(&x, -1);

    rc = it_cluster_wait_mesh(n, mon, 2, 10000, why, sizeof(why));
    CL_CHECK(rc == 0, "a and b across the veth: no route within 10 s: %s", why);
    probe_until(pa, "n.x", 0, (struct sink *[]){&sb}, 1, false, PROBE_MS, "n.x on b, across veth");
    usleep(QUIESCE_US);
    pub_range(pa, "n.x", 0, 100, 0);
    sink_expect(&sb, 0, 100, 10000, "b before the cut");

    /* Cut b off. Both keep serving their own clients. */
    rc = sh("ip -n %s link set %s down", x.ns[1], x.veth[1]);
    CL_CHECK(rc == 0, "link down: status %d", rc);
    t0 = test_now_ms();
    pub_range(pa, "n.x", 100, 200, 5000);
    sink_expect(&sa, 0, 300, 10000, "a's own subscriber during the cut");
    pub_range(pb, "n.b", 0, 10, 0);
    sink_expect(&sbl, 0, 10, 5000, "b's own subscriber during the cut");
    it_cluster_info(mon[0], &g_ci);
    printf("netns: a after %" PRIu64 " ms of cut: %.300s\n", test_now_ms() - t0, g_ci.raw);

    /* Rejoin: the route comes back (or survives) and forwarding resumes. */
    rc = sh("ip -n %s link set %s up", x.ns[1], x.veth[1]);
    CL_CHECK(rc == 0, "link up: status %d", rc);
    t0 = test_now_ms();
    rc = it_cluster_wait_mesh(n, mon, 2, 30000, why, sizeof(why));
    CL_CHECK(rc == 0, "no route between a and b within 30 s of the link coming back: %s", why);
    probe_until(pa, "n.x", 1, (struct sink *[]){&sb}, 1, false, 30000, "n.x on b after rejoin");
    printf("netns: forwarding again %" PRIu64 " ms after the link came back\n", test_now_ms() - t0);
    pub_range(pa, "n.x", 300, 100, 0);
    {
        uint64_t end = test_now_ms() + 10000;
        while (!seq_has_range(&sb.seq[0], 300, NS_MSGS) && test_now_ms() < end)
            usleep(5000);
    }
    usleep(QUIESCE_US);
    printf("netns: b got %" PRIu64 " of %d (%" PRIu64 " lost around the cut)\n", sink_n(&sb, 0),
           NS_MSGS, NS_MSGS - sink_n(&sb, 0));
    CL_CHECK(seq_has_range(&sb.seq[0], 300, NS_MSGS),
             "b lost messages published after the rejoin (first missing from 300..399)");
    sink_clean(&sb, "b across the partition");
    sink_expect(&sa, 0, NS_MSGS, 5000, "a's own subscriber");

    it_close(pa);
    it_close(pb);
    it_close(ca);
    it_close(cb);
    it_close(cbl);
    it_close(mon[0]);
    it_close(mon[1]);
    sink_free(&sa);
    sink_free(&sb);
    sink_free(&sbl);
    node_stop(&n[1]);
    node_stop(&n[0]);
    g_ntrack = 0;
    it_cur_broker = NULL;
    ns_teardown(&x);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc;

    tc = tcase_create("mesh");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cluster_mesh_from_one_seed);
    tcase_add_test(tc, test_cluster_mesh_chain_of_seeds_four_nodes);
    tcase_add_test(tc, test_cluster_mutual_seeds_one_route);
    suite_add_tcase(s, tc);

    tc = tcase_create("routing");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_cluster_pubsub_wildcards_exactly_once);
    tcase_add_test(tc, test_cluster_queue_group_once_local_preferred);
    tcase_add_test(tc, test_cluster_request_reply_across_nodes);
    tcase_add_test(tc, test_cluster_no_forwarding_without_interest);
    tcase_add_test(tc, test_cluster_overlapping_interest_forwarded_once);
    tcase_add_test(tc, test_cluster_all_to_all_burst);
    tcase_add_test(tc, test_cluster_unsubscribe_stops_forwarding);
    tcase_add_test(tc, test_cluster_large_payloads);
    suite_add_tcase(s, tc);

    tc = tcase_create("failure");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_node_failure_client_failover);
    tcase_add_test(tc, test_cluster_restart_rejoins_and_resyncs);
    suite_add_tcase(s, tc);

    tc = tcase_create("durable");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_durable_topic_on_remote_owner);
    tcase_add_test(tc, test_cluster_remote_topic_replay_and_consumer);
    tcase_add_test(tc, test_cluster_remote_replay_paced_reader);
    suite_add_tcase(s, tc);

    tc = tcase_create("relay");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_relay_topic_removed_and_client_gone);
    tcase_add_test(tc, test_cluster_relay_hostile_route_and_proxy_ids);
    tcase_add_test(tc, test_cluster_relay_shutdown_with_open_proxies);
    tcase_add_test(tc, test_cluster_relay_from_storage_off_nodes);
    tcase_add_test(tc, test_cluster_relay_consumer_not_reading_is_cut);
    tcase_add_test(tc, test_cluster_relay_wide_pattern_pulls_no_plain_traffic);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cluster_refuses_wrong_name_or_secret);
    tcase_add_test(tc, test_cluster_bad_route_frames);
    suite_add_tcase(s, tc);

    tc = tcase_create("netns");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_cluster_netns_partition_and_rejoin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Progress lines must survive a failing test's _exit(). */
    setvbuf(stdout, NULL, _IOLBF, 0);
    return it_main("check_cluster", cluster_suite);
}
