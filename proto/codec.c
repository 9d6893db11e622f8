/*
 * codec.c - frame splitting, in-place parsing of the hot kinds, and encoding.
 *
 * Protobuf wire format in brief: a message is a sequence of fields, each a
 * varint key (field_number << 3 | wire_type) followed by the value. Wire
 * types used here: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
 * Fields may appear in any order and repeat; for scalar and string fields the
 * last occurrence wins. That is what lets the broker send one shared body to
 * every subscriber behind a small per-subscriber prefix:
 *
 *   prefix (per subscriber)                     body (shared, encoded once)
 *   [len u32][0x32 varint:mlen][0x28 varint:sid][0x0a subject][0x12 reply]
 *                                               [0x1a header]...[0x22 payload]
 *
 * The in-place parser is tested against protoc-c's generated decoder
 * (tests/proto/check_codec.c) and fuzzed (tests/fuzz/fuzz_codec.c).
 * No state: every function is reentrant.
 */
#include "codec.h"

#include <errno.h>
#include <string.h>

/* ---- Wire primitives ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/*
 * Read a varint of at most maxb bytes at *pos; returns false on truncation
 * or a longer encoding. Keys and lengths take maxb = 5, as protobuf-c reads
 * them (a padded 6-byte key would pass here, be forwarded verbatim in a
 * shared body, and then fail in a subscriber's protobuf-c decoder).
 */
static bool varint_get_n(const uint8_t *p, size_t len, size_t *pos, uint64_t *v, unsigned maxb)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 7 * maxb; shift += 7) {
        if (*pos >= len)
            return false;
        uint8_t b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    return varint_get_n(p, len, pos, v, 10);
}

struct field {
    uint32_t num;
    unsigned wt;
    uint64_t v;          /* varint value */
    struct codec_span s; /* length-delimited value */
    size_t start, end;   /* the whole field, key included */
};

/* Read the next field at *pos. Returns 1, 0 at the end, or RMQ_EFRAME. */
static int field_next(const uint8_t *p, size_t len, size_t *pos, struct field *f)
{
    uint64_t key, l;
    if (*pos >= len)
        return 0;
    f->start = *pos;
    /* One-byte keys, varints and lengths (fields 1-15, values below 128)
     * are most of the hot frames: read them without the varint loop. */
    if (p[*pos] < 0x80)
        key = p[(*pos)++];
    else if (!varint_get_n(p, len, pos, &key, 5))
        return RMQ_EFRAME;
    f->num = (uint32_t)(key >> 3);
    f->wt = key & 7;
    if (f->num == 0 || key >> 3 > 0x1fffffff)
        return RMQ_EFRAME;
    switch (f->wt) {
    case WT_VARINT:
        if (*pos < len && p[*pos] < 0x80)
            f->v = p[(*pos)++];
        else if (!varint_get(p, len, pos, &f->v))
            return RMQ_EFRAME;
        break;
    case WT_I64:
        if (len - *pos < 8)
            return RMQ_EFRAME;
        *pos += 8;
        break;
    case WT_I32:
        if (len - *pos < 4)
            return RMQ_EFRAME;
        *pos += 4;
        break;
    case WT_LEN:
        if (*pos < len && p[*pos] < 0x80)
            l = p[(*pos)++];
        else if (!varint_get_n(p, len, pos, &l, 5))
            return RMQ_EFRAME;
        if (l > len - *pos)
            return RMQ_EFRAME;
        f->s.p = p + *pos;
        f->s.len = (size_t)l;
        *pos += (size_t)l;
        break;
    default:
        return RMQ_EFRAME; /* groups (3, 4) are not used by ringmq */
    }
    f->end = *pos;
    return 1;
}

static size_t len_field_size(uint32_t num, size_t l)
{
    return varint_size((uint64_t)num << 3 | WT_LEN) + varint_size(l) + l;
}

static size_t len_field_put(uint8_t *out, uint32_t num, const void *v, size_t l)
{
    size_t n = varint_put(out, (uint64_t)num << 3 | WT_LEN);
    n += varint_put(out + n, l);
    if (l)
        memcpy(out + n, v, l);
    return n + l;
}

