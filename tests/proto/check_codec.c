/*
 * check_codec.c - unit tests for proto/codec.c (and rmq_err_str() of
 * proto/rmq_error.c).
 *
 * The in-place parser is checked against protoc-c's generated decoder, which
 * is the reference for what a frame means:
 *
 *   random Publish (protobuf-c pack) --> cut into fields, reorder, decoys,
 *                                        unknown fields interleaved
 *        |                                        |
 *        v                                        v
 *   ringmq__publish__unpack()            codec_msg_parse()   spans must equal
 *                                             |
 *                        codec_body_write() + codec_msg_prefix(sid)
 *                                             |
 *                                             v
 *                     ringmq__frame__unpack() and codec_msg_parse() again
 *
 * TCases:
 *   core    codec_split, codec_peek, codec_msg_parse and codec_hdr_next on
 *           hand-built bytes; shared body + prefix (and codec_body_subject)
 *           and codec_pub_write decoded by protobuf-c; codec_frame_write -ENOSPC; the
 * ERROR/PING/PONG encoders; codec_err_from_wire, codec_err_name, rmq_err_str limits  length
 * prefixes at and over max_body, 10-byte varints, the field number range, 1 MiB payloads, 10,000
 * headers, and non-minimal (overlong) varints, which protobuf-c rejects fuzz    differential
 * against protoc-c over random messages, and over random mutations of them (bit flips, truncations,
 * insertions): whenever codec_msg_parse() accepts, protobuf-c must accept and agree; frame kinds of
 * mutated control frames
 *
 * Random input is seeded from RMQ_TEST_SEED or the time; main() prints the
 * seed so that a failure can be replayed. The generators, comparisons and
 * the fan-out replay live in codec_testlib.c.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "codec_testlib.h"
#include "ringmq.pb-c.h"
#include "rmq_error.h"

/*
 * ck_assert() records a mark point (a write to Check's pipe) even when it
 * passes, which is slow in loops of 10^4; hot loops use this instead.
 */
#define FAST_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* Frame bodies the broker accepts: CODEC_FRAME_OVERHEAD over a 1 MiB payload. */
#define MAX_BODY ((uint32_t)(1024 * 1024 + CODEC_FRAME_OVERHEAD))

static uint64_t g_seed;

/* Each test runs in its own child and starts from the printed seed. */
static void setup(void)
{
    rng_seed(g_seed);
}

static void teardown(void)
{
}

/* ---- core: codec_split ---- */

START_TEST(test_codec_split_need_more_header)
{
    const uint8_t buf[4] = {0, 0, 0, 0};
    struct codec_span body = {NULL, 0};
    for (size_t n = 0; n < CODEC_HDR_LEN; n++) {
        ck_assert_int_eq(codec_split(buf, n, MAX_BODY, &body), 0);
        /* Even a prefix that would be over max_body needs the 4 bytes first. */
        const uint8_t big[4] = {0xff, 0xff, 0xff, 0xff};
        ck_assert_int_eq(codec_split(big, n, 16, &body), 0);
    }
    ck_assert_int_eq(codec_split(NULL, 0, MAX_BODY, &body), 0);
}
END_TEST

START_TEST(test_codec_split_need_more_partial_body)
{
    struct wbuf b = {0};
    struct codec_span body;
    wb_be32(&b, 10);
    for (int i = 0; i < 10; i++)
        wb_u8(&b, (uint8_t)i);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = dup_exact(b.p, n);
        ck_assert_int_eq(codec_split(p, n, MAX_BODY, &body), 0);
        free(p);
    }
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_split_exact_frame)
{
    struct wbuf b = {0};
    struct codec_span body = {NULL, 0};
    wb_be32(&b, 3);
    wb_put(&b, "abc", 3);
    uint8_t *p = dup_exact(b.p, b.len);
    ck_assert_int_eq(codec_split(p, b.len, MAX_BODY, &body), 1);
    ck_assert_ptr_eq(body.p, p + CODEC_HDR_LEN);
    ck_assert_uint_eq(body.len, 3);
    free(p);
    /* Bytes of the next frame after it are not part of this one. */
    wb_be32(&b, 1000);
    wb_put(&b, "xy", 2);
    ck_assert_int_eq(codec_split(b.p, b.len, MAX_BODY, &body), 1);
    ck_assert_ptr_eq(body.p, b.p + CODEC_HDR_LEN);
    ck_assert_uint_eq(body.len, 3);
    ck_assert_int_eq(codec_split(b.p + 7, b.len - 7, MAX_BODY, &body), 0);
    /* The length prefix is big-endian. */
    const uint8_t be[] = {0x00, 0x00, 0x01, 0x02};
    uint8_t *big = calloc(1, 4 + 0x102);
    ck_assert_ptr_nonnull(big);
    memcpy(big, be, 4);
    ck_assert_int_eq(codec_split(big, 4 + 0x102, MAX_BODY, &body), 1);
    ck_assert_uint_eq(body.len, 0x102);
    ck_assert_int_eq(codec_split(big, 4 + 0x101, MAX_BODY, &body), 0);
    free(big);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_split_over_max_is_eframe)
{
    struct wbuf b = {0};
    struct codec_span body;
    wb_be32(&b, 101);
    /* Detected from the prefix alone, before the body arrives. */
    ck_assert_int_eq(codec_split(b.p, b.len, 100, &body), RMQ_EFRAME);
    ck_assert_int_eq(codec_split(b.p, b.len, 101, &body), 0);
    b.len = 0;
    wb_be32(&b, 0xffffffffu);
    ck_assert_int_eq(codec_split(b.p, b.len, MAX_BODY, &body), RMQ_EFRAME);
    b.len = 0;
    wb_be32(&b, MAX_BODY + 1);
    ck_assert_int_eq(codec_split(b.p, b.len, MAX_BODY, &body), RMQ_EFRAME);
    b.len = 0;
    wb_be32(&b, 0x80000000u);
    ck_assert_int_eq(codec_split(b.p, b.len, MAX_BODY, &body), RMQ_EFRAME);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_split_zero_length_body)
{
    const uint8_t buf[4] = {0, 0, 0, 0};
    struct codec_span body = {NULL, 99};
    uint8_t *p = dup_exact(buf, 4);
    ck_assert_int_eq(codec_split(p, 4, MAX_BODY, &body), 1);
    ck_assert_uint_eq(body.len, 0);
    ck_assert_ptr_eq(body.p, p + 4);
    ck_assert_int_eq(codec_split(p, 4, 0, &body), 1);
    /* An empty Frame holds no kind. */
    struct codec_span sub;
    ck_assert_int_eq(codec_peek(body.p, body.len, &sub), CODEC_K_NONE);
    ck_assert_uint_eq(sub.len, 0);
    free(p);
}
END_TEST

/* ---- core: codec_peek ---- */

/* One valid submessage of every kind, packed by protobuf-c into sub. */
static void pack_kind(int kind, Ringmq__Frame *f, struct wbuf *sub)
{
    static Ringmq__Connect con = RINGMQ__CONNECT__INIT;
    static Ringmq__Info info = RINGMQ__INFO__INIT;
    static Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
    static Ringmq__Subscribe subs = RINGMQ__SUBSCRIBE__INIT;
    static Ringmq__Unsubscribe unsub = RINGMQ__UNSUBSCRIBE__INIT;
    static Ringmq__Message msg = RINGMQ__MESSAGE__INIT;
    static Ringmq__Ping ping = RINGMQ__PING__INIT;
    static Ringmq__Pong pong = RINGMQ__PONG__INIT;
    static Ringmq__Error err = RINGMQ__ERROR__INIT;
    static uint8_t pay[3] = {1, 2, 3};
    ringmq__frame__init(f);
    con.version = 1;
    con.name = "t";
    info.server_id = "srv";
    info.version = "0.1.0";
    info.proto_version = 1;
    info.max_frame = MAX_BODY;
    info.max_payload = 1 << 20;
    info.shards = 4;
    pub.subject = "a.b";
    pub.has_payload = true;
    pub.payload.data = pay;
    pub.payload.len = sizeof(pay);
    subs.sid = 7;
    subs.pattern = "a.>";
    unsub.sid = 7;
    msg.subject = "a.b";
    msg.sid = 300;
    ping.has_token = true;
    ping.token = 77;
    pong.has_token = true;
    pong.token = 78;
    err.code = RINGMQ__ERROR_CODE__ERR_BAD_SID;
    const ProtobufCMessage *m = NULL;
    f->kind_case = (Ringmq__Frame__KindCase)kind;
    switch (kind) {
    case CODEC_K_CONNECT:
        f->connect = &con;
        m = &con.base;
        break;
    case CODEC_K_INFO:
        f->info = &info;
        m = &info.base;
        break;
    case CODEC_K_PUB:
        f->pub = &pub;
        m = &pub.base;
        break;
    case CODEC_K_SUB:
        f->sub = &subs;
        m = &subs.base;
        break;
    case CODEC_K_UNSUB:
        f->unsub = &unsub;
        m = &unsub.base;
        break;
    case CODEC_K_MSG:
        f->msg = &msg;
        m = &msg.base;
        break;
    case CODEC_K_PING:
        f->ping = &ping;
        m = &ping.base;
        break;
    case CODEC_K_PONG:
        f->pong = &pong;
        m = &pong.base;
        break;
    case CODEC_K_ERR:
        f->err = &err;
        m = &err.base;
        break;
    default:
        ck_abort_msg("no kind %d", kind);
    }
    sub->len = 0;
    wb_pack(sub, m);
}

