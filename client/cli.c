/*
 * cli.c - the `ringmq` command line tool: pub, sub, req (here), bench
 * (cli_bench.c) and the durable-topic commands topic, consume and consumer
 * (cli_topic.c), built on the public libringmq API only.
 *
 *   ringmq [--server HOST:PORT[,...]] pub [--ack [--msg-id ID]] SUBJECT [MESSAGE]
 *   ringmq [--server ...] sub SUBJECT [--queue GROUP] [--count N] [--raw]
 *          [--topic NAME [--start new|all|last|seq=N|time=T]]
 *   ringmq [--server ...] req SUBJECT MESSAGE [--timeout MS]
 *   ringmq [--server ...] bench SUBJECT --pubs P --subs S --msgs N --size BYTES
 *          [--queue GROUP] [--latency] [--rate MSGS_PER_S] [--timeout MS] [--json]
 *   ringmq [--server ...] topic add|ls|info|rm ...   consume TOPIC DURABLE ...
 *   ringmq [--server ...] consumer ls|rm ...
 *
 * The server comes from --server, else $RINGMQ_SERVER, else 127.0.0.1:7400.
 * Every failure prints one line on stderr and exits with a code of its own
 * (CLI_EXIT_*, listed in --help), so scripts can tell "server down" from
 * "bad subject" from "timeout".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_harness.h"
#include "cli.h"
#include "ringmq.h"

static volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

/* true once SIGINT or SIGTERM arrived: long-running commands stop. */
bool cli_stopping(void)
{
    return cli_stop != 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringmq [--server HOST:PORT[,HOST:PORT...]] COMMAND ...\n"
            "\n"
            "commands:\n"
            "  pub SUBJECT [MESSAGE] [--timeout MS] [--ack [--msg-id ID]]\n"
            "        publish MESSAGE, or each line of stdin when MESSAGE is absent,\n"
            "        then flush (wait until the server has processed them); with\n"
            "        --ack wait until a topic has stored each one and print\n"
            "        'topic=NAME seq=N' ('(duplicate)' when --msg-id was seen)\n"
            "  sub SUBJECT [--queue GROUP] [--count N] [--raw]\n"
            "      [--topic NAME [--start new|all|last|seq=N|time=TIME]]\n"
            "        print messages as '[#n] subject: payload', or with --raw each\n"
            "        payload alone on its line; exit after N messages with --count,\n"
            "        else run until SIGINT/SIGTERM; --topic replays the topic's\n"
            "        stored messages from --start (default new), then goes on live,\n"
            "        printing '[#n] subject seq=N: payload'\n"
            "  cluster [--json]\n"
            "        this node's routes: peer node, address, state, interest, messages\n"
            "  req SUBJECT MESSAGE [--timeout MS]\n"
            "        send a request and print the reply payload (default timeout 2000)\n"
            "  bench SUBJECT [--pubs P] [--subs S] [--msgs N] [--size BYTES]\n"
            "        [--queue GROUP] [--latency] [--rate MSGS_PER_S] [--timeout MS] [--json]\n"
            "        [--sub-servers HOST:PORT[,...]] (subscribers on other nodes, round-robin)\n"
            "        P publishers and S subscribers, each on its own connection and\n"
            "        thread; prints msgs/s and MB/s and the messages lost (with --queue\n"
            "        the group must get N exactly once); --latency publishes at --rate\n"
            "        (default 20000) and prints one-way latency percentiles in us;\n"
            "        --rate paces the publishers (0: unlimited); --timeout bounds the\n"
            "        run (default 60000 ms); progress on stderr when it is a terminal\n"
            "  bench SUBJECT --durable TOPIC [--pubs P] [--msgs N] [--size BYTES]\n"
            "        [--window W] [--duration MS] [--replay] [--rm] [--timeout MS] [--json]\n"
            "        acked publishes to a durable topic (created on SUBJECT if missing),\n"
            "        at most W (256) unacked per publisher: acked msgs/s, MB/s, ack\n"
            "        latency percentiles; --replay then reads the topic back (msgs/s),\n"
            "        from the --sub-servers HOST:PORT node when given (a cluster node\n"
            "        relaying it); --rm removes the topic at the end\n"
            "\n"
            "durable topics (topic and consumer take --timeout MS, default %d):\n"
            "  topic add NAME --subjects P[,P...] [--max-msgs N] [--max-bytes N]\n"
            "      [--max-age DURATION] [--dedup-window DURATION]\n"
            "        create a topic storing what is published on the patterns P\n"
            "  topic ls             list the topics\n"
            "  topic info NAME      messages, bytes, first/last seq and time, limits\n"
            "  topic rm NAME        remove a topic with its messages and consumers\n"
            "  consume TOPIC DURABLE [--count N] [--max-inflight N]\n"
            "      [--ack-wait DURATION] [--max-deliver N] [--no-ack]\n"
            "        take messages from the durable consumer DURABLE (created if\n"
            "        missing), print '[#n] subject seq=N deliveries=D: payload' and\n"
            "        ack each (unless --no-ack); exit after N messages with --count\n"
            "  consumer ls TOPIC    list a topic's durable consumers\n"
            "  consumer rm TOPIC DURABLE\n"
            "        remove a durable consumer\n"
            "  DURATION is N followed by ms, s, m, h or d (500ms, 30s, 5m, 2h, 7d);\n"
            "  TIME is Unix seconds or ISO-8601 (2024-05-01T12:00:00Z; no zone: UTC)\n"
            "\n"
            "options:\n"
            "  --server LIST  servers to connect to (default: $RINGMQ_SERVER, else %s)\n"
            "  --help         show this text        --version  show the version\n"
            "\n"
            "exit codes:\n"
            "  0  success\n"
            "  1  other error (out of memory, I/O error)\n"
            "  2  usage error (bad arguments)\n"
            "  3  cannot connect (server down or unreachable)\n"
            "  4  invalid subject, pattern, queue, topic or consumer name\n"
            "  5  timeout (no reply, no flush acknowledgement, no ack)\n"
            "  6  server error or connection lost (auth, payload too big, closed,\n"
            "     no such topic or consumer, topic exists, storage full or off)\n"
            "  7  bench: messages were lost\n",
            CLI_ADMIN_TIMEOUT_MS, RMQ_DEFAULT_SERVER);
}

