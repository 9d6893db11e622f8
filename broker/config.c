/*
 * config.c - see config.h. Runs on the main thread before any shard starts.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* See config.h. */
void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    config_parse_hostport(CONFIG_DEFAULT_LISTEN, c->listen_host, sizeof(c->listen_host),
                          &c->listen_port);
    c->shards = 0;
    c->max_payload = 1024 * 1024;
    c->max_pending = 64ull * 1024 * 1024;
    c->slow_grace_ms = 1000;
    c->zerocopy_min = 16384;
    c->max_conns = 100000;
    c->max_subs = 100000;
    c->shutdown_ms = 2000;
    c->handshake_ms = 5000;
    c->bufs = 1024;
    c->buf_size = 16384;
    c->log_level = LOG_INFO;
    c->storage = true;
    strcpy(c->data_dir, "./data");
    c->fsync_mode = 0; /* always */
    c->fsync_interval_ms = 100;
    c->store_map_size = 256ull << 20;
    c->store_max = 16ull << 30;
    strcpy(c->cluster_name, "ringmq");
}

static bool name_chars_ok(const char *v)
{
    if (!*v)
        return false;
    for (; *v; v++)
        if ((unsigned char)*v <= ' ' || *v == 0x7f || *v == '"' || *v == '\\')
            return false;
    return true;
}

/* "HOST:PORT[,HOST:PORT...]", each parseable, at most CONFIG_MAX_ROUTES. */
static int set_routes(struct config *c, const char *val)
{
    char buf[sizeof(c->routes)], *save = NULL, host[256];
    unsigned n = 0;
    uint16_t port;
    if (strlen(val) >= sizeof(buf))
        return -1;
    strcpy(buf, val);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (config_parse_hostport(t, host, sizeof(host), &port) || port == 0 ||
            ++n > CONFIG_MAX_ROUTES)
            return -1;
    strcpy(c->routes, val);
    return 0;
}

/* "always", "never" or "interval=MS" (MS 1..60000). */
static int set_fsync(struct config *c, const char *val)
{
    char *end;
    unsigned long ms;
    if (strcmp(val, "always") == 0) {
        c->fsync_mode = 0;
        return 0;
    }
    if (strcmp(val, "never") == 0) {
        c->fsync_mode = 2;
        return 0;
    }
    if (strncmp(val, "interval=", 9) != 0)
        return -1;
    errno = 0;
    ms = strtoul(val + 9, &end, 10);
    if (errno || *end || end == val + 9 || ms < 1 || ms > 60000)
        return -1;
    c->fsync_mode = 1;
    c->fsync_interval_ms = (unsigned)ms;
    return 0;
}

/* See config.h. */
int config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    size_t hl;
    char *end;
    unsigned long p;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p > 65535)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* See config.h. */
int config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'G':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int set_u32(uint32_t *dst, const char *val, uint64_t lo, uint64_t hi)
{
    uint64_t v;
    if (config_parse_size(val, &v) || v < lo || v > hi)
        return -1;
    *dst = (uint32_t)v;
    return 0;
}