START_TEST(test_codec_peek_every_kind)
{
    int kind = _i;
    Ringmq__Frame f;
    struct wbuf sub = {0}, body = {0};
    struct codec_span got;
    pack_kind(kind, &f, &sub);
    wb_pack(&body, &f.base);
    uint8_t *p = dup_exact(body.p, body.len);
    ck_assert_int_eq(codec_peek(p, body.len, &got), kind);
    ck_assert_uint_eq(got.len, sub.len);
    ck_assert_mem_eq(got.p, sub.p, sub.len);
    ck_assert_ptr_eq(got.p + got.len, p + body.len);
    free(p);
    /* The same submessage behind a kind tag of our own making. */
    body.len = 0;
    wb_lenfield(&body, (uint64_t)kind, sub.p, sub.len);
    ck_assert_int_eq(codec_peek(body.p, body.len, &got), kind);
    ck_assert_uint_eq(got.len, sub.len);
    /* An empty submessage still names the kind. */
    body.len = 0;
    wb_lenfield(&body, (uint64_t)kind, NULL, 0);
    ck_assert_int_eq(codec_peek(body.p, body.len, &got), kind);
    ck_assert_uint_eq(got.len, 0);
    /* Through codec_split, as frames arrive. */
    struct wbuf fr = {0};
    struct codec_span fb;
    wb_frame(&fr, (uint32_t)kind, sub.p, sub.len);
    ck_assert_int_eq(codec_split(fr.p, fr.len, MAX_BODY, &fb), 1);
    ck_assert_uint_eq(fb.len, fr.len - CODEC_HDR_LEN);
    ck_assert_int_eq(codec_peek(fb.p, fb.len, &got), kind);
    ck_assert_mem_eq(got.p, sub.p, sub.len);
    wb_free(&fr);
    wb_free(&sub);
    wb_free(&body);
}
END_TEST

/* Durable fields: a body with seq, time_ns and deliveries (and the reply
 * dropped) is read back by the codec and by protobuf-c alike. */
START_TEST(test_codec_body_durable_fields)
{
    uint8_t frame[256], body[256], msg[300];
    struct codec_span b, sub;
    struct codec_msg m, back;
    size_t n = codec_pub_write(frame, "orders.eu", 9, "r.1", 3, NULL, 0, "hello", 5);
    ck_assert_int_eq(codec_split(frame, n, MAX_BODY, &b), 1);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_PUB);
    ck_assert_int_eq(codec_msg_parse(sub.p, sub.len, &m), 0);
    ck_assert_uint_eq(m.seq, 0);
    m.reply.len = 0;
    m.seq = 1234567;
    m.time_ns = 1764600000123456789ull;
    m.deliveries = 3;
    size_t bl = codec_body_size(&m);
    ck_assert_uint_le(bl, sizeof(body));
    codec_body_write(&m, body);
    ck_assert_int_eq(codec_msg_parse(body, bl, &back), 0);
    ck_assert_uint_eq(back.seq, 1234567);
    ck_assert_uint_eq(back.time_ns, 1764600000123456789ull);
    ck_assert_uint_eq(back.deliveries, 3);
    ck_assert_uint_eq(back.reply.len, 0);
    /* As a whole MESSAGE, decoded by protobuf-c. */
    size_t pl = codec_msg_prefix(msg, 42, bl);
    memcpy(msg + pl, body, bl);
    ck_assert_int_eq(codec_split(msg, pl + bl, MAX_BODY, &b), 1);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_MSG);
    Ringmq__Message *pm = ringmq__message__unpack(NULL, sub.len, sub.p);
    ck_assert_ptr_nonnull(pm);
    ck_assert_uint_eq(pm->sid, 42);
    ck_assert(pm->has_seq && pm->seq == 1234567);
    ck_assert(pm->has_time_ns && pm->time_ns == 1764600000123456789ull);
    ck_assert(pm->has_deliveries && pm->deliveries == 3);
    ck_assert_ptr_null(pm->reply);
    ck_assert_str_eq(pm->subject, "orders.eu");
    ringmq__message__free_unpacked(pm, NULL);
    /* A seq in another wire type is malformed. */
    uint8_t bad[] = {0x0a, 0x01, 'a', 0x32, 0x01, 0x00};
    ck_assert_int_eq(codec_msg_parse(bad, sizeof(bad), &back), RMQ_EFRAME);
}
END_TEST

