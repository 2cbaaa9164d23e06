/* Growable byte buffers that wipe what they held, and the string copies and secret frees every
 * other file uses: written once here. The owner calls cb_buffer_free (or _wipe for secrets). */
#ifndef CODEARTSBUILD_BUFFER_H
#define CODEARTSBUILD_BUFFER_H

#include <stddef.h>

typedef struct {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	int failed; /* an allocation failed: the content is incomplete */
} cb_buffer;

#define CB_BUFFER_INIT {NULL, 0, 0, 0}

int cb_buffer_reserve(cb_buffer *b, size_t extra);
/* Room for exactly extra more bytes (and the NUL): for a size known in advance, so that a wipe
 * cleanses no slack. */
int cb_buffer_reserve_exact(cb_buffer *b, size_t extra);
int cb_buffer_append(cb_buffer *b, const char *data, size_t n);
int cb_buffer_append_str(cb_buffer *b, const char *s);
int cb_buffer_append_char(cb_buffer *b, char c);
void cb_buffer_clear(cb_buffer *b);
void cb_buffer_free(cb_buffer *b);
void cb_buffer_wipe(cb_buffer *b); /* cleanse, then free */

/* Appends the lower-case hex form of n bytes. */
int cb_buffer_append_hex(cb_buffer *b, const unsigned char *bytes, size_t n);

/* Appends s percent-encoded: only A-Za-z0-9-_.~ stay as they are, the rest become %XX. */
int cb_buffer_append_uri_encoded(cb_buffer *b, const char *s, size_t n);

/* A NUL-terminated copy of s (of its first n bytes), or NULL (s NULL, or out of memory). */
char *cb_strdup(const char *s);
char *cb_strndup(const char *s, size_t n);

/* Cleanses the string *s holds, frees it and sets *s to NULL; nothing when *s is NULL. */
void cb_free_secret(char **s);

#endif
