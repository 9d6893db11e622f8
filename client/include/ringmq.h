/**
 * @file ringmq.h
 * @brief libringmq: the C client library of the ringmq message broker.
 *
 * This is the only installed header of the client. It exposes opaque handles
 * and plain C types only; the wire codec (protobuf-c) stays inside the library.
 *
 * @mainpage libringmq
 *
 * libringmq connects to a ringmq broker over TCP, publishes messages on
 * subjects, subscribes to subject patterns (with callbacks or a blocking
 * next-message call), does request/reply through a per-connection inbox and
 * reconnects with backoff when the connection drops.
 *
 * @code
 *     rmq_client *c;
 *     rmq_sub *s;
 *     rmq_msg *m;
 *     int rc = rmq_connect_to("127.0.0.1:7400", &c);
 *     if (rc != 0) {
 *         fprintf(stderr, "connect: %s\n", rmq_strerror(rc));
 *         return 1;
 *     }
 *     rmq_subscribe_sync(c, "orders.>", NULL, &s);
 *     rmq_publish(c, "orders.eu", "hello", 5);
 *     if (rmq_sub_next(s, 1000, &m) == 0) {
 *         printf("%s: %.*s\n", rmq_msg_subject(m), (int)rmq_msg_len(m),
 *                (const char *)rmq_msg_data(m));
 *         rmq_msg_free(m);
 *     }
 *     rmq_unsubscribe(s);
 *     rmq_close(c);
 * @endcode
 *
 * @section threads Threads
 * Every #rmq_client owns one I/O thread. It reads and decodes frames, runs
 * subscription callbacks, answers server PINGs, writes the send buffer and
 * reconnects. All public functions may be called from any thread unless
 * their documentation says otherwise; an #rmq_opts object is not thread-safe
 * (build it in one thread, then hand it to #rmq_connect(), which copies it).
 *
 * @section caveats Caveats
 * - **fork()**: a client must not be used in a child after fork(). The I/O
 *   thread does not exist in the child and the socket is shared with the
 *   parent. Create clients after forking; in the child, do not even call
 *   #rmq_close() on a client inherited from the parent (it would wait for a
 *   thread that is not there). Sockets are opened with close-on-exec.
 * - **Callbacks run on the I/O thread.** While a callback runs, no other
 *   message of that client is read or dispatched, and no buffered publish is
 *   written unless the callback's own publishes fill the send buffer. A
 *   callback must not block. From inside a callback, #rmq_publish(),
 *   #rmq_publish_msg(), #rmq_respond(), #rmq_subscribe(), #rmq_unsubscribe()
 *   and the accessors are fine; #rmq_flush(), #rmq_request(),
 *   #rmq_sub_next() and #rmq_close() would wait for the I/O thread itself and
 *   return -EDEADLK instead.
 * - **Blocking calls.** #rmq_connect() blocks for up to the connect timeout
 *   per server (DNS resolution included). #rmq_flush(), #rmq_request() and
 *   #rmq_sub_next() block up to their timeout. #rmq_publish() blocks only
 *   when the send buffer is over its threshold, and at most the connect
 *   timeout (then -EAGAIN). #rmq_close() waits for the I/O thread, which
 *   spends at most one second writing what is still buffered.
 * - **At most once.** Publishes are buffered in the process. A publish that
 *   was accepted by #rmq_publish() may still be lost if the connection drops
 *   before it is written; #rmq_flush() returns 0 only once the server has
 *   processed everything published before the call on this client.
 * - **SIGPIPE** is never raised by the library (it writes with MSG_NOSIGNAL).
 *
 * @section errors Error convention
 * Functions that can fail return an int: 0 on success, a negated errno value
 * (-1..-4095, e.g. -ETIMEDOUT), or one of the library codes RMQ_E* (at or
 * below #RMQ_ERRBASE). #rmq_strerror() describes both. errno is never the
 * error channel. See @ref rmq_errors.
 */
#ifndef RMQ_CLIENT_RINGMQ_H
#define RMQ_CLIENT_RINGMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Marks the functions exported by the shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define RMQ_API __attribute__((visibility("default")))
#else
#define RMQ_API
#endif

/** @brief Version of the library, "MAJOR.MINOR.PATCH". */
#define RMQ_CLIENT_VERSION "0.1.0"

/** @brief Default server address used by #rmq_connect() when none was set. */
#define RMQ_DEFAULT_SERVER "127.0.0.1:7400"

/** @brief Largest number of headers #rmq_publish_msg() accepts. */
#define RMQ_MAX_HEADERS 64

/** @brief A connection to a broker, with its I/O thread. Opaque. */
typedef struct rmq_client rmq_client;
/** @brief Connection options, copied by #rmq_connect(). Opaque. */
typedef struct rmq_opts rmq_opts;
/** @brief A subscription. Opaque. */
typedef struct rmq_sub rmq_sub;
/** @brief A received message. Opaque; see the accessors rmq_msg_*(). */
typedef struct rmq_msg rmq_msg;

/**
 * @defgroup rmq_errors Error codes
 *
 * Library error codes. They have the same values as the broker's
 * proto/rmq_error.h (checked at compile time inside the library). Besides
 * these, functions return negated errno values; the common ones are listed
 * with each function.
 * @{
 */