START_TEST(test_codec_peek_unknown_fields_are_none)
{
    struct wbuf b = {0};
    struct codec_span sub;
    /* 32-36 are the route kinds (CODEC_K_ROUTE_*), known since the cluster. */
    const uint64_t nums[] = {10, 15, 16, 31, 37, 47, 48, 1000, 536870911u};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        b.len = 0;
        wb_lenfield(&b, nums[i], "xyz", 3);
        wb_key(&b, nums[i], 0);
        wb_varint(&b, UINT64_MAX);
        wb_key(&b, nums[i], 1);
        wb_put(&b, "12345678", 8);
        wb_key(&b, nums[i], 5);
        wb_put(&b, "1234", 4);
        sub.len = 99;
        ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_NONE);
        ck_assert_uint_eq(sub.len, 0);
    }
    /* Unknown fields around a kind do not hide it. */
    b.len = 0;
    wb_lenfield(&b, 10, "x", 1);
    wb_lenfield(&b, CODEC_K_PING, "\x08\x05", 2);
    wb_lenfield(&b, 20, "y", 1);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_PING);
    ck_assert_uint_eq(sub.len, 2);
    ck_assert_mem_eq(sub.p, "\x08\x05", 2);
    ck_assert_int_eq(codec_peek(b.p, 0, &sub), CODEC_K_NONE);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_peek_last_kind_wins)
{
    struct wbuf b = {0};
    struct codec_span sub;
    wb_lenfield(&b, CODEC_K_PUB, "\x0a\x01x", 3);
    wb_lenfield(&b, CODEC_K_SUB, "\x08\x01\x12\x01y", 5);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_SUB);
    ck_assert_ptr_eq(sub.p, b.p + 5 + 2);
    ck_assert_uint_eq(sub.len, 5);
    /* The same kind twice: the second one. */
    b.len = 0;
    wb_lenfield(&b, CODEC_K_PING, "\x08\x01", 2);
    wb_lenfield(&b, CODEC_K_PING, "\x08\x02", 2);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_PING);
    ck_assert_mem_eq(sub.p, "\x08\x02", 2);
    /* protobuf-c's oneof agrees. */
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, b.len, b.p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->kind_case, RINGMQ__FRAME__KIND_PING);
    ck_assert_uint_eq(f->ping->token, 2);
    ringmq__frame__free_unpacked(f, NULL);
    /* A known kind followed by an unknown field number. */
    b.len = 0;
    wb_lenfield(&b, CODEC_K_PONG, "\x08\x03", 2);
    wb_lenfield(&b, 11, "\x08\x02", 2);
    ck_assert_int_eq(codec_peek(b.p, b.len, &sub), CODEC_K_PONG);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_peek_truncated_is_eframe)
{
    static const struct {
        const char *p;
        size_t n;
        const char *what;
    } cases[] = {
        /* clang-format off */
        {"\x80", 1, "key varint cut"},
        {"\x80\x80\x80", 3, "long key varint cut"},
        {"\x1a", 1, "kind without length"},
        {"\x1a\x80", 2, "length varint cut"},
        {"\x1a\x05" "abc", 5, "length past the end"},
        {"\x1a\x01" "a" "\x1a\x02" "b", 6, "second kind past the end"},
        {"\x52\x03" "ab", 4, "unknown length field past the end"},
        {"\x50", 1, "unknown varint field without value"},
        {"\x50\x80", 2, "unknown varint value cut"},
        {"\x51" "1234567", 8, "unknown fixed64 cut"},
        {"\x55" "123", 4, "unknown fixed32 cut"},
        {"\x1a\xff\xff\xff\xff\x0f", 6, "length 2^32-1"},
        {"\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11, "length 2^64-1"},
        {"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11, "key varint of 11 bytes"},
        /* clang-format on */
    };
    struct codec_span sub;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *p = dup_exact(cases[i].p, cases[i].n);
        ck_assert_msg(codec_peek(p, cases[i].n, &sub) == RMQ_EFRAME, "%s", cases[i].what);
        free(p);
    }
    /* Every cut of a one-field frame body is malformed. */
    Ringmq__Frame f;
    struct wbuf s = {0}, b = {0};
    pack_kind(CODEC_K_INFO, &f, &s);
    wb_pack(&b, &f.base);
    for (size_t n = 1; n < b.len; n++) {
        uint8_t *p = dup_exact(b.p, n);
        ck_assert_msg(codec_peek(p, n, &sub) == RMQ_EFRAME, "cut at %zu of %zu", n, b.len);
        free(p);
    }
    wb_free(&s);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_peek_wrong_wire_type_is_eframe)
{
    struct wbuf b = {0};
    struct codec_span sub;
    for (uint64_t kind = 1; kind <= CODEC_K_MAX; kind++) {
        b.len = 0;
        wb_key(&b, kind, 0);
        wb_varint(&b, 1);
        ck_assert_msg(codec_peek(b.p, b.len, &sub) == RMQ_EFRAME, "kind %d varint", (int)kind);
        b.len = 0;
        wb_key(&b, kind, 1);
        wb_put(&b, "12345678", 8);
        ck_assert_msg(codec_peek(b.p, b.len, &sub) == RMQ_EFRAME, "kind %d fixed64", (int)kind);
        b.len = 0;
        wb_key(&b, kind, 5);
        wb_put(&b, "1234", 4);
        ck_assert_msg(codec_peek(b.p, b.len, &sub) == RMQ_EFRAME, "kind %d fixed32", (int)kind);
        /* After a valid kind, too. */
        b.len = 0;
        wb_lenfield(&b, CODEC_K_PING, NULL, 0);
        wb_key(&b, kind, 0);
        wb_varint(&b, 0);
        ck_assert_msg(codec_peek(b.p, b.len, &sub) == RMQ_EFRAME, "kind %d after PING", (int)kind);
    }
    /* Groups (3, 4) and the undefined wire types 6, 7, known field or not. */
    const uint64_t nums[] = {CODEC_K_PUB, 12, 100};
    for (size_t i = 0; i < 3; i++) {
        for (unsigned wt = 3; wt <= 7; wt++) {
            if (wt == 5)
                continue;
            b.len = 0;
            wb_key(&b, nums[i], wt);
            wb_put(&b, "\0\0\0\0\0\0\0\0", 8);
            ck_assert_msg(codec_peek(b.p, b.len, &sub) == RMQ_EFRAME, "field %d wire type %u",
                          (int)nums[i], wt);
        }
    }
    /* Field number 0 is not valid protobuf. */
    ck_assert_int_eq(codec_peek((const uint8_t *)"\x02\x00", 2, &sub), RMQ_EFRAME);
    ck_assert_int_eq(codec_peek((const uint8_t *)"\x00\x00", 2, &sub), RMQ_EFRAME);
    wb_free(&b);
}
END_TEST

/* ---- core: codec_msg_parse and codec_hdr_next ---- */

START_TEST(test_codec_msg_parse_spans_point_into_buffer)
{
    struct wbuf b = {0}, h = {0};
    struct codec_msg m;
    wb_str(&b, 1, "orders.eu");
    wb_str(&b, 2, "_INBOX.1");
    wb_str(&h, 1, "k");
    wb_str(&h, 2, "v");
    wb_lenfield(&b, 3, h.p, h.len);
    wb_str(&b, 4, "hello");
    uint8_t *p = dup_exact(b.p, b.len);
    ck_assert_int_eq(codec_msg_parse(p, b.len, &m), 0);
    ck_assert_ptr_eq(m.subject.p, p + 2);
    ck_assert_uint_eq(m.subject.len, 9);
    ck_assert_ptr_eq(m.reply.p, p + 13);
    ck_assert_uint_eq(m.reply.len, 8);
    ck_assert_ptr_eq(m.payload.p, p + b.len - 5);
    ck_assert_mem_eq(m.payload.p, "hello", 5);
    ck_assert_uint_eq(m.nhdrs, 1);
    ck_assert(!m.has_sid);
    ck_assert_ptr_eq(m.raw.p, p);
    ck_assert_uint_eq(m.raw.len, b.len);
    /* Only a subject: reply, payload and headers are empty. */
    ck_assert_int_eq(codec_msg_parse(p, 11, &m), 0);
    ck_assert_uint_eq(m.reply.len, 0);
    ck_assert_uint_eq(m.payload.len, 0);
    ck_assert_uint_eq(m.nhdrs, 0);
    free(p);
    wb_free(&b);
    wb_free(&h);
}
END_TEST

START_TEST(test_codec_msg_parse_message_sid)
{
    const uint64_t sids[] = {0, 1, 127, 128, 1ull << 32, UINT64_MAX};
    struct wbuf b = {0};
    struct codec_msg m;
    for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
        b.len = 0;
        wb_key(&b, 5, 0);
        wb_varint(&b, sids[i]);
        wb_str(&b, 1, "s");
        ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
        ck_assert(m.has_sid);
        ck_assert_uint_eq(m.sid, sids[i]);
        Ringmq__Message *pm = ringmq__message__unpack(NULL, b.len, b.p);
        ck_assert_ptr_nonnull(pm);
        ck_assert_uint_eq(pm->sid, sids[i]);
        ringmq__message__free_unpacked(pm, NULL);
    }
    /* The last sid wins. */
    wb_key(&b, 5, 0);
    wb_varint(&b, 9);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    ck_assert_uint_eq(m.sid, 9);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_msg_parse_rejects_malformed)
{
    struct wbuf b = {0}, h = {0};
    struct codec_msg m;
    /* No subject. */
    wb_str(&b, 2, "r");
    wb_str(&b, 4, "p");
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    ck_assert_int_eq(codec_msg_parse(b.p, 0, &m), RMQ_EFRAME);
    /* A header without a key: value only, unknown fields only, empty. */
    const char *bad_hdrs[] = {"\x12\x01v", "\x1a\x01x", ""};
    const size_t bad_lens[] = {3, 3, 0};
    for (size_t i = 0; i < 3; i++) {
        b.len = 0;
        wb_str(&b, 1, "s");
        wb_lenfield(&b, 3, bad_hdrs[i], bad_lens[i]);
        ck_assert_msg(codec_msg_parse(b.p, b.len, &m) == RMQ_EFRAME, "bad header %zu", i);
        ck_assert_ptr_null(ringmq__publish__unpack(NULL, b.len, b.p));
    }
    /* Wrong wire types for fields 1-4 and for sid. */
    for (uint64_t num = 1; num <= 5; num++) {
        const unsigned wts[] = {0, 1, 2, 5};
        for (size_t w = 0; w < 4; w++) {
            if ((num <= 4 && wts[w] == 2) || (num == 5 && wts[w] == 0))
                continue;
            /* A complete value of the wrong type: varint 1, 8 or 4 bytes, or "x". */
            static const char *const vals[] = {"\x01", "12345678", "\x01x", NULL, NULL, "1234"};
            static const size_t vlens[] = {1, 8, 2, 0, 0, 4};
            b.len = 0;
            wb_str(&b, 1, "s");
            wb_key(&b, num, wts[w]);
            wb_put(&b, vals[wts[w]], vlens[wts[w]]);
            ck_assert_msg(codec_msg_parse(b.p, b.len, &m) == RMQ_EFRAME, "field %d wt %u", (int)num,
                          wts[w]);
        }
    }
    /* Wrong wire types inside a header. */
    h.len = 0;
    wb_str(&h, 1, "k");
    wb_key(&h, 2, 0);
    wb_varint(&h, 1);
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_lenfield(&b, 3, h.p, h.len);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    h.len = 0;
    wb_key(&h, 1, 5);
    wb_put(&h, "kkkk", 4);
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_lenfield(&b, 3, h.p, h.len);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    /* A header whose own fields run past its length. */
    b.len = 0;
    wb_str(&b, 1, "s");
    /* clang-format off */
    wb_lenfield(&b, 3, "\x0a\x05" "ab", 4);
    /* clang-format on */
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    /* Groups. */
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_key(&b, 9, 3);
    wb_key(&b, 9, 4);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    wb_free(&b);
    wb_free(&h);
}
END_TEST

/* Every cut of a valid PUBLISH: codec and protobuf-c accept the same ones. */
START_TEST(test_codec_msg_parse_truncations_match_protobuf_c)
{
    struct wbuf b = {0}, h = {0};
    struct codec_msg m;
    wb_str(&b, 1, "orders.eu.new");
    wb_str(&b, 2, "_INBOX.42");
    wb_str(&h, 1, "trace-id");
    wb_str(&h, 2, "abc");
    wb_lenfield(&b, 3, h.p, h.len);
    wb_lenfield(&b, 3, "\x0a\x01k", 3);
    wb_lenfield(&b, 4, "payload bytes", 13);
    wb_key(&b, 5, 0);
    wb_varint(&b, 1ull << 40);
    size_t accepted = 0;
    for (size_t n = 0; n <= b.len; n++) {
        uint8_t *p = dup_exact(b.p, n);
        int rc = codec_msg_parse(p, n, &m);
        Ringmq__Publish *pb = ringmq__publish__unpack(NULL, n, p);
        ck_assert_msg(rc == 0 || rc == RMQ_EFRAME, "rc %d", rc);
        ck_assert_msg((rc == 0) == (pb != NULL), "cut at %zu: codec %d, protobuf-c %s", n, rc,
                      pb ? "accepts" : "rejects");
        if (pb != NULL) {
            const char *d = pub_diff(&m, pb);
            ck_assert_msg(d == NULL, "cut at %zu: %s", n, d);
            ringmq__publish__free_unpacked(pb, NULL);
            accepted++;
        }
        free(p);
    }
    ck_assert_uint_eq(accepted, 6); /* after subject, reply, 2 headers, payload, sid */
    wb_free(&b);
    wb_free(&h);
}
END_TEST