static void be32_put(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

/* ---- Splitting and peeking ---- */

/* See codec.h. */
int codec_split(const uint8_t *buf, size_t len, uint32_t max_body, struct codec_span *body)
{
    if (len < CODEC_HDR_LEN)
        return 0;
    uint32_t n = codec_be32(buf);
    if (n > max_body)
        return RMQ_EFRAME;
    if (len - CODEC_HDR_LEN < n)
        return 0;
    body->p = buf + CODEC_HDR_LEN;
    body->len = n;
    return 1;
}

/* See codec.h. */
int codec_peek(const uint8_t *body, size_t len, struct codec_span *sub)
{
    struct field f = {0};
    size_t pos = 0;
    int rc, kind = CODEC_K_NONE;
    sub->p = body;
    sub->len = 0;
    while ((rc = field_next(body, len, &pos, &f)) == 1) {
        if ((f.num >= 1 && f.num <= CODEC_K_MAX) ||
            (f.num >= CODEC_K_ROUTE_FIRST && f.num <= CODEC_K_ROUTE_LAST)) {
            if (f.wt != WT_LEN)
                return RMQ_EFRAME;
            kind = (int)f.num;
            *sub = f.s;
        }
    }
    return rc < 0 ? rc : kind;
}

/* ---- Publish / Message ---- */

static bool header_valid(struct codec_span s, struct codec_hdr *h)
{
    struct field f = {0};
    size_t pos = 0;
    int rc;
    bool has_key = false;
    h->key = NULL;
    h->klen = 0;
    h->val = NULL;
    h->vlen = 0;
    while ((rc = field_next(s.p, s.len, &pos, &f)) == 1) {
        if (f.num == 1 || f.num == 2) {
            if (f.wt != WT_LEN)
                return false;
            if (f.num == 1) {
                h->key = (const char *)f.s.p;
                h->klen = f.s.len;
                has_key = true;
            } else {
                h->val = f.s.p;
                h->vlen = f.s.len;
            }
        }
    }
    return rc == 0 && has_key;
}

/* RouteMsg's own fields (9-11), filled by msg_parse() when it is given one. */
struct route_fields {
    bool plain, publish;
    uint32_t *groups;
    unsigned ngroups, max;
};

/* codec_msg_parse(), and with rf also RouteMsg's fields 9-11, in one pass. */
static int msg_parse(const uint8_t *p, size_t len, struct codec_msg *m, struct route_fields *rf)
{
    struct field f = {0};
    struct codec_hdr h;
    size_t pos = 0;
    int rc;
    bool has_subject = false;
    memset(m, 0, sizeof(*m));
    m->raw.p = p;
    m->raw.len = len;
    m->reply.p = m->payload.p = p;
    while ((rc = field_next(p, len, &pos, &f)) == 1) {
        if (f.num >= 1 && f.num <= 4 && f.wt != WT_LEN)
            return RMQ_EFRAME;
        switch (f.num) {
        case 1:
            m->subject = f.s;
            has_subject = true;
            break;
        case 2:
            m->reply = f.s;
            break;
        case 3:
            if (!header_valid(f.s, &h))
                return RMQ_EFRAME;
            m->nhdrs++;
            break;
        case 4:
            m->payload = f.s;
            break;
        case 5:
            if (f.wt != WT_VARINT)
                return RMQ_EFRAME;
            m->sid = f.v;
            m->has_sid = true;
            break;
        case 6:
        case 7:
        case 8:
            /* Message's seq, time_ns, deliveries: varints (like sid, they
             * are rejected in another wire type, in a Publish too). */
            if (f.wt != WT_VARINT)
                return RMQ_EFRAME;
            if (f.num == 6)
                m->seq = f.v;
            else if (f.num == 7)
                m->time_ns = f.v;
            else
                m->deliveries = (uint32_t)f.v;
            break;
        case 9:
        case 10:
        case 11:
            if (!rf)
                break; /* not a RouteMsg: unknown fields */
            if (f.num == 9 && f.wt == WT_VARINT)
                rf->plain = f.v != 0;
            else if (f.num == 11 && f.wt == WT_VARINT)
                rf->publish = f.v != 0;
            else if (f.num == 10 && f.wt == WT_I32) {
                if (rf->ngroups < rf->max)
                    rf->groups[rf->ngroups++] =
                        (uint32_t)p[f.end - 4] | (uint32_t)p[f.end - 3] << 8 |
                        (uint32_t)p[f.end - 2] << 16 | (uint32_t)p[f.end - 1] << 24;
            } else
                return RMQ_EFRAME;
            break;
        default:
            break; /* unknown fields are skipped, as protobuf says */
        }
    }
    if (rc < 0 || !has_subject)
        return RMQ_EFRAME;
    return 0;
}

/* See codec.h. */
int codec_msg_parse(const uint8_t *p, size_t len, struct codec_msg *m)
{
    return msg_parse(p, len, m, NULL);
}

/* See codec.h. */
int codec_route_msg_parse(const uint8_t *p, size_t len, struct codec_msg *m, bool *plain,
                          uint32_t *groups, unsigned *ngroups, unsigned max, bool *publish)
{
    struct route_fields rf = {.groups = groups, .max = max};
    int rc = msg_parse(p, len, m, &rf);
    *plain = rf.plain;
    *publish = rf.publish;
    *ngroups = rf.ngroups;
    return rc;
}

/* See codec.h. */
size_t codec_route_prefix(uint8_t *out, size_t body_len, bool plain, const uint32_t *groups,
                          unsigned ngroups, bool publish)
{
    size_t extra = (plain ? 2 : 0) + (publish ? 2 : 0) + 5 * (size_t)ngroups;
    size_t mlen = extra + body_len, n = CODEC_HDR_LEN;
    uint32_t flen;
    out[n++] = (uint8_t)((CODEC_K_ROUTE_MSG << 3 | WT_LEN) | 0x80);
    out[n++] = (uint8_t)((CODEC_K_ROUTE_MSG << 3 | WT_LEN) >> 7);
    n += varint_put(out + n, mlen);
    if (plain) {
        out[n++] = 9 << 3 | WT_VARINT;
        out[n++] = 1;
    }
    if (publish) {
        out[n++] = 11 << 3 | WT_VARINT;
        out[n++] = 1;
    }
    for (unsigned i = 0; i < ngroups; i++) {
        out[n++] = 10 << 3 | WT_I32;
        out[n++] = (uint8_t)groups[i];
        out[n++] = (uint8_t)(groups[i] >> 8);
        out[n++] = (uint8_t)(groups[i] >> 16);
        out[n++] = (uint8_t)(groups[i] >> 24);
    }
    flen = (uint32_t)(n - CODEC_HDR_LEN + body_len);
    out[0] = (uint8_t)(flen >> 24);
    out[1] = (uint8_t)(flen >> 16);
    out[2] = (uint8_t)(flen >> 8);
    out[3] = (uint8_t)flen;
    return n;
}

/* See codec.h. */
int codec_hdr_next(const struct codec_msg *m, size_t *pos, struct codec_hdr *h)
{
    struct field f = {0};
    while (field_next(m->raw.p, m->raw.len, pos, &f) == 1) {
        if (f.num == 3 && f.wt == WT_LEN && header_valid(f.s, h))
            return 1;
    }
    return 0;
}

/* Is the header field f the header named drop? */
static bool hdr_is(const struct field *f, const char *drop)
{
    struct codec_hdr h;
    size_t dl = strlen(drop);
    return header_valid(f->s, &h) && h.klen == dl && memcmp(h.key, drop, dl) == 0;
}

/* See codec.h. */
size_t codec_body_size_drop(const struct codec_msg *m, const char *drop)
{
    size_t n = len_field_size(1, m->subject.len);
    if (m->reply.len)
        n += len_field_size(2, m->reply.len);
    if (m->nhdrs) {
        struct field f;
        size_t pos = 0;
        while (field_next(m->raw.p, m->raw.len, &pos, &f) == 1)
            if (f.num == 3 && !(drop && hdr_is(&f, drop)))
                n += f.end - f.start;
    }
    n += len_field_size(4, m->payload.len);
    if (m->seq)
        n += 1 + varint_size(m->seq);
    if (m->time_ns)
        n += 1 + varint_size(m->time_ns);
    if (m->deliveries)
        n += 1 + varint_size(m->deliveries);
    return n;
}

/* See codec.h. */
void codec_body_write_drop(const struct codec_msg *m, uint8_t *out, const char *drop)
{
    size_t n = len_field_put(out, 1, m->subject.p, m->subject.len);
    if (m->reply.len)
        n += len_field_put(out + n, 2, m->reply.p, m->reply.len);
    if (m->nhdrs) {
        struct field f;
        size_t pos = 0;
        while (field_next(m->raw.p, m->raw.len, &pos, &f) == 1) {
            if (f.num == 3 && !(drop && hdr_is(&f, drop))) {
                memcpy(out + n, m->raw.p + f.start, f.end - f.start);
                n += f.end - f.start;
            }
        }
    }
    n += len_field_put(out + n, 4, m->payload.p, m->payload.len);
    if (m->seq) {
        out[n++] = 6 << 3;
        n += varint_put(out + n, m->seq);
    }
    if (m->time_ns) {
        out[n++] = 7 << 3;
        n += varint_put(out + n, m->time_ns);
    }
    if (m->deliveries) {
        out[n++] = 8 << 3;
        varint_put(out + n, m->deliveries);
    }
}

/* See codec.h. */
size_t codec_body_size(const struct codec_msg *m)
{
    return codec_body_size_drop(m, NULL);
}

/* See codec.h. */
void codec_body_write(const struct codec_msg *m, uint8_t *out)
{
    codec_body_write_drop(m, out, NULL);
}

/* See codec.h. */
int codec_body_subject(const uint8_t *body, size_t len, struct codec_span *subj)
{
    struct field f = {0};
    size_t pos = 0;
    if (field_next(body, len, &pos, &f) != 1 || f.num != 1 || f.wt != WT_LEN)
        return RMQ_EFRAME;
    *subj = f.s;
    return 0;
}

/* See codec.h. */
size_t codec_msg_prefix(uint8_t *out, uint64_t sid, size_t body_len)
{
    size_t sidf = 1 + varint_size(sid); /* key 0x28 is one byte */
    size_t mlen = sidf + body_len;
    size_t frame = 1 + varint_size(mlen) + mlen;
    size_t n = CODEC_HDR_LEN;
    be32_put(out, (uint32_t)frame);
    out[n++] = (uint8_t)(CODEC_K_MSG << 3 | WT_LEN);
    n += varint_put(out + n, mlen);
    out[n++] = (uint8_t)(5 << 3 | WT_VARINT);
    n += varint_put(out + n, sid);
    return n;
}

static size_t hdr_size(const struct codec_hdr *h)
{
    size_t n = len_field_size(1, h->klen);
    if (h->val)
        n += len_field_size(2, h->vlen);
    return n;
}

static size_t pub_body_size(size_t slen, size_t rlen, const struct codec_hdr *hdrs, size_t nhdrs,
                            size_t plen)
{
    size_t n = len_field_size(1, slen) + len_field_size(4, plen);
    if (rlen)
        n += len_field_size(2, rlen);
    for (size_t i = 0; i < nhdrs; i++)
        n += len_field_size(3, hdr_size(&hdrs[i]));
    return n;
}

/* See codec.h. */
size_t codec_pub_size(const char *subj, size_t slen, const char *reply, size_t rlen,
                      const struct codec_hdr *hdrs, size_t nhdrs, size_t plen)
{
    (void)subj;
    (void)reply;
    return CODEC_HDR_LEN +
           len_field_size(CODEC_K_PUB, pub_body_size(slen, rlen, hdrs, nhdrs, plen));
}

/* See codec.h. */
size_t codec_pub_write(uint8_t *out, const char *subj, size_t slen, const char *reply, size_t rlen,
                       const struct codec_hdr *hdrs, size_t nhdrs, const void *payload, size_t plen)
{
    size_t body = pub_body_size(slen, rlen, hdrs, nhdrs, plen);
    size_t n = CODEC_HDR_LEN;
    out[n++] = (uint8_t)(CODEC_K_PUB << 3 | WT_LEN);
    n += varint_put(out + n, body);
    n += len_field_put(out + n, 1, subj, slen);
    if (rlen)
        n += len_field_put(out + n, 2, reply, rlen);
    for (size_t i = 0; i < nhdrs; i++) {
        n += varint_put(out + n, 3 << 3 | WT_LEN);
        n += varint_put(out + n, hdr_size(&hdrs[i]));
        n += len_field_put(out + n, 1, hdrs[i].key, hdrs[i].klen);
        if (hdrs[i].val)
            n += len_field_put(out + n, 2, hdrs[i].val, hdrs[i].vlen);
    }
    n += len_field_put(out + n, 4, payload, plen);
    be32_put(out, (uint32_t)(n - CODEC_HDR_LEN));
    return n;
}

/* ---- Generic encoding through protobuf-c ---- */

/* See codec.h. */
size_t codec_frame_size(const Ringmq__Frame *f)
{
    return CODEC_HDR_LEN + ringmq__frame__get_packed_size(f);
}

/* See codec.h. */
ssize_t codec_frame_write(const Ringmq__Frame *f, uint8_t *out, size_t cap)
{
    size_t n = ringmq__frame__get_packed_size(f);
    if (n + CODEC_HDR_LEN > cap)
        return -ENOSPC;
    ringmq__frame__pack(f, out + CODEC_HDR_LEN);
    be32_put(out, (uint32_t)n);
    return (ssize_t)(n + CODEC_HDR_LEN);
}

/* See codec.h. */
ssize_t codec_error_write(uint8_t *out, size_t cap, Ringmq__ErrorCode code, const char *text,
                          uint64_t sid, bool fatal)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Error e = RINGMQ__ERROR__INIT;
    e.code = code;
    e.text = (char *)text;
    e.has_sid = sid != 0;
    e.sid = sid;
    e.has_fatal = fatal;
    e.fatal = fatal;
    f.kind_case = RINGMQ__FRAME__KIND_ERR;
    f.err = &e;
    return codec_frame_write(&f, out, cap);
}

