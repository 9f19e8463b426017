/* clock.h -- monotonic and wall-clock time in milliseconds, ISO 8601 */

#ifndef REQSTATS_CLOCK_H
#define REQSTATS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: for timeouts, deadlines and backoff. */
int64_t clock_mono_ms(void);

/* Microseconds on CLOCK_MONOTONIC: for latencies (GET /metrics). */
int64_t clock_mono_us(void);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME: for records. */
int64_t clock_wall_ms(void);

/* Format epoch milliseconds as "2026-11-28T12:00:00.123Z" into buf, which
 * must hold CLOCK_ISO_LEN bytes. Returns buf. */
#define CLOCK_ISO_LEN 32
char *clock_iso8601(int64_t epoch_ms, char *buf, size_t len);

#endif
