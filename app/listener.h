/* listener.h -- the FastCGI listen socket nginx connects to */

#ifndef REQSTATS_LISTENER_H
#define REQSTATS_LISTENER_H

#include <stddef.h>

#include "config.h"

/* Open the socket named by FCGI_LISTEN: a unix socket (a stale socket file
 * left by a dead process is replaced, a live one is an error) or TCP
 * host:port with SO_REUSEADDR. The socket is non-blocking (workers poll it
 * and several race for each connection) and close-on-exec. Returns the fd,
 * or -1 with a description in err. */
int listener_open(const struct config *cfg, char *err, size_t errlen);

/* Open a connection to the listen socket with a timeout, then close it:
 * the --health probe. Returns 0 if it connected, -1 with err filled. */
int listener_probe(const struct config *cfg, int timeout_ms, char *err, size_t errlen);

/* Remove a unix socket file at shutdown; no-op for TCP. */
void listener_unlink(const struct config *cfg);

#endif
