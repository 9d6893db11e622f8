/*
 * itest.h - helpers shared by the integration Check programs in this
 * directory (check_pubsub, check_badinput, check_slow, check_lifecycle,
 * check_shards, check_durable, check_crash).
 *
 * They sit on top of tests/testutil.h (a real ringmqd as a child process,
 * raw sockets) and libringmq. What they add:
 *
 *     IT_CHECK()        an assertion that prints the broker log on failure
 *     it_broker_*()     start/stop with assertions; it_exec_ringmqd() for
 *                       exit-status tests that must not go through the
 *                       port-file handshake
 *     it_client()       a libringmq client with event/error recorders
 *     it_stat()         one counter of "$SYS.REQ.STATS" (JSON) by name
 *     struct it_seq     a sequence tracker: payloads carry a sequence
 *                       number plus a pattern derived from it, so loss,
 *                       duplicates, reordering and corruption all show
 *     struct it_load    a client that keeps publishing to itself and
 *                       receiving, for "the broker still works" checks
 *     it_raw_*()        raw protocol frames (SUB, PUB, PING/PONG sync)
 *     it_topic_*()      durable topics: admin calls with assertions, a full
 *                       replay; struct it_coll collects received messages
 *                       (seq, time, deliveries, payload); it_broker_kill()
 *     it_node_*(),      cluster nodes (check_cluster): --node-name and
 *     it_cluster_*()    --cluster-listen on it_free_port(), the parsed
 *                       "$SYS.REQ.CLUSTER" JSON, waiting for a full mesh
 *
 * Every wait is bounded by an explicit timeout. Helpers that assert must
 * be called from the test's own thread (Check's forked child), never from
 * a libringmq callback: callbacks only record, the test thread checks.
 */
#ifndef RMQ_TESTS_INTEGRATION_ITEST_H
#define RMQ_TESTS_INTEGRATION_ITEST_H

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "ringmq.h"
#include "testutil.h"

/* A NULL-terminated argument list for tbroker_start(). */
#define IT_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The broker of the running test, for IT_CHECK's log dump. May be NULL. */
extern struct tbroker *it_cur_broker;

/* ck_abort_msg() after printing the current broker's log. */
#define IT_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            it_dump_log();                                                                         \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

void it_dump_log(void);

/*
 * main() of every program: prints the seed (before Check forks), returns 77
 * when io_uring is not available (ENOSYS/EPERM), runs the suite.
 */
int it_main(const char *prog, Suite *(*make_suite)(void));

/* The seed printed by it_main(); tests derive their own RNG state from it. */
uint64_t it_seed(void);
/* xorshift64* on a caller-owned state. */
uint64_t it_rand(uint64_t *state);

/* ---- Broker ---- */

/*
 * tbroker_start() with an assertion; sets it_cur_broker. When the
 * environment has RMQ_TEST_SHARDS=N and extra has no --shards, the broker
 * gets "--shards N" (default: the broker's own default, one per CPU).
 */
void it_broker_start(struct tbroker *b, const char *const *extra);
/* tbroker_restart() with the same RMQ_TEST_SHARDS rule. 0 or -1. */
int it_broker_restart(struct tbroker *b, const char *const *extra);
/* SIGTERM and assert exit status 0 within timeout_ms; then remove b->dir. */
void it_broker_stop_ok(struct tbroker *b, int timeout_ms);
/* Remove b->dir (log and port files); for brokers that exited cleanly. */
void it_broker_cleanup(const struct tbroker *b);
/* true while the broker process exists and has not exited. */
bool it_broker_alive(struct tbroker *b);
/*
 * Wait for b->pid to exit (at most timeout_ms). Returns the exit status as
 * tbroker_stop() does, or -1 on timeout (the process is left running).
 * Sets b->pid to 0 once it has exited.
 */
int it_broker_wait_exit(struct tbroker *b, int timeout_ms);

/*
 * Run "ringmqd args..." directly (stderr to log_path) and wait for it to
 * exit within timeout_ms. Returns the exit status, or -1 when it was still
 * running at the deadline (it is killed then; *still_running set).
 */
int it_exec_ringmqd(const char *const *args, const char *log_path, int timeout_ms,
                    bool *still_running);

/* Raise RLIMIT_NOFILE to at least want (up to the hard limit). */
void it_raise_nofile(unsigned want);

/* ---- Clients ---- */

#define IT_MAX_EVENTS 64

/* Records client events and async errors (callbacks run on I/O threads). */
struct it_rec {
    pthread_mutex_t mu;
    int ev[IT_MAX_EVENTS];
    int ev_err[IT_MAX_EVENTS];
    int nev;
    int err[IT_MAX_EVENTS];
    int nerr;
    char last_text[256];
};

