/*
 * itest.c - see itest.h.
 */
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef RINGMQD_PATH
#define RINGMQD_PATH "ringmqd"
#endif

struct tbroker *it_cur_broker;
static uint64_t g_seed;

/* Large enough for a MESSAGE frame with a 1 MiB payload. */
#define RAW_BUF (2u << 20)
static uint8_t raw_buf[RAW_BUF];

/* See itest.h. */
void it_dump_log(void)
{
    if (it_cur_broker)
        tbroker_dump_log(it_cur_broker);
}

/* See itest.h. */
uint64_t it_seed(void)
{
    return g_seed;
}

/* See itest.h. */
uint64_t it_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}

static int uring_probe(void)
{
    struct io_uring_params p;
    long fd;
    memset(&p, 0, sizeof(p));
    fd = syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return -errno;
    close((int)fd);
    return 0;
}

/* See itest.h. */
int it_main(const char *prog, Suite *(*make_suite)(void))
{
    const char *env = getenv("RMQ_TEST_SEED");
    SRunner *sr;
    int failed, rc;

    g_seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    printf("%s: RMQ_TEST_SEED=%" PRIu64 "\n", prog, g_seed);
    fflush(stdout); /* before fork(), or the children print it again */
    signal(SIGPIPE, SIG_IGN);
    rc = uring_probe();
    if (rc == -ENOSYS || rc == -EPERM) {
        printf("%s: io_uring not available (%s); skipping\n", prog, strerror(-rc));
        return 77;
    }
    sr = srunner_create(make_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- Broker ---- */

/* extra plus "--shards $RMQ_TEST_SHARDS" when that is set (and extra has none). */
static const char *const *with_shards(const char *const *extra)
{
    static const char *args[40];
    const char *env = getenv("RMQ_TEST_SHARDS");
    int n = 0;
    bool has = false;
    for (int i = 0; extra && extra[i] && n < 36; i++) {
        has = has || strcmp(extra[i], "--shards") == 0;
        args[n++] = extra[i];
    }
    if (env && *env && !has) {
        args[n++] = "--shards";
        args[n++] = env;
    }
    args[n] = NULL;
    return args;
}

/* See itest.h. */
void it_broker_start(struct tbroker *b, const char *const *extra)
{
    int rc = tbroker_start(b, 0, with_shards(extra));
    ck_assert_msg(rc == 0, "ringmqd did not start (log above)");
    it_cur_broker = b;
}

/* See itest.h. */
int it_broker_restart(struct tbroker *b, const char *const *extra)
{
    return tbroker_restart(b, with_shards(extra));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: go on */
    return 0;
}

/* See itest.h. */
void it_broker_cleanup(const struct tbroker *b)
{
    if (strncmp(b->dir, "/tmp/ringmq-test-", 17) != 0)
        return;
    nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* See itest.h. */
void it_broker_stop_ok(struct tbroker *b, int timeout_ms)
{
    int st = tbroker_stop(b, SIGTERM, timeout_ms);
    IT_CHECK(st == 0, "ringmqd exit status after SIGTERM: %d (want 0; -1 = timeout)", st);
    /* Kept when the test fails before this point, for the log. */
    it_broker_cleanup(b);
    if (it_cur_broker == b)
        it_cur_broker = NULL;
}

/* See itest.h. */
bool it_broker_alive(struct tbroker *b)
{
    int st;
    if (b->pid <= 0)
        return false;
    if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
        b->pid = 0;
        return false;
    }
    return kill(b->pid, 0) == 0;
}

/* See itest.h. */
int it_broker_wait_exit(struct tbroker *b, int timeout_ms)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    int st;
    if (b->pid <= 0)
        return -1;
    for (;;) {
        pid_t r = waitpid(b->pid, &st, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (test_now_ms() >= end)
            return -1;
        usleep(2000);
    }
}

/* See itest.h. */
int it_exec_ringmqd(const char *const *args, const char *log_path, int timeout_ms,
                    bool *still_running)
{
    const char *argv[32];
    int n = 0, st;
    uint64_t end;
    pid_t pid;

    argv[n++] = RINGMQD_PATH;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    *still_running = false;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (test_now_ms() >= end)
            break;
        usleep(5000);
    }
    *still_running = true;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* See itest.h. */
void it_raise_nofile(unsigned want)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_cur >= want, "RLIMIT_NOFILE is %llu, this test needs %u",
                  (unsigned long long)rl.rlim_cur, want);
}

/* ---- Clients ---- */

/* See itest.h. */
void it_rec_init(struct it_rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
}