START_TEST(test_codec_msg_parse_last_value_wins)
{
    struct wbuf b = {0};
    struct codec_msg m;
    wb_str(&b, 4, "p1");
    wb_str(&b, 1, "first");
    wb_str(&b, 2, "r1");
    /* clang-format off */
    wb_lenfield(&b, 3, "\x0a\x01" "a", 3);
    /* clang-format on */
    wb_str(&b, 1, "second");
    wb_str(&b, 2, "r2");
    /* clang-format off */
    wb_lenfield(&b, 3, "\x0a\x01" "b", 3);
    /* clang-format on */
    wb_str(&b, 4, "p2");
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    ck_assert_uint_eq(m.subject.len, 6);
    ck_assert_mem_eq(m.subject.p, "second", 6);
    ck_assert_mem_eq(m.reply.p, "r2", 2);
    ck_assert_mem_eq(m.payload.p, "p2", 2);
    ck_assert_uint_eq(m.nhdrs, 2); /* headers repeat, they do not replace */
    Ringmq__Publish *pb = ringmq__publish__unpack(NULL, b.len, b.p);
    ck_assert_ptr_nonnull(pb);
    const char *d = pub_diff(&m, pb);
    ck_assert_msg(d == NULL, "%s", d);
    ringmq__publish__free_unpacked(pb, NULL);
    /* A later empty reply replaces an earlier one. */
    wb_lenfield(&b, 2, NULL, 0);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    ck_assert_uint_eq(m.reply.len, 0);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_hdr_next_walks_headers)
{
    struct wbuf b = {0}, h = {0};
    struct codec_msg m;
    struct codec_hdr hd;
    size_t pos = 0;
    wb_str(&b, 1, "s");
    /* k1=v1 */
    wb_str(&h, 1, "k1");
    wb_str(&h, 2, "v1");
    wb_lenfield(&b, 3, h.p, h.len);
    wb_str(&b, 4, "pay");
    /* k2, no value, with unknown fields on both sides of the key */
    h.len = 0;
    wb_key(&h, 9, 0);
    wb_varint(&h, 300);
    wb_str(&h, 1, "k2");
    wb_lenfield(&h, 7, "zz", 2);
    wb_lenfield(&b, 3, h.p, h.len);
    wb_key(&b, 30, 5);
    wb_put(&b, "1234", 4);
    /* k3 with an empty value; the key is given twice, the last wins */
    h.len = 0;
    wb_str(&h, 1, "old");
    wb_lenfield(&h, 2, NULL, 0);
    wb_str(&h, 1, "k3");
    wb_lenfield(&b, 3, h.p, h.len);
    /* an empty key is still a key */
    wb_lenfield(&b, 3, "\x0a\x00", 2);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    ck_assert_uint_eq(m.nhdrs, 4);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 1);
    ck_assert_uint_eq(hd.klen, 2);
    ck_assert_mem_eq(hd.key, "k1", 2);
    ck_assert_ptr_nonnull(hd.val);
    ck_assert_uint_eq(hd.vlen, 2);
    ck_assert_mem_eq(hd.val, "v1", 2);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 1);
    ck_assert_mem_eq(hd.key, "k2", 2);
    ck_assert_ptr_null(hd.val);
    ck_assert_uint_eq(hd.vlen, 0);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 1);
    ck_assert_uint_eq(hd.klen, 2);
    ck_assert_mem_eq(hd.key, "k3", 2);
    ck_assert_ptr_nonnull(hd.val);
    ck_assert_uint_eq(hd.vlen, 0);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 1);
    ck_assert_uint_eq(hd.klen, 0);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 0);
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 0);
    Ringmq__Publish *pb = ringmq__publish__unpack(NULL, b.len, b.p);
    ck_assert_ptr_nonnull(pb);
    const char *d = pub_diff(&m, pb);
    ck_assert_msg(d == NULL, "%s", d);
    ringmq__publish__free_unpacked(pb, NULL);
    /* No headers: the walk ends at once. */
    ck_assert_int_eq(codec_msg_parse(b.p, 3, &m), 0);
    pos = 0;
    ck_assert_int_eq(codec_hdr_next(&m, &pos, &hd), 0);
    wb_free(&b);
    wb_free(&h);
}
END_TEST

/* ---- core: shared body + prefix, PUBLISH encoder ---- */

START_TEST(test_codec_body_prefix_decode_as_message)
{
    const uint64_t sids[] = {1, 127, 128, 1ull << 32, UINT64_MAX};
    const size_t plens[] = {0, 1, 127, 128, 16383, 16384, 70000};
    uint8_t *pay = malloc(70000);
    ck_assert_ptr_nonnull(pay);
    rng_fill(pay, 70000);
    for (size_t v = 0; v < 4; v++) {
        for (size_t pl = 0; pl < sizeof(plens) / sizeof(plens[0]); pl++) {
            Ringmq__Publish pub = RINGMQ__PUBLISH__INIT;
            Ringmq__Header h1 = RINGMQ__HEADER__INIT, h2 = RINGMQ__HEADER__INIT;
            Ringmq__Header *hp[2] = {&h1, &h2};
            struct wbuf b = {0};
            struct codec_msg m;
            pub.subject = "orders.eu.new";
            pub.reply = (v & 1) ? "_INBOX.abc.1" : NULL;
            if (v & 2) {
                h1.key = "content-type";
                h1.has_value = true;
                h1.value.data = (uint8_t *)"json";
                h1.value.len = 4;
                h2.key = "flag";
                pub.n_headers = 2;
                pub.headers = hp;
            }
            pub.has_payload = true;
            pub.payload.data = pay;
            pub.payload.len = plens[pl];
            wb_pack(&b, &pub.base);
            uint8_t *p = dup_exact(b.p, b.len);
            ck_assert_int_eq(codec_msg_parse(p, b.len, &m), 0);
            const char *d = pub_diff(&m, &pub);
            ck_assert_msg(d == NULL, "%s", d);
            for (size_t s = 0; s < sizeof(sids) / sizeof(sids[0]); s++) {
                d = delivery_diff(&m, sids[s]);
                ck_assert_msg(d == NULL, "variant %zu payload %zu sid %" PRIu64 ": %s", v,
                              plens[pl], sids[s], d);
            }
            free(p);
            wb_free(&b);
        }
    }
    free(pay);
}
END_TEST

START_TEST(test_codec_msg_prefix_layout)
{
    uint8_t pre[CODEC_MSG_PREFIX_MAX];
    /* sid 1, body 10: [len 13][0x32 12][0x28 1] */
    size_t n = codec_msg_prefix(pre, 1, 10);
    ck_assert_uint_eq(n, 8);
    ck_assert_mem_eq(pre, "\x00\x00\x00\x0e\x32\x0c\x28\x01", 8);
    /* The largest prefix: 10-byte sid, 5-byte submessage length. */
    n = codec_msg_prefix(pre, UINT64_MAX, (size_t)1 << 30);
    ck_assert_uint_eq(n, 4 + 1 + 5 + 1 + 10);
    ck_assert_uint_le(n, CODEC_MSG_PREFIX_MAX);
}
END_TEST

START_TEST(test_codec_body_subject_reads_first_field)
{
    struct wbuf b = {0};
    struct codec_msg m;
    struct codec_span subj;
    wb_str(&b, 2, "_INBOX.1");
    wb_str(&b, 4, "pay");
    wb_str(&b, 1, "orders.eu");
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    size_t n = codec_body_size(&m);
    uint8_t *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    codec_body_write(&m, body);
    /* The body puts the subject first, wherever the PUBLISH had it. */
    ck_assert_int_eq(codec_body_subject(body, n, &subj), 0);
    ck_assert_ptr_eq(subj.p, body + 2);
    ck_assert_uint_eq(subj.len, 9);
    ck_assert_mem_eq(subj.p, "orders.eu", 9);
    /* Cut inside the subject, or before it. */
    for (size_t cut = 0; cut < 11; cut++)
        ck_assert_msg(codec_body_subject(body, cut, &subj) == RMQ_EFRAME, "cut at %zu", cut);
    ck_assert_int_eq(codec_body_subject(body, 11, &subj), 0);
    free(body);
    /* Not a body: the first field is not a length-delimited field 1. */
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {{"\x12\x01r\x0a\x01s", 6},
               {"\x08\x01", 2},
               {"\x0d\x01\x02\x03\x04", 5},
               {"\x0a\x05s", 3},
               {"\x00\x01s", 3}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *p = dup_exact(bad[i].p, bad[i].n);
        ck_assert_msg(codec_body_subject(p, bad[i].n, &subj) == RMQ_EFRAME, "case %zu", i);
        free(p);
    }
    wb_free(&b);
}
END_TEST

