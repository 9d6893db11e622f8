/*
 * rmq_error.h - the one error convention of ringmq (broker, proto, storage).
 *
 * 0 means success. -1..-4095 are negated errno values (syscalls, cqe->res,
 * liburing). Values at or below RMQ_ERRBASE are ringmq's own codes. errno is
 * never used as an error channel across calls.
 *
 * The public client header (client/include/ringmq.h) repeats these values;
 * client/client.c checks at compile time that both agree.
 */
#ifndef RMQ_PROTO_RMQ_ERROR_H
#define RMQ_PROTO_RMQ_ERROR_H

#define RMQ_ERRBASE (-20000)
#define RMQ_EFRAME (RMQ_ERRBASE - 1)     /* malformed frame or protobuf body */
#define RMQ_ESUBJECT (RMQ_ERRBASE - 2)   /* invalid subject or pattern */
#define RMQ_ENOTFOUND (RMQ_ERRBASE - 3)  /* key or subscription absent */
#define RMQ_ESTOREFULL (RMQ_ERRBASE - 4) /* LMDB map full */
#define RMQ_ESLOW (RMQ_ERRBASE - 5)      /* disconnected as a slow consumer */
#define RMQ_EAUTH (RMQ_ERRBASE - 6)      /* authentication failed */
#define RMQ_ESERVER (RMQ_ERRBASE - 7)    /* the server answered with an error */
#define RMQ_EKIND (RMQ_ERRBASE - 8)      /* unknown frame kind */
#define RMQ_ECLOSED (RMQ_ERRBASE - 9)    /* the connection was closed */
#define RMQ_ECORRUPT (RMQ_ERRBASE - 10)  /* stored data is damaged or not ours */
#define RMQ_EUNAVAIL (RMQ_ERRBASE - 11)  /* storage off, or a topic's owner is down */

/*
 * Return a static, NUL-terminated description of err: one of the codes
 * above or a negated errno. Never returns NULL. Thread-safe.
 */
const char *rmq_err_str(int err);

#endif
