-- Argo CD health of a ServiceGroup, from the conditions the operator writes (after preamble.lua).
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