/* Encode with codec_pub_write into buffers of two fill patterns; returns the written length. */
static size_t pub_write_checked(const char *subj, const char *reply, const struct codec_hdr *hdrs,
                                size_t nhdrs, const void *pay, size_t plen, uint8_t **out)
{
    size_t rlen = reply ? strlen(reply) : 0;
    size_t sz = codec_pub_size(subj, strlen(subj), reply, rlen, hdrs, nhdrs, plen);
    size_t cap = sz + 16;
    uint8_t *a = malloc(cap), *b = malloc(cap);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    memset(a, 0x00, cap);
    memset(b, 0xff, cap);
    size_t na = codec_pub_write(a, subj, strlen(subj), reply, rlen, hdrs, nhdrs, pay, plen);
    size_t nb = codec_pub_write(b, subj, strlen(subj), reply, rlen, hdrs, nhdrs, pay, plen);
    FAST_ASSERT(na == sz && nb == sz, "codec_pub_write %zu, codec_pub_size %zu", na, sz);
    for (size_t i = 0; i < cap; i++)
        FAST_ASSERT((a[i] == b[i]) == (i < sz), "codec_pub_write: byte %zu of %zu", i, sz);
    free(b);
    *out = a;
    return sz;
}

/* Check a PUBLISH frame from codec_pub_write against the arguments it was made from. */
static void pub_frame_check(const uint8_t *p, size_t n, const char *subj, const char *reply,
                            const struct codec_hdr *hdrs, size_t nhdrs, const void *pay,
                            size_t plen)
{
    struct codec_span body, sub;
    struct codec_msg m;
    FAST_ASSERT(codec_split(p, n, UINT32_MAX, &body) == 1 && body.len == n - CODEC_HDR_LEN,
                "PUBLISH frame does not split to its length");
    Ringmq__Frame *f = ringmq__frame__unpack(NULL, body.len, body.p);
    FAST_ASSERT(f != NULL && f->kind_case == RINGMQ__FRAME__KIND_PUB,
                "protobuf-c rejects codec_pub_write output");
    const Ringmq__Publish *pb = f->pub;
    FAST_ASSERT(strcmp(pb->subject, subj) == 0, "subject");
    FAST_ASSERT(reply && *reply ? pb->reply && strcmp(pb->reply, reply) == 0 : pb->reply == NULL,
                "reply");
    FAST_ASSERT(pb->n_headers == nhdrs, "n_headers %zu != %zu", pb->n_headers, nhdrs);
    for (size_t i = 0; i < nhdrs; i++) {
        FAST_ASSERT(
            mem_eq(pb->headers[i]->key, strlen(pb->headers[i]->key), hdrs[i].key, hdrs[i].klen),
            "header %zu key", i);
        FAST_ASSERT((pb->headers[i]->has_value != 0) == (hdrs[i].val != NULL), "header %zu", i);
        if (hdrs[i].val)
            FAST_ASSERT(mem_eq(pb->headers[i]->value.data, pb->headers[i]->value.len, hdrs[i].val,
                               hdrs[i].vlen),
                        "header %zu value", i);
    }
    FAST_ASSERT(mem_eq(pb->payload.data, pb->payload.len, pay, plen), "payload");
    FAST_ASSERT(codec_peek(body.p, body.len, &sub) == CODEC_K_PUB, "peek");
    FAST_ASSERT(codec_msg_parse(sub.p, sub.len, &m) == 0, "codec_msg_parse");
    const char *d = pub_diff(&m, pb);
    FAST_ASSERT(d == NULL, "%s", d);
    ringmq__frame__free_unpacked(f, NULL);
}

START_TEST(test_codec_pub_write_decodes_as_publish)
{
    static const struct codec_hdr hdrs[] = {
        {"content-type", 12, "text/plain", 10},
        {"no-value", 8, NULL, 0},
        {"empty", 5, "", 0},
        {"bin", 3, "\x00\xff\x00", 3},
    };
    const size_t plens[] = {0, 1, 127, 128, 70000};
    uint8_t *pay = malloc(70000), *out;
    ck_assert_ptr_nonnull(pay);
    rng_fill(pay, 70000);
    for (size_t v = 0; v < 8; v++) {
        for (size_t pl = 0; pl < sizeof(plens) / sizeof(plens[0]); pl++) {
            const char *subj = (v & 4) ? "a" : "orders.eu.new.very.long.subject.name.here";
            const char *reply = (v & 1) ? "_INBOX.q7" : NULL;
            size_t nh = (v & 2) ? 4 : 0;
            size_t n = pub_write_checked(subj, reply, nh ? hdrs : NULL, nh, pay, plens[pl], &out);
            pub_frame_check(out, n, subj, reply, hdrs, nh, pay, plens[pl]);
            free(out);
        }
    }
    /* NULL payload with length 0, and NULL reply with length 0. */
    size_t n = codec_pub_size("x", 1, NULL, 0, NULL, 0, 0);
    out = malloc(n);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(codec_pub_write(out, "x", 1, NULL, 0, NULL, 0, NULL, 0), n);
    pub_frame_check(out, n, "x", NULL, NULL, 0, NULL, 0);
    free(out);
    free(pay);
}
END_TEST

/* ---- core: generic encoders ---- */

START_TEST(test_codec_frame_write_enospc_when_small)
{
    Ringmq__Frame f;
    struct wbuf sub = {0};
    for (int kind = 1; kind <= CODEC_K_MAX; kind++) {
        pack_kind(kind, &f, &sub);
        size_t sz = codec_frame_size(&f);
        ck_assert_uint_eq(sz, CODEC_HDR_LEN + ringmq__frame__get_packed_size(&f));
        for (size_t cap = 0; cap < sz; cap++) {
            uint8_t *p = malloc(cap ? cap : 1);
            ck_assert_ptr_nonnull(p);
            memset(p, 0xa5, cap);
            ck_assert_int_eq(codec_frame_write(&f, p, cap), -ENOSPC);
            for (size_t i = 0; i < cap; i++)
                FAST_ASSERT(p[i] == 0xa5, "kind %d cap %zu: byte %zu written", kind, cap, i);
            free(p);
        }
        uint8_t *p = malloc(sz);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(codec_frame_write(&f, p, sz), (ssize_t)sz);
        struct codec_span body, got;
        ck_assert_int_eq(codec_split(p, sz, MAX_BODY, &body), 1);
        ck_assert_int_eq(codec_peek(body.p, body.len, &got), kind);
        ck_assert_uint_eq(got.len, sub.len);
        ck_assert_mem_eq(got.p, sub.p, sub.len);
        free(p);
    }
    wb_free(&sub);
}
END_TEST

START_TEST(test_codec_error_write_round_trip)
{
    const char *texts[] = {NULL, "", "bad subject 'a..b'"};
    const uint64_t sids[] = {0, 42, UINT64_MAX};
    uint8_t buf[256];
    struct codec_span body, sub;
    for (int code = 0; code <= RINGMQ__ERROR_CODE__ERR_LIMIT; code++) {
        for (size_t t = 0; t < 3; t++) {
            for (size_t s = 0; s < 3; s++) {
                for (int fatal = 0; fatal <= 1; fatal++) {
                    ssize_t n = codec_error_write(buf, sizeof(buf), (Ringmq__ErrorCode)code,
                                                  texts[t], sids[s], fatal);
                    ck_assert_int_gt(n, CODEC_HDR_LEN);
                    ck_assert_int_eq(codec_split(buf, (size_t)n, MAX_BODY, &body), 1);
                    ck_assert_uint_eq(body.len, (size_t)n - CODEC_HDR_LEN);
                    ck_assert_int_eq(codec_peek(body.p, body.len, &sub), CODEC_K_ERR);
                    Ringmq__Error *e = ringmq__error__unpack(NULL, sub.len, sub.p);
                    ck_assert_ptr_nonnull(e);
                    ck_assert_int_eq(e->code, code);
                    if (texts[t] == NULL)
                        ck_assert_ptr_null(e->text);
                    else
                        ck_assert_str_eq(e->text, texts[t]);
                    ck_assert_int_eq(e->has_sid, sids[s] != 0);
                    ck_assert_uint_eq(e->sid, sids[s]);
                    ck_assert_int_eq(e->fatal, fatal);
                    ringmq__error__free_unpacked(e, NULL);
                    /* Too small by one byte. */
                    ck_assert_int_eq(codec_error_write(buf, (size_t)n - 1, (Ringmq__ErrorCode)code,
                                                       texts[t], sids[s], fatal),
                                     -ENOSPC);
                }
            }
        }
    }
    ck_assert_int_eq(codec_error_write(buf, 0, RINGMQ__ERROR_CODE__ERR_AUTH, "x", 0, true),
                     -ENOSPC);
}
END_TEST