void it_rec_init(struct it_rec *r);
/* Number of events of kind ev seen so far. */
int it_rec_count(struct it_rec *r, int ev);
/* Number of async errors with code err seen so far. */
int it_rec_errs(struct it_rec *r, int err);
/* Wait until it_rec_count(r, ev) >= n; 0 or -1 on timeout. */
int it_rec_wait(struct it_rec *r, int ev, int n, int timeout_ms);

/*
 * Options for the test broker: server addr, name, connect timeout 2000 ms,
 * fast reconnects (50..200 ms, reconnect_attempts), recorders when rec is
 * not NULL. The caller frees them.
 */
rmq_opts *it_opts(const char *addr, const char *name, struct it_rec *rec, int reconnect_attempts);
/* Connect with it_opts() and assert success. */
rmq_client *it_client(const char *addr, const char *name, struct it_rec *rec);
/* rmq_close() with an assertion. */
void it_close(rmq_client *c);

/*
 * Ask the broker for its stats and return counter key. Returns 0, or the
 * rmq_request() error, or -ENOENT if the key is not in the JSON.
 */
int it_stats_get(rmq_client *c, const char *key, uint64_t *out);
/* As it_stats_get() with an assertion. */
uint64_t it_stat(rmq_client *c, const char *key);
/* Poll until stat key == want (0) or timeout_ms passes (-1, *last set). */
int it_stat_wait(rmq_client *c, const char *key, uint64_t want, int timeout_ms, uint64_t *last);

/* Poll an atomic counter until it is >= want. 0, or -1 on timeout. */
int it_wait_atomic(_Atomic uint64_t *v, uint64_t want, int timeout_ms);

/* ---- Payloads and sequence tracking ---- */

/*
 * Payload of len >= 8 bytes: big-endian seq, then bytes derived from seq
 * and the offset. it_payload_seq() returns seq, or -1 if len < 8 or any
 * byte does not match (corruption).
 */
void it_payload_fill(uint8_t *buf, size_t len, uint64_t seq);
int64_t it_payload_seq(const uint8_t *buf, size_t len);

struct it_seq {
    pthread_mutex_t mu;
    uint8_t *seen; /* one byte per sequence number in [0, n) */
    uint64_t n;
    uint64_t next;          /* next expected, for ordering */
    _Atomic uint64_t count; /* distinct numbers seen */
    _Atomic uint64_t dups;
    _Atomic uint64_t bad;      /* corrupt payload or out of range */
    _Atomic uint64_t ooo;      /* number != next expected */
    int64_t ooo_want, ooo_got; /* the first reordering */
};

void it_seq_init(struct it_seq *s, uint64_t n);
void it_seq_free(struct it_seq *s);
/* Record one payload (any thread). */
void it_seq_note(struct it_seq *s, const void *data, size_t len);
/* rmq_msg_cb that calls it_seq_note(arg, payload). */
void it_seq_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg);
/*
 * Wait until count == want, then assert no duplicates, no corruption and,
 * when ordered, no reordering. what names the stream in messages.
 */
void it_seq_expect(struct it_seq *s, uint64_t want, bool ordered, int timeout_ms, const char *what);
/* Index of the first sequence number in [0, upto) never seen, or -1. */
int64_t it_seq_first_missing(struct it_seq *s, uint64_t upto);

/* ---- A background load: one client publishing to itself ---- */

struct it_load {
    rmq_client *c;
    rmq_sub *sub;
    struct it_seq seq;
    char subj[64];
    pthread_t th;
    bool running;
    uint64_t from, count;
    int pace_us;         /* sleep after every 10 publishes */
    _Atomic int pub_err; /* first rmq_publish error in the thread */
};

/* Connect, subscribe to a load subject, flush. Tracks up to total messages. */
void it_load_start(struct it_load *l, const char *addr, uint64_t total);
/* Publish [from, from+count) on a thread, pacing as given. */
void it_load_async(struct it_load *l, uint64_t from, uint64_t count, int pace_us);
/* Join the thread started by it_load_async(), assert it saw no error. */
void it_load_join(struct it_load *l);
/* Publish [from, from+count) from the calling thread. */
void it_load_publish(struct it_load *l, uint64_t from, uint64_t count);
/* Flush, wait for want messages and assert none lost/duplicated/reordered. */
void it_load_expect(struct it_load *l, uint64_t want, int timeout_ms);
void it_load_stop(struct it_load *l);

/* ---- Raw protocol ---- */

/* raw_connect() + raw_handshake() with assertions. */
int it_raw_open(uint16_t port);
/* Send a length prefix and body. 0 or -1. */
int it_raw_frame(int fd, const void *body, size_t len);
/* Send an encoded Frame. 0 or -1. */
int it_raw_send_frame(int fd, const Ringmq__Frame *f);
int it_raw_sub(int fd, uint64_t sid, const char *pattern, const char *queue);
int it_raw_unsub(int fd, uint64_t sid, uint64_t max);
int it_raw_pub(int fd, const char *subj, const char *reply, const void *data, size_t len);
int it_raw_ping(int fd, uint64_t token);

