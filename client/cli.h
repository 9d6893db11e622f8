/*
 * cli.h - shared pieces of the ringmq CLI (cli.c, cli_bench.c, cli_topic.c,
 * cli_parse.c): exit codes and helpers. Not installed; the CLI uses only
 * the public ringmq.h API.
 */
#ifndef RMQ_CLIENT_CLI_H
#define RMQ_CLIENT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "ringmq.h"

/* Exit codes, listed in `ringmq --help`. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1   /* other error: out of memory, I/O */
#define CLI_EXIT_USAGE 2   /* bad arguments */
#define CLI_EXIT_CONNECT 3 /* cannot connect: server down or unreachable */
#define CLI_EXIT_SUBJECT 4 /* invalid subject, pattern, queue, topic or consumer name */
#define CLI_EXIT_TIMEOUT 5 /* no reply / no flush acknowledgement in time */
#define CLI_EXIT_SERVER 6  /* server error or connection lost */
#define CLI_EXIT_LOST 7    /* bench: messages were lost */

/* Default timeout of the durable-topic commands (admin calls, pub --ack). */
#define CLI_ADMIN_TIMEOUT_MS 5000

/* ---- cli.c ---- */
int cli_exit_code(int err);
int cli_fail(const char *what, int err);
int cli_connect(const char *server, const char *name, rmq_client **out);
int cli_bad_usage(const char *fmt, const char *arg);
int cli_check_subject(const char *subj, bool pattern);
bool cli_stopping(void);

/* ---- cli_bench.c ---- */
int cli_bench(const char *server, int argc, char **argv);

/* ---- cli_topic.c: topic, consume, consumer, pub --ack ---- */
int cli_topic(const char *server, int argc, char **argv);
int cli_consume(const char *server, int argc, char **argv);
int cli_consumer(const char *server, int argc, char **argv);
int cli_pub_ack(rmq_client *c, const char *subj, const char *data, size_t len, const char *msg_id,
                int timeout_ms);

/* ---- cli_parse.c: option values (pure functions) ---- */
/* "500ms", "30s", "5m", "2h", "7d" or "0" into milliseconds; false if bad. */
bool cli_parse_duration(const char *s, uint64_t *ms);
/* The inverse, in the largest unit that divides ms ("0" for 0). */
void cli_format_duration(uint64_t ms, char *out, size_t cap);
/* Unix seconds ("1714564800[.5]") or ISO-8601 ("2024-05-01T12:00:00[.123][Z|+02:00]",
 * also with a space for T, without seconds, or a date alone; no zone is UTC)
 * into ns since the epoch; false if bad or before 1970. */
bool cli_parse_time(const char *s, uint64_t *ns);
/* ns since the epoch as ISO-8601 UTC with milliseconds: "2024-05-01T12:00:00.123Z". */
void cli_format_time(uint64_t ns, char *out, size_t cap);
/* "new", "all", "last", "seq=N" or "time=TIME" into *o; false if bad. */
bool cli_parse_start(const char *s, rmq_replay_opts *o);
/* true for a topic or consumer name: 1-64 of [A-Za-z0-9_-]. */
bool cli_name_ok(const char *s);

#endif