static void rec_event_cb(rmq_client *c, int event, int err, void *arg)
{
    struct it_rec *r = arg;
    (void)c;
    pthread_mutex_lock(&r->mu);
    if (r->nev < IT_MAX_EVENTS) {
        r->ev[r->nev] = event;
        r->ev_err[r->nev] = err;
        r->nev++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void rec_error_cb(rmq_client *c, rmq_sub *sub, int err, const char *text, void *arg)
{
    struct it_rec *r = arg;
    (void)c;
    (void)sub;
    pthread_mutex_lock(&r->mu);
    if (r->nerr < IT_MAX_EVENTS)
        r->err[r->nerr++] = err;
    snprintf(r->last_text, sizeof(r->last_text), "%s", text ? text : "(null)");
    pthread_mutex_unlock(&r->mu);
}

/* See itest.h. */
int it_rec_count(struct it_rec *r, int ev)
{
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nev; i++)
        n += r->ev[i] == ev;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* See itest.h. */
int it_rec_errs(struct it_rec *r, int err)
{
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nerr; i++)
        n += r->err[i] == err;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* See itest.h. */
int it_rec_wait(struct it_rec *r, int ev, int n, int timeout_ms)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    while (it_rec_count(r, ev) < n) {
        if (test_now_ms() >= end)
            return -1;
        usleep(1000);
    }
    return 0;
}

/* See itest.h. */
rmq_opts *it_opts(const char *addr, const char *name, struct it_rec *rec, int reconnect_attempts)
{
    rmq_opts *o = NULL;
    ck_assert_int_eq(rmq_opts_new(&o), 0);
    ck_assert_int_eq(rmq_opts_set_servers(o, addr), 0);
    ck_assert_int_eq(rmq_opts_set_name(o, name), 0);
    ck_assert_int_eq(rmq_opts_set_connect_timeout(o, 2000), 0);
    ck_assert_int_eq(rmq_opts_set_reconnect_wait(o, 50, 200), 0);
    ck_assert_int_eq(rmq_opts_set_max_reconnect(o, reconnect_attempts), 0);
    if (rec) {
        ck_assert_int_eq(rmq_opts_set_event_cb(o, rec_event_cb, rec), 0);
        ck_assert_int_eq(rmq_opts_set_error_cb(o, rec_error_cb, rec), 0);
    }
    return o;
}

/* See itest.h. */
rmq_client *it_client(const char *addr, const char *name, struct it_rec *rec)
{
    rmq_opts *o = it_opts(addr, name, rec, 0);
    rmq_client *c = NULL;
    int rc = rmq_connect(o, &c);
    rmq_opts_free(o);
    IT_CHECK(rc == 0 && c, "rmq_connect(%s) as %s: %s", addr, name, rmq_strerror(rc));
    return c;
}

/* See itest.h. */
void it_close(rmq_client *c)
{
    int rc = rmq_close(c);
    IT_CHECK(rc == 0, "rmq_close: %s", rmq_strerror(rc));
}

/* See itest.h. */
int it_stats_get(rmq_client *c, const char *key, uint64_t *out)
{
    char json[4096], pat[80];
    rmq_msg *m = NULL;
    size_t n;
    const char *p;
    char *end;
    int rc = rmq_request(c, "$SYS.REQ.STATS", NULL, 0, 3000, &m);
    if (rc)
        return rc;
    n = rmq_msg_len(m) < sizeof(json) - 1 ? rmq_msg_len(m) : sizeof(json) - 1;
    memcpy(json, rmq_msg_data(m), n);
    json[n] = '\0';
    rmq_msg_free(m);
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    if (!p)
        return -ENOENT;
    errno = 0;
    *out = strtoull(p + strlen(pat), &end, 10);
    if (errno || end == p + strlen(pat))
        return -ENOENT;
    return 0;
}

/* See itest.h. */
uint64_t it_stat(rmq_client *c, const char *key)
{
    uint64_t v = 0;
    int rc = it_stats_get(c, key, &v);
    IT_CHECK(rc == 0, "stats '%s': %s", key, rmq_strerror(rc));
    return v;
}

/* See itest.h. */
int it_stat_wait(rmq_client *c, const char *key, uint64_t want, int timeout_ms, uint64_t *last)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        *last = it_stat(c, key);
        if (*last == want)
            return 0;
        if (test_now_ms() >= end)
            return -1;
        usleep(10000);
    }
}

/* See itest.h. */
int it_wait_atomic(_Atomic uint64_t *v, uint64_t want, int timeout_ms)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(v) < want) {
        if (test_now_ms() >= end)
            return -1;
        usleep(1000);
    }
    return 0;
}

/* ---- Payloads ---- */

static uint8_t pattern_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

/* See itest.h. */
void it_payload_fill(uint8_t *buf, size_t len, uint64_t seq)
{
    for (int i = 0; i < 8 && (size_t)i < len; i++)
        buf[i] = (uint8_t)(seq >> (56 - 8 * i));
    for (size_t i = 8; i < len; i++)
        buf[i] = pattern_byte(seq, i);
}

