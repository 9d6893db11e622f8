/*
 * fuzz_codec.c - libFuzzer target for proto/codec.c.
 *
 * The input is a byte stream as it arrives on a broker connection:
 *
 *   [len][body][len][body]...   codec_split (max MAX_BODY) until it needs
 *                               more bytes or the stream is bad
 *        |
 *        +-- codec_peek: PUB/MSG -> codec_msg_parse, codec_hdr_next walk,
 *        |                  codec_body_write + codec_msg_prefix (fan-out),
 *        |                  codec_body_subject on the body,
 *        |                  re-parse the MESSAGE: subject, reply, payload,
 *        |                  headers and sid must survive; protobuf-c's
 *        |                  reading must agree whenever it accepts
 *        +-- other kinds -> unpacked with the protobuf-c function for it
 *
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 * Build with -DFUZZ_CODEC_STRICT=1 to also abort when codec_msg_parse()
 * accepts a body that protobuf-c rejects (see check_codec.c, overlong
 * varints).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ringmq.pb-c.h"

#ifndef FUZZ_CODEC_STRICT
#define FUZZ_CODEC_STRICT 0
#endif

#define MAX_BODY ((uint32_t)(1024 * 1024 + CODEC_FRAME_OVERHEAD))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_codec: %s\n", what);
    abort();
}

static int mem_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* protobuf-c strings stop at the first NUL of the wire bytes. */
static int span_eq_str(struct codec_span s, const char *str)
{
    size_t n;
    if (str == NULL)
        return s.len == 0;
    n = strlen(str);
    if (n > s.len || (n < s.len && s.p[n] != 0))
        return 0;
    return n == 0 || memcmp(s.p, str, n) == 0;
}

/* Walk the headers; the walk must see exactly m->nhdrs of them. */
static void walk_headers(const struct codec_msg *m)
{
    struct codec_hdr h;
    size_t pos = 0, n = 0;
    while (codec_hdr_next(m, &pos, &h) == 1) {
        if (h.key == NULL && h.klen != 0)
            fail("header without key");
        if (pos > m->raw.len)
            fail("codec_hdr_next ran past the message");
        n++;
    }
    if (n != m->nhdrs)
        fail("codec_hdr_next count differs from nhdrs");
}

static int same_headers(const struct codec_msg *a, const struct codec_msg *b)
{
    struct codec_hdr ha, hb;
    size_t pa = 0, pb = 0;
    for (;;) {
        int ra = codec_hdr_next(a, &pa, &ha), rb = codec_hdr_next(b, &pb, &hb);
        if (ra != rb)
            return 0;
        if (ra == 0)
            return 1;
        if (!mem_eq(ha.key, ha.klen, hb.key, hb.klen) || (ha.val == NULL) != (hb.val == NULL) ||
            !mem_eq(ha.val, ha.vlen, hb.val, hb.vlen))
            return 0;
    }
}

/* When protobuf-c accepts the same submessage, it must read the same values. */
static void check_protobuf_c(const struct codec_msg *m, const struct codec_span *sub, int kind)
{
    const char *subject, *reply;
    size_t nh;
    Ringmq__Header **hdrs;
    ProtobufCBinaryData pay;
    protobuf_c_boolean has_pay;
    Ringmq__Publish *pp = NULL;
    Ringmq__Message *pm = NULL;
    struct codec_hdr h;
    size_t pos = 0;
    if (kind == CODEC_K_PUB) {
        pp = ringmq__publish__unpack(NULL, sub->len, sub->p);
        if (pp == NULL) {
            if (FUZZ_CODEC_STRICT)
                fail("codec accepts a PUBLISH that protobuf-c rejects");
            return;
        }
        subject = pp->subject;
        reply = pp->reply;
        nh = pp->n_headers;
        hdrs = pp->headers;
        pay = pp->payload;
        has_pay = pp->has_payload;
    } else {
        pm = ringmq__message__unpack(NULL, sub->len, sub->p);
        if (pm == NULL) {
            if (FUZZ_CODEC_STRICT && m->has_sid)
                fail("codec accepts a MESSAGE that protobuf-c rejects");
            return;
        }
        if (!m->has_sid || pm->sid != m->sid)
            fail("MESSAGE sid differs from protobuf-c");
        subject = pm->subject;
        reply = pm->reply;
        nh = pm->n_headers;
        hdrs = pm->headers;
        pay = pm->payload;
        has_pay = pm->has_payload;
    }
    if (!span_eq_str(m->subject, subject) || !span_eq_str(m->reply, reply))
        fail("subject or reply differs from protobuf-c");
    if (has_pay ? !mem_eq(m->payload.p, m->payload.len, pay.data, pay.len) : m->payload.len != 0)
        fail("payload differs from protobuf-c");
    if (nh != m->nhdrs)
        fail("header count differs from protobuf-c");
    for (size_t i = 0; i < nh; i++) {
        struct codec_span k;
        if (codec_hdr_next(m, &pos, &h) != 1)
            fail("codec_hdr_next ended early");
        k.p = (const uint8_t *)h.key;
        k.len = h.klen;
        if (!span_eq_str(k, hdrs[i]->key) || (h.val != NULL) != (hdrs[i]->has_value != 0) ||
            (h.val != NULL && !mem_eq(h.val, h.vlen, hdrs[i]->value.data, hdrs[i]->value.len)))
            fail("header differs from protobuf-c");
    }
    if (pp != NULL)
        ringmq__publish__free_unpacked(pp, NULL);
    if (pm != NULL)
        ringmq__message__free_unpacked(pm, NULL);
}

