/*
 * cli_topic.c - the durable-topic commands of the ringmq CLI, on the public
 * libringmq API (ringmq.h, "Durable topics"):
 *
 *   topic add NAME --subjects P[,P...] [--max-msgs N] [--max-bytes N]
 *             [--max-age DURATION] [--dedup-window DURATION]
 *   topic ls | topic info NAME | topic rm NAME
 *   consume TOPIC DURABLE [--count N] [--max-inflight N] [--ack-wait DURATION]
 *           [--max-deliver N] [--no-ack]
 *   consumer ls TOPIC | consumer rm TOPIC DURABLE
 *   (pub --ack and sub --topic live in cli.c and call in here or the library)
 *
 * The admin commands (topic, consumer) take --timeout MS (default
 * CLI_ADMIN_TIMEOUT_MS). Errors print one line on stderr and map to the
 * CLI_EXIT_* codes as the other commands do: a bad name is
 * CLI_EXIT_SUBJECT, no answer CLI_EXIT_TIMEOUT, a broker refusal
 * (no such topic, exists, storage) CLI_EXIT_SERVER.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_harness.h"
#include "cli.h"

/* ---- Options ---- */

enum opt_kind {
    OPT_FLAG,     /* bool, no value */
    OPT_STR,      /* const char * */
    OPT_U64,      /* uint64_t, decimal */
    OPT_COUNT,    /* uint64_t, decimal, at least 1 */
    OPT_U32,      /* uint32_t, decimal */
    OPT_DURATION, /* uint64_t ms, cli_parse_duration() */
    OPT_TIMEOUT,  /* uint64_t ms, 1..3600000 */
};

struct opt {
    const char *name; /* "--max-age" */
    enum opt_kind kind;
    void *dst;
};

/* Store the value v of option o; false if it does not parse. */
static bool opt_set(const struct opt *o, const char *v)
{
    uint64_t n;

    switch (o->kind) {
    case OPT_STR:
        *(const char **)o->dst = v;
        return true;
    case OPT_U64:
        return bench_parse_u64(v, o->dst);
    case OPT_COUNT:
        if (!bench_parse_u64(v, &n) || n < 1)
            return false;
        *(uint64_t *)o->dst = n;
        return true;
    case OPT_U32:
        if (!bench_parse_u64(v, &n) || n > UINT32_MAX)
            return false;
        *(uint32_t *)o->dst = (uint32_t)n;
        return true;
    case OPT_DURATION:
        return cli_parse_duration(v, o->dst);
    case OPT_TIMEOUT:
        if (!bench_parse_u64(v, &n) || n < 1 || n > 3600000)
            return false;
        *(uint64_t *)o->dst = n;
        return true;
    default:
        return false;
    }
}

static const char *opt_want(enum opt_kind k)
{
    switch (k) {
    case OPT_DURATION:
        return " (want a duration: 500ms, 30s, 5m, 2h, 7d)";
    case OPT_TIMEOUT:
        return " (want 1 to 3600000 ms)";
    case OPT_COUNT:
        return " (want N >= 1)";
    default:
        return " (want a non-negative integer)";
    }
}

/*
 * Parse argv[0..argc) of command cmd: the options of opts[0..nopts)
 * anywhere, and up to maxpos positional arguments into pos (*npos of
 * them). Returns 0, or CLI_EXIT_USAGE after printing why.
 */
static int opts_parse(const char *cmd, int argc, char **argv, const struct opt *opts, size_t nopts,
                      const char **pos, int maxpos, int *npos)
{
    char what[400];

    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const struct opt *o = NULL;

        for (size_t k = 0; k < nopts && o == NULL; k++)
            if (strcmp(argv[i], opts[k].name) == 0)
                o = &opts[k];
        if (o && o->kind == OPT_FLAG) {
            *(bool *)o->dst = true;
        } else if (o && i + 1 < argc) {
            if (!opt_set(o, argv[++i])) {
                snprintf(what, sizeof(what), "%s: bad %s '%.100s'%s", cmd, o->name, argv[i],
                         opt_want(o->kind));
                return cli_bad_usage("%s", what);
            }
        } else if (o || (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0')) {
            snprintf(what, sizeof(what), "%s: %s '%.100s'", cmd,
                     o ? "missing value for" : "unknown option", argv[i]);
            return cli_bad_usage("%s", what);
        } else if (*npos < maxpos) {
            pos[(*npos)++] = argv[i];
        } else {
            snprintf(what, sizeof(what), "%s: unexpected argument '%.100s'", cmd, argv[i]);
            return cli_bad_usage("%s", what);
        }
    }
    return 0;
}

