---@meta codeartsbuild.core
-- Type stubs for the C module, for lua-language-server (never loaded at run time). Add this
-- folder to `Lua.workspace.library` (lazy.nvim and lua_ls users: the plugin's `types/`).

---@class codeartsbuild.Error
---@field kind "invalid"|"config"|"auth"|"not_found"|"throttled"|"http"|"api"|"network"|"timeout"|"tls"|"decode"
---@field message string same as the second return value, and tostring(err)
---@field status integer|nil HTTP status, when a response came
---@field code string|nil the service's or gateway's error code
---@field request_id string|nil X-Request-Id of the response
---@field retryable boolean whether trying again later may succeed
---@field attempts integer requests sent for this call (0: nothing was sent)
---@field job_id string|nil
---@field build_no integer|nil

---@class codeartsbuild.Record
---@field id string|nil
---@field buildProjectId string|nil
---@field buildRecordId string|nil
---@field parentRecordId string|nil
---@field devcloudProjectId string|nil
---@field codeciJobId string|nil
---@field userId string|nil
---@field buildNo integer|nil
---@field dailyBuildNum string|nil
---@field executionId string|nil
---@field repoName string|nil
---@field repoId string|nil
---@field branch string|nil
---@field tag string|nil
---@field commit string|nil
---@field commitMessage string|nil
---@field commitCreateTime string|nil
---@field triggerType string|nil MANUAL, TIMED_EXECUTION, CODEHUB_TRIGGER, PIPELINE_TRIGGER
---@field buildType string|nil branch, tag, commitId
---@field status string|nil SUCCESS, FAILED, ABORTED, RUNNING, ...
---@field domainId string|nil
---@field createTime string|nil
---@field scheduleTime string|nil
---@field queuedTime string|nil
---@field startTime string|nil
---@field runnableTime string|nil
---@field finishTime string|nil
---@field duration number|nil milliseconds
---@field recordStatus string|nil
---@field usePrivateSlave integer|nil
---@field region string|nil
---@field errMsg string|nil
---@field buildConfigType string|nil YAML or ACTION

---@class codeartsbuild.Result
---@field id integer the request id submit() returned
---@field job_id string|nil record requests
---@field build_no integer|nil record requests
---@field path string|nil submit_get requests
---@field record codeartsbuild.Record|nil
---@field body table|nil submit_get requests
---@field bytes integer|nil streamed requests (submit_get{stream = true}): the body's size, read with read()
---@field message string|nil
---@field err codeartsbuild.Error|nil

---@class codeartsbuild.Options
---@field region string|nil
---@field endpoint string|nil
---@field ak string|nil
---@field sk string|nil
---@field project_id string|nil
---@field security_token string|nil
---@field token string|nil
---@field ca_file string|nil
---@field insecure boolean|nil
---@field allow_http boolean|nil
---@field timeout number|nil seconds, one attempt (30)
---@field connect_timeout number|nil seconds (10)
---@field max_body integer|nil bytes (4 MiB)
---@field user_agent string|nil
---@field api "auto"|"v3"|"v4"|"v1"|nil
---@field retries integer|nil (3)
---@field backoff number|nil seconds (0.2)
---@field max_backoff number|nil seconds (20)
---@field concurrency integer|nil requests in flight (64)
---@field rate number|nil requests started per second
---@field iam {user: string, password: string, domain: string, project: string|nil}|nil
---@field iam_endpoint string|nil
---@field on_event fun(event: table)|nil

---@class codeartsbuild.Client
local Client = {}

---@param job_id string 32 letters or digits
---@param build_no integer|string 1 to 2147483647
---@return codeartsbuild.Record|nil record
---@return string|nil message
---@return codeartsbuild.Error|nil err
function Client:record_info(job_id, build_no) end

---@class codeartsbuild.SubmitOptions
---@field hold boolean|nil a held request: poll() never returns it, its owner take()s it
---@field after number|nil milliseconds (0 to 86400000) before it may start
---@field stream boolean|nil submit_get only: held, and a file body goes to read(id) a piece at a time

---@param job_id string
---@param build_no integer|string
---@param options codeartsbuild.SubmitOptions|nil hold, after
---@return integer|nil id
---@return string|nil message
---@return codeartsbuild.Error|nil err
function Client:submit(job_id, build_no, options) end

---@param path string
---@param query table|nil
---@param options codeartsbuild.SubmitOptions|nil hold, after, stream
---@return integer|nil id
---@return string|nil message
---@return codeartsbuild.Error|nil err
function Client:submit_get(path, query, options) end

--- A streamed request's next piece (a string of at most 64 KiB), or its entry once every byte was
--- read and it is done ({id, path, bytes} or {id, path, message, err}), or nil when timeout_ms passed.
---@param id integer
---@param timeout_ms number|nil 0: never wait; nil: until there is something
---@return string|codeartsbuild.Result|nil
function Client:read(id, timeout_ms) end

---@param timeout_ms number|nil 0: never wait; nil: until one is done
---@return codeartsbuild.Result[]
function Client:poll(timeout_ms) end

---@param id integer a request id this client issued
---@param timeout_ms number|nil 0: never wait; nil: until it is done
---@return codeartsbuild.Result|nil entry nil while it is not done
function Client:take(id, timeout_ms) end

---@param which "held"|"all"|nil nil: the requests poll() will return
---@return integer
function Client:pending(which) end

---@param id integer
---@return boolean
function Client:cancel(id) end

---@param path string
---@param query table|nil
---@return table|nil body
---@return string|nil message
---@return codeartsbuild.Error|nil err
function Client:get(path, query) end

---@return table settings without secrets
function Client:info() end

function Client:close() end

local core = {}

---@type string
core.version = ""
---@type "cjson"|"vim.json"
core.json = "cjson"
---@type string[]
core.regions = {}
---@type string[] the record's 33 fields, camelCase, in the reference page's order
core.fields = {}
---@type {name: string, what: string}[] the environment variables the module reads
core.environment = {}
---@type integer 2147483647
core.MAX_BUILD_NO = 2147483647
---@type table the methods of every client
core.client_methods = {}
---@type table the metatable every record shares
core.record_metatable = {}

---@param job_id string
---@param caller string|nil the name a failure's message begins with
---@return true|nil ok
---@return string|nil message
---@return codeartsbuild.Error|nil err
function core.check_job_id(job_id, caller) end

---@param build_no number|string
---@param caller string|nil the name a failure's message begins with
---@return integer|nil build_no
---@return string|nil message
---@return codeartsbuild.Error|nil err
function core.check_build_no(build_no, caller) end

---@param ms number|nil milliseconds
---@return string e.g. "52.3s", "4m43s", "1h02m", "-"
function core.format_duration(ms) end

---Makes a directory only this user may use (mode 0700, parents too), or checks that one is.
---@param path string
---@return true|nil ok
---@return string|nil message
function core.private_dir(path) end

---The regular files directly in a directory (symbolic links not followed).
---@param path string
---@return {name: string, size: integer, time: number}[]|nil files
---@return string|nil message
function core.dir_files(path) end

---Whether a file descriptor of this process (0, 1, 2) is a terminal.
---@param fd integer
---@return boolean
function core.isatty(fd) end

---@param options codeartsbuild.Options|nil
---@return codeartsbuild.Client|nil client
---@return string|nil message
---@return codeartsbuild.Error|nil err
function core.new(options) end

---@param job_id string
---@param build_no integer|string
---@return codeartsbuild.Record|nil record
---@return string|nil message
---@return codeartsbuild.Error|nil err
function core.record_info(job_id, build_no) end

---@return codeartsbuild.Client|nil client
---@return string|nil message
---@return codeartsbuild.Error|nil err
function core.default_client() end

--- Seconds on a monotonic clock, with a fraction.
---@return number
function core.monotonic() end

---@param request {method: string|nil, path: string, query: table|nil, headers: table<string,string>|nil, body: string|nil, ak: string, sk: string}
---@return string authorization
---@return string canonical_request
---@return string string_to_sign
---@return string sdk_date
function core.sign(request) end

---@param fields {kind: string, message: string}
---@return codeartsbuild.Error
function core.error(fields) end

return core
