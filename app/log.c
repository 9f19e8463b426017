/* log.c -- one line per event on stderr: time pid role level message
 *
 * Logs go to stderr, which the master, its children, `make run` and the
 * container runtime all share. Each line is formatted into a stack buffer
 * and written with one write(2), so concurrent processes never interleave
 * and a log call never allocates. The process identity (role, level) is the
 * only process-wide state in the program besides signal flags: it is set
 * once per process by log_init() and read by every log call.
 */

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *role;
    enum log_level level;
} self = {"reqstats", LOG_INFO};

static const char *const names[] = {"debug", "info", "warn", "error"};

void log_init(const char *role, enum log_level level)
{
    self.role = role;
    self.level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t head, len;
    int n, saved = errno;
    va_list ap;

    if (level < self.level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %ld %s %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, (long)getpid(), self.role, names[level]);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        errno = saved;
        return;
    }
    head = (size_t)n;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started just above */
    n = vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    len = head + ((size_t)n < sizeof(line) - head - 1 ? (size_t)n : sizeof(line) - head - 2);
    for (size_t i = head; i < len; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = '?';
        }
    }
    line[len++] = '\n';
    /* Best effort: there is nowhere to report a failed log write. */
    if (write(STDERR_FILENO, line, len) < 0) {
        errno = saved;
    }
    errno = saved;
}