/* See itest.h. */
int64_t it_payload_seq(const uint8_t *buf, size_t len)
{
    uint64_t seq = 0;
    if (len < 8)
        return -1;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | buf[i];
    for (size_t i = 8; i < len; i++)
        if (buf[i] != pattern_byte(seq, i))
            return -1;
    return (int64_t)(seq & INT64_MAX);
}

/* See itest.h. */
void it_seq_init(struct it_seq *s, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->n = n;
    s->seen = calloc(n ? n : 1, 1);
    ck_assert_ptr_nonnull(s->seen);
    s->ooo_want = s->ooo_got = -1;
}

/* See itest.h. */
void it_seq_free(struct it_seq *s)
{
    free(s->seen);
    s->seen = NULL;
}

/* See itest.h. */
void it_seq_note(struct it_seq *s, const void *data, size_t len)
{
    int64_t seq = it_payload_seq(data, len);
    pthread_mutex_lock(&s->mu);
    if (seq < 0 || (uint64_t)seq >= s->n) {
        s->bad++;
    } else {
        if (s->seen[seq])
            s->dups++;
        else
            s->count++;
        s->seen[seq] = 1;
        if ((uint64_t)seq != s->next) {
            if (!s->ooo) {
                s->ooo_want = (int64_t)s->next;
                s->ooo_got = seq;
            }
            s->ooo++;
        }
        s->next = (uint64_t)seq + 1;
    }
    pthread_mutex_unlock(&s->mu);
}

/* See itest.h. */
void it_seq_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    (void)c;
    (void)sub;
    it_seq_note(arg, rmq_msg_data(m), rmq_msg_len(m));
}

