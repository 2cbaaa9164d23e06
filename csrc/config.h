/* Client configuration: explicit options first, then the environment (no Lua here). */
#ifndef CODEARTSBUILD_CONFIG_H
#define CODEARTSBUILD_CONFIG_H

#include <stddef.h>

#define CB_DEFAULT_TIMEOUT_MS 30000L
#define CB_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define CB_DEFAULT_MAX_BODY ((size_t)4 << 20)

typedef struct {
	/* Where requests go: endpoint is scheme://authority (no trailing slash), host the authority. */
	char *endpoint, *host, *region;
	/* A token, or an AK/SK pair (with a security token for temporary credentials), or an IAM
	 * user whose password buys tokens (the token is then the client's current one). */
	char *token, *ak, *sk, *security_token, *project_id;
	char *iam_user, *iam_password, *iam_domain, *iam_project;
	char *iam_endpoint, *iam_host; /* like endpoint and host, for the IAM service */
	const char *credential_source; /* names where the credentials came from, never their value */
	/* Transport. */
	char *ca_file, *user_agent;
	int insecure, allow_http;
	long timeout_ms, connect_timeout_ms;
	size_t max_body;
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

#endif