START_TEST(test_codec_ping_write_round_trip)
{
    const uint64_t tokens[] = {0, 1, 127, 128, 1ull << 63, UINT64_MAX};
    const int kinds[] = {CODEC_K_PING, CODEC_K_PONG};
    uint8_t buf[64];
    struct codec_span body, sub;
    for (size_t k = 0; k < 2; k++) {
        for (size_t t = 0; t < sizeof(tokens) / sizeof(tokens[0]); t++) {
            ssize_t n = codec_ping_write(buf, sizeof(buf), kinds[k], tokens[t]);
            ck_assert_int_gt(n, CODEC_HDR_LEN);
            ck_assert_int_eq(codec_split(buf, (size_t)n, MAX_BODY, &body), 1);
            ck_assert_uint_eq(body.len, (size_t)n - CODEC_HDR_LEN);
            ck_assert_int_eq(codec_peek(body.p, body.len, &sub), kinds[k]);
            Ringmq__Frame *f = ringmq__frame__unpack(NULL, body.len, body.p);
            ck_assert_ptr_nonnull(f);
            if (kinds[k] == CODEC_K_PING) {
                ck_assert_int_eq(f->kind_case, RINGMQ__FRAME__KIND_PING);
                ck_assert(f->ping->has_token);
                ck_assert_uint_eq(f->ping->token, tokens[t]);
            } else {
                ck_assert_int_eq(f->kind_case, RINGMQ__FRAME__KIND_PONG);
                ck_assert(f->pong->has_token);
                ck_assert_uint_eq(f->pong->token, tokens[t]);
            }
            ringmq__frame__free_unpacked(f, NULL);
            for (size_t cap = 0; cap < (size_t)n; cap++)
                ck_assert_int_eq(codec_ping_write(buf, cap, kinds[k], tokens[t]), -ENOSPC);
        }
    }
}
END_TEST

START_TEST(test_codec_err_from_wire_every_code)
{
    static const struct {
        Ringmq__ErrorCode code;
        const char *name;
        int err;
    } table[] = {
        {RINGMQ__ERROR_CODE__ERR_UNKNOWN, "ERR_UNKNOWN", RMQ_ESERVER},
        {RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "ERR_BAD_FRAME", RMQ_EFRAME},
        {RINGMQ__ERROR_CODE__ERR_FRAME_TOO_BIG, "ERR_FRAME_TOO_BIG", RMQ_EFRAME},
        {RINGMQ__ERROR_CODE__ERR_UNKNOWN_KIND, "ERR_UNKNOWN_KIND", RMQ_EKIND},
        {RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT, "ERR_BAD_SUBJECT", RMQ_ESUBJECT},
        {RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG, "ERR_PAYLOAD_TOO_BIG", -EMSGSIZE},
        {RINGMQ__ERROR_CODE__ERR_SLOW_CONSUMER, "ERR_SLOW_CONSUMER", RMQ_ESLOW},
        {RINGMQ__ERROR_CODE__ERR_AUTH, "ERR_AUTH", RMQ_EAUTH},
        {RINGMQ__ERROR_CODE__ERR_PROTOCOL_VERSION, "ERR_PROTOCOL_VERSION", -EPROTO},
        {RINGMQ__ERROR_CODE__ERR_NOT_CONNECTED, "ERR_NOT_CONNECTED", RMQ_ESERVER},
        {RINGMQ__ERROR_CODE__ERR_BAD_SID, "ERR_BAD_SID", RMQ_ENOTFOUND},
        {RINGMQ__ERROR_CODE__ERR_SHUTDOWN, "ERR_SHUTDOWN", RMQ_ECLOSED},
        {RINGMQ__ERROR_CODE__ERR_LIMIT, "ERR_LIMIT", RMQ_ESERVER},
        {RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "ERR_NO_TOPIC", RMQ_ENOTFOUND},
        {RINGMQ__ERROR_CODE__ERR_EXISTS, "ERR_EXISTS", -EEXIST},
        {RINGMQ__ERROR_CODE__ERR_STORE_FULL, "ERR_STORE_FULL", RMQ_ESTOREFULL},
        {RINGMQ__ERROR_CODE__ERR_STORAGE, "ERR_STORAGE", -EIO},
        {RINGMQ__ERROR_CODE__ERR_UNAVAILABLE, "ERR_UNAVAILABLE", RMQ_EUNAVAIL},
        {RINGMQ__ERROR_CODE__ERR_INVALID, "ERR_INVALID", -EINVAL},
    };
    const size_t n = sizeof(table) / sizeof(table[0]);
    /* A new wire code must be added to this table (and mapped on purpose). */
    ck_assert_uint_eq(ringmq__error_code__descriptor.n_values, n);
    for (size_t i = 0; i < n; i++) {
        int err = codec_err_from_wire(table[i].code);
        ck_assert_msg(err == table[i].err, "%s -> %d, want %d", table[i].name, err, table[i].err);
        ck_assert_int_lt(err, 0);
        ck_assert_str_eq(codec_err_name(table[i].code), table[i].name);
        const char *s = rmq_err_str(err);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown error");
    }
    /* Codes from a newer server. */
    ck_assert_int_eq(codec_err_from_wire((Ringmq__ErrorCode)99), RMQ_ESERVER);
    ck_assert_int_eq(codec_err_from_wire((Ringmq__ErrorCode)-1), RMQ_ESERVER);
    ck_assert_str_eq(codec_err_name((Ringmq__ErrorCode)99), "ERR_UNKNOWN");
    ck_assert_str_eq(codec_err_name((Ringmq__ErrorCode)-1), "ERR_UNKNOWN");
}
END_TEST

