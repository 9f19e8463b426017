/* log.h -- one line per event on stderr: time pid role level message */

#ifndef REQSTATS_LOG_H
#define REQSTATS_LOG_H

#include "config.h"

/* Set the role this process logs under ("master", "worker", "runner",
 * "health") and the lowest level written. Called once per process, right
 * after fork, before anything is logged. role must be a string literal. */
void log_init(const char *role, enum log_level level);

/* Write one line: "2026-11-28T12:00:00.123Z 4242 worker info message".
 * The line is written with a single write(2) so lines of concurrent
 * processes never interleave; it is truncated at 1 KiB and control bytes in
 * the message are replaced by '?'. Safe to call before log_init(). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