/* See codec.h. */
ssize_t codec_ping_write(uint8_t *out, size_t cap, int kind, uint64_t token)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Ping ping = RINGMQ__PING__INIT;
    Ringmq__Pong pong = RINGMQ__PONG__INIT;
    if (kind == CODEC_K_PING) {
        ping.has_token = true;
        ping.token = token;
        f.kind_case = RINGMQ__FRAME__KIND_PING;
        f.ping = &ping;
    } else {
        pong.has_token = true;
        pong.token = token;
        f.kind_case = RINGMQ__FRAME__KIND_PONG;
        f.pong = &pong;
    }
    return codec_frame_write(&f, out, cap);
}

/* See codec.h. */
int codec_err_from_wire(Ringmq__ErrorCode code)
{
    switch (code) {
    case RINGMQ__ERROR_CODE__ERR_BAD_FRAME:
    case RINGMQ__ERROR_CODE__ERR_FRAME_TOO_BIG:
        return RMQ_EFRAME;
    case RINGMQ__ERROR_CODE__ERR_UNKNOWN_KIND:
        return RMQ_EKIND;
    case RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT:
        return RMQ_ESUBJECT;
    case RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG:
        return -EMSGSIZE;
    case RINGMQ__ERROR_CODE__ERR_SLOW_CONSUMER:
        return RMQ_ESLOW;
    case RINGMQ__ERROR_CODE__ERR_AUTH:
        return RMQ_EAUTH;
    case RINGMQ__ERROR_CODE__ERR_PROTOCOL_VERSION:
        return -EPROTO;
    case RINGMQ__ERROR_CODE__ERR_BAD_SID:
        return RMQ_ENOTFOUND;
    case RINGMQ__ERROR_CODE__ERR_SHUTDOWN:
        return RMQ_ECLOSED;
    case RINGMQ__ERROR_CODE__ERR_NO_TOPIC:
        return RMQ_ENOTFOUND;
    case RINGMQ__ERROR_CODE__ERR_EXISTS:
        return -EEXIST;
    case RINGMQ__ERROR_CODE__ERR_STORE_FULL:
        return RMQ_ESTOREFULL;
    case RINGMQ__ERROR_CODE__ERR_STORAGE:
        return -EIO;
    case RINGMQ__ERROR_CODE__ERR_UNAVAILABLE:
        return RMQ_EUNAVAIL;
    case RINGMQ__ERROR_CODE__ERR_INVALID:
        return -EINVAL;

    default:
        return RMQ_ESERVER;
    }
}

/* See codec.h. */
const char *codec_err_name(Ringmq__ErrorCode code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&ringmq__error_code__descriptor, (int)code);
    return v ? v->name : "ERR_UNKNOWN";
}
