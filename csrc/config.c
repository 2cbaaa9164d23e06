/* The client's settings (config.h): options, then the environment, then the credentials file. */
#include "config.h"
#include "buffer.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

const char *const cb_known_regions[] = {
	"cn-north-4", "cn-north-1", "cn-east-2", "cn-south-1", "cn-east-3", "cn-south-2",
	"cn-southwest-2", "ap-southeast-3", "sa-brazil-1", "la-north-2", "la-south-2", "tr-west-1",
	NULL,
};

#define CREDENTIALS_LINE_MAX 1024

void cb_config_init(cb_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->timeout_ms = CB_DEFAULT_TIMEOUT_MS;
	cfg->connect_timeout_ms = CB_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->max_body = CB_DEFAULT_MAX_BODY;
	cfg->api_mode = CB_API_AUTO;
	cfg->concurrency = CB_DEFAULT_CONCURRENCY;
	cfg->retries = CB_DEFAULT_RETRIES;
	cfg->backoff_ms = CB_DEFAULT_BACKOFF_MS;
	cfg->max_backoff_ms = CB_DEFAULT_MAX_BACKOFF_MS;
}

const cb_environment_variable cb_environment[] = {
	{"CODEARTSBUILD_ENDPOINT", "the endpoint, https://host[:port] (when neither endpoint nor region is given)"},
	{"CODEARTSBUILD_REGION", "the region (its endpoint, and the project IAM scopes tokens to)"},
	{"HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_<REGION>", "the endpoint of that region, as the official SDKs read it"},
	{"CODEARTSBUILD_TOKEN", "an IAM token, sent as X-Auth-Token"},
	{"CODEARTSBUILD_IAM_USER", "an IAM user who signs in for tokens (with _PASSWORD and _DOMAIN)"},
	{"CODEARTSBUILD_IAM_PASSWORD", "that IAM user's password"},
	{"CODEARTSBUILD_IAM_DOMAIN", "that IAM user's account (domain) name"},
	{"CODEARTSBUILD_AK", "an access key (with CODEARTSBUILD_SK)"},
	{"CODEARTSBUILD_SK", "its secret key"},
	{"CODEARTSBUILD_SECURITY_TOKEN", "the security token of temporary AK/SK"},
	{"HUAWEICLOUD_SDK_AK", "an access key, as the official SDKs read it (with HUAWEICLOUD_SDK_SK)"},
	{"HUAWEICLOUD_SDK_SK", "its secret key"},
	{"HUAWEICLOUD_SDK_SECURITY_TOKEN", "the security token of temporary AK/SK"},
	{"CLOUD_SDK_AK", "an access key, as the SDK samples read it (with CLOUD_SDK_SK)"},
	{"CLOUD_SDK_SK", "its secret key"},
	{"HUAWEICLOUD_SDK_CREDENTIALS_FILE", "the credentials file (default ~/.huaweicloud/credentials)"},
	{"CODEARTSBUILD_PROJECT_ID", "the project id, sent as X-Project-Id"},
	{"HUAWEICLOUD_SDK_PROJECT_ID", "the project id, as the official SDKs read it"},
	{"CODEARTSBUILD_IAM_ENDPOINT", "IAM's endpoint (default https://iam.<region>.myhuaweicloud.com)"},
	{"CODEARTSBUILD_CA_FILE", "a PEM file of trusted CAs (default: the system's)"},
	{"HOME", "where ~/.huaweicloud/credentials is"},
	/* Read by transport.c, by libcurl's rules. */
	{"https_proxy", "the proxy for https:// (also HTTPS_PROXY)"},
	{"HTTPS_PROXY", "the proxy for https://"},
	{"http_proxy", "the proxy for http://"},
	{"all_proxy", "the proxy for both (also ALL_PROXY)"},
	{"ALL_PROXY", "the proxy for both"},
	{"no_proxy", "hosts reached without a proxy (also NO_PROXY)"},
	{"NO_PROXY", "hosts reached without a proxy"},
	{NULL, NULL},
};

