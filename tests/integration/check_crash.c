/*
 * check_crash.c - durability of acknowledged messages across a SIGKILL of
 * the broker, and start-up with a damaged data dir.
 *
 * crash: several publisher threads do rmq_publish_ack with unique payloads
 * (and the same string as msg id) and record every acknowledged (seq,
 * payload). The broker is SIGKILLed mid-stream, restarted on the same data
 * dir and port, and the topic is replayed from the start. Every
 * acknowledged message must be there exactly once at its seq; the stored
 * seqs are contiguous from 1; no payload is stored twice. Messages that
 * were stored but whose ack was lost in the crash are allowed (they were
 * sent), as long as they are well-formed. PROTOCOL.md: with --fsync always
 * and interval=MS, a crash of the broker process alone loses nothing that
 * was acknowledged. Several cycles per test, on one growing topic.
 *
 * corrupt: a data dir that is a regular file, or whose data.mdb is garbage
 * (or had its meta pages overwritten), makes ringmqd exit non-zero at
 * start with a message in its log, not crash or serve without storage.
 *
 * TCases: crash, corrupt.
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define NPUB 4
#define MAX_CYCLES 6
#define PUB_MAX_PER_CYCLE 10000 /* per thread: a bound on the loop */
#define PAYLOAD_MAX 80
#define ACKED_CAP (NPUB * PUB_MAX_PER_CYCLE * MAX_CYCLES)

struct acked {
    uint64_t seq;
    char payload[PAYLOAD_MAX];
};

struct crash_st {
    pthread_mutex_t mu;
    struct acked *acked;
    size_t nacked;
    _Atomic uint64_t nack_now; /* acks in the current cycle */
    _Atomic bool stop;
    _Atomic uint64_t dup_acks; /* acks with duplicate = true: we never re-send */
    _Atomic uint64_t bad_topic;
};

struct pub_th {
    struct crash_st *st;
    rmq_client *c;
    int id, cycle;
    uint64_t sent, acked;
    int last_err;
    char pending[PAYLOAD_MAX]; /* sent, no answer yet (also its msg id) */
    size_t pending_len;
    pthread_t th;
};

static size_t mk_payload(char *buf, int cycle, int id, uint64_t i)
{
    /* Padded so that the payloads are not tiny; unique per (cycle, id, i). */
    int n = snprintf(buf, PAYLOAD_MAX, "c%d-p%d-%" PRIu64 "-", cycle, id, i);
    for (; n < 64; n++)
        buf[n] = (char)('a' + (n + id + (int)(i % 26)) % 26);
    buf[n] = '\0';
    return (size_t)n;
}

static void *pub_thread(void *arg)
{
    struct pub_th *p = arg;
    struct crash_st *st = p->st;
    char subj[32];
    snprintf(subj, sizeof(subj), "crash.p%d", p->id);
    for (uint64_t i = 0; i < PUB_MAX_PER_CYCLE && !atomic_load(&st->stop); i++) {
        char buf[PAYLOAD_MAX];
        rmq_pub_ack ack;
        size_t len = mk_payload(buf, p->cycle, p->id, i);
        int rc;
        memset(&ack, 0, sizeof(ack));
        p->sent++;
        memcpy(p->pending, buf, len + 1);
        p->pending_len = len;
        rc = rmq_publish_ack(p->c, subj, buf, len, buf, 3000, &ack);
        if (rc) {
            p->last_err = rc;
            break; /* the broker is gone (or something failed): stop */
        }
        if (ack.duplicate)
            st->dup_acks++;
        if (strcmp(ack.topic, "crash") != 0)
            st->bad_topic++;
        pthread_mutex_lock(&st->mu);
        if (st->nacked >= ACKED_CAP) {
            pthread_mutex_unlock(&st->mu);
            break; /* unreachable at these rates; keeps the record complete */
        }
        st->acked[st->nacked].seq = ack.seq;
        memcpy(st->acked[st->nacked].payload, buf, len + 1);
        st->nacked++;
        pthread_mutex_unlock(&st->mu);
        st->nack_now++;
        p->acked++;
        p->pending_len = 0;
    }
    return NULL;
}

/*
 * After the restart: re-send each publisher's unanswered message with the
 * same msg id, as ringmq.h tells a client to after a timeout. If the crash
 * came after its commit it is a duplicate of that seq, else it is stored
 * now; either way it is recorded as acknowledged at the returned seq (and
 * verify() then checks that it is stored once). Returns the duplicates.
 */