#define RMQ_ERRBASE (-20000)
/** Malformed frame or protobuf body (from the server, or a bad stream). */
#define RMQ_EFRAME (RMQ_ERRBASE - 1)
/** Invalid subject, pattern or queue name. Nothing was sent. */
#define RMQ_ESUBJECT (RMQ_ERRBASE - 2)
/** Not found: no such header, or the server did not know a subscription id. */
#define RMQ_ENOTFOUND (RMQ_ERRBASE - 3)
/** Storage full (durable topics; not returned by the core client). */
#define RMQ_ESTOREFULL (RMQ_ERRBASE - 4)
/** The server disconnected this client as a slow consumer. */
#define RMQ_ESLOW (RMQ_ERRBASE - 5)
/** Authentication failed (bad or missing token). */
#define RMQ_EAUTH (RMQ_ERRBASE - 6)
/** The server answered with an error that has no more specific code. */
#define RMQ_ESERVER (RMQ_ERRBASE - 7)
/** The server did not know a frame kind the client sent. */
#define RMQ_EKIND (RMQ_ERRBASE - 8)
/** The client or subscription is closed (rmq_close(), reconnect given up,
 *  auto-unsubscribe limit reached). */
#define RMQ_ECLOSED (RMQ_ERRBASE - 9)
/** Stored data is damaged (not returned by the client; listed for completeness). */
#define RMQ_ECORRUPT (RMQ_ERRBASE - 10)
/** The broker runs without storage, or (cluster) the topic's node is down. */
#define RMQ_EUNAVAIL (RMQ_ERRBASE - 11)

/**
 * @brief Describe an error code.
 * @param[in] err 0, a negated errno value or an RMQ_E* code.
 * @return A static NUL-terminated string, never NULL. The caller must not
 * free or modify it.
 * @note Thread-safe.
 */
RMQ_API const char *rmq_strerror(int err);
/** @} */

/**
 * @brief Check the syntax of a subject or pattern, as the library does
 * before sending anything.
 *
 * A subject is 1 to 256 bytes of 1 to 32 non-empty tokens separated by '.',
 * with no byte below 0x21 (space, controls) and no 0x7f. A pattern may also
 * have tokens that are exactly "*" (one token) or, last only, ">" (one or
 * more tokens).
 * @param[in] s        NUL-terminated subject or pattern; borrowed.
 * @param[in] pattern  true to allow wildcards.
 * @return 0, or #RMQ_ESUBJECT (also for NULL).
 * @note Thread-safe.
 */
RMQ_API int rmq_subject_check(const char *s, bool pattern);

/**
 * @brief The library version, e.g. "0.1.0" (#RMQ_CLIENT_VERSION of the
 * library actually linked). Static string. Thread-safe.
 */
RMQ_API const char *rmq_version(void);

/**
 * @defgroup rmq_callbacks Callbacks
 *
 * All callbacks run on the client's I/O thread, one at a time per client.
 * They must not block; see the Caveats on the main page.
 * @{
 */

/** @brief Connection events passed to #rmq_event_cb. */
enum rmq_event {
    /** The connection dropped; the I/O thread starts reconnecting. */
    RMQ_EV_DISCONNECTED = 1,
    /** A reconnect succeeded; subscriptions were re-sent. */
    RMQ_EV_RECONNECTED = 2,
    /** The client is closed for good: #rmq_close() was called, or every
     *  reconnect attempt failed. Delivered once, last. */
    RMQ_EV_CLOSED = 3,
};

/**
 * @brief Message callback of a subscription made with #rmq_subscribe().
 * @param[in] c    The client.
 * @param[in] sub  The subscription the message was delivered to.
 * @param[in] msg  The message. Borrowed: owned by the library and valid only
 *                 until the callback returns. Do not call #rmq_msg_free() on
 *                 it; use #rmq_msg_copy() to keep it.
 * @param[in] arg  The pointer given to #rmq_subscribe().
 */
typedef void (*rmq_msg_cb)(rmq_client *c, rmq_sub *sub, const rmq_msg *msg, void *arg);

/**
 * @brief Connection event callback, set with #rmq_opts_set_event_cb().
 * @param[in] c      The client.
 * @param[in] event  One of #rmq_event.
 * @param[in] err    For RMQ_EV_DISCONNECTED and RMQ_EV_CLOSED: why (e.g.
 *                   -ECONNRESET, #RMQ_ESLOW, 0 after #rmq_close()); else 0.
 * @param[in] arg    The pointer given with the callback.
 */
typedef void (*rmq_event_cb)(rmq_client *c, int event, int err, void *arg);

/**
 * @brief Asynchronous error callback, set with #rmq_opts_set_error_cb().
 *
 * Called for ERROR frames from the server and for messages dropped because a
 * synchronous subscription's pending queue was full (err -ENOBUFS, once each
 * time the queue overflows after having had room).
 * @param[in] c     The client.
 * @param[in] sub   The subscription concerned, or NULL. Borrowed; when the
 *                  error made the subscription fail, the handle stays valid
 *                  until the owner calls #rmq_unsubscribe().
 * @param[in] err   An RMQ_E* code or negated errno (e.g. #RMQ_ESUBJECT,
 *                  -EMSGSIZE, #RMQ_ESLOW, -ENOBUFS).
 * @param[in] text  The server's text, or a short description. Borrowed,
 *                  valid until the callback returns; never NULL.
 * @param[in] arg   The pointer given with the callback.
 */
typedef void (*rmq_error_cb)(rmq_client *c, rmq_sub *sub, int err, const char *text, void *arg);
/** @} */

/**
 * @defgroup rmq_options Options
 *
 * An #rmq_opts holds everything #rmq_connect() needs. It is not thread-safe.
 * #rmq_connect() copies it, so it may be freed or reused right after.
 * Setters return 0, or -EINVAL for a bad value (the object is unchanged)
 * or -ENOMEM.
 * @{
 */

/**
 * @brief Create an options object with defaults: server #RMQ_DEFAULT_SERVER,
 * connect timeout 2000 ms, reconnect wait 100 ms doubling up to 2000 ms
 * (with jitter), 60 reconnect attempts, reconnect buffer 8 MiB, send buffer
 * threshold 4 MiB, pending limits 65536 messages / 64 MiB per synchronous
 * subscription, no callbacks.
 * @param[out] out  Receives the new object; free it with #rmq_opts_free().
 * @return 0, -EINVAL (out is NULL) or -ENOMEM.
 */