void cb_config_free(cb_config *cfg)
{
	cb_free_secret(&cfg->token);
	cb_free_secret(&cfg->sk);
	cb_free_secret(&cfg->security_token);
	cb_free_secret(&cfg->ak);
	cb_free_secret(&cfg->iam_password);
	free(cfg->iam_user);
	free(cfg->iam_domain);
	free(cfg->iam_project);
	free(cfg->iam_endpoint);
	free(cfg->iam_host);
	free(cfg->endpoint);
	free(cfg->host);
	free(cfg->region);
	free(cfg->project_id);
	free(cfg->ca_file);
	free(cfg->user_agent);
	memset(cfg, 0, sizeof *cfg);
}

/* A set, non-empty environment variable, or NULL. */
static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* ---- credentials ---- */

typedef struct {
	const char *ak, *sk, *security_token;
} key_pair_names;

typedef struct {
	char *ak, *sk, *security_token, *project_id;
} credentials_file;

static void credentials_file_free(credentials_file *f)
{
	cb_free_secret(&f->ak);
	cb_free_secret(&f->sk);
	cb_free_secret(&f->security_token);
	free(f->project_id);
}

static char *trim_in_place(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static void set_from_line(credentials_file *f, const char *key, const char *value)
{
	char **slot = NULL;

	if (strcmp(key, "ak") == 0)
		slot = &f->ak;
	else if (strcmp(key, "sk") == 0)
		slot = &f->sk;
	else if (strcmp(key, "security_token") == 0)
		slot = &f->security_token;
	else if (strcmp(key, "project_id") == 0)
		slot = &f->project_id;
	if (slot && *value) {
		cb_free_secret(slot);
		*slot = cb_strdup(value);
	}
}

/* Reads the [basic] section of the SDK's INI credentials file. Returns 0 when the file was read,
 * 1 when it does not exist, -1 when it cannot be read. */
static int read_credentials_file(const char *path, credentials_file *f)
{
	char line[CREDENTIALS_LINE_MAX];
	int in_basic = 0;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		return errno == ENOENT ? 1 : -1;
	while (fgets(line, sizeof line, fp)) {
		char *s = trim_in_place(line), *eq;
		if (*s == '#' || *s == ';' || *s == '\0')
			continue;
		if (*s == '[') {
			in_basic = strcmp(s, "[basic]") == 0;
			continue;
		}
		eq = strchr(s, '=');
		if (!in_basic || eq == NULL)
			continue;
		*eq = '\0';
		set_from_line(f, trim_in_place(s), trim_in_place(eq + 1));
	}
	OPENSSL_cleanse(line, sizeof line);
	fclose(fp);
	return 0;
}

static int take_pair_from_env(cb_config *cfg, const key_pair_names *names, const char *source,
			      char *msg, size_t msglen)
{
	const char *ak = env(names->ak), *sk = env(names->sk);

	if (!ak && !sk)
		return 1;
	if (!ak || !sk) {
		snprintf(msg, msglen, "%s is set but %s is not", ak ? names->ak : names->sk,
			 ak ? names->sk : names->ak);
		return -1;
	}
	cfg->ak = cb_strdup(ak);
	cfg->sk = cb_strdup(sk);
	if (names->security_token && env(names->security_token))
		cfg->security_token = cb_strdup(env(names->security_token));
	cfg->credential_source = source;
	return 0;
}

/* CODEARTSBUILD_IAM_USER, _PASSWORD and _DOMAIN: all three, or none. */
static int take_iam_user_from_env(cb_config *cfg, char *msg, size_t msglen)
{
	const char *user = env("CODEARTSBUILD_IAM_USER"), *password = env("CODEARTSBUILD_IAM_PASSWORD"),
		   *domain = env("CODEARTSBUILD_IAM_DOMAIN");

	if (!user && !password && !domain)
		return 1;
	if (!user || !password || !domain) {
		snprintf(msg, msglen, "CODEARTSBUILD_IAM_USER, CODEARTSBUILD_IAM_PASSWORD and CODEARTSBUILD_IAM_DOMAIN go "
				      "together: %s is not set", !user ? "CODEARTSBUILD_IAM_USER" :
				      !password ? "CODEARTSBUILD_IAM_PASSWORD" : "CODEARTSBUILD_IAM_DOMAIN");
		return -1;
	}
	cfg->iam_user = cb_strdup(user);
	cfg->iam_password = cb_strdup(password);
	cfg->iam_domain = cb_strdup(domain);
	cfg->credential_source = "CODEARTSBUILD_IAM_*";
	return 0;
}

static const char *credentials_path(char *buf, size_t len)
{
	const char *path = env("HUAWEICLOUD_SDK_CREDENTIALS_FILE"), *home = env("HOME");

	if (path)
		return path;
	if (!home)
		return NULL;
	snprintf(buf, len, "%s/.huaweicloud/credentials", home);
	return buf;
}

static int take_credentials_file(cb_config *cfg, char *msg, size_t msglen)
{
	char buf[4096];
	credentials_file f = {NULL, NULL, NULL, NULL};
	const char *path = credentials_path(buf, sizeof buf);
	int rc;

	if (path == NULL)
		return 1;
	rc = read_credentials_file(path, &f);
	if (rc == 1 && env("HUAWEICLOUD_SDK_CREDENTIALS_FILE")) {
		snprintf(msg, msglen, "HUAWEICLOUD_SDK_CREDENTIALS_FILE names a file that does not exist");
		return -1;
	}
	if (rc < 0) {
		snprintf(msg, msglen, "cannot read the credentials file %s: %s", path, strerror(errno));
		return -1;
	}
	if (rc == 0 && (f.ak || f.sk) && !(f.ak && f.sk)) {
		snprintf(msg, msglen, "the credentials file %s has %s but not %s", path,
			 f.ak ? "ak" : "sk", f.ak ? "sk" : "ak");
		credentials_file_free(&f);
		return -1;
	}
	if (rc == 0 && f.ak) {
		cfg->ak = f.ak;
		cfg->sk = f.sk;
		cfg->security_token = f.security_token;
		f.ak = f.sk = f.security_token = NULL;
		cfg->credential_source = "credentials file";
	}
	if (!cfg->project_id && f.project_id) {
		cfg->project_id = f.project_id;
		f.project_id = NULL;
	}
	credentials_file_free(&f);
	return cfg->ak ? 0 : 1;
}

static int resolve_credentials(cb_config *cfg, char *msg, size_t msglen)
{
	static const key_pair_names ours = {"CODEARTSBUILD_AK", "CODEARTSBUILD_SK", "CODEARTSBUILD_SECURITY_TOKEN"};
	static const key_pair_names sdk = {"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"};
	static const key_pair_names samples = {"CLOUD_SDK_AK", "CLOUD_SDK_SK", NULL};
	int rc;

	if (cfg->token || cfg->ak || cfg->sk || cfg->iam_user) {
		if ((cfg->token != NULL) + (cfg->ak || cfg->sk) + (cfg->iam_user != NULL) > 1) {
			snprintf(msg, msglen, "give one of token=, ak= and sk=, or iam=, not several");
			return -1;
		}
		if (cfg->iam_user) {
			cfg->credential_source = "options (IAM user)";
			return 0;
		}
		if (!cfg->token && !(cfg->ak && cfg->sk)) {
			snprintf(msg, msglen, "option %s given without %s", cfg->ak ? "ak" : "sk", cfg->ak ? "sk" : "ak");
			return -1;
		}
		cfg->credential_source = "options";
		return 0;
	}
	if (env("CODEARTSBUILD_TOKEN")) {
		cfg->token = cb_strdup(env("CODEARTSBUILD_TOKEN"));
		cfg->credential_source = "CODEARTSBUILD_TOKEN";
		return 0;
	}
	if ((rc = take_iam_user_from_env(cfg, msg, msglen)) <= 0)
		return rc;
	if ((rc = take_pair_from_env(cfg, &ours, "CODEARTSBUILD_AK/SK", msg, msglen)) <= 0)
		return rc;
	if ((rc = take_pair_from_env(cfg, &sdk, "HUAWEICLOUD_SDK_AK/SK", msg, msglen)) <= 0)
		return rc;
	if ((rc = take_pair_from_env(cfg, &samples, "CLOUD_SDK_AK/SK", msg, msglen)) <= 0)
		return rc;
	if ((rc = take_credentials_file(cfg, msg, msglen)) <= 0)
		return rc;
	snprintf(msg, msglen,
		 "no credentials: pass token= or ak= and sk=, or set CODEARTSBUILD_TOKEN, "
		 "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or CLOUD_SDK_AK and CLOUD_SDK_SK), "
		 "or write ~/.huaweicloud/credentials");
	return -1;
}

static int resolve_project_id(cb_config *cfg)
{
	const char *id = env("CODEARTSBUILD_PROJECT_ID");

	if (cfg->project_id)
		return 0;
	if (!id)
		id = env("HUAWEICLOUD_SDK_PROJECT_ID");
	if (id)
		cfg->project_id = cb_strdup(id);
	return 0;
}

/* ---- endpoint ---- */

static int is_loopback_host(const char *host, size_t len)
{
	if (len == 9 && strncmp(host, "localhost", 9) == 0)
		return 1;
	if (len == 5 && strncmp(host, "[::1]", 5) == 0)
		return 1;
	return len >= 4 && strncmp(host, "127.", 4) == 0;
}

static int authority_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
}

