-- wrk script: every request is the GetUserOofSettings POST Communicator
-- sends to EWS, with the body of tests/data/oof-request.xml (bench/run
-- passes that file's path as the script's argument).
local path = nil

function init(args)
  path = args[1]
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.path = "/EWS/Exchange.asmx"
  wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
  wrk.headers["SOAPAction"] =
    '"http://schemas.microsoft.com/exchange/services/2006/messages/GetUserOofSettings"'
end

-- Any answer but 200 means the comparison is off; count them.
function response(status, headers, body)
  if status ~= 200 then
    wrk.thread:set("bad", (wrk.thread:get("bad") or 0) + 1)
  end
end
