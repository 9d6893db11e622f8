/*
 * gen_corpus.c - writes the seed corpus of fuzz_codec into a directory:
 * one valid frame of each common kind, a MESSAGE as the broker fans it
 * out, and a stream of several frames back to back. The files in
 * tests/fuzz/corpus/ were made with it:
 *
 *   fuzz_codec_gen_corpus tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ringmq.pb-c.h"

static uint8_t g_stream[4096];
static size_t g_stream_len;

static void put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    if (g_stream_len + n <= sizeof(g_stream)) {
        memcpy(g_stream + g_stream_len, p, n);
        g_stream_len += n;
    }
}

static void put_frame(const char *dir, const char *name, const Ringmq__Frame *fr)
{
    uint8_t buf[1024];
    ssize_t n = codec_frame_write(fr, buf, sizeof(buf));
    if (n < 0)
        exit(1);
    put(dir, name, buf, (size_t)n);
}

int main(int argc, char **argv)
{
    Ringmq__Frame fr = RINGMQ__FRAME__INIT;
    Ringmq__Connect con = RINGMQ__CONNECT__INIT;
    Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
    Ringmq__Unsubscribe unsub = RINGMQ__UNSUBSCRIBE__INIT;
    static const struct codec_hdr hdrs[] = {
        {"content-type", 12, "application/json", 16},
        {"trace", 5, NULL, 0},
    };
    static const char pay[] = "{\"id\":42}";
    static uint8_t stream[sizeof(g_stream)];
    uint8_t buf[1024];
    struct codec_span body, s;
    ssize_t r;
    struct codec_msg m;
    size_t n;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    con.version = CODEC_PROTO_VERSION;
    con.name = "fuzz";
    con.auth_token = "secret";
    fr.kind_case = RINGMQ__FRAME__KIND_CONNECT;
    fr.connect = &con;
    put_frame(argv[1], "connect", &fr);

    sub.sid = 1;
    sub.pattern = "orders.*.>";
    sub.queue = "workers";
    fr.kind_case = RINGMQ__FRAME__KIND_SUB;
    fr.sub = &sub;
    put_frame(argv[1], "sub", &fr);

    n = codec_pub_write(buf, "orders.eu.new", 13, "_INBOX.7", 8, hdrs, 2, pay, sizeof(pay) - 1);
    put(argv[1], "pub_headers", buf, n);

    /* The same PUBLISH delivered to sid 300: prefix + shared body. */
    if (codec_split(buf, n, UINT32_MAX, &body) != 1 || codec_peek(body.p, body.len, &s) < 0 ||
        codec_msg_parse(s.p, s.len, &m) != 0)
        return 1;
    {
        uint8_t out[1024];
        size_t bl = codec_body_size(&m);
        size_t pl = codec_msg_prefix(out, 300, bl);
        codec_body_write(&m, out + pl);
        put(argv[1], "msg", out, pl + bl);
    }

    r = codec_ping_write(buf, sizeof(buf), CODEC_K_PING, 99);
    if (r < 0)
        return 1;
    put(argv[1], "ping", buf, (size_t)r);

    unsub.sid = 1;
    unsub.has_max = 1;
    unsub.max = 10;
    fr.kind_case = RINGMQ__FRAME__KIND_UNSUB;
    fr.unsub = &unsub;
    put_frame(argv[1], "unsub", &fr);

    r = codec_error_write(buf, sizeof(buf), RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT, "bad subject", 1,
                          0);
    if (r < 0)
        return 1;
    put(argv[1], "err", buf, (size_t)r);

    /* Everything above, back to back, as one read from a socket. */
    n = g_stream_len;
    memcpy(stream, g_stream, n);
    put(argv[1], "stream", stream, n);
    return 0;
}