static const char *host_end_of(const char *authority, const char *end)
{
	const char *p;

	if (authority[0] == '[') {
		p = memchr(authority, ']', (size_t)(end - authority));
		return p ? p + 1 : end;
	}
	p = memchr(authority, ':', (size_t)(end - authority));
	return p ? p : end;
}

/* Accepts scheme://host[:port][/] into *endpoint_slot (no trailing slash) and *host_slot. */
static int set_url(cb_config *cfg, const char *url, char **endpoint_slot, char **host_slot, char *msg, size_t msglen)
{
	static const char shape[] = "endpoint must be scheme://host[:port], without a path, query or user name";
	const char *authority, *end;
	char *endpoint, *host;
	int https = strncmp(url, "https://", 8) == 0;
	size_t i;

	if (!https && strncmp(url, "http://", 7) != 0) {
		snprintf(msg, msglen, "endpoint must start with https:// (or http:// for a loopback host)");
		return -1;
	}
	authority = url + (https ? 8 : 7);
	end = authority + strcspn(authority, "/?#");
	if (end == authority || (*end && strcmp(end, "/") != 0)) {
		snprintf(msg, msglen, "%s", shape);
		return -1;
	}
	for (i = 0; authority + i < end; i++) {
		if (!authority_char_ok(authority[i])) {
			snprintf(msg, msglen, "%s", shape);
			return -1;
		}
	}
	if (!https && !cfg->allow_http &&
	    !is_loopback_host(authority, (size_t)(host_end_of(authority, end) - authority))) {
		snprintf(msg, msglen, "plain http:// is only used for a loopback host unless allow_http = true");
		return -1;
	}
	/* url may be *endpoint_slot itself: copy before freeing. */
	endpoint = cb_strndup(url, (size_t)(end - url));
	host = cb_strndup(authority, (size_t)(end - authority));
	free(*endpoint_slot);
	free(*host_slot);
	*endpoint_slot = endpoint;
	*host_slot = host;
	return 0;
}

