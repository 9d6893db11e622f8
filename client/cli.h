/*
 * cli.h - shared pieces of the ringmq CLI (cli.c, cli_bench.c): exit codes
 * and helpers. Not installed; the CLI uses only the public ringmq.h API.
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
#define CLI_EXIT_SUBJECT 4 /* invalid subject, pattern or queue name */
#define CLI_EXIT_TIMEOUT 5 /* no reply / no flush acknowledgement in time */
#define CLI_EXIT_SERVER 6  /* server error or connection lost */
#define CLI_EXIT_LOST 7    /* bench: messages were lost */

int cli_exit_code(int err);
int cli_fail(const char *what, int err);
int cli_connect(const char *server, const char *name, rmq_client **out);
int cli_bench(const char *server, int argc, char **argv);

#endif
