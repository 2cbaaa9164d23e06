/* A client's settings, all of them in one struct: explicit options first, then the environment and
 * the credentials file; the defaults in one place (cb_config_init). No Lua here. */
#ifndef CODEARTSBUILD_CONFIG_H
#define CODEARTSBUILD_CONFIG_H

#include <stddef.h>

#define CB_DEFAULT_TIMEOUT_MS 30000L
#define CB_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define CB_DEFAULT_MAX_BODY ((size_t)4 << 20)
#define CB_DEFAULT_CONCURRENCY 64
#define CB_DEFAULT_RETRIES 3
#define CB_DEFAULT_BACKOFF_MS 200L
#define CB_DEFAULT_MAX_BACKOFF_MS 20000L

/* Which record-info API a client asks. */
enum { CB_API_AUTO = -1, CB_API_V3 = 0, CB_API_V4, CB_API_V1 };

typedef struct {
	/* Where requests go: endpoint is scheme://authority (no trailing slash), host the authority. */
	char *endpoint, *host, *region;
	/* A token, or an AK/SK pair (with a security token for temporary credentials), or an IAM
	 * user whose password buys tokens (the token is then the client's current one). */
	char *token, *ak, *sk, *security_token, *project_id;
	char *iam_user, *iam_password, *iam_domain, *iam_project;
	char *iam_endpoint, *iam_host; /* like endpoint and host, for the IAM service */
	char *profile;                 /* the credentials file's section to read ("basic" when NULL) */
	char *file_iam_endpoint;       /* the credentials file's iam_endpoint, until resolved */
	const char *credential_source; /* names where the credentials came from, never their value */
	/* Transport. */
	char *ca_file, *user_agent;
	int insecure, allow_http;
	long timeout_ms, connect_timeout_ms;
	size_t max_body;
	/* The engine. */
	int api_mode; /* CB_API_AUTO, or the one API to use */
	int concurrency, retries;
	double rate;
	long backoff_ms, max_backoff_ms;
} cb_config;

/* Sets the defaults; every string NULL. Fill in the explicit options, then resolve. */
void cb_config_init(cb_config *cfg);

/* Completes cfg from the environment (CODEARTSBUILD_*, HUAWEICLOUD_SDK_*, CLOUD_SDK_*, the
 * credentials file) and checks it. Returns 0, or -1 with a message (no secret in it). */
int cb_config_resolve(cb_config *cfg, char *msg, size_t msglen);

/* Frees every string, wiping the secret ones first. */
void cb_config_free(cb_config *cfg);

/* The regions with a known endpoint, NULL-terminated. */
extern const char *const cb_known_regions[];

/* The environment variables cb_config_resolve reads, in the order it reads them, each with what
 * it gives; ends with {NULL, NULL}. */
typedef struct {
	const char *name, *what;
} cb_environment_variable;
extern const cb_environment_variable cb_environment[];

#endif