/* See config.h. */
int config_set(struct config *c, const char *key, const char *val, char *err, size_t errlen)
{
    uint64_t v;
    int rc = 0;

    if (strcmp(key, "listen") == 0) {
        rc = config_parse_hostport(val, c->listen_host, sizeof(c->listen_host), &c->listen_port);
    } else if (strcmp(key, "shards") == 0) {
        rc = set_u32(&c->shards, val, 0, XSHARD_MAX);
    } else if (strcmp(key, "max-payload") == 0) {
        rc = set_u32(&c->max_payload, val, 1, 64u << 20);
    } else if (strcmp(key, "max-pending") == 0) {
        rc = config_parse_size(val, &v) || v < 4096;
        if (!rc)
            c->max_pending = v;
    } else if (strcmp(key, "zerocopy-min") == 0) {
        rc = set_u32(&c->zerocopy_min, val, 0, 1u << 30);
    } else if (strcmp(key, "slow-grace-ms") == 0) {
        rc = set_u32(&c->slow_grace_ms, val, 0, 600000);
    } else if (strcmp(key, "max-conns") == 0) {
        rc = set_u32(&c->max_conns, val, 1, 10000000);
    } else if (strcmp(key, "max-subs") == 0) {
        rc = set_u32(&c->max_subs, val, 1, 100000000);
    } else if (strcmp(key, "shutdown-timeout-ms") == 0) {
        rc = set_u32(&c->shutdown_ms, val, 0, 600000);
    } else if (strcmp(key, "handshake-timeout-ms") == 0) {
        rc = set_u32(&c->handshake_ms, val, 10, 600000);
    } else if (strcmp(key, "bufs") == 0) {
        rc = set_u32(&c->bufs, val, 16, 32768) || (c->bufs & (c->bufs - 1)) != 0;
    } else if (strcmp(key, "buf-size") == 0) {
        rc = set_u32(&c->buf_size, val, 1024, 1 << 20);
    } else if (strcmp(key, "log-level") == 0) {
        c->log_level = log_level_parse(val);
        rc = c->log_level < 0;
    } else if (strcmp(key, "auth-token") == 0) {
        rc = strlen(val) >= sizeof(c->auth_token);
        if (!rc)
            strcpy(c->auth_token, val);
    } else if (strcmp(key, "data-dir") == 0) {
        rc = !*val || strlen(val) >= sizeof(c->data_dir);
        if (!rc)
            strcpy(c->data_dir, val);
    } else if (strcmp(key, "storage") == 0) {
        rc = strcmp(val, "on") && strcmp(val, "off");
        c->storage = strcmp(val, "off") != 0;
    } else if (strcmp(key, "fsync") == 0) {
        rc = set_fsync(c, val);
    } else if (strcmp(key, "store-map-size") == 0) {
        rc = config_parse_size(val, &v) || v < (1u << 20);
        if (!rc)
            c->store_map_size = v;
    } else if (strcmp(key, "store-max") == 0) {
        rc = config_parse_size(val, &v) || v < (1u << 20);
        if (!rc)
            c->store_max = v;
    } else if (strcmp(key, "node-name") == 0) {
        rc = strlen(val) >= sizeof(c->node_name) || !name_chars_ok(val);
        if (!rc)
            strcpy(c->node_name, val);
    } else if (strcmp(key, "cluster-name") == 0) {
        rc = strlen(val) >= sizeof(c->cluster_name) || !name_chars_ok(val);
        if (!rc)
            strcpy(c->cluster_name, val);
    } else if (strcmp(key, "cluster-secret") == 0) {
        rc = strlen(val) >= sizeof(c->cluster_secret);
        if (!rc)
            strcpy(c->cluster_secret, val);
    } else if (strcmp(key, "cluster-listen") == 0) {
        rc = config_parse_hostport(val, c->cluster_host, sizeof(c->cluster_host), &c->cluster_port);
    } else if (strcmp(key, "routes") == 0) {
        rc = set_routes(c, val);
    } else if (strcmp(key, "port-file") == 0) {
        rc = strlen(val) >= sizeof(c->port_file);
        if (!rc)
            strcpy(c->port_file, val);
    } else {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    if (rc) {
        snprintf(err, errlen, "bad value '%s' for %s", val, key);
        return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* See config.h. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    char line[1024], sub[512];
    unsigned lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#'), *eq, *k;
        lineno++;
        if (hash)
            *hash = '\0';
        k = trim(line);
        if (!*k)
            continue;
        eq = strchr(k, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        if (config_set(c, trim(k), trim(eq + 1), sub, sizeof(sub))) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, sub);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ringmqd [options]\n"
                 "  --listen HOST:PORT        client address (default " CONFIG_DEFAULT_LISTEN ")\n"
                 "  --shards N                shard threads (default: online CPUs)\n"
                 "  --max-payload BYTES       largest payload accepted (default 1M)\n"
                 "  --max-pending BYTES       queued bytes per connection before it is\n"
                 "                            disconnected as a slow consumer (default 64M)\n"
                 "  --slow-grace-ms MS        how long a connection may stay over max-pending\n"
                 "                            before it is a slow consumer (1000; it is cut at\n"
                 "                            once over 8 x max-pending, at least 64M)\n"
                 "  --zerocopy-min BYTES      send bodies of at least BYTES with SENDMSG_ZC\n"
                 "                            (16K; 0 never; a connection whose zero-copy sends\n"
                 "                            the kernel copies, e.g. loopback, stops using it)\n"
                 "  --max-conns N             client connections (default 100000)\n"
                 "  --max-subs N              subscriptions per connection (default 100000)\n"
                 "  --auth-token TOKEN        require this token in CONNECT\n"
                 "  --log-level LEVEL         error, warn, info (default) or debug\n"
                 "  --shutdown-timeout-ms MS  bound on flushing queued data at exit (2000)\n"
                 "  --handshake-timeout-ms MS CONNECT must arrive within MS (5000)\n"
                 "  --bufs N, --buf-size BYTES provided receive buffers per shard (1024 x 16K)\n"
                 "  --data-dir DIR            durable topics' store (default ./data)\n"
                 "  --storage on|off          off: no store, topic calls get UNAVAILABLE (on)\n"
                 "  --fsync always|interval=MS|never\n"
                 "                            when commits reach the disk (always; see\n"
                 "                            proto/PROTOCOL.md for what each can lose)\n"
                 "  --store-map-size BYTES    initial LMDB map (256M; it doubles as needed)\n"
                 "  --store-max BYTES         largest the store may grow to (16G)\n"
                 "  --cluster-listen HOST:PORT  join a cluster: accept routes from other nodes\n"
                 "  --routes HOST:PORT[,...]  seed nodes to dial (they tell us the others)\n"
                 "  --node-name NAME          this node's name, unique in the cluster\n"
                 "  --cluster-name NAME       routes only within this cluster (ringmq)\n"
                 "  --cluster-secret S        routes must present this secret\n"
                 "  --port-file PATH          write the bound port to PATH once listening\n"
                 "  --config FILE             read 'key = value' settings (same keys)\n"
                 "  --print-config            print the effective configuration and exit\n"
                 "  --version, --help\n"
                 "Sizes take K, M or G suffixes. Later settings override earlier ones.\n");
}

/* See config.h. */
int config_parse_args(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    bool print = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val;
        char key[64];
        const char *eq;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("ringmqd " RMQ_VERSION "\n");
            return 1;
        }
        if (strcmp(a, "--print-config") == 0) {
            print = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        eq = strchr(a, '=');
        if (eq) {
            if ((size_t)(eq - a - 2) >= sizeof(key))
                goto bad;
            memcpy(key, a + 2, (size_t)(eq - a - 2));
            key[eq - a - 2] = '\0';
            val = eq + 1;
        } else {
            if (strlen(a + 2) >= sizeof(key))
                goto bad;
            strcpy(key, a + 2);
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option %s needs a value", a);
                return -1;
            }
            val = argv[++i];
        }
        if (strcmp(key, "config") == 0) {
            if (config_load_file(c, val, err, errlen))
                return -1;
            continue;
        }
        if (config_set(c, key, val, err, errlen))
            return -1;
        continue;
    bad:
        snprintf(err, errlen, "unknown option '%s' (see --help)", a);
        return -1;
    }
    if (print) {
        config_print(c, stdout);
        return 1;
    }
    return 0;
}

