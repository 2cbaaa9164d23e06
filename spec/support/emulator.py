#!/usr/bin/env python3
"""CodeArts Build API emulator for the codeartsbuild test-suite.

A small HTTP(S) server, Python 3.9+ standard library only, that plays the Huawei Cloud CodeArts Build
service on 127.0.0.1 so that tests, examples, demos and benchmarks never need the real cloud:

* authentication: ``X-Auth-Token`` or an SDK-HMAC-SHA256 ``Authorization`` header, verified with this
  file's own signer (checked against the published vectors by ``--check-vectors``), the 15-minute
  ``X-Sdk-Date`` window, temporary credentials with ``X-Security-Token``, and ``X-Project-Id``; IAM's
  ``POST /v3/auth/tokens`` and ``GET /v3/projects`` on the same port;
* the APIs (shapes of the reference's SERVICE-CONTRACTS.md, each rule commented with its source):
  v3/v4/v1 record-info, v1 running-status, v3 history, v3 status; the steps: v3 history-details,
  v1 full-stages (by record id), v1 job status (``?build_no=``); the logs: v3 and v1 real-time-log,
  v1 and v4 download-log (by record id); answered from a seeded, deterministic data set (six jobs,
  records, steps and logs generated on demand) in camelCase or snake_case spelling, plus builds started
  at run time that run on the emulator's clock;
* two error contracts, "real" (the default) and "legacy" (see ``Contract``), and the settings
  that choose among unknowns (see ``SETTINGS``);
* fault injection and counters through control paths under ``/__emulator/`` (no authentication).

Command line::

    python3 emulator.py [--port 0] [--ready-file PATH] [--tls-cert PEM --tls-key PEM]
                        [--spelling camel|snake] [--seed N] [--parent-pid PID]
                        [--max-lifetime SECONDS] [--clock-offset SECONDS]
                        [--errors real|legacy] [--missing-build 403|422|404|empty|absent]
                        [--retire-v3 [gateway|backend|off]] [--retire-v4 [gateway|backend|off]]
                        [--gzip] [--set NAME=VALUE]... [--big-log-bytes N] [--quiet] [--log]
    python3 emulator.py --check-vectors FILE
    python3 emulator.py --make-certs DIR

Once listening, the server writes ``{"port", "pid", "scheme", "url"}`` as JSON to the ready file
(atomically) and as one line on stdout. It stops on SIGTERM/SIGINT, when the ``--parent-pid`` process is
gone, or after ``--max-lifetime`` seconds (default 3600; 0 means no limit). Credentials come only from
the environment (EMU_AK, EMU_SK, EMU_TEMP_AK, EMU_TEMP_SK, EMU_SECURITY_TOKEN, EMU_TOKEN, EMU_PROJECT_ID;
defaults below) and are never printed. Traffic is not logged unless ``--log`` is given (and ``--quiet``
is not); a log line holds the request line and status, never a header.

Settings (defaults first; at start: the default, then EMU_<NAME> in the environment, e.g. EMU_ERRORS=real,
then the command line; at run time: POST /__emulator/settings; POST /__emulator/reset restores the start
values):

* ``errors`` real|legacy: the error contract. legacy: a missing job or build is 404 CB.00062001
  everywhere, gateway errors are APIGW.xxxx in two fields, a non-GET is 405. real: a missing job 422
  DEVCB.00031006 (v1, v4) or 422 CB.00031006 (v3), a missing build 403 CB.00031059 (history-details)
  or as ``missing_build`` says, gateway errors APIG.xxxx with request_id (404 APIG.0101 for an unknown
  path or method, 401 APIG.0301 for credentials).
* ``missing_build`` 403|422|404|empty|absent (real mode only): a missing build where the live answer is
  unknown: record-info v1/v3/v4, both real-time-logs, the v1 job status. empty/absent: HTTP 200 with
  ``result: {}`` or without ``result``.
* ``retire_v3``, ``retire_v4`` off|gateway|backend: every path of that version answers 404 APIG(W).0101
  before authentication (gateway) or 404 CB.00060214 after it (backend). IAM paths are never retired.
* ``gzip`` false|true: downloads honour ``Accept-Encoding: gzip`` (``Content-Encoding: gzip``, chunked).
* ``running_has_more`` true|false: a running build's real-time log says ``has_more_data``/``has_more``
  true even at its current end.

The data set (``JOBS``; emulator.lua's ``job_ids`` names them): reference (1200 builds), second (1000),
big (100000), gaps (1000, every 7th deleted), no_status (500, running-status unpublished), logs (5 builds
with Chinese step names: 3 SUCCESS with the big log, 50 MiB unless ``--big-log-bytes``, 4 FAILED, 5
SUCCESS; the default job of started builds). The newest seeded build of every job but logs is RUNNING
for ever, with its current step running. Every build has steps (a FAILED one an "error" step, the later
ones not run; durations inside the record's) and a log (a line per step start and end, a few lines
between, English and Chinese, the record's errMsg in the failing step). Offsets into logs are bytes.

An API request is answered in this order: fault rules (see ``FaultRule``); unknown path, retired route
at the gateway (404 APIG(W).0101); method (405 legacy, 404 APIG.0101 real); authentication (401
APIG(W).0301, 403 APIGW.0306); retired route at the backend (404 CB.00060214); path and query parameters
(400 CB.00060200); data (a missing job or build: see ``errors``; or 200). Every response carries a fresh
``X-Request-Id``.

Control paths (no authentication, JSON in and out):

* ``GET /__emulator/stats``: ``requests`` (API requests), ``connections`` (TCP connections that carried
  at least one API request), ``accepted`` (every accepted connection, control ones too), ``active``,
  ``peak_concurrency``, ``by_status``, ``by_path_kind`` (record-info, running-status, history, status,
  history-details, full-stages, step-status, real-time-log, download-log, iam, other), ``by_route``
  ("METHOD /path/{template}" as in ``API_ROUTES``, "POST /v3/auth/tokens", "GET /v3/projects", "other"),
  ``last`` (method, path, query and the headers of the last API request, as received); all since the
  last reset.
* ``POST /__emulator/reset``: clear the counters and the fault rules, restore the start settings, remove
  the started builds. ``POST /__emulator/reset-stats``: clear the counters only.
* ``GET|POST|DELETE /__emulator/faults``: list, append (``{"rules": [...]}``) or clear fault rules.
* ``GET|POST /__emulator/settings``: the settings in force; change some (``{"errors": "real"}``).
* ``POST /__emulator/builds`` ``{job_id, steps, step_seconds, result, fail_step, lines_per_step}`` (all
  optional; steps a count or a list of names; result SUCCESS|FAILED|ABORTED; fail_step from 1, default
  the last): start a build numbered after the job's newest, RUNNING until len(steps) (or fail_step) x
  step_seconds have passed on the emulator's clock, its log growing lines_per_step lines a step; answers
  ``{job_id, build_no, build_record_id, duration_ms, steps}``. ``GET``: the started builds and whether
  they run; ``DELETE``: remove them.
* ``GET /__emulator/record/{job_id}/{build_no}``: the ``result`` object v3 would send.
* ``GET /__emulator/steps/{job_id}/{build_no}``: ``{build_steps, running, status}`` as history-details.
* ``GET /__emulator/log/{job_id}/{build_no}[?log_level=DEBUG]``: the log as it is now, raw.
* ``GET /__emulator/jobs``: the data set's jobs (with last_build, steps, big_logs).

``sign_request_headers`` signs a request as the SDKs do, for tests and demos without the client.
"""

import argparse
import array
import bisect
import calendar
import copy
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import namedtuple
from http import HTTPStatus
from urllib.parse import quote, unquote

# --------------------------------------------------------------------------------------------------
# Credentials

DEFAULT_CREDENTIALS = {
    "EMU_AK": "EMUAKQTWAOYTTINDUT2Q",
    "EMU_SK": "emuSKMFyfvK41ba2giqM7Uio6PznpdUKGpownRZl",
    "EMU_TEMP_AK": "EMUTMPAKZX8GH2KLP0QWE",
    "EMU_TEMP_SK": "emuTempSKa8f7e6d5c4b3a29180fedcba98765",
    "EMU_SECURITY_TOKEN": "emuSecurityTokenQ29kZUFydHNCdWlsZFRlbXA",
    "EMU_TOKEN": "emuIamTokenMIIEXAYJKoZIhvcNAQcCoIIETTCCBEkCAQEx",
    "EMU_PROJECT_ID": "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b",
    "EMU_IAM_USER": "emu-build-reader",
    "EMU_IAM_PASSWORD": "emuIamPassw0rd-5b9c1e",
    "EMU_IAM_DOMAIN": "emu-domain",
}


def same_secret(given, expected):
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Credentials:
    """The emulator's credentials. Deliberately has no __repr__ showing the values."""

    def __init__(self, environ):
        def get(name):
            return environ.get(name) or DEFAULT_CREDENTIALS[name]

        self.ak = get("EMU_AK")
        self.sk = get("EMU_SK")
        self.temp_ak = get("EMU_TEMP_AK")
        self.temp_sk = get("EMU_TEMP_SK")
        self.security_token = get("EMU_SECURITY_TOKEN")
        self.token = get("EMU_TOKEN")
        self.project_id = get("EMU_PROJECT_ID")
        self.iam_user = get("EMU_IAM_USER")
        self.iam_password = get("EMU_IAM_PASSWORD")
        self.iam_domain = get("EMU_IAM_DOMAIN")

    def __repr__(self):
        return "<Credentials (hidden)>"

    def secret_key_for(self, access_key):
        """(sk, needs_security_token) for a known access key, else None."""
        if same_secret(access_key, self.ak):
            return self.sk, False
        if same_secret(access_key, self.temp_ak):
            return self.temp_sk, True
        return None


# --------------------------------------------------------------------------------------------------
# SDK-HMAC-SHA256 signer (API-NOTES section 4)

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
DATE_WINDOW_SECONDS = 15 * 60
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def uri_encode(text):
    """Percent-encode UTF-8 bytes, keeping only A-Za-z0-9-_.~ (upper-case %XX, space is %20)."""
    return quote(text.encode("utf-8"), safe="")


