/* The client's settings (config.h): options, then the environment, then the credentials file. */
#include "config.h"
#include "buffer.h"
#include "sign.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

const char *const cb_known_regions[] = {
	"cn-north-4", "cn-north-1", "cn-east-2", "cn-south-1", "cn-east-3", "cn-south-2",
	"cn-southwest-2", "ap-southeast-3", "sa-brazil-1", "la-north-2", "la-south-2", "tr-west-1",
	NULL,
};


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
	{"HUAWEICLOUD_SDK_IAM_ENDPOINT", "IAM's endpoint, as the official SDKs read it"},
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
	free(cfg->profile);
	free(cfg->file_iam_endpoint);
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

/* What a section of the credentials file gives. */
typedef struct {
	char *ak, *sk, *security_token, *project_id, *iam_endpoint;
	int found;          /* the section is in the file */
	char sections[160]; /* the names of the sections, for a message: "basic, emu" */
} credentials_file;

static void credentials_file_free(credentials_file *f)
{
	cb_free_secret(&f->ak);
	cb_free_secret(&f->sk);
	cb_free_secret(&f->security_token);
	free(f->project_id);
	free(f->iam_endpoint);
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
	else if (strcmp(key, "iam_endpoint") == 0)
		slot = &f->iam_endpoint;
	if (slot && *value) {
		cb_free_secret(slot);
		*slot = cb_strdup(value);
	}
}

#define CREDENTIALS_FILE_MAX (1 << 20)

/* The whole file into text, refusing what is not a regular file before reading anything (a FIFO
 * would block, a device never end). 0, 1 (no such file), or -1 with a message. */