/* See itest.h. */
int64_t it_seq_first_missing(struct it_seq *s, uint64_t upto)
{
    int64_t r = -1;
    pthread_mutex_lock(&s->mu);
    for (uint64_t i = 0; i < upto && i < s->n; i++) {
        if (!s->seen[i]) {
            r = (int64_t)i;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* See itest.h. */
void it_seq_expect(struct it_seq *s, uint64_t want, bool ordered, int timeout_ms, const char *what)
{
    int rc = it_wait_atomic(&s->count, want, timeout_ms);
    uint64_t got = atomic_load(&s->count);
    IT_CHECK(rc == 0,
             "%s: got %" PRIu64 " of %" PRIu64 " messages in %d ms (first missing %" PRId64
             ", dups %" PRIu64 ", bad %" PRIu64 ")",
             what, got, want, timeout_ms, it_seq_first_missing(s, want),
             (uint64_t)atomic_load(&s->dups), (uint64_t)atomic_load(&s->bad));
    IT_CHECK(got == want, "%s: %" PRIu64 " distinct messages, want %" PRIu64, what, got, want);
    IT_CHECK(atomic_load(&s->dups) == 0, "%s: %" PRIu64 " duplicates", what,
             (uint64_t)atomic_load(&s->dups));
    IT_CHECK(atomic_load(&s->bad) == 0, "%s: %" PRIu64 " corrupt or out-of-range payloads", what,
             (uint64_t)atomic_load(&s->bad));
    if (ordered)
        IT_CHECK(atomic_load(&s->ooo) == 0,
                 "%s: %" PRIu64 " out-of-order messages, first: wanted %" PRId64 " got %" PRId64,
                 what, (uint64_t)atomic_load(&s->ooo), s->ooo_want, s->ooo_got);
}

/* ---- Load ---- */

/* See itest.h. */
void it_load_start(struct it_load *l, const char *addr, uint64_t total)
{
    int rc;
    memset(l, 0, sizeof(*l));
    it_seq_init(&l->seq, total);
    snprintf(l->subj, sizeof(l->subj), "load.%u", (unsigned)getpid());
    l->c = it_client(addr, "load", NULL);
    rc = rmq_subscribe(l->c, l->subj, NULL, it_seq_cb, &l->seq, &l->sub);
    IT_CHECK(rc == 0, "load subscribe: %s", rmq_strerror(rc));
    rc = rmq_flush(l->c, 20000);
    IT_CHECK(rc == 0, "load flush: %s", rmq_strerror(rc));
}

static void load_pub_range(struct it_load *l, uint64_t from, uint64_t count, int pace_us,
                           int *first_err)
{
    uint8_t buf[64];
    for (uint64_t i = from; i < from + count; i++) {
        int rc;
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish(l->c, l->subj, buf, sizeof(buf));
        if (rc && !*first_err)
            *first_err = rc;
        if (pace_us && (i - from) % 10 == 9)
            usleep((useconds_t)pace_us);
    }
}

static void *load_thread(void *arg)
{
    struct it_load *l = arg;
    int err = 0;
    load_pub_range(l, l->from, l->count, l->pace_us, &err);
    atomic_store(&l->pub_err, err);
    return NULL;
}

/* See itest.h. */
void it_load_async(struct it_load *l, uint64_t from, uint64_t count, int pace_us)
{
    l->from = from;
    l->count = count;
    l->pace_us = pace_us;
    ck_assert_int_eq(pthread_create(&l->th, NULL, load_thread, l), 0);
    l->running = true;
}

/* See itest.h. */
void it_load_join(struct it_load *l)
{
    int err;
    if (!l->running)
        return;
    pthread_join(l->th, NULL);
    l->running = false;
    err = atomic_load(&l->pub_err);
    IT_CHECK(err == 0, "load publisher: %s", rmq_strerror(err));
}

/* See itest.h. */
void it_load_publish(struct it_load *l, uint64_t from, uint64_t count)
{
    int err = 0;
    load_pub_range(l, from, count, 0, &err);
    IT_CHECK(err == 0, "load publish: %s", rmq_strerror(err));
}

/* See itest.h. */
void it_load_expect(struct it_load *l, uint64_t want, int timeout_ms)
{
    int rc = rmq_flush(l->c, timeout_ms);
    IT_CHECK(rc == 0, "load flush: %s", rmq_strerror(rc));
    it_seq_expect(&l->seq, want, true, timeout_ms, "load client");
}

/* See itest.h. */
void it_load_stop(struct it_load *l)
{
    it_load_join(l);
    it_close(l->c);
    it_seq_free(&l->seq);
}

/* ---- Raw protocol ---- */

/* See itest.h. */
int it_raw_open(uint16_t port)
{
    int fd = raw_connect(port);
    IT_CHECK(fd >= 0, "raw connect to port %u failed", port);
    IT_CHECK(raw_handshake(fd) == 0, "raw handshake failed");
    return fd;
}

/* See itest.h. */
int it_raw_frame(int fd, const void *body, size_t len)
{
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                      (uint8_t)len};
    if (raw_send(fd, hdr, 4))
        return -1;
    return len ? raw_send(fd, body, len) : 0;
}

/* See itest.h. */
int it_raw_send_frame(int fd, const Ringmq__Frame *f)
{
    size_t n = codec_frame_size(f);
    uint8_t *buf = malloc(n);
    int rc = -1;
    if (buf && codec_frame_write(f, buf, n) == (ssize_t)n)
        rc = raw_send(fd, buf, n);
    free(buf);
    return rc;
}

/* See itest.h. */
int it_raw_sub(int fd, uint64_t sid, const char *pattern, const char *queue)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Subscribe s = RINGMQ__SUBSCRIBE__INIT;
    s.sid = sid;
    s.pattern = (char *)pattern;
    s.queue = (char *)queue;
    f.kind_case = RINGMQ__FRAME__KIND_SUB;
    f.sub = &s;
    return it_raw_send_frame(fd, &f);
}

/* See itest.h. */
int it_raw_unsub(int fd, uint64_t sid, uint64_t max)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Unsubscribe u = RINGMQ__UNSUBSCRIBE__INIT;
    u.sid = sid;
    u.has_max = max != 0;
    u.max = max;
    f.kind_case = RINGMQ__FRAME__KIND_UNSUB;
    f.unsub = &u;
    return it_raw_send_frame(fd, &f);
}

/* See itest.h. */
int it_raw_pub(int fd, const char *subj, const char *reply, const void *data, size_t len)
{
    size_t slen = strlen(subj), rlen = reply ? strlen(reply) : 0;
    size_t n = codec_pub_size(subj, slen, reply, rlen, NULL, 0, len);
    uint8_t *buf = malloc(n);
    int rc;
    if (!buf)
        return -1;
    codec_pub_write(buf, subj, slen, reply, rlen, NULL, 0, data ? data : "", len);
    rc = raw_send(fd, buf, n);
    free(buf);
    return rc;
}

/* See itest.h. */
int it_raw_ping(int fd, uint64_t token)
{
    uint8_t buf[32];
    ssize_t n = codec_ping_write(buf, sizeof(buf), CODEC_K_PING, token);
    return n > 0 ? raw_send(fd, buf, (size_t)n) : -1;
}

/* See itest.h. */
int it_decode_error(const uint8_t *body, size_t len, int *code, int *fatal, uint64_t *sid,
                    char *text, size_t tlen)
{
    struct codec_span sp;
    Ringmq__Error *e;
    if (codec_peek(body, len, &sp) != CODEC_K_ERR)
        return -1;
    e = ringmq__error__unpack(NULL, sp.len, sp.p);
    if (!e)
        return -1;
    *code = (int)e->code;
    *fatal = e->has_fatal && e->fatal;
    *sid = e->has_sid ? e->sid : 0;
    if (text && tlen)
        snprintf(text, tlen, "%s", e->text ? e->text : "");
    ringmq__error__free_unpacked(e, NULL);
    return 0;
}