/* Map a library error to an exit code (CLI_EXIT_*). */
int cli_exit_code(int err)
{
    switch (err) {
    case 0:
        return CLI_EXIT_OK;
    case RMQ_ESUBJECT:
        return CLI_EXIT_SUBJECT;
    case -ETIMEDOUT:
        return CLI_EXIT_TIMEOUT;
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EADDRNOTAVAIL:
    case -ENOENT:
        return CLI_EXIT_CONNECT;
    case -ENOMEM:
        return CLI_EXIT_ERROR;
    default:
        return CLI_EXIT_SERVER;
    }
}

/* Print "ringmq: what: error" and return the exit code for err. */
int cli_fail(const char *what, int err)
{
    fprintf(stderr, "ringmq: %s: %s\n", what, rmq_strerror(err));
    return cli_exit_code(err);
}

/* Connect for a command; prints the error itself. Returns 0 or an exit code. */
int cli_connect(const char *server, const char *name, rmq_client **out)
{
    rmq_opts *o;
    char what[512];
    int rc = rmq_opts_new(&o);

    if (rc < 0)
        return cli_fail("options", rc);
    rc = rmq_opts_set_servers(o, server);
    if (rc < 0) {
        rmq_opts_free(o);
        fprintf(stderr, "ringmq: bad server list '%s' (want HOST:PORT[,HOST:PORT...])\n", server);
        return CLI_EXIT_USAGE;
    }
    rmq_opts_set_name(o, name);
    rc = rmq_connect(o, out);
    rmq_opts_free(o);
    if (rc < 0) {
        snprintf(what, sizeof(what), "cannot connect to %s", server);
        fprintf(stderr, "ringmq: %s: %s\n", what, rmq_strerror(rc));
        if (rc == -ENOMEM)
            return CLI_EXIT_ERROR;
        /* the server answered but refused us: a server error, not "down" */
        if (rc == RMQ_EAUTH || rc == -EPROTO || rc <= RMQ_ERRBASE)
            return CLI_EXIT_SERVER;
        return CLI_EXIT_CONNECT;
    }
    return 0;
}

