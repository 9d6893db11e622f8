/*
 * codec_testlib.c - helpers for check_codec.c (see codec_testlib.h).
 */
#include "codec_testlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fprintf(stderr, "codec_testlib: out of memory\n");
    abort();
}

/* ---- Random numbers ---- */

static uint64_t rng_state;

void rng_seed(uint64_t s)
{
    rng_state = s != 0 ? s : 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: small, fast and the same on every platform. */
uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

size_t rng_below(size_t n)
{
    return n != 0 ? (size_t)(rng_next() % n) : 0;
}

uint64_t rng_wide(void)
{
    unsigned shift = (unsigned)rng_below(64);
    return rng_next() >> shift;
}

void rng_fill(uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v = rng_next();
        memcpy(p, &v, 8);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = rng_next();
        memcpy(p, &v, n);
    }
}

/* ---- Building wire bytes by hand ---- */

void wb_reserve(struct wbuf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        oom();
    b->p = p;
    b->cap = cap;
}

void wb_put(struct wbuf *b, const void *p, size_t n)
{
    wb_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void wb_u8(struct wbuf *b, uint8_t v)
{
    wb_put(b, &v, 1);
}

void wb_varint(struct wbuf *b, uint64_t v)
{
    while (v >= 0x80) {
        wb_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    wb_u8(b, (uint8_t)v);
}

void wb_key(struct wbuf *b, uint64_t num, unsigned wt)
{
    wb_varint(b, num << 3 | wt);
}

void wb_lenfield(struct wbuf *b, uint64_t num, const void *p, size_t n)
{
    wb_key(b, num, 2);
    wb_varint(b, n);
    wb_put(b, p, n);
}

void wb_str(struct wbuf *b, uint64_t num, const char *s)
{
    wb_lenfield(b, num, s, strlen(s));
}

void wb_be32(struct wbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wb_put(b, x, 4);
}

void wb_free(struct wbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* See codec_testlib.h. */
void wb_frame(struct wbuf *b, uint32_t kind, const void *sub, size_t n)
{
    wb_be32(b, (uint32_t)(varint_len((uint64_t)kind << 3 | 2) + varint_len(n) + n));
    wb_lenfield(b, kind, sub, n);
}

/* See codec_testlib.h. */
void wb_pack(struct wbuf *b, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    wb_reserve(b, n);
    size_t w = protobuf_c_message_pack(msg, b->p + b->len);
    if (w != n) {
        fprintf(stderr, "protobuf-c packed %zu bytes, said %zu\n", w, n);
        abort();
    }
    b->len += n;
}

/* See codec_testlib.h. */
uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q == NULL)
        oom();
    if (n)
        memcpy(q, p, n);
    return q;
}

const char *hex(const uint8_t *p, size_t n)
{
    static char s[3 * 96 + 8];
    size_t o = 0;
    for (size_t i = 0; i < n && i < 96; i++)
        o += (size_t)snprintf(s + o, sizeof(s) - o, "%02x ", p[i]);
    if (n > 96)
        snprintf(s + o, sizeof(s) - o, "...");
    else if (o)
        s[o - 1] = '\0';
    else
        s[0] = '\0';
    return s;
}

/* ---- Comparing parsed spans with protobuf-c's unpacked values ---- */

static char g_diff[256];

/* See codec_testlib.h. */
bool span_eq_str(struct codec_span s, const char *str)
{
    if (str == NULL)
        return s.len == 0;
    size_t n = strlen(str);
    if (s.len == 0)
        return n == 0;
    if (memchr(s.p, 0, s.len) == NULL)
        return n == s.len && memcmp(s.p, str, n) == 0;
    return n < s.len && s.p[n] == 0 && memcmp(s.p, str, n) == 0;
}

bool mem_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* See codec_testlib.h. */
const char *msg_diff(const struct codec_msg *m, const char *subject, const char *reply,
                     size_t nhdrs, Ringmq__Header *const *hdrs, protobuf_c_boolean has_payload,
                     ProtobufCBinaryData payload)
{
    struct codec_hdr h;
    size_t pos = 0;
    if (!span_eq_str(m->subject, subject))
        return "subject differs";
    if (!span_eq_str(m->reply, reply))
        return "reply differs";
    if (has_payload ? !mem_eq(m->payload.p, m->payload.len, payload.data, payload.len)
                    : m->payload.len != 0)
        return "payload differs";
    if (m->nhdrs != nhdrs) {
        snprintf(g_diff, sizeof(g_diff), "nhdrs %" PRIu32 ", protobuf-c %zu", m->nhdrs, nhdrs);
        return g_diff;
    }
    for (size_t i = 0; i < nhdrs; i++) {
        if (codec_hdr_next(m, &pos, &h) != 1) {
            snprintf(g_diff, sizeof(g_diff), "codec_hdr_next ended at header %zu", i);
            return g_diff;
        }
        struct codec_span k = {(const uint8_t *)h.key, h.klen};
        if (!span_eq_str(k, hdrs[i]->key)) {
            snprintf(g_diff, sizeof(g_diff), "header %zu key differs", i);
            return g_diff;
        }
        if ((h.val != NULL) != (hdrs[i]->has_value != 0) ||
            (h.val != NULL && !mem_eq(h.val, h.vlen, hdrs[i]->value.data, hdrs[i]->value.len))) {
            snprintf(g_diff, sizeof(g_diff), "header %zu value differs", i);
            return g_diff;
        }
    }
    if (codec_hdr_next(m, &pos, &h) != 0)
        return "codec_hdr_next returned more headers than nhdrs";
    return NULL;
}

const char *pub_diff(const struct codec_msg *m, const Ringmq__Publish *p)
{
    return msg_diff(m, p->subject, p->reply, p->n_headers, p->headers, p->has_payload, p->payload);
}

const char *message_diff(const struct codec_msg *m, const Ringmq__Message *p)
{
    return msg_diff(m, p->subject, p->reply, p->n_headers, p->headers, p->has_payload, p->payload);
}

/* See codec_testlib.h. */
bool msg_same(const struct codec_msg *a, const struct codec_msg *b)
{
    struct codec_hdr ha, hb;
    size_t pa = 0, pb = 0;
    if (!mem_eq(a->subject.p, a->subject.len, b->subject.p, b->subject.len) ||
        !mem_eq(a->reply.p, a->reply.len, b->reply.p, b->reply.len) ||
        !mem_eq(a->payload.p, a->payload.len, b->payload.p, b->payload.len) || a->nhdrs != b->nhdrs)
        return false;
    for (;;) {
        int ra = codec_hdr_next(a, &pa, &ha), rb = codec_hdr_next(b, &pb, &hb);
        if (ra != rb)
            return false;
        if (ra == 0)
            return true;
        if (!mem_eq(ha.key, ha.klen, hb.key, hb.klen) || (ha.val == NULL) != (hb.val == NULL) ||
            !mem_eq(ha.val, ha.vlen, hb.val, hb.vlen))
            return false;
    }
}

/* See codec_testlib.h. */
const char *delivery_diff(const struct codec_msg *m, uint64_t sid)
{
    const char *d = NULL;
    size_t bsize = codec_body_size(m), slack = 16, cap = CODEC_MSG_PREFIX_MAX + bsize + slack;
    uint8_t *a = malloc(cap), *b = malloc(cap), pre[CODEC_MSG_PREFIX_MAX];
    struct codec_span body, sub;
    struct codec_msg back;
    Ringmq__Frame *f = NULL;
    if (a == NULL || b == NULL)
        oom();
    /* A byte was written iff both buffers hold the same value there. */
    memset(a, 0x00, cap);
    memset(b, 0xff, cap);
    codec_body_write(m, a + CODEC_MSG_PREFIX_MAX);
    codec_body_write(m, b + CODEC_MSG_PREFIX_MAX);
    for (size_t i = 0; i < bsize + slack; i++) {
        bool written = a[CODEC_MSG_PREFIX_MAX + i] == b[CODEC_MSG_PREFIX_MAX + i];
        if (written != (i < bsize)) {
            snprintf(g_diff, sizeof(g_diff), "codec_body_size %zu but byte %zu %s", bsize, i,
                     written ? "written" : "not written");
            d = g_diff;
            goto out;
        }
    }
    struct codec_span subj;
    if (codec_body_subject(a + CODEC_MSG_PREFIX_MAX, bsize, &subj) != 0 ||
        !mem_eq(subj.p, subj.len, m->subject.p, m->subject.len) ||
        subj.p < a + CODEC_MSG_PREFIX_MAX || subj.p + subj.len > a + CODEC_MSG_PREFIX_MAX + bsize) {
        d = "codec_body_subject does not find the subject of the shared body";
        goto out;
    }
    size_t plen = codec_msg_prefix(pre, sid, bsize);
    if (plen > CODEC_MSG_PREFIX_MAX || plen < CODEC_HDR_LEN + 3) {
        d = "prefix length out of range";
        goto out;
    }
    uint8_t *frame = a + CODEC_MSG_PREFIX_MAX - plen;
    size_t flen = plen + bsize;
    memcpy(frame, pre, plen);
    if (codec_split(frame, flen, UINT32_MAX, &body) != 1 || body.len != flen - CODEC_HDR_LEN) {
        d = "delivered frame does not split to its own length";
        goto out;
    }
    if (codec_split(frame, flen - 1, UINT32_MAX, &body) != 0) {
        d = "delivered frame minus one byte is complete";
        goto out;
    }
    codec_split(frame, flen, UINT32_MAX, &body);
    if (codec_peek(body.p, body.len, &sub) != CODEC_K_MSG || sub.p + sub.len != frame + flen) {
        d = "delivered frame is not one MESSAGE";
        goto out;
    }
    if (codec_msg_parse(sub.p, sub.len, &back) != 0 || !back.has_sid || back.sid != sid) {
        d = "delivered MESSAGE does not parse with its sid";
        goto out;
    }
    if (!msg_same(m, &back)) {
        d = "delivered MESSAGE parses to other values";
        goto out;
    }
    f = ringmq__frame__unpack(NULL, body.len, body.p);
    if (f == NULL || f->kind_case != RINGMQ__FRAME__KIND_MSG) {
        d = "ringmq__frame__unpack rejects the delivered MESSAGE";
        goto out;
    }
    if (f->msg->sid != sid) {
        d = "protobuf-c reads another sid";
        goto out;
    }
    d = message_diff(m, f->msg);
out:
    if (f != NULL)
        ringmq__frame__free_unpacked(f, NULL);
    free(a);
    free(b);
    return d;
}

/* ---- Random messages ---- */

static void rand_str(char *s, size_t max, bool subject)
{
    static const char tok[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
    static const char *const utf8[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x80"};
    size_t n = 0, want = 1 + rng_below(max);
    while (n < want) {
        if (subject && n > 0 && s[n - 1] != '.' && rng_below(5) == 0) {
            s[n++] = '.';
        } else if (rng_below(20) == 0 && n + 4 <= want) {
            const char *u = utf8[rng_below(3)];
            memcpy(s + n, u, strlen(u));
            n += strlen(u);
        } else {
            s[n++] = tok[rng_below(sizeof(tok) - 1)];
        }
    }
    s[n] = '\0';
}

static uint64_t rand_field_num(uint64_t min)
{
    switch (rng_below(4)) {
    case 0:
        return min + rng_below(16);
    case 1:
        return 16 + rng_below(2048);
    case 2:
        return 536870911u - rng_below(4);
    default:
        return min + rng_below(536870912u - min);
    }
}

/* A random value of wire type wt (length prefix included for wt 2) into data; returns its size. */
static size_t rand_value(unsigned wt, uint8_t *data)
{
    size_t n = 0;
    uint64_t v;
    switch (wt) {
    case 0:
        v = rng_wide();
        while (v >= 0x80) {
            data[n++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        data[n++] = (uint8_t)v;
        return n;
    case 1:
        rng_fill(data, 8);
        return 8;
    case 5:
        rng_fill(data, 4);
        return 4;
    default:
        n = rng_below(GEN_UNK_DATA - 1);
        data[0] = (uint8_t)n;
        rng_fill(data + 1, n);
        return n + 1;
    }
}

static unsigned rand_wt(void)
{
    static const unsigned wts[] = {0, 1, 2, 5};
    return wts[rng_below(4)];
}

void wb_unknown(struct wbuf *b, uint64_t min_num)
{
    uint8_t data[GEN_UNK_DATA];
    unsigned wt = rand_wt();
    wb_key(b, rand_field_num(min_num), wt);
    wb_put(b, data, rand_value(wt, data));
}

static size_t rand_payload_len(size_t max)
{
    size_t r = rng_below(10), n;
    if (r < 6)
        n = rng_below(65);
    else if (r < 9)
        n = rng_below(2001);
    else
        n = rng_below(70001);
    return n < max ? n : max;
}

void gen_fill(struct gen *g, size_t max_payload)
{
    free(g->payload);
    memset(g, 0, sizeof(*g));
    ringmq__publish__init(&g->pub);
    rand_str(g->subject, GEN_STR_MAX, true);
    g->pub.subject = g->subject;
    if (rng_below(2)) {
        if (rng_below(10) == 0)
            g->reply[0] = '\0';
        else
            rand_str(g->reply, GEN_STR_MAX, true);
        g->pub.reply = g->reply;
    }
    g->pub.n_headers = rng_below(GEN_MAX_HDRS + 1);
    g->pub.headers = g->hdrp;
    for (size_t i = 0; i < g->pub.n_headers; i++) {
        Ringmq__Header *h = &g->hdr[i];
        ringmq__header__init(h);
        g->hdrp[i] = h;
        if (rng_below(20) == 0)
            g->key[i][0] = '\0';
        else
            rand_str(g->key[i], 20, false);
        h->key = g->key[i];
        if (rng_below(2)) {
            h->has_value = true;
            h->value.len = rng_below(GEN_VAL_MAX + 1);
            h->value.data = g->val[i];
            rng_fill(g->val[i], h->value.len);
        }
        if (rng_below(4) == 0) {
            /* Unknown fields inside the header, packed by protobuf-c after the known ones. */
            h->base.n_unknown_fields = 1 + (unsigned)rng_below(GEN_MAX_UNK);
            h->base.unknown_fields = g->hunk[i];
            for (unsigned u = 0; u < h->base.n_unknown_fields; u++) {
                unsigned wt = rand_wt();
                g->hunk[i][u].tag = (uint32_t)rand_field_num(3);
                g->hunk[i][u].wire_type = (ProtobufCWireType)wt;
                g->hunk[i][u].data = g->hunkdata[i][u];
                g->hunk[i][u].len = rand_value(wt, g->hunkdata[i][u]);
            }
        }
    }
    if (rng_below(5) != 0) {
        size_t n = rand_payload_len(max_payload);
        g->payload = malloc(n ? n : 1);
        if (g->payload == NULL)
            oom();
        rng_fill(g->payload, n);
        g->pub.has_payload = true;
        g->pub.payload.data = g->payload;
        g->pub.payload.len = n;
    }
    g->has_sid = rng_below(4) == 0;
    g->sid = rng_wide();
}

struct piece {
    int src; /* 0: protobuf-c's output, 1: synthesized */
    size_t off, len;
};

static void insert_piece(struct piece *v, size_t *n, size_t at, struct piece p)
{
    if (*n > at) /* also keeps gcc -O3 from a false stringop-overflow */
        memmove(v + at + 1, v + at, (*n - at) * sizeof(*v));
    v[at] = p;
    (*n)++;
}

static size_t find_num(const struct piece *v, size_t n, const uint8_t *packed, uint8_t key)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].src == 0 && packed[v[i].off] == key)
            return i;
    return n;
}

/* See codec_testlib.h. */
void gen_encode(const struct gen *g, struct wbuf *out)
{
    struct wbuf packed = {0}, syn = {0};
    struct piece v[32];
    size_t n = 0, pos = 0;
    wb_pack(&packed, &g->pub.base);
    while (pos < packed.len) {
        /* protobuf-c's own output: known fields only, one-byte keys, wire type 2 */
        size_t start = pos++;
        uint64_t l = 0;
        for (unsigned shift = 0;; shift += 7) {
            uint8_t c = packed.p[pos++];
            l |= (uint64_t)(c & 0x7f) << shift;
            if (!(c & 0x80))
                break;
        }
        pos += (size_t)l;
        v[n++] = (struct piece){0, start, pos - start};
    }
    if (rng_below(3) == 0) {
        const uint8_t keys[] = {0x0a, 0x12, 0x22};
        for (size_t k = 0; k < 3; k++) {
            size_t i = find_num(v, n, packed.p, keys[k]);
            if (i == n)
                continue;
            struct piece p = v[i];
            memmove(v + i, v + i + 1, (n - i - 1) * sizeof(*v));
            n--;
            insert_piece(v, &n, rng_below(n + 1), p);
        }
    }
    const uint8_t decoy_keys[] = {0x0a, 0x12, 0x22};
    for (size_t k = 0; k < 3; k++) {
        size_t i = find_num(v, n, packed.p, decoy_keys[k]);
        if (i == n || rng_below(8) != 0)
            continue;
        uint8_t junk[16];
        size_t jl = rng_below(sizeof(junk));
        rng_fill(junk, jl);
        struct piece p = {1, syn.len, 0};
        wb_lenfield(&syn, (uint64_t)(decoy_keys[k] >> 3), junk, jl);
        p.len = syn.len - p.off;
        insert_piece(v, &n, rng_below(i + 1), p);
    }
    if (g->has_sid) {
        struct piece p = {1, syn.len, 0};
        wb_key(&syn, 5, 0);
        wb_varint(&syn, g->sid);
        p.len = syn.len - p.off;
        size_t at = rng_below(n + 1);
        insert_piece(v, &n, at, p);
        if (rng_below(8) == 0) {
            p.off = syn.len;
            wb_key(&syn, 5, 0);
            wb_varint(&syn, rng_next());
            p.len = syn.len - p.off;
            insert_piece(v, &n, rng_below(at + 1), p);
        }
    }
    for (size_t u = rng_below(GEN_MAX_UNK + 1); u > 0; u--) {
        struct piece p = {1, syn.len, 0};
        wb_unknown(&syn, 9); /* 6-8: Message's seq, time_ns, deliveries */
        p.len = syn.len - p.off;
        insert_piece(v, &n, rng_below(n + 1), p);
    }
    out->len = 0;
    for (size_t i = 0; i < n; i++)
        wb_put(out, (v[i].src ? syn.p : packed.p) + v[i].off, v[i].len);
    wb_free(&packed);
    wb_free(&syn);
}

/* See codec_testlib.h. */
void gen_free(struct gen *g)
{
    free(g->payload);
    g->payload = NULL;
}

/* See codec_testlib.h. */
uint64_t rand_sid(void)
{
    static const uint64_t special[] = {1, 127, 128, 16383, 16384, 1ull << 32, UINT64_MAX};
    return rng_below(3) ? special[rng_below(7)] : 1 + rng_wide();
}

/* A varint as protobuf defines it (at most 10 bytes), for stricter_reason(). */
static bool read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*pos >= len)
            return false;
        uint8_t c = p[(*pos)++];
        *v |= shift < 64 ? (uint64_t)(c & 0x7f) << shift : 0;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

/* See codec_testlib.h. */
const char *stricter_reason(const uint8_t *p, size_t len, enum level lvl)
{
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        uint64_t key, v;
        if (!read_varint(p, len, &pos, &key))
            return NULL;
        uint64_t num = key >> 3;
        unsigned wt = key & 7;
        if (num == 0)
            return pos - start > 1 ? "field 0 in an overlong key" : NULL;
        if (num > 0x1fffffff)
            return "field number over 2^29-1";
        if (lvl == LVL_PUB && num == 5 && wt != 0)
            return "Publish field 5 (sid) not a varint";
        if (lvl == LVL_PUB && num >= 6 && num <= 8 && wt != 0)
            return "Publish field 6-8 (seq, time_ns, deliveries) not a varint";
        switch (wt) {
        case 0:
            if (!read_varint(p, len, &pos, &v))
                return NULL;
            break;
        case 1:
        case 5:
            if (len - pos < (wt == 1 ? 8u : 4u))
                return NULL;
            pos += wt == 1 ? 8 : 4;
            break;
        case 2:
            if (!read_varint(p, len, &pos, &v) || v > len - pos)
                return NULL;
            if (lvl == LVL_PUB && num == 3) {
                const char *r = stricter_reason(p + pos, (size_t)v, LVL_HDR);
                if (r != NULL)
                    return r;
            }
            pos += (size_t)v;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

/* See codec_testlib.h. */
void mutate(struct wbuf *b)
{
    size_t at = rng_below(b->len + 1), i;
    switch (rng_below(8)) {
    case 0: /* flip a bit */
    case 1:
        if (b->len) {
            i = rng_below(b->len);
            b->p[i] ^= (uint8_t)(1u << rng_below(8));
        }
        break;
    case 2: /* a random byte */
        if (b->len) {
            i = rng_below(b->len);
            b->p[i] = (uint8_t)rng_next();
        }
        break;
    case 3: /* an interesting byte */
        if (b->len) {
            static const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a, 0x22};
            i = rng_below(b->len);
            b->p[i] = bytes[rng_below(sizeof(bytes))];
        }
        break;
    case 4: /* truncate */
        b->len = at;
        break;
    case 5: /* insert a byte */
        wb_reserve(b, 1);
        memmove(b->p + at + 1, b->p + at, b->len - at);
        b->p[at] = (uint8_t)rng_next();
        b->len++;
        break;
    case 6: /* delete a run */
        if (at < b->len) {
            size_t n = 1 + rng_below(b->len - at < 4 ? b->len - at : 4);
            memmove(b->p + at, b->p + at + n, b->len - at - n);
            b->len -= n;
        }
        break;
    default: /* duplicate a run */
        if (at < b->len) {
            size_t n = 1 + rng_below(b->len - at < 16 ? b->len - at : 16);
            wb_reserve(b, n);
            memmove(b->p + at + n, b->p + at, b->len - at);
            b->len += n;
        }
        break;
    }
}