/* Account one frame in seen; returns the PONG token for PONG frames, else -1. */
static int64_t seen_add(struct it_raw_seen *seen, int kind, const uint8_t *body, size_t len,
                        int64_t want)
{
    struct codec_span sp;
    if (kind == CODEC_K_PONG) {
        Ringmq__Pong *p;
        int64_t tok = -1;
        codec_peek(body, len, &sp);
        p = ringmq__pong__unpack(NULL, sp.len, sp.p);
        if (p) {
            tok = p->has_token ? (int64_t)(p->token & INT64_MAX) : 0;
            ringmq__pong__free_unpacked(p, NULL);
        }
        if (seen && tok != want)
            seen->pongs++;
        return tok;
    }
    if (!seen)
        return -1;
    if (kind == CODEC_K_MSG) {
        struct codec_msg m;
        seen->msgs++;
        codec_peek(body, len, &sp);
        if (codec_msg_parse(sp.p, sp.len, &m) == 0) {
            seen->last_msg_len = m.payload.len;
            seen->last_msg_seq = it_payload_seq(m.payload.p, m.payload.len);
        } else {
            seen->last_msg_seq = -1;
        }
    } else if (kind == CODEC_K_ERR) {
        int code = -1, fatal = 0;
        uint64_t sid = 0;
        char text[80] = "";
        it_decode_error(body, len, &code, &fatal, &sid, text, sizeof(text));
        if (seen->errs < 16) {
            memcpy(seen->err_text[seen->errs], text, sizeof(text));
            seen->err_code[seen->errs] = code;
            seen->err_fatal[seen->errs] = fatal;
            seen->err_sid[seen->errs] = sid;
        }
        seen->errs++;
    } else {
        seen->other++;
    }
    return -1;
}

/* See itest.h. */
int it_raw_sync(int fd, uint64_t token, int timeout_ms, struct it_raw_seen *seen)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    if (seen)
        memset(seen, 0, sizeof(*seen));
    if (it_raw_ping(fd, token))
        return -2;
    for (;;) {
        int64_t left = (int64_t)(end - test_now_ms());
        size_t len = 0;
        int k;
        if (left <= 0)
            return -1;
        k = raw_read_frame(fd, raw_buf, sizeof(raw_buf), &len, (int)left);
        if (k < 0)
            return k;
        if (seen_add(seen, k, raw_buf, len, (int64_t)token) == (int64_t)token)
            return 0;
    }
}

/* See itest.h. */
int it_raw_read_to_eof(int fd, int timeout_ms, struct it_raw_seen *seen)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    if (seen)
        memset(seen, 0, sizeof(*seen));
    for (;;) {
        int64_t left = (int64_t)(end - test_now_ms());
        size_t len = 0;
        int k;
        if (left <= 0)
            return -1;
        k = raw_read_frame(fd, raw_buf, sizeof(raw_buf), &len, (int)left);
        if (k == -2)
            return 0;
        if (k < 0)
            return test_now_ms() >= end ? -1 : -3;
        seen_add(seen, k, raw_buf, len, -1);
    }
}

/* ---- Durable topics ---- */

/* See itest.h. */
int it_broker_kill(struct tbroker *b, int timeout_ms)
{
    if (b->pid <= 0)
        return -1;
    if (kill(b->pid, SIGKILL) != 0)
        return -1;
    return it_broker_wait_exit(b, timeout_ms);
}

/* See itest.h. */
void it_topic_add(rmq_client *c, const char *name, const char *const *subjects,
                  const rmq_topic_cfg *limits, rmq_topic_info *info)
{
    rmq_topic_cfg cfg;
    size_t n = 0;
    int rc;
    memset(&cfg, 0, sizeof(cfg));
    if (limits)
        cfg = *limits;
    while (subjects[n])
        n++;
    cfg.name = name;
    cfg.subjects = subjects;
    cfg.nsubjects = n;
    rc = rmq_topic_add(c, &cfg, IT_ADMIN_MS, info);
    IT_CHECK(rc == 0, "rmq_topic_add(%s, %s...): %s", name, subjects[0], rmq_strerror(rc));
}

/* See itest.h. */
void it_topic_info(rmq_client *c, const char *name, rmq_topic_info *info)
{
    int rc = rmq_topic_info_get(c, name, IT_ADMIN_MS, info);
    IT_CHECK(rc == 0, "rmq_topic_info_get(%s): %s", name, rmq_strerror(rc));
}