/* What it_raw_sync() saw before the PONG. */
struct it_raw_seen {
    int msgs; /* MESSAGE frames */
    int errs; /* ERROR frames */
    int err_code[16];
    int err_fatal[16];
    uint64_t err_sid[16];
    char err_text[16][80];
    int pongs;            /* PONG frames other than the one waited for */
    int other;            /* any other kind */
    size_t last_msg_len;  /* payload length of the last MESSAGE */
    int64_t last_msg_seq; /* it_payload_seq() of the last MESSAGE, or -1 */
};

/*
 * Send PING(token) and read frames until the matching PONG. Returns 0 on
 * the PONG, -2 on EOF, -1 on timeout or a malformed frame. seen may be NULL.
 */
int it_raw_sync(int fd, uint64_t token, int timeout_ms, struct it_raw_seen *seen);

/*
 * Read frames until EOF (or timeout_ms): 0 on EOF, -1 on timeout, -3 if a
 * malformed frame was read. seen counts what arrived (may be NULL).
 */
int it_raw_read_to_eof(int fd, int timeout_ms, struct it_raw_seen *seen);

/* Decode an ERROR frame body; 0 or -1. text (may be NULL) gets the text. */
int it_decode_error(const uint8_t *body, size_t len, int *code, int *fatal, uint64_t *sid,
                    char *text, size_t tlen);

/* ---- Durable topics ---- */

/*
 * SIGKILL the broker and reap it (at most timeout_ms). Returns the status
 * as tbroker_stop() does (128 + SIGKILL = 137 expected), -1 on timeout.
 * b->pid is 0 afterwards; b->dir (data, log) is kept for a restart.
 */
int it_broker_kill(struct tbroker *b, int timeout_ms);

/* Admin calls' timeout in the helpers below. */
#define IT_ADMIN_MS 5000

/*
 * Create topic name on subjects (a NULL-terminated list); limits (may be
 * NULL) gives max_msgs, max_bytes, max_age_ms, dedup_window_ms. Asserts
 * success; info (may be NULL) receives the reply.
 */
void it_topic_add(rmq_client *c, const char *name, const char *const *subjects,
                  const rmq_topic_cfg *limits, rmq_topic_info *info);
/* rmq_topic_info_get() with an assertion. */
void it_topic_info(rmq_client *c, const char *name, rmq_topic_info *info);
/* Poll the topic's info until msgs == want: 0, or -1 at the deadline (*last set). */
int it_topic_wait_msgs(rmq_client *c, const char *name, uint64_t want, int timeout_ms,
                       rmq_topic_info *last);
/* rmq_publish_ack() with an assertion; returns the seq. */
uint64_t it_pub_ack(rmq_client *c, const char *subj, const void *data, size_t len,
                    const char *msg_id);
/* CLOCK_REALTIME in Unix epoch ns, to compare with rmq_msg_time_ns(). */
uint64_t it_wall_ns(void);

/* One received message, copied. */
struct it_cmsg {
    uint64_t seq, time_ns;
    uint32_t deliveries;
    uint8_t *data;
    size_t len;
    char subject[96];
};

/*
 * A collector: callbacks (any thread) append copies of messages; the test
 * thread waits and inspects. When ack is set, the callback acks every
 * message it records (rmq_ack on the callback's client).
 */
struct it_coll {
    pthread_mutex_t mu;
    struct it_cmsg *m;
    size_t n, cap;          /* recorded (at most cap) */
    _Atomic uint64_t count; /* received, also past cap */
    bool ack;
    _Atomic int ack_err; /* first rmq_ack error */
};

void it_coll_init(struct it_coll *c, size_t cap);
void it_coll_free(struct it_coll *c);
/* Record a copy of m (any thread). */
void it_coll_add(struct it_coll *c, const rmq_msg *m);
/* rmq_msg_cb recording into arg (a struct it_coll). */
void it_coll_cb(rmq_client *cl, rmq_sub *sub, const rmq_msg *m, void *arg);
/* Wait until count >= n: 0, or -1 on timeout. */
int it_coll_wait(struct it_coll *c, uint64_t n, int timeout_ms);
/* Snapshot of entry i under the lock (copy of the struct; data stays owned). */
struct it_cmsg it_coll_get(struct it_coll *c, size_t i);