def canonical_uri(path):
    """Each (decoded) path segment encoded, joined with '/', with a '/' appended."""
    uri = "/".join(uri_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def parse_query(raw_query):
    """A raw query string as received -> list of decoded (key, value); '+' stays a literal plus."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs):
    encoded = sorted((uri_encode(key), uri_encode(value)) for key, value in pairs)
    return "&".join("%s=%s" % pair for pair in encoded)


def canonical_request(method, path, query_pairs, headers, signed_headers, payload_hash):
    """headers maps lower-case names to values; signed_headers is the list in the declared order."""
    header_block = "".join("%s:%s\n" % (name, headers[name].strip()) for name in signed_headers)
    return "\n".join([method.upper(), canonical_uri(path), canonical_query(query_pairs), header_block,
                      ";".join(signed_headers), payload_hash])


def string_to_sign(canonical, sdk_date):
    return "%s\n%s\n%s" % (ALGORITHM, sdk_date, sha256_hex(canonical))


def hmac_signature(sk, text):
    return hmac.new(sk.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_value(ak, signed_headers, signature):
    return "%s Access=%s, SignedHeaders=%s, Signature=%s" % (ALGORITHM, ak, ";".join(signed_headers), signature)


def compute_signature(sk, method, path, query_pairs, headers, signed_headers, payload_hash):
    """-> (canonical request, string to sign, signature); headers must hold x-sdk-date."""
    canonical = canonical_request(method, path, query_pairs, headers, signed_headers, payload_hash)
    to_sign = string_to_sign(canonical, headers["x-sdk-date"])
    return canonical, to_sign, hmac_signature(sk, to_sign)


_AUTHORIZATION_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9A-Fa-f]+)\s*$")


def parse_authorization(value):
    """-> (access key, [signed header names], signature) or None when malformed."""
    match = _AUTHORIZATION_RE.match(value or "")
    if not match:
        return None
    return match.group(1), match.group(2).split(";"), match.group(3)


def sign_request_headers(method, url, ak, sk, headers=None, body=b"", sdk_date=None):
    """Sign a request the way the official SDKs do; returns the headers to send (a new dict).

    For tests and demos that need a signed request without the client library. Signs every given
    header whose name has no '_', plus Host and X-Sdk-Date (added when missing).
    """
    scheme_sep = url.index("://") + 3
    host_end = url.find("/", scheme_sep)
    host = url[scheme_sep:] if host_end < 0 else url[scheme_sep:host_end]
    target = "/" if host_end < 0 else url[host_end:]
    path, _, raw_query = target.partition("?")
    result = dict(headers or {})
    lower = {name.lower(): value for name, value in result.items()}
    if "host" not in lower:
        result["Host"] = lower["host"] = host
    if "x-sdk-date" not in lower:
        date = sdk_date or time.strftime(DATE_FORMAT, time.gmtime())
        result["X-Sdk-Date"] = lower["x-sdk-date"] = date
    signed = sorted(name for name in lower if "_" not in name)
    _, _, signature = compute_signature(sk, method, path, parse_query(raw_query), lower, signed,
                                        sha256_hex(body))
    result["Authorization"] = authorization_value(ak, signed, signature)
    return result


# --------------------------------------------------------------------------------------------------
# --check-vectors

VECTOR_INPUT_KEYS = {"id", "source", "about", "note", "ak", "sk", "method", "path", "query", "headers",
                     "body", "signed_headers"}
VECTOR_EXPECTED_KEYS = ("payload_sha256", "canonical_request", "canonical_request_sha256", "string_to_sign",
                        "signature", "authorization")


def raw_query_string(pairs):
    return "&".join("%s=%s" % (uri_encode(k), uri_encode(v)) for k, v in pairs)


def check_signing_vector(vector):
    """-> list of problems (empty when every expected value in the vector matches)."""
    problems = ["unknown field %r (not checked)" % key
                for key in sorted(set(vector) - VECTOR_INPUT_KEYS - set(VECTOR_EXPECTED_KEYS))]
    expected_keys = [key for key in VECTOR_EXPECTED_KEYS if key in vector]
    if not expected_keys:
        problems.append("no expected values")
    headers = {name.lower(): value for name, value in vector.get("headers", {}).items()}
    signed = vector.get("signed_headers") or sorted(name for name in headers if "_" not in name)
    # The query goes through the server's own parser, as a received request's would.
    query_pairs = parse_query(raw_query_string(vector.get("query", [])))
    payload_hash = sha256_hex(vector.get("body", ""))
    canonical, to_sign, signature = compute_signature(vector["sk"], vector["method"], vector["path"],
                                                      query_pairs, headers, signed, payload_hash)
    actual = {
        "payload_sha256": payload_hash,
        "canonical_request": canonical,
        "canonical_request_sha256": sha256_hex(canonical),
        "string_to_sign": to_sign,
        "signature": signature,
        "authorization": authorization_value(vector["ak"], signed, signature),
    }
    for key in expected_keys:
        if actual[key] != vector[key]:
            problems.append("%s differs: expected %r, got %r" % (key, vector[key], actual[key]))
    return problems


def check_canonical_query_vector(section):
    params = [tuple(pair) for pair in section["params"]]
    expected = section["expected"]
    problems = []
    direct = canonical_query(params)
    if direct != expected:
        problems.append("expected %r, got %r" % (expected, direct))
    received = canonical_query(parse_query(raw_query_string(params)))
    if received != expected:
        problems.append("after parsing as a received query: expected %r, got %r" % (expected, received))
    return problems


def check_vectors(path):
    """Print one line per vector and a summary; return the exit status."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    results = []
    for index, vector in enumerate(data.get("vectors", [])):
        name = vector.get("id", "#%d" % (index + 1))
        try:
            results.append((name, check_signing_vector(vector)))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            results.append((name, ["cannot evaluate vector: %s: %s" % (type(err).__name__, err)]))
    if "canonical_query" in data:
        try:
            results.append(("canonical_query", check_canonical_query_vector(data["canonical_query"])))
        except (KeyError, TypeError, ValueError) as err:
            results.append(("canonical_query", ["cannot evaluate: %s: %s" % (type(err).__name__, err)]))
    failed = 0
    for name, problems in results:
        if problems:
            failed += 1
            print("FAIL %s: %s" % (name, "; ".join(problems)))
        else:
            print("ok %s" % name)
    print("vectors: %d ok, %d failed" % (len(results) - failed, failed))
    return 0 if results and not failed else 1


# --------------------------------------------------------------------------------------------------
# Test certificates (--make-certs)

CERT_FILES = {
    "ca": "ca.pem", "ca_key": "ca.key",
    "server_cert": "server.pem", "server_key": "server.key",
    "expired_cert": "expired.pem", "expired_key": "expired.key",
    "wronghost_cert": "wronghost.pem", "wronghost_key": "wronghost.key",
    "other_ca": "other-ca.pem", "other_ca_key": "other-ca.key",
    "other_cert": "other.pem", "other_key": "other.key",
}
LOCAL_SAN = "IP:127.0.0.1,DNS:localhost"

_REQ_CONFIG = """[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""
_CA_CONFIG = """[ca]
default_ca = emu
[emu]
database = {db}/index.txt
new_certs_dir = {db}
serial = {db}/serial
default_md = sha256
policy = any_cn
unique_subject = no
[any_cn]
commonName = supplied
"""
_SERVER_EXTENSIONS = """basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
"""


class CertError(Exception):
    pass


def _openssl(*args):
    proc = subprocess.run(("openssl",) + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise CertError("openssl %s failed (exit %d):\n%s"
                        % (args[0], proc.returncode, proc.stdout.decode("utf-8", "replace")))


def make_certs(directory):
    """Make a test PKI in directory with the openssl CLI; return {name: path} (see CERT_FILES).

    ca/ca_key: the test CA. server_cert/server_key: SAN IP:127.0.0.1 and DNS:localhost.
    expired_cert/expired_key: same CA and SAN, valid only in January 2020. wronghost_cert/wronghost_key:
    same CA, SAN DNS:wrong.example only. other_ca (+ other_ca_key) and other_cert/other_key: a second
    CA and a server certificate (local SAN) it issued. Keys are EC P-256, unencrypted.
    """
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, file) for name, file in CERT_FILES.items()}
    work = tempfile.mkdtemp(prefix=".openssl-", dir=directory)
    try:
        req_config = os.path.join(work, "req.cnf")
        with open(req_config, "w") as handle:
            handle.write(_REQ_CONFIG)
        key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

        def new_ca(cert, key, name):
            _openssl("req", "-config", req_config, "-x509", *key_options, "-keyout", key, "-out", cert,
                     "-days", "3650", "-subj", "/CN=" + name)
            db = os.path.join(work, os.path.basename(cert) + ".db")
            os.mkdir(db)
            open(os.path.join(db, "index.txt"), "w").close()
            with open(os.path.join(db, "serial"), "w") as handle:
                handle.write("1%015x\n" % secrets.randbits(60))
            config = os.path.join(db, "ca.cnf")
            with open(config, "w") as handle:
                handle.write(_CA_CONFIG.format(db=db))
            return cert, key, config

        def issue(ca, cert, key, san, validity):
            ca_cert, ca_key, ca_config = ca
            csr = os.path.join(work, os.path.basename(cert) + ".csr")
            extensions = os.path.join(work, os.path.basename(cert) + ".ext")
            with open(extensions, "w") as handle:
                handle.write(_SERVER_EXTENSIONS.format(san=san))
            _openssl("req", "-config", req_config, "-new", *key_options, "-keyout", key, "-out", csr,
                     "-subj", "/CN=" + san.split(",")[-1].split(":", 1)[1])
            _openssl("ca", "-batch", "-config", ca_config, "-cert", ca_cert, "-keyfile", ca_key, "-notext",
                     "-in", csr, "-out", cert, "-extfile", extensions, *validity)

        valid = ("-days", "3650")
        ca = new_ca(paths["ca"], paths["ca_key"], "codeartsbuild emulator test CA")
        other_ca = new_ca(paths["other_ca"], paths["other_ca_key"], "codeartsbuild emulator other CA")
        issue(ca, paths["server_cert"], paths["server_key"], LOCAL_SAN, valid)
        issue(ca, paths["expired_cert"], paths["expired_key"], LOCAL_SAN,
              ("-startdate", "20200101000000Z", "-enddate", "20200131000000Z"))
        issue(ca, paths["wronghost_cert"], paths["wronghost_key"], "DNS:wrong.example", valid)
        issue(other_ca, paths["other_cert"], paths["other_key"], LOCAL_SAN, valid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return paths


# --------------------------------------------------------------------------------------------------
# The data set

Job = namedtuple("Job", "job_id name builds gap_every running_status mean_gap_seconds repo_name "
                        "step_names newest_running forced_status big_logs")
# step_names: None = one of STEP_TEMPLATES, picked by the job id; newest_running: the newest seeded
# build is RUNNING (and stays so); forced_status: ((build_no, status), ...); big_logs: build numbers
# whose log is the big one (--big-log-bytes, 50 MiB by default).
Job.__new__.__defaults__ = (None, True, (), ())

CHINESE_STEPS = ("代码检出", "Maven构建", "单元测试", "上传软件包到软件发布库")
STEP_TEMPLATES = (
    ("Checkout", "Build with Maven", "Run unit tests", "Upload to release repo"),
    ("Checkout", "Install dependencies", "Build with npm", "Upload to release repo"),
    ("Checkout", "Build with Maven", "Build image and push to SWR"),
    ("Checkout", "Build with Go", "Run unit tests", "Code check", "Upload to release repo"),
    CHINESE_STEPS,
)
LOGS_JOB_ID = "5eed1065e1f04e0c9a7b3d2c1b0a9f8e"
BIG_LOG_BUILD = 3

JOBS = (
    Job("cb5fa20de5fd4cf8be681d4bd6fdd2f6", "reference", 1200, 0, True, 3 * 3600, "APITest-Python-02"),
    Job("b3c3fbb0cc0a4b388cb500b807a42334", "second", 1000, 0, True, 4 * 3600, "web-portal"),
    # 100000 builds a few hours apart would reach 2060; ten minutes keeps them in 2024-2025.
    Job("0123456789abcdef0123456789abcdef", "big", 100000, 0, True, 600, "monorepo"),
    Job("aaaabbbbccccddddeeeeffff00001111", "gaps", 1000, 7, True, 3 * 3600, "payment-gateway"),
    Job("f00df00df00df00df00df00df00df00d", "no_status", 500, 0, False, 5 * 3600, "legacy-tools"),
    # Five finished builds with Chinese step names: 3 SUCCESS with the big log, 4 FAILED (failing in a
    # step), 5 SUCCESS. The default job of started builds (POST /__emulator/builds): they get 6, 7, ...
    Job(LOGS_JOB_ID, "logs", 5, 0, True, 6 * 3600, "log-heavy-service", CHINESE_STEPS, False,
        ((3, "SUCCESS"), (4, "FAILED"), (5, "SUCCESS")), (BIG_LOG_BUILD,)),
)
JOBS_BY_ID = {job.job_id: job for job in JOBS}

FIELDS = (
    ("id", "id"), ("buildProjectId", "build_project_id"), ("buildRecordId", "build_record_id"),
    ("parentRecordId", "parent_record_id"), ("devcloudProjectId", "devcloud_project_id"),
    ("codeciJobId", "codeci_job_id"), ("userId", "user_id"), ("buildNo", "build_no"),
    ("dailyBuildNum", "daily_build_num"), ("executionId", "execution_id"), ("repoName", "repo_name"),
    ("repoId", "repo_id"), ("branch", "branch"), ("tag", "tag"), ("commit", "commit"),
    ("commitMessage", "commit_message"), ("commitCreateTime", "commit_create_time"),
    ("triggerType", "trigger_type"), ("buildType", "build_type"), ("status", "status"),
    ("domainId", "domain_id"), ("createTime", "create_time"), ("scheduleTime", "schedule_time"),
    ("queuedTime", "queued_time"), ("startTime", "start_time"), ("runnableTime", "runnable_time"),
    ("finishTime", "finish_time"), ("duration", "duration"), ("recordStatus", "record_status"),
    ("usePrivateSlave", "use_private_slave"), ("region", "region"), ("errMsg", "err_msg"),
    ("buildConfigType", "build_config_type"),
)
FIRST_BUILD_EPOCH = calendar.timegm((2024, 1, 1, 0, 0, 0))

BRANCHES = (("master", 45), ("main", 15), ("develop", 25), ("feature/login", 15))
TRIGGER_TYPES = (("MANUAL", 30), ("TIMED_EXECUTION", 20), ("CODEHUB_TRIGGER", 40), ("PIPELINE_TRIGGER", 10))
BUILD_TYPES = (("branch", 85), ("tag", 8), ("commitId", 7))
FINISHED_STATUSES = (("SUCCESS", 82), ("FAILED", 14), ("ABORTED", 4))
RUN_RESULTS = ("SUCCESS", "FAILED", "ABORTED")
COMMIT_MESSAGES = (
    "init", "fix flaky unit test", "update dependencies", "refactor build scripts", "add login page",
    "bump version", "speed up CI cache", "docs: update README", "fix NPE in request parser",
    "修复构建", "更新依赖版本", "café: menu page", "Überarbeitung der Konfiguration",
    "Merge branch 'develop' into master", "add health check endpoint", "remove dead code",
)
QUOTING_COMMIT_MESSAGES = (
    'fix "quoted" arguments in deploy script', "escape backslash in C:\\build\\out path",
    'handle \\"nested\\" quotes',
)
ERROR_MESSAGES = (
    "Build step 'Maven build' failed: exit code 1", "npm ERR! code ELIFECYCLE",
    "单元测试失败: 3 tests failed", "docker push failed: unauthorized",
    "Timeout: build exceeded 1800 s",
)
# The log's lines are the emulator's own invention (no real log was recorded): a line per step start
# and end, a few lines in between, the record's errMsg in the failing step, English and Chinese.
LOG_BODY_LINES = (
    "Cloning into '/codeci/workspace/{repo}'...",
    "拉取代码完成, 共 {a} 个文件, 耗时 {b} ms",
    "Downloading from central: https://repo.huaweicloud.com/repository/maven/org/example/lib{a}/1.{c}/lib{a}-1.{c}.pom",
    "Compiling {a} source files to /codeci/workspace/{repo}/target/classes",
    "编译模块 module-{c} 成功",
    "Tests run: {a}, Failures: 0, Errors: 0, Skipped: {c}",
    "npm WARN deprecated request@2.88.{c}: request has been deprecated",
    "上传文件 {repo}-1.{c}.{b}.tar.gz 到软件发布库 ({a} KB)",
    "正在执行命令: mvn -B package -T {c}",
    "Résumé: {a} fichiers traités, durée {b} ms",
)
# The big log's bulk: lines of a fixed byte length each (the numbers have fixed widths), so that any
# offset of a 50 MiB log is found by arithmetic and each block generated on its own.
BULK_LINES = (
    "[INFO] 测试用例 com.example.service.Module{m:07d}Test 通过 (耗时 {x:03d} ms)\n",
    "[INFO] Running com.example.service.Module{m:07d}IT ... ok ({x:03d} ms)\n",
    "[INFO] 正在处理第 {m:07d} 条记录: 状态正常, 校验和 {x:03d}\n",
    "[DEBUG] cache hit ratio {x:03d}/999 after test {m:07d}\n",
)
BULK_BLOCK_LINES = len(BULK_LINES) * 200
DEFAULT_BIG_LOG_BYTES = 50 * 1024 * 1024

# A step as planned: start and duration in ms from the build's start; outcome "success", "error",
# "aborted", or None for a step the build never reaches (SERVICE-CONTRACTS §4: build_steps status
# running|success|error|"" with "" = not run; build_time ms).
Step = namedtuple("Step", "name start_ms duration_ms outcome")


class Plan:
    """One build as a timeline: its record, its steps, and how far it has got (elapsed_ms; inf when it
    finished long ago). finish_ms is None for a build that never finishes (the seeded RUNNING ones)."""

    def __init__(self, job, build_no, record, start, steps, elapsed_ms, finish_ms, lines_per_step=None):
        self.job, self.build_no, self.record = job, build_no, record
        self.start, self.steps = start, steps
        self.elapsed_ms, self.finish_ms = elapsed_ms, finish_ms
        self.lines_per_step = lines_per_step

    @property
    def running(self):
        return self.finish_ms is None or self.elapsed_ms < self.finish_ms

    def step_state(self, step):
        """(status, build_time ms) of a step as history-details shows it now."""
        end = step.start_ms + step.duration_ms
        if step.outcome is None or self.elapsed_ms < step.start_ms:
            return "", 0
        if self.elapsed_ms < end:
            return "running", int(self.elapsed_ms - step.start_ms)
        # An aborted step: the enum has no value for it (§4); "" with the time it ran is the emulator's
        # choice (?).
        return {"success": "success", "error": "error", "aborted": ""}[step.outcome], step.duration_ms


class Run:
    """A build started through POST /__emulator/builds: it runs on the emulator's clock."""

    def __init__(self, job, build_no, record_id, start, step_names, step_seconds, result, fail_step,
                 lines_per_step):
        self.job, self.build_no, self.record_id = job, build_no, record_id
        self.start, self.step_names, self.step_seconds = start, step_names, step_seconds
        self.result, self.fail_step, self.lines_per_step = result, fail_step, lines_per_step

    @property
    def last_step(self):
        """Index of the last step that runs."""
        return len(self.step_names) - 1 if self.result == "SUCCESS" else self.fail_step

    @property
    def duration_ms(self):
        return int(round((self.last_step + 1) * self.step_seconds * 1000))

    def steps(self):
        width = self.step_seconds * 1000
        steps = []
        for i, name in enumerate(self.step_names):
            if i > self.last_step:
                steps.append(Step(name, self.duration_ms, 0, None))
                continue
            outcome = "success"
            if i == self.last_step and self.result != "SUCCESS":
                outcome = "error" if self.result == "FAILED" else "aborted"
            steps.append(Step(name, int(round(i * width)), int(round((i + 1) * width)) - int(round(i * width)),
                              outcome))
        return steps


def format_time(epoch_seconds):
    whole = int(epoch_seconds // 1)
    millis = int(round((epoch_seconds - whole) * 1000))
    if millis >= 1000:
        whole, millis = whole + 1, millis - 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%03d+00:00" % millis


class LogClock:
    """Formats log time stamps, "[2024-01-01 00:00:05.123]", reusing the date part within a second."""

    def __init__(self):
        self.second, self.prefix = None, ""

    def stamp(self, epoch_ms):
        epoch_ms = int(epoch_ms)
        second = epoch_ms // 1000
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("[%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return "%s.%03d]" % (self.prefix, epoch_ms % 1000)


class BulkLines:
    """blocks x BULK_BLOCK_LINES lines of fixed byte lengths, spread evenly over [start_ms, end_ms)."""

    def __init__(self, salt, blocks, start_ms, end_ms):
        self.salt, self.blocks = salt, blocks
        self.lines = blocks * BULK_BLOCK_LINES
        self.start_ms, self.span_ms = start_ms, end_ms - start_ms
        sample = LogClock().stamp(0) + " "
        self.block_size = BULK_BLOCK_LINES // len(BULK_LINES) * sum(
            len(sample.encode("utf-8")) + len(template.format(m=0, x=0).encode("utf-8")) for template in BULK_LINES)
        self.size = self.block_size * blocks

    def block(self, index):
        clock, parts = LogClock(), []
        first = index * BULK_BLOCK_LINES
        for m in range(first, first + BULK_BLOCK_LINES):
            when = self.start_ms + (m + 1) * self.span_ms // (self.lines + 1)
            parts.append(clock.stamp(when) + " " + BULK_LINES[m % len(BULK_LINES)].format(
                m=m, x=(m * 7919 + self.salt) % 1000))
        data = "".join(parts).encode("utf-8")
        assert len(data) == self.block_size
        return data

    def read(self, start, end):
        out, first = [], start // self.block_size
        for index in range(first, min(self.blocks, (end - 1) // self.block_size + 1)):
            base = index * self.block_size
            out.append(self.block(index)[max(0, start - base):end - base])
        return b"".join(out)


class LogText:
    """A log as parts (bytes, or BulkLines generated block by block): read any byte range, or stream it."""

    def __init__(self, parts):
        self.parts = [part for part in parts if (len(part) if isinstance(part, bytes) else part.size)]
        self.size = sum(len(part) if isinstance(part, bytes) else part.size for part in self.parts)

    def read(self, start, end):
        end = min(end, self.size)
        out, base = [], 0
        for part in self.parts:
            length = len(part) if isinstance(part, bytes) else part.size
            lo, hi = max(start, base), min(end, base + length)
            if lo < hi:
                out.append(part[lo - base:hi - base] if isinstance(part, bytes) else part.read(lo - base, hi - base))
            base += length
            if base >= end:
                break
        return b"".join(out)

    def chunks(self, start=0, end=None):
        """The bytes of [start, end) in pieces of at most STREAM_CHUNK (a bulk block at most)."""
        end = self.size if end is None else min(end, self.size)
        base = 0
        for part in self.parts:
            length = len(part) if isinstance(part, bytes) else part.size
            lo, hi = max(start, base), min(end, base + length)
            if lo < hi:
                if isinstance(part, bytes):
                    for offset in range(lo, hi, STREAM_CHUNK):
                        yield part[offset - base:min(hi, offset + STREAM_CHUNK) - base]
                else:
                    offset = lo - base
                    while offset < hi - base:
                        index = offset // part.block_size
                        block_end = min(hi - base, (index + 1) * part.block_size)
                        yield part.block(index)[offset - index * part.block_size:block_end - index * part.block_size]
                        offset = block_end
            base += length


def utf8_piece(log, start, length):
    """The bytes of log from start, at most length of them, ending on a character boundary (at least one
    whole character when length is shorter than the first one)."""
    end = min(log.size, start + length)
    if end <= start:
        return b""
    raw = log.read(start, min(log.size, end + 3))
    cut = end - start
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80:
        cut -= 1
    if cut == 0:
        cut = 1
        while cut < len(raw) and raw[cut] & 0xC0 == 0x80:
            cut += 1
    return raw[:cut]


class DataSet:
    """Deterministic build records, steps and logs, each generated on demand from (seed, job, build
    number), plus the builds started at run time (runs), which follow the emulator's clock."""

    def __init__(self, seed, clock=time.time, big_log_bytes=DEFAULT_BIG_LOG_BYTES):
        self.seed = seed
        self.clock = clock
        self.big_log_bytes = big_log_bytes
        self.lock = threading.Lock()
        self.runs = {}  # (job_id, build_no) -> Run
        self.run_ids = {}  # build_record_id -> (job_id, build_no)
        self._record_index = None
        self._big_logs = {}

    # hash-based generator -------------------------------------------------------------------------
    def _digest(self, *parts):
        text = "|".join(str(part) for part in (self.seed,) + parts)
        return hashlib.sha256(text.encode("utf-8")).digest()

    def _unit(self, *parts):
        """A float in [0, 1)."""
        return int.from_bytes(self._digest(*parts)[:7], "big") / float(1 << 56)

    def _hex(self, length, *parts):
        return self._digest(*parts).hex()[:length]

    def _uuid(self, *parts):
        h = self._hex(32, *parts)
        return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) % 4], h[17:20], h[20:32])

    def _pick(self, options, *parts):
        return options[int(self._unit(*parts) * len(options))]

    def _weighted(self, weighted, *parts):
        point = self._unit(*parts) * sum(weight for _, weight in weighted)
        for value, weight in weighted:
            if point < weight:
                return value
            point -= weight
        return weighted[-1][0]

    # the jobs ------------------------------------------------------------------------------------
    @staticmethod
    def seeded(job, build_no):
        if build_no < 1 or build_no > job.builds:
            return False
        return not (job.gap_every and build_no % job.gap_every == 0)

    def run(self, job, build_no):
        with self.lock:
            return self.runs.get((job.job_id, build_no))

    def exists(self, job, build_no):
        return self.seeded(job, build_no) or self.run(job, build_no) is not None

    def last_build(self, job):
        """The newest build number: the seeded ones', or the last started run's."""
        with self.lock:
            numbers = [n for jid, n in self.runs if jid == job.job_id]
        return max([job.builds] + numbers)

    def start_epoch(self, job, build_no):
        """Start times grow strictly with n: base + (n-1)*gap + jitter, jitter in [0, 0.8*gap)."""
        run = self.run(job, build_no)
        if run is not None:
            return run.start
        if build_no == 1:
            return FIRST_BUILD_EPOCH
        jitter = int(self._unit(job.job_id, build_no, "start") * job.mean_gap_seconds * 0.8)
        return FIRST_BUILD_EPOCH + (build_no - 1) * job.mean_gap_seconds + jitter

    def daily_build_num(self, job, build_no, start):
        """'YYYYMMDD.k': k counts this job's builds started that (UTC) day, up to this one."""
        day = time.gmtime(start)[:3]
        count, previous = 1, build_no - 1
        while previous >= 1 and time.gmtime(self.start_epoch(job, previous))[:3] == day:
            count, previous = count + 1, previous - 1
        return "%04d%02d%02d.%d" % (day + (count,))

    def status(self, job, build_no):
        """A seeded build's status."""
        if job.newest_running and build_no == job.builds:
            return "RUNNING"
        forced = dict(job.forced_status)
        if build_no in forced:
            return forced[build_no]
        return self._weighted(FINISHED_STATUSES, job.job_id, build_no, "status")

    def seeded_duration_ms(self, job, build_no, status):
        shortest, spread = (5000, 600000) if status == "ABORTED" else (20000, 1780000)
        return shortest + int(self._unit(job.job_id, build_no, "duration") ** 2 * spread)

    def record(self, job, build_no, now=None):
        """The record as a dict keyed by camelCase names (duration an int of ms), or None. now: the
        emulator's clock (read once per answer, so that a record and its steps agree)."""
        run = self.run(job, build_no)
        if run is not None:
            elapsed = (self.clock() if now is None else now) - run.start
            if elapsed * 1000 < run.duration_ms:
                return self._record(job, build_no, "RUNNING", run.start, None, None, run.record_id)
            return self._record(job, build_no, run.result, run.start, run.duration_ms,
                                run.start + run.duration_ms / 1000.0, run.record_id)
        if not self.seeded(job, build_no):
            return None
        status = self.status(job, build_no)
        start = self.start_epoch(job, build_no)
        if status == "RUNNING":
            return self._record(job, build_no, status, start, None, None)
        duration_ms = self.seeded_duration_ms(job, build_no, status)
        return self._record(job, build_no, status, start, duration_ms, start + duration_ms // 1000)

    def record_id(self, job, build_no):
        return self._uuid(job.job_id, build_no, "build_record")

    def _record(self, job, n, status, start, duration_ms, finish, record_id=None):
        jid = job.job_id
        running = duration_ms is None
        created = start - 1 - int(self._unit(jid, n, "queue") * 40)
        build_type = self._weighted(BUILD_TYPES, jid, n, "build_type")
        trigger = self._weighted(TRIGGER_TYPES, jid, n, "trigger")
        if self._unit(jid, n, "quoting") < 0.02:
            message = self._pick(QUOTING_COMMIT_MESSAGES, jid, n, "message")
        else:
            message = self._pick(COMMIT_MESSAGES, jid, n, "message")
        return {
            "id": self._uuid(jid, n, "id"),
            "buildProjectId": self._uuid(jid, "build_project"),
            "buildRecordId": record_id or self.record_id(job, n),
            "parentRecordId": self._uuid(jid, n, "parent") if trigger == "PIPELINE_TRIGGER" else None,
            "devcloudProjectId": self._hex(32, jid, "devcloud_project"),
            "codeciJobId": jid,
            "userId": self._hex(32, jid, "user", int(self._unit(jid, n, "user") * 4)),
            "buildNo": n,
            "dailyBuildNum": self.daily_build_num(job, n, start),
            "executionId": "j_" + "".join(self._pick("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                                                     jid, n, "execution", i) for i in range(8)),
            "repoName": job.repo_name,
            "repoId": 500000 + int(self._unit(jid, "repo") * 400000),
            "branch": self._weighted(BRANCHES, jid, n, "branch"),
            "tag": "v1.%d.%d" % (n // 100, n % 100) if build_type == "tag" else None,
            "commit": self._hex(40, jid, n, "commit"),
            "commitMessage": message,
            "commitCreateTime": format_time(created - 60 - int(self._unit(jid, n, "commit_age") * 3 * 86400)),
            "triggerType": trigger,
            "buildType": build_type,
            "status": status,
            "domainId": self._hex(32, "domain"),
            "createTime": format_time(created),
            "scheduleTime": format_time(created),
            "queuedTime": format_time(created + 1),
            "startTime": format_time(start),
            "runnableTime": format_time(created),
            "finishTime": None if running else format_time(finish),
            "duration": duration_ms,
            "recordStatus": "COMPLETED" if not running and self._unit(jid, n, "record_status") < 0.5 else None,
            "usePrivateSlave": 1 if self._unit(jid, n, "private_slave") < 0.1 else 0,
            "region": "cn-north-4",
            "errMsg": self._pick(ERROR_MESSAGES, jid, n, "error") if status == "FAILED" else None,
            "buildConfigType": "YAML" if self._unit(jid, "config_type") < 0.5 else "ACTION",
        }

    def history(self, job, offset, limit, interval_days):
        """(page of history entries, total): builds started within interval days of the newest one."""
        newest = self.last_build(job)
        cutoff = self.start_epoch(job, newest) - interval_days * 86400
        numbers, n = [], newest
        while n >= 1 and self.start_epoch(job, n) >= cutoff:
            if self.exists(job, n):
                numbers.append(n)
            n -= 1
        page = []
        for number in numbers[offset * limit:(offset + 1) * limit]:
            record = self.record(job, number)
            page.append({
                "record_id": record["id"], "job_id": job.job_id, "build_number": number,
                "start_time": record["startTime"], "end_time": record["finishTime"], "result": record["status"],
            })
        return page, len(numbers)

    # record ids ----------------------------------------------------------------------------------
    def find_record(self, record_id):
        """(job, build_no) of a build_record_id, or None. Seeded ids are found through a sorted array
        of 32-bit prefixes (some 100000 builds in under a megabyte), built on first use."""
        with self.lock:
            found = self.run_ids.get(record_id)
            if found:
                return JOBS_BY_ID[found[0]], found[1]
            if self._record_index is None:
                self._record_index = self._build_record_index()
            index = self._record_index
        try:
            prefix = int(record_id[:8], 16)
        except ValueError:
            return None
        position = bisect.bisect_left(index, prefix << 24)
        while position < len(index) and index[position] >> 24 == prefix:
            job, n = JOBS[(index[position] >> 20) & 0xF], index[position] & 0xFFFFF
            if self.record_id(job, n) == record_id:
                return job, n
            position += 1
        return None

    def _build_record_index(self):
        keys = array.array("Q")
        for job_index, job in enumerate(JOBS):
            for n in range(1, job.builds + 1):
                if self.seeded(job, n):
                    prefix = int.from_bytes(self._digest(job.job_id, n, "build_record")[:4], "big")
                    keys.append(prefix << 24 | job_index << 20 | n)
        return array.array("Q", sorted(keys))

    # runs ----------------------------------------------------------------------------------------
    def start_run(self, job, step_names, step_seconds, result, fail_step, lines_per_step):
        with self.lock:
            numbers = [n for jid, n in self.runs if jid == job.job_id]
            build_no = max([job.builds] + numbers) + 1
            record_id = self._uuid(job.job_id, build_no, "build_record", "run", len(self.run_ids))
            run = Run(job, build_no, record_id, self.clock(), step_names, step_seconds, result, fail_step,
                      lines_per_step)
            self.runs[(job.job_id, build_no)] = run
            self.run_ids[record_id] = (job.job_id, build_no)
            return run

    def clear_runs(self):
        with self.lock:
            count = len(self.runs)
            self.runs, self.run_ids = {}, {}
            return count

    def run_list(self):
        with self.lock:
            runs = sorted(self.runs.values(), key=lambda run: (run.job.job_id, run.build_no))
        now = self.clock()
        return [{"job_id": run.job.job_id, "build_no": run.build_no, "build_record_id": run.record_id,
                 "result": run.result, "step_seconds": run.step_seconds, "steps": list(run.step_names),
                 "running": (now - run.start) * 1000 < run.duration_ms,
                 "status": self.record(run.job, run.build_no, now)["status"],
                 "elapsed_seconds": round(now - run.start, 3), "duration_ms": run.duration_ms} for run in runs]

    # steps ---------------------------------------------------------------------------------------
    def step_names(self, job):
        return job.step_names or self._pick(STEP_TEMPLATES, job.job_id, "steps")

    def _split(self, total_ms, count, *parts):
        """total_ms split into count integer pieces by weights from the hash."""
        weights = [0.3 + self._unit(*(parts + (i,))) for i in range(count)]
        pieces = [int(total_ms * weight / sum(weights)) for weight in weights]
        pieces[-1] += total_ms - sum(pieces)
        return pieces

    def plan(self, job, build_no):
        """The build's Plan, or None when it does not exist."""
        now = self.clock()
        record = self.record(job, build_no, now)
        if record is None:
            return None
        run = self.run(job, build_no)
        if run is not None:
            elapsed = (now - run.start) * 1000
            return Plan(job, build_no, record, run.start, run.steps(), elapsed, run.duration_ms, run.lines_per_step)
        jid, n = job.job_id, build_no
        names = self.step_names(job)
        start = self.start_epoch(job, n)
        status = record["status"]
        if status == "RUNNING":
            # A seeded RUNNING build stays where it is: its current step running, the next ones not run.
            total = self.seeded_duration_ms(job, n, "SUCCESS")
            durations = self._split(total, len(names), jid, n, "step")
            current = int(self._unit(jid, n, "current_step") * len(names))
            steps, at = [], 0
            for name, duration in zip(names, durations):
                steps.append(Step(name, at, duration, "success"))
                at += duration
            elapsed = steps[current].start_ms + steps[current].duration_ms * (0.2 + 0.6 * self._unit(jid, n, "frac"))
            return Plan(job, n, record, start, steps, elapsed, None)
        total = record["duration"]
        prepare = int(total * (0.02 + 0.06 * self._unit(jid, n, "prepare")))  # before the first step
        last = len(names) - 1
        if status in ("FAILED", "ABORTED"):
            last = int(self._unit(jid, n, "failing_step") * len(names))
        durations = self._split(total - prepare, last + 1, jid, n, "step")
        steps, at = [], prepare
        for i, name in enumerate(names):
            if i > last:
                steps.append(Step(name, at, 0, None))
                continue
            outcome = "success"
            if i == last and status != "SUCCESS":
                outcome = "error" if status == "FAILED" else "aborted"
            steps.append(Step(name, at, durations[i], outcome))
            at += durations[i]
        return Plan(job, n, record, start, steps, float("inf"), total)

    # logs ----------------------------------------------------------------------------------------
    def log(self, plan, debug=False):
        """The LogText of a build as far as it has got (the whole log once finished)."""
        key = (plan.job.job_id, plan.build_no, debug)
        if plan.build_no in plan.job.big_logs and self.run(plan.job, plan.build_no) is None:
            with self.lock:
                cached = self._big_logs.get(key)
            if cached is None:
                cached = self._big_log(plan, debug)
                with self.lock:
                    self._big_logs[key] = cached
            return cached
        lines = self._log_lines(plan, debug)
        visible = "".join(text for when, text in lines if when <= plan.elapsed_ms)
        return LogText([visible.encode("utf-8")])

    def _log_lines(self, plan, debug, bulk_step=None):
        """[(ms from start, line)] of the whole planned log, in time order. With bulk_step, that step's
        body is left out and a None marks where it goes."""
        job, n, record = plan.job, plan.build_no, plan.record
        jid, clock, base = job.job_id, LogClock(), plan.start * 1000
        lines = []

        def add(when, level, text):
            lines.append((when, "%s [%s] %s\n" % (clock.stamp(base + when), level, text)))

        add(0, "INFO", "构建任务 %s #%d 开始执行 (executor %s)" % (job.name, n, record["executionId"]))
        add(0, "INFO", "代码仓 %s, 分支 %s, commit %s" % (record["repoName"], record["branch"], record["commit"]))
        total = len(plan.steps)
        for i, step in enumerate(plan.steps):
            if step.outcome is None:
                continue
            add(step.start_ms, "INFO", "========== 开始执行步骤 [%s] (%d/%d) ==========" % (step.name, i + 1, total))
            if debug:
                add(step.start_ms, "DEBUG", "WORKSPACE=/codeci/workspace/%s step=%d" % (record["repoName"], i + 1))
            if i == bulk_step:
                lines.append((step.start_ms, None))
            else:
                count = plan.lines_per_step or 3 + int(self._unit(jid, n, "lines", i) * 10)
                for j in range(count):
                    when = step.start_ms + (j + 1) * step.duration_ms // (count + 1)
                    template = self._pick(LOG_BODY_LINES, jid, n, "line", i, j)
                    value = int(self._unit(jid, n, "value", i, j) * 100000)
                    add(when, "INFO", template.format(repo=record["repoName"], a=value % 997 + 1, b=value % 9973,
                                                      c=value % 31))
            end = step.start_ms + step.duration_ms
            if step.outcome == "success":
                add(end, "INFO", "步骤 [%s] 执行成功, 耗时 %.3f s" % (step.name, step.duration_ms / 1000.0))
            elif step.outcome == "error":
                add(end, "ERROR", record["errMsg"] or "step failed")
                add(end, "ERROR", "步骤 [%s] 执行失败, 耗时 %.3f s" % (step.name, step.duration_ms / 1000.0))
            else:
                add(end, "WARN", "步骤 [%s] 已取消 (aborted)" % step.name)
        if plan.finish_ms is not None:
            level = {"SUCCESS": "INFO", "FAILED": "ERROR"}.get(plan.record["status"], "WARN")
            final = plan.record["status"] if plan.record["status"] != "RUNNING" else None
            if final is None:  # a run still going: its final status is the planned one
                final = self.run(job, n).result
            add(plan.finish_ms, level, "构建结束: %s" % final)
        return lines

    def _big_log(self, plan, debug):
        """The big log: a normal log whose longest step has a bulk body making it big_log_bytes long."""
        bulk_step = max(range(len(plan.steps)), key=lambda i: plan.steps[i].duration_ms)
        lines = self._log_lines(plan, debug, bulk_step)
        marker = next(i for i, (_, text) in enumerate(lines) if text is None)
        head = "".join(text for _, text in lines[:marker]).encode("utf-8")
        tail = "".join(text for _, text in lines[marker + 1:]).encode("utf-8")
        step = plan.steps[bulk_step]
        probe = BulkLines(0, 1, 0, 1)
        blocks = max(1, -(-(self.big_log_bytes - len(head) - len(tail)) // probe.block_size))
        base = plan.start * 1000
        bulk = BulkLines(int(self._unit(plan.job.job_id, plan.build_no, "bulk") * 1000), blocks,
                         base + step.start_ms, base + step.start_ms + step.duration_ms)
        return LogText([head, bulk, tail])


def render_record(record, spelling, api):
    """The record as the API sends it: key spelling, repoId type, duration float (v3) or int."""
    out = {}
    for camel, snake in FIELDS:
        value = record[camel]
        if camel == "repoId" and spelling == "snake" and value is not None:
            value = str(value)
        elif camel == "duration" and value is not None:
            value = float(value) if api == "v3" else int(value)
        out[snake if spelling == "snake" else camel] = value
    return out


# --------------------------------------------------------------------------------------------------
# Routes and error bodies

Route = namedtuple("Route", "kind api job_id build_no family template record_id")
Route.__new__.__defaults__ = (None, None, None)

# Envelope families (SERVICE-CONTRACTS §1.2): "A" {status, error, result} (v1/v4 and some v3 ops),
# "B" {success, message, err_code, result} (v3 record-info only), "C" bare (v3 history, status,
# history-details), "D" a file (log downloads).
API_ROUTES = (
    # pattern, kind, api, family, template (the key of stats' by_route, after the method)
    (re.compile(r"^/v3/jobs/([^/]+)/([^/]+)/record-info$"), "record-info", "v3", "B",
     "/v3/jobs/{job_id}/{build_no}/record-info"),
    (re.compile(r"^/v4/jobs/([^/]+)/([^/]+)/record-info$"), "record-info", "v4", "A",
     "/v4/jobs/{job_id}/{build_no}/record-info"),
    (re.compile(r"^/v1/record/([^/]+)/([^/]+)/record-info$"), "record-info", "v1", "A",
     "/v1/record/{job_id}/{build_no}/record-info"),
    (re.compile(r"^/v1/job/([^/]+)/running-status$"), "running-status", "v1", "A",
     "/v1/job/{job_id}/running-status"),
    (re.compile(r"^/v3/jobs/([^/]+)/history$"), "history", "v3", "C", "/v3/jobs/{job_id}/history"),
    (re.compile(r"^/v3/jobs/([^/]+)/status$"), "status", "v3", "C", "/v3/jobs/{job_id}/status"),
    # steps (SERVICE-CONTRACTS §4)
    (re.compile(r"^/v3/jobs/([^/]+)/([^/]+)/history-details$"), "history-details", "v3", "C",
     "/v3/jobs/{job_id}/{build_no}/history-details"),
    (re.compile(r"^/v1/record/([^/]+)/full-stages$"), "full-stages", "v1", "A", "/v1/record/{record_id}/full-stages"),
    (re.compile(r"^/v1/job/([^/]+)/status$"), "step-status", "v1", "A", "/v1/job/{job_id}/status"),
    # logs (SERVICE-CONTRACTS §5)
    (re.compile(r"^/v3/jobs/([^/]+)/([^/]+)/real-time-log$"), "real-time-log", "v3", "A",
     "/v3/jobs/{job_id}/{build_no}/real-time-log"),
    (re.compile(r"^/v1/log/([^/]+)/([^/]+)/real-time-log$"), "real-time-log", "v1", "A",
     "/v1/log/{job_id}/{build_no}/real-time-log"),
    (re.compile(r"^/v1/log/([^/]+)/download-log$"), "download-log", "v1", "D", "/v1/log/{record_id}/download-log"),
    (re.compile(r"^/v4/([^/]+)/download-log$"), "download-log", "v4", "D", "/v4/{record_id}/download-log"),
)
PATH_KINDS = ("record-info", "running-status", "history", "status", "history-details", "full-stages", "step-status",
              "real-time-log", "download-log", "iam", "other")
IAM_TOKENS_PATH = "/v3/auth/tokens"
IAM_PROJECTS_PATH = "/v3/projects"
JOB_ID_RE = re.compile(r"^[A-Za-z0-9]{32}$")
RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")  # DEF Record_Id: 36 characters, UUID form
INT32_MAX = 2147483647


def route_for(path):
    if path in (IAM_TOKENS_PATH, IAM_PROJECTS_PATH):
        return Route("iam", "v3", None, None, None, path)
    for pattern, kind, api, family, template in API_ROUTES:
        match = pattern.match(path)
        if match:
            groups = match.groups()
            if "{record_id}" in template:
                return Route(kind, api, None, None, family, template, groups[0])
            return Route(kind, api, groups[0], groups[1] if len(groups) > 1 else None, family, template)
    version = re.match(r"^/(v[0-9]+)/", path)
    return Route("other", version.group(1) if version else None, None, None)


def route_key(method, route):
    """The key a request counts under in stats' by_route: "GET /v1/job/{job_id}/running-status", or "other"."""
    return "%s %s" % (method, route.template) if route.template else "other"


def parse_int(text, lowest, highest):
    """A decimal integer in [lowest, highest] from a path or query string, else None."""
    if text is None or not re.match(r"^[0-9]{1,10}$", text):
        return None
    value = int(text)
    return value if lowest <= value <= highest else None


def parse_positive_int(text, highest=INT32_MAX):
    return parse_int(text, 1, highest)


def error_body(code, message):
    return {"error_code": code, "error_msg": message}


# --------------------------------------------------------------------------------------------------
# Error contracts
#
# Two sets, chosen by the "errors" setting (see SETTINGS):
#
# * "legacy" (kept so that both contracts stay tested): the emulator's first answers.
#   A missing job or build is 404 CB.00062001 on every route, the gateway's codes are spelled APIGW.
#   (the signing guide's spelling, API-NOTES §6) in a two-field body, a non-GET is 405. CB.00062001,
#   CB.00060403 and CB.00060500 are the emulator's own placeholders: no source documents them.
# * "real" (the default): what SERVICE-CONTRACTS.md says the service and its gateway answer, each rule below with
#   its source. Where the reference marks a behaviour unknown (?), the emulator picks one, says so,
#   and where cheap lets a setting choose another.

LEGACY_NOT_PUBLISHED = error_body("APIGW.0101", "The API does not exist or has not been published in the environment")
NOT_PUBLISHED = LEGACY_NOT_PUBLISHED  # the legacy name, kept for importers
INVALID_PARAM = error_body("CB.00060200", "Invalid param")  # DOC EN:ErrorCode, DEF ErrorResponseBody
RECORD_NOT_FOUND = error_body("CB.00062001", "build record not found")  # legacy placeholder, no source
# SERVICE-CONTRACTS has no row for a project id that does not match the token: this nested shape
# (API-NOTES §6: gateway errors "sometimes nested as {"error": {"code", "message"}}") and its code are
# the emulator's choice in both modes (?).
WRONG_PROJECT = {"error": {"code": "APIGW.0306", "message": "project id does not match the token"}}

# Codes with their documented HTTP status and meaning (SERVICE-CONTRACTS §8.2, §8.3). The messages
# are the emulator's wording of the documented meaning (the exact service texts are not recorded).
# (status, message, sources)
SERVICE_CODES = {
    "CB.00060100": (500, "Network busy, please try again later", "DOC EN:ErrorCode"),
    "CB.00060101": (500, "Internal service error", "DOC EN:ErrorCode"),
    "CB.00060200": (400, "Invalid param", "DOC EN:ErrorCode, DEF"),
    "CB.00060201": (400, "Invalid task ID", "DOC EN:ErrorCode"),
    "CB.00060202": (400, "Invalid service ID", "DOC EN:ErrorCode"),
    "CB.00060203": (400, "Invalid file name", "DOC EN:ErrorCode"),
    # 500 in the English list, 400 in the Chinese one (DOC EN:ErrorCode vs ZH:ErrorCode): 500 here,
    # a rule's "status" picks 400.
    "CB.00060211": (500, "Too many requests, please try again later", "DOC EN:ErrorCode (ZH: 400)"),
    "CB.00060212": (400, "The uploaded file is empty", "DOC EN:ErrorCode"),
    "CB.00060213": (400, "Too many files in one upload", "DOC EN:ErrorCode"),
    "CB.00060214": (404, "URL not found", "DOC EN:ErrorCode"),
    "DEVCB.00031006": (422, "The job does not exist", "LIVE, TF"),
    "CB.00031006": (422, "The job does not exist", "LIVE"),
    "CB.00031059": (403, "The task has not been built yet or its build history was deleted", "LIVE"),
    "CB.00030004": (500, "Calling the Octopus service failed", "LIVE"),
    "DEVCB.00030000": (422, "Request failed", "LIVE"),
    "DEV.CB.032011": (400, "Invalid task id", "LIVE"),
    "DEV.CB.032302": (400, "The task state was refreshed, reload and retry", "LIVE"),
    "CB.00031105": (400, "The query window exceeds 31 days", "LIVE (HTTP status not recorded: 400 is a guess)"),
    "APIG.0101": (404, "The API does not exist or has not been published in the environment",
                  "DOC signing-guide error table, LIVE"),
    "APIG.0201": (502, "Backend unavailable", "DOC signing-guide error table, APIG product table"),
    "APIG.0301": (401, "Incorrect IAM authentication information", "DOC APIG FAQ (401 itself is ?)"),
    "APIG.0303": (401, "Incorrect app authentication information", "DOC APIG FAQ (HTTP status ?)"),
    "APIG.0308": (429, "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second",
                  "DOC OCE/OCR FAQ"),
}
for _name in ("APIG.0101", "APIG.0201", "APIG.0301", "APIG.0303", "APIG.0308"):
    SERVICE_CODES["APIGW." + _name[5:]] = SERVICE_CODES[_name]  # the signing guide's spelling


def coded_error(code, request_id, message=None):
    """A documented error body for code: E2 {error_code, error_msg, request_id} for a gateway code
    (SERVICE-CONTRACTS §8.1 E2: the gateway's bodies carry request_id), else E1 {error_code, error_msg}
    (§8.1 E1: DOC EN:ErrorCode, DEF ErrorResponseBody)."""
    if message is None:
        message = SERVICE_CODES.get(code, (0, "Error", ""))[1]
    body = error_body(code, message)
    if code.startswith("APIG"):
        body["request_id"] = request_id
    return body


class Contract:
    """The error answers of one request, as the "errors" setting and the other settings choose them."""

    def __init__(self, settings, request_id):
        self.settings = settings
        self.real = settings["errors"] == "real"
        self.request_id = request_id

    def gateway(self, suffix, message=None, status=None):
        """A gateway error (SERVICE-CONTRACTS §8.3): real: APIG.<suffix> in the E2 body with request_id
        (§8.1 E2: "the code prefix in bodies is APIG."); legacy: APIGW.<suffix> in two fields."""
        code = ("APIG." if self.real else "APIGW.") + suffix
        default_status, default_message, _ = SERVICE_CODES[code]
        body = error_body(code, message or default_message)
        if self.real:
            body["request_id"] = self.request_id
        return Response(status or default_status, body)

    def not_published(self):
        # §8.3: APIG.0101 / 404 "API not found or not published (or wrong method)" (DOC, LIVE).
        return self.gateway("0101")

    def wrong_method(self):
        if self.real:
            # §8.3: the gateway answers a wrong method like an unknown API: 404 APIG.0101 (DOC).
            return self.not_published()
        return Response(405, error_body("CB.00060405", "Method not allowed: use GET"), {"Allow": "GET"})

    def auth_failure(self, reason):
        # §8.3: APIG.0301 for a missing/invalid/expired token, an AK/SK signature mismatch or an
        # unknown AK (DOC APIG FAQ); its HTTP status 401 is expected but not confirmed (?).
        return self.gateway("0301", "Incorrect IAM authentication information: " + reason)

    def missing_job(self, route):
        """A job (or record id) that does not exist."""
        if not self.real:
            return Response(404, RECORD_NOT_FOUND)
        if route.api == "v3":
            # §8.2: 422 CB.00031006 on v3 routes (LIVE: history-details, real-time-log; the other v3
            # routes the emulator serves answer the same by analogy, ?).
            return Response(422, coded_error("CB.00031006", self.request_id))
        # §8.2: 422 DEVCB.00031006 on v1 routes (LIVE: config, record info, full-stages, list, analysis,
        # ...; TF maps exactly this to "not found"). The other v1 routes and the v4 ones answer the
        # same here by analogy (?).
        return Response(422, coded_error("DEVCB.00031006", self.request_id))

    def missing_build(self, route):
        """A build number that does not exist on an existing job (never run, deleted, or not yet)."""
        if not self.real:
            return Response(404, RECORD_NOT_FOUND)
        if route.kind == "history-details":
            # §8.2: 403 CB.00031059 "not built yet or history deleted" (LIVE, v3 history-details).
            return Response(403, coded_error("CB.00031059", self.request_id))
        # Everywhere else (record-info v1/v3/v4 above all) the live answer is unknown (§8.2, §11 ?):
        # the "missing_build" setting picks one. Its default, "403", is the best guess the reference
        # allows: the only build-level answer observed live is 403 CB.00031059 (history-details), and
        # its meaning ("not built yet or history deleted") covers this case.
        choice = self.settings["missing_build"]
        if choice == "403":
            return Response(403, coded_error("CB.00031059", self.request_id))
        if choice == "422":
            code = "CB.00031006" if route.api == "v3" else "DEVCB.00031006"
            return Response(422, coded_error(code, self.request_id))
        if choice == "404":
            return Response(404, RECORD_NOT_FOUND)  # "404 with any code" (§11); this code is a placeholder
        # "empty" / "absent": HTTP 200 in the route's success envelope with an empty or no result.
        if route.family == "B":
            payload = {"success": True, "message": "", "err_code": ""}
        elif route.family == "A":
            payload = {"status": "success", "error": None}
        else:
            payload = {}
        if choice == "empty":
            payload["result"] = {}
        return Response(200, payload)

    def retired_at_backend(self):
        # §8.2: 404 CB.00060214 "URL not found (invalid URL path)" is the backend's answer to a path it
        # does not serve (DOC EN:ErrorCode); a route removed behind a gateway that still publishes it
        # would answer so (an inference: no source observed a retirement).
        return Response(404, coded_error("CB.00060214", self.request_id))

    def default_status_body(self, status):
        """The error body a fault rule sends with status when it gives none."""
        if status < 400:
            return ""
        if self.real:
            # The documented code for that status where one exists (§8.2, §8.3), else a placeholder
            # EMU.<status> that no client can mistake for a real code.
            known = {400: "CB.00060200", 401: "APIG.0301", 404: "CB.00060214", 413: "APIG.0201",
                     414: "APIG.0201", 429: "APIG.0308", 500: "CB.00060101", 502: "APIG.0201",
                     504: "APIG.0201"}
            if status in known:
                return coded_error(known[status], self.request_id)
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            return error_body("EMU.%d" % status, phrase)
        return default_status_body(status)


def auth_failure(reason):
    return error_body("APIGW.0301", "Incorrect IAM authentication information: " + reason)


def default_status_body(status):
    """The legacy error body a fault rule sends with status when it gives none."""
    if status < 400:
        return ""
    known = {
        400: INVALID_PARAM,
        401: auth_failure("injected fault"),
        403: error_body("CB.00060403", "Forbidden"),
        404: RECORD_NOT_FOUND,
        429: error_body("APIGW.0308", "The throttling threshold has been reached: policy user over ratelimit"),
        500: error_body("CB.00060500", "Internal error"),
    }
    if status in known:
        return known[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return error_body("CB.00060%d" % status, phrase)


# --------------------------------------------------------------------------------------------------
# Settings: what a test may switch, at start (command line, EMU_<NAME> environment variable) and at
# run time (POST /__emulator/settings). POST /__emulator/reset restores the start values.

SETTINGS = (
    # name, choices (the first is the default), what it selects
    ("errors", ("real", "legacy"), "the error contract: the real answers (SERVICE-CONTRACTS.md) or the emulator's old ones"),
    ("missing_build", ("403", "422", "404", "empty", "absent"),
     "real mode: a missing build where the live answer is unknown (record-info, logs, step status)"),
    ("retire_v3", ("off", "gateway", "backend"),
     "v3 retired: gateway = 404 APIG(W).0101 before authentication, backend = 404 CB.00060214 after"),
    ("retire_v4", ("off", "gateway", "backend"), "the same for v4"),
    ("gzip", (False, True), "log downloads honour Accept-Encoding: gzip"),
    ("running_has_more", (True, False), "real-time logs of a running build say more data is coming"),
)
SETTING_CHOICES = {name: choices for name, choices, _ in SETTINGS}
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def normalise_setting(name, value):
    """The canonical value of a setting, or ValueError."""
    if name not in SETTING_CHOICES:
        raise ValueError("unknown setting %r (known: %s)" % (name, ", ".join(SETTING_CHOICES)))
    choices = SETTING_CHOICES[name]
    if isinstance(choices[0], bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_WORDS:
            return True
        if isinstance(value, str) and value.lower() in FALSE_WORDS:
            return False
    else:
        if name.startswith("retire_") and isinstance(value, bool):
            value = "gateway" if value else "off"
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value in choices:
            return value
    raise ValueError("%s must be one of %s" % (name, ", ".join(str(c).lower() for c in choices)))


def start_settings(options, environ):
    """Defaults, then EMU_<NAME> variables, then the command line."""
    settings = {name: choices[0] for name, choices, _ in SETTINGS}
    for name in settings:
        value = environ.get("EMU_" + name.upper())
        if value is not None and value != "":
            settings[name] = normalise_setting(name, value)
    for name in settings:
        value = getattr(options, name, None)
        if value is not None:
            settings[name] = normalise_setting(name, value)
    for item in getattr(options, "set", None) or ():
        name, _, value = item.partition("=")
        settings[name] = normalise_setting(name, value)
    return settings


# --------------------------------------------------------------------------------------------------
# Fault rules


class RuleError(ValueError):
    pass


class FaultRule:
    """One fault rule (POST /__emulator/faults {"rules": [...]}).

    Matching (all optional): path_contains (substring of the path), job_id, build_no (int or list of
    ints), api ("v3", "v4", "v1"), kind (the path kind of stats' by_path_kind: "record-info",
    "real-time-log", "iam", ...). On the routes named by a record id (full-stages, download-log)
    job_id and build_no are those of the record. times: applies to the first N matching requests,
    then is spent. every: applies to every Nth matching request (the others fall through to later
    rules). The first live rule that matches and applies wins.

    Actions: status (status, body, headers), delay (seconds), reset, truncate, cut, stall (seconds: the
    whole body announced, half of it sent, then nothing for that long, then the connection closed),
    malformed (body), huge (bytes), deep (depth), api_fail (code, message, envelope, error_as, encode_twice),
    error (code, status, message, encode_twice), result (value: absent = no result), field (field,
    value or json), body (body, content_type), headers (headers). "headers" is also honoured by the
    other actions that send a response. A body's lone surrogates U+DC80..U+DCFF are the bytes
    0x80..0xFF (a log that is not UTF-8). See send_fault for what each sends.
    """

    ACTIONS = ("status", "delay", "reset", "truncate", "cut", "stall", "malformed", "huge", "deep", "api_fail",
               "error", "result", "field", "body", "headers")
    # Actions that shape the normal answer instead of replacing it.
    SHAPING = ("delay", "headers", "truncate", "cut", "stall", "result", "field")
    KEYS = {"action", "path_contains", "job_id", "build_no", "api", "kind", "times", "every", "status", "body",
            "headers", "seconds", "bytes", "depth", "code", "message", "content_type", "comment",
            "envelope", "error_as", "encode_twice", "value", "json", "field"}

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise RuleError("a rule must be a JSON object")
        unknown = sorted(set(spec) - self.KEYS)
        if unknown:
            raise RuleError("unknown rule keys: %s" % ", ".join(unknown))
        self.action = spec.get("action")
        if self.action not in self.ACTIONS:
            raise RuleError("action must be one of %s" % ", ".join(self.ACTIONS))
        self.path_contains = self._optional(spec, "path_contains", str)
        self.job_id = self._optional(spec, "job_id", str)
        self.api = self._optional(spec, "api", str)
        if self.api not in (None, "v1", "v3", "v4"):
            raise RuleError("api must be v1, v3 or v4")
        self.kind = self._optional(spec, "kind", str)
        if self.kind is not None and self.kind not in PATH_KINDS:
            raise RuleError("kind must be one of %s" % ", ".join(PATH_KINDS))
        build_no = spec.get("build_no")
        if build_no is None:
            self.build_nos = None
        elif isinstance(build_no, list) and all(self._is_int(item) for item in build_no):
            self.build_nos = set(build_no)
        elif self._is_int(build_no):
            self.build_nos = {build_no}
        else:
            raise RuleError("build_no must be an integer or a list of integers")
        self.times = self._positive(spec, "times")
        self.every = self._positive(spec, "every")
        self.status = spec.get("status", 500 if self.action == "status" else 200)
        if not self._is_int(self.status) or not 200 <= self.status <= 599:
            raise RuleError("status must be an integer from 200 to 599")
        self.status_given = "status" in spec
        self.body = spec.get("body")
        self.content_type = self._optional(spec, "content_type", str)
        self.headers = self._headers(spec.get("headers"))
        self.seconds = spec.get("seconds", 1.0)
        if not isinstance(self.seconds, (int, float)) or isinstance(self.seconds, bool) or self.seconds < 0:
            raise RuleError("seconds must be a number >= 0")
        self.bytes = self._positive(spec, "bytes") or 10 * 1024 * 1024
        self.depth = self._positive(spec, "depth") or 10000
        self.code = self._optional(spec, "code", str)
        self.message = self._optional(spec, "message", str)
        if self.action == "error" and not self.code:
            raise RuleError("an error rule needs a code")
        self.envelope = self._optional(spec, "envelope", str)
        if self.envelope not in (None, "E3", "E4"):
            raise RuleError("envelope must be E3 or E4")
        self.error_as = self._optional(spec, "error_as", str) or "object"
        if self.error_as not in ("object", "string"):
            raise RuleError("error_as must be object or string")
        self.encode_twice = spec.get("encode_twice", False)
        if not isinstance(self.encode_twice, bool):
            raise RuleError("encode_twice must be a boolean")
        self.has_value = "value" in spec
        self.value = spec.get("value")
        self.raw_json = self._optional(spec, "json", str)
        self.field = self._optional(spec, "field", str)
        if self.action == "field":
            if not self.field or any(not part for part in self.field.split(".")):
                raise RuleError('a field rule needs a field such as "result.last_build_no"')
            if not self.has_value and self.raw_json is None:
                raise RuleError("a field rule needs a value or json")
        self.seen = 0
        self.applied = 0

    @staticmethod
    def _is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    @staticmethod
    def _optional(spec, key, kind):
        value = spec.get(key)
        if value is not None and not isinstance(value, kind):
            raise RuleError("%s must be a %s" % (key, kind.__name__))
        return value

    def _positive(self, spec, key):
        value = spec.get(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not self._is_int(value) or value < 1:
            raise RuleError("%s must be a positive integer" % key)
        return value

    @staticmethod
    def _headers(headers):
        if headers is None:
            return {}
        if not isinstance(headers, dict):
            raise RuleError("headers must be an object")
        for name, value in headers.items():
            if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name):
                raise RuleError("bad header name %r" % name)
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise RuleError("header %s must be a string without CR/LF" % name)
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise RuleError("header %s must be latin-1" % name) from None
        return dict(headers)

    @property
    def spent(self):
        return self.times is not None and self.applied >= self.times

    def matches(self, path, route):
        if self.path_contains is not None and self.path_contains not in path:
            return False
        if self.job_id is not None and self.job_id != route.job_id:
            return False
        if self.api is not None and self.api != route.api:
            return False
        if self.kind is not None and self.kind != route.kind:
            return False
        if self.build_nos is not None and parse_positive_int(route.build_no) not in self.build_nos:
            return False
        return True

    def describe(self):
        return {"action": self.action, "times": self.times, "every": self.every, "seen": self.seen,
                "applied": self.applied, "spent": self.spent}


# --------------------------------------------------------------------------------------------------
# Shared state: counters and fault rules


class State:
    """Counters, fault rules and settings, shared by the connection threads and guarded by one lock.

    A connection counts in ``connections`` once per generation (a reset starts a new one), on its
    first API request, so that control calls never count and a kept-alive connection counts again
    after a reset.
    """

    def __init__(self, settings=None):
        self.lock = threading.Lock()
        self.issued_tokens = {}  # token -> expiry (epoch seconds), from the IAM emulation
        self.active = 0
        self.rules = []
        self.generation = 0
        self.initial_settings = dict(settings or {name: choices[0] for name, choices, _ in SETTINGS})
        self.settings = dict(self.initial_settings)
        self._clear_counters()

    def _clear_counters(self):
        self.generation += 1
        self.requests = 0
        self.accepted = 0
        self.connections = 0
        self.peak = self.active
        self.by_status = {}
        self.by_path_kind = dict.fromkeys(PATH_KINDS, 0)
        self.by_route = {}
        self.last = None

    def reset(self):
        """Counters, fault rules and settings as at start."""
        with self.lock:
            self._clear_counters()
            self.rules = []
            self.settings = dict(self.initial_settings)

    def reset_stats(self):
        with self.lock:
            self._clear_counters()

    def current_settings(self):
        with self.lock:
            return dict(self.settings)

    def update_settings(self, changes):
        """Apply {name: value}; all or nothing. Returns the settings now in force."""
        normalised = {name: normalise_setting(name, value) for name, value in changes.items()}
        with self.lock:
            self.settings.update(normalised)
            return dict(self.settings)

    def count_accepted(self):
        with self.lock:
            self.accepted += 1

    def begin_api(self, kind, key, last, connection_generation):
        """Count an API request; returns the counter generation its connection is now counted in."""
        with self.lock:
            if connection_generation != self.generation:
                self.connections += 1
            self.requests += 1
            self.by_path_kind[kind] += 1
            self.by_route[key] = self.by_route.get(key, 0) + 1
            self.last = last
            self.active += 1
            self.peak = max(self.peak, self.active)
            return self.generation

    def end_api(self):
        with self.lock:
            self.active -= 1

    def count_status(self, status):
        with self.lock:
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def add_rules(self, rules):
        with self.lock:
            self.rules.extend(rules)
            return len(self.rules)

    def clear_rules(self):
        with self.lock:
            self.rules = []

    def pick_fault(self, path, route):
        with self.lock:
            for rule in self.rules:
                if rule.spent or not rule.matches(path, route):
                    continue
                rule.seen += 1
                if rule.every and rule.seen % rule.every:
                    continue
                rule.applied += 1
                return rule
        return None

    def snapshot(self):
        with self.lock:
            return {
                "requests": self.requests, "connections": self.connections, "accepted": self.accepted,
                "active": self.active,
                "peak_concurrency": self.peak, "by_status": dict(self.by_status),
                "by_path_kind": dict(self.by_path_kind), "by_route": dict(self.by_route), "last": self.last,
            }

    def issue_token(self, lifetime):
        token = "emuIssued" + secrets.token_urlsafe(48)
        expires = time.time() + lifetime
        with self.lock:
            self.issued_tokens[token] = expires
        return token, expires

    def token_valid(self, token):
        with self.lock:
            for issued, expires in self.issued_tokens.items():
                if same_secret(token, issued):
                    return time.time() < expires
        return False

    def expire_tokens(self):
        """Every token issued so far stops working now (a token expiring in the middle of a batch)."""
        with self.lock:
            for token in self.issued_tokens:
                self.issued_tokens[token] = 0
            return len(self.issued_tokens)

    def rules_snapshot(self):
        with self.lock:
            return [rule.describe() for rule in self.rules]


# --------------------------------------------------------------------------------------------------
# Real-time logs
#
# The offset unit of the real service is unknown (SERVICE-CONTRACTS §5.2, §11 ?): the emulator counts
# bytes of the UTF-8 text, and never splits a character (a piece ends on a character boundary; a
# piece shorter than one character is stretched to that character). A client must only reuse the
# offsets the server returns, as the reference advises.


def real_time_log_v3(log, more_coming, offset, length):
    """DownloadRealTimeLog result {has_more_data, offset, content, current_offset} (PY/GO, DOC
    ZH:DownloadRealTimeLog, DEF): offset = where the next request starts ("can be used for the next
    request"), current_offset = where this one started (the reference's reading, an inference).
    has_more_data: more text is there already, or the build is still running and running_has_more is
    on (the default: the log will grow; whether the service says so is unknown, ?)."""
    piece = utf8_piece(log, offset, length) if offset < log.size else b""
    following = offset + len(piece)
    return {"has_more_data": following < log.size or more_coming, "offset": following,
            "content": piece.decode("utf-8", "replace"), "current_offset": offset}


def real_time_log_v1(log, more_coming, start, end, sort, size):
    """DownloadBuildRealTimeLog result {has_more, start_offset, end_offset, log, location}, the offsets as
    strings of digits (PY/GO, DEF). The semantics are unknown (?); the emulator's: AES (the default)
    sends up to size bytes from start_offset, never past end_offset when that is greater than
    start_offset, and answers end_offset = where the piece ends (the next start_offset); DESC sends the
    last size bytes before end_offset (or before the end) but not before start_offset, and has_more says
    whether text before them remains. location's meaning is unknown: "" here."""
    if sort == "DESC":
        high = min(log.size, end) if end is not None and end > start else log.size
        low = max(start, high - size)
        raw = log.read(low, high) if low < high else b""
        skip = 0
        while skip < len(raw) and raw[skip] & 0xC0 == 0x80:
            skip += 1
        return {"has_more": low + skip > start, "start_offset": str(low + skip), "end_offset": str(high),
                "log": raw[skip:].decode("utf-8", "replace"), "location": ""}
    limit = size if end is None or end <= start else min(size, end - start)
    piece = utf8_piece(log, start, limit) if start < log.size else b""
    following = start + len(piece)
    return {"has_more": following < log.size or more_coming, "start_offset": str(start),
            "end_offset": str(following), "log": piece.decode("utf-8", "replace"), "location": ""}


def accepts_gzip(header):
    """Whether an Accept-Encoding value accepts gzip (RFC 9110: a listed gzip without q=0)."""
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            quality = params.strip().replace(" ", "")
            return not re.match(r"^q=0(\.0*)?$", quality)
    return False


# --------------------------------------------------------------------------------------------------
# HTTP server

MAX_REQUEST_BODY = 8 * 1024 * 1024
JSON_TYPE = "application/json;charset=UTF-8"
STREAM_CHUNK = 64 * 1024


def encode_json(value):
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class Response:
    """What an API path answers before faults are applied."""

    def __init__(self, status, payload, headers=None):
        self.status = status
        self.payload = payload
        self.body = encode_json(payload)
        self.headers = dict(headers or {})


class StreamResponse:
    """A file answer streamed from a LogText (family D), with its length known beforehand, or gzip'd and
    sent chunked."""

    payload = None

    def __init__(self, status, log, content_type, headers=None, gzip=False):
        self.status, self.log, self.content_type = status, log, content_type
        self.headers = dict(headers or {})
        self.gzip = gzip


class EmulatorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, options, credentials, ssl_context, settings=None):
        self.options = options
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.state = State(settings)
        self.dataset = DataSet(options.seed, self.clock, getattr(options, "big_log_bytes", DEFAULT_BIG_LOG_BYTES))
        super().__init__(("127.0.0.1", options.port), EmulatorHandler)

    def clock(self):
        """The emulator's clock: the wall clock plus --clock-offset."""
        return time.time() + self.options.clock_offset

    def get_request(self):
        connection, address = super().get_request()
        self.state.count_accepted()
        return connection, address

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        # The TLS handshake runs here, in the connection's own thread, never in the accept loop.
        try:
            request.settimeout(10)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)

    def handle_error(self, request, client_address):
        if self.options.log:
            super().handle_error(request, client_address)


class EmulatorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "codeartsbuild-emulator/1"
    sys_version = ""
    timeout = 120
    request_id = None
    counts_status = False
    stall_seconds = 0  # a stall rule's silence, for send_stream
    counted_in_generation = None  # the stats generation in which this connection was counted

    # plumbing -------------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every response back by some 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def dispatch(self):
        """Every method lands here: control paths, else API paths (which answer 405 to non-GET)."""
        self.request_id = uuid.uuid4().hex
        self.counts_status = False
        path, _, query = self.path.partition("?")
        body = self.read_body()
        if body is None:
            return
        if path == "/__emulator" or path.startswith("/__emulator/"):
            self.handle_control(path, query, body)
        else:
            self.handle_api(path, query, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.options.log:
            sys.stderr.write("emulator: %s %s\n" % (self.address_string(), fmt % args))

    def date_time_string(self, timestamp=None):
        if timestamp is None:
            timestamp = time.time() + self.server.options.clock_offset
        return super().date_time_string(timestamp)

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, unknown method, ...) as JSON with a request id."""
        self.request_id = uuid.uuid4().hex
        self.counts_status = False
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self.send_bytes(code, encode_json(error_body("EMU.%d" % code, message or phrase)))

    def read_body(self):
        """The request body (bytes), or None after answering an unreadable one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked_body()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            self.send_error(400, "bad Content-Length")
            return None
        if int(length) > MAX_REQUEST_BODY:
            self.send_error(413, "request body too large")
            return None
        return self.rfile.read(int(length))

    def read_chunked_body(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.send_error(400, "bad chunk size")
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY:
                self.send_error(413, "request body too large")
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def send_head(self, status, length, content_type=JSON_TYPE, headers=None):
        """Status line and headers; length None: Transfer-Encoding: chunked."""
        headers = headers or {}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if not any(name.lower() == "x-request-id" for name in headers):
            self.send_header("X-Request-Id", self.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.counts_status:
            self.server.state.count_status(status)

    def send_bytes(self, status, body, content_type=JSON_TYPE, headers=None):
        self.send_head(status, len(body), content_type, headers)
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_json(self, status, payload, headers=None):
        self.send_bytes(status, encode_json(payload), headers=headers)

    def received_headers(self):
        headers = {}
        for name, value in self.headers.items():
            headers[name] = headers[name] + ", " + value if name in headers else value
        return headers

    # control paths --------------------------------------------------------------------------------
    def handle_control(self, path, query, body):
        state, method = self.server.state, self.command
        record = re.match(r"^/__emulator/record/([^/]+)/([^/]+)$", path)
        build_path = re.match(r"^/__emulator/(steps|log)/([^/]+)/([^/]+)$", path)
        if path == "/__emulator/stats" and method == "GET":
            self.send_json(200, state.snapshot())
        elif path == "/__emulator/reset" and method == "POST":
            state.reset()
            self.server.dataset.clear_runs()
            self.send_json(200, {"ok": True})
        elif path == "/__emulator/reset-stats" and method == "POST":
            state.reset_stats()
            self.send_json(200, {"ok": True})
        elif path == "/__emulator/settings" and method == "GET":
            self.send_json(200, {"settings": state.current_settings()})
        elif path == "/__emulator/settings" and method == "POST":
            try:
                changes = json.loads(body.decode("utf-8") or "null")
                if not isinstance(changes, dict):
                    raise ValueError('the body must be {"name": value, ...}')
                settings = state.update_settings(changes)
            except (ValueError, UnicodeDecodeError) as err:
                self.send_json(400, {"ok": False, "error": str(err)})
                return
            self.send_json(200, {"ok": True, "settings": settings})
        elif path == "/__emulator/faults" and method == "GET":
            self.send_json(200, {"rules": state.rules_snapshot()})
        elif path == "/__emulator/faults" and method == "POST":
            try:
                spec = json.loads(body.decode("utf-8") or "null")
                if not isinstance(spec, dict) or not isinstance(spec.get("rules"), list):
                    raise RuleError('the body must be {"rules": [rule, ...]}')
                rules = [FaultRule(item) for item in spec["rules"]]
            except (ValueError, UnicodeDecodeError) as err:
                self.send_json(400, {"ok": False, "error": str(err)})
                return
            self.send_json(200, {"ok": True, "rules": state.add_rules(rules)})
        elif path == "/__emulator/faults" and method == "DELETE":
            state.clear_rules()
            self.send_json(200, {"ok": True})
        elif path == "/__emulator/expire-tokens" and method == "POST":
            self.send_json(200, {"ok": True, "expired": state.expire_tokens()})
        elif path == "/__emulator/jobs" and method == "GET":
            dataset = self.server.dataset
            self.send_json(200, {"jobs": [
                {"job_id": job.job_id, "name": job.name, "builds": job.builds, "gaps": bool(job.gap_every),
                 "running_status": job.running_status, "last_build": dataset.last_build(job),
                 "steps": list(dataset.step_names(job)), "big_logs": list(job.big_logs)} for job in JOBS]})
        elif path == "/__emulator/builds" and method == "GET":
            self.send_json(200, {"builds": self.server.dataset.run_list()})
        elif path == "/__emulator/builds" and method == "POST":
            try:
                spec = json.loads(body.decode("utf-8") or "{}")
                run = self.start_run(spec)
            except (ValueError, UnicodeDecodeError) as err:
                self.send_json(400, {"ok": False, "error": str(err)})
                return
            self.send_json(200, {"ok": True, "job_id": run.job.job_id, "build_no": run.build_no,
                                 "build_record_id": run.record_id, "duration_ms": run.duration_ms,
                                 "steps": list(run.step_names)})
        elif path == "/__emulator/builds" and method == "DELETE":
            self.send_json(200, {"ok": True, "removed": self.server.dataset.clear_runs()})
        elif build_path and method == "GET":
            self.control_build(build_path.group(1), build_path.group(2), build_path.group(3), query)
        elif record and method == "GET":
            job = JOBS_BY_ID.get(record.group(1))
            build_no = parse_positive_int(record.group(2))
            found = job and build_no and self.server.dataset.record(job, build_no)
            if found:
                self.send_json(200, render_record(found, self.server.options.spelling, "v3"))
            else:
                self.send_json(404, RECORD_NOT_FOUND)
        elif path in ("/__emulator/stats", "/__emulator/reset", "/__emulator/faults", "/__emulator/jobs",
                      "/__emulator/reset-stats", "/__emulator/settings", "/__emulator/expire-tokens",
                      "/__emulator/builds") or record or build_path:
            self.send_json(405, {"ok": False, "error": "method not allowed"})
        else:
            self.send_json(404, {"ok": False, "error": "unknown control path"})

    def start_run(self, spec):
        """POST /__emulator/builds: start a build that runs on the emulator's clock."""
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        unknown = sorted(set(spec) - {"job_id", "steps", "step_seconds", "result", "fail_step", "lines_per_step"})
        if unknown:
            raise ValueError("unknown keys: %s" % ", ".join(unknown))
        dataset = self.server.dataset
        job = JOBS_BY_ID.get(spec.get("job_id", LOGS_JOB_ID))
        if job is None:
            raise ValueError("job_id must be one of the emulator's jobs")
        names = list(dataset.step_names(job))
        steps = spec.get("steps")
        if steps is None:
            steps = names
        elif isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 100:
            steps = [names[i % len(names)] + ("" if i < len(names) else " (%d)" % (i // len(names) + 1))
                     for i in range(steps)]
        elif not (isinstance(steps, list) and steps and all(isinstance(n, str) and n for n in steps)):
            raise ValueError("steps must be a count (1-100) or a list of step names")
        step_seconds = spec.get("step_seconds", 1.0)
        if (isinstance(step_seconds, bool) or not isinstance(step_seconds, (int, float))
                or not 0.01 <= step_seconds <= 3600):
            raise ValueError("step_seconds must be a number from 0.01 to 3600")
        result = spec.get("result", "SUCCESS")
        if result not in RUN_RESULTS:
            raise ValueError("result must be one of %s" % ", ".join(RUN_RESULTS))
        fail_step = spec.get("fail_step", len(steps))
        if isinstance(fail_step, bool) or not isinstance(fail_step, int) or not 1 <= fail_step <= len(steps):
            raise ValueError("fail_step must be a step position from 1 to %d" % len(steps))
        lines = spec.get("lines_per_step", 3)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 10000:
            raise ValueError("lines_per_step must be an integer from 1 to 10000")
        return dataset.start_run(job, tuple(steps), float(step_seconds), result, fail_step - 1, lines)

    def control_build(self, what, job_id, build_no, query):
        """GET /__emulator/steps/{job}/{n} (history-details' build_steps, and running) or
        GET /__emulator/log/{job}/{n}[?log_level=DEBUG] (the log as it is now, raw)."""
        job, number = JOBS_BY_ID.get(job_id), parse_positive_int(build_no)
        plan = job and number and self.server.dataset.plan(job, number)
        if not plan:
            self.send_json(404, {"ok": False, "error": "no such build"})
        elif what == "steps":
            self.send_json(200, {"build_steps": self.history_details(plan)["build_steps"], "running": plan.running,
                                 "status": plan.record["status"]})
        else:
            debug = dict(parse_query(query)).get("log_level") == "DEBUG"
            self.send_stream(StreamResponse(200, self.server.dataset.log(plan, debug), "text/plain;charset=UTF-8"),
                             {}, None)

    # API paths ------------------------------------------------------------------------------------
    def handle_api(self, path, query, body):
        route = route_for(path)
        state = self.server.state
        self.counted_in_generation = state.begin_api(
            route.kind, route_key(self.command, route),
            {"method": self.command, "path": path, "query": query, "headers": self.received_headers()},
            self.counted_in_generation)
        self.counts_status = True
        self.contract = Contract(state.current_settings(), self.request_id)
        try:
            route = self.resolve_record_route(route, query)
            rule = state.pick_fault(path, route)
            if rule is not None and rule.action == "delay":
                time.sleep(rule.seconds)
            if rule is None or rule.action in FaultRule.SHAPING:
                response = self.api_response(path, query, body, route)
                self.send_api_response(response, rule)
            else:
                self.send_fault(rule, route)
        finally:
            state.end_api()

    def resolve_record_route(self, route, query):
        """The route with job_id and build_no filled in where the path does not carry them, so that
        fault rules match on them: the record's job and build for record-id routes, the build_no query
        parameter for the step status."""
        if route.record_id is not None and RECORD_ID_RE.match(route.record_id):
            found = self.server.dataset.find_record(route.record_id)
            if found is not None:
                return route._replace(job_id=found[0].job_id, build_no=str(found[1]))
        elif route.kind == "step-status":
            return route._replace(build_no=dict(parse_query(query)).get("build_no"))
        return route

    def send_api_response(self, response, rule):
        """The normal answer, shaped by a truncate, cut, headers, result or field rule when one applies."""
        headers = dict(response.headers)
        if rule is not None:
            headers.update(rule.headers)
        if isinstance(response, StreamResponse):
            self.stall_seconds = rule.seconds if rule is not None else 0
            self.send_stream(response, headers, rule.action if rule is not None else None)
            return
        body = response.body
        if rule is not None and rule.action in ("result", "field"):
            body = self.shaped_body(response, rule)
        if rule is not None and rule.action == "truncate":
            body = body[:len(body) // 2]
        elif rule is not None and rule.action in ("cut", "stall"):
            self.close_connection = True
            self.send_head(response.status, len(body), headers=headers)
            if self.command != "HEAD":
                self.wfile.write(body[:len(body) // 2])
                if rule.action == "stall":
                    self.wfile.flush()
                    time.sleep(rule.seconds)
            return
        self.send_bytes(response.status, body, headers=headers)

    def send_stream(self, response, headers, action):
        """A file from a LogText, a block at a time: the process never holds more than a block of it.
        truncate: half the file, announced as such; cut: the whole announced, half sent, then closed."""
        log, size = response.log, response.log.size
        limit = size // 2 if action in ("truncate", "cut", "stall") else size
        if action in ("cut", "stall"):
            self.close_connection = True
        try:
            if not response.gzip:
                self.send_head(response.status, limit if action == "truncate" else size, response.content_type,
                               headers)
                if self.command != "HEAD":
                    for piece in log.chunks(0, limit):
                        self.wfile.write(piece)
                    if action == "stall":
                        self.wfile.flush()
                        time.sleep(self.stall_seconds)
                return
            headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            self.send_head(response.status, None, response.content_type, headers)
            if self.command == "HEAD":
                return
            compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip container
            for piece in log.chunks(0, limit):
                self.write_chunk(compressor.compress(piece))
            if action in ("cut", "stall"):
                if action == "stall":
                    self.write_chunk(compressor.flush(zlib.Z_SYNC_FLUSH))
                    self.wfile.flush()
                    time.sleep(self.stall_seconds)
                return  # no last chunk: the connection closes mid-body
            # truncate: the data so far, without the gzip trailer
            self.write_chunk(compressor.flush(zlib.Z_SYNC_FLUSH if action == "truncate" else zlib.Z_FINISH))
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ValueError):
            self.close_connection = True

    def write_chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    @staticmethod
    def shaped_body(response, rule):
        """A 2xx JSON object answer with its result replaced or removed (result rules) or one field set
        (field rules; json = raw JSON text, sent as it is). Other answers go unchanged."""
        if not (200 <= response.status < 300 and isinstance(response.payload, dict)):
            return response.body
        payload = copy.deepcopy(response.payload)
        if rule.action == "result":
            if rule.has_value:
                payload["result"] = rule.value
            else:
                payload.pop("result", None)
            return encode_json(payload)
        parts = rule.field.split(".")
        parent = payload
        for part in parts[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {}
            parent = parent[part]
        if rule.raw_json is None:
            parent[parts[-1]] = rule.value
            return encode_json(payload)
        marker = "@@emulator-raw-%s@@" % uuid.uuid4().hex
        parent[parts[-1]] = marker
        return encode_json(payload).replace(encode_json(marker), rule.raw_json.encode("utf-8"))

    def send_fault(self, rule, route):
        action, headers = rule.action, rule.headers
        if action == "reset":
            self.server.state.count_status("reset")
            self.reset_connection()
        elif action in ("status", "malformed", "body"):
            default_body, default_type = {
                "status": (self.contract.default_status_body(rule.status), JSON_TYPE),
                "malformed": ("<html><body>Bad Gateway</body></html>", "text/html"),
                "body": ("", JSON_TYPE),
            }[action]
            body = default_body if rule.body is None else rule.body
            # A lone surrogate U+DC80..U+DCFF stands for the byte 0x80..0xFF (surrogateescape): bodies
            # that are not UTF-8, such as a log file with invalid bytes.
            raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else encode_json(body)
            if rule.status in (204, 304):
                raw = b""
            self.send_bytes(rule.status, raw, rule.content_type or default_type, headers)
        elif action == "deep":
            raw = b'{"success": true, "result": ' + b"[" * rule.depth + b"]" * rule.depth + b"}"
            self.send_bytes(rule.status, raw, headers=headers)
        elif action == "api_fail":
            # E3 {status: "fail", error, result} (SERVICE-CONTRACTS §8.1: family A routes, v1/v4) or
            # E4 {success: false, err_code, message, result} (family B, v3 record-info; the bare v3
            # routes have no documented failure envelope: E4 there too, the emulator's choice).
            # error_as "string": the inner error as a string (the SDK models type it string on some
            # operations, DEF examples show "error": "error_message"); its content is then the message.
            code = rule.code or "CB.00060500"
            message = rule.message or "Internal error"
            envelope = rule.envelope or ("E3" if route.api in ("v1", "v4") or route.family == "A" else "E4")
            if envelope == "E3":
                error = message if rule.error_as == "string" else error_body(code, message)
                payload = {"status": "fail", "error": error, "result": None}
            else:
                payload = {"success": False, "err_code": code, "message": message, "result": None}
            self.send_fault_json(rule, rule.status, payload, headers)
        elif action == "error":
            # A documented code in its documented shape and status (SERVICE_CODES), or any code with the
            # rule's status (default 500). status 200 gives E5: an error body on HTTP 200 (TF
            # checkResponseError guards every call against it).
            known = SERVICE_CODES.get(rule.code)
            status = rule.status if rule.status_given else (known[0] if known else 500)
            payload = coded_error(rule.code, self.request_id, rule.message)
            self.send_fault_json(rule, status, payload, headers)
        elif action == "huge":
            self.send_huge(rule.status, rule.bytes, headers)

    def send_fault_json(self, rule, status, payload, headers):
        """payload as JSON; with encode_twice, as a JSON string holding that JSON (E6: LIVE saw error
        payloads "encoded inside a JSON string" on POST /v3/jobs/stop)."""
        if rule.encode_twice:
            payload = json.dumps(payload, ensure_ascii=False)
        self.send_json(status, payload, headers)

    def reset_connection(self):
        """Close at once with SO_LINGER 0, so the peer gets a TCP RST instead of a response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # rfile holds a reference to the socket: close both so the descriptor really closes now.
        self.rfile.close()
        self.connection.close()

    def send_huge(self, status, size, headers):
        """A JSON-looking body of exactly size bytes, streamed in chunks; quiet when the peer leaves."""
        prefix = b'{"success": true, "result": {"padding": "'
        suffix = b'"}}'
        if size < len(prefix) + len(suffix):
            prefix, suffix = b"", b""
        self.close_connection = True
        try:
            self.send_head(status, size, headers=headers)
            if self.command == "HEAD":
                return
            self.wfile.write(prefix)
            remaining = size - len(prefix) - len(suffix)
            chunk = b"x" * STREAM_CHUNK
            while remaining > 0:
                piece = chunk if remaining >= STREAM_CHUNK else chunk[:remaining]
                self.wfile.write(piece)
                remaining -= len(piece)
            self.wfile.write(suffix)
        except (OSError, ValueError):
            pass

    def api_response(self, path, query, body, route):
        """The answer of an API path, in this order: the gateway (unknown or retired route, method),
        authentication, the backend (retired route, parameters, data)."""
        options, dataset, contract = self.server.options, self.server.dataset, self.contract
        if route.kind == "iam":
            return self.iam_response(path, query, body)
        job = JOBS_BY_ID.get(route.job_id)
        retired = contract.settings.get("retire_" + str(route.api), "off")
        if route.kind == "other" or retired == "gateway":
            return contract.not_published()
        if route.kind == "running-status" and job is not None and not job.running_status:
            return contract.not_published()
        if self.command != "GET":
            return contract.wrong_method()
        denied = self.authenticate(path, query, body)
        if denied is not None:
            return denied
        if retired == "backend":
            return contract.retired_at_backend()
        if route.record_id is not None:
            # The routes named by a record id: the id must have the documented shape (DEF Record_Id);
            # an unknown one is answered like an unknown job (SERVICE-CONTRACTS §8.2: LIVE saw 422
            # DEVCB.00031006 for /v1/record/{id}/full-stages; download-log the same by analogy, ?).
            if not RECORD_ID_RE.match(route.record_id):
                return Response(400, INVALID_PARAM)
            if route.job_id is None:
                return contract.missing_job(route)
            return self.build_response(route, query, JOBS_BY_ID[route.job_id], int(route.build_no))
        if not JOB_ID_RE.match(route.job_id):
            return Response(400, INVALID_PARAM)
        build_no = None
        if route.kind in ("record-info", "history-details", "real-time-log"):
            build_no = parse_positive_int(route.build_no)
            if build_no is None:
                return Response(400, INVALID_PARAM)
        elif route.kind == "step-status":
            # build_no is optional, int32 >= 1, documented default 1 (PY/GO, DOC ShowJobStepStatus, DEF).
            build_no = 1 if route.build_no is None else parse_positive_int(route.build_no)
            if build_no is None:
                return Response(400, INVALID_PARAM)
        if job is None:
            return contract.missing_job(route)
        if route.kind in ("history-details", "step-status", "real-time-log"):
            return self.build_response(route, query, job, build_no)
        if route.kind == "record-info":
            record = dataset.record(job, build_no)
            if record is None:
                return contract.missing_build(route)
            result = render_record(record, options.spelling, route.api)
            if route.api == "v3":
                return Response(200, {"success": True, "message": "", "err_code": "", "result": result})
            return Response(200, {"status": "success", "error": None, "result": result})
        if route.kind == "running-status":
            last = dataset.last_build(job)
            newest = dataset.record(job, last)
            # ShowRunningStatus: last_build_no is a string (PY/GO model, DEF example "166").
            return Response(200, {"status": "success", "error": None, "result": {
                "last_build_no": str(last), "last_build_status": newest["status"],
                "is_running": newest["status"] == "RUNNING", "last_job_id": job.job_id}})
        if route.kind == "status":
            return Response(200, {"result": dataset.record(job, dataset.last_build(job))["status"] == "RUNNING"})
        return self.history_response(job, query)

    # steps and logs -------------------------------------------------------------------------------
    def build_response(self, route, query, job, build_no):
        """The answer of a route about one build: steps, stages, step status, logs."""
        params = dict(parse_query(query))
        checked = self.check_log_params(route, params)
        if isinstance(checked, Response):
            return checked
        dataset = self.server.dataset
        plan = dataset.plan(job, build_no)
        if plan is None:
            return self.contract.missing_build(route)
        if route.kind == "history-details":
            return Response(200, self.history_details(plan))
        if route.kind == "step-status":
            return Response(200, {"status": "success", "error": None, "result": self.step_status(plan)})
        if route.kind == "full-stages":
            return Response(200, {"status": "success", "error": None,
                                  "result": {"build_stages": self.full_stages(plan)}})
        if route.kind == "download-log":
            return self.download_response(plan, checked)
        log = dataset.log(plan)
        more_coming = plan.running and self.contract.settings["running_has_more"]
        answer = real_time_log_v3 if route.api == "v3" else real_time_log_v1
        return Response(200, {"status": "success", "error": None, "result": answer(log, more_coming, *checked)})

    @staticmethod
    def check_log_params(route, params):
        """The query of a log route as values, or a 400 Response (CB.00060200, DOC EN:ErrorCode)."""
        invalid = Response(400, INVALID_PARAM)
        if route.kind == "real-time-log" and route.api == "v3":
            # DownloadRealTimeLog: offset required, 0..2147483647; length optional, default 1000000
            # (PY/GO, DOC ZH:DownloadRealTimeLog, DEF).
            offset = parse_int(params.get("offset"), 0, INT32_MAX)
            length = parse_positive_int(params.get("length", "1000000"))
            return invalid if offset is None or length is None else (offset, length)
        if route.kind == "real-time-log":
            # DownloadBuildRealTimeLog: start_offset, end_offset ints >= 0 (optional in the SDK and the
            # 2026 ZH page); sort AES|DESC; size a string, required in the SDK, "default/fixed 1000" in
            # the DOC: absent means 1000 here (PY/GO, DOC ZH:DownloadBuildRealTimeLog, DEF).
            start = parse_int(params.get("start_offset", "0"), 0, INT32_MAX)
            end = params.get("end_offset")
            end = None if end is None else parse_int(end, 0, INT32_MAX)
            size = parse_positive_int(params.get("size", "1000"))
            sort = params.get("sort", "AES")
            if start is None or size is None or sort not in ("AES", "DESC") or ("end_offset" in params and end is None):
                return invalid
            return start, end, sort, size
        if route.kind == "download-log":
            # log_level INFO|DEBUG, default INFO; compress a boolean, default false (v1 only) (PY/GO,
            # DOC ZH:DownloadBuildFullLog, eu:DownloadBuildLog).
            level = params.get("log_level", "INFO")
            compress = params.get("compress", "false")
            if level not in ("INFO", "DEBUG") or compress not in ("true", "false"):
                return invalid
            return level == "DEBUG"
        return None

    def history_details(self, plan):
        """ShowHistoryDetails, bare (family C): PY/GO build_step, DOC EN:ShowHistoryDetails. build_steps:
        name, status running|success|error|"" ("" = not run), build_time in ms; parameters with secret
        values as "*". The step names and parameter names are the emulator's data."""
        record = plan.record
        steps = []
        for step in plan.steps:
            status, build_time = plan.step_state(step)
            steps.append({"name": step.name, "status": status, "build_time": build_time})
        return {"job_name": plan.job.name, "build_number": plan.build_no, "project_id": record["devcloudProjectId"],
                "project_name": "emulator-" + plan.job.name,
                "parameters": {"codeBranch": record["branch"], "BUILD_VERSION": "1.0.%d" % plan.build_no,
                               "RELEASE_TOKEN": "*"},
                "build_steps": steps}

    @staticmethod
    def step_status(plan):
        """ShowJobStepStatus result {status, abort_status, label} (PY/GO, DEF examples "success",
        "aborted", "default-x86-2u8g"). Which values status and abort_status take besides the examples is
        unknown (?): the record's status in lower case, and "aborted" or "" for abort_status."""
        status = plan.record["status"]
        return {"status": status.lower(), "abort_status": "aborted" if status == "ABORTED" else "",
                "label": "default-x86-2u8g"}

    def full_stages(self, plan):
        """ShowBuildRecordFullStages result.build_stages: a map of BuildStageRecord (PY/GO
        full_stages_result, build_stage_record). LIVE saw an empty {} for failed records: so here. The
        map key's meaning is unknown (?): the stage's execution_stage_name "stageN" (N = step position
        from 1, as the task-log routes name steps, DOC EN:DownloadTaskLogNew). Status values, status_code
        and log_status are unknown (?): upper-case statuses like the record's, the other two null."""
        if plan.record["status"] == "FAILED":
            return {}
        record, stages = plan.record, {}
        for i, step in enumerate(plan.steps):
            status, build_time = plan.step_state(step)
            if step.outcome is None or plan.elapsed_ms < step.start_ms:
                continue
            finished = status != "running"
            started = format_time(plan.start + step.start_ms / 1000.0)
            ended = format_time(plan.start + (step.start_ms + step.duration_ms) / 1000.0) if finished else None
            stages["stage%d" % (i + 1)] = {
                "id": self.server.dataset._uuid(plan.job.job_id, plan.build_no, "stage", i),
                "status": "RUNNING" if not finished else {"success": "SUCCESS", "error": "FAILED",
                                                          "aborted": "ABORTED"}[step.outcome],
                "status_code": None, "log_status": None,
                "create_time": started, "schedule_time": started, "queued_time": started, "start_time": started,
                "finish_time": ended,
                "duration": build_time, "build_duration": build_time, "pending_duration": 0,
                "build_record_id": record["buildRecordId"], "execution_id": record["executionId"],
                "execution_stage_name": "stage%d" % (i + 1), "display_name": step.name,
                "node_id": i + 1, "sequence": i + 1,
            }
        return stages

    def download_response(self, plan, debug):
        """DownloadBuildFullLog / DownloadBuildLog: the file, application/octet-stream (family D: DEF
        produces, TF, PY/GO stream responses). Unknowns (?): the log of a build still running (here: what
        it has logged so far); compress=true's container (zip/gzip is unknown: the emulator does not
        invent one and sends the plain text, as for compress=false). Whether the service honours
        Accept-Encoding: gzip is unknown too: the gzip setting (off by default) answers it with
        Content-Encoding: gzip, so that a client can be tested both ways."""
        log = self.server.dataset.log(plan, debug)
        gzip = self.contract.settings["gzip"] and accepts_gzip(self.headers.get("Accept-Encoding", ""))
        return StreamResponse(200, log, "application/octet-stream", gzip=gzip)

    # IAM (the identity service, played on the same port) -------------------------------------------
    def iam_response(self, path, query, body):
        if path == IAM_TOKENS_PATH:
            if self.command != "POST":
                return Response(405, error_body("IAM.0001", "Method not allowed: use POST"), {"Allow": "POST"})
            return self.iam_token_response(body)
        if self.command != "GET":
            return Response(405, error_body("IAM.0001", "Method not allowed: use GET"), {"Allow": "GET"})
        denied = self.authenticate(path, query, body)
        if denied is not None:
            return denied
        name = dict(parse_query(query)).get("name")
        projects = [{"id": self.server.credentials.project_id, "name": name, "enabled": True}] if name else []
        return Response(200, {"projects": projects, "links": {"self": path}})

    def iam_token_response(self, body):
        """POST /v3/auth/tokens with a password identity scoped to a project, as IAM takes it."""
        creds = self.server.credentials
        try:
            request = json.loads(body.decode("utf-8"))
            identity = request["auth"]["identity"]
            user = identity["password"]["user"]
            scope_name = request["auth"]["scope"]["project"]["name"]
            given = (user["name"], user["password"], user["domain"]["name"])
            if "password" not in identity["methods"] or not all(isinstance(v, str) for v in given):
                raise ValueError("not a password identity")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return Response(400, {"error": {"code": 400, "message": "The request body is invalid.", "title": "Bad Request"}})
        if not (same_secret(given[0], creds.iam_user) and same_secret(given[1], creds.iam_password)
                and same_secret(given[2], creds.iam_domain)):
            return Response(401, {"error": {"code": 401, "message": "The username or password is wrong.",
                                            "title": "Unauthorized"}})
        token, expires = self.server.state.issue_token(self.server.options.token_lifetime)
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000000Z"  # noqa: E731
        return Response(201, {"token": {
            "expires_at": stamp(expires), "issued_at": stamp(time.time()), "methods": ["password"],
            "project": {"id": creds.project_id, "name": scope_name},
            "user": {"name": given[0], "domain": {"name": given[2]}}}}, {"X-Subject-Token": token})

    def history_response(self, job, query):
        params = dict(parse_query(query))
        offset = parse_int(params.get("offset"), 0, INT32_MAX)
        limit = parse_positive_int(params.get("limit"), 100)
        interval = parse_positive_int(params.get("interval"), 30)
        if offset is None or limit is None or interval is None:
            return Response(400, INVALID_PARAM)
        page, total = self.server.dataset.history(job, offset, limit, interval)
        return Response(200, {"history_records": page, "total": total})

    # authentication -------------------------------------------------------------------------------
    def authenticate(self, path, query, body):
        """None when the request may proceed, else the 401/403 Response."""
        creds = self.server.credentials
        token = self.headers.get("X-Auth-Token")
        authorization = self.headers.get("Authorization")
        if token is not None and (same_secret(token, creds.token) or self.server.state.token_valid(token)):
            reason = None
        elif authorization is not None:
            reason = self.signature_problem(path, query, body, authorization)
        elif token is not None:
            reason = "invalid token"
        else:
            reason = "missing token"
        if reason is not None:
            return self.contract.auth_failure(reason)
        project_id = self.headers.get("X-Project-Id")
        if project_id is not None and not same_secret(project_id, creds.project_id):
            return Response(403, WRONG_PROJECT)
        return None

    def signature_problem(self, path, query, body, authorization):
        """None when the SDK-HMAC-SHA256 signature verifies, else the reason (never a secret)."""
        parsed = parse_authorization(authorization)
        if parsed is None:
            return "malformed Authorization header"
        access_key, signed_headers, signature = parsed
        key = self.server.credentials.secret_key_for(access_key)
        if key is None:
            return "unknown access key"
        secret_key, needs_security_token = key
        if any(name != name.lower() or not name for name in signed_headers):
            return "SignedHeaders must be lower-case names"
        headers = {}
        for name in signed_headers:
            value = self.headers.get(name)
            if value is None:
                return "signed header %s is missing" % name
            headers[name] = value
        problem = self.date_problem(headers.get("x-sdk-date"))
        if problem:
            return problem
        if needs_security_token:
            token = self.headers.get("X-Security-Token")
            if token is None:
                return "missing x-security-token for temporary credentials"
            if "x-security-token" not in headers:
                return "x-security-token is not signed"
            if not same_secret(token, self.server.credentials.security_token):
                return "invalid security token"
        if self.headers.get("X-Project-Id") is not None and "x-project-id" not in headers:
            return "x-project-id is not signed"
        payload_hash = sha256_hex(body)
        if self.headers.get("X-Sdk-Content-Sha256") == UNSIGNED_PAYLOAD:
            payload_hash = UNSIGNED_PAYLOAD
        _, _, expected = compute_signature(secret_key, self.command, path, parse_query(query), headers,
                                           signed_headers, payload_hash)
        if not hmac.compare_digest(signature.encode("ascii"), expected.encode("ascii")):
            return "signature mismatch"
        return None

    def date_problem(self, sdk_date):
        if sdk_date is None:
            return "x-sdk-date is not signed"
        try:
            signed_at = calendar.timegm(time.strptime(sdk_date.strip(), DATE_FORMAT))
        except ValueError:
            return "invalid x-sdk-date"
        skew = signed_at - (time.time() + self.server.options.clock_offset)
        if skew < -DATE_WINDOW_SECONDS:
            return "x-sdk-date expired"
        if skew > DATE_WINDOW_SECONDS:
            return "x-sdk-date is too far in the future"
        return None


# --------------------------------------------------------------------------------------------------
# Process life


def process_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def write_ready_file(path, info):
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".ready-", dir=directory)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    os.replace(temp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="CodeArts Build API emulator (tests only; binds 127.0.0.1).")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--ready-file", help="write {port, pid, scheme, url} here once listening")
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--spelling", choices=("camel", "snake"), default="camel", help="record key spelling")
    parser.add_argument("--seed", type=int, default=1, help="data set seed")
    parser.add_argument("--parent-pid", type=int, help="exit once this process is gone")
    parser.add_argument("--max-lifetime", type=float, default=3600.0, help="exit after this many seconds (0: never)")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="seconds added to the emulator's clock")
    parser.add_argument("--retire-v3", nargs="?", const="gateway", choices=("off", "gateway", "backend"),
                        help="retire every /v3/ path: at the gateway (the default mode: 404 APIG(W).0101) or at "
                             "the backend (404 CB.00060214 after authentication)")
    parser.add_argument("--retire-v4", nargs="?", const="gateway", choices=("off", "gateway", "backend"),
                        help="the same for /v4/ paths")
    parser.add_argument("--errors", choices=SETTING_CHOICES["errors"],
                        help="error contract: real (default: SERVICE-CONTRACTS.md) or legacy (the old answers)")
    parser.add_argument("--missing-build", dest="missing_build", choices=SETTING_CHOICES["missing_build"],
                        help="real mode: a missing build where the live answer is unknown (default 403)")
    parser.add_argument("--gzip", action="store_const", const=True,
                        help="log downloads honour Accept-Encoding: gzip")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="any setting (repeatable)")
    parser.add_argument("--big-log-bytes", type=int, default=DEFAULT_BIG_LOG_BYTES,
                        help="size of the big log (job logs, build 3), 1 KiB to 500 MiB (default 50 MiB)")
    parser.add_argument("--token-lifetime", type=float, default=86400.0,
                        help="seconds an IAM token issued by POST /v3/auth/tokens stays valid")
    parser.add_argument("--quiet", action="store_true", help="no access log (the default)")
    parser.add_argument("--log", action="store_true", help="access log on stderr (request line and status)")
    parser.add_argument("--check-vectors", metavar="FILE", help="check the signer against a vectors file")
    parser.add_argument("--make-certs", metavar="DIR", help="make test certificates in DIR, print their paths")
    options = parser.parse_args(argv)
    if bool(options.tls_cert) != bool(options.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    options.log = options.log and not options.quiet
    if not 1024 <= options.big_log_bytes <= 500 * 1024 * 1024:
        parser.error("--big-log-bytes must be from 1024 to 524288000")
    try:
        options.settings = start_settings(options, os.environ)
    except ValueError as err:
        parser.error(str(err))
    return options


def serve(options):
    ssl_context = None
    if options.tls_cert:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(options.tls_cert, options.tls_key)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = EmulatorServer(options, Credentials(os.environ), ssl_context, options.settings)
    port = server.server_address[1]
    scheme = "https" if ssl_context else "http"
    info = {"port": port, "pid": os.getpid(), "scheme": scheme, "url": "%s://127.0.0.1:%d" % (scheme, port)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    if options.ready_file:
        write_ready_file(options.ready_file, info)
    try:
        print(json.dumps(info), flush=True)
    except OSError:
        pass
    deadline = time.monotonic() + options.max_lifetime if options.max_lifetime > 0 else None
    while not stop.wait(0.5):
        if options.parent_pid and not process_alive(options.parent_pid):
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
    server.shutdown()
    server.server_close()
    return 0


def main(argv=None):
    options = parse_args(argv)
    if options.check_vectors:
        return check_vectors(options.check_vectors)
    if options.make_certs:
        try:
            paths = make_certs(options.make_certs)
        except (CertError, OSError) as err:
            sys.stderr.write("emulator: cannot make certificates: %s\n" % err)
            return 1
        print(json.dumps(paths))
        return 0
    return serve(options)


if __name__ == "__main__":
    sys.exit(main())
