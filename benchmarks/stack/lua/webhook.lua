-- POST a test channel order to a webhook; every body and webhook-id unique (stored, never
-- deduplicated). Environment: BENCH_PATH, BENCH_TOKEN, BENCH_PREFIX.
local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX")
local counter = 0
local template = '{"id":"%s","status":"created","number":"%s","currency":"EUR",' ..
   '"placed_at":"2026-01-05T10:00:00Z","lines":[{"id":"L1","title":"Item L1",' ..
   '"quantity":1,"sku":"SKU-L1","price":1990}],"customer":{"name":"Erika Mustermann",' ..
   '"email":"erika@example.org"},"shipping_address":{"name":"Erika Mustermann",' ..
   '"line1":"Heidestrasse 17","postal_code":"51147","city":"Koeln","country_code":"DE"}}'

function request()
   counter = counter + 1
   local id = prefix .. "-" .. tid .. "-" .. counter
   local headers = {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["webhook-id"] = id,
   }
   return wrk.format("POST", path, headers, string.format(template, id, id))
end
