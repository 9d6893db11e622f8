/*
 * check_slow.c - slow-consumer protection: a subscriber that stops reading
 * is disconnected once more than --max-pending bytes have stayed queued for
 * it for --slow-grace-ms, and nobody else notices.
 *
 *     publisher (libringmq) --20,000 x 1 KiB--> ringmqd --max-pending 64K
 *                                                 |            |
 *                                   fast (libringmq)     slow (raw socket,
 *                                   gets all, in order   SUB then never reads)
 *                                                        -> ERROR SLOW_CONSUMER
 *                                                           (if it gets that
 *                                                           far), then EOF
 *
 * The slow socket's kernel buffers fill first (a few MiB on loopback); only
 * then does the broker's queue for it grow past the limit. A slow
 * consumer's in-flight send cannot be taken back, so the ERROR frame may
 * sit behind bytes the peer never reads; the broker closes it at the drain
 * deadline and the raw side sees the stream end (maybe mid-frame).
 *
 * TCases: core (paced publisher: after every 16 messages a flush, and a
 * wait until the fast consumer is at most 32 messages behind, so its
 * backlog in the broker stays near 32 KiB whatever the scheduler does;
 * if it is cut off, the broker counted wrong) and burst (the publisher
 * writes as fast as it can; the fast consumer reads as fast as it can).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

#define NMSGS 20000
#define MSG_LEN 1024
#define LAG 32 /* paced runs: the most the fast consumer may lag behind */

/* Wait for n messages on the fast consumer; fail at once if it was cut off. */
static void fast_wait(struct it_seq *q, struct it_rec *rec, uint64_t n, int timeout_ms)
{
    uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&q->count) < n && test_now_ms() < end &&
           it_rec_count(rec, RMQ_EV_DISCONNECTED) == 0)
        usleep(1000);
    IT_CHECK(it_rec_count(rec, RMQ_EV_DISCONNECTED) == 0,
             "the fast consumer was disconnected (%s) after %" PRIu64 " of %" PRIu64 " messages",
             rmq_strerror(rec->ev_err[0]), (uint64_t)atomic_load(&q->count), n);
    it_seq_expect(q, n, true, 1000, "fast consumer");
}

static void run_slow(int pace_every, const char *shards)
{
    struct tbroker b;
    struct it_rec frec;
    struct it_raw_seen seen;
    struct it_seq fq;
    rmq_client *fast, *pub, *late;
    rmq_sub *fs = NULL;
    uint8_t buf[MSG_LEN];
    int fd, rc;
    uint64_t v, t0 = test_now_ms();

    /* Bursts get a longer grace: under sanitizers the fast consumer may
     * lag more than 1 s behind an unpaced publisher and still be fast. */
    it_broker_start(&b, IT_ARGS("--max-pending", "65536", "--shards", shards, "--slow-grace-ms",
                                pace_every ? "1000" : "3000"));
    it_rec_init(&frec);
    fast = it_client(b.addr, "fast", &frec);
    it_seq_init(&fq, NMSGS + 1);
    ck_assert_int_eq(rmq_subscribe(fast, "flood", NULL, it_seq_cb, &fq, &fs), 0);
    ck_assert_int_eq(rmq_flush(fast, 20000), 0);

    /* No small SO_RCVBUF: with a window far below the loopback MSS the
     * kernel would hand over the backlog at persist-timer pace later on. */
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(fd, 1, "flood", NULL), 0);
    ck_assert_int_eq(it_raw_sync(fd, 1, 5000, &seen), 0);
    ck_assert_int_eq(seen.errs, 0);

    pub = it_client(b.addr, "pub", NULL);
    for (uint64_t i = 0; i < NMSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        rc = rmq_publish(pub, "flood", buf, sizeof(buf));
        if (rc)
            IT_CHECK(0, "publish %" PRIu64 ": %s", i, rmq_strerror(rc));
        if (pace_every && i % (uint64_t)pace_every == (uint64_t)pace_every - 1) {
            rc = rmq_flush(pub, 20000);
            if (rc)
                IT_CHECK(0, "flush after %" PRIu64 ": %s", i, rmq_strerror(rc));
            /* Lockstep: the fast consumer is at most LAG messages behind. */
            rc = it_wait_atomic(&fq.count, i + 1 > LAG ? i + 1 - LAG : 0, 5000);
            if (rc || it_rec_count(&frec, RMQ_EV_DISCONNECTED))
                IT_CHECK(0,
                         "fast consumer fell behind or was cut off at %" PRIu64 " (got %" PRIu64
                         "): %s",
                         i, (uint64_t)atomic_load(&fq.count),
                         frec.nev ? rmq_strerror(frec.ev_err[0]) : "timeout");
        }
    }
    ck_assert_int_eq(rmq_flush(pub, 10000), 0);

    fast_wait(&fq, &frec, NMSGS, 20000);
    ck_assert_uint_eq(rmq_sub_dropped(fs), 0);

    IT_CHECK(it_stat_wait(pub, "slow_consumers", 1, 5000, &v) == 0,
             "slow_consumers is %" PRIu64 ", want 1", v);

    /* The slow side: whatever it was sent, then maybe the ERROR, then EOF. */
    rc = it_raw_read_to_eof(fd, 10000, &seen);
    IT_CHECK(rc == 0, "slow consumer not disconnected (%d)", rc);
    IT_CHECK(seen.msgs < NMSGS, "the slow consumer got all %d messages", seen.msgs);
    if (seen.errs) {
        IT_CHECK(seen.errs == 1 && seen.err_code[0] == RINGMQ__ERROR_CODE__ERR_SLOW_CONSUMER &&
                     seen.err_fatal[0],
                 "slow consumer got ERROR %d (fatal %d), want fatal SLOW_CONSUMER",
                 seen.err_code[0], seen.err_fatal[0]);
    }
    printf("slow consumer: %d messages, %s, then EOF (%" PRIu64 " ms)\n", seen.msgs,
           seen.errs ? "ERROR SLOW_CONSUMER" : "no ERROR frame", test_now_ms() - t0);
    close(fd);

    /* The broker keeps running and serving. */
    IT_CHECK(it_broker_alive(&b), "the broker died");
    IT_CHECK(it_stat_wait(pub, "connections", 2, 5000, &v) == 0,
             "broker counts %" PRIu64 " connections, want 2", v);
    late = it_client(b.addr, "late", NULL);
    it_payload_fill(buf, sizeof(buf), NMSGS);
    ck_assert_int_eq(rmq_publish(late, "flood", buf, sizeof(buf)), 0);
    ck_assert_int_eq(rmq_flush(late, 20000), 0);
    it_seq_expect(&fq, NMSGS + 1, true, 5000, "fast consumer, after");
    ck_assert_uint_eq(it_stat(late, "slow_consumers"), 1);

    it_close(late);
    it_close(pub);
    it_close(fast);
    it_seq_free(&fq);
    it_broker_stop_ok(&b, 5000);
}