/* 0 if every name is a valid topic or consumer name, else CLI_EXIT_SUBJECT. */
static int check_names(const char *kind, const char *name)
{
    if (cli_name_ok(name))
        return 0;
    fprintf(stderr, "ringmq: invalid %s name '%s' (want 1-64 of A-Z a-z 0-9 _ -)\n", kind, name);
    return CLI_EXIT_SUBJECT;
}

/* Print the failure of an admin call on thing ("topic 'x'"); returns the
 * exit code. */
static int admin_fail(const char *what, const char *thing, int rc, uint64_t timeout)
{
    switch (rc) {
    case RMQ_ENOTFOUND:
        fprintf(stderr, "ringmq: %s: no such %s\n", what, thing);
        break;
    case -EEXIST:
        fprintf(stderr, "ringmq: %s: %s exists, or its subjects overlap another topic's\n", what,
                thing);
        break;
    case -ETIMEDOUT:
        fprintf(stderr, "ringmq: %s: no answer within %llu ms (does the server store topics?)\n",
                what, (unsigned long long)timeout);
        break;
    default:
        return cli_fail(what, rc);
    }
    return cli_exit_code(rc);
}

/* "topic 'x'" or "consumer 'd' of topic 't'" in a static buffer (the CLI
 * is single-threaded). */
static const char *thing(const char *kind, const char *name, const char *topic)
{
    static char buf[200];

    if (topic)
        snprintf(buf, sizeof(buf), "%s '%s' of topic '%s'", kind, name, topic);
    else
        snprintf(buf, sizeof(buf), "%s '%s'", kind, name);
    return buf;
}

/* ---- Printing ---- */

