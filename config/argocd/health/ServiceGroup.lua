-- Argo CD health of a ServiceGroup, from the conditions the operator writes.
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.message = "the operator has not yet observed generation " .. generation
  return hs
end
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Ready" then
    if condition.status == "True" then
      return { status = "Healthy", message = condition.message }
    end
    if condition.reason == "InvalidSpec" or condition.reason == "VMNotFound" or condition.reason == "DoesNotFit" then
      return { status = "Degraded", message = condition.reason .. ": " .. condition.message }
    end
    return { status = "Progressing", message = condition.message }
  end
end
return hs
