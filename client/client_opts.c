/*
 * client_opts.c - connection options: defaults, setters, the server list
 * parser, and the deep copy rmq_connect() keeps.
 *
 * A server list is "host:port[,host:port...]"; each entry may carry a
 * "tcp://" prefix, and an IPv6 host is written in brackets:
 *
 *     "127.0.0.1:7400, [::1]:7401,tcp://localhost:7402"
 *      -> {127.0.0.1, 7400} {::1, 7401} {localhost, 7402}
 *
 * Names are resolved only when connecting (client_io.c), so a list may name
 * hosts that do not resolve yet.
 *
 * Thread: an rmq_opts is not thread-safe; the client keeps its own copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* Fill o with the defaults documented at rmq_opts_new(), without servers. */
void client_opts_defaults(struct rmq_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 2000;
    o->reconnect_wait_ms = 100;
    o->reconnect_wait_max_ms = 2000;
    o->max_reconnect = 60;
    o->reconnect_buf = 8u << 20;
    o->send_buf = 4u << 20;
    o->pending_msgs = 65536;
    o->pending_bytes = 64u << 20;
}

static void servers_free(struct client_server *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].host);
    free(s);
}

/* Parse one entry (trimmed, not NUL-terminated) into *out. */
static int server_parse(const char *p, size_t len, struct client_server *out)
{
    const char *host, *port;
    size_t hlen, plen;
    unsigned long v = 0;

    if (len > 6 && memcmp(p, "tcp://", 6) == 0) {
        p += 6;
        len -= 6;
    }
    if (len > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', len);
        if (rb == NULL || (size_t)(rb - p) + 1 >= len || rb[1] != ':')
            return -EINVAL;
        host = p + 1;
        hlen = (size_t)(rb - host);
        port = rb + 2;
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                colon = p + i;
        if (colon == NULL)
            return -EINVAL;
        host = p;
        hlen = (size_t)(colon - p);
        port = colon + 1;
        if (memchr(host, ':', hlen) != NULL)
            return -EINVAL; /* unbracketed IPv6 */
    }
    plen = len - (size_t)(port - p);
    if (hlen == 0 || hlen > 255 || plen == 0 || plen > 5)
        return -EINVAL;
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)host[i] <= ' ' || host[i] == '/' || host[i] == ',')
            return -EINVAL;
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(port[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    out->host = strndup(host, hlen);
    if (out->host == NULL)
        return -ENOMEM;
    out->port = (uint16_t)v;
    return 0;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Parse a whole list into a new array. *out and *n are set only on success. */
static int servers_parse(const char *list, struct client_server **out, size_t *n)
{
    struct client_server *s;
    size_t cnt = 0;
    const char *p = list;
    int rc;

    if (list == NULL)
        return -EINVAL;
    s = calloc(CLIENT_MAX_SERVERS, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *e = end ? end : p + strlen(p);
        const char *b = p;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (cnt == CLIENT_MAX_SERVERS) {
            rc = -EINVAL;
            goto err;
        }
        rc = server_parse(b, (size_t)(e - b), &s[cnt]);
        if (rc < 0)
            goto err;
        cnt++;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = s;
    *n = cnt;
    return 0;
err:
    servers_free(s, cnt);
    return rc;
}

/* Deep-copy src into dst (dst is overwritten). Returns 0 or -ENOMEM, after
 * which dst holds nothing to free. Caller thread; src is borrowed. */
int client_opts_copy(struct rmq_opts *dst, const struct rmq_opts *src)
{
    *dst = *src;
    dst->servers = NULL;
    dst->name = dst->token = NULL;
    dst->nservers = 0;
    if (src->nservers) {
        dst->servers = calloc(src->nservers, sizeof(*dst->servers));
        if (dst->servers == NULL)
            goto err;
        for (size_t i = 0; i < src->nservers; i++) {
            dst->servers[i].host = strdup(src->servers[i].host);
            if (dst->servers[i].host == NULL)
                goto err;
            dst->servers[i].port = src->servers[i].port;
            dst->nservers++;
        }
    }
    if (src->name && (dst->name = strdup(src->name)) == NULL)
        goto err;
    if (src->token && (dst->token = strdup(src->token)) == NULL)
        goto err;
    return 0;
err:
    client_opts_fini(dst);
    return -ENOMEM;
}

/* Free what an embedded rmq_opts owns (not the struct). */
void client_opts_fini(struct rmq_opts *o)
{
    servers_free(o->servers, o->nservers);
    free(o->name);
    free(o->token);
    o->servers = NULL;
    o->nservers = 0;
    o->name = o->token = NULL;
}

/* ---- Public API (see ringmq.h) ---- */

/* See ringmq.h. Any thread. */
int rmq_opts_new(rmq_opts **out)
{
    rmq_opts *o;
    int rc;

    if (out == NULL)
        return -EINVAL;
    o = malloc(sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    client_opts_defaults(o);
    rc = servers_parse(RMQ_DEFAULT_SERVER, &o->servers, &o->nservers);
    if (rc < 0) {
        free(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* See ringmq.h. */
void rmq_opts_free(rmq_opts *o)
{
    if (o == NULL)
        return;
    client_opts_fini(o);
    free(o);
}

/* See ringmq.h. The old list is replaced only when the new one parses. */
int rmq_opts_set_servers(rmq_opts *o, const char *servers)
{
    struct client_server *s;
    size_t n;
    int rc;

    if (o == NULL)
        return -EINVAL;
    rc = servers_parse(servers, &s, &n);
    if (rc < 0)
        return rc;
    servers_free(o->servers, o->nservers);
    o->servers = s;
    o->nservers = n;
    return 0;
}

/* See ringmq.h. */
size_t rmq_opts_server(const rmq_opts *o, size_t i, const char **host, uint16_t *port)
{
    if (o == NULL)
        return 0;
    if (i < o->nservers) {
        if (host)
            *host = o->servers[i].host;
        if (port)
            *port = o->servers[i].port;
    }
    return o->nservers;
}

static int str_set(char **dst, const char *src, size_t max)
{
    char *s = NULL;

    if (src != NULL) {
        if (strlen(src) > max)
            return -EINVAL;
        s = strdup(src);
        if (s == NULL)
            return -ENOMEM;
    }
    free(*dst);
    *dst = s;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_name(rmq_opts *o, const char *name)
{
    if (o == NULL)
        return -EINVAL;
    return str_set(&o->name, name, CLIENT_NAME_MAX);
}

/* See ringmq.h. */
int rmq_opts_set_token(rmq_opts *o, const char *token)
{
    if (o == NULL)
        return -EINVAL;
    return str_set(&o->token, token, CLIENT_TOKEN_MAX);
}

/* See ringmq.h. */
int rmq_opts_set_connect_timeout(rmq_opts *o, int ms)
{
    if (o == NULL || ms < 1 || ms > 600000)
        return -EINVAL;
    o->connect_timeout_ms = ms;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_reconnect_wait(rmq_opts *o, int wait_ms, int max_wait_ms)
{
    if (o == NULL || wait_ms < 1 || wait_ms > 600000 || max_wait_ms < wait_ms ||
        max_wait_ms > 600000)
        return -EINVAL;
    o->reconnect_wait_ms = wait_ms;
    o->reconnect_wait_max_ms = max_wait_ms;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_max_reconnect(rmq_opts *o, int attempts)
{
    if (o == NULL || attempts < -1)
        return -EINVAL;
    o->max_reconnect = attempts;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_reconnect_buffer(rmq_opts *o, size_t bytes)
{
    if (o == NULL || bytes > (1u << 30))
        return -EINVAL;
    o->reconnect_buf = bytes;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_send_buffer(rmq_opts *o, size_t bytes)
{
    if (o == NULL || bytes < 4096 || bytes > (1u << 30))
        return -EINVAL;
    o->send_buf = bytes;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_pending_limits(rmq_opts *o, size_t msgs, size_t bytes)
{
    if (o == NULL || msgs == 0 || bytes == 0)
        return -EINVAL;
    o->pending_msgs = msgs;
    o->pending_bytes = bytes;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_event_cb(rmq_opts *o, rmq_event_cb cb, void *arg)
{
    if (o == NULL)
        return -EINVAL;
    o->ev_cb = cb;
    o->ev_arg = arg;
    return 0;
}

/* See ringmq.h. */
int rmq_opts_set_error_cb(rmq_opts *o, rmq_error_cb cb, void *arg)
{
    if (o == NULL)
        return -EINVAL;
    o->err_cb = cb;
    o->err_arg = arg;
    return 0;
}