/* See itest.h. */
int it_topic_wait_msgs(rmq_client *c, const char *name, uint64_t want, int timeout_ms,
                       rmq_topic_info *last)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        it_topic_info(c, name, last);
        if (last->msgs == want)
            return 0;
        if (test_now_ms() >= end)
            return -1;
        usleep(10000);
    }
}

/* See itest.h. */
uint64_t it_pub_ack(rmq_client *c, const char *subj, const void *data, size_t len,
                    const char *msg_id)
{
    rmq_pub_ack ack;
    int rc;
    memset(&ack, 0, sizeof(ack));
    rc = rmq_publish_ack(c, subj, data, len, msg_id, IT_ADMIN_MS, &ack);
    IT_CHECK(rc == 0, "rmq_publish_ack(%s): %s", subj, rmq_strerror(rc));
    IT_CHECK(ack.seq > 0, "rmq_publish_ack(%s): ack without seq", subj);
    return ack.seq;
}

/* See itest.h. */
uint64_t it_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* See itest.h. */
void it_coll_init(struct it_coll *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->cap = cap;
    c->m = calloc(cap ? cap : 1, sizeof(*c->m));
    ck_assert_ptr_nonnull(c->m);
}

/* See itest.h. */
void it_coll_free(struct it_coll *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->m[i].data);
    free(c->m);
    c->m = NULL;
    c->n = 0;
}

/* See itest.h. */
void it_coll_add(struct it_coll *c, const rmq_msg *m)
{
    pthread_mutex_lock(&c->mu);
    if (c->n < c->cap) {
        struct it_cmsg *e = &c->m[c->n];
        e->seq = rmq_msg_seq(m);
        e->time_ns = rmq_msg_time_ns(m);
        e->deliveries = rmq_msg_deliveries(m);
        e->len = rmq_msg_len(m);
        e->data = malloc(e->len + 1);
        if (e->data) {
            memcpy(e->data, rmq_msg_data(m), e->len);
            e->data[e->len] = '\0';
        }
        snprintf(e->subject, sizeof(e->subject), "%s", rmq_msg_subject(m));
        c->n++;
    }
    c->count++;
    pthread_mutex_unlock(&c->mu);
}

/* See itest.h. */
void it_coll_cb(rmq_client *cl, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    struct it_coll *c = arg;
    (void)sub;
    if (c->ack) {
        int rc = rmq_ack(cl, m);
        int zero = 0;
        if (rc)
            atomic_compare_exchange_strong(&c->ack_err, &zero, rc);
    }
    it_coll_add(c, m);
}

/* See itest.h. */
int it_coll_wait(struct it_coll *c, uint64_t n, int timeout_ms)
{
    return it_wait_atomic(&c->count, n, timeout_ms);
}

/* See itest.h. */
struct it_cmsg it_coll_get(struct it_coll *c, size_t i)
{
    struct it_cmsg e;
    memset(&e, 0, sizeof(e));
    pthread_mutex_lock(&c->mu);
    if (i < c->n)
        e = c->m[i];
    pthread_mutex_unlock(&c->mu);
    return e;
}

/* See itest.h. */
int it_topic_replay(rmq_client *c, const char *topic, uint64_t want, int timeout_ms, int extra_ms,
                    struct it_coll *out)
{
    rmq_replay_opts o;
    rmq_sub *s = NULL;
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms, xend = 0;
    int rc;
    memset(&o, 0, sizeof(o));
    o.start = RMQ_START_ALL;
    rc = rmq_subscribe_topic(c, topic, ">", &o, NULL, NULL, &s);
    if (rc)
        return rc;
    for (;;) {
        uint64_t now = test_now_ms(), stop;
        rmq_msg *m = NULL;
        if (atomic_load(&out->count) >= want && !xend)
            xend = now + (uint64_t)extra_ms;
        stop = xend ? xend : end;
        if (now >= stop)
            break;
        rc = rmq_sub_next(s, (int)(stop - now), &m);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc) {
            rmq_unsubscribe(s);
            return rc;
        }
        it_coll_add(out, m);
        rmq_msg_free(m);
    }
    rmq_unsubscribe(s);
    return 0;
}

static uint64_t varint_len(uint64_t v)
{
    uint64_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* See itest.h. Field 1 (subject) and field 4 (payload), one-byte keys. */
uint64_t it_stored_size(const char *subj, size_t plen)
{
    size_t sl = strlen(subj);
    return 1 + varint_len(sl) + sl + 1 + varint_len(plen) + plen;
}

/* ---- Cluster ---- */

/* See itest.h. */
uint16_t it_free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);
    uint16_t port = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Skip a JSON string starting at p ('"'); returns the byte after it. */
static const char *json_skip_str(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\' && p + 1 < end)
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return end;
}