/* Print "ringmq: <fmt with arg>" and a pointer to --help; returns
 * CLI_EXIT_USAGE. */
int cli_bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ringmq: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see ringmq --help)\n");
    return CLI_EXIT_USAGE;
}

/* 0 if subj is a valid subject (pattern: or pattern), else print why and
 * return CLI_EXIT_SUBJECT. */
int cli_check_subject(const char *subj, bool pattern)
{
    if (rmq_subject_check(subj, pattern) != 0) {
        fprintf(stderr, "ringmq: invalid %s '%s'\n", pattern ? "subject pattern" : "subject", subj);
        return CLI_EXIT_SUBJECT;
    }
    return 0;
}

/* ---- pub ---- */

static int finish(rmq_client *c, int timeout_ms, int rc)
{
    if (rc == 0) {
        rc = rmq_flush(c, timeout_ms);
        if (rc < 0)
            rc = cli_fail("flush", rc);
    }
    rmq_close(c);
    return rc;
}

/* pub's durable-topic flags: --ack [--msg-id ID]. */
struct pub_ack_flags {
    bool ack;
    const char *msg_id;
};

/* Parse "SUBJECT [MESSAGE] [--timeout MS]" for pub and req, and with pf
 * (pub only) "--ack" and "--msg-id ID"; the timeout must be at least
 * min_timeout. Returns 0 or a usage exit code. */
static int parse_subj_msg(const char *cmd, int argc, char **argv, const char **subj,
                          const char **msg, uint64_t *timeout, uint64_t min_timeout,
                          struct pub_ack_flags *pf)
{
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (!bench_parse_u64(argv[++i], timeout) || *timeout < min_timeout ||
                *timeout > 3600000)
                return cli_bad_usage("bad --timeout '%s'", argv[i]);
        } else if (pf && strcmp(argv[i], "--ack") == 0) {
            pf->ack = true;
        } else if (pf && strcmp(argv[i], "--msg-id") == 0 && i + 1 < argc) {
            pf->msg_id = argv[++i];
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            char what[300];
            snprintf(what, sizeof(what), "%s: unknown option '%s'", cmd, argv[i]);
            return cli_bad_usage("%s", what);
        } else if (npos < 2) {
            *(npos++ == 0 ? subj : msg) = argv[i];
        } else {
            char what[300];
            snprintf(what, sizeof(what), "%s: unexpected argument '%s'", cmd, argv[i]);
            return cli_bad_usage("%s", what);
        }
    }
    return 0;
}

/* Publish one message, plainly or (--ack) waiting for a topic to store it.
 * Returns 0 or an exit code (the error is printed). */
static int pub_one(rmq_client *c, const char *subj, const char *data, size_t len,
                   const struct pub_ack_flags *pf, uint64_t timeout)
{
    int rc;

    if (pf->ack)
        return cli_pub_ack(c, subj, data, len, pf->msg_id, (int)timeout);
    rc = rmq_publish(c, subj, data, len);
    return rc < 0 ? cli_fail("publish", rc) : 0;
}

