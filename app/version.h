/* version.h -- the reqstats version, written here and nowhere else
 *
 * `reqstats --version` prints it; the Makefile reads it from this line to
 * name the source archive (`make dist`: dist/reqstats-<version>.zip), so
 * the line keeps this exact form: #define REQSTATS_VERSION "x.y.z".
 */

#ifndef REQSTATS_VERSION_H
#define REQSTATS_VERSION_H

#define REQSTATS_VERSION "1.0.0"

#endif