START_TEST(test_codec_err_str_every_code)
{
    const int known[] = {0,         RMQ_EFRAME, RMQ_ESUBJECT, RMQ_ENOTFOUND, RMQ_ESTOREFULL,
                         RMQ_ESLOW, RMQ_EAUTH,  RMQ_ESERVER,  RMQ_EKIND,     RMQ_ECLOSED,
                         -EPIPE,    -ENOSPC,    -EMSGSIZE,    -EPROTO,       -EAGAIN};
    const size_t nk = sizeof(known) / sizeof(known[0]);
    for (size_t i = 0; i < nk; i++) {
        const char *s = rmq_err_str(known[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 0);
        ck_assert_msg(strcmp(s, "unknown error") != 0 && strcmp(s, "unknown system error") != 0,
                      "%d has no text", known[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(s, rmq_err_str(known[j])) != 0, "%d and %d share \"%s\"", known[i],
                          known[j], s);
    }
    ck_assert_str_eq(rmq_err_str(-EPIPE), "Broken pipe");
    const int odd[] = {1, INT_MAX, INT_MIN, -4095, -4096, -4000, RMQ_ERRBASE, RMQ_ERRBASE - 100};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        const char *s = rmq_err_str(odd[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 0);
    }
    for (int e = -4095; e < 0; e++)
        FAST_ASSERT(rmq_err_str(e) != NULL, "rmq_err_str(%d) is NULL", e);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_codec_limits_split_at_max_body)
{
    struct codec_span body;
    const uint32_t maxes[] = {0, 1, 1000, MAX_BODY};
    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        uint32_t mx = maxes[i];
        uint8_t *p = calloc(1, (size_t)mx + 5);
        ck_assert_ptr_nonnull(p);
        p[0] = (uint8_t)(mx >> 24);
        p[1] = (uint8_t)(mx >> 16);
        p[2] = (uint8_t)(mx >> 8);
        p[3] = (uint8_t)mx;
        ck_assert_int_eq(codec_split(p, (size_t)mx + 4, mx, &body), 1);
        ck_assert_uint_eq(body.len, mx);
        ck_assert_int_eq(codec_split(p, (size_t)mx + 3, mx, &body), 0);
        if (mx > 0)
            ck_assert_int_eq(codec_split(p, (size_t)mx + 4, mx - 1, &body), RMQ_EFRAME);
        free(p);
    }
    /* max_body UINT32_MAX: any prefix is acceptable, the body is awaited. */
    const uint8_t big[4] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(codec_split(big, 4, UINT32_MAX, &body), 0);
}
END_TEST

START_TEST(test_codec_limits_varint_ten_bytes)
{
    struct wbuf b = {0};
    struct codec_msg m;
    /* sid 2^64-1 takes ten bytes. */
    wb_str(&b, 1, "s");
    wb_key(&b, 5, 0);
    wb_varint(&b, UINT64_MAX);
    ck_assert_uint_eq(b.len, 3 + 1 + 10);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    ck_assert_uint_eq(m.sid, UINT64_MAX);
    /* Eleven bytes is no varint. */
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_key(&b, 5, 0);
    wb_put(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    ck_assert_ptr_null(ringmq__message__unpack(NULL, b.len, b.p));
    /* Ten continuation bytes at the end. */
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_key(&b, 5, 0);
    wb_put(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_limits_field_numbers)
{
    struct wbuf b = {0};
    struct codec_msg m;
    struct codec_span sub;
    /* The largest field number protobuf allows is skipped as unknown. */
    wb_str(&b, 1, "s");
    wb_lenfield(&b, 536870911u, "x", 1);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), 0);
    Ringmq__Publish *pb = ringmq__publish__unpack(NULL, b.len, b.p);
    ck_assert_ptr_nonnull(pb);
    ringmq__publish__free_unpacked(pb, NULL);
    ck_assert_int_eq(codec_peek(b.p + 3, b.len - 3, &sub), CODEC_K_NONE);
    /* One more is out of range: codec rejects it (protobuf-c skips it). */
    b.len = 0;
    wb_str(&b, 1, "s");
    wb_lenfield(&b, 536870912u, "x", 1);
    ck_assert_int_eq(codec_msg_parse(b.p, b.len, &m), RMQ_EFRAME);
    ck_assert_int_eq(codec_peek(b.p + 3, b.len - 3, &sub), RMQ_EFRAME);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_limits_one_mib_payload)
{
    const size_t plen = 1024 * 1024;
    uint8_t *pay = malloc(plen), *out;
    ck_assert_ptr_nonnull(pay);
    rng_fill(pay, plen);
    struct codec_hdr hdrs[64];
    char keys[64][16];
    for (size_t i = 0; i < 64; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
        hdrs[i] = (struct codec_hdr){keys[i], strlen(keys[i]), pay + i * 100, 100};
    }
    size_t n = pub_write_checked("big.payload", "_INBOX.big", hdrs, 64, pay, plen, &out);
    ck_assert_uint_le(n - CODEC_HDR_LEN, MAX_BODY);
    pub_frame_check(out, n, "big.payload", "_INBOX.big", hdrs, 64, pay, plen);
    struct codec_span body, sub;
    struct codec_msg m;
    ck_assert_int_eq(codec_split(out, n, MAX_BODY, &body), 1);
    ck_assert_int_eq(codec_peek(body.p, body.len, &sub), CODEC_K_PUB);
    ck_assert_int_eq(codec_msg_parse(sub.p, sub.len, &m), 0);
    ck_assert_uint_eq(m.payload.len, plen);
    ck_assert_uint_eq(m.nhdrs, 64);
    const char *d = delivery_diff(&m, UINT64_MAX);
    ck_assert_msg(d == NULL, "%s", d);
    free(out);
    free(pay);
}
END_TEST

START_TEST(test_codec_limits_many_headers)
{
    enum { NH = 10000 };
    struct codec_hdr *hdrs = calloc(NH, sizeof(*hdrs));
    char(*keys)[12] = calloc(NH, 12);
    uint8_t *out;
    ck_assert_ptr_nonnull(hdrs);
    ck_assert_ptr_nonnull(keys);
    for (size_t i = 0; i < NH; i++) {
        snprintf(keys[i], 12, "h%zu", i);
        hdrs[i].key = keys[i];
        hdrs[i].klen = strlen(keys[i]);
        if (i % 3) {
            hdrs[i].val = keys[i];
            hdrs[i].vlen = i % 12;
        }
    }
    size_t n = pub_write_checked("many", NULL, hdrs, NH, "p", 1, &out);
    pub_frame_check(out, n, "many", NULL, hdrs, NH, "p", 1);
    struct codec_span body, sub;
    struct codec_msg m;
    struct codec_hdr h;
    size_t pos = 0, i = 0;
    ck_assert_int_eq(codec_split(out, n, MAX_BODY, &body), 1);
    ck_assert_int_eq(codec_peek(body.p, body.len, &sub), CODEC_K_PUB);
    ck_assert_int_eq(codec_msg_parse(sub.p, sub.len, &m), 0);
    ck_assert_uint_eq(m.nhdrs, NH);
    while (codec_hdr_next(&m, &pos, &h) == 1) {
        FAST_ASSERT(mem_eq(h.key, h.klen, hdrs[i].key, hdrs[i].klen), "header %zu", i);
        FAST_ASSERT((h.val == NULL) == (hdrs[i].val == NULL), "header %zu value", i);
        i++;
    }
    ck_assert_uint_eq(i, NH);
    const char *d = delivery_diff(&m, 5);
    ck_assert_msg(d == NULL, "%s", d);
    free(out);
    free(keys);
    free(hdrs);
}
END_TEST

/*
 * Non-minimal varints: a length or a key padded with 0x80 bytes. protobuf-c
 * reads keys and lengths as at most 5 bytes (parse_tag_and_wiretype,
 * scan_length_prefixed_data) and rejects longer ones; codec_msg_parse must
 * not accept a PUBLISH that protobuf-c cannot read, since the broker copies
 * header fields verbatim into every delivered MESSAGE.
 */
START_TEST(test_codec_limits_overlong_varint_agrees_with_protobuf_c)
{
    static const struct {
        const char *p;
        size_t n;
        const char *what;
    } cases[] = {
        /* clang-format off */
        /* 5 bytes: both accept. */
        {"\x0a\x83\x80\x80\x80\x00" "abc", 9, "subject length in 5 bytes"},
        {"\x8a\x80\x80\x80\x00\x03" "abc", 9, "subject key in 5 bytes"},
        /* 6 bytes and more. */
        {"\x0a\x83\x80\x80\x80\x80\x00" "abc", 10, "subject length in 6 bytes"},
        {"\x8a\x80\x80\x80\x80\x00\x03" "abc", 10, "subject key in 6 bytes"},
        {"\x0a\x01s" "\x22\x82\x80\x80\x80\x80\x80\x80\x80\x80\x00" "pp", 16,
         "payload length in 10 bytes"},
        {"\x0a\x01s" "\x1a\x08" "\x0a\x81\x80\x80\x80\x80\x00" "k", 13,
         "header key length in 6 bytes"},
        {"\x0a\x01s" "\x1a\x08" "\x8a\x80\x80\x80\x80\x00\x01" "k", 13,
         "header key tag in 6 bytes"},
        {"\x0a\x01s" "\x9a\x80\x80\x80\x80\x00\x03\x0a\x01k", 13, "header tag in 6 bytes"},
        /* clang-format on */
    };
    struct codec_msg m;
    int bad = 0;
    char why[1024] = "";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *p = dup_exact(cases[i].p, cases[i].n);
        int rc = codec_msg_parse(p, cases[i].n, &m);
        Ringmq__Publish *pb = ringmq__publish__unpack(NULL, cases[i].n, p);
        if (rc == 0 && pb == NULL) {
            size_t o = strlen(why);
            snprintf(why + o, sizeof(why) - o, "\n  %s [%s]: codec_msg_parse 0, protobuf-c NULL",
                     cases[i].what, hex(p, cases[i].n));
            bad++;
        }
        if (rc == 0 && pb != NULL) {
            const char *d = pub_diff(&m, pb);
            ck_assert_msg(d == NULL, "%s: %s", cases[i].what, d);
            d = delivery_diff(&m, 1);
            ck_assert_msg(d == NULL, "%s: %s", cases[i].what, d);
        }
        if (pb != NULL)
            ringmq__publish__free_unpacked(pb, NULL);
        free(p);
    }
    ck_assert_msg(bad == 0, "codec accepts %d PUBLISH bodies that protobuf-c rejects:%s", bad, why);
}
END_TEST

/* ---- fuzz: differential against protobuf-c ---- */

START_TEST(test_codec_fuzz_msg_parse_vs_protobuf_c)
{
    struct gen g = {0};
    struct wbuf b = {0};
    struct codec_msg m;
    struct codec_hdr ch[GEN_MAX_HDRS];
    for (int it = 0; it < 10000; it++) {
        gen_fill(&g, 70000);
        gen_encode(&g, &b);
        uint8_t *p = dup_exact(b.p, b.len);
        int rc = codec_msg_parse(p, b.len, &m);
        FAST_ASSERT(rc == 0, "iteration %d: codec_msg_parse %d on [%s]", it, rc, hex(p, b.len));
        /* The values the message was built from. */
        const char *d = pub_diff(&m, &g.pub);
        FAST_ASSERT(d == NULL, "iteration %d: vs built message: %s [%s]", it, d, hex(p, b.len));
        FAST_ASSERT(m.has_sid == g.has_sid && (!g.has_sid || m.sid == g.sid), "iteration %d: sid",
                    it);
        /* protobuf-c's reading of the same bytes. */
        Ringmq__Publish *pb = ringmq__publish__unpack(NULL, b.len, p);
        FAST_ASSERT(pb != NULL, "iteration %d: protobuf-c rejects [%s]", it, hex(p, b.len));
        d = pub_diff(&m, pb);
        FAST_ASSERT(d == NULL, "iteration %d: vs protobuf-c: %s [%s]", it, d, hex(p, b.len));
        ringmq__publish__free_unpacked(pb, NULL);
        if (g.has_sid) {
            Ringmq__Message *pm = ringmq__message__unpack(NULL, b.len, p);
            FAST_ASSERT(pm != NULL && pm->sid == m.sid, "iteration %d: as Message", it);
            d = message_diff(&m, pm);
            FAST_ASSERT(d == NULL, "iteration %d: vs Message: %s", it, d);
            ringmq__message__free_unpacked(pm, NULL);
        }
        /* Fan-out to a subscriber. */
        d = delivery_diff(&m, rand_sid());
        FAST_ASSERT(d == NULL, "iteration %d: delivery: %s [%s]", it, d, hex(p, b.len));
        /* The client's encoder with the same values. */
        for (size_t i = 0; i < g.pub.n_headers; i++) {
            ch[i].key = g.hdr[i].key;
            ch[i].klen = strlen(g.hdr[i].key);
            ch[i].val = g.hdr[i].has_value ? (const void *)g.val[i] : NULL;
            ch[i].vlen = g.hdr[i].value.len;
        }
        uint8_t *out;
        size_t plen = g.pub.has_payload ? g.pub.payload.len : 0;
        size_t n =
            pub_write_checked(g.subject, g.pub.reply, ch, g.pub.n_headers, g.payload, plen, &out);
        pub_frame_check(out, n, g.subject, g.pub.reply, ch, g.pub.n_headers, g.payload, plen);
        free(out);
        free(p);
    }
    gen_free(&g);
    wb_free(&b);
}
END_TEST