static int cmd_pub(const char *server, int argc, char **argv)
{
    const char *subj = NULL, *msg = NULL;
    struct pub_ack_flags pf = {0};
    uint64_t timeout = CLI_ADMIN_TIMEOUT_MS;
    rmq_client *c;
    int rc;

    if ((rc = parse_subj_msg("pub", argc, argv, &subj, &msg, &timeout, 0, &pf)) != 0)
        return rc;
    if (subj == NULL)
        return cli_bad_usage("pub: missing SUBJECT%s", "");
    if (pf.msg_id && !pf.ack)
        return cli_bad_usage("pub: --msg-id needs --ack%s", "");
    if (pf.msg_id && msg == NULL)
        return cli_bad_usage("pub: --msg-id needs a MESSAGE (stdin lines would share it)%s", "");
    if (pf.ack && timeout == 0)
        return cli_bad_usage("pub: --ack needs a --timeout of 1 ms or more%s", "");
    if (pf.msg_id && (pf.msg_id[0] == '\0' || strlen(pf.msg_id) > 128))
        return cli_bad_usage("pub: bad --msg-id '%s' (want 1-128 bytes)", pf.msg_id);
    if ((rc = cli_check_subject(subj, false)) != 0)
        return rc;
    if ((rc = cli_connect(server, "ringmq-pub", &c)) != 0)
        return rc;
    if (msg != NULL)
        return finish(c, (int)timeout, pub_one(c, subj, msg, strlen(msg), &pf, timeout));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    rc = 0;
    while (!cli_stop && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        rc = pub_one(c, subj, line, (size_t)n, &pf, timeout);
        if (rc != 0)
            break;
    }
    if (rc == 0 && ferror(stdin)) {
        fprintf(stderr, "ringmq: reading stdin: %s\n", strerror(errno));
        rc = CLI_EXIT_ERROR;
    }
    free(line);
    return finish(c, (int)timeout, rc);
}

/* ---- sub ---- */

/* Subscribe for sub: plainly, or to a topic's stored messages (--topic). */
static int sub_make(rmq_client *c, const char *subj, const char *queue, const char *topic,
                    const rmq_replay_opts *start, rmq_sub **s)
{
    if (topic)
        return rmq_subscribe_topic(c, topic, subj, start, NULL, NULL, s);
    return rmq_subscribe_sync(c, subj, queue, s);
}

static int cmd_sub(const char *server, int argc, char **argv)
{
    const char *subj = NULL, *queue = NULL, *topic = NULL, *start_arg = NULL;
    rmq_replay_opts start = {.start = RMQ_START_NEW};
    uint64_t count = 0, got = 0;
    bool raw = false;
    rmq_client *c;
    rmq_sub *s;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--queue") == 0 && i + 1 < argc) {
            queue = argv[++i];
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            topic = argv[++i];
        } else if (strcmp(argv[i], "--start") == 0 && i + 1 < argc) {
            start_arg = argv[++i];
            if (!cli_parse_start(start_arg, &start))
                return cli_bad_usage("bad --start '%s' (want new, all, last, seq=N or time=TIME)",
                                     start_arg);
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (!bench_parse_u64(argv[++i], &count) || count == 0)
                return cli_bad_usage("bad --count '%s' (want N >= 1)", argv[i]);
        } else if (strcmp(argv[i], "--raw") == 0) {
            raw = true;
        } else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            return cli_bad_usage("sub: unknown option '%s'", argv[i]);
        } else if (subj == NULL) {
            subj = argv[i];
        } else {
            return cli_bad_usage("sub: unexpected argument '%s'", argv[i]);
        }
    }
    if (subj == NULL)
        return cli_bad_usage("sub: missing SUBJECT%s", "");
    if (start_arg && topic == NULL)
        return cli_bad_usage("sub: --start needs --topic%s", "");
    if (queue && topic)
        return cli_bad_usage("sub: a topic subscription has no --queue (use consume)%s", "");
    if ((rc = cli_check_subject(subj, true)) != 0)
        return rc;
    if (queue && rmq_subject_check(queue, false) != 0) {
        fprintf(stderr, "ringmq: invalid queue group name '%s'\n", queue);
        return CLI_EXIT_SUBJECT;
    }
    if (topic && !cli_name_ok(topic)) {
        fprintf(stderr, "ringmq: invalid topic name '%s' (want 1-64 of A-Z a-z 0-9 _ -)\n", topic);
        return CLI_EXIT_SUBJECT;
    }
    if ((rc = cli_connect(server, "ringmq-sub", &c)) != 0)
        return rc;
    rc = sub_make(c, subj, queue, topic, &start, &s);
    if (rc < 0) {
        rc = cli_fail("subscribe", rc);
        rmq_close(c);
        return rc;
    }
    if (count)
        rmq_unsubscribe_after(s, count);
    rc = rmq_flush(c, 5000);
    if (rc < 0) {
        rc = cli_fail("subscribe", rc);
        goto out;
    }
    while (!cli_stop && (count == 0 || got < count)) {
        rmq_msg *m;
        int nrc = rmq_sub_next(s, 200, &m);

        if (nrc == -ETIMEDOUT)
            continue;
        if (nrc == RMQ_ENOTFOUND && topic) {
            fprintf(stderr, "ringmq: sub: no such topic '%s'\n", topic);
            rc = cli_exit_code(nrc);
            goto out;
        }
        if (nrc < 0) {
            rc = cli_fail("subscription", nrc);
            goto out;
        }
        got++;
        if (!raw && topic)
            printf("[#%llu] %s seq=%llu: ", (unsigned long long)got, rmq_msg_subject(m),
                   (unsigned long long)rmq_msg_seq(m));
        else if (!raw)
            printf("[#%llu] %s: ", (unsigned long long)got, rmq_msg_subject(m));
        fwrite(rmq_msg_data(m), 1, rmq_msg_len(m), stdout);
        fputc('\n', stdout);
        fflush(stdout);
        rmq_msg_free(m);
    }