static int set_endpoint(cb_config *cfg, const char *url, char *msg, size_t msglen)
{
	return set_url(cfg, url, &cfg->endpoint, &cfg->host, msg, msglen);
}

/* The IAM service: option iam_endpoint, CODEARTSBUILD_IAM_ENDPOINT, or the region's. The token is
 * scoped to the project named iam.project, or the region. */
static int resolve_iam(cb_config *cfg, char *msg, size_t msglen)
{
	char url[256];

	if (!cfg->iam_user) {
		/* AK/SK without a project id look it up in IAM when the region is known. */
		if (!cfg->ak || cfg->project_id || !cfg->region)
			return 0;
		if (!cfg->iam_endpoint && env("CODEARTSBUILD_IAM_ENDPOINT"))
			cfg->iam_endpoint = cb_strdup(env("CODEARTSBUILD_IAM_ENDPOINT"));
		if (!cfg->iam_endpoint && strlen(cfg->region) <= 48) {
			snprintf(url, sizeof url, "https://iam.%s.myhuaweicloud.com", cfg->region);
			cfg->iam_endpoint = cb_strdup(url);
		}
		return cfg->iam_endpoint ? set_url(cfg, cfg->iam_endpoint, &cfg->iam_endpoint, &cfg->iam_host, msg, msglen) : 0;
	}
	if (!cfg->iam_password || !cfg->iam_domain) {
		snprintf(msg, msglen, "iam needs user, password and domain");
		return -1;
	}
	if (!cfg->iam_project && cfg->region)
		cfg->iam_project = cb_strdup(cfg->region);
	if (!cfg->iam_project) {
		snprintf(msg, msglen, "iam needs a region (or iam.project) to scope its token to");
		return -1;
	}
	if (!cfg->iam_endpoint && env("CODEARTSBUILD_IAM_ENDPOINT"))
		cfg->iam_endpoint = cb_strdup(env("CODEARTSBUILD_IAM_ENDPOINT"));
	if (!cfg->iam_endpoint) {
		if (!cfg->region || strlen(cfg->region) > 48) {
			snprintf(msg, msglen, "iam needs a region or iam_endpoint= (CODEARTSBUILD_IAM_ENDPOINT)");
			return -1;
		}
		snprintf(url, sizeof url, "https://iam.%s.myhuaweicloud.com", cfg->region);
		cfg->iam_endpoint = cb_strdup(url);
	}
	return set_url(cfg, cfg->iam_endpoint, &cfg->iam_endpoint, &cfg->iam_host, msg, msglen);
}