static uint64_t resend_pending(struct tbroker *b, struct crash_st *st, struct pub_th *p, int n,
                               uint64_t *resent)
{
    rmq_client *c = it_client(b->addr, "resend", NULL);
    uint64_t dups = 0;
    for (int i = 0; i < n; i++) {
        char subj[32];
        rmq_pub_ack ack;
        int rc;
        if (!p[i].pending_len)
            continue;
        snprintf(subj, sizeof(subj), "crash.p%d", p[i].id);
        memset(&ack, 0, sizeof(ack));
        rc = rmq_publish_ack(c, subj, p[i].pending, p[i].pending_len, p[i].pending, 5000, &ack);
        IT_CHECK(rc == 0, "re-send of '%s' after the restart: %s", p[i].pending, rmq_strerror(rc));
        dups += ack.duplicate;
        (*resent)++;
        pthread_mutex_lock(&st->mu);
        ck_assert_uint_lt(st->nacked, ACKED_CAP);
        st->acked[st->nacked].seq = ack.seq;
        memcpy(st->acked[st->nacked].payload, p[i].pending, p[i].pending_len + 1);
        st->nacked++;
        pthread_mutex_unlock(&st->mu);
    }
    it_close(c);
    return dups;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay the topic and check it against every acknowledged message. */
static uint64_t verify(struct tbroker *b, struct crash_st *st, int cycle, const char *mode)
{
    rmq_client *c = it_client(b->addr, "verify", NULL);
    rmq_topic_info ti;
    struct it_coll col;
    char **sorted;
    uint64_t last;
    int rc;

    it_topic_info(c, "crash", &ti);
    last = ti.last_seq;
    IT_CHECK(ti.msgs == last && (last == 0 || ti.first_seq == 1),
             "%s cycle %d: topic has msgs %" PRIu64 ", first_seq %" PRIu64 ", last_seq %" PRIu64
             " (no retention: want msgs == last_seq, first 1)",
             mode, cycle, ti.msgs, ti.first_seq, last);
    IT_CHECK(last >= st->nacked,
             "%s cycle %d: last_seq %" PRIu64 " but %zu messages were acknowledged", mode, cycle,
             last, st->nacked);
    it_coll_init(&col, (size_t)last + 16);
    rc = it_topic_replay(c, "crash", last, 30000, 100, &col);
    IT_CHECK(rc == 0, "%s cycle %d: replay: %s", mode, cycle, rmq_strerror(rc));
    IT_CHECK(col.n == last, "%s cycle %d: replay gave %zu messages, topic says %" PRIu64, mode,
             cycle, col.n, last);
    for (size_t i = 0; i < col.n; i++) {
        int cy, id;
        uint64_t k;
        IT_CHECK(col.m[i].seq == i + 1,
                 "%s cycle %d: replay #%zu has seq %" PRIu64 " (want contiguous from 1)", mode,
                 cycle, i, col.m[i].seq);
        IT_CHECK(col.m[i].data &&
                     sscanf((char *)col.m[i].data, "c%d-p%d-%" SCNu64 "-", &cy, &id, &k) == 3,
                 "%s cycle %d: seq %zu has a payload we never sent: '%.40s'", mode, cycle, i + 1,
                 col.m[i].data ? (char *)col.m[i].data : "(null)");
    }
    /* Every acknowledged message at its seq. */
    pthread_mutex_lock(&st->mu);
    for (size_t j = 0; j < st->nacked; j++) {
        const struct acked *a = &st->acked[j];
        const char *got;
        IT_CHECK(a->seq >= 1 && a->seq <= last,
                 "%s cycle %d: acknowledged seq %" PRIu64 " ('%s') missing after the crash "
                 "(last_seq %" PRIu64 ")",
                 mode, cycle, a->seq, a->payload, last);
        got = (const char *)col.m[a->seq - 1].data;
        IT_CHECK(strcmp(got, a->payload) == 0,
                 "%s cycle %d: seq %" PRIu64 " was acknowledged for '%s' but holds '%s'", mode,
                 cycle, a->seq, a->payload, got);
    }
    pthread_mutex_unlock(&st->mu);
    /* Nothing stored twice. */
    sorted = calloc(col.n ? col.n : 1, sizeof(*sorted));
    ck_assert_ptr_nonnull(sorted);
    for (size_t i = 0; i < col.n; i++)
        sorted[i] = (char *)col.m[i].data;
    qsort(sorted, col.n, sizeof(*sorted), cmp_str);
    for (size_t i = 1; i < col.n; i++)
        IT_CHECK(strcmp(sorted[i - 1], sorted[i]) != 0, "%s cycle %d: payload '%s' stored twice",
                 mode, cycle, sorted[i]);
    free(sorted);
    it_coll_free(&col);
    it_close(c);
    return last;
}

static void crash_cycles(const char *fsync_mode, int cycles)
{
    ck_assert_int_le(cycles, MAX_CYCLES);
    const char *const *args = IT_ARGS("--fsync", fsync_mode, "--shards", "2");
    struct tbroker b;
    struct crash_st st;
    uint64_t rng = it_seed() ^ (uint64_t)(unsigned char)fsync_mode[5], stored = 0, unacked = 0;
    uint64_t resent = 0, resent_dups = 0;
    rmq_client *adm;
    uint64_t t_start = test_now_ms();

    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.mu, NULL);
    st.acked = calloc(ACKED_CAP, sizeof(*st.acked));
    ck_assert_ptr_nonnull(st.acked);
    it_broker_start(&b, args);
    adm = it_client(b.addr, "adm", NULL);
    it_topic_add(adm, "crash", IT_ARGS("crash.>"), NULL, NULL);
    it_close(adm);

    for (int cycle = 0; cycle < cycles; cycle++) {
        struct pub_th p[NPUB];
        uint64_t kill_after = 150 + it_rand(&rng) % 400, t0, want;
        int st_kill, errs = 0;

        atomic_store(&st.stop, false);
        atomic_store(&st.nack_now, 0);
        for (int i = 0; i < NPUB; i++) {
            char name[16];
            rmq_opts *o;
            int rc;
            memset(&p[i], 0, sizeof(p[i]));
            p[i].st = &st;
            p[i].id = i;
            p[i].cycle = cycle;
            snprintf(name, sizeof(name), "pub%d", i);
            o = it_opts(b.addr, name, NULL, 0); /* no reconnect: a drop ends it */
            rc = rmq_connect(o, &p[i].c);
            rmq_opts_free(o);
            IT_CHECK(rc == 0, "cycle %d: connect publisher %d: %s", cycle, i, rmq_strerror(rc));
        }
        for (int i = 0; i < NPUB; i++)
            ck_assert_int_eq(pthread_create(&p[i].th, NULL, pub_thread, &p[i]), 0);
        /* Some acks first, then the kill at a random point of the stream. */
        want = 20;
        IT_CHECK(it_wait_atomic(&st.nack_now, want, 10000) == 0,
                 "%s cycle %d: only %" PRIu64 " acks in 10 s", fsync_mode, cycle,
                 (uint64_t)atomic_load(&st.nack_now));
        t0 = test_now_ms();
        while (test_now_ms() - t0 < kill_after)
            usleep(1000);
        st_kill = it_broker_kill(&b, 5000);
        IT_CHECK(st_kill == 128 + SIGKILL, "cycle %d: broker status after SIGKILL: %d", cycle,
                 st_kill);
        atomic_store(&st.stop, true);
        for (int i = 0; i < NPUB; i++) {
            pthread_join(p[i].th, NULL);
            errs += p[i].last_err != 0;
            unacked += p[i].sent - p[i].acked;
            it_close(p[i].c);
        }
        (void)errs;
        ck_assert_uint_eq(atomic_load(&st.dup_acks), 0);
        ck_assert_uint_eq(atomic_load(&st.bad_topic), 0);

        IT_CHECK(it_broker_restart(&b, args) == 0, "cycle %d: restart after SIGKILL failed", cycle);
        resent_dups += resend_pending(&b, &st, p, NPUB, &resent);
        stored = verify(&b, &st, cycle, fsync_mode);
        fprintf(stderr,
                "crash fsync=%s cycle %d: killed after %" PRIu64 " ms, %" PRIu64
                " acks this cycle, %zu acknowledged in all, %" PRIu64 " stored\n",
                fsync_mode, cycle, kill_after, (uint64_t)atomic_load(&st.nack_now), st.nacked,
                stored);
    }
    fprintf(stderr,
            "crash fsync=%s: %d SIGKILL cycles, %zu acknowledged messages checked present "
            "exactly once at their seq (%" PRIu64 " stored, %" PRIu64
            " publishes unanswered at the kill; re-sent with their msg id: %" PRIu64
            ", of which %" PRIu64 " were already stored = duplicate acks), %" PRIu64 " ms\n",
            fsync_mode, cycles, st.nacked, stored, unacked, resent, resent_dups,
            test_now_ms() - t_start);
    IT_CHECK(st.nacked > 0, "nothing was acknowledged");
    free(st.acked);
    it_broker_stop_ok(&b, 10000);
}