RMQ_API int rmq_opts_new(rmq_opts **out);

/** @brief Free an options object. NULL is a no-op. */
RMQ_API void rmq_opts_free(rmq_opts *o);

/**
 * @brief Set the server list, "host:port[,host:port...]".
 *
 * A host is a name, an IPv4 address or a bracketed IPv6 address
 * ("[::1]:7400"); a "tcp://" prefix on an entry is accepted. Spaces around
 * entries are ignored. The client tries the servers in order on connect and
 * rotates through them when reconnecting. At most 64 entries.
 * @param[in] o        Options.
 * @param[in] servers  NUL-terminated list; copied.
 * @return 0, -EINVAL (empty list, empty host, missing or bad port, too many
 * entries) or -ENOMEM.
 */
RMQ_API int rmq_opts_set_servers(rmq_opts *o, const char *servers);

/**
 * @brief Number of servers in the list, and optionally one of them.
 * @param[in]  o     Options.
 * @param[in]  i     Index of the server to return.
 * @param[out] host  If not NULL and i is in range: the host (borrowed from
 *                   @p o, valid until the list is changed or @p o freed).
 * @param[out] port  If not NULL and i is in range: the port.
 * @return The number of servers in the list.
 */
RMQ_API size_t rmq_opts_server(const rmq_opts *o, size_t i, const char **host, uint16_t *port);

/**
 * @brief Set the client name sent in CONNECT (for server logs and stats).
 * @param[in] o     Options.
 * @param[in] name  NUL-terminated, copied; NULL clears it. At most 255 bytes.
 * @return 0, -EINVAL or -ENOMEM.
 */
RMQ_API int rmq_opts_set_name(rmq_opts *o, const char *name);

/**
 * @brief Set the authentication token sent in CONNECT.
 * @param[in] o      Options.
 * @param[in] token  NUL-terminated, copied; NULL clears it. At most 4096 bytes.
 * @return 0, -EINVAL or -ENOMEM.
 */
RMQ_API int rmq_opts_set_token(rmq_opts *o, const char *token);

/**
 * @brief Set the connect timeout: the longest one connection attempt may
 * take (TCP connect, CONNECT, INFO). Also bounds how long #rmq_publish()
 * waits for room in the send buffer.
 * @param[in] o   Options.
 * @param[in] ms  1 to 600000 milliseconds.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_connect_timeout(rmq_opts *o, int ms);

/**
 * @brief Set the reconnect backoff. The n-th wait before a reconnect attempt
 * is min(wait_ms * 2^(n-1), max_wait_ms), of which a random part up to half
 * is taken off (jitter). The first attempt after a drop is immediate.
 * @param[in] o            Options.
 * @param[in] wait_ms      First wait, 1 to 600000 ms.
 * @param[in] max_wait_ms  Cap, wait_ms to 600000 ms.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_reconnect_wait(rmq_opts *o, int wait_ms, int max_wait_ms);

/**
 * @brief Set how many reconnect attempts are made after a drop (one attempt
 * = one server tried). -1 means forever, 0 means never reconnect: the first
 * drop closes the client (#RMQ_EV_CLOSED).
 * @param[in] o         Options.
 * @param[in] attempts  -1 or more.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_max_reconnect(rmq_opts *o, int attempts);

/**
 * @brief Set the reconnect buffer: how many bytes of publishes are kept while
 * disconnected, to be sent after the reconnect. When it is full,
 * #rmq_publish() returns -EAGAIN. 0 makes publishes fail while disconnected.
 * @param[in] o      Options.
 * @param[in] bytes  0 to 1 GiB.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_reconnect_buffer(rmq_opts *o, size_t bytes);

/**
 * @brief Set the send buffer threshold. Publishes are appended to an
 * in-memory buffer written by the I/O thread; once it holds this many bytes,
 * #rmq_publish() waits (bounded by the connect timeout) until the I/O thread
 * has taken it. A single publish larger than the threshold is accepted into
 * an empty buffer.
 * @param[in] o      Options.
 * @param[in] bytes  4096 to 1 GiB.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_send_buffer(rmq_opts *o, size_t bytes);

/**
 * @brief Set the pending limits of synchronous subscriptions. A message that
 * would take the queue over either limit is dropped, counted
 * (#rmq_sub_dropped()) and reported to the error callback (-ENOBUFS);
 * except on a synchronous topic subscription or consumer binding
 * (#rmq_subscribe_topic(), #rmq_consume() with a NULL callback), which never
 * drops: while its queue is over a limit the client stops reading from the
 * connection (the broker then holds its replay back) until #rmq_sub_next()
 * has taken it down to half of both limits. Meanwhile nothing else of that
 * client is read either (other messages, replies, acks, flush answers).
 * @param[in] o      Options.
 * @param[in] msgs   At least 1.
 * @param[in] bytes  At least 1.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_opts_set_pending_limits(rmq_opts *o, size_t msgs, size_t bytes);

/**
 * @brief Set the connection event callback (see #rmq_event_cb).
 * @param[in] o    Options.
 * @param[in] cb   Callback, or NULL for none.
 * @param[in] arg  Passed to the callback; borrowed, must outlive the client.
 * @return 0, or -EINVAL if @p o is NULL.
 */
RMQ_API int rmq_opts_set_event_cb(rmq_opts *o, rmq_event_cb cb, void *arg);

/**
 * @brief Set the asynchronous error callback (see #rmq_error_cb).
 * @param[in] o    Options.
 * @param[in] cb   Callback, or NULL for none.
 * @param[in] arg  Passed to the callback; borrowed, must outlive the client.
 * @return 0, or -EINVAL if @p o is NULL.
 */