out:
    rmq_unsubscribe(s);
    rmq_close(c);
    return rc;
}

/* ---- req ---- */

static int cmd_req(const char *server, int argc, char **argv)
{
    const char *subj = NULL, *msg = NULL;
    uint64_t timeout = 2000;
    rmq_client *c;
    rmq_msg *reply;
    int rc;

    if ((rc = parse_subj_msg("req", argc, argv, &subj, &msg, &timeout, 1, NULL)) != 0)
        return rc;
    if (subj == NULL || msg == NULL)
        return cli_bad_usage("req: want SUBJECT MESSAGE%s", "");
    if ((rc = cli_check_subject(subj, false)) != 0)
        return rc;
    if ((rc = cli_connect(server, "ringmq-req", &c)) != 0)
        return rc;
    rc = rmq_request(c, subj, msg, strlen(msg), (int)timeout, &reply);
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "ringmq: request: no reply on '%s' within %llu ms\n", subj,
                (unsigned long long)timeout);
        rc = CLI_EXIT_TIMEOUT;
    } else if (rc < 0) {
        rc = cli_fail("request", rc);
    } else {
        fwrite(rmq_msg_data(reply), 1, rmq_msg_len(reply), stdout);
        fputc('\n', stdout);
        fflush(stdout);
        rmq_msg_free(reply);
    }
    rmq_close(c);
    return rc;
}

/* ---- cluster ---- */

