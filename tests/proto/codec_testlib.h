/*
 * codec_testlib.h - helpers for check_codec.c: a seeded random generator,
 * a growable buffer for writing protobuf wire bytes by hand, comparisons of
 * codec_msg_parse() spans with protobuf-c's unpacked structs, the broker's
 * fan-out path replayed and read back, random Publish messages, and random
 * mutations.
 *
 * Not thread-safe (one random state, one static diff text). Out of memory
 * aborts. Every pointer parameter is borrowed unless said otherwise.
 */
#ifndef RMQ_TESTS_PROTO_CODEC_TESTLIB_H
#define RMQ_TESTS_PROTO_CODEC_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "ringmq.pb-c.h"

/*
 * ---- Random numbers (xorshift64*, the same on every platform) ----
 * Never call two of these in one expression whose evaluation order C leaves
 * open (a[rng()] = rng()): builds would then replay a seed differently.
 */

void rng_seed(uint64_t s);
uint64_t rng_next(void);
/* Uniform in [0, n); 0 when n is 0. */
size_t rng_below(size_t n);
/* A random value of random bit width, so that all varint lengths occur. */
uint64_t rng_wide(void);
void rng_fill(uint8_t *p, size_t n);

/* ---- Wire bytes by hand ---- */

/* Zero-initialise; wb_free() releases p. */
struct wbuf {
    uint8_t *p;
    size_t len, cap;
};

void wb_reserve(struct wbuf *b, size_t n);
void wb_put(struct wbuf *b, const void *p, size_t n);
void wb_u8(struct wbuf *b, uint8_t v);
void wb_varint(struct wbuf *b, uint64_t v);
/* A field key: num << 3 | wt. */
void wb_key(struct wbuf *b, uint64_t num, unsigned wt);
/* A length-delimited field (wire type 2). p may be NULL when n is 0. */
void wb_lenfield(struct wbuf *b, uint64_t num, const void *p, size_t n);
void wb_str(struct wbuf *b, uint64_t num, const char *s);
void wb_be32(struct wbuf *b, uint32_t v);
/* A whole frame: length prefix, then Frame field `kind` holding sub. */
void wb_frame(struct wbuf *b, uint32_t kind, const void *sub, size_t n);
/* Append msg as protobuf-c packs it. */
void wb_pack(struct wbuf *b, const ProtobufCMessage *msg);
/* A random unknown field with a number >= min_num. */
void wb_unknown(struct wbuf *b, uint64_t min_num);
void wb_free(struct wbuf *b);
size_t varint_len(uint64_t v);

/* A malloc'd copy of exactly n bytes (ASan then sees reads past the end); caller frees. */
uint8_t *dup_exact(const void *p, size_t n);
/* Hex of the first 96 bytes, in a static buffer. */
const char *hex(const uint8_t *p, size_t n);

/* ---- Comparisons ---- */

/* s equals protobuf-c's NUL-terminated copy of it (which stops at the first NUL). */
bool span_eq_str(struct codec_span s, const char *str);
bool mem_eq(const void *a, size_t alen, const void *b, size_t blen);

/*
 * Compare a parsed message with fields 1-4 of a Publish or Message from
 * protobuf-c, walking the headers with codec_hdr_next(). An empty reply
 * equals an absent one (codec.h: "len 0 when absent"). Return NULL, or a
 * description of the first difference (static text).
 */
const char *msg_diff(const struct codec_msg *m, const char *subject, const char *reply,
                     size_t nhdrs, Ringmq__Header *const *hdrs, protobuf_c_boolean has_payload,
                     ProtobufCBinaryData payload);
const char *pub_diff(const struct codec_msg *m, const Ringmq__Publish *p);
const char *message_diff(const struct codec_msg *m, const Ringmq__Message *p);
/* Two parsed messages carry the same subject, reply, headers and payload. */
bool msg_same(const struct codec_msg *a, const struct codec_msg *b);

/*
 * Deliver m to subscription sid the way the broker does: one shared body
 * (codec_body_write) behind a per-subscriber prefix (codec_msg_prefix).
 * Checks that codec_body_size() is exactly what codec_body_write() writes,
 * that codec_body_subject() finds the subject in the body, and that the
 * frame reads back as the same MESSAGE with codec_split /
 * codec_peek / codec_msg_parse and with ringmq__frame__unpack. Returns NULL
 * or a description of the first difference.
 */
const char *delivery_diff(const struct codec_msg *m, uint64_t sid);

/* ---- Random messages ---- */

#define GEN_MAX_HDRS 5
#define GEN_MAX_UNK 3
#define GEN_STR_MAX 48
#define GEN_VAL_MAX 40
#define GEN_UNK_DATA 24

/* A random Publish, with the storage its pointers refer to. Zero-initialise. */
struct gen {
    Ringmq__Publish pub;
    Ringmq__Header hdr[GEN_MAX_HDRS];
    Ringmq__Header *hdrp[GEN_MAX_HDRS];
    ProtobufCMessageUnknownField hunk[GEN_MAX_HDRS][GEN_MAX_UNK];
    uint8_t hunkdata[GEN_MAX_HDRS][GEN_MAX_UNK][GEN_UNK_DATA];
    char subject[GEN_STR_MAX + 1];
    char reply[GEN_STR_MAX + 1];
    char key[GEN_MAX_HDRS][GEN_STR_MAX + 1];
    uint8_t val[GEN_MAX_HDRS][GEN_VAL_MAX];
    uint8_t *payload; /* owned; gen_free() */
    bool has_sid;     /* gen_encode() adds field 5 */
    uint64_t sid;
};

/*
 * Random subject (tokens, dots, some UTF-8), reply present or absent
 * (sometimes empty), 0..5 headers with or without values (some with unknown
 * fields inside), payload absent or 0..max_payload bytes, sid 1 in 4.
 */
void gen_fill(struct gen *g, size_t max_payload);
/*
 * Pack g->pub with protobuf-c, cut the output into its top-level fields,
 * and re-assemble them into out: subject, reply and payload moved around
 * (headers keep their order), earlier decoys of those three (the last one
 * wins), sid when g->has_sid, and random unknown fields in between.
 */
void gen_encode(const struct gen *g, struct wbuf *out);
void gen_free(struct gen *g);
/* 1, 127, 128, 2^32, 2^64-1 and such, or random. */
uint64_t rand_sid(void);

/* ---- Mutations ---- */

/* Apply one random mutation: bit flip, byte set, truncation, insertion, deletion, duplication. */
void mutate(struct wbuf *b);

enum level { LVL_FRAME, LVL_PUB, LVL_HDR };

/*
 * The codec is stricter than protobuf-c in three ways, all on purpose:
 * field number 0 written as an overlong key, field numbers over 2^29-1
 * (protobuf-c skips both as unknown), and a Publish field 5 (Message.sid)
 * that is not a varint. Returns which one applies to a body that protobuf-c
 * accepts, or NULL if none does: then the codec's rejection is a bug.
 */
const char *stricter_reason(const uint8_t *p, size_t len, enum level lvl);

#endif
