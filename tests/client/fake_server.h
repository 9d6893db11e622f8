/*
 * fake_server.h - a tiny in-process ringmq server for the client tests.
 *
 * Listens on 127.0.0.1:0, one blocking thread per connection, speaks the
 * frames through proto/codec: CONNECT -> INFO (or ERROR), SUBSCRIBE,
 * UNSUBSCRIBE (with max), PUBLISH routed to matching subscriptions of all
 * connections (queue groups round-robin), PING -> PONG. Deliveries are
 * encoded the way the broker does it: per-subscriber prefix (sid first) +
 * shared body. Knobs let a test misbehave on purpose: refuse connections,
 * never answer CONNECT or PING, reject patterns, ignore UNSUBSCRIBE max,
 * kick every connection, send ERROR or PING frames.
 *
 * Durable topics are faked too (fake_topics.h): topic and consumer admin
 * requests, seq numbers and PubAcks, live topic subscriptions and durable
 * consumers. There is no replay.
 *
 * Not a broker: one global mutex, blocking sends, meant for small volumes.
 */
#ifndef RMQ_TESTS_CLIENT_FAKE_SERVER_H
#define RMQ_TESTS_CLIENT_FAKE_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"

struct fake_server;

struct fake_cfg {
    uint32_t max_payload;      /* 0: 1 MiB */
    const char *token;         /* NULL: no auth */
    bool no_info;              /* read CONNECT, never answer */
    bool no_pong;              /* never answer PING */
    bool ignore_unsub_max;     /* keep delivering after UNSUBSCRIBE{max} */
    bool refuse;               /* accept, then close at once */
    const char *reject_prefix; /* SUBSCRIBE patterns starting so get ERROR{sid} */
    uint64_t ping_after_info;  /* non-zero: PING{token} in the same write as INFO */
};

struct fake_server *fake_start(const struct fake_cfg *cfg);
void fake_stop(struct fake_server *fs);
uint16_t fake_port(const struct fake_server *fs);
/* "127.0.0.1:<port>" in a static-per-server buffer. */
const char *fake_addr(const struct fake_server *fs);

void fake_set_refuse(struct fake_server *fs, bool refuse);
void fake_set_no_pong(struct fake_server *fs, bool on);
/* Shut down every live connection (the client sees EOF). */
void fake_kick(struct fake_server *fs);
/* Send an ERROR frame to every live connection; fatal also closes them. */
void fake_send_error(struct fake_server *fs, Ringmq__ErrorCode code, const char *text, uint64_t sid,
                     bool fatal);
void fake_send_ping(struct fake_server *fs, uint64_t token);

/* Frames of a kind received so far (codec_kind), over all connections. */
uint64_t fake_count(struct fake_server *fs, int kind);
/* recv() calls that returned data, over all connections. */
uint64_t fake_reads(struct fake_server *fs);
/* Live subscriptions over all connections. */
int fake_subs(struct fake_server *fs);
/* Live (handshaken) connections. */
int fake_conns(struct fake_server *fs);
/* Last PONG token received. */
uint64_t fake_last_pong(struct fake_server *fs);
/* Name sent in the last CONNECT ("" if none); copied into out. */
void fake_last_name(struct fake_server *fs, char *out, size_t cap);

/* The body of the newest SUBSCRIBE frame received for pattern (NULL: any)
 * among the last 32 (a Frame, for ringmq__frame__unpack); returns its
 * length, 0 if none or cap is short. */
size_t fake_sub_frame(struct fake_server *fs, const char *pattern, uint8_t *out, size_t cap);
/* Every PubAck from now on carries code (0: back to normal), nothing stored. */
void fake_set_puback_error(struct fake_server *fs, Ringmq__ErrorCode code);
/* Consumer acks received; *naks (if not NULL) gets the naks. */
uint64_t fake_acks(struct fake_server *fs, uint64_t *naks);

/* Poll cond() every ms until true or timeout_ms; returns the last value. */
bool fake_wait(bool (*cond)(void *), void *arg, int timeout_ms);

#endif