RMQ_API int rmq_opts_set_error_cb(rmq_opts *o, rmq_error_cb cb, void *arg);
/** @} */

/**
 * @defgroup rmq_conn Connection
 * @{
 */

/** @brief Counters of a client, see #rmq_client_stats(). */
typedef struct rmq_stats {
    uint64_t in_msgs;    /**< messages delivered to this client */
    uint64_t in_bytes;   /**< payload bytes of those messages */
    uint64_t out_msgs;   /**< messages published (accepted by rmq_publish*) */
    uint64_t out_bytes;  /**< payload bytes of those messages */
    uint64_t reconnects; /**< successful reconnects */
    uint64_t dropped;    /**< messages dropped: full pending queues, buffered
                              publishes lost on a disconnect */
} rmq_stats;

/**
 * @brief Connect to the first server of the list that answers.
 *
 * Tries each server once, in order: TCP connect (TCP_NODELAY), CONNECT,
 * wait for INFO; each attempt bounded by the connect timeout. On success
 * starts the I/O thread. There is no retry here; reconnects happen only
 * after a connection was established.
 * @param[in]  o    Options, or NULL for the defaults; copied, the caller
 *                  keeps ownership.
 * @param[out] out  Receives the client; close it with #rmq_close().
 * @return 0, or the error of the last server tried:
 * <ul><li>-ECONNREFUSED - nothing listens there.
 *     <li>-ETIMEDOUT - no answer within the connect timeout.
 *     <li>-EHOSTUNREACH, -ENETUNREACH, -EADDRNOTAVAIL - network errors.
 *     <li>-ENOENT - the host name did not resolve.
 *     <li>#RMQ_EAUTH - the server rejected the token.
 *     <li>-EPROTO - the server does not speak protocol version 1, or
 *         answered with something other than INFO.
 *     <li>#RMQ_ESERVER, #RMQ_EFRAME - other server errors.
 *     <li>-EINVAL - @p out is NULL.  <li>-ENOMEM, -EAGAIN (thread creation).</ul>
 */
RMQ_API int rmq_connect(const rmq_opts *o, rmq_client **out);

/**
 * @brief Connect with default options to @p servers
 * ("host:port[,host:port...]", see #rmq_opts_set_servers()).
 * @param[in]  servers  Server list, or NULL for #RMQ_DEFAULT_SERVER; copied.
 * @param[out] out      Receives the client.
 * @return As #rmq_connect(), plus -EINVAL for a bad server list.
 */
RMQ_API int rmq_connect_to(const char *servers, rmq_client **out);

/**
 * @brief Close a client and free it.
 *
 * Stops reconnecting, writes what is still in the send buffer (for at most
 * one second, without waiting for the server), delivers #RMQ_EV_CLOSED,
 * stops the I/O thread, wakes every thread blocked in a call on this client
 * (they return #RMQ_ECLOSED) and waits for them to leave, then frees the
 * client, every #rmq_sub still open on it and their queued messages.
 * Messages obtained from #rmq_sub_next() or #rmq_request() stay valid and
 * still belong to the caller. Call #rmq_flush() first to be sure buffered
 * publishes reached the server.
 * @param[in] c  The client; invalid after a 0 return. NULL is a no-op.
 * @return 0, or -EDEADLK when called from a callback (nothing is done).
 */
RMQ_API int rmq_close(rmq_client *c);

/**
 * @brief Wait until the server has processed everything published on this
 * client before the call (a PING/PONG round trip behind the buffered data).
 *
 * While the client is reconnecting, waits for the reconnect first.
 * @param[in] c           Client.
 * @param[in] timeout_ms  Longest wait in ms; -1 waits forever.
 * @return 0, or:
 * <ul><li>-ETIMEDOUT - no PONG in time.
 *     <li>-ECONNRESET - the connection dropped before the PONG; buffered
 *         publishes may have been lost.
 *     <li>#RMQ_ECLOSED - the client is closed.
 *     <li>-EDEADLK - called from a callback.  <li>-ENOMEM.</ul>
 */
RMQ_API int rmq_flush(rmq_client *c, int timeout_ms);

/**
 * @brief Copy the client's counters.
 * @param[in]  c    Client.
 * @param[out] out  Filled with the current values.
 * @return 0, or -EINVAL if an argument is NULL.
 */
RMQ_API int rmq_client_stats(rmq_client *c, rmq_stats *out);

/**
 * @brief The largest payload the server accepts (from its INFO frame).
 * Thread-safe. Stays at the last server's value while reconnecting.
 */
RMQ_API size_t rmq_client_max_payload(rmq_client *c);

/** @brief true while the client has a live connection. Thread-safe. */
RMQ_API bool rmq_client_is_connected(rmq_client *c);
/** @} */

/**
 * @defgroup rmq_pub Publishing
 * @{
 */

/** @brief One message header for #rmq_publish_msg(). */
typedef struct rmq_header {
    const char *key;   /**< NUL-terminated, non-empty */
    const void *value; /**< value bytes, or NULL for a header without value */
    size_t value_len;  /**< length of value */
} rmq_header;

