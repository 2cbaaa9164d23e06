-- Reading record-info bodies: the client reads a plain successful body straight into the record
-- (csrc/record.c, cb_record_read) and hands every other body to lua-cjson and the general
-- normalisation. Whichever path a body takes, the record must be the same; spec/fuzz/fuzz_record.c
-- checks that on millions of generated bodies, and these tests pin down the cases at the edges of
-- the direct reader (escapes, both spellings, unknown fields, envelopes) through the real client
-- and the emulator.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

local function fetch_body(emu, client, body)
  emu:clear_faults()
  emu:faults{ { action = "body", body = body } }
  local ok, rec, msg, err = pcall(client.record_info, client, JOB, 61)
  assert.is_true(ok, "record_info raised: " .. tostring(rec))
  return rec, msg, err
end

local function envelope(result)
  return '{"success": true, "message": "", "err_code": "", "result": ' .. result .. "}"
end

-- What math.type says of an integer field: "integer" on 5.3+, plain "number" before.
local INTEGER = math.type and "integer" or "number"
local function math_type(n)
  if math.type then return math.type(n) end
  return type(n)
end

describe("reading record-info bodies", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    client = clients.token(emu, { retries = 0 })
  end)

  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
  end)

  it("reads the emulator's own body into a record with the record metatable", function()
    emu:clear_faults()
    local rec, msg = client:record_info(JOB, 61)
    assert.is_table(rec, msg)
    assert.are.equal(cb.core.record_metatable, getmetatable(rec))
    assert.are.equal(61, rec.buildNo)
    assert.are.equal(INTEGER, math_type(rec.buildNo))
    assert.are.equal(rec.buildNo, rec.build_no)
  end)

  it("decodes the simple escapes of strings and leaves \\u escapes to lua-cjson", function()
    local rec, msg = fetch_body(emu, client, envelope(
      [[{"buildNo": 61, "commitMessage": "a\"b\\c\/d\be\ff\ng\rh\ti", "branch": "caf\u00e9 \ud83d\ude00"}]]))
    assert.is_table(rec, msg)
    assert.are.equal('a"b\\c/d\be\ff\ng\rh\ti', rec.commitMessage)
    assert.are.equal("caf\195\169 \240\159\152\128", rec.branch)
  end)

  it("refuses an unknown escape, as lua-cjson does", function()
    local rec, msg, err = fetch_body(emu, client, envelope([[{"buildNo": 61, "branch": "a\qb"}]]))
    assert.is_nil(rec)
    assert.is_true(cb.is_error(err, "decode"), msg)
  end)

  it("lets the camelCase spelling win over snake_case in either order, and fills in from snake_case", function()
    for _, result in ipairs{
      [[{"build_no": 7, "buildNo": 61, "commit_message": "snake", "repoName": null, "repo_name": "r"}]],
      [[{"buildNo": 61, "build_no": 7, "commit_message": "snake", "repo_name": "r", "repoName": null}]],
    } do
      local rec, msg = fetch_body(emu, client, envelope(result))
      assert.is_table(rec, msg)
      assert.are.equal(61, rec.buildNo)
      assert.are.equal("snake", rec.commitMessage)
      assert.are.equal("r", rec.repoName)
      assert.is_nil(rawget(rec, "build_no"))
      assert.is_nil(rawget(rec, "commit_message"))
    end
  end)

  it("keeps the last of a spelling given twice, nulls included, as lua-cjson does", function()
    local rec, msg = fetch_body(emu, client,
      envelope([[{"buildNo": 61, "branch": "a", "branch": null, "tag": "x", "tag": "y"}]]))
    assert.is_table(rec, msg)
    assert.is_nil(rec.branch)
    assert.are.equal("y", rec.tag)
  end)

  it("converts numbers and numeric strings as the field's type says", function()
    local rec, msg = fetch_body(emu, client, envelope(
      [[{"buildNo": "61", "usePrivateSlave": 1.0, "duration": 52.5e3, "dailyBuildNum": 20221103.5, "repoId": -0}]]))
    assert.is_table(rec, msg)
    assert.are.equal(61, rec.buildNo)
    assert.are.equal(INTEGER, math_type(rec.buildNo))
    assert.are.equal(1, rec.usePrivateSlave)
    assert.are.equal(INTEGER, math_type(rec.usePrivateSlave))
    assert.are.equal(52500, rec.duration)
    assert.are.equal("20221103.5", rec.dailyBuildNum)
    assert.are.equal("-0", rec.repoId)
  end)

  it("names the field whose value cannot be converted", function()
    local rec, msg, err = fetch_body(emu, client, envelope([[{"buildNo": 61.5}]]))
    assert.is_nil(rec)
    assert.is_true(cb.is_error(err, "decode"), msg)
    assert.is_truthy(msg:find("buildNo", 1, true), msg)
  end)

  it("keeps unknown fields as they came: strings, numbers, booleans, nested tables, without nulls", function()
    local rec, msg = fetch_body(emu, client, envelope(
      [[{"buildNo": 61, "x_text": "t", "x_number": 5, "x_true": true, "x_false": false, "x_null": null}]]))
    assert.is_table(rec, msg)
    assert.are.equal("t", rec.x_text)
    assert.are.equal(5, rec.x_number)
    assert.is_true(rec.x_true)
    assert.is_false(rec.x_false)
    assert.is_nil(rec.x_null)
    rec, msg = fetch_body(emu, client, envelope([[{"buildNo": 61, "x_nested": {"a": [1, null, 2], "n": null}}]]))
    assert.is_table(rec, msg)
    assert.are.same({ a = { [1] = 1, [3] = 2 } }, rec.x_nested)
  end)

  it("reads any envelope layout: members in any order, nested members, spaces, v1/v4 status", function()
    for _, body in ipairs{
      '{"result": {"buildNo": 61}, "success": true}',
      ' \r\n\t{ "error" : { "code" : [ 1 , {"a": null} ] } , "result" : { "buildNo" : 61 } } \n',
      '{"status": "success", "error": null, "result": {"buildNo": 61}}',
      '{"results": {"buildNo": 1}, "success": true, "result": {"buildNo": 61}, "resul": 1}',
    } do
      local rec, msg = fetch_body(emu, client, body)
      assert.is_table(rec, msg)
      assert.are.equal(61, rec.buildNo)
    end
  end)

  it("reports a failure the envelope states, wherever the verdict stands", function()
    for _, body in ipairs{
      '{"result": {"buildNo": 61}, "success": false, "err_code": "CB.1", "message": "no"}',
      '{"result": {"buildNo": 61}, "status": "fail", "error": {"error_code": "CB.1", "error_msg": "no"}}',
    } do
      local rec, msg, err = fetch_body(emu, client, body)
      assert.is_nil(rec)
      assert.is_true(cb.is_error(err, "api"), msg)
      assert.are.equal("CB.1", err.code)
    end
  end)

  it("refuses bodies that are not one JSON object with a result object", function()
    for _, body in ipairs{
      '{"success": true, "result": {"buildNo": 61}} x',
      '{"success": true, "result": {"buildNo": 61},}',
      '{"success": true, "result": {"buildNo": 61,}}',
      '{"success": true, "result": {"buildNo": 061}}',
      '{"success": true, "result": {"buildNo": 61}',
      '{"success": true, "result": "61"}',
      '{"success": true, "result": [{"buildNo": 61}]}',
    } do
      local rec, msg, err = fetch_body(emu, client, body)
      assert.is_nil(rec, body)
      assert.is_true(cb.is_error(err, "decode"), body .. ": " .. tostring(msg))
    end
  end)

  it("takes a success with no record in it for a missing build (SERVICE-CONTRACTS §11)", function()
    for _, body in ipairs{ '{"success": true}', '{"success": true, "result": null}', '{"success": true, "result": {}}',
      '{"status": "success", "result": {}}' } do
      local rec, msg, err = fetch_body(emu, client, body)
      assert.is_nil(rec, body)
      assert.is_true(cb.is_error(err, "not_found"), body .. ": " .. tostring(msg))
      assert.are.equal("build", err.what)
    end
  end)
end)
