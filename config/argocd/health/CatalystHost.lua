-- Argo CD health of a CatalystHost, from the conditions the operator writes (after preamble.lua).
local ready = nil
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Overcommitted" and condition.status == "True" then
    return { status = "Degraded", message = "Overcommitted: " .. condition.message }
  end
  if condition.type == "Ready" then
    ready = condition
  end
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  return { status = "Healthy", message = ready.message }
end
return { status = "Degraded", message = ready.reason .. ": " .. ready.message }