/**
 * @brief Publish a message on a subject.
 *
 * The payload is copied into the client's send buffer before this returns;
 * the caller keeps ownership of @p data. Many small publishes coalesce into
 * one write by the I/O thread. No allocation happens per message (the buffer
 * grows geometrically and is reused). While the client is reconnecting, the
 * message is kept in the reconnect buffer and sent after the reconnect.
 * @note Thread-safe: any thread may publish on the same #rmq_client,
 * including from a callback.
 * @param[in] c     A client returned by #rmq_connect().
 * @param[in] subj  NUL-terminated subject without wildcards, e.g. "orders.eu".
 * @param[in] data  Payload bytes; may be NULL when @p len is 0.
 * @param[in] len   Payload length, at most #rmq_client_max_payload().
 * @return 0 on success, or a negative error (nothing is sent):
 * <ul><li>#RMQ_ESUBJECT - invalid subject.
 *     <li>-EMSGSIZE - @p len over the server's max_payload.
 *     <li>-EAGAIN - the reconnect buffer is full, or the send buffer stayed
 *         over its threshold for the whole connect timeout.
 *     <li>#RMQ_ECLOSED - the client is closed.
 *     <li>-EINVAL - NULL argument.  <li>-ENOMEM - out of memory.</ul>
 */
RMQ_API int rmq_publish(rmq_client *c, const char *subj, const void *data, size_t len);

/**
 * @brief Publish a message with a reply subject and headers.
 *
 * As #rmq_publish(); everything is copied before return.
 * @param[in] c         Client.
 * @param[in] subj      Subject, no wildcards.
 * @param[in] reply     Reply subject (no wildcards), or NULL.
 * @param[in] headers   Array of @p nheaders headers, or NULL when 0.
 * @param[in] nheaders  At most #RMQ_MAX_HEADERS.
 * @param[in] data      Payload, may be NULL when @p len is 0.
 * @param[in] len       Payload length.
 * @return As #rmq_publish(); #RMQ_ESUBJECT also for a bad reply subject,
 * -EINVAL for a NULL or empty header key or too many headers, -EMSGSIZE
 * also when the whole frame is over the server's max_frame.
 */
RMQ_API int rmq_publish_msg(rmq_client *c, const char *subj, const char *reply,
                            const rmq_header *headers, size_t nheaders, const void *data,
                            size_t len);

/**
 * @brief Publish @p data to the reply subject of @p msg.
 * @param[in] c     Client (need not be the one @p msg came from).
 * @param[in] msg   A received message; borrowed.
 * @param[in] data  Payload, may be NULL when @p len is 0.
 * @param[in] len   Payload length.
 * @return As #rmq_publish(), or -EINVAL if @p msg has no reply subject.
 */
RMQ_API int rmq_respond(rmq_client *c, const rmq_msg *msg, const void *data, size_t len);

/**
 * @brief Send a request and wait for the first reply.
 *
 * The client subscribes (once, lazily) to an inbox "_INBOX.<random>.*" and
 * publishes @p data to @p subj with a unique reply subject in that inbox.
 * Replies that arrive after the timeout are discarded.
 * @param[in]  c           Client.
 * @param[in]  subj        Subject, no wildcards.
 * @param[in]  data        Payload, may be NULL when @p len is 0.
 * @param[in]  len         Payload length.
 * @param[in]  timeout_ms  Longest wait in ms; -1 waits forever.
 * @param[out] reply       Receives the reply; the caller owns it and frees
 *                         it with #rmq_msg_free().
 * @return 0, any error of #rmq_publish() or #rmq_subscribe(), or:
 * <ul><li>-ETIMEDOUT - no reply in time.
 *     <li>-EDEADLK - called from a callback.</ul>
 */
RMQ_API int rmq_request(rmq_client *c, const char *subj, const void *data, size_t len,
                        int timeout_ms, rmq_msg **reply);
/** @} */

/**
 * @defgroup rmq_subs Subscriptions
 *
 * A subscription handle belongs to the caller until #rmq_unsubscribe() or
 * #rmq_close(). Subscription ids are chosen by the client; the subscription
 * is re-sent after each reconnect.
 * @{
 */

/**
 * @brief Subscribe with a callback.
 *
 * The SUBSCRIBE is sent asynchronously; call #rmq_flush() to be sure the
 * server has it before publishing from elsewhere. If the server rejects the
 * subscription, the error callback is told and no message is delivered.
 * @param[in]  c        Client.
 * @param[in]  pattern  Subject pattern; "*" matches one token, ">" (last
 *                      token only) one or more. Copied.
 * @param[in]  queue    Queue group name (each message goes to one member of
 *                      the group), or NULL. Copied.
 * @param[in]  cb       Message callback, runs on the I/O thread.
 * @param[in]  arg      Passed to @p cb; borrowed.
 * @param[out] out      Receives the subscription handle.
 * @return 0, or:
 * <ul><li>#RMQ_ESUBJECT - invalid pattern or queue name.
 *     <li>#RMQ_ECLOSED - the client is closed.
 *     <li>-EINVAL - NULL argument.  <li>-ENOMEM.</ul>
 */
RMQ_API int rmq_subscribe(rmq_client *c, const char *pattern, const char *queue, rmq_msg_cb cb,
                          void *arg, rmq_sub **out);

/**
 * @brief Subscribe for #rmq_sub_next(). Messages are queued on the
 * subscription, bounded by the pending limits (#rmq_opts_set_pending_limits()).
 * @return As #rmq_subscribe().
 */
RMQ_API int rmq_subscribe_sync(rmq_client *c, const char *pattern, const char *queue,
                               rmq_sub **out);

/**
 * @brief Take the next message of a synchronous subscription.
 *
 * Only one thread at a time should call this on a given subscription.
 * @param[in]  sub         A subscription from #rmq_subscribe_sync().
 * @param[in]  timeout_ms  Longest wait in ms; 0 does not wait; -1 waits forever.
 * @param[out] out         Receives the message; the caller owns it and
 *                         frees it with #rmq_msg_free().
 * @return 0, or:
 * <ul><li>-ETIMEDOUT - nothing arrived in time.
 *     <li>#RMQ_ECLOSED - the auto-unsubscribe limit was reached and the
 *         queue is empty, or the client was closed.
 *     <li>#RMQ_ESUBJECT or another server code - the server rejected the
 *         subscription.
 *     <li>-EINVAL - a callback subscription, or NULL argument.
 *     <li>-EDEADLK - called from a callback.</ul>
 */
