/* Response envelopes and record normalisation: what comes back from the service, made into
 * the tables users see (canonical camelCase keys, integers, no JSON nulls). */
#ifndef CODEARTSBUILD_RECORD_H
#define CODEARTSBUILD_RECORD_H

#include <stddef.h>
#include <lua.h>

#define CB_RECORD_FIELDS 33
/* The hash part a record table is made with: Lua rounds it up to a power of two, and records
 * hold about 30 non-null fields, so 32 slots; a record with more grows once. (33 made every
 * record 64 slots: about 0.8 KB of its 2.2 more, and memory is what a walk that keeps its
 * records pays most for, bench/PROFILE.md.) */
#define CB_RECORD_PRESIZE 32

/* The fields of the reference page (record.c), for record.c and reader.c. */
typedef enum { FIELD_STRING, FIELD_INTEGER, FIELD_NUMBER } cb_field_type;

typedef struct {
	const char *camel, *snake;
	cb_field_type type;
	unsigned char camel_len, snake_len;
} cb_field;

extern const cb_field cb_record_fields[CB_RECORD_FIELDS];

/* Pushes the number n as field f's type; returns NULL, or why it cannot be (nothing pushed).
 * Both ways of reading a record convert through here, so that they cannot disagree. */
const char *cb_record_push_number(lua_State *L, lua_Number n, const cb_field *f);
/* The number a whole string spells (strtod's reading), or -1. */
int cb_record_parse_number(const char *s, lua_Number *out);

/* Pushes the record metatable (shared by every record) and the key tables normalisation needs:
 * after the call the stack has, from bottom to top, names (both spellings -> field index),
 * camel keys (field index -> key) and the metatable. */
void cb_record_push_tables(lua_State *L);

/* Turns the decoded `result` object at idx into a record and pushes it. The key tables and the
 * metatable are at names_idx, keys_idx, mt_idx. On a value that cannot be made into a record
 * field, pushes nothing and returns -1 with a message. */
int cb_record_push(lua_State *L, int idx, int names_idx, int keys_idx, int mt_idx, char *msg, size_t msglen);

/* Reads a record-info body straight into a record and pushes it (returns 1) when the body is a
 * well-formed envelope reporting success with a flat `result` object: the common case, without
 * building the decoded tables first. Returns 0 and pushes nothing for anything else; the general
 * path (decoder, cb_envelope_failed, cb_record_push) then handles it and reports any error. The
 * record is the one the general path would make. The camel keys and the metatable are at
 * keys_idx and mt_idx (cb_record_push_tables). */
int cb_record_read(lua_State *L, const char *body, size_t len, int keys_idx, int mt_idx);

/* Tidies a decoded JSON table at idx, recursively: JSON nulls (the decoder's light userdata
 * NULL) are removed, and on Lua 5.3+ integral numbers become integers. */
void cb_tidy_json(lua_State *L, int idx);

int cb_is_json_null(lua_State *L, int idx);

/* Pushes the list of the record's fields, camelCase, in the reference page's order. */
void cb_record_push_fields(lua_State *L);

/* A duration in milliseconds as people read it (52.3s, 4m43s, 1h02m; "-" for none): the one
 * format, of tostring(record) and of core.format_duration. */
void cb_format_duration(double ms, char *out, size_t len);

/* The API's verdict on a decoded 2xx body at idx: 0 when it reports success, 1 when it reports
 * failure (v3 success:false, v1/v4 status:"fail", a non-empty top-level error_code), with the
 * service's code and message copied out. */
int cb_envelope_failed(lua_State *L, int idx, char *code, size_t codelen, char *message, size_t msglen);

/* Reads an error code and message from an error body at idx, in any of the shapes the
 * service and its gateway use. Leaves a field empty when the body has none. */
void cb_error_fields(lua_State *L, int idx, char *code, size_t codelen, char *message, size_t msglen);

#endif
