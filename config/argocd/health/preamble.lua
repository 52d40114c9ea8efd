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
