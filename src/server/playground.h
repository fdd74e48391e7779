/* playground.h — the web playground (web/playground.html: one HTML file with its CSS and
 * JavaScript inline), embedded in the binary at build time by src/server/playground.S. The
 * server answers GET / with it. */
#ifndef SMDLM_SERVER_PLAYGROUND_H
#define SMDLM_SERVER_PLAYGROUND_H

#include <stddef.h>

extern const unsigned char playground_html[]; /* the file's bytes, then a NUL */
extern const size_t playground_html_len;      /* without the NUL */

#endif
