-- Argo CD health of a CatalystVM, from the conditions the operator writes (after preamble.lua).
local ready = nil
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Ready" then
    ready = condition
  end
  -- A move off a drained or fenced host under way.
  if condition.type == "Moving" and condition.status == "True" then
    return { status = "Progressing", message = "moving: " .. condition.message }
  end
  -- A node that claims this VM from an address that is not the VM's: an impostor.
  if condition.type == "NodeVerified" and condition.status == "False" and condition.reason == "AddressMismatch" then
    return { status = "Degraded", message = condition.reason .. ": " .. condition.message }
  end
end
local runStrategy = (obj.spec and obj.spec.runStrategy) or "Always"
if runStrategy == "Halted" and obj.status.phase == "Halted" then
  return { status = "Healthy", message = "halted on purpose (runStrategy Halted)" }
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  return { status = "Healthy", message = ready.message }
end
local degraded = {
  InvalidSpec = true, Unschedulable = true, DoesNotFitHost = true, HostMissing = true,
  JoinSecretMissing = true, JoinSecretInvalid = true, VirtualMachineFailed = true,
}
if degraded[ready.reason] then
  return { status = "Degraded", message = ready.reason .. ": " .. ready.message }
end
return { status = "Progressing", message = ready.message }
