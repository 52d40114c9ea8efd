-- The start of every Catalyst health check (generated.rs joins it to each kind's file): an
-- object without a status, or whose status is behind its generation, is Progressing, never
-- Healthy.
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.message = "the operator has not yet observed generation " .. generation
  return hs
end
-- Cores the kubelets report as shared, not exclusive or across NUMA nodes: Degraded, whatever
-- else holds. A report not there yet (NoReport: pods starting, or no agent) says nothing.
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Pinned" and condition.status == "False" and condition.reason ~= "NoReport" then
    return { status = "Degraded", message = condition.reason .. ": " .. condition.message }
  end
end