RMQ_API int rmq_sub_next(rmq_sub *sub, int timeout_ms, rmq_msg **out);

/**
 * @brief Unsubscribe now and free the handle.
 *
 * Queued messages of a synchronous subscription are freed. After this
 * returns no callback runs for @p sub: called from another thread while
 * the I/O thread is inside (or about to enter) that callback, it waits for
 * the callback to return, so do not call it while holding a lock that the
 * callback takes. Calling it from the subscription's own callback is
 * allowed (it returns at once; that callback runs to its end).
 * @param[in] sub  The subscription; invalid after the call. NULL is a no-op.
 * @return 0 (the UNSUBSCRIBE is sent asynchronously).
 */
RMQ_API int rmq_unsubscribe(rmq_sub *sub);

/**
 * @brief Unsubscribe automatically after @p n more messages.
 *
 * The server is told to stop after @p n more; the client counts too, so
 * exactly @p n more messages (at most) reach the callback or queue, also
 * across reconnects (the remaining count is re-sent). The handle stays
 * valid; free it with #rmq_unsubscribe().
 * @param[in] sub  Subscription.
 * @param[in] n    At least 1.
 * @return 0, -EINVAL (n is 0, or NULL), #RMQ_ECLOSED (already finished,
 * failed or closed), or -ENOMEM.
 */
RMQ_API int rmq_unsubscribe_after(rmq_sub *sub, uint64_t n);

/**
 * @brief Messages and bytes queued on a synchronous subscription.
 * @param[in]  sub    Subscription.
 * @param[out] msgs   If not NULL: queued messages.
 * @param[out] bytes  If not NULL: their payload bytes.
 * @return 0 or -EINVAL.
 */
RMQ_API int rmq_sub_pending(rmq_sub *sub, size_t *msgs, size_t *bytes);

/** @brief Messages dropped on this subscription because its queue was full. */
RMQ_API uint64_t rmq_sub_dropped(rmq_sub *sub);

/** @brief Messages delivered to this subscription (callback or queue). */
RMQ_API uint64_t rmq_sub_delivered(rmq_sub *sub);
/** @} */

/**
 * @defgroup rmq_msgs Messages
 *
 * A message is one allocation holding the frame body and the spans into it.
 * Pointers returned by the accessors are borrowed from the message and valid
 * until it is freed (or, for a callback's message, until the callback
 * returns). Accessors are thread-safe on a message nobody is freeing.
 * @{
 */

/** @brief The subject, NUL-terminated. */
RMQ_API const char *rmq_msg_subject(const rmq_msg *m);

/** @brief The reply subject, NUL-terminated, or NULL if there is none. */
RMQ_API const char *rmq_msg_reply(const rmq_msg *m);

/** @brief The payload bytes (not NUL-terminated; never NULL). */
RMQ_API const void *rmq_msg_data(const rmq_msg *m);

/** @brief The payload length in bytes. */
RMQ_API size_t rmq_msg_len(const rmq_msg *m);

/** @brief The number of headers. */
RMQ_API size_t rmq_msg_header_count(const rmq_msg *m);

/**
 * @brief Look up the first header named @p key (exact, case-sensitive).
 * @param[in]  m      Message.
 * @param[in]  key    NUL-terminated header name.
 * @param[out] value  If not NULL: the value bytes (borrowed from @p m; NULL
 *                    when the header has no value).
 * @param[out] len    If not NULL: the value length.
 * @return 0, or #RMQ_ENOTFOUND.
 */
RMQ_API int rmq_msg_header(const rmq_msg *m, const char *key, const void **value, size_t *len);

/**
 * @brief Iterate over the headers in wire order.
 * @param[in]     m      Message.
 * @param[in,out] pos    Start with 0; updated by each call.
 * @param[out]    key    The name (borrowed, NOT NUL-terminated).
 * @param[out]    klen   Name length.
 * @param[out]    value  The value bytes (borrowed; NULL if none).
 * @param[out]    vlen   Value length.
 * @return true if a header was returned, false at the end.
 */
RMQ_API bool rmq_msg_header_next(const rmq_msg *m, size_t *pos, const char **key, size_t *klen,
                                 const void **value, size_t *vlen);

/**
 * @brief Copy a message, e.g. to keep a callback's message.
 * @param[in]  m    Message; borrowed.
 * @param[out] out  Receives the copy, owned by the caller (#rmq_msg_free()).
 * @return 0, -EINVAL or -ENOMEM.
 */
RMQ_API int rmq_msg_copy(const rmq_msg *m, rmq_msg **out);

/**
 * @brief Free a message from #rmq_sub_next(), #rmq_request() or
 * #rmq_msg_copy(). NULL is a no-op, and so is a callback's borrowed message.
 */
RMQ_API void rmq_msg_free(rmq_msg *m);

/** @brief Sequence number in its durable topic; 0 for a message not from a topic. */
RMQ_API uint64_t rmq_msg_seq(const rmq_msg *m);

/** @brief When the broker stored it (Unix epoch ns); 0 for a message not from a topic. */
RMQ_API uint64_t rmq_msg_time_ns(const rmq_msg *m);

/** @brief Durable consumers: delivery attempt of this message (1 = first); else 0. */
RMQ_API uint32_t rmq_msg_deliveries(const rmq_msg *m);
/** @} */