START_TEST(test_codec_fuzz_mutations_agree_with_protobuf_c)
{
    struct gen g = {0};
    struct wbuf b = {0};
    struct codec_msg m;
    unsigned both = 0, neither = 0, codec_only_rejects = 0;
    for (int it = 0; it < 100000; it++) {
        gen_fill(&g, 300);
        gen_encode(&g, &b);
        for (size_t k = 1 + rng_below(4); k > 0; k--)
            mutate(&b);
        uint8_t *p = dup_exact(b.p, b.len);
        int rc = codec_msg_parse(p, b.len, &m);
        Ringmq__Publish *pb = ringmq__publish__unpack(NULL, b.len, p);
        FAST_ASSERT(rc == 0 || rc == RMQ_EFRAME, "iteration %d: rc %d", it, rc);
        if (rc == 0) {
            FAST_ASSERT(pb != NULL, "iteration %d: codec accepts what protobuf-c rejects: [%s]", it,
                        hex(p, b.len));
            const char *d = pub_diff(&m, pb);
            FAST_ASSERT(d == NULL, "iteration %d: %s [%s]", it, d, hex(p, b.len));
            if (m.has_sid) {
                Ringmq__Message *pm = ringmq__message__unpack(NULL, b.len, p);
                FAST_ASSERT(pm != NULL && pm->sid == m.sid, "iteration %d: as Message [%s]", it,
                            hex(p, b.len));
                ringmq__message__free_unpacked(pm, NULL);
            }
            d = delivery_diff(&m, rand_sid());
            FAST_ASSERT(d == NULL, "iteration %d: delivery: %s [%s]", it, d, hex(p, b.len));
            both++;
        } else if (pb == NULL) {
            neither++;
        } else {
            FAST_ASSERT(stricter_reason(p, b.len, LVL_PUB) != NULL,
                        "iteration %d: codec rejects, for no known reason, a PUBLISH protobuf-c "
                        "accepts: [%s]",
                        it, hex(p, b.len));
            codec_only_rejects++;
        }
        if (pb != NULL)
            ringmq__publish__free_unpacked(pb, NULL);
        free(p);
    }
    printf("check_codec: mutations: %u accepted by both, %u rejected by both, %u rejected by "
           "codec only\n",
           both, neither, codec_only_rejects);
    ck_assert_uint_gt(both, 10000);
    ck_assert_uint_gt(neither, 10000);
    gen_free(&g);
    wb_free(&b);
}
END_TEST

/* Mutated frames of every kind: codec_peek and protobuf-c's Frame agree on the kind. */
START_TEST(test_codec_fuzz_peek_vs_protobuf_c)
{
    Ringmq__Frame f;
    struct wbuf sub = {0}, b = {0};
    struct codec_span got;
    unsigned agree = 0;
    for (int it = 0; it < 50000; it++) {
        pack_kind(1 + (int)rng_below(CODEC_K_MAX), &f, &sub);
        b.len = 0;
        if (rng_below(4) == 0)
            wb_unknown(&b, 10);
        wb_pack(&b, &f.base);
        if (rng_below(4) == 0)
            wb_unknown(&b, 10);
        for (size_t k = rng_below(4); k > 0; k--)
            mutate(&b);
        uint8_t *p = dup_exact(b.p, b.len);
        int kind = codec_peek(p, b.len, &got);
        FAST_ASSERT(kind == RMQ_EFRAME || (kind >= CODEC_K_NONE && kind <= CODEC_K_MAX) ||
                        (kind >= CODEC_K_ROUTE_FIRST && kind <= CODEC_K_ROUTE_LAST),
                    "iteration %d: codec_peek %d", it, kind);
        FAST_ASSERT(kind <= 0 || (got.p >= p && got.p + got.len <= p + b.len),
                    "iteration %d: sub outside the body", it);
        Ringmq__Frame *pf = ringmq__frame__unpack(NULL, b.len, p);
        FAST_ASSERT(pf == NULL || kind >= 0 || stricter_reason(p, b.len, LVL_FRAME) != NULL,
                    "iteration %d: codec_peek %d, for no known reason, on a frame protobuf-c "
                    "accepts: [%s]",
                    it, kind, hex(p, b.len));
        if (pf != NULL && kind >= 0) {
            FAST_ASSERT((int)pf->kind_case == kind,
                        "iteration %d: codec kind %d, protobuf-c %d [%s]", it, kind,
                        (int)pf->kind_case, hex(p, b.len));
            agree++;
        }
        if (pf != NULL)
            ringmq__frame__free_unpacked(pf, NULL);
        free(p);
    }
    ck_assert_uint_gt(agree, 1000);
    wb_free(&sub);
    wb_free(&b);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_codec_split_need_more_header);
    tcase_add_test(tc, test_codec_split_need_more_partial_body);
    tcase_add_test(tc, test_codec_split_exact_frame);
    tcase_add_test(tc, test_codec_split_over_max_is_eframe);
    tcase_add_test(tc, test_codec_split_zero_length_body);
    tcase_add_loop_test(tc, test_codec_peek_every_kind, 1, CODEC_K_MAX + 1);
    tcase_add_test(tc, test_codec_peek_unknown_fields_are_none);
    tcase_add_test(tc, test_codec_body_durable_fields);
    tcase_add_test(tc, test_codec_peek_last_kind_wins);
    tcase_add_test(tc, test_codec_peek_truncated_is_eframe);
    tcase_add_test(tc, test_codec_peek_wrong_wire_type_is_eframe);
    tcase_add_test(tc, test_codec_msg_parse_spans_point_into_buffer);
    tcase_add_test(tc, test_codec_msg_parse_message_sid);
    tcase_add_test(tc, test_codec_msg_parse_rejects_malformed);
    tcase_add_test(tc, test_codec_msg_parse_truncations_match_protobuf_c);
    tcase_add_test(tc, test_codec_msg_parse_last_value_wins);
    tcase_add_test(tc, test_codec_hdr_next_walks_headers);
    tcase_add_test(tc, test_codec_body_prefix_decode_as_message);
    tcase_add_test(tc, test_codec_msg_prefix_layout);
    tcase_add_test(tc, test_codec_body_subject_reads_first_field);
    tcase_add_test(tc, test_codec_pub_write_decodes_as_publish);
    tcase_add_test(tc, test_codec_frame_write_enospc_when_small);
    tcase_add_test(tc, test_codec_error_write_round_trip);
    tcase_add_test(tc, test_codec_ping_write_round_trip);
    tcase_add_test(tc, test_codec_err_from_wire_every_code);
    tcase_add_test(tc, test_codec_err_str_every_code);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_codec_limits_split_at_max_body);
    tcase_add_test(tc, test_codec_limits_varint_ten_bytes);
    tcase_add_test(tc, test_codec_limits_field_numbers);
    tcase_add_test(tc, test_codec_limits_one_mib_payload);
    tcase_add_test(tc, test_codec_limits_many_headers);
    tcase_add_test(tc, test_codec_limits_overlong_varint_agrees_with_protobuf_c);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_codec_fuzz_msg_parse_vs_protobuf_c);
    tcase_add_test(tc, test_codec_fuzz_mutations_agree_with_protobuf_c);
    tcase_add_test(tc, test_codec_fuzz_peek_vs_protobuf_c);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *env = getenv("RMQ_TEST_SEED");
    SRunner *sr;
    int failed;
    g_seed = env != NULL && *env != '\0' ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("check_codec: RMQ_TEST_SEED=%" PRIu64 "\n", g_seed);
    fflush(stdout);
    sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