static void print_limit(const char *label, uint64_t v, bool duration)
{
    char buf[32];

    if (v == 0)
        snprintf(buf, sizeof(buf), "unlimited");
    else if (duration)
        cli_format_duration(v, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    printf("%-14s%s\n", label, buf);
}

static void print_seq_time(const char *label, bool any, uint64_t seq, uint64_t ns)
{
    char t[40] = "";

    if (!any) {
        printf("%-14s-\n", label);
        return;
    }
    if (ns)
        cli_format_time(ns, t, sizeof(t));
    printf("%-14sseq %llu%s%s\n", label, (unsigned long long)seq, ns ? " at " : "", t);
}

/* The `topic info` block. */
static void topic_print(const rmq_topic_info *t)
{
    printf("%-14s%s\n", "topic:", t->name);
    printf("%-14s", "subjects:");
    for (size_t i = 0; i < t->nsubjects; i++)
        printf("%s%s", i ? ", " : "", t->subjects[i]);
    printf("\n%-14s%llu\n", "messages:", (unsigned long long)t->msgs);
    printf("%-14s%llu\n", "bytes:", (unsigned long long)t->bytes);
    print_seq_time("first:", t->msgs > 0, t->first_seq, t->first_time_ns);
    print_seq_time("last:", t->last_seq > 0, t->last_seq, t->last_time_ns);
    print_limit("max msgs:", t->max_msgs, false);
    print_limit("max bytes:", t->max_bytes, false);
    print_limit("max age:", t->max_age_ms, true);
    print_limit("dedup window:", t->dedup_window_ms, true);
    printf("%-14s%u\n", "consumers:", t->consumers);
}

/* The `topic ls` table. */
static void topics_print(const rmq_topic_info *v, size_t n)
{
    int w = 4;

    if (n == 0) {
        printf("(no topics)\n");
        return;
    }
    int wn = 0;
    for (size_t i = 0; i < n; i++) {
        if ((int)strlen(v[i].name) > w)
            w = (int)strlen(v[i].name);
        if ((int)strlen(v[i].node) + (v[i].node_down ? 7 : 0) > wn)
            wn = (int)strlen(v[i].node) + (v[i].node_down ? 7 : 0);
    }
    if (wn)                   /* a cluster: where each topic is stored */
        wn = wn < 6 ? 6 : wn; /* "(here)" */
    printf("%-*s %12s %14s %12s  ", w, "NAME", "MSGS", "BYTES", "LAST_SEQ");
    if (wn)
        printf("%-*s  ", wn, "NODE");
    printf("SUBJECTS\n");
    for (size_t i = 0; i < n; i++) {
        if (v[i].node[0]) {
            char where[80];
            snprintf(where, sizeof(where), "%s%s", v[i].node, v[i].node_down ? " (down)" : "");
            printf("%-*s %12s %14s %12s  %-*s  ", w, v[i].name, "-", "-", "-", wn, where);
        } else {
            printf("%-*s %12llu %14llu %12llu  ", w, v[i].name, (unsigned long long)v[i].msgs,
                   (unsigned long long)v[i].bytes, (unsigned long long)v[i].last_seq);
            if (wn)
                printf("%-*s  ", wn, "(here)");
        }
        for (size_t k = 0; k < v[i].nsubjects; k++)
            printf("%s%s", k ? "," : "", v[i].subjects[k]);
        printf("\n");
    }
}

/* The `consumer ls` table. */
static void consumers_print(const rmq_consumer_info *v, size_t n)
{
    int w = 4;
    char wait[32], maxd[32];

    if (n == 0) {
        printf("(no consumers)\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(v[i].name) > w)
            w = (int)strlen(v[i].name);
    printf("%-*s %12s %9s %8s %12s %13s %9s %12s\n", w, "NAME", "ACK_FLOOR", "INFLIGHT", "MEMBERS",
           "REDELIVERED", "MAX_INFLIGHT", "ACK_WAIT", "MAX_DELIVER");
    for (size_t i = 0; i < n; i++) {
        cli_format_duration(v[i].ack_wait_ms, wait, sizeof(wait));
        if (v[i].max_deliver)
            snprintf(maxd, sizeof(maxd), "%u", v[i].max_deliver);
        else
            snprintf(maxd, sizeof(maxd), "unlimited");
        printf("%-*s %12llu %9u %8u %12llu %13u %9s %12s\n", w, v[i].name,
               (unsigned long long)v[i].ack_floor, v[i].inflight, v[i].members,
               (unsigned long long)v[i].redelivered, v[i].max_inflight, wait, maxd);
    }
}

/* ---- topic ---- */

/* Split "P[,P...]" (in buf, modified) into pats; returns the count, or -1
 * for an empty pattern or more than RMQ_TOPIC_SUBJECTS_MAX. */
static int split_subjects(char *buf, const char **pats)
{
    int n = 0;

    for (char *p = buf;; p++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p == '\0' || n == RMQ_TOPIC_SUBJECTS_MAX)
            return -1;
        pats[n++] = p;
        if (comma == NULL)
            return n;
        p = comma;
    }
}

static int topic_add(const char *server, int argc, char **argv)
{
    const char *name = NULL, *subjects = NULL, *pats[RMQ_TOPIC_SUBJECTS_MAX];
    rmq_topic_cfg cfg = {0};
    uint64_t timeout = CLI_ADMIN_TIMEOUT_MS;
    const struct opt opts[] = {
        {"--subjects", OPT_STR, &subjects},
        {"--max-msgs", OPT_U64, &cfg.max_msgs},
        {"--max-bytes", OPT_U64, &cfg.max_bytes},
        {"--max-age", OPT_DURATION, &cfg.max_age_ms},
        {"--dedup-window", OPT_DURATION, &cfg.dedup_window_ms},
        {"--timeout", OPT_TIMEOUT, &timeout},
    };
    rmq_topic_info info;
    rmq_client *c;
    char *buf;
    int rc, n, npos;

    rc = opts_parse("topic add", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &name, 1, &npos);
    if (rc != 0)
        return rc;
    if (name == NULL || subjects == NULL)
        return cli_bad_usage("topic add: want NAME --subjects P[,P...]%s", "");
    if ((rc = check_names("topic", name)) != 0)
        return rc;
    if ((buf = strdup(subjects)) == NULL)
        return cli_fail("topic add", -ENOMEM);
    n = split_subjects(buf, pats);
    if (n < 0) {
        free(buf);
        return cli_bad_usage("topic add: bad --subjects '%s' (want 1-16 patterns, comma-separated)",
                             subjects);
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = cli_check_subject(pats[i], true);
    if (rc == 0)
        rc = cli_connect(server, "ringmq-topic", &c);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    cfg.name = name;
    cfg.subjects = pats;
    cfg.nsubjects = (size_t)n;
    rc = rmq_topic_add(c, &cfg, (int)timeout, &info);
    free(buf);
    if (rc < 0)
        rc = admin_fail("topic add", thing("topic", name, NULL), rc, timeout);
    else
        topic_print(&info);
    rmq_close(c);
    return rc;
}

/* topic ls | info NAME | rm NAME: one name at most. */
static int topic_simple(const char *server, const char *sub, int argc, char **argv)
{
    const char *name = NULL;
    uint64_t timeout = CLI_ADMIN_TIMEOUT_MS;
    const struct opt opts[] = {{"--timeout", OPT_TIMEOUT, &timeout}};
    bool ls = strcmp(sub, "ls") == 0;
    char what[32];
    rmq_client *c;
    int rc, npos;

    snprintf(what, sizeof(what), "topic %s", sub);
    rc = opts_parse(what, argc, argv, opts, 1, &name, ls ? 0 : 1, &npos);
    if (rc != 0)
        return rc;
    if (!ls && name == NULL)
        return cli_bad_usage("%s: missing NAME", what);
    if (!ls && (rc = check_names("topic", name)) != 0)
        return rc;
    if ((rc = cli_connect(server, "ringmq-topic", &c)) != 0)
        return rc;
    if (ls) {
        rmq_topic_info *v;
        size_t n;
        rc = rmq_topic_list(c, (int)timeout, &v, &n);
        if (rc == 0) {
            topics_print(v, n);
            free(v);
        }
    } else if (strcmp(sub, "info") == 0) {
        rmq_topic_info info;
        rc = rmq_topic_info_get(c, name, (int)timeout, &info);
        if (rc == 0)
            topic_print(&info);
    } else {
        rc = rmq_topic_rm(c, name, (int)timeout);
        if (rc == 0)
            printf("removed topic %s\n", name);
    }
    if (rc < 0)
        rc = admin_fail(what, thing("topic", name ? name : "", NULL), rc, timeout);
    rmq_close(c);
    return rc;
}

/* `ringmq topic add|ls|info|rm ...`. Returns the exit code. */
int cli_topic(const char *server, int argc, char **argv)
{
    if (argc < 1)
        return cli_bad_usage("topic: want add, ls, info or rm%s", "");
    if (strcmp(argv[0], "add") == 0)
        return topic_add(server, argc - 1, argv + 1);
    if (strcmp(argv[0], "ls") == 0 || strcmp(argv[0], "info") == 0 || strcmp(argv[0], "rm") == 0)
        return topic_simple(server, argv[0], argc - 1, argv + 1);
    return cli_bad_usage("topic: unknown command '%s' (want add, ls, info or rm)", argv[0]);
}

/* ---- consumer ---- */

/* `ringmq consumer ls TOPIC | rm TOPIC DURABLE`. Returns the exit code. */
int cli_consumer(const char *server, int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL};
    uint64_t timeout = CLI_ADMIN_TIMEOUT_MS;
    const struct opt opts[] = {{"--timeout", OPT_TIMEOUT, &timeout}};
    bool ls = argc > 0 && strcmp(argv[0], "ls") == 0;
    rmq_client *c;
    int rc, npos;

    if (argc < 1 || (!ls && strcmp(argv[0], "rm") != 0))
        return cli_bad_usage("consumer: want 'ls TOPIC' or 'rm TOPIC DURABLE'%s", "");
    rc = opts_parse(ls ? "consumer ls" : "consumer rm", argc - 1, argv + 1, opts, 1, pos,
                    ls ? 1 : 2, &npos);
    if (rc != 0)
        return rc;
    if (npos != (ls ? 1 : 2))
        return cli_bad_usage("consumer: want 'ls TOPIC' or 'rm TOPIC DURABLE'%s", "");
    if ((rc = check_names("topic", pos[0])) != 0 ||
        (!ls && (rc = check_names("consumer", pos[1])) != 0))
        return rc;
    if ((rc = cli_connect(server, "ringmq-consumer", &c)) != 0)
        return rc;
    if (ls) {
        rmq_consumer_info *v;
        size_t n;
        rc = rmq_consumer_list(c, pos[0], (int)timeout, &v, &n);
        if (rc == 0) {
            consumers_print(v, n);
            free(v);
        }
    } else {
        rc = rmq_consumer_rm(c, pos[0], pos[1], (int)timeout);
        if (rc == 0)
            printf("removed consumer %s of topic %s\n", pos[1], pos[0]);
    }
    if (rc < 0)
        rc = admin_fail(ls ? "consumer ls" : "consumer rm",
                        ls ? thing("topic", pos[0], NULL) : thing("consumer", pos[1], pos[0]), rc,
                        timeout);
    rmq_close(c);
    return rc;
}

/* ---- consume ---- */

/* Print one consumer message as '[#n] subject seq=S deliveries=D: payload'. */
static void consume_print(uint64_t n, const rmq_msg *m)
{
    printf("[#%llu] %s seq=%llu deliveries=%u: ", (unsigned long long)n, rmq_msg_subject(m),
           (unsigned long long)rmq_msg_seq(m), rmq_msg_deliveries(m));
    fwrite(rmq_msg_data(m), 1, rmq_msg_len(m), stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Take, print and ack messages of s until count (0: SIGINT/SIGTERM).
 * Returns 0 or an exit code. */
static int consume_loop(rmq_client *c, rmq_sub *s, const char *topic, uint64_t count, bool ack)
{
    uint64_t got = 0;

    while (!cli_stopping() && (count == 0 || got < count)) {
        rmq_msg *m;
        int rc = rmq_sub_next(s, 200, &m);

        if (rc == -ETIMEDOUT)
            continue;
        if (rc == RMQ_ENOTFOUND) {
            fprintf(stderr, "ringmq: consume: no such topic '%s'\n", topic);
            return cli_exit_code(rc);
        }
        if (rc < 0)
            return cli_fail("consume", rc);
        consume_print(++got, m);
        rc = ack ? rmq_ack(c, m) : 0;
        rmq_msg_free(m);
        if (rc < 0)
            return cli_fail("ack", rc);
    }
    return 0;
}

/*
 * `ringmq consume TOPIC DURABLE ...`. Messages beyond --count that were
 * already delivered are not acked: the broker redelivers them once the
 * subscription is gone. The acks are flushed before exiting.
 */
int cli_consume(const char *server, int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL};
    rmq_consumer_opts co = {0};
    uint64_t count = 0;
    bool no_ack = false;
    const struct opt opts[] = {
        {"--count", OPT_COUNT, &count},
        {"--max-inflight", OPT_U32, &co.max_inflight},
        {"--ack-wait", OPT_DURATION, &co.ack_wait_ms},
        {"--max-deliver", OPT_U32, &co.max_deliver},
        {"--no-ack", OPT_FLAG, &no_ack},
    };
    rmq_client *c;
    rmq_sub *s;
    int rc, npos, frc;

    rc = opts_parse("consume", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 2, &npos);
    if (rc != 0)
        return rc;
    if (npos != 2)
        return cli_bad_usage("consume: want TOPIC DURABLE%s", "");
    if ((rc = check_names("topic", pos[0])) != 0 || (rc = check_names("consumer", pos[1])) != 0)
        return rc;
    if ((rc = cli_connect(server, "ringmq-consume", &c)) != 0)
        return rc;
    rc = rmq_consume(c, pos[0], pos[1], &co, NULL, NULL, &s);
    if (rc < 0) {
        rc = cli_fail("consume", rc);
        rmq_close(c);
        return rc;
    }
    rc = rmq_flush(c, CLI_ADMIN_TIMEOUT_MS);
    rc = rc < 0 ? cli_fail("consume", rc) : consume_loop(c, s, pos[0], count, !no_ack);
    rmq_unsubscribe(s);
    frc = rmq_flush(c, CLI_ADMIN_TIMEOUT_MS); /* the acks reach the broker */
    if (rc == 0 && frc < 0)
        rc = cli_fail("flush", frc);
    rmq_close(c);
    return rc;
}

/* ---- pub --ack ---- */

/* Publish one message and wait until a topic stored it; prints
 * 'topic=NAME seq=N' (and ' (duplicate)'). Returns 0 or an exit code. */
int cli_pub_ack(rmq_client *c, const char *subj, const char *data, size_t len, const char *msg_id,
                int timeout_ms)
{
    rmq_pub_ack ack;
    int rc = rmq_publish_ack(c, subj, data, len, msg_id, timeout_ms, &ack);

    if (rc == -ETIMEDOUT) {
        fprintf(stderr,
                "ringmq: publish: no ack within %d ms: no topic stores '%s', or the server is "
                "slow (then it may be stored: re-send with --msg-id)\n",
                timeout_ms, subj);
        return CLI_EXIT_TIMEOUT;
    }
    if (rc == RMQ_ENOTFOUND) {
        fprintf(stderr, "ringmq: publish: no topic stores '%s'\n", subj);
        return cli_exit_code(rc);
    }
    if (rc < 0)
        return cli_fail("publish", rc);
    printf("topic=%s seq=%llu%s\n", ack.topic, (unsigned long long)ack.seq,
           ack.duplicate ? " (duplicate)" : "");
    fflush(stdout);
    return 0;
}
