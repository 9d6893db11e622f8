/*
 * log.c - see log.h. The level is written once at start-up, before any
 * shard thread exists, and only read afterwards.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level log_level_cur = LOG_INFO;

/* See log.h. */
void log_set_level(enum log_level lvl)
{
    log_level_cur = lvl;
}

/* See log.h. */
enum log_level log_get_level(void)
{
    return log_level_cur;
}

/* See log.h. */
int log_level_parse(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* See log.h. */
void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[1024], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (lvl > log_level_cur)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s\n", ts, now.tv_nsec / 1000000, tags[lvl], line);
}