static int read_file(const char *path, cb_buffer *text, char *msg, size_t msglen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* O_NONBLOCK: opening a FIFO does not wait */
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(msg, msglen, "cannot read the credentials file: %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CREDENTIALS_FILE_MAX) {
		snprintf(msg, msglen, "the credentials file %s is %s", path,
			 S_ISDIR(st.st_mode) ? "a directory" : S_ISREG(st.st_mode) ? "larger than 1 MiB" :
			 "not a regular file (a FIFO, socket or device)");
		close(fd);
		return -1;
	}
	if (cb_buffer_reserve_exact(text, (size_t)st.st_size) != 0) {
		close(fd);
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	while (text->len < (size_t)st.st_size) {
		n = read(fd, text->data + text->len, (size_t)st.st_size - text->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		text->len += (size_t)n;
	}
	text->data[text->len] = '\0';
	close(fd);
	return 0;
}

static void note_section(credentials_file *f, const char *name)
{
	size_t used = strlen(f->sections);

	if (used + strlen(name) + 3 < sizeof f->sections)
		snprintf(f->sections + used, sizeof f->sections - used, "%s%s", used ? ", " : "", name);
}

/* The SDK's format (Python's configparser): [section] headers, `key = value` or `key: value`, keys
 * in any case, # and ; comment lines; any line length; a UTF-8 BOM first is skipped. */
static void parse_credentials(char *text, size_t len, const char *section, credentials_file *f)
{
	char *p = text, *end = text + len;
	int inside = 0;

	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *line, *sep, *k;
		if (nl)
			*nl = '\0';
		line = trim_in_place(p);
		p = nl ? nl + 1 : end;
		if (*line == '\0' || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			char *close = strrchr(line, ']');
			if (close == NULL || close[1] != '\0')
				continue;
			*close = '\0';
			line = trim_in_place(line + 1);
			inside = strcmp(line, section) == 0;
			f->found |= inside;
			note_section(f, line);
			continue;
		}
		if (!inside || (sep = strpbrk(line, "=:")) == NULL)
			continue;
		*sep = '\0';
		for (k = line; *k; k++)
			*k = (char)tolower((unsigned char)*k);
		set_from_line(f, trim_in_place(line), trim_in_place(sep + 1));
	}
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

/* The credentials of section [basic] of the file (or [profile]): 0 when it gave a key pair, 1 when it
 * has none (no file, no such keys), -1 with a message. A profile asked for by name must be there. */
static int take_credentials_file(cb_config *cfg, char *msg, size_t msglen)
{
	char buf[4096];
	credentials_file f;
	cb_buffer text = CB_BUFFER_INIT;
	const char *path = credentials_path(buf, sizeof buf), *section = cfg->profile ? cfg->profile : "basic";
	int rc;

	memset(&f, 0, sizeof f);
	if (path == NULL && cfg->profile) {
		snprintf(msg, msglen, "no credentials file: neither HUAWEICLOUD_SDK_CREDENTIALS_FILE nor HOME is set");
		return -1;
	}
	if (path == NULL)
		return 1;
	rc = read_file(path, &text, msg, msglen);
	if (rc == 1 && (cfg->profile || env("HUAWEICLOUD_SDK_CREDENTIALS_FILE"))) {
		snprintf(msg, msglen, "cannot read the credentials file: %s: %s%s", path, strerror(ENOENT),
			 env("HUAWEICLOUD_SDK_CREDENTIALS_FILE") ? " (named by HUAWEICLOUD_SDK_CREDENTIALS_FILE)" : "");
		return -1;
	}
	if (rc != 0)
		return rc;
	parse_credentials(text.data, text.len, section, &f);
	cb_buffer_wipe(&text);
	if (cfg->profile && !f.found) {
		snprintf(msg, msglen, "%s has no section [%s]%s%s%s", path, section, f.sections[0] ? " (its sections: " : "",
			 f.sections, f.sections[0] ? ")" : "");
		rc = -1;
	} else if ((f.ak || f.sk || cfg->profile) && !(f.ak && f.sk)) {
		snprintf(msg, msglen, "section [%s] of %s has no %s (a profile needs both ak and sk)", section, path,
			 f.ak ? "sk" : "ak");
		rc = -1;
	} else if (f.ak) {
		cfg->ak = f.ak;
		cfg->sk = f.sk;
		cfg->security_token = f.security_token;
		f.ak = f.sk = f.security_token = NULL;
		cfg->credential_source = cfg->profile ? "credentials file (profile)" : "credentials file";
	}
	if (!cfg->project_id && f.project_id) {
		cfg->project_id = f.project_id;
		f.project_id = NULL;
	}
	if (!cfg->file_iam_endpoint && f.iam_endpoint) {
		cfg->file_iam_endpoint = f.iam_endpoint;
		f.iam_endpoint = NULL;
	}
	credentials_file_free(&f);
	return rc < 0 ? -1 : cfg->ak ? 0 : 1;
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
	if (cfg->profile) /* asked for by name: it wins over the environment's keys */
		return take_credentials_file(cfg, msg, msglen);
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

/* A literal 127.0.0.0/8 address: four decimal numbers of at most 255, the first 127. */
static int is_loopback_ipv4(const char *host, size_t len)
{
	size_t i = 0;
	int part;

	for (part = 0; part < 4; part++) {
		unsigned value = 0, digits = 0;
		while (i < len && host[i] >= '0' && host[i] <= '9' && digits < 4)
			value = value * 10 + (unsigned)(host[i++] - '0'), digits++;
		if (digits == 0 || digits > 3 || value > 255 || (part == 0 && value != 127))
			return 0;
		if (part < 3 && (i >= len || host[i++] != '.'))
			return 0;
	}
	return i == len;
}

/* Plain http:// is for these only: 127.0.0.0/8 literals, localhost and [::1] (not a name that
 * merely begins with 127., which may resolve anywhere). */
static int is_loopback_host(const char *host, size_t len)
{
	return (len == 9 && memcmp(host, "localhost", 9) == 0) || (len == 5 && memcmp(host, "[::1]", 5) == 0) ||
	       is_loopback_ipv4(host, len);
}

/* The host of an authority (host[:port]): its length, or 0 when the authority is not one: a name of
 * letters, digits, '.' and '-', or an IPv6 literal in brackets; then nothing, or ':' and a port of
 * 1 to 65535 in decimal digits. */
static size_t host_length(const char *a, size_t n)
{
	size_t i = 0, digits = 0;
	unsigned long port = 0;

	if (n > 0 && a[0] == '[') {
		for (i = 1; i < n && (isxdigit((unsigned char)a[i]) || a[i] == ':' || a[i] == '.'); i++)
			;
		if (i < 3 || i >= n || a[i++] != ']')
			return 0;
	} else {
		for (; i < n && (isalnum((unsigned char)a[i]) || a[i] == '.' || a[i] == '-'); i++)
			;
		if (i == 0)
			return 0;
	}
	if (i == n)
		return i;
	if (a[i] != ':')
		return 0;
	for (digits = 0; i + 1 + digits < n && isdigit((unsigned char)a[i + 1 + digits]) && digits < 6; digits++)
		port = port * 10 + (unsigned long)(a[i + 1 + digits] - '0');
	return i + 1 + digits == n && digits > 0 && port >= 1 && port <= 65535 ? i : 0;
}

/* Accepts scheme://host[:port][/] into *endpoint_slot (no trailing slash) and *host_slot. */
static int set_url(cb_config *cfg, const char *url, char **endpoint_slot, char **host_slot, char *msg, size_t msglen)
{
	static const char shape[] = "endpoint must be scheme://host[:port] (a port from 1 to 65535), without a path, "
				    "query or user name";
	const char *authority, *end;
	char *endpoint, *host;
	int https = strncmp(url, "https://", 8) == 0;
	size_t host_len;

	if (!https && strncmp(url, "http://", 7) != 0) {
		snprintf(msg, msglen, "endpoint must start with https:// (or http:// for a loopback host)");
		return -1;
	}
	authority = url + (https ? 8 : 7);
	end = authority + strcspn(authority, "/?#");
	host_len = host_length(authority, (size_t)(end - authority));
	if (host_len == 0 || (*end && strcmp(end, "/") != 0)) {
		snprintf(msg, msglen, "%s", shape);
		return -1;
	}
	if (!https && !cfg->allow_http && !is_loopback_host(authority, host_len)) {
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

/* IAM's endpoint when no option gave it: CODEARTSBUILD_IAM_ENDPOINT, the official SDKs'
 * HUAWEICLOUD_SDK_IAM_ENDPOINT, the credentials file's iam_endpoint (the region's comes later). */
static void take_iam_endpoint(cb_config *cfg)
{
	const char *from_env = env("CODEARTSBUILD_IAM_ENDPOINT");

	if (!from_env)
		from_env = env("HUAWEICLOUD_SDK_IAM_ENDPOINT");
	if (!cfg->iam_endpoint && from_env)
		cfg->iam_endpoint = cb_strdup(from_env);
	if (!cfg->iam_endpoint && cfg->file_iam_endpoint)
		cfg->iam_endpoint = cb_strdup(cfg->file_iam_endpoint);
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
		take_iam_endpoint(cfg);
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
	take_iam_endpoint(cfg);
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

	if (strlen(region) > 48 || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region) ||
	    !region[0]) {
		snprintf(msg, msglen, "a region is lower-case letters, digits and '-' (cn-north-4), at most 48 of them");
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
	if ((override = env(name)) != NULL) {
		/* The SDKs take a comma-separated list of endpoints there: the first is used. */
		char first[512];
		snprintf(first, sizeof first, "%.*s", (int)strcspn(override, ","), override);
		return set_endpoint(cfg, trim_in_place(first), msg, msglen);
	}
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

/* The values that go into headers, from wherever they came (the options were checked already). */
static int check_header_values(const cb_config *cfg, char *msg, size_t msglen)
{
	const struct {
		const char *name, *value;
	} values[] = {
		{"the token", cfg->token}, {"the access key", cfg->ak}, {"the security token", cfg->security_token},
		{"the project id", cfg->project_id}, {"the user agent", cfg->user_agent},
	};
	size_t i;

	for (i = 0; i < sizeof values / sizeof values[0]; i++) {
		if (values[i].value && !cb_header_value_ok(values[i].value, strlen(values[i].value))) {
			snprintf(msg, msglen, "%s holds a control character (CR, LF, ...), which would go onto the wire",
				 values[i].name);
			return -1;
		}
	}
	return 0;
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
	if (check_header_values(cfg, msg, msglen) != 0)
		return -1;
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
