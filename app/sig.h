/* sig.h -- how a process handles its signals: flags set, waits let them in */

#ifndef REQSTATS_SIG_H
#define REQSTATS_SIG_H

#include <signal.h>

/* Install handler for every signal in `handled` and block them; ignore
 * every signal in `ignored`. Both lists end with 0. handler may only set a
 * volatile sig_atomic_t flag. *waitmask gets the mask the process must wait
 * under (ppoll, epoll_pwait) so the handled signals arrive there and only
 * there: the mask in force before the call, minus the handled signals.
 * Returns 0, or -1 with errno set. */
int sig_setup(void (*handler)(int), const int *handled, const int *ignored, sigset_t *waitmask);

/* In a freshly forked child: every signal in `sigs` (ending with 0) back to
 * its default action, and no signal blocked. Returns 0, or -1 with errno
 * set. */
int sig_reset(const int *sigs);

#endif
