/*
 * codec.h - the ringmq frame codec: splitting a byte stream into frames,
 * decoding them and encoding them. No I/O and no io_uring here; the broker
 * and the client library both build on it.
 *
 * Frame layout (see PROTOCOL.md):
 *
 *   +---------+---------------------------------------------+
 *   | len: u32| Frame (protobuf), len bytes                  |
 *   | big-end.|  field K (the kind), wire type 2: submessage |
 *   +---------+---------------------------------------------+
 *
 * Hot paths (PUBLISH in the broker, MESSAGE in the client) are parsed in
 * place by codec_peek() + codec_msg_parse(): no allocation, no copy; the
 * spans returned point into the caller's buffer and live as long as it does.
 * Control frames (CONNECT, SUBSCRIBE, ...) are unpacked with protobuf-c from
 * the span codec_peek() returned.
 *
 * Errors follow rmq_error.h: 0 or a positive count on success, RMQ_EFRAME
 * for anything malformed, -ENOSPC when an output buffer is too small.
 * All functions are reentrant and thread-safe (no shared state).
 */
#ifndef RMQ_PROTO_CODEC_H
#define RMQ_PROTO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringmq.pb-c.h"
#include "rmq_error.h"

#define CODEC_PROTO_VERSION 1
#define CODEC_HDR_LEN 4
/* Room for everything in a frame that is not the payload. */
#define CODEC_FRAME_OVERHEAD (64 * 1024)
/* Largest per-subscriber MESSAGE prefix codec_msg_prefix() writes:
 * 4 (length) + 1 (tag) + 5 (varint length) + 1 (tag) + 10 (varint sid). */
#define CODEC_MSG_PREFIX_MAX 21

/* Frame kinds: the field numbers of Frame's oneof. */
enum codec_kind {
    CODEC_K_NONE = 0,
    CODEC_K_CONNECT = 1,
    CODEC_K_INFO = 2,
    CODEC_K_PUB = 3,
    CODEC_K_SUB = 4,
    CODEC_K_UNSUB = 5,
    CODEC_K_MSG = 6,
    CODEC_K_PING = 7,
    CODEC_K_PONG = 8,
    CODEC_K_ERR = 9,
    CODEC_K_MAX = 9, /* the last client kind */
    /* Cluster routes (node to node only). */
    CODEC_K_ROUTE_CONNECT = 32,
    CODEC_K_ROUTE_INTEREST = 33,
    CODEC_K_ROUTE_MSG = 34,
    CODEC_K_ROUTE_TOPICS = 35,
    CODEC_K_ROUTE_FLOW = 36,
    CODEC_K_ROUTE_FIRST = 32,
    CODEC_K_ROUTE_LAST = 36,
};
/* Largest codec_route_prefix(): length, kind, length, plain, 3 groups. */
#define CODEC_ROUTE_PREFIX_MAX (4 + 2 + 5 + 2 + 3 * 5) /* publish: no groups */
#define CODEC_ROUTE_GROUPS 3

struct codec_span {
    const uint8_t *p;
    size_t len;
};

struct codec_hdr {
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
};

/* A PUBLISH or MESSAGE parsed in place. Spans borrow the parsed buffer. */
struct codec_msg {
    struct codec_span subject;
    struct codec_span reply; /* len 0 when absent */
    struct codec_span payload;
    uint64_t sid;
    bool has_sid;
    uint32_t nhdrs;
    /* Durable topics (Message fields 6-8); 0 when absent. */
    uint64_t seq, time_ns;
    uint32_t deliveries;
    /* The whole submessage, for walking headers with codec_hdr_next(). */
    struct codec_span raw;
};

/* The big-endian u32 at p: a frame's length prefix. */
static inline uint32_t codec_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Look for one complete frame at the start of buf[0..len).
 * Returns 1 and sets *body to the frame's body (borrowed from buf; the frame
 * takes CODEC_HDR_LEN + body->len bytes), 0 if more bytes are needed, or
 * RMQ_EFRAME if the length prefix is over max_body (the stream cannot be
 * trusted any more).
 */
int codec_split(const uint8_t *buf, size_t len, uint32_t max_body, struct codec_span *body);

/*
 * Read the kind of a frame body in place. Returns the codec_kind (> 0) and
 * sets *sub to the kind's submessage (borrowed), CODEC_K_NONE (0) if the
 * frame holds no kind this codec knows (sub is then empty), or RMQ_EFRAME
 * if the body is not valid protobuf wire format. When several kinds are
 * present the last one wins, as protobuf's oneof rules say.
 */