/*
 * Replay topic from the start (START_ALL, pattern ">") on a new synchronous
 * subscription of c, recording into out (initialised by the caller) until
 * want messages came or timeout_ms passed; then waits a further extra_ms
 * for messages beyond want (duplicates, unexpected ones). Returns 0, or the
 * rmq_sub_next() error other than -ETIMEDOUT (e.g. RMQ_ENOTFOUND), or the
 * subscribe error. The caller checks out->n against want.
 */
int it_topic_replay(rmq_client *c, const char *topic, uint64_t want, int timeout_ms, int extra_ms,
                    struct it_coll *out);

/*
 * Bytes a topic counts for one message without headers on subject subj
 * with a plen-byte payload: the stored encoding (ringmq.h, rmq_topic_info.bytes).
 */
uint64_t it_stored_size(const char *subj, size_t plen);

/* ---- Cluster ---- */

/*
 * A TCP port on 127.0.0.1 that was free a moment ago: bind port 0, read
 * the port, close. 0 on failure. (Another process may take it meanwhile;
 * the window is short.)
 */
uint16_t it_free_port(void);

#define IT_ROUTES_MAX 16
#define IT_CLUSTER_JSON 16384

/* One route of "$SYS.REQ.CLUSTER". */
struct it_route {
    char node[64];  /* "" while a dialled route does not know its peer yet */
    char addr[64];  /* host:port */
    char dir[8];    /* "in" or "out" */
    char state[16]; /* "up", "connecting" */
    uint64_t interest, msgs_in, msgs_out;
};

/* A parsed "$SYS.REQ.CLUSTER" reply; raw keeps the JSON for messages. */
struct it_cluster_info {
    char node[64], cluster[64], listen[64];
    int nroutes; /* entries in r (the JSON may list more; see truncated) */
    bool truncated;
    struct it_route r[IT_ROUTES_MAX];
    char raw[IT_CLUSTER_JSON];
};

/*
 * rmq_request("$SYS.REQ.CLUSTER") on c (timeout 3000 ms) and parse the
 * JSON with a small string search (no nested objects in a route). Returns
 * 0, the rmq_request() error, or -EPROTO when there is no "routes" array
 * (out->raw holds what came).
 */
int it_cluster_get(rmq_client *c, struct it_cluster_info *out);
/* As it_cluster_get() with an assertion. */
void it_cluster_info(rmq_client *c, struct it_cluster_info *out);
/* Number of routes with state "up". */
int it_cluster_nup(const struct it_cluster_info *ci);
/* Number of routes with state "up" to node. */
int it_cluster_nup_to(const struct it_cluster_info *ci, const char *node);
/* The first route with state "up" to node, or NULL. */
const struct it_route *it_cluster_route(const struct it_cluster_info *ci, const char *node);

/* A cluster node: a broker with --node-name and --cluster-listen. */
#define IT_NODE_ARGS 40
struct it_node {
    struct tbroker b;
    char name[32];
    char caddr[64];                 /* the --cluster-listen address, "127.0.0.1:PORT" by default */
    char routes[512];               /* --routes, "" for none */
    const char *args[IT_NODE_ARGS]; /* the extra args given to ringmqd (restart) */
};

/*
 * Start a node named name (--node-name) listening for routes on
 * cluster_listen (NULL: 127.0.0.1 on it_free_port()) and dialling routes
 * (NULL or "": none), plus extra (NULL-terminated, may be NULL; the strings
 * are borrowed and must outlive restarts). The client port is ephemeral.
 * Returns 0 or -1 (the log was printed). Does not set it_cur_broker.
 */
int it_node_start(struct it_node *n, const char *name, const char *cluster_listen,
                  const char *routes, const char *const *extra);
/* Restart a stopped or killed node with the same ports and args. 0 or -1. */
int it_node_restart(struct it_node *n);

/*
 * Whether the node behind mon (named self) has exactly npeers routes "up",
 * one to each of peers: 1 yes, 0 no (why says what differs), or a negative
 * error of it_cluster_get().
 */
int it_cluster_mesh_ok(rmq_client *mon, const char *self, const char *const *peers, int npeers,
                       char *why, size_t wlen);
/*
 * Poll until each of the n nodes (mons[i] connected to nodes[i]) lists the
 * n-1 others as up and nothing else: 0, or -1 at the deadline (why set).
 */
int it_cluster_wait_mesh(struct it_node *nodes, rmq_client **mons, int n, int timeout_ms, char *why,
                         size_t wlen);
/*
 * Start three nodes "a", "b", "c" on loopback: A alone, B and C with
 * --routes A's cluster address (extra for all, may be NULL); connect
 * mons[i] to node i (no reconnect); wait at most timeout_ms for the full
 * mesh. Asserts; it_cur_broker is node A.
 */
void it_cluster_start(struct it_node nodes[3], rmq_client *mons[3], const char *const *extra,
                      int timeout_ms);

#endif