/* Fan m out to one subscriber and read the MESSAGE back. */
static void check_delivery(const struct codec_msg *m, uint64_t sid)
{
    size_t bsize = codec_body_size(m), plen, flen;
    uint8_t pre[CODEC_MSG_PREFIX_MAX], *frame;
    struct codec_span body, sub;
    struct codec_msg back;
    if (bsize > (size_t)MAX_BODY + 64)
        fail("codec_body_size larger than the frame it came from allows");
    plen = codec_msg_prefix(pre, sid, bsize);
    if (plen > CODEC_MSG_PREFIX_MAX)
        fail("prefix longer than CODEC_MSG_PREFIX_MAX");
    flen = plen + bsize;
    /* Exactly flen bytes, so that ASan sees a body write past codec_body_size. */
    frame = malloc(flen);
    if (frame == NULL)
        abort();
    memcpy(frame, pre, plen);
    codec_body_write(m, frame + plen);
    if (codec_body_subject(frame + plen, bsize, &sub) != 0 ||
        !mem_eq(sub.p, sub.len, m->subject.p, m->subject.len))
        fail("codec_body_subject does not find the subject");
    if (codec_split(frame, flen, UINT32_MAX, &body) != 1 || body.len != flen - CODEC_HDR_LEN)
        fail("delivered frame does not split to its length");
    if (codec_peek(body.p, body.len, &sub) != CODEC_K_MSG || sub.p + sub.len != frame + flen)
        fail("delivered frame is not one MESSAGE");
    if (codec_msg_parse(sub.p, sub.len, &back) != 0)
        fail("delivered MESSAGE does not parse");
    if (!back.has_sid || back.sid != sid)
        fail("sid lost");
    if (!mem_eq(back.subject.p, back.subject.len, m->subject.p, m->subject.len))
        fail("subject lost");
    if (!mem_eq(back.reply.p, back.reply.len, m->reply.p, m->reply.len))
        fail("reply lost");
    if (!mem_eq(back.payload.p, back.payload.len, m->payload.p, m->payload.len))
        fail("payload lost");
    if (back.nhdrs != m->nhdrs || !same_headers(m, &back))
        fail("headers lost");
    walk_headers(&back);
    free(frame);
}

static void unpack_control(int kind, const struct codec_span *sub)
{
    switch (kind) {
    case CODEC_K_CONNECT: {
        Ringmq__Connect *c = ringmq__connect__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__connect__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_INFO: {
        Ringmq__Info *c = ringmq__info__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__info__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_SUB: {
        Ringmq__Subscribe *c = ringmq__subscribe__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__subscribe__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_UNSUB: {
        Ringmq__Unsubscribe *c = ringmq__unsubscribe__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__unsubscribe__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_PING: {
        Ringmq__Ping *c = ringmq__ping__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__ping__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_PONG: {
        Ringmq__Pong *c = ringmq__pong__unpack(NULL, sub->len, sub->p);
        if (c != NULL)
            ringmq__pong__free_unpacked(c, NULL);
        break;
    }
    case CODEC_K_ERR: {
        Ringmq__Error *c = ringmq__error__unpack(NULL, sub->len, sub->p);
        if (c != NULL) {
            (void)codec_err_from_wire(c->code);
            (void)codec_err_name(c->code);
            ringmq__error__free_unpacked(c, NULL);
        }
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    unsigned frames = 0;
    while (off < size) {
        struct codec_span body, sub;
        struct codec_msg m;
        int rc = codec_split(data + off, size - off, MAX_BODY, &body);
        if (rc < 0 && rc != RMQ_EFRAME)
            fail("codec_split returned an unknown error");
        if (rc != 1)
            break;
        if (body.p != data + off + CODEC_HDR_LEN || body.len > size - off - CODEC_HDR_LEN)
            fail("codec_split body outside the input");
        int kind = codec_peek(body.p, body.len, &sub);
        if (kind != RMQ_EFRAME && (kind < CODEC_K_NONE || kind > CODEC_K_MAX) &&
            (kind < CODEC_K_ROUTE_FIRST || kind > CODEC_K_ROUTE_LAST))
            fail("codec_peek returned no kind and no error");
        if (kind > 0 && (sub.p < body.p || sub.p + sub.len > body.p + body.len))
            fail("codec_peek sub outside the body");
        if (kind == CODEC_K_PUB || kind == CODEC_K_MSG) {
            rc = codec_msg_parse(sub.p, sub.len, &m);
            if (rc != 0 && rc != RMQ_EFRAME)
                fail("codec_msg_parse returned an unknown error");
            if (rc == 0) {
                walk_headers(&m);
                check_protobuf_c(&m, &sub, kind);
                check_delivery(&m, m.has_sid ? m.sid : (uint64_t)body.len * 2654435761u + frames);
            }
        } else if (kind > 0) {
            unpack_control(kind, &sub);
        }
        if (kind >= 0) {
            /* The broker never unpacks a whole Frame, but protobuf-c must not crash on it. */
            Ringmq__Frame *f = ringmq__frame__unpack(NULL, body.len, body.p);
            if (f != NULL) {
                if ((int)f->kind_case != kind)
                    fail("codec_peek and protobuf-c disagree on the kind");
                ringmq__frame__free_unpacked(f, NULL);
            }
        }
        off += CODEC_HDR_LEN + body.len;
        frames++;
    }
    return 0;
}