/**
 * @defgroup rmq_durable Durable topics
 *
 * A topic stores the messages published on its subjects in the broker's
 * data dir; see proto/PROTOCOL.md ("Durable topics"). The calls below are
 * request/reply with the broker: they block up to @p timeout_ms (-1: no
 * limit) and return -EDEADLK from a callback, like #rmq_request(). Errors
 * from the broker: #RMQ_ENOTFOUND (no such topic or consumer), -EEXIST
 * (name taken, or subjects overlapping another topic), -EINVAL (bad
 * config), #RMQ_ESTOREFULL, -EIO (storage failed), #RMQ_EUNAVAIL (no
 * storage); -ETIMEDOUT when no answer came in time.
 * @{
 */

/** @brief Largest topic or consumer name (bytes; [A-Za-z0-9_-] only). */
#define RMQ_NAME_MAX 64
/** @brief Largest number of subject patterns of a topic. */
#define RMQ_TOPIC_SUBJECTS_MAX 16

/** @brief A topic definition for #rmq_topic_add(). Strings are borrowed. */
typedef struct rmq_topic_cfg {
    const char *name;            /**< 1..64 of [A-Za-z0-9_-] */
    const char *const *subjects; /**< 1..16 patterns ("orders.>") */
    size_t nsubjects;
    uint64_t max_msgs;        /**< keep at most this many (oldest dropped); 0: no limit */
    uint64_t max_bytes;       /**< keep at most this many stored bytes (see bytes); 0: no limit */
    uint64_t max_age_ms;      /**< drop messages older than this; 0: no limit */
    uint64_t dedup_window_ms; /**< Rmq-Msg-Id window; 0: the broker's default (2 min) */
} rmq_topic_cfg;

/** @brief A topic's definition and state, as returned by the broker. */
typedef struct rmq_topic_info {
    char name[RMQ_NAME_MAX + 1];
    size_t nsubjects;
    char subjects[RMQ_TOPIC_SUBJECTS_MAX][257];
    uint64_t max_msgs, max_bytes, max_age_ms, dedup_window_ms;
    uint64_t msgs;          /**< messages stored */
    uint64_t bytes;         /**< their stored size: subject, headers and payload as encoded
                                 (a few bytes over the payloads) */
    uint64_t first_seq;     /**< oldest stored; last_seq + 1 when empty */
    uint64_t last_seq;      /**< last assigned; 0: none yet */
    uint64_t first_time_ns; /**< store time of first_seq (Unix ns); 0 when empty */
    uint64_t last_time_ns;  /**< store time of last_seq; 0: none */
    uint32_t consumers;     /**< durable consumers */
    /** Cluster, #rmq_topic_list() only: the node that stores this topic,
     *  "" for the node asked. For another node's topic only name, subjects
     *  and node_down are known (the rest is 0; #rmq_topic_info_get() asks
     *  that node). */
    char node[64];
    bool node_down; /**< that node is unreachable right now */
} rmq_topic_info;

/** @brief Create a topic; @p info (may be NULL) receives its state.
 *  Checked before sending: -EINVAL for a bad name or 0 or more than
 *  #RMQ_TOPIC_SUBJECTS_MAX subjects, #RMQ_ESUBJECT for a bad pattern. */
RMQ_API int rmq_topic_add(rmq_client *c, const rmq_topic_cfg *cfg, int timeout_ms,
                          rmq_topic_info *info);
/** @brief Read one topic's definition and state. */
RMQ_API int rmq_topic_info_get(rmq_client *c, const char *name, int timeout_ms,
                               rmq_topic_info *info);
/**
 * @brief List every topic. *out is an array of *n entries owned by the
 * caller, freed with free() (NULL when *n is 0).
 */
RMQ_API int rmq_topic_list(rmq_client *c, int timeout_ms, rmq_topic_info **out, size_t *n);
/** @brief Remove a topic with its messages and consumers. */
RMQ_API int rmq_topic_rm(rmq_client *c, const char *name, int timeout_ms);

/** @brief What #rmq_publish_ack() learnt from the broker. */
typedef struct rmq_pub_ack {
    char topic[RMQ_NAME_MAX + 1]; /**< the topic that stored it */
    uint64_t seq;                 /**< its sequence number */
    bool duplicate;               /**< msg_id seen within the window: not stored again */
} rmq_pub_ack;

/**
 * @brief Publish to a topic's subject and wait until the broker has stored it.
 *
 * Returns 0 only once the message is committed (see PROTOCOL.md for what
 * each --fsync mode then guarantees). With @p msg_id (header Rmq-Msg-Id), a
 * re-send after a timeout or a reconnect is acknowledged again without
 * being stored twice, within the topic's dedup window.
 * @param[in]  msg_id  Deduplication id (1..128 bytes), or NULL.
 * @param[out] ack     May be NULL.
 * @return 0; #RMQ_ENOTFOUND (no topic stores @p subj: the publish carries
 * the header Rmq-Expect-Ack, so the broker answers at once and does not
 * route it); #RMQ_EUNAVAIL (the broker runs without storage); -EMSGSIZE,
 * #RMQ_ESTOREFULL, -EIO; -ETIMEDOUT (the message may or may not be
 * stored: re-send with the same msg_id); -EINVAL for a bad @p msg_id; any
 * error of #rmq_request().
 */
RMQ_API int rmq_publish_ack(rmq_client *c, const char *subj, const void *data, size_t len,
                            const char *msg_id, int timeout_ms, rmq_pub_ack *ack);

/**
 * @brief Callback of #rmq_publish_ack_async(), on the I/O thread.
 * @param[in] err  0 (stored; @p ack filled), an error from the broker as for
 *                 #rmq_publish_ack(), -ETIMEDOUT (no answer within the
 *                 timeout given), or #RMQ_ECLOSED (the client closed).
 * @param[in] ack  Borrowed for the call; NULL when err is not 0.
 */
typedef void (*rmq_ack_cb)(rmq_client *c, int err, const rmq_pub_ack *ack, void *arg);