/* Copy the JSON string value of "key" inside obj[0..len) into out. */
static void json_str(const char *obj, size_t len, const char *key, char *out, size_t cap)
{
    char pat[32];
    const char *p, *e;
    size_t n;
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    out[0] = '\0';
    p = memmem(obj, len, pat, strlen(pat));
    if (!p)
        return;
    p += strlen(pat);
    if (*p == '"') {
        p++;
        e = memchr(p, '"', len - (size_t)(p - obj));
    } else {
        for (e = p; e < obj + len && *e != ',' && *e != '}'; e++)
            ;
    }
    if (!e)
        return;
    n = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ringmq cluster [--json]: the node's routes, from $SYS.REQ.CLUSTER. */
static int cmd_cluster(const char *server, int argc, char **argv)
{
    bool json = argc == 1 && strcmp(argv[0], "--json") == 0;
    rmq_client *c;
    rmq_msg *reply;
    int rc;
    if (argc > 1 || (argc == 1 && !json))
        return cli_bad_usage("cluster: want no argument or --json%s", "");
    if ((rc = cli_connect(server, "ringmq-cluster", &c)) != 0)
        return rc;
    rc = rmq_request(c, "$SYS.REQ.CLUSTER", NULL, 0, 2000, &reply);
    if (rc < 0) {
        rmq_close(c);
        return rc == -ETIMEDOUT ? CLI_EXIT_TIMEOUT : cli_fail("cluster", rc);
    }
    if (json) {
        fwrite(rmq_msg_data(reply), 1, rmq_msg_len(reply), stdout);
        fputc('\n', stdout);
    } else {
        const char *d = rmq_msg_data(reply), *end = d + rmq_msg_len(reply), *r;
        char node[80], cl[80], listen[300];
        json_str(d, rmq_msg_len(reply), "node", node, sizeof(node));
        json_str(d, rmq_msg_len(reply), "cluster", cl, sizeof(cl));
        json_str(d, rmq_msg_len(reply), "listen", listen, sizeof(listen));
        if (!node[0]) {
            printf("not a cluster node (no --cluster-listen)\n");
        } else {
            printf("node %s of cluster %s, routes on %s\n", node, cl, listen);
            printf("%-16s %-24s %-4s %-11s %9s %12s %12s\n", "NODE", "ADDRESS", "DIR", "STATE",
                   "INTEREST", "MSGS_IN", "MSGS_OUT");
            r = memmem(d, rmq_msg_len(reply), "\"routes\":[", 10);
            while (r && (r = memchr(r, '{', (size_t)(end - r))) != NULL) {
                const char *close = memchr(r, '}', (size_t)(end - r));
                char f[7][300];
                static const char *const keys[] = {"node",     "addr",    "dir",     "state",
                                                   "interest", "msgs_in", "msgs_out"};
                if (!close)
                    break;
                for (int k = 0; k < 7; k++)
                    json_str(r, (size_t)(close - r), keys[k], f[k], sizeof(f[k]));
                printf("%-16s %-24s %-4s %-11s %9s %12s %12s\n", f[0][0] ? f[0] : "-", f[1], f[2],
                       f[3], f[4], f[5], f[6]);
                r = close + 1;
            }
        }
    }
    fflush(stdout);
    rmq_msg_free(reply);
    rmq_close(c);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *server = getenv("RINGMQ_SERVER");
    struct sigaction sa;
    int i = 1;

    if (server == NULL || *server == '\0')
        server = RMQ_DEFAULT_SERVER;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ringmq %s\n", rmq_version());
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else if (strncmp(argv[i], "--server=", 9) == 0) {
            server = argv[i] + 9;
        } else {
            return cli_bad_usage("unknown option '%s'", argv[i]);
        }
    }
    if (i < argc && strcmp(argv[i], "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *cmd = argv[i++];
    if (strcmp(cmd, "pub") == 0)
        return cmd_pub(server, argc - i, argv + i);
    if (strcmp(cmd, "sub") == 0)
        return cmd_sub(server, argc - i, argv + i);
    if (strcmp(cmd, "req") == 0)
        return cmd_req(server, argc - i, argv + i);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(server, argc - i, argv + i);
    if (strcmp(cmd, "topic") == 0)
        return cli_topic(server, argc - i, argv + i);
    if (strcmp(cmd, "consume") == 0)
        return cli_consume(server, argc - i, argv + i);
    if (strcmp(cmd, "consumer") == 0)
        return cli_consumer(server, argc - i, argv + i);
    if (strcmp(cmd, "cluster") == 0)
        return cmd_cluster(server, argc - i, argv + i);
    return cli_bad_usage("unknown command '%s'", cmd);
}