/* The byte after the bracket that closes the one at p ('[' or '{'). */
static const char *json_skip_nest(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        if (*p == '"') {
            p = json_skip_str(p, end);
            continue;
        }
        if (*p == '[' || *p == '{')
            depth++;
        else if ((*p == ']' || *p == '}') && --depth == 0)
            return p + 1;
        p++;
    }
    return end;
}

/*
 * The value of "key" in [p, end) at nesting level 0 of that range (a key
 * inside a nested object or array is not seen), or NULL.
 */
static const char *json_find(const char *p, const char *end, const char *key)
{
    size_t kl = strlen(key);
    while (p < end) {
        if (*p == '[' || *p == '{') {
            p = json_skip_nest(p, end);
            continue;
        }
        if (*p == '"') {
            const char *s = p + 1, *q = json_skip_str(p, end);
            if ((size_t)(q - s) == kl + 1 && memcmp(s, key, kl) == 0) {
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                    q++;
                if (q < end && *q == ':') {
                    q++;
                    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                        q++;
                    return q;
                }
            }
            p = q;
            continue;
        }
        p++;
    }
    return NULL;
}

/* Copy the string value of key in [p, end) (unescaped naively) to out. */
static void json_str(const char *p, const char *end, const char *key, char *out, size_t cap)
{
    const char *v = json_find(p, end, key);
    size_t n = 0;
    out[0] = '\0';
    if (!v || *v != '"')
        return;
    for (v++; v < end && *v != '"' && n + 1 < cap; v++) {
        if (*v == '\\' && v + 1 < end)
            v++;
        out[n++] = *v;
    }
    out[n] = '\0';
}

static uint64_t json_u64(const char *p, const char *end, const char *key)
{
    const char *v = json_find(p, end, key);
    return v ? strtoull(v, NULL, 10) : 0;
}

/* See itest.h. */
int it_cluster_get(rmq_client *c, struct it_cluster_info *out)
{
    rmq_msg *m = NULL;
    const char *p, *end, *arr, *aend;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = rmq_request(c, "$SYS.REQ.CLUSTER", NULL, 0, 3000, &m);
    if (rc)
        return rc;
    n = rmq_msg_len(m) < sizeof(out->raw) - 1 ? rmq_msg_len(m) : sizeof(out->raw) - 1;
    memcpy(out->raw, rmq_msg_data(m), n);
    out->raw[n] = '\0';
    rmq_msg_free(m);
    /* Inside the top-level object. */
    p = strchr(out->raw, '{');
    if (!p)
        return -EPROTO;
    end = json_skip_nest(p, out->raw + n);
    p++;
    if (end > p)
        end--; /* the closing brace */
    json_str(p, end, "node", out->node, sizeof(out->node));
    json_str(p, end, "cluster", out->cluster, sizeof(out->cluster));
    json_str(p, end, "listen", out->listen, sizeof(out->listen));
    arr = json_find(p, end, "routes");
    if (!arr || *arr != '[')
        return -EPROTO;
    aend = json_skip_nest(arr, end);
    for (const char *q = arr + 1; q < aend;) {
        const char *oend;
        struct it_route *r;
        if (*q != '{') {
            q++;
            continue;
        }
        oend = json_skip_nest(q, aend);
        if (out->nroutes == IT_ROUTES_MAX) {
            out->truncated = true;
            break;
        }
        r = &out->r[out->nroutes++];
        json_str(q + 1, oend - 1, "node", r->node, sizeof(r->node));
        json_str(q + 1, oend - 1, "addr", r->addr, sizeof(r->addr));
        json_str(q + 1, oend - 1, "dir", r->dir, sizeof(r->dir));
        json_str(q + 1, oend - 1, "state", r->state, sizeof(r->state));
        r->interest = json_u64(q + 1, oend - 1, "interest");
        r->msgs_in = json_u64(q + 1, oend - 1, "msgs_in");
        r->msgs_out = json_u64(q + 1, oend - 1, "msgs_out");
        q = oend;
    }
    return 0;
}

/* See itest.h. */
void it_cluster_info(rmq_client *c, struct it_cluster_info *out)
{
    int rc = it_cluster_get(c, out);
    IT_CHECK(rc == 0, "$SYS.REQ.CLUSTER: %s (reply: %.300s)",
             rc == -EPROTO ? "no routes array" : rmq_strerror(rc), out->raw);
}

/* See itest.h. */
int it_cluster_nup(const struct it_cluster_info *ci)
{
    int n = 0;
    for (int i = 0; i < ci->nroutes; i++)
        n += strcmp(ci->r[i].state, "up") == 0;
    return n;
}

/* See itest.h. */
int it_cluster_nup_to(const struct it_cluster_info *ci, const char *node)
{
    int n = 0;
    for (int i = 0; i < ci->nroutes; i++)
        n += strcmp(ci->r[i].state, "up") == 0 && strcmp(ci->r[i].node, node) == 0;
    return n;
}