/**
 * @brief Publish to a topic's subject; @p cb is called once, when the
 * broker has stored it (or it failed). Does not wait: for throughput, keep
 * a window of these outstanding. Every call gets exactly one callback;
 * those still outstanding at #rmq_close() get #RMQ_ECLOSED.
 * @param[in] timeout_ms  After this long without an answer, cb gets
 *                        -ETIMEDOUT (-1: no limit).
 * @return 0 (cb will be called), or an error of #rmq_publish() or -EINVAL
 * (NULL @p cb, bad @p msg_id, @p timeout_ms below -1) (cb will not).
 * @note Timeouts are checked by the I/O thread; while it is reconnecting they
 * fire between attempts, so up to one connect timeout late. A PubAck lost
 * with a dropped connection shows up as -ETIMEDOUT (with -1, as
 * #RMQ_ECLOSED at close). As for #rmq_publish_ack(), a subject no topic
 * holds gets no answer: -ETIMEDOUT. @p cb may call this function again.
 * Lookup of an answer is O(1), and entries are recycled: thousands may be
 * outstanding at once.
 */
RMQ_API int rmq_publish_ack_async(rmq_client *c, const char *subj, const void *data, size_t len,
                                  const char *msg_id, int timeout_ms, rmq_ack_cb cb, void *arg);

/** @brief Where a topic subscription starts. */
enum rmq_start {
    RMQ_START_NEW = 0,  /**< messages stored from now on */
    RMQ_START_ALL = 1,  /**< from the oldest stored */
    RMQ_START_SEQ = 2,  /**< from rmq_replay_opts.seq */
    RMQ_START_TIME = 3, /**< from the first stored at or after rmq_replay_opts.time_ns */
    RMQ_START_LAST = 4, /**< from the last stored */
};

/** @brief Options of #rmq_subscribe_topic(). */
typedef struct rmq_replay_opts {
    enum rmq_start start;
    uint64_t seq;     /**< RMQ_START_SEQ */
    uint64_t time_ns; /**< RMQ_START_TIME: Unix epoch ns */
} rmq_replay_opts;

/**
 * @brief Replay the stored messages of @p topic matching @p pattern, in seq
 * order, then go on live with no gap and no duplicate.
 *
 * After a reconnect the subscription resumes after the last seq it
 * delivered (it is re-sent with #RMQ_START_SEQ = last + 1); one that has
 * delivered nothing yet is re-sent with @p o as given, except
 * #RMQ_START_NEW, which is re-sent as #RMQ_START_TIME at the moment the
 * subscription was made (so messages stored while disconnected are not
 * skipped; this compares the client's clock with the broker's store times).
 * @p o NULL means #RMQ_START_NEW. @p cb NULL makes a synchronous
 * subscription (#rmq_sub_next()), which drops nothing: a reader slower
 * than the replay holds it back (see #rmq_opts_set_pending_limits()).
 * Errors from the broker (unknown topic: #RMQ_ENOTFOUND, bad start:
 * -EINVAL) reach the error callback, or #rmq_sub_next(), as for
 * #rmq_subscribe().
 * @return As #rmq_subscribe(), plus -EINVAL for a bad name or start.
 */
RMQ_API int rmq_subscribe_topic(rmq_client *c, const char *topic, const char *pattern,
                                const rmq_replay_opts *o, rmq_msg_cb cb, void *arg, rmq_sub **out);

/** @brief Settings of a durable consumer created by #rmq_consume(). 0: broker default. */
typedef struct rmq_consumer_opts {
    uint32_t max_inflight; /**< unacked messages at once (default 1000) */
    uint64_t ack_wait_ms;  /**< redeliver after this long without an ack (default 30000) */
    uint32_t max_deliver;  /**< delivery attempts per message (default 0: unlimited) */
} rmq_consumer_opts;

/**
 * @brief Bind to the durable consumer @p durable of @p topic (created if
 * missing, with @p o, which may be NULL). Every subscription bound to it,
 * on any client, shares its messages. Ack each one with #rmq_ack().
 * @p cb NULL makes a synchronous subscription.
 * @return As #rmq_subscribe(), plus -EINVAL for a bad name.
 */
RMQ_API int rmq_consume(rmq_client *c, const char *topic, const char *durable,
                        const rmq_consumer_opts *o, rmq_msg_cb cb, void *arg, rmq_sub **out);

/** @brief Acknowledge a message from a durable consumer (sent asynchronously,
 *  like #rmq_publish(); fine from a callback, on its borrowed message).
 *  @return As #rmq_publish(), or -EINVAL if @p m has no reply subject or
 *  no seq (it did not come from a consumer). */
RMQ_API int rmq_ack(rmq_client *c, const rmq_msg *m);
/** @brief Ask for a message from a durable consumer to be redelivered now.
 *  Errors as #rmq_ack(). */
RMQ_API int rmq_nak(rmq_client *c, const rmq_msg *m);

/** @brief A durable consumer's state. */
typedef struct rmq_consumer_info {
    char topic[RMQ_NAME_MAX + 1];
    char name[RMQ_NAME_MAX + 1];
    uint64_t ack_floor; /**< every seq at or below is acknowledged */
    uint32_t max_inflight, max_deliver;
    uint64_t ack_wait_ms;
    uint32_t inflight, members;
    uint64_t redelivered;
} rmq_consumer_info;

/** @brief List the consumers of @p topic; *out freed with free(). */
RMQ_API int rmq_consumer_list(rmq_client *c, const char *topic, int timeout_ms,
                              rmq_consumer_info **out, size_t *n);
/** @brief Remove a durable consumer. */
RMQ_API int rmq_consumer_rm(rmq_client *c, const char *topic, const char *durable, int timeout_ms);
/** @} */

#ifdef __cplusplus
}
#endif

#endif