static int region_is_known(const char *region)
{
	int i;
	for (i = 0; cb_known_regions[i]; i++)
		if (strcmp(region, cb_known_regions[i]) == 0)
			return 1;
	return 0;
}

static int set_region_endpoint(cb_config *cfg, const char *region, char *msg, size_t msglen)
{
	char name[96], url[256];
	const char *override;
	size_t i, prefix = strlen("HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_");

	if (strlen(region) > 48) {
		snprintf(msg, msglen, "region name too long");
		return -1;
	}
	memcpy(name, "HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_", prefix);
	for (i = 0; region[i]; i++)
		name[prefix + i] = region[i] == '-' ? '_' : (char)toupper((unsigned char)region[i]);
	name[prefix + i] = '\0';
	if (cfg->region != region) {
		free(cfg->region);
		cfg->region = cb_strdup(region);
	}
	if ((override = env(name)) != NULL)
		return set_endpoint(cfg, override, msg, msglen);
	if (!region_is_known(region)) {
		snprintf(msg, msglen,
			 "unknown region '%.48s': pass endpoint= (or set CODEARTSBUILD_ENDPOINT or %s) for a "
			 "region this client does not know", region, name);
		return -1;
	}
	snprintf(url, sizeof url, "https://cloudbuild-ext.%s.myhuaweicloud.com", region);
	return set_endpoint(cfg, url, msg, msglen);
}

/* endpoint= wins, then region=, then CODEARTSBUILD_ENDPOINT, then CODEARTSBUILD_REGION. With an
 * endpoint, a region (an option, or CODEARTSBUILD_REGION) still names the region: IAM scopes
 * tokens and looks up project ids by it. */
static int resolve_endpoint(cb_config *cfg, char *msg, size_t msglen)
{
	const char *env_endpoint = env("CODEARTSBUILD_ENDPOINT"), *env_region = env("CODEARTSBUILD_REGION");

	if (cfg->region && !cfg->endpoint)
		return set_region_endpoint(cfg, cfg->region, msg, msglen);
	if (!cfg->region && env_region && (cfg->endpoint || env_endpoint))
		cfg->region = cb_strdup(env_region);
	if (cfg->endpoint)
		return set_endpoint(cfg, cfg->endpoint, msg, msglen);
	if (env_endpoint)
		return set_endpoint(cfg, env_endpoint, msg, msglen);
	if (env_region)
		return set_region_endpoint(cfg, env_region, msg, msglen);
	snprintf(msg, msglen, "no region: pass region= or endpoint=, or set CODEARTSBUILD_REGION or CODEARTSBUILD_ENDPOINT");
	return -1;
}

int cb_config_resolve(cb_config *cfg, char *msg, size_t msglen)
{
	if (resolve_endpoint(cfg, msg, msglen) != 0)
		return -1;
	if (resolve_credentials(cfg, msg, msglen) != 0 || resolve_iam(cfg, msg, msglen) != 0)
		return -1;
	resolve_project_id(cfg);
	if (!cfg->ca_file && env("CODEARTSBUILD_CA_FILE"))
		cfg->ca_file = cb_strdup(env("CODEARTSBUILD_CA_FILE"));
	if ((cfg->ak && (!cfg->ak[0] || !cfg->sk[0])) || (cfg->token && !cfg->token[0]) ||
	    (cfg->iam_user && (!cfg->iam_user[0] || !cfg->iam_password[0]))) {
		snprintf(msg, msglen, "empty credentials");
		return -1;
	}
	if (!cfg->endpoint || !cfg->host || (cfg->ak && !cfg->sk)) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	return 0;
}
