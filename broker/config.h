/*
 * config.h - ringmqd's settings: embedded defaults, an optional config file
 * of "key = value" lines, then command-line options (later ones win).
 *
 * The keys are the long option names without the dashes, so
 * `--max-payload 65536` and `max-payload = 65536` mean the same.
 */
#ifndef RMQ_BROKER_CONFIG_H
#define RMQ_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:7400"
#define XSHARD_MAX 64 /* shards; xshard.c sizes per-publish scratch by it */

struct config {
    char listen_host[256];
    uint16_t listen_port;
    unsigned shards;        /* 0: online CPUs */
    uint32_t max_payload;   /* bytes */
    uint32_t zerocopy_min;  /* bodies this big go out with SENDMSG_ZC; 0: never */
    uint64_t max_pending;   /* bytes queued per connection before slow consumer */
    unsigned slow_grace_ms; /* how long pending may stay over max_pending */
    uint32_t max_conns;     /* per broker */
    uint32_t max_subs;      /* per connection */
    unsigned shutdown_ms;   /* bound on flushing at shutdown */
    unsigned handshake_ms;  /* CONNECT must arrive within this */
    unsigned bufs;          /* provided buffers per shard (power of two) */
    unsigned buf_size;      /* bytes per provided buffer */
    int log_level;
    char auth_token[256]; /* empty: no auth */
    char port_file[512];  /* write the bound port here once listening */

    /* Durable topics (storage/). */
    bool storage;               /* false: --no-storage, no data dir is opened */
    char data_dir[512];         /* LMDB environment */
    int fsync_mode;             /* enum store_fsync */
    unsigned fsync_interval_ms; /* STORE_FSYNC_INTERVAL */
    uint64_t store_map_size;    /* initial map size */
    uint64_t store_max;         /* map growth cap (largest data.mdb) */

    /* Cluster (route.c); clustering is on when cluster_host is set. */
    char node_name[64];
    char cluster_name[64];
    char cluster_secret[256];
    char cluster_host[256];
    uint16_t cluster_port;
    char routes[2048]; /* comma-separated HOST:PORT seeds */
};

#define CONFIG_MAX_ROUTES 32 /* peers one node keeps (configured + learned) */

/* Fill c with the embedded defaults. */
void config_defaults(struct config *c);

/*
 * Apply one setting by key (long option name without "--"). Returns 0, or -1
 * with a message in err (errlen bytes) for an unknown key or a bad value.
 */
int config_set(struct config *c, const char *key, const char *val, char *err, size_t errlen);

/* Read "key = value" lines ('#' starts a comment). Returns 0 or -1 with err. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/*
 * Parse argv (after the program name is skipped by the caller's argv+1).
 * Handles --config FILE itself. Returns 0, 1 when --help or --version was
 * printed (exit 0), or -1 with err filled (exit 2).
 */
int config_parse_args(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Write the effective configuration in config-file syntax. */
void config_print(const struct config *c, FILE *out);

/* Parse "HOST:PORT" or "[v6]:PORT". Returns 0 or -1. */
int config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Parse a size with optional K/M/G suffix (powers of 1024). Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

#endif