int codec_peek(const uint8_t *body, size_t len, struct codec_span *sub);

/*
 * Parse a Publish or Message submessage in place into *m. Checks the wire
 * format, that subject is present, and that every header has a key.
 * Returns 0 or RMQ_EFRAME. Does not validate the subject's syntax.
 */
int codec_msg_parse(const uint8_t *p, size_t len, struct codec_msg *m);

/*
 * Parse a RouteMsg submessage: *m as codec_msg_parse(), plus its plain flag
 * and up to max group ids (fixed32; more are ignored), in the same single
 * pass over the fields. 0 or RMQ_EFRAME.
 */
int codec_route_msg_parse(const uint8_t *p, size_t len, struct codec_msg *m, bool *plain,
                          uint32_t *groups, unsigned *ngroups, unsigned max, bool *publish);

/*
 * The per-route prefix of a forwarded message: length prefix, Frame field
 * 34 (RouteMsg) tag and length, plain and up to CODEC_ROUTE_GROUPS groups.
 * prefix + a shared body (codec_body_write) form one ROUTE_MSG frame.
 * Returns the prefix length (<= CODEC_ROUTE_PREFIX_MAX).
 */
size_t codec_route_prefix(uint8_t *out, size_t body_len, bool plain, const uint32_t *groups,
                          unsigned ngroups, bool publish);

/*
 * Iterate the headers of a parsed message. *pos starts at 0. Returns 1 and
 * fills *h (borrowed from m->raw), or 0 at the end.
 */
int codec_hdr_next(const struct codec_msg *m, size_t *pos, struct codec_hdr *h);

/*
 * The shared delivery body: fields 1-4 of Message (subject, reply, headers,
 * payload), and 6-8 (seq, time_ns, deliveries) when non-zero, re-emitted
 * from a parsed message; set m->reply.len = 0 or m->seq etc. to drop or
 * add fields. codec_body_size() gives its
 * size; codec_body_write() writes exactly that many bytes to out.
 */
size_t codec_body_size(const struct codec_msg *m);
void codec_body_write(const struct codec_msg *m, uint8_t *out);
/* The same without the headers named drop (NUL-terminated; NULL: keep all). */
size_t codec_body_size_drop(const struct codec_msg *m, const char *drop);
void codec_body_write_drop(const struct codec_msg *m, uint8_t *out, const char *drop);

/*
 * The subject of a shared body written by codec_body_write() (its first
 * field). Returns 0 with *subj borrowed from body, or RMQ_EFRAME.
 */
int codec_body_subject(const uint8_t *body, size_t len, struct codec_span *subj);

/*
 * Per-subscriber MESSAGE prefix: length prefix, Frame field 6 tag and
 * length, and Message.sid. prefix + body (body_len bytes, from
 * codec_body_write) form one complete MESSAGE frame. Returns the prefix
 * length (<= CODEC_MSG_PREFIX_MAX).
 */
size_t codec_msg_prefix(uint8_t *out, uint64_t sid, size_t body_len);

/*
 * Encode a whole PUBLISH frame (length prefix included) into out.
 * codec_pub_size() gives the exact size for the same arguments.
 * reply may be NULL; hdrs may be NULL when nhdrs is 0.
 */
size_t codec_pub_size(const char *subj, size_t slen, const char *reply, size_t rlen,
                      const struct codec_hdr *hdrs, size_t nhdrs, size_t plen);
size_t codec_pub_write(uint8_t *out, const char *subj, size_t slen, const char *reply, size_t rlen,
                       const struct codec_hdr *hdrs, size_t nhdrs, const void *payload,
                       size_t plen);

/*
 * Encode any Frame with protobuf-c (length prefix included) into out.
 * Returns the number of bytes written, or -ENOSPC if cap is too small
 * (nothing useful is written then). codec_frame_size() gives the size.
 */
size_t codec_frame_size(const Ringmq__Frame *f);
ssize_t codec_frame_write(const Ringmq__Frame *f, uint8_t *out, size_t cap);

/*
 * Convenience encoders for small control frames. Each returns the bytes
 * written or -ENOSPC. text may be NULL.
 */
ssize_t codec_error_write(uint8_t *out, size_t cap, Ringmq__ErrorCode code, const char *text,
                          uint64_t sid, bool fatal);
ssize_t codec_ping_write(uint8_t *out, size_t cap, int kind, uint64_t token);

/* Wire error code <-> rmq error code (rmq_error.h). */
int codec_err_from_wire(Ringmq__ErrorCode code);
const char *codec_err_name(Ringmq__ErrorCode code);

#endif
