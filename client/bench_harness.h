/*
 * bench_harness.h - the broker-agnostic part of `ringmq bench` and of
 * tests/bench/nats_bench.c: P publishers and S subscribers on their own
 * connections and threads, a start gate, pacing, sequence, duplicate and
 * loss accounting, latency percentiles, the progress bar, the text and
 * --json report and the exit codes (bench_harness.c).
 *
 * A client library plugs in through struct bench_transport: a table of
 * functions on an opaque connection (connect, subscribe, publish, flush,
 * close) and of the library's error codes (text, exit code). The harness
 * uses nothing else of the library, and depends on no client library, so
 * the same harness measures ringmqd (client/cli_bench.c, libringmq) and
 * nats-server (tests/bench/nats_bench.c, libnats).
 *
 * Errors are the library's own int codes, 0 for success; the harness only
 * passes them back to the transport's strerror / exit_code functions.
 *
 * Durable topics (--durable TOPIC): the transport's optional topic_*,
 * publish_ack and replay functions (NULL when the library has no durable
 * topics). ringmq topics and JetStream streams are driven the same way:
 * acked publishes with a window of outstanding acks per publisher, then a
 * replay of everything stored.
 */
#ifndef RMQ_CLIENT_BENCH_HARNESS_H
#define RMQ_CLIENT_BENCH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, the same numbers as CLI_EXIT_* of client/cli.h. */
#define BENCH_EXIT_OK 0
#define BENCH_EXIT_ERROR 1   /* other error: out of memory, I/O */
#define BENCH_EXIT_USAGE 2   /* bad arguments */
#define BENCH_EXIT_CONNECT 3 /* cannot connect: server down or unreachable */
#define BENCH_EXIT_SUBJECT 4 /* invalid subject or queue name */
#define BENCH_EXIT_TIMEOUT 5 /* no flush acknowledgement in time */
#define BENCH_EXIT_SERVER 6  /* server error or connection lost */
#define BENCH_EXIT_LOST 7    /* messages were lost or duplicated */

/* One message of a subscription: its payload (valid during the call). */
typedef void (*bench_msg_fn)(void *arg, const uint8_t *data, size_t len);

/* A subscriber's connection is lost (err != 0) or closed; err is kept. */
typedef void (*bench_down_fn)(void *arg, int err);

/* What a connection is for; given to bench_transport.connect. */
struct bench_conn_opts {
    const char *server; /* as given to bench_run, or a --sub-servers entry */
    bool sub;           /* a subscriber (else a publisher) */
    bool latency;       /* --latency: write each message as soon as possible */
    bench_down_fn down; /* subscriber: call on a lost connection, else NULL */
    void *down_arg;
    bool durable;    /* --durable: topic calls, publish_ack or replay on it */
    uint64_t window; /* --durable publisher: most acks outstanding at once */
};

/*
 * A client library, for the harness. The functions are called on the
 * publisher and subscriber threads, one connection per thread; msg and down
 * callbacks may come from the library's own threads. Every wait must be
 * bounded (by the connect timeout, timeout_ms or deadline_ns).
 */
struct bench_transport {
    const char *broker; /* "broker" in the report: "ringmq", "nats" */
    const char *prog;   /* program name at the start of messages */
    int esetup;         /* error for a setup that failed without one */
    /* Connect; 0 and *conn set, or an error (and *conn NULL). */
    int (*connect)(const struct bench_conn_opts *o, void **conn);
    /* 0 if a publisher may send payloads of size bytes on conn, else an error. */
    int (*check_size)(void *conn, uint64_t size);
    /* Subscribe conn (once) to subject, in queue group queue when not NULL. */
    int (*subscribe)(void *conn, const char *subject, const char *queue, bench_msg_fn cb,
                     void *arg);
    /* Publish one message; a full send buffer is waited out until deadline_ns
     * (CLOCK_MONOTONIC, as bench_now_ns). 0 or an error. */
    int (*publish)(void *conn, const char *subject, const uint8_t *data, size_t len,
                   int64_t deadline_ns);
    /* Flush: wait until the server has everything sent so far. */
    int (*flush)(void *conn, int timeout_ms);
    /* Unsubscribe, close and free conn; NULL is ignored. */
    void (*close)(void *conn);
    /* Text of an error. */
    const char *(*strerror)(int err);
    /* true if s is a valid subject without wildcards (or queue group name). */
    bool (*subject_ok)(const char *s);
    /* Exit code for an error of a run, and for one that made the setup fail. */
    int (*exit_code)(int err);
    int (*setup_exit_code)(int err);

    /* ---- Durable topics (--durable); all NULL when not supported ---- */
    /* Make topic store subject (on disk); 0 also when a topic of that name
     * already exists (then *existed = true). */
    int (*topic_add)(void *conn, const char *topic, const char *subject, bool *existed);
    /* *msgs = the number of messages topic stores now. */
    int (*topic_msgs)(void *conn, const char *topic, uint64_t *msgs);
    /* Remove topic with its messages. */
    int (*topic_rm)(void *conn, const char *topic);
    /* Publish one message to be stored, without waiting for the store:
     * 0, then exactly one bench_acked(token, err) when the broker acked it,
     * failed or timeout_ms passed (from any thread, and never after close()
     * returned); or an error, and no bench_acked. A full send buffer is
     * waited out until deadline_ns. */
    int (*publish_ack)(void *conn, const char *subject, const uint8_t *data, size_t len,
                       int timeout_ms, void *token, int64_t deadline_ns);
    /* Subscribe conn (once) to the stored messages of topic on subject, from
     * the oldest, then live. */
    int (*replay)(void *conn, const char *topic, const char *subject, bench_msg_fn cb, void *arg);
};

/* The transport's answer to publish_ack(token): 0 when the message is
 * stored, else the error. Any thread. */
void bench_acked(void *token, int err);

/* CLOCK_MONOTONIC in ns: the clock of deadlines and latency stamps. */
int64_t bench_now_ns(void);

/* Parse a non-negative decimal integer option value into *out; false for
 * anything else (sign, junk, overflow). Also used by the ringmq CLI. */
bool bench_parse_u64(const char *s, uint64_t *out);
/*
 * Run the bench `SUBJECT [--pubs P] [--subs S] [--msgs N] [--size BYTES]
 * [--queue GROUP] [--latency] [--rate MSGS_PER_S] [--sub-servers HOST:PORT[,...]]
 * [--timeout MS] [--json]`,
 * or `SUBJECT --durable TOPIC [--pubs P] [--msgs N] [--size BYTES]
 * [--window W] [--duration MS] [--replay] [--rm] [--timeout MS] [--json]`
 * (argv: the arguments after the command word) against server through t;
 * with --sub-servers, subscriber i connects to entry i mod n of that list
 * instead (as given to bench_conn_opts.server; the publishers stay on
 * server), after which probe messages make sure that their interest has
 * reached server (see bench_harness.c).
 * Prints the report on stdout, errors on stderr. Returns the process exit
 * code (BENCH_EXIT_*, or t's exit codes). Main thread; starts P + S threads
 * and joins them all before returning.
 */
int bench_run(const struct bench_transport *t, const char *server, int argc, char **argv);

#endif