START_TEST(test_slow_consumer_disconnected_paced_1_shard)
{
    run_slow(16, "1");
}
END_TEST

START_TEST(test_slow_consumer_disconnected_paced_2_shards)
{
    run_slow(16, "2");
}
END_TEST

START_TEST(test_slow_consumer_disconnected_burst_1_shard)
{
    run_slow(0, "1");
}
END_TEST

/*
 * No slow consumer at all: one libringmq subscriber that reads as fast as it
 * can, one publisher writing 20,000 x 1 KiB without pausing. Nobody may be
 * disconnected.
 */
START_TEST(test_slow_fast_consumer_alone_survives_burst)
{
    struct tbroker b;
    struct it_rec frec;
    struct it_seq fq;
    rmq_client *fast, *pub;
    rmq_sub *fs = NULL;
    uint8_t buf[MSG_LEN];

    it_broker_start(&b,
                    IT_ARGS("--max-pending", "65536", "--shards", "1", "--slow-grace-ms", "3000"));
    it_rec_init(&frec);
    fast = it_client(b.addr, "fast", &frec);
    it_seq_init(&fq, NMSGS);
    ck_assert_int_eq(rmq_subscribe(fast, "burst", NULL, it_seq_cb, &fq, &fs), 0);
    ck_assert_int_eq(rmq_flush(fast, 20000), 0);
    pub = it_client(b.addr, "pub", NULL);
    for (uint64_t i = 0; i < NMSGS; i++) {
        it_payload_fill(buf, sizeof(buf), i);
        ck_assert_int_eq(rmq_publish(pub, "burst", buf, sizeof(buf)), 0);
    }
    ck_assert_int_eq(rmq_flush(pub, 10000), 0);
    fast_wait(&fq, &frec, NMSGS, 20000);
    ck_assert_uint_eq(it_stat(pub, "slow_consumers"), 0);
    it_close(pub);
    it_close(fast);
    it_seq_free(&fq);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

/* A subscriber that reads slowly but keeps up on average is not cut off. */
START_TEST(test_slow_reader_under_limit_is_kept)
{
    struct tbroker b;
    struct it_raw_seen seen;
    rmq_client *pub;
    uint8_t buf[MSG_LEN];
    int fd, got = 0;
    uint64_t v;

    it_broker_start(&b, IT_ARGS("--max-pending", "65536"));
    fd = it_raw_open(b.port);
    ck_assert_int_eq(it_raw_sub(fd, 1, "trickle", NULL), 0);
    ck_assert_int_eq(it_raw_sync(fd, 1, 5000, &seen), 0);
    pub = it_client(b.addr, "pub", NULL);
    for (uint64_t round = 0; round < 50; round++) {
        for (uint64_t i = 0; i < 16; i++) {
            it_payload_fill(buf, sizeof(buf), round * 16 + i);
            ck_assert_int_eq(rmq_publish(pub, "trickle", buf, sizeof(buf)), 0);
        }
        ck_assert_int_eq(rmq_flush(pub, 20000), 0);
        ck_assert_int_eq(it_raw_sync(fd, round + 2, 5000, &seen), 0);
        ck_assert_int_eq(seen.errs, 0);
        got += seen.msgs;
        usleep(2000);
    }
    ck_assert_int_eq(got, 50 * 16);
    ck_assert_uint_eq(it_stat(pub, "slow_consumers"), 0);
    IT_CHECK(it_stat_wait(pub, "connections", 2, 1000, &v) == 0, "connections %" PRIu64, v);
    close(fd);
    it_close(pub);
    it_broker_stop_ok(&b, 5000);
}
END_TEST

static Suite *slow_suite(void)
{
    Suite *s = suite_create("slow");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_slow_consumer_disconnected_paced_1_shard);
    tcase_add_test(tc, test_slow_consumer_disconnected_paced_2_shards);
    tcase_add_test(tc, test_slow_reader_under_limit_is_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("burst");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_slow_consumer_disconnected_burst_1_shard);
    tcase_add_test(tc, test_slow_fast_consumer_alone_survives_burst);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return it_main("check_slow", slow_suite);
}