START_TEST(test_crash_sigkill_fsync_always)
{
    crash_cycles("always", 6);
}
END_TEST

START_TEST(test_crash_sigkill_fsync_interval)
{
    crash_cycles("interval=50", 6);
}
END_TEST

/* ---- corrupt data dir ---- */

static void read_log(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    buf[0] = '\0';
    if (!f)
        return;
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Start ringmqd on datadir; it must exit non-zero (not by a signal) with a
 * message naming the problem. */
static void expect_refuses(const char *dir, const char *datadir, const char *what)
{
    char logp[400], portf[400], log[8192];
    bool running;
    int st;
    snprintf(logp, sizeof(logp), "%s/log-%s", dir, what);
    snprintf(portf, sizeof(portf), "%s/port-%s", dir, what);
    st = it_exec_ringmqd(IT_ARGS("--listen", "127.0.0.1:0", "--port-file", portf, "--data-dir",
                                 datadir, "--shards", "1"),
                         logp, 10000, &running);
    read_log(logp, log, sizeof(log));
    fprintf(stderr, "%s: exit status %d, log:\n%s", what, st, log);
    ck_assert_msg(!running, "%s: ringmqd still running after 10 s (serving without its store?)",
                  what);
    ck_assert_msg(st > 0 && st < 128, "%s: exit status %d (want non-zero, not a signal)", what, st);
    ck_assert_msg(log[0] != '\0', "%s: nothing in the log", what);
    ck_assert_msg(strstr(log, datadir) != NULL, "%s: the log does not name the data dir %s:\n%s",
                  what, datadir, log);
    for (char *q = log; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    ck_assert_msg(strstr(log, "data") || strstr(log, "store") || strstr(log, "mdb"),
                  "%s: the log does not say what is wrong with the data dir:\n%s", what, log);
}

static void mk_scratch(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/ringmq-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void write_garbage(const char *path, size_t len, uint64_t seed, off_t at, bool trunc)
{
    uint8_t *buf = malloc(len);
    int fd = open(path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_ge(fd, 0);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(it_rand(&seed) >> 32);
    ck_assert_int_eq(pwrite(fd, buf, len, at), (ssize_t)len);
    close(fd);
    free(buf);
}

START_TEST(test_crash_data_dir_is_a_file)
{
    char dir[64], data[128];
    struct tbroker fake;
    mk_scratch(dir, sizeof(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    write_garbage(data, 100, 1, 0, true);
    expect_refuses(dir, data, "data-dir-is-a-file");
    memset(&fake, 0, sizeof(fake));
    snprintf(fake.dir, sizeof(fake.dir), "%s", dir);
    it_broker_cleanup(&fake);
}
END_TEST

START_TEST(test_crash_data_mdb_garbage)
{
    char dir[64], data[128], mdb[160];
    struct tbroker fake;
    mk_scratch(dir, sizeof(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(mkdir(data, 0755), 0);
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", data);
    write_garbage(mdb, 256 * 1024, it_seed() | 1, 0, true);
    expect_refuses(dir, data, "garbage-data-mdb");
    memset(&fake, 0, sizeof(fake));
    snprintf(fake.dir, sizeof(fake.dir), "%s", dir);
    it_broker_cleanup(&fake);
}
END_TEST

/* A real store whose two meta pages were overwritten. */
START_TEST(test_crash_data_mdb_meta_pages_overwritten)
{
    struct tbroker b;
    rmq_client *c;
    char data[300], mdb[320];
    it_broker_start(&b, NULL);
    c = it_client(b.addr, "pub", NULL);
    it_topic_add(c, "t", IT_ARGS("t.x"), NULL, NULL);
    for (int i = 0; i < 20; i++)
        it_pub_ack(c, "t.x", "payload", 7, NULL);
    it_close(c);
    ck_assert_int_eq(tbroker_stop(&b, SIGTERM, 10000), 0);
    snprintf(data, sizeof(data), "%s/data", b.dir);
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", data);
    IT_CHECK(access(mdb, F_OK) == 0, "no %s after a clean run (is the store LMDB?)", mdb);
    write_garbage(mdb, 2 * 4096, it_seed() | 3, 0, false);
    expect_refuses(b.dir, data, "meta-pages-overwritten");
    it_broker_cleanup(&b);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *tc;

    tc = tcase_create("crash");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crash_sigkill_fsync_always);
    tcase_add_test(tc, test_crash_sigkill_fsync_interval);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, test_crash_data_dir_is_a_file);
    tcase_add_test(tc, test_crash_data_mdb_garbage);
    tcase_add_test(tc, test_crash_data_mdb_meta_pages_overwritten);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_crash", crash_suite);
}
