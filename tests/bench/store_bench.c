/*
 * store_bench.c - append throughput and space of storage/ (store.h), not
 * a test: built on request (`cmake --build BUILD --target store_bench`).
 *
 *   store_bench [--msgs N] [--batch B] [--dir DIR] [--size BYTES] [--mode always|never]
 *
 * For each message size (128 B and 4 KiB unless --size) and fsync mode
 * (ALWAYS and NEVER unless --mode), in a fresh data dir under DIR (default
 * /var/tmp): one topic, store_append_batch() with batches of B entries
 * (256) until N messages (ALWAYS: 100k for 128 B, 40k for 4 KiB; NEVER:
 * 1M / 200k) are stored. Prints per row:
 *
 *   msgs/s     appends per second (wall clock, batches only)
 *   MB/s       payload bytes per second
 *   wr B/msg   bytes the process wrote (/proc/self/io wchar) per message:
 *              the write amplification LMDB causes, in every fsync mode
 *   used B/msg store_env_info().used_bytes (pages in use) per message
 *   file B/msg st_size of data.mdb per message, after store_close()
 *
 * One thread; the store is the only writer in the process.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* wchar of /proc/self/io: bytes passed to write(2)/pwrite(2) and friends. */
static uint64_t wchar(void)
{
    char line[128];
    uint64_t v = 0;
    FILE *f = fopen("/proc/self/io", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "wchar: %" SCNu64, &v) == 1)
            break;
    }
    fclose(f);
    return v;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int run(const char *base, size_t size, enum store_fsync mode, size_t msgs, size_t batch)
{
    char dir[512], path[600], err[STORE_ERR_LEN];
    struct store_opts o = {.fsync = mode, .map_size = 64u << 20};
    struct store_topic_cfg cfg;
    struct store_env_info ei;
    struct store_append *a;
    struct store *s;
    struct stat st;
    uint8_t *buf;
    uint64_t w0, w1, ts = 1;
    double t0, t1;
    size_t done = 0, i, k;
    uint32_t id;
    int rc;

    snprintf(dir, sizeof(dir), "%s/store_bench.XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/db", dir);
    o.dir = path;
    rc = store_open(&o, &s, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "store_open: %d %s\n", rc, err);
        return 1;
    }
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "bench");
    cfg.npatterns = 1;
    snprintf(cfg.patterns[0], sizeof(cfg.patterns[0]), "bench.>");
    rc = store_topic_add(s, &cfg, &id);
    a = calloc(batch, sizeof(*a));
    buf = malloc(batch * size);
    if (rc != 0 || a == NULL || buf == NULL) {
        fprintf(stderr, "setup: %d\n", rc);
        return 1;
    }
    for (i = 0; i < batch * size; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    w0 = wchar();
    t0 = now_s();
    while (done < msgs) {
        k = msgs - done < batch ? msgs - done : batch;
        for (i = 0; i < k; i++)
            a[i] = (struct store_append){
                .topic = id, .ts_ns = ts++, .data = buf + i * size, .len = size};
        rc = store_append_batch(s, a, k);
        if (rc != 0) {
            fprintf(stderr, "store_append_batch: %d\n", rc);
            return 1;
        }
        done += k;
    }
    t1 = now_s();
    w1 = wchar();
    store_env_info(s, &ei);
    store_close(s);
    snprintf(path, sizeof(path), "%s/db/data.mdb", dir);
    if (stat(path, &st) != 0)
        st.st_size = 0;
    printf("| %5zu B | %-6s | %5zu | %8zu | %10.0f | %7.1f | %8.1f | %8.1f | %8.1f |\n", size,
           mode == STORE_FSYNC_ALWAYS ? "ALWAYS" : "NEVER", batch, msgs, (double)msgs / (t1 - t0),
           (double)msgs * (double)size / (t1 - t0) / 1e6, (double)(w1 - w0) / (double)msgs,
           (double)ei.used_bytes / (double)msgs, (double)st.st_size / (double)msgs);
    fflush(stdout);
    free(a);
    free(buf);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {128, 4096};
    static const enum store_fsync modes[] = {STORE_FSYNC_ALWAYS, STORE_FSYNC_NEVER};
    const char *base = "/var/tmp";
    size_t msgs = 0, batch = 256, size = 0, i, j, n;
    int mode = -1, rc = 0;

    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--msgs") == 0 && i + 1 < (size_t)argc)
            msgs = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < (size_t)argc)
            batch = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < (size_t)argc)
            size = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < (size_t)argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < (size_t)argc)
            mode = strcmp(argv[++i], "always") == 0 ? STORE_FSYNC_ALWAYS : STORE_FSYNC_NEVER;
        else {
            fprintf(stderr,
                    "usage: %s [--msgs N] [--batch B] [--size BYTES] [--mode always|never] "
                    "[--dir DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (batch == 0)
        batch = 256;
    printf(
        "| size | fsync | batch | msgs | msgs/s | MB/s | wr B/msg | used B/msg | file B/msg |\n");
    printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (i = 0; i < 2; i++) {
        if (size != 0 && i > 0)
            break;
        for (j = 0; j < 2 && rc == 0; j++) {
            size_t sz = size != 0 ? size : sizes[i];
            if (mode >= 0 && modes[j] != (enum store_fsync)mode)
                continue;
            n = msgs != 0                       ? msgs
                : modes[j] == STORE_FSYNC_NEVER ? (sz <= 1024 ? 1000000 : 200000)
                                                : (sz <= 1024 ? 100000 : 40000);
            rc = run(base, sz, modes[j], n, batch);
        }
    }
    return rc;
}
