/*
 * testutil.h - helpers shared by the Check test programs: a seed that is
 * printed, a real ringmqd started as a child process on an ephemeral
 * loopback port, and raw-socket helpers for sending bad input.
 *
 * Call these from inside a test (the forked child Check runs it in), so
 * that each test gets its own broker and nothing leaks between tests.
 */
#ifndef RMQ_TESTS_TESTUTIL_H
#define RMQ_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Seed from RMQ_TEST_SEED or the clock; printed once per process. */
unsigned test_seed(void);

struct tbroker {
    pid_t pid;
    uint16_t port;
    char dir[256]; /* scratch dir: port file, log */
    char log[300]; /* the broker's stderr */
    char addr[64]; /* "127.0.0.1:PORT" for rmq_connect_to() */
};

/*
 * Start ringmqd on 127.0.0.1 with port (0 = ephemeral) and extra args (a
 * NULL-terminated list, or NULL). Waits until it is listening (at most 10 s).
 * Returns 0 or -1 (the log is printed to stderr then).
 */
int tbroker_start(struct tbroker *b, uint16_t port, const char *const *extra);

/*
 * Send sig and wait for the exit (at most timeout_ms, then SIGKILL).
 * Returns the exit status (0..255), 128+signal if killed by a signal, or -1
 * on timeout.
 */
int tbroker_stop(struct tbroker *b, int sig, int timeout_ms);

/* Restart on the same port with the same extra args after a stop. */
int tbroker_restart(struct tbroker *b, const char *const *extra);

/* Print the broker log to stderr (for failing tests). */
void tbroker_dump_log(const struct tbroker *b);

/* Raw TCP to 127.0.0.1:port; returns a blocking fd or -1. */
int raw_connect(uint16_t port);
/* Send all bytes; 0 or -1. */
int raw_send(int fd, const void *p, size_t n);
/* Send CONNECT and read INFO; 0 or -1. */
int raw_handshake(int fd);
/*
 * Read one frame within timeout_ms into buf (body only). Returns the frame
 * kind (codec_kind, >= 0) with *len set, -2 on EOF, -1 on timeout/error.
 */
int raw_read_frame(int fd, uint8_t *buf, size_t cap, size_t *len, int timeout_ms);
/* Read frames until an ERROR; returns its wire code, or -2 EOF, -1 timeout. */
int raw_expect_error(int fd, int timeout_ms, int *fatal);
/* Read until EOF within timeout_ms: 0 if the server closed, -1 if not. */
int raw_wait_eof(int fd, int timeout_ms);

/* Monotonic milliseconds. */
uint64_t test_now_ms(void);

#endif
