-- Argo CD health of a CatalystHost, from the conditions the operator writes (after preamble.lua).
-- A drain or a fenced host's recovery under way is Progressing, and Degraded once it is blocked.
local ready = nil
local evacuated = nil
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Overcommitted" and condition.status == "True" then
    return { status = "Degraded", message = "Overcommitted: " .. condition.message }
  end
  if condition.type == "Ready" then
    ready = condition
  end
  if condition.type == "Evacuated" then
    evacuated = condition
  end
end
if evacuated ~= nil and evacuated.status == "False" then
  if evacuated.reason == "Blocked" then
    return { status = "Degraded", message = "evacuation blocked: " .. evacuated.message }
  end
  return { status = "Progressing", message = "evacuating: " .. evacuated.message }
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  return { status = "Healthy", message = ready.message }
end
return { status = "Degraded", message = ready.reason .. ": " .. ready.message }