/* See config.h. */
void config_print(const struct config *c, FILE *out)
{
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    bool v6 = strchr(c->listen_host, ':') != NULL;
    fprintf(out, "listen = %s%s%s:%u\n", v6 ? "[" : "", c->listen_host, v6 ? "]" : "",
            c->listen_port);
    fprintf(out, "shards = %u\n", c->shards);
    fprintf(out, "max-payload = %u\n", c->max_payload);
    fprintf(out, "max-pending = %llu\n", (unsigned long long)c->max_pending);
    fprintf(out, "slow-grace-ms = %u\n", c->slow_grace_ms);
    fprintf(out, "zerocopy-min = %u\n", c->zerocopy_min);
    fprintf(out, "max-conns = %u\n", c->max_conns);
    fprintf(out, "max-subs = %u\n", c->max_subs);
    fprintf(out, "shutdown-timeout-ms = %u\n", c->shutdown_ms);
    fprintf(out, "handshake-timeout-ms = %u\n", c->handshake_ms);
    fprintf(out, "bufs = %u\n", c->bufs);
    fprintf(out, "buf-size = %u\n", c->buf_size);
    fprintf(out, "log-level = %s\n", lv[c->log_level]);
    if (c->auth_token[0])
        fprintf(out, "auth-token = (set)\n");
    if (c->port_file[0])
        fprintf(out, "port-file = %s\n", c->port_file);
    fprintf(out, "storage = %s\n", c->storage ? "on" : "off");
    fprintf(out, "data-dir = %s\n", c->data_dir);
    if (c->fsync_mode == 1)
        fprintf(out, "fsync = interval=%u\n", c->fsync_interval_ms);
    else
        fprintf(out, "fsync = %s\n", c->fsync_mode == 0 ? "always" : "never");
    fprintf(out, "store-map-size = %llu\n", (unsigned long long)c->store_map_size);
    fprintf(out, "store-max = %llu\n", (unsigned long long)c->store_max);
    if (c->cluster_host[0]) {
        bool cv6 = strchr(c->cluster_host, ':') != NULL;
        fprintf(out, "cluster-listen = %s%s%s:%u\n", cv6 ? "[" : "", c->cluster_host,
                cv6 ? "]" : "", c->cluster_port);
        fprintf(out, "cluster-name = %s\n", c->cluster_name);
        if (c->node_name[0])
            fprintf(out, "node-name = %s\n", c->node_name);
        if (c->routes[0])
            fprintf(out, "routes = %s\n", c->routes);
        if (c->cluster_secret[0])
            fprintf(out, "cluster-secret = (set)\n");
    }
}
