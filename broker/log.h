/*
 * log.h - leveled logging to stderr for ringmqd.
 *
 * One line per call: "2026-12-01T17:40:00.123Z INFO [s0] text". Safe from any
 * thread (stdio locks the stream per call). Not for the per-message path.
 */
#ifndef RMQ_BROKER_LOG_H
#define RMQ_BROKER_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the level below which messages are dropped. Call before threads start. */
void log_set_level(enum log_level lvl);
/* Parse "error", "warn", "info" or "debug"; returns -1 when unknown. */
int log_level_parse(const char *s);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_DEBUG)                                                          \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
