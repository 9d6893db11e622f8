/*
 * rmq_error.c - text for ringmq error codes (see rmq_error.h).
 */
#include "rmq_error.h"

#include <string.h>

/* See rmq_error.h. strerror() is used only for the errno range; glibc's
 * returns a pointer to static text for known values. */
const char *rmq_err_str(int err)
{
    switch (err) {
    case 0:
        return "success";
    case RMQ_EFRAME:
        return "malformed frame";
    case RMQ_ESUBJECT:
        return "invalid subject";
    case RMQ_ENOTFOUND:
        return "not found";
    case RMQ_ESTOREFULL:
        return "storage full";
    case RMQ_ESLOW:
        return "slow consumer: disconnected by the server";
    case RMQ_EAUTH:
        return "authentication failed";
    case RMQ_ESERVER:
        return "server error";
    case RMQ_EKIND:
        return "unknown frame kind";
    case RMQ_ECLOSED:
        return "connection closed";
    case RMQ_ECORRUPT:
        return "stored data is damaged";
    case RMQ_EUNAVAIL:
        return "unavailable (storage off, or the topic's node is down)";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown system error";
    return "unknown error";
}
