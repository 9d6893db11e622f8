/*
 * main.c - ringmqd: read the configuration, open the listeners, start the
 * shards, wait for SIGINT/SIGTERM, stop them, exit.
 *
 * Exit codes: 0 after a clean shutdown, 1 when a shard failed to start or
 * run, 2 for a bad configuration or a listener that could not be opened.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "dur.h"
#include "route.h"
#include "log.h"
#include "shard.h"
#include "xalloc.h"
#include "xshard.h"

/*
 * SO_REUSEPORT lets any process of the same user bind the port too, and the
 * kernel would then split clients between two brokers. Binding once without
 * it first fails with EADDRINUSE if anyone holds the port.
 */
static int port_probe(const char *host, uint16_t port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res;
    char portstr[8];
    int fd, one = 1, rc = 0;
    if (port == 0)
        return 0;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res))
        return 0; /* listen_open reports it */
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, res->ai_addr, res->ai_addrlen)) {
            snprintf(err, errlen, "cannot listen on %s:%s: %s", host, portstr, strerror(errno));
            rc = -1;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* Open one SO_REUSEPORT listener on host:port; *port receives the bound port. */
static int listen_open(const char *host, uint16_t *port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res;
    char portstr[8];
    int fd, one = 1, rc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", *port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4096))
        goto fail;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(res);
    return fd;
fail:
    snprintf(err, errlen, "cannot listen on %s:%s: %s", host, portstr, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

static void raise_nofile(uint32_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)want + 64)
        log_warn("open-file limit is %llu (hard limit): fewer than max-conns %u can connect; "
                 "raise it with ulimit -Hn or LimitNOFILE",
                 (unsigned long long)rl.rlim_cur, want);
    else
        log_info("open-file limit %llu", (unsigned long long)rl.rlim_cur);
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[600];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f))
        return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    char err[600];
    sigset_t sigs;
    int sig, rc, exit_code = 0;
    uint16_t port;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    config_defaults(&srv->cfg);
    rc = config_parse_args(&srv->cfg, argc - 1, argv + 1, err, sizeof(err));
    if (rc) {
        if (rc < 0)
            fprintf(stderr, "ringmqd: %s\n", err);
        free(srv);
        return rc < 0 ? 2 : 0;
    }
    log_set_level((enum log_level)srv->cfg.log_level);
    srv->nshards = srv->cfg.shards ? srv->cfg.shards : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (srv->nshards > XSHARD_MAX)
        srv->nshards = XSHARD_MAX;
    srv->max_body = srv->cfg.max_payload + CODEC_FRAME_OVERHEAD;
    snprintf(srv->server_id, sizeof(srv->server_id), "%08lx%04x", (unsigned long)time(NULL),
             (unsigned)getpid() & 0xffff);
    atomic_init(&srv->next_client_id, 1);

    /* Signals are taken by sigwait() on this thread only. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(srv->cfg.max_conns);

    srv->shards = xcalloc(srv->nshards, sizeof(*srv->shards));
    xshard_server_init(srv);
    port = srv->cfg.listen_port;
    for (unsigned i = 0; i < srv->nshards; i++) {
        int fd = i == 0 && port_probe(srv->cfg.listen_host, port, err, sizeof(err))
                     ? -1
                     : listen_open(srv->cfg.listen_host, &port, err, sizeof(err));
        if (fd < 0) {
            log_error("%s", err);
            for (unsigned j = 0; j < i; j++)
                close(srv->shards[j].listen_fd);
            xshard_server_fini(srv);
            free(srv->shards);
            free(srv);
            return 2;
        }
        shard_init(&srv->shards[i], srv, i, fd);
        srv->shards[i].cpu = (int)(i % (unsigned)(ncpu > 0 ? ncpu : 1));
    }
    srv->cfg.listen_port = port;
    if (route_server_init(srv, err, sizeof(err))) {
        log_error("%s", err);
        for (unsigned j = 0; j < srv->nshards; j++)
            close(srv->shards[j].listen_fd);
        xshard_server_fini(srv);
        free(srv->shards);
        free(srv);
        return 2;
    }
    rc = dur_start(srv);
    if (rc) {
        log_error("not starting: the store in %s cannot be used (%s); fix or move it, or run "
                  "with --storage off",
                  srv->cfg.data_dir, rmq_err_str(rc));
        for (unsigned j = 0; j < srv->nshards; j++)
            close(srv->shards[j].listen_fd);
        route_server_fini(srv);
        xshard_server_fini(srv);
        free(srv->shards);
        free(srv);
        return 1;
    }
    for (unsigned i = 0; i < srv->nshards; i++) {
        rc = pthread_create(&srv->shards[i].thread, NULL, shard_run, &srv->shards[i]);
        if (rc) {
            log_error("cannot start shard %u: %s", i, strerror(rc));
            return 1;
        }
    }
    log_info("ringmqd %s listening on %s:%u (%u shard%s, server id %s)", RMQ_VERSION,
             srv->cfg.listen_host, port, srv->nshards, srv->nshards == 1 ? "" : "s",
             srv->server_id);
    if (srv->cfg.port_file[0] && write_port_file(srv->cfg.port_file, port))
        log_warn("cannot write port file %s: %s", srv->cfg.port_file, strerror(errno));

    /* Wait for a signal, or for a shard that failed (it sets stop). */
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0) {
            log_info("received %s; shutting down", strsignal(sig));
            break;
        }
        if (atomic_load(&srv->stop))
            break;
    }
    atomic_store(&srv->stop, true);
    for (unsigned i = 0; i < srv->nshards; i++) {
        pthread_join(srv->shards[i].thread, NULL);
        if (srv->shards[i].exit_code)
            exit_code = srv->shards[i].exit_code;
    }
    {
        uint64_t conns = 0, in = 0, out = 0, slow = 0;
        for (unsigned i = 0; i < srv->nshards; i++) {
            struct shard_stats *st = &srv->shards[i].stats;
            conns += stat_get(&st->conns_total);
            in += stat_get(&st->msgs_in);
            out += stat_get(&st->msgs_out);
            slow += stat_get(&st->slow_consumers);
        }
        log_info("stopped: %llu connections served, %llu msgs in, %llu msgs out, "
                 "%llu slow consumers",
                 (unsigned long long)conns, (unsigned long long)in, (unsigned long long)out,
                 (unsigned long long)slow);
    }
    dur_stop(srv);
    route_server_fini(srv);
    if (srv->cfg.port_file[0])
        unlink(srv->cfg.port_file);
    xshard_server_fini(srv);
    free(srv->shards);
    free(srv);
    return exit_code;
}
