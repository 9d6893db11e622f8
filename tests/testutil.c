/*
 * testutil.c - see testutil.h. RINGMQD_PATH is set by CMake to the built
 * broker binary.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "codec.h"

#ifndef RINGMQD_PATH
#define RINGMQD_PATH "ringmqd"
#endif

/* See testutil.h. */
unsigned test_seed(void)
{
    static unsigned seed;
    static int done;
    if (!done) {
        const char *e = getenv("RMQ_TEST_SEED");
        seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
        fprintf(stderr, "test seed: RMQ_TEST_SEED=%u\n", seed);
        done = 1;
    }
    return seed;
}

/* See testutil.h. */
uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int spawn(struct tbroker *b, uint16_t port, const char *const *extra)
{
    char listen[64], portfile[300], datadir[300];
    const char *argv[64];
    int n = 0, fd;

    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(portfile, sizeof(portfile), "%s/port", b->dir);
    unlink(portfile);
    argv[n++] = RINGMQD_PATH;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    /* Each broker its own store (a later --data-dir in extra wins). */
    snprintf(datadir, sizeof(datadir), "%s/data", b->dir);
    argv[n++] = "--data-dir";
    argv[n++] = datadir;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    b->pid = fork();
    if (b->pid < 0)
        return -1;
    if (b->pid == 0) {
        fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(portfile, "r");
        unsigned p = 0;
        int st;
        if (f) {
            if (fscanf(f, "%u", &p) == 1 && p) {
                fclose(f);
                b->port = (uint16_t)p;
                snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%u", p);
                return 0;
            }
            fclose(f);
        }
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->pid = 0;
            break;
        }
        usleep(10000);
    }
    tbroker_dump_log(b);
    return -1;
}

/* See testutil.h. */
int tbroker_start(struct tbroker *b, uint16_t port, const char *const *extra)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->dir, sizeof(b->dir), "/tmp/ringmq-test-XXXXXX");
    if (!mkdtemp(b->dir))
        return -1;
    snprintf(b->log, sizeof(b->log), "%s/log", b->dir);
    return spawn(b, port, extra);
}

/* See testutil.h. */
int tbroker_restart(struct tbroker *b, const char *const *extra)
{
    return spawn(b, b->port, extra);
}

/* See testutil.h. */
int tbroker_stop(struct tbroker *b, int sig, int timeout_ms)
{
    int st;
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    if (b->pid <= 0)
        return -1;
    kill(b->pid, sig);
    while (test_now_ms() < end) {
        pid_t r = waitpid(b->pid, &st, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        usleep(5000);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &st, 0);
    b->pid = 0;
    return -1;
}

/* See testutil.h. */
void tbroker_dump_log(const struct tbroker *b)
{
    char line[1024];
    FILE *f = fopen(b->log, "r");
    if (!f)
        return;
    fprintf(stderr, "---- ringmqd log %s ----\n", b->log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

/* See testutil.h. */
int raw_connect(uint16_t port)
{
    struct sockaddr_in a = {0};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* See testutil.h. */
int raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, uint8_t *p, size_t n, uint64_t end)
{
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = (int64_t)(end - test_now_ms());
        ssize_t r;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        r = recv(fd, p, n, 0);
        if (r == 0)
            return -2;
        if (r < 0)
            return errno == EINTR ? 0 : (errno == ECONNRESET ? -2 : -1);
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* See testutil.h. */
int raw_read_frame(int fd, uint8_t *buf, size_t cap, size_t *len, int timeout_ms)
{
    uint8_t hdr[4];
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    struct codec_span sp;
    uint32_t n;
    int rc = read_full(fd, hdr, 4, end);
    if (rc)
        return rc;
    n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (n > cap)
        return -1;
    rc = read_full(fd, buf, n, end);
    if (rc)
        return rc;
    *len = n;
    rc = codec_peek(buf, n, &sp);
    return rc < 0 ? -1 : rc;
}

/* See testutil.h. */
int raw_handshake(int fd)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Connect c = RINGMQ__CONNECT__INIT;
    uint8_t buf[4096];
    size_t len;
    ssize_t n;
    c.version = CODEC_PROTO_VERSION;
    c.name = "raw";
    f.kind_case = RINGMQ__FRAME__KIND_CONNECT;
    f.connect = &c;
    n = codec_frame_write(&f, buf, sizeof(buf));
    if (n < 0 || raw_send(fd, buf, (size_t)n))
        return -1;
    return raw_read_frame(fd, buf, sizeof(buf), &len, 5000) == CODEC_K_INFO ? 0 : -1;
}

/* See testutil.h. */
int raw_expect_error(int fd, int timeout_ms, int *fatal)
{
    static uint8_t buf[2 << 20];
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t len;
        int64_t left = (int64_t)(end - test_now_ms());
        int k = raw_read_frame(fd, buf, sizeof(buf), &len, left > 0 ? (int)left : 0);
        if (k < 0)
            return k;
        if (k == CODEC_K_ERR) {
            struct codec_span sp;
            Ringmq__Error *e;
            int code;
            codec_peek(buf, len, &sp);
            e = ringmq__error__unpack(NULL, sp.len, sp.p);
            if (!e)
                return -1;
            code = (int)e->code;
            if (fatal)
                *fatal = e->has_fatal && e->fatal;
            ringmq__error__free_unpacked(e, NULL);
            return code;
        }
    }
}

/* See testutil.h. */
int raw_wait_eof(int fd, int timeout_ms)
{
    uint8_t buf[4096];
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = (int64_t)(end - test_now_ms());
        ssize_t r;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}