/* See itest.h. */
const struct it_route *it_cluster_route(const struct it_cluster_info *ci, const char *node)
{
    for (int i = 0; i < ci->nroutes; i++)
        if (strcmp(ci->r[i].state, "up") == 0 && strcmp(ci->r[i].node, node) == 0)
            return &ci->r[i];
    return NULL;
}

/* See itest.h. */
int it_node_start(struct it_node *n, const char *name, const char *cluster_listen,
                  const char *routes, const char *const *extra)
{
    int k = 0;
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", name);
    if (cluster_listen) {
        snprintf(n->caddr, sizeof(n->caddr), "%s", cluster_listen);
    } else {
        uint16_t port = it_free_port();
        if (!port)
            return -1;
        snprintf(n->caddr, sizeof(n->caddr), "127.0.0.1:%u", port);
    }
    snprintf(n->routes, sizeof(n->routes), "%s", routes ? routes : "");
    n->args[k++] = "--node-name";
    n->args[k++] = n->name;
    n->args[k++] = "--cluster-listen";
    n->args[k++] = n->caddr;
    if (n->routes[0]) {
        n->args[k++] = "--routes";
        n->args[k++] = n->routes;
    }
    for (int i = 0; extra && extra[i] && k < IT_NODE_ARGS - 1; i++)
        n->args[k++] = extra[i];
    n->args[k] = NULL;
    return tbroker_start(&n->b, 0, with_shards(n->args));
}

/* See itest.h. */
int it_node_restart(struct it_node *n)
{
    return tbroker_restart(&n->b, with_shards(n->args));
}

/* See itest.h. */
int it_cluster_mesh_ok(rmq_client *mon, const char *self, const char *const *peers, int npeers,
                       char *why, size_t wlen)
{
    struct it_cluster_info *ci = malloc(sizeof(*ci));
    int rc, nup;
    if (!ci)
        return -ENOMEM;
    rc = it_cluster_get(mon, ci);
    if (rc) {
        snprintf(why, wlen, "node %s: $SYS.REQ.CLUSTER: %s", self,
                 rc == -EPROTO ? "no routes array" : rmq_strerror(rc));
        free(ci);
        return rc;
    }
    rc = 1;
    nup = it_cluster_nup(ci);
    if (strcmp(ci->node, self) != 0) {
        snprintf(why, wlen, "node %s answers as node '%s'", self, ci->node);
        rc = 0;
    } else if (nup != npeers) {
        snprintf(why, wlen, "node %s has %d routes up, want %d: %.600s", self, nup, npeers,
                 ci->raw);
        rc = 0;
    }
    for (int i = 0; rc == 1 && i < npeers; i++) {
        if (it_cluster_nup_to(ci, peers[i]) != 1) {
            snprintf(why, wlen, "node %s has %d routes up to %s, want 1: %.600s", self,
                     it_cluster_nup_to(ci, peers[i]), peers[i], ci->raw);
            rc = 0;
        }
    }
    free(ci);
    return rc;
}

/* See itest.h. */
int it_cluster_wait_mesh(struct it_node *nodes, rmq_client **mons, int n, int timeout_ms, char *why,
                         size_t wlen)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n && all; i++) {
            const char *peers[IT_ROUTES_MAX];
            int np = 0;
            for (int j = 0; j < n && np < IT_ROUTES_MAX; j++)
                if (j != i)
                    peers[np++] = nodes[j].name;
            all = it_cluster_mesh_ok(mons[i], nodes[i].name, peers, np, why, wlen) == 1;
        }
        if (all)
            return 0;
        if (test_now_ms() >= end)
            return -1;
        usleep(50000);
    }
}

/* See itest.h. */
void it_cluster_start(struct it_node nodes[3], rmq_client *mons[3], const char *const *extra,
                      int timeout_ms)
{
    static const char *const names[3] = {"a", "b", "c"};
    char why[1024];
    int rc;
    for (int i = 0; i < 3; i++) {
        rc = it_node_start(&nodes[i], names[i], NULL, i ? nodes[0].caddr : NULL, extra);
        ck_assert_msg(rc == 0, "node %s did not start (log above)", names[i]);
    }
    it_cur_broker = &nodes[0].b;
    for (int i = 0; i < 3; i++) {
        char mname[16];
        snprintf(mname, sizeof(mname), "mon-%s", names[i]);
        mons[i] = it_client(nodes[i].b.addr, mname, NULL);
    }
    rc = it_cluster_wait_mesh(nodes, mons, 3, timeout_ms, why, sizeof(why));
    if (rc) {
        for (int i = 0; i < 3; i++)
            tbroker_dump_log(&nodes[i].b);
        ck_abort_msg("no full mesh of a, b, c within %d ms: %s", timeout_ms, why);
    }
}
