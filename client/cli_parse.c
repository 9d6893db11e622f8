/*
 * cli_parse.c - value syntax of the ringmq CLI's durable-topic options:
 * durations, points in time, replay start positions and names. Pure
 * functions with no I/O, tested on their own (tests/client/check_cli_parse.c).
 *
 *   DURATION   N followed by ms, s, m, h or d: 500ms 30s 5m 2h 7d; a bare 0
 *   TIME       Unix seconds (1714564800 or 1714564800.25), or ISO-8601:
 *              2024-05-01, 2024-05-01T12:00, 2024-05-01T12:00:00.123Z,
 *              2024-05-01 12:00:00+02:00 (no zone: UTC)
 *   START      new | all | last | seq=N | time=TIME
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench_harness.h"
#include "cli.h"

static const struct {
    const char *unit;
    uint64_t ms;
} duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

#define NUNITS (sizeof(duration_units) / sizeof(duration_units[0]))

/* Parse the leading decimal digits of s (at most 20) into *v; returns how
 * many there were, 0 if none or on overflow. */
static size_t leading_u64(const char *s, uint64_t *v)
{
    char num[24];
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (n == 0 || n >= sizeof(num))
        return 0;
    memcpy(num, s, n);
    num[n] = '\0';
    return bench_parse_u64(num, v) ? n : 0;
}

/* See cli.h. */
bool cli_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t v;
    size_t n;

    if (s == NULL || (n = leading_u64(s, &v)) == 0)
        return false;
    if (s[n] == '\0') {
        if (v != 0)
            return false; /* a bare number is ambiguous, except 0 */
        *ms = 0;
        return true;
    }
    for (size_t i = 0; i < NUNITS; i++) {
        if (strcmp(s + n, duration_units[i].unit) == 0) {
            if (v > UINT64_MAX / duration_units[i].ms)
                return false;
            *ms = v * duration_units[i].ms;
            return true;
        }
    }
    return false;
}

/* See cli.h. */
void cli_format_duration(uint64_t ms, char *out, size_t cap)
{
    for (size_t i = 0; i < NUNITS; i++) {
        if (ms != 0 && ms % duration_units[i].ms == 0) {
            snprintf(out, cap, "%llu%s", (unsigned long long)(ms / duration_units[i].ms),
                     duration_units[i].unit);
            return;
        }
    }
    snprintf(out, cap, "0");
}

/* Exactly n digits at *p into *v; advances *p. */
static bool digits(const char **p, int n, int *v)
{
    int r = 0;

    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return false;
        r = r * 10 + (ch - '0');
    }
    *p += n;
    *v = r;
    return true;
}

/* ".ddd" (1 to 9 digits) at *p into ns; nothing there is 0. */
static bool fraction(const char **p, uint64_t *ns)
{
    uint64_t scale = 100000000;
    int n = 0;

    *ns = 0;
    if (**p != '.')
        return true;
    for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (n == 9)
            return false;
        *ns += (uint64_t)(**p - '0') * scale;
        scale /= 10;
    }
    return n > 0;
}

/* "Z", "+HH:MM", "-HH:MM" or nothing (UTC) into seconds east of UTC. */
static bool zone(const char *p, long *off)
{
    int hh, mm;

    *off = 0;
    if (*p == '\0' || (p[0] == 'Z' && p[1] == '\0'))
        return true;
    if (*p != '+' && *p != '-')
        return false;
    const char *q = p + 1;
    if (!digits(&q, 2, &hh) || *q++ != ':' || !digits(&q, 2, &mm) || *q != '\0' || hh > 23 ||
        mm > 59)
        return false;
    *off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
    return true;
}

/* ISO-8601 "YYYY-MM-DD[(T| )HH:MM[:SS][.f]][zone]" into ns since the epoch. */
static bool parse_iso(const char *p, uint64_t *ns)
{
    struct tm tm = {0}, chk;
    uint64_t frac = 0;
    long off = 0;
    time_t t;

    if (!digits(&p, 4, &tm.tm_year) || *p++ != '-' || !digits(&p, 2, &tm.tm_mon) || *p++ != '-' ||
        !digits(&p, 2, &tm.tm_mday))
        return false;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &tm.tm_hour) || *p++ != ':' || !digits(&p, 2, &tm.tm_min))
            return false;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &tm.tm_sec))
                return false;
        }
        if (!fraction(&p, &frac))
            return false;
    }
    if (!zone(p, &off) || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    chk = tm;
    t = timegm(&tm);
    /* timegm normalises 2024-02-30 to March: reject what moved */
    if (tm.tm_mday != chk.tm_mday || tm.tm_mon != chk.tm_mon || tm.tm_year != chk.tm_year)
        return false;
    t -= off;
    if (t < 0)
        return false;
    *ns = (uint64_t)t * 1000000000u + frac;
    return true;
}

/* See cli.h. */
bool cli_parse_time(const char *s, uint64_t *ns)
{
    uint64_t secs, frac;
    const char *p;
    size_t n;

    if (s == NULL || *s == '\0')
        return false;
    n = leading_u64(s, &secs);
    if (n > 0 && (s[n] == '\0' || s[n] == '.')) {
        p = s + n;
        if (!fraction(&p, &frac) || *p != '\0' || secs > UINT64_MAX / 1000000000u - 1)
            return false;
        *ns = secs * 1000000000u + frac;
        return true;
    }
    return parse_iso(s, ns);
}

/* See cli.h. */
void cli_format_time(uint64_t ns, char *out, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % 1000000000u / 1000000u));
}

/* See cli.h. */
bool cli_parse_start(const char *s, rmq_replay_opts *o)
{
    memset(o, 0, sizeof(*o));
    if (s == NULL)
        return false;
    if (strcmp(s, "new") == 0) {
        o->start = RMQ_START_NEW;
    } else if (strcmp(s, "all") == 0) {
        o->start = RMQ_START_ALL;
    } else if (strcmp(s, "last") == 0) {
        o->start = RMQ_START_LAST;
    } else if (strncmp(s, "seq=", 4) == 0) {
        o->start = RMQ_START_SEQ;
        return bench_parse_u64(s + 4, &o->seq);
    } else if (strncmp(s, "time=", 5) == 0) {
        o->start = RMQ_START_TIME;
        return cli_parse_time(s + 5, &o->time_ns);
    } else {
        return false;
    }
    return true;
}

/* See cli.h. */
bool cli_name_ok(const char *s)
{
    size_t n = 0;

    for (; s && s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return n >= 1 && n <= RMQ_NAME_MAX;
}
